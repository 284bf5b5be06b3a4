//! Devices, conversations and message delivery.
//!
//! The server is the MLS delivery service: message bodies ([`B64`] fields named
//! `mls`) are MLS messages it cannot read. What it can see is the metadata it
//! needs to route and order them: conversation, sender device, epoch, priority,
//! and receipts.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::b64::B64;

// ---------------------------------------------------------------- devices

/// Registers the caller's device (the one its session is bound to) for
/// messaging: its Ed25519 identity key, which is also the signature key of its
/// MLS credential, and a first batch of key packages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterDeviceRequest {
    /// Shown to the user's other devices ("Ward 3 iPad"), 1–64 characters.
    pub name: String,
    /// Ed25519 public key (32 bytes).
    pub identity_key: B64,
    /// One-use key packages, each signed by `identity_key`.
    pub key_packages: Vec<B64>,
    /// A reusable key package handed out when the one-use ones run out.
    pub last_resort: B64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadKeyPackagesRequest {
    pub key_packages: Vec<B64>,
    /// Replaces the device's last-resort key package.
    #[serde(default)]
    pub last_resort: Option<B64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub identity_key: B64,
    pub created_at: i64,
    /// One-use key packages left; the device should upload more when low.
    pub key_packages_available: i64,
    pub has_last_resort: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceList {
    pub devices: Vec<Device>,
}

/// A key package handed out so that a device can be added to a conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedKeyPackage {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub key_package: B64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimKeyPackagesRequest {
    /// Devices waiting to be added to the conversation (state `pending_add`).
    pub device_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedKeyPackages {
    pub key_packages: Vec<ClaimedKeyPackage>,
}

// ---------------------------------------------------------- conversations

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Two people; at most one per pair.
    Direct,
    Group,
}

impl ConversationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
        }
    }
    pub fn parse(s: &str) -> Option<ConversationKind> {
        match s {
            "direct" => Some(ConversationKind::Direct),
            "group" => Some(ConversationKind::Group),
            _ => None,
        }
    }
}

/// The kinds of conversation an organisation's read-receipt policy can name.
/// A conversation with a patient context is a clinical thread, whatever its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationClass {
    Direct,
    Group,
    Clinical,
}

/// Messaging policy of an organisation (part of its policy document).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct MessagingPolicy {
    /// Classes of conversation where read receipts are always shown, whatever
    /// a user's own preference. Clinical threads by default.
    pub mandatory_read_receipts: Vec<ConversationClass>,
    /// Largest attachment (encrypted bytes) a device may upload.
    #[cfg_attr(feature = "openapi", schema(minimum = 1024, maximum = 104857600))]
    pub max_attachment_bytes: i64,
    /// Most members a group conversation may have.
    #[cfg_attr(feature = "openapi", schema(minimum = 2, maximum = 5000))]
    pub max_group_members: i64,
    /// How far back (days, 0–90; 0: nothing) the members' devices share a
    /// conversation's messages again with a newcomer: a member's first or
    /// new device, or someone who joins through a care team, a department
    /// or break-glass. MLS gives a newcomer nothing from before it joined.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 90))]
    pub history_days: i64,
}

