//! Organisations and users: the directory of who works where and in which role.
//!
//! All user PHI (e-mail, name, phone) and the TOTP secret pass through
//! [`crate::vault`] here and nowhere else; the rest of the server sees decoded
//! [`User`] values or opaque [`UserRow`]s.

use std::sync::Arc;

use uuid::Uuid;
use wardline_crypto::DataKey;
use wardline_proto::auth::{SetupRequest, SetupResponse};
use wardline_proto::directory::{
    CreateUserRequest, OrgPolicy, Organisation, UpdateUserRequest, User, UserStatus,
};
use wardline_proto::{OrgId, Role, UserId};

use crate::audit::AuditScope;
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::credentials::password::{self, Passwords};
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult};
use crate::vault::{FieldRef, Vault};
use wardline_proto::audit::FieldChange;
use wardline_proto::routing::Notification;
use wardline_store::{OrgRow, RoutingStore, Store, StoreError, UserRow};

/// What an update changed on a user, for the audit event: roles before →
/// after; of the contact fields (personal data, kept out of the trail and
/// the SIEM) only that they changed, without their values.
fn user_changes(before: &UserRow, after: &UserRow) -> Vec<FieldChange> {
    let mut out = Vec::new();
    if before.roles != after.roles {
        let names = |r: &[Role]| {
            serde_json::to_string(&r.iter().map(|r| r.as_str()).collect::<Vec<_>>())
                .expect("role names serialise")
        };
        out.push(FieldChange {
            field: "roles".into(),
            before: Some(names(&before.roles)),
            after: Some(names(&after.roles)),
        });
    }
    for (field, changed) in [
        ("email", before.email_enc != after.email_enc),
        (
            "display_name",
            before.display_name_enc != after.display_name_enc,
        ),
        ("phone", before.phone_enc != after.phone_enc),
    ] {
        if changed {
            out.push(FieldChange {
                field: field.into(),
                before: None,
                after: None,
            });
        }
    }
    out
}

const SETUP_CODE_KEY: &str = "setup_code_sha256";

#[derive(Clone)]
pub struct DirectoryService {
    store: Arc<dyn Store>,
    /// The compliance register (notifications), where role changes that
    /// concern the compliance officer are recorded.
    register: Arc<dyn RoutingStore>,
    vault: Vault,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    defaults: AuthConfig,
}

/// Lower-cases and trims an e-mail address and checks its shape.
pub fn normalise_email(raw: &str) -> ApiResult<String> {
    let e = raw.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e)
    } else {
        Err(ApiError::invalid_field(
            "email",
            "email is not a valid e-mail address",
        ))
    }
}

fn validate_display_name(raw: &str) -> ApiResult<String> {
    let n = raw.trim().to_owned();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "display_name",
            "display_name must be 1 to 200 printable characters",
        ));
    }
    Ok(n)
}

/// RFC 7396 §2: a member set to `null` is removed, an object is merged
/// member by member, anything else replaces.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    let target = target.as_object_mut().expect("an object now");
    for (key, value) in members {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(
                target.entry(key.clone()).or_insert(serde_json::Value::Null),
                value,
            );
        }
    }
}

/// The first member path of `patch` (not `null`) that `result` does not have.
fn unknown_member(
    patch: &serde_json::Value,
    result: &serde_json::Value,
    at: String,
) -> Option<String> {
    let serde_json::Value::Object(members) = patch else {
        return None;
    };
    for (key, value) in members {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        match result.get(key) {
            None if !value.is_null() => return Some(path),
            Some(inner) if inner.is_object() => {
                if let Some(p) = unknown_member(value, inner, path) {
                    return Some(p);
                }
            }
            _ => {}
        }
    }
    None
}

/// A staff member's mobile number as E.164 (see [`crate::phone`]).
fn normalise_phone(raw: &str) -> ApiResult<String> {
    crate::phone::e164(raw, None).map_err(|e| e.at_field("phone"))
}

fn own_roles() -> ApiError {
    ApiError::conflict("nobody changes their own roles; ask another administrator")
}

fn compliance_is_not_theirs() -> ApiError {
    ApiError::forbidden(
        "the compliance officer role is granted and removed by a compliance officer \
         (PUT or DELETE /api/v1/users/{id}/compliance-officer; wardline admin users compliance-officer)",
    )
}

