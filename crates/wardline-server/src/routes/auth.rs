//! Routes for setup, sign-in, MFA and sessions. Thin: parse, authorize, call
//! the service.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wardline_proto::auth::*;
use wardline_proto::{ErrorBody, Permission};

use crate::authn::{AnySession, Authenticated, PasswordChangeSession};
use crate::error::ApiResult;
use crate::http::{ApiJson, ApiPath, ApiQuery};
use crate::request_audit::Audit;
use crate::state::{AppState, TrustedProxies};
use wardline_core::auth::AuthService;
use wardline_core::directory::DirectoryService;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(setup))
        .routes(routes!(login))
        .routes(routes!(verify_mfa))
        .routes(routes!(current_session))
        .routes(routes!(logout))
        .routes(routes!(enroll_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(change_password))
        .routes(routes!(list_user_sessions, revoke_user_sessions))
        .routes(routes!(revoke_one_session))
        .routes(routes!(reset_mfa))
}

/// Create the first organisation and its administrator with the one-time
/// setup code printed at first start.
#[utoipa::path(post, path = "/api/v1/setup", tag = "setup", request_body = SetupRequest,
    responses((status = 201, body = SetupResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn setup(
    State(directory): State<DirectoryService>,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<SetupRequest>,
) -> ApiResult<(StatusCode, Json<SetupResponse>)> {
    let done = directory.setup(req).await?;
    audit.org(done.organisation.id.into());
    audit.target("user", done.admin.id);
    Ok((StatusCode::CREATED, Json(done)))
}

/// Sign in with organisation, e-mail and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(auth): State<AuthService>,
    State(TrustedProxies(proxies)): State<TrustedProxies>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let ip = crate::http::client_ip(peer.ip(), &headers, &proxies);
    Ok(Json(auth.login(req, ip, &audit).await?))
}

/// Complete sign-in with a TOTP or recovery code.
#[utoipa::path(post, path = "/api/v1/auth/mfa/verify", tag = "auth", request_body = MfaVerifyRequest,
    responses((status = 200, body = IssuedSession), (status = 401, body = ErrorBody)))]
async fn verify_mfa(
    State(auth): State<AuthService>,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<MfaVerifyRequest>,
) -> ApiResult<Json<IssuedSession>> {
    Ok(Json(auth.verify_mfa(req, &audit).await?))
}

/// Who am I: the session, user, organisation and permissions.
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = CurrentSession), (status = 401, body = ErrorBody)))]
async fn current_session(
    State(auth): State<AuthService>,
    Audit(audit): Audit,
    AnySession(p): AnySession,
) -> ApiResult<Json<CurrentSession>> {
    audit.target("session", p.session_id);
    Ok(Json(auth.current(&p).await?))
}

/// End the current session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(
    State(auth): State<AuthService>,
    Audit(audit): Audit,
    AnySession(p): AnySession,
) -> ApiResult<StatusCode> {
    audit.target("session", p.session_id);
    auth.logout(&p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start TOTP enrolment: returns the secret and an otpauth URI.
#[utoipa::path(post, path = "/api/v1/auth/totp/enroll", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TotpEnrolment), (status = 409, body = ErrorBody)))]
async fn enroll_totp(
    State(auth): State<AuthService>,
    AnySession(p): AnySession,
) -> ApiResult<Json<TotpEnrolment>> {
    Ok(Json(auth.begin_totp_enrolment(&p).await?))
}

/// Confirm TOTP enrolment with a first code; returns recovery codes.
#[utoipa::path(post, path = "/api/v1/auth/totp/confirm", tag = "auth", security(("bearer" = [])), request_body = TotpConfirmRequest,
    responses((status = 200, body = TotpConfirmResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn confirm_totp(
    State(auth): State<AuthService>,
    AnySession(p): AnySession,
    ApiJson(req): ApiJson<TotpConfirmRequest>,
) -> ApiResult<Json<TotpConfirmResponse>> {
    Ok(Json(TotpConfirmResponse {
        recovery_codes: auth.confirm_totp(&p, &req.code).await?,
    }))
}

/// Change one's own password; other sessions are signed out.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn change_password(
    State(auth): State<AuthService>,
    PasswordChangeSession(p): PasswordChangeSession,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    auth.change_password(&p, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's live sessions (their own, or anyone's with `sessions_read`).
#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = Vec<SessionSummary>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_user_sessions(
    State(auth): State<AuthService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<SessionSummary>>> {
    p.authorize_self_or(id.into(), Permission::SessionsRead)?;
    Ok(Json(auth.list_sessions(p.org_id, id.into()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RevokeFilter {
    /// Only the sessions of this device (e.g. a lost phone).
    device_id: Option<Uuid>,
}

/// Sign a user out everywhere, or on one device. Takes effect on the next request.
#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id"), RevokeFilter),
    responses((status = 200, body = RevokedSessions), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_user_sessions(
    State(auth): State<AuthService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(f): ApiQuery<RevokeFilter>,
) -> ApiResult<Json<RevokedSessions>> {
    p.authorize_self_or(id.into(), Permission::SessionsRevoke)?;
    Ok(Json(RevokedSessions {
        revoked: auth
            .revoke_sessions(p.org_id, id.into(), f.device_id.map(Into::into))
            .await?,
    }))
}

/// Revoke one session of a user.
#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions/{session_id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id"), ("session_id" = Uuid, Path, description = "session id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_one_session(
    State(auth): State<AuthService>,
    Authenticated(p): Authenticated,
    ApiPath((id, session_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    p.authorize_self_or(id.into(), Permission::SessionsRevoke)?;
    auth.revoke_session(p.org_id, id.into(), session_id.into())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clear a user's authenticator (lost phone); they enrol again at next sign-in.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/reset", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_mfa(
    State(auth): State<AuthService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    p.authorize(Permission::UsersManage)?;
    auth.reset_mfa(p.org_id, id.into()).await?;
    Ok(StatusCode::NO_CONTENT)
}
