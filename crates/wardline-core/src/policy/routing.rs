//! The routing policy's rules: its validation, the escalation ladder that
//! applies to a message and the routing record planned for a message at its
//! submission (the durable job the escalation worker runs).

use uuid::Uuid;
use wardline_proto::messaging::Priority;
use wardline_proto::routing::*;
use wardline_proto::{OrgId, UserId};
use wardline_store::routing::RoutedRow;

use crate::error::{ApiError, ApiResult};

const DAY: i64 = 86_400;

/// Checks an escalation ladder: 1–10 steps, 15 s to a day, strictly later
/// each, and no `handoff` (which the server records, never schedules).
pub fn validate_escalation(p: &EscalationPolicy) -> ApiResult<()> {
    for (which, ladder) in [("stat", &p.stat), ("urgent", &p.urgent)] {
        if ladder.len() > 10 {
            return Err(ApiError::validation(format!(
                "escalation.{which} has at most 10 steps"
            )));
        }
        let mut last = 0;
        for s in ladder {
            if !(15..=DAY).contains(&s.after_secs) || s.after_secs <= last {
                return Err(ApiError::validation(format!(
                    "escalation.{which}: after_secs must be 15..=86400 and increase along the ladder"
                )));
            }
            if matches!(
                s.action,
                EscalationAction::Handoff
                    | EscalationAction::Acknowledged
                    | EscalationAction::Unanswered
            ) {
                return Err(ApiError::validation(format!(
                    "escalation.{which}: {} is recorded by the server, not a step",
                    s.action.as_str()
                )));
            }
            last = s.after_secs;
        }
    }
    Ok(())
}

pub fn validate_policy(p: &RoutingPolicy) -> ApiResult<()> {
    validate_escalation(&p.escalation).map_err(|e| e.at_field("routing.escalation"))?;
    if !(30..=3600).contains(&p.renotify_min_secs) {
        return Err(ApiError::invalid_field(
            "routing.renotify_min_secs",
            "routing.renotify_min_secs must be 30..=3600",
        ));
    }
    if !(1..=30).contains(&p.sms_per_hour) {
        return Err(ApiError::invalid_field(
            "routing.sms_per_hour",
            "routing.sms_per_hour must be 1..=30",
        ));
    }
    if !(5..=720).contains(&p.break_glass_minutes) {
        return Err(ApiError::invalid_field(
            "routing.break_glass_minutes",
            "routing.break_glass_minutes must be 5..=720",
        ));
    }
    if let Some(q) = &p.quiet_hours {
        crate::policy::patients::quiet_hours_end(q, 0).map_err(|e| {
            ApiError::invalid_field(
                "routing.quiet_hours",
                format!("routing.quiet_hours: {}", e.message),
            )
        })?;
    }
    Ok(())
}

/// The ladder that applies to a message: its role's own, else the policy's.
pub fn ladder(
    policy: &RoutingPolicy,
    role: Option<&ClinicalRole>,
    priority: Priority,
) -> Vec<EscalationStep> {
    role.and_then(|r| r.escalation.as_ref())
        .unwrap_or(&policy.escalation)
        .ladder(priority)
        .to_vec()
}

/// The role a conversation was opened to page, and who it resolved to.
#[derive(Debug, Clone)]
pub struct RoleRoute {
    pub role_id: Uuid,
    pub resolved_user: Option<UserId>,
    pub resolved_via: Option<String>,
    pub department_id: Option<Uuid>,
}

/// The routing record of a message being submitted, or none for a routine
/// message outside a role conversation. `open`: the conversation's open
/// escalation, which a further urgent message joins instead of starting a
/// second ladder (one alert stream per conversation, not one per message).
#[allow(clippy::too_many_arguments)]
pub fn plan_routed(
    message: Uuid,
    org: OrgId,
    conversation: Uuid,
    sender: UserId,
    priority: Priority,
    routed: Option<RoleRoute>,
    steps: &[EscalationStep],
    open: Option<&RoutedRow>,
    recipients: Vec<UserId>,
    now: i64,
) -> Option<RoutedRow> {
    if priority == Priority::Routine && routed.is_none() {
        return None;
    }
    let (role_id, resolved_user, resolved_via, department_id) = match routed {
        Some(r) => (
            Some(r.role_id),
            r.resolved_user,
            r.resolved_via,
            r.department_id,
        ),
        None => (None, None, None, None),
    };
    let (state, merged_into, next_at) = match (priority, open) {
        (Priority::Routine, _) => (EscalationState::None, None, None),
        (_, Some(o)) => (EscalationState::Merged, Some(o.message_id), None),
        (_, None) => (
            EscalationState::Open,
            None,
            steps.first().map(|s| now + s.after_secs),
        ),
    };
    Some(RoutedRow {
        message_id: message,
        org_id: org,
        conversation_id: conversation,
        sender_user: sender,
        priority,
        role_id,
        resolved_user,
        resolved_via,
        department_id,
        state,
        step: 0,
        next_at,
        lease_until: None,
        notified: recipients,
        merged_into,
        escalations: 0,
        acked_by: None,
        acked_device: None,
        acked_at: None,
        created_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_must_climb() {
        let mut p = EscalationPolicy::default();
        assert!(validate_escalation(&p).is_ok());
        p.stat[1].after_secs = p.stat[0].after_secs;
        assert!(validate_escalation(&p).is_err());
        let mut p = EscalationPolicy::default();
        p.urgent[0].action = EscalationAction::Handoff;
        assert!(validate_escalation(&p).is_err());
    }
}
