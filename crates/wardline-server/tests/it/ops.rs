//! Operational endpoints and transport: health, readiness, metrics, the
//! OpenAPI document, HTTP/2 over TLS, security headers, certificate reuse.

use crate::common::{Backend, TestServer};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_openapi() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let http = t.http();
    let r = http.get(format!("{}/healthz", t.url)).send().await.unwrap();
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "ALPN negotiates HTTP/2"
    );
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    let r = http.get(format!("{}/readyz", t.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["database"], "ok");

    // A request, then the metrics show it under its route template.
    http.get(format!("{}/api/v1/users/{}", t.url, uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    let m = http
        .get(format!("{}/metrics", t.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("wardline_http_requests_total"), "{m}");
    assert!(m.contains("route=\"/api/v1/users/{id}\""), "{m}");
    assert!(m.contains("wardline_http_request_duration_seconds"), "{m}");

    let doc = t.openapi().await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["paths"]["/api/v1/auth/login"]["post"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

/// L5 of the 2026-11-30 findings: `/metrics` answered anyone. Now only
/// loopback clients, or a holder of `metrics_token`, read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_for_this_host_or_a_token() {
    // Behind a (trusted) proxy on loopback, the client is the forwarded one.
    let t = TestServer::start_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.metrics_token = Some("scrape-token-for-tests-0123456789".into());
    })
    .await
    .unwrap();
    let http = t.http();
    let get = |xff: &'static str, token: Option<&'static str>| {
        let mut r = http
            .get(format!("{}/metrics", t.url))
            .header("x-forwarded-for", xff);
        if let Some(tok) = token {
            r = r.bearer_auth(tok);
        }
        r.send()
    };
    let remote = get("203.0.113.9", None).await.unwrap();
    assert_eq!(remote.status(), 404);
    assert!(!remote.text().await.unwrap().contains("wardline_"));
    assert_eq!(
        get("203.0.113.9", Some("wrong")).await.unwrap().status(),
        404
    );
    let scraped = get("203.0.113.9", Some("scrape-token-for-tests-0123456789"))
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("wardline_http_requests_total")
    );
    assert_eq!(
        get("127.0.0.1", None).await.unwrap().status(),
        200,
        "this host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_database_is_gone() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    t.sql.close().await;
    let r = t
        .http()
        .get(format!("{}/readyz", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = t
        .http()
        .get(format!("{}/healthz", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "liveness does not depend on the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_certificate_is_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = wardline_server::Config {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    };
    let first = wardline_server::tls::ensure_certificate(&cfg).unwrap();
    assert!(first.self_signed);
    let pem = std::fs::read(&first.cert).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&first.key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let second = wardline_server::tls::ensure_certificate(&cfg).unwrap();
    assert_eq!(
        std::fs::read(&second.cert).unwrap(),
        pem,
        "kept across restarts, so clients can pin it"
    );
}
