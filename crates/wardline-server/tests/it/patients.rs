//! Patient texting end to end: consent, reminders, secure messages read in a
//! real headless Chromium after the identity check, replies, STOP; the REST
//! gateway against a stand-in provider that checks the request shape and signs
//! its webhooks; and the refusals (consent, free text, locked and expired links).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Actor, Backend, TestServer, contains, database_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use uuid::Uuid;
use wardline_client::core::patient::{open_for_patient, seal_for_patient};
use wardline_core::patients::gateway::webhook_signature;
use wardline_proto::audit::{AuditAction, Outcome};
use wardline_proto::messaging::B64;
use wardline_proto::patients::*;
use wardline_proto::{ErrorCode, Role};
use wardline_store::AuditStore;

const WEBHOOK_TOKEN: &str = "test-webhook-token-0123456789";
const PHONE: &str = "+15551230001";
const DOB: &str = "1984-03-07";
const SECRET_TEXT: &str = "Your biopsy result is benign; continue metformin 500mg";
const REPLY: &str = "Thank you, doctor. Should I still come on Friday?";
const SEALED_TEXT: &str =
    "Sealed on the nurse's laptop: your TSH is 2.1, no change to levothyroxine";

async fn server(
    backend: Backend,
    tweak: impl FnOnce(&mut wardline_server::Config),
) -> Option<TestServer> {
    TestServer::start_with(backend, |c| {
        c.sms.auth_token = Some(WEBHOOK_TOKEN.into());
        tweak(c);
    })
    .await
}

/// The organisation's admin and a nurse; the policy without quiet hours (the
/// test clock may sit at night) and with a practice line.
async fn practice(t: &TestServer) -> (Actor, Actor) {
    let admin = t.setup_org("clinic").await;
    let mut policy = admin.client.policy().await.unwrap();
    policy.patients.quiet_hours = None;
    policy.patients.practice_phone = "+1 555 010 2000".into();
    admin.client.set_policy(&policy).await.unwrap();
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    (admin, nurse)
}

async fn new_patient(nurse: &Actor, language: &str) -> Patient {
    nurse
        .client
        .create_patient(&CreatePatientRequest {
            name: "Maria Quintero".into(),
            date_of_birth: DOB.into(),
            mrn: Some(format!("MRN-{}", &Uuid::new_v4().simple().to_string()[..8])),
            phone: PHONE.into(),
            language: Some(language.into()),
        })
        .await
        .expect("create patient")
}

async fn consent(nurse: &Actor, id: Uuid, scope: ConsentScope, granted: bool) -> ConsentHistory {
    nurse
        .client
        .record_consent(
            id,
            &RecordConsentRequest {
                scope,
                granted,
                method: ConsentMethod::Written,
            },
        )
        .await
        .expect("consent")
}

/// Every line of the file gateway's log.
fn sms_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits for the sender to have written `n` SMS.
async fn wait_for_sms(path: &Path, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let lines = sms_log(path);
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the SMS log never reached {n} lines: {:?}", sms_log(path));
}

/// The link in a logged SMS (a secure-message notice).
fn link_in(sms: &Value) -> String {
    sms["body"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .expect("a link in the notice")
        .to_owned()
}

/// POSTs a form to a webhook, signed as the provider would.
async fn signed_post(
    t: &TestServer,
    path: &str,
    fields: &[(&str, &str)],
    token: &str,
) -> reqwest::Response {
    let owned: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let signature = webhook_signature(token, &format!("{}{path}", t.url), &owned);
    t.http()
        .post(format!("{}{path}", t.url))
        .header("x-twilio-signature", signature)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&owned).unwrap())
        .send()
        .await
        .unwrap()
}

/// An SMS from the patient's phone, as the provider delivers it (a new
/// provider id each time).
async fn texts_from(t: &TestServer, org: Uuid, body: &str) -> reqwest::Response {
    let sid = format!("SM{}", Uuid::new_v4().simple());
    signed_post(
        t,
        &format!("/sms/inbound/{org}"),
        &[
            ("From", PHONE),
            ("To", "+15550100000"),
            ("Body", body),
            ("MessageSid", &sid),
        ],
        WEBHOOK_TOKEN,
    )
    .await
}

async fn audit_actions(t: &TestServer) -> Vec<(String, String, String, Option<String>)> {
    t.sql
        .audit_entries(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.outcome, r.actor_kind, r.patient_id))
        .collect()
}

