//! The clinicians' web app in Chromium, as a nurse uses it
//! (`tests/browser/web_app.mjs`): served by the server at `/` under its CSP,
//! sign-in with password and second factor, who is signed in, sign-out,
//! a newcomer's second-factor enrolment by QR code —
//! every screen checked by axe-core, screenshots in `target/screenshots/`.
//! The app must be built (`cargo xtask web`, which `cargo xtask test` runs);
//! outside CI a machine without it, Chromium or playwright-core skips.

use std::path::Path;

use uuid::Uuid;
use wardline_client::core::MessageContent;
use wardline_proto::Role;
use wardline_proto::auth::{LoginRequest, LoginStep};
use wardline_proto::directory::CreateUserRequest;
use wardline_proto::messaging::Priority;

use crate::common::browser::{self, browser_available, run_script};
use crate::common::*;

/// What the server logs while the test runs (JSON lines, as `wardline serve`
/// writes them, at debug for Wardline's own crates), kept to be searched for
/// what must never be logged. `None` when another subscriber was installed
/// first (a test runner sharing one process).
fn capture_log() -> Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> {
    #[derive(Clone)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Sink(kept.clone());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,wardline_server=debug,wardline_core=debug,wardline_store_sql=debug",
        ))
        .with_writer(move || sink.clone())
        .try_init()
        .ok()
        .map(|_| kept)
}

