//! Storage of devices, conversations and each device's inbox.
//!
//! The server is the MLS delivery service: bodies are MLS messages it cannot
//! read. What this store guarantees is order and delivery: exactly one commit
//! per epoch ([`MessagingStore::submit`] compares and swaps the epoch in the
//! same transaction that stores and fans out the message), a gap-free inbox per
//! device with a cursor that only the device moves, and receipts per device.

use async_trait::async_trait;
use uuid::Uuid;
use wardline_proto::lifecycle::ConversationLifecycle;
use wardline_proto::messaging::{ConversationKind, DeviceState, MessageKind, Priority};
use wardline_proto::{DeviceId, OrgId, UserId};

use super::{DataKeyRow, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: DeviceId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub name: String,
    pub identity_key: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// Last inbox position handed out.
    pub inbox_seq: i64,
    /// Last inbox position the device acknowledged.
    pub acked_seq: i64,
    /// What the device last reported about itself (device policy).
    pub posture: Option<wardline_proto::lifecycle::DevicePosture>,
}

/// A device's Web Push subscription (RFC 8030): where its browser's push
/// service takes messages for it, and the keys a payload is encrypted to
/// (RFC 8291). One per device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionRow {
    pub device_id: DeviceId,
    pub org_id: OrgId,
    pub user_id: UserId,
    /// The push service's URL for this subscription (a capability: kept out of logs).
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed SEC1 (65 bytes).
    pub p256dh: Vec<u8>,
    /// The authentication secret (16 bytes).
    pub auth: Vec<u8>,
    pub created_at: i64,
}

/// A device with its key-package stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStock {
    pub device: DeviceRow,
    pub available: i64,
    pub has_last_resort: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub kind: ConversationKind,
    pub dek_id: String,
    pub title_enc: Option<Vec<u8>>,
    pub patient_ref_enc: Option<Vec<u8>>,
    /// Direct conversations: `<smaller user id>:<larger user id>` (unique).
    pub direct_key: Option<String>,
    pub created_by: UserId,
    pub created_at: i64,
    pub epoch: i64,
    pub last_activity_at: i64,
    /// The conversation's own retention and lifespan.
    pub lifecycle: ConversationLifecycle,
    /// Blind index of the patient reference (legal holds on a patient).
    pub patient_ref_bidx: Option<String>,
    /// Opened by a page to this clinical role.
    pub role_id: Option<Uuid>,
    /// Who the latest page resolved to, and how (`ResolvedVia`).
    pub routed_user: Option<UserId>,
    pub routed_via: Option<String>,
    /// Patient threads: the care team whose members may join.
    pub care_team_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationDeviceRow {
    pub device_id: DeviceId,
    pub user_id: UserId,
    pub state: DeviceState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub kind: MessageKind,
    pub sender_user: Option<UserId>,
    pub sender_device: Option<DeviceId>,
    pub epoch: i64,
    pub priority: Priority,
    /// Sealed under `dek_id` (rows from before sealing: the MLS bytes).
    pub body: Option<Vec<u8>>,
    /// SHA-256 of the MLS bytes.
    pub body_hash: Option<Vec<u8>>,
    pub created_at: i64,
    /// The body's own data key; deleting it shreds the body.
    pub dek_id: Option<String>,
    /// Ephemeral: gone everywhere after this.
    pub expires_at: Option<i64>,
    pub recalled_at: Option<i64>,
    /// Recall notices: the message recalled.
    pub recalls: Option<Uuid>,
    /// Server notices' payload as JSON (ids and fixed text, no content): an
    /// alert's `AlertNotice`, a history request's `HistoryNotice`.
    pub alert: Option<String>,
    /// A copy shared again for members who joined after it: the original
    /// message (the submitter's own, in the same conversation).
    pub shared_again: Option<Uuid>,
    /// A copy's original's `created_at` (seconds): the time recipients show.
    pub original_created_at: Option<i64>,
}

impl MessageRow {
    /// A server notice that the conversation's membership changed.
    pub fn membership_notice(conversation: Uuid, epoch: i64, actor: UserId, now: i64) -> Self {
        Self::notice(MessageKind::Membership, conversation, epoch, actor, now)
    }

