//! TLS certificates. An operator's own certificate (`tls.cert` / `tls.key`) is
//! used as given; otherwise a self-signed development certificate for
//! `localhost` and `127.0.0.1` is generated on first start into
//! `data_dir/tls/` and reused afterwards, so clients can pin it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use wardline_core::config::Config;

pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// True when the certificate is the generated development one.
    pub self_signed: bool,
}

pub fn dev_cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("cert.pem")
}

pub fn ensure_certificate(cfg: &Config) -> std::io::Result<CertPaths> {
    if let (Some(cert), Some(key)) = (&cfg.tls.cert, &cfg.tls.key) {
        return Ok(CertPaths {
            cert: cert.clone(),
            key: key.clone(),
            self_signed: false,
        });
    }
    let cert = dev_cert_path(&cfg.data_dir);
    let key = cfg.data_dir.join("tls").join("key.pem");
    if !(cert.exists() && key.exists()) {
        // The directory holds the private key: only the server's user lists it.
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(cert.parent().expect("has parent"))?;
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        if !cfg.listen.ip().is_unspecified() && !names.contains(&cfg.listen.ip().to_string()) {
            names.push(cfg.listen.ip().to_string());
        }
        let generated = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
        let mut kf = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)?;
        kf.write_all(generated.signing_key.serialize_pem().as_bytes())?;
        kf.sync_all()?;
        fs::write(&cert, generated.cert.pem())?;
        tracing::info!(cert = %cert.display(), "generated a self-signed development TLS certificate");
    }
    Ok(CertPaths {
        cert,
        key,
        self_signed: true,
    })
}
