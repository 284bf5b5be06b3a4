//! Routes for patients and patient texting (staff API), the SMS provider's
//! webhooks, and the patient's pages behind secure links. Thin: each
//! authorizes (a session permission, a webhook signature, or the link and
//! portal session), then hands over to [`PatientService`](wardline_core::patients::PatientService).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wardline_proto::patients::*;
use wardline_proto::{ErrorBody, ErrorCode, Permission};

use super::patient_pages as pages;
use crate::authn::Authenticated;
use crate::error::{ApiError, ApiResult, HttpError};
use crate::http::{ApiJson, ApiPath, body_bytes};
use crate::request_audit::Audit;
use crate::state::AppState;
use wardline_core::audit::AuditScope;
use wardline_core::caller::Caller;
use wardline_core::directory::DirectoryService;
use wardline_core::patients::PatientService;
use wardline_core::patients::portal::{LinkView, PortalError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_patient, list_patients))
        .routes(routes!(get_patient))
        .routes(routes!(record_consent, consent_history))
        .routes(routes!(send_text))
        .routes(routes!(send_message, patient_thread))
        .routes(routes!(patient_sms))
        .routes(routes!(revoke_links))
        .routes(routes!(list_threads))
        .routes(routes!(list_notices))
        .routes(routes!(list_templates))
        .routes(routes!(put_template))
        .routes(routes!(sms_inbound))
        .routes(routes!(sms_status))
        .routes(routes!(portal_open))
        .routes(routes!(portal_verify))
        .routes(routes!(portal_code))
        .routes(routes!(portal_thread))
        .routes(routes!(portal_reply))
}

// ---------------------------------------------------------------- staff API

/// Create a patient record. Every field is PHI and stored encrypted.
#[utoipa::path(post, path = "/api/v1/patients", tag = "patients", security(("bearer" = [])), request_body = CreatePatientRequest,
    responses((status = 201, body = Patient), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_patient(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiJson(req): ApiJson<CreatePatientRequest>,
) -> ApiResult<(StatusCode, Json<Patient>)> {
    p.authorize(Permission::PatientTexting)?;
    let patient = patients.create(&Caller::new(&p, &audit), req).await?;
    Ok((StatusCode::CREATED, Json(patient)))
}

/// The organisation's patients.
#[utoipa::path(get, path = "/api/v1/patients", tag = "patients", security(("bearer" = [])),
    responses((status = 200, body = PatientList)))]
async fn list_patients(
    State(patients_service): State<PatientService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<PatientList>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(PatientList {
        patients: patients_service.list(&p).await?,
    }))
}

/// One patient, with their current consent and opt-out state.
#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = Patient), (status = 404, body = ErrorBody)))]
async fn get_patient(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Patient>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(patients.view(&Caller::new(&p, &audit), id).await?))
}

/// Record a consent decision (given or withdrawn) with how it was obtained.
/// Returns the whole history.
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "patient id")), request_body = RecordConsentRequest,
    responses((status = 200, body = ConsentHistory), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn record_consent(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<RecordConsentRequest>,
) -> ApiResult<Json<ConsentHistory>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(
        patients
            .record_consent(&Caller::new(&p, &audit), id, req)
            .await?,
    ))
}

/// The patient's consent history (every decision and keyword, oldest first),
/// for the record.
#[utoipa::path(get, path = "/api/v1/patients/{id}/consents", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = ConsentHistory), (status = 404, body = ErrorBody)))]
async fn consent_history(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ConsentHistory>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(
        patients
            .consent_history(&Caller::new(&p, &audit), id)
            .await?,
    ))
}