fn validate_roles(roles: &[Role]) -> ApiResult<Vec<Role>> {
    let mut r = roles.to_vec();
    r.sort();
    r.dedup();
    if r.is_empty() {
        return Err(ApiError::invalid_field(
            "roles",
            "a user needs at least one role",
        ));
    }
    Ok(r)
}

pub fn validate_slug(slug: &str) -> ApiResult<()> {
    let ok = (2..=48).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "org slug must be 2-48 characters of a-z, 0-9 and '-'",
        ))
    }
}

pub fn validate_policy(p: &OrgPolicy) -> ApiResult<()> {
    if !(60..=86_400).contains(&p.idle_timeout_secs) {
        return Err(ApiError::invalid_field(
            "idle_timeout_secs",
            "idle_timeout_secs must be between 60 and 86400",
        ));
    }
    if !(300..=604_800).contains(&p.absolute_lifetime_secs) {
        return Err(ApiError::invalid_field(
            "absolute_lifetime_secs",
            "absolute_lifetime_secs must be between 300 and 604800",
        ));
    }
    if p.idle_timeout_secs > p.absolute_lifetime_secs {
        return Err(ApiError::invalid_field(
            "idle_timeout_secs",
            "idle_timeout_secs cannot exceed absolute_lifetime_secs",
        ));
    }
    if !(1024..=100 * 1024 * 1024).contains(&p.messaging.max_attachment_bytes) {
        return Err(ApiError::invalid_field(
            "messaging.max_attachment_bytes",
            "messaging.max_attachment_bytes must be between 1024 and 104857600",
        ));
    }
    if !(2..=5000).contains(&p.messaging.max_group_members) {
        return Err(ApiError::invalid_field(
            "messaging.max_group_members",
            "messaging.max_group_members must be between 2 and 5000",
        ));
    }
    if !(0..=90).contains(&p.messaging.history_days) {
        return Err(ApiError::invalid_field(
            "messaging.history_days",
            "messaging.history_days must be between 0 and 90",
        ));
    }
    crate::policy::patients::validate_policy(&p.patients)?;
    crate::policy::lifecycle::validate_device_policy(&p.devices)?;
    crate::policy::routing::validate_policy(&p.routing)
}

pub fn org_to_wire(o: &OrgRow) -> Organisation {
    Organisation {
        id: o.id.into(),
        name: o.name.clone(),
        slug: o.slug.clone(),
        created_at: o.created_at,
    }
}

fn field<'a>(row_id: &'a str, column: &'a str) -> FieldRef<'a> {
    FieldRef {
        table: "users",
        row_id,
        column,
    }
}

