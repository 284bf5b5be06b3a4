//! The API's errors as HTTP responses: a service's [`ApiError`] renders as
//! `{ "error": { "code", "message" } }` with the status that belongs to its
//! code (and `Retry-After` for `429`, `Clear-Site-Data` for a wiped device).
//! Handlers return [`ApiResult`]; `?` turns a service's, the store's or the
//! crypto layer's error into it.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use wardline_proto::{ErrorBody, ErrorCode, ErrorDetail};

pub use wardline_core::error::ApiError;

/// An [`ApiError`] on its way out as a response.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl<E: Into<ApiError>> From<E> for HttpError {
    fn from(e: E) -> HttpError {
        HttpError(e.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let HttpError(e) = self;
        let status =
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: e.code,
                message: e.message,
                field: e.field.map(str::to_owned),
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        // For the audit middleware: the outcome's reason.
        resp.extensions_mut().insert(e.code);
        // A wiped device that is a browser: the browser itself erases what
        // this site stored (the web app's sealed store in IndexedDB, caches),
        // even if the app's own code never runs again.
        if e.code == ErrorCode::DeviceWiped {
            resp.headers_mut().insert(
                HeaderName::from_static("clear-site-data"),
                HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""),
            );
        }
        if let Some(secs) = e.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, HttpError>;
