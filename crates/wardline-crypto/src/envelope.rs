//! Envelope encryption of PHI fields.
//!
//! Each record that holds PHI has its own 256-bit data key. Fields are sealed with
//! AES-256-GCM under that key; the associated data names the record and the field
//! (`users/<id>/email`), so a ciphertext copied into another row or column fails to
//! decrypt instead of silently showing the wrong patient's data. The data key is
//! stored only wrapped by a KEK ([`crate::KeyProvider`]); deleting the wrapped data
//! key destroys every field sealed under it, backups included (crypto-shredding).
//!
//! Sealed format: `version (1 byte) || nonce (12) || ciphertext || tag (16)`.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{CryptoError, Result};

const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 256-bit AES key, zeroized when dropped. Used both as a data key and,
/// inside key providers, as a key-encryption key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn generate() -> DataKey {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        DataKey(k)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<DataKey> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::Malformed("key must be 32 bytes"))?;
        Ok(DataKey(arr))
    }

    /// Raw key bytes; only key providers and the blind index need them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }

    /// Encrypts `plaintext`, binding it to `context` (record and field name).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // aes-gcm only fails for plaintexts over 64 GiB.
            .expect("AES-GCM encryption of an in-memory field cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`DataKey::seal`] produced under the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed("sealed value too short"));
        }
        if sealed[0] != SEALED_V1 {
            return Err(CryptoError::Malformed("unknown sealed-value version"));
        }
        let nonce = Nonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        self.cipher()
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key encrypted under the KEK named by `kek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub wrapped: Vec<u8>,
}

/// The associated data used when a KEK wraps a data key: the data key's own id,
/// so that wrapped keys cannot be swapped between rows either.
pub fn wrap_context(data_key_id: &str) -> Vec<u8> {
    format!("wardline/data-key/{data_key_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let k = DataKey::generate();
        let sealed = k.seal(b"Jane Doe", b"users/1/name");
        assert_eq!(k.open(&sealed, b"users/1/name").unwrap(), b"Jane Doe");
        assert!(!sealed.windows(8).any(|w| w == b"Jane Doe"));
    }

    #[test]
    fn wrong_context_or_key_fails() {
        let k = DataKey::generate();
        let sealed = k.seal(b"555-0100", b"users/1/phone");
        assert!(matches!(
            k.open(&sealed, b"users/2/phone"),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            DataKey::generate().open(&sealed, b"users/1/phone"),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn tampering_and_truncation_fail() {
        let k = DataKey::generate();
        let mut sealed = k.seal(b"MRN 12345", b"ctx");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(k.open(&sealed, b"ctx").is_err());
        assert!(matches!(
            k.open(&sealed[..10], b"ctx"),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            k.open(&[], b"ctx"),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn nonces_differ_between_seals() {
        let k = DataKey::generate();
        assert_ne!(k.seal(b"x", b"c"), k.seal(b"x", b"c"));
    }

    #[test]
    fn debug_does_not_print_key() {
        assert_eq!(format!("{:?}", DataKey::generate()), "DataKey(<redacted>)");
    }
}
