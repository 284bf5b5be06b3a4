//! One audit event per request to an audited route, recorded by middleware so
//! that no handler can forget it.
//!
//! [`ROUTES`] names every API route with the action it is audited as, or why it
//! is not audited. The middleware [`record_requests`] puts an [`AuditScope`] in
//! the request; the session extractor fills in the actor, handlers and
//! services add what only they know (the user a sign-in was for, the id of a
//! created user); after the handler, the middleware derives the outcome from
//! the response and appends the event *before* the response leaves, so a
//! client never sees data whose access was not recorded. If the audit write
//! fails, the client gets 503 instead of the data.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use wardline_core::audit::anonymous::{self, Admission, AnonymousGate};
use wardline_core::audit::{AuditLog, AuditScope, NewEvent};
use wardline_proto::ErrorCode;
use wardline_proto::audit::{ActorKind, AuditAction, Outcome};

use crate::error::{ApiError, HttpError};

/// How a route is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAudit {
    /// One event with this action; `target` names the path parameter that is
    /// the target (type, parameter name), if any.
    Event {
        action: AuditAction,
        target: Option<(&'static str, &'static str)>,
    },
    /// Not audited, with the reason (no PHI, no account data, no state change).
    Exempt(&'static str),
}

const fn ev(action: AuditAction) -> RouteAudit {
    RouteAudit::Event {
        action,
        target: None,
    }
}

const fn on(action: AuditAction, kind: &'static str, param: &'static str) -> RouteAudit {
    RouteAudit::Event {
        action,
        target: Some((kind, param)),
    }
}

