//! A data directory written before the reshaping of issue 20 (`afe02cc`, see
//! `tests/fixtures/data-dir-afe02cc/README.md`) opens and works with the
//! server as it is now: nothing to migrate, sign-in with the passwords and
//! authenticators enrolled then, PHI decrypted with the key file of then,
//! conversations and a device's inbox as they were, the audit trail verified
//! and extended. A change that breaks an existing installation fails here.

use std::path::Path;

use uuid::Uuid;
use wardline_client::ApiClient;
use wardline_core::audit::verify::{Options, verify};
use wardline_crypto::LocalKeyFile;
use wardline_proto::auth::{LoginRequest, LoginStep};
use wardline_proto::patients::SendSecureMessageRequest;

use crate::common::TestServer;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/data-dir-afe02cc"
);

/// Copies the fixture's data directory with the modes the server expects of
/// its own (git keeps neither 0700 nor 0600).
fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

async fn migrations_applied(db: &Path) -> Vec<i64> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

async fn audit_report(t: &TestServer) -> wardline_core::audit::verify::Report {
    let keys = LocalKeyFile::open_read_only(&t.config.key_file()).unwrap();
    let opts = Options {
        retention_days: t.config.audit.retention_days,
        ..Options::default()
    };
    verify(t.sql.as_ref(), &keys, &opts, |_, _| {})
        .await
        .unwrap()
}

/// A full session on the device the user signed in with back then.
async fn sign_in(t: &TestServer, fixture: &serde_json::Value, email: &str) -> ApiClient {
    let credentials: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.config.data_dir.join("demo-credentials.json")).unwrap(),
    )
    .unwrap();
    let account = &fixture["accounts"][email];
    t.next_totp_step();
    let c = t.client();
    let resp = c
        .login(&LoginRequest {
            org: "demo".into(),
            email: email.into(),
            password: credentials["password"].as_str().unwrap().into(),
            device_id: account["device_id"].as_str().unwrap().parse().unwrap(),
            device_token: None,
        })
        .await
        .expect("the password set before the change still signs in");
    assert_eq!(resp.step, LoginStep::MfaRequired, "{email}");
    let code = t.totp_code(account["totp_secret"].as_str().unwrap());
    let s = c
        .verify_mfa(resp.mfa_token.as_deref().unwrap(), &code)
        .await
        .expect("the authenticator enrolled before the change still works");
    c.with_token(Some(s.token))
}

#[tokio::test]
async fn a_data_directory_from_before_the_reshaping_opens_and_works() {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/fixture.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(FIXTURE).join("data"), dir.path());
    let db = dir.path().join("wardline.db");
    let before = migrations_applied(&db).await;
    assert!(before.len() >= 12, "the fixture is migrated: {before:?}");

    let t = TestServer::start_in(dir, None, |_| {}).await;
    // Brought up to today's schema: what it had is left as it was, and the
    // migrations added since are applied once, in order.
    let after = migrations_applied(&db).await;
    assert_eq!(after[..before.len()], before[..], "{after:?}");
    assert_eq!(
        after,
        (1..=after.len() as i64).collect::<Vec<_>>(),
        "every migration, once, in order"
    );
    let report = audit_report(&t).await;
    assert!(report.ok(), "the trail of then verifies: {report:?}");
    let entries_then = report.last_seq;

    // PHI sealed with the data keys of then, under the key file of then.
    let nurse = sign_in(&t, &fixture, "nurse@demo.wardline.test").await;
    let patient: Uuid = fixture["patient_id"].as_str().unwrap().parse().unwrap();
    let patients = nurse.patients().await.unwrap().patients;
    let ada = patients.iter().find(|p| p.id == patient).expect("patient");
    assert_eq!(ada.name, "Ada Fixture");
    assert_eq!(ada.date_of_birth, "1950-02-03");
    assert_eq!(ada.mrn.as_deref(), Some("MRN-0042"));
    assert_eq!(ada.phone, "+15555550123");
    let thread = nurse.patient_thread(patient).await.unwrap();
    assert_eq!(thread.messages.len(), 1);
    assert!(
        thread.messages[0]
            .text
            .starts_with("Your lab results are ready")
    );

    // Conversations and a device's inbox as they were.
    let conversation: Uuid = fixture["conversation_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let listed = nurse.conversations().await.unwrap().conversations;
    let c = listed
        .iter()
        .find(|c| c.id == conversation)
        .expect("the conversation");
    assert_eq!(c.patient_ref.as_deref(), Some("MRN-0042"));
    let physician = sign_in(&t, &fixture, "physician@demo.wardline.test").await;
    let message: Uuid = fixture["message_id"].as_str().unwrap().parse().unwrap();
    let inbox = physician.sync(0, 500).await.unwrap().entries;
    assert!(
        inbox
            .iter()
            .any(|e| e.message_id == message && e.mls.is_some()),
        "the physician's device still has the nurse's MLS message: {inbox:?}"
    );

    // And it goes on: a new write, read back, audited on the same chain.
    nurse
        .send_patient_message(
            patient,
            &SendSecureMessageRequest {
                text: Some("Your appointment is confirmed for Tuesday.".into()),
                sealed: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        nurse.patient_thread(patient).await.unwrap().messages.len(),
        2
    );
    let admin = sign_in(&t, &fixture, "org.admin@demo.wardline.test").await;
    admin.current_session().await.unwrap();
    let report = audit_report(&t).await;
    assert!(report.ok(), "{report:?}");
    assert!(report.last_seq > entries_then, "{report:?}");
}
