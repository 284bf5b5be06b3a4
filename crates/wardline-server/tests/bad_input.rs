//! Bad input gets a clear JSON error with the right 4xx status, never a 5xx:
//! a sweep over every documented operation with malformed bodies, plus
//! targeted cases (ids, tokens, sizes, methods).

mod common;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

async fn assert_json_error(resp: reqwest::Response, want: u16, code: &str, what: &str) {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, want, "{what}: status, body {body}");
    assert!(
        ctype.starts_with("application/json"),
        "{what}: content-type {ctype}"
    );
    assert_eq!(body["error"]["code"], code, "{what}: body {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: message"
    );
}

async fn sweep_every_operation_with_malformed_bodies(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let http = t.http();
    let doc = t.openapi().await;
    let some_id = Uuid::new_v4().to_string();
    let bodies: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "malformed JSON",
            b"{\"email\": ".to_vec(),
            "application/json",
        ),
        (
            "wrong types",
            br#"{"email": 5, "password": [], "org": {}, "device_id": 7, "code": 1, "roles": "x"}"#
                .to_vec(),
            "application/json",
        ),
        ("empty object", b"{}".to_vec(), "application/json"),
        ("array", b"[1,2,3]".to_vec(), "application/json"),
        ("null", b"null".to_vec(), "application/json"),
        (
            "not JSON content type",
            b"email=a".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            "application/json",
        ),
        (
            "invalid UTF-8",
            vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'],
            "application/json",
        ),
        (
            "oversized",
            format!("{{\"email\": \"{}\"}}", "a".repeat(200 * 1024)).into_bytes(),
            "application/json",
        ),
    ];
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let path = path
            .replace("{id}", &some_id)
            .replace("{session_id}", &some_id);
        for (method, op) in ops.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (what, body, ctype) in &bodies {
                let resp = http
                    .request(method.clone(), format!("{}{path}", t.url))
                    .bearer_auth(&admin.token)
                    .header("content-type", *ctype)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let html = resp
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
                let text = resp.text().await.unwrap();
                assert!(
                    status.is_client_error(),
                    "{method} {path} with {what}: {status} {text}"
                );
                // The patient's pages answer in HTML, with the reason on the page.
                if op["tags"][0] == "patient-portal" {
                    assert!(
                        html && text.contains("role=\"alert\""),
                        "{method} {path} with {what}: {text}"
                    );
                    checked += 1;
                    continue;
                }
                let v: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{method} {path} with {what}: not JSON: {text}"));
                assert!(
                    v["error"]["code"].is_string(),
                    "{method} {path} with {what}: {text}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 9 * 8, "swept only {checked} requests");
    admin
        .client
        .current_session()
        .await
        .expect("the server is still fine");
}

async fn targeted_cases(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let other = t.create_org("beta").await;
    let http = t.http();
    let url = |p: &str| format!("{}{p}", t.url);

    // Specific statuses for body problems.
    let r = http
        .post(url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{bad")
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "bad_request", "malformed JSON").await;
    let r = http
        .post(url("/api/v1/auth/login"))
        .json(&serde_json::json!({"org": 1}))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "bad_request", "wrong types").await;
    let r = http
        .post(url("/api/v1/auth/login"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_json_error(r, 415, "unsupported_media_type", "no content type").await;
    let big = serde_json::json!({"org": "a".repeat(100 * 1024), "email": "a", "password": "b", "device_id": Uuid::new_v4()});
    let r = http
        .post(url("/api/v1/auth/login"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 413, "payload_too_large", "oversized").await;
    let r = http
        .patch(url(&format!("/api/v1/users/{}", admin.user.id)))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({"nickname": "x"}))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "bad_request", "unknown field").await;
    let r = http
        .post(url("/api/v1/users"))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({"email": "not-an-email", "display_name": "X", "roles": ["nurse"], "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 422, "validation", "bad e-mail").await;
    let r = http
        .post(url("/api/v1/users"))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({"email": "a@alpha.test", "display_name": "X", "roles": ["surgeon"], "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "bad_request", "unknown role").await;
    let r = http
        .post(url("/api/v1/users"))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({"email": "a@alpha.test", "display_name": "X", "roles": [], "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 422, "validation", "no role").await;
    let r = http
        .post(url("/api/v1/users"))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({"email": "a@alpha.test", "display_name": "X", "roles": ["nurse"], "password": common::PASSWORD, "phone": "call me"}))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 422, "validation", "bad phone").await;
    let dup = serde_json::json!({"email": admin.user.email.to_uppercase(), "display_name": "X", "roles": ["nurse"], "password": common::PASSWORD});
    let r = http
        .post(url("/api/v1/users"))
        .bearer_auth(&admin.token)
        .json(&dup)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 409, "conflict", "duplicate e-mail (case-insensitive)").await;

    // Ids: malformed → 400, unknown → 404, another tenant's → 404.
    let r = http
        .get(url("/api/v1/users/not-a-uuid"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "bad_request", "malformed id").await;
    let r = http
        .get(url(&format!("/api/v1/users/{}", Uuid::new_v4())))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 404, "not_found", "unknown id").await;
    for (m, p) in [
        (Method::GET, format!("/api/v1/users/{}", other.user.id)),
        (Method::PATCH, format!("/api/v1/users/{}", other.user.id)),
        (
            Method::POST,
            format!("/api/v1/users/{}/suspend", other.user.id),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{}/deprovision", other.user.id),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{}/mfa/reset", other.user.id),
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}/sessions", other.user.id),
        ),
        (
            Method::DELETE,
            format!("/api/v1/users/{}/sessions", other.user.id),
        ),
    ] {
        let mut req = http.request(m.clone(), url(&p)).bearer_auth(&admin.token);
        if m == Method::PATCH {
            req = req.json(&serde_json::json!({"display_name": "Hijacked"}));
        }
        assert_json_error(
            req.send().await.unwrap(),
            404,
            "not_found",
            &format!("{m} {p} across tenants"),
        )
        .await;
    }
    let theirs = other.client.user(other.user.id).await.unwrap();
    assert_eq!(
        theirs.display_name, "Other Admin",
        "nothing changed in the other tenant"
    );
    assert_eq!(theirs.status, wardline_proto::directory::UserStatus::Active);
    other
        .client
        .current_session()
        .await
        .expect("their session untouched");
    let r = http
        .get(url("/api/v1/users?device_id=zzz"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "unknown query parameters on a list are ignored"
    );
    let r = http
        .delete(url(&format!(
            "/api/v1/users/{}/sessions?device_id=zzz",
            admin.user.id
        )))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "bad_request", "bad query value").await;

    // Tokens: forged, malformed header, revoked.
    for header in [
        "Bearer wls_forged",
        "Bearer ",
        "Basic YTpi",
        "wls_noscheme",
        "Bearer \u{7f}",
    ] {
        let Ok(req) = http
            .get(url("/api/v1/auth/session"))
            .header("authorization", header)
            .build()
        else {
            continue;
        };
        assert_json_error(
            http.execute(req).await.unwrap(),
            401,
            "unauthenticated",
            header,
        )
        .await;
    }
    let extra = t.sign_in_mfa(&admin).await;
    extra.logout().await.unwrap();
    assert_eq!(
        extra.current_session().await.unwrap_err().code(),
        Some(wardline_proto::ErrorCode::Unauthenticated)
    );

    // Unknown routes and methods.
    let r = http.get(url("/api/v1/nothing-here")).send().await.unwrap();
    assert_json_error(r, 404, "not_found", "unknown route").await;
    let r = http.delete(url("/api/v1/auth/login")).send().await.unwrap();
    assert_json_error(r, 405, "method_not_allowed", "wrong method").await;
}

both_backends!(sweep_every_operation_with_malformed_bodies, targeted_cases);
