//! What the delivery service reads of a client's bytes before storing them:
//! the MLS framing of a submitted message, a Welcome, a key package, and a
//! credential's identity. None of it may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wardline_crypto::mls;

fuzz_target!(|data: &[u8]| {
    let _ = mls::inspect_message(data);
    let _ = mls::check_welcome(data);
    let _ = mls::check_key_package(data);
    if let Some((user, device)) = mls::parse_credential_identity(data) {
        // Whatever parses must be what we would have written.
        assert_eq!(mls::credential_identity(user, device), data);
    }
});
