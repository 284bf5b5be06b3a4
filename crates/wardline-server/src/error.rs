//! The API's error type. Handlers and services return [`ApiError`]; it renders as
//! `{ "error": { "code", "message" } }` with the status that belongs to the code.
//! Internal details (SQL errors, crypto failures) go to the log, never to the
//! client, and never carry PHI.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use wardline_proto::{ErrorBody, ErrorCode, ErrorDetail};

use wardline_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for `429`.
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, m)
    }

    pub fn validation(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Validation, m)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "missing, invalid, expired or revoked session",
        )
    }

    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, m)
    }

    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Conflict, m)
    }

    pub fn rate_limited(retry_after: i64) -> ApiError {
        ApiError {
            code: ErrorCode::RateLimited,
            message: format!("too many attempts; try again in {retry_after} s"),
            retry_after: Some(retry_after.max(1)),
        }
    }

    /// Logs `detail` (which must not contain PHI) and returns an opaque 500.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        // For the audit middleware: the outcome's reason.
        resp.extensions_mut().insert(self.code);
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// A store lookup whose absence is the caller's 404 ("{what} not found");
/// other store errors convert as usual.
pub fn found<T>(r: Result<T, StoreError>, what: &str) -> ApiResult<T> {
    match r {
        Err(StoreError::NotFound) => Err(ApiError::not_found(what)),
        other => Ok(other?),
    }
}

/// Free text (already trimmed) of 1 to `max` characters.
pub fn check_text(value: &str, what: &str, max: usize) -> ApiResult<()> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::validation(format!(
            "{what} must be 1 to {max} characters"
        )));
    }
    Ok(())
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::not_found("resource"),
            StoreError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            StoreError::Unavailable => {
                tracing::error!("database pool timed out");
                ApiError::new(ErrorCode::Unavailable, "database unavailable; try again")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<wardline_crypto::CryptoError> for ApiError {
    fn from(e: wardline_crypto::CryptoError) -> ApiError {
        ApiError::internal(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
