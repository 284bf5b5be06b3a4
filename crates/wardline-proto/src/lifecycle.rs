//! Message lifecycle: retention, lifespans (ephemeral messages), recall, legal
//! hold, deletion receipts, and lost devices (remote wipe).
//!
//! Order of precedence, strongest first:
//! 1. **legal hold** — held messages are deleted by nothing;
//! 2. **retention minimum** (`minimum_days`) — the server keeps its copy at
//!    least this long, even of a recalled or expired ephemeral message (devices
//!    stop receiving it and delete theirs at once);
//! 3. **retention** (`retention`) — the server deletes messages older than this;
//! 4. **lifespans and recall** — an ephemeral message is deleted when its
//!    time-to-live ends, a recalled one at once.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Deleted this many days after they were sent (1 ..= 36500).
    Days(i64),
    /// Never deleted by retention.
    Forever,
}

impl Retention {
    /// Seconds, or `None` for forever.
    pub fn secs(self) -> Option<i64> {
        match self {
            Retention::Days(d) => Some(d * 86_400),
            Retention::Forever => None,
        }
    }
}

/// The organisation's lifecycle policy (see the module's order of precedence).
/// Every field is required on the wire, so that a typo is an error rather than
/// a silently different policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LifecyclePolicy {
    /// Default retention of messages and attachments.
    pub retention: Retention,
    /// The server keeps every message at least this many days (0 ..= 36500),
    /// whatever lifespans and recalls say.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 36500))]
    pub minimum_days: i64,
    /// Default lifespan of every message, in seconds (none: not ephemeral).
    pub message_ttl_secs: Option<i64>,
    /// Longest lifespan a sender may ask for (60 ..= 31536000).
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 31536000))]
    pub max_ttl_secs: i64,
    /// How long after sending the sender may recall a message (0 ..= 604800);
    /// administrators may recall at any time.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 604800))]
    pub recall_window_secs: i64,
}

impl Default for LifecyclePolicy {
    fn default() -> Self {
        LifecyclePolicy {
            retention: Retention::Forever,
            minimum_days: 0,
            message_ttl_secs: None,
            max_ttl_secs: 30 * 86_400,
            recall_window_secs: 15 * 60,
        }
    }
}

/// A conversation's own retention and lifespan; what is left out follows the
/// organisation's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ConversationLifecycle {
    pub retention: Option<Retention>,
    /// Every message here lives at most this long (60 ..= the policy's `max_ttl_secs`).
    pub message_ttl_secs: Option<i64>,
}

/// What applies in one conversation, as the server enforces it and devices
/// should (delete local copies when the server would).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectiveLifecycle {
    pub retention: Retention,
    pub message_ttl_secs: Option<i64>,
}

// ------------------------------------------------------------- preview / run

/// What a deletion run deleted, or a preview would delete, per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletionCounts {
    /// Messages past their conversation's retention.
    pub retention_messages: i64,
    /// Ephemeral messages whose lifespan ended.
    pub expired_messages: i64,
    /// Server copies of recalled messages (kept until then by a minimum).
    pub recalled_messages: i64,
    /// Attachments past retention.
    pub attachments: i64,
    /// Messages that would have gone but are under legal hold.
    pub held_back: i64,
    /// Messages kept for the retention minimum though their lifespan ended
    /// or they were recalled.
    pub kept_for_minimum: i64,
    /// Conversations with something deleted.
    pub conversations: i64,
}

/// A deletion run's receipt, also appended to the audit trail and signed by
/// the installation's audit key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletionReceipt {
    pub id: Uuid,
    pub org_id: Uuid,
    /// `scheduled`, or the user who ran it.
    pub run_by: String,
    pub started_at: i64,
    pub finished_at: i64,
    /// SHA-256 (hex) of the policy's canonical JSON at the time of the run.
    pub policy_sha256: String,
    pub policy: LifecyclePolicy,
    pub deleted: DeletionCounts,
    /// Data keys destroyed (one per message and attachment deleted).
    pub keys_destroyed: i64,
    /// Active legal holds the run respected.
    pub holds_respected: i64,
    /// The audit signing key that signed it (`GET /api/v1/audit/checkpoints`
    /// publishes the public keys).
    pub signing_key_id: String,
    /// Ed25519 signature (base64) over `wardline-deletion-receipt-v1\n` and
    /// the receipt's JSON with this field and `signing_key_id` empty, by the
    /// audit signing key.
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LifecyclePreview {
    /// What running the candidate policy now would delete.
    pub would_delete: DeletionCounts,
    /// What the current policy deletes now, for comparison.
    pub current_policy_deletes: DeletionCounts,
}

