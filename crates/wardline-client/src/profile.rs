//! The client profile: one JSON file, mode 0600, holding the session token.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroize;

use crate::ClientError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Base URL, e.g. `https://127.0.0.1:8443`.
    pub server: String,
    /// Extra CA certificate (PEM) to trust, e.g. the server's development certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    pub org: String,
    pub email: String,
    /// This installation's device id; generated once and kept.
    pub device_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The server's mark that this device signed in to the account before
    /// (`IssuedSession::remembered_device`), sent with later sign-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(t) = self.token.as_mut() {
            t.zeroize();
        }
        if let Some(t) = self.device_token.as_mut() {
            t.zeroize();
        }
    }
}

impl Profile {
    /// `$WARDLINE_PROFILE`, else `$XDG_CONFIG_HOME/wardline/profile.json`, else
    /// `~/.config/wardline/profile.json`.
    pub fn default_path() -> PathBuf {
        if let Ok(p) = std::env::var("WARDLINE_PROFILE") {
            return PathBuf::from(p);
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("wardline").join("profile.json")
    }

    pub fn load(path: &Path) -> Result<Option<Profile>, ClientError> {
        match fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ClientError::Profile(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClientError::Profile(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes atomically with mode 0600 (the file holds a bearer token).
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let text = zeroize::Zeroizing::new(
            serde_json::to_string_pretty(self).expect("profile serialises"),
        );
        write_private(path, text.as_bytes())
            .map_err(|e| ClientError::Profile(format!("{}: {e}", path.display())))
    }
}

/// Replaces `path` atomically (temporary file, fsync, rename) with a file only
/// its owner can read: profiles, the encrypted local store, and whatever else a
/// client writes that others must not read (audit exports, verifier state).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/profile.json");
        let p = Profile {
            server: "https://127.0.0.1:8443".into(),
            ca_cert: None,
            org: "demo".into(),
            email: "a@b.test".into(),
            device_id: Uuid::new_v4(),
            token: Some("wls_x".into()),
            device_token: None,
        };
        p.save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = Profile::load(&path).unwrap().unwrap();
        assert_eq!(back.token.as_deref(), Some("wls_x"));
        assert_eq!(back.device_id, p.device_id);
        assert!(
            Profile::load(&dir.path().join("missing.json"))
                .unwrap()
                .is_none()
        );
    }
}
