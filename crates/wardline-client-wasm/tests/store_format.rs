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
        d.queue_text(CONVERSATION, OUTBOX_TEXT, "urgent", "", "[]", None)
            .unwrap();
        std::fs::write(fixture(STORE_FORMAT), d.seal()).unwrap();
    }
    let sealed = std::fs::read(fixture(1)).expect("tests/fixtures/store-v1.bin");
    let d = Device::open_record(&sealed, device_id(), PIN).expect("the v1 fixture opens");
    assert_eq!(d.user(), USER);
    assert_eq!(d.device(), DEVICE);
    let view: serde_json::Value =
        serde_json::from_str(&d.messages(CONVERSATION, 100).unwrap()).unwrap();
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

/// The session record (`DeviceRecord.session`): the token a reload resumes
/// with, sealed under the store's key and bound to this device's session
/// record, so neither the state record nor another device's session passes
/// for it.
#[test]
fn the_saved_session_opens_only_as_this_devices_session() {
    let sealed = std::fs::read(fixture(1)).unwrap();
    let d = Device::open_record(&sealed, device_id(), PIN).unwrap();
    let session = r#"{"token":"wl_s_example","session":{}}"#;
    let record = d.seal_session(session);
    assert!(!record.windows(12).any(|w| w == b"wl_s_example"));
    assert_eq!(d.session_record(&record).unwrap(), session);
    // The state record is not a session, and a session is not the state.
    assert!(d.session_record(&sealed).is_none());
    assert!(Device::open_record(&record, device_id(), PIN).is_err());
    // Another device's store (another key, another record) opens neither.
    let other = Device::create(USER, &Uuid::new_v4().to_string(), PIN, 6).unwrap();
    assert!(other.session_record(&record).is_none());
}

/// `max_offline_days`: the store does not open offline once the device has
/// not reached the server for that long (by the last server time seen).
#[test]
fn a_store_offline_too_long_is_told() {
    let day = 86_400.0;
    let mut d = Device::create(USER, DEVICE, PIN, 6).unwrap();
    let mut policy =
        serde_json::to_value(wardline_proto::lifecycle::DevicePolicy::default()).unwrap();
    policy["max_offline_days"] = 3.into();
    d.set_policy(&policy.to_string()).unwrap();
    // Never reached: nothing to count from.
    assert_eq!(d.offline_too_long(1_780_000_000.0), None);
    d.saw_server_time(1_780_000_000.0);
    assert_eq!(d.offline_too_long(1_780_000_000.0 + 2.9 * day), None);
    assert_eq!(d.offline_too_long(1_780_000_000.0 + 3.0 * day), Some(3.0));
    // Kept across sealing: the limit holds after a reload.
    let reopened = Device::open_record(&d.seal(), device_id(), PIN).unwrap();
    assert_eq!(
        reopened.offline_too_long(1_780_000_000.0 + 4.0 * day),
        Some(4.0)
    );
    policy["max_offline_days"] = serde_json::Value::Null;
    d.set_policy(&policy.to_string()).unwrap();
    assert_eq!(d.offline_too_long(1_780_000_000.0 + 400.0 * day), None);
}
