//! Conformance of [`AuditStore`](crate::AuditStore), and of the sign-in
//! attempt limits and remembered devices of [`Store`](crate::Store).

#[allow(unused_imports)]
use super::*;

use crate::{AuditRow, CheckpointRow, PurgeRow};
use wardline_proto::audit::AuditQuery;

/// The tests of this module, for [`conformance_suite!`](crate::conformance_suite).
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_audit_tests {
    ($open:path) => {
        $crate::conformance_suite!(@tests $open;
            audit_entries_are_appended_and_paged_in_seq_order,
            audit_append_conflict_writes_nothing,
            audit_search_is_scoped_by_organisation_and_filtered,
            audit_checkpoints_are_found_by_size_and_paged,
            audit_purge_needs_a_signed_record_and_keeps_newer_entries,
            audit_export_cursors_are_kept_per_sink,
            login_attempts_are_taken_one_at_a_time_until_the_hold_lapses,
            remembered_devices_are_found_by_token_until_too_old,
        );
    };
}

const AUDIT_DAY_MS: i64 = 86_400_000;

/// A minimal entry: every optional field empty, hashes derived from `seq`.
fn audit_row(seq: i64, at_ms: i64, org: Option<Uuid>, action: &str) -> AuditRow {
    AuditRow {
        seq,
        at_ms,
        org_id: org.map(|o| o.to_string()),
        actor_kind: "user".into(),
        actor_id: None,
        device_id: None,
        source_ip: None,
        user_agent: None,
        action: action.into(),
        target_type: None,
        target_id: None,
        patient_id: None,
        outcome: "success".into(),
        reason: None,
        changes: None,
        leaf_hash: audit_hash(1, seq),
        chain_hash: audit_hash(2, seq),
        mac: audit_hash(3, seq),
    }
}

/// A 32-byte hash that differs per `kind` and `seq`.
fn audit_hash(kind: u8, seq: i64) -> Vec<u8> {
    let mut h = vec![kind; 24];
    h.extend_from_slice(&seq.to_be_bytes());
    h
}

