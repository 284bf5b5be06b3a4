//! Routes for the organisation, its policy, users and roles.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wardline_proto::directory::*;
use wardline_proto::{ErrorBody, Permission, Role};

use crate::authn::Authenticated;
use crate::error::ApiResult;
use crate::http::{ApiJson, ApiPath};
use crate::request_audit::Audit;
use crate::state::AppState;
use wardline_core::directory::DirectoryService;
use wardline_core::directory::org_to_wire;
use wardline_core::lifecycle::LifecycleService;
use wardline_core::messaging::MessagingService;
use wardline_core::use_cases;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_org))
        .routes(routes!(get_policy, update_policy, patch_policy))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(grant_compliance_officer, remove_compliance_officer))
        .routes(routes!(suspend_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(deprovision_user))
        .routes(routes!(list_roles))
}

/// The caller's organisation.
#[utoipa::path(get, path = "/api/v1/org", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = Organisation), (status = 401, body = ErrorBody)))]
async fn get_org(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<Organisation>> {
    p.authorize(Permission::DirectoryRead)?;
    Ok(Json(org_to_wire(&directory.org(p.org_id).await?)))
}

/// Session and MFA policy of the caller's organisation.
#[utoipa::path(get, path = "/api/v1/org/policy", tag = "organisation", security(("bearer" = [])),
    responses((status = 200, body = OrgPolicy), (status = 403, body = ErrorBody)))]
async fn get_policy(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<OrgPolicy>> {
    p.authorize(Permission::OrgPolicyManage)?;
    Ok(Json(directory.org(p.org_id).await?.policy))
}

/// Replace the organisation's session and MFA policy. A shorter idle timeout or lifetime also applies to sessions already open.
#[utoipa::path(put, path = "/api/v1/org/policy", tag = "organisation", security(("bearer" = [])), request_body = OrgPolicy,
    responses((status = 200, body = OrgPolicy), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_policy(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(policy): ApiJson<OrgPolicy>,
) -> ApiResult<Json<OrgPolicy>> {
    p.authorize(Permission::OrgPolicyManage)?;
    Ok(Json(
        directory.update_policy(p.org_id, policy, &audit).await?,
    ))
}

/// Change part of the organisation's policy: a JSON merge patch (RFC 7396)
/// of the policy document — members present are set, `null` restores a
/// default, members absent stay. The result is checked as a whole; unknown
/// members are refused.
#[utoipa::path(patch, path = "/api/v1/org/policy", tag = "organisation", security(("bearer" = [])),
    request_body(content = serde_json::Value, content_type = "application/merge-patch+json"),
    responses((status = 200, body = OrgPolicy), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_policy(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> ApiResult<Json<OrgPolicy>> {
    p.authorize(Permission::OrgPolicyManage)?;
    Ok(Json(
        directory.patch_policy(p.org_id, &patch, &audit).await?,
    ))
}

/// Everyone in the caller's organisation.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserList), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<UserList>> {
    p.authorize(Permission::DirectoryRead)?;
    // Who signed in when is session data: only for those who may read it.
    let last_sign_in_at = if p.has(Permission::SessionsRead) {
        directory.last_sign_ins(p.org_id).await?
    } else {
        Default::default()
    };
    Ok(Json(UserList {
        users: directory.list(p.org_id).await?,
        last_sign_in_at,
    }))
}

/// Create a user in the caller's organisation.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    p.authorize(Permission::UsersManage)?;
    let user = directory.create_user(p.org_id, req).await?;
    audit.target("user", user.id);
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<User>> {
    p.authorize_self_or(id.into(), Permission::DirectoryRead)?;
    Ok(Json(directory.user(p.org_id, id.into()).await?))
}

/// Change e-mail, name, phone or roles. Nobody changes their own roles; the
/// compliance officer role is changed only through
/// `/api/v1/users/{id}/compliance-officer` once the organisation has one.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), request_body = UpdateUserRequest,
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_user(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<User>> {
    p.authorize(Permission::UsersManage)?;
    Ok(Json(
        directory
            .update(p.org_id, p.user_id, id.into(), req, &audit)
            .await?,
    ))
}

/// Grant the compliance officer role (a compliance officer's act: separation
/// of duties from the administrators it checks; never to oneself). Recorded
/// in the compliance register.
#[utoipa::path(put, path = "/api/v1/users/{id}/compliance-officer", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn grant_compliance_officer(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<User>> {
    p.authorize(Permission::ComplianceRolesManage)?;
    Ok(Json(
        directory
            .set_compliance_officer(p.org_id, p.user_id, id.into(), true, &audit)
            .await?,
    ))
}

/// Remove the compliance officer role (a compliance officer's act; never
/// one's own). Recorded in the compliance register.
#[utoipa::path(delete, path = "/api/v1/users/{id}/compliance-officer", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_compliance_officer(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<User>> {
    p.authorize(Permission::ComplianceRolesManage)?;
    Ok(Json(
        directory
            .set_compliance_officer(p.org_id, p.user_id, id.into(), false, &audit)
            .await?,
    ))
}

/// Bar a user from signing in (reversible); their sessions end now.
#[utoipa::path(post, path = "/api/v1/users/{id}/suspend", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn suspend_user(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<User>> {
    p.authorize(Permission::UsersManage)?;
    Ok(Json(
        directory
            .set_status(p.org_id, p.user_id, id.into(), UserStatus::Suspended)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/reactivate", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reactivate_user(
    State(directory): State<DirectoryService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<User>> {
    p.authorize(Permission::UsersManage)?;
    Ok(Json(
        directory
            .set_status(p.org_id, p.user_id, id.into(), UserStatus::Active)
            .await?,
    ))
}

/// Offboard a user for good: sessions end, credentials are erased, and they
/// leave every conversation (their devices are removed from the groups by the
/// next commit; nothing is sent to them before that).
#[utoipa::path(post, path = "/api/v1/users/{id}/deprovision", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn deprovision_user(
    State(directory): State<DirectoryService>,
    State(messaging): State<MessagingService>,
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<User>> {
    p.authorize(Permission::UsersManage)?;
    Ok(Json(
        use_cases::deprovision(
            &directory,
            &messaging,
            &lifecycle,
            p.org_id,
            p.user_id,
            id.into(),
        )
        .await?,
    ))
}

/// The built-in roles and their permissions.
#[utoipa::path(get, path = "/api/v1/roles", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = RoleList)))]
async fn list_roles(Authenticated(p): Authenticated) -> ApiResult<Json<RoleList>> {
    p.authorize(Permission::DirectoryRead)?;
    Ok(Json(RoleList {
        roles: Role::ALL
            .into_iter()
            .map(|role| RoleInfo {
                role,
                permissions: role.permissions().to_vec(),
            })
            .collect(),
    }))
}
