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
    pub matter: String,
    /// Why (1–2000 characters).
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseHoldRequest {
    /// Why the hold ends (1–2000 characters).
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

/// Sent by a wiped device after erasing its store, with its (ended) session token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WipeConfirmation {
    pub erased: bool,
}
