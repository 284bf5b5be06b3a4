//! HTTP plumbing shared by every route: extractors whose rejections are JSON
//! [`ApiError`]s (so malformed input never yields axum's plain-text errors),
//! the 404/405 fallbacks, the panic guard, and per-request metrics, logging and
//! security headers.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use wardline_proto::ErrorCode;

use wardline_core::text::forbidden_control;

use crate::error::{ApiError, HttpError};

/// JSON body. Wrong content type → 415, too large → 413, syntax → 400, not
/// a JSON object → 400 (every request body is an object: a sequence must not
/// fill a struct's fields by position), a control character in any string
/// → 422 ([`control_character_in_json`]), wrong types or missing fields → 400
/// naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(not_json().into());
        }
        let bytes = body_bytes(
            axum::body::Bytes::from_request(req, state).await,
            "request body",
        )?;
        check_json_text(&bytes)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej).into()),
        }
    }
}

/// `application/json` or any `+json` media type, as axum's `Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The edge checks every JSON body passes before it is deserialised.
fn check_json_text(body: &[u8]) -> Result<(), ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object",
        ));
    }
    if let Some(c) = control_character_in_json(body) {
        return Err(control_character_error(c));
    }
    Ok(())
}

fn control_character_error(c: u32) -> ApiError {
    ApiError::validation(format!(
        "text may not contain control characters (found U+{c:04X}); tabs and line breaks are allowed"
    ))
}

/// The first forbidden control character in any string of a JSON text, raw
/// or escaped (`\u0000`, `\b`, `\f`), without parsing it. (Raw C0 bytes
/// inside strings are invalid JSON, which the parser refuses anyway.)
pub fn control_character_in_json(body: &[u8]) -> Option<u32> {
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => {
                match body.get(i + 1) {
                    Some(b'u') => {
                        let c = body
                            .get(i + 2..i + 6)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok());
                        if let Some(c) = c
                            && forbidden_control(c)
                        {
                            return Some(c);
                        }
                        i += 6;
                    }
                    Some(b'b') => return Some(0x08),
                    Some(b'f') => return Some(0x0c),
                    _ => i += 2,
                }
                continue;
            }
            0x7f => return Some(0x7f),
            0xc2 if body.get(i + 1).is_some_and(|b| (0x80..=0x9f).contains(b)) => {
                return Some(u32::from(body[i + 1]) & 0xff);
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The first forbidden control character in percent-encoded text (a path or
/// query string), once decoded.
pub fn control_character_in_url(raw: &str) -> Option<u32> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded)
        .chars()
        .map(u32::from)
        .find(|c| forbidden_control(*c))
}

/// The OpenAPI document as served: every free-text string (no `format`,
/// `enum` or `pattern` of its own) carries the edge's rule as a `pattern`
/// (no control characters but tab, LF and CR), so the schema says what the
/// server accepts (finding L9 of 2026-11-30).
pub fn served_openapi(doc: &utoipa::openapi::OpenApi) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                let is_string = match map.get("type") {
                    Some(serde_json::Value::String(t)) => t == "string",
                    Some(serde_json::Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                    _ => false,
                };
                if is_string
                    && !map.contains_key("format")
                    && !map.contains_key("enum")
                    && !map.contains_key("pattern")
                {
                    map.insert(
                        "pattern".into(),
                        serde_json::Value::String(TEXT_PATTERN.into()),
                    );
                }
                for child in map.values_mut() {
                    walk(child);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(doc).expect("OpenAPI document serialises");
    walk(&mut v);
    serde_json::to_string_pretty(&v).expect("OpenAPI document serialises")
}

/// [`forbidden_control`] as an ECMA-262 pattern.
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";

/// Form fields (webhooks, patient pages) pass the same text rule; a form
/// that breaks it is a malformed form (400).
pub fn check_form_text(fields: &[(String, String)]) -> Result<(), ApiError> {
    match fields
        .iter()
        .flat_map(|(k, v)| k.chars().chain(v.chars()))
        .map(u32::from)
        .find(|c| forbidden_control(*c))
    {
        Some(c) => Err(ApiError::bad_request(format!(
            "malformed form body: control character U+{c:04X}"
        ))),
        None => Ok(()),
    }
}

fn not_json() -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "send the body as JSON with Content-Type: application/json",
    )
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => not_json(),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("malformed JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("invalid request body: {}", e.body_text()))
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

/// Path parameters; an id that does not parse is a 400, not a 404 or 500.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(c) = control_character_in_url(parts.uri.path()) {
            return Err(path_rejection_for(c).into());
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(rej) => Err(path_rejection(rej).into()),
        }
    }
}

