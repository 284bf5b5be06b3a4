//! Conformance of [`MessagingStore`](crate::MessagingStore).

#[allow(unused_imports)]
use super::*;

use std::collections::BTreeSet;

use wardline_proto::lifecycle::{ConversationLifecycle, DevicePosture, Retention};
use wardline_proto::messaging::{ConversationKind, DeviceState, MessageKind, Priority};

use crate::messaging::{
    AttachmentRow, ConversationDeviceRow, ConversationRow, DeviceRow, DeviceStock, InboxRow,
    MessageRow, PushSubscriptionRow, ReadMark, ReceiptRow, Submission, SubmitOutcome,
};

/// The tests of this module, for [`conformance_suite!`](crate::conformance_suite).
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_messaging_tests {
    ($open:path) => {
        $crate::conformance_suite!(@tests $open;
            devices_round_trip_and_are_listed_with_their_key_package_stock,
            key_packages_are_claimed_once_before_the_last_resort_one,
            concurrent_key_package_claims_never_share_a_package,
            conversations_round_trip_and_a_pair_has_one_direct_conversation,
            a_new_device_waits_to_join_every_conversation_of_its_user,
            members_are_added_and_removed_once_with_a_membership_notice,
            submit_takes_one_commit_per_epoch_and_refuses_what_it_must,
            concurrent_commits_at_one_epoch_accept_exactly_one,
            submitted_messages_round_trip_every_field_by_conversation,
            inboxes_are_paged_in_order_without_recalled_or_expired_messages,
            acks_move_the_cursor_forward_only_and_mark_delivery,
            read_marks_cover_shown_messages_or_routine_ones_up_to_a_watermark,
            a_refused_write_leaves_the_next_writer_free,
            read_receipt_sharing_defaults_to_on_and_is_kept_per_user,
            refounding_needs_no_member_device_and_a_waiting_one,
            attachments_round_trip_with_their_key_scoped_by_conversation,
            push_subscriptions_reach_only_devices_with_a_live_session,
        );
    };
}

// ------------------------------------------------------------------ helpers

/// A device row as a fresh registration stores it.
fn messaging_device_row(org: Uuid, user: Uuid, name: &str, created_at: i64) -> DeviceRow {
    DeviceRow {
        id: Uuid::new_v4().into(),
        org_id: org.into(),
        user_id: user.into(),
        name: name.into(),
        identity_key: Uuid::new_v4().as_bytes().to_vec(),
        created_at,
        retired_at: None,
        inbox_seq: 0,
        acked_seq: 0,
        posture: None,
    }
}

async fn messaging_device<E: Engine>(s: &E, org: Uuid, user: Uuid, created_at: i64) -> Uuid {
    let d = messaging_device_row(org, user, "phone", created_at);
    s.insert_device(&d, &[]).await.unwrap();
    d.id.into()
}

/// A group conversation with no optional field set.
fn messaging_conversation_row(org: Uuid, dek: &str, creator: Uuid, at: i64) -> ConversationRow {
    ConversationRow {
        id: Uuid::new_v4(),
        org_id: org.into(),
        kind: ConversationKind::Group,
        dek_id: dek.into(),
        title_enc: None,
        patient_ref_enc: None,
        direct_key: None,
        created_by: creator.into(),
        created_at: at,
        epoch: 0,
        last_activity_at: at,
        lifecycle: ConversationLifecycle::default(),
        patient_ref_bidx: None,
        role_id: None,
        routed_user: None,
        routed_via: None,
        care_team_id: None,
    }
}

fn messaging_cd(user_id: Uuid, device_id: Uuid, state: DeviceState) -> ConversationDeviceRow {
    ConversationDeviceRow {
        device_id: device_id.into(),
        user_id: user_id.into(),
        state,
    }
}

/// A message of `kind` from `device`; the body hash is derived from `body`
/// (so equal bodies are a replay).
fn messaging_message(
    conversation: Uuid,
    kind: MessageKind,
    (user, device): (Uuid, Uuid),
    epoch: i64,
    body: &str,
    at: i64,
) -> MessageRow {
    MessageRow {
        id: Uuid::new_v4(),
        conversation_id: conversation,
        kind,
        sender_user: Some(user.into()),
        sender_device: Some(device.into()),
        epoch,
        priority: Priority::Routine,
        body: Some(body.as_bytes().to_vec()),
        body_hash: Some(format!("sha256:{body}").into_bytes()),
        created_at: at,
        dek_id: None,
        expires_at: None,
        recalled_at: None,
        recalls: None,
        alert: None,
        shared_again: None,
        original_created_at: None,
    }
}

fn messaging_submission(message: MessageRow) -> Submission {
    Submission {
        message,
        welcome: None,
        added: vec![],
        removed: vec![],
        keys: vec![],
        routed: None,
    }
}

/// An organisation with Alice and Bob (one device each) in a group
/// conversation at epoch 0, both devices members.
struct MessagingWard {
    org: OrgRow,
    dek: String,
    alice: UserId,
    a1: DeviceId,
    bob: UserId,
    b1: DeviceId,
    conv: ConversationRow,
}

impl MessagingWard {
    fn alice(&self) -> (Uuid, Uuid) {
        (self.alice.into(), self.a1.into())
    }
    fn bob(&self) -> (Uuid, Uuid) {
        (self.bob.into(), self.b1.into())
    }
}

async fn messaging_ward<E: Engine>(s: &E, slug: &str) -> MessagingWard {
    let (o, dek) = org_with_key(s, slug).await;
    let alice = inserted_user(s, o.id, &dek, "alice").await;
    let bob = inserted_user(s, o.id, &dek, "bob").await;
    let a1 = messaging_device(s, o.id.into(), alice.into(), 1).await;
    let b1 = messaging_device(s, o.id.into(), bob.into(), 1).await;
    let conv = messaging_conversation_row(o.id.into(), &dek, alice.into(), 10);
    s.create_conversation(
        &conv,
        &[alice, bob],
        &[
            messaging_cd(alice.into(), a1, DeviceState::Member),
            messaging_cd(bob.into(), b1, DeviceState::Member),
        ],
    )
    .await
    .unwrap();
    MessagingWard {
        org: o,
        dek,
        alice,
        a1: a1.into(),
        bob,
        b1: b1.into(),
        conv,
    }
}

/// Submits an application message and expects it accepted.
async fn messaging_send<E: Engine>(s: &E, m: MessageRow) -> MessageRow {
    let out = s.submit(&messaging_submission(m.clone())).await.unwrap();
    assert!(
        matches!(out, SubmitOutcome::Accepted { epoch, .. } if epoch == m.epoch),
        "{out:?}"
    );
    m
}

fn messaging_seqs(rows: &[InboxRow]) -> Vec<i64> {
    rows.iter().map(|r| r.seq).collect()
}

fn messaging_ids(rows: &[InboxRow]) -> Vec<Uuid> {
    rows.iter().map(|r| r.message.id).collect()
}

fn messaging_devices_sorted(mut v: Vec<ConversationDeviceRow>) -> Vec<ConversationDeviceRow> {
    v.sort_by_key(|d| d.device_id);
    v
}

fn messaging_receipt(rows: &[ReceiptRow], device: Uuid) -> ReceiptRow {
    rows.iter()
        .find(|r| r.device_id == device)
        .unwrap_or_else(|| panic!("no receipt for device {device}"))
        .clone()
}

async fn messaging_inbox<E: Engine>(s: &E, device: Uuid) -> Vec<InboxRow> {
    s.inbox_after(device.into(), 0, 1000, 0).await.unwrap()
}

// -------------------------------------------------------------------- tests