/// Send a template. A `no_phi` template goes as a plain SMS (needs
/// `reminders` consent); a `phi` one as a secure message behind a link
/// (needs `secure_messages` consent). Reminders wait for quiet hours to end.
#[utoipa::path(post, path = "/api/v1/patients/{id}/texts", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "patient id")), request_body = SendTemplateRequest,
    responses((status = 202, body = SendOutcome), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_text(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<SendTemplateRequest>,
) -> ApiResult<(StatusCode, Json<SendOutcome>)> {
    p.authorize(Permission::PatientTexting)?;
    let out = patients
        .send_template(&Caller::new(&p, &audit), id, req)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// Write a secure message. It is stored encrypted; the patient gets an SMS
/// with only a notice and a link, and reads it after an identity check.
#[utoipa::path(post, path = "/api/v1/patients/{id}/messages", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "patient id")), request_body = SendSecureMessageRequest,
    responses((status = 202, body = SendOutcome), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_message(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<SendSecureMessageRequest>,
) -> ApiResult<(StatusCode, Json<SendOutcome>)> {
    p.authorize(Permission::PatientTexting)?;
    let out = patients
        .send_secure(&Caller::new(&p, &audit), id, req)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// The patient thread (both directions, oldest first). Marks the patient's
/// messages read.
#[utoipa::path(get, path = "/api/v1/patients/{id}/messages", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientThread), (status = 404, body = ErrorBody)))]
async fn patient_thread(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<PatientThread>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(patients.thread(&Caller::new(&p, &audit), id).await?))
}

/// The SMS sent to a patient and their delivery status (never their text).
#[utoipa::path(get, path = "/api/v1/patients/{id}/sms", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = SmsList), (status = 404, body = ErrorBody)))]
async fn patient_sms(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SmsList>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(SmsList {
        sms: patients.sms_log(&Caller::new(&p, &audit), id).await?,
    }))
}

/// Revoke every open secure link of a patient (a phone lost, a wrong number).
#[utoipa::path(post, path = "/api/v1/patients/{id}/links/revoke", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = LinksRevoked), (status = 404, body = ErrorBody)))]
async fn revoke_links(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<LinksRevoked>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(LinksRevoked {
        revoked: patients.revoke_links(&Caller::new(&p, &audit), id).await?,
    }))
}

/// The practice's patient threads, most recent first, with unread counts.
#[utoipa::path(get, path = "/api/v1/patient-threads", tag = "patients", security(("bearer" = [])),
    responses((status = 200, body = PatientThreadList)))]
async fn list_threads(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<PatientThreadList>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(PatientThreadList {
        threads: patients.threads(&p).await?,
    }))
}

/// The caller's unseen notices (a patient they wrote to replied), oldest
/// first; a notice is seen when its patient's thread is opened. Also sent
/// live on the sync WebSocket as `notice` frames.
#[utoipa::path(get, path = "/api/v1/notices", tag = "patients", security(("bearer" = [])),
    responses((status = 200, body = StaffNoticeList), (status = 403, body = ErrorBody)))]
async fn list_notices(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<StaffNoticeList>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(patients.notices(p.org_id, p.user_id, 0).await?))
}

/// The approved templates (built-in and the organisation's own), per language.
#[utoipa::path(get, path = "/api/v1/sms/templates", tag = "patients", security(("bearer" = [])),
    responses((status = 200, body = TemplateList)))]
async fn list_templates(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<TemplateList>> {
    p.authorize(Permission::PatientTexting)?;
    Ok(Json(TemplateList {
        templates: patients.templates(p.org_id).await?,
    }))
}

/// Approve the organisation's text for a template key and language (adds a
/// language variant, or replaces the built-in text). A `no_phi` template may
/// not have free-text placeholders.
#[utoipa::path(put, path = "/api/v1/sms/templates/{key}/{language}", tag = "patients", security(("bearer" = [])),
    params(("key" = String, Path, description = "template key"), ("language" = String, Path, description = "language code")),
    request_body = PutTemplateRequest,
    responses((status = 200, body = TemplateList), (status = 422, body = ErrorBody)))]
async fn put_template(
    State(patients): State<PatientService>,
    Authenticated(p): Authenticated,
    Audit(audit): Audit,
    ApiPath((key, language)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PutTemplateRequest>,
) -> ApiResult<Json<TemplateList>> {
    p.authorize(Permission::OrgPolicyManage)?;
    audit.target("template", format!("{key}/{language}"));
    Ok(Json(TemplateList {
        templates: patients
            .put_template(&Caller::new(&p, &audit), &key, &language, req)
            .await?,
    }))
}

// ---------------------------------------------------------------- webhooks

/// An inbound SMS as the provider posts it.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case, dead_code)]
struct InboundSmsForm {
    From: String,
    To: String,
    Body: String,
    /// The provider's id of the SMS: a second delivery of it is ignored.
    MessageSid: String,
}

/// A delivery status as the provider posts it.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case)]
struct SmsStatusForm {
    MessageSid: String,
    MessageStatus: String,
    #[serde(default)]
    ErrorCode: Option<String>,
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// The form's fields in order, and the typed form.
fn read_form<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<(Vec<(String, String)>, T)> {
    if !is_form(headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected application/x-www-form-urlencoded",
        )
        .into());
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::bad_request("malformed form body"))?;
    crate::http::check_form_text(&pairs)?;
    let typed = serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::bad_request(format!("form: {e}")))?;
    Ok((pairs, typed))
}

