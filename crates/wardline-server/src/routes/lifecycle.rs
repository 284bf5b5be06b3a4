//! Routes for the lifecycle policy, deletion runs and receipts, legal holds,
//! recall and remote wipe. Thin: each authorizes, then hands over to
//! [`LifecycleService`](wardline_core::lifecycle::LifecycleService).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wardline_proto::lifecycle::*;
use wardline_proto::messaging::Conversation;
use wardline_proto::{ErrorBody, Permission};

use crate::authn::{Authenticated, bearer_token};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath};
use crate::request_audit::Audit;
use crate::state::AppState;
use wardline_core::auth::AuthService;
use wardline_core::caller::Caller;
use wardline_core::lifecycle::LifecycleService;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_lifecycle_policy, set_lifecycle_policy))
        .routes(routes!(preview))
        .routes(routes!(run_now))
        .routes(routes!(list_receipts))
        .routes(routes!(set_conversation_lifecycle))
        .routes(routes!(place_hold, list_holds))
        .routes(routes!(release_hold))
        .routes(routes!(recall_message))
        .routes(routes!(wipe_device))
        .routes(routes!(list_wipes))
        .routes(routes!(managed_devices))
        .routes(routes!(confirm_wipe))
}

/// The organisation's lifecycle policy: retention, retention minimum, message
/// lifespans and the recall window.
#[utoipa::path(get, path = "/api/v1/lifecycle/policy", tag = "lifecycle", security(("bearer" = [])),
    responses((status = 200, body = LifecyclePolicy)))]
async fn get_lifecycle_policy(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<LifecyclePolicy>> {
    p.authorize(Permission::LifecycleManage)?;
    Ok(Json(lifecycle.policy(p.org_id).await?))
}

/// Replace the lifecycle policy (preview it first with `POST /api/v1/lifecycle/preview`).
#[utoipa::path(put, path = "/api/v1/lifecycle/policy", tag = "lifecycle", security(("bearer" = [])), request_body = LifecyclePolicy,
    responses((status = 200, body = LifecyclePolicy), (status = 422, body = ErrorBody)))]
async fn set_lifecycle_policy(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(policy): ApiJson<LifecyclePolicy>,
) -> ApiResult<Json<LifecyclePolicy>> {
    p.authorize(Permission::OrgPolicyManage)?;
    Ok(Json(lifecycle.set_policy(p.org_id, policy, &audit).await?))
}

/// What a candidate policy would delete if it applied now (nothing is changed).
#[utoipa::path(post, path = "/api/v1/lifecycle/preview", tag = "lifecycle", security(("bearer" = [])), request_body = LifecyclePolicy,
    responses((status = 200, body = LifecyclePreview), (status = 422, body = ErrorBody)))]
async fn preview(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    ApiJson(policy): ApiJson<LifecyclePolicy>,
) -> ApiResult<Json<LifecyclePreview>> {
    p.authorize(Permission::LifecycleManage)?;
    Ok(Json(lifecycle.preview(p.org_id, policy).await?))
}

/// Run deletion now (it also runs every five minutes) and return the signed receipt.
#[utoipa::path(post, path = "/api/v1/lifecycle/run", tag = "lifecycle", security(("bearer" = [])),
    responses((status = 200, body = DeletionReceipt)))]
async fn run_now(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
) -> ApiResult<Json<DeletionReceipt>> {
    p.authorize(Permission::LifecycleManage)?;
    let receipt = lifecycle
        .run(p.org_id, Some(p.user_id))
        .await?
        .ok_or_else(|| ApiError::internal("a requested run returned no receipt"))?;
    audit.target("deletion_receipt", receipt.id);
    Ok(Json(receipt))
}

/// The latest 100 deletion receipts, newest first.
#[utoipa::path(get, path = "/api/v1/lifecycle/receipts", tag = "lifecycle", security(("bearer" = [])),
    responses((status = 200, body = Vec<DeletionReceipt>)))]
async fn list_receipts(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<Vec<DeletionReceipt>>> {
    p.authorize(Permission::LifecycleManage)?;
    Ok(Json(lifecycle.receipts(p.org_id).await?))
}

/// Set a conversation's own message lifespan (members) or retention
/// (`lifecycle_manage`); what is left out follows the organisation's policy.
#[utoipa::path(put, path = "/api/v1/conversations/{id}/lifecycle", tag = "lifecycle", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ConversationLifecycle,
    responses((status = 200, body = Conversation), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_conversation_lifecycle(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(own): ApiJson<ConversationLifecycle>,
) -> ApiResult<Json<Conversation>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        lifecycle
            .set_conversation_lifecycle(&Caller::new(&p, &audit), id, own)
            .await?,
    ))
}

