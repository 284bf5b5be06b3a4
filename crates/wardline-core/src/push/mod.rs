//! Web Push: telling a browser whose Wardline tab is closed that something
//! is waiting, through the browser's own push service (RFC 8030).
//!
//! What a push carries is the least that lets a notification be shown:
//! `{"v":1,"kind":"stat","message":"<uuid>"}` — the kind (routine, urgent,
//! STAT, waiting for acknowledgement, unanswered) and a message id the app
//! opens after sign-in or the PIN. Never a name, a patient, a conversation
//! title or any text. The payload is encrypted to the browser (RFC 8291,
//! `aes128gcm`), so the push service sees only: the endpoint (which browser
//! subscription), the server's VAPID public key and contact (RFC 8292), the
//! time, the size (always the same for a kind) and the `Urgency` and `Topic`
//! headers (`high` for urgent/STAT; a topic per kind, so that undelivered
//! pushes collapse into one).
//!
//! Pushes are best effort by design: they go through a bounded in-memory
//! queue to [`PushSender`], and one lost at a restart or a full queue is not
//! retried. The inbox is the truth; escalation re-alerts (and its pushes)
//! until someone acknowledges.
//!
//! Who gets one: the devices the news is for (a message's recipients, an
//! escalation's alerted users) that have a subscription, are not retired,
//! have a live session (signed out: nothing) and have no sync socket open on
//! this node (an open app hears at once). The sender's own devices are not
//! told of their own message.

mod sender;
mod vapid;

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;
use wardline_proto::messaging::Priority;
use wardline_proto::{DeviceId, UserId};

pub use sender::PushSender;
pub use vapid::VapidKey;

use crate::config::{PushConfig, ServiceOrigin};
use crate::error::{ApiError, ApiResult};

/// Pushes waiting to be sent, at most; beyond, new ones are dropped (and
/// counted): a push is a hint, the inbox and escalation are the truth.
const QUEUE: usize = 4096;
/// The longest endpoint URL kept (the major services' are under 500 bytes).
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// What a push says happened, and nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// A routine message.
    Message,
    /// An urgent message.
    Urgent,
    /// A STAT message (immediate clinical attention).
    Stat,
    /// An urgent or STAT message is still waiting for acknowledgement
    /// (escalation re-alerted, or brought this person in).
    Waiting,
    /// The sender's urgent or STAT message ran out its ladder unanswered.
    Unanswered,
}

impl PushKind {
    /// The kind for a new message of `priority`.
    pub fn of(priority: Priority) -> PushKind {
        match priority {
            Priority::Routine => PushKind::Message,
            Priority::Urgent => PushKind::Urgent,
            Priority::Stat => PushKind::Stat,
        }
    }

    /// RFC 8030 §5.3: `high` may wake a device on battery at once.
    fn urgency(self) -> &'static str {
        match self {
            PushKind::Message => "normal",
            _ => "high",
        }
    }

    /// RFC 8030 §5.4: a newer push of the same topic replaces one the push
    /// service still holds (at most 32 base64url characters).
    fn topic(self) -> &'static str {
        match self {
            PushKind::Message => "wardline-message",
            PushKind::Urgent => "wardline-urgent",
            PushKind::Stat => "wardline-stat",
            PushKind::Waiting => "wardline-waiting",
            PushKind::Unanswered => "wardline-unanswered",
        }
    }
}

/// Whose devices, of those a push names, get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone's but this user's (a message's author is not told of it).
    AllBut(UserId),
    /// Only this user's (the sender of a ladder that ran out).
    Only(UserId),
}

impl Audience {
    fn includes(self, user: UserId) -> bool {
        match self {
            Audience::AllBut(u) => u != user,
            Audience::Only(u) => u == user,
        }
    }
}

/// The encrypted payload's plaintext.
#[derive(Debug, Serialize)]
struct Payload {
    v: u8,
    kind: PushKind,
    message: Uuid,
}

/// One piece of news for some devices.
#[derive(Debug)]
struct Batch {
    devices: Vec<DeviceId>,
    kind: PushKind,
    message: Uuid,
    to: Audience,
}

/// The services' handle on Web Push: cheap to clone; [`WebPush::off`] when
/// push is disabled.
#[derive(Clone, Default)]
pub struct WebPush {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queue: mpsc::Sender<Batch>,
    /// The VAPID public key, base64url (what a browser subscribes with).
    public_key: String,
    services: Vec<ServiceOrigin>,
}

impl WebPush {
    /// Push disabled: nothing is offered or sent.
    pub fn off() -> WebPush {
        WebPush::default()
    }

