//! Storage of the lifecycle policy, legal holds, deletion candidates and
//! receipts, recalls, remote wipes and job leases.
//!
//! Deleting a message deletes its inbox entries, its row and its data key in
//! one transaction: once the key is gone, any copy of the sealed body (a
//! backup, a free page, a dead tuple) is unreadable by the server too.

use async_trait::async_trait;
use uuid::Uuid;
use wardline_proto::lifecycle::{ConversationLifecycle, HoldScope, LifecyclePolicy};
use wardline_proto::{DeviceId, OrgId, UserId};

use super::Result;
use super::messaging::{MessageRow, Woken};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub scope: HoldScope,
    /// User or conversation id, or the blind index of a patient reference.
    pub target: String,
    pub dek_id: String,
    pub target_enc: Vec<u8>,
    pub matter_enc: Vec<u8>,
    pub reason_enc: Vec<u8>,
    pub placed_by: UserId,
    pub placed_at: i64,
    pub released_by: Option<UserId>,
    pub released_at: Option<i64>,
    pub release_reason_enc: Option<Vec<u8>>,
}

/// A message that some rule may delete, with what the rules need to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: Uuid,
    pub sender_user: Option<UserId>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub recalled_at: Option<i64>,
    /// The body (and its key) is still stored.
    pub has_body: bool,
}

/// What a conversation looks like to the deletion rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConversation {
    pub id: Uuid,
    pub lifecycle: ConversationLifecycle,
    pub patient_ref_bidx: Option<String>,
    pub members: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WipeRow {
    pub device_id: DeviceId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub requested_by: UserId,
    pub requested_at: i64,
    pub reason: String,
    pub sessions_ended: i64,
    pub conversations: i64,
    pub confirmed_at: Option<i64>,
}

#[async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    async fn lifecycle_policy(&self, org: OrgId) -> Result<LifecyclePolicy>;
    async fn set_lifecycle_policy(&self, org: OrgId, policy: &LifecyclePolicy) -> Result<()>;
    async fn set_conversation_lifecycle(
        &self,
        org: OrgId,
        conversation: Uuid,
        lifecycle: &ConversationLifecycle,
    ) -> Result<()>;
    /// Organisations (for the scheduled run).
    async fn org_ids(&self) -> Result<Vec<OrgId>>;
    async fn lifecycle_conversations(&self, org: OrgId) -> Result<Vec<LifecycleConversation>>;

    // Legal holds.
    /// Stores the hold and its data key.
    async fn insert_hold(&self, hold: &HoldRow, key: &super::DataKeyRow) -> Result<()>;
    async fn list_holds(&self, org: OrgId) -> Result<Vec<HoldRow>>;
    async fn get_hold(&self, org: OrgId, id: Uuid) -> Result<HoldRow>;
    /// False if the hold was released already.
    async fn release_hold(
        &self,
        org: OrgId,
        id: Uuid,
        by: UserId,
        at: i64,
        reason_enc: &[u8],
    ) -> Result<bool>;
    /// Whether any organisation has an active hold (audit retention waits).
    async fn any_active_hold(&self) -> Result<bool>;

    // Deletion.
    /// Application messages and recall notices of the conversation that are
    /// older than `created_before`, or expired at `now`, or recalled with the
    /// body still stored.
    async fn deletion_candidates(
        &self,
        conversation: Uuid,
        created_before: Option<i64>,
        now: i64,
    ) -> Result<Vec<Candidate>>;
    /// Deletes the messages (inbox entries, rows, data keys); returns the
    /// number of data keys destroyed.
    async fn delete_messages(&self, conversation: Uuid, ids: &[Uuid]) -> Result<i64>;
    /// Deletes the bodies and data keys of recalled messages, keeping their
    /// rows (receipts stay answerable). Returns the keys destroyed.
    async fn shred_bodies(&self, conversation: Uuid, ids: &[Uuid]) -> Result<i64>;
    /// Attachments of the conversation older than `created_before`.
    async fn expired_attachments(
        &self,
        conversation: Uuid,
        created_before: i64,
    ) -> Result<Vec<Uuid>>;
    /// Deletes attachments and their keys; returns the keys destroyed.
    async fn delete_attachments(&self, conversation: Uuid, ids: &[Uuid]) -> Result<i64>;
    async fn insert_receipt(&self, org: OrgId, id: Uuid, started_at: i64, json: &str)
    -> Result<()>;
    /// Receipts' JSON, newest first.
    async fn list_receipts(&self, org: OrgId, limit: i64) -> Result<Vec<String>>;
    /// Takes or renews the lease `name` until `until` if it is free or
    /// already `holder`'s; false if another holder has it.
    async fn take_lease(&self, name: &str, holder: &str, now: i64, until: i64) -> Result<bool>;

    // Recall.
    /// Marks the message recalled (and, if `shred`, deletes its body and key),
    /// stores the recall notice and puts it in every member device's inbox.
    /// `None` if the message is not an application message of the conversation
    /// or was recalled already.
    async fn recall(
        &self,
        conversation: Uuid,
        message: Uuid,
        shred: bool,
        notice: &MessageRow,
    ) -> Result<Option<Woken>>;

    // Lost devices.
    /// Records the order, retires the device, ends its sessions (the device's
    /// owner's only), drops its key packages; returns the sessions ended.
    async fn begin_wipe(&self, wipe: &WipeRow) -> Result<i64>;
    /// Makes the retired device `pending_remove` in the conversation (or drops
    /// it if it was only `pending_add`) and tells the members; false if it
    /// was not there.
    async fn retire_from_conversation(
        &self,
        conversation: Uuid,
        device: DeviceId,
        notice: &MessageRow,
    ) -> Result<(bool, Woken)>;
    /// Conversations the device is in or waiting to join.
    async fn device_conversations(&self, device: DeviceId) -> Result<Vec<Uuid>>;
    /// The wipe order of `device` if it belongs to `user` of `org`: a session
    /// of someone else bound to the same device id (ids are chosen by clients
    /// and listed to colleagues) never sees or answers another's wipe.
    async fn get_wipe(&self, org: OrgId, user: UserId, device: DeviceId)
    -> Result<Option<WipeRow>>;
    /// `user`: one user's devices only.
    async fn list_wipes(&self, org: OrgId, user: Option<UserId>) -> Result<Vec<WipeRow>>;
    async fn set_wipe_conversations(&self, device: DeviceId, n: i64) -> Result<()>;
    /// False if it was confirmed already (or is not this user's).
    async fn confirm_wipe(
        &self,
        org: OrgId,
        user: UserId,
        device: DeviceId,
        at: i64,
    ) -> Result<bool>;
}