impl DirectoryService {
    pub fn new(deps: &Deps, passwords: Passwords, defaults: AuthConfig) -> Self {
        let (store, register, vault, clock) = (
            deps.store.clone(),
            deps.routing.clone(),
            deps.vault.clone(),
            deps.clock.clone(),
        );
        DirectoryService {
            store,
            register,
            vault,
            clock,
            passwords,
            defaults,
        }
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    // ---- setup -------------------------------------------------------------

    /// On a server with no organisation, makes sure a one-time setup code
    /// exists and returns it (to be shown on the console, never logged). The
    /// database keeps only its hash. `None` once an organisation exists.
    pub async fn ensure_setup_code(&self) -> ApiResult<Option<String>> {
        if self.store.count_orgs().await? > 0 {
            return Ok(None);
        }
        let code = wardline_crypto::token::new_code(4, 5);
        self.store
            .put_setting(
                SETUP_CODE_KEY,
                &hex::encode(wardline_crypto::token::hash_token(&code)),
            )
            .await?;
        Ok(Some(code))
    }

    /// `POST /api/v1/setup`: consumes the setup code, creates the first
    /// organisation and its administrator.
    pub async fn setup(&self, req: SetupRequest) -> ApiResult<SetupResponse> {
        // Validate everything before burning the one-time code.
        validate_slug(&req.org_slug)?;
        let email = normalise_email(&req.admin_email)?;
        validate_display_name(&req.admin_display_name)?;
        password::check_policy(
            &req.admin_password,
            &[
                &email,
                &req.admin_display_name,
                &req.org_name,
                &req.org_slug,
            ],
        )?;
        let hash = hex::encode(wardline_crypto::token::hash_token(req.setup_code.trim()));
        if !self.store.consume_setting(SETUP_CODE_KEY, &hash).await? {
            return Err(ApiError::new(
                wardline_proto::ErrorCode::InvalidCredentials,
                "setup code is wrong or has already been used",
            ));
        }
        let org = self.create_org(&req.org_name, &req.org_slug).await?;
        let admin = self
            .create_user(
                org.id,
                CreateUserRequest {
                    email,
                    display_name: req.admin_display_name,
                    phone: None,
                    roles: vec![Role::OrgAdmin],
                    password: req.admin_password,
                    // Chosen by the administrator themself.
                    password_change_required: false,
                },
            )
            .await?;
        Ok(SetupResponse {
            organisation: org_to_wire(&org),
            admin,
        })
    }

    // ---- organisations -------------------------------------------------------

    pub async fn create_org(&self, name: &str, slug: &str) -> ApiResult<OrgRow> {
        validate_slug(slug)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::validation(
                "organisation name must be 1 to 200 characters",
            ));
        }
        let org = OrgRow {
            id: Uuid::new_v4().into(),
            name: name.to_owned(),
            slug: slug.to_owned(),
            policy: OrgPolicy {
                idle_timeout_secs: self.defaults.idle_timeout_secs,
                absolute_lifetime_secs: self.defaults.absolute_lifetime_secs,
                mfa_required: self.defaults.mfa_required,
                messaging: Default::default(),
                patients: Default::default(),
                devices: Default::default(),
                routing: Default::default(),
            },
            created_at: self.clock.now(),
        };
        self.store.insert_org(&org).await?;
        // Creating an organisation closes the first-start window for good.
        let _ = self.store.put_setting(SETUP_CODE_KEY, "used").await;
        Ok(org)
    }

    pub async fn org(&self, id: OrgId) -> ApiResult<OrgRow> {
        Ok(self.store.get_org(id).await?)
    }

    pub async fn org_by_slug(&self, slug: &str) -> Result<OrgRow, StoreError> {
        self.store.get_org_by_slug(slug).await
    }

    /// Applies a JSON merge patch (RFC 7396) to the organisation's policy,
    /// then stores it as [`DirectoryService::update_policy`] does. Errors: 422
    /// when the patch is not an object, names a member the policy does not
    /// have, or leaves a policy that is not valid.
    pub async fn patch_policy(
        &self,
        org: OrgId,
        patch: &serde_json::Value,
        audit: &AuditScope,
    ) -> ApiResult<OrgPolicy> {
        match patch.as_object() {
            None => {
                return Err(ApiError::validation(
                    "a policy patch is a JSON object (RFC 7396 merge patch)",
                ));
            }
            // Valid in RFC 7396, but a request that changes nothing is a
            // mistake worth saying.
            Some(m) if m.is_empty() => {
                return Err(ApiError::validation(
                    "the patch changes nothing: give the members to change",
                ));
            }
            Some(_) => {}
        }
        let current = self.org(org).await?.policy;
        let mut doc = serde_json::to_value(&current).map_err(ApiError::internal)?;
        merge_patch(&mut doc, patch);
        let policy: OrgPolicy = serde_json::from_value(doc)
            .map_err(|e| ApiError::validation(format!("the patched policy is not valid: {e}")))?;
        // Members the policy does not have would be dropped without a word.
        let result = serde_json::to_value(&policy).map_err(ApiError::internal)?;
        if let Some(path) = unknown_member(patch, &result, String::new()) {
            return Err(ApiError::validation(format!(
                "the policy has no member {path}"
            )));
        }
        self.update_policy(org, policy, audit).await
    }

    /// Stores a whole policy; the audit event records each member that
    /// changed, before → after (the policy holds no secrets).
    pub async fn update_policy(
        &self,
        org: OrgId,
        policy: OrgPolicy,
        audit: &AuditScope,
    ) -> ApiResult<OrgPolicy> {
        validate_policy(&policy)?;
        let before = self.org(org).await?.policy;
        self.store.update_org_policy(org, &policy).await?;
        audit.changed(&before, &policy);
        Ok(policy)
    }

    // ---- users ---------------------------------------------------------------

    pub async fn create_user(&self, org: OrgId, req: CreateUserRequest) -> ApiResult<User> {
        let email = normalise_email(&req.email)?;
        let name = validate_display_name(&req.display_name)?;
        let phone = req.phone.as_deref().map(normalise_phone).transpose()?;
        let roles = validate_roles(&req.roles)?;
        let names_compliance = roles.contains(&Role::ComplianceOfficer);
        if names_compliance && self.has_compliance_officer(org).await? {
            return Err(compliance_is_not_theirs());
        }
        password::check_policy(&req.password, &[&email, &name])
            .map_err(|e| e.at_field("password"))?;
        let email_bidx = self.vault.email_index(org, &email);
        if self
            .store
            .find_user_by_email(org, &email_bidx)
            .await?
            .is_some()
        {
            return Err(ApiError::conflict("a user with this e-mail already exists"));
        }
        let password_hash = self.passwords.hash(&req.password).await?;
        let id = Uuid::new_v4();
        let sid = id.to_string();
        let (dek_id, key) = self.vault.new_record_key(Some(org)).await?;
        let now = self.clock.now();
        let row = UserRow {
            id: id.into(),
            org_id: org,
            dek_id,
            email_bidx,
            email_enc: Vault::seal(&key, field(&sid, "email"), &email),
            display_name_enc: Vault::seal(&key, field(&sid, "display_name"), &name),
            phone_enc: phone
                .as_deref()
                .map(|p| Vault::seal(&key, field(&sid, "phone"), p)),
            roles,
            status: UserStatus::Active,
            password_hash,
            totp_secret_enc: None,
            totp_enabled: false,
            totp_last_step: 0,
            password_change_required: req.password_change_required,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_user(&row).await?;
        if names_compliance {
            self.record_compliance_change(
                org,
                id.into(),
                "the organisation's first compliance officer was named",
            )
            .await?;
        }
        self.decode(&row, &key)
    }

    pub async fn user_row(&self, org: OrgId, id: UserId) -> ApiResult<UserRow> {
        self.store.get_user(org, id).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("user"),
            other => other.into(),
        })
    }

    pub async fn user(&self, org: OrgId, id: UserId) -> ApiResult<User> {
        let row = self.user_row(org, id).await?;
        self.to_wire(&row).await
    }

    pub async fn find_by_email(&self, org: OrgId, email: &str) -> ApiResult<Option<UserRow>> {
        let Ok(email) = normalise_email(email) else {
            return Ok(None);
        };
        Ok(self
            .store
            .find_user_by_email(org, &self.vault.email_index(org, &email))
            .await?)
    }

    pub async fn list(&self, org: OrgId) -> ApiResult<Vec<User>> {
        let rows = self.store.list_users_with_keys(org).await?;
        rows.iter()
            .map(|(row, key)| self.decode(row, &self.vault.unwrap_key(key)?))
            .collect()
    }

    /// Each user's latest sign-in (Unix seconds), by user id.
    pub async fn last_sign_ins(
        &self,
        org: OrgId,
    ) -> ApiResult<std::collections::BTreeMap<uuid::Uuid, i64>> {
        Ok(self
            .store
            .last_sign_ins(org)
            .await?
            .into_iter()
            .map(|(u, at)| (u.into(), at))
            .collect())
    }

    /// `actor` is the administrator making the change. Separation of duties
    /// (see [`DirectoryService::set_compliance_officer`]): nobody changes their
    /// own roles (which also keeps an organisation from locking its last
    /// administrator out), and the compliance officer role is not changed
    /// here once the organisation has one.
    pub async fn update(
        &self,
        org: OrgId,
        actor: UserId,
        id: UserId,
        req: UpdateUserRequest,
        audit: &AuditScope,
    ) -> ApiResult<User> {
        let mut row = self.user_row(org, id).await?;
        let before = row.clone();
        let mut named_compliance = false;
        if let Some(roles) = &req.roles {
            let roles = validate_roles(roles)?;
            if roles != row.roles {
                if actor == id {
                    return Err(own_roles());
                }
                let before = row.roles.contains(&Role::ComplianceOfficer);
                if before != roles.contains(&Role::ComplianceOfficer) {
                    if self.has_compliance_officer(org).await? {
                        return Err(compliance_is_not_theirs());
                    }
                    named_compliance = true;
                }
            }
        }
        if row.status == UserStatus::Deprovisioned {
            return Err(ApiError::conflict("user is deprovisioned"));
        }
        let key = self.vault.record_key(&row.dek_id).await?;
        let sid = row.id.to_string();
        if let Some(email) = &req.email {
            let email = normalise_email(email)?;
            let bidx = self.vault.email_index(org, &email);
            if bidx != row.email_bidx {
                if self.store.find_user_by_email(org, &bidx).await?.is_some() {
                    return Err(ApiError::conflict("a user with this e-mail already exists"));
                }
                row.email_bidx = bidx;
                row.email_enc = Vault::seal(&key, field(&sid, "email"), &email);
            }
        }
        if let Some(name) = &req.display_name {
            row.display_name_enc = Vault::seal(
                &key,
                field(&sid, "display_name"),
                &validate_display_name(name)?,
            );
        }
        if req.clear_phone && req.phone.is_some() {
            return Err(ApiError::bad_request(
                "give either phone or clear_phone, not both",
            ));
        }
        if let Some(phone) = &req.phone {
            row.phone_enc = Some(Vault::seal(
                &key,
                field(&sid, "phone"),
                &normalise_phone(phone)?,
            ));
        }
        if req.clear_phone {
            row.phone_enc = None;
        }
        if let Some(roles) = &req.roles {
            row.roles = validate_roles(roles)?;
        }
        row.updated_at = self.clock.now();
        self.store.update_user(&row).await?;
        audit.changes(user_changes(&before, &row));
        if named_compliance {
            self.record_compliance_change(
                org,
                id,
                "the organisation's first compliance officer was named by an administrator",
            )
            .await?;
        }
        self.decode(&row, &key)
    }

    /// Grants (`grant`) or removes the compliance officer role: the
    /// compliance officer's own act (finding M4 of 2026-11-30: an
    /// administrator granted themselves the role that exists to check
    /// administrators: audit reading, legal-hold release, break-glass review).
    /// Nobody changes their own roles; every change is a notification in the
    /// compliance register, where the other compliance officers see it.
    pub async fn set_compliance_officer(
        &self,
        org: OrgId,
        actor: UserId,
        id: UserId,
        grant: bool,
        audit: &AuditScope,
    ) -> ApiResult<User> {
        if actor == id {
            return Err(own_roles());
        }
        let mut row = self.user_row(org, id).await?;
        if row.status == UserStatus::Deprovisioned {
            return Err(ApiError::conflict("user is deprovisioned"));
        }
        let mut roles = row.roles.clone();
        roles.retain(|r| *r != Role::ComplianceOfficer);
        if grant {
            roles.push(Role::ComplianceOfficer);
        }
        let roles = validate_roles(&roles)?;
        if roles != row.roles {
            let before = row.clone();
            row.roles = roles;
            row.updated_at = self.clock.now();
            self.store.update_user(&row).await?;
            audit.changes(user_changes(&before, &row));
            self.record_compliance_change(
                org,
                id,
                if grant {
                    "granted the compliance officer role"
                } else {
                    "removed the compliance officer role"
                },
            )
            .await?;
        }
        self.to_wire(&row).await
    }

    /// Whether an active user of `org` holds the compliance officer role.
    async fn has_compliance_officer(&self, org: OrgId) -> ApiResult<bool> {
        Ok(self
            .store
            .list_users_with_keys(org)
            .await?
            .iter()
            .any(|(u, _)| {
                u.status == UserStatus::Active && u.roles.contains(&Role::ComplianceOfficer)
            }))
    }

    async fn record_compliance_change(
        &self,
        org: OrgId,
        subject: UserId,
        detail: &str,
    ) -> ApiResult<()> {
        self.notify(org, "compliance_role", subject, detail).await
    }

    /// A notification in the organisation's compliance register (`kind`:
    /// `compliance_role`, `sign_in_attack`, …; `detail` without PHI).
    pub async fn notify(
        &self,
        org: OrgId,
        kind: &str,
        subject: UserId,
        detail: &str,
    ) -> ApiResult<()> {
        self.register
            .insert_notification(
                org,
                &Notification {
                    id: Uuid::new_v4(),
                    kind: kind.into(),
                    subject: subject.into(),
                    detail: detail.into(),
                    created_at: self.clock.now(),
                },
            )
            .await?;
        Ok(())
    }

    /// Suspend, reactivate or deprovision. Leaving `Active` ends every session
    /// at once; a deprovisioned user is final. Nobody suspends or deprovisions
    /// their own account (`actor`), so an organisation keeps an administrator.
    pub async fn set_status(
        &self,
        org: OrgId,
        actor: UserId,
        id: UserId,
        status: UserStatus,
    ) -> ApiResult<User> {
        if actor == id && status != UserStatus::Active {
            return Err(ApiError::conflict(
                "you cannot suspend or deprovision your own account",
            ));
        }
        let mut row = self.user_row(org, id).await?;
        if row.status == UserStatus::Deprovisioned {
            return Err(ApiError::conflict(
                "user is deprovisioned; create a new account",
            ));
        }
        row.status = status;
        row.updated_at = self.clock.now();
        if status == UserStatus::Deprovisioned {
            // Offboarding leaves nothing to sign in with.
            row.totp_secret_enc = None;
            row.totp_enabled = false;
            row.password_hash = "!deprovisioned".into();
            self.store.replace_recovery_codes(org, id, &[]).await?;
        }
        self.store.update_user(&row).await?;
        if status != UserStatus::Active {
            self.store
                .revoke_user_sessions(org, id, None, None, self.clock.now())
                .await?;
        }
        self.to_wire(&row).await
    }

    /// Writes a row the auth service changed (password, TOTP).
    pub async fn save_row(&self, row: &UserRow) -> ApiResult<()> {
        Ok(self.store.update_user(row).await?)
    }

    pub async fn to_wire(&self, row: &UserRow) -> ApiResult<User> {
        let key = self.vault.record_key(&row.dek_id).await?;
        self.decode(row, &key)
    }

    fn decode(&self, row: &UserRow, key: &DataKey) -> ApiResult<User> {
        let sid = row.id.to_string();
        Ok(User {
            id: row.id.into(),
            org_id: row.org_id.into(),
            email: Vault::open_str(key, field(&sid, "email"), &row.email_enc)?,
            display_name: Vault::open_str(key, field(&sid, "display_name"), &row.display_name_enc)?,
            phone: row
                .phone_enc
                .as_deref()
                .map(|p| Vault::open_str(key, field(&sid, "phone"), p))
                .transpose()?,
            roles: row.roles.clone(),
            status: row.status,
            mfa_enabled: row.totp_enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Seals a TOTP secret into the user's record.
    pub async fn seal_totp_secret(&self, row: &UserRow, secret: &[u8]) -> ApiResult<Vec<u8>> {
        let key = self.vault.record_key(&row.dek_id).await?;
        let sid = row.id.to_string();
        Ok(key.seal(secret, &field(&sid, "totp_secret").context()))
    }

    pub async fn open_totp_secret(&self, row: &UserRow) -> ApiResult<Option<Vec<u8>>> {
        let Some(sealed) = &row.totp_secret_enc else {
            return Ok(None);
        };
        let key = self.vault.record_key(&row.dek_id).await?;
        let sid = row.id.to_string();
        Ok(Some(
            key.open(sealed, &field(&sid, "totp_secret").context())?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7396 appendix A's examples.
    #[test]
    fn merge_patch_follows_rfc_7396() {
        let cases = [
            (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
            (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
            (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
            (
                r#"{"a":{"b":"c"}}"#,
                r#"{"a":{"b":"d","c":null}}"#,
                r#"{"a":{"b":"d"}}"#,
            ),
            (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
            (r#"["a","b"]"#, r#"["c","d"]"#, r#"["c","d"]"#),
            (r#"{"a":"b"}"#, r#"["c"]"#, r#"["c"]"#),
            (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
            (r#"[1,2]"#, r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#),
            (
                r#"{}"#,
                r#"{"a":{"bb":{"ccc":null}}}"#,
                r#"{"a":{"bb":{}}}"#,
            ),
        ];
        for (target, patch, want) in cases {
            let mut t: serde_json::Value = serde_json::from_str(target).unwrap();
            merge_patch(&mut t, &serde_json::from_str(patch).unwrap());
            assert_eq!(
                t,
                serde_json::from_str::<serde_json::Value>(want).unwrap(),
                "{patch}"
            );
        }
        let result = serde_json::json!({"a": {"b": 1}});
        assert_eq!(
            unknown_member(&serde_json::json!({"a": {"c": 2}}), &result, String::new()),
            Some("a.c".into())
        );
        assert_eq!(
            unknown_member(&serde_json::json!({"a": {"b": 2}}), &result, String::new()),
            None
        );
    }
}
