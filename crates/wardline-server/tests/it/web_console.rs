//! The administration and compliance console (issue 23) in Chromium
//! (`tests/browser/console.mjs`) against the real server: an administrator
//! adds and suspends a user, wipes a physician's lost phone (a command-line
//! device that erases itself and confirms), sets the policy and applies a
//! previewed retention change; a compliance officer searches the audit
//! trail, exports it, reads a patient's access report and the integrity
//! page, places and releases a legal hold; a nurse is offered none of it and
//! the server refuses her the console's endpoints. What the screens did is
//! checked here against the server, not only on screen.

use std::time::Duration;

use wardline_client::chat::ChatError;
use wardline_client::core::MessageContent;
use wardline_proto::Role;
use wardline_proto::audit::{AuditQuery, Outcome};
use wardline_proto::lifecycle::{Retention, WipeStatus};
use wardline_proto::messaging::{ConversationKind, CreateConversationRequest, Priority};
use wardline_proto::routing::{CreateCareTeamRequest, OpenPatientRequest};

use crate::common::browser::{self, browser_available, run_script};
use crate::common::*;
use crate::web_app::web_app_built;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_and_compliance_officers_work_in_the_console() {
    if !browser_available() || !web_app_built() {
        return;
    }
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = t.setup_org("alpha").await;
    let officer = t
        .user_named(&admin, Role::ComplianceOfficer, "Olive Officer")
        .await;
    let nurse = t.user_named(&admin, Role::Nurse, "Nora Nurse").await;
    let physician = t
        .user_named(&admin, Role::Physician, "Paula Physician")
        .await;

    // A patient's conversation, for the access report and the hold, from
    // the physician's phone (a command-line device) and the nurse's.
    let patient = "MRN-77120";
    let devices = Devices::new();
    let phone_name = "Paula's phone";
    let mut phone = devices.of(&physician, phone_name).await;
    let mut nurse_phone = devices.of(&nurse, "Nora's phone").await;
    let team = admin
        .client
        .create_care_team(&CreateCareTeamRequest {
            name: "Bed 3 team".into(),
            department_id: None,
            members: vec![physician.user.id, nurse.user.id],
        })
        .await
        .unwrap();
    let conv = phone
        .create(&CreateConversationRequest {
            kind: ConversationKind::Group,
            title: Some("Bed 3".into()),
            members: vec![nurse.user.id],
            patient_ref: Some(patient.into()),
            care_team_id: Some(team.id),
        })
        .await
        .unwrap()
        .id;
    phone
        .send(
            conv,
            MessageContent::text("Bed 3 family asking about discharge"),
            Priority::Routine,
        )
        .await
        .unwrap();
    nurse_phone.sync().await.unwrap();

    // A physician of another team breaks the glass into the patient's thread.
    let bystander = t.user_named(&admin, Role::Physician, "Ben Bystander").await;
    bystander
        .client
        .open_patient(&OpenPatientRequest {
            patient_ref: patient.into(),
            reason: Some("Covering the ward tonight, bed 3 deteriorating".into()),
        })
        .await
        .unwrap();

    // The nurse tries the console's endpoints with her own session: refused.
    for path in [
        "/api/v1/audit/events".to_owned(),
        "/api/v1/legal-holds".to_owned(),
        format!("/api/v1/users/{}/managed-devices", physician.user.id),
        "/api/v1/org/policy".to_owned(),
    ] {
        let status = t
            .http()
            .get(format!("{}{path}", t.url))
            .bearer_auth(&nurse.token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 403, "{path}");
    }
    t.state.audit.checkpoint_now().await.unwrap();

    // The phone, lost: once the administrator orders the wipe from the
    // console, its next call erases it and confirms.
    // (Polled for as long as the browser may take to get there.)
    let phone_task = tokio::spawn(async move {
        for _ in 0..600 {
            match phone.sync().await {
                Err(ChatError::Wiped { confirmed }) => return confirmed,
                Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                Err(e) => panic!("the phone's sync failed: {e}"),
            }
        }
        panic!("the phone was never told to erase itself");
    });

    t.next_totp_step();
    let codes = |secret: &str| {
        serde_json::json!([t.totp_code(secret), t.totp_code_at(secret, t.now() + 30)])
    };
    let screenshots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let new_user = format!("sam.new@{}.test", admin.org_slug);
    let steps = run_script(
        "console.mjs",
        serde_json::json!({
            "url": format!("{}/", t.url),
            "org": "alpha",
            "password": PASSWORD,
            "screenshots": screenshots,
            "admin": { "email": admin.user.email, "codes": codes(&admin.totp_secret) },
            "officer": { "email": officer.user.email, "codes": codes(&officer.totp_secret) },
            "nurse": { "email": nurse.user.email, "codes": codes(&nurse.totp_secret) },
            "physician": { "name": "Paula Physician", "device": phone_name },
            "newUser": { "name": "Sam Newcomer", "email": new_user, "password": "quilt harbor seventy lamps" },
            "wipeReason": "Phone lost on the night bus",
            "retentionDays": 400,
            "patientRef": patient,
            "matter": "Doe v. General Hospital",
            "bystander": "Ben Bystander",
        }),
        Some(&t.ca_pem),
    )
    .await;
    let step = |name: &str| browser::step(&steps, name);

    // The administrator's screens, and only theirs.
    let users = step("users_filtered");
    let admin_nav = users["adminNav"].to_string();
    assert!(
        admin_nav.contains("Users") && admin_nav.contains("Policies"),
        "{admin_nav}"
    );
    assert!(
        !admin_nav.contains("Audit trail") && !admin_nav.contains("Legal holds"),
        "{admin_nav}"
    );
    assert_eq!(users["found"], serde_json::json!(["Paula Physician"]));
    assert_eq!(users["nurses"], serde_json::json!(["Nora Nurse"]));

    let added = step("user_added");
    assert_eq!(added["emailError"], "Email is not a valid e-mail address");
    assert_eq!(added["emailInvalid"], "true");
    let says = added["deprovisionSays"].as_str().unwrap();
    assert!(
        says.contains("cannot be undone") && says.contains("erase itself"),
        "{says}"
    );
    let listed = admin.client.list_users().await.unwrap();
    let sam = listed
        .iter()
        .find(|u| u.email == new_user)
        .expect("Sam added");
    assert_eq!(sam.roles, vec![Role::Nurse]);
    assert_eq!(sam.status, wardline_proto::directory::UserStatus::Suspended);

    let wiped = step("device_wiped");
    let facts = wiped["deviceFacts"].as_str().unwrap();
    assert!(facts.contains("Key packages left"), "{facts}");
    assert_eq!(wiped["reasonError"], "Reason must be 1 to 500 characters");
    assert!(
        wiped["ordered"]
            .as_str()
            .unwrap()
            .contains("Phone lost on the night bus"),
        "{wiped}"
    );
    let confirmed = tokio::time::timeout(Duration::from_secs(30), phone_task)
        .await
        .expect("the phone task ends")
        .unwrap();
    assert!(confirmed, "the phone confirmed its wipe");
    let wipes = admin.client.device_wipes().await.unwrap().wipes;
    assert_eq!(wipes.len(), 1);
    assert_eq!(wipes[0].status, WipeStatus::Confirmed);
    assert_eq!(wipes[0].reason, "Phone lost on the night bus");

    let policies = step("policies");
    assert_eq!(
        policies["idleError"],
        "Idle_timeout_secs must be between 60 and 86400"
    );
    assert_eq!(policies["idleInvalid"], "true");
    let policy = admin.client.policy().await.unwrap();
    assert_eq!(policy.idle_timeout_secs, 1800);
    assert_eq!(policy.devices.min_pin_length, 8);
    let preview = policies["previewText"].as_str().unwrap();
    assert!(preview.contains("With this change"), "{preview}");
    assert_eq!(
        admin.client.lifecycle_policy().await.unwrap().retention,
        Retention::Days(400)
    );

    let analytics = step("analytics");
    let charts = analytics["charts"].as_array().unwrap();
    assert!(charts.len() >= 3, "{analytics}");
    assert!(
        charts.iter().all(|c| c["painted"].as_u64().unwrap() > 100),
        "{analytics}"
    );
    let figures = analytics["figures"].as_str().unwrap();
    assert!(figures.contains("physician"), "{figures}");

    // The compliance officer's.
    let audit = step("audit");
    let officer_nav = audit["officerNav"].to_string();
    for screen in [
        "Analytics",
        "Audit trail",
        "Patient access report",
        "Audit integrity",
        "Legal holds",
        "Break-glass",
    ] {
        assert!(officer_nav.contains(screen), "{officer_nav}");
    }
    let created = audit["created"].as_str().unwrap();
    assert!(created.contains("user.create"), "{created}");
    assert!(!created.contains("auth.login"), "{created}");
    assert!(
        audit["record"]
            .as_str()
            .unwrap()
            .contains("Sequence number")
    );
    let denied = audit["denied"].as_str().unwrap();
    assert!(
        denied.contains("Nora Nurse") && denied.contains("denied"),
        "{denied}"
    );
    let csv = audit["csv"].as_str().unwrap();
    assert!(audit["csvName"].as_str().unwrap().ends_with(".csv"));
    assert!(csv.lines().count() > 1, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains("denied")), "{csv}");

    let report = step("access_report");
    let text = report["reportText"].as_str().unwrap();
    assert!(
        text.contains(patient) && text.contains("Paula Physician"),
        "{text}"
    );
    assert_eq!(report["printed"]["nav"], "none");
    assert_eq!(report["printed"]["button"], "none");
    assert_ne!(report["printed"]["report"], "none");

    let integrity = step("integrity")["integrity"].as_str().unwrap().to_owned();
    assert!(integrity.contains("Valid"), "{integrity}");

    let glass = step("break_glass")["grants"].as_str().unwrap().to_owned();
    assert!(
        glass.contains("Ben Bystander") && glass.contains("bed 3 deteriorating"),
        "{glass}"
    );

    let holds = step("holds");
    assert!(
        holds["active"]
            .as_str()
            .unwrap()
            .contains("Doe v. General Hospital")
    );
    assert!(
        holds["released"]
            .as_str()
            .unwrap()
            .contains("Matter settled")
    );
    let register = officer.client.legal_holds().await.unwrap().holds;
    assert_eq!(register.len(), 1);
    assert!(register[0].released_at.is_some());

    // The nurse's: none, even by address.
    let n = step("nurse");
    assert_eq!(n["nurseNav"], serde_json::json!([]));
    let headings = n["nurseHeadings"].to_string();
    assert!(!headings.contains("Audit trail"), "{headings}");

    // What the screens did is in the audit trail under their actors (the
    // wipe's first try, without a reason, as a failure).
    let page = officer
        .client
        .audit_search(&AuditQuery {
            action: Some("device.wipe".into()),
            outcome: Some(Outcome::Success),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(
        page.events[0].actor_id.as_deref(),
        Some(admin.user.id.to_string().as_str())
    );
}
