//! Server configuration: one TOML file plus `WARDLINE_*` environment overrides
//! (nested keys with `__`, e.g. `WARDLINE_AUTH__IDLE_TIMEOUT_SECS=600`).
//! Every option has a safe default; the README's configuration section lists
//! them all and must be kept in step with this file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The shortest audit retention Wardline accepts (configuration, the purge,
/// the database trigger and the verifier agree on it). HIPAA expects six
/// years of documentation; a year is the floor for any deployment.
pub const MIN_RETENTION_DAYS: u32 = 365;

/// Default cap on the open sync sockets of one device on a node (a phone
/// reconnecting while its old socket times out, a few tabs); finding L6 of
/// 2026-11-30: one session opened 2,000, each polling the database.
/// `limits.max_sockets_per_device`.
pub const MAX_SOCKETS_PER_DEVICE: usize = 4;
/// Default cap on one user's open sync sockets on a node, over all their
/// devices. `limits.max_sockets_per_user`.
pub const MAX_SOCKETS_PER_USER: usize = 16;

/// Where audit events go by syslog (`audit.syslog_url`): RFC 5424 over TCP
/// or over TLS (RFC 5425).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    Tcp { host: String, port: u16 },
    Tls { host: String, port: u16 },
}

impl SyslogTarget {
    pub fn parse(url: &str) -> Result<SyslogTarget, String> {
        let bad = || format!("audit.syslog_url {url:?} must be tcp://host:port or tls://host:port");
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad());
        }
        match scheme {
            "tcp" => Ok(SyslogTarget::Tcp { host, port }),
            "tls" => Ok(SyslogTarget::Tls { host, port }),
            _ => Err(bad()),
        }
    }

    /// The sink's name in logs, metrics and the export cursor table.
    pub fn name(&self) -> String {
        match self {
            SyslogTarget::Tcp { host, port } => format!("syslog:tcp://{host}:{port}"),
            SyslogTarget::Tls { host, port } => format!("syslog:tls://{host}:{port}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database, the key file and the development certificate live.
    pub data_dir: PathBuf,
    /// Address to listen on. Loopback by default: exposing the server is a decision.
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; empty means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Empty: the TCP peer
    /// is the client. Behind a proxy, list it, or every client shares its
    /// address and the per-address sign-in back-off hits them all.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Bearer token that lets another host read `/metrics`. Unset: only
    /// loopback clients (the TCP peer, or the forwarded client behind a
    /// trusted proxy) may; the counts name routes and portal activity.
    pub metrics_token: Option<String>,
    pub tls: TlsConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub audit: AuditConfig,
    pub sms: SmsConfig,
    pub push: PushConfig,
}

/// Web Push (RFC 8030) to browsers whose tab is closed: a content-free
/// "New STAT message" through the browser's push service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Off: browsers are not offered push and nothing is sent.
    pub enabled: bool,
    /// The VAPID `sub` claim (RFC 8292): how a push service reaches the
    /// operator, `mailto:` or `https:`. Unset: the server's public URL.
    pub contact: Option<String>,
    /// Push services the server will send to, as origins (`https://host`,
    /// `https://*.host` for any subdomain). A browser names its own endpoint,
    /// so without this list a signed-in user could make the server post to
    /// any address it can reach. The default covers Chrome/Edge (FCM),
    /// Firefox, Windows and Safari.
    pub services: Vec<String>,
    /// Seconds to wait for a push service's answer.
    pub timeout_secs: u64,
}

/// A push service the server may send to: scheme, host (or `*.` and a
/// domain for any subdomain of it) and port, as in `push.services`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOrigin {
    scheme: String,
    /// Lower case; with `any_subdomain`, the domain under which any host matches.
    host: String,
    any_subdomain: bool,
    port: Option<u16>,
}