/// Every API route. `tests/audit_trail.rs` checks this against the OpenAPI
/// document, and the authorization matrix checks that each call left its event.
pub const ROUTES: &[(&str, &str, RouteAudit)] = {
    use AuditAction::*;
    &[
        ("POST", "/api/v1/setup", ev(Setup)),
        ("POST", "/api/v1/auth/login", ev(Login)),
        ("POST", "/api/v1/auth/mfa/verify", ev(MfaVerify)),
        ("GET", "/api/v1/auth/session", ev(SessionView)),
        ("POST", "/api/v1/auth/logout", ev(SessionRevoke)),
        ("POST", "/api/v1/auth/totp/enroll", ev(MfaEnrolStart)),
        ("POST", "/api/v1/auth/totp/confirm", ev(MfaEnrolled)),
        ("POST", "/api/v1/auth/password", ev(PasswordChange)),
        (
            "GET",
            "/api/v1/users/{id}/sessions",
            on(SessionsList, "user", "id"),
        ),
        (
            "DELETE",
            "/api/v1/users/{id}/sessions",
            on(SessionRevoke, "user", "id"),
        ),
        (
            "DELETE",
            "/api/v1/users/{id}/sessions/{session_id}",
            on(SessionRevoke, "session", "session_id"),
        ),
        (
            "POST",
            "/api/v1/users/{id}/mfa/reset",
            on(MfaReset, "user", "id"),
        ),
        ("GET", "/api/v1/org", ev(OrgView)),
        ("GET", "/api/v1/org/policy", ev(OrgView)),
        ("PUT", "/api/v1/org/policy", ev(OrgPolicyUpdate)),
        ("PATCH", "/api/v1/org/policy", ev(OrgPolicyUpdate)),
        ("GET", "/api/v1/users", ev(UsersList)),
        ("POST", "/api/v1/users", ev(UserCreate)),
        ("GET", "/api/v1/users/{id}", on(UserView, "user", "id")),
        ("PATCH", "/api/v1/users/{id}", on(UserUpdate, "user", "id")),
        (
            "PUT",
            "/api/v1/users/{id}/compliance-officer",
            on(UserUpdate, "user", "id"),
        ),
        (
            "DELETE",
            "/api/v1/users/{id}/compliance-officer",
            on(UserUpdate, "user", "id"),
        ),
        (
            "POST",
            "/api/v1/users/{id}/suspend",
            on(UserSuspend, "user", "id"),
        ),
        (
            "POST",
            "/api/v1/users/{id}/reactivate",
            on(UserReactivate, "user", "id"),
        ),
        (
            "POST",
            "/api/v1/users/{id}/deprovision",
            on(UserDeprovision, "user", "id"),
        ),
        (
            "GET",
            "/api/v1/roles",
            RouteAudit::Exempt("the built-in role table: no user or patient data"),
        ),
        ("GET", "/api/v1/audit/events", ev(AuditSearch)),
        ("GET", "/api/v1/audit/export", ev(AuditExport)),
        (
            "GET",
            "/api/v1/audit/patients/{patient_id}/access-report",
            // The patient is recorded by the handler, keyed (a reference
            // such as an MRN is never stored in clear).
            ev(AuditAccessReport),
        ),
        ("GET", "/api/v1/audit/checkpoints/latest", ev(AuditProof)),
        ("GET", "/api/v1/audit/proofs/inclusion", ev(AuditProof)),
        ("GET", "/api/v1/audit/proofs/consistency", ev(AuditProof)),
        ("POST", "/api/v1/devices", ev(DeviceRegister)),
        ("GET", "/api/v1/devices", ev(DeviceList)),
        (
            "POST",
            "/api/v1/devices/key-packages",
            ev(KeyPackagesUpload),
        ),
        (
            "GET",
            "/api/v1/users/{id}/devices",
            on(DeviceList, "user", "id"),
        ),
        ("GET", "/api/v1/lifecycle/policy", ev(LifecyclePolicyView)),
        ("PUT", "/api/v1/lifecycle/policy", ev(LifecyclePolicyUpdate)),
        ("POST", "/api/v1/lifecycle/preview", ev(LifecyclePreview)),
        ("POST", "/api/v1/lifecycle/run", ev(LifecycleRun)),
        ("GET", "/api/v1/lifecycle/receipts", ev(LifecycleReceipts)),
        (
            "PUT",
            "/api/v1/conversations/{id}/lifecycle",
            on(ConversationLifecycleUpdate, "conversation", "id"),
        ),
        ("POST", "/api/v1/legal-holds", ev(LegalHoldPlace)),
        ("GET", "/api/v1/legal-holds", ev(LegalHoldsList)),
        (
            "POST",
            "/api/v1/legal-holds/{id}/release",
            on(LegalHoldRelease, "legal_hold", "id"),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/messages/{message_id}/recall",
            on(MessageRecall, "message", "message_id"),
        ),
        (
            "POST",
            "/api/v1/devices/{id}/wipe",
            on(DeviceWipe, "device", "id"),
        ),
        ("GET", "/api/v1/devices/wipes", ev(DeviceWipesList)),
        (
            "GET",
            "/api/v1/users/{id}/managed-devices",
            on(DevicesManagedList, "user", "id"),
        ),
        ("GET", "/api/v1/devices/posture", ev(DevicePostureView)),
        ("PUT", "/api/v1/devices/posture", ev(DevicePostureReport)),
        ("GET", "/api/v1/devices/push", ev(DevicePushView)),
        ("PUT", "/api/v1/devices/push", ev(DevicePushSubscribe)),
        ("DELETE", "/api/v1/devices/push", ev(DevicePushUnsubscribe)),
        (
            "POST",
            "/api/v1/devices/wipe-confirmation",
            ev(DeviceWipeConfirm),
        ),
        ("POST", "/api/v1/conversations", ev(ConversationCreate)),
        ("GET", "/api/v1/conversations", ev(ConversationList)),
        (
            "GET",
            "/api/v1/conversations/{id}",
            on(ConversationView, "conversation", "id"),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/members",
            on(ConversationMemberAdd, "conversation", "id"),
        ),
        (
            "DELETE",
            "/api/v1/conversations/{id}/members/{user_id}",
            on(ConversationMemberRemove, "conversation", "id"),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/refound",
            on(ConversationRefound, "conversation", "id"),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/key-packages/claim",
            on(KeyPackagesClaim, "conversation", "id"),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/messages",
            on(MessageSubmit, "conversation", "id"),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/read",
            on(MessageRead, "conversation", "id"),
        ),
        (
            "GET",
            "/api/v1/conversations/{id}/messages/{message_id}/receipts",
            on(ReceiptsView, "message", "message_id"),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/attachments",
            on(AttachmentUpload, "conversation", "id"),
        ),
        (
            "GET",
            "/api/v1/conversations/{id}/attachments/{attachment_id}",
            on(AttachmentDownload, "attachment", "attachment_id"),
        ),
        ("GET", "/api/v1/sync", ev(MessageSync)),
        ("POST", "/api/v1/sync/ack", ev(MessageAck)),
        ("GET", "/api/v1/sync/ws", ev(MessageSync)),
        ("POST", "/api/v1/sync/ticket", ev(SocketTicketIssue)),
        (
            "GET",
            "/api/v1/messaging/preferences",
            ev(MessagingPreferences),
        ),
        (
            "PUT",
            "/api/v1/messaging/preferences",
            ev(MessagingPreferences),
        ),
        ("POST", "/api/v1/patients", ev(PatientCreate)),
        ("GET", "/api/v1/patients", ev(PatientsList)),
        (
            "GET",
            "/api/v1/patients/{id}",
            on(PatientView, "patient", "id"),
        ),
        (
            "POST",
            "/api/v1/patients/{id}/consents",
            on(ConsentRecord, "patient", "id"),
        ),
        (
            "GET",
            "/api/v1/patients/{id}/consents",
            on(ConsentView, "patient", "id"),
        ),
        (
            "POST",
            "/api/v1/patients/{id}/texts",
            on(PatientTextSend, "patient", "id"),
        ),
        (
            "POST",
            "/api/v1/patients/{id}/messages",
            on(PatientMessageSend, "patient", "id"),
        ),
        (
            "GET",
            "/api/v1/patients/{id}/messages",
            on(PatientThreadView, "patient", "id"),
        ),
        (
            "GET",
            "/api/v1/patients/{id}/sms",
            on(PatientSmsView, "patient", "id"),
        ),
        (
            "POST",
            "/api/v1/patients/{id}/links/revoke",
            on(PatientLinksRevoke, "patient", "id"),
        ),
        ("GET", "/api/v1/patient-threads", ev(PatientThreadsList)),
        ("GET", "/api/v1/notices", ev(StaffNoticesList)),
        ("GET", "/api/v1/sms/templates", ev(SmsTemplatesView)),
        (
            "PUT",
            "/api/v1/sms/templates/{key}/{language}",
            ev(SmsTemplateUpdate),
        ),
        ("POST", "/sms/inbound/{org_id}", ev(SmsInbound)),
        ("POST", "/sms/status/{org_id}", ev(SmsStatus)),
        // The token is a secret: the event names the link by its id instead.
        ("GET", "/api/v1/routing/directory", ev(RoutingDirectoryView)),
        ("POST", "/api/v1/routing/departments", ev(DepartmentCreate)),
        ("POST", "/api/v1/routing/care-teams", ev(CareTeamCreate)),
        (
            "POST",
            "/api/v1/routing/care-teams/{id}/members",
            on(CareTeamMemberAdd, "care_team", "id"),
        ),
        (
            "DELETE",
            "/api/v1/routing/care-teams/{id}/members/{user_id}",
            on(CareTeamMemberRemove, "care_team", "id"),
        ),
        ("POST", "/api/v1/routing/roles", ev(ClinicalRoleCreate)),
        (
            "PUT",
            "/api/v1/routing/roles/{id}",
            on(ClinicalRoleUpdate, "clinical_role", "id"),
        ),
        ("GET", "/api/v1/routing/search", ev(DirectorySearch)),
        (
            "GET",
            "/api/v1/routing/presence",
            RouteAudit::Exempt("the caller's own availability status: no patient data"),
        ),
        ("PUT", "/api/v1/routing/presence", ev(PresenceSet)),
        (
            "GET",
            "/api/v1/routing/roles/{id}/shifts",
            on(ShiftsView, "clinical_role", "id"),
        ),
        (
            "POST",
            "/api/v1/routing/roles/{id}/shifts",
            on(ShiftCreate, "clinical_role", "id"),
        ),
        (
            "DELETE",
            "/api/v1/routing/roles/{id}/shifts/{shift_id}",
            on(ShiftDelete, "shift", "shift_id"),
        ),
        (
            "POST",
            "/api/v1/routing/roles/{id}/schedule/import",
            on(ScheduleImport, "clinical_role", "id"),
        ),
        (
            "GET",
            "/api/v1/routing/roles/{id}/schedule/feed",
            on(ScheduleFeedView, "clinical_role", "id"),
        ),
        (
            "DELETE",
            "/api/v1/routing/roles/{id}/schedule/feed",
            on(ScheduleFeedDelete, "clinical_role", "id"),
        ),
        (
            "GET",
            "/api/v1/routing/roles/{id}/on-call",
            on(OnCallView, "clinical_role", "id"),
        ),
        (
            "POST",
            "/api/v1/routing/roles/{id}/page",
            on(RolePage, "clinical_role", "id"),
        ),
        (
            "GET",
            "/api/v1/conversations/{id}/messages/{message_id}/escalation",
            on(EscalationView, "message", "message_id"),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/messages/{message_id}/acknowledge",
            on(MessageAcknowledge, "message", "message_id"),
        ),
        ("POST", "/api/v1/routing/patient-access", ev(PatientOpen)),
        ("GET", "/api/v1/routing/break-glass", ev(BreakGlassList)),
        (
            "GET",
            "/api/v1/routing/break-glass/mine",
            ev(BreakGlassList),
        ),
        (
            "GET",
            "/api/v1/routing/notifications",
            ev(NotificationsList),
        ),
        (
            "GET",
            "/api/v1/routing/reports/responses",
            ev(RoutingReport),
        ),
        ("GET", "/api/v1/reports/activity", ev(ActivityReport)),
        (
            "GET",
            "/alerts/{id}",
            RouteAudit::Exempt("a fixed sign-in notice: no message, user or patient data"),
        ),
        ("GET", "/p/{token}", ev(PortalOpen)),
        ("POST", "/p/{token}/verify", ev(PortalVerify)),
        ("POST", "/p/{token}/code", ev(PortalCode)),
        ("GET", "/p/{token}/thread", ev(PortalThreadView)),
        ("POST", "/p/{token}/reply", ev(PortalReply)),
    ]
};

