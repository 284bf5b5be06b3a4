//! Acknowledgement and escalation of urgent and STAT messages.
//!
//! Each such message gets a `routed_messages` row in its submission's
//! transaction; the row is the durable job: `next_at` says when the next
//! ladder step is due, `lease_until` which node is running it. Any node's
//! ticker claims due rows, so a restart (or a dead node) only delays a step
//! until the next tick after its lease lapses.

use crate::push::{Audience, PushKind};
use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;
use wardline_proto::UserId;
use wardline_proto::audit::AuditAction;
use wardline_proto::messaging::{MessageKind, Priority};
use wardline_proto::routing::*;

use super::RoutingService;
use crate::audit::NewEvent;
use crate::authz::Principal;
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::policy::routing::ladder;
use crate::worker::{Every, Worker};
use wardline_store::StoreError;
use wardline_store::messaging::MessageRow;
use wardline_store::routing::{EscalationEventRow, RoutedRow};

/// How often each node looks for due steps (and expired break-glass grants).
pub const TICK: Duration = Duration::from_secs(2);
/// How often a node looks for schedule feeds due for a refresh.
const FEED_TICK: Duration = Duration::from_secs(5);
/// How often shift hand-offs and break-glass expiry are looked at.
const HOUSEKEEPING_TICK: Duration = Duration::from_secs(5);
const HOUSEKEEPING_LEASE: &str = "routing-housekeeping";
/// How long a claimed step is this node's before another may take it over.
const LEASE_SECS: i64 = 30;
const CLAIM_BATCH: i64 = 50;
/// Most people a department step brings in.
const MAX_DEPARTMENT: usize = 20;

fn alert_text(priority: Priority, waited: i64, action: EscalationAction) -> String {
    let p = match priority {
        Priority::Stat => "STAT",
        Priority::Urgent => "Urgent",
        Priority::Routine => "Routine",
    };
    let mins = (waited / 60).max(1);
    match action {
        EscalationAction::Handoff => format!("{p} message handed over to you at shift change"),
        EscalationAction::Acknowledged => format!("{p} message acknowledged"),
        EscalationAction::Unanswered => format!(
            "{p} message: nobody acknowledged it in {mins} min and every escalation step has run; act on it another way"
        ),
        _ => format!("{p} message not acknowledged for {mins} min"),
    }
}