    /// The handle and the sender that drains its queue (a worker), unless
    /// `config.enabled` is false.
    pub fn new(
        config: &PushConfig,
        contact: String,
        key: VapidKey,
        store: Arc<dyn wardline_store::MessagingStore>,
        clock: Arc<dyn crate::clock::Clock>,
        hub: crate::hub::DeliveryHub,
    ) -> (WebPush, Option<PushSender>) {
        if !config.enabled {
            return (WebPush::off(), None);
        }
        let services: Vec<ServiceOrigin> = config
            .services
            .iter()
            .filter_map(|s| ServiceOrigin::parse(s).ok())
            .collect();
        let (tx, rx) = mpsc::channel(QUEUE);
        let public_key = key.public_key().to_owned();
        let sender = PushSender::new(
            rx,
            sender::Setup {
                key,
                contact,
                services: services.clone(),
                timeout: std::time::Duration::from_secs(config.timeout_secs),
            },
            store,
            clock,
            hub,
        );
        (
            WebPush {
                inner: Some(Arc::new(Inner {
                    queue: tx,
                    public_key,
                    services,
                })),
            },
            Some(sender),
        )
    }

    /// The VAPID public key browsers subscribe with (base64url, uncompressed
    /// P-256 point), or `None` when push is off.
    pub fn public_key(&self) -> Option<&str> {
        self.inner.as_ref().map(|i| i.public_key.as_str())
    }

    /// Refuses an endpoint that is not an `https` URL of a configured push
    /// service (`push.services`): the server posts to it, so any other
    /// address would let a user aim the server at the hospital's network.
    pub fn check_endpoint(&self, endpoint: &str) -> ApiResult<()> {
        let inner = self
            .inner
            .as_ref()
            .ok_or_else(|| ApiError::conflict("Web Push is turned off on this server"))?;
        if endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(ApiError::validation(format!(
                "endpoint: at most {MAX_ENDPOINT_LEN} bytes"
            )));
        }
        let url = reqwest::Url::parse(endpoint)
            .map_err(|_| ApiError::validation("endpoint: not a URL"))?;
        if allowed(&inner.services, &url) {
            Ok(())
        } else {
            Err(ApiError::validation(
                "endpoint: not a push service this server sends to (push.services)",
            ))
        }
    }

    /// Queues a push about `message` to those of `devices` that can take one
    /// (see the module doc) and belong to `to`. Never waits: when the queue
    /// is full the push is dropped and counted.
    pub fn send(&self, devices: &[DeviceId], kind: PushKind, message: Uuid, to: Audience) {
        let Some(inner) = &self.inner else { return };
        if devices.is_empty() {
            return;
        }
        let batch = Batch {
            devices: devices.to_vec(),
            kind,
            message,
            to,
        };
        if inner.queue.try_send(batch).is_err() {
            metrics::counter!("wardline_push_total", "outcome" => "dropped").increment(1);
        }
    }
}

/// Whether `url` is one of `services` (scheme, host, port; no user info).
fn allowed(services: &[ServiceOrigin], url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    url.username().is_empty()
        && url.password().is_none()
        && services
            .iter()
            .any(|s| s.matches(url.scheme(), host, url.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(list: &[&str]) -> Vec<ServiceOrigin> {
        list.iter()
            .map(|s| ServiceOrigin::parse(s).unwrap())
            .collect()
    }

    #[test]
    fn only_configured_push_services_are_posted_to() {
        let s = services(&[
            "https://fcm.googleapis.com",
            "https://*.notify.windows.com",
            "http://localhost:8090",
        ]);
        let ok = |u: &str| allowed(&s, &reqwest::Url::parse(u).unwrap());
        assert!(ok("https://fcm.googleapis.com/fcm/send/abc"));
        assert!(ok("https://fcm.googleapis.com:443/fcm/send/abc"));
        assert!(ok("https://wns2-par02p.notify.windows.com/w/?token=x"));
        assert!(ok("http://localhost:8090/notify/abc"));
        // Not these: another host, a look-alike, the bare domain for a
        // wildcard, another scheme or port, user info.
        assert!(!ok("https://fcm.googleapis.com.evil.example/x"));
        assert!(!ok("https://evilfcm.googleapis.com/x"));
        assert!(!ok("https://notify.windows.com/x"));
        assert!(!ok("https://xnotify.windows.com/x"));
        assert!(!ok("http://fcm.googleapis.com/x"));
        assert!(!ok("https://fcm.googleapis.com:8443/x"));
        assert!(!ok("http://localhost:8091/notify/abc"));
        assert!(!ok("https://user:pw@fcm.googleapis.com/x"));
        assert!(!ok("http://10.0.0.5/admin"));
    }

    #[test]
    fn an_audience_names_whose_devices_are_pushed_to() {
        let (a, b): (UserId, UserId) = (Uuid::new_v4().into(), Uuid::new_v4().into());
        assert!(!Audience::AllBut(a).includes(a));
        assert!(Audience::AllBut(a).includes(b));
        assert!(Audience::Only(a).includes(a));
        assert!(!Audience::Only(a).includes(b));
    }

    #[test]
    fn service_origins_are_read_strictly() {
        for bad in [
            "fcm.googleapis.com",
            "ftp://x.example",
            "https://",
            "https://a.example/path",
            "https://*.",
            "https://a.*.example",
            "http://push.example.net",
            "https://a.example:99999",
        ] {
            assert!(ServiceOrigin::parse(bad).is_err(), "{bad}");
        }
        assert!(ServiceOrigin::parse("https://web.push.apple.com/").is_ok());
    }
}
