//! Key-encryption keys (KEKs) and the providers that hold them.
//!
//! A KEK never encrypts PHI itself: it wraps data keys. Rotating the KEK therefore
//! rewraps a few thousand 32-byte keys instead of re-encrypting the database, and
//! the old KEK stays available until every data key has moved, so a running
//! server keeps working during rotation.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::envelope::{DataKey, WrappedKey, wrap_context};
use crate::{CryptoError, Result};

/// Source of key-encryption keys. Implementations: [`LocalKeyFile`] (default);
/// a PKCS#11 HSM provider keeps the KEK non-extractable behind the same calls.
pub trait KeyProvider: Send + Sync {
    /// The KEK that new data keys are wrapped with.
    fn current_kek_id(&self) -> String;
    /// Wraps `key` (whose row id is `data_key_id`) under the current KEK.
    fn wrap(&self, data_key_id: &str, key: &DataKey) -> Result<WrappedKey>;
    /// Unwraps a data key wrapped under any KEK the provider still holds.
    fn unwrap(&self, data_key_id: &str, wrapped: &WrappedKey) -> Result<DataKey>;
    /// Signs an audit checkpoint with the current audit signing key (Ed25519),
    /// creating that key on first use. The private key never leaves the provider.
    fn sign_checkpoint(&self, message: &[u8]) -> Result<CheckpointSignature>;
    /// The public half of an audit signing key, current or earlier: signing keys
    /// are never retired, since old checkpoints must stay verifiable.
    fn checkpoint_public_key(&self, key_id: &str) -> Result<[u8; 32]>;
    /// HMAC-SHA256 of `message` under a secret only the provider holds, for
    /// authenticating each audit entry between checkpoints: someone who can
    /// write to the database can recompute hashes, not this.
    fn audit_entry_mac(&self, message: &[u8]) -> Result<[u8; 32]>;
}

/// An Ed25519 signature over a checkpoint and the id of the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSignature {
    pub key_id: String,
    pub signature: [u8; 64],
}

