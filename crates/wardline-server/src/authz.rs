//! Authorization, in one place. Every handler obtains a [`Principal`] from the
//! request (extractors below) and asks [`Principal::authorize`] for exactly one
//! [`Permission`]; the role → permission table is `Role::permissions` in
//! `wardline-proto`. Tenancy is not a permission: services scope every query by
//! `principal.org_id`, so another organisation's ids simply do not exist.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use wardline_proto::{DeviceId, ErrorCode, OrgId, Permission, Role, SessionId, UserId};

use crate::app::AppState;
use crate::audit::AuditScope;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone)]
pub struct Principal {
    pub session_id: SessionId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub roles: Vec<Role>,
    /// False while the session may only enrol a second factor.
    pub mfa_complete: bool,
    /// True while the user's password is one an administrator set: the
    /// session may only change it (and what [`AnySession`] allows).
    pub password_change_required: bool,
}

impl Principal {
    pub fn has(&self, permission: Permission) -> bool {
        self.roles
            .iter()
            .any(|r| r.permissions().contains(&permission))
    }

    pub fn authorize(&self, permission: Permission) -> ApiResult<()> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "requires the {} permission",
                permission.as_str()
            )))
        }
    }

    /// For resources that belong to a user: the user themself, or someone with
    /// `permission`.
    pub fn authorize_self_or(&self, user: UserId, permission: Permission) -> ApiResult<()> {
        if self.user_id == user {
            Ok(())
        } else {
            self.authorize(permission)
        }
    }

    pub fn permissions(&self) -> Vec<Permission> {
        let mut out: Vec<Permission> = Vec::new();
        for r in &self.roles {
            for p in r.permissions() {
                if !out.contains(p) {
                    out.push(*p);
                }
            }
        }
        out
    }
}

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

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let p = PasswordChangeSession::from_request_parts(parts, state)
            .await?
            .0;
        if p.password_change_required {
            return Err(ApiError::new(
                ErrorCode::PasswordChangeRequired,
                "your password was set by an administrator: choose your own first with POST /api/v1/auth/password",
            ));
        }
        Ok(Authenticated(p))
    }
}

/// A signed-in caller with a second factor whose password may still be the
/// one an administrator set: only changing it accepts this.
pub struct PasswordChangeSession(pub Principal);

impl FromRequestParts<AppState> for PasswordChangeSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let p = AnySession::from_request_parts(parts, state).await?.0;
        if !p.mfa_complete {
            return Err(ApiError::new(
                ErrorCode::MfaEnrolmentRequired,
                "set up a second factor first: POST /api/v1/auth/totp/enroll, then /api/v1/auth/totp/confirm",
            ));
        }
        Ok(PasswordChangeSession(p))
    }
}

/// A signed-in caller whose session may still be waiting for MFA enrolment.
/// Only enrolment, logout and "who am I" accept this.
pub struct AnySession(pub Principal);

impl FromRequestParts<AppState> for AnySession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        // Outside an audited route the scope is a detached one, dropped unread.
        let scope = parts
            .extensions
            .get::<AuditScope>()
            .cloned()
            .unwrap_or_default();
        let principal = state.auth.authenticate(token, &scope).await?;
        scope.actor(&principal);
        Ok(AnySession(principal))
    }
}
