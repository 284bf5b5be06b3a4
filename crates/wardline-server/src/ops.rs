//! Operational endpoints: liveness, readiness, metrics, and the OpenAPI
//! document. None needs a session and none returns tenant data.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: the database answers.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    match s.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not ready", "database": "unavailable" })),
            )
        }
    }
}

/// Prometheus metrics: for loopback clients, or with `metrics_token`
/// (finding L5 of 2026-11-30: per-route counts, portal activity included,
/// were public). Anyone else gets the same 404 as an unknown path.
async fn metrics(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let client = crate::http::client_ip(peer.ip(), &headers, &s.trusted_proxies);
    let token_ok = match (
        s.metrics_token.as_deref(),
        crate::authn::bearer_token(&headers),
    ) {
        // Compared as SHA-256 digests: the time taken says nothing useful
        // about the token.
        (Some(want), Some(got)) => {
            wardline_crypto::token::hash_token(want) == wardline_crypto::token::hash_token(got)
        }
        _ => false,
    };
    if !(client.is_loopback() || token_ok) {
        return crate::http::not_found().await.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn openapi(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.as_ref().clone(),
    )
}