/// Place a legal hold on a user, a conversation or a patient: held messages
/// survive retention, lifespans and recall until the hold is released.
#[utoipa::path(post, path = "/api/v1/legal-holds", tag = "lifecycle", security(("bearer" = [])), request_body = PlaceHoldRequest,
    responses((status = 201, body = LegalHold), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn place_hold(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<PlaceHoldRequest>,
) -> ApiResult<(StatusCode, Json<LegalHold>)> {
    p.authorize(Permission::LegalHoldManage)?;
    let h = lifecycle.place_hold(&Caller::new(&p, &audit), req).await?;
    Ok((StatusCode::CREATED, Json(h)))
}

/// The legal hold register: active and released holds.
#[utoipa::path(get, path = "/api/v1/legal-holds", tag = "lifecycle", security(("bearer" = [])),
    responses((status = 200, body = LegalHoldList)))]
async fn list_holds(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<LegalHoldList>> {
    p.authorize(Permission::LegalHoldManage)?;
    Ok(Json(lifecycle.holds(p.org_id).await?))
}

/// Release a legal hold, with the reason.
#[utoipa::path(post, path = "/api/v1/legal-holds/{id}/release", tag = "lifecycle", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReleaseHoldRequest,
    responses((status = 200, body = LegalHold), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn release_hold(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ReleaseHoldRequest>,
) -> ApiResult<Json<LegalHold>> {
    p.authorize(Permission::LegalHoldManage)?;
    Ok(Json(
        lifecycle
            .release_hold(&Caller::new(&p, &audit), id, req)
            .await?,
    ))
}

/// Recall a message: every device deletes it and shows that it was recalled.
/// The sender may within the policy's window; `messages_recall` at any time.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages/{message_id}/recall", tag = "lifecycle", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, body = RecallResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn recall_message(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath((id, message_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<RecallResult>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        lifecycle
            .recall(&Caller::new(&p, &audit), id, message_id)
            .await?,
    ))
}

/// Report a device lost (one's own, or any with `devices_manage`): its
/// sessions end, it leaves every conversation, and it is told to erase itself.
#[utoipa::path(post, path = "/api/v1/devices/{id}/wipe", tag = "lifecycle", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = WipeDeviceRequest,
    responses((status = 200, body = DeviceWipe), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn wipe_device(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<WipeDeviceRequest>,
) -> ApiResult<Json<DeviceWipe>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        lifecycle
            .wipe(&Caller::new(&p, &audit), id.into(), req)
            .await?,
    ))
}

/// Remote wipes and whether each device confirmed (all of the organisation's
/// with `devices_manage`, otherwise the caller's own devices').
#[utoipa::path(get, path = "/api/v1/devices/wipes", tag = "lifecycle", security(("bearer" = [])),
    responses((status = 200, body = DeviceWipeList)))]
async fn list_wipes(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<DeviceWipeList>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(lifecycle.wipes(&p).await?))
}

/// A user's devices as their administrator sees them: posture against the
/// device policy, key packages left, last contact, and wipes (one's own, or
/// anyone's with `devices_manage`).
#[utoipa::path(get, path = "/api/v1/users/{id}/managed-devices", tag = "lifecycle", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = ManagedDeviceList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn managed_devices(
    State(lifecycle): State<LifecycleService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ManagedDeviceList>> {
    p.authorize_self_or(id.into(), Permission::DevicesManage)?;
    Ok(Json(lifecycle.managed_devices(&p, id.into()).await?))
}

/// A wiped device confirms it erased its store and keys, with the session
/// token the wipe ended (the only thing that token is still good for).
#[utoipa::path(post, path = "/api/v1/devices/wipe-confirmation", tag = "lifecycle", security(("bearer" = [])), request_body = WipeConfirmation,
    responses((status = 200, body = DeviceWipe), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn confirm_wipe(
    State(auth): State<AuthService>,
    State(lifecycle): State<LifecycleService>,
    headers: HeaderMap,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<WipeConfirmation>,
) -> ApiResult<Json<DeviceWipe>> {
    let token = bearer_token(&headers).ok_or_else(ApiError::unauthenticated)?;
    let session = auth
        .wiped_session(token)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    audit.actor_user(session.org_id, session.user_id, session.device_id.into());
    audit.target("device", session.device_id);
    Ok(Json(lifecycle.confirm_wipe(&session, req).await?))
}
