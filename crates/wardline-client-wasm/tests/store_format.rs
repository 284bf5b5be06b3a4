//! The browser store's record format, held to a fixture per version: a
//! browser that saved its state under an older Wardline must open it under
//! every later one (ARCHITECTURE.md, "The web app's store"). A new format
//! gets a new `STORE_FORMAT`, a new fixture and a test here; the old
//! fixtures stay.
//!
//! `WARDLINE_WRITE_FIXTURES=1 cargo test -p wardline-client-wasm` writes the
//! current version's fixture (only when the format changes).

use uuid::Uuid;
use wardline_client_wasm::{Device, STORE_FORMAT};

const USER: &str = "0b6b3b9e-8a53-4a8f-9e36-5a4c8f0f1a01";
const DEVICE: &str = "6c1f0f44-2f3e-4d5c-9a71-1c2b3d4e5f60";
const CONVERSATION: &str = "3d0c9b8a-7f6e-4d5c-8b4a-392817161514";
const PIN: &str = "fixture pin 2026";
const OUTBOX_TEXT: &str = "queued before the format was frozen";

fn fixture(version: u32) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/store-v{version}.bin"))
}

fn device_id() -> Uuid {
    Uuid::parse_str(DEVICE).unwrap()
}

#[test]
fn a_version_1_record_opens_with_its_pin() {
    if std::env::var_os("WARDLINE_WRITE_FIXTURES").is_some() {
        let mut d = Device::create(USER, DEVICE, PIN, 6).unwrap();
        d.set_directory(&format!(r#"{{"{USER}": "Fixture Nurse"}}"#))
            .unwrap();
        d.queue_text(CONVERSATION, OUTBOX_TEXT, "urgent", "", "[]")
            .unwrap();
        std::fs::write(fixture(STORE_FORMAT), d.seal()).unwrap();
    }
    let sealed = std::fs::read(fixture(1)).expect("tests/fixtures/store-v1.bin");
    let d = Device::open_record(&sealed, device_id(), PIN).expect("the v1 fixture opens");
    assert_eq!(d.user(), USER);
    assert_eq!(d.device(), DEVICE);
    let view: serde_json::Value = serde_json::from_str(&d.messages(CONVERSATION).unwrap()).unwrap();
    assert_eq!(view["unsent"][0]["text"], OUTBOX_TEXT);
    assert_eq!(view["unsent"][0]["priority"], "urgent");
    // Sealed: the text is not in the record.
    assert!(
        !sealed
            .windows(OUTBOX_TEXT.len())
            .any(|w| w == OUTBOX_TEXT.as_bytes())
    );
}

#[test]
fn a_wrong_pin_or_another_device_opens_nothing() {
    let sealed = std::fs::read(fixture(1)).unwrap();
    assert!(Device::open_record(&sealed, device_id(), "fixture pin 2025").is_err());
    // The same bytes stored under another device's key.
    assert!(Device::open_record(&sealed, Uuid::new_v4(), PIN).is_err());
    let mut altered = sealed.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert!(Device::open_record(&altered, device_id(), PIN).is_err());
}
