//! Analytics over a time range for administrators and compliance officers
//! (`GET /api/v1/reports/activity`): the store aggregates (counts and
//! percentiles in SQL); this service checks the range, lays the counts out
//! one per UTC day, and names roles and departments.

use std::collections::HashMap;
use std::sync::Arc;

use wardline_proto::reports::*;
use wardline_proto::{OrgId, Role};
use wardline_store::reports::{DayCount, ResponseGroup, ResponseRow};
use wardline_store::{ReportStore, RoutingStore};

use crate::clock::Clock;
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult};

const DAY: i64 = 86_400;

#[derive(Clone)]
pub struct ReportService {
    store: Arc<dyn ReportStore>,
    routing: Arc<dyn RoutingStore>,
    clock: Arc<dyn Clock>,
}

/// `YYYY-MM-DD` of UTC day number `day`.
fn date(day: i64) -> String {
    jiff::Timestamp::from_second(day * DAY)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Lays `rows` out as one series per key, a count for each day from
/// `first` (`days` long), in the order of `order` (then other keys by
/// name), each key shown as `name(key)`.
fn series(
    rows: &[DayCount],
    first: i64,
    days: usize,
    order: &[&str],
    name: impl Fn(Option<&str>) -> String,
) -> Vec<DailySeries> {
    let mut by_key: Vec<(Option<String>, Vec<i64>)> = order
        .iter()
        .map(|k| (Some((*k).to_owned()), vec![0; days]))
        .collect();
    for r in rows {
        let Ok(i) = usize::try_from(r.day - first) else {
            continue;
        };
        if i >= days {
            continue;
        }
        let at = match by_key.iter().position(|(k, _)| *k == r.key) {
            Some(at) => at,
            None => {
                by_key.push((r.key.clone(), vec![0; days]));
                by_key.len() - 1
            }
        };
        by_key[at].1[i] += r.count;
    }
    let fixed = order.len();
    by_key[fixed..].sort_by_key(|a| name(a.0.as_deref()));
    by_key
        .into_iter()
        .map(|(k, counts)| DailySeries {
            name: name(k.as_deref()),
            counts,
        })
        .collect()
}

fn summaries(
    rows: Vec<ResponseRow>,
    name: impl Fn(Option<&str>) -> String,
) -> Vec<ResponseSummary> {
    let mut out: Vec<ResponseSummary> = rows
        .into_iter()
        .map(|r| ResponseSummary {
            name: name(r.key.as_deref()),
            messages: r.messages,
            read: r.read,
            acknowledged: r.acknowledged,
            median_read_secs: r.median_read_secs,
            p90_read_secs: r.p90_read_secs,
            median_ack_secs: r.median_ack_secs,
            p90_ack_secs: r.p90_ack_secs,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

impl ReportService {
    pub fn new(deps: &Deps) -> Self {
        ReportService {
            store: deps.reports.clone(),
            routing: deps.routing.clone(),
            clock: deps.clock.clone(),
        }
    }

    /// The activity report over `range` (default: the last 30 days). Errors:
    /// 400 when `until` is not after `since` or more than 366 days later.
    pub async fn activity(&self, org: OrgId, range: ReportRange) -> ApiResult<ActivityReport> {
        let until = range.until.unwrap_or_else(|| self.clock.now());
        let since = range.since.unwrap_or(until.saturating_sub(30 * DAY));
        if until <= since || until.saturating_sub(since) > 366 * DAY || since < 0 {
            return Err(ApiError::bad_request(
                "until must be after since, at most 366 days later",
            ));
        }
        let (first, last) = (since.div_euclid(DAY), (until - 1).div_euclid(DAY));
        let days = (last - first + 1) as usize;
        let departments: HashMap<String, String> = self
            .routing
            .list_departments(org)
            .await?
            .into_iter()
            .map(|d| (d.id.to_string(), d.name))
            .collect();
        let clinical_roles = self.routing.list_roles(org).await?;
        let roles: HashMap<String, String> = clinical_roles
            .iter()
            .map(|r| (r.id.to_string(), r.name.clone()))
            .collect();
        // A conversation's department: its clinical role's, else its care team's.
        let role_dept: HashMap<String, String> = clinical_roles
            .iter()
            .filter_map(|r| Some((r.id.to_string(), r.department_id?.to_string())))
            .collect();
        let team_dept: HashMap<String, String> = self
            .routing
            .list_teams(org)
            .await?
            .into_iter()
            .filter_map(|t| Some((t.id.to_string(), t.department_id?.to_string())))
            .collect();
        let department = |k: Option<&str>| {
            k.and_then(|k| departments.get(k).cloned())
                .unwrap_or_else(|| "(no department)".to_owned())
        };
        let clinical_role = |k: Option<&str>| {
            k.and_then(|k| roles.get(k).cloned())
                .unwrap_or_else(|| "(not sent to a role)".to_owned())
        };
        // Independent reads: at once (PostgreSQL runs them on separate
        // connections; SQLite's readers share the WAL).
        let s = &self.store;
        let (messages, escalations, active, texting, by_clinical_role, by_department) = tokio::try_join!(
            s.messages_per_day(org, since, until),
            s.escalations_per_day(org, since, until),
            s.active_per_day(org, since, until),
            s.texting_per_day(org, since, until),
            s.response_times(org, since, until, ResponseGroup::ClinicalRole),
            s.response_times(org, since, until, ResponseGroup::Department),
        )?;
        let mut by_role = Vec::new();
        let mut by_dept = Vec::new();
        for m in messages {
            for role in m.roles.split(',').filter(|r| Role::parse(r).is_some()) {
                by_role.push(DayCount {
                    day: m.day,
                    key: Some(role.to_owned()),
                    count: m.count,
                });
            }
            let dept = m
                .role_id
                .as_ref()
                .and_then(|r| role_dept.get(r))
                .or_else(|| m.care_team_id.as_ref().and_then(|t| team_dept.get(t)));
            by_dept.push(DayCount {
                day: m.day,
                key: dept.cloned(),
                count: m.count,
            });
        }
        let label = |labels: &'static [(&'static str, &'static str)]| {
            move |k: Option<&str>| {
                labels
                    .iter()
                    .find(|(key, _)| Some(*key) == k)
                    .map(|(_, l)| (*l).to_owned())
                    .unwrap_or_else(|| k.unwrap_or("").to_owned())
            }
        };
        const ESCALATION: &[(&str, &str)] = &[
            ("stat", "STAT"),
            ("urgent", "Urgent"),
            ("escalated", "Escalated"),
            ("unacknowledged", "Unacknowledged"),
        ];
        const ACTIVE: &[(&str, &str)] = &[("users", "Users"), ("devices", "Devices")];
        const TEXTING: &[(&str, &str)] = &[
            ("sent", "Texts sent"),
            ("failed", "Texts failed"),
            ("opt_outs", "Opt-outs"),
            ("verifications", "Link verifications"),
        ];
        let keys =
            |l: &[(&'static str, &'static str)]| l.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        Ok(ActivityReport {
            since,
            until,
            days: (first..=last).map(date).collect(),
            messages_by_role: series(&by_role, first, days, &[], |k| k.unwrap_or("").to_owned()),
            messages_by_department: series(&by_dept, first, days, &[], department),
            responses_by_role: summaries(by_clinical_role, clinical_role),
            responses_by_department: summaries(by_department, department),
            escalations: series(
                &escalations,
                first,
                days,
                &keys(ESCALATION),
                label(ESCALATION),
            ),
            active: series(&active, first, days, &keys(ACTIVE), label(ACTIVE)),
            patient_texting: series(&texting, first, days, &keys(TEXTING), label(TEXTING)),
        })
    }
}
