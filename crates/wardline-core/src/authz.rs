//! Authorization, in one place. Every handler obtains a [`Principal`] from the
//! request (the extractors of `wardline-server`'s `authn`) and asks [`Principal::authorize`] for exactly one
//! [`Permission`]; the role → permission table is `Role::permissions` in
//! `wardline-proto`. Tenancy is not a permission: services scope every query by
//! `principal.org_id`, so another organisation's ids simply do not exist.

use wardline_proto::{DeviceId, OrgId, Permission, Role, SessionId, UserId};

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
