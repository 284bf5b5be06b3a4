//! Analytics for administrators and compliance officers
//! (`GET /api/v1/reports/activity`): what the organisation's messaging,
//! clinical routing and patient texting did per day over a time range.
//! Counts only: never a message, a name of a patient or a number.

use serde::{Deserialize, Serialize};

/// A time range, Unix seconds; days are UTC days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ReportRange {
    /// From (inclusive; default: 30 days before `until`).
    pub since: Option<i64>,
    /// Until (exclusive; default: now). At most 366 days after `since`.
    pub until: Option<i64>,
}

/// One line of a chart: a count for each day of [`ActivityReport::days`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailySeries {
    /// What is counted ("nurse", "Cardiology", "STAT", "Texts sent" …).
    pub name: String,
    /// One count per day, in the order of `days`.
    pub counts: Vec<i64>,
}

/// Sent → read → acknowledged times of one group's routed messages (urgent
/// and STAT ones, and those sent to a clinical role). Nearest-rank
/// percentiles, in seconds; absent when nothing was read or acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResponseSummary {
    /// The clinical role or department ("(no department)" for none).
    pub name: String,
    pub messages: i64,
    /// Read by someone other than the sender.
    pub read: i64,
    pub acknowledged: i64,
    pub median_read_secs: Option<i64>,
    pub p90_read_secs: Option<i64>,
    pub median_ack_secs: Option<i64>,
    pub p90_ack_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityReport {
    /// Unix seconds, as asked (or defaulted).
    pub since: i64,
    pub until: i64,
    /// Each UTC day of the range, `YYYY-MM-DD`, oldest first.
    pub days: Vec<String>,
    /// Messages sent per day by the sender's staff role (a sender with two
    /// roles counts in both).
    pub messages_by_role: Vec<DailySeries>,
    /// Messages sent per day by department (of the conversation's clinical
    /// role or care team).
    pub messages_by_department: Vec<DailySeries>,
    pub responses_by_role: Vec<ResponseSummary>,
    pub responses_by_department: Vec<ResponseSummary>,
    /// Per day: `STAT`, `Urgent`, `Escalated` (went past the first step),
    /// `Unacknowledged` (still waiting, or ran out).
    pub escalations: Vec<DailySeries>,
    /// Per day: `Users` and `Devices` that signed in or made a request.
    pub active: Vec<DailySeries>,
    /// Per day: `Texts sent`, `Texts failed`, `Opt-outs` (still in effect),
    /// `Link verifications` (patients who passed a secure link's check).
    pub patient_texting: Vec<DailySeries>,
}
