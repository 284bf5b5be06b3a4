//! The conformance suite: what every engine must do, written once against
//! the traits and run by each engine's crate on each of its databases with
//! [`conformance_suite!`](crate::conformance_suite) (the pattern of
//! matrix-rust-sdk's store integration tests).
//!
//! Each test takes a fresh, empty, migrated store. Assertions name the
//! invariant they hold (scoping by organisation, one-time values consumed
//! once, compare-and-swap, counts under concurrency).

use std::sync::Arc;

use uuid::Uuid;
use wardline_proto::directory::{OrgPolicy, UserStatus};
use wardline_proto::{DeviceId, OrgId, Role, SessionId, UserId};

use crate::{
    AuditStore, DataKeyRow, LifecycleStore, MessagingStore, MfaChallengeRow, OrgRow, PatientStore,
    RoutingStore, SessionRow, Store, StoreError, UserRow,
};

mod audit;
mod lifecycle;
mod messaging;
mod patients;
mod routing;

pub use audit::*;
pub use lifecycle::*;
pub use messaging::*;
pub use patients::*;
pub use routing::*;

/// An engine: one value implementing every store trait, as the services see it.
pub trait Engine:
    Store + MessagingStore + PatientStore + RoutingStore + LifecycleStore + AuditStore
{
}
impl<T> Engine for T where
    T: Store + MessagingStore + PatientStore + RoutingStore + LifecycleStore + AuditStore
{
}

/// Expands to one `#[tokio::test]` per conformance test. `$open` is an async
/// fn returning `Option<(Arc<E>, G)>`: a fresh migrated store and a guard
/// kept alive for the test (a temporary directory); `None` skips the test
/// (an engine not available here). Each trait's module lists its own tests
/// in a `conformance_<trait>_tests!` macro, called here.
#[macro_export]
macro_rules! conformance_suite {
    ($open:path) => {
        $crate::conformance_suite!(@tests $open;
            organisations_and_settings,
            data_keys_rewrap_is_compare_and_swap,
            users_are_scoped_by_organisation,
            sessions_and_revocation,
            socket_tickets_are_taken_once_before_they_lapse,
            mfa_challenges_and_throttle,
            concurrent_failures_are_all_counted,
        );
        $crate::conformance_audit_tests!($open);
        $crate::conformance_lifecycle_tests!($open);
        $crate::conformance_messaging_tests!($open);
        $crate::conformance_patients_tests!($open);
        $crate::conformance_routing_tests!($open);
    };
    (@tests $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, _guard)) = $open().await else {
                    return;
                };
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// An organisation, inserted, with a data key of its own (for the rows
/// sealed under one).
async fn org_with_key<E: Engine>(s: &E, slug: &str) -> (OrgRow, String) {
    let o = org(slug);
    s.insert_org(&o).await.unwrap();
    let k = key(s, Some(o.id)).await;
    (o, k)
}

/// A user of `org`, inserted; its id.
async fn inserted_user<E: Engine>(s: &E, org: OrgId, dek: &str, bidx: &str) -> UserId {
    let u = user(org, dek, bidx);
    s.insert_user(&u).await.unwrap();
    u.id
}

/// An organisation row with a default policy.
pub fn org(slug: &str) -> OrgRow {
    OrgRow {
        id: OrgId::new_v4(),
        name: format!("Org {slug}"),
        slug: slug.into(),
        policy: OrgPolicy {
            idle_timeout_secs: 900,
            absolute_lifetime_secs: 43_200,
            mfa_required: true,
            messaging: Default::default(),
            patients: Default::default(),
            devices: Default::default(),
            routing: Default::default(),
        },
        created_at: 1_700_000_000,
    }
}

async fn key(store: &dyn Store, org: Option<OrgId>) -> String {
    let k = data_key(org);
    store.insert_data_key(&k).await.unwrap();
    k.id
}

/// A fresh data key row, not stored (for the methods that store a row
/// together with the key it is sealed under).
fn data_key(org: Option<OrgId>) -> DataKeyRow {
    DataKeyRow {
        id: format!("dk-{}", Uuid::new_v4()),
        org_id: org,
        kek_id: "kek-a".into(),
        wrapped: vec![1, 2, 3],
        created_at: 1,
    }
}