pub fn route_audit(method: &str, template: &str) -> Option<RouteAudit> {
    ROUTES
        .iter()
        .find(|(m, t, _)| *m == method && *t == template)
        .map(|(_, _, a)| *a)
}

/// The request's [`AuditScope`], for a handler to add what only it knows.
pub struct Audit(pub AuditScope);

impl<S: Send + Sync> FromRequestParts<S> for Audit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Outside an audited route the scope is a detached, discarded one.
        Ok(Audit(
            parts
                .extensions
                .get::<AuditScope>()
                .cloned()
                .unwrap_or_default(),
        ))
    }
}

/// The raw path segment where `template` has `{param}`.
fn path_param(template: &str, path: &str, param: &str) -> Option<String> {
    let want = format!("{{{param}}}");
    template
        .split('/')
        .zip(path.split('/'))
        .find(|(t, _)| *t == want)
        .map(|(_, p)| p.chars().take(64).collect())
}

fn outcome_of(status: u16, code: Option<ErrorCode>) -> (Outcome, Option<String>) {
    if status < 400 {
        return (Outcome::Success, None);
    }
    let reason = code
        .and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("http_{status}"));
    let outcome = match code {
        Some(
            ErrorCode::Unauthenticated
            | ErrorCode::Forbidden
            | ErrorCode::MfaEnrolmentRequired
            | ErrorCode::PasswordChangeRequired,
        ) => Outcome::Denied,
        _ => Outcome::Failure,
    };
    (outcome, Some(reason))
}