/// The walk-through: consent → plain reminder → secure message (the
/// SMS is only a notice and a link) → the patient in Chromium fails the check
/// twice, verifies, reads, replies → staff see the reply → STOP → the next
/// send is refused. Every step audited; no message text in the SMS log or the
/// database.
async fn patient_texting_end_to_end(backend: Backend) {
    if !crate::common::browser::browser_available() {
        return;
    }
    let Some(t) = server(backend, |_| {}).await else {
        return;
    };
    let (admin, nurse) = practice(&t).await;
    let org = admin.user.org_id;
    let log = t.config.sms_file_path();
    let patient = new_patient(&nurse, "en").await;

    // Nothing is sent without consent.
    let err = nurse
        .client
        .send_patient_text(
            patient.id,
            &SendTemplateRequest {
                template: "appointment_reminder".into(),
                params: BTreeMap::from([
                    ("date".into(), "2026-12-01".into()),
                    ("time".into(), "09:30".into()),
                ]),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ConsentRequired));
    consent(&nurse, patient.id, ConsentScope::Reminders, true).await;
    let history = consent(&nurse, patient.id, ConsentScope::SecureMessages, true).await;
    assert_eq!(
        history.consent,
        vec![ConsentScope::Reminders, ConsentScope::SecureMessages]
    );
    assert_eq!(history.events[0].recorded_by, nurse.user.id.to_string());

    // A reminder: plain SMS, typed values only.
    let sent = nurse
        .client
        .send_patient_text(
            patient.id,
            &SendTemplateRequest {
                template: "appointment_reminder".into(),
                params: BTreeMap::from([
                    ("date".into(), "2026-12-01".into()),
                    ("time".into(), "09:30".into()),
                ]),
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.sms.kind, SmsKind::Reminder);
    let lines = wait_for_sms(&log, 1).await;
    assert_eq!(lines[0]["to"], PHONE);
    assert_eq!(
        lines[0]["body"],
        "Reminder: you have an appointment on 2026-12-01 at 09:30. To change it, call +1 555 010 2000. Reply STOP to opt out."
    );

    // A secure message: the SMS is the notice and a link, nothing else.
    let sent = nurse
        .client
        .send_patient_message(
            patient.id,
            &SendSecureMessageRequest {
                text: Some(SECRET_TEXT.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.sms.kind, SmsKind::SecureNotice);
    let lines = wait_for_sms(&log, 2).await;
    let notice = lines[1]["body"].as_str().unwrap().to_owned();
    let url = link_in(&lines[1]);
    assert!(url.starts_with(&format!("{}/p/", t.url)), "{url}");
    assert!(
        !notice.contains("biopsy") && !notice.contains("Maria"),
        "{notice}"
    );

    // The patient, in Chromium.
    let cfg = serde_json::json!({
        "wrongAttempts": 2,
        "url": url,
        "wrongDob": "1984-07-03",
        "dob": DOB,
        "smsLog": log,
        "phone": PHONE,
        "expectText": SECRET_TEXT,
        "forbidden": [SECRET_TEXT, "Maria", "Quintero", patient.mrn.clone().unwrap()],
        "reply": REPLY,
        "dobLabel": "Your date of birth",
        "codeLabel": "6-digit code",
        "replyLabel": "Your reply",
    });
    let steps = browser(cfg).await;
    assert_eq!(steps[0]["lang"], "en");
    // axe-core audited every page (WCAG 2.1 A/AA) and found nothing.
    for step in &steps[..5] {
        assert!(step["a11y_passes"].as_u64().unwrap() > 5, "{step}");
    }
    assert!(
        steps[1]["alert"]
            .as_str()
            .unwrap()
            .contains("left before this link locks: 4"),
        "{steps:?}"
    );
    assert!(
        steps[2]["alert"].as_str().unwrap().contains(": 3"),
        "{steps:?}"
    );
    assert_eq!(steps.last().unwrap()["step"], "stranger");
    assert_eq!(steps.last().unwrap()["status"], 401);

    // Staff see the reply, unread until they open the thread.
    let threads = nurse.client.patient_threads().await.unwrap().threads;
    assert_eq!(threads.len(), 1);
    assert_eq!(
        (threads[0].patient_name.as_str(), threads[0].unread),
        ("Maria Quintero", 1)
    );
    let thread = nurse.client.patient_thread(patient.id).await.unwrap();
    let texts: Vec<&str> = thread.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec![SECRET_TEXT, REPLY]);
    assert_eq!(
        thread.messages[1].direction,
        PatientMessageDirection::FromPatient
    );
    assert_eq!(thread.messages[1].via, "portal");
    assert!(thread.messages[0].read_at.is_some(), "the patient read it");
    assert_eq!(
        nurse.client.patient_threads().await.unwrap().threads[0].unread,
        0
    );

    // A message sealed by the nurse's client: the server stores ciphertext,
    // the key rides only in the link's fragment, the patient's page opens it.
    let (ciphertext, fragment) = seal_for_patient(SEALED_TEXT);
    let sent = nurse
        .client
        .send_patient_message(
            patient.id,
            &SendSecureMessageRequest {
                text: None,
                sealed: Some(ClientSealed {
                    ciphertext: B64(ciphertext.clone()),
                    key_fragment: fragment.to_string(),
                }),
            },
        )
        .await
        .unwrap();
    let lines = wait_for_sms(&log, 4).await;
    let notice = lines[3]["body"].as_str().unwrap().to_owned();
    let sealed_url = link_in(&lines[3]);
    assert!(
        sealed_url.ends_with(&format!("#{}", fragment.as_str())),
        "{notice}"
    );
    let steps = browser(serde_json::json!({
        "url": sealed_url,
        "wrongAttempts": 0,
        "wrongDob": "",
        "dob": DOB,
        "smsLog": log,
        "phone": PHONE,
        "expectText": SEALED_TEXT,
        "forbidden": [SEALED_TEXT, "Maria"],
        "dobLabel": "Your date of birth",
        "codeLabel": "6-digit code",
        "replyLabel": "Your reply",
    }))
    .await;
    let verified = &crate::common::browser::step(&steps, "verified");
    assert_eq!(verified["hash"], "", "the key left the address bar");
    let thread = nurse.client.patient_thread(patient.id).await.unwrap();
    let m = thread
        .messages
        .iter()
        .find(|m| Some(m.id) == sent.message_id)
        .unwrap();
    assert_eq!(m.text, "");
    assert_eq!(m.sealed.as_ref().unwrap().0, ciphertext);
    assert_eq!(
        open_for_patient(&m.sealed.as_ref().unwrap().0, &fragment).as_deref(),
        Some(SEALED_TEXT)
    );

    // STOP: one confirmation, then nothing.
    assert_eq!(texts_from(&t, org, "Stop").await.status(), 200);
    let lines = wait_for_sms(&log, 6).await;
    assert!(
        lines[5]["body"].as_str().unwrap().contains("unsubscribed"),
        "{lines:?}"
    );
    assert_eq!(texts_from(&t, org, "STOP").await.status(), 200);
    let err = nurse
        .client
        .send_patient_message(
            patient.id,
            &SendSecureMessageRequest {
                text: Some("Another note".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PatientOptedOut));
    assert!(err.to_string().contains("STOP"), "{err}");
    let p = nurse.client.patient(patient.id).await.unwrap();
    assert!(p.sms_opted_out);
    let history = nurse.client.consent_history(patient.id).await.unwrap();
    assert_eq!(
        history.events.last().unwrap().action,
        ConsentAction::OptedOut
    );
    assert_eq!(
        history.events.last().unwrap().method,
        ConsentMethod::SmsKeyword
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sms_log(&log).len(),
        6,
        "a second STOP gets no second confirmation"
    );

    // Audited: each step, the patient's own as the patient.
    let events = audit_actions(&t).await;
    let pid = patient.id.to_string();
    for (action, outcome, actor) in [
        ("patient.create", "success", "user"),
        ("patient.consent.record", "success", "user"),
        ("patient.text.send", "failure", "user"),
        ("patient.text.send", "success", "user"),
        ("patient.message.send", "success", "user"),
        ("sms.send", "success", "service"),
        ("portal.open", "success", "patient"),
        ("portal.verify", "failure", "patient"),
        ("portal.verify", "success", "patient"),
        ("portal.code", "success", "patient"),
        ("portal.thread.view", "success", "patient"),
        ("portal.reply", "success", "patient"),
        ("patient.thread.view", "success", "user"),
        ("sms.inbound", "success", "patient"),
        ("patient.message.send", "failure", "user"),
    ] {
        assert!(
            events.iter().any(|(a, o, k, p)| a == action
                && o == outcome
                && k == actor
                && p.as_deref() == Some(&pid)),
            "no {action}/{outcome} by {actor} for the patient in {events:?}"
        );
    }
    let failures = events
        .iter()
        .filter(|(a, o, _, _)| a == "portal.verify" && o == "failure")
        .count();
    assert_eq!(failures, 2);

    // No message text, reply or patient detail in the database; the SMS log
    // has the number and the notices, never the message.
    let db = database_bytes(&t).await;
    // Nor the sealed message's key: erased from the outbox once the SMS went.
    let key = fragment.strip_prefix("k=").unwrap();
    for secret in [
        SECRET_TEXT,
        SEALED_TEXT,
        REPLY,
        "Maria Quintero",
        DOB,
        PHONE,
        patient.mrn.as_deref().unwrap(),
        key,
    ] {
        assert!(!contains(&db, secret), "{secret:?} stored in plaintext");
    }
    // The carrier gets the key, never the ciphertext.
    let raw_log = std::fs::read_to_string(&log).unwrap();
    use base64::Engine;
    let ciphertext_b64 = base64::engine::general_purpose::STANDARD.encode(&ciphertext);
    for secret in [
        SECRET_TEXT,
        SEALED_TEXT,
        REPLY,
        "Maria",
        DOB,
        &ciphertext_b64[..24],
    ] {
        assert!(!raw_log.contains(secret), "{secret:?} in the SMS log");
    }
    // The link token is stored only as a hash.
    let token = url.rsplit('/').next().unwrap();
    assert!(!contains(&db, token), "link token stored in plaintext");
    let server_log =
        std::fs::read_to_string(t.data_dir.path().join("server.log")).unwrap_or_default();
    assert!(!server_log.contains(token) && !server_log.contains(SECRET_TEXT));
}

/// Runs `browser/patient_portal.mjs` with `cfg`; returns its steps.
async fn browser(cfg: Value) -> Vec<Value> {
    crate::common::browser::run_script("patient_portal.mjs", cfg, None).await
}

/// What the stand-in provider saw.
#[derive(Default)]
struct Provider {
    requests: Vec<(String, Option<String>, BTreeMap<String, String>)>,
    fail_next: bool,
}

async fn provider_messages(
    State(seen): State<Arc<Mutex<Provider>>>,
    axum::extract::Path(account): axum::extract::Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let form: BTreeMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut p = seen.lock().unwrap();
    p.requests
        .push((account.clone(), auth.clone(), form.clone()));
    use base64::Engine;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC0123456789:provider-secret")
    );
    if account != "AC0123456789"
        || auth.as_deref() != Some(want.as_str())
        || content_type != "application/x-www-form-urlencoded"
        || ["To", "From", "Body", "StatusCallback"]
            .iter()
            .any(|k| !form.contains_key(*k))
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"code": 21602, "message": "bad request shape"})),
        );
    }
    if std::mem::take(&mut p.fail_next) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"code": 20503, "message": "try later"})),
        );
    }
    let sid = format!("SM{:032}", p.requests.len());
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"sid": sid, "status": "queued"})),
    )
}

