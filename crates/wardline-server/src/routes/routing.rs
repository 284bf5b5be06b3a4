//! Routes for the routing directory, presence, on-call schedules, pages to a
//! role, acknowledgement and escalation, patient context with break-glass,
//! and reports. Thin: each authorizes, then hands over to
//! [`RoutingService`](wardline_core::routing::RoutingService).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wardline_proto::routing::*;
use wardline_proto::{ErrorBody, Permission};

use crate::authn::Authenticated;
use crate::error::ApiResult;
use crate::http::{ApiJson, ApiPath, ApiQuery};
use crate::request_audit::Audit;
use crate::state::AppState;
use wardline_core::caller::Caller;
use wardline_core::routing::RoutingService;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(directory))
        .routes(routes!(create_department))
        .routes(routes!(create_team))
        .routes(routes!(add_team_member))
        .routes(routes!(remove_team_member))
        .routes(routes!(create_role))
        .routes(routes!(update_role))
        .routes(routes!(search_directory))
        .routes(routes!(own_presence, set_presence))
        .routes(routes!(list_shifts, create_shift))
        .routes(routes!(delete_shift))
        .routes(routes!(import_schedule))
        .routes(routes!(schedule_feed, unsubscribe_feed))
        .routes(routes!(on_call))
        .routes(routes!(page))
        .routes(routes!(escalation))
        .routes(routes!(acknowledge))
        .routes(routes!(open_patient))
        .routes(routes!(break_glass_grants))
        .routes(routes!(own_break_glass_grants))
        .routes(routes!(notifications))
        .routes(routes!(report))
        .routes(routes!(alert_page))
}

/// Departments, care teams and clinical roles.
#[utoipa::path(get, path = "/api/v1/routing/directory", tag = "routing", security(("bearer" = [])),
    responses((status = 200, body = RoutingDirectory)))]
