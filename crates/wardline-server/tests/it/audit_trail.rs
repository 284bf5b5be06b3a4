//! The audit trail: append-only guards, tamper detection of every kind on both
//! engines, proofs through the API, search, reports, exports and retention.

use std::collections::BTreeSet;

use crate::common::{Backend, TestServer};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};
use wardline_core::audit::verify::{Finding, Options, Report, Trusted, verify};
use wardline_core::audit::{NewEvent, retention};
use wardline_core::clock::Clock;
use wardline_crypto::merkle::{self, Hash};
use wardline_crypto::{KeyProvider, LocalKeyFile, verify_checkpoint_signature};
use wardline_proto::Role;
use wardline_proto::audit::{
    AccessReport, ActorKind, AuditAction, AuditEvent, AuditPage, Checkpoint, ConsistencyProof,
    InclusionProof, Outcome, checkpoint_message,
};
use wardline_store::AuditStore;

async fn raw(t: &TestServer) -> AnyConnection {
    AnyConnection::connect(&t.config.database_url())
        .await
        .unwrap()
}

async fn exec(conn: &mut AnyConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// What an attacker with database rights does first.
async fn drop_guards(conn: &mut AnyConnection, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            for trg in [
                "audit_log_no_update",
                "audit_log_no_delete",
                "audit_checkpoints_no_update",
                "audit_checkpoints_no_delete",
            ] {
                exec(conn, &format!("DROP TRIGGER {trg}")).await;
            }
        }
        Backend::Postgres => {
            exec(conn, "ALTER TABLE audit_log DISABLE TRIGGER USER").await;
            exec(conn, "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER").await;
        }
    }
}

async fn run_verify(t: &TestServer, trusted: Option<&Trusted>) -> Report {
    run_verify_with(
        t,
        Options {
            trusted: trusted.cloned(),
            ..Default::default()
        },
    )
    .await
}

/// As `wardline audit verify` does it: the key file opened read-only, the
/// server's retention period.
async fn run_verify_with(t: &TestServer, opts: Options) -> Report {
    let keys = LocalKeyFile::open_read_only(&t.config.key_file()).unwrap();
    let opts = Options {
        retention_days: t.config.audit.retention_days,
        ..opts
    };
    verify(t.sql.as_ref(), &keys, &opts, |_, _| {})
        .await
        .unwrap()
}

/// A server with 30 test entries and checkpoints at 10, 20 and 30.
async fn log_of_30(backend: Backend) -> Option<TestServer> {
    let t = TestServer::start_with(backend, |c| c.audit.checkpoint_every = 10).await?;
    t.fill_audit(30).await;
    let report = run_verify(&t, None).await;
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(report.checkpoints_checked, 3);
    Some(t)
}

async fn untouched_log_verifies_and_guards_refuse_changes(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let report = run_verify(&t, None).await;
    assert_eq!(report.entries_checked, 30);
    assert_eq!(report.trusted.as_ref().unwrap().size, 30);

    let mut conn = raw(&t).await;
    for sql in [
        "UPDATE audit_log SET action = 'user.view' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_checkpoints WHERE size = 10",
        "UPDATE audit_checkpoints SET at_ms = 0 WHERE size = 10",
    ] {
        let err = sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    if backend == Backend::Postgres {
        let err = sqlx::raw_sql("TRUNCATE audit_log")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert!(run_verify(&t, None).await.ok());
}

async fn detects_a_modified_entry(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    exec(
        &mut conn,
        "UPDATE audit_log SET target_id = '999' WHERE seq = 15",
    )
    .await;
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![Finding::Modified {
            seq: 15,
            detail: "content does not match its hash".into()
        }]
    );
    // The last trustworthy checkpoint is the one before the change.
    assert_eq!(r.trusted.unwrap().size, 10);
}

async fn detects_a_deleted_entry(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    exec(&mut conn, "DELETE FROM audit_log WHERE seq = 15").await;
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![Finding::Deleted {
            from_seq: 15,
            to_seq: 15
        }]
    );
}

async fn detects_a_deletion_hidden_by_renumbering(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    exec(&mut conn, "DELETE FROM audit_log WHERE seq = 15").await;
    // Two steps, so that the primary key never collides mid-update.
    exec(&mut conn, "UPDATE audit_log SET seq = -seq WHERE seq > 15").await;
    exec(
        &mut conn,
        "UPDATE audit_log SET seq = -seq - 1 WHERE seq < 0",
    )
    .await;
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![
            Finding::Renumbered {
                from_seq: 15,
                to_seq: 29,
                by: 1
            },
            Finding::Truncated {
                expected: 30,
                found: 29
            }
        ]
    );
}