pub async fn devices_round_trip_and_are_listed_with_their_key_package_stock<E: Engine>(s: Arc<E>) {
    let (a, dek) = org_with_key(&*s, "alpha").await;
    let (b, _) = org_with_key(&*s, "beta").await;
    let u = inserted_user(&*s, a.id, &dek, "u").await;
    let other = inserted_user(&*s, a.id, &dek, "other").await;

    let phone = messaging_device_row(a.id.into(), u.into(), "phone", 20);
    let woken = s
        .insert_device(
            &phone,
            &[(vec![1], false), (vec![2], false), (vec![9], true)],
        )
        .await
        .unwrap();
    assert!(woken.is_empty(), "a user in no conversation wakes nobody");
    assert_eq!(s.get_device(a.id, phone.id).await.unwrap(), phone);
    // Another organisation's device is indistinguishable from a missing one.
    assert!(matches!(
        s.get_device(b.id, phone.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_device(a.id, Uuid::new_v4().into()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.insert_device(
            &DeviceRow {
                name: "again".into(),
                ..phone.clone()
            },
            &[(vec![3], false)]
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_device(a.id, phone.id).await.unwrap().name, "phone");

    let laptop = messaging_device_row(a.id.into(), u.into(), "laptop", 10);
    s.insert_device(&laptop, &[]).await.unwrap();
    let others = messaging_device_row(a.id.into(), other.into(), "tablet", 5);
    s.insert_device(&others, &[(vec![7], false)]).await.unwrap();

    // Oldest first, each with its stock of one-use and last-resort packages;
    // the rejected duplicate left no packages behind.
    assert_eq!(
        s.list_user_devices(a.id, u).await.unwrap(),
        vec![
            DeviceStock {
                device: laptop.clone(),
                available: 0,
                has_last_resort: false,
            },
            DeviceStock {
                device: phone.clone(),
                available: 2,
                has_last_resort: true,
            },
        ]
    );
    assert!(s.list_user_devices(b.id, u).await.unwrap().is_empty());

    let p1 = DevicePosture {
        platform: "ios".into(),
        os_version: "17.4.1".into(),
        compromised: false,
    };
    s.set_posture(phone.id, &p1, 30).await.unwrap();
    assert_eq!(
        s.get_device(a.id, phone.id).await.unwrap(),
        DeviceRow {
            posture: Some(p1),
            ..phone.clone()
        }
    );
    let p2 = DevicePosture {
        platform: "android".into(),
        os_version: "14".into(),
        compromised: true,
    };
    s.set_posture(phone.id, &p2, 40).await.unwrap();
    let listed = s.list_user_devices(a.id, u).await.unwrap();
    assert_eq!(listed[1].device.posture, Some(p2), "the last report wins");
    assert_eq!(listed[0].device.posture, None, "other devices keep none");
}

pub async fn key_packages_are_claimed_once_before_the_last_resort_one<E: Engine>(s: Arc<E>) {
    let (a, dek) = org_with_key(&*s, "alpha").await;
    let u = inserted_user(&*s, a.id, &dek, "u").await;
    let d = messaging_device_row(a.id.into(), u.into(), "phone", 1);
    s.insert_device(&d, &[(vec![1], false), (vec![2], false), (vec![90], true)])
        .await
        .unwrap();
    let bare = messaging_device(&*s, a.id.into(), u.into(), 2).await;
    let stock = |list: Vec<DeviceStock>, id: Uuid| {
        let x = list.into_iter().find(|x| x.device.id == id).unwrap();
        (x.available, x.has_last_resort)
    };

    let first = s.claim_key_package(d.id).await.unwrap().unwrap();
    let second = s.claim_key_package(d.id).await.unwrap().unwrap();
    assert_eq!(
        BTreeSet::from([first, second]),
        BTreeSet::from([vec![1], vec![2]]),
        "each one-use package is handed out once"
    );
    assert_eq!(
        stock(s.list_user_devices(a.id, u).await.unwrap(), d.id.into()),
        (0, true)
    );
    // With no one-use package left, the last-resort one is handed out and kept.
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), Some(vec![90]));
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), Some(vec![90]));
    assert_eq!(
        stock(s.list_user_devices(a.id, u).await.unwrap(), d.id.into()),
        (0, true)
    );

    // One-use packages go first again once there are some.
    s.add_key_packages(d.id, &[(vec![3], false)], 10)
        .await
        .unwrap();
    assert_eq!(
        stock(s.list_user_devices(a.id, u).await.unwrap(), d.id.into()),
        (1, true)
    );
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), Some(vec![3]));
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), Some(vec![90]));

    // A new last-resort package replaces the previous one.
    s.add_key_packages(d.id, &[(vec![4], false), (vec![91], true)], 20)
        .await
        .unwrap();
    assert_eq!(
        stock(s.list_user_devices(a.id, u).await.unwrap(), d.id.into()),
        (1, true)
    );
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), Some(vec![4]));
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), Some(vec![91]));
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), Some(vec![91]));

    // Packages belong to their device.
    assert_eq!(s.claim_key_package(bare.into()).await.unwrap(), None);
    assert_eq!(
        stock(s.list_user_devices(a.id, u).await.unwrap(), bare),
        (0, false)
    );
    s.add_key_packages(bare.into(), &[(vec![5], false)], 30)
        .await
        .unwrap();
    assert_eq!(
        stock(s.list_user_devices(a.id, u).await.unwrap(), bare),
        (1, false)
    );
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), Some(vec![91]));
    assert_eq!(
        s.claim_key_package(bare.into()).await.unwrap(),
        Some(vec![5])
    );
    assert_eq!(s.claim_key_package(bare.into()).await.unwrap(), None);
}

pub async fn concurrent_key_package_claims_never_share_a_package<E: Engine>(s: Arc<E>) {
    let (a, dek) = org_with_key(&*s, "alpha").await;
    let u = inserted_user(&*s, a.id, &dek, "u").await;
    let d = messaging_device_row(a.id.into(), u.into(), "phone", 1);
    let kps: Vec<(Vec<u8>, bool)> = (0u8..12).map(|i| (vec![i], false)).collect();
    s.insert_device(&d, &kps).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_key_package(d.id).await.unwrap()
        }));
    }
    let mut claimed = BTreeSet::new();
    for t in tasks {
        // Twelve claims, twelve packages: a claimer that loses a race takes
        // the next package, never "none" while one-use packages are left
        // (PostgreSQL answered `None` to 5-7 of 12 before SKIP LOCKED).
        let kp = t
            .await
            .unwrap()
            .expect("a package while one-use packages are left");
        assert!(claimed.insert(kp), "a one-use package was handed out twice");
    }
    assert_eq!(claimed, kps.into_iter().map(|(kp, _)| kp).collect());
    assert_eq!(s.claim_key_package(d.id).await.unwrap(), None);
}