impl Default for MessagingPolicy {
    fn default() -> Self {
        MessagingPolicy {
            mandatory_read_receipts: vec![ConversationClass::Clinical],
            max_attachment_bytes: 25 * 1024 * 1024,
            max_group_members: 1000,
            history_days: 14,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateConversationRequest {
    pub kind: ConversationKind,
    /// Group title (1–200 characters); none for direct conversations.
    #[serde(default)]
    pub title: Option<String>,
    /// The other members (not the caller). Exactly one for `direct`.
    pub members: Vec<Uuid>,
    /// Makes this a clinical thread about a patient (an identifier in the
    /// organisation's records; stored encrypted, shown to members only).
    #[serde(default)]
    pub patient_ref: Option<String>,
    /// With a patient: the care team whose members may open it (others only
    /// by break-glass).
    #[serde(default)]
    pub care_team_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Should be in the MLS group; any member's client adds it (with a claimed
    /// key package) and sends it a Welcome.
    PendingAdd,
    /// In the MLS group; receives the conversation's messages.
    Member,
    /// Its user left or was removed, or the device was retired: receives
    /// nothing more, and the next commit must remove it from the group.
    PendingRemove,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::PendingAdd => "pending_add",
            DeviceState::Member => "member",
            DeviceState::PendingRemove => "pending_remove",
        }
    }
    pub fn parse(s: &str) -> Option<DeviceState> {
        match s {
            "pending_add" => Some(DeviceState::PendingAdd),
            "member" => Some(DeviceState::Member),
            "pending_remove" => Some(DeviceState::PendingRemove),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationDevice {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub state: DeviceState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    pub id: Uuid,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub patient_ref: Option<String>,
    pub created_by: Uuid,
    pub created_at: i64,
    /// The MLS epoch the server expects the next commit or message in.
    pub epoch: i64,
    /// Current members (users).
    pub members: Vec<Uuid>,
    /// Every device that is, should be, or should stop being in the group.
    pub devices: Vec<ConversationDevice>,
    /// Read receipts are shown here whatever a member's preference.
    pub read_receipts_mandatory: bool,
    pub last_activity_at: i64,
    /// Retention and lifespan of messages here (devices delete their copies
    /// by it too).
    pub lifecycle: crate::lifecycle::EffectiveLifecycle,
    /// The conversation's own settings behind `lifecycle` (what
    /// `PUT /api/v1/conversations/{id}/lifecycle` replaces).
    #[serde(default)]
    pub lifecycle_own: crate::lifecycle::ConversationLifecycle,
    /// The clinical role this conversation was opened to page.
    #[serde(default)]
    pub role_id: Option<Uuid>,
    /// Patient threads: the care team whose members may join.
    #[serde(default)]
    pub care_team_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddMemberRequest {
    pub user_id: Uuid,
}

// --------------------------------------------------------------- messages

// Ordered by urgency, `Routine < Urgent < Stat` (what sends first, what
// a list shows as the most pressing); a plain comment, not part of the API document.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Routine,
    Urgent,
    /// Immediate clinical attention.
    Stat,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Routine => "routine",
            Priority::Urgent => "urgent",
            Priority::Stat => "stat",
        }
    }
    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "routine" => Some(Priority::Routine),
            "urgent" => Some(Priority::Urgent),
            "stat" => Some(Priority::Stat),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An MLS commit: moves the group to the next epoch.
    Commit,
    /// An MLS application message (the content clinicians exchange).
    Application,
    /// An MLS Welcome for devices a commit added.
    Welcome,
    /// From the server: the conversation's membership changed; fetch it and
    /// bring the MLS group in line (no body).
    Membership,
    /// From the server: the message `recalls` names was recalled; delete it
    /// and show that it was (no body).
    Recall,
    /// From the server: an urgent or STAT message is waiting for
    /// acknowledgement (`alert` says which and why; no body).
    Alert,
    /// From the server: `history` joined the conversation (care team or
    /// break-glass) and cannot decrypt what came before; each member device
    /// shares its own recent messages again (no body).
    History,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Commit => "commit",
            MessageKind::Application => "application",
            MessageKind::Welcome => "welcome",
            MessageKind::Membership => "membership",
            MessageKind::Recall => "recall",
            MessageKind::Alert => "alert",
            MessageKind::History => "history",
        }
    }
    pub fn parse(s: &str) -> Option<MessageKind> {
        match s {
            "commit" => Some(MessageKind::Commit),
            "application" => Some(MessageKind::Application),
            "welcome" => Some(MessageKind::Welcome),
            "membership" => Some(MessageKind::Membership),
            "recall" => Some(MessageKind::Recall),
            "alert" => Some(MessageKind::Alert),
            "history" => Some(MessageKind::History),
            _ => None,
        }
    }
}