/// A control character in the path is a malformed path (400), like an id
/// that does not parse.
fn path_rejection_for(c: u32) -> ApiError {
    ApiError::bad_request(format!(
        "invalid path parameter: control character U+{c:04X}"
    ))
}

fn path_rejection(rej: PathRejection) -> ApiError {
    ApiError::bad_request(format!("invalid path parameter: {}", rej.body_text()))
}

/// Query string parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.uri.query().and_then(control_character_in_url) {
            return Err(ApiError::bad_request(format!(
                "invalid query string: control character U+{c:04X}"
            ))
            .into());
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(query_rejection(rej).into()),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("invalid query string: {}", rej.body_text()))
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy. Entries left of that are client-supplied and never believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    chain
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

pub async fn not_found() -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::NotFound,
        "no such endpoint; see /api/openapi.json",
    ))
}

pub async fn method_not_allowed() -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    ))
}

/// Turns a panic in a handler into a JSON 500 (the panic message is logged,
/// never sent). A panic is always a bug to fix; this only keeps the connection
/// and the process healthy meanwhile.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    HttpError(ApiError::new(
        ErrorCode::Internal,
        "internal error; see the server log",
    ))
    .into_response()
}

/// Metrics, one log line per request and security headers. Logs the route
/// template (`/api/v1/users/{id}`), never the raw path or query, so ids, tokens
/// and search terms stay out of the log.
pub async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("wardline_http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("wardline_http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone()).record(elapsed.as_secs_f64());
    tracing::info!(target: "wardline::http", %method, route, status, ms = elapsed.as_secs_f64() * 1000.0, "request");

    let h = resp.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// The origins whose pages may call this server from a browser: its own
/// (the address the request was sent to) and the configured public URL's.
#[derive(Clone, Debug)]
pub struct AllowedOrigins {
    /// `scheme://host[:port]` of the public URL, lower-cased.
    pub public: Option<String>,
    /// Plain-HTTP origins are same-origin too (`tls.insecure_http`, behind a
    /// TLS proxy on this host); otherwise only `https://` ones.
    pub plain_http: bool,
}

impl AllowedOrigins {
    pub fn new(public_url: &str, plain_http: bool) -> AllowedOrigins {
        let public = public_url
            .split_once("://")
            .map(|(scheme, rest)| {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                format!("{scheme}://{authority}").to_ascii_lowercase()
            })
            .filter(|o| !o.ends_with("://"));
        AllowedOrigins { public, plain_http }
    }

    /// Whether a request carrying `Origin: origin`, sent to `authority`,
    /// comes from one of this server's own pages.
    pub fn allows(&self, origin: &str, authority: Option<&str>) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        if self.public.as_deref() == Some(origin.as_str()) {
            return true;
        }
        let Some((scheme, host)) = origin.split_once("://") else {
            return false; // "null": a sandboxed frame, a file, a privacy redirect
        };
        let scheme_ok = scheme == "https" || (self.plain_http && scheme == "http");
        scheme_ok && authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
    }
}

/// Refuses (403) a request that a page of another site made. Following a
/// link to a page (a `GET` navigation: a texted or e-mailed link, the
/// hospital intranet's) always passes: it carries no credential and changes
/// nothing. Otherwise, modern browsers say where a request comes from in
/// `Sec-Fetch-Site`: only `same-origin` and `none` (the user typed the
/// address or followed a bookmark) pass. Without it (an older browser), an
/// `Origin` header must name this server or its public URL; `Origin: null`
/// without `Sec-Fetch-Site` passes, because older browsers send it on the
/// server's own form posts under `Referrer-Policy: no-referrer` (the patient
/// portal on an old phone). Clients that are not browsers (the CLI, an SMS
/// provider's callbacks) send neither and pass. Sessions are bearer tokens,
/// never cookies, so a foreign page has no credential to ride on; this keeps
/// it from reaching even the anonymous routes (sign-in, the portal's forms,
/// socket upgrades) through a visitor's browser.
pub async fn refuse_foreign_origins(
    axum::extract::State(allowed): axum::extract::State<AllowedOrigins>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let navigation = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) && headers
        .get("sec-fetch-mode")
        .is_some_and(|m| m.as_bytes() == b"navigate");
    let foreign = if navigation {
        false
    } else if let Some(site) = headers.get("sec-fetch-site") {
        !matches!(site.as_bytes(), b"same-origin" | b"none")
    } else if let Some(origin) = headers.get(header::ORIGIN)
        && origin.as_bytes() != b"null"
    {
        // HTTP/2 carries the authority in the URI, HTTP/1.1 in Host.
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
        !origin.to_str().is_ok_and(|o| allowed.allows(o, authority))
    } else {
        false
    };
    if foreign {
        return HttpError(ApiError::new(
            ErrorCode::Forbidden,
            "refused: the request came from a page of another site",
        ))
        .into_response();
    }
    next.run(req).await
}