/// Checks an Ed25519 checkpoint signature (strict verification: no malleable
/// or small-order encodings).
pub fn verify_checkpoint_signature(
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

const FORMAT: &str = "wardline-keyring-v1";

#[derive(Serialize, Deserialize)]
struct KeyringFile {
    format: String,
    current: String,
    /// KEK id → base64 key.
    keys: BTreeMap<String, String>,
    /// Audit signing key id → base64 Ed25519 seed. Absent until first used.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    signing: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current_signing: Option<String>,
}

struct Keyring {
    current: String,
    keys: BTreeMap<String, DataKey>,
    signing: BTreeMap<String, ed25519_dalek::SigningKey>,
    current_signing: Option<String>,
    /// Audit entry MAC, keyed with a key derived from the current signing key
    /// (so it needs no storage of its own; one signing key is ever created).
    /// Kept keyed and cloned per use: the verifier checks one per entry.
    mac: Option<hmac::Hmac<sha2::Sha256>>,
    /// (modified time, length, inode) of the file when it was read.
    stamp: Option<FileStamp>,
}

type FileStamp = (std::time::SystemTime, u64, u64);

fn stamp_of(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// KEKs in a local file (mode 0600), created on first start. Suitable for a
/// single-host clinic install; the file must be backed up separately from the
/// database, since either alone is useless.
pub struct LocalKeyFile {
    path: PathBuf,
    ring: RwLock<Keyring>,
    /// Opened for checking only ([`LocalKeyFile::open_read_only`]): nothing is
    /// ever written, and no signing key is created.
    read_only: bool,
}

impl LocalKeyFile {
    /// Opens the key file, creating it with a fresh KEK if it does not exist.
    pub fn open_or_create(path: &Path) -> Result<LocalKeyFile> {
        if !path.exists() {
            let id = new_kek_id();
            let mut keys = BTreeMap::new();
            keys.insert(id.clone(), DataKey::generate());
            write_keyring(
                path,
                &Keyring {
                    current: id,
                    keys,
                    signing: BTreeMap::new(),
                    current_signing: None,
                    mac: None,
                    stamp: None,
                },
            )?;
        }
        let ring = read_keyring(path)?;
        Ok(LocalKeyFile {
            path: path.to_owned(),
            ring: RwLock::new(ring),
            read_only: false,
        })
    }

    /// Opens an existing key file for checking only (the audit verifier): a
    /// missing file is an error, not a reason to create one, and operations
    /// that would write it (rotation, creating the signing key) fail. A
    /// verifier that wrote keys could leave a server started there with the
    /// wrong ones.
    pub fn open_read_only(path: &Path) -> Result<LocalKeyFile> {
        if !path.exists() {
            return Err(key_file_error(
                path,
                "not found (the verifier never creates one; point --data-dir or --config at the server's)",
            ));
        }
        Ok(LocalKeyFile {
            path: path.to_owned(),
            ring: RwLock::new(read_keyring(path)?),
            read_only: true,
        })
    }

    fn refuse_if_read_only(&self) -> Result<()> {
        if self.read_only {
            return Err(key_file_error(&self.path, "opened read-only"));
        }
        Ok(())
    }

    /// Adds a new KEK and makes it current. Data keys wrapped under older KEKs
    /// still unwrap; rewrap them, then [`LocalKeyFile::retire`] the old ones.
    pub fn rotate(&self) -> Result<String> {
        self.refuse_if_read_only()?;
        let mut ring = self.ring.write().expect("keyring lock poisoned");
        // Another process (the CLI, another node) may have rotated meanwhile.
        *ring = read_keyring(&self.path)?;
        let id = new_kek_id();
        ring.keys.insert(id.clone(), DataKey::generate());
        ring.current = id.clone();
        write_keyring(&self.path, &ring)?;
        ring.stamp = stamp_of(&self.path);
        Ok(id)
    }

    /// Removes every KEK except the current one. Call only after all data keys
    /// have been rewrapped, or they become unreadable.
    pub fn retire_all_but_current(&self) -> Result<Vec<String>> {
        self.refuse_if_read_only()?;
        let mut ring = self.ring.write().expect("keyring lock poisoned");
        *ring = read_keyring(&self.path)?;
        let current = ring.current.clone();
        let retired: Vec<String> = ring
            .keys
            .keys()
            .filter(|k| **k != current)
            .cloned()
            .collect();
        ring.keys.retain(|k, _| *k == current);
        write_keyring(&self.path, &ring)?;
        ring.stamp = stamp_of(&self.path);
        Ok(retired)
    }

    fn with_kek<T>(&self, kek_id: &str, f: impl Fn(&DataKey) -> Result<T>) -> Result<T> {
        {
            let ring = self.ring.read().expect("keyring lock poisoned");
            if let Some(kek) = ring.keys.get(kek_id) {
                return f(kek);
            }
        }
        // Unknown id: the file may have been rotated by another process since we
        // loaded it. Reload once; this is what makes rotation need no restart.
        let mut ring = self.ring.write().expect("keyring lock poisoned");
        *ring = read_keyring(&self.path)?;
        match ring.keys.get(kek_id) {
            Some(kek) => f(kek),
            None => Err(CryptoError::UnknownKek(kek_id.to_owned())),
        }
    }
}

impl LocalKeyFile {
    /// Runs `f` with the keyring and the audit signing key's id, creating the
    /// key on first use. Once created the key never changes, so no reread is
    /// needed afterwards (the verifier calls this once per entry).
    fn with_signing_key<T>(&self, f: impl FnOnce(&Keyring, &str) -> T) -> Result<T> {
        {
            let ring = self.ring.read().expect("keyring lock poisoned");
            if let Some(id) = &ring.current_signing {
                return Ok(f(&ring, id));
            }
        }
        let mut ring = self.ring.write().expect("keyring lock poisoned");
        // Another process may have created the key meanwhile: reread first.
        *ring = read_keyring(&self.path)?;
        if ring.current_signing.is_none() {
            if self.read_only {
                return Err(CryptoError::UnknownKey(
                    "(none: this key file has no audit signing key)".into(),
                ));
            }
            let mut seed = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(seed.as_mut());
            let id = format!("audit-{}", new_kek_id().trim_start_matches("kek-"));
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            ring.mac = Some(entry_mac(&key));
            ring.signing.insert(id.clone(), key);
            ring.current_signing = Some(id);
            write_keyring(&self.path, &ring)?;
            ring.stamp = stamp_of(&self.path);
        }
        let id = ring.current_signing.clone().expect("just ensured");
        Ok(f(&ring, &id))
    }

    /// Rereads the file if another process (the rotation CLI, another node)
    /// replaced it, so that new data keys are never wrapped with a KEK that is
    /// about to be retired. One `stat` per call; wrapping is rare.
    fn refresh_if_changed(&self) {
        let now = stamp_of(&self.path);
        if now.is_none() || self.ring.read().expect("keyring lock poisoned").stamp == now {
            return;
        }
        // On a read error keep the keys we have; an unwrap of an unknown id reports it.
        if let Ok(ring) = read_keyring(&self.path) {
            *self.ring.write().expect("keyring lock poisoned") = ring;
        }
    }
}

impl KeyProvider for LocalKeyFile {
    fn current_kek_id(&self) -> String {
        self.refresh_if_changed();
        self.ring
            .read()
            .expect("keyring lock poisoned")
            .current
            .clone()
    }

    fn wrap(&self, data_key_id: &str, key: &DataKey) -> Result<WrappedKey> {
        let kek_id = self.current_kek_id();
        let wrapped = self.with_kek(&kek_id, |kek| {
            Ok(kek.seal(key.expose(), &wrap_context(data_key_id)))
        })?;
        Ok(WrappedKey { kek_id, wrapped })
    }

    fn unwrap(&self, data_key_id: &str, wrapped: &WrappedKey) -> Result<DataKey> {
        self.with_kek(&wrapped.kek_id, |kek| {
            let raw = Zeroizing::new(kek.open(&wrapped.wrapped, &wrap_context(data_key_id))?);
            DataKey::from_bytes(&raw)
        })
    }

    fn sign_checkpoint(&self, message: &[u8]) -> Result<CheckpointSignature> {
        use ed25519_dalek::Signer;
        self.with_signing_key(|ring, id| CheckpointSignature {
            key_id: id.to_owned(),
            signature: ring.signing[id].sign(message).to_bytes(),
        })
    }

    fn audit_entry_mac(&self, message: &[u8]) -> Result<[u8; 32]> {
        use hmac::Mac;
        self.with_signing_key(|ring, _| {
            let mut mac = ring.mac.clone().expect("keyed with the signing key");
            mac.update(message);
            mac.finalize().into_bytes().into()
        })
    }

    fn checkpoint_public_key(&self, key_id: &str) -> Result<[u8; 32]> {
        let lookup = |ring: &Keyring| {
            ring.signing
                .get(key_id)
                .map(|k| k.verifying_key().to_bytes())
        };
        if let Some(k) = lookup(&self.ring.read().expect("keyring lock poisoned")) {
            return Ok(k);
        }
        let mut ring = self.ring.write().expect("keyring lock poisoned");
        *ring = read_keyring(&self.path)?;
        lookup(&ring).ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))
    }
}

