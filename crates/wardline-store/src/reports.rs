//! Aggregations for the analytics report: computed by the database over a
//! time range (Unix seconds, `[since, until)`), so a 90-day report of a
//! large organisation reads counts, not rows. Days are UTC day numbers
//! (`unix_seconds / 86400`).

use async_trait::async_trait;
use wardline_proto::OrgId;

use super::Result;

/// A count for one day and one key (a role, a department id, a series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub day: i64,
    /// `None`: no key (e.g. a message outside any department).
    pub key: Option<String>,
    pub count: i64,
}

/// Messages of one day from senders with one role list in conversations
/// of one clinical role / care team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCount {
    pub day: i64,
    /// The sender's roles, comma-separated (`users.roles`).
    pub roles: String,
    pub role_id: Option<String>,
    pub care_team_id: Option<String>,
    pub count: i64,
}

/// Response times of one group (role id or department id; `None`: none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseRow {
    pub key: Option<String>,
    pub messages: i64,
    pub read: i64,
    pub acknowledged: i64,
    pub median_read_secs: Option<i64>,
    pub p90_read_secs: Option<i64>,
    pub median_ack_secs: Option<i64>,
    pub p90_ack_secs: Option<i64>,
}

/// What routed messages are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseGroup {
    ClinicalRole,
    Department,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Application messages per day, by the sender's role list and the
    /// conversation's clinical role and care team: one pass over the range,
    /// which the service splits by staff role and by department.
    async fn messages_per_day(
        &self,
        org: OrgId,
        since: i64,
        until: i64,
    ) -> Result<Vec<MessageCount>>;
    /// Routed messages' read and acknowledgement times, per group.
    async fn response_times(
        &self,
        org: OrgId,
        since: i64,
        until: i64,
        group: ResponseGroup,
    ) -> Result<Vec<ResponseRow>>;
    /// Routed messages per day: keys `stat`, `urgent`, `escalated`,
    /// `unacknowledged`.
    async fn escalations_per_day(
        &self,
        org: OrgId,
        since: i64,
        until: i64,
    ) -> Result<Vec<DayCount>>;
    /// Distinct users and devices with a session begun or used that day:
    /// keys `users`, `devices`.
    async fn active_per_day(&self, org: OrgId, since: i64, until: i64) -> Result<Vec<DayCount>>;
    /// Patient texting per day: keys `sent`, `failed`, `opt_outs`,
    /// `verifications`.
    async fn texting_per_day(&self, org: OrgId, since: i64, until: i64) -> Result<Vec<DayCount>>;
}

/// Past activity written as the rows the report reads, for the demo
/// organisation (`serve --demo`) and the analytics benchmark. Nothing in it
/// reaches a client: its conversations have no members, its devices are
/// retired, its sessions ended and its messages have no body.
#[derive(Debug, Clone, Default)]
pub struct ActivityHistory {
    /// A data key of the organisation, for the conversations' rows (their
    /// title and patient are empty: nothing is sealed under it).
    pub dek_id: String,
    pub conversations: Vec<HistoryConversation>,
    pub devices: Vec<HistoryDevice>,
    pub messages: Vec<HistoryMessage>,
    pub sessions: Vec<HistorySession>,
    /// When each of a number of (made-up) phone numbers opted out.
    pub opt_outs: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct HistoryConversation {
    pub id: uuid::Uuid,
    pub created_by: wardline_proto::UserId,
    pub created_at: i64,
    pub role_id: Option<uuid::Uuid>,
    pub care_team_id: Option<uuid::Uuid>,
}

#[derive(Debug, Clone)]
pub struct HistoryDevice {
    pub id: wardline_proto::DeviceId,
    pub user_id: wardline_proto::UserId,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct HistoryMessage {
    pub id: uuid::Uuid,
    pub conversation_id: uuid::Uuid,
    pub sender_user: wardline_proto::UserId,
    pub sender_device: wardline_proto::DeviceId,
    pub priority: wardline_proto::messaging::Priority,
    pub created_at: i64,
    /// Devices it reached and when each showed it (none: not read there).
    pub deliveries: Vec<(wardline_proto::DeviceId, Option<i64>)>,
    /// Its routing record, for an urgent, STAT or role-addressed message.
    pub routing: Option<HistoryRouting>,
}

#[derive(Debug, Clone)]
pub struct HistoryRouting {
    pub role_id: Option<uuid::Uuid>,
    pub department_id: Option<uuid::Uuid>,
    /// Ladder steps taken.
    pub escalations: i64,
    /// Who acknowledged it, when.
    pub acknowledged: Option<(wardline_proto::UserId, i64)>,
}

#[derive(Debug, Clone)]
pub struct HistorySession {
    pub user_id: wardline_proto::UserId,
    pub device_id: wardline_proto::DeviceId,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// Writing [`ActivityHistory`]: kept apart from [`ReportStore`], which only
/// reads.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Writes `h` for `org` in one transaction.
    async fn import_history(&self, org: OrgId, h: &ActivityHistory) -> Result<()>;
}