/// Checks the provider's signature over this request's URL and fields.
fn check_signature(
    patients: &PatientService,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    fields: &[(String, String)],
) -> ApiResult<()> {
    let Some(token) = &patients.setup().webhook_token else {
        return Err(ApiError::forbidden(
            "SMS webhooks are not configured on this server (sms.auth_token)",
        )
        .into());
    };
    let url = format!(
        "{}{}",
        patients.setup().public_url,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    );
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if wardline_core::patients::gateway::verify_webhook(token, &url, fields, given) {
        Ok(())
    } else {
        Err(ApiError::forbidden("webhook signature does not match").into())
    }
}

/// Inbound SMS webhook (the provider posts here). STOP/START/HELP and their
/// synonyms are honoured first; other texts from a patient's number join
/// their thread. Signed with the provider's scheme (`X-Twilio-Signature`);
/// an SMS delivered twice (same `MessageSid`) acts once.
#[utoipa::path(post, path = "/sms/inbound/{org_id}", tag = "sms-webhooks",
    params(("org_id" = Uuid, Path, description = "the organisation the number belongs to")),
    request_body(content = InboundSmsForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Accepted (empty provider response)", content_type = "text/xml", body = String),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn sms_inbound(
    State(patients): State<PatientService>,
    State(directory): State<DirectoryService>,
    Audit(audit): Audit,
    OriginalUri(uri): OriginalUri,
    ApiPath(org): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (fields, form) = read_form::<InboundSmsForm>(&headers, &body_bytes(body, "body")?)?;
    check_signature(&patients, &headers, &uri, &fields)?;
    directory.org(org.into()).await?;
    audit.org(org.into());
    let what = patients
        .inbound(org.into(), &audit, &form.MessageSid, &form.From, &form.Body)
        .await?;
    audit.reason(what.as_str());
    Ok((
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response())
}

/// Delivery status webhook (`StatusCallback` of each sent SMS). Signed like
/// the inbound webhook.
#[utoipa::path(post, path = "/sms/status/{org_id}", tag = "sms-webhooks",
    params(("org_id" = Uuid, Path, description = "the organisation that sent the SMS")),
    request_body(content = SmsStatusForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 204, description = "Recorded"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn sms_status(
    State(patients): State<PatientService>,
    State(directory): State<DirectoryService>,
    Audit(audit): Audit,
    OriginalUri(uri): OriginalUri,
    ApiPath(org): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let (fields, form) = read_form::<SmsStatusForm>(&headers, &body_bytes(body, "body")?)?;
    check_signature(&patients, &headers, &uri, &fields)?;
    directory.org(org.into()).await?;
    audit.org(org.into());
    patients
        .status_callback(
            org.into(),
            &audit,
            &form.MessageSid,
            &form.MessageStatus,
            form.ErrorCode.as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- patient pages

#[derive(Debug, Deserialize, ToSchema)]
struct DobForm {
    /// `YYYY-MM-DD`.
    dob: String,
}

#[derive(Debug, Deserialize, ToSchema)]
struct CodeForm {
    challenge: String,
    code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
struct ReplyForm {
    text: String,
}

const COOKIE: &str = "wl_portal";

/// An HTML page with the headers every patient page carries: nothing cached,
/// no referrer (the URL holds the token), only the pages' own script, no framing.
fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(pages::content_security_policy()),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The page for a portal step that did not go through. The audit outcome
/// follows the status (4xx: failure).
fn portal_error(e: PortalError, token: &str, lang: &str) -> Response {
    let t = pages::strings(lang);
    match e {
        PortalError::Invalid => html(StatusCode::NOT_FOUND, pages::notice(t, t.invalid, None)),
        PortalError::Locked => html(StatusCode::FORBIDDEN, pages::notice(t, t.locked, None)),
        PortalError::Wrong { left } => html(
            StatusCode::UNAUTHORIZED,
            pages::dob_form(t, token, Some(left)),
        ),
        PortalError::CodeExpired => html(
            StatusCode::UNAUTHORIZED,
            pages::notice(t, t.code_expired, Some(token)),
        ),
        PortalError::TooSoon => html(
            StatusCode::TOO_MANY_REQUESTS,
            pages::notice(t, t.too_soon, Some(token)),
        ),
        PortalError::OptedOut => html(StatusCode::CONFLICT, pages::notice(t, t.opted_out, None)),
        PortalError::SessionEnded => html(
            StatusCode::UNAUTHORIZED,
            pages::notice(t, t.session_ended, Some(token)),
        ),
        PortalError::Api(e) => HttpError(e).into_response(),
    }
}

/// The link (or session) a portal request reached, with the patient as the
/// request's audit actor; or the page that says why not.
/// A refusal of a link that exists (locked, expired, revoked, used up, no
/// session) is recorded against that link's organisation and patient.
async fn admitted(
    patients: &PatientService,
    audit: &AuditScope,
    token: &str,
    view: Result<LinkView, PortalError>,
) -> Result<LinkView, Box<Response>> {
    match view {
        Ok(view) => {
            audit.actor_patient(view.link.org_id, view.patient.row.id);
            audit.target("link", view.link.id);
            Ok(view)
        }
        Err(e) => {
            if let Some((org, link, patient)) = patients.refused_link(token).await {
                audit.org(org);
                audit.patient(&patient.to_string());
                audit.target("link", link);
            }
            Err(Box::new(portal_error(e, token, "en")))
        }
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The link token from the path. Never a rejection: whatever is not a
/// well-formed token (bad encoding, control characters) gets the same "not
/// valid" page as an unknown token, in HTML like every patient page.
struct PortalToken(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PortalToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(PortalToken(
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map(|p| p.0)
                .unwrap_or_default(),
        ))
    }
}

/// A form post's typed fields, or the page to show instead.
fn portal_form<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Box<Response>> {
    body_bytes(body, "form")
        .and_then(|b: Bytes| read_form::<T>(headers, &b).map_err(|HttpError(e)| e))
        .map(|(_, f)| f)
        .map_err(|e| {
            let status =
                StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let t = pages::strings("en");
            Box::new(html(status, pages::notice(t, &e.message, None)))
        })
}

/// The secure link. Shows nothing about the patient or the message: only the
/// date-of-birth step.
#[utoipa::path(get, path = "/p/{token}", tag = "patient-portal",
    params(("token" = String, Path, description = "the link's token")),
    responses((status = 200, description = "Identity check, step one", content_type = "text/html", body = String),
        (status = 404, description = "Unknown, expired, used up or revoked link", content_type = "text/html", body = String),
        (status = 403, description = "Locked after failed checks", content_type = "text/html", body = String)))]
async fn portal_open(
    State(patients): State<PatientService>,
    Audit(audit): Audit,
    PortalToken(token): PortalToken,
) -> Response {
    match admitted(
        &patients,
        &audit,
        &token,
        patients.portal_link(&token).await,
    )
    .await
    {
        Ok(view) => {
            let t = pages::strings(&view.patient.language);
            html(StatusCode::OK, pages::dob_form(t, &token, None))
        }
        Err(resp) => *resp,
    }
}

/// Step one: the date of birth. On a match a code is texted to the number on file.
#[utoipa::path(post, path = "/p/{token}/verify", tag = "patient-portal",
    params(("token" = String, Path, description = "the link's token")),
    request_body(content = DobForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Code sent; step two", content_type = "text/html", body = String),
        (status = 401, description = "Details do not match", content_type = "text/html", body = String),
        (status = 403, description = "Locked", content_type = "text/html", body = String),
        (status = 404, description = "Link not valid", content_type = "text/html", body = String),
        (status = 409, description = "The number opted out of texts: no code can be sent", content_type = "text/html", body = String),
        (status = 429, description = "A code was sent less than a minute ago", content_type = "text/html", body = String)))]
async fn portal_verify(
    State(patients): State<PatientService>,
    Audit(audit): Audit,
    PortalToken(token): PortalToken,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let view = match admitted(
        &patients,
        &audit,
        &token,
        patients.portal_link(&token).await,
    )
    .await
    {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let lang = view.patient.language.clone();
    let form: DobForm = match portal_form(&headers, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    match patients.portal_check_dob(&view, &form.dob).await {
        Ok(challenge) => html(
            StatusCode::OK,
            pages::code_form(pages::strings(&lang), &token, &challenge, None),
        ),
        Err(e) => portal_error(e, &token, &lang),
    }
}

/// Step two: the texted code. Success opens a portal session (cookie) and
/// leads to the messages.
#[utoipa::path(post, path = "/p/{token}/code", tag = "patient-portal",
    params(("token" = String, Path, description = "the link's token")),
    request_body(content = CodeForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Verified: to the messages"),
        (status = 401, description = "Wrong or expired code", content_type = "text/html", body = String),
        (status = 403, description = "Locked", content_type = "text/html", body = String),
        (status = 404, description = "Link not valid", content_type = "text/html", body = String)))]
async fn portal_code(
    State(patients_service): State<PatientService>,
    Audit(audit): Audit,
    PortalToken(token): PortalToken,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let view = match admitted(
        &patients_service,
        &audit,
        &token,
        patients_service.portal_link(&token).await,
    )
    .await
    {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let lang = view.patient.language.clone();
    let form: CodeForm = match portal_form(&headers, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    match patients_service
        .portal_check_code(&view, &form.challenge, &form.code)
        .await
    {
        Ok(session) => {
            let mut resp = Redirect::to(&format!("/p/{token}/thread")).into_response();
            let cookie = format!(
                "{COOKIE}={session}; Path=/p/{token}; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
                wardline_core::patients::portal::SESSION_SECS
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(PortalError::Wrong { left }) => html(
            StatusCode::UNAUTHORIZED,
            pages::code_form(pages::strings(&lang), &token, &form.challenge, Some(left)),
        ),
        Err(e) => portal_error(e, &token, &lang),
    }
}

/// The verified patient's messages and the reply form.
#[utoipa::path(get, path = "/p/{token}/thread", tag = "patient-portal",
    params(("token" = String, Path, description = "the link's token")),
    responses((status = 200, description = "The thread", content_type = "text/html", body = String),
        (status = 401, description = "No live portal session", content_type = "text/html", body = String),
        (status = 403, description = "Locked", content_type = "text/html", body = String),
        (status = 404, description = "Link not valid", content_type = "text/html", body = String)))]
async fn portal_thread(
    State(patients): State<PatientService>,
    Audit(audit): Audit,
    PortalToken(token): PortalToken,
    headers: HeaderMap,
) -> Response {
    let session = patients
        .portal_session(&token, session_cookie(&headers).as_deref())
        .await;
    let view = match admitted(&patients, &audit, &token, session).await {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    match patients.portal_thread(&view).await {
        Ok(messages) => html(
            StatusCode::OK,
            pages::thread(
                pages::strings(&view.patient.language),
                &token,
                &messages,
                None,
            ),
        ),
        Err(e) => HttpError(e).into_response(),
    }
}

/// The verified patient's reply; it joins the patient thread the practice sees.
#[utoipa::path(post, path = "/p/{token}/reply", tag = "patient-portal",
    params(("token" = String, Path, description = "the link's token")),
    request_body(content = ReplyForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Sent; the thread again", content_type = "text/html", body = String),
        (status = 401, description = "No live portal session", content_type = "text/html", body = String),
        (status = 403, description = "Locked", content_type = "text/html", body = String),
        (status = 404, description = "Link not valid", content_type = "text/html", body = String),
        (status = 422, description = "Empty or too long", content_type = "text/html", body = String)))]
async fn portal_reply(
    State(patients): State<PatientService>,
    Audit(audit): Audit,
    PortalToken(token): PortalToken,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let session = patients
        .portal_session(&token, session_cookie(&headers).as_deref())
        .await;
    let view = match admitted(&patients, &audit, &token, session).await {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let t = pages::strings(&view.patient.language);
    let form: ReplyForm = match portal_form(&headers, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let (status, flash) = match patients.portal_reply(&view, &form.text).await {
        Ok(id) => {
            audit.target("patient_message", id);
            (StatusCode::OK, (t.reply_sent, true))
        }
        Err(e) if e.code == ErrorCode::Validation => {
            (StatusCode::UNPROCESSABLE_ENTITY, (t.reply_invalid, false))
        }
        Err(e) => return HttpError(e).into_response(),
    };
    match patients.messages(&view.patient).await {
        Ok(messages) => html(status, pages::thread(t, &token, &messages, Some(flash))),
        Err(e) => HttpError(e).into_response(),
    }
}
