//! The SMS sender: takes due rows from the outbox and hands them to the gateway.
//!
//! Rows are claimed with a lease (`claim_due_sms`), so several nodes can run
//! senders and a row whose sender died goes out once its lease lapses. A
//! gateway error worth retrying puts the row back with a doubling back-off;
//! `sms.max_attempts` failures, or a refusal, mark it failed. Just before
//! sending, a number that texted STOP since the row was queued cancels it
//! (keyword replies excepted: the STOP confirmation itself must go).
//! Delivery is at least once: a node that dies between the gateway's
//! acceptance and the database update sends that SMS again.

use std::sync::Arc;
use std::time::Duration;

use wardline_proto::audit::{AuditAction, Outcome};
use wardline_proto::patients::{SmsKind, SmsStatus};

use super::gateway::{GatewayError, OutboundSms, SmsGateway};
use super::{PatientService, open};
use crate::audit::NewEvent;
use crate::error::ApiResult;
use crate::worker::{Shutdown, Worker};
use wardline_store::patients::SmsRow;

const LEASE_SECS: i64 = 60;
const BATCH: i64 = 20;
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Back-off before attempt `attempts + 1`: 30 s doubling, at most an hour.
pub fn backoff_secs(attempts: i64) -> i64 {
    (30i64 << (attempts - 1).clamp(0, 7)).min(3600)
}

pub struct Sender {
    patients: PatientService,
    gateway: Arc<dyn SmsGateway>,
    max_attempts: i64,
}

impl Sender {
    pub fn new(patients: PatientService, gateway: Arc<dyn SmsGateway>, max_attempts: i64) -> Self {
        Sender {
            patients,
            gateway,
            max_attempts,
        }
    }

    /// Sends what is due now; returns how many rows it handled.
    pub async fn run_once(&self) -> ApiResult<usize> {
        let now = self.patients.clock.now();
        let due = self
            .patients
            .store
            .claim_due_sms(now, LEASE_SECS, BATCH)
            .await?;
        for row in &due {
            if let Err(e) = self.deliver(row).await {
                // Stays leased; another pass retries it when the lease lapses.
                tracing::warn!(sms = %row.id, error = %e.message, "sms sender: could not finish an SMS");
            }
        }
        Ok(due.len())
    }

    async fn deliver(&self, row: &SmsRow) -> ApiResult<()> {
        let p = &self.patients;
        let now = p.clock.now();
        let event = |outcome: Outcome, reason: &str| {
            let mut e = NewEvent::service("sms", AuditAction::SmsSend)
                .target("sms", row.id)
                .reason(reason);
            e.org_id = Some(row.org_id);
            e.patient_id = row.patient_id.map(|id| id.to_string());
            e.outcome = outcome;
            e
        };
        if row.kind != SmsKind::KeywordReply
            && p.store.is_opted_out(row.org_id, &row.phone_index).await?
        {
            p.store
                .sms_finished(row.id, SmsStatus::Cancelled, "the number opted out", now)
                .await?;
            p.audit.record(event(Outcome::Failure, "opted_out")).await?;
            return Ok(());
        }
        let key = p.vault.record_key(&row.dek_id).await?;
        let to = open(&key, "sms_outbox", row.id, "to", &row.to_enc)?;
        let mut body = open(&key, "sms_outbox", row.id, "body", &row.body_enc)?;
        if let Some(sealed) = &row.fragment_enc {
            let fragment =
                zeroize::Zeroizing::new(open(&key, "sms_outbox", row.id, "fragment", sealed)?);
            body = with_fragment(&body, &p.setup.public_url, &fragment);
        }
        let body = zeroize::Zeroizing::new(body);
        let callback = format!("{}/sms/status/{}", p.setup.public_url, row.org_id);
        let result = self
            .gateway
            .send(&OutboundSms {
                id: row.id,
                from: &row.from_number,
                to: &to,
                body: &body,
                status_callback: &callback,
            })
            .await;
        let now = p.clock.now();
        match result {
            Ok(provider_id) => {
                p.store.sms_sent(row.id, &provider_id, now).await?;
                p.audit
                    .record(event(Outcome::Success, row.kind.as_str()))
                    .await?;
            }
            Err(GatewayError::Transient(e)) if row.attempts < self.max_attempts => {
                p.store
                    .sms_retry(row.id, now + backoff_secs(row.attempts), &e, now)
                    .await?;
                p.audit.record(event(Outcome::Failure, "retry")).await?;
            }
            Err(GatewayError::Transient(e) | GatewayError::Permanent(e)) => {
                p.store
                    .sms_finished(row.id, SmsStatus::Failed, &e, now)
                    .await?;
                p.audit.record(event(Outcome::Failure, "failed")).await?;
            }
        }
        Ok(())
    }
}

/// The notice with `#<fragment>` right after its link (`<public_url>/p/<token>`).
pub fn with_fragment(body: &str, public_url: &str, fragment: &str) -> String {
    let prefix = format!("{public_url}/p/");
    match body.find(&prefix) {
        Some(at) => {
            // The token is base64url (ASCII), so its end is a character boundary.
            let start = at + prefix.len();
            let token_len = body[start..]
                .bytes()
                .take(43)
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                .count();
            let end = start + token_len;
            format!("{}#{fragment}{}", &body[..end], &body[end..])
        }
        // A notice template without a link cannot carry the key: send it as is;
        // the patient's page will say the message cannot be opened.
        None => body.to_owned(),
    }
}

/// The outbox loop: sends what is due, then waits for a new SMS (or polls).
#[async_trait::async_trait]
impl Worker for Sender {
    fn name(&self) -> &'static str {
        "sms-outbox"
    }

    async fn run(self: Box<Self>, mut shutdown: Shutdown) {
        while !shutdown.is_set() {
            let sent = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e.message, "sms sender: outbox unavailable");
                    0
                }
            };
            if sent == 0 {
                tokio::select! {
                    _ = self.patients.outbox.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.wait() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff_secs, with_fragment};

    #[test]
    fn the_fragment_follows_the_link() {
        let token = "A".repeat(43);
        let body = format!("Open https://h:1/p/{token} to read it (expires).");
        assert_eq!(
            with_fragment(&body, "https://h:1", "k=xyz"),
            format!("Open https://h:1/p/{token}#k=xyz to read it (expires).")
        );
        assert_eq!(with_fragment("no link", "https://h:1", "k=xyz"), "no link");
        // Found by the fuzzer: text right after a link prefix, not a token.
        assert_eq!(
            with_fragment("x https://h:1/p/é!", "https://h:1", "k=1"),
            "x https://h:1/p/#k=1é!"
        );
    }

    #[test]
    fn backoff_doubles_to_an_hour() {
        assert_eq!(backoff_secs(1), 30);
        assert_eq!(backoff_secs(2), 60);
        assert_eq!(backoff_secs(5), 480);
        assert_eq!(backoff_secs(12), 3600);
    }
}