/// A raw body, or the API error its rejection deserves (413 past the limit).
pub fn body_bytes(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    what: &str,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, format!("{what} is too large"))
        } else {
            ApiError::bad_request(e.body_text())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_raw_and_escaped() {
        for (json, found) in [
            (r#"{"org":"de\u0000mo"}"#, Some(0)),
            (r#"{"a":"x\u001Bx"}"#, Some(0x1b)),
            (r#"{"a":"\b"}"#, Some(8)),
            (r#"{"a":"\f"}"#, Some(0x0c)),
            ("{\"a\":\"x\u{7f}\"}", Some(0x7f)),
            ("{\"a\":\"x\u{85}\"}", Some(0x85)),
            (r#"{"a":"\u0085"}"#, Some(0x85)),
            // Allowed: line breaks and tabs, an escaped backslash before "u0000",
            // non-control text that merely looks close.
            (r#"{"a":"line\nbreak\ttab\r"}"#, None),
            (r#"{"a":"\\u0000"}"#, None),
            ("{\"a\":\"Ça ¢ ß 🛑 \u{a0}\"}", None),
            (r#"{"a":"\u00e9\u2028"}"#, None),
        ] {
            assert_eq!(control_character_in_json(json.as_bytes()), found, "{json}");
        }
        assert_eq!(control_character_in_url("/api/v1/x%00y"), Some(0));
        assert_eq!(control_character_in_url("q=a%C2%85"), Some(0x85));
        assert_eq!(control_character_in_url("q=caf%C3%A9&x=%0A"), None);
        assert_eq!(control_character_in_url("q=%zz%"), None);
        assert!(check_json_text(b" [null, null]").is_err());
        assert!(check_json_text(b"{}").is_ok());
    }

    #[test]
    fn only_this_servers_own_pages_are_allowed_origins() {
        let a = AllowedOrigins::new("https://Wardline.example.org/base/", false);
        assert_eq!(a.public.as_deref(), Some("https://wardline.example.org"));
        assert!(a.allows("https://wardline.example.org", Some("10.0.0.5:8443")));
        // Same origin as the address the browser used.
        assert!(a.allows("https://localhost:8443", Some("localhost:8443")));
        assert!(a.allows("https://LOCALHOST:8443", Some("localhost:8443")));
        for (origin, authority) in [
            ("https://evil.example", Some("localhost:8443")),
            ("https://localhost:8444", Some("localhost:8443")),
            ("http://localhost:8443", Some("localhost:8443")),
            ("null", Some("localhost:8443")),
            ("https://localhost:8443", None),
            ("https://wardline.example.org.evil.example", Some("x")),
        ] {
            assert!(!a.allows(origin, authority), "{origin} to {authority:?}");
        }
        let plain = AllowedOrigins::new("http://127.0.0.1:8080", true);
        assert!(plain.allows("http://127.0.0.1:8080", None));
        assert!(plain.allows("http://wardline.lan", Some("wardline.lan")));
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        // Untrusted peer: its header is ignored.
        assert_eq!(client_ip(client, &xff("198.51.100.1"), &[proxy]), client);
        // Trusted proxy: the right-most untrusted entry; spoofed entries to its left are ignored.
        assert_eq!(
            client_ip(proxy, &xff("198.51.100.1, 203.0.113.7"), &[proxy]),
            client
        );
        assert_eq!(
            client_ip(proxy, &xff("203.0.113.7, 10.0.0.1"), &[proxy]),
            client
        );
        // No usable header: the proxy itself.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, &xff("garbage"), &[proxy]), proxy);
    }
}
