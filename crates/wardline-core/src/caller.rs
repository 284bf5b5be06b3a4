//! [`Caller`]: who a service acts for, with the audit event their request
//! records — passed first to every service method that acts for a signed-in
//! user, instead of a `&Principal` and an `&AuditScope` in varying places.
//!
//! A caller is a user on one device today. Service actors (the provisioning
//! and EHR integrations) and patients on their secure link still reach the
//! services through their own methods (`PatientService::inbound`, the portal),
//! which take the organisation and the audit scope; they become kinds of
//! caller when a service method is shared between them and users.

use std::ops::Deref;

use crate::audit::AuditScope;
use crate::authz::Principal;

/// A signed-in user acting on one device, and the audit scope of what they
/// are doing. Derefs to the [`Principal`], so `caller.org_id` and
/// `caller.authorize(…)` read as they do on the principal.
#[derive(Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The request's audit event: services add its target, patient and
    /// changes to it.
    pub audit: AuditScope,
}

impl Caller {
    /// The scope is shared, not copied: what the service adds to it is in the
    /// request's event.
    pub fn new(principal: &Principal, audit: &AuditScope) -> Caller {
        Caller {
            principal: principal.clone(),
            audit: audit.clone(),
        }
    }
}

impl Deref for Caller {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}
