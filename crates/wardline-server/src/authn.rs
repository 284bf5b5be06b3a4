//! Authentication extractors: the session behind a request's bearer token,
//! as a [`Principal`], at the strength the route needs ([`Authenticated`],
//! [`PasswordChangeSession`], [`AnySession`]). HTTP only: services take the
//! `Principal` these produce and never see a request.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use wardline_proto::ErrorCode;
use zeroize::Zeroizing;

use crate::error::{ApiError, HttpError};
use wardline_core::audit::AuditScope;
use wardline_core::auth::AuthService;
use wardline_core::authz::Principal;

pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// A signed-in caller with a complete session (password and second factor).
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    AuthService: FromRef<S>,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let p = PasswordChangeSession::from_request_parts(parts, state)
            .await?
            .0;
        Ok(Authenticated(complete(p)?))
    }
}

/// A session that may do everything its roles allow: no administrator-set
/// password left to change.
fn complete(p: Principal) -> Result<Principal, ApiError> {
    if p.password_change_required {
        return Err(ApiError::new(
            ErrorCode::PasswordChangeRequired,
            "your password was set by an administrator: choose your own first with POST /api/v1/auth/password",
        ));
    }
    Ok(p)
}

/// The caller opening a sync WebSocket: as [`Authenticated`], by the bearer
/// token or, from a browser (which cannot send an `Authorization` header
/// with an upgrade), by a one-time `ticket` in the query. The ticket is used
/// up here, so a refused upgrade needs a new one.
pub struct SocketSession(pub Principal);

impl<S> FromRequestParts<S> for SocketSession
where
    S: Send + Sync,
    AuthService: FromRef<S>,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ticket = parts.uri.query().and_then(|q| {
            serde_urlencoded::from_str::<Vec<(String, Zeroizing<String>)>>(q)
                .ok()?
                .into_iter()
                .find_map(|(k, v)| (k == "ticket").then_some(v))
        });
        let Some(ticket) = ticket.filter(|_| bearer_token(&parts.headers).is_none()) else {
            return Ok(SocketSession(
                Authenticated::from_request_parts(parts, state).await?.0,
            ));
        };
        let scope = request_scope(parts);
        let p = AuthService::from_ref(state)
            .authenticate_socket_ticket(&ticket, &scope)
            .await?;
        scope.actor(&p);
        Ok(SocketSession(complete(second_factor(p)?)?))
    }
}

/// The request's audit scope; outside an audited route a detached one,
/// dropped unread.
fn request_scope(parts: &Parts) -> AuditScope {
    parts
        .extensions
        .get::<AuditScope>()
        .cloned()
        .unwrap_or_default()
}

/// A signed-in caller with a second factor whose password may still be the
/// one an administrator set: only changing it accepts this.
pub struct PasswordChangeSession(pub Principal);

impl<S> FromRequestParts<S> for PasswordChangeSession
where
    S: Send + Sync,
    AuthService: FromRef<S>,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let p = AnySession::from_request_parts(parts, state).await?.0;
        Ok(PasswordChangeSession(second_factor(p)?))
    }
}

/// A session that passed its second factor.
fn second_factor(p: Principal) -> Result<Principal, ApiError> {
    if !p.mfa_complete {
        return Err(ApiError::new(
            ErrorCode::MfaEnrolmentRequired,
            "set up a second factor first: POST /api/v1/auth/totp/enroll, then /api/v1/auth/totp/confirm",
        ));
    }
    Ok(p)
}

/// A signed-in caller whose session may still be waiting for MFA enrolment.
/// Only enrolment, logout and "who am I" accept this.
pub struct AnySession(pub Principal);

impl<S> FromRequestParts<S> for AnySession
where
    S: Send + Sync,
    AuthService: FromRef<S>,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        let scope = request_scope(parts);
        let principal = AuthService::from_ref(state)
            .authenticate(token, &scope)
            .await?;
        scope.actor(&principal);
        Ok(AnySession(principal))
    }
}
