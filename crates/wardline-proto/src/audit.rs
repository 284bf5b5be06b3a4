//! The audit trail: events, their canonical form (what the Merkle leaf hashes),
//! search filters, checkpoints and proofs.
//!
//! An event never carries message content or PHI values: only ids (users,
//! devices, conversations, patients), the action, the outcome and a short
//! machine reason.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A signed-in user (`actor_id` is the user id, `device_id` their device).
    User,
    /// The server itself or an integration (`actor_id` names it, e.g. `retention`).
    Service,
    /// No one identified yet (a failed sign-in for an unknown account).
    Anonymous,
    /// A patient on their secure-message page or texting from their number
    /// (`actor_id` is the patient id).
    Patient,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Service => "service",
            ActorKind::Anonymous => "anonymous",
            ActorKind::Patient => "patient",
        }
    }

    pub fn parse(s: &str) -> Option<ActorKind> {
        [
            ActorKind::User,
            ActorKind::Service,
            ActorKind::Anonymous,
            ActorKind::Patient,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Attempted and failed (wrong password, wrong code).
    Failure,
    /// Refused by authorization.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Success, Outcome::Failure, Outcome::Denied]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

macro_rules! actions {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// What happened. The string form (`auth.login`) is what is stored, hashed and
        /// searched; variants are only ever added, never renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum AuditAction {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)*
        }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $name),* }
            }

            pub fn parse(s: &str) -> Option<AuditAction> {
                match s { $($name => Some(AuditAction::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    Setup => "org.setup", "The first organisation and administrator were created.";
    Login => "auth.login", "Password sign-in (success, or failure with the reason).";
    MfaVerify => "auth.mfa.verify", "Second-factor code at sign-in.";
    MfaEnrolStart => "auth.mfa.enrol_start", "TOTP enrolment started.";
    MfaEnrolled => "auth.mfa.enrolled", "TOTP enrolment confirmed.";
    MfaReset => "auth.mfa.reset", "An administrator reset a user's second factor.";
    PasswordChange => "auth.password.change", "A user changed their password.";
    SessionCreate => "auth.session.create", "A session was issued.";
    SessionView => "auth.session.view", "A user looked at their own session.";
    SessionExpire => "auth.session.expire", "A session reached its idle timeout or absolute lifetime and was ended.";
    SocketTicketIssue => "auth.socket_ticket.issue", "A one-time ticket to open a sync socket from a browser was issued to a session.";
    SessionRevoke => "auth.session.revoke", "A session was revoked (sign-out or by an administrator).";
    SessionsList => "auth.sessions.list", "Someone listed a user's sessions.";
    OrgView => "org.view", "The organisation and its policy were read.";
    OrgPolicyUpdate => "org.policy.update", "The organisation's policy changed.";
    UsersList => "user.list", "The directory was listed.";
    UserView => "user.view", "One user's record was read.";
    UserCreate => "user.create", "A user was created.";
    UserUpdate => "user.update", "A user's name, phone or roles changed.";
    UserSuspend => "user.suspend", "A user was suspended.";
    UserReactivate => "user.reactivate", "A user was reactivated.";
    UserDeprovision => "user.deprovision", "A user was deprovisioned.";
    KekRotate => "admin.kek.rotate", "The key-encryption key was rotated.";
    AuditSearch => "audit.search", "Someone searched the audit trail.";
    AuditAccessReport => "audit.access_report", "Someone ran a patient access report.";
    AuditExport => "audit.export", "Someone exported audit events.";
    AuditProof => "audit.proof", "Someone asked for a checkpoint or a proof.";
    AuditPurge => "audit.purge", "Entries past the retention period were purged.";
    DeviceRegister => "device.register", "A device registered for messaging (its identity key and key packages).";
    DeviceList => "device.list", "Someone listed a user's devices.";
    KeyPackagesUpload => "device.key_packages.upload", "A device uploaded key packages.";
    KeyPackagesClaim => "device.key_packages.claim", "Key packages were handed out to add devices to a conversation.";
    ConversationCreate => "conversation.create", "A conversation was created (or the existing direct one returned).";
    ConversationList => "conversation.list", "A user listed their conversations.";
    ConversationView => "conversation.view", "A conversation's details were read.";
    ConversationMemberAdd => "conversation.member.add", "A member was added to a conversation.";
    ConversationMemberRemove => "conversation.member.remove", "A member was removed from (or left) a conversation.";
    ConversationRefound => "conversation.refound", "A conversation's group was started again from a device waiting to join it (no member device was left).";
    MessageSubmit => "message.submit", "An MLS commit or (encrypted) message was submitted.";
    MessageSync => "message.sync", "A device fetched its inbox or opened its sync socket.";
    MessageAck => "message.ack", "A device acknowledged its inbox (delivery receipts).";
    MessageRead => "message.read", "A device marked a conversation read (read receipts).";
    ReceiptsView => "message.receipts.view", "Someone looked at a message's receipts.";
    AttachmentUpload => "attachment.upload", "An encrypted attachment was uploaded.";
    AttachmentDownload => "attachment.download", "An encrypted attachment was downloaded.";
    MessagingPreferences => "messaging.preferences", "A user read or changed their messaging preferences.";
    PatientCreate => "patient.create", "A patient record was created.";
    PatientsList => "patient.list", "Someone listed the organisation's patients.";
    PatientView => "patient.view", "One patient's record was read.";
    ConsentRecord => "patient.consent.record", "Texting consent was given or withdrawn for a patient.";
    ConsentView => "patient.consent.view", "Someone read a patient's consent history.";
    PatientTextSend => "patient.text.send", "A template was sent to a patient (plain SMS, or a secure message behind a link).";
    PatientMessageSend => "patient.message.send", "A secure message was written to a patient.";
    PatientThreadView => "patient.thread.view", "Someone in the practice read a patient thread.";
    PatientThreadsList => "patient.threads.list", "Someone listed the practice's patient threads.";
    StaffNoticesList => "staff.notices.list", "Someone listed their unseen notices (patients who replied).";
    PatientSmsView => "patient.sms.view", "Someone listed the SMS sent to a patient and their status.";
    PatientLinksRevoke => "patient.links.revoke", "A patient's open secure links were revoked.";
    SmsTemplatesView => "sms.templates.view", "Someone listed the SMS templates.";
    SmsTemplateUpdate => "sms.template.update", "An administrator changed an SMS template.";
    SmsSend => "sms.send", "The server handed an SMS to the gateway (or gave up on it).";
    SmsInbound => "sms.inbound", "An SMS arrived from a patient's number (a keyword, or a message).";
    SmsStatus => "sms.status", "The gateway reported an SMS's delivery status.";
    PortalOpen => "portal.open", "A secure link was opened (before any identity check).";
    PortalVerify => "portal.verify", "A patient's date of birth was checked on a secure link (a code is texted on success).";
    PortalCode => "portal.code", "A patient's one-time code was checked on a secure link.";
    PortalThreadView => "portal.thread.view", "A verified patient read their messages.";
    PortalReply => "portal.reply", "A verified patient replied.";
    LifecyclePolicyView => "lifecycle.policy.view", "Someone read the organisation's lifecycle policy.";
    LifecyclePolicyUpdate => "lifecycle.policy.update", "The organisation's lifecycle policy (retention, lifespans, recall window) changed.";
    LifecyclePreview => "lifecycle.preview", "Someone previewed what a lifecycle policy would delete.";
    LifecycleRun => "lifecycle.run", "A deletion run deleted what the lifecycle policy says (its signed receipt is on the event).";
    LifecycleReceipts => "lifecycle.receipts.view", "Someone listed deletion receipts.";
    ConversationLifecycleUpdate => "conversation.lifecycle.update", "A conversation's own retention or lifespan changed.";
    LegalHoldPlace => "legal_hold.place", "A legal hold was placed.";
    LegalHoldRelease => "legal_hold.release", "A legal hold was released.";
    LegalHoldsList => "legal_hold.list", "Someone listed the legal hold register.";
    MessageRecall => "message.recall", "A message was recalled (by its sender or an administrator).";
    DeviceWipe => "device.wipe", "A device was reported lost: sessions ended, removal from its groups and a wipe ordered.";
    DeviceWipeConfirm => "device.wipe.confirm", "A wiped device confirmed that it erased its store and keys.";
    DeviceWipesList => "device.wipes.list", "Someone listed remote wipes and their confirmations.";
    DevicesManagedList => "device.managed.list", "Someone listed a user's devices with their posture, key packages, last contact and wipes.";
    DevicePostureView => "device.posture.view", "A device read the device policy and whether it meets it.";
    DevicePostureReport => "device.posture.report", "A device reported its platform, OS version and whether it is rooted or jailbroken.";
    DevicePushView => "device.push.view", "A device read the server's Web Push key and whether it is subscribed.";
    DevicePushSubscribe => "device.push.subscribe", "A device gave its browser's Web Push subscription (pushes carry no content).";
    DevicePushUnsubscribe => "device.push.unsubscribe", "A device's Web Push subscription was forgotten.";
    RoutingDirectoryView => "routing.directory.view", "Someone listed departments, care teams and clinical roles.";
    DepartmentCreate => "routing.department.create", "A department or service line was created.";
    CareTeamCreate => "routing.care_team.create", "A care team was created.";
    CareTeamMemberAdd => "routing.care_team.member.add", "Someone was added to a care team.";
    CareTeamMemberRemove => "routing.care_team.member.remove", "Someone was removed from a care team.";
    ClinicalRoleCreate => "routing.role.create", "A clinical role (who to page) was created.";
    ClinicalRoleUpdate => "routing.role.update", "A clinical role's holders, fallback or escalation ladders changed.";
    PresenceSet => "routing.presence.set", "A user set their availability.";
    DirectorySearch => "routing.directory.search", "Someone searched the directory by name, role, department or care team.";
    ShiftsView => "routing.shifts.view", "Someone read a role's on-call schedule.";
    ShiftCreate => "routing.shift.create", "An on-call shift was added.";
    ShiftDelete => "routing.shift.delete", "An on-call shift was removed.";
    ScheduleImport => "routing.schedule.import", "A role's on-call schedule was imported from iCalendar (by a user, or from its subscribed feed).";
    ScheduleFeedView => "routing.schedule.feed.view", "Someone read a role's schedule feed status.";
    ScheduleFeedDelete => "routing.schedule.feed.delete", "A role's schedule feed subscription was ended.";
    OnCallView => "routing.on_call.view", "Someone looked up who is on call for a role.";
    RolePage => "routing.page", "A user paged a clinical role: a conversation with whoever covers it was opened or reused.";
    EscalationView => "routing.escalation.view", "A member read where an urgent message's escalation stands.";
    MessageAcknowledge => "message.acknowledge", "A recipient acknowledged an urgent or STAT message (its escalation stopped).";
    EscalationStep => "routing.escalation.step", "An unacknowledged urgent or STAT message escalated a step (re-notify, backup, fallback, department, SMS).";
    EscalationUnanswered => "routing.escalation.unanswered", "Clinical-safety event: an urgent or STAT message's escalation ladder ran out and nobody acknowledged it; the sender and everyone alerted were told.";
    PatientOpen => "patient.open", "A user opened a patient's conversations (as a member, through the care team, or by break-glass).";
    BreakGlassGrant => "break_glass.grant", "Break-glass access to a patient's conversation was granted, with a stated reason; the compliance officer was notified.";
    BreakGlassExpire => "break_glass.expire", "A break-glass grant ended: the user left the conversation.";
    BreakGlassList => "break_glass.list", "Someone listed break-glass grants and their reasons.";
    NotificationsList => "routing.notifications.list", "A compliance officer read their notifications.";
    RoutingReport => "routing.report", "Someone ran the response-time and escalation report.";
    ActivityReport => "report.activity", "Someone ran the activity analytics (counts per day: messages, responses, escalations, active users, patient texting).";
}

// Written out rather than derived: the derive cannot see the serde names
// given inside the macro, and would document the variant names instead.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for AuditAction {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(AuditAction::ALL.iter().map(|a| a.as_str())))
            .description(Some("What happened: `auth.login`, `patient.view`, …"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for AuditAction {}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: widths in format strings apply (the CLI's tables).
        f.pad(self.as_str())
    }
}

/// One entry of the audit trail.
///
/// The field order is the canonical order: [`AuditEvent::canonical_bytes`] is
/// the compact JSON of this struct without `leaf_hash`, and that is what the
/// Merkle leaf and the hash chain commit to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// 1, 2, 3 … without gaps; entry `seq` is Merkle leaf `seq - 1`.
    pub seq: i64,
    /// Unix milliseconds (UTC).
    pub at_ms: i64,
    pub org_id: Option<Uuid>,
    pub actor_kind: ActorKind,
    /// User id for users, a service name for services.
    pub actor_id: Option<String>,
    pub device_id: Option<Uuid>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: AuditAction,
    /// `user`, `session`, `organisation`, `conversation`, `message`, `route` …
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Set when the action happened in a patient's context.
    pub patient_id: Option<String>,
    pub outcome: Outcome,
    /// A short machine reason (`wrong_password`, `requires users_manage`), or the
    /// justification given for break-glass access.
    pub reason: Option<String>,
    /// What an administrative action changed, field by field, before → after
    /// (a user's roles, a policy's members); never a secret. Empty for other
    /// events, and then absent from the canonical form, so entries written
    /// before it existed hash as they did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// Hex SHA-256 Merkle leaf hash, for inclusion proofs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_hash: Option<String>,
}

impl AuditEvent {
    /// The bytes the Merkle leaf hashes: compact JSON in field order, without
    /// `leaf_hash`. Deterministic because the struct's field order is fixed and
    /// serde_json does not reorder or pad.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Same field names and order as `AuditEvent`, borrowed: the verifier
        // computes this once per entry, so no clone.
        #[derive(Serialize)]
        struct Canonical<'a> {
            seq: i64,
            at_ms: i64,
            org_id: &'a Option<Uuid>,
            actor_kind: ActorKind,
            actor_id: &'a Option<String>,
            device_id: &'a Option<Uuid>,
            source_ip: &'a Option<String>,
            user_agent: &'a Option<String>,
            action: AuditAction,
            target_type: &'a Option<String>,
            target_id: &'a Option<String>,
            patient_id: &'a Option<String>,
            outcome: Outcome,
            reason: &'a Option<String>,
            #[serde(skip_serializing_if = "no_changes")]
            changes: &'a [FieldChange],
        }
        fn no_changes(c: &&[FieldChange]) -> bool {
            c.is_empty()
        }
        serde_json::to_vec(&Canonical {
            seq: self.seq,
            at_ms: self.at_ms,
            org_id: &self.org_id,
            actor_kind: self.actor_kind,
            actor_id: &self.actor_id,
            device_id: &self.device_id,
            source_ip: &self.source_ip,
            user_agent: &self.user_agent,
            action: self.action,
            target_type: &self.target_type,
            target_id: &self.target_id,
            patient_id: &self.patient_id,
            outcome: self.outcome,
            reason: &self.reason,
            changes: &self.changes,
        })
        .expect("an audit event always serialises")
    }
}

/// One field an administrative action changed. Values are compact JSON
/// text (`14`, `"Europe/London"`, `["nurse","physician"]`); `None` where the
/// field had no value (created or removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    /// Dotted path of the field (`messaging.history_days`, `roles`).
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The changes between two JSON documents, leaf by leaf (objects are walked,
/// anything else — arrays included — compared whole), in path order.
pub fn json_changes(before: &serde_json::Value, after: &serde_json::Value) -> Vec<FieldChange> {
    fn walk(
        path: &str,
        before: Option<&serde_json::Value>,
        after: Option<&serde_json::Value>,
        out: &mut Vec<FieldChange>,
    ) {
        use serde_json::Value::Object;
        match (before, after) {
            (Some(Object(b)), Some(Object(a))) => {
                let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, b.get(k), a.get(k), out);
                }
            }
            (b, a) if b != a => out.push(FieldChange {
                field: path.to_owned(),
                before: b.map(|v| v.to_string()),
                after: a.map(|v| v.to_string()),
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", Some(before), Some(after), &mut out);
    out
}

/// Search filters; all optional, combined with AND. Results are newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// The acting user (user id) or service name.
    pub actor: Option<String>,
    pub patient: Option<String>,
    pub device: Option<Uuid>,
    /// The target's id (a user, session, conversation …).
    pub target: Option<String>,
    /// An action such as `auth.login`.
    pub action: Option<String>,
    /// Only entries with this outcome (e.g. `denied`: refusals).
    pub outcome: Option<Outcome>,
    /// From this time (Unix ms, inclusive).
    pub from_ms: Option<i64>,
    /// Until this time (Unix ms, exclusive).
    pub to_ms: Option<i64>,
    /// Only entries with `seq` below this (the `next_before` of the previous page).
    pub before_seq: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `before_seq` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// "Who accessed patient X's information": every event in the patient's
/// context, and a summary per user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessReport {
    pub patient_id: String,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub accessors: Vec<AccessorSummary>,
    pub events: Vec<AuditEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessorSummary {
    pub actor_kind: ActorKind,
    pub actor_id: Option<String>,
    pub events: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub devices: Vec<Uuid>,
    pub actions: Vec<AuditAction>,
}

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checkpoint {
    /// Number of entries covered (entries 1..=size).
    pub size: i64,
    pub at_ms: i64,
    /// Hex RFC 9162 Merkle tree hash of the first `size` entries.
    pub root: String,
    /// Hex hash chain value after entry `size`.
    pub chain_head: String,
    pub key_id: String,
    /// Hex Ed25519 public key of `key_id`.
    pub public_key: String,
    /// Hex Ed25519 signature over [`checkpoint_message`].
    pub signature: String,
}

/// The exact bytes a checkpoint signature covers.
pub fn checkpoint_message(size: i64, at_ms: i64, root_hex: &str, chain_hex: &str) -> Vec<u8> {
    format!("wardline-audit-checkpoint-v1\n{size}\n{at_ms}\n{root_hex}\n{chain_hex}\n").into_bytes()
}

/// The exact bytes an audit retention purge's signature covers (same key as
/// checkpoints, its own domain prefix): entries `1..=up_to` (a checkpoint
/// size) were deleted at `at_ms` because they were older than `cutoff_ms`,
/// which is `retention_days` before the purge, and the purge's own
/// `audit.purge` event is entry `event_seq`. The verifier refuses a purge
/// whose record does not carry this signature.
pub fn purge_message(
    up_to: i64,
    at_ms: i64,
    cutoff_ms: i64,
    retention_days: i64,
    event_seq: i64,
) -> Vec<u8> {
    format!(
        "wardline-audit-purge-v1\n{up_to}\n{at_ms}\n{cutoff_ms}\n{retention_days}\n{event_seq}\n"
    )
    .into_bytes()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    pub seq: i64,
    pub tree_size: i64,
    pub leaf_hash: String,
    /// Hex hashes, leaf to root (RFC 9162 §2.1.3).
    pub path: Vec<String>,
    pub root: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    pub from_size: i64,
    pub to_size: i64,
    pub from_root: String,
    pub to_root: String,
    /// Hex hashes (RFC 9162 §2.1.4).
    pub path: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
            assert_eq!(
                serde_json::to_string(a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
        }
        assert_eq!(AuditAction::parse("auth.nope"), None);
    }

    #[test]
    fn actions_honour_widths_in_tables() {
        // `audit search` pads columns; `write_str` ignored the width.
        assert_eq!(
            format!("{:<20}|", AuditAction::Login),
            "auth.login          |"
        );
        assert_eq!(format!("{:<8}|", crate::Role::Nurse), "nurse   |");
    }

    #[test]
    fn json_changes_name_each_changed_leaf() {
        let before = serde_json::json!({"a": {"x": 1, "y": [1, 2]}, "b": "s", "gone": true});
        let after = serde_json::json!({"a": {"x": 2, "y": [1, 2]}, "b": "s", "new": null});
        let c = json_changes(&before, &after);
        let flat: Vec<(&str, Option<&str>, Option<&str>)> = c
            .iter()
            .map(|c| (c.field.as_str(), c.before.as_deref(), c.after.as_deref()))
            .collect();
        assert_eq!(
            flat,
            vec![
                ("a.x", Some("1"), Some("2")),
                ("gone", Some("true"), None),
                ("new", None, Some("null")),
            ]
        );
        assert!(json_changes(&before, &before).is_empty());
    }

    #[test]
    fn canonical_bytes_ignore_the_leaf_hash_and_fix_field_order() {
        let e = AuditEvent {
            seq: 7,
            at_ms: 1_700_000_000_000,
            org_id: None,
            actor_kind: ActorKind::Service,
            actor_id: Some("retention".into()),
            device_id: None,
            source_ip: None,
            user_agent: None,
            action: AuditAction::AuditPurge,
            target_type: None,
            target_id: None,
            patient_id: None,
            outcome: Outcome::Success,
            reason: None,
            changes: Vec::new(),
            leaf_hash: Some("ab".into()),
        };
        let bytes = String::from_utf8(e.canonical_bytes()).unwrap();
        assert!(
            bytes.starts_with(
                r#"{"seq":7,"at_ms":1700000000000,"org_id":null,"actor_kind":"service""#
            )
        );
        assert!(!bytes.contains("leaf_hash"));
        // An event without changes is what it was before they existed, so
        // older entries keep their hashes.
        assert!(
            bytes.ends_with(r#""outcome":"success","reason":null}"#),
            "{bytes}"
        );
        // Exactly the event's own JSON without the leaf hash, with or
        // without changes.
        let mut plain = e.clone();
        plain.leaf_hash = None;
        assert_eq!(bytes, serde_json::to_string(&plain).unwrap());
        plain.changes = vec![FieldChange {
            field: "roles".into(),
            before: Some(r#"["nurse"]"#.into()),
            after: Some(r#"["nurse","charge_nurse"]"#.into()),
        }];
        let with = String::from_utf8(plain.canonical_bytes()).unwrap();
        assert_eq!(with, serde_json::to_string(&plain).unwrap());
        assert!(with.ends_with(r#""reason":null,"changes":[{"field":"roles","before":"[\"nurse\"]","after":"[\"nurse\",\"charge_nurse\"]"}]}"#), "{with}");
        for k in [
            ActorKind::User,
            ActorKind::Service,
            ActorKind::Anonymous,
            ActorKind::Patient,
        ] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
            assert_eq!(ActorKind::parse(k.as_str()), Some(k));
        }
        for o in [Outcome::Success, Outcome::Failure, Outcome::Denied] {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
    }
}
