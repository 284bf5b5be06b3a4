//! Setup, login, MFA and session types.

use serde::{Deserialize, Serialize};

use crate::directory::{Organisation, User};
use crate::roles::Permission;
use uuid::Uuid;

/// First-start bootstrap: the one-time setup code printed by the server creates
/// the first organisation and its administrator. The code works once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub setup_code: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub org_name: String,
    /// Short lowercase handle used at login, e.g. `riverside-clinic`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9][a-z0-9-]{0,46}[a-z0-9]$")
    )]
    pub org_slug: String,
    #[cfg_attr(
        feature = "openapi",
        schema(format = "email", min_length = 3, max_length = 254)
    )]
    pub admin_email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub admin_display_name: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 12, max_length = 128))]
    pub admin_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupResponse {
    pub organisation: Organisation,
    pub admin: User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// The organisation's slug.
    pub org: String,
    pub email: String,
    pub password: String,
    /// The client device's id; the session is bound to it.
    pub device_id: Uuid,
    /// The `remembered_device` token this device was given at its last full
    /// sign-in to this account, if any (NIST SP 800-63B §5.2.2): failed
    /// sign-ins elsewhere, which slow the account down, do not slow down a
    /// device that has signed in before; its own failures still count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// Where a login stands after the password step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LoginStep {
    /// Password accepted; send a TOTP or recovery code with `mfa_token` to
    /// `/api/v1/auth/mfa/verify`.
    MfaRequired,
    /// Password accepted, MFA is required but not yet set up: the returned session
    /// may only enrol TOTP (`/api/v1/auth/totp/*`), then it becomes a full session.
    MfaEnrolmentRequired,
    /// Signed in.
    Complete,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    pub step: LoginStep,
    /// Present when `step` is `mfa_required`; valid for 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// Present when `step` is `complete` or `mfa_enrolment_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<IssuedSession>,
}

/// A bearer token and its limits. The token is shown once; the server keeps only
/// its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedSession {
    pub token: String,
    pub session_id: Uuid,
    /// Absolute end of the session (Unix seconds), whatever the activity.
    pub expires_at: i64,
    /// The session ends after this many seconds without a request.
    pub idle_timeout_secs: i64,
    /// Marks this device as one that signed in to the account (given with a
    /// full session): send it as `device_token` on later sign-ins. Keep it
    /// like the session token; it is good for 180 days and opens nothing by
    /// itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remembered_device: Option<String>,
    /// The password was set by an administrator: the session may only
    /// change it (`POST /api/v1/auth/password`; and enrol a second factor,
    /// sign out, say who it is) until it is changed.
    #[serde(default)]
    pub password_change_required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaVerifyRequest {
    pub mfa_token: String,
    /// A 6-digit TOTP code, or one of the recovery codes.
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpEnrolment {
    /// Base32 secret, for manual entry in an authenticator app.
    pub secret_base32: String,
    /// `otpauth://totp/...` URI, for a QR code.
    pub otpauth_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpConfirmRequest {
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpConfirmResponse {
    /// Single-use codes for when the authenticator is lost. Shown once.
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `GET /api/v1/auth/session`: who am I, and what may I do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrentSession {
    pub session_id: Uuid,
    pub device_id: Uuid,
    pub user: User,
    pub organisation: Organisation,
    pub permissions: Vec<Permission>,
    pub created_at: i64,
    pub expires_at: i64,
    pub idle_timeout_secs: i64,
    pub mfa_enrolment_required: bool,
    /// The password is one an administrator set: change it before anything
    /// else (`POST /api/v1/auth/password`).
    #[serde(default)]
    pub password_change_required: bool,
}

/// A session as an administrator or the user sees it. Never contains the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionSummary {
    pub id: Uuid,
    pub device_id: Uuid,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub mfa_complete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedSessions {
    pub revoked: u64,
}
