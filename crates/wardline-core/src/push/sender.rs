//! The worker that sends queued pushes: finds each device's live
//! subscription, encrypts the payload to it (RFC 8291) and posts it to the
//! push service with VAPID (RFC 8292), `TTL`, `Urgency` and `Topic` (RFC 8030).
//! A subscription the service says is gone (404, 410) is forgotten.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use wardline_store::MessagingStore;
use wardline_store::messaging::PushSubscriptionRow;
use web_push_native::p256::PublicKey;

use super::{Batch, Payload, VapidKey, allowed};
use crate::clock::Clock;
use crate::config::ServiceOrigin;
use crate::hub::DeliveryHub;
use crate::worker::{Shutdown, Worker};

/// Pushes in flight at once.
const CONCURRENCY: usize = 16;
/// How long a push service keeps an undelivered push (RFC 8030 §5.2): an
/// hour; escalation alerts again long before that.
const TTL_SECS: u64 = 3600;
/// A VAPID token's life (RFC 8292 allows up to 24 h).
const TOKEN_SECS: i64 = 12 * 3600;

pub(super) struct Setup {
    pub key: VapidKey,
    pub contact: String,
    pub services: Vec<ServiceOrigin>,
    pub timeout: Duration,
}

pub struct PushSender {
    rx: mpsc::Receiver<Batch>,
    shared: Arc<Shared>,
}

struct Shared {
    setup: Setup,
    store: Arc<dyn MessagingStore>,
    clock: Arc<dyn Clock>,
    hub: DeliveryHub,
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
}

impl PushSender {
    pub(super) fn new(
        rx: mpsc::Receiver<Batch>,
        setup: Setup,
        store: Arc<dyn MessagingStore>,
        clock: Arc<dyn Clock>,
        hub: DeliveryHub,
    ) -> PushSender {
        let http = reqwest::Client::builder()
            .timeout(setup.timeout)
            // The endpoint was checked against `push.services`; a redirect
            // would take the post somewhere that was not.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client builds");
        PushSender {
            rx,
            shared: Arc::new(Shared {
                setup,
                store,
                clock,
                hub,
                http,
                in_flight: Arc::new(Semaphore::new(CONCURRENCY)),
            }),
        }
    }
}

#[async_trait]
impl Worker for PushSender {
    fn name(&self) -> &'static str {
        "web-push"
    }

    async fn run(mut self: Box<Self>, mut shutdown: Shutdown) {
        let mut sends = JoinSet::new();
        loop {
            tokio::select! {
                batch = self.rx.recv() => match batch {
                    Some(b) => self.shared.clone().spread(b, &mut sends).await,
                    None => break,
                },
                Some(_) = sends.join_next(), if !sends.is_empty() => {}
                _ = shutdown.wait() => break,
            }
        }
        // Pushes under way finish (bounded by the client's timeout, then by
        // the workers' grace); queued ones are dropped, as at a crash.
        while sends.join_next().await.is_some() {}
    }
}

impl Shared {
    /// Starts a send for each device of the batch that is to get one.
    async fn spread(self: Arc<Self>, b: Batch, sends: &mut JoinSet<()>) {
        let now = self.clock.now();
        for device in b.devices {
            if self.hub.has_socket(device) {
                continue;
            }
            let sub = match self.store.live_push_subscription(device, now).await {
                Ok(Some(s)) if b.to.includes(s.user_id) => s,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "web push: subscription lookup failed");
                    continue;
                }
            };
            let permit = self
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let this = self.clone();
            let payload = Payload {
                v: 1,
                kind: b.kind,
                message: b.message,
            };
            sends.spawn(async move {
                let outcome = this.send(&sub, &payload).await;
                metrics::counter!("wardline_push_total", "outcome" => outcome).increment(1);
                drop(permit);
            });
        }
    }

    /// Sends one push; the outcome for the metric. Logs never name the
    /// endpoint (a capability) or the payload.
    async fn send(&self, sub: &PushSubscriptionRow, payload: &Payload) -> &'static str {
        let Ok(url) = reqwest::Url::parse(&sub.endpoint) else {
            return "refused";
        };
        // `push.services` may have shrunk since the browser subscribed.
        if !allowed(&self.setup.services, &url) {
            return "refused";
        }
        let (Ok(ua_public), Ok(auth)) = (
            PublicKey::from_sec1_bytes(&sub.p256dh),
            <[u8; 16]>::try_from(sub.auth.as_slice()),
        ) else {
            return "refused";
        };
        let body = serde_json::to_vec(payload).expect("payload serialises");
        let Ok(body) = web_push_native::encrypt(body, &ua_public, &auth.into()) else {
            return "refused";
        };
        let audience = url.origin().ascii_serialization();
        let authorization = self.setup.key.authorization(
            &audience,
            &self.setup.contact,
            self.clock.now() + TOKEN_SECS,
        );
        let res = self
            .http
            .post(url)
            .header("TTL", TTL_SECS)
            .header("Urgency", payload.kind.urgency())
            .header("Topic", payload.kind.topic())
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authorization)
            .body(body)
            .send()
            .await;
        match res.map(|r| r.status().as_u16()) {
            Ok(200..=202) => "sent",
            Ok(404 | 410) => {
                // RFC 8030 §7.3: the subscription is gone; stop using it.
                if let Err(e) = self.store.delete_push_subscription(sub.device_id).await {
                    tracing::warn!(error = %e, "web push: forgetting an expired subscription failed");
                }
                "expired"
            }
            Ok(status) => {
                tracing::warn!(status, "web push: the push service refused a push");
                "failed"
            }
            Err(e) => {
                tracing::warn!(
                    timeout = e.is_timeout(),
                    "web push: push service unreachable"
                );
                "failed"
            }
        }
    }
}
