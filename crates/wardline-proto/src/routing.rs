//! Clinical routing: the directory of departments, care teams and clinical
//! roles; presence; on-call schedules; messages addressed to a role; priority
//! escalation; break-glass access to a patient's conversation; response reports.
//!
//! A clinical role ("Cardiology on-call") is not a permission role
//! ([`crate::Role`]): it says who to page, never what someone may do.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::messaging::{Conversation, Priority};
use crate::patients::QuietHours;

// ---------------------------------------------------------------- presence

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    #[default]
    Available,
    Busy,
    /// Scrubbed in: pages go to the backup.
    InProcedure,
    /// Not working: pages go to the backup.
    OffDuty,
}

impl PresenceStatus {
    pub const ALL: [PresenceStatus; 4] = [
        PresenceStatus::Available,
        PresenceStatus::Busy,
        PresenceStatus::InProcedure,
        PresenceStatus::OffDuty,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceStatus::Available => "available",
            PresenceStatus::Busy => "busy",
            PresenceStatus::InProcedure => "in_procedure",
            PresenceStatus::OffDuty => "off_duty",
        }
    }
    pub fn parse(s: &str) -> Option<PresenceStatus> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
    /// Whether a page may go to someone with this status.
    pub fn reachable(self) -> bool {
        matches!(self, PresenceStatus::Available | PresenceStatus::Busy)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Presence {
    pub user_id: Uuid,
    pub status: PresenceStatus,
    /// The status returns to `available` at this time, if set.
    pub until: Option<i64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPresenceRequest {
    pub status: PresenceStatus,
    /// When the status lapses back to `available` (must be in the future).
    #[serde(default)]
    pub until: Option<i64>,
}

// --------------------------------------------------------------- directory

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Department {
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateDepartmentRequest {
    /// A department or service line, 1–100 characters, unique in the organisation.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CareTeam {
    pub id: Uuid,
    pub name: String,
    pub department_id: Option<Uuid>,
    pub members: Vec<Uuid>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateCareTeamRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    #[serde(default)]
    pub department_id: Option<Uuid>,
    pub members: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TeamMemberRequest {
    pub user_id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClinicalRole {
    pub id: Uuid,
    /// "Cardiology on-call", "4 West charge nurse".
    pub name: String,
    pub department_id: Option<Uuid>,
    /// Where a page goes when nobody covers this role (e.g. the charge nurse).
    pub fallback_role_id: Option<Uuid>,
    /// People who hold the role (outside scheduled shifts too).
    pub holders: Vec<Uuid>,
    /// This role's own escalation ladders (else the organisation's).
    pub escalation: Option<EscalationPolicy>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    #[serde(default)]
    pub department_id: Option<Uuid>,
    #[serde(default)]
    pub fallback_role_id: Option<Uuid>,
    pub holders: Vec<Uuid>,
    #[serde(default)]
    pub escalation: Option<EscalationPolicy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoutingDirectory {
    pub departments: Vec<Department>,
    pub care_teams: Vec<CareTeam>,
    pub roles: Vec<ClinicalRole>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct DirectorySearchQuery {
    /// Matches a person's name, a clinical role, a department or a care team
    /// (case-insensitive substring, 1–100 characters).
    pub q: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirectoryEntry {
    pub user_id: Uuid,
    pub display_name: String,
    /// Clinical roles held.
    pub roles: Vec<String>,
    /// Departments of those roles and of the person's care teams.
    pub departments: Vec<String>,
    pub care_teams: Vec<String>,
    pub presence: PresenceStatus,
    /// Roles this person covers on call right now.
    pub on_call: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirectorySearchResult {
    pub entries: Vec<DirectoryEntry>,
}

// --------------------------------------------------------------- schedules

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shift {
    pub id: Uuid,
    pub role_id: Uuid,
    pub user_id: Uuid,
    pub backup_user_id: Option<Uuid>,
    pub starts_at: i64,
    pub ends_at: i64,
    /// `manual`, or `ical:<UID>` for an imported event.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateShiftRequest {
    pub user_id: Uuid,
    #[serde(default)]
    pub backup_user_id: Option<Uuid>,
    pub starts_at: i64,
    pub ends_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ShiftQuery {
    /// From (default: now).
    #[serde(default)]
    pub from: Option<i64>,
    /// Until (default: 14 days after `from`; at most 100 days after it).
    #[serde(default)]
    pub until: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShiftList {
    pub shifts: Vec<Shift>,
}

/// An iCalendar (RFC 5545) schedule for one role. Each VEVENT is a shift: its
/// ATTENDEE (`mailto:` of a user in the organisation) covers it; an attendee
/// with `ROLE=OPT-PARTICIPANT` is the backup. Recurring events (RRULE, RDATE,
/// EXDATE) are expanded over `days`; times may be UTC, floating (the
/// calendar's `X-WR-TIMEZONE`, else UTC) or carry an IANA `TZID`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportScheduleRequest {
    /// The calendar itself…
    #[serde(default)]
    pub ics: Option<String>,
    /// …or where to fetch it (http or https).
    #[serde(default)]
    pub url: Option<String>,
    /// How far ahead to expand recurring shifts (1–366, default 90).
    #[serde(default)]
    pub days: Option<i64>,
    /// With `url`: keep the feed and import it again every hour (replacing
    /// an earlier subscription of the role).
    #[serde(default)]
    pub subscribe: bool,
}

/// A role's subscribed schedule feed. The URL is kept sealed (feeds often
/// carry an access token); only its host is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleFeed {
    pub role_id: Uuid,
    pub host: String,
    pub days: i64,
    pub subscribed_at: i64,
    pub last_fetched_at: Option<i64>,
    /// What the last fetch did ("12 shifts from 3 events; 0 problems") or why it failed.
    pub last_result: Option<String>,
    pub next_fetch_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportProblem {
    /// The event's UID (or its position when it has none).
    pub event: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportScheduleResult {
    /// VEVENTs read (a series' overrides and cancelled events included).
    pub events: i64,
    /// Shifts created from the events over the window.
    pub shifts: i64,
    /// Earlier imported shifts, not yet ended, that the import replaced: a
    /// calendar is the whole schedule, so every one of them goes.
    pub replaced: i64,
    /// Of those, shifts the calendar no longer has (cancelled, removed, moved
    /// or given to someone else).
    #[serde(default)]
    pub removed: i64,
    /// Events that made no shift, and why.
    pub problems: Vec<ImportProblem>,
    /// Shifts of different people covering the same time, and who is on call
    /// then (see `OnCall`: the shift that started last).
    #[serde(default)]
    pub warnings: Vec<ImportProblem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnCallPerson {
    pub user_id: Uuid,
    pub display_name: String,
    pub presence: PresenceStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnCall {
    pub role_id: Uuid,
    pub role_name: String,
    pub at: i64,
    pub shift: Option<Shift>,
    pub primary: Option<OnCallPerson>,
    pub backup: Option<OnCallPerson>,
}

// ------------------------------------------------------- role-addressed

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResolvedVia {
    /// The person on call for the role.
    OnCall,
    /// The shift's backup (the person on call is unreachable).
    Backup,
    /// Nobody covers the role: someone who holds it.
    Holder,
    /// Nobody covers or holds the role: its fallback role.
    FallbackRole,
}

impl ResolvedVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedVia::OnCall => "on_call",
            ResolvedVia::Backup => "backup",
            ResolvedVia::Holder => "holder",
            ResolvedVia::FallbackRole => "fallback_role",
        }
    }
    pub fn parse(s: &str) -> Option<ResolvedVia> {
        [
            ResolvedVia::OnCall,
            ResolvedVia::Backup,
            ResolvedVia::Holder,
            ResolvedVia::FallbackRole,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Opens (or reuses) the caller's conversation with whoever covers a role now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PageRoleRequest {
    /// A patient the page is about (makes it a clinical thread).
    #[serde(default)]
    pub patient_ref: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageRoleResponse {
    /// Send the message here (after bringing the MLS group in line).
    pub conversation: Conversation,
    pub role_id: Uuid,
    pub role_name: String,
    pub resolved_to: OnCallPerson,
    pub via: ResolvedVia,
    /// Nobody was on call (or reachable) for the role: said at once, so the
    /// sender knows the page went to a fallback.
    pub nobody_on_call: bool,
    /// One line for the sender ("On call: Dr A (backup; Dr B is in a procedure)").
    pub notice: String,
}

// -------------------------------------------------------------- escalation

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EscalationAction {
    /// Alert everyone alerted so far again.
    Renotify,
    /// Bring in the shift's backup.
    Backup,
    /// Bring in whoever covers the role's fallback role (e.g. the charge nurse).
    FallbackRole,
    /// Bring in everyone holding a role in the role's department.
    Department,
    /// Text everyone alerted so far: a notice and a sign-in link, no content.
    Sms,
    /// (Recorded, not configured) the shift changed hands while waiting.
    Handoff,
    /// (Alerts only) a recipient acknowledged: everyone alerted may stand down.
    Acknowledged,
    /// (Recorded, not configured) the ladder ran out and nobody acknowledged:
    /// the sender and everyone alerted are told at once — a clinical-safety
    /// event, audited and in the response report.
    Unanswered,
}

impl EscalationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationAction::Renotify => "renotify",
            EscalationAction::Backup => "backup",
            EscalationAction::FallbackRole => "fallback_role",
            EscalationAction::Department => "department",
            EscalationAction::Sms => "sms",
            EscalationAction::Handoff => "handoff",
            EscalationAction::Acknowledged => "acknowledged",
            EscalationAction::Unanswered => "unanswered",
        }
    }
    pub fn parse(s: &str) -> Option<EscalationAction> {
        [
            EscalationAction::Renotify,
            EscalationAction::Backup,
            EscalationAction::FallbackRole,
            EscalationAction::Department,
            EscalationAction::Sms,
            EscalationAction::Handoff,
            EscalationAction::Acknowledged,
            EscalationAction::Unanswered,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// Seconds after the message was sent (15–86400, increasing along a ladder).
    pub after_secs: i64,
    pub action: EscalationAction,
}

/// Escalation ladders for unacknowledged messages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    pub stat: Vec<EscalationStep>,
    pub urgent: Vec<EscalationStep>,
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        use EscalationAction::*;
        let step = |after_secs, action| EscalationStep { after_secs, action };
        EscalationPolicy {
            stat: vec![
                step(120, Renotify),
                step(240, Backup),
                step(360, FallbackRole),
                step(480, Sms),
                step(600, Department),
            ],
            urgent: vec![
                step(600, Renotify),
                step(1200, Backup),
                step(1800, Sms),
                step(2400, FallbackRole),
            ],
        }
    }
}

impl EscalationPolicy {
    pub fn ladder(&self, p: Priority) -> &[EscalationStep] {
        match p {
            Priority::Stat => &self.stat,
            Priority::Urgent => &self.urgent,
            Priority::Routine => &[],
        }
    }
}

/// Routing policy of an organisation (part of its policy document).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct RoutingPolicy {
    pub escalation: EscalationPolicy,
    /// Nobody is alerted again about the same conversation sooner than this
    /// (30–3600 seconds): a burst of STATs is one alert, not ten.
    #[cfg_attr(feature = "openapi", schema(minimum = 30, maximum = 3600))]
    pub renotify_min_secs: i64,
    /// At most this many escalation texts per person per hour (1–30).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 30))]
    pub sms_per_hour: i64,
    /// Urgent (not STAT) escalation texts wait for the end of these hours.
    pub quiet_hours: Option<QuietHours>,
    /// How long break-glass access lasts (5–720 minutes).
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 720))]
    pub break_glass_minutes: i64,
    /// Roles that may break the glass into a patient's conversations they
    /// are not on (default: the clinical roles — physician, nurse, medical
    /// assistant). Others see only what they are members of.
    #[serde(default = "default_break_glass_roles")]
    pub break_glass_roles: Vec<crate::Role>,
    /// When a ladder runs out unacknowledged, the holders of the clinical
    /// roles of the paged role's department are told too (besides the sender
    /// and everyone alerted). On by default.
    #[serde(default = "default_true")]
    pub unanswered_to_department: bool,
}

fn default_true() -> bool {
    true
}

fn default_break_glass_roles() -> Vec<crate::Role> {
    vec![
        crate::Role::Physician,
        crate::Role::Nurse,
        crate::Role::MedicalAssistant,
    ]
}

impl Default for RoutingPolicy {
    fn default() -> Self {
        RoutingPolicy {
            escalation: EscalationPolicy::default(),
            renotify_min_secs: 60,
            sms_per_hour: 6,
            quiet_hours: None,
            break_glass_minutes: 60,
            break_glass_roles: default_break_glass_roles(),
            unanswered_to_department: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EscalationState {
    /// Routine message: recorded (role, resolution), nothing to acknowledge.
    None,
    /// Waiting for an acknowledgement; the ladder runs.
    Open,
    /// Joined an open escalation in the same conversation (deduplicated).
    Merged,
    Acknowledged,
    /// The ladder ran out without an acknowledgement.
    Exhausted,
}

impl EscalationState {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationState::None => "none",
            EscalationState::Open => "open",
            EscalationState::Merged => "merged",
            EscalationState::Acknowledged => "acknowledged",
            EscalationState::Exhausted => "exhausted",
        }
    }
    pub fn parse(s: &str) -> Option<EscalationState> {
        [
            EscalationState::None,
            EscalationState::Open,
            EscalationState::Merged,
            EscalationState::Acknowledged,
            EscalationState::Exhausted,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalationEvent {
    pub at: i64,
    pub action: EscalationAction,
    /// Who was alerted (or texted); empty: the step reached nobody (no
    /// backup, no fallback, no phone number…) and the next one ran at once.
    pub users: Vec<Uuid>,
    pub sms: bool,
}

/// A routed or urgent message and where its escalation stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Escalation {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub sender_user: Uuid,
    pub priority: Priority,
    pub role_id: Option<Uuid>,
    pub resolved_user: Option<Uuid>,
    pub resolved_via: Option<ResolvedVia>,
    pub state: EscalationState,
    /// Merged: the escalation this message joined.
    pub merged_into: Option<Uuid>,
    /// When the next step runs (open only).
    pub next_at: Option<i64>,
    pub next_action: Option<EscalationAction>,
    /// Everyone alerted so far.
    pub notified: Vec<Uuid>,
    pub events: Vec<EscalationEvent>,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_device: Option<Uuid>,
    pub acknowledged_at: Option<i64>,
    pub created_at: i64,
}

/// What an alert entry in a device's inbox is about (no message content).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertNotice {
    /// The urgent or STAT message waiting for acknowledgement.
    pub message_id: Uuid,
    pub priority: Priority,
    pub action: EscalationAction,
    /// Users this step brought into the conversation (they cannot read
    /// messages from before they joined: the sender's device shares it again).
    pub added: Vec<Uuid>,
    /// One line without content ("STAT not acknowledged for 2 min").
    pub text: String,
    /// `acknowledged`: who acknowledged.
    #[serde(default)]
    pub by: Option<Uuid>,
    /// Who sent the waiting message: the sender's devices get every alert
    /// (they follow the escalation and share the message with newcomers),
    /// and must not be asked to acknowledge their own message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Uuid>,
}

/// A newcomer who can read only what is sent from now on — a member who
/// joined a patient's conversation (care team, department or break-glass),
/// or a member's first or new device: member devices share their own
/// messages since `since` again (at most the latest 50 each).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryNotice {
    pub user: Uuid,
    pub since: i64,
    /// The user's new device (their first, or another one) that needs it;
    /// absent when the user joined the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Uuid>,
}

// -------------------------------------------------------------- break-glass

/// Opens a patient's conversations: those whose care team includes the caller
/// are joined; the others only by break-glass, which needs a stated reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenPatientRequest {
    /// The patient reference the conversations carry.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub patient_ref: String,
    /// Break-glass: why access is needed now (10–500 characters). Sealed,
    /// shown to the compliance officer.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 10, max_length = 500))]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccessVia {
    /// Already a member.
    Member,
    /// On the conversation's care team: joined.
    CareTeam,
    /// Holds a clinical role in the care team's department: joined.
    Department,
    /// Break-glass: joined for a limited time.
    BreakGlass,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientConversationAccess {
    pub conversation_id: Uuid,
    pub via: AccessVia,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientAccess {
    pub conversations: Vec<PatientConversationAccess>,
    /// Break-glass grants made by this request.
    pub grants: Vec<BreakGlassGrant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakGlassGrant {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    /// Present for the compliance officer and the user themself.
    pub reason: Option<String>,
    pub granted_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakGlassList {
    pub grants: Vec<BreakGlassGrant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    pub id: Uuid,
    /// `break_glass`, or `compliance_role` (the compliance officer role was
    /// granted or removed).
    pub kind: String,
    /// The user it is about.
    pub subject: Uuid,
    /// One line without PHI ("break-glass access to conversation …, grant …").
    pub detail: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationList {
    pub notifications: Vec<Notification>,
}

// ------------------------------------------------------------------ reports

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ReportQuery {
    /// From (default: 7 days before `until`).
    #[serde(default)]
    pub since: Option<i64>,
    /// Until (default: now).
    #[serde(default)]
    pub until: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResponseTimes {
    /// Role or department id; none for messages not sent to a role.
    pub id: Option<Uuid>,
    pub name: String,
    pub messages: i64,
    pub read: i64,
    pub acknowledged: i64,
    pub escalated: i64,
    pub unacknowledged: i64,
    /// Ladders that ran out with nobody acknowledging.
    #[serde(default)]
    pub unanswered: i64,
    /// Seconds from sent to first read by a recipient.
    pub median_read_secs: Option<i64>,
    /// Seconds from sent to acknowledged.
    pub median_ack_secs: Option<i64>,
    pub p90_ack_secs: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResponseReport {
    pub since: i64,
    pub until: i64,
    pub by_role: Vec<ResponseTimes>,
    pub by_department: Vec<ResponseTimes>,
    /// Urgent and STAT messages still waiting, oldest first.
    pub unacknowledged: Vec<Escalation>,
    /// Of those, the ones whose ladder ran out with nobody acknowledging
    /// (clinical-safety events), oldest first.
    #[serde(default)]
    pub unanswered: Vec<Escalation>,
    /// Messages whose ladder went past its first step.
    pub escalated: Vec<Escalation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in PresenceStatus::ALL {
            assert_eq!(PresenceStatus::parse(p.as_str()), Some(p));
        }
        for s in ["open", "merged", "acknowledged", "exhausted", "none"] {
            assert_eq!(EscalationState::parse(s).unwrap().as_str(), s);
        }
        for a in [
            "renotify",
            "backup",
            "fallback_role",
            "department",
            "sms",
            "unanswered",
        ] {
            assert_eq!(EscalationAction::parse(a).unwrap().as_str(), a);
        }
    }

    #[test]
    fn the_default_stat_ladder_renotifies_at_two_minutes_then_the_backup() {
        let p = EscalationPolicy::default();
        assert_eq!(p.stat[0].after_secs, 120);
        assert_eq!(p.stat[0].action, EscalationAction::Renotify);
        assert_eq!(p.stat[1].action, EscalationAction::Backup);
        assert!(p.ladder(Priority::Routine).is_empty());
    }
}