// ---------------------------------------------------------------- legal hold

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HoldScope {
    /// Everything the user sent, and every conversation they are a member of.
    User,
    Conversation,
    /// Every conversation tied to this patient reference.
    Patient,
}

impl HoldScope {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldScope::User => "user",
            HoldScope::Conversation => "conversation",
            HoldScope::Patient => "patient",
        }
    }
    pub fn parse(s: &str) -> Option<HoldScope> {
        match s {
            "user" => Some(HoldScope::User),
            "conversation" => Some(HoldScope::Conversation),
            "patient" => Some(HoldScope::Patient),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlaceHoldRequest {
    pub scope: HoldScope,
    /// A user id or conversation id, or the patient reference used on
    /// conversations (stored encrypted).
    pub target: String,
    /// The matter (1–200 characters), e.g. a case name.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub matter: String,
    /// Why (1–2000 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2000))]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseHoldRequest {
    /// Why the hold ends (1–2000 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2000))]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LegalHold {
    pub id: Uuid,
    pub scope: HoldScope,
    pub target: String,
    pub matter: String,
    pub reason: String,
    pub placed_by: Uuid,
    pub placed_at: i64,
    pub released_by: Option<Uuid>,
    pub released_at: Option<i64>,
    pub release_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LegalHoldList {
    pub holds: Vec<LegalHold>,
}

// -------------------------------------------------------------------- recall

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServerCopy {
    Deleted,
    KeptUnderLegalHold,
    KeptForRetentionMinimum,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadBeforeRecall {
    pub user_id: Uuid,
    pub device_id: Uuid,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecallResult {
    pub message_id: Uuid,
    pub recalled_at: i64,
    /// Each recipient device, and whether it had the message (delivered) or
    /// had read it before the recall.
    pub recipients: Vec<ReadBeforeRecall>,
    pub server_copy: ServerCopy,
    /// Devices told to delete their copy.
    pub devices_notified: i64,
}

// ---------------------------------------------------------------- lost devices

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WipeDeviceRequest {
    /// Why (e.g. "phone lost on the bus"; 1–500 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 500))]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WipeStatus {
    /// Ordered; the device has not contacted the server since.
    Pending,
    /// The device erased its store and keys and said so.
    Confirmed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceWipe {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub status: WipeStatus,
    pub requested_by: Uuid,
    pub requested_at: i64,
    pub reason: String,
    /// When the device confirmed (absent while pending).
    pub confirmed_at: Option<i64>,
    /// Sessions ended by the order.
    pub sessions_ended: i64,
    /// Conversations the device is being removed from.
    pub conversations: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceWipeList {
    pub wipes: Vec<DeviceWipe>,
}

/// A device as its administrator sees it (`GET /api/v1/users/{id}/managed-devices`):
/// what it last reported about itself and whether that meets the device
/// policy, its key-package stock, when it last reached the server, and its
/// wipe if it was reported lost. Never its keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManagedDevice {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// What the device last reported (absent: nothing yet).
    pub posture: Option<DevicePosture>,
    /// Why the device does not meet the device policy now (empty: it does).
    pub refusals: Vec<String>,
    /// One-use key packages left (others add it to conversations with them).
    pub key_packages_available: i64,
    /// The last request of any of its sessions (Unix seconds; absent: none).
    pub last_contact_at: Option<i64>,
    /// Its wipe, if it was reported lost (then it is retired).
    pub wipe: Option<DeviceWipe>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManagedDeviceList {
    /// Devices in use first (oldest first), then wiped ones (newest wipe first).
    pub devices: Vec<ManagedDevice>,
}

/// Sent by a wiped device after erasing its store, with its (ended) session token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WipeConfirmation {
    pub erased: bool,
}

// ------------------------------------------------------------- device policy

/// What a device must be and do to hold the organisation's messages. The
/// server enforces what it can see (posture, offline limits it hands out);
/// the client SDK enforces the rest on the device (PIN, local lock, copying,
/// forwarding and attachment types, which the server cannot see inside MLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DevicePolicy {
    /// The local store must be sealed under a PIN or passphrase.
    pub require_local_pin: bool,
    /// Shortest PIN or passphrase (4 ..= 64 characters).
    #[cfg_attr(feature = "openapi", schema(minimum = 4, maximum = 64))]
    pub min_pin_length: i64,
    /// The app locks (asks for the PIN again) after this long unattended
    /// (30 ..= 86400 seconds). The server session's own idle timeout is the
    /// organisation's `idle_timeout_secs`.
    #[cfg_attr(feature = "openapi", schema(minimum = 30, maximum = 86400))]
    pub lock_after_idle_secs: i64,
    /// Days without reaching the server after which the local store will not
    /// open offline (1 ..= 365; none: no limit).
    pub max_offline_days: Option<i64>,
    /// Whether messages may be forwarded to another conversation.
    pub allow_forwarding: bool,
    /// Whether message text may be copied out of the app.
    pub allow_copy: bool,
    /// MIME types that may be attached (`image/*` style wildcards; empty: any).
    pub allowed_attachment_types: Vec<String>,
    /// Refuse devices that report being rooted or jailbroken.
    pub block_compromised: bool,
    /// Refuse devices that have not reported their platform and OS version.
    pub require_posture: bool,
    /// Lowest OS version per platform (`ios`, `android`, `macos`, `windows`,
    /// `linux`), compared number by number (`17.4` < `17.10`).
    pub min_os_versions: std::collections::BTreeMap<String, String>,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        DevicePolicy {
            require_local_pin: true,
            min_pin_length: 6,
            lock_after_idle_secs: 300,
            max_offline_days: Some(14),
            allow_forwarding: true,
            allow_copy: true,
            allowed_attachment_types: Vec::new(),
            block_compromised: true,
            require_posture: false,
            min_os_versions: Default::default(),
        }
    }
}

impl DevicePolicy {
    /// Why a device with this posture may not hold messages (empty: it may).
    pub fn refusals(&self, posture: Option<&DevicePosture>) -> Vec<String> {
        let Some(p) = posture else {
            return if self.require_posture {
                vec!["the device has not reported its platform and OS version".into()]
            } else {
                Vec::new()
            };
        };
        let mut out = Vec::new();
        if self.block_compromised && p.compromised {
            out.push("the device reports being rooted or jailbroken".into());
        }
        if let Some(min) = self.min_os_versions.get(&p.platform.to_lowercase())
            && version_less(&p.os_version, min)
        {
            out.push(format!(
                "{} {} is older than the minimum {min}",
                p.platform, p.os_version
            ));
        }
        out
    }

    /// Whether an attachment of this MIME type may be sent.
    pub fn allows_attachment(&self, mime: &str) -> bool {
        let mime = mime.to_lowercase();
        self.allowed_attachment_types.is_empty()
            || self.allowed_attachment_types.iter().any(|t| {
                let t = t.to_lowercase();
                match t.strip_suffix("/*") {
                    Some(major) => mime.split('/').next() == Some(major),
                    None => t == mime,
                }
            })
    }
}

/// `a < b` comparing dot-separated numbers (missing parts are 0; a part
/// that is not a number compares as 0).
fn version_less(a: &str, b: &str) -> bool {
    let parts = |s: &str| -> Vec<u64> {
        s.trim()
            .split('.')
            .map(|p| p.trim().parse().unwrap_or(0))
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x < y;
        }
    }
    false
}

/// Platform facts a device reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DevicePosture {
    /// `ios`, `android`, `macos`, `windows`, `linux`, … (1–32 characters).
    pub platform: String,
    /// e.g. `17.4.1` (1–32 characters).
    pub os_version: String,
    /// Rooted or jailbroken, as far as the device can tell.
    pub compromised: bool,
}

/// The organisation's device policy and whether the caller's device meets it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceStatus {
    pub policy: DevicePolicy,
    /// What the device last reported (none yet: absent).
    pub posture: Option<DevicePosture>,
    pub allowed: bool,
    /// Why not, when not allowed.
    pub refusals: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_number_by_number() {
        assert!(version_less("17.4", "17.10"));
        assert!(version_less("16", "17.0"));
        assert!(!version_less("17.0", "17"));
        assert!(!version_less("17.0.1", "17"));
        assert!(version_less("garbage", "1"));
    }

    #[test]
    fn attachment_types_with_wildcards() {
        let mut p = DevicePolicy::default();
        assert!(p.allows_attachment("application/x-anything"));
        p.allowed_attachment_types = vec!["image/*".into(), "application/pdf".into()];
        assert!(p.allows_attachment("image/png"));
        assert!(p.allows_attachment("Application/PDF"));
        assert!(!p.allows_attachment("application/zip"));
        assert!(!p.allows_attachment("imagex/png"));
    }

    #[test]
    fn posture_refusals() {
        let mut p = DevicePolicy::default();
        p.min_os_versions.insert("ios".into(), "17.0".into());
        let old = DevicePosture {
            platform: "iOS".into(),
            os_version: "16.7".into(),
            compromised: true,
        };
        assert_eq!(p.refusals(Some(&old)).len(), 2);
        assert!(p.refusals(None).is_empty());
        p.require_posture = true;
        assert_eq!(p.refusals(None).len(), 1);
    }
}
