//! Authorization matrix: every route, called as anonymous, as each built-in
//! role and as another organisation's administrator, with the outcome each
//! must get. The route list is checked against the served OpenAPI document, so
//! a route added without a row here fails this test.

use std::collections::BTreeSet;

use crate::common::{Actor, Backend, PASSWORD, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wardline_proto::auth::LoginRequest;
use wardline_proto::{Permission, Role};
use wardline_server::request_audit::{RouteAudit, route_audit};
use wardline_store::AuditStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    OtherOrgAdmin,
    Role(Role),
    /// A nurse signed in (second factor included) with the temporary
    /// password an administrator set, not changed yet.
    TemporaryPassword,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Ok,
    /// 401 `unauthenticated`.
    Unauthenticated,
    /// 403 `forbidden`.
    Forbidden,
    /// 404: another tenant's resource does not exist for the caller.
    NotFound,
    /// A specific status and error code (routes whose "allowed" outcome is an error).
    Error(u16, &'static str),
}

/// Who may call a route.
#[derive(Clone, Copy)]
enum Rule {
    /// No session needed (setup, login, MFA verify): only checked not to 5xx.
    Public,
    /// No session needed and the same answer for everyone (a fixed page).
    Open,
    /// The session's own business (who am I, the second factor, the
    /// password, signing out): any signed-in session, one whose password is
    /// still temporary included.
    OwnSession { allowed: Expect },
    /// Requires a permission; `tenant_target` routes name a user of org A.
    Permission {
        perm: Permission,
        tenant_target: bool,
    },
    /// Requires a permission, and then answers holders with `allowed`: the
    /// messaging routes, where callers without a registered device get 409
    /// `device_not_registered` and non-members of a conversation 404.
    PermissionThen { perm: Permission, allowed: Expect },
}

struct Route {
    method: Method,
    /// OpenAPI template, e.g. `/api/v1/users/{id}`.
    template: &'static str,
    /// Query string for routes with required parameters (`?format=csv`).
    query: &'static str,
    rule: Rule,
    body: fn() -> Option<Value>,
}

/// Messaging routes that need the caller's device registered first.
const NO_DEVICE: Expect = Expect::Error(409, "device_not_registered");

fn no_body() -> Option<Value> {
    None
}

fn lifecycle_policy() -> Option<Value> {
    Some(
        json!({"retention": {"days": 3650}, "minimum_days": 0, "message_ttl_secs": null, "max_ttl_secs": 86400, "recall_window_secs": 900}),
    )
}

fn routes() -> Vec<Route> {
    use Permission::*;
    let perm = |perm, tenant_target| Rule::Permission {
        perm,
        tenant_target,
    };
    let then = |allowed| Rule::PermissionThen {
        perm: Messaging,
        allowed,
    };
    vec![
        Route {
            method: Method::POST,
            template: "/api/v1/setup",
            query: "",
            rule: Rule::Public,
            body: || {
                Some(
                    json!({"setup_code": "wrong", "org_name": "X", "org_slug": "xx", "admin_email": "a@x.test", "admin_display_name": "A", "admin_password": "lantern orbit mossy teacup"}),
                )
            },
        },
        Route {
            method: Method::POST,
            template: "/api/v1/auth/login",
            query: "",
            rule: Rule::Public,
            body: || {
                Some(
                    json!({"org": "nope", "email": "a@b.test", "password": "x", "device_id": Uuid::new_v4()}),
                )
            },
        },
        Route {
            method: Method::POST,
            template: "/api/v1/auth/mfa/verify",
            query: "",
            rule: Rule::Public,
            body: || Some(json!({"mfa_token": "wlm_forged", "code": "123456"})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/auth/session",
            query: "",
            rule: Rule::OwnSession {
                allowed: Expect::Ok,
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/auth/totp/enroll",
            query: "",
            rule: Rule::OwnSession {
                allowed: Expect::Error(409, "conflict"),
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/auth/totp/confirm",
            query: "",
            rule: Rule::OwnSession {
                allowed: Expect::Error(409, "conflict"),
            },
            body: || Some(json!({"code": "000000"})),
        },
        Route {
            method: Method::POST,
            template: "/api/v1/auth/password",
            query: "",
            rule: Rule::OwnSession {
                allowed: Expect::Error(401, "invalid_credentials"),
            },
            body: || {
                Some(
                    json!({"current_password": "not my password", "new_password": "harbor quill ember violet"}),
                )
            },
        },
        Route {
            method: Method::GET,
            template: "/api/v1/org",
            query: "",
            rule: perm(DirectoryRead, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/org/policy",
            query: "",
            rule: perm(OrgPolicyManage, false),
            body: no_body,
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/org/policy",
            query: "",
            rule: perm(OrgPolicyManage, false),
            body: || {
                Some(
                    json!({"idle_timeout_secs": 900, "absolute_lifetime_secs": 43200, "mfa_required": true}),
                )
            },
        },
        Route {
            method: Method::PATCH,
            template: "/api/v1/org/policy",
            query: "",
            rule: perm(OrgPolicyManage, false),
            body: || Some(json!({"idle_timeout_secs": 900})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/users",
            query: "",
            rule: perm(DirectoryRead, false),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/users",
            query: "",
            rule: perm(UsersManage, false),
            body: || {
                Some(
                    json!({"email": format!("new-{}@x.test", Uuid::new_v4().simple()), "display_name": "New Person", "roles": ["nurse"], "password": PASSWORD}),
                )
            },
        },
        Route {
            method: Method::GET,
            template: "/api/v1/roles",
            query: "",
            rule: perm(DirectoryRead, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/users/{id}",
            query: "",
            rule: perm(DirectoryRead, true),
            body: no_body,
        },
        Route {
            method: Method::PATCH,
            template: "/api/v1/users/{id}",
            query: "",
            rule: perm(UsersManage, true),
            body: || Some(json!({"display_name": "Renamed"})),
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/users/{id}/compliance-officer",
            query: "",
            rule: perm(ComplianceRolesManage, true),
            body: no_body,
        },
        Route {
            method: Method::DELETE,
            template: "/api/v1/users/{id}/compliance-officer",
            query: "",
            rule: perm(ComplianceRolesManage, true),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/users/{id}/reactivate",
            query: "",
            rule: perm(UsersManage, true),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/users/{id}/mfa/reset",
            query: "",
            rule: perm(UsersManage, true),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/users/{id}/sessions",
            query: "",
            rule: perm(SessionsRead, true),
            body: no_body,
        },
        Route {
            method: Method::DELETE,
            template: "/api/v1/users/{id}/sessions/{session_id}",
            query: "",
            rule: perm(SessionsRevoke, true),
            body: no_body,
        },
        Route {
            method: Method::DELETE,
            template: "/api/v1/users/{id}/sessions",
            query: "",
            rule: perm(SessionsRevoke, true),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/users/{id}/suspend",
            query: "",
            rule: perm(UsersManage, true),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/users/{id}/deprovision",
            query: "",
            rule: perm(UsersManage, true),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/audit/events",
            query: "?action=auth.login&limit=5",
            rule: perm(AuditRead, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/audit/export",
            query: "?format=jsonl&limit=5",
            rule: perm(AuditRead, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/audit/patients/{patient_id}/access-report",
            query: "",
            rule: perm(AuditRead, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/audit/checkpoints/latest",
            query: "",
            rule: perm(AuditRead, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/audit/proofs/inclusion",
            query: "?seq=1",
            rule: perm(AuditRead, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/audit/proofs/consistency",
            query: "?from_size=1&to_size=3",
            rule: perm(AuditRead, false),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/devices",
            query: "",
            rule: then(Expect::Error(422, "validation")),
            body: || {
                Some(
                    json!({"name": "x", "identity_key": "AAAA", "key_packages": [], "last_resort": "AAAA"}),
                )
            },
        },
        Route {
            method: Method::GET,
            template: "/api/v1/devices",
            query: "",
            rule: then(Expect::Ok),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/devices/key-packages",
            query: "",
            rule: then(NO_DEVICE),
            body: || Some(json!({"key_packages": []})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/users/{id}/devices",
            query: "",
            rule: perm(Messaging, true),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations",
            query: "",
            rule: then(NO_DEVICE),
            body: || Some(json!({"kind": "group", "members": [Uuid::new_v4()]})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/conversations",
            query: "",
            rule: then(Expect::Ok),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/conversations/{id}",
            query: "",
            rule: then(Expect::NotFound),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations/{id}/members",
            query: "",
            rule: then(Expect::NotFound),
            body: || Some(json!({"user_id": Uuid::new_v4()})),
        },
        Route {
            method: Method::DELETE,
            template: "/api/v1/conversations/{id}/members/{user_id}",
            query: "",
            rule: then(Expect::NotFound),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations/{id}/refound",
            query: "",
            rule: then(NO_DEVICE),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations/{id}/key-packages/claim",
            query: "",
            rule: then(NO_DEVICE),
            body: || Some(json!({"device_ids": []})),
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations/{id}/messages",
            query: "",
            rule: then(NO_DEVICE),
            body: || {
                Some(json!({"message_id": Uuid::new_v4(), "kind": "application", "mls": "AAAA"}))
            },
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations/{id}/read",
            query: "",
            rule: then(NO_DEVICE),
            body: || Some(json!({"up_to_message_id": Uuid::new_v4()})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/conversations/{id}/messages/{message_id}/receipts",
            query: "",
            rule: then(Expect::NotFound),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations/{id}/attachments",
            query: "",
            rule: then(NO_DEVICE),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/conversations/{id}/attachments/{attachment_id}",
            query: "",
            rule: then(Expect::NotFound),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/sync",
            query: "?after=0",
            rule: then(NO_DEVICE),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/sync/ack",
            query: "",
            rule: then(NO_DEVICE),
            body: || Some(json!({"up_to": 0})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/sync/ws",
            query: "",
            rule: then(NO_DEVICE),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/sync/ticket",
            query: "",
            rule: then(Expect::Ok),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/messaging/preferences",
            query: "",
            rule: then(Expect::Ok),
            body: no_body,
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/messaging/preferences",
            query: "",
            rule: then(Expect::Ok),
            body: || Some(json!({"share_read_receipts": true})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/lifecycle/policy",
            query: "",
            rule: perm(LifecycleManage, false),
            body: no_body,
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/lifecycle/policy",
            query: "",
            rule: perm(OrgPolicyManage, false),
            body: lifecycle_policy,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/lifecycle/preview",
            query: "",
            rule: perm(LifecycleManage, false),
            body: lifecycle_policy,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/lifecycle/run",
            query: "",
            rule: perm(LifecycleManage, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/lifecycle/receipts",
            query: "",
            rule: perm(LifecycleManage, false),
            body: no_body,
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/conversations/{id}/lifecycle",
            query: "",
            rule: then(Expect::NotFound),
            body: || Some(json!({"message_ttl_secs": 3600})),
        },
        Route {
            method: Method::POST,
            template: "/api/v1/legal-holds",
            query: "",
            rule: perm(LegalHoldManage, false),
            body: || {
                Some(
                    json!({"scope": "patient", "target": "MRN-MATRIX", "matter": "Matrix v. Test", "reason": "authorization matrix"}),
                )
            },
        },
        Route {
            method: Method::GET,
            template: "/api/v1/legal-holds",
            query: "",
            rule: perm(LegalHoldManage, false),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/legal-holds/{id}/release",
            query: "",
            rule: Rule::PermissionThen {
                perm: LegalHoldManage,
                allowed: Expect::NotFound,
            },
            body: || Some(json!({"reason": "done"})),
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations/{id}/messages/{message_id}/recall",
            query: "",
            rule: then(Expect::NotFound),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/devices/{id}/wipe",
            query: "",
            rule: then(Expect::NotFound),
            body: || Some(json!({"reason": "lost"})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/devices/posture",
            query: "",
            rule: then(Expect::Ok),
            body: no_body,
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/devices/posture",
            query: "",
            rule: then(NO_DEVICE),
            body: || Some(json!({"platform": "ios", "os_version": "17.4", "compromised": false})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/devices/push",
            query: "",
            rule: then(NO_DEVICE),
            body: no_body,
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/devices/push",
            query: "",
            rule: then(NO_DEVICE),
            body: || {
                Some(json!({"endpoint": "https://fcm.googleapis.com/fcm/send/x",
                    "keys": {"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}))
            },
        },
        Route {
            method: Method::DELETE,
            template: "/api/v1/devices/push",
            query: "",
            rule: then(NO_DEVICE),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/users/{id}/managed-devices",
            query: "",
            rule: perm(DevicesManage, true),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/devices/wipes",
            query: "",
            rule: then(Expect::Ok),
            body: no_body,
        },
        Route {
            // Only a wiped device's ended session is accepted here.
            method: Method::POST,
            template: "/api/v1/devices/wipe-confirmation",
            query: "",
            rule: Rule::Public,
            body: || Some(json!({"erased": true})),
        },
        Route {
            method: Method::POST,
            template: "/api/v1/patients",
            query: "",
            rule: perm(PatientTexting, false),
            body: || {
                Some(
                    json!({"name": "Pat Matrix", "date_of_birth": "1970-01-02", "phone": "+15550001111"}),
                )
            },
        },
        Route {
            method: Method::GET,
            template: "/api/v1/patients",
            query: "",
            rule: perm(PatientTexting, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/patients/{id}",
            query: "",
            rule: Rule::PermissionThen {
                perm: PatientTexting,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/patients/{id}/consents",
            query: "",
            rule: Rule::PermissionThen {
                perm: PatientTexting,
                allowed: Expect::NotFound,
            },
            body: || Some(json!({"scope": "reminders", "granted": true, "method": "verbal"})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/patients/{id}/consents",
            query: "",
            rule: Rule::PermissionThen {
                perm: PatientTexting,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/patients/{id}/texts",
            query: "",
            rule: Rule::PermissionThen {
                perm: PatientTexting,
                allowed: Expect::NotFound,
            },
            body: || {
                Some(
                    json!({"template": "appointment_reminder", "params": {"date": "2026-12-01", "time": "09:30"}}),
                )
            },
        },
        Route {
            method: Method::POST,
            template: "/api/v1/patients/{id}/messages",
            query: "",
            rule: Rule::PermissionThen {
                perm: PatientTexting,
                allowed: Expect::NotFound,
            },
            body: || Some(json!({"text": "hello"})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/patients/{id}/messages",
            query: "",
            rule: Rule::PermissionThen {
                perm: PatientTexting,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/patients/{id}/sms",
            query: "",
            rule: Rule::PermissionThen {
                perm: PatientTexting,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/patients/{id}/links/revoke",
            query: "",
            rule: Rule::PermissionThen {
                perm: PatientTexting,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/patient-threads",
            query: "",
            rule: perm(PatientTexting, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/notices",
            query: "",
            rule: perm(PatientTexting, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/sms/templates",
            query: "",
            rule: perm(PatientTexting, false),
            body: no_body,
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/sms/templates/{key}/{language}",
            query: "",
            rule: perm(OrgPolicyManage, false),
            body: || Some(json!({"body": "See you on {date} at {time}.", "class": "no_phi"})),
        },
        Route {
            method: Method::POST,
            template: "/sms/inbound/{org_id}",
            query: "",
            rule: Rule::Public,
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/sms/status/{org_id}",
            query: "",
            rule: Rule::Public,
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/p/{token}",
            query: "",
            rule: Rule::Public,
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/p/{token}/verify",
            query: "",
            rule: Rule::Public,
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/p/{token}/code",
            query: "",
            rule: Rule::Public,
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/p/{token}/thread",
            query: "",
            rule: Rule::Public,
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/p/{token}/reply",
            query: "",
            rule: Rule::Public,
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/directory",
            query: "",
            rule: perm(DirectoryRead, false),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/routing/departments",
            query: "",
            rule: perm(RoutingManage, false),
            body: || Some(json!({"name": "Matrix department"})),
        },
        Route {
            method: Method::POST,
            template: "/api/v1/routing/care-teams",
            query: "",
            rule: perm(RoutingManage, false),
            body: || Some(json!({"name": "Matrix team", "members": []})),
        },
        Route {
            method: Method::POST,
            template: "/api/v1/routing/care-teams/{id}/members",
            query: "",
            rule: Rule::PermissionThen {
                perm: RoutingManage,
                allowed: Expect::NotFound,
            },
            body: || Some(json!({"user_id": Uuid::new_v4()})),
        },
        Route {
            method: Method::DELETE,
            template: "/api/v1/routing/care-teams/{id}/members/{user_id}",
            query: "",
            rule: Rule::PermissionThen {
                perm: RoutingManage,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/routing/roles",
            query: "",
            rule: perm(RoutingManage, false),
            body: || Some(json!({"name": "Matrix on-call", "holders": []})),
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/routing/roles/{id}",
            query: "",
            rule: Rule::PermissionThen {
                perm: RoutingManage,
                allowed: Expect::NotFound,
            },
            body: || Some(json!({"name": "Matrix on-call", "holders": []})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/search",
            query: "?q=target",
            rule: perm(DirectoryRead, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/presence",
            query: "",
            rule: perm(Messaging, false),
            body: no_body,
        },
        Route {
            method: Method::PUT,
            template: "/api/v1/routing/presence",
            query: "",
            rule: perm(Messaging, false),
            body: || Some(json!({"status": "busy"})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/roles/{id}/shifts",
            query: "",
            rule: Rule::PermissionThen {
                perm: DirectoryRead,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/routing/roles/{id}/shifts",
            query: "",
            rule: Rule::PermissionThen {
                perm: RoutingManage,
                allowed: Expect::NotFound,
            },
            body: || Some(json!({"user_id": Uuid::new_v4(), "starts_at": 1, "ends_at": 2})),
        },
        Route {
            method: Method::DELETE,
            template: "/api/v1/routing/roles/{id}/shifts/{shift_id}",
            query: "",
            rule: Rule::PermissionThen {
                perm: RoutingManage,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/routing/roles/{id}/schedule/import",
            query: "",
            rule: Rule::PermissionThen {
                perm: RoutingManage,
                allowed: Expect::NotFound,
            },
            body: || Some(json!({"ics": "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/roles/{id}/schedule/feed",
            query: "",
            rule: Rule::PermissionThen {
                perm: RoutingManage,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::DELETE,
            template: "/api/v1/routing/roles/{id}/schedule/feed",
            query: "",
            rule: Rule::PermissionThen {
                perm: RoutingManage,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/roles/{id}/on-call",
            query: "",
            rule: Rule::PermissionThen {
                perm: DirectoryRead,
                allowed: Expect::NotFound,
            },
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/routing/roles/{id}/page",
            query: "",
            rule: then(Expect::NotFound),
            body: || Some(json!({})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/conversations/{id}/messages/{message_id}/escalation",
            query: "",
            rule: then(Expect::NotFound),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/conversations/{id}/messages/{message_id}/acknowledge",
            query: "",
            rule: then(Expect::NotFound),
            body: no_body,
        },
        Route {
            method: Method::POST,
            template: "/api/v1/routing/patient-access",
            query: "",
            rule: then(Expect::NotFound),
            body: || Some(json!({"patient_ref": "MRN-MATRIX"})),
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/break-glass",
            query: "",
            rule: perm(BreakGlassReview, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/break-glass/mine",
            query: "",
            rule: perm(Messaging, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/notifications",
            query: "",
            rule: perm(BreakGlassReview, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/routing/reports/responses",
            query: "",
            rule: perm(RoutingReports, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/api/v1/reports/activity",
            query: "",
            rule: perm(RoutingReports, false),
            body: no_body,
        },
        Route {
            method: Method::GET,
            template: "/alerts/{id}",
            query: "",
            rule: Rule::Open,
            body: no_body,
        },
        // Ends the caller's session: keep last.
        Route {
            method: Method::POST,
            template: "/api/v1/auth/logout",
            query: "",
            rule: Rule::OwnSession {
                allowed: Expect::Ok,
            },
            body: no_body,
        },
    ]
}

fn expected(rule: Rule, caller: Caller) -> Option<Expect> {
    match (rule, caller) {
        (Rule::Public, _) => None,
        (Rule::Open, _) => Some(Expect::Ok),
        (_, Caller::Anonymous) => Some(Expect::Unauthenticated),
        (Rule::OwnSession { allowed }, _) => Some(allowed),
        // Issue 18, item 8: nothing else until the password is the user's own.
        (_, Caller::TemporaryPassword) => Some(Expect::Error(403, "password_change_required")),
        (Rule::PermissionThen { perm, allowed }, c) => {
            let role = match c {
                Caller::Role(r) => r,
                _ => Role::OrgAdmin,
            };
            Some(if role.permissions().contains(&perm) {
                allowed
            } else {
                Expect::Forbidden
            })
        }
        (
            Rule::Permission {
                tenant_target: true,
                perm,
            },
            Caller::OtherOrgAdmin,
        ) if Role::OrgAdmin.permissions().contains(&perm) => Some(Expect::NotFound),
        // Another organisation's administrator holds the administrator's
        // permissions, in their own organisation only.
        (Rule::Permission { perm, .. }, Caller::OtherOrgAdmin)
            if !Role::OrgAdmin.permissions().contains(&perm) =>
        {
            Some(Expect::Forbidden)
        }
        (Rule::Permission { .. }, Caller::OtherOrgAdmin) => Some(Expect::Ok),
        (Rule::Permission { perm, .. }, Caller::Role(r)) => {
            Some(if r.permissions().contains(&perm) {
                Expect::Ok
            } else {
                Expect::Forbidden
            })
        }
    }
}

async fn matrix(backend: Backend) {
    // Small checkpoint interval: the proof routes need a signed checkpoint.
    let Some(t) = TestServer::start_with(backend, |c| c.audit.checkpoint_every = 4).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let mut actors: Vec<(Caller, Option<String>)> = vec![(Caller::Anonymous, None)];
    let other = t.create_org("beta").await;
    actors.push((Caller::OtherOrgAdmin, Some(other.token.clone())));
    let mut role_actors: Vec<Actor> = Vec::new();
    for role in Role::ALL.into_iter().filter(|r| *r != Role::OrgAdmin) {
        let a = t.user_with_role(&admin, role).await;
        actors.push((Caller::Role(role), Some(a.token.clone())));
        role_actors.push(a);
    }
    let temporary = admin
        .client
        .create_user(&wardline_proto::directory::CreateUserRequest {
            email: "temporary@alpha.test".into(),
            display_name: "Tem Porary".into(),
            phone: None,
            roles: vec![Role::Nurse],
            password: PASSWORD.into(),
            password_change_required: true,
        })
        .await
        .unwrap();
    let temporary = t.sign_in_enrolling("alpha", &temporary).await;
    actors.push((Caller::TemporaryPassword, Some(temporary.token.clone())));
    // The administrator acts last, so that destructive calls come after the refusals.
    actors.push((Caller::Role(Role::OrgAdmin), Some(admin.token.clone())));

    let http = t.http();
    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    for route in routes() {
        covered.insert((route.method.to_string(), route.template.to_string()));
        // A fresh target user in org A with one live (enrolment-pending) session.
        let target = admin
            .client
            .create_user(&wardline_proto::directory::CreateUserRequest {
                email: format!("target-{}@alpha.test", Uuid::new_v4().simple()),
                display_name: "Target Person".into(),
                phone: None,
                roles: vec![Role::Nurse],
                password: PASSWORD.into(),
                password_change_required: false,
            })
            .await
            .unwrap();
        let login = t
            .client()
            .login(&LoginRequest {
                org: "alpha".into(),
                email: target.email.clone(),
                password: PASSWORD.into(),
                device_id: Uuid::new_v4(),
                device_token: None,
            })
            .await
            .unwrap();
        let target_session = login.session.unwrap().session_id;
        let path = route
            .template
            .replace("{id}", &target.id.to_string())
            .replace("{session_id}", &target_session.to_string())
            .replace("{patient_id}", "patient-7")
            .replace("{user_id}", &Uuid::new_v4().to_string())
            .replace("{message_id}", &Uuid::new_v4().to_string())
            .replace("{shift_id}", &Uuid::new_v4().to_string())
            .replace("{attachment_id}", &Uuid::new_v4().to_string())
            .replace("{org_id}", &Uuid::new_v4().to_string())
            .replace("{token}", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .replace("{key}", "appointment_reminder")
            .replace("{language}", "fr")
            + route.query;
        let audited = match route_audit(route.method.as_str(), route.template) {
            Some(RouteAudit::Event { action, .. }) => Some(action),
            Some(RouteAudit::Exempt(_)) => None,
            None => panic!(
                "{} {} is not in audit::scope::ROUTES",
                route.method, route.template
            ),
        };

        for (caller, token) in &actors {
            let before = t.sql.last_audit_entry().await.unwrap().map_or(0, |r| r.seq);
            let mut req = http.request(route.method.clone(), format!("{}{path}", t.url));
            if let Some(tok) = token {
                req = req.bearer_auth(tok);
            }
            if let Some(b) = (route.body)() {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
            // The request left its audit event, with the outcome it had, before
            // the response was sent.
            if let Some(action) = audited {
                let outcome = match (status, code.as_str()) {
                    (200..=299, _) => "success",
                    (
                        _,
                        "unauthenticated"
                        | "forbidden"
                        | "mfa_enrolment_required"
                        | "password_change_required",
                    ) => "denied",
                    _ => "failure",
                };
                let new = t.sql.audit_entries(before, 100).await.unwrap();
                let mut recorded = new
                    .iter()
                    .any(|r| r.action == action.as_str() && r.outcome == outcome);
                // Repeated refusals of anonymous requests (same address,
                // route and minute) are counted, then written as one entry.
                if !recorded && outcome != "success" {
                    t.state.anonymous.flush(&t.state.audit, i64::MAX).await;
                    let after = t.sql.audit_entries(before, 100).await.unwrap();
                    recorded = after.iter().any(|r| {
                        r.action == action.as_str()
                            && r.reason
                                .as_deref()
                                .is_some_and(|r| r.starts_with("anonymous_repeats: 1 more"))
                    });
                }
                if !recorded {
                    failures.push(format!(
                        "{} {} as {caller:?}: no {action} event with outcome {outcome} (got {:?})",
                        route.method,
                        route.template,
                        new.iter()
                            .map(|r| (r.action.as_str(), r.outcome.as_str()))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            if status >= 500 {
                failures.push(format!(
                    "{} {} as {caller:?}: {status} {body}",
                    route.method, route.template
                ));
                continue;
            }
            let Some(want) = expected(route.rule, *caller) else {
                assert!(
                    (400..500).contains(&status),
                    "public route {} answered {status}",
                    route.template
                );
                continue;
            };
            let ok = match want {
                Expect::Ok => (200..300).contains(&status),
                Expect::Unauthenticated => status == 401 && code == "unauthenticated",
                Expect::Forbidden => status == 403 && code == "forbidden",
                Expect::NotFound => status == 404 && code == "not_found",
                Expect::Error(s, c) => status == s && code == c,
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {caller:?}: wanted {want:?}, got {status} {body}",
                    route.method, route.template
                ));
            }
            // Listing users as another organisation never shows org A's people.
            if *caller == Caller::OtherOrgAdmin
                && route.template == "/api/v1/users"
                && route.method == Method::GET
            {
                let ids: Vec<&str> = body["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|u| u["id"].as_str())
                    .collect();
                assert!(
                    !ids.contains(&target.id.to_string().as_str()),
                    "tenant leak in user list"
                );
                assert!(
                    !ids.contains(&admin.user.id.to_string().as_str()),
                    "tenant leak in user list"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix failures:\n{}",
        failures.join("\n")
    );

    // Every documented operation is in the matrix.
    let doc = t.openapi().await;
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the authorization matrix: {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "matrix rows for routes that do not exist: {stale:?}"
    );
}

/// Self-scoped access: a user may see and end their own sessions without the
/// session permissions, but not a colleague's.
async fn self_service_sessions(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let doc = t.user_with_role(&admin, Role::Physician).await;
    assert_eq!(
        nurse
            .client
            .list_sessions(nurse.user.id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        nurse
            .client
            .list_sessions(doc.user.id)
            .await
            .unwrap_err()
            .code(),
        Some(wardline_proto::ErrorCode::Forbidden)
    );
    assert_eq!(
        nurse
            .client
            .revoke_sessions(doc.user.id, None)
            .await
            .unwrap_err()
            .code(),
        Some(wardline_proto::ErrorCode::Forbidden)
    );
    nurse.client.user(nurse.user.id).await.unwrap();
    assert_eq!(
        nurse
            .client
            .revoke_sessions(nurse.user.id, None)
            .await
            .unwrap()
            .revoked,
        1
    );
    doc.client.current_session().await.unwrap();
}

both_backends!(matrix, self_service_sessions);
