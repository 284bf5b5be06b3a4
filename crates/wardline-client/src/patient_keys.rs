//! The keys of secure messages this client sealed for patients
//! ([`crate::core::patient`]), so that the writer can read them again: the
//! server holds only ciphertext and never the key. A 0600 file beside the
//! profile (`<profile>.patient-keys`), sealed like the message store under
//! the device's passphrase (Argon2id, AES-256-GCM, its own context): finding
//! L2 of 2026-11-30 found it in plaintext JSON, readable without the
//! passphrase. A plaintext file from an earlier version is sealed when it is
//! next opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::core::{SealedStateKey, derive_key};
use crate::profile::write_private;

const CONTEXT: &[u8] = b"wardline/patient-keys/v1";

pub struct PatientKeys {
    path: PathBuf,
    keys: BTreeMap<Uuid, String>,
    seal: SealedStateKey,
}

impl Drop for PatientKeys {
    fn drop(&mut self) {
        for v in self.keys.values_mut() {
            zeroize::Zeroize::zeroize(v);
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl PatientKeys {
    /// The key file that goes with a profile.
    pub fn path_for(profile: &Path) -> PathBuf {
        let mut name = profile.as_os_str().to_owned();
        name.push(".patient-keys");
        PathBuf::from(name)
    }

    /// Opens (or starts) the key file with the device's passphrase.
    pub fn load(path: &Path, passphrase: &str) -> std::io::Result<PatientKeys> {
        let bytes = match std::fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Zeroizing::new(Vec::new()),
            Err(e) => return Err(e),
        };
        let legacy = bytes.first() == Some(&b'{');
        let (seal, keys) = if bytes.is_empty() || legacy {
            let keys = if legacy {
                serde_json::from_slice(&bytes).map_err(invalid)?
            } else {
                BTreeMap::new()
            };
            (derive_key(passphrase, None).map_err(invalid)?, keys)
        } else {
            let seal = derive_key(passphrase, Some(&bytes)).map_err(invalid)?;
            let json = seal.open_as(CONTEXT, &bytes).map_err(invalid)?;
            (seal, serde_json::from_slice(&json).map_err(invalid)?)
        };
        let keys = PatientKeys {
            path: path.to_owned(),
            keys,
            seal,
        };
        if legacy {
            keys.save()?;
        }
        Ok(keys)
    }

    fn save(&self) -> std::io::Result<()> {
        let json = Zeroizing::new(serde_json::to_vec(&self.keys).expect("keys serialise"));
        write_private(&self.path, &self.seal.seal_as(CONTEXT, &json))
    }

    /// Remembers a message's key fragment and saves the file.
    pub fn insert(&mut self, message: Uuid, fragment: &str) -> std::io::Result<()> {
        self.keys.insert(message, fragment.to_owned());
        self.save()
    }

    pub fn get(&self, message: Uuid) -> Option<&str> {
        self.keys.get(&message).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_under_the_passphrase_and_plaintext_files_are_sealed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json.patient-keys");
        let id = Uuid::new_v4();
        let mut k = PatientKeys::load(&path, "7314 lantern").unwrap();
        k.insert(id, "k=SECRETFRAGMENT").unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"SECRET"));
        assert_eq!(
            PatientKeys::load(&path, "7314 lantern").unwrap().get(id),
            Some("k=SECRETFRAGMENT")
        );
        assert!(PatientKeys::load(&path, "wrong").is_err());
        // An earlier version's plaintext file.
        std::fs::write(&path, format!("{{\"{id}\":\"k=OLDFRAGMENT\"}}")).unwrap();
        let k = PatientKeys::load(&path, "7314 lantern").unwrap();
        assert_eq!(k.get(id), Some("k=OLDFRAGMENT"));
        assert!(
            !std::fs::read(&path)
                .unwrap()
                .windows(3)
                .any(|w| w == b"OLD")
        );
    }
}