async fn directory(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<RoutingDirectory>> {
    p.authorize(Permission::DirectoryRead)?;
    Ok(Json(routing.directory(p.org_id).await?))
}

#[utoipa::path(post, path = "/api/v1/routing/departments", tag = "routing", security(("bearer" = [])), request_body = CreateDepartmentRequest,
    responses((status = 201, body = Department), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_department(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<CreateDepartmentRequest>,
) -> ApiResult<(StatusCode, Json<Department>)> {
    p.authorize(Permission::RoutingManage)?;
    let d = routing.create_department(p.org_id, req).await?;
    audit.target("department", d.id);
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(post, path = "/api/v1/routing/care-teams", tag = "routing", security(("bearer" = [])), request_body = CreateCareTeamRequest,
    responses((status = 201, body = CareTeam), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_team(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<CreateCareTeamRequest>,
) -> ApiResult<(StatusCode, Json<CareTeam>)> {
    p.authorize(Permission::RoutingManage)?;
    let t = routing.create_team(p.org_id, req).await?;
    audit.target("care_team", t.id);
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(post, path = "/api/v1/routing/care-teams/{id}/members", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = TeamMemberRequest,
    responses((status = 200, body = CareTeam), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_team_member(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<TeamMemberRequest>,
) -> ApiResult<Json<CareTeam>> {
    p.authorize(Permission::RoutingManage)?;
    Ok(Json(
        routing
            .add_team_member(p.org_id, id, req.user_id.into())
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/routing/care-teams/{id}/members/{user_id}", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = CareTeam), (status = 404, body = ErrorBody)))]
async fn remove_team_member(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath((id, user)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<CareTeam>> {
    p.authorize(Permission::RoutingManage)?;
    Ok(Json(
        routing
            .remove_team_member(p.org_id, id, user.into())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/routing/roles", tag = "routing", security(("bearer" = [])), request_body = CreateRoleRequest,
    responses((status = 201, body = ClinicalRole), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_role(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<CreateRoleRequest>,
) -> ApiResult<(StatusCode, Json<ClinicalRole>)> {
    p.authorize(Permission::RoutingManage)?;
    let r = routing.create_role(p.org_id, req).await?;
    audit.target("clinical_role", r.id);
    Ok((StatusCode::CREATED, Json(r)))
}

/// Replace a clinical role's name, department, fallback, holders and ladders.
#[utoipa::path(put, path = "/api/v1/routing/roles/{id}", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CreateRoleRequest,
    responses((status = 200, body = ClinicalRole), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_role(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CreateRoleRequest>,
) -> ApiResult<Json<ClinicalRole>> {
    p.authorize(Permission::RoutingManage)?;
    Ok(Json(routing.update_role(p.org_id, id, req, &audit).await?))
}

/// Search colleagues by name, clinical role, department or care team; shows
/// presence and what they cover on call now.
#[utoipa::path(get, path = "/api/v1/routing/search", tag = "routing", security(("bearer" = [])),
    params(DirectorySearchQuery),
    responses((status = 200, body = DirectorySearchResult), (status = 400, body = ErrorBody)))]
async fn search_directory(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<DirectorySearchQuery>,
) -> ApiResult<Json<DirectorySearchResult>> {
    p.authorize(Permission::DirectoryRead)?;
    Ok(Json(routing.search(p.org_id, &q.q).await?))
}

/// One's own availability as it applies now (`available` when none was set
/// or the last one lapsed at its `until`).
#[utoipa::path(get, path = "/api/v1/routing/presence", tag = "routing", security(("bearer" = [])),
    responses((status = 200, body = Presence)))]
async fn own_presence(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<Presence>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(routing.own_presence(&p).await?))
}

/// Set one's own availability; pages skip people off duty or in a procedure.
#[utoipa::path(put, path = "/api/v1/routing/presence", tag = "routing", security(("bearer" = [])), request_body = SetPresenceRequest,
    responses((status = 200, body = Presence), (status = 422, body = ErrorBody)))]
async fn set_presence(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiJson(req): ApiJson<SetPresenceRequest>,
) -> ApiResult<Json<Presence>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(routing.set_presence(&p, req).await?))
}

#[utoipa::path(get, path = "/api/v1/routing/roles/{id}/shifts", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ShiftQuery),
    responses((status = 200, body = ShiftList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_shifts(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ShiftQuery>,
) -> ApiResult<Json<ShiftList>> {
    p.authorize(Permission::DirectoryRead)?;
    Ok(Json(routing.shifts(p.org_id, id, q).await?))
}

#[utoipa::path(post, path = "/api/v1/routing/roles/{id}/shifts", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CreateShiftRequest,
    responses((status = 201, body = Shift), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_shift(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CreateShiftRequest>,
) -> ApiResult<(StatusCode, Json<Shift>)> {
    p.authorize(Permission::RoutingManage)?;
    Ok((
        StatusCode::CREATED,
        Json(routing.create_shift(p.org_id, id, req).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/routing/roles/{id}/shifts/{shift_id}", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("shift_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_shift(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath((id, shift)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    p.authorize(Permission::RoutingManage)?;
    routing.delete_shift(p.org_id, id, shift).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Import a role's on-call schedule from an iCalendar file or URL (each
/// VEVENT a shift; recurring shifts expanded; a re-import replaces by UID).
#[utoipa::path(post, path = "/api/v1/routing/roles/{id}/schedule/import", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ImportScheduleRequest,
    responses((status = 200, body = ImportScheduleResult), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn import_schedule(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ImportScheduleRequest>,
) -> ApiResult<Json<ImportScheduleResult>> {
    p.authorize(Permission::RoutingManage)?;
    Ok(Json(routing.import_schedule(p.org_id, id, req).await?))
}

/// The role's subscribed schedule feed: its host, when it was last fetched
/// and with what result, and when it is fetched next.
#[utoipa::path(get, path = "/api/v1/routing/roles/{id}/schedule/feed", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ScheduleFeed), (status = 404, body = ErrorBody)))]
async fn schedule_feed(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ScheduleFeed>> {
    p.authorize(Permission::RoutingManage)?;
    Ok(Json(routing.feed(p.org_id, id).await?))
}

/// Stop importing the role's feed (the shifts already imported stay).
#[utoipa::path(delete, path = "/api/v1/routing/roles/{id}/schedule/feed", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn unsubscribe_feed(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    p.authorize(Permission::RoutingManage)?;
    routing.unsubscribe(p.org_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who covers a role now, and their backup.
#[utoipa::path(get, path = "/api/v1/routing/roles/{id}/on-call", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = OnCall), (status = 404, body = ErrorBody)))]
async fn on_call(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<OnCall>> {
    p.authorize(Permission::DirectoryRead)?;
    Ok(Json(routing.on_call(p.org_id, id).await?))
}

/// Page a role: opens (or reuses) a conversation with whoever covers it now
/// (the backup, a holder or the fallback role when nobody on call can be
/// reached, and the answer says so). Send the message there.
#[utoipa::path(post, path = "/api/v1/routing/roles/{id}/page", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PageRoleRequest,
    responses((status = 200, body = PageRoleResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn page(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<PageRoleRequest>,
) -> ApiResult<Json<PageRoleResponse>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(routing.page(&Caller::new(&p, &audit), id, req).await?))
}

/// Where an urgent, STAT or role-addressed message stands: who it resolved
/// to, who was alerted, the escalation's steps and the acknowledgement.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages/{message_id}/escalation", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, body = Escalation), (status = 404, body = ErrorBody)))]
async fn escalation(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiPath((id, message)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<Escalation>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(routing.escalation(&p, id, message).await?))
}

/// Acknowledge an urgent or STAT message: its escalation stops (recorded with
/// who and which device).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages/{message_id}/acknowledge", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, body = Escalation), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn acknowledge(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath((id, message)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<Escalation>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        routing
            .acknowledge(&Caller::new(&p, &audit), id, message)
            .await?,
    ))
}

/// Open a patient's conversations: joined through the care team, or by
/// break-glass with a stated reason (time-limited, audited, and the
/// compliance officer is notified).
#[utoipa::path(post, path = "/api/v1/routing/patient-access", tag = "routing", security(("bearer" = [])), request_body = OpenPatientRequest,
    responses((status = 200, body = PatientAccess), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn open_patient(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<OpenPatientRequest>,
) -> ApiResult<Json<PatientAccess>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(
        routing.open_patient(&Caller::new(&p, &audit), req).await?,
    ))
}

/// Break-glass grants with their reasons, newest first.
#[utoipa::path(get, path = "/api/v1/routing/break-glass", tag = "routing", security(("bearer" = [])),
    responses((status = 200, body = BreakGlassList)))]
async fn break_glass_grants(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<BreakGlassList>> {
    p.authorize(Permission::BreakGlassReview)?;
    Ok(Json(routing.grants(p.org_id).await?))
}

/// The caller's own break-glass grants still running, with the reasons
/// they gave (the app shows a banner while access lasts).
#[utoipa::path(get, path = "/api/v1/routing/break-glass/mine", tag = "routing", security(("bearer" = [])),
    responses((status = 200, body = BreakGlassList)))]
async fn own_break_glass_grants(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<BreakGlassList>> {
    p.authorize(Permission::Messaging)?;
    Ok(Json(routing.own_grants(&p).await?))
}

/// What the compliance officer is told (each break-glass grant).
#[utoipa::path(get, path = "/api/v1/routing/notifications", tag = "routing", security(("bearer" = [])),
    responses((status = 200, body = NotificationList)))]
async fn notifications(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<NotificationList>> {
    p.authorize(Permission::BreakGlassReview)?;
    Ok(Json(routing.notifications(p.org_id).await?))
}

/// Response times (sent → read → acknowledged) by role and department, and the
/// unacknowledged and escalated messages.
#[utoipa::path(get, path = "/api/v1/routing/reports/responses", tag = "routing", security(("bearer" = [])),
    params(ReportQuery),
    responses((status = 200, body = ResponseReport), (status = 400, body = ErrorBody)))]
async fn report(
    State(routing): State<RoutingService>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<ResponseReport>> {
    p.authorize(Permission::RoutingReports)?;
    Ok(Json(routing.report(p.org_id, q).await?))
}

/// Where an escalation text's link lands. With the web app: a redirect into
/// it, the message's id in the fragment (`/#alert=<id>`: browsers send no
/// fragment to any server, nor in a `Referer`), where sign-in (or the PIN)
/// leads to that message. Without it, or for an id that is not one: a
/// notice to sign in on a Wardline device. Neither shows a message, sender
/// or patient.
#[utoipa::path(get, path = "/alerts/{id}", tag = "routing",
    params(("id" = String, Path, description = "the waiting message's id")),
    responses(
        (status = 303, description = "Into the web app at that message (`Location: /#alert=<id>`)"),
        (status = 200, description = "Sign-in notice", content_type = "text/html", body = String)))]
async fn alert_page(ApiPath(id): ApiPath<String>) -> Response {
    if let Ok(id) = Uuid::parse_str(&id)
        && crate::routes::web_app::built()
    {
        let mut resp = StatusCode::SEE_OTHER.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::LOCATION,
            HeaderValue::from_str(&format!("/#alert={id}")).expect("a UUID is a header value"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        return resp;
    }
    let body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <title>Wardline</title></head><body><main><h1>A message is waiting for you</h1>\
        <p>Open Wardline on your device and sign in to read and acknowledge it.</p>\
        </main></body></html>";
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'"),
    );
    resp
}
