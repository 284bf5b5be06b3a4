//! Routes for devices, conversations, messages, sync and receipts. Thin: each
//! authorizes, then hands over to [`MessagingService`](wardline_core::messaging::MessagingService).

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use uuid::Uuid;
use wardline_proto::lifecycle::{DevicePosture, DeviceStatus};
use wardline_proto::messaging::*;
use wardline_proto::sync::{SyncQuery, SyncResponse};
use wardline_proto::{ErrorBody, Permission};

use crate::authn::Authenticated;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath, ApiQuery};
use crate::request_audit::Audit;
use crate::state::AppState;
use wardline_core::caller::Caller;
use wardline_core::directory::DirectoryService;
use wardline_core::messaging::MessagingService;

/// MLS commits carry a Welcome with the ratchet tree: a thousand-member group's
/// is a few hundred kilobytes, base64 on the wire.
pub const MAX_MESSAGE_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The HTTP ceiling for attachments; the organisation's policy sets the real
/// limit (`messaging.max_attachment_bytes`, at most this).
pub const MAX_ATTACHMENT_BODY_BYTES: usize = 100 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_device, list_my_devices))
        .routes(routes!(upload_key_packages))
        .routes(routes!(device_status, report_posture))
        .routes(routes!(push_settings, subscribe_push, unsubscribe_push))
        .routes(routes!(list_user_devices))
        .routes(routes!(create_conversation, list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
        .routes(routes!(refound_conversation))
        .routes(routes!(claim_key_packages))
        .routes(routes!(submit_message).layer(DefaultBodyLimit::max(MAX_MESSAGE_BODY_BYTES)))
        .routes(routes!(mark_read))
        .routes(routes!(message_receipts))
        .routes(routes!(upload_attachment))
        .routes(routes!(download_attachment))
        .routes(routes!(sync))
        .routes(routes!(ack))
        .routes(routes!(super::sync_socket::sync_socket))
        .routes(routes!(super::sync_socket::socket_ticket))
        .routes(routes!(get_preferences, set_preferences))
}

/// Register the caller's device (the one its session is bound to) for messaging.
/// Its other devices see it in `GET /api/v1/devices`, and it becomes
/// `pending_add` in each of the user's conversations.
#[utoipa::path(post, path = "/api/v1/devices", tag = "messaging", security(("bearer" = [])), request_body = RegisterDeviceRequest,
    responses((status = 201, body = Device), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn register_device(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<RegisterDeviceRequest>,
) -> ApiResult<(StatusCode, Json<Device>)> {
    p.authorize(Permission::Messaging)?;
    let d = messaging
        .register_device(&Caller::new(&p, &audit), req)
        .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

/// The caller's devices and their key-package stock.
#[utoipa::path(get, path = "/api/v1/devices", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, body = DeviceList)))]
async fn list_my_devices(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<DeviceList>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.list_devices(p.org_id, p.user_id).await?))
}

/// The organisation's device policy and whether the caller's device meets it.
#[utoipa::path(get, path = "/api/v1/devices/posture", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, body = DeviceStatus)))]
async fn device_status(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<DeviceStatus>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.device_status(&p).await?))
}

/// Report the caller's device's platform, OS version and whether it is rooted
/// or jailbroken; answers whether it now meets the device policy.
#[utoipa::path(put, path = "/api/v1/devices/posture", tag = "messaging", security(("bearer" = [])), request_body = DevicePosture,
    responses((status = 200, body = DeviceStatus), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn report_posture(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    ApiJson(posture): ApiJson<DevicePosture>,
) -> ApiResult<Json<DeviceStatus>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.report_posture(&p, posture).await?))
}

/// Web Push for the caller's device: the server's VAPID public key to
/// subscribe with (absent when push is off) and whether it is subscribed.
#[utoipa::path(get, path = "/api/v1/devices/push", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, body = PushSettings), (status = 409, body = ErrorBody)))]
async fn push_settings(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<PushSettings>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.push_settings(&p).await?))
}

/// Keep the browser's push subscription (`PushSubscription.toJSON()`) for
/// the caller's device, replacing any it had. Pushes then tell it, with no
/// content, that a message, an urgent or STAT one, or an escalation waits,
/// while its app is closed and one of its sessions is live.
#[utoipa::path(put, path = "/api/v1/devices/push", tag = "messaging", security(("bearer" = [])), request_body = PushSubscriptionRequest,
    responses((status = 200, body = PushSettings), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn subscribe_push(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    ApiJson(req): ApiJson<PushSubscriptionRequest>,
) -> ApiResult<Json<PushSettings>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.subscribe_push(&p, req).await?))
}