/// The keyed audit entry MAC: HMAC-SHA256 under a key derived from the
/// signing key.
fn entry_mac(signing: &ed25519_dalek::SigningKey) -> hmac::Hmac<sha2::Sha256> {
    use hmac::{Hmac, Mac};
    let mut derive = <Hmac<sha2::Sha256> as Mac>::new_from_slice(signing.as_bytes())
        .expect("HMAC accepts any key length");
    derive.update(b"wardline-audit-entry-mac-v1");
    let key = Zeroizing::new(<[u8; 32]>::from(derive.finalize().into_bytes()));
    <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_ref()).expect("HMAC accepts any key length")
}

fn new_kek_id() -> String {
    let mut r = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut r);
    format!("kek-{}", hex::encode(r))
}

fn key_file_error(path: &Path, reason: impl std::fmt::Display) -> CryptoError {
    CryptoError::KeyFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_keyring(path: &Path) -> Result<Keyring> {
    let meta = fs::metadata(path).map_err(|e| key_file_error(path, e))?;
    // A KEK readable by other local users defeats at-rest encryption.
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(key_file_error(
            path,
            format!(
                "permissions are {:o}; must not be readable by group or others (chmod 600)",
                meta.permissions().mode() & 0o777
            ),
        ));
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| key_file_error(path, e))?);
    let file: KeyringFile = serde_json::from_str(&text)
        .map_err(|e| key_file_error(path, format!("not a keyring: {e}")))?;
    if file.format != FORMAT {
        return Err(key_file_error(
            path,
            format!("unknown format {:?}", file.format),
        ));
    }
    let mut keys = BTreeMap::new();
    for (id, b64) in &file.keys {
        let raw = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| key_file_error(path, format!("key {id} is not base64")))?,
        );
        keys.insert(
            id.clone(),
            DataKey::from_bytes(&raw).map_err(|e| key_file_error(path, e))?,
        );
    }
    // Zeroize the base64 copies as well.
    for (_, mut v) in file.keys {
        zeroize::Zeroize::zeroize(&mut v);
    }
    if !keys.contains_key(&file.current) {
        return Err(key_file_error(path, "current key id is not among the keys"));
    }
    let mut signing = BTreeMap::new();
    for (id, b64) in &file.signing {
        let raw = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| key_file_error(path, format!("key {id} is not base64")))?,
        );
        let seed: &[u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| key_file_error(path, format!("signing key {id} is not 32 bytes")))?;
        signing.insert(id.clone(), ed25519_dalek::SigningKey::from_bytes(seed));
    }
    for (_, mut v) in file.signing {
        zeroize::Zeroize::zeroize(&mut v);
    }
    if let Some(id) = &file.current_signing
        && !signing.contains_key(id)
    {
        return Err(key_file_error(
            path,
            "current signing key id is not among the keys",
        ));
    }
    let mac = file
        .current_signing
        .as_ref()
        .map(|id| entry_mac(&signing[id]));
    Ok(Keyring {
        current: file.current,
        keys,
        signing,
        current_signing: file.current_signing,
        mac,
        stamp: stamp_of(path),
    })
}