impl ServiceOrigin {
    /// Reads `https://host`, `https://*.domain` or `http://host:port` (plain
    /// HTTP is for a push service on this machine, as in tests).
    pub fn parse(s: &str) -> Result<ServiceOrigin, String> {
        let bad = || format!("push.services: {s:?} is not an origin like https://push.example.net");
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        if scheme != "https" && scheme != "http" {
            return Err(bad());
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
            None => (rest, None),
        };
        let (any_subdomain, host) = match host.strip_prefix("*.") {
            Some(h) => (true, h),
            None => (false, host),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad());
        }
        if scheme == "http" && !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return Err(format!(
                "push.services: {s:?}: plain http only for a push service on this machine"
            ));
        }
        Ok(ServiceOrigin {
            scheme: scheme.into(),
            host: host.to_ascii_lowercase(),
            any_subdomain,
            port,
        })
    }

    /// Whether a URL's scheme, host and port (`None`: the scheme's default)
    /// are this origin's.
    pub fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        let host_ok = if self.any_subdomain {
            host.strip_suffix(&self.host)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
        } else {
            host == self.host
        };
        scheme == self.scheme && host_ok && port == self.port
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            contact: None,
            services: vec![
                "https://fcm.googleapis.com".into(),
                "https://updates.push.services.mozilla.com".into(),
                "https://*.notify.windows.com".into(),
                "https://web.push.apple.com".into(),
            ],
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`. Unset: a self-signed development
    /// certificate is generated in `data_dir/tls/` on first start.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Serve plain HTTP. Only allowed on a loopback address (behind a TLS proxy).
    pub insecure_http: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info` or `wardline_server=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// Defaults for new organisations; each organisation can change its own policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub idle_timeout_secs: i64,
    pub absolute_lifetime_secs: i64,
    pub mfa_required: bool,
    /// Failed logins per account and source address before back-off starts.
    pub lockout_free_attempts: i64,
    /// Back-off never exceeds this, so a lockout can delay but never bar a user.
    pub lockout_max_secs: i64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            idle_timeout_secs: 15 * 60,
            absolute_lifetime_secs: 12 * 3600,
            mfa_required: true,
            lockout_free_attempts: 5,
            lockout_max_secs: 15 * 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Open connections in all; past this, new ones are closed at once
    /// (keep it below the process's file limit).
    pub max_connections: usize,
    /// Open connections from one client address (loopback and
    /// `trusted_proxies` are exempt: everyone behind them shares the address).
    pub max_connections_per_address: usize,
    /// Seconds a client has to send a whole request head (HTTP/1), also the
    /// longest idle wait between requests on a kept-alive connection, and
    /// the time to a first request after the TLS handshake.
    pub header_read_timeout_secs: u64,
    /// Slowest accepted request body, in bytes per second over the whole
    /// body, once `header_read_timeout_secs` have passed.
    pub body_min_bytes_per_sec: u64,
    /// Open sync WebSockets one device may hold on a node…
    pub max_sockets_per_device: usize,
    /// …and one user, over all their devices.
    pub max_sockets_per_user: usize,
    /// Requests per second one address may make without signing in
    /// (sign-in, patient pages, webhooks, refused calls), sustained…
    pub anonymous_per_sec: u32,
    /// …and in a burst.
    pub anonymous_burst: u32,
    /// Below this much free space (MiB) for the data directory, anonymous
    /// requests are refused before they write anything. 0: no floor.
    pub min_free_disk_mib: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 64 * 1024,
            max_connections: 16_384,
            max_connections_per_address: 256,
            header_read_timeout_secs: 20,
            body_min_bytes_per_sec: 1024,
            max_sockets_per_device: MAX_SOCKETS_PER_DEVICE,
            max_sockets_per_user: MAX_SOCKETS_PER_USER,
            anonymous_per_sec: 20,
            anonymous_burst: 200,
            min_free_disk_mib: 512,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Sign a checkpoint after this many new entries…
    pub checkpoint_every: u64,
    /// …or after this many seconds with new entries, whichever comes first.
    pub checkpoint_interval_secs: u64,
    /// Entries older than this are purged (signed checkpoints are kept).
    /// HIPAA asks for six years of documentation; the default is six years.
    pub retention_days: u32,
    /// SIEM export: RFC 5424 syslog over TCP (`tcp://host:port`) or TLS
    /// (`tls://host:port`, RFC 5425). Unset: no syslog export.
    pub syslog_url: Option<String>,
    /// PEM CA certificates to trust for `tls://` (default: the system roots).
    pub syslog_ca_file: Option<PathBuf>,
    /// Put a UTF-8 byte-order mark before the JSON (RFC 5424's MSG-UTF8).
    /// Off by default (MSG-ANY): rsyslog's `%msg%`, `mmjsonparse` and most
    /// SIEM parsers keep the BOM as text and then fail to parse the JSON.
    pub syslog_bom: bool,
    /// SIEM export to a JSON Lines file (one event per line, appended).
    pub jsonl_path: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1000,
            checkpoint_interval_secs: 60,
            retention_days: 6 * 365 + 2,
            syslog_url: None,
            syslog_ca_file: None,
            syslog_bom: false,
            jsonl_path: None,
        }
    }
}

