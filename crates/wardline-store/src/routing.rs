//! Storage of the routing directory (departments, care teams, clinical roles,
//! presence), on-call shifts, routed messages with their escalation jobs,
//! break-glass grants and compliance notifications.

use async_trait::async_trait;
use uuid::Uuid;
use wardline_proto::messaging::Priority;
use wardline_proto::routing::{
    CareTeam, ClinicalRole, Department, EscalationAction, EscalationState, Notification, Presence,
    PresenceStatus, Shift,
};
use wardline_proto::{DeviceId, OrgId, UserId};

use super::messaging::{MessageRow, Woken};
use super::{DataKeyRow, Result};

/// A routed (role-addressed) or urgent/STAT message and its escalation job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedRow {
    pub message_id: Uuid,
    pub org_id: OrgId,
    pub conversation_id: Uuid,
    pub sender_user: UserId,
    pub priority: Priority,
    pub role_id: Option<Uuid>,
    pub resolved_user: Option<UserId>,
    pub resolved_via: Option<String>,
    pub department_id: Option<Uuid>,
    pub state: EscalationState,
    /// Index of the next ladder step.
    pub step: i64,
    pub next_at: Option<i64>,
    pub lease_until: Option<i64>,
    /// Everyone alerted so far (the recipients at first).
    pub notified: Vec<UserId>,
    pub merged_into: Option<Uuid>,
    /// Ladder steps that ran.
    pub escalations: i64,
    pub acked_by: Option<UserId>,
    pub acked_device: Option<DeviceId>,
    pub acked_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationEventRow {
    pub message_id: Uuid,
    pub at: i64,
    pub action: EscalationAction,
    pub users: Vec<UserId>,
    pub sms: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub conversation_id: Uuid,
    pub user_id: UserId,
    pub dek_id: String,
    pub reason_enc: Vec<u8>,
    pub granted_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRow {
    pub role_id: Uuid,
    pub org_id: OrgId,
    pub dek_id: String,
    pub url_enc: Vec<u8>,
    pub host: String,
    pub days: i64,
    pub subscribed_at: i64,
    pub next_fetch_at: i64,
    pub last_fetched_at: Option<i64>,
    pub last_result: Option<String>,
}

#[async_trait]
pub trait RoutingStore: Send + Sync + 'static {
    // Directory. Names are unique per organisation (`Conflict`).
    async fn insert_department(&self, org: OrgId, d: &Department) -> Result<()>;
    async fn list_departments(&self, org: OrgId) -> Result<Vec<Department>>;
    async fn insert_team(&self, org: OrgId, t: &CareTeam) -> Result<()>;
    async fn list_teams(&self, org: OrgId) -> Result<Vec<CareTeam>>;
    async fn get_team(&self, org: OrgId, id: Uuid) -> Result<CareTeam>;
    /// False if already a member.
    async fn add_team_member(&self, org: OrgId, team: Uuid, user: UserId, at: i64) -> Result<bool>;
    /// False if not a member.
    async fn remove_team_member(&self, org: OrgId, team: Uuid, user: UserId) -> Result<bool>;
    async fn insert_role(&self, org: OrgId, r: &ClinicalRole) -> Result<()>;
    /// Replaces a role's name, department, fallback, holders (as of `at`) and ladder.
    async fn update_role(&self, org: OrgId, r: &ClinicalRole, at: i64) -> Result<()>;
    async fn list_roles(&self, org: OrgId) -> Result<Vec<ClinicalRole>>;
    async fn get_role(&self, org: OrgId, id: Uuid) -> Result<ClinicalRole>;
    async fn set_presence(&self, org: OrgId, p: &Presence) -> Result<()>;
    async fn list_presence(&self, org: OrgId) -> Result<Vec<Presence>>;

    // Shifts.
    async fn insert_shift(&self, org: OrgId, s: &Shift) -> Result<()>;
    /// Replaces every imported shift (`ical:` source) of `role` that ends
    /// after `since` with `shifts`, in one transaction, and returns the ones
    /// it deleted. Shifts entered by hand and ended ones (history) stay.
    async fn replace_imported(
        &self,
        org: OrgId,
        role: Uuid,
        since: i64,
        shifts: &[Shift],
    ) -> Result<Vec<Shift>>;
    /// Shifts of the role overlapping `[from, until)`, by start.
    async fn list_shifts(
        &self,
        org: OrgId,
        role: Uuid,
        from: i64,
        until: i64,
    ) -> Result<Vec<Shift>>;
    /// False if there was no such shift.
    async fn delete_shift(&self, org: OrgId, role: Uuid, id: Uuid) -> Result<bool>;

    // Schedule feeds.
    /// Subscribes a role to a feed (replacing its earlier one) with its key.
    async fn put_feed(&self, f: &FeedRow, key: &DataKeyRow) -> Result<()>;
    async fn get_feed(&self, org: OrgId, role: Uuid) -> Result<FeedRow>;
    /// False if the role had no feed.
    async fn delete_feed(&self, org: OrgId, role: Uuid) -> Result<bool>;
    /// Claims up to `limit` feeds due at `now` until `lease_until`, the
    /// longest due first.
    async fn claim_feeds(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<FeedRow>>;
    /// Records a fetch and when the next one is due; releases the lease.
    async fn feed_fetched(
        &self,
        role: Uuid,
        at: i64,
        result: &str,
        next_fetch_at: i64,
    ) -> Result<()>;

    // Role-addressed conversations.
    /// The newest conversation `sender` opened to page `role` that reached `user`.
    async fn role_conversation(
        &self,
        org: OrgId,
        sender: UserId,
        role: Uuid,
        user: UserId,
    ) -> Result<Option<Uuid>>;
    async fn set_routing(
        &self,
        conversation: Uuid,
        role: Uuid,
        user: UserId,
        via: &str,
    ) -> Result<()>;

    /// Conversations about a patient (by the reference's blind index), with
    /// their care teams.
    async fn conversations_by_patient(
        &self,
        org: OrgId,
        patient_bidx: &str,
    ) -> Result<Vec<(Uuid, Option<Uuid>)>>;

    // Routed messages and escalation jobs.
    async fn get_routed(&self, org: OrgId, message: Uuid) -> Result<RoutedRow>;
    /// The open escalation of a conversation that a new message of
    /// `priority` may join (deduplication): never a weaker one.
    async fn open_in_conversation(
        &self,
        conversation: Uuid,
        priority: Priority,
    ) -> Result<Option<RoutedRow>>;
    /// Claims up to `limit` open escalations due at `now` until `lease_until`
    /// (another node's lapsed lease is taken over), the earliest due first.
    async fn claim_due(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<RoutedRow>>;
    /// Open escalations addressed to a role (shift hand-offs).
    async fn open_role_escalations(&self) -> Result<Vec<RoutedRow>>;
    /// Stores a step's outcome and releases the lease, if the row is still
    /// open at step `from_step` (and, with `unleased_at`, not leased by a
    /// running step then); false otherwise (acknowledged or moved on
    /// meanwhile: nothing is recorded).
    async fn advance(
        &self,
        r: &RoutedRow,
        from_step: i64,
        unleased_at: Option<i64>,
        event: Option<&EscalationEventRow>,
    ) -> Result<bool>;
    async fn escalation_events(&self, message: Uuid) -> Result<Vec<EscalationEventRow>>;
    /// SMS steps that texted `user` since `since`.
    async fn sms_sent_to(&self, user: UserId, since: i64) -> Result<i64>;
    /// Closes the escalation of `message` (open, or exhausted: still
    /// waiting) and those merged into it; false if none was waiting.
    async fn acknowledge(
        &self,
        message: Uuid,
        user: UserId,
        device: DeviceId,
        at: i64,
    ) -> Result<bool>;
    async fn routed_between(&self, org: OrgId, since: i64, until: i64) -> Result<Vec<RoutedRow>>;
    /// Puts a server notice in the inboxes of `devices` only.
    async fn insert_notice(&self, notice: &MessageRow, devices: &[DeviceId]) -> Result<Woken>;

    // Break-glass.
    async fn insert_grant(&self, g: &GrantRow, key: &DataKeyRow) -> Result<()>;
    async fn active_grant(
        &self,
        conversation: Uuid,
        user: UserId,
        now: i64,
    ) -> Result<Option<GrantRow>>;
    async fn list_grants(&self, org: OrgId) -> Result<Vec<GrantRow>>;
    /// Grants past their expiry that have not ended.
    async fn expired_grants(&self, now: i64) -> Result<Vec<GrantRow>>;
    /// False if it had ended already.
    async fn end_grant(&self, id: Uuid, at: i64) -> Result<bool>;
    async fn insert_notification(&self, org: OrgId, n: &Notification) -> Result<()>;
    async fn list_notifications(&self, org: OrgId) -> Result<Vec<Notification>>;
}

/// Presence as it applies at `now`: a lapsed status is `available` again.
pub fn presence_now(p: Option<&Presence>, now: i64) -> PresenceStatus {
    match p {
        Some(p) if p.until.is_none_or(|u| u > now) => p.status,
        _ => PresenceStatus::Available,
    }
}