/// A commit or application message for a conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitMessageRequest {
    /// Chosen by the client; resubmitting the same id and bytes is answered
    /// with the first acceptance (safe retry), never stored twice.
    pub message_id: Uuid,
    /// `commit` or `application`.
    pub kind: MessageKind,
    /// The MLS message (TLS-serialized `MLSMessage`).
    pub mls: B64,
    #[serde(default)]
    pub priority: Priority,
    /// For a commit that adds devices: the Welcome for them.
    #[serde(default)]
    pub welcome: Option<B64>,
    /// Devices this commit adds (must be `pending_add`).
    #[serde(default)]
    pub added_devices: Vec<Uuid>,
    /// Devices this commit removes (must be `pending_remove`).
    #[serde(default)]
    pub removed_devices: Vec<Uuid>,
    /// Application messages: delete it everywhere this many seconds after it
    /// is sent (60 ..= the policy's `max_ttl_secs`); the conversation's
    /// lifespan applies if shorter.
    #[serde(default)]
    pub ttl_secs: Option<i64>,
    /// This application message is the sender's own earlier message, shared
    /// again for members an escalation brought in after it (they cannot
    /// decrypt the original). Not a new message for routing or escalation.
    #[serde(default)]
    pub shared_again: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitMessageResponse {
    pub message_id: Uuid,
    /// The conversation's epoch after this message.
    pub epoch: i64,
    pub created_at: i64,
    /// True when this was a retry of a message already accepted.
    pub duplicate: bool,
    /// When the message will be deleted everywhere (ephemeral), if it will.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// Confirms that the device has stored every inbox entry up to `up_to`; marks
/// them delivered (delivery receipts).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckRequest {
    pub up_to: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckResponse {
    pub acked: i64,
}

/// Marks messages read on this device: a read receipt means the person was
/// shown the message. Give exactly one of the two.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadRequest {
    /// Exactly these messages, each displayed to the person (1–500).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<Uuid>,
    /// A watermark ("read up to here", as when a conversation is opened at
    /// its end): routine messages up to and including this one. Urgent and
    /// STAT messages are never marked by a watermark: they need their id in
    /// `message_ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_message_id: Option<Uuid>,
}

/// Most messages one read request names.
pub const MAX_READ_IDS: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadResponse {
    /// Messages newly marked read.
    pub marked: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub user_id: Uuid,
    pub device_id: Uuid,
    pub delivered_at: Option<i64>,
    /// Hidden (null) when the reader does not share read receipts and the
    /// conversation's policy does not make them mandatory.
    pub read_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageReceipts {
    pub message_id: Uuid,
    pub priority: Priority,
    pub receipts: Vec<Receipt>,
    /// Members (other than the sender) none of whose devices has the
    /// message, and why.
    #[serde(default)]
    pub not_received: Vec<NotReceived>,
}

/// A member who has not received a message on any device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotReceived {
    pub user_id: Uuid,
    pub reason: NotReceivedReason,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotReceivedReason {
    /// The member has registered no device yet; their first device is
    /// given the recent history (`messaging.history_days`) when it joins.
    NoDevice,
    /// The member's devices joined after the message; the sender's devices
    /// share it again with them (within `messaging.history_days`).
    JoinedLater,
}

/// Web Push for the caller's device: the server's VAPID key to subscribe
/// with, and whether the device has a subscription.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushSettings {
    /// The server's VAPID public key (RFC 8292): an uncompressed P-256
    /// point, base64url without padding — the browser's
    /// `applicationServerKey`. Absent when push is turned off here.
    pub vapid_public_key: Option<String>,
    /// Whether this device has a push subscription.
    pub subscribed: bool,
}

/// The browser's push subscription for this device, as
/// `PushSubscription.toJSON()` gives it (RFC 8030 endpoint, RFC 8291 keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushSubscriptionRequest {
    /// The push service's URL for this subscription; one of the push
    /// services the server is configured to send to, at most 2,048 bytes.
    pub endpoint: String,
    pub keys: PushSubscriptionKeys,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushSubscriptionKeys {
    /// The browser's P-256 public key, uncompressed (65 bytes), base64url.
    pub p256dh: String,
    /// The authentication secret (16 bytes), base64url.
    pub auth: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagingPreferences {
    /// Whether others see when this user has read their messages (where the
    /// organisation's policy leaves it to the user).
    pub share_read_receipts: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentUploaded {
    pub attachment_id: Uuid,
    pub size: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for p in [Priority::Routine, Priority::Urgent, Priority::Stat] {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
        for k in [
            MessageKind::Commit,
            MessageKind::Application,
            MessageKind::Welcome,
            MessageKind::Membership,
        ] {
            assert_eq!(MessageKind::parse(k.as_str()), Some(k));
        }
        for s in [
            DeviceState::PendingAdd,
            DeviceState::Member,
            DeviceState::PendingRemove,
        ] {
            assert_eq!(DeviceState::parse(s.as_str()), Some(s));
        }
    }
}