/// Patient texting: which SMS gateway, the sender number, and the address
/// patients reach the server at (secure links, webhooks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// `file` (default: each SMS is appended to `file_path`, no account
    /// needed) or `http` (a REST SMS provider with the common
    /// `Accounts/{sid}/Messages.json` shape).
    pub gateway: SmsGatewayKind,
    /// Sender number (E.164), unless the organisation's policy names its own.
    pub from: String,
    /// Base URL of this server as patients and the provider reach it; secure
    /// links are `<public_url>/p/<token>`. Unset: `https://<listen>`.
    pub public_url: Option<String>,
    /// The file gateway's log. Unset: `<data_dir>/sms-outbox.log`.
    pub file_path: Option<PathBuf>,
    /// The provider's API base URL (`http` gateway).
    pub api_url: String,
    pub account_sid: String,
    /// The provider's auth token: authenticates sends and validates the
    /// signature (`X-Twilio-Signature`) of inbound and status webhooks. Without
    /// it, webhooks are refused.
    pub auth_token: Option<String>,
    /// Sending attempts before an SMS is marked failed (back-off doubles from 30 s).
    pub max_attempts: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsGatewayKind {
    File,
    Http,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            gateway: SmsGatewayKind::File,
            from: "+15550100000".into(),
            public_url: None,
            file_path: None,
            api_url: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token: None,
            max_attempts: 6,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("wardline-data"),
            listen: "127.0.0.1:8443".parse().expect("valid default address"),
            database_url: None,
            trusted_proxies: Vec::new(),
            metrics_token: None,
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            audit: AuditConfig::default(),
            sms: SmsConfig::default(),
            push: PushConfig::default(),
        }
    }
}

