//! The error every service returns: an [`ErrorCode`] (which fixes the HTTP
//! status, `ErrorCode::http_status`) and a message for the person who caused
//! it. Entry points render it (`wardline-server` as `{ "error": { "code",
//! "message" } }`). Internal details (SQL errors, crypto failures) go to the
//! log, never to the client, and never carry PHI.

use wardline_proto::ErrorCode;

use wardline_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for `429`.
    pub retry_after: Option<i64>,
    /// The request body's field a `validation` error is about
    /// (`ErrorDetail::field`).
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
            field: None,
        }
    }

    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, m)
    }

    pub fn validation(m: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Validation, m)
    }

    /// A `validation` error about one field of the request body (its
    /// dot-separated path), for a form to show on that field.
    pub fn invalid_field(field: &'static str, m: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field),
            ..ApiError::validation(m)
        }
    }

    /// This error, said of one field of the request body (a shared check,
    /// such as a phone number's, failing for that field).
    pub fn at_field(self, field: &'static str) -> ApiError {
        ApiError {
            field: Some(field),
            ..self
        }
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
            field: None,
        }
    }

    /// Logs `detail` (which must not contain PHI) and returns an opaque 500.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error; see the server log")
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

/// Free text (already trimmed) of 1 to `max` characters; `what` is the
/// request body's field, named in the error (`ErrorDetail::field`).
pub fn check_text(value: &str, what: &'static str, max: usize) -> ApiResult<()> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid_field(
            what,
            format!("{what} must be 1 to {max} characters"),
        ));
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