async fn detects_an_inserted_entry(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    exec(&mut conn, "UPDATE audit_log SET seq = -seq WHERE seq >= 15").await;
    exec(
        &mut conn,
        "UPDATE audit_log SET seq = -seq + 1 WHERE seq < 0",
    )
    .await;
    // A careful forger: correct leaf hash and chain link for the new row.
    let prev = t.sql.audit_entries(13, 1).await.unwrap().remove(0);
    let forged = AuditEvent {
        seq: 15,
        at_ms: prev.at_ms,
        org_id: None,
        actor_kind: ActorKind::Service,
        actor_id: Some("test".into()),
        device_id: None,
        source_ip: None,
        user_agent: None,
        action: AuditAction::AuditSearch,
        target_type: Some("item".into()),
        target_id: Some("alibi".into()),
        patient_id: None,
        outcome: Outcome::Success,
        reason: None,
        changes: Vec::new(),
        leaf_hash: None,
    };
    let leaf = merkle::leaf_hash(&forged.canonical_bytes());
    let chain = merkle::chain_hash(&prev.chain_hash.clone().try_into().unwrap(), &leaf);
    exec(
        &mut conn,
        &format!(
            "INSERT INTO audit_log (seq, at_ms, actor_kind, actor_id, action, target_type, target_id, outcome, leaf_hash, chain_hash, mac) \
             VALUES (15, {}, 'service', 'test', 'audit.search', 'item', 'alibi', 'success', {}, {}, {})",
            prev.at_ms,
            blob(backend, &leaf),
            blob(backend, &chain),
            blob(backend, &[7u8; 32])
        ),
    )
    .await;
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![
            Finding::Forged {
                from_seq: 15,
                to_seq: 15
            },
            Finding::Renumbered {
                from_seq: 16,
                to_seq: 31,
                by: -1
            }
        ]
    );
    assert_eq!(
        r.findings[1].to_string(),
        "entry 15–15 inserted: entries 16–31 were written 1 position earlier"
    );
}

fn blob(backend: Backend, bytes: &[u8]) -> String {
    match backend {
        Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

async fn detects_reordered_entries(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    exec(&mut conn, "UPDATE audit_log SET seq = -1 WHERE seq = 12").await;
    exec(&mut conn, "UPDATE audit_log SET seq = 12 WHERE seq = 13").await;
    exec(&mut conn, "UPDATE audit_log SET seq = 13 WHERE seq = -1").await;
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![
            Finding::Reordered {
                seq: 12,
                original_seq: 13
            },
            Finding::Reordered {
                seq: 13,
                original_seq: 12
            }
        ]
    );
}

async fn detects_truncation(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let trusted = run_verify(&t, None).await.trusted.unwrap();
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    exec(&mut conn, "DELETE FROM audit_log WHERE seq > 25").await;
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![Finding::Truncated {
            expected: 30,
            found: 25
        }]
    );
    // Removing the checkpoints too does not hide it from a verifier that
    // remembers where it got to last time.
    exec(&mut conn, "DELETE FROM audit_checkpoints WHERE size > 20").await;
    exec(&mut conn, "DELETE FROM audit_log WHERE seq > 20").await;
    let r = run_verify(&t, None).await;
    assert!(r.ok(), "without memory the shorter log is self-consistent");
    let r = run_verify(&t, Some(&trusted)).await;
    assert!(
        r.findings
            .contains(&Finding::TrustedCheckpointChanged { size: 30 }),
        "{:?}",
        r.findings
    );
    assert!(r.findings.contains(&Finding::Truncated {
        expected: 30,
        found: 20
    }));
}

async fn detects_a_change_with_recomputed_hashes(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    // Rewrite entry 15 and recompute every stored hash from there on.
    let rows = t.sql.audit_entries(13, 100).await.unwrap();
    let mut chain: Hash = rows[0].chain_hash.clone().try_into().unwrap();
    for row in &rows[1..] {
        let mut e = wardline_core::audit::record::decode(row).unwrap();
        e.leaf_hash = None;
        if e.seq == 15 {
            e.target_id = Some("rewritten".into());
        }
        let leaf = merkle::leaf_hash(&e.canonical_bytes());
        chain = merkle::chain_hash(&chain, &leaf);
        exec(
            &mut conn,
            &format!(
                "UPDATE audit_log SET target_id = '{}', leaf_hash = {}, chain_hash = {} WHERE seq = {}",
                e.target_id.unwrap(),
                blob(backend, &leaf),
                blob(backend, &chain),
                e.seq
            ),
        )
        .await;
    }
    let r = run_verify(&t, None).await;
    // Hashes can be recomputed by anyone; the entries' MACs cannot.
    assert_eq!(
        r.findings,
        vec![Finding::Forged {
            from_seq: 15,
            to_seq: 30
        }]
    );
    assert_eq!(r.trusted.unwrap().size, 10);
}