    /// A server entry without a body (membership, recall, alert notices):
    /// set `recalls`, `alert` or `priority` on it as its kind needs.
    pub fn notice(
        kind: MessageKind,
        conversation: Uuid,
        epoch: i64,
        actor: UserId,
        now: i64,
    ) -> Self {
        MessageRow {
            id: Uuid::new_v4(),
            conversation_id: conversation,
            kind,
            sender_user: Some(actor),
            sender_device: None,
            epoch,
            priority: Priority::Routine,
            body: None,
            body_hash: None,
            created_at: now,
            dek_id: None,
            expires_at: None,
            recalled_at: None,
            recalls: None,
            alert: None,
            shared_again: None,
            original_created_at: None,
        }
    }
}

/// An inbox entry with its message and the data key its body is sealed under.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub seq: i64,
    pub message: MessageRow,
    pub key: Option<DataKeyRow>,
}

/// A commit or application message to store, fan out and order.
#[derive(Debug, Clone)]
pub struct Submission {
    pub message: MessageRow,
    /// The Welcome of a commit that adds devices (delivered to them only).
    pub welcome: Option<MessageRow>,
    pub added: Vec<DeviceId>,
    pub removed: Vec<DeviceId>,
    /// The data keys the message's and Welcome's bodies are sealed under,
    /// stored in the same transaction (so a refused submission leaves none).
    pub keys: Vec<DataKeyRow>,
    /// Urgent, STAT and role-addressed messages: the routing record and
    /// escalation job, stored with the message (so no accepted STAT lacks one).
    pub routed: Option<super::routing::RoutedRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Stored and in the recipients' inboxes; the conversation is now at `epoch`.
    Accepted {
        epoch: i64,
        recipients: Vec<DeviceId>,
    },
    /// The same message id and bytes were accepted before (a client retry).
    Duplicate {
        epoch: i64,
        created_at: i64,
        expires_at: Option<i64>,
    },
    /// The conversation has moved on: process the inbox and try again.
    StaleEpoch { current: i64 },
    /// These bytes were accepted before under another id: a replay.
    Replayed,
    /// The message id is taken by a different message.
    IdTaken,
    /// The sender's device is not a member of the group (anymore).
    NotMember,
    /// A commit named devices that are not waiting for that change.
    WrongDevices(&'static str),
    /// Devices must be removed first (an application message is refused
    /// while a removed member's device is still in the group).
    PendingRemovals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRow {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    pub shares_read_receipts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub uploader_device: DeviceId,
    /// Sealed under `dek_id`.
    pub data: Vec<u8>,
    pub created_at: i64,
    pub dek_id: Option<String>,
}

/// Devices that a store change put something in front of: the service wakes
/// their open connections.
pub type Woken = Vec<DeviceId>;

/// Which messages a read receipt covers.
#[derive(Debug, Clone, Copy)]
pub enum ReadMark<'a> {
    /// Exactly these, each shown to the person.
    Shown(&'a [Uuid]),
    /// Routine messages up to and including this one (never urgent or STAT:
    /// a watermark does not prove they were seen).
    UpTo(Uuid),
}

#[async_trait]
pub trait MessagingStore: Send + Sync + 'static {
    // Devices and key packages.
    /// Registers a device with its first key packages (`(bytes, last_resort)`)
    /// and makes it `pending_add` in every conversation of its user.
    async fn insert_device(
        &self,
        device: &DeviceRow,
        key_packages: &[(Vec<u8>, bool)],
    ) -> Result<Woken>;
    async fn get_device(&self, org: OrgId, id: DeviceId) -> Result<DeviceRow>;
    async fn list_user_devices(&self, org: OrgId, user: UserId) -> Result<Vec<DeviceStock>>;
    /// Adds one-use key packages; a last-resort one replaces the previous.
    async fn add_key_packages(
        &self,
        device: DeviceId,
        kps: &[(Vec<u8>, bool)],
        now: i64,
    ) -> Result<()>;
    /// Records what the device reports about itself.
    async fn set_posture(
        &self,
        device: DeviceId,
        posture: &wardline_proto::lifecycle::DevicePosture,
        now: i64,
    ) -> Result<()>;
    /// Hands out (and deletes) a one-use key package, or else the last-resort one.
    async fn claim_key_package(&self, device: DeviceId) -> Result<Option<Vec<u8>>>;

    // Web Push.
    /// Keeps the device's push subscription, replacing the one it had.
    async fn put_push_subscription(&self, s: &PushSubscriptionRow) -> Result<()>;
    /// Forgets the device's push subscription; false if it had none.
    async fn delete_push_subscription(&self, device: DeviceId) -> Result<bool>;
    /// The device's subscription if it is to be pushed to at `now`: the
    /// device is not retired and one of its sessions is neither revoked nor
    /// past its absolute expiry (a signed-out browser gets nothing).
    async fn live_push_subscription(
        &self,
        device: DeviceId,
        now: i64,
    ) -> Result<Option<PushSubscriptionRow>>;

    // Conversations.
    /// Fails with `Conflict("direct conversation")` if the pair already has one.
    async fn create_conversation(
        &self,
        c: &ConversationRow,
        members: &[UserId],
        devices: &[ConversationDeviceRow],
    ) -> Result<()>;
    async fn get_conversation(&self, org: OrgId, id: Uuid) -> Result<ConversationRow>;
    async fn find_direct(&self, org: OrgId, direct_key: &str) -> Result<Option<ConversationRow>>;
    async fn conversation_members(&self, id: Uuid) -> Result<Vec<UserId>>;
    async fn is_member(&self, id: Uuid, user: UserId) -> Result<bool>;
    async fn conversation_devices(&self, id: Uuid) -> Result<Vec<ConversationDeviceRow>>;
    async fn user_conversations(&self, org: OrgId, user: UserId) -> Result<Vec<ConversationRow>>;
    /// Adds the user and makes their devices `pending_add`; false if already a member.
    async fn add_member(
        &self,
        conversation: Uuid,
        user: UserId,
        devices: &[DeviceId],
        notice: &MessageRow,
    ) -> Result<(bool, Woken)>;
    /// Removes the user: their devices stop receiving at once and become
    /// `pending_remove`; false if not a member.
    async fn remove_member(
        &self,
        conversation: Uuid,
        user: UserId,
        notice: &MessageRow,
    ) -> Result<(bool, Woken)>;

    // Messages and delivery.
    /// Starts the conversation's MLS group again from `device` (finding M9 of
    /// 2026-11-30): only when no device is a `member` any more (all were
    /// removed or wiped, so nobody can add the waiting ones) and `device` is
    /// waiting to join. In one transaction: removed devices leave, `device`
    /// becomes the only member, the epoch goes back to 0 (its client makes a
    /// new group and adds the others), and the members are told. False when
    /// the conditions do not hold.
    async fn refound_conversation(
        &self,
        conversation: Uuid,
        device: DeviceId,
        notice: &MessageRow,
    ) -> Result<(bool, Woken)>;
    async fn submit(&self, s: &Submission) -> Result<SubmitOutcome>;
    async fn get_message(&self, conversation: Uuid, id: Uuid) -> Result<MessageRow>;
    /// The device's inbox after `after`, in order, with the messages and
    /// their keys; recalled messages and ephemeral ones past `now` are left out.
    async fn inbox_after(
        &self,
        device: DeviceId,
        after: i64,
        limit: i64,
        now: i64,
    ) -> Result<Vec<InboxRow>>;
    /// Moves the device's cursor to `up_to` (never back) and marks those
    /// entries delivered. `None` if `up_to` is beyond what was handed out.
    async fn ack(&self, device: DeviceId, up_to: i64, now: i64) -> Result<Option<i64>>;
    /// [`MessagingStore::ack`] for several devices in one transaction;
    /// acknowledgements beyond what was handed out are ignored.
    async fn ack_many(&self, acks: &[(DeviceId, i64)], now: i64) -> Result<()>;
    /// Marks the device's entries of the conversation read (and delivered):
    /// those of `mark` (see [`ReadMark`]). Returns how many were newly marked;
    /// `None` if a message it names is not in the device's inbox (then
    /// nothing is marked).
    async fn mark_read(
        &self,
        device: DeviceId,
        conversation: Uuid,
        mark: ReadMark<'_>,
        now: i64,
    ) -> Result<Option<i64>>;
    async fn receipts(&self, message: Uuid) -> Result<Vec<ReceiptRow>>;

    async fn share_read_receipts(&self, user: UserId) -> Result<bool>;
    async fn set_share_read_receipts(&self, user: UserId, share: bool) -> Result<()>;

    /// Stores the attachment and the data key it is sealed under.
    async fn insert_attachment(&self, a: &AttachmentRow, key: &DataKeyRow) -> Result<()>;
    async fn get_attachment(
        &self,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<(AttachmentRow, Option<DataKeyRow>)>;
}
