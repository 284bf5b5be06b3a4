//! PHI at rest: what goes in through the API is not readable in the database
//! file, and the key-encryption key can be rotated under a running server.

use crate::common::{Backend, TestServer};
use wardline_core::vault::rewrap_all;
use wardline_crypto::{KeyProvider, LocalKeyFile};
use wardline_proto::Role;
use wardline_proto::directory::{CreateUserRequest, UpdateUserRequest};
use wardline_store::Store;

fn contains(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    haystack.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_sqlite_file_holds_no_phi_written_through_the_api() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = t.setup_org("riverside").await;
    let phi = [
        "Zebulon Quixotic-Marchbanks",
        "zq.marchbanks.unique@riverside.test",
        "+15559876543",
        "Philippa Oyelaran-Thistlewood",
        "+447700900123",
    ];
    let user = admin
        .client
        .create_user(&CreateUserRequest {
            email: phi[1].into(),
            display_name: phi[0].into(),
            phone: Some(phi[2].into()),
            roles: vec![Role::Physician],
            password: crate::common::PASSWORD.into(),
            password_change_required: false,
        })
        .await
        .unwrap();
    // Updated values too (old ciphertext rewritten, new one sealed).
    admin
        .client
        .update_user(
            user.id,
            &UpdateUserRequest {
                display_name: Some(phi[3].into()),
                phone: Some(phi[4].into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let doc = t
        .sign_in_enrolling("riverside", &admin.client.user(user.id).await.unwrap())
        .await;
    let back = admin.client.user(user.id).await.unwrap();
    assert_eq!(
        (back.display_name.as_str(), back.phone.as_deref()),
        (phi[3], Some(phi[4])),
        "reads decrypt"
    );

    // M5 of the 2026-11-30 findings: a conversation's patient reference
    // was stored in clear in the audit trail (and its index). Planted: a
    // patient thread, read, opened by break-glass, searched for and held.
    let mrn = "PHIPLANT-MRN-ref-77";
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let officer = t.user_with_role(&admin, Role::ComplianceOfficer).await;
    let devices = crate::common::Devices::new();
    let mut chat = devices.of(&doc, "doc").await;
    let colleague = t.user_with_role(&admin, Role::Physician).await;
    let conv = crate::common::group(&mut chat, &[colleague.user.id], Some(mrn)).await;
    chat.api.conversation(conv).await.unwrap();
    let access = nurse
        .client
        .open_patient(&wardline_proto::routing::OpenPatientRequest {
            patient_ref: mrn.into(),
            reason: Some("covering the night shift for this patient".into()),
        })
        .await
        .unwrap();
    assert_eq!(access.conversations.len(), 1);
    let report = officer.client.audit_access_report(mrn).await.unwrap();
    assert!(report.events.len() >= 3, "{:?}", report.events);
    assert!(
        report
            .events
            .iter()
            .all(|e| e.patient_id.as_deref() == Some(mrn)),
        "the compliance officer sees the reference: {:?}",
        report.events
    );
    officer
        .client
        .place_legal_hold(&wardline_proto::lifecycle::PlaceHoldRequest {
            scope: wardline_proto::lifecycle::HoldScope::Patient,
            target: mrn.into(),
            matter: "Matter 2026-17".into(),
            reason: "litigation notice".into(),
        })
        .await
        .unwrap();

    t.sql.checkpoint().await.unwrap();
    let mut bytes = Vec::new();
    for name in ["wardline.db", "wardline.db-wal", "wardline.db-shm"] {
        if let Ok(b) = std::fs::read(t.data_dir.path().join(name)) {
            bytes.extend(b);
        }
    }
    assert!(bytes.len() > 10_000, "scanned the real file");
    // Positive control: non-PHI written through the API is visible in clear.
    assert!(
        contains(&bytes, "riverside"),
        "org slug should be in clear; is the scan reading the database?"
    );
    for s in phi.iter().chain(
        [
            admin.user.email.as_str(),
            "Ada Admin",
            doc.totp_secret.as_str(),
            mrn,
        ]
        .iter(),
    ) {
        assert!(!contains(&bytes, s), "found {s:?} in the raw database file");
    }
    // Nor are tokens or recovery codes stored in clear.
    assert!(!contains(&bytes, &doc.token));
    for code in &doc.recovery_codes {
        assert!(!contains(&bytes, code));
    }
}

async fn kek_rotation_under_a_running_server(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let before = t.sql.count_data_keys_by_kek().await.unwrap();
    assert_eq!(before.len(), 1);

    // What `wardline admin rotate-kek --retire-old` does, from "another process".
    let keys = LocalKeyFile::open_or_create(&t.config.key_file()).unwrap();
    let old = keys.current_kek_id();
    let new = keys.rotate().unwrap();
    let moved = rewrap_all(&keys, t.sql.as_ref()).await.unwrap();
    assert_eq!(moved as i64, before[0].1);
    assert_eq!(
        t.sql.count_data_keys_by_kek().await.unwrap(),
        vec![(new.clone(), before[0].1)]
    );
    assert_eq!(keys.retire_all_but_current().unwrap(), vec![old]);

    // The running server reads everything and wraps new keys with the new KEK.
    let users = admin.client.list_users().await.unwrap();
    assert!(users.iter().any(|u| u.email == nurse.user.email));
    let added = t.user_with_role(&admin, Role::FrontDesk).await;
    admin.client.user(added.user.id).await.unwrap();
    let after = t.sql.count_data_keys_by_kek().await.unwrap();
    assert_eq!(after, vec![(new, before[0].1 + 1)]);
    // And sign-in (blind index, TOTP secret) still works.
    t.sign_in_mfa(&nurse).await.current_session().await.unwrap();
}

both_backends!(kek_rotation_under_a_running_server);