/// A device of `user`, inserted with `key_packages`; its id.
async fn inserted_device<E: Engine>(
    s: &E,
    org: OrgId,
    user: UserId,
    key_packages: &[(Vec<u8>, bool)],
) -> DeviceId {
    let d = crate::messaging::DeviceRow {
        id: DeviceId::new_v4(),
        org_id: org,
        user_id: user,
        name: "phone".into(),
        identity_key: vec![3; 32],
        created_at: 1,
        retired_at: None,
        inbox_seq: 0,
        acked_seq: 0,
        posture: None,
    };
    s.insert_device(&d, key_packages).await.unwrap();
    d.id
}

/// `v` in order, for comparing what the store does not promise to order.
fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn user(org: OrgId, dek: &str, bidx: &str) -> UserRow {
    UserRow {
        id: UserId::new_v4(),
        org_id: org,
        dek_id: dek.into(),
        email_bidx: bidx.into(),
        email_enc: vec![9; 40],
        display_name_enc: vec![8; 40],
        phone_enc: None,
        roles: vec![Role::Nurse, Role::FrontDesk],
        status: UserStatus::Active,
        password_hash: "$argon2id$fake".into(),
        totp_secret_enc: None,
        totp_enabled: false,
        totp_last_step: 0,
        password_change_required: true,
        created_at: 10,
        updated_at: 10,
    }
}

fn session(org: OrgId, user: UserId, device: DeviceId) -> SessionRow {
    SessionRow {
        id: SessionId::new_v4(),
        org_id: org,
        user_id: user,
        device_id: device,
        token_hash: Uuid::new_v4().as_bytes().to_vec(),
        created_at: 100,
        last_seen_at: 100,
        expires_at: 1000,
        idle_timeout_secs: 900,
        mfa_complete: false,
        revoked_at: None,
    }
}

