//! What a request's audit event will say, filled in as the request goes: the
//! HTTP layer's middleware creates the scope and records the event (see
//! `wardline-server`'s `request_audit`); the session extractor fills in the
//! actor; services add what only they know (the user a sign-in was for, the id
//! of a created user, what a change changed).

use std::sync::{Arc, Mutex};

use uuid::Uuid;
use wardline_proto::audit::AuditAction;
use wardline_proto::{OrgId, UserId};

use crate::authz::Principal;

/// What a request's audit event says, as filled in by the extractors,
/// handlers and services ([`AuditScope::take`] hands it to the middleware).
#[derive(Debug, Default)]
pub struct AuditScopeData {
    pub org_id: Option<OrgId>,
    pub actor: Option<(UserId, Uuid)>,
    /// A patient acting on their secure link (when there is no user actor).
    pub patient_actor: Option<String>,
    pub target: Option<(String, String)>,
    pub patient_id: Option<String>,
    pub reason: Option<String>,
    /// What an administrative action changed (set once it succeeded).
    pub changes: Vec<wardline_proto::audit::FieldChange>,
    /// Further events the request caused (a sign-in that issued a session).
    pub also: Vec<(AuditAction, String, String)>,
}

/// What the request's audit event will say; filled in as the request goes.
#[derive(Clone, Default)]
pub struct AuditScope(Arc<Mutex<AuditScopeData>>);

impl AuditScope {
    /// Empties the scope, for the one event the request records.
    pub fn take(&self) -> AuditScopeData {
        std::mem::take(&mut *self.0.lock().expect("audit scope lock poisoned"))
    }

    fn with(&self, f: impl FnOnce(&mut AuditScopeData)) {
        f(&mut self.0.lock().expect("audit scope lock poisoned"));
    }

    /// The signed-in caller.
    pub fn actor(&self, p: &Principal) {
        self.actor_user(p.org_id, p.user_id, p.device_id.into());
    }

    pub fn actor_user(&self, org: OrgId, user: UserId, device: Uuid) {
        self.with(|d| {
            d.org_id = Some(org);
            d.actor = Some((user, device));
        });
    }

    /// A patient who reached their secure link (also the event's patient).
    pub fn actor_patient(&self, org: OrgId, patient: Uuid) {
        self.with(|d| {
            d.org_id = Some(org);
            d.patient_actor = Some(patient.to_string());
            d.patient_id = Some(patient.to_string());
        });
    }

    /// The organisation acted in, before anyone is signed in (a sign-in attempt).
    pub fn org(&self, org: OrgId) {
        self.with(|d| d.org_id = Some(org));
    }

    pub fn target(&self, kind: &str, id: impl ToString) {
        self.with(|d| d.target = Some((kind.to_owned(), id.to_string())));
    }

    /// A patient record's id (not PHI by itself). A free-text patient
    /// reference (an MRN) goes through [`AuditScope::patient_ref`] instead.
    pub fn patient(&self, patient_id: &str) {
        self.with(|d| d.patient_id = Some(patient_id.to_owned()));
    }

    /// A patient reference by its keyed blind index (`policy::lifecycle::patient_index`):
    /// the audit trail, kept for years and sent to the SIEM, never holds the
    /// reference itself (finding M5 of 2026-11-30). Stored as
    /// `ref:<index>`; compliance officers see the reference again through
    /// [`crate::audit_reader::AuditService`].
    pub fn patient_ref(&self, index: &str) {
        self.patient(&super::patient_ref_key(index));
    }

    /// A further successful event of this request, e.g. the session a
    /// sign-in issued; recorded after the request's own event.
    pub fn also(&self, action: AuditAction, kind: &str, id: impl ToString) {
        self.with(|d| d.also.push((action, kind.to_owned(), id.to_string())));
    }

    /// What the request changed, field by field, before → after (set by the
    /// service once the change is stored; never secrets).
    pub fn changes(&self, changes: Vec<wardline_proto::audit::FieldChange>) {
        self.with(|d| d.changes = changes);
    }

    /// Records what changed between two versions of a document (a policy, a
    /// conversation's lifecycle, a role's ladder), member by member. Call it
    /// once the change is stored; the document must hold no secrets.
    pub fn changed<T: serde::Serialize>(&self, before: &T, after: &T) {
        if let (Ok(b), Ok(a)) = (serde_json::to_value(before), serde_json::to_value(after)) {
            self.changes(wardline_proto::audit::json_changes(&b, &a));
        }
    }

    /// A machine reason beside the outcome (`mfa_required`).
    pub fn reason(&self, reason: &str) {
        self.with(|d| d.reason = Some(reason.to_owned()));
    }
}
