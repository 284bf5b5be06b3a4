//! Organisations and users.

use serde::{Deserialize, Serialize};

use crate::roles::{Permission, Role};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Organisation {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: i64,
}

/// Session and MFA policy of one organisation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgPolicy {
    /// Seconds without a request after which a session ends (60 ..= 86400).
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 86400))]
    pub idle_timeout_secs: i64,
    /// Seconds after sign-in after which a session ends whatever the activity
    /// (300 ..= 604800), not less than `idle_timeout_secs`.
    #[cfg_attr(feature = "openapi", schema(minimum = 300, maximum = 604800))]
    pub absolute_lifetime_secs: i64,
    /// Whether every user must have a second factor. On by default.
    pub mfa_required: bool,
    /// Read receipts, attachment and group size limits.
    #[serde(default)]
    pub messaging: crate::messaging::MessagingPolicy,
    /// Patient texting: links, identity checks, quiet hours, sender number.
    #[serde(default)]
    pub patients: crate::patients::PatientTextingPolicy,
    /// What devices must be (PIN, posture, offline limit) to hold messages.
    #[serde(default)]
    pub devices: crate::lifecycle::DevicePolicy,
    /// Escalation ladders, alert throttling, break-glass duration.
    #[serde(default)]
    pub routing: crate::routing::RoutingPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    /// Temporarily barred from signing in (e.g. leave); reversible.
    Suspended,
    /// Left the organisation: signed out everywhere, cannot be reactivated.
    Deprovisioned,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
            UserStatus::Deprovisioned => "deprovisioned",
        }
    }

    pub fn parse(s: &str) -> Option<UserStatus> {
        [
            UserStatus::Active,
            UserStatus::Suspended,
            UserStatus::Deprovisioned,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub roles: Vec<Role>,
    pub status: UserStatus,
    pub mfa_enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUserRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(format = "email", min_length = 3, max_length = 254)
    )]
    pub email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub display_name: String,
    /// International format (E.164), e.g. `+15551234567`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\+[1-9][0-9]{6,14}$"))]
    pub phone: Option<String>,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub roles: Vec<Role>,
    /// Initial password; subject to the password policy (12 to 128 characters,
    /// not common or guessable).
    #[cfg_attr(feature = "openapi", schema(min_length = 12, max_length = 128))]
    pub password: String,
    /// The password is temporary: at first sign-in the user must choose
    /// their own before doing anything else (default). `false` when the
    /// password is already the user's own choice.
    #[serde(default = "temporary_password")]
    pub password_change_required: bool,
}

fn temporary_password() -> bool {
    true
}

/// Fields left out are not changed. `phone: null` is "leave as is"; to remove a
/// phone number send `clear_phone: true`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_phone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserList {
    pub users: Vec<User>,
    /// Each user's latest sign-in (Unix seconds), by user id; users who never
    /// signed in are absent. Only for callers who may read sessions
    /// (`sessions_read`); empty for others.
    #[serde(default)]
    pub last_sign_in_at: std::collections::BTreeMap<Uuid, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleInfo {
    pub role: Role,
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleList {
    pub roles: Vec<RoleInfo>,
}