pub async fn conversations_round_trip_and_a_pair_has_one_direct_conversation<E: Engine>(s: Arc<E>) {
    let (a, dek) = org_with_key(&*s, "alpha").await;
    let (b, _) = org_with_key(&*s, "beta").await;
    let alice = inserted_user(&*s, a.id, &dek, "alice").await;
    let bob = inserted_user(&*s, a.id, &dek, "bob").await;
    let carol = inserted_user(&*s, a.id, &dek, "carol").await;
    let a1 = messaging_device(&*s, a.id.into(), alice.into(), 1).await;
    let b1 = messaging_device(&*s, a.id.into(), bob.into(), 1).await;
    let c1 = messaging_device(&*s, a.id.into(), carol.into(), 1).await;

    // Every optional field set.
    let g = ConversationRow {
        title_enc: Some(vec![5; 16]),
        patient_ref_enc: Some(vec![6; 24]),
        epoch: 3,
        last_activity_at: 100,
        lifecycle: ConversationLifecycle {
            retention: Some(Retention::Days(30)),
            message_ttl_secs: Some(3600),
        },
        patient_ref_bidx: Some("pt-1".into()),
        role_id: Some(Uuid::new_v4()),
        routed_user: Some(bob),
        routed_via: Some("on_call".into()),
        care_team_id: Some(Uuid::new_v4()),
        ..messaging_conversation_row(a.id.into(), &dek, alice.into(), 90)
    };
    let g_devices = vec![
        messaging_cd(alice.into(), a1, DeviceState::Member),
        messaging_cd(bob.into(), b1, DeviceState::PendingAdd),
    ];
    s.create_conversation(&g, &[alice, bob], &g_devices)
        .await
        .unwrap();
    assert_eq!(s.get_conversation(a.id, g.id).await.unwrap(), g);
    assert!(matches!(
        s.get_conversation(b.id, g.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_conversation(a.id, Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        sorted(s.conversation_members(g.id).await.unwrap()),
        sorted(vec![alice, bob])
    );
    assert!(s.is_member(g.id, alice).await.unwrap());
    assert!(s.is_member(g.id, bob).await.unwrap());
    assert!(!s.is_member(g.id, carol).await.unwrap());
    assert!(!s.is_member(Uuid::new_v4(), alice).await.unwrap());
    assert_eq!(
        messaging_devices_sorted(s.conversation_devices(g.id).await.unwrap()),
        messaging_devices_sorted(g_devices)
    );
    assert!(
        s.conversation_devices(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.conversation_members(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );

    // A direct conversation, no optional field set but its pair's key.
    let pair = format!("{}:{}", alice.min(carol), alice.max(carol));
    let d = ConversationRow {
        kind: ConversationKind::Direct,
        direct_key: Some(pair.clone()),
        last_activity_at: 50,
        ..messaging_conversation_row(a.id.into(), &dek, carol.into(), 50)
    };
    s.create_conversation(
        &d,
        &[alice, carol],
        &[
            messaging_cd(alice.into(), a1, DeviceState::Member),
            messaging_cd(carol.into(), c1, DeviceState::Member),
        ],
    )
    .await
    .unwrap();
    assert_eq!(s.get_conversation(a.id, d.id).await.unwrap(), d);
    assert_eq!(s.find_direct(a.id, &pair).await.unwrap(), Some(d.clone()));
    assert_eq!(s.find_direct(b.id, &pair).await.unwrap(), None);
    assert_eq!(s.find_direct(a.id, "nobody:nobody").await.unwrap(), None);
    let again = ConversationRow {
        id: Uuid::new_v4(),
        ..d.clone()
    };
    assert!(matches!(
        s.create_conversation(&again, &[alice, carol], &[]).await,
        Err(StoreError::Conflict("direct conversation"))
    ));
    assert!(matches!(
        s.get_conversation(a.id, again.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.conversation_members(again.id).await.unwrap().is_empty());

    // A user's conversations, most recently active first, in their organisation.
    let ids = |v: Vec<ConversationRow>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        s.user_conversations(a.id, alice).await.unwrap(),
        vec![g.clone(), d.clone()]
    );
    assert_eq!(
        ids(s.user_conversations(a.id, carol).await.unwrap()),
        vec![d.id]
    );
    assert_eq!(
        ids(s.user_conversations(a.id, bob).await.unwrap()),
        vec![g.id]
    );
    assert!(s.user_conversations(b.id, alice).await.unwrap().is_empty());
}

pub async fn a_new_device_waits_to_join_every_conversation_of_its_user<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    // A conversation Alice is not in.
    let carol = inserted_user(&*s, w.org.id, &w.dek, "carol").await;
    let other = messaging_conversation_row(w.org.id.into(), &w.dek, w.bob.into(), 10);
    s.create_conversation(
        &other,
        &[w.bob, carol],
        &[messaging_cd(w.bob.into(), w.b1.into(), DeviceState::Member)],
    )
    .await
    .unwrap();

    let a2 = messaging_device_row(w.org.id.into(), w.alice.into(), "laptop", 200);
    let woken = s.insert_device(&a2, &[(vec![1], false)]).await.unwrap();
    assert_eq!(
        sorted(woken),
        sorted(vec![w.a1, w.b1]),
        "the members' devices are told"
    );
    assert_eq!(
        messaging_devices_sorted(s.conversation_devices(w.conv.id).await.unwrap()),
        messaging_devices_sorted(vec![
            messaging_cd(w.alice.into(), w.a1.into(), DeviceState::Member),
            messaging_cd(w.bob.into(), w.b1.into(), DeviceState::Member),
            messaging_cd(w.alice.into(), a2.id.into(), DeviceState::PendingAdd),
        ])
    );
    assert_eq!(
        s.conversation_devices(other.id).await.unwrap(),
        vec![messaging_cd(w.bob.into(), w.b1.into(), DeviceState::Member)]
    );
    // The notice: a membership change at the conversation's epoch, by Alice.
    let inbox = messaging_inbox(&*s, w.b1.into()).await;
    assert_eq!(messaging_seqs(&inbox), vec![1]);
    let n = &inbox[0].message;
    assert_eq!(
        (
            n.kind,
            n.conversation_id,
            n.sender_user,
            n.epoch,
            n.created_at
        ),
        (MessageKind::Membership, w.conv.id, Some(w.alice), 0, 200)
    );
    assert_eq!(s.get_message(w.conv.id, n.id).await.unwrap(), *n);
    assert!(
        messaging_inbox(&*s, a2.id.into()).await.is_empty(),
        "a waiting device receives nothing"
    );
    assert_eq!(s.get_device(w.org.id, w.b1).await.unwrap().inbox_seq, 1);
    assert_eq!(
        s.get_conversation(w.org.id, w.conv.id)
            .await
            .unwrap()
            .last_activity_at,
        200
    );
}

pub async fn members_are_added_and_removed_once_with_a_membership_notice<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    let carol = inserted_user(&*s, w.org.id, &w.dek, "carol").await;
    let c1 = messaging_device(&*s, w.org.id.into(), carol.into(), 2).await;
    let c2 = messaging_device(&*s, w.org.id.into(), carol.into(), 3).await;

    let n1 = MessageRow::membership_notice(g, 0, w.alice, 300);
    let (added, woken) = s
        .add_member(g, carol, &[c1.into(), c2.into()], &n1)
        .await
        .unwrap();
    assert!(added);
    assert_eq!(sorted(woken), sorted(vec![w.a1, w.b1]));
    assert!(s.is_member(g, carol).await.unwrap());
    assert_eq!(
        sorted(s.conversation_members(g).await.unwrap()),
        sorted(vec![w.alice, w.bob, carol])
    );
    assert_eq!(
        messaging_devices_sorted(s.conversation_devices(g).await.unwrap()),
        messaging_devices_sorted(vec![
            messaging_cd(w.alice.into(), w.a1.into(), DeviceState::Member),
            messaging_cd(w.bob.into(), w.b1.into(), DeviceState::Member),
            messaging_cd(carol.into(), c1, DeviceState::PendingAdd),
            messaging_cd(carol.into(), c2, DeviceState::PendingAdd),
        ])
    );
    assert_eq!(s.get_message(g, n1.id).await.unwrap(), n1);
    assert_eq!(
        messaging_ids(&messaging_inbox(&*s, w.b1.into()).await),
        vec![n1.id]
    );
    assert!(messaging_inbox(&*s, c1).await.is_empty());

    // Adding a member again changes nothing and stores no notice.
    let n2 = MessageRow::membership_notice(g, 0, w.alice, 310);
    assert_eq!(
        s.add_member(g, carol, &[c1.into()], &n2).await.unwrap(),
        (false, vec![])
    );
    assert!(matches!(
        s.get_message(g, n2.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(messaging_inbox(&*s, w.b1.into()).await.len(), 1);

    // Removing Bob: his device stops receiving at once and waits to be removed.
    let n3 = MessageRow::membership_notice(g, 0, w.alice, 320);
    assert_eq!(
        s.remove_member(g, w.bob, &n3).await.unwrap(),
        (true, vec![w.a1])
    );
    assert!(!s.is_member(g, w.bob).await.unwrap());
    assert_eq!(
        messaging_ids(&messaging_inbox(&*s, w.b1.into()).await),
        vec![n1.id],
        "a removed member's device is not sent the notice"
    );
    assert_eq!(
        messaging_ids(&messaging_inbox(&*s, w.a1.into()).await),
        vec![n1.id, n3.id]
    );
    // Removing Carol drops her devices that were only waiting to join.
    let n4 = MessageRow::membership_notice(g, 0, w.alice, 330);
    assert_eq!(
        s.remove_member(g, carol, &n4).await.unwrap(),
        (true, vec![w.a1])
    );
    assert_eq!(
        messaging_devices_sorted(s.conversation_devices(g).await.unwrap()),
        messaging_devices_sorted(vec![
            messaging_cd(w.alice.into(), w.a1.into(), DeviceState::Member),
            messaging_cd(w.bob.into(), w.b1.into(), DeviceState::PendingRemove),
        ])
    );
    assert_eq!(s.conversation_members(g).await.unwrap(), vec![w.alice]);
    let n5 = MessageRow::membership_notice(g, 0, w.alice, 340);
    assert_eq!(
        s.remove_member(g, carol, &n5).await.unwrap(),
        (false, vec![])
    );
    assert!(matches!(
        s.get_message(g, n5.id).await,
        Err(StoreError::NotFound)
    ));

    // Bob comes back before the commit removing him: his device waits to be added.
    let n6 = MessageRow::membership_notice(g, 0, w.alice, 350);
    assert_eq!(
        s.add_member(g, w.bob, &[w.b1], &n6).await.unwrap(),
        (true, vec![w.a1])
    );
    assert_eq!(
        messaging_devices_sorted(s.conversation_devices(g).await.unwrap()),
        messaging_devices_sorted(vec![
            messaging_cd(w.alice.into(), w.a1.into(), DeviceState::Member),
            messaging_cd(w.bob.into(), w.b1.into(), DeviceState::PendingAdd),
        ])
    );
    assert_eq!(
        s.get_conversation(w.org.id, g)
            .await
            .unwrap()
            .last_activity_at,
        350
    );

    let n7 = MessageRow::membership_notice(Uuid::new_v4(), 0, w.alice, 360);
    assert!(matches!(
        s.add_member(n7.conversation_id, carol, &[c1.into()], &n7)
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn submit_takes_one_commit_per_epoch_and_refuses_what_it_must<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    let carol = inserted_user(&*s, w.org.id, &w.dek, "carol").await;
    let c1 = messaging_device(&*s, w.org.id.into(), carol.into(), 2).await;
    let stranger = messaging_device(&*s, w.org.id.into(), carol.into(), 3).await;
    let n = MessageRow::membership_notice(g, 0, w.alice, 300);
    s.add_member(g, carol, &[c1.into()], &n).await.unwrap();
    // Bob's and Alice's inboxes hold the notice at seq 1.

    // A commit adding Carol's device, with its Welcome and their keys.
    let (kc, kw) = (data_key(Some(w.org.id)), data_key(Some(w.org.id)));
    let commit = MessageRow {
        dek_id: Some(kc.id.clone()),
        ..messaging_message(g, MessageKind::Commit, w.alice(), 0, "commit-1", 400)
    };
    let welcome = MessageRow {
        dek_id: Some(kw.id.clone()),
        ..messaging_message(g, MessageKind::Welcome, w.alice(), 0, "welcome-1", 400)
    };
    let sub = Submission {
        message: commit.clone(),
        welcome: Some(welcome.clone()),
        added: vec![c1.into()],
        removed: vec![],
        keys: vec![kc.clone(), kw.clone()],
        routed: None,
    };
    match s.submit(&sub).await.unwrap() {
        SubmitOutcome::Accepted { epoch, recipients } => {
            assert_eq!(epoch, 1);
            assert_eq!(sorted(recipients), sorted(vec![w.b1, c1.into()]));
        }
        other => panic!("commit refused: {other:?}"),
    }
    let conv = s.get_conversation(w.org.id, g).await.unwrap();
    assert_eq!((conv.epoch, conv.last_activity_at), (1, 400));
    assert_eq!(s.get_data_key(&kc.id).await.unwrap(), kc);
    assert_eq!(
        messaging_devices_sorted(s.conversation_devices(g).await.unwrap()),
        messaging_devices_sorted(vec![
            messaging_cd(w.alice.into(), w.a1.into(), DeviceState::Member),
            messaging_cd(w.bob.into(), w.b1.into(), DeviceState::Member),
            messaging_cd(carol.into(), c1, DeviceState::Member),
        ])
    );
    // The commit reaches the other members, the Welcome only the added device.
    let bob_inbox = messaging_inbox(&*s, w.b1.into()).await;
    assert_eq!(messaging_ids(&bob_inbox), vec![n.id, commit.id]);
    assert_eq!(bob_inbox[1].key, Some(kc.clone()));
    let carol_inbox = messaging_inbox(&*s, c1).await;
    assert_eq!(messaging_ids(&carol_inbox), vec![welcome.id]);
    assert_eq!(carol_inbox[0].key, Some(kw.clone()));
    assert_eq!(carol_inbox[0].message, welcome);
    assert_eq!(
        messaging_ids(&messaging_inbox(&*s, w.a1.into()).await),
        vec![n.id],
        "the sender's own device is not sent its message"
    );

    // A retry of the same message is recognised; nothing is stored again.
    assert_eq!(
        s.submit(&sub).await.unwrap(),
        SubmitOutcome::Duplicate {
            epoch: 1,
            created_at: 400,
            expires_at: None
        }
    );
    assert_eq!(messaging_inbox(&*s, w.b1.into()).await.len(), 2);
    // The same id with other bytes, the same bytes under another id.
    let taken = MessageRow {
        id: commit.id,
        ..messaging_message(g, MessageKind::Commit, w.alice(), 1, "other", 410)
    };
    assert_eq!(
        s.submit(&messaging_submission(taken)).await.unwrap(),
        SubmitOutcome::IdTaken
    );
    let replay = MessageRow {
        id: Uuid::new_v4(),
        epoch: 1,
        ..commit.clone()
    };
    assert_eq!(
        s.submit(&messaging_submission(replay)).await.unwrap(),
        SubmitOutcome::Replayed
    );

    // A commit at the old epoch is refused and leaves nothing behind.
    let ks = data_key(Some(w.org.id));
    let stale = MessageRow {
        dek_id: Some(ks.id.clone()),
        ..messaging_message(g, MessageKind::Commit, w.bob(), 0, "commit-stale", 420)
    };
    assert_eq!(
        s.submit(&Submission {
            keys: vec![ks.clone()],
            ..messaging_submission(stale.clone())
        })
        .await
        .unwrap(),
        SubmitOutcome::StaleEpoch { current: 1 }
    );
    assert!(matches!(
        s.get_data_key(&ks.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_message(g, stale.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_conversation(w.org.id, g).await.unwrap().epoch, 1);
    assert_eq!(
        s.submit(&messaging_submission(messaging_message(
            g,
            MessageKind::Application,
            w.bob(),
            2,
            "too-new",
            420
        )))
        .await
        .unwrap(),
        SubmitOutcome::StaleEpoch { current: 1 }
    );

    // Only member devices may send.
    assert_eq!(
        s.submit(&messaging_submission(messaging_message(
            g,
            MessageKind::Application,
            (carol.into(), stranger),
            1,
            "stranger",
            430
        )))
        .await
        .unwrap(),
        SubmitOutcome::NotMember
    );
    // A commit may only add waiting devices and remove leaving ones.
    for (added, removed) in [(vec![w.b1], vec![]), (vec![], vec![w.b1])] {
        let out = s
            .submit(&Submission {
                added: added.into_iter().collect(),
                removed: removed.into_iter().collect(),
                ..messaging_submission(messaging_message(
                    g,
                    MessageKind::Commit,
                    w.alice(),
                    1,
                    "commit-wrong",
                    440,
                ))
            })
            .await
            .unwrap();
        assert!(matches!(out, SubmitOutcome::WrongDevices(_)), "{out:?}");
    }
    assert_eq!(s.get_conversation(w.org.id, g).await.unwrap().epoch, 1);

    // An application message keeps the epoch and reaches the others.
    let app = messaging_message(g, MessageKind::Application, w.bob(), 1, "hello", 450);
    assert_eq!(
        s.submit(&messaging_submission(app.clone()))
            .await
            .map(|o| match o {
                SubmitOutcome::Accepted { epoch, recipients } => (epoch, sorted(recipients)),
                other => panic!("{other:?}"),
            })
            .unwrap(),
        (1, sorted(vec![w.a1, c1.into()]))
    );
    assert_eq!(s.get_conversation(w.org.id, g).await.unwrap().epoch, 1);

    // Once Bob is removed, application messages wait for the commit removing him.
    let n2 = MessageRow::membership_notice(g, 1, w.alice, 460);
    s.remove_member(g, w.bob, &n2).await.unwrap();
    assert_eq!(
        s.submit(&messaging_submission(messaging_message(
            g,
            MessageKind::Application,
            w.alice(),
            1,
            "blocked",
            470
        )))
        .await
        .unwrap(),
        SubmitOutcome::PendingRemovals
    );
    let removal = messaging_message(g, MessageKind::Commit, w.alice(), 1, "commit-2", 480);
    assert_eq!(
        s.submit(&Submission {
            removed: vec![w.b1],
            ..messaging_submission(removal.clone())
        })
        .await
        .unwrap(),
        // Bob's device gets the commit that removes it (so that it learns it
        // is out), and nothing after.
        SubmitOutcome::Accepted {
            epoch: 2,
            recipients: vec![c1.into(), w.b1]
        }
    );
    assert_eq!(
        messaging_devices_sorted(s.conversation_devices(g).await.unwrap()),
        messaging_devices_sorted(vec![
            messaging_cd(w.alice.into(), w.a1.into(), DeviceState::Member),
            messaging_cd(carol.into(), c1, DeviceState::Member),
        ])
    );
    let after = messaging_message(g, MessageKind::Application, w.alice(), 2, "after", 490);
    messaging_send(&*s, after).await;
    assert_eq!(s.get_conversation(w.org.id, g).await.unwrap().epoch, 2);
    assert_eq!(
        messaging_ids(&messaging_inbox(&*s, w.b1.into()).await).last(),
        Some(&removal.id),
        "the removal is the last thing a removed device gets"
    );
}

pub async fn concurrent_commits_at_one_epoch_accept_exactly_one<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let sender = if i % 2 == 0 { w.alice() } else { w.bob() };
        let m = messaging_message(g, MessageKind::Commit, sender, 0, &format!("c{i}"), 100);
        tasks.push(tokio::spawn(async move {
            s.submit(&messaging_submission(m)).await.unwrap()
        }));
    }
    let (mut accepted, mut stale) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            SubmitOutcome::Accepted { epoch: 1, .. } => accepted += 1,
            SubmitOutcome::StaleEpoch { current: 1 } => stale += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((accepted, stale), (1, 7));
    assert_eq!(s.get_conversation(w.org.id, g).await.unwrap().epoch, 1);

    // Concurrent application messages take gap-free positions in an inbox.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = s.clone();
        let m = messaging_message(
            g,
            MessageKind::Application,
            w.alice(),
            1,
            &format!("m{i}"),
            200,
        );
        tasks.push(tokio::spawn(async move {
            s.submit(&messaging_submission(m)).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(
            t.await.unwrap(),
            SubmitOutcome::Accepted { epoch: 1, .. }
        ));
    }
    let inbox = messaging_inbox(&*s, w.b1.into()).await;
    let apps: Vec<i64> = inbox
        .iter()
        .filter(|r| r.message.kind == MessageKind::Application)
        .map(|r| r.seq)
        .collect();
    let first = inbox.len() as i64 - 9;
    assert_eq!(apps, (first..=first + 9).collect::<Vec<_>>());
    assert_eq!(
        messaging_seqs(&inbox),
        (1..=inbox.len() as i64).collect::<Vec<_>>()
    );
    assert_eq!(
        s.get_device(w.org.id, w.b1).await.unwrap().inbox_seq,
        inbox.len() as i64
    );
}

pub async fn submitted_messages_round_trip_every_field_by_conversation<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    let k = data_key(Some(w.org.id));
    let first = messaging_send(
        &*s,
        messaging_message(g, MessageKind::Application, w.alice(), 0, "first", 90),
    )
    .await;
    let full = MessageRow {
        priority: Priority::Stat,
        dek_id: Some(k.id.clone()),
        expires_at: Some(10_000),
        recalls: Some(Uuid::new_v4()),
        alert: Some(r#"{"reason":"stat"}"#.into()),
        shared_again: Some(first.id),
        original_created_at: Some(90),
        ..messaging_message(g, MessageKind::Application, w.alice(), 0, "full", 100)
    };
    let out = s
        .submit(&Submission {
            keys: vec![k.clone()],
            ..messaging_submission(full.clone())
        })
        .await
        .unwrap();
    assert!(matches!(out, SubmitOutcome::Accepted { .. }), "{out:?}");
    assert_eq!(s.get_message(g, full.id).await.unwrap(), full);
    assert_eq!(s.get_message(g, first.id).await.unwrap(), first);
    let bare = MessageRow {
        sender_user: None,
        body: None,
        body_hash: Some(vec![0xff; 32]),
        priority: Priority::Urgent,
        ..messaging_message(g, MessageKind::Application, w.bob(), 0, "bare", 110)
    };
    messaging_send(&*s, bare.clone()).await;
    assert_eq!(s.get_message(g, bare.id).await.unwrap(), bare);

    // Looked up in another conversation, a message is missing.
    let other = messaging_conversation_row(w.org.id.into(), &w.dek, w.alice.into(), 5);
    s.create_conversation(&other, &[w.alice], &[])
        .await
        .unwrap();
    assert!(matches!(
        s.get_message(other.id, full.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_message(g, Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
    // The inbox carries the same message with its key.
    let inbox = messaging_inbox(&*s, w.b1.into()).await;
    assert_eq!(inbox[1].message, full);
    assert_eq!(inbox[1].key, Some(k));
    assert_eq!(inbox[0].key, None);
}

pub async fn inboxes_are_paged_in_order_without_recalled_or_expired_messages<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    let k = data_key(Some(w.org.id));
    let mut ms = Vec::new();
    for i in 0..5i64 {
        let mut m = messaging_message(
            g,
            MessageKind::Application,
            w.alice(),
            0,
            &format!("m{i}"),
            500 + i,
        );
        let mut keys = vec![];
        if i == 1 {
            m.dek_id = Some(k.id.clone());
            keys.push(k.clone());
        }
        if i == 2 {
            m.expires_at = Some(1000);
        }
        let out = s
            .submit(&Submission {
                keys,
                ..messaging_submission(m.clone())
            })
            .await
            .unwrap();
        assert!(matches!(out, SubmitOutcome::Accepted { .. }));
        ms.push(m);
    }
    let ids = |idx: &[usize]| idx.iter().map(|&i| ms[i].id).collect::<Vec<_>>();

    let all = s.inbox_after(w.b1, 0, 10, 600).await.unwrap();
    assert_eq!(messaging_seqs(&all), vec![1, 2, 3, 4, 5]);
    assert_eq!(messaging_ids(&all), ids(&[0, 1, 2, 3, 4]));
    assert_eq!(all[1].key, Some(k.clone()));
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, r)| (i == 1) == r.key.is_some())
    );
    // Paging by position.
    assert_eq!(
        messaging_seqs(&s.inbox_after(w.b1, 0, 2, 600).await.unwrap()),
        vec![1, 2]
    );
    assert_eq!(
        messaging_seqs(&s.inbox_after(w.b1, 2, 2, 600).await.unwrap()),
        vec![3, 4]
    );
    assert_eq!(
        messaging_seqs(&s.inbox_after(w.b1, 4, 2, 600).await.unwrap()),
        vec![5]
    );
    assert!(s.inbox_after(w.b1, 5, 2, 600).await.unwrap().is_empty());
    assert!(
        s.inbox_after(w.a1, 0, 10, 600).await.unwrap().is_empty(),
        "the sender's device holds none of its own"
    );

    // An ephemeral message is gone once its time has passed; positions stay.
    let later = s.inbox_after(w.b1, 0, 10, 1001).await.unwrap();
    assert_eq!(messaging_seqs(&later), vec![1, 2, 4, 5]);
    assert_eq!(
        messaging_seqs(&s.inbox_after(w.b1, 2, 1, 1001).await.unwrap()),
        vec![4]
    );

    // A recalled message is left out; the recall notice takes the next position.
    let notice = MessageRow {
        recalls: Some(ms[3].id),
        ..MessageRow::notice(MessageKind::Recall, g, 0, w.alice, 700)
    };
    assert!(
        s.recall(g, ms[3].id, false, &notice)
            .await
            .unwrap()
            .is_some()
    );
    let after = s.inbox_after(w.b1, 0, 10, 800).await.unwrap();
    assert_eq!(messaging_seqs(&after), vec![1, 2, 3, 5, 6]);
    assert_eq!(after[4].message, notice);
    assert_eq!(
        messaging_ids(&s.inbox_after(w.a1, 0, 10, 800).await.unwrap()),
        vec![notice.id]
    );
}

pub async fn acks_move_the_cursor_forward_only_and_mark_delivery<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    let carol = inserted_user(&*s, w.org.id, &w.dek, "carol").await;
    let c1 = messaging_device(&*s, w.org.id.into(), carol.into(), 2).await;
    // Carol joins, and a commit makes her device a member.
    s.add_member(
        g,
        carol,
        &[c1.into()],
        &MessageRow::membership_notice(g, 0, w.alice, 20),
    )
    .await
    .unwrap();
    let out = s
        .submit(&Submission {
            added: vec![c1.into()],
            ..messaging_submission(messaging_message(
                g,
                MessageKind::Commit,
                w.alice(),
                0,
                "add-carol",
                30,
            ))
        })
        .await
        .unwrap();
    assert!(matches!(out, SubmitOutcome::Accepted { epoch: 1, .. }));
    // Bob: notice (1), commit (2); then three messages (3, 4, 5). Carol: 1, 2, 3.
    let mut ms = Vec::new();
    for i in 0..3 {
        ms.push(
            messaging_send(
                &*s,
                messaging_message(
                    g,
                    MessageKind::Application,
                    w.alice(),
                    1,
                    &format!("m{i}"),
                    40 + i,
                ),
            )
            .await,
        );
    }
    assert_eq!(s.get_device(w.org.id, w.b1).await.unwrap().inbox_seq, 5);
    assert_eq!(
        s.get_device(w.org.id, c1.into()).await.unwrap().inbox_seq,
        3
    );

    // Beyond what was handed out: refused, nothing changes.
    assert_eq!(s.ack(w.b1, 6, 700).await.unwrap(), None);
    assert_eq!(s.get_device(w.org.id, w.b1).await.unwrap().acked_seq, 0);
    assert_eq!(s.ack(Uuid::new_v4().into(), 1, 700).await.unwrap(), None);

    assert_eq!(s.ack(w.b1, 3, 700).await.unwrap(), Some(3));
    assert_eq!(s.get_device(w.org.id, w.b1).await.unwrap().acked_seq, 3);
    let r0 = messaging_receipt(&s.receipts(ms[0].id).await.unwrap(), w.b1.into());
    assert_eq!(
        r0,
        ReceiptRow {
            user_id: w.bob,
            device_id: w.b1,
            delivered_at: Some(700),
            read_at: None,
            shares_read_receipts: true,
        }
    );
    assert_eq!(
        messaging_receipt(&s.receipts(ms[1].id).await.unwrap(), w.b1.into()).delivered_at,
        None
    );
    // Never back, and earlier entries keep their delivery time.
    assert_eq!(s.ack(w.b1, 1, 800).await.unwrap(), Some(3));
    assert_eq!(s.get_device(w.org.id, w.b1).await.unwrap().acked_seq, 3);
    assert_eq!(s.ack(w.b1, 5, 900).await.unwrap(), Some(5));
    let rs = s.receipts(ms[2].id).await.unwrap();
    assert_eq!(messaging_receipt(&rs, w.b1.into()).delivered_at, Some(900));
    assert_eq!(
        messaging_receipt(&s.receipts(ms[0].id).await.unwrap(), w.b1.into()).delivered_at,
        Some(700)
    );
    // Receipts: one row per recipient device (not the sender's).
    assert_eq!(
        sorted(rs.iter().map(|r| r.device_id).collect()),
        sorted(vec![w.b1, c1.into()])
    );
    assert_eq!(messaging_receipt(&rs, c1).delivered_at, None);
    assert!(s.receipts(Uuid::new_v4()).await.unwrap().is_empty());

    // Several devices at once; acknowledgements beyond the inbox are ignored.
    let m3 = messaging_send(
        &*s,
        messaging_message(g, MessageKind::Application, w.alice(), 1, "m3", 50),
    )
    .await;
    s.ack_many(&[(c1.into(), 2), (w.b1, 99)], 1000)
        .await
        .unwrap();
    assert_eq!(
        s.get_device(w.org.id, c1.into()).await.unwrap().acked_seq,
        2
    );
    assert_eq!(s.get_device(w.org.id, w.b1).await.unwrap().acked_seq, 5);
    assert_eq!(
        messaging_receipt(&s.receipts(m3.id).await.unwrap(), w.b1.into()).delivered_at,
        None
    );
    assert_eq!(
        messaging_receipt(&s.receipts(ms[1].id).await.unwrap(), c1).delivered_at,
        Some(1000)
    );
    s.ack_many(&[(w.b1, 6), (c1.into(), 4)], 1100)
        .await
        .unwrap();
    assert_eq!(
        s.get_device(w.org.id, c1.into()).await.unwrap().acked_seq,
        4
    );
    assert_eq!(s.get_device(w.org.id, w.b1).await.unwrap().acked_seq, 6);
    let r3 = s.receipts(m3.id).await.unwrap();
    assert_eq!(messaging_receipt(&r3, w.b1.into()).delivered_at, Some(1100));
    assert_eq!(messaging_receipt(&r3, c1).delivered_at, Some(1100));
    s.ack_many(&[], 1200).await.unwrap();
    assert_eq!(
        s.get_device(w.org.id, c1.into()).await.unwrap().acked_seq,
        4
    );
}

pub async fn read_marks_cover_shown_messages_or_routine_ones_up_to_a_watermark<E: Engine>(
    s: Arc<E>,
) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    let priorities = [
        Priority::Routine,
        Priority::Urgent,
        Priority::Routine,
        Priority::Stat,
        Priority::Routine,
    ];
    let mut ms = Vec::new();
    for (i, p) in priorities.into_iter().enumerate() {
        ms.push(
            messaging_send(
                &*s,
                MessageRow {
                    priority: p,
                    ..messaging_message(
                        g,
                        MessageKind::Application,
                        w.alice(),
                        0,
                        &format!("m{i}"),
                        100 + i as i64,
                    )
                },
            )
            .await,
        );
    }
    // A message of another conversation in Bob's inbox.
    let h = messaging_conversation_row(w.org.id.into(), &w.dek, w.alice.into(), 5);
    s.create_conversation(
        &h,
        &[w.alice, w.bob],
        &[
            messaging_cd(w.alice.into(), w.a1.into(), DeviceState::Member),
            messaging_cd(w.bob.into(), w.b1.into(), DeviceState::Member),
        ],
    )
    .await
    .unwrap();
    let x = messaging_send(
        &*s,
        messaging_message(h.id, MessageKind::Application, w.alice(), 0, "x", 110),
    )
    .await;
    let bob_of = |rows: Vec<ReceiptRow>| messaging_receipt(&rows, w.b1.into());

    // m0 was delivered before it was read: that time is kept.
    assert_eq!(s.ack(w.b1, 1, 790).await.unwrap(), Some(1));
    // A watermark marks routine messages up to it, never urgent or STAT ones.
    assert_eq!(
        s.mark_read(w.b1, g, ReadMark::UpTo(ms[2].id), 800)
            .await
            .unwrap(),
        Some(2)
    );
    let r0 = bob_of(s.receipts(ms[0].id).await.unwrap());
    assert_eq!((r0.delivered_at, r0.read_at), (Some(790), Some(800)));
    let r2 = bob_of(s.receipts(ms[2].id).await.unwrap());
    assert_eq!((r2.delivered_at, r2.read_at), (Some(800), Some(800)));
    let r1 = bob_of(s.receipts(ms[1].id).await.unwrap());
    assert_eq!((r1.delivered_at, r1.read_at), (None, None));
    assert_eq!(
        s.mark_read(w.b1, g, ReadMark::UpTo(ms[2].id), 810)
            .await
            .unwrap(),
        Some(0),
        "already read"
    );
    assert_eq!(
        bob_of(s.receipts(ms[0].id).await.unwrap()).read_at,
        Some(800)
    );

    // Shown messages are marked whatever their priority.
    assert_eq!(
        s.mark_read(w.b1, g, ReadMark::Shown(&[ms[1].id, ms[3].id]), 820)
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        bob_of(s.receipts(ms[3].id).await.unwrap()).read_at,
        Some(820)
    );
    assert_eq!(
        s.mark_read(w.b1, g, ReadMark::Shown(&[ms[1].id]), 830)
            .await
            .unwrap(),
        Some(0)
    );

    // A message not in the device's inbox for this conversation: nothing marked.
    for ids in [vec![ms[4].id, Uuid::new_v4()], vec![ms[4].id, x.id]] {
        assert_eq!(
            s.mark_read(w.b1, g, ReadMark::Shown(&ids), 840)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        s.mark_read(w.b1, g, ReadMark::UpTo(x.id), 840)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.mark_read(w.a1, g, ReadMark::Shown(&[ms[0].id]), 840)
            .await
            .unwrap(),
        None,
        "the sender's device has no inbox entry for its own message"
    );
    assert_eq!(bob_of(s.receipts(ms[4].id).await.unwrap()).read_at, None);
    assert_eq!(bob_of(s.receipts(x.id).await.unwrap()).read_at, None);

    // The receipt row says whether its user shares read receipts.
    s.set_share_read_receipts(w.bob, false).await.unwrap();
    assert_eq!(
        bob_of(s.receipts(ms[3].id).await.unwrap()),
        ReceiptRow {
            user_id: w.bob,
            device_id: w.b1,
            delivered_at: Some(820),
            read_at: Some(820),
            shares_read_receipts: false,
        }
    );
}

/// A write transaction given up half-way (here a read mark that found one of
/// its messages missing, after marking another) must not leave the next
/// writer a locked database. CI of 2026-11-30 failed once on SQLite with
/// "database is locked": the abandoned transaction's rollback ran after the
/// next writer had begun reading, and SQLite does not wait for a lock a
/// reading transaction wants to upgrade. Repeated so the race is met.
pub async fn a_refused_write_leaves_the_next_writer_free<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    for i in 0..60 {
        let m = messaging_send(
            &*s,
            messaging_message(
                g,
                MessageKind::Application,
                w.alice(),
                0,
                &format!("m{i}"),
                100 + i,
            ),
        )
        .await;
        assert_eq!(
            s.mark_read(w.b1, g, ReadMark::Shown(&[m.id, Uuid::new_v4()]), 200 + i)
                .await
                .unwrap(),
            None,
            "round {i}: one message missing, nothing marked"
        );
        assert_eq!(
            s.mark_read(w.b1, g, ReadMark::Shown(&[m.id]), 200 + i)
                .await
                .unwrap_or_else(|e| panic!("round {i}: the next writer failed: {e}")),
            Some(1),
            "round {i}"
        );
    }
}

pub async fn read_receipt_sharing_defaults_to_on_and_is_kept_per_user<E: Engine>(s: Arc<E>) {
    let (a, dek) = org_with_key(&*s, "alpha").await;
    let u = inserted_user(&*s, a.id, &dek, "u").await;
    let v = inserted_user(&*s, a.id, &dek, "v").await;
    assert!(s.share_read_receipts(u).await.unwrap());
    s.set_share_read_receipts(u, false).await.unwrap();
    assert!(!s.share_read_receipts(u).await.unwrap());
    s.set_share_read_receipts(u, false).await.unwrap();
    assert!(!s.share_read_receipts(u).await.unwrap());
    assert!(s.share_read_receipts(v).await.unwrap(), "per user");
    s.set_share_read_receipts(u, true).await.unwrap();
    assert!(s.share_read_receipts(u).await.unwrap());
    s.set_share_read_receipts(v, false).await.unwrap();
    assert!(!s.share_read_receipts(v).await.unwrap());
    assert!(s.share_read_receipts(u).await.unwrap());
}

pub async fn refounding_needs_no_member_device_and_a_waiting_one<E: Engine>(s: Arc<E>) {
    let (o, dek) = org_with_key(&*s, "alpha").await;
    let alice = inserted_user(&*s, o.id, &dek, "alice").await;
    let bob = inserted_user(&*s, o.id, &dek, "bob").await;
    let a1 = messaging_device(&*s, o.id.into(), alice.into(), 1).await;
    let b1 = messaging_device(&*s, o.id.into(), bob.into(), 1).await;
    let b2 = messaging_device(&*s, o.id.into(), bob.into(), 2).await;
    let g = ConversationRow {
        epoch: 4,
        ..messaging_conversation_row(o.id.into(), &dek, alice.into(), 10)
    };
    s.create_conversation(
        &g,
        &[alice, bob],
        &[
            messaging_cd(alice.into(), a1, DeviceState::Member),
            messaging_cd(bob.into(), b1, DeviceState::PendingAdd),
            messaging_cd(bob.into(), b2, DeviceState::PendingAdd),
        ],
    )
    .await
    .unwrap();

    // A member device can still add the waiting ones: no refounding.
    let n1 = MessageRow::membership_notice(g.id, 4, bob, 100);
    assert_eq!(
        s.refound_conversation(g.id, b1.into(), &n1).await.unwrap(),
        (false, vec![])
    );
    assert!(matches!(
        s.get_message(g.id, n1.id).await,
        Err(StoreError::NotFound)
    ));
    s.remove_member(
        g.id,
        alice,
        &MessageRow::membership_notice(g.id, 4, bob, 110),
    )
    .await
    .unwrap();
    // Now nobody is a member; only a device waiting to join may refound.
    let n2 = MessageRow::membership_notice(g.id, 4, bob, 120);
    assert_eq!(
        s.refound_conversation(g.id, a1.into(), &n2).await.unwrap(),
        (false, vec![])
    );
    assert_eq!(
        s.refound_conversation(g.id, Uuid::new_v4().into(), &n2)
            .await
            .unwrap(),
        (false, vec![])
    );
    assert_eq!(s.get_conversation(o.id, g.id).await.unwrap().epoch, 4);

    let n3 = MessageRow::membership_notice(g.id, 4, bob, 130);
    assert_eq!(
        s.refound_conversation(g.id, b1.into(), &n3).await.unwrap(),
        (true, vec![b1.into()])
    );
    assert_eq!(
        messaging_devices_sorted(s.conversation_devices(g.id).await.unwrap()),
        messaging_devices_sorted(vec![
            messaging_cd(bob.into(), b1, DeviceState::Member),
            messaging_cd(bob.into(), b2, DeviceState::PendingAdd),
        ]),
        "removed devices leave, the others keep waiting"
    );
    let conv = s.get_conversation(o.id, g.id).await.unwrap();
    assert_eq!((conv.epoch, conv.last_activity_at), (0, 130));
    assert_eq!(s.get_message(g.id, n3.id).await.unwrap(), n3);
    assert_eq!(messaging_ids(&messaging_inbox(&*s, b1).await), vec![n3.id]);
    // The group has a member again: a second refounding is refused.
    let n4 = MessageRow::membership_notice(g.id, 0, bob, 140);
    assert_eq!(
        s.refound_conversation(g.id, b2.into(), &n4).await.unwrap(),
        (false, vec![])
    );
    assert_eq!(s.get_conversation(o.id, g.id).await.unwrap().epoch, 0);
    // The new founder commits at epoch 0.
    let out = s
        .submit(&Submission {
            added: vec![b2.into()],
            ..messaging_submission(messaging_message(
                g.id,
                MessageKind::Commit,
                (bob.into(), b1),
                0,
                "refounded",
                150,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        out,
        SubmitOutcome::Accepted {
            epoch: 1,
            recipients: vec![]
        }
    );
}

pub async fn attachments_round_trip_with_their_key_scoped_by_conversation<E: Engine>(s: Arc<E>) {
    let w = messaging_ward(&*s, "alpha").await;
    let g = w.conv.id;
    let other = messaging_conversation_row(w.org.id.into(), &w.dek, w.alice.into(), 5);
    s.create_conversation(&other, &[w.alice], &[])
        .await
        .unwrap();

    let k = data_key(Some(w.org.id));
    let a = AttachmentRow {
        id: Uuid::new_v4(),
        conversation_id: g,
        uploader_device: w.a1,
        data: (0..=255u8).collect(),
        created_at: 1000,
        dek_id: Some(k.id.clone()),
    };
    s.insert_attachment(&a, &k).await.unwrap();
    assert_eq!(
        s.get_attachment(g, a.id).await.unwrap(),
        (a.clone(), Some(k.clone()))
    );
    assert_eq!(s.get_data_key(&k.id).await.unwrap(), k);
    assert!(matches!(
        s.get_attachment(other.id, a.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_attachment(g, Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));

    // Without a key of its own (rows from before sealing).
    let k2 = data_key(Some(w.org.id));
    let plain = AttachmentRow {
        id: Uuid::new_v4(),
        conversation_id: g,
        uploader_device: w.b1,
        data: vec![7; 10],
        created_at: 1001,
        dek_id: None,
    };
    s.insert_attachment(&plain, &k2).await.unwrap();
    assert_eq!(s.get_attachment(g, plain.id).await.unwrap(), (plain, None));

    // A refused attachment leaves no key behind and the first one unchanged.
    let k3 = data_key(Some(w.org.id));
    assert!(
        s.insert_attachment(
            &AttachmentRow {
                data: vec![1],
                dek_id: Some(k3.id.clone()),
                ..a.clone()
            },
            &k3
        )
        .await
        .is_err()
    );
    assert!(matches!(
        s.get_data_key(&k3.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_attachment(g, a.id).await.unwrap(), (a, Some(k)));
}

pub async fn push_subscriptions_reach_only_devices_with_a_live_session<E: Engine>(s: Arc<E>) {
    let (o, dek) = org_with_key(&*s, "alpha").await;
    let u = inserted_user(&*s, o.id, &dek, "u").await;
    let d1: DeviceId = messaging_device(&*s, o.id.into(), u.into(), 1).await.into();
    let d2: DeviceId = messaging_device(&*s, o.id.into(), u.into(), 2).await.into();
    let sub = |device: DeviceId, endpoint: &str| PushSubscriptionRow {
        device_id: device,
        org_id: o.id,
        user_id: u,
        endpoint: endpoint.into(),
        p256dh: vec![4; 65],
        auth: vec![7; 16],
        created_at: 50,
    };
    // No session yet: nothing to push to.
    s.put_push_subscription(&sub(d1, "https://push.example/a"))
        .await
        .unwrap();
    assert_eq!(s.live_push_subscription(d1, 200).await.unwrap(), None);
    let s1 = session(o.id, u, d1);
    s.insert_session(&s1).await.unwrap();
    assert_eq!(
        s.live_push_subscription(d1, 200).await.unwrap(),
        Some(sub(d1, "https://push.example/a"))
    );
    // A new subscription replaces the old one.
    s.put_push_subscription(&sub(d1, "https://push.example/b"))
        .await
        .unwrap();
    assert_eq!(
        s.live_push_subscription(d1, 200)
            .await
            .unwrap()
            .unwrap()
            .endpoint,
        "https://push.example/b"
    );
    // Past the session's absolute expiry (1000), and after sign-out: nothing.
    assert_eq!(s.live_push_subscription(d1, 1000).await.unwrap(), None);
    s.revoke_session(s1.id, 300).await.unwrap();
    assert_eq!(s.live_push_subscription(d1, 200).await.unwrap(), None);
    s.insert_session(&session(o.id, u, d1)).await.unwrap();
    assert!(s.live_push_subscription(d1, 200).await.unwrap().is_some());
    // Another device's session does not count.
    s.put_push_subscription(&sub(d2, "https://push.example/c"))
        .await
        .unwrap();
    assert_eq!(s.live_push_subscription(d2, 200).await.unwrap(), None);
    // Forgotten once; a wipe forgets it too.
    assert!(s.delete_push_subscription(d2).await.unwrap());
    assert!(!s.delete_push_subscription(d2).await.unwrap());
    s.begin_wipe(&crate::lifecycle::WipeRow {
        device_id: d1,
        org_id: o.id,
        user_id: u,
        requested_by: u,
        requested_at: 400,
        reason: "lost".into(),
        sessions_ended: 0,
        conversations: 0,
        confirmed_at: None,
    })
    .await
    .unwrap();
    assert_eq!(s.live_push_subscription(d1, 200).await.unwrap(), None);
    assert!(
        !s.delete_push_subscription(d1).await.unwrap(),
        "deleted by the wipe"
    );
}