/// An entry slipped in after the last checkpoint, with correct hashes, is
/// adopted by the writer (the sequence must go on) and then covered by the
/// next signed checkpoint; its MAC still gives it away.
async fn detects_a_forged_entry_at_the_unsigned_tail(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let last = t.sql.last_audit_entry().await.unwrap().unwrap();
    let mut forged = wardline_core::audit::record::decode(&last).unwrap();
    forged.seq = 31;
    forged.leaf_hash = None;
    forged.target_id = Some("alibi".into());
    let leaf = merkle::leaf_hash(&forged.canonical_bytes());
    let chain = merkle::chain_hash(&last.chain_hash.clone().try_into().unwrap(), &leaf);
    let mut conn = raw(&t).await;
    exec(
        &mut conn,
        &format!(
            "INSERT INTO audit_log (seq, at_ms, actor_kind, actor_id, action, target_type, target_id, outcome, leaf_hash, chain_hash, mac) \
             VALUES (31, {}, 'service', 'test', 'audit.search', 'item', 'alibi', 'success', {}, {}, {})",
            forged.at_ms,
            blob(backend, &leaf),
            blob(backend, &chain),
            blob(backend, &[7u8; 32])
        ),
    )
    .await;
    t.fill_audit(5).await;
    t.state.audit.checkpoint_now().await.unwrap();
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![Finding::Forged {
            from_seq: 31,
            to_seq: 31
        }]
    );
    assert_eq!(
        r.findings[0].to_string(),
        "entry 31 was not written by Wardline (its authentication code does not match)"
    );
}

async fn detects_a_forged_checkpoint(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    exec(
        &mut conn,
        "UPDATE audit_checkpoints SET at_ms = at_ms + 1 WHERE size = 20",
    )
    .await;
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![Finding::BadSignature {
            size: 20,
            detail: "signature does not match".into()
        }]
    );
}

async fn incremental_verification_starts_at_the_trusted_checkpoint(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let trusted = run_verify(&t, None).await.trusted.unwrap();
    t.fill_audit(10).await;
    let r = run_verify(&t, Some(&trusted)).await;
    assert!(r.ok(), "{:?}", r.findings);
    assert_eq!(r.started_at, 30);
    assert_eq!(r.entries_checked, 10);
    assert_eq!(r.trusted.unwrap().size, 40);
}

async fn proofs_through_the_api_verify(backend: Backend) {
    let Some(t) = TestServer::start_with(backend, |c| c.audit.checkpoint_every = 7).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let officer = t.user_with_role(&admin, Role::ComplianceOfficer).await;
    t.fill_audit(20).await;
    let first: Checkpoint = officer
        .client
        .get_json("/api/v1/audit/checkpoints/latest")
        .await
        .unwrap();
    admin.client.list_users().await.unwrap();
    t.fill_audit(20).await;
    t.state.audit.checkpoint_now().await.unwrap();
    let latest: Checkpoint = officer
        .client
        .get_json("/api/v1/audit/checkpoints/latest")
        .await
        .unwrap();
    assert!(latest.size > first.size);

    // The signature checks out with the published key, and that key is the
    // one in the key provider.
    let keys = LocalKeyFile::open_or_create(&t.config.key_file()).unwrap();
    for cp in [&first, &latest] {
        let public: [u8; 32] = hex::decode(&cp.public_key).unwrap().try_into().unwrap();
        assert_eq!(public, keys.checkpoint_public_key(&cp.key_id).unwrap());
        let sig: [u8; 64] = hex::decode(&cp.signature).unwrap().try_into().unwrap();
        let msg = checkpoint_message(cp.size, cp.at_ms, &cp.root, &cp.chain_head);
        assert!(verify_checkpoint_signature(&public, &msg, &sig));
    }

    // Inclusion of this organisation's user listing in the latest checkpoint.
    let page: AuditPage = officer
        .client
        .get_json("/api/v1/audit/events?action=user.list")
        .await
        .unwrap();
    let listing = &page.events[0];
    assert_eq!(listing.actor_id, Some(admin.user.id.to_string()));
    let proof: InclusionProof = officer
        .client
        .get_json(&format!(
            "/api/v1/audit/proofs/inclusion?seq={}",
            listing.seq
        ))
        .await
        .unwrap();
    assert_eq!(proof.tree_size, latest.size);
    assert_eq!(proof.root, latest.root);
    let leaf = merkle::leaf_hash(&listing.canonical_bytes());
    assert_eq!(hex::encode(leaf), proof.leaf_hash);
    let path: Vec<Hash> = proof
        .path
        .iter()
        .map(|h| hex::decode(h).unwrap().try_into().unwrap())
        .collect();
    let root: Hash = hex::decode(&latest.root).unwrap().try_into().unwrap();
    assert!(merkle::verify_inclusion(
        &leaf,
        (listing.seq - 1) as u64,
        latest.size as u64,
        &path,
        &root
    ));

    // The earlier checkpoint is a prefix of the latest.
    let c: ConsistencyProof = officer
        .client
        .get_json(&format!(
            "/api/v1/audit/proofs/consistency?from_size={}&to_size={}",
            first.size, latest.size
        ))
        .await
        .unwrap();
    assert_eq!(c.from_root, first.root);
    let old_root: Hash = hex::decode(&first.root).unwrap().try_into().unwrap();
    let path: Vec<Hash> = c
        .path
        .iter()
        .map(|h| hex::decode(h).unwrap().try_into().unwrap())
        .collect();
    assert!(merkle::verify_consistency(
        first.size as u64,
        latest.size as u64,
        &old_root,
        &root,
        &path
    ));

    // Entries of the installation (no organisation) or of another one are not
    // proven to this organisation's officer; bad sizes are 422, not 500.
    let installation_entry = t
        .sql
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.org_id.is_none())
        .unwrap();
    let err = officer
        .client
        .audit_inclusion_proof(installation_entry.seq, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(wardline_proto::ErrorCode::NotFound));
    let err = officer
        .client
        .get_json::<ConsistencyProof>("/api/v1/audit/proofs/consistency?from_size=9&to_size=99999")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(wardline_proto::ErrorCode::Validation));
}