/// Forget the caller's device's push subscription (no error if it had none).
#[utoipa::path(delete, path = "/api/v1/devices/push", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, body = PushSettings), (status = 409, body = ErrorBody)))]
async fn unsubscribe_push(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<PushSettings>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.unsubscribe_push(&p).await?))
}

/// Upload more key packages for the caller's device.
#[utoipa::path(post, path = "/api/v1/devices/key-packages", tag = "messaging", security(("bearer" = [])), request_body = UploadKeyPackagesRequest,
    responses((status = 200, body = DeviceList), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upload_key_packages(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    ApiJson(req): ApiJson<UploadKeyPackagesRequest>,
) -> ApiResult<Json<DeviceList>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.upload_key_packages(&p, req).await?))
}

/// A colleague's devices and identity keys (to compare with the credentials
/// in a conversation's group).
#[utoipa::path(get, path = "/api/v1/users/{id}/devices", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = DeviceList), (status = 404, body = ErrorBody)))]
async fn list_user_devices(
    State(directory): State<DirectoryService>,
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<DeviceList>> {
    p.authorize(Permission::Messaging)?;
    // Another organisation's user does not exist for the caller.
    directory.user_row(p.org_id, id.into()).await?;
    Ok(Json(messaging.list_devices(p.org_id, id.into()).await?))
}

/// Start a conversation. The caller's device then creates the MLS group and
/// adds the other devices (claim their key packages, submit the commit with
/// the Welcome). A direct conversation that exists already is returned (200).
#[utoipa::path(post, path = "/api/v1/conversations", tag = "messaging", security(("bearer" = [])), request_body = CreateConversationRequest,
    responses((status = 201, body = Conversation), (status = 200, body = Conversation), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_conversation(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<CreateConversationRequest>,
) -> ApiResult<(StatusCode, Json<Conversation>)> {
    p.authorize(Permission::Messaging)?;
    let (created, c) = messaging
        .create_conversation(&Caller::new(&p, &audit), req)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(c)))
}

/// The caller's conversations, most recently active first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, body = ConversationList)))]
async fn list_conversations(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<ConversationList>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.list_conversations(&p).await?))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "conversation id")),
    responses((status = 200, body = Conversation), (status = 404, body = ErrorBody)))]
async fn get_conversation(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Conversation>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        messaging.conversation(&Caller::new(&p, &audit), id).await?,
    ))
}

/// Add a colleague to a group; their devices become `pending_add`.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/members", tag = "messaging", security(("bearer" = [])), request_body = AddMemberRequest,
    params(("id" = Uuid, Path, description = "conversation id")),
    responses((status = 200, body = Conversation), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_member(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> ApiResult<Json<Conversation>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        messaging
            .add_member(&Caller::new(&p, &audit), id, req.user_id.into())
            .await?,
    ))
}

/// Start a conversation's MLS group again from this device, when it is
/// waiting to join and no member device is left to add it (all were removed
/// or wiped). This device becomes the only member device at epoch 0; its
/// client makes a new group and adds everyone's devices. Earlier messages
/// stay readable only where they already were.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/refound", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "conversation id")),
    responses((status = 200, body = Conversation), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn refound_conversation(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Conversation>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.refound(&Caller::new(&p, &audit), id).await?))
}

/// Remove a member from a group, or leave it (your own user id). Their
/// devices receive nothing more at once; the next commit removes them from
/// the MLS group, and no message is accepted until it has.
#[utoipa::path(delete, path = "/api/v1/conversations/{id}/members/{user_id}", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "conversation id"), ("user_id" = Uuid, Path, description = "member")),
    responses((status = 200, body = Conversation), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_member(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<Conversation>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        messaging
            .remove_member(&Caller::new(&p, &audit), id, user_id.into())
            .await?,
    ))
}

/// Key packages of devices waiting to join, one each (consumed).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/key-packages/claim", tag = "messaging", security(("bearer" = [])), request_body = ClaimKeyPackagesRequest,
    params(("id" = Uuid, Path, description = "conversation id")),
    responses((status = 200, body = ClaimedKeyPackages), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn claim_key_packages(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ClaimKeyPackagesRequest>,
) -> ApiResult<Json<ClaimedKeyPackages>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.claim_key_packages(&p, id, req).await?))
}

