//! Secure messages to patients sealed by the writer's client: the server
//! stores only ciphertext, and the key travels in the link's `#fragment`,
//! which browsers never send to a server. The patient's page decrypts with
//! WebCrypto after the identity check releases the ciphertext.
//!
//! Format: what [`DataKey::seal`] makes (`1 || nonce (12) || ciphertext ||
//! tag (16)`, AES-256-GCM) with [`PATIENT_MESSAGE_CONTEXT`] as associated
//! data; the fragment is `k=` and the key in unpadded base64url.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wardline_crypto::DataKey;
use zeroize::Zeroizing;

/// Associated data of a client-sealed patient message (the browser uses the same).
pub const PATIENT_MESSAGE_CONTEXT: &[u8] = b"wardline/patient-message/v1";

/// Seals `text` under a fresh key; returns the ciphertext and the fragment
/// (`k=…`) to put after the link.
pub fn seal_for_patient(text: &str) -> (Vec<u8>, Zeroizing<String>) {
    let key = DataKey::generate();
    let sealed = key.seal(text.as_bytes(), PATIENT_MESSAGE_CONTEXT);
    let fragment = Zeroizing::new(format!("k={}", URL_SAFE_NO_PAD.encode(key.expose())));
    (sealed, fragment)
}

/// Opens what [`seal_for_patient`] sealed, given its fragment.
pub fn open_for_patient(sealed: &[u8], fragment: &str) -> Option<String> {
    let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(fragment.strip_prefix("k=")?).ok()?);
    let key = DataKey::from_bytes(&raw).ok()?;
    String::from_utf8(key.open(sealed, PATIENT_MESSAGE_CONTEXT).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let (sealed, fragment) = seal_for_patient("Your A1c is 6.1%");
        assert_eq!(fragment.len(), 2 + 43);
        assert!(!sealed.windows(3).any(|w| w == b"A1c"));
        assert_eq!(
            open_for_patient(&sealed, &fragment).as_deref(),
            Some("Your A1c is 6.1%")
        );
        let (_, other) = seal_for_patient("x");
        assert_eq!(open_for_patient(&sealed, &other), None);
        assert_eq!(open_for_patient(&sealed, "k=short"), None);
    }
}