fn write_keyring(path: &Path, ring: &Keyring) -> Result<()> {
    let file = KeyringFile {
        format: FORMAT.into(),
        current: ring.current.clone(),
        keys: ring
            .keys
            .iter()
            .map(|(id, k)| (id.clone(), STANDARD.encode(k.expose())))
            .collect(),
        signing: ring
            .signing
            .iter()
            .map(|(id, k)| (id.clone(), STANDARD.encode(k.as_bytes())))
            .collect(),
        current_signing: ring.current_signing.clone(),
    };
    let text = Zeroizing::new(serde_json::to_string_pretty(&file).expect("keyring serialises"));
    if let Some(parent) = path.parent()
        && !parent.exists()
    {
        // Only the server's user lists the key directory (the file is 0600 too).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| key_file_error(path, e))?;
    }
    // Write a sibling and rename it over, so a crash never leaves a half-written
    // keyring (which would make every PHI field unreadable).
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| key_file_error(&tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| key_file_error(&tmp, e))?;
    f.sync_all().map_err(|e| key_file_error(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| key_file_error(path, e))?;
    for (_, mut v) in file.keys.into_iter().chain(file.signing) {
        zeroize::Zeroize::zeroize(&mut v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_file_0600_and_wraps_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/kek.json");
        let p = LocalKeyFile::open_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let dk = DataKey::generate();
        let w = p.wrap("dk1", &dk).unwrap();
        assert_eq!(p.unwrap("dk1", &w).unwrap().expose(), dk.expose());
        // Bound to the data key id.
        assert!(p.unwrap("dk2", &w).is_err());
        // Reopening reads the same key.
        let p2 = LocalKeyFile::open_or_create(&path).unwrap();
        assert_eq!(p2.unwrap("dk1", &w).unwrap().expose(), dk.expose());
    }

    /// L3 of the 2026-11-30 security findings: the audit verifier wrote a
    /// fresh key file (KEK and signing key) when the real one was missing.
    #[test]
    fn read_only_open_never_creates_or_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        assert!(matches!(
            LocalKeyFile::open_read_only(&path),
            Err(CryptoError::KeyFile { .. })
        ));
        assert!(!path.exists(), "a missing key file stays missing");

        // A file without a signing key yet: checking an entry MAC must not create one.
        LocalKeyFile::open_or_create(&path).unwrap();
        let before = fs::read(&path).unwrap();
        let ro = LocalKeyFile::open_read_only(&path).unwrap();
        assert!(ro.audit_entry_mac(b"entry").is_err());
        assert!(ro.sign_checkpoint(b"cp").is_err());
        assert!(ro.rotate().is_err());
        assert!(ro.retire_all_but_current().is_err());
        assert_eq!(fs::read(&path).unwrap(), before, "nothing was written");

        // Once the server made its signing key, the read-only view checks with it.
        let server = LocalKeyFile::open_or_create(&path).unwrap();
        let sig = server.sign_checkpoint(b"cp").unwrap();
        let ro = LocalKeyFile::open_read_only(&path).unwrap();
        assert_eq!(
            ro.audit_entry_mac(b"entry").unwrap(),
            server.audit_entry_mac(b"entry").unwrap()
        );
        assert!(verify_checkpoint_signature(
            &ro.checkpoint_public_key(&sig.key_id).unwrap(),
            b"cp",
            &sig.signature
        ));
    }

    #[test]
    fn rotation_keeps_old_keks_until_retired_and_other_instances_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let server = LocalKeyFile::open_or_create(&path).unwrap();
        let old = server.current_kek_id();
        let dk = DataKey::generate();
        let w_old = server.wrap("dk", &dk).unwrap();

        // The CLI rotates in another "process".
        let cli = LocalKeyFile::open_or_create(&path).unwrap();
        let new = cli.rotate().unwrap();
        assert_ne!(old, new);
        let w_new = cli.wrap("dk", &dk).unwrap();
        assert_eq!(w_new.kek_id, new);

        // The server picks up the new current KEK for new wraps...
        assert_eq!(server.current_kek_id(), new);
        // ...and unwraps under both.
        assert_eq!(server.unwrap("dk", &w_new).unwrap().expose(), dk.expose());
        assert_eq!(server.unwrap("dk", &w_old).unwrap().expose(), dk.expose());

        assert_eq!(cli.retire_all_but_current().unwrap(), vec![old.clone()]);
        let fresh = LocalKeyFile::open_or_create(&path).unwrap();
        assert!(
            matches!(fresh.unwrap("dk", &w_old), Err(CryptoError::UnknownKek(id)) if id == old)
        );
    }

    #[test]
    fn checkpoint_signing_key_is_created_once_survives_kek_retirement_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let server = LocalKeyFile::open_or_create(&path).unwrap();
        let a = server.sign_checkpoint(b"checkpoint 1").unwrap();
        let b = server.sign_checkpoint(b"checkpoint 2").unwrap();
        assert_eq!(a.key_id, b.key_id);

        // The verifier (another process) finds the public key; KEK rotation and
        // retirement leave the signing key alone.
        let cli = LocalKeyFile::open_or_create(&path).unwrap();
        cli.rotate().unwrap();
        cli.retire_all_but_current().unwrap();
        let fresh = LocalKeyFile::open_or_create(&path).unwrap();
        let public = fresh.checkpoint_public_key(&a.key_id).unwrap();
        assert!(verify_checkpoint_signature(
            &public,
            b"checkpoint 1",
            &a.signature
        ));
        assert!(!verify_checkpoint_signature(
            &public,
            b"checkpoint 2",
            &a.signature
        ));
        // Entry MACs are stable across instances and KEK rotation, and keyed.
        assert_eq!(
            server.audit_entry_mac(b"entry").unwrap(),
            fresh.audit_entry_mac(b"entry").unwrap()
        );
        assert_ne!(
            fresh.audit_entry_mac(b"entry").unwrap(),
            fresh.audit_entry_mac(b"entrz").unwrap()
        );
        let other = LocalKeyFile::open_or_create(&dir.path().join("other.json")).unwrap();
        assert_ne!(
            other.audit_entry_mac(b"entry").unwrap(),
            fresh.audit_entry_mac(b"entry").unwrap()
        );
        assert!(matches!(
            fresh.checkpoint_public_key("audit-nope"),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn refuses_world_readable_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        LocalKeyFile::open_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = LocalKeyFile::open_or_create(&path).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn rejects_garbage_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        fs::write(&path, "not json").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(LocalKeyFile::open_or_create(&path).is_err());
    }
}