/// An entry with every optional field set.
fn audit_full_row(seq: i64, at_ms: i64, org: Uuid) -> AuditRow {
    AuditRow {
        actor_id: Some(Uuid::new_v4().to_string()),
        device_id: Some(Uuid::new_v4().to_string()),
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("wardline-ios/1.2".into()),
        target_type: Some("patient".into()),
        target_id: Some("t-1".into()),
        patient_id: Some("p-1".into()),
        reason: Some("chart review".into()),
        changes: Some(r#"{"name":["a","b"]}"#.into()),
        outcome: "denied".into(),
        actor_kind: "service".into(),
        ..audit_row(seq, at_ms, Some(org), "patient.view")
    }
}

fn audit_checkpoint_row(size: i64, at_ms: i64) -> CheckpointRow {
    CheckpointRow {
        size,
        at_ms,
        root: audit_hash(4, size),
        chain_head: audit_hash(5, size),
        key_id: format!("ak-{size}"),
        signature: vec![size as u8; 64],
        frontier: [audit_hash(6, size), audit_hash(7, size)].concat(),
    }
}

fn audit_seqs(rows: &[AuditRow]) -> Vec<i64> {
    rows.iter().map(|r| r.seq).collect()
}

pub async fn audit_entries_are_appended_and_paged_in_seq_order<E: Engine>(s: Arc<E>) {
    let o = Uuid::new_v4();
    assert!(s.last_audit_entry().await.unwrap().is_none());
    assert!(s.audit_entries(0, 10).await.unwrap().is_empty());
    assert!(s.audit_leaf_hashes(0, 10).await.unwrap().is_empty());

    // Every field round-trips, optional ones as values and as NULL.
    let full = audit_full_row(1, 1_000, o);
    let bare = audit_row(2, 1_001, None, "setup.complete");
    s.append_audit(&[full.clone(), bare.clone()], None)
        .await
        .unwrap();
    assert_eq!(s.last_audit_entry().await.unwrap(), Some(bare.clone()));
    assert_eq!(
        s.audit_entries(0, 10).await.unwrap(),
        vec![full.clone(), bare.clone()]
    );

    // A batch larger than one INSERT statement keeps every row, in order.
    let batch: Vec<AuditRow> = (3..=152)
        .map(|seq| audit_row(seq, 2_000 + seq, Some(o), "message.send"))
        .collect();
    s.append_audit(&batch, Some(&audit_checkpoint_row(152, 9_000)))
        .await
        .unwrap();
    assert_eq!(s.last_audit_entry().await.unwrap(), batch.last().cloned());
    let all = s.audit_entries(0, 1_000).await.unwrap();
    assert_eq!(audit_seqs(&all), (1..=152).collect::<Vec<_>>());
    assert_eq!(all[2..], batch[..]);

    // Paging: strictly after `after`, at most `limit`.
    assert_eq!(audit_seqs(&s.audit_entries(2, 3).await.unwrap()), [3, 4, 5]);
    assert_eq!(
        audit_seqs(&s.audit_entries(149, 10).await.unwrap()),
        [150, 151, 152]
    );
    assert!(s.audit_entries(152, 10).await.unwrap().is_empty());
    assert!(s.audit_entries(0, 0).await.unwrap().is_empty());

    // Leaf hashes: after < seq <= up_to, ascending.
    assert_eq!(
        s.audit_leaf_hashes(1, 4).await.unwrap(),
        vec![audit_hash(1, 2), audit_hash(1, 3), audit_hash(1, 4)]
    );
    assert_eq!(s.audit_leaf_hashes(0, 152).await.unwrap().len(), 152);
    assert!(s.audit_leaf_hashes(5, 5).await.unwrap().is_empty());
    assert_eq!(
        s.audit_leaf_hashes(150, 1_000).await.unwrap(),
        vec![audit_hash(1, 151), audit_hash(1, 152)]
    );
}

pub async fn audit_append_conflict_writes_nothing<E: Engine>(s: Arc<E>) {
    let o = Some(Uuid::new_v4());
    let e = |seq| audit_row(seq, 100 + seq, o, "auth.login");
    s.append_audit(&[e(1), e(2)], Some(&audit_checkpoint_row(2, 500)))
        .await
        .unwrap();

    // Another writer already has seq 2: the new seq 3 is not written either.
    assert!(matches!(
        s.append_audit(&[e(3), e(2)], None).await,
        Err(StoreError::Conflict(_))
    ));
    // The same seq twice in one batch.
    assert!(matches!(
        s.append_audit(&[e(3), e(3)], None).await,
        Err(StoreError::Conflict(_))
    ));
    // A conflict in a later INSERT statement undoes the earlier ones.
    let mut long: Vec<AuditRow> = (3..=102).map(e).collect();
    long.push(e(1));
    assert!(matches!(
        s.append_audit(&long, None).await,
        Err(StoreError::Conflict(_))
    ));
    // An existing checkpoint size: the entries of the call are not written.
    assert!(matches!(
        s.append_audit(&[e(3)], Some(&audit_checkpoint_row(2, 600)))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        audit_seqs(&s.audit_entries(0, 1_000).await.unwrap()),
        [1, 2]
    );
    assert_eq!(s.last_audit_entry().await.unwrap(), Some(e(2)));
    assert_eq!(
        s.audit_checkpoint(2).await.unwrap(),
        Some(audit_checkpoint_row(2, 500)),
        "the first checkpoint stands"
    );

    // The seqs left free are still free.
    s.append_audit(&[e(3), e(4)], Some(&audit_checkpoint_row(4, 700)))
        .await
        .unwrap();
    assert_eq!(
        audit_seqs(&s.audit_entries(0, 1_000).await.unwrap()),
        [1, 2, 3, 4]
    );
    assert_eq!(
        s.latest_audit_checkpoint().await.unwrap(),
        Some(audit_checkpoint_row(4, 700))
    );
}

pub async fn audit_search_is_scoped_by_organisation_and_filtered<E: Engine>(s: Arc<E>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (u1, u2) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let (d1, d2) = (Uuid::new_v4(), Uuid::new_v4());
    let with = |seq, at, org, action: &str, f: &dyn Fn(&mut AuditRow)| {
        let mut r = audit_row(seq, at, org, action);
        f(&mut r);
        r
    };
    let rows = vec![
        with(1, 1_000, Some(a), "auth.login", &|r| {
            r.actor_id = Some(u1.clone());
            r.device_id = Some(d1.to_string());
        }),
        with(2, 1_100, Some(b), "auth.login", &|r| {
            r.actor_id = Some(u1.clone());
            r.device_id = Some(d1.to_string());
        }),
        with(3, 2_000, Some(a), "patient.view", &|r| {
            r.actor_id = Some(u2.clone());
            r.patient_id = Some("p1".into());
            r.target_id = Some("t1".into());
            r.target_type = Some("patient".into());
        }),
        with(4, 2_100, None, "auth.login", &|r| {
            r.actor_id = Some(u1.clone());
        }),
        with(5, 3_000, Some(a), "auth.logout", &|r| {
            r.actor_id = Some(u1.clone());
            r.device_id = Some(d2.to_string());
            r.target_id = Some("t1".into());
        }),
        with(6, 4_000, Some(a), "auth.login", &|r| {
            r.actor_id = Some(u1.clone());
            r.device_id = Some(d1.to_string());
        }),
    ];
    s.append_audit(&rows, None).await.unwrap();

    let search = |org: Uuid, q: AuditQuery, limit: i64| {
        let s = s.clone();
        async move { audit_seqs(&s.search_audit(org.into(), &q, limit).await.unwrap()) }
    };
    let all = AuditQuery::default();
    // Newest first, one organisation only (never the installation-wide rows).
    assert_eq!(search(a, all.clone(), 100).await, [6, 5, 3, 1]);
    assert_eq!(search(b, all.clone(), 100).await, [2]);
    assert!(search(Uuid::new_v4(), all.clone(), 100).await.is_empty());
    // Whole rows come back.
    assert_eq!(
        s.search_audit(b.into(), &all, 100).await.unwrap(),
        vec![rows[1].clone()]
    );

    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        search(a, q(&|q| q.actor = Some(u1.clone())), 100).await,
        [6, 5, 1]
    );
    assert_eq!(
        search(a, q(&|q| q.patient = Some("p1".into())), 100).await,
        [3]
    );
    assert_eq!(search(a, q(&|q| q.device = Some(d1)), 100).await, [6, 1]);
    assert_eq!(
        search(a, q(&|q| q.target = Some("t1".into())), 100).await,
        [5, 3]
    );
    assert_eq!(
        search(a, q(&|q| q.action = Some("auth.login".into())), 100).await,
        [6, 1]
    );
    // `from_ms` is inclusive, `to_ms` exclusive.
    assert_eq!(
        search(a, q(&|q| q.from_ms = Some(2_000)), 100).await,
        [6, 5, 3]
    );
    assert_eq!(search(a, q(&|q| q.to_ms = Some(3_000)), 100).await, [3, 1]);
    assert_eq!(
        search(
            a,
            q(&|q| {
                q.from_ms = Some(2_000);
                q.to_ms = Some(3_000);
            }),
            100
        )
        .await,
        [3]
    );
    // Paging newest first: `limit`, then `before_seq` of the last one seen.
    assert_eq!(search(a, all.clone(), 2).await, [6, 5]);
    assert_eq!(search(a, q(&|q| q.before_seq = Some(5)), 2).await, [3, 1]);
    assert!(
        search(a, q(&|q| q.before_seq = Some(1)), 2)
            .await
            .is_empty()
    );
    // Filters combine with AND.
    assert_eq!(
        search(
            a,
            q(&|q| {
                q.actor = Some(u1.clone());
                q.action = Some("auth.login".into());
                q.before_seq = Some(6);
            }),
            100
        )
        .await,
        [1]
    );
    assert!(
        search(
            b,
            q(&|q| {
                q.actor = Some(u1.clone());
                q.device = Some(d2);
            }),
            100
        )
        .await
        .is_empty()
    );
}

pub async fn audit_checkpoints_are_found_by_size_and_paged<E: Engine>(s: Arc<E>) {
    assert!(s.latest_audit_checkpoint().await.unwrap().is_none());
    assert!(s.audit_checkpoint(1).await.unwrap().is_none());
    assert!(s.audit_checkpoints(0, 10).await.unwrap().is_empty());

    let o = Some(Uuid::new_v4());
    let (c2, c5, c10) = (
        audit_checkpoint_row(2, 2_000),
        audit_checkpoint_row(5, 5_000),
        audit_checkpoint_row(10, 10_000),
    );
    let e = |from: i64, to: i64| -> Vec<AuditRow> {
        (from..=to)
            .map(|seq| audit_row(seq, seq * 1_000, o, "x"))
            .collect()
    };
    s.append_audit(&e(1, 2), Some(&c2)).await.unwrap();
    assert_eq!(s.latest_audit_checkpoint().await.unwrap(), Some(c2.clone()));
    s.append_audit(&e(3, 5), Some(&c5)).await.unwrap();
    s.append_audit(&e(6, 8), None).await.unwrap();
    s.append_audit(&e(9, 10), Some(&c10)).await.unwrap();

    assert_eq!(
        s.latest_audit_checkpoint().await.unwrap(),
        Some(c10.clone())
    );
    assert_eq!(s.audit_checkpoint(5).await.unwrap(), Some(c5.clone()));
    assert_eq!(s.audit_checkpoint(2).await.unwrap(), Some(c2.clone()));
    assert!(
        s.audit_checkpoint(8).await.unwrap().is_none(),
        "only sizes that were checkpointed"
    );
    assert_eq!(
        s.audit_checkpoints(0, 10).await.unwrap(),
        vec![c2.clone(), c5.clone(), c10.clone()]
    );
    assert_eq!(s.audit_checkpoints(2, 1).await.unwrap(), vec![c5.clone()]);
    assert_eq!(
        s.audit_checkpoints(3, 10).await.unwrap(),
        vec![c5, c10.clone()]
    );
    assert_eq!(s.audit_checkpoints(5, 10).await.unwrap(), vec![c10]);
    assert!(s.audit_checkpoints(10, 10).await.unwrap().is_empty());
    assert!(s.audit_checkpoints(0, 0).await.unwrap().is_empty());
}

pub async fn audit_purge_needs_a_signed_record_and_keeps_newer_entries<E: Engine>(s: Arc<E>) {
    assert_eq!(s.audit_purged_up_to().await.unwrap(), 0);
    assert!(s.audit_purges().await.unwrap().is_empty());
    assert_eq!(s.audit_purgeable_size(i64::MAX).await.unwrap(), None);

    let o = Some(Uuid::new_v4());
    let now = 1_000 * AUDIT_DAY_MS;
    let e = |seq: i64, at| audit_row(seq, at, o, "auth.login");
    let purge_event = |seq: i64, at, up_to: i64| {
        let mut r = audit_row(seq, at, None, "audit.purge");
        r.target_type = Some("audit_log".into());
        r.target_id = Some(up_to.to_string());
        r
    };
    // Checkpoint 2 is signed (1_500) before its last entry's time (2_000).
    s.append_audit(
        &[e(1, 1_000), e(2, 2_000)],
        Some(&audit_checkpoint_row(2, 1_500)),
    )
    .await
    .unwrap();
    s.append_audit(
        &[e(3, 3_000), e(4, 4_000)],
        Some(&audit_checkpoint_row(4, 4_500)),
    )
    .await
    .unwrap();

    // The largest checkpoint signed strictly before the cutoff.
    assert_eq!(s.audit_purgeable_size(1_500).await.unwrap(), None);
    assert_eq!(s.audit_purgeable_size(1_501).await.unwrap(), Some(2));
    assert_eq!(s.audit_purgeable_size(4_500).await.unwrap(), Some(2));
    assert_eq!(s.audit_purgeable_size(4_501).await.unwrap(), Some(4));

    s.append_audit(&[purge_event(5, now, 2)], None)
        .await
        .unwrap();
    let good = PurgeRow {
        up_to: 2,
        at_ms: now,
        cutoff_ms: 3_000,
        retention_days: Some(365),
        event_seq: Some(5),
        key_id: Some("ak-1".into()),
        signature: Some(vec![9; 64]),
    };
    // Refused records: nothing is recorded and nothing deleted.
    let refused = [
        PurgeRow {
            signature: None,
            ..good.clone()
        },
        PurgeRow {
            signature: Some(vec![9; 63]),
            ..good.clone()
        },
        PurgeRow {
            key_id: None,
            ..good.clone()
        },
        PurgeRow {
            retention_days: Some(364),
            ..good.clone()
        },
        PurgeRow {
            retention_days: None,
            ..good.clone()
        },
        // The cutoff is not `retention_days` before the purge.
        PurgeRow {
            cutoff_ms: now - 365 * AUDIT_DAY_MS + 1,
            ..good.clone()
        },
        // No checkpoint of that size.
        PurgeRow {
            up_to: 3,
            ..good.clone()
        },
        // Checkpoint 2 is not older than the cutoff.
        PurgeRow {
            cutoff_ms: 1_500,
            ..good.clone()
        },
        // Entry 2 (2_000) is not older than the cutoff.
        PurgeRow {
            cutoff_ms: 1_600,
            ..good.clone()
        },
        // The event named is not this purge's `audit.purge` entry.
        PurgeRow {
            event_seq: Some(4),
            ..good.clone()
        },
        PurgeRow {
            event_seq: None,
            ..good.clone()
        },
    ];
    for (i, p) in refused.iter().enumerate() {
        assert!(s.purge_audit(p).await.is_err(), "purge record {i} accepted");
    }
    assert_eq!(s.audit_purged_up_to().await.unwrap(), 0);
    assert!(s.audit_purges().await.unwrap().is_empty());
    assert_eq!(
        audit_seqs(&s.audit_entries(0, 100).await.unwrap()),
        [1, 2, 3, 4, 5]
    );

    assert_eq!(s.purge_audit(&good).await.unwrap(), 2);
    assert_eq!(s.audit_purged_up_to().await.unwrap(), 2);
    assert_eq!(s.audit_purges().await.unwrap(), vec![good.clone()]);
    assert_eq!(
        audit_seqs(&s.audit_entries(0, 100).await.unwrap()),
        [3, 4, 5]
    );
    assert_eq!(
        s.audit_leaf_hashes(0, 5).await.unwrap(),
        vec![audit_hash(1, 3), audit_hash(1, 4), audit_hash(1, 5)]
    );
    assert_eq!(s.last_audit_entry().await.unwrap().unwrap().seq, 5);
    // Checkpoints outlive their entries.
    assert_eq!(
        s.audit_checkpoint(2).await.unwrap(),
        Some(audit_checkpoint_row(2, 1_500))
    );
    // Only checkpoints above the purge point are purgeable.
    assert_eq!(s.audit_purgeable_size(4_500).await.unwrap(), None);
    assert_eq!(s.audit_purgeable_size(4_501).await.unwrap(), Some(4));
    // The same purge twice.
    assert!(matches!(
        s.purge_audit(&good).await,
        Err(StoreError::Conflict(_))
    ));

    // A later purge deletes only what the earlier one left.
    s.append_audit(&[purge_event(6, now + 1, 4)], None)
        .await
        .unwrap();
    let next = PurgeRow {
        up_to: 4,
        at_ms: now + 1,
        cutoff_ms: 5_000,
        retention_days: Some(400),
        event_seq: Some(6),
        key_id: Some("ak-2".into()),
        signature: Some(vec![8; 64]),
    };
    assert_eq!(s.purge_audit(&next).await.unwrap(), 2);
    assert_eq!(s.audit_purged_up_to().await.unwrap(), 4);
    assert_eq!(s.audit_purges().await.unwrap(), vec![good, next]);
    assert_eq!(audit_seqs(&s.audit_entries(0, 100).await.unwrap()), [5, 6]);
    assert_eq!(s.audit_purgeable_size(i64::MAX).await.unwrap(), None);
    assert_eq!(s.audit_checkpoints(0, 10).await.unwrap().len(), 2);
}

pub async fn audit_export_cursors_are_kept_per_sink<E: Engine>(s: Arc<E>) {
    assert_eq!(s.audit_export_cursor("splunk").await.unwrap(), 0);
    s.set_audit_export_cursor("splunk", 10, 1_000)
        .await
        .unwrap();
    assert_eq!(s.audit_export_cursor("splunk").await.unwrap(), 10);
    assert_eq!(
        s.audit_export_cursor("elastic").await.unwrap(),
        0,
        "each sink has its own cursor"
    );
    s.set_audit_export_cursor("elastic", 3, 1_001)
        .await
        .unwrap();
    s.set_audit_export_cursor("splunk", 25, 1_002)
        .await
        .unwrap();
    assert_eq!(s.audit_export_cursor("splunk").await.unwrap(), 25);
    assert_eq!(s.audit_export_cursor("elastic").await.unwrap(), 3);
    s.set_audit_export_cursor("elastic", 40, 1_003)
        .await
        .unwrap();
    assert_eq!(s.audit_export_cursor("elastic").await.unwrap(), 40);
    assert_eq!(s.audit_export_cursor("splunk").await.unwrap(), 25);
}

pub async fn login_attempts_are_taken_one_at_a_time_until_the_hold_lapses<E: Engine>(s: Arc<E>) {
    let throttle = |key: &'static str| {
        let s = s.clone();
        async move {
            let t = s.get_throttle(key).await.unwrap().unwrap();
            (t.failures, t.last_failure_at)
        }
    };
    // The first attempt counts and holds the key.
    assert_eq!(s.take_attempt("k", 100, 0, 105).await.unwrap(), Ok(1));
    assert_eq!(throttle("k").await, (1, 100));
    // Held: refused with the end of the hold, and not counted.
    assert_eq!(s.take_attempt("k", 102, 0, 107).await.unwrap(), Err(105));
    assert_eq!(throttle("k").await, (1, 100));
    // Other keys are not held.
    assert_eq!(s.take_attempt("other", 102, 0, 107).await.unwrap(), Ok(1));
    // The hold lapses at its end.
    assert_eq!(s.take_attempt("k", 105, 0, 110).await.unwrap(), Ok(2));
    assert_eq!(throttle("k").await, (2, 105));

    // A back-off after a failure replaces the hold, longer ...
    s.hold_throttle("k", 200).await.unwrap();
    assert_eq!(s.take_attempt("k", 150, 0, 155).await.unwrap(), Err(200));
    assert_eq!(s.take_attempt("k", 200, 0, 205).await.unwrap(), Ok(3));
    // ... or shorter (no back-off: the attempt in flight releases the key).
    s.hold_throttle("k", 201).await.unwrap();
    assert_eq!(s.take_attempt("k", 201, 0, 206).await.unwrap(), Ok(4));
    assert_eq!(throttle("k").await, (4, 201));

    // A streak whose last failure is older than `decay_before` restarts.
    assert_eq!(s.take_attempt("k", 1_000, 202, 1_005).await.unwrap(), Ok(1));
    assert_eq!(throttle("k").await, (1, 1_000));
    assert_eq!(s.take_attempt("k", 1_010, 202, 1_015).await.unwrap(), Ok(2));
    // Clearing the key drops its hold and its count.
    s.clear_throttle("k").await.unwrap();
    assert_eq!(s.take_attempt("k", 1_011, 0, 1_016).await.unwrap(), Ok(1));

    // A burst under one key: exactly one attempt is evaluated.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.take_attempt("burst", 500, 0, 600).await.unwrap()
        }));
    }
    let mut taken = Vec::new();
    for t in tasks {
        taken.push(t.await.unwrap());
    }
    assert_eq!(taken.iter().filter(|r| **r == Ok(1)).count(), 1);
    assert_eq!(taken.iter().filter(|r| **r == Err(600)).count(), 15);
    assert_eq!(throttle("burst").await, (1, 500));
}