async fn search_reports_and_exports(backend: Backend) {
    // Patient records' ids (as the patient-texting features record them;
    // free-text references are keyed, see at_rest.rs).
    const P1: &str = "0b9e4b1e-7f55-4a4b-9f67-3d2b5f3c9a11";
    const P2: &str = "0b9e4b1e-7f55-4a4b-9f67-3d2b5f3c9a12";
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let officer = t.user_with_role(&admin, Role::ComplianceOfficer).await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let other = t.create_org("beta").await;
    // Patient-context events as the messaging and patient features record them.
    let device = uuid::Uuid::new_v4();
    for (who, patient) in [(&nurse, P1), (&nurse, P1), (&admin, P2)] {
        t.state
            .audit
            .record(NewEvent {
                org_id: Some(admin.user.org_id.into()),
                actor_kind: ActorKind::User,
                actor_id: Some(who.user.id.to_string()),
                device_id: Some(device),
                source_ip: Some("10.1.2.3".into()),
                user_agent: None,
                action: AuditAction::UserView,
                target_type: Some("patient".into()),
                target_id: Some(patient.into()),
                patient_id: Some(patient.into()),
                outcome: Outcome::Success,
                reason: None,
                changes: Vec::new(),
            })
            .await
            .unwrap();
    }

    let report: AccessReport = officer
        .client
        .get_json(&format!("/api/v1/audit/patients/{P1}/access-report"))
        .await
        .unwrap();
    assert_eq!(report.events.len(), 2);
    assert_eq!(report.accessors.len(), 1);
    assert_eq!(
        report.accessors[0].actor_id,
        Some(nurse.user.id.to_string())
    );
    assert_eq!(report.accessors[0].devices, vec![device]);
    // The report itself is audited, in the patient's context.
    let page: AuditPage = officer
        .client
        .get_json(&format!(
            "/api/v1/audit/events?patient={P1}&action=audit.access_report"
        ))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].actor_id, Some(officer.user.id.to_string()));

    // Search by actor, newest first, paged without overlap.
    let mut seen = BTreeSet::new();
    let mut before = None;
    loop {
        let q = match before {
            Some(b) => format!("/api/v1/audit/events?limit=2&before_seq={b}"),
            None => "/api/v1/audit/events?limit=2".to_owned(),
        };
        let page: AuditPage = officer.client.get_json(&q).await.unwrap();
        for e in &page.events {
            assert!(seen.insert(e.seq), "page overlap at {}", e.seq);
            assert_eq!(e.org_id, Some(admin.user.org_id), "tenant leak");
        }
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert!(seen.len() > 10);
    let page: AuditPage = officer
        .client
        .get_json(&format!("/api/v1/audit/events?actor={}", nurse.user.id))
        .await
        .unwrap();
    assert!(
        page.events
            .iter()
            .all(|e| e.actor_id == Some(nurse.user.id.to_string()))
    );
    assert!(
        page.events
            .iter()
            .any(|e| e.patient_id.as_deref() == Some(P1))
    );
    // Another organisation's officer sees none of it.
    let beta_officer = t.user_with_role(&other, Role::ComplianceOfficer).await;
    let page: AuditPage = beta_officer
        .client
        .get_json(&format!("/api/v1/audit/events?patient={P1}"))
        .await
        .unwrap();
    assert!(page.events.is_empty());

    // Exports: CSV with a header and JSON Lines that parse back.
    let http = t.http();
    let csv = http
        .get(format!(
            "{}/api/v1/audit/export?format=csv&patient={P1}",
            t.url
        ))
        .bearer_auth(&officer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("seq,at_ms,org_id,actor_kind")
    );
    // The two accesses, the report, the search and this export itself.
    assert_eq!(lines.filter(|l| l.contains(P1)).count(), 5);
    let jsonl = http
        .get(format!("{}/api/v1/audit/export?format=jsonl", t.url))
        .bearer_auth(&officer.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<AuditEvent> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() > 10);
    assert!(events.windows(2).all(|w| w[0].seq > w[1].seq));

    // Bad filters are 422/400, and clinicians cannot search at all.
    for q in ["limit=0", "action=nope", "from_ms=10&to_ms=5"] {
        let r = http
            .get(format!("{}/api/v1/audit/events?{q}", t.url))
            .bearer_auth(&officer.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{q}");
    }
    let r = http
        .get(format!("{}/api/v1/audit/export?format=xml", t.url))
        .bearer_auth(&officer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!("{}/api/v1/audit/events", t.url))
        .bearer_auth(&nurse.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

async fn retention_purges_old_entries_and_keeps_verification(backend: Backend) {
    let Some(t) = TestServer::start_with(backend, |c| c.audit.checkpoint_every = 5).await else {
        return;
    };
    t.fill_audit(12).await;
    t.state.audit.checkpoint_now().await.unwrap();
    // Seven years later.
    t.clock.advance(7 * 365 * 86_400);
    t.fill_audit(3).await;
    let purged = retention::purge_expired(
        t.sql.as_ref(),
        t.sql.as_ref(),
        t.keys.as_ref(),
        &t.state.audit,
        t.clock.as_ref(),
        2192,
    )
    .await
    .unwrap();
    assert_eq!(purged, Some((12, 12)));
    // Nothing more to do on a second run.
    assert_eq!(
        retention::purge_expired(
            t.sql.as_ref(),
            t.sql.as_ref(),
            t.keys.as_ref(),
            &t.state.audit,
            t.clock.as_ref(),
            2192
        )
        .await
        .unwrap(),
        None
    );
    t.state.audit.checkpoint_now().await.unwrap();
    let r = run_verify(&t, None).await;
    assert!(r.ok(), "{:?}", r.findings);
    assert_eq!(r.started_at, 12);
    assert_eq!(r.entries_checked, 4, "3 entries and the purge's own event");
    let last = t.sql.last_audit_entry().await.unwrap().unwrap();
    assert_eq!(last.action, "audit.purge");
    // Entries past the purge point are still guarded.
    let mut conn = raw(&t).await;
    let err = sqlx::raw_sql("DELETE FROM audit_log WHERE seq = 14")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

/// Drops every guard of the audit tables, the purge record's included.
async fn drop_all_guards(conn: &mut AnyConnection, backend: Backend) {
    drop_guards(conn, backend).await;
    match backend {
        Backend::Sqlite => {
            exec(conn, "DROP TRIGGER audit_purges_checked").await;
            exec(conn, "DROP TRIGGER audit_purges_no_delete").await;
        }
        Backend::Postgres => exec(conn, "ALTER TABLE audit_purges DISABLE TRIGGER USER").await,
    }
}

/// A log of 12 entries checkpointed, then seven years later 3 more: entries
/// 1–12 are past the default retention.
async fn log_with_old_entries(backend: Backend) -> Option<TestServer> {
    let t = TestServer::start_with(backend, |c| c.audit.checkpoint_every = 5).await?;
    t.fill_audit(12).await;
    t.state.audit.checkpoint_now().await.unwrap();
    t.clock.advance(7 * 365 * 86_400);
    t.fill_audit(3).await;
    t.state.audit.checkpoint_now().await.unwrap();
    Some(t)
}

/// A purge made with the audit key by someone who skips the rules (a
/// compromised server): an `audit.purge` event, a signed record, the delete.
async fn rogue_purge(
    t: &TestServer,
    up_to: i64,
    cutoff_ms: i64,
    retention_days: i64,
) -> Result<u64, wardline_store::StoreError> {
    let event_seq = t
        .state
        .audit
        .record(NewEvent::service("retention", AuditAction::AuditPurge).target("audit_log", up_to))
        .await
        .unwrap();
    let at_ms = t.sql.audit_entries(event_seq - 1, 1).await.unwrap()[0].at_ms;
    let sig = t
        .keys
        .sign_checkpoint(&wardline_proto::audit::purge_message(
            up_to,
            at_ms,
            cutoff_ms,
            retention_days,
            event_seq,
        ))
        .unwrap();
    t.sql
        .purge_audit(&wardline_store::PurgeRow {
            up_to,
            at_ms,
            cutoff_ms,
            retention_days: Some(retention_days),
            event_seq: Some(event_seq),
            key_id: Some(sig.key_id),
            signature: Some(sig.signature.to_vec()),
        })
        .await
}

/// C1 of the 2026-11-30 findings: one inserted `audit_purges` row let the
/// delete trigger pass, and the verifier accepted any purge point.
async fn a_forged_purge_record_is_refused(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let state = run_verify(&t, None).await.trusted.unwrap();
    let mut conn = raw(&t).await;
    // With the guards in place, an unsigned purge record is refused...
    let err = sqlx::raw_sql(
        "INSERT INTO audit_purges (up_to, at_ms, cutoff_ms) VALUES (30, 1796020000000, 1796020000000)",
    )
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("audit_purges"), "{err}");
    // ...and so is a delete of entries younger than any purge's cutoff.
    let err = sqlx::raw_sql("DELETE FROM audit_log WHERE seq <= 30")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");

    // Someone who can drop triggers gets the rows deleted, not past the verifier.
    drop_all_guards(&mut conn, backend).await;
    exec(
        &mut conn,
        "INSERT INTO audit_purges (up_to, at_ms, cutoff_ms) VALUES (30, 1796020000000, 1796020000000)",
    )
    .await;
    exec(&mut conn, "DELETE FROM audit_log WHERE seq <= 30").await;
    let unsigned = Finding::BadPurge {
        up_to: 30,
        detail: "its record is not signed".into(),
    };
    for r in [
        run_verify(&t, None).await,
        run_verify(&t, Some(&state)).await,
        run_verify_with(
            &t,
            Options {
                trusted: Some(state.clone()),
                full: true,
                ..Default::default()
            },
        )
        .await,
    ] {
        assert!(!r.ok());
        assert!(r.findings.contains(&unsigned), "{:?}", r.findings);
    }
    assert_eq!(
        unsigned.to_string(),
        "the purge of entries 1–30 was not made by Wardline's retention (its record is not signed)"
    );
}

/// A purge signed with the real key is still refused when it breaks the
/// rules: entries younger than the retention period, or a hold open.
async fn a_signed_purge_against_the_rules_is_refused(backend: Backend) {
    let Some(t) = log_with_old_entries(backend).await else {
        return;
    };
    let state = run_verify(&t, None).await.trusted.unwrap();
    // A hold is placed (its event is what the verifier follows) and never released.
    t.state
        .audit
        .record(NewEvent::service("test", AuditAction::LegalHoldPlace).target("legal_hold", "h-1"))
        .await
        .unwrap();
    let now = t.clock.now_ms();
    let days = 2192;
    // Entries 1–12 are old enough: the database lets the purge through, the
    // verifier sees the hold.
    assert_eq!(
        rogue_purge(&t, 10, now - days * 86_400_000, days)
            .await
            .unwrap(),
        10
    );
    let r = run_verify(&t, Some(&state)).await;
    assert!(
        r.findings.contains(&Finding::PurgeDuringHold {
            up_to: 10,
            holds: vec!["h-1".into()]
        }),
        "{:?}",
        r.findings
    );

    // A purge record claiming a shorter retention than the server's.
    let Some(t) = log_with_old_entries(backend).await else {
        return;
    };
    let now = t.clock.now_ms();
    rogue_purge(&t, 10, now - 400 * 86_400_000, 400)
        .await
        .unwrap();
    let r = run_verify(&t, None).await;
    assert_eq!(
        r.findings,
        vec![Finding::BadPurge {
            up_to: 10,
            detail: "it kept 400 days, less than the 2192-day retention".into()
        }]
    );
    // A purge of entries younger than its cutoff claims: the database refuses
    // it; with the trigger dropped, the verifier does (signed checkpoint times).
    let mut conn = raw(&t).await;
    let young = t.sql.latest_audit_checkpoint().await.unwrap().unwrap().size;
    let cutoff = now - days * 86_400_000;
    assert!(
        rogue_purge(&t, young, cutoff, days).await.is_err(),
        "the trigger refuses a purge at a checkpoint younger than its cutoff"
    );
    drop_all_guards(&mut conn, backend).await;
    t.state.audit.checkpoint_now().await.unwrap();
    let young = t.sql.latest_audit_checkpoint().await.unwrap().unwrap().size;
    rogue_purge(&t, young, cutoff, days).await.unwrap();
    let r = run_verify(&t, None).await;
    assert!(
        r.findings
            .iter()
            .any(|f| matches!(f, Finding::BadPurge { up_to, detail }
            if *up_to == young && detail.contains("signed after its cutoff"))),
        "{:?}",
        r.findings
    );

    // Removing a purge record afterwards does not move the purge point back
    // for a verifier that remembers it.
    let Some(t) = log_with_old_entries(backend).await else {
        return;
    };
    retention::purge_expired(
        t.sql.as_ref(),
        t.sql.as_ref(),
        t.keys.as_ref(),
        &t.state.audit,
        t.clock.as_ref(),
        2192,
    )
    .await
    .unwrap()
    .unwrap();
    t.state.audit.checkpoint_now().await.unwrap();
    let state = run_verify(&t, None).await.trusted.unwrap();
    assert_eq!(state.purged_up_to, 12);
    let mut conn = raw(&t).await;
    drop_all_guards(&mut conn, backend).await;
    exec(&mut conn, "DELETE FROM audit_purges").await;
    let r = run_verify(&t, Some(&state)).await;
    assert!(
        r.findings.contains(&Finding::PurgeRolledBack {
            expected: 12,
            found: 0
        }),
        "{:?}",
        r.findings
    );
}

/// H1 of the 2026-11-30 findings: `--full` ignored the state (tail
/// truncation passed) and a history re-signed with a substituted key under
/// the same key id passed.
async fn full_verification_keeps_the_state_and_pinned_keys(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let state = run_verify(&t, None).await.trusted.unwrap();
    assert_eq!(state.keys.len(), 1, "the first run pins the key it used");
    let full = |trusted: &Trusted| Options {
        trusted: Some(trusted.clone()),
        full: true,
        ..Default::default()
    };
    assert!(run_verify_with(&t, full(&state)).await.ok());

    // Key substitution: a new seed under the same key id, every entry's MAC
    // and every checkpoint's signature recomputed with it.
    let key_file = t.config.key_file();
    let mut ring: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    let id = ring["current_signing"].as_str().unwrap().to_owned();
    ring["signing"][&id] = serde_json::json!("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=");
    std::fs::write(&key_file, serde_json::to_vec(&ring).unwrap()).unwrap();
    let forger = LocalKeyFile::open_read_only(&key_file).unwrap();
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    for row in t.sql.audit_entries(0, 100).await.unwrap() {
        let mac = forger.audit_entry_mac(&row.chain_hash).unwrap();
        exec(
            &mut conn,
            &format!(
                "UPDATE audit_log SET mac = {} WHERE seq = {}",
                blob(backend, &mac),
                row.seq
            ),
        )
        .await;
    }
    let attacker_copy = t.data_dir.path().join("attacker-kek.json");
    std::fs::copy(&key_file, &attacker_copy).unwrap();
    let signer = LocalKeyFile::open_or_create(&attacker_copy).unwrap();
    for cp in t.sql.audit_checkpoints(0, 100).await.unwrap() {
        let msg = checkpoint_message(
            cp.size,
            cp.at_ms,
            &hex::encode(&cp.root),
            &hex::encode(&cp.chain_head),
        );
        let sig = signer.sign_checkpoint(&msg).unwrap();
        exec(
            &mut conn,
            &format!(
                "UPDATE audit_checkpoints SET signature = {} WHERE size = {}",
                blob(backend, &sig.signature),
                cp.size
            ),
        )
        .await;
    }
    // With nothing pinned the host's key file is all there is to go by...
    let r = run_verify(&t, None).await;
    assert!(r.ok(), "{:?}", r.findings);
    assert_eq!(r.keys_trusted_on_first_use, vec![id.clone()]);
    // ...but the state pinned the real key, and so does --public-key.
    for r in [
        run_verify_with(&t, full(&state)).await,
        run_verify(&t, Some(&state)).await,
        run_verify_with(
            &t,
            Options {
                full: true,
                pinned_keys: state
                    .keys
                    .iter()
                    .map(|(k, v)| (k.clone(), hex::decode(v).unwrap().try_into().unwrap()))
                    .collect(),
                ..Default::default()
            },
        )
        .await,
    ] {
        assert!(
            r.findings.contains(&Finding::BadSignature {
                size: 30,
                detail: "signature does not match".into()
            }),
            "{:?}",
            r.findings
        );
    }
    // A key id that was never pinned is refused as such.
    let other = run_verify_with(
        &t,
        Options {
            pinned_keys: [("audit-other".to_owned(), [9u8; 32])].into(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        other
            .findings
            .iter()
            .any(|f| matches!(f, Finding::BadSignature { detail, .. }
            if detail.contains("not a pinned key"))),
        "{:?}",
        other.findings
    );
}

/// `--full` after a tail truncation that removed checkpoints too.
async fn full_verification_detects_truncation_against_the_state(backend: Backend) {
    let Some(t) = log_of_30(backend).await else {
        return;
    };
    let state = run_verify(&t, None).await.trusted.unwrap();
    let mut conn = raw(&t).await;
    drop_guards(&mut conn, backend).await;
    exec(&mut conn, "DELETE FROM audit_checkpoints WHERE size > 20").await;
    exec(&mut conn, "DELETE FROM audit_log WHERE seq > 20").await;
    let r = run_verify_with(
        &t,
        Options {
            trusted: Some(state.clone()),
            full: true,
            ..Default::default()
        },
    )
    .await;
    assert!(
        r.findings
            .contains(&Finding::TrustedCheckpointChanged { size: 30 }),
        "{:?}",
        r.findings
    );
    assert!(r.findings.contains(&Finding::Truncated {
        expected: 30,
        found: 20
    }));
    assert!(r.trusted.is_none() || r.trusted.as_ref().unwrap().size < state.size);
}

/// A session found past its idle timeout is ended once, and that is audited
/// in its organisation with the session as target; later uses of the token
/// are refusals, not further expiries.
async fn session_expiry_is_audited_once(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let session = nurse.client.current_session().await.unwrap().session_id;
    t.clock.advance(16 * 60);
    for _ in 0..2 {
        let err = nurse.client.current_session().await.unwrap_err();
        assert_eq!(err.code(), Some(wardline_proto::ErrorCode::Unauthenticated));
    }
    let rows = t.sql.audit_entries(0, 10_000).await.unwrap();
    let expiries: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "auth.session.expire")
        .collect();
    assert_eq!(expiries.len(), 1);
    assert_eq!(expiries[0].target_id, Some(session.to_string()));
    assert_eq!(expiries[0].org_id, Some(admin.user.org_id.to_string()));
    let refusals = rows
        .iter()
        .filter(|r| r.action == "auth.session.view" && r.outcome == "denied")
        .count();
    // The second refusal (the session is gone: an anonymous request) is
    // counted with the minute's repeats, written as one entry (finding M7).
    assert_eq!(refusals, 1);
    t.state.anonymous.flush(&t.state.audit, i64::MAX).await;
    let rows = t.sql.audit_entries(0, 10_000).await.unwrap();
    let repeats: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "auth.session.view" && r.outcome == "denied")
        .filter_map(|r| r.reason.as_deref())
        .filter(|r| r.starts_with("anonymous_repeats: 1 more"))
        .collect();
    assert_eq!(repeats.len(), 1, "{repeats:?}");
}

both_backends!(
    session_expiry_is_audited_once,
    untouched_log_verifies_and_guards_refuse_changes,
    detects_a_modified_entry,
    detects_a_deleted_entry,
    detects_a_deletion_hidden_by_renumbering,
    detects_an_inserted_entry,
    detects_reordered_entries,
    detects_truncation,
    detects_a_change_with_recomputed_hashes,
    detects_a_forged_entry_at_the_unsigned_tail,
    detects_a_forged_checkpoint,
    incremental_verification_starts_at_the_trusted_checkpoint,
    proofs_through_the_api_verify,
    search_reports_and_exports,
    retention_purges_old_entries_and_keeps_verification,
    a_forged_purge_record_is_refused,
    a_signed_purge_against_the_rules_is_refused,
    full_verification_keeps_the_state_and_pinned_keys,
    full_verification_detects_truncation_against_the_state,
);

/// Every route of the API is in the audit route table, and every entry of the
/// table is a route: a PHI route added without an audit declaration fails here
/// (and the authorization matrix then checks that each call left its event).
#[tokio::test]
async fn every_route_is_declared_in_the_audit_table() {
    use wardline_server::request_audit::{ROUTES, RouteAudit};
    let (_, doc) = wardline_server::app::api();
    let doc = serde_json::to_value(&doc).unwrap();
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let declared: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "routes with no audit declaration: {missing:?}"
    );
    let stale: Vec<_> = declared.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "audit declarations for no route: {stale:?}"
    );
    let exempt: Vec<_> = ROUTES
        .iter()
        .filter(|(_, _, a)| matches!(a, RouteAudit::Exempt(_)))
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert_eq!(
        exempt,
        // Reviewed: the built-in role table; one's own availability (no
        // patient or other user's data, asked at every app start); the
        // alert link's fixed notice.
        vec![
            "GET /api/v1/roles",
            "GET /api/v1/routing/presence",
            "GET /alerts/{id}"
        ],
        "exemptions need review"
    );
}