/// Top-level keys; other `WARDLINE_*` variables (the CLI's, the tests') are not
/// server configuration and are ignored rather than rejected.
const KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "database_url",
    "tls",
    "log",
    "auth",
    "limits",
    "audit",
    "sms",
    "push",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the TOML file (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(
            Env::prefixed("WARDLINE_")
                .split("__")
                // The filter sees the split key (`AUTH.IDLE_TIMEOUT_SECS`) before lowercasing.
                .filter(|k| {
                    let k = k.as_str().to_ascii_lowercase();
                    KEYS.iter()
                        .any(|known| k == *known || k.starts_with(&format!("{known}.")))
                }),
        );
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.insecure_http && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "tls.insecure_http is only allowed on a loopback address, not {}",
                self.listen
            )));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key must be given together".into(),
            ));
        }
        if !(60..=86_400).contains(&self.auth.idle_timeout_secs) {
            return Err(ConfigError::Invalid(
                "auth.idle_timeout_secs must be between 60 and 86400".into(),
            ));
        }
        if !(300..=604_800).contains(&self.auth.absolute_lifetime_secs) {
            return Err(ConfigError::Invalid(
                "auth.absolute_lifetime_secs must be between 300 and 604800".into(),
            ));
        }
        if self.auth.lockout_free_attempts < 1 || self.auth.lockout_max_secs < 1 {
            return Err(ConfigError::Invalid(
                "auth.lockout_* must be positive".into(),
            ));
        }
        if self.audit.checkpoint_every == 0 || self.audit.checkpoint_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "audit.checkpoint_every and audit.checkpoint_interval_secs must be positive".into(),
            ));
        }
        if self.audit.retention_days < MIN_RETENTION_DAYS {
            return Err(ConfigError::Invalid(
                "audit.retention_days must be at least 365 (HIPAA expects six years)".into(),
            ));
        }
        if let Some(url) = &self.audit.syslog_url {
            SyslogTarget::parse(url).map_err(ConfigError::Invalid)?;
        }
        if self.sms.gateway == SmsGatewayKind::Http
            && (self.sms.account_sid.is_empty() || self.sms.auth_token.is_none())
        {
            return Err(ConfigError::Invalid(
                "sms.gateway = \"http\" needs sms.account_sid and sms.auth_token".into(),
            ));
        }
        if !(1..=20).contains(&self.sms.max_attempts) {
            return Err(ConfigError::Invalid(
                "sms.max_attempts must be between 1 and 20".into(),
            ));
        }
        if let Some(url) = &self.sms.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid(
                "sms.public_url must be an http(s) URL".into(),
            ));
        }
        if self.limits.max_connections == 0
            || self.limits.max_connections_per_address == 0
            || self.limits.header_read_timeout_secs == 0
            || self.limits.body_min_bytes_per_sec == 0
            || self.limits.max_sockets_per_device == 0
            || self.limits.max_sockets_per_user == 0
            || self.limits.anonymous_per_sec == 0
            || self.limits.anonymous_burst == 0
        {
            return Err(ConfigError::Invalid(
                "limits.max_connections, max_connections_per_address, header_read_timeout_secs and body_min_bytes_per_sec must be above 0".into(),
            ));
        }
        if let Some(c) = &self.push.contact
            && !(c.starts_with("mailto:") || c.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(
                "push.contact must be a mailto: or https: URI (RFC 8292)".into(),
            ));
        }
        for s in &self.push.services {
            ServiceOrigin::parse(s).map_err(ConfigError::Invalid)?;
        }
        if !(1..=60).contains(&self.push.timeout_secs) {
            return Err(ConfigError::Invalid(
                "push.timeout_secs must be between 1 and 60".into(),
            ));
        }
        if self.limits.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "limits.max_body_bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }

    /// The configured database, else the embedded SQLite file
    /// `<data_dir>/wardline.db` (the same URL as `SqlStore::sqlite_url`, which
    /// a test holds to).
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("wardline.db").display()
            ),
        }
    }

    /// Where patients and the SMS provider reach this server.
    pub fn public_url(&self) -> String {
        match &self.sms.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.tls.insecure_http {
                    "http"
                } else {
                    "https"
                };
                format!("{scheme}://{}", self.listen)
            }
        }
    }

    pub fn sms_file_path(&self) -> PathBuf {
        self.sms
            .file_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("sms-outbox.log"))
    }

    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("keys").join("kek.json")
    }
}

#[cfg(test)]
// figment's Jail API fixes the closure's error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_default_database_is_the_embedded_sqlite_file() {
        let c = Config {
            data_dir: "/var/lib/wardline".into(),
            ..Config::default()
        };
        assert_eq!(
            c.database_url(),
            wardline_store_sql::SqlStore::sqlite_url(std::path::Path::new("/var/lib/wardline"))
        );
    }

    #[test]
    fn defaults_are_safe() {
        let c = Config::default();
        assert!(c.listen.ip().is_loopback());
        assert!(!c.tls.insecure_http);
        assert!(c.auth.mfa_required);
        assert_eq!(c.auth.idle_timeout_secs, 900);
        assert_eq!(c.auth.absolute_lifetime_secs, 43_200);
        c.validate().unwrap();
    }

    #[test]
    fn file_then_env_override() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "w.toml",
                "listen = \"127.0.0.1:9000\"\n[auth]\nidle_timeout_secs = 600\n",
            )?;
            jail.set_env("WARDLINE_AUTH__IDLE_TIMEOUT_SECS", "300");
            jail.set_env("WARDLINE_TEST_POSTGRES_URL", "ignored");
            let c = Config::load(Some(Path::new("w.toml"))).unwrap();
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.auth.idle_timeout_secs, 300);
            Ok(())
        });
    }

    #[test]
    fn rejects_unknown_keys_and_public_plain_http() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "lisen = \"127.0.0.1:9000\"\n")?;
            assert!(Config::load(Some(Path::new("typo.toml"))).is_err());
            jail.create_file(
                "open.toml",
                "listen = \"0.0.0.0:80\"\n[tls]\ninsecure_http = true\n",
            )?;
            let err = Config::load(Some(Path::new("open.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("loopback"), "{err}");
            Ok(())
        });
    }
}