/// What the middleware needs: the audit writer, the anonymous gate, and the
/// proxies whose `X-Forwarded-For` is believed. Its own state, so that the
/// audit layer does not depend on the application's whole state.
#[derive(Clone)]
pub struct RequestAudit {
    pub audit: AuditLog,
    pub anonymous: Arc<AnonymousGate>,
    pub trusted_proxies: Arc<Vec<IpAddr>>,
}

/// Middleware: the request's audit event (see the module docs).
pub async fn record_requests(
    State(state): State<RequestAudit>,
    mut req: Request,
    next: Next,
) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let Some(template) = template else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    let Some(RouteAudit::Event { action, target }) = route_audit(method.as_str(), &template) else {
        return next.run(req).await;
    };
    let scope = AuditScope::default();
    req.extensions_mut().insert(scope.clone());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let ip = crate::http::client_ip(peer, req.headers(), &state.trusted_proxies);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect::<String>());
    let path_target = target.and_then(|(kind, param)| {
        path_param(&template, req.uri().path(), param).map(|id| (kind.to_owned(), id))
    });

    // Anonymous floods (see `anonymous.rs`): refused before they run, and
    // their refusals recorded once a minute per address and route.
    let credentials = req.headers().contains_key(header::AUTHORIZATION);
    let admission = if credentials {
        Admission::Run
    } else {
        state.anonymous.admit(ip)
    };
    let resp = match admission {
        Admission::Run => next.run(req).await,
        Admission::TooFast => {
            metrics::counter!("wardline_anonymous_throttled_total").increment(1);
            HttpError(ApiError::rate_limited(1)).into_response()
        }
        Admission::DiskFull => {
            return HttpError(ApiError::new(
                ErrorCode::Unavailable,
                "the server is low on disk space; try again later",
            ))
            .into_response();
        }
    };

    // Failed and refused attempts are recorded too: they are what an
    // investigation looks for.
    let (outcome, error_reason) = outcome_of(
        resp.status().as_u16(),
        resp.extensions().get::<ErrorCode>().copied(),
    );
    let data = scope.take();
    let (actor_kind, actor_id, device_id) = match (data.actor, data.patient_actor) {
        (Some((user, device)), _) => (ActorKind::User, Some(user.to_string()), Some(device)),
        (None, Some(patient)) => (ActorKind::Patient, Some(patient), None),
        (None, None) => (ActorKind::Anonymous, None, None),
    };
    let (target_type, target_id) = match data.target.or(path_target) {
        Some((k, id)) => (Some(k), Some(id)),
        None => (None, None),
    };
    let event = NewEvent {
        org_id: data.org_id,
        actor_kind,
        actor_id,
        device_id,
        source_ip: Some(ip.to_string()),
        user_agent,
        action,
        target_type,
        target_id,
        patient_id: data.patient_id,
        outcome,
        reason: error_reason.or(data.reason),
        changes: data.changes,
    };
    if event.actor_kind == ActorKind::Anonymous {
        state.anonymous.charge(ip);
        let route = format!("{method} {template}");
        let minute = anonymous::unix_minute();
        if !state.anonymous.first_of_minute(&event, ip, &route, minute) {
            return resp;
        }
    }
    let mut events = vec![event.clone()];
    for (action, kind, id) in data.also {
        events.push(NewEvent {
            action,
            outcome: Outcome::Success,
            reason: None,
            changes: Vec::new(),
            target_type: Some(kind),
            target_id: Some(id),
            ..event.clone()
        });
    }
    for e in events {
        if let Err(err) = state.audit.record(e).await {
            return HttpError(err).into_response();
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_params_are_read_by_template_position() {
        let id = "3f1c5b9e-0000-4000-8000-000000000001";
        assert_eq!(
            path_param(
                "/api/v1/users/{id}/sessions/{session_id}",
                &format!("/api/v1/users/{id}/sessions/abc"),
                "session_id"
            )
            .as_deref(),
            Some("abc")
        );
        assert_eq!(
            path_param("/api/v1/users/{id}", &format!("/api/v1/users/{id}"), "id").as_deref(),
            Some(id)
        );
        assert_eq!(path_param("/api/v1/users", "/api/v1/users", "id"), None);
    }

    #[test]
    fn outcomes_follow_the_error_code() {
        assert_eq!(outcome_of(200, None), (Outcome::Success, None));
        assert_eq!(
            outcome_of(403, Some(ErrorCode::Forbidden)),
            (Outcome::Denied, Some("forbidden".into()))
        );
        assert_eq!(
            outcome_of(401, Some(ErrorCode::InvalidCredentials)),
            (Outcome::Failure, Some("invalid_credentials".into()))
        );
    }

    #[test]
    fn route_table_has_no_duplicates() {
        for (i, (m, t, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[i + 1..].iter().any(|(m2, t2, _)| m == m2 && t == t2),
                "{m} {t} listed twice"
            );
        }
    }
}