impl RoutingService {
    async fn ladder_for(
        &self,
        r: &RoutedRow,
        policy: &RoutingPolicy,
    ) -> ApiResult<Vec<EscalationStep>> {
        let role = match r.role_id {
            Some(id) => match self.store.get_role(r.org_id, id).await {
                Ok(role) => Some(role),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        Ok(ladder(policy, role.as_ref(), r.priority))
    }

    /// The wire view of a routed message: state, who was alerted, history.
    pub async fn escalation_of(&self, r: &RoutedRow) -> ApiResult<Escalation> {
        self.escalation_with(r, &self.policy(r.org_id).await?).await
    }

    /// As [`Self::escalation_of`], under a policy the caller has read.
    pub(super) async fn escalation_with(
        &self,
        r: &RoutedRow,
        policy: &RoutingPolicy,
    ) -> ApiResult<Escalation> {
        let steps = self.ladder_for(r, policy).await?;
        Ok(Escalation {
            message_id: r.message_id,
            conversation_id: r.conversation_id,
            sender_user: r.sender_user.into(),
            priority: r.priority,
            role_id: r.role_id,
            resolved_user: r.resolved_user.map(Into::into),
            resolved_via: r.resolved_via.as_deref().and_then(ResolvedVia::parse),
            state: r.state,
            merged_into: r.merged_into,
            next_at: r.next_at,
            next_action: (r.state == EscalationState::Open)
                .then(|| steps.get(r.step as usize).map(|s| s.action))
                .flatten(),
            notified: r.notified.clone().into_iter().map(Into::into).collect(),
            events: self
                .store
                .escalation_events(r.message_id)
                .await?
                .into_iter()
                .map(|e| EscalationEvent {
                    at: e.at,
                    action: e.action,
                    users: e.users.into_iter().map(Into::into).collect(),
                    sms: e.sms,
                })
                .collect(),
            acknowledged_by: r.acked_by.map(Into::into),
            acknowledged_device: r.acked_device.map(Into::into),
            acknowledged_at: r.acked_at,
            created_at: r.created_at,
        })
    }

    async fn member_routed(
        &self,
        p: &Principal,
        conversation: Uuid,
        message: Uuid,
    ) -> ApiResult<RoutedRow> {
        if !self.messages.is_member(conversation, p.user_id).await? {
            return Err(ApiError::not_found("conversation"));
        }
        match self.store.get_routed(p.org_id, message).await {
            Ok(r) if r.conversation_id == conversation => Ok(r),
            Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found(
                "urgent, STAT or role-addressed message",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Where a message's escalation stands (any member; the sender watches it).
    pub async fn escalation(
        &self,
        p: &Principal,
        conversation: Uuid,
        message: Uuid,
    ) -> ApiResult<Escalation> {
        let r = self.member_routed(p, conversation, message).await?;
        self.escalation_of(&r).await
    }

    /// A recipient acknowledges: the escalation (and any merged into it)
    /// stops, recorded with who and on which device.
    pub async fn acknowledge(
        &self,
        p: &Caller,
        conversation: Uuid,
        message: Uuid,
    ) -> ApiResult<Escalation> {
        let r = self.member_routed(p, conversation, message).await?;
        let device = self.messaging.device_of(p).await?;
        if r.sender_user == p.user_id {
            return Err(ApiError::forbidden(
                "the sender cannot acknowledge their own message",
            ));
        }
        let root = r.merged_into.unwrap_or(r.message_id);
        p.audit.target("message", root);
        match r.state {
            EscalationState::None => {
                return Err(ApiError::conflict(
                    "a routine message needs no acknowledgement",
                ));
            }
            EscalationState::Acknowledged => {
                return Err(ApiError::conflict("already acknowledged"));
            }
            _ => {}
        }
        let now = self.clock.now();
        if !self
            .store
            .acknowledge(root, p.user_id, device.id, now)
            .await?
        {
            return Err(ApiError::conflict("already acknowledged"));
        }
        // The sender and everyone alerted stand down.
        let closed = self.store.get_routed(p.org_id, root).await?;
        let others: Vec<UserId> = closed
            .notified
            .iter()
            .copied()
            .filter(|u| *u != p.user_id)
            .collect();
        self.alert(
            &closed,
            EscalationAction::Acknowledged,
            &others,
            &[],
            Some(p.user_id),
            now,
        )
        .await?;
        let r = self.store.get_routed(p.org_id, message).await?;
        self.escalation_of(&r).await
    }

    // ------------------------------------------------------------- the job

    /// The loops every serving node runs: due ladder steps every tick; shift
    /// hand-offs and expired break-glass grants on a slower loop (one node
    /// at a time, under a lease); schedule feeds on their own loop (a slow
    /// calendar server must not hold up an escalation).
    pub fn workers(self, node: String) -> Vec<Box<dyn Worker>> {
        let feeds = self.clone();
        let housekeeping = self.clone();
        let node = std::sync::Arc::new(node);
        vec![
            Every::new("schedule-feeds", FEED_TICK, move || {
                let feeds = feeds.clone();
                async move {
                    if let Err(e) = feeds.refresh_feeds().await {
                        tracing::error!(error = %e.message, "schedule feed refresh failed");
                    }
                }
            }),
            Every::new("routing-housekeeping", HOUSEKEEPING_TICK, move || {
                let (housekeeping, node) = (housekeeping.clone(), node.clone());
                async move {
                    if let Err(e) = housekeeping.housekeeping(&node).await {
                        tracing::error!(error = %e.message, "routing housekeeping failed");
                    }
                }
            }),
            Every::new("escalation", TICK, move || {
                let due = self.clone();
                async move {
                    if let Err(e) = due.run_due().await {
                        tracing::error!(error = %e.message, "escalation run failed");
                    }
                }
            }),
        ]
    }

    /// Shift hand-offs and expired break-glass grants, on the node holding
    /// the lease.
    pub async fn housekeeping(&self, node: &str) -> ApiResult<()> {
        let now = self.clock.now();
        let hold = HOUSEKEEPING_TICK.as_secs() as i64 * 3;
        if !self
            .leases
            .take_lease(HOUSEKEEPING_LEASE, node, now, now + hold)
            .await?
        {
            return Ok(());
        }
        self.handoffs().await?;
        self.end_expired_grants().await
    }

    pub async fn run_due(&self) -> ApiResult<()> {
        // A backlog (a burst of STATs, or steps that fell due while no node
        // ran) drains in batches within one tick, not one batch per tick.
        loop {
            let now = self.clock.now();
            let claimed = self
                .store
                .claim_due(now, now + LEASE_SECS, CLAIM_BATCH)
                .await?;
            let full = claimed.len() as i64 == CLAIM_BATCH;
            for r in claimed {
                let id = r.message_id;
                if let Err(e) = self.step(r).await {
                    // The lease lapses and the step is tried again.
                    tracing::error!(error = %e.message, message = %id, "escalation step failed");
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Runs the due step of one claimed escalation.
    async fn step(&self, mut r: RoutedRow) -> ApiResult<()> {
        let policy = self.policy(r.org_id).await?;
        let steps = self.ladder_for(&r, &policy).await?;
        let now = self.clock.now();
        let Some(step) = steps.get(r.step as usize).copied() else {
            r.state = EscalationState::Exhausted;
            r.next_at = None;
            if self.store.advance(&r, r.step, None, None).await? {
                self.unanswered(&r, &policy, now).await?;
            }
            return Ok(());
        };
        let mut event = EscalationEventRow {
            message_id: r.message_id,
            at: now,
            action: step.action,
            users: Vec::new(),
            sms: false,
        };
        let mut added = Vec::new();
        let mut texts = Vec::new();
        match step.action {
            EscalationAction::Renotify => {
                let last = self
                    .store
                    .escalation_events(r.message_id)
                    .await?
                    .last()
                    .map(|e| e.at);
                // Throttle: no second alert within the minimum gap.
                if last.is_none_or(|t| now - t >= policy.renotify_min_secs) {
                    event.users = r.notified.clone();
                }
            }
            EscalationAction::Backup => {
                if let Some(role) = r.role_id
                    && let Some(s) = self.shift_at(r.org_id, role, now).await?
                    && let Some(b) = s.backup_user_id
                    && self.unreachable(r.org_id, b.into(), now).await?.is_none()
                {
                    added.push(b);
                }
            }
            EscalationAction::FallbackRole => {
                if let Some(role) = r.role_id
                    && let Some(f) = self.store.get_role(r.org_id, role).await?.fallback_role_id
                    && let Ok(res) = self.resolve(r.org_id, f, r.sender_user).await
                {
                    added.push(res.user.into());
                }
            }
            EscalationAction::Department => {
                if let Some(d) = r.department_id {
                    for role in self.store.list_roles(r.org_id).await? {
                        if role.department_id != Some(d) {
                            continue;
                        }
                        for h in role.holders {
                            if !added.contains(&h)
                                && self.unreachable(r.org_id, h.into(), now).await?.is_none()
                            {
                                added.push(h);
                            }
                        }
                    }
                    added.truncate(MAX_DEPARTMENT);
                }
            }
            EscalationAction::Sms => {
                event.sms = true;
                texts = self.text_targets(&r, &policy, now).await?;
                event.users = texts.iter().map(|(u, _)| *u).collect();
            }
            EscalationAction::Handoff
            | EscalationAction::Acknowledged
            | EscalationAction::Unanswered => {}
        }
        added.retain(|u| *u != r.sender_user && !r.notified.contains(&Into::into(*u)));
        for u in &added {
            self.add_member(r.org_id, r.conversation_id, (*u).into(), r.sender_user)
                .await?;
            r.notified.push((*u).into());
        }
        if !added.is_empty() {
            event.users = added.clone().into_iter().map(Into::into).collect();
        }
        // A step that reached nobody (no backup on shift, no fallback role,
        // nobody with a phone) is recorded as such — its event names nobody —
        // and the next step runs at once instead of at its time: waiting
        // would only delay the one that can reach someone. A throttled
        // re-notify did reach people a moment ago, so it is not "nobody".
        let throttled = step.action == EscalationAction::Renotify && !r.notified.is_empty();
        let reached_nobody = event.users.is_empty() && !throttled;
        r.step += 1;
        r.escalations += 1;
        match steps.get(r.step as usize) {
            Some(_) if reached_nobody => r.next_at = Some(now),
            Some(next) => r.next_at = Some(r.created_at + next.after_secs),
            None => {
                r.state = EscalationState::Exhausted;
                r.next_at = None;
            }
        }
        if !self
            .store
            .advance(&r, r.step - 1, None, Some(&event))
            .await?
        {
            return Ok(()); // acknowledged meanwhile
        }
        if !event.users.is_empty() && !event.sms {
            self.alert(
                &r,
                step.action,
                &event.users,
                &added.iter().copied().map(Into::into).collect::<Vec<_>>(),
                None,
                now,
            )
            .await?;
        }
        self.send_texts(&r, &texts).await?;
        self.audit
            .record(
                NewEvent {
                    org_id: Some(r.org_id),
                    ..NewEvent::service("escalation", AuditAction::EscalationStep)
                }
                .target("message", r.message_id)
                .reason(format!(
                    "{}: {}{}",
                    step.action.as_str(),
                    if reached_nobody {
                        "reached nobody".to_owned()
                    } else {
                        format!("{} user(s)", event.users.len())
                    },
                    if event.sms { " texted" } else { "" }
                )),
            )
            .await?;
        if r.state == EscalationState::Exhausted {
            self.unanswered(&r, &policy, now).await?;
        }
        Ok(())
    }

    /// The ladder ran out and nobody acknowledged: the sender, everyone
    /// alerted and (policy `routing.unanswered_to_department`) the holders of
    /// the roles of the paged role's department are told at once, and it is
    /// audited as a clinical-safety event (the response report lists it
    /// under `unanswered`). The department is told, not added: its people
    /// act on the alert (call the sender, take the patient), the ladder's
    /// `department` step is what brings them into the conversation.
    async fn unanswered(&self, r: &RoutedRow, policy: &RoutingPolicy, now: i64) -> ApiResult<()> {
        let mut told = r.notified.clone();
        let mut department = 0;
        if policy.unanswered_to_department
            && let Some(d) = r.department_id
        {
            for role in self.store.list_roles(r.org_id).await? {
                if role.department_id != Some(d) {
                    continue;
                }
                for h in role.holders {
                    if h != r.sender_user
                        && !told.contains(&Into::into(h))
                        && department < MAX_DEPARTMENT
                    {
                        told.push(h.into());
                        department += 1;
                    }
                }
            }
        }
        self.alert(r, EscalationAction::Unanswered, &told, &[], None, now)
            .await?;
        self.audit
            .record(
                NewEvent {
                    org_id: Some(r.org_id),
                    ..NewEvent::service("escalation", AuditAction::EscalationUnanswered)
                }
                .target("message", r.message_id)
                .reason(format!(
                    "{} message unanswered after {} step(s) and {} s; {} user(s) alerted; {} of the department told",
                    r.priority.as_str(),
                    r.step,
                    now - r.created_at,
                    r.notified.len(),
                    department
                )),
            )
            .await?;
        Ok(())
    }

    /// Puts an alert entry (no content) in the inboxes of `users`' devices
    /// and the sender's (who watches the escalation, and shares the message
    /// again with anyone `added`, who cannot read what came before them);
    /// `by`: who acknowledged (stand-down alerts).
    async fn alert(
        &self,
        r: &RoutedRow,
        action: EscalationAction,
        users: &[UserId],
        added: &[UserId],
        by: Option<UserId>,
        now: i64,
    ) -> ApiResult<()> {
        let notice = AlertNotice {
            message_id: r.message_id,
            priority: r.priority,
            action,
            added: added.iter().copied().map(Into::into).collect(),
            text: alert_text(r.priority, now - r.created_at, action),
            by: by.map(Into::into),
            sender: Some(r.sender_user.into()),
        };
        let c = self
            .messages
            .get_conversation(r.org_id, r.conversation_id)
            .await?;
        let mut devices = Vec::new();
        for u in users.iter().chain(std::iter::once(&r.sender_user)) {
            for d in self.messages.list_user_devices(r.org_id, *u).await? {
                if !devices.contains(&d.device.id) {
                    devices.push(d.device.id);
                }
            }
        }
        let row = MessageRow {
            priority: r.priority,
            alert: Some(serde_json::to_string(&notice).expect("alert serialises")),
            ..MessageRow::notice(
                MessageKind::Alert,
                r.conversation_id,
                c.epoch,
                r.sender_user,
                now,
            )
        };
        let woken = self.store.insert_notice(&row, &devices).await?;
        self.messaging.wake(&woken).await;
        // Web Push: whoever is alerted hears that a message waits for them;
        // when the ladder ran out, its sender hears that too. A stand-down
        // needs no one woken.
        let push = self.messaging.push();
        match action {
            EscalationAction::Acknowledged => {}
            EscalationAction::Unanswered => {
                let sender = Audience::Only(r.sender_user);
                push.send(&woken, PushKind::Unanswered, r.message_id, sender);
                let alerted = Audience::AllBut(r.sender_user);
                push.send(&woken, PushKind::Waiting, r.message_id, alerted);
            }
            _ => {
                let alerted = Audience::AllBut(r.sender_user);
                push.send(&woken, PushKind::Waiting, r.message_id, alerted);
            }
        }
        Ok(())
    }

    /// Everyone alerted so far who has a phone, with their numbers: urgent
    /// (not STAT) texts wait out quiet hours; nobody gets more than the
    /// policy's texts per hour. Decided before the step is stored, sent after
    /// (so an acknowledgement that wins the race sends nothing).
    async fn text_targets(
        &self,
        r: &RoutedRow,
        policy: &RoutingPolicy,
        now: i64,
    ) -> ApiResult<Vec<(UserId, String)>> {
        if r.priority != Priority::Stat
            && let Some(q) = &policy.quiet_hours
            && crate::policy::patients::quiet_hours_end(q, now)? > now
        {
            return Ok(Vec::new());
        }
        let mut targets = Vec::new();
        for u in &r.notified {
            if self.store.sms_sent_to(*u, now - 3600).await? >= policy.sms_per_hour {
                continue;
            }
            if let Some(phone) = self.directory.user(r.org_id, *u).await?.phone {
                targets.push((*u, phone));
            }
        }
        Ok(targets)
    }

    /// A notice and a sign-in link, never content.
    async fn send_texts(&self, r: &RoutedRow, targets: &[(UserId, String)]) -> ApiResult<()> {
        for (_, phone) in targets {
            let body = format!(
                "Wardline: {} is waiting for you. Sign in to read and acknowledge it: {}/alerts/{}",
                match r.priority {
                    Priority::Stat => "a STAT message",
                    _ => "an urgent message",
                },
                self.public_url.trim_end_matches('/'),
                r.message_id
            );
            self.patients.staff_alert(r.org_id, phone, &body).await?;
        }
        Ok(())
    }

    /// The shift changed hands while a message to its role waited: the
    /// incoming person is brought in and alerted.
    async fn handoffs(&self) -> ApiResult<()> {
        let now = self.clock.now();
        // Who covers each role now, looked up once per role.
        let mut covering: HashMap<Uuid, Option<UserId>> = HashMap::new();
        for mut r in self.store.open_role_escalations().await? {
            let Some(role) = r.role_id else { continue };
            let u = match covering.get(&role) {
                Some(u) => *u,
                None => {
                    let u = match self.shift_at(r.org_id, role, now).await? {
                        Some(s)
                            if self
                                .unreachable(r.org_id, s.user_id.into(), now)
                                .await?
                                .is_none() =>
                        {
                            Some(s.user_id)
                        }
                        _ => None,
                    };
                    covering.insert(role, u.map(Into::into));
                    u.map(Into::into)
                }
            };
            let Some(u) = u else { continue };
            if u == r.sender_user || r.notified.contains(&u) {
                continue;
            }
            self.add_member(r.org_id, r.conversation_id, u, r.sender_user)
                .await?;
            r.notified.push(u);
            let event = EscalationEventRow {
                message_id: r.message_id,
                at: now,
                action: EscalationAction::Handoff,
                users: vec![u],
                sms: false,
            };
            // Not while a step holds the row: it will be seen next round.
            if self
                .store
                .advance(&r, r.step, Some(now), Some(&event))
                .await?
            {
                self.alert(&r, EscalationAction::Handoff, &[u], &[u], None, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Ends break-glass grants past their time: the user leaves the
    /// conversation (members' clients commit the removal).
    async fn end_expired_grants(&self) -> ApiResult<()> {
        let now = self.clock.now();
        for g in self.store.expired_grants(now).await? {
            let c = self
                .messages
                .get_conversation(g.org_id, g.conversation_id)
                .await?;
            let notice = MessageRow::membership_notice(c.id, c.epoch, g.user_id, now);
            let (_, woken) = self
                .messages
                .remove_member(c.id, g.user_id, &notice)
                .await?;
            self.messaging.wake(&woken).await;
            if self.store.end_grant(g.id, now).await? {
                self.audit
                    .record(
                        NewEvent {
                            org_id: Some(g.org_id),
                            ..NewEvent::service("break-glass", AuditAction::BreakGlassExpire)
                        }
                        .target("break_glass", g.id),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
