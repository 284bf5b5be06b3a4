//! SIEM export: every audit entry, in order, to RFC 5424 syslog over TCP or
//! TLS (RFC 5425, octet-counted frames) and/or to a JSON Lines file.
//!
//! At-least-once: each sink has a cursor in the database (the last sequence
//! number it accepted). For the file the cursor moves once the batch is
//! fsynced. Syslog has no acknowledgement, and a write to a peer that has just
//! died still succeeds into the kernel's buffer; so a syslog batch is only
//! *confirmed* (cursor moved) when a later check finds the same connection
//! still open. A connection found closed is reopened and everything after the
//! cursor is sent again. A SIEM therefore sees every entry at least once and
//! deduplicates by `seq`. The remaining gap — a peer that accepted bytes,
//! stayed connected and then lost them — needs an acknowledging protocol
//! (RELP).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wardline_proto::audit::{AuditEvent, Outcome};

use super::record;
use crate::clock::Clock;
use crate::config::{AuditConfig, SyslogTarget};
use crate::worker::{Shutdown, Worker};
use wardline_store::{AuditStore, StoreError};

const BATCH: i64 = 500;
/// IANA's example enterprise number (RFC 5612); the SD-ID names our fields.
const SD_ID: &str = "wardline@32473";

/// `PARAM-VALUE` escaping (RFC 5424 §6.3.3).
fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "-".to_owned())
}