pub(crate) fn web_app_built() -> bool {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../web/dist/index.html")
        .exists();
    if !built && std::env::var_os("CI").is_some() {
        panic!("CI must test the web app: build it first (cargo xtask web)");
    }
    if !built {
        eprintln!("skipping: web/dist is not built (cargo xtask web)");
    }
    built
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_signs_in_and_out_of_the_web_app() {
    if !browser_available() || !web_app_built() {
        return;
    }
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let sessions_before = admin.client.list_sessions(nurse.user.id).await.unwrap();
    // A code of a step the nurse's enrolment did not use (no replay).
    t.next_totp_step();
    let code = t.totp_code(&nurse.totp_secret);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    // A colleague who has not enrolled a second factor yet.
    let newcomer = admin
        .client
        .create_user(&CreateUserRequest {
            email: "new.nurse@alpha.test".into(),
            display_name: "Noor Newcomer".into(),
            phone: None,
            roles: vec![Role::Nurse],
            password: PASSWORD.into(),
            password_change_required: false,
        })
        .await
        .unwrap();
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let steps = run_script(
        "web_app.mjs",
        serde_json::json!({
            "url": format!("{}/", t.url),
            "org": "alpha",
            "email": nurse.user.email,
            "password": PASSWORD,
            "wrongCode": wrong,
            "code": code,
            "displayName": nurse.user.display_name,
            "screenshots": screenshots,
            "newcomer": {
                "email": newcomer.email,
                "displayName": newcomer.display_name,
                // The server's (manual) clock: the authenticator's time.
                "totpAt": t.now(),
            },
        }),
        Some(&t.ca_pem),
    )
    .await;
    let step = |name: &str| browser::step(&steps, name);
    assert_eq!(step("opened")["title"], "Sign in · Wardline");
    for s in ["opened", "password", "signed_in", "signed_out"] {
        assert_eq!(
            step(s)["focused"],
            "H1",
            "{s}: the screen's heading has focus"
        );
    }
    let alert = step("wrong_code")["alert"].as_str().unwrap().to_owned();
    assert!(alert.contains("code"), "{alert}");
    // Signing out ended the browser's session on the server.
    let sessions_after = admin.client.list_sessions(nurse.user.id).await.unwrap();
    assert_eq!(
        sessions_after.len(),
        sessions_before.len(),
        "{sessions_after:?}"
    );

    // The QR code is what authenticator apps expect (Key Uri Format: TOTP,
    // SHA-1, 6 digits, 30 s, issuer and account named), and what it holds
    // is the secret the server enrolled: the app's next code signs in. A
    // recovery code shown in the browser signs in too.
    let enrolled = step("enrolled");
    assert_eq!(enrolled["focused"], serde_json::json!(["H1", "H1"]));
    let uri = enrolled["uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert_eq!(enrolled["issuer"], "Wardline (Org alpha)", "{uri}");
    assert_eq!(enrolled["label"], newcomer.email.as_str(), "{uri}");
    assert_eq!(enrolled["algorithm"], "SHA1");
    assert_eq!(enrolled["digits"], 6);
    assert_eq!(enrolled["period"], 30);
    let recovery: Vec<String> = serde_json::from_value(enrolled["recovery"].clone()).unwrap();
    assert_eq!(recovery.len(), 10, "{recovery:?}");
    step("newcomer_signed_in");
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap()
        .to_owned();
    let login = LoginRequest {
        org: "alpha".into(),
        email: newcomer.email.clone(),
        password: PASSWORD.into(),
        device_id: Uuid::new_v4(),
        device_token: None,
    };
    let c = t.client();
    t.next_totp_step();
    let challenge = c.login(&login).await.unwrap();
    assert_eq!(challenge.step, LoginStep::MfaRequired);
    c.verify_mfa(
        challenge.mfa_token.as_deref().unwrap(),
        &t.totp_code(&secret),
    )
    .await
    .expect("the QR code's secret is the enrolled one");
    let challenge = c.login(&login).await.unwrap();
    c.verify_mfa(challenge.mfa_token.as_deref().unwrap(), &recovery[0])
        .await
        .expect("a recovery code shown in the browser signs in");
}

/// What the browsers send, in order.
fn texts_sent() -> [&'static str; 7] {
    [
        "BP 86/50 in bed 4 after the second dose, please review",
        "Coming now, hold the next dose",
        // Written by the physician while the network was gone.
        "Written offline: fluids at 125 mL/h",
        "Written offline: recheck BP in 15 min",
        "Lactate back at 3.9, repeat ordered",
        "Thanks, start the second bag",
        // After the physician left the conversation.
        "Handover to night team at 19:00",
    ]
}

/// Issue 21: a nurse and a physician chat end-to-end encrypted, each in
/// their own browser (`tests/browser/chat.mjs`): device set-up with a PIN,
/// a patient thread with an urgent message delivered live, a forward into
/// another group (refused once the organisation turns forwarding off), a
/// reload that needs only the PIN (a wrong one opens nothing), messages
/// written offline that go in order once the network is back, a second tab that takes the
/// device over without forking its group, a wipe that erases the browser's
/// store. Neither the browsers' IndexedDB nor the server's database holds
/// any of the messages' text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_and_a_physician_chat_in_their_browsers() {
    if !browser_available() || !web_app_built() {
        return;
    }
    let log = capture_log();
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let physician = t.user_with_role(&admin, Role::Physician).await;
    // The third member uses the command line (the client SDK that `wardline
    // chat` runs): it answers the nurse's first message, and must read
    // everything the browsers send.
    let assistant = t.user_with_role(&admin, Role::MedicalAssistant).await;
    let devices = Devices::new();
    let mut cli = devices.of(&assistant, "Terminal on the ward").await;
    let cli_reply = "Seen from the terminal, bringing the monitor";
    let cli_task = {
        let first = texts_sent()[0];
        tokio::spawn(async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            let mut replied = false;
            while std::time::Instant::now() < deadline {
                cli.sync().await.unwrap();
                let convs: Vec<Uuid> = cli.core.conversations.keys().copied().collect();
                for conv in convs {
                    let seen = texts(&cli, conv);
                    if !replied && seen.iter().any(|t| t == first) {
                        cli.send(conv, MessageContent::text(cli_reply), Priority::Routine)
                            .await
                            .unwrap();
                        replied = true;
                    }
                    // The browsers' texts, the voice clip (no text) and its own reply.
                    if seen.len() > texts_sent().len() + 1 {
                        return (cli, conv);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            panic!("the command-line member did not get every message");
        })
    };
    t.next_totp_step();
    let codes = |secret: &str| {
        serde_json::json!([t.totp_code(secret), t.totp_code_at(secret, t.now() + 30)])
    };
    let sent = texts_sent();
    // Sent with the first message: a PDF, and a photo whose camera wrote
    // this into its EXIF block.
    let pdf = "%PDF-1.4\n% Lab result for MRN-0042: lactate 3.9 mmol/L (repeat ordered)\n%%EOF\n";
    let exif_marker = "WardlineTestCam-7Q";
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let steps = run_script(
        "chat.mjs",
        serde_json::json!({
            "url": format!("{}/", t.url),
            "org": "alpha",
            "password": PASSWORD,
            "pin": "4711 heron",
            "wrongPin": "4712 heron",
            "patientRef": "MRN-0042",
            "texts": sent,
            "pdf": pdf,
            "exifMarker": exif_marker,
            "screenshots": screenshots,
            "adminToken": admin.client.token().unwrap(),
            // The organisation's lock_after_idle_secs (the default policy's).
            "idleSecs": wardline_proto::lifecycle::DevicePolicy::default().lock_after_idle_secs,
            "cli": { "name": assistant.user.display_name, "reply": cli_reply },
            // Added to the conversation and taken out again.
            "extra": { "name": admin.user.display_name },
            "nurse": {
                "email": nurse.user.email,
                "name": nurse.user.display_name,
                "codes": codes(&nurse.totp_secret),
            },
            "physician": {
                "email": physician.user.email,
                "name": physician.user.display_name,
                "codes": codes(&physician.totp_secret),
            },
        }),
        Some(&t.ca_pem),
    )
    .await;
    let step = |name: &str| browser::step(&steps, name);
    let received = step("physician_received");
    let listed = received["listed"].as_str().unwrap();
    assert!(listed.contains("Urgent"), "{listed}");
    assert!(listed.contains("MRN-0042"), "{listed}");
    assert!(received["shown"].as_str().unwrap().contains(sent[0]));
    // Encrypted in one browser, opened in the other: the PDF as it was, the
    // photo shown and saved without its EXIF block (camera, place).
    let a = step("attachments");
    assert!(a["photoShown"].as_u64().unwrap() > 0, "{a}");
    assert_eq!(a["pdfSame"], true, "{a}");
    assert_eq!(a["photoIsJpeg"], true, "{a}");
    assert_eq!(a["photoKeepsMarker"], false, "{a}");
    assert_eq!(a["photoKeepsGps"], false, "{a}");
    assert_eq!(a["photoHasExif"], false, "{a}");
    // The physician's answer is a reply to the urgent message: said while
    // writing it, quoted where it arrives, and in what the terminal got.
    let reply = step("nurse_received");
    assert!(
        reply["replying"]
            .as_str()
            .unwrap()
            .starts_with("Replying to Test nurse: BP 86/50"),
        "{reply}"
    );
    assert!(
        reply["quoted"]
            .as_str()
            .unwrap()
            .starts_with("In reply to you: BP 86/50"),
        "{reply}"
    );
    let voice = step("voice_clip");
    assert_eq!(voice["playable"], true, "{voice}");
    // Forwarded with its photo (uploaded again, opened in the other group),
    // saying who wrote it; refused by the worker once the policy says so,
    // and no longer offered after a reload.
    let forwarded = step("forwarded");
    assert!(
        forwarded["forwardedLine"]
            .as_str()
            .unwrap()
            .starts_with("Forwarded from patient MRN-0042's thread · written by you"),
        "{forwarded}"
    );
    assert!(
        forwarded["forwardWarning"].as_str().unwrap().starts_with(
            "This message is about patient MRN-0042; Wound clinic is not that patient's thread."
        ),
        "{forwarded}"
    );
    assert!(
        forwarded["forwardedPhoto"].as_u64().unwrap() > 0,
        "{forwarded}"
    );
    assert!(
        forwarded["forwardRefused"]
            .as_str()
            .unwrap()
            .contains("does not allow forwarding"),
        "{forwarded}"
    );
    // Over the size limit, or of a type the organisation does not take:
    // refused with the file's name and the reason, nothing sent, the text
    // kept for another try.
    let refused = step("attachments_refused");
    assert_eq!(
        refused["tooLarge"],
        "Too large to send (consent-scan.pdf): attachments may be at most 65536 bytes (organisation policy).",
        "{refused}"
    );
    assert_eq!(
        refused["typeRefused"],
        "Your organisation does not allow text/plain attachments (handover.txt).",
        "{refused}"
    );
    assert_eq!(
        refused["keptTyped"], "Consent form scan attached",
        "{refused}"
    );
    assert_eq!(refused["sentAnyway"], 0, "{refused}");
    let reloaded = step("reloaded");
    assert!(
        reloaded["wrongPin"].as_str().unwrap().contains("PIN"),
        "{reloaded}"
    );
    assert!(reloaded["history"].as_str().unwrap().contains(sent[0]));
    assert_eq!(reloaded["forwardOffered"], 0, "{reloaded}");
    let offline = step("offline");
    assert!(
        offline["offlineNote"]
            .as_str()
            .unwrap()
            .starts_with("Offline: showing this browser's copy"),
        "{offline}"
    );
    assert_eq!(offline["inOrder"], true, "{offline}");
    assert!(
        step("second_tab")["first_tab"]
            .as_str()
            .unwrap()
            .contains("Open in another tab")
    );

    // The nurse's browser registered itself as a device, named for what it is.
    let devices = admin
        .client
        .user_devices(nurse.user.id)
        .await
        .unwrap()
        .devices;
    assert!(
        devices.iter().any(|d| d.name == "Chrome on Linux"),
        "{devices:?}"
    );

    // Browser ↔ command line, both ways: the terminal read every message the
    // browsers sent (and its own reply), in order.
    let (cli, conv) = cli_task.await.unwrap();
    // The voice clip, after the physician's answer, has no text.
    let mut expected: Vec<&str> = vec![sent[0], cli_reply, sent[1], ""];
    expected.extend(&sent[2..]);
    assert_eq!(texts(&cli, conv), expected);
    // … and opened the browser's attachments with the keys in the message.
    let first = cli.core.conversations[&conv]
        .messages
        .iter()
        .find(|m| m.content.text == sent[0])
        .unwrap()
        .clone();
    let clip = &cli.core.conversations[&conv].messages[3]
        .content
        .attachments;
    assert!(
        clip.len() == 1
            && clip[0].kind == wardline_client::core::AttachmentKind::Voice
            && clip[0].mime.starts_with("audio/")
            && clip[0].name == voice["clipName"].as_str().unwrap(),
        "{clip:?}"
    );
    let answer = cli.core.conversations[&conv]
        .messages
        .iter()
        .find(|m| m.content.text == sent[1])
        .unwrap();
    assert_eq!(answer.content.reply_to, Some(first.id));
    let names: Vec<&str> = first
        .content
        .attachments
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["wound.jpg", "lab-result.pdf"]);
    for a in &first.content.attachments {
        let sealed = cli.api.download_attachment(conv, a.id).await.unwrap();
        assert!(!contains(&sealed, "Lab result"), "uploaded in the clear");
        let opened =
            wardline_client::core::content::open_attachment(&sealed, &a.key).expect("opens");
        assert_eq!(opened.len() as u64, a.size);
        if a.name == "lab-result.pdf" {
            assert_eq!(opened, pdf.as_bytes());
            assert_eq!(a.mime, "application/pdf");
        } else {
            assert!(!contains(&opened, exif_marker), "EXIF left in the photo");
            assert_eq!(a.mime, "image/jpeg");
        }
    }

    // Read receipts mean "shown": the physician's browser showed the urgent
    // message, the terminal stored it but never showed it. The nurse's
    // browser said so before and after the physician opened it.
    let receipts = step("receipts");
    let (before, after) = (
        receipts["beforeRead"].as_str().unwrap(),
        receipts["afterRead"].as_str().unwrap(),
    );
    let (doctor, terminal) = (
        physician.user.display_name.as_str(),
        assistant.user.display_name.as_str(),
    );
    assert!(!before.contains("Read by"), "{receipts}");
    assert!(after.contains(&format!("Read by {doctor}")), "{receipts}");
    assert!(
        after.contains(&format!("Delivered to {terminal}")),
        "{receipts}"
    );
    let by_device = receipts["byDevice"].as_str().unwrap();
    assert!(
        by_device.contains(doctor) && by_device.contains(", read "),
        "{receipts}"
    );
    let urgent = cli.core.conversations[&conv]
        .messages
        .iter()
        .find(|m| m.content.text == sent[0])
        .unwrap()
        .id;
    let server = nurse.client.receipts(conv, urgent).await.unwrap();
    let of = |u: Uuid| server.receipts.iter().find(|r| r.user_id == u).unwrap();
    assert!(of(physician.user.id).read_at.is_some(), "{server:?}");
    let cli_device = of(assistant.user.id);
    assert!(
        cli_device.delivered_at.is_some() && cli_device.read_at.is_none(),
        "{server:?}"
    );

    let locked = step("idle_locked");
    assert!(
        locked["photoUrl"].as_str().unwrap().starts_with("blob:"),
        "{locked}"
    );
    assert_eq!(
        locked["photoAfterLock"], "gone",
        "a decrypted photo outlived the lock: {locked}"
    );

    // The physician left: the server has them out, their browser no longer
    // offers to write there, and what the nurse sent afterwards never
    // reached it.
    let members = step("members");
    assert_eq!(members["composerLeft"], 0, "{members}");
    assert!(
        !members["physicianAfter"]
            .as_str()
            .unwrap()
            .contains(sent[6]),
        "{members}"
    );
    let now = nurse.client.conversation(conv).await.unwrap();
    assert!(!now.members.contains(&physician.user.id), "{now:?}");
    assert!(
        now.devices.iter().all(|d| d.user_id != physician.user.id),
        "the physician's browser was committed out of the group: {now:?}"
    );

    // A device added later is news to the nurse's open tab (not the other
    // way round).
    let told = step("new_device");
    assert!(
        told["newDevice"]
            .as_str()
            .unwrap()
            .starts_with("A new device was added to your account: Chrome on Linux."),
        "{told}"
    );
    assert_eq!(told["toldTheNewOne"], 0, "{told}");

    // Wiped: the store is gone, the person told why.
    let wiped = step("wiped");
    assert_eq!(wiped["left"], "", "{wiped}");
    assert!(
        wiped["notice"].as_str().unwrap().contains("wiped"),
        "{wiped}"
    );
    // … and told the server it did.
    let wipes = admin.client.device_wipes().await.unwrap().wipes;
    assert!(
        wipes.len() == 1 && wipes[0].confirmed_at.is_some(),
        "{wipes:?}"
    );

    // No message text at rest: not in either browser's store, not on the server.
    let stored = step("indexeddb");
    let db = database_bytes(&t).await;
    for text in sent {
        for who in ["nurse", "physician"] {
            let kept = stored[who].as_str().unwrap();
            assert!(!kept.is_empty(), "{who} stored nothing");
            assert!(!kept.contains(text), "{who}'s IndexedDB holds {text:?}");
        }
        assert!(!contains(&db, text), "the server's database holds {text:?}");
    }
    assert!(
        !contains(&db, "Lab result"),
        "the server's database holds the PDF"
    );
    // … nor in the server's log, with the patient reference, the PIN and
    // the file names (the log has ids and route templates, never content).
    if let Some(log) = log {
        let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        assert!(
            log.contains("/api/v1/conversations/{id}/messages"),
            "the log was not captured: {} bytes",
            log.len()
        );
        let mut secret: Vec<&str> = sent.to_vec();
        secret.extend([
            "Lab result",
            "MRN-0042",
            "4711 heron",
            "wound.jpg",
            exif_marker,
        ]);
        for text in secret {
            assert!(!log.contains(text), "the server's log holds {text:?}");
        }
    }
}

/// The app's files go out gzipped to a browser that accepts it, with their
/// type: the wasm (2.7 MB as built) is most of a first load.
#[tokio::test]
async fn the_app_is_served_gzipped() {
    if !web_app_built() {
        return;
    }
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist/assets");
    let wasm = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".wasm"))
        .expect("the build has the client core's wasm");
    let built = std::fs::metadata(dist.join(&wasm)).unwrap().len();
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let resp = t
        .http()
        .get(format!("{}/assets/{wasm}", t.url))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/wasm");
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let sent = resp.bytes().await.unwrap().len() as u64;
    assert!(sent < built / 2, "{sent} bytes sent for {built}");
}
