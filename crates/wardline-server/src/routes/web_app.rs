//! The clinicians' web app (`web/`, built into `web/dist` by `cargo xtask
//! web`), served at `/` by this binary: `index.html` at `/`, the hashed
//! bundles under `/assets/`, the service worker at `/sw.js`. A release build embeds the files; a debug build
//! reads them from `web/dist` (rust-embed). A server built before the app
//! answers `/` with a page saying how to build it.
//!
//! Files go out gzipped when the browser accepts it. Every response carries
//! the app's Content-Security-Policy: scripts only
//! from this server (and WebAssembly compiled from them), no inline script,
//! style or third-party origin, connections only back to this server.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

#[derive(rust_embed::Embed)]
#[folder = "$WARDLINE_WEB_DIST"]
#[allow_missing = true]
struct Built;

/// The web app's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     worker-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
     font-src 'self'; connect-src 'self'; manifest-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Whether this server has the web app to serve.
pub fn built() -> bool {
    Built::get("index.html").is_some()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/sw.js", get(service_worker))
        // gzip for browsers that ask (all do): the client core's wasm is
        // 2.7 MB as built and about 0.8 MB gzipped, which is what a nurse's
        // first load over hospital Wi-Fi waits for. Bundles are cached for
        // good after that (their names carry their hash).
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
}

async fn index() -> Response {
    let page =
        Built::get("index.html").map_or(NOT_BUILT.as_bytes().to_vec(), |f| f.data.into_owned());
    with_policy(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

/// A bundle: its name carries its content hash, so it is cached for good.
async fn asset(Path(path): Path<String>) -> Response {
    let Some(file) = Built::get(&format!("assets/{path}")) else {
        return with_policy(StatusCode::NOT_FOUND.into_response());
    };
    let mime = file.metadata.mimetype().to_owned();
    let mut resp = ([(header::CONTENT_TYPE, mime)], file.data.into_owned()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    with_policy(resp)
}

/// The service worker (`web/src/sw.ts`): at the root so that its scope is
/// the whole app, and never cached for long, so that browsers pick up a new
/// one at once (they check it at most a day apart anyway).
async fn service_worker() -> Response {
    let Some(file) = Built::get("sw.js") else {
        return with_policy(StatusCode::NOT_FOUND.into_response());
    };
    let mut resp = (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        file.data.into_owned(),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_policy(resp)
}

fn with_policy(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    resp
}

/// `/` on a server built without the web app.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Wardline</title></head>\
<body><main><h1>Wardline</h1><p>This server was built without its web app.</p>\
<p>Build it with <code>cargo xtask web</code> (Node.js 20 and npm needed), then restart the \
server; <code>cargo xtask serve --demo</code> does both.</p>\
<p>The API is at <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p></main></body></html>";
