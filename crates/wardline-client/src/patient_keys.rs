//! The keys of secure messages this client sealed for patients
//! ([`crate::core::patient`]), so that the writer can read them again: the
//! server holds only ciphertext and never the key. A 0600 JSON file beside the
//! profile (`<profile>.patient-keys`), like the profile's own session token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::profile::write_private;

pub struct PatientKeys {
    path: PathBuf,
    keys: BTreeMap<Uuid, String>,
}

impl Drop for PatientKeys {
    fn drop(&mut self) {
        for v in self.keys.values_mut() {
            zeroize::Zeroize::zeroize(v);
        }
    }
}

impl PatientKeys {
    /// The key file that goes with a profile.
    pub fn path_for(profile: &Path) -> PathBuf {
        let mut name = profile.as_os_str().to_owned();
        name.push(".patient-keys");
        PathBuf::from(name)
    }

    pub fn load(path: &Path) -> std::io::Result<PatientKeys> {
        let keys = match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                serde_json::from_slice(&bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(PatientKeys {
            path: path.to_owned(),
            keys,
        })
    }

    /// Remembers a message's key fragment and saves the file.
    pub fn insert(&mut self, message: Uuid, fragment: &str) -> std::io::Result<()> {
        self.keys.insert(message, fragment.to_owned());
        let json = Zeroizing::new(serde_json::to_vec(&self.keys).expect("keys serialise"));
        write_private(&self.path, &json)
    }

    pub fn get(&self, message: Uuid) -> Option<&str> {
        self.keys.get(&message).map(String::as_str)
    }
}