/// One RFC 5424 message: facility 13 (log audit), severity informational
/// for successes and warning otherwise; structured data with the fields a
/// SIEM rule keys on, and the whole event as JSON in MSG — as MSG-ANY (no
/// byte-order mark: what receivers parse as JSON, real-world case 16 of issue
/// 19) unless `bom` asks for MSG-UTF8.
pub fn format_rfc5424(e: &AuditEvent, host: &str, bom: bool) -> String {
    let severity = if e.outcome == Outcome::Success { 6 } else { 4 };
    let pri = 13 * 8 + severity;
    let ts = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned());
    let outcome = match e.outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Denied => "denied",
    };
    let mut sd = format!(
        "[{SD_ID} seq=\"{}\" action=\"{}\" outcome=\"{outcome}\"",
        e.seq, e.action
    );
    for (k, v) in [
        ("org", e.org_id.map(|u| u.to_string())),
        ("actor", e.actor_id.clone()),
        ("device", e.device_id.map(|u| u.to_string())),
        ("ip", e.source_ip.clone()),
        ("target_type", e.target_type.clone()),
        ("target", e.target_id.clone()),
        ("patient", e.patient_id.clone()),
    ] {
        if let Some(v) = v {
            sd.push_str(&format!(" {k}=\"{}\"", sd_escape(&v)));
        }
    }
    sd.push(']');
    let json = serde_json::to_string(e).expect("an audit event serialises");
    format!(
        "<{pri}>1 {ts} {host} wardline {} {} {sd} {}{json}",
        std::process::id(),
        e.action,
        if bom { "\u{feff}" } else { "" }
    )
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Conn {
    fn io(&mut self) -> &mut dyn Io {
        match self {
            Conn::Tcp(s) => s,
            Conn::Tls(s) => s.as_mut(),
        }
    }

    /// False if the peer closed or reset the connection. A syslog receiver
    /// never sends application data, so anything readable is either the end
    /// of the stream or TLS housekeeping (session tickets), which is drained.
    async fn is_open(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_millis(20), self.io().read(&mut buf)).await {
                Err(_) => return true,
                Ok(Ok(0)) | Ok(Err(_)) => return false,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

enum Sink {
    Syslog {
        target: SyslogTarget,
        tls: Option<tokio_rustls::TlsConnector>,
        conn: Option<Conn>,
        host: String,
        /// A byte-order mark before the JSON (`audit.syslog_bom`).
        bom: bool,
        /// Last seq written on `conn` but not yet confirmed.
        unconfirmed: Option<i64>,
    },
    Jsonl {
        path: PathBuf,
    },
}

impl Sink {
    fn name(&self) -> String {
        match self {
            Sink::Syslog { target, .. } => target.name(),
            Sink::Jsonl { path } => format!("jsonl:{}", path.display()),
        }
    }

    /// The seq up to which delivery is certain, and where to continue
    /// reading from: for syslog, confirms what the open connection carried, or
    /// forgets it if the connection is gone.
    async fn settle(&mut self, cursor: i64) -> (Option<i64>, i64) {
        match self {
            Sink::Syslog {
                conn, unconfirmed, ..
            } => {
                let open = match conn.as_mut() {
                    Some(c) => c.is_open().await,
                    None => false,
                };
                if !open {
                    *conn = None;
                    *unconfirmed = None;
                    return (None, cursor);
                }
                match unconfirmed.take() {
                    Some(seq) => (Some(seq), seq),
                    None => (None, cursor),
                }
            }
            Sink::Jsonl { .. } => (None, cursor),
        }
    }

    /// Sends `events` (ending at `last`); returns the seq now certain, if any.
    async fn send(&mut self, events: &[AuditEvent], last: i64) -> std::io::Result<Option<i64>> {
        match self {
            Sink::Syslog {
                target,
                tls,
                conn,
                host,
                bom,
                unconfirmed,
            } => {
                if conn.is_none() {
                    *conn = Some(connect(target, tls.as_ref()).await?);
                }
                let mut frames = Vec::new();
                for e in events {
                    let msg = format_rfc5424(e, host, *bom);
                    frames.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
                }
                let w = conn.as_mut().expect("connected above").io();
                let result = async {
                    w.write_all(&frames).await?;
                    w.flush().await
                }
                .await;
                match result {
                    Ok(()) => {
                        *unconfirmed = Some(last);
                        Ok(None)
                    }
                    Err(e) => {
                        *conn = None;
                        Err(e)
                    }
                }
            }
            Sink::Jsonl { path } => {
                let mut lines = Vec::new();
                for e in events {
                    serde_json::to_writer(&mut lines, e)?;
                    lines.push(b'\n');
                }
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&*path)
                    .await?;
                f.write_all(&lines).await?;
                f.sync_data().await?;
                Ok(Some(last))
            }
        }
    }
}

async fn connect(
    target: &SyslogTarget,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> std::io::Result<Conn> {
    match target {
        SyslogTarget::Tcp { host, port } => {
            Ok(Conn::Tcp(TcpStream::connect((host.as_str(), *port)).await?))
        }
        SyslogTarget::Tls { host, port } => {
            let tcp = TcpStream::connect((host.as_str(), *port)).await?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let connector = tls.expect("TLS target has a connector");
            Ok(Conn::Tls(Box::new(connector.connect(name, tcp).await?)))
        }
    }
}

fn tls_connector(ca_file: Option<&PathBuf>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("audit.syslog_ca_file {}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("audit.syslog_ca_file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("audit.syslog_ca_file: {e}"))?;
            }
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            rustls::ClientConfig::builder()
                .with_platform_verifier()
                .map_err(|e| format!("system trust store: {e}"))?
                .with_no_client_auth()
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Checks the SIEM settings (URL, CA file) without connecting.
pub fn check(cfg: &AuditConfig) -> Result<(), String> {
    if let Some(url) = &cfg.syslog_url
        && let SyslogTarget::Tls { .. } = SyslogTarget::parse(url)?
    {
        tls_connector(cfg.syslog_ca_file.as_ref())?;
    }
    Ok(())
}

/// The configured sinks, as one worker. Returns `Ok(None)` when no sink is
/// configured.
pub fn worker(
    cfg: &AuditConfig,
    store: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
) -> Result<Option<Box<dyn Worker>>, String> {
    let mut sinks = Vec::new();
    if let Some(url) = &cfg.syslog_url {
        let target = SyslogTarget::parse(url)?;
        let tls = match target {
            SyslogTarget::Tls { .. } => Some(tls_connector(cfg.syslog_ca_file.as_ref())?),
            SyslogTarget::Tcp { .. } => None,
        };
        sinks.push(Sink::Syslog {
            target,
            tls,
            conn: None,
            host: hostname(),
            bom: cfg.syslog_bom,
            unconfirmed: None,
        });
    }
    if let Some(path) = &cfg.jsonl_path {
        sinks.push(Sink::Jsonl { path: path.clone() });
    }
    if sinks.is_empty() {
        return Ok(None);
    }
    Ok(Some(Box::new(Export {
        sinks,
        store,
        clock,
    })))
}

/// SIEM export: one task per sink, each resending from its cursor.
struct Export {
    sinks: Vec<Sink>,
    store: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl Worker for Export {
    fn name(&self) -> &'static str {
        "siem-export"
    }

    async fn run(self: Box<Self>, mut shutdown: Shutdown) {
        let mut tasks = tokio::task::JoinSet::new();
        for sink in self.sinks {
            tasks.spawn(run_sink(sink, self.store.clone(), self.clock.clone()));
        }
        // A sink stopped mid-send resends from its cursor at the next start
        // (the receiver sees a duplicate at worst, never a gap); dropping the
        // JoinSet aborts them all.
        shutdown.wait().await;
    }
}

async fn run_sink(mut sink: Sink, store: Arc<dyn AuditStore>, clock: Arc<dyn Clock>) {
    let name = sink.name();
    let mut backoff = Duration::from_millis(500);
    loop {
        match pump(&mut sink, &name, store.as_ref(), clock.as_ref()).await {
            Ok(0) => {
                backoff = Duration::from_millis(500);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(_) => backoff = Duration::from_millis(500),
            Err(e) => {
                metrics::counter!("wardline_audit_export_failures_total", "sink" => name.clone())
                    .increment(1);
                tracing::warn!(sink = %name, error = %e, retry_in_ms = backoff.as_millis() as u64, "audit export failed; will resend from the cursor");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PumpError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Sends one batch after the sink's cursor; returns how many were sent.
async fn pump(
    sink: &mut Sink,
    name: &str,
    store: &dyn AuditStore,
    clock: &dyn Clock,
) -> Result<usize, PumpError> {
    let cursor = store.audit_export_cursor(name).await?;
    let (confirmed, after) = sink.settle(cursor).await;
    if let Some(seq) = confirmed {
        store
            .set_audit_export_cursor(name, seq, clock.now_ms())
            .await?;
    }
    let rows = store.audit_entries(after, BATCH).await?;
    let Some(last) = rows.last().map(|r| r.seq) else {
        return Ok(0);
    };
    let events: Vec<AuditEvent> = rows
        .iter()
        .filter_map(|r| match record::decode_for_wire(r) {
            Ok(e) => Some(e),
            Err(e) => {
                // Exported anyway would be worse: `wardline audit verify` reports it.
                tracing::error!(seq = r.seq, error = %e, "audit entry unreadable; not exported");
                None
            }
        })
        .collect();
    if let Some(seq) = sink.send(&events, last).await? {
        store
            .set_audit_export_cursor(name, seq, clock.now_ms())
            .await?;
    }
    metrics::counter!("wardline_audit_exported_total", "sink" => name.to_owned())
        .increment(events.len() as u64);
    Ok(events.len().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardline_proto::audit::{ActorKind, AuditAction};

    #[test]
    fn syslog_urls_parse_and_bad_ones_are_explained() {
        assert_eq!(
            SyslogTarget::parse("tcp://127.0.0.1:6514").unwrap(),
            SyslogTarget::Tcp {
                host: "127.0.0.1".into(),
                port: 6514
            }
        );
        assert!(matches!(
            SyslogTarget::parse("tls://siem.example:6514").unwrap(),
            SyslogTarget::Tls { .. }
        ));
        for bad in ["udp://x:1", "tcp://x", "tcp://:1", "x"] {
            assert!(SyslogTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc5424_message_has_header_structured_data_and_json() {
        let e = AuditEvent {
            seq: 42,
            at_ms: 1_700_000_000_123,
            org_id: None,
            actor_kind: ActorKind::User,
            actor_id: Some("u\"1]".into()),
            device_id: None,
            source_ip: Some("10.0.0.1".into()),
            user_agent: None,
            action: AuditAction::Login,
            target_type: None,
            target_id: None,
            patient_id: None,
            outcome: Outcome::Denied,
            reason: Some("forbidden".into()),
            changes: vec![wardline_proto::audit::FieldChange {
                field: "roles".into(),
                before: Some("[\"nurse\"]".into()),
                after: None,
            }],
            leaf_hash: None,
        };
        let with_bom = format_rfc5424(&e, "host1", true);
        let json = with_bom.split('\u{feff}').nth(1).unwrap();
        assert_eq!(serde_json::from_str::<AuditEvent>(json).unwrap(), e);
        let m = format_rfc5424(&e, "host1", false);
        assert!(!m.contains('\u{feff}'), "MSG-ANY by default: no BOM");
        assert!(
            m.starts_with("<108>1 2023-11-14T22:13:20.123Z host1 wardline "),
            "{m}"
        );
        assert!(m.contains(r#"[wardline@32473 seq="42" action="auth.login" outcome="denied" actor="u\"1\]" ip="10.0.0.1"]"#), "{m}");
        let json = &m[m.find("] {").unwrap() + 2..];
        let back: AuditEvent = serde_json::from_str(json).unwrap();
        assert_eq!(back, e);
    }
}