pub async fn remembered_devices_are_found_by_token_until_too_old<E: Engine>(s: Arc<E>) {
    let (a, b) = (org("alpha"), org("beta"));
    s.insert_org(&a).await.unwrap();
    s.insert_org(&b).await.unwrap();
    let ka = key(s.as_ref(), Some(a.id)).await;
    let kb = key(s.as_ref(), Some(b.id)).await;
    let ua = user(a.id, &ka, "ra");
    let ub = user(b.id, &kb, "rb");
    s.insert_user(&ua).await.unwrap();
    s.insert_user(&ub).await.unwrap();
    let (phone, laptop, tablet) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());

    assert!(s.remembered_device("tok-1", 0).await.unwrap().is_none());
    s.remember_device("tok-1", a.id, ua.id, phone.into(), 1_000)
        .await
        .unwrap();
    s.remember_device("tok-2", a.id, ua.id, laptop.into(), 2_000)
        .await
        .unwrap();
    s.remember_device("tok-3", b.id, ub.id, tablet.into(), 3_000)
        .await
        .unwrap();

    // Given at or after `not_before`.
    assert_eq!(
        s.remembered_device("tok-1", 1_000).await.unwrap(),
        Some((a.id, ua.id, phone.into()))
    );
    assert!(s.remembered_device("tok-1", 1_001).await.unwrap().is_none());
    assert_eq!(
        s.remembered_device("tok-2", 0).await.unwrap(),
        Some((a.id, ua.id, laptop.into()))
    );
    assert_eq!(
        s.remembered_device("tok-3", 2_500).await.unwrap(),
        Some((b.id, ub.id, tablet.into()))
    );
    assert!(s.remembered_device("tok-4", 0).await.unwrap().is_none());

    // A token is given once: a second use of it does not move it.
    assert!(
        s.remember_device("tok-1", b.id, ub.id, tablet.into(), 5_000)
            .await
            .is_err()
    );
    assert_eq!(
        s.remembered_device("tok-1", 0).await.unwrap(),
        Some((a.id, ua.id, phone.into()))
    );
    // Only real accounts remember devices.
    assert!(
        s.remember_device("tok-5", a.id, Uuid::new_v4().into(), phone.into(), 5_000)
            .await
            .is_err()
    );
    assert!(s.remembered_device("tok-5", 0).await.unwrap().is_none());
}
