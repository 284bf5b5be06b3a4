//! The response report: sent → read → acknowledged times by role and
//! department over a time range.

use super::*;

impl RoutingService {
    pub async fn report(&self, org: OrgId, q: ReportQuery) -> ApiResult<ResponseReport> {
        let until = q.until.unwrap_or_else(|| self.clock.now());
        let since = q.since.unwrap_or(until.saturating_sub(7 * DAY));
        if until <= since || until.saturating_sub(since) > 366 * DAY {
            return Err(ApiError::bad_request(
                "until must be after since, at most 366 days later",
            ));
        }
        let dir = self.directory(org).await?;
        let role_name: HashMap<Uuid, String> =
            dir.roles.iter().map(|r| (r.id, r.name.clone())).collect();
        let dept_name: HashMap<Uuid, String> = dir
            .departments
            .iter()
            .map(|d| (d.id, d.name.clone()))
            .collect();
        let rows = self.store.routed_between(org, since, until).await?;
        let policy = self.policy(org).await?;
        #[derive(Default)]
        struct Acc {
            messages: i64,
            read: Vec<i64>,
            acked: Vec<i64>,
            escalated: i64,
            unacknowledged: i64,
            unanswered: i64,
        }
        let mut by_role: BTreeMap<Option<Uuid>, Acc> = BTreeMap::new();
        let mut by_dept: BTreeMap<Option<Uuid>, Acc> = BTreeMap::new();
        let mut waiting = Vec::new();
        let mut escalated = Vec::new();
        let mut unanswered = Vec::new();
        for r in &rows {
            // One escalation stream counts once.
            if r.merged_into.is_some() {
                continue;
            }
            let first_read = self
                .messages
                .receipts(r.message_id)
                .await?
                .iter()
                .filter(|x| x.user_id != r.sender_user)
                .filter_map(|x| x.read_at)
                .min();
            for acc in [
                by_role.entry(r.role_id).or_default(),
                by_dept.entry(r.department_id).or_default(),
            ] {
                acc.messages += 1;
                if let Some(t) = first_read {
                    acc.read.push(t - r.created_at);
                }
                if let Some(t) = r.acked_at {
                    acc.acked.push(t - r.created_at);
                }
                acc.escalated += i64::from(r.escalations > 0);
                acc.unacknowledged += i64::from(matches!(
                    r.state,
                    EscalationState::Open | EscalationState::Exhausted
                ));
                acc.unanswered += i64::from(r.state == EscalationState::Exhausted);
            }
            let is_waiting = matches!(r.state, EscalationState::Open | EscalationState::Exhausted);
            if is_waiting || r.escalations > 0 {
                let view = self.escalation_with(r, &policy).await?;
                if r.escalations > 0 {
                    escalated.push(view.clone());
                }
                if r.state == EscalationState::Exhausted {
                    unanswered.push(view.clone());
                }
                if is_waiting {
                    waiting.push(view);
                }
            }
        }
        let times =
            |id: Option<Uuid>, names: &HashMap<Uuid, String>, none: &str, a: Acc| ResponseTimes {
                id,
                name: id
                    .and_then(|i| names.get(&i).cloned())
                    .unwrap_or_else(|| none.to_owned()),
                messages: a.messages,
                read: a.read.len() as i64,
                acknowledged: a.acked.len() as i64,
                escalated: a.escalated,
                unacknowledged: a.unacknowledged,
                unanswered: a.unanswered,
                median_read_secs: percentile(a.read.clone(), 50),
                median_ack_secs: percentile(a.acked.clone(), 50),
                p90_ack_secs: percentile(a.acked, 90),
            };
        Ok(ResponseReport {
            since,
            until,
            by_role: by_role
                .into_iter()
                .map(|(id, a)| times(id, &role_name, "(not sent to a role)", a))
                .collect(),
            by_department: by_dept
                .into_iter()
                .map(|(id, a)| times(id, &dept_name, "(no department)", a))
                .collect(),
            unacknowledged: waiting,
            unanswered,
            escalated,
        })
    }
}

/// Nearest-rank percentile of `v` (none when empty).
pub(super) fn percentile(mut v: Vec<i64>, pct: usize) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = (pct * v.len()).div_ceil(100).max(1);
    Some(v[rank - 1])
}