/// The REST gateway against a stand-in provider: request shape and
/// authentication, a retry after a 503, a signed delivery callback, signed
/// inbound keywords, and unsigned or forged webhooks refused.
async fn http_gateway_against_a_provider_stand_in(backend: Backend) {
    let seen = Arc::new(Mutex::new(Provider {
        fail_next: true,
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            axum::routing::post(provider_messages),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let Some(t) = TestServer::start_with(backend, |c| {
        c.sms.gateway = wardline_core::config::SmsGatewayKind::Http;
        c.sms.api_url = provider.clone();
        c.sms.account_sid = "AC0123456789".into();
        c.sms.auth_token = Some("provider-secret".into());
        c.sms.from = "+15550109999".into();
    })
    .await
    else {
        return;
    };
    let (admin, nurse) = practice(&t).await;
    let org = admin.user.org_id;
    let patient = new_patient(&nurse, "es").await;
    consent(&nurse, patient.id, ConsentScope::Reminders, true).await;
    nurse
        .client
        .send_patient_text(
            patient.id,
            &SendTemplateRequest {
                template: "appointment_reminder".into(),
                params: BTreeMap::from([
                    ("date".into(), "2026-12-01".into()),
                    ("time".into(), "16:00".into()),
                ]),
            },
        )
        .await
        .unwrap();

    // The first attempt meets a 503 and is retried after its back-off.
    let status = |t: &TestServer, nurse: &Actor, id: Uuid| {
        let c = nurse.client.clone();
        let _ = t;
        async move { c.patient_sms(id).await.unwrap().sms.remove(0) }
    };
    for _ in 0..100 {
        if status(&t, &nurse, patient.id).await.attempts == 1
            && status(&t, &nurse, patient.id).await.status == SmsStatus::Queued
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sms = status(&t, &nurse, patient.id).await;
    assert_eq!(
        (sms.status, sms.attempts),
        (SmsStatus::Queued, 1),
        "{sms:?}"
    );
    assert!(sms.error.as_deref().unwrap().contains("503"), "{sms:?}");
    assert_eq!(sms.send_after, t.now() + 30);
    t.clock.advance(31);
    let mut sms = status(&t, &nurse, patient.id).await;
    for _ in 0..100 {
        if sms.status == SmsStatus::Sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        sms = status(&t, &nurse, patient.id).await;
    }
    assert_eq!((sms.status, sms.attempts), (SmsStatus::Sent, 2), "{sms:?}");
    let (to, body, callback, sid) = {
        let p = seen.lock().unwrap();
        assert_eq!(p.requests.len(), 2);
        let form = &p.requests[1].2;
        (
            form["To"].clone(),
            form["Body"].clone(),
            form["StatusCallback"].clone(),
            format!("SM{:032}", 2),
        )
    };
    assert_eq!(to, PHONE);
    assert!(
        body.starts_with("Recordatorio: tiene una cita el 2026-12-01 a las 16:00"),
        "{body}"
    );
    assert_eq!(callback, format!("{}/sms/status/{org}", t.url));

    // The provider reports delivery, signed with the account's token.
    let path = format!("/sms/status/{org}");
    let fields = [("MessageSid", sid.as_str()), ("MessageStatus", "delivered")];
    let forged = signed_post(&t, &path, &fields, "someone-else").await;
    assert_eq!(forged.status(), 403);
    let resp = t
        .http()
        .post(format!("{}{path}", t.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("MessageSid=x&MessageStatus=delivered")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "unsigned");
    assert_eq!(
        signed_post(&t, &path, &fields, "provider-secret")
            .await
            .status(),
        204
    );
    assert_eq!(
        status(&t, &nurse, patient.id).await.status,
        SmsStatus::Delivered
    );
    let unknown = signed_post(
        &t,
        &path,
        &[("MessageSid", "SMnope"), ("MessageStatus", "delivered")],
        "provider-secret",
    )
    .await;
    assert_eq!(unknown.status(), 404);

    // HELP is answered (in Spanish), a plain text joins the thread, and the
    // reply goes through the provider too.
    let inbound = format!("/sms/inbound/{org}");
    let resp = signed_post(
        &t,
        &inbound,
        &[
            ("From", PHONE),
            ("To", "+15550109999"),
            ("Body", "help"),
            ("MessageSid", "SMhelp1"),
        ],
        "provider-secret",
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/xml");
    let resp = signed_post(
        &t,
        &inbound,
        &[
            ("From", PHONE),
            ("To", "+15550109999"),
            ("Body", "Can I bring my daughter?"),
            ("MessageSid", "SMtext1"),
        ],
        "provider-secret",
    )
    .await;
    assert_eq!(resp.status(), 200);
    // The provider retries a webhook it thinks failed: the text joins the thread once.
    let retry = signed_post(
        &t,
        &inbound,
        &[
            ("From", PHONE),
            ("To", "+15550109999"),
            ("Body", "Can I bring my daughter?"),
            ("MessageSid", "SMtext1"),
        ],
        "provider-secret",
    )
    .await;
    assert_eq!(retry.status(), 200);
    for _ in 0..100 {
        if seen.lock().unwrap().requests.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let help = seen.lock().unwrap().requests[2].2["Body"].clone();
    assert!(
        help.starts_with("Mensajes seguros") && help.contains("+1 555 010 2000"),
        "{help}"
    );
    let thread = nurse.client.patient_thread(patient.id).await.unwrap();
    assert_eq!(
        thread.messages.last().unwrap().text,
        "Can I bring my daughter?"
    );
    assert_eq!(thread.messages.last().unwrap().via, "sms");
    let copies = thread
        .messages
        .iter()
        .filter(|m| m.text == "Can I bring my daughter?")
        .count();
    assert_eq!(copies, 1, "a redelivered SMS acts once");
    assert!(!thread.messages.last().unwrap().looks_like_opt_out);
    // Issue 19, case 07: a sentence that asks to stop is not a keyword: it
    // reaches staff, flagged, and the number is not opted out by a guess.
    let resp = signed_post(
        &t,
        &inbound,
        &[
            ("From", PHONE),
            ("To", "+15550109999"),
            ("Body", "please stop texting me"),
            ("MessageSid", "SMlook1"),
        ],
        "provider-secret",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let thread = nurse.client.patient_thread(patient.id).await.unwrap();
    let last = thread.messages.last().unwrap();
    assert!(
        last.text == "please stop texting me" && last.looks_like_opt_out,
        "{last:?}"
    );
    assert!(
        !nurse
            .client
            .patient(patient.id)
            .await
            .unwrap()
            .sms_opted_out
    );
    // Issue 19, case 09 (fixture `realworld/09-status-sequences.tsv`): the
    // provider's callbacks arrive late and out of order, and statuses it
    // documents were refused. Each arrival order is played on a text of its
    // own; the status only moves forward and an error stays with its status.
    let rows = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/realworld/09-status-sequences.tsv"
    ));
    for line in rows
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut cols = line.split('\t');
        let order = cols.next().unwrap();
        let expected = cols.next().unwrap();
        let before = seen.lock().unwrap().requests.len();
        t.clock.advance(1);
        nurse
            .client
            .send_patient_text(
                patient.id,
                &SendTemplateRequest {
                    template: "appointment_reminder".into(),
                    params: BTreeMap::from([
                        ("date".into(), "2026-12-02".into()),
                        ("time".into(), "10:00".into()),
                    ]),
                },
            )
            .await
            .unwrap();
        for _ in 0..200 {
            if seen.lock().unwrap().requests.len() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // The provider's answer (its sid) is stored right after the request.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let this = format!("SM{:032}", before + 1);
        for step in order.split(',') {
            let (st, code) = step.split_once(':').unwrap_or((step, ""));
            let mut fields = vec![("MessageSid", this.as_str()), ("MessageStatus", st)];
            if !code.is_empty() {
                fields.push(("ErrorCode", code));
            }
            assert_eq!(
                signed_post(&t, &path, &fields, "provider-secret")
                    .await
                    .status(),
                204,
                "{order}: {step}"
            );
        }
        let latest = nurse
            .client
            .patient_sms(patient.id)
            .await
            .unwrap()
            .sms
            .into_iter()
            .max_by_key(|s| (s.created_at, s.sent_at))
            .unwrap();
        let got = match &latest.error {
            Some(e) => format!("{} ({e})", latest.status.as_str()),
            None => latest.status.as_str().to_owned(),
        };
        assert!(
            expected.starts_with(&got) || (order == "sent,delivered,read" && got == "delivered"),
            "{order}: got {got}, expected {expected}"
        );
    }
    for st in ["scheduled", "canceled", "partially_delivered", "receiving"] {
        let r = signed_post(
            &t,
            &path,
            &[("MessageSid", sid.as_str()), ("MessageStatus", st)],
            "provider-secret",
        )
        .await;
        assert_eq!(r.status(), 204, "documented status {st}");
    }

    // Issue 19, case 07: an SMS recorded as seen but never acted on (the
    // server stopped between the two steps) is acted on when the provider
    // retries it: the STOP is not lost as a "duplicate".
    use wardline_store::patients::PatientStore;
    let halfway = "SMstop-halfway";
    assert!(
        t.sql
            .claim_inbound(org.into(), halfway, t.now())
            .await
            .unwrap()
    );
    let stop = [
        ("From", PHONE),
        ("To", "+15550109999"),
        ("Body", "Stop"),
        ("MessageSid", halfway),
    ];
    let resp = signed_post(&t, &inbound, &stop, "provider-secret").await;
    assert_eq!(resp.status(), 200);
    let p = nurse.client.patient(patient.id).await.unwrap();
    assert!(p.sms_opted_out, "the retried STOP was acted on");
    // Handled now: a further retry is a duplicate.
    assert!(
        !t.sql
            .claim_inbound(org.into(), halfway, t.now())
            .await
            .unwrap()
    );
}

/// Refusals: bad records, free text into a plain SMS, consent withdrawn,
/// quiet hours, a link locked by failures, an expired and a revoked link.
async fn refusals(backend: Backend) {
    let Some(t) = server(backend, |_| {}).await else {
        return;
    };
    let (admin, nurse) = practice(&t).await;
    let http = t.http();

    // Bad records.
    for (dob, phone, lang) in [
        ("1984-13-01", PHONE, "en"),
        ("2999-01-01", PHONE, "en"),
        (DOB, "555-1234", "en"),
        (DOB, PHONE, "English"),
    ] {
        let err = nurse
            .client
            .create_patient(&CreatePatientRequest {
                name: "X".into(),
                date_of_birth: dob.into(),
                mrn: None,
                phone: phone.into(),
                language: Some(lang.into()),
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(ErrorCode::Validation),
            "{dob} {phone} {lang}"
        );
    }
    let patient = new_patient(&nurse, "en").await;
    let dup = nurse
        .client
        .create_patient(&CreatePatientRequest {
            name: "Someone Else".into(),
            date_of_birth: DOB.into(),
            mrn: patient.mrn.clone(),
            phone: PHONE.into(),
            language: None,
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Some(ErrorCode::Conflict));
    // A clinician of another organisation cannot see the patient.
    let other = t.create_org("elsewhere").await;
    let other_nurse = t.user_with_role(&other, Role::Nurse).await;
    assert_eq!(
        other_nurse
            .client
            .patient(patient.id)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotFound)
    );

    // Free text cannot be approved into a plain-SMS template, nor sent through one.
    let err = admin
        .client
        .put_sms_template(
            "follow_up",
            "en",
            &PutTemplateRequest {
                body: "About your {condition}: call us".into(),
                class: TemplateClass::NoPhi,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Validation));
    consent(&nurse, patient.id, ConsentScope::Reminders, true).await;
    let send = |template: &str, params: &[(&str, &str)]| {
        let req = SendTemplateRequest {
            template: template.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let c = nurse.client.clone();
        let id = patient.id;
        async move { c.send_patient_text(id, &req).await }
    };
    for (template, params) in [
        (
            "appointment_reminder",
            vec![
                ("date", "next Friday, about your HIV test"),
                ("time", "09:30"),
            ],
        ),
        (
            "appointment_reminder",
            vec![("date", "2026-12-01"), ("time", "09:30"), ("note", "x")],
        ),
        ("new_secure_message", vec![]),
        ("no_such_template", vec![]),
    ] {
        let err = send(template, &params).await.unwrap_err();
        assert!(
            matches!(
                err.code(),
                Some(ErrorCode::Validation | ErrorCode::NotFound)
            ),
            "{template} {params:?}: {err}"
        );
    }
    // A `phi` template needs secure-message consent: it never goes plain.
    let err = send(
        "lab_result_available",
        &[("test", "HbA1c"), ("date", "2026-11-20")],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ConsentRequired));
    consent(&nurse, patient.id, ConsentScope::SecureMessages, true).await;
    let out = send(
        "lab_result_available",
        &[("test", "HbA1c"), ("date", "2026-11-20")],
    )
    .await
    .unwrap();
    assert_eq!(out.sms.kind, SmsKind::SecureNotice);
    assert!(out.message_id.is_some());
    let log = t.config.sms_file_path();
    let lines = wait_for_sms(&log, 1).await;
    assert!(!lines[0]["body"].as_str().unwrap().contains("HbA1c"));

    // A secure message is text or client-sealed, never both, never malformed.
    for req in [
        SendSecureMessageRequest::default(),
        SendSecureMessageRequest {
            text: Some("x".into()),
            sealed: Some(ClientSealed {
                ciphertext: B64(vec![1; 64]),
                key_fragment: format!("k={}", "A".repeat(43)),
            }),
        },
        SendSecureMessageRequest {
            text: None,
            sealed: Some(ClientSealed {
                ciphertext: B64(vec![1; 64]),
                key_fragment: "k=tooshort".into(),
            }),
        },
        SendSecureMessageRequest {
            text: None,
            sealed: Some(ClientSealed {
                ciphertext: B64(vec![1; 8]),
                key_fragment: format!("k={}", "A".repeat(43)),
            }),
        },
    ] {
        let err = nurse
            .client
            .send_patient_message(patient.id, &req)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Validation), "{req:?}");
    }

    // Withdrawn consent is honoured at once.
    consent(&nurse, patient.id, ConsentScope::Reminders, false).await;
    let err = send(
        "appointment_reminder",
        &[("date", "2026-12-01"), ("time", "09:30")],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ConsentRequired));
    consent(&nurse, patient.id, ConsentScope::Reminders, true).await;

    // Quiet hours: a reminder written now waits for their end.
    let hour = (t.now() / 3600) % 24;
    let mut policy = admin.client.policy().await.unwrap();
    policy.patients.quiet_hours = Some(QuietHours {
        start: format!("{hour:02}:00"),
        end: format!("{:02}:00", (hour + 2) % 24),
        time_zone: "UTC".into(),
    });
    admin.client.set_policy(&policy).await.unwrap();
    let out = send(
        "appointment_reminder",
        &[("date", "2026-12-01"), ("time", "09:30")],
    )
    .await
    .unwrap();
    assert_eq!(out.sms.status, SmsStatus::Queued);
    let wait = out.sms.send_after - t.now();
    assert!((3600..=7200).contains(&wait), "waits {wait}s");
    policy.patients.quiet_hours = Some(QuietHours {
        start: "25:00".into(),
        end: "08:00".into(),
        time_zone: "UTC".into(),
    });
    assert_eq!(
        admin.client.set_policy(&policy).await.unwrap_err().code(),
        Some(ErrorCode::Validation)
    );
    policy.patients.quiet_hours = None;
    admin.client.set_policy(&policy).await.unwrap();

    let url = link_in(&lines[0]);
    // A mistyped code can be typed again on the same form.
    let code_url = url.clone();
    let page = http
        .post(format!("{code_url}/verify"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("dob={DOB}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let challenge = page
        .split("name=\"challenge\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let lines = wait_for_sms(&log, 2).await;
    let code: String = lines[1]["body"]
        .as_str()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    // Not following the redirect, to see it and its cookie.
    let no_redirect = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&t.ca_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post_code = |code: String| {
        let (http, url, challenge) = (no_redirect.clone(), code_url.clone(), challenge.clone());
        async move {
            http.post(format!("{url}/code"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("challenge={challenge}&code={code}"))
                .send()
                .await
                .unwrap()
        }
    };
    let resp = post_code(wrong.into()).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("name=\"code\""));
    let resp = post_code(code).await;
    assert_eq!(resp.status(), 303, "the right code after a wrong one");
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );

    // A link locks after the policy's number of failures (5): one is spent above.
    let verify = |dob: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.post(format!("{url}/verify"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("dob={dob}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for _ in 0..3 {
        assert_eq!(verify("1999-01-01").await, 401);
    }
    assert_eq!(verify("1999-01-01").await, 403, "fifth failure locks");
    assert_eq!(verify(DOB).await, 403, "even the right answer, once locked");
    assert_eq!(http.get(&url).send().await.unwrap().status(), 403);
    // Issue 18, item 7: the refusals of the locked link are recorded with
    // its organisation, link and patient, so they are in the patient's
    // access report (they were recorded with none of them).
    let org = admin.user.org_id;
    let report = t
        .state
        .audit_reader
        .access_report(org.into(), &patient.id.to_string(), None, None)
        .await
        .unwrap();
    let refused: Vec<_> = report
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.action,
                AuditAction::PortalOpen | AuditAction::PortalVerify
            ) && e.outcome != Outcome::Success
        })
        .collect();
    assert!(refused.len() >= 3, "{:?}", report.events);
    assert!(
        refused
            .iter()
            .all(|e| e.org_id == Some(org) && e.target_type.as_deref() == Some("link")),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|e| e.action == AuditAction::PortalOpen),
        "the locked link's GET: {refused:?}"
    );

    // A fresh link expires with the policy (24 h), and revocation ends it at once.
    nurse
        .client
        .send_patient_message(
            patient.id,
            &SendSecureMessageRequest {
                text: Some("Please call us.".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let lines = wait_for_sms(&log, 3).await;
    let second = link_in(&lines[2]);
    assert_eq!(http.get(&second).send().await.unwrap().status(), 200);
    // Both open links: the locked one and this one.
    assert_eq!(
        nurse
            .client
            .revoke_patient_links(patient.id)
            .await
            .unwrap()
            .revoked,
        2
    );
    let page = http.get(&second).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.text().await.unwrap().contains("no longer valid"));
    nurse
        .client
        .send_patient_message(
            patient.id,
            &SendSecureMessageRequest {
                text: Some("Again.".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let lines = wait_for_sms(&log, 4).await;
    let third = link_in(&lines[3]);
    t.clock.advance(24 * 3600 + 1);
    assert_eq!(http.get(&third).send().await.unwrap().status(), 404);

    // Malformed portal and webhook input is a 4xx, never a 5xx.
    let base = format!("{}/p/{}", t.url, "A".repeat(43));
    for (path, body, ct) in [
        (
            "/verify",
            "dob=1984-03-07",
            "application/x-www-form-urlencoded",
        ),
        ("/code", "%%%", "application/x-www-form-urlencoded"),
        ("/reply", "{\"text\":1}", "application/json"),
    ] {
        let s = http
            .post(format!("{base}{path}"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert!(s.is_client_error(), "{path}: {s}");
    }
    let s = http
        .post(format!("{}/sms/inbound/not-a-uuid", t.url))
        .send()
        .await
        .unwrap()
        .status();
    assert!(s.is_client_error(), "{s}");
}

/// One burst of form posts, each on its own HTTP/1.1 connection, all sent at
/// once: the statuses.
async fn burst(t: &TestServer, url: &str, bodies: Vec<String>) -> Vec<u16> {
    let clients: Vec<reqwest::Client> = (0..bodies.len())
        .map(|_| {
            reqwest::Client::builder()
                .tls_certs_only(reqwest::Certificate::from_pem_bundle(&t.ca_pem).unwrap())
                .http1_only()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
        })
        .collect();
    // Connect every client first (a GET of the link), so the posts race.
    for c in &clients {
        c.get(url.rsplit_once('/').unwrap().0).send().await.unwrap();
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(bodies)
        .map(|(c, body)| {
            let (barrier, url) = (barrier.clone(), url.to_owned());
            tokio::spawn(async move {
                barrier.wait().await;
                c.post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn link_failures(t: &TestServer) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&t.config.database_url())
        .await
        .unwrap();
    let row = sqlx::query("SELECT MAX(failures) AS f FROM secure_links")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::Row::try_get(&row, "f").unwrap()
}

/// H2 of the 2026-11-30 findings: 50–150 concurrent date-of-birth guesses
/// were all evaluated (the link locks after 5) and the right one answered
/// 200, disclosing the date of birth. Now each guess takes its attempt
/// before it is compared, in one statement with the lock check.
async fn parallel_guesses_stop_at_the_lock(backend: Backend) {
    let Some(t) = server(backend, |_| {}).await else {
        return;
    };
    let (_, nurse) = practice(&t).await;
    let patient = new_patient(&nurse, "en").await;
    consent(&nurse, patient.id, ConsentScope::SecureMessages, true).await;
    let message = SendSecureMessageRequest {
        text: Some("Your result is ready.".into()),
        ..Default::default()
    };
    let send = || nurse.client.send_patient_message(patient.id, &message);
    send().await.unwrap();
    let log = t.config.sms_file_path();
    let url = link_in(&wait_for_sms(&log, 1).await[0]);

    // 100 wrong dates of birth at once: at most the limit is evaluated.
    let statuses = burst(
        &t,
        &format!("{url}/verify"),
        (0..100)
            .map(|i| format!("dob=1950-01-{:02}", i % 28 + 1))
            .collect(),
    )
    .await;
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        wrong <= 4,
        "{wrong} wrong guesses answered as such: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 403].contains(s)),
        "{statuses:?}"
    );
    assert!(
        link_failures(&t).await <= 5,
        "failures counted past the lock"
    );
    let resp = t
        .http()
        .post(format!("{url}/verify"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("dob={DOB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "the right date after the lock");

    // A fresh link, the right date once, then a burst of wrong codes on the
    // same challenge: the same count, the same lock.
    send().await.unwrap();
    let url = link_in(&wait_for_sms(&log, 2).await[1]);
    let page = t
        .http()
        .post(format!("{url}/verify"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("dob={DOB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let challenge = page
        .split("name=\"challenge\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let lines = wait_for_sms(&log, 3).await;
    let code: String = lines[2]["body"]
        .as_str()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    let statuses = burst(
        &t,
        &format!("{url}/code"),
        (0..60)
            .map(|i| {
                format!(
                    "challenge={challenge}&code={:06}",
                    (code.parse::<u32>().unwrap() + 1 + i) % 1_000_000
                )
            })
            .collect(),
    )
    .await;
    assert!(!statuses.contains(&303), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 401).count() <= 4,
        "{statuses:?}"
    );
    assert!(link_failures(&t).await <= 5);
    // Locked: the right code opens nothing.
    let resp = burst(
        &t,
        &format!("{url}/code"),
        vec![format!("challenge={challenge}&code={code}")],
    )
    .await;
    assert_eq!(resp, vec![403]);

    // The right date of birth five times at once texts one code, not five
    // (each is a paid SMS to the patient; the resend limit was read, then set).
    send().await.unwrap();
    let url = link_in(&wait_for_sms(&log, 4).await[3]);
    let statuses = burst(&t, &format!("{url}/verify"), vec![format!("dob={DOB}"); 5]).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sms_log(&log).len(), 5, "one code texted");
}

/// Issue 18, item 8: who reads what a patient is told (a covering colleague,
/// or only the writer) is the organisation's choice, shown on the patient
/// and held by the server.
async fn secure_message_readers_are_the_organisations_choice(backend: Backend) {
    let Some(t) = server(backend, |_| {}).await else {
        return;
    };
    let (admin, nurse) = practice(&t).await;
    let patient = new_patient(&nurse, "en").await;
    consent(&nurse, patient.id, ConsentScope::SecureMessages, true).await;
    // Issue 18, item 8: who reads what a patient is told is the
    // organisation's choice, shown on the patient and held by the server.
    let sealed = || SendSecureMessageRequest {
        text: None,
        sealed: Some(ClientSealed {
            ciphertext: B64(vec![1; 64]),
            key_fragment: format!("k={}", "A".repeat(43)),
        }),
    };
    let text = || SendSecureMessageRequest {
        text: Some("Your appointment moved to Friday.".into()),
        sealed: None,
    };
    assert_eq!(
        nurse
            .client
            .patient(patient.id)
            .await
            .unwrap()
            .secure_messages,
        SecureMessageReaders::WriterChooses
    );
    for (readers, refused, allowed) in [
        (SecureMessageReaders::Team, sealed(), text()),
        (SecureMessageReaders::Writer, text(), sealed()),
    ] {
        admin
            .client
            .patch_policy(&serde_json::json!({"patients": {"secure_messages": readers}}))
            .await
            .unwrap();
        assert_eq!(
            nurse
                .client
                .patient(patient.id)
                .await
                .unwrap()
                .secure_messages,
            readers
        );
        let err = nurse
            .client
            .send_patient_message(patient.id, &refused)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Validation), "{readers:?}");
        assert!(err.to_string().contains("secure_messages"), "{err}");
        nurse
            .client
            .send_patient_message(patient.id, &allowed)
            .await
            .unwrap();
    }
    admin
        .client
        .patch_policy(&serde_json::json!({"patients": {"secure_messages": null}}))
        .await
        .unwrap();
}

/// Issue 18, item 8: a patient's reply is told to the staff who wrote to
/// them — live on their sync socket and listed until they open the thread —
/// and to nobody else (it notified nobody: staff had to poll the threads).
async fn a_patient_reply_is_told_to_those_who_wrote(backend: Backend) {
    let Some(t) = server(backend, |_| {}).await else {
        return;
    };
    let (admin, nurse) = practice(&t).await;
    let colleague = t.user_with_role(&admin, Role::Nurse).await;
    let org = admin.user.org_id;
    let patient = new_patient(&nurse, "en").await;
    consent(&nurse, patient.id, ConsentScope::SecureMessages, true).await;
    nurse
        .client
        .send_patient_message(
            patient.id,
            &SendSecureMessageRequest {
                text: Some("Your results are in; please call us.".into()),
                sealed: None,
            },
        )
        .await
        .unwrap();
    let devices = crate::common::Devices::new();
    let mut chat = devices.of(&nurse, "nurse station").await;
    let mut told = None;
    let watching = chat.watch(|e| match e {
        wardline_client::core::Event::Notice { notice } => {
            told = Some(notice.clone());
            false
        }
        _ => true,
    });
    let replying = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            texts_from(&t, org, "Can I come at 3?").await.status(),
            StatusCode::OK
        );
    };
    let (watched, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(20), watching),
        replying
    );
    watched.expect("the notice within 20 s").unwrap();
    let told = told.unwrap();
    assert_eq!(
        (told.kind, told.patient_id),
        (StaffNoticeKind::PatientReply, patient.id)
    );
    let listed = nurse.client.notices().await.unwrap().notices;
    assert_eq!(listed, vec![told]);
    assert!(colleague.client.notices().await.unwrap().notices.is_empty());
    // Opening the thread is seeing it.
    nurse.client.patient_thread(patient.id).await.unwrap();
    assert!(nurse.client.notices().await.unwrap().notices.is_empty());
    assert!(
        audit_actions(&t)
            .await
            .iter()
            .any(|(a, o, _, _)| a == "staff.notices.list" && o == "success")
    );
}

/// Issue 22, item 8: patient texting from the web app
/// (`tests/browser/patient_threads.mjs`): a secure message sealed in the
/// nurse's browser (the server never holds its text; her browser reads it
/// back with the key it kept) and one readable by the team, each a text
/// with a link and nothing else; the patient's answer by SMS is told to her
/// at once across the top of her screen and read in the thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_texts_a_patient_from_the_web_app() {
    if !crate::common::browser::browser_available() || !crate::web_app::web_app_built() {
        return;
    }
    let t = server(Backend::Sqlite, |_| {}).await.unwrap();
    let (admin, nurse) = practice(&t).await;
    let org = admin.user.org_id;
    let log = t.config.sms_file_path();
    let patient = new_patient(&nurse, "en").await;
    consent(&nurse, patient.id, ConsentScope::SecureMessages, true).await;
    consent(&nurse, patient.id, ConsentScope::Reminders, true).await;
    t.next_totp_step();
    let team_text = "Your appointment moved to Friday 10:00; bring your inhaler";
    let reply = "Can I come at 3 instead?";
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let mut live = crate::common::browser::Live::start(
        "patient_threads.mjs",
        serde_json::json!({
            "url": format!("{}/", t.url),
            "org": "clinic",
            "password": crate::common::PASSWORD,
            "pin": "4711 heron",
            "screenshots": screenshots,
            "patient": patient.name,
            "sealedText": SEALED_TEXT,
            "teamText": team_text,
            "reply": reply,
            "nurse": { "email": nurse.user.email, "codes": [t.totp_code(&nurse.totp_secret)] },
        }),
        Some(&t.ca_pem),
    );
    let sent = live.step("sent").await;
    let shown = sent["thread"].as_str().unwrap();
    assert!(
        shown.contains(SEALED_TEXT) && shown.contains(team_text),
        "{sent}"
    );
    // Two texts, each a notice with a link, neither with the message.
    let sms = wait_for_sms(&log, 2).await;
    for s in &sms[..2] {
        let body = s["body"].as_str().unwrap();
        assert!(!body.contains("TSH") && !body.contains("inhaler"), "{body}");
        assert!(link_in(s).starts_with("https://"), "{body}");
    }
    // The server holds the team's message readable, the sealed one not at all.
    let thread = nurse.client.patient_thread(patient.id).await.unwrap();
    let sealed = thread
        .messages
        .iter()
        .find(|m| m.sealed.is_some())
        .expect("the browser sealed one");
    assert!(sealed.text.is_empty());
    assert!(thread.messages.iter().any(|m| m.text == team_text));
    assert!(!contains(&database_bytes(&t).await, "levothyroxine"));

    // The patient answers by SMS.
    assert_eq!(texts_from(&t, org, reply).await.status(), StatusCode::OK);
    live.signal("replied");
    let r = live.step("reply").await;
    assert!(
        r["told"]
            .as_str()
            .unwrap()
            .contains(&format!("{} replied", patient.name)),
        "{r}"
    );
    assert!(r["listed"].as_str().unwrap().contains("1 unread"), "{r}");
    assert!(r["thread"].as_str().unwrap().contains(reply), "{r}");
    assert!(nurse.client.notices().await.unwrap().notices.is_empty());
    // The reminder, from its template, with the values typed in the form.
    let step = live.step("template").await;
    assert!(step["status"].as_str().unwrap().len() > 1, "{step}");
    let sms = wait_for_sms(&log, 3).await;
    let reminder = sms[2]["body"].as_str().unwrap();
    assert!(reminder.contains("09:30"), "{reminder}");
    live.finish().await;
}

both_backends!(
    a_patient_reply_is_told_to_those_who_wrote,
    secure_message_readers_are_the_organisations_choice,
    patient_texting_end_to_end,
    http_gateway_against_a_provider_stand_in,
    refusals,
    parallel_guesses_stop_at_the_lock,
);

/// The demo organisation (`serve --demo`) texts at once: no quiet hours, and a
/// practice line for the HELP reply and reminders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_organisation_is_ready_for_patient_texting() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    wardline_server::demo::ensure_demo(&t.state, t.data_dir.path())
        .await
        .unwrap();
    let org = t.state.directory.org_by_slug("demo").await.unwrap();
    assert_eq!(org.policy.patients.quiet_hours, None);
    assert!(!org.policy.patients.practice_phone.is_empty());
    // Issue 18, item 6: every demo user has a mobile, so the README's
    // escalation SMS step happens in the demo.
    let users = t.state.directory.list(org.id).await.unwrap();
    assert!(!users.is_empty());
    for u in &users {
        let phone = u.phone.as_deref().unwrap_or_default();
        assert!(phone.starts_with("+1555010"), "{}: {phone:?}", u.email);
    }
}
