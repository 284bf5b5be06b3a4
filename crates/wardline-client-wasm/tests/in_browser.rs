//! The core as the web app's worker runs it: compiled to wasm32 and run in
//! a dedicated worker of Debian's Chromium by wasm-bindgen-test (`cargo
//! xtask wasm-test`, part of `cargo xtask test`). What differs from the
//! native build is checked here: randomness from the browser's
//! `crypto.getRandomValues` (getrandom's `wasm_js` backend), Argon2id and
//! AES-GCM compiled to wasm, the MLS identity generated there, and JSON
//! crossing the boundary as the worker passes it.
//!
//! Natively this file is empty: `tests/store_format.rs` covers the same
//! record format on the host.
#![cfg(target_arch = "wasm32")]

use wardline_client_wasm::{Device, open_attachment, seal_attachment};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const USER: &str = "0b6b3b9e-8a53-4a8f-9e36-5a4c8f0f1a01";
const DEVICE: &str = "6c1f0f44-2f3e-4d5c-9a71-1c2b3d4e5f60";
const CONVERSATION: &str = "3d0c9b8a-7f6e-4d5c-8b4a-392817161514";
const PIN: &str = "4711 heron";

/// A store sealed in the worker opens with its PIN and nothing else; what
/// the outbox held comes back.
#[wasm_bindgen_test]
fn a_store_sealed_in_the_browser_opens_with_its_pin() {
    let mut d = Device::create(USER, DEVICE, PIN, 6).unwrap();
    d.queue_text(CONVERSATION, "K+ 6.1, repeat drawn", "stat", "", "[]", None)
        .unwrap();
    let sealed = d.seal();
    assert!(
        !sealed
            .windows(b"repeat drawn".len())
            .any(|w| w == b"repeat drawn")
    );
    let opened = Device::open(&sealed, DEVICE, PIN).expect("opens with its PIN");
    let view: serde_json::Value =
        serde_json::from_str(&opened.messages(CONVERSATION, 100).unwrap()).unwrap();
    assert_eq!(view["unsent"][0]["text"], "K+ 6.1, repeat drawn");
    assert_eq!(view["unsent"][0]["priority"], "stat");
    assert!(Device::open(&sealed, DEVICE, "4712 heron").is_err());
    // Too short a PIN for the organisation's minimum is refused before anything is made.
    assert!(Device::create(USER, DEVICE, "12345", 6).is_err());
}

/// The browser's randomness reaches the core: two devices, two identities;
/// two stores of one PIN, two salts; two attachments, two keys.
#[wasm_bindgen_test]
fn randomness_comes_from_the_browser() {
    let a = Device::create(USER, DEVICE, PIN, 6).unwrap();
    let b = Device::create(USER, DEVICE, PIN, 6).unwrap();
    let (ra, rb) = (a.registration("A").unwrap(), b.registration("B").unwrap());
    let key =
        |r: &str| serde_json::from_str::<serde_json::Value>(r).unwrap()["identity_key"].clone();
    assert_ne!(key(&ra), key(&rb));
    assert_ne!(a.seal()[4..20], b.seal()[4..20], "the store salts repeat");
    let (x, y) = (
        seal_attachment(b"same bytes"),
        seal_attachment(b"same bytes"),
    );
    assert_ne!(x.key(), y.key());
    assert_ne!(x.ciphertext(), y.ciphertext());
}

/// An attachment sealed in the worker opens with its key, and a flipped
/// bit or another key opens nothing.
#[wasm_bindgen_test]
fn attachments_round_trip_and_fail_closed() {
    let photo = vec![0xd8_u8; 64 * 1024];
    let sealed = seal_attachment(&photo);
    let mut ciphertext = sealed.ciphertext();
    assert_eq!(open_attachment(&ciphertext, &sealed.key()).unwrap(), photo);
    assert!(open_attachment(&ciphertext, &seal_attachment(b"").key()).is_err());
    let last = ciphertext.len() - 1;
    ciphertext[last] ^= 1;
    assert!(open_attachment(&ciphertext, &sealed.key()).is_err());
}

/// The session a reload resumes with is sealed with the store's key and
/// opens only as this device's session.
#[wasm_bindgen_test]
fn the_saved_session_is_sealed_with_the_store() {
    let d = Device::create(USER, DEVICE, PIN, 6).unwrap();
    let session = r#"{"token":"wl_s_browser","session":{}}"#;
    let record = d.seal_session(session);
    assert!(!record.windows(12).any(|w| w == b"wl_s_browser"));
    assert_eq!(d.open_session(&record).unwrap(), session);
    assert!(d.open_session(&d.seal()).is_err());
    let reopened = Device::open(&d.seal(), DEVICE, PIN).unwrap();
    assert_eq!(reopened.open_session(&record).unwrap(), session);
}