pub async fn organisations_and_settings<E: Engine>(s: Arc<E>) {
    s.ping().await.unwrap();
    assert_eq!(s.count_orgs().await.unwrap(), 0);
    let a = org("alpha");
    s.insert_org(&a).await.unwrap();
    assert!(matches!(
        s.insert_org(&OrgRow {
            id: Uuid::new_v4().into(),
            ..a.clone()
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_org(a.id).await.unwrap(), a);
    assert_eq!(s.get_org_by_slug("alpha").await.unwrap(), a);
    assert!(matches!(
        s.get_org(Uuid::new_v4().into()).await,
        Err(StoreError::NotFound)
    ));
    let p = OrgPolicy {
        idle_timeout_secs: 300,
        absolute_lifetime_secs: 3600,
        mfa_required: false,
        messaging: Default::default(),
        patients: Default::default(),
        devices: Default::default(),
        routing: Default::default(),
    };
    s.update_org_policy(a.id, &p).await.unwrap();
    assert_eq!(s.get_org(a.id).await.unwrap().policy, p);
    assert!(matches!(
        s.update_org_policy(Uuid::new_v4().into(), &p).await,
        Err(StoreError::NotFound)
    ));

    assert_eq!(s.get_setting("k").await.unwrap(), None);
    s.put_setting("k", "v1").await.unwrap();
    s.put_setting("k", "v2").await.unwrap();
    assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("v2"));
    assert!(!s.consume_setting("k", "v1").await.unwrap());
    assert!(s.consume_setting("k", "v2").await.unwrap());
    assert!(
        !s.consume_setting("k", "v2").await.unwrap(),
        "a one-time value is consumed once"
    );
}

pub async fn data_keys_rewrap_is_compare_and_swap<E: Engine>(s: Arc<E>) {
    let k1 = key(s.as_ref(), None).await;
    let k2 = key(s.as_ref(), Some(Uuid::new_v4().into())).await;
    assert!(matches!(
        s.insert_data_key(&DataKeyRow {
            id: k1.clone(),
            org_id: None,
            kek_id: "x".into(),
            wrapped: vec![],
            created_at: 0
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.data_keys_not_under("kek-b", 10).await.unwrap().len(), 2);
    assert!(
        s.rewrap_data_key(&k1, "kek-a", "kek-b", &[7, 7])
            .await
            .unwrap()
    );
    assert!(
        !s.rewrap_data_key(&k1, "kek-a", "kek-c", &[0])
            .await
            .unwrap(),
        "stale rewrap must not apply"
    );
    let row = s.get_data_key(&k1).await.unwrap();
    assert_eq!(
        (row.kek_id.as_str(), row.wrapped.as_slice()),
        ("kek-b", &[7u8, 7][..])
    );
    let left = s.data_keys_not_under("kek-b", 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, k2);
    assert_eq!(
        s.count_data_keys_by_kek().await.unwrap(),
        vec![("kek-a".to_string(), 1), ("kek-b".to_string(), 1)]
    );
}

pub async fn users_are_scoped_by_organisation<E: Engine>(s: Arc<E>) {
    let (a, b) = (org("alpha"), org("beta"));
    s.insert_org(&a).await.unwrap();
    s.insert_org(&b).await.unwrap();
    let k = key(s.as_ref(), Some(a.id)).await;
    let mut u = user(a.id, &k, "idx-1");
    u.phone_enc = Some(vec![1; 30]);
    s.insert_user(&u).await.unwrap();
    assert_eq!(s.get_user(a.id, u.id).await.unwrap(), u);
    // Same e-mail index in the same org conflicts; in another org it does not.
    assert!(matches!(
        s.insert_user(&user(a.id, &k, "idx-1")).await,
        Err(StoreError::Conflict(_))
    ));
    let kb = key(s.as_ref(), Some(b.id)).await;
    s.insert_user(&user(b.id, &kb, "idx-1")).await.unwrap();
    // Another organisation's id is indistinguishable from a missing one.
    assert!(matches!(
        s.get_user(b.id, u.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.find_user_by_email(b.id, "idx-1")
            .await
            .unwrap()
            .unwrap()
            .id
            != u.id
    );
    assert_eq!(
        s.find_user_by_email(a.id, "idx-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    assert!(s.find_user_by_email(a.id, "nope").await.unwrap().is_none());
    let listed = s.list_users_with_keys(a.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, u);
    assert_eq!(listed[0].1.id, k);
    assert_eq!(listed[0].1.wrapped, vec![1, 2, 3]);

    let mut changed = u.clone();
    changed.status = UserStatus::Suspended;
    changed.roles = vec![Role::Physician];
    changed.totp_enabled = true;
    changed.totp_secret_enc = Some(vec![5; 30]);
    changed.phone_enc = None;
    changed.updated_at = 20;
    s.update_user(&changed).await.unwrap();
    let back = s.get_user(a.id, u.id).await.unwrap();
    assert_eq!(
        back,
        UserRow {
            totp_last_step: 0,
            ..changed.clone()
        }
    );
    // An update aimed at the wrong tenant changes nothing.
    assert!(matches!(
        s.update_user(&UserRow {
            org_id: b.id,
            ..changed
        })
        .await,
        Err(StoreError::NotFound)
    ));

    assert!(s.advance_totp_step(a.id, u.id, 5).await.unwrap());
    assert!(
        !s.advance_totp_step(a.id, u.id, 5).await.unwrap(),
        "a TOTP step is accepted once"
    );
    assert!(!s.advance_totp_step(a.id, u.id, 4).await.unwrap());
    assert!(!s.advance_totp_step(b.id, u.id, 9).await.unwrap());

    s.replace_recovery_codes(a.id, u.id, &[vec![1], vec![2]])
        .await
        .unwrap();
    assert!(!s.consume_recovery_code(b.id, u.id, &[1]).await.unwrap());
    assert!(s.consume_recovery_code(a.id, u.id, &[1]).await.unwrap());
    assert!(
        !s.consume_recovery_code(a.id, u.id, &[1]).await.unwrap(),
        "a recovery code works once"
    );
    s.replace_recovery_codes(a.id, u.id, &[vec![3]])
        .await
        .unwrap();
    assert!(
        !s.consume_recovery_code(a.id, u.id, &[2]).await.unwrap(),
        "replacing drops old codes"
    );
}

/// A socket ticket opens one socket: taken once (also by two takers at the
/// same moment), never after it lapsed, and lapsed ones do not pile up.
pub async fn socket_tickets_are_taken_once_before_they_lapse<E: Engine>(s: Arc<E>) {
    let a = org("alpha");
    s.insert_org(&a).await.unwrap();
    let k = key(s.as_ref(), Some(a.id)).await;
    let u = user(a.id, &k, "i");
    s.insert_user(&u).await.unwrap();
    let s1 = session(a.id, u.id, Uuid::new_v4().into());
    s.insert_session(&s1).await.unwrap();
    assert_eq!(s.get_session(s1.id).await.unwrap().unwrap(), s1);
    assert!(
        s.get_session(Uuid::new_v4().into())
            .await
            .unwrap()
            .is_none()
    );

    s.insert_socket_ticket(b"t1", s1.id, 130).await.unwrap();
    assert!(
        s.take_socket_ticket(b"other", 100).await.unwrap().is_none(),
        "an unknown ticket"
    );
    assert_eq!(
        s.take_socket_ticket(b"t1", 100).await.unwrap().unwrap().id,
        s1.id
    );
    assert!(
        s.take_socket_ticket(b"t1", 101).await.unwrap().is_none(),
        "a ticket opens one socket"
    );
    // Lapsed at its expiry second.
    s.insert_socket_ticket(b"t2", s1.id, 130).await.unwrap();
    assert!(s.take_socket_ticket(b"t2", 130).await.unwrap().is_none());
    // Two takers of one ticket: exactly one gets the session.
    for round in 0..10u8 {
        let t = [b't', b'r', round];
        s.insert_socket_ticket(&t, s1.id, 500).await.unwrap();
        let (x, y) = (s.clone(), s.clone());
        let (rx, ry) = tokio::join!(
            async move { x.take_socket_ticket(&t, 200).await.unwrap() },
            async move { y.take_socket_ticket(&t, 200).await.unwrap() }
        );
        assert_eq!(
            rx.is_some() as u8 + ry.is_some() as u8,
            1,
            "round {round}: one taker"
        );
    }
    // Tickets left untaken are deleted once lapsed, by the next take.
    for i in 0..5u8 {
        s.insert_socket_ticket(&[b'l', i], s1.id, 300)
            .await
            .unwrap();
    }
    assert!(s.take_socket_ticket(b"none", 301).await.unwrap().is_none());
    for i in 0..5u8 {
        s.insert_socket_ticket(&[b'l', i], s1.id, 900)
            .await
            .expect("the lapsed ticket's row is gone, so its hash is free");
    }
}

pub async fn sessions_and_revocation<E: Engine>(s: Arc<E>) {
    let a = org("alpha");
    s.insert_org(&a).await.unwrap();
    let k = key(s.as_ref(), Some(a.id)).await;
    let u = user(a.id, &k, "i");
    s.insert_user(&u).await.unwrap();
    let (phone, laptop) = (Uuid::new_v4(), Uuid::new_v4());
    let s1 = session(a.id, u.id, phone.into());
    let s2 = session(a.id, u.id, laptop.into());
    let s3 = SessionRow {
        created_at: 110,
        last_seen_at: 130,
        ..session(a.id, u.id, laptop.into())
    };
    for x in [&s1, &s2, &s3] {
        s.insert_session(x).await.unwrap();
    }
    assert_eq!(
        s.get_session_by_token_hash(&s1.token_hash)
            .await
            .unwrap()
            .unwrap(),
        s1
    );
    assert!(
        s.get_session_by_token_hash(b"nope")
            .await
            .unwrap()
            .is_none()
    );
    s.touch_session(s1.id, 150).await.unwrap();
    s.touch_session(s1.id, 120).await.unwrap(); // never moves backwards
    // Last sign-in: the newest session's start; last contact per device:
    // its sessions' latest request. Another organisation's are not there.
    assert_eq!(s.last_sign_ins(a.id).await.unwrap(), vec![(u.id, 110)]);
    let mut contacts = s.device_last_contacts(a.id, u.id).await.unwrap();
    contacts.sort();
    let mut want = vec![(phone.into(), 150), (laptop.into(), 130)];
    want.sort();
    assert_eq!(contacts, want);
    assert!(
        s.last_sign_ins(Uuid::new_v4().into())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.get_session_by_token_hash(&s1.token_hash)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        150
    );
    s.complete_session_mfa(s1.id).await.unwrap();
    assert!(
        s.get_session_by_token_hash(&s1.token_hash)
            .await
            .unwrap()
            .unwrap()
            .mfa_complete
    );

    assert_eq!(
        s.list_user_sessions(a.id, u.id, 500).await.unwrap().len(),
        3
    );
    assert_eq!(
        s.list_user_sessions(a.id, u.id, 1000).await.unwrap().len(),
        0,
        "expired sessions are not listed"
    );
    // One device, sparing the caller's own session.
    assert_eq!(
        s.revoke_user_sessions(a.id, u.id, Some(laptop.into()), Some(s3.id), 200)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.revoke_user_sessions(Uuid::new_v4().into(), u.id, None, None, 200)
            .await
            .unwrap(),
        0
    );
    assert!(s.revoke_session(s3.id, 210).await.unwrap());
    assert!(!s.revoke_session(s3.id, 220).await.unwrap());
    let live = s.list_user_sessions(a.id, u.id, 500).await.unwrap();
    assert_eq!(live.iter().map(|x| x.id).collect::<Vec<_>>(), vec![s1.id]);
    assert_eq!(
        s.revoke_user_sessions(a.id, u.id, None, None, 300)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.get_session_by_token_hash(&s1.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(300)
    );
}

pub async fn mfa_challenges_and_throttle<E: Engine>(s: Arc<E>) {
    let c = MfaChallengeRow {
        token_hash: vec![4; 32],
        org_id: Uuid::new_v4().into(),
        user_id: Uuid::new_v4().into(),
        device_id: Uuid::new_v4().into(),
        expires_at: 99,
        attempts: 0,
    };
    s.insert_mfa_challenge(&c).await.unwrap();
    assert_eq!(
        s.get_mfa_challenge(&c.token_hash).await.unwrap().unwrap(),
        c
    );
    assert_eq!(
        s.bump_mfa_challenge_attempts(&c.token_hash).await.unwrap(),
        1
    );
    assert_eq!(
        s.bump_mfa_challenge_attempts(&c.token_hash).await.unwrap(),
        2
    );
    s.delete_mfa_challenge(&c.token_hash).await.unwrap();
    assert!(s.get_mfa_challenge(&c.token_hash).await.unwrap().is_none());
    assert!(matches!(
        s.bump_mfa_challenge_attempts(&c.token_hash).await,
        Err(StoreError::NotFound)
    ));

    assert!(s.get_throttle("ip:1").await.unwrap().is_none());
    assert_eq!(s.record_failure("ip:1", 100, 0).await.unwrap().failures, 1);
    assert_eq!(s.record_failure("ip:1", 101, 0).await.unwrap().failures, 2);
    let t = s.get_throttle("ip:1").await.unwrap().unwrap();
    assert_eq!((t.failures, t.last_failure_at), (2, 101));
    // A streak older than the decay horizon starts over.
    assert_eq!(
        s.record_failure("ip:1", 5000, 200).await.unwrap().failures,
        1
    );
    s.clear_throttle("ip:1").await.unwrap();
    assert!(s.get_throttle("ip:1").await.unwrap().is_none());
}

pub async fn concurrent_failures_are_all_counted<E: Engine>(s: Arc<E>) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_failure("acct:x", 100, 0).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.get_throttle("acct:x").await.unwrap().unwrap().failures,
        20
    );
}