/// Submit an MLS commit (one per epoch is accepted; a stale one gets 409
/// `stale_epoch`) or an encrypted application message.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "messaging", security(("bearer" = [])), request_body = SubmitMessageRequest,
    params(("id" = Uuid, Path, description = "conversation id")),
    responses((status = 200, body = SubmitMessageResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn submit_message(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<SubmitMessageRequest>,
) -> ApiResult<Json<SubmitMessageResponse>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        messaging.submit(&Caller::new(&p, &audit), id, req).await?,
    ))
}

/// Mark messages read on this device: those shown to the person, or routine ones up to a message.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "messaging", security(("bearer" = [])), request_body = ReadRequest,
    params(("id" = Uuid, Path, description = "conversation id")),
    responses((status = 200, body = ReadResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn mark_read(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ReadRequest>,
) -> ApiResult<Json<ReadResponse>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        messaging
            .mark_read(&Caller::new(&p, &audit), id, req)
            .await?,
    ))
}

/// Delivery and read receipts of a message, per recipient device.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages/{message_id}/receipts", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "conversation id"), ("message_id" = Uuid, Path, description = "message id")),
    responses((status = 200, body = MessageReceipts), (status = 404, body = ErrorBody)))]
async fn message_receipts(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath((id, message_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<MessageReceipts>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        messaging
            .receipts(&Caller::new(&p, &audit), id, message_id)
            .await?,
    ))
}

/// Upload an attachment the client encrypted with a fresh key (the key travels
/// inside the MLS message). Body: the ciphertext.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/attachments", tag = "messaging", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(("id" = Uuid, Path, description = "conversation id")),
    responses((status = 201, body = AttachmentUploaded), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn upload_attachment(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<AttachmentUploaded>)> {
    p.authorize(Permission::Messaging)?;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Checked (and refused on a declared size) before a byte is read; then
    // read no further than the organisation's limit.
    let permit = messaging
        .begin_upload(&Caller::new(&p, &audit), id, declared)
        .await?;
    let limit = usize::try_from(permit.max_bytes)
        .unwrap_or(usize::MAX)
        .min(MAX_ATTACHMENT_BODY_BYTES);
    let mut stream = body.into_data_stream();
    let mut data = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the attachment: {e}")))?;
        if data.len() + chunk.len() > limit {
            return Err(ApiError::new(
                wardline_proto::ErrorCode::PayloadTooLarge,
                format!(
                    "attachments may be at most {} bytes (organisation policy)",
                    permit.max_bytes
                ),
            )
            .into());
        }
        data.extend_from_slice(&chunk);
    }
    let up = messaging.upload_attachment(permit, &data).await?;
    Ok((StatusCode::CREATED, Json(up)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/attachments/{attachment_id}", tag = "messaging", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "conversation id"), ("attachment_id" = Uuid, Path, description = "attachment id")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn download_attachment(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath((id, attachment_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<impl IntoResponse> {
    p.authorize(Permission::Messaging)?;
    let data = messaging
        .attachment(&Caller::new(&p, &audit), id, attachment_id)
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data))
}

/// This device's inbox after a position: catch-up after being offline.
#[utoipa::path(get, path = "/api/v1/sync", tag = "messaging", security(("bearer" = [])),
    params(SyncQuery),
    responses((status = 200, body = SyncResponse), (status = 409, body = ErrorBody)))]
async fn sync(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<SyncQuery>,
) -> ApiResult<Json<SyncResponse>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.sync(&p, q).await?))
}

/// Acknowledge the inbox up to a position (the device has stored those
/// entries): marks them delivered.
#[utoipa::path(post, path = "/api/v1/sync/ack", tag = "messaging", security(("bearer" = [])), request_body = AckRequest,
    responses((status = 200, body = AckResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn ack(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    ApiJson(req): ApiJson<AckRequest>,
) -> ApiResult<Json<AckResponse>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.ack(&p, req.up_to).await?))
}

#[utoipa::path(get, path = "/api/v1/messaging/preferences", tag = "messaging", security(("bearer" = [])),
    responses((status = 200, body = MessagingPreferences)))]
async fn get_preferences(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<MessagingPreferences>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.preferences(&p).await?))
}

/// Whether others see when you have read their messages (where the
/// organisation's policy does not make read receipts mandatory).
#[utoipa::path(put, path = "/api/v1/messaging/preferences", tag = "messaging", security(("bearer" = [])), request_body = MessagingPreferences,
    responses((status = 200, body = MessagingPreferences)))]
async fn set_preferences(
    State(messaging): State<MessagingService>,
    Authenticated(p): Authenticated,
    ApiJson(req): ApiJson<MessagingPreferences>,
) -> ApiResult<Json<MessagingPreferences>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(messaging.set_preferences(&p, req).await?))
}
