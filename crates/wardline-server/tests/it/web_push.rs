//! Web Push (issue 22) against a real push service, npm `web-push-testing`:
//! it checks every push's VAPID token against the key the browser subscribed
//! with (RFC 8292) and decrypts the `aes128gcm` payload (RFC 8291) — so what
//! the test reads is what a browser's service worker would get. A STAT
//! message reaches a subscribed device with no content; its author's own
//! devices and signed-out devices get nothing; a subscription the service
//! says is gone is forgotten; endpoints outside `push.services` are refused.
//! (The browser side — service worker, notification — is in
//! `tests/browser/clinical.mjs`.)

use reqwest::StatusCode;
use serde_json::{Value, json};
use wardline_client::core::MessageContent;
use wardline_proto::Role;
use wardline_proto::messaging::Priority;

use crate::common::push_service::{PushService, push_service_available};
use crate::common::*;

/// `GET`/`PUT`/`DELETE /api/v1/devices/push` with `token`.
async fn push_call(
    t: &TestServer,
    token: &str,
    method: reqwest::Method,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = t
        .http()
        .request(method, format!("{}/api/v1/devices/push", t.url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

/// Subscribes `token`'s device through the push service, as a browser does
/// with the server's VAPID key; returns the service's client hash.
async fn subscribe(t: &TestServer, svc: &PushService, token: &str) -> String {
    let (status, settings) = push_call(t, token, reqwest::Method::GET, None).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["subscribed"], false);
    let key = settings["vapid_public_key"].as_str().unwrap();
    let sub = svc.subscribe(key).await;
    let (status, settings) = push_call(
        t,
        token,
        reqwest::Method::PUT,
        Some(json!({ "endpoint": sub["endpoint"], "keys": sub["keys"] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["subscribed"], true);
    sub["clientHash"].as_str().unwrap().to_owned()
}

/// The subscription's pushes, once it has `n` of them.
async fn pushes(svc: &PushService, hash: &str, n: usize) -> Vec<Value> {
    until(&format!("{n} pushes"), async || {
        let m = svc.messages(hash).await;
        (m.len() >= n).then(|| m.iter().map(|s| serde_json::from_str(s).unwrap()).collect())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stat_message_is_pushed_with_no_content_to_subscribed_devices_only() {
    if !push_service_available() {
        return;
    }
    let svc = PushService::start().await;
    let t = TestServer::start_with(Backend::Sqlite, |c| c.push.services = vec![svc.origin()])
        .await
        .unwrap();
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let doctor = t.user_with_role(&admin, Role::Physician).await;
    let resident = t.user_with_role(&admin, Role::Physician).await;
    let devices = Devices::new();
    let mut nurse_dev = devices.of(&nurse, "Nurse's phone").await;
    let _doctor_dev = devices.of(&doctor, "Doctor's browser").await;
    let _resident_dev = devices.of(&resident, "Resident's browser").await;

    // Endpoints the server would post to are only the configured push
    // services': anything else could aim it at the hospital's network.
    let keys = svc
        .subscribe(&{
            let (_, s) = push_call(&t, &doctor.token, reqwest::Method::GET, None).await;
            s["vapid_public_key"].as_str().unwrap().to_owned()
        })
        .await["keys"]
        .clone();
    for endpoint in [
        "http://127.0.0.1:5432/",
        "https://fcm.googleapis.com.attacker.example/send/x",
        "http://localhost:1/notify/x",
        "file:///etc/passwd",
    ] {
        let (status, body) = push_call(
            &t,
            &doctor.token,
            reqwest::Method::PUT,
            Some(json!({ "endpoint": endpoint, "keys": keys })),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{endpoint}: {body}"
        );
    }
    let endpoint = format!("{}/notify/x", svc.origin());
    for bad in [
        json!({ "p256dh": "AAAA", "auth": keys["auth"] }),
        json!({ "p256dh": keys["p256dh"], "auth": "AAAA" }),
        json!({ "p256dh": "not base64!", "auth": keys["auth"] }),
    ] {
        let (status, body) = push_call(
            &t,
            &doctor.token,
            reqwest::Method::PUT,
            Some(json!({ "endpoint": endpoint, "keys": bad })),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    let doctor_hash = subscribe(&t, &svc, &doctor.token).await;
    let resident_hash = subscribe(&t, &svc, &resident.token).await;
    let nurse_hash = subscribe(&t, &svc, &nurse.token).await;

    // A STAT message in a patient's group: the doctor and the resident are
    // told "stat" and the message id, nothing else; the nurse who wrote it
    // is not told of her own message.
    let text = "STAT: bed 4 K+ 6.9, peaked T waves, come now";
    let conv = group(
        &mut nurse_dev,
        &[doctor.user.id, resident.user.id],
        Some("MRN-4471"),
    )
    .await;
    let sent = nurse_dev
        .send(conv, MessageContent::text(text), Priority::Stat)
        .await
        .unwrap();
    let got = pushes(&svc, &doctor_hash, 1).await;
    assert_eq!(
        got,
        vec![json!({ "v": 1, "kind": "stat", "message": sent })]
    );
    let raw = svc.messages(&doctor_hash).await.concat();
    for secret in ["K+", "bed 4", "MRN", "peaked"] {
        assert!(!raw.contains(secret), "{raw}");
    }
    pushes(&svc, &resident_hash, 1).await;
    assert!(svc.messages(&nurse_hash).await.is_empty());

    // The doctor signs out: nothing more reaches that browser (the
    // resident's push shows the next message was handled).
    let (status, _) = push_call(&t, &doctor.token, reqwest::Method::GET, None).await;
    assert_eq!(status, StatusCode::OK);
    doctor.client.logout().await.unwrap();
    let routine = nurse_dev
        .send(
            conv,
            MessageContent::text("Repeat K+ sent"),
            Priority::Routine,
        )
        .await
        .unwrap();
    let r = pushes(&svc, &resident_hash, 2).await;
    assert_eq!(
        r[1],
        json!({ "v": 1, "kind": "message", "message": routine })
    );
    assert_eq!(svc.messages(&doctor_hash).await.len(), 1, "signed out");

    // The resident's browser dropped its subscription: the push service
    // answers 410 Gone and the server forgets it.
    svc.expire(&resident_hash).await;
    nurse_dev
        .send(
            conv,
            MessageContent::text("Calcium gluconate given"),
            Priority::Urgent,
        )
        .await
        .unwrap();
    until("the 410 Gone subscription forgotten", async || {
        let (_, s) = push_call(&t, &resident.token, reqwest::Method::GET, None).await;
        (s["subscribed"] == false).then_some(())
    })
    .await;

    // Unsubscribing is idempotent.
    for _ in 0..2 {
        let (status, s) = push_call(&t, &nurse.token, reqwest::Method::DELETE, None).await;
        assert_eq!(
            (status, s["subscribed"].clone()),
            (StatusCode::OK, json!(false))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_turned_off_offers_no_key_and_takes_no_subscription() {
    let t = TestServer::start_with(Backend::Sqlite, |c| c.push.enabled = false)
        .await
        .unwrap();
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let _dev = devices.of(&nurse, "Nurse's browser").await;
    let (status, s) = push_call(&t, &nurse.token, reqwest::Method::GET, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s, json!({ "vapid_public_key": null, "subscribed": false }));
    let (status, body) = push_call(
        &t,
        &nurse.token,
        reqwest::Method::PUT,
        Some(json!({ "endpoint": "https://fcm.googleapis.com/fcm/send/x",
            "keys": { "p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA" } })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}
