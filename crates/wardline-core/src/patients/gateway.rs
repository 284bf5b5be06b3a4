//! SMS gateways: where an outbound SMS goes, and how webhooks from the
//! provider are authenticated.
//!
//! * [`FileGateway`] (the embedded default) appends each SMS as one JSON line
//!   to a 0600 file in the data directory, so a demo needs no account. The file
//!   holds what the SMS holds (a number and a notice with its link): it is as
//!   sensitive as the phone's inbox and lives beside the database.
//! * [`HttpGateway`] speaks the common REST provider shape: `POST
//!   {api}/2010-04-01/Accounts/{sid}/Messages.json`, HTTP Basic with the
//!   account SID and token, form-encoded `To`, `From`, `Body`,
//!   `StatusCallback`; the answer's `sid` names the message in later status
//!   callbacks.
//!
//! Webhooks (inbound SMS, status callbacks) carry the provider's signature:
//! base64 HMAC-SHA1, under the auth token, of the full URL followed by every
//! POST parameter's name and value sorted by name ([`webhook_signature`]).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use uuid::Uuid;

/// One SMS to hand over.
pub struct OutboundSms<'a> {
    pub id: Uuid,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    /// Where the provider should report delivery status.
    pub status_callback: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Worth retrying later (network, 5xx, 429).
    #[error("temporary: {0}")]
    Transient(String),
    /// The provider refused this SMS (bad number, account problem).
    #[error("refused: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait SmsGateway: Send + Sync {
    /// Hands the SMS over; returns the provider's id for it.
    async fn send(&self, sms: &OutboundSms<'_>) -> Result<String, GatewayError>;
}

/// Appends each SMS to a local file (JSON Lines).
pub struct FileGateway {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl FileGateway {
    pub fn new(path: PathBuf) -> FileGateway {
        FileGateway {
            path,
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl SmsGateway for FileGateway {
    async fn send(&self, sms: &OutboundSms<'_>) -> Result<String, GatewayError> {
        let provider_id = format!("file-{}", sms.id.simple());
        let line = serde_json::json!({
            "id": provider_id,
            "at": crate::clock::unix_now(),
            "from": sms.from,
            "to": sms.to,
            "body": sms.body,
        })
        .to_string();
        let _one_writer = self.lock.lock().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?;
            writeln!(f, "{line}")?;
            f.sync_data()
        })
        .await
        .map_err(|e| GatewayError::Transient(e.to_string()))?
        .map_err(|e| GatewayError::Transient(format!("sms file: {e}")))?;
        Ok(provider_id)
    }
}

/// A REST SMS provider (`Accounts/{sid}/Messages.json`).
pub struct HttpGateway {
    http: reqwest::Client,
    messages_url: String,
    account_sid: String,
    auth_token: String,
}

impl HttpGateway {
    pub fn new(api_url: &str, account_sid: &str, auth_token: &str) -> HttpGateway {
        HttpGateway {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("HTTP client builds"),
            messages_url: format!(
                "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                api_url.trim_end_matches('/')
            ),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
        }
    }
}

#[async_trait]
impl SmsGateway for HttpGateway {
    async fn send(&self, sms: &OutboundSms<'_>) -> Result<String, GatewayError> {
        let form = serde_urlencoded::to_string([
            ("To", sms.to),
            ("From", sms.from),
            ("Body", sms.body),
            ("StatusCallback", sms.status_callback),
        ])
        .map_err(|e| GatewayError::Permanent(e.to_string()))?;
        let resp = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            // The error names the URL at most, never the body.
            .map_err(|e| GatewayError::Transient(e.without_url().to_string()))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return body["sid"]
                .as_str()
                .filter(|s| !s.is_empty() && s.len() <= 64)
                .map(str::to_owned)
                .ok_or_else(|| GatewayError::Transient("provider answered without a sid".into()));
        }
        // The provider's own error code and message (they never echo the body).
        let detail = format!(
            "HTTP {} {} {}",
            status.as_u16(),
            body["code"],
            body["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>()
        );
        if status.is_server_error() || status.as_u16() == 429 {
            Err(GatewayError::Transient(detail))
        } else {
            Err(GatewayError::Permanent(detail))
        }
    }
}

/// HMAC-SHA1 over the URL and the sorted parameters, the provider's scheme.
fn webhook_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// The provider's webhook signature of a form POST to `url`.
pub fn webhook_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(webhook_mac(auth_token, url, params).finalize().into_bytes())
}

/// Checks a webhook's signature in constant time.
pub fn verify_webhook(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    webhook_mac(auth_token, url, params)
        .verify_slice(&given)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of the provider's published scheme.
    #[test]
    fn signature_matches_the_providers_published_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = webhook_signature("12345", url, &params);
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_webhook("12345", url, &params, &sig));
        assert!(!verify_webhook("12345", url, &params[1..], &sig));
        assert!(!verify_webhook("54321", url, &params, &sig));
        assert!(!verify_webhook("12345", url, &params, "not base64!"));
    }
}
