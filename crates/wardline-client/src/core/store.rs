//! The local store's encryption: the whole device state is sealed with
//! AES-256-GCM under a key derived from the user's PIN or passphrase with
//! Argon2id, so a lost phone or a copied profile directory reveals nothing
//! without it. Format: `WLS1 ‖ salt (16) ‖ sealed state`.

use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use wardline_crypto::DataKey;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"WLS1";
const SALT_LEN: usize = 16;
/// What the native store's state is bound to (the browser binds each record
/// to its own place instead).
pub(crate) const CONTEXT: &[u8] = b"wardline/client-state/v1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("wrong passphrase, or the local store was altered")]
    WrongPassphrase,
    #[error("not a Wardline local store")]
    NotAStore,
    #[error("local store: {0}")]
    Corrupt(String),
}

/// The key the state is sealed with, and the salt it was derived with.
pub struct SealedStateKey {
    key: DataKey,
    salt: [u8; SALT_LEN],
}

/// Derives the key for a new store (fresh salt) or an existing one (its salt).
pub fn derive_key(passphrase: &str, existing: Option<&[u8]>) -> Result<SealedStateKey, StoreError> {
    let salt: [u8; SALT_LEN] = match existing {
        Some(sealed) => {
            if sealed.len() < MAGIC.len() + SALT_LEN || &sealed[..4] != MAGIC {
                return Err(StoreError::NotAStore);
            }
            sealed[4..4 + SALT_LEN].try_into().expect("length checked")
        }
        None => {
            let mut s = [0u8; SALT_LEN];
            rand::thread_rng().fill_bytes(&mut s);
            s
        }
    };
    // OWASP's Argon2id minimum (19 MiB, 2 passes): a few tens of milliseconds
    // once per unlock, costly for anyone guessing PINs offline.
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("static Argon2 parameters");
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, out.as_mut())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let key = DataKey::from_bytes(out.as_ref()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(SealedStateKey { key, salt })
}

impl SealedStateKey {
    /// Seals the device state.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        self.seal_as(CONTEXT, plaintext)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.open_as(CONTEXT, sealed)
    }

    /// Seals another file of the device under the same passphrase, bound to
    /// its own `context` (one file can never be passed off as another).
    pub fn seal_as(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.key.seal(plaintext, context));
        out
    }

    pub fn open_as(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if sealed.len() < MAGIC.len() + SALT_LEN || &sealed[..4] != MAGIC {
            return Err(StoreError::NotAStore);
        }
        if sealed[4..4 + SALT_LEN] != self.salt {
            return Err(StoreError::WrongPassphrase);
        }
        self.key
            .open(&sealed[4 + SALT_LEN..], context)
            .map(Zeroizing::new)
            .map_err(|_| StoreError::WrongPassphrase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passphrase_and_tampering_are_refused() {
        let k = derive_key("1234 river", None).unwrap();
        let sealed = k.seal(b"conversation with Dr Okafor");
        assert!(!sealed.windows(6).any(|w| w == b"Okafor"));
        let again = derive_key("1234 river", Some(&sealed)).unwrap();
        assert_eq!(
            &*again.open(&sealed).unwrap(),
            b"conversation with Dr Okafor"
        );
        let wrong = derive_key("1235 river", Some(&sealed)).unwrap();
        assert!(matches!(
            wrong.open(&sealed),
            Err(StoreError::WrongPassphrase)
        ));
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(again.open(&bad), Err(StoreError::WrongPassphrase)));
        assert!(matches!(
            derive_key("x", Some(b"nope")),
            Err(StoreError::NotAStore)
        ));
    }
}
