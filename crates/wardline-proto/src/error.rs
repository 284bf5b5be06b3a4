//! The one error shape of the API: `{ "error": { "code", "message" } }`.

use serde::{Deserialize, Serialize};

/// Machine-readable error codes. The HTTP status is derived from the code, so a
/// client can branch on either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed body, wrong types, bad parameter values (400).
    BadRequest,
    /// The body is not JSON or lacks `Content-Type: application/json` (415).
    UnsupportedMediaType,
    /// Body larger than the configured limit (413).
    PayloadTooLarge,
    /// Well-formed but semantically invalid, e.g. a weak password (422).
    Validation,
    /// No, expired, revoked or forged credentials (401).
    Unauthenticated,
    /// Wrong password or one-time code (401).
    InvalidCredentials,
    /// Authenticated, but MFA enrolment must be completed first (403).
    MfaEnrolmentRequired,
    /// Authenticated with a password an administrator set: choose your own
    /// first with `POST /api/v1/auth/password` (403).
    PasswordChangeRequired,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// The caller is not on the patient's care team but may break the glass:
    /// ask again with a stated reason (`OpenPatientRequest.reason`, 10–500
    /// characters), which the compliance officer reviews (403).
    BreakGlassReasonRequired,
    /// Unknown resource, or one that belongs to another organisation (404).
    NotFound,
    /// Route exists but not for this method (405).
    MethodNotAllowed,
    /// Unique constraint, or a state transition that is not possible (409).
    Conflict,
    /// The conversation moved to a later MLS epoch: process the inbox, then
    /// rebuild the message and submit it again (409).
    StaleEpoch,
    /// These MLS message bytes were accepted before under another id (409).
    Replayed,
    /// The caller's device has not registered for messaging (409).
    DeviceNotRegistered,
    /// A removed member's device is still in the group: commit its removal
    /// before sending messages (409).
    MembershipPending,
    /// This device was reported lost and must erase its local store and keys,
    /// then confirm with `POST /api/v1/devices/wipe-confirmation` (401).
    DeviceWiped,
    /// The device does not meet the organisation's device policy (rooted,
    /// OS too old, posture not reported); the message says why (403).
    DeviceBlocked,
    /// The patient has not consented to this kind of text, or withdrew
    /// consent: record their consent first (409).
    ConsentRequired,
    /// The patient's number texted STOP: nothing is sent to it until the
    /// patient texts START (409).
    PatientOptedOut,
    /// Too many attempts; see the `Retry-After` header (429).
    RateLimited,
    /// A bug or an unavailable dependency (500/503). Details are only in the server log.
    Internal,
    Unavailable,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Validation => 422,
            ErrorCode::Unauthenticated | ErrorCode::InvalidCredentials | ErrorCode::DeviceWiped => {
                401
            }
            ErrorCode::MfaEnrolmentRequired
            | ErrorCode::PasswordChangeRequired
            | ErrorCode::Forbidden
            | ErrorCode::BreakGlassReasonRequired
            | ErrorCode::DeviceBlocked => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict
            | ErrorCode::StaleEpoch
            | ErrorCode::Replayed
            | ErrorCode::DeviceNotRegistered
            | ErrorCode::MembershipPending
            | ErrorCode::ConsentRequired
            | ErrorCode::PatientOptedOut => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// For a `validation` error about one field of the request body: its
    /// path, dot-separated (`idle_timeout_secs`, `devices.min_pin_length`),
    /// so a form can show the message on that field. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}
