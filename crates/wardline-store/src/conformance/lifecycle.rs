//! Conformance of [`LifecycleStore`](crate::LifecycleStore).

#[allow(unused_imports)]
use super::*;

use wardline_proto::lifecycle::{ConversationLifecycle, HoldScope, LifecyclePolicy, Retention};
use wardline_proto::messaging::{ConversationKind, DeviceState, MessageKind, Priority};

use crate::lifecycle::{Candidate, HoldRow, LifecycleConversation, WipeRow};
use crate::messaging::{
    AttachmentRow, ConversationDeviceRow, ConversationRow, MessageRow, Submission, SubmitOutcome,
};

/// The tests of this module, for [`conformance_suite!`](crate::conformance_suite).
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_lifecycle_tests {
    ($open:path) => {
        $crate::conformance_suite!(@tests $open;
            lifecycle_policies_default_until_set_and_are_scoped_by_organisation,
            legal_holds_round_trip_are_released_once_and_scoped_by_organisation,
            deletion_candidates_follow_retention_lifespans_and_recalls,
            deleting_messages_takes_their_copies_inbox_entries_and_keys,
            expired_attachments_are_listed_and_deleted_with_their_keys,
            deletion_receipts_are_listed_newest_first_per_organisation,
            job_leases_are_held_by_one_holder_until_they_lapse,
            recall_marks_a_message_once_and_shreds_it_on_request,
            wiping_a_device_retires_it_and_ends_only_its_owners_sessions,
            retired_devices_leave_the_conversations_they_are_in_or_joining,
        );
    };
}

// ------------------------------------------------------------------ helpers

/// A group conversation of `members`, their `devices` members of the group.
async fn lifecycle_conversation<E: Engine>(
    s: &E,
    org: OrgId,
    dek: &str,
    members: &[UserId],
    devices: &[(UserId, DeviceId)],
    lifecycle: ConversationLifecycle,
    patient_bidx: Option<&str>,
) -> Uuid {
    let c = ConversationRow {
        id: Uuid::new_v4(),
        org_id: org,
        kind: ConversationKind::Group,
        dek_id: dek.into(),
        title_enc: None,
        patient_ref_enc: patient_bidx.map(|_| vec![6; 24]),
        direct_key: None,
        created_by: members[0],
        created_at: 1,
        epoch: 0,
        last_activity_at: 1,
        lifecycle,
        patient_ref_bidx: patient_bidx.map(Into::into),
        role_id: None,
        routed_user: None,
        routed_via: None,
        care_team_id: None,
    };
    let devices: Vec<_> = devices
        .iter()
        .map(|&(user_id, device_id)| ConversationDeviceRow {
            device_id,
            user_id,
            state: DeviceState::Member,
        })
        .collect();
    s.create_conversation(&c, members, &devices).await.unwrap();
    c.id
}

/// An organisation with Alice and Bob (one device each) in two group
/// conversations, every device a member.
struct LifecycleWard {
    org: OrgRow,
    dek: String,
    alice: UserId,
    alice_device: DeviceId,
    bob: UserId,
    bob_device: DeviceId,
    conversation: Uuid,
    other: Uuid,
}

async fn lifecycle_ward<E: Engine>(s: &E, slug: &str) -> LifecycleWard {
    let (o, dek) = org_with_key(s, slug).await;
    let alice = inserted_user(s, o.id, &dek, "alice").await;
    let bob = inserted_user(s, o.id, &dek, "bob").await;
    let alice_device = inserted_device(s, o.id, alice, &[]).await;
    let bob_device = inserted_device(s, o.id, bob, &[]).await;
    let members = [alice, bob];
    let devices = [(alice, alice_device), (bob, bob_device)];
    let conversation =
        lifecycle_conversation(s, o.id, &dek, &members, &devices, Default::default(), None).await;
    let other =
        lifecycle_conversation(s, o.id, &dek, &members, &devices, Default::default(), None).await;
    LifecycleWard {
        org: o,
        dek,
        alice,
        alice_device,
        bob,
        bob_device,
        conversation,
        other,
    }
}

/// Alice's application message in `conversation`, its body sealed under a
/// data key of its own (returned with it); `shared_again` makes it a copy of
/// that original for later members.
fn lifecycle_message(
    w: &LifecycleWard,
    conversation: Uuid,
    created_at: i64,
    expires_at: Option<i64>,
    shared_again: Option<(Uuid, i64)>,
) -> (MessageRow, DataKeyRow) {
    let k = data_key(Some(w.org.id));
    let id = Uuid::new_v4();
    let m = MessageRow {
        id,
        conversation_id: conversation,
        kind: MessageKind::Application,
        sender_user: Some(w.alice),
        sender_device: Some(w.alice_device),
        epoch: 0,
        priority: Priority::Routine,
        body: Some(vec![7; 24]),
        body_hash: Some(id.as_bytes().to_vec()),
        created_at,
        dek_id: Some(k.id.clone()),
        expires_at,
        recalled_at: None,
        recalls: None,
        alert: None,
        shared_again: shared_again.map(|(o, _)| o),
        original_created_at: shared_again.map(|(_, at)| at),
    };
    (m, k)
}

/// Submits the message with its data key and returns both.
async fn lifecycle_send<E: Engine>(
    s: &E,
    w: &LifecycleWard,
    conversation: Uuid,
    created_at: i64,
    expires_at: Option<i64>,
    shared_again: Option<(Uuid, i64)>,
) -> (MessageRow, DataKeyRow) {
    let (m, k) = lifecycle_message(w, conversation, created_at, expires_at, shared_again);
    let out = s
        .submit(&Submission {
            message: m.clone(),
            welcome: None,
            added: vec![],
            removed: vec![],
            keys: vec![k.clone()],
            routed: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(out, SubmitOutcome::Accepted { epoch: 0, .. }),
        "{out:?}"
    );
    (m, k)
}

fn lifecycle_recall_notice(conversation: Uuid, actor: Uuid, message: Uuid, at: i64) -> MessageRow {
    let mut n = MessageRow::notice(MessageKind::Recall, conversation, 0, actor.into(), at);
    n.recalls = Some(message);
    n
}

/// The ids of what the device's inbox shows (recalled and expired left out
/// as `inbox_after` does at time 0).
async fn lifecycle_inbox<E: Engine>(s: &E, device: Uuid) -> Vec<Uuid> {
    s.inbox_after(device.into(), 0, 1000, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.message.id)
        .collect()
}

async fn lifecycle_candidate_ids<E: Engine>(
    s: &E,
    conversation: Uuid,
    created_before: Option<i64>,
    now: i64,
) -> Vec<Uuid> {
    sorted(
        s.deletion_candidates(conversation, created_before, now)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect(),
    )
}

fn lifecycle_hold(org: Uuid, scope: HoldScope, target: &str, by: Uuid, at: i64) -> HoldRow {
    HoldRow {
        id: Uuid::new_v4(),
        org_id: org.into(),
        scope,
        target: target.into(),
        dek_id: format!("dk-{}", Uuid::new_v4()),
        target_enc: vec![1; 20],
        matter_enc: vec![2; 21],
        reason_enc: vec![3; 22],
        placed_by: by.into(),
        placed_at: at,
        released_by: None,
        released_at: None,
        release_reason_enc: None,
    }
}

fn lifecycle_hold_key(h: &HoldRow) -> DataKeyRow {
    DataKeyRow {
        id: h.dek_id.clone(),
        org_id: Some(h.org_id),
        kek_id: "kek-a".into(),
        wrapped: vec![8, 8],
        created_at: h.placed_at,
    }
}

// -------------------------------------------------------------------- tests

pub async fn lifecycle_policies_default_until_set_and_are_scoped_by_organisation<E: Engine>(
    s: Arc<E>,
) {
    assert!(s.org_ids().await.unwrap().is_empty());
    let (a, dek) = org_with_key(s.as_ref(), "alpha").await;
    let (b, dek_b) = org_with_key(s.as_ref(), "beta").await;
    assert_eq!(sorted(s.org_ids().await.unwrap()), sorted(vec![a.id, b.id]));

    // Never set: the default policy; an unknown organisation is not found.
    assert_eq!(
        s.lifecycle_policy(a.id).await.unwrap(),
        LifecyclePolicy::default()
    );
    assert!(matches!(
        s.lifecycle_policy(Uuid::new_v4().into()).await,
        Err(StoreError::NotFound)
    ));
    let p = LifecyclePolicy {
        retention: Retention::Days(30),
        minimum_days: 7,
        message_ttl_secs: Some(3600),
        max_ttl_secs: 86_400,
        recall_window_secs: 0,
    };
    s.set_lifecycle_policy(a.id, &p).await.unwrap();
    assert_eq!(s.lifecycle_policy(a.id).await.unwrap(), p);
    assert_eq!(
        s.lifecycle_policy(b.id).await.unwrap(),
        LifecyclePolicy::default(),
        "another organisation's policy is untouched"
    );
    let p2 = LifecyclePolicy {
        retention: Retention::Forever,
        minimum_days: 0,
        message_ttl_secs: None,
        max_ttl_secs: 60,
        recall_window_secs: 604_800,
    };
    s.set_lifecycle_policy(a.id, &p2).await.unwrap();
    assert_eq!(s.lifecycle_policy(a.id).await.unwrap(), p2);
    assert!(matches!(
        s.set_lifecycle_policy(Uuid::new_v4().into(), &p).await,
        Err(StoreError::NotFound)
    ));

    // Conversations as the deletion rules see them.
    let alice = inserted_user(s.as_ref(), a.id, &dek, "alice").await;
    let bob = inserted_user(s.as_ref(), a.id, &dek, "bob").await;
    let carol = inserted_user(s.as_ref(), b.id, &dek_b, "carol").await;
    let short = ConversationLifecycle {
        retention: Some(Retention::Days(10)),
        message_ttl_secs: Some(120),
    };
    let c1 = lifecycle_conversation(
        s.as_ref(),
        a.id,
        &dek,
        &[alice, bob],
        &[],
        Default::default(),
        Some("pt-1"),
    )
    .await;
    let c2 =
        lifecycle_conversation(s.as_ref(), a.id, &dek, &[alice], &[], short.clone(), None).await;
    let cb = lifecycle_conversation(
        s.as_ref(),
        b.id,
        &dek_b,
        &[carol],
        &[],
        Default::default(),
        None,
    )
    .await;
    let view = |rows: Vec<LifecycleConversation>| {
        let mut v: Vec<_> = rows
            .into_iter()
            .map(|mut c| {
                c.members.sort();
                c
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    };
    let expected_a = view(vec![
        LifecycleConversation {
            id: c1,
            lifecycle: Default::default(),
            patient_ref_bidx: Some("pt-1".into()),
            members: vec![alice, bob],
        },
        LifecycleConversation {
            id: c2,
            lifecycle: short.clone(),
            patient_ref_bidx: None,
            members: vec![alice],
        },
    ]);
    assert_eq!(
        view(s.lifecycle_conversations(a.id).await.unwrap()),
        expected_a
    );
    assert_eq!(
        s.lifecycle_conversations(b.id).await.unwrap(),
        vec![LifecycleConversation {
            id: cb,
            lifecycle: Default::default(),
            patient_ref_bidx: None,
            members: vec![carol],
        }]
    );
    assert!(
        s.lifecycle_conversations(Uuid::new_v4().into())
            .await
            .unwrap()
            .is_empty()
    );

    // A conversation's own lifecycle, set within its organisation only.
    let forever = ConversationLifecycle {
        retention: Some(Retention::Forever),
        message_ttl_secs: None,
    };
    s.set_conversation_lifecycle(a.id, c1, &forever)
        .await
        .unwrap();
    assert!(matches!(
        s.set_conversation_lifecycle(b.id, c2, &forever).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_conversation_lifecycle(a.id, Uuid::new_v4(), &forever)
            .await,
        Err(StoreError::NotFound)
    ));
    let got = view(s.lifecycle_conversations(a.id).await.unwrap());
    let by_id = |id: Uuid| got.iter().find(|c| c.id == id).unwrap().lifecycle.clone();
    assert_eq!(by_id(c1), forever);
    assert_eq!(by_id(c2), short, "a refused change changes nothing");
    assert_eq!(
        s.get_conversation(a.id, c1).await.unwrap().lifecycle,
        forever
    );
    // Back to following the policy.
    s.set_conversation_lifecycle(a.id, c2, &ConversationLifecycle::default())
        .await
        .unwrap();
    assert_eq!(
        s.get_conversation(a.id, c2).await.unwrap().lifecycle,
        ConversationLifecycle::default()
    );
}

pub async fn legal_holds_round_trip_are_released_once_and_scoped_by_organisation<E: Engine>(
    s: Arc<E>,
) {
    let (a, dek) = org_with_key(s.as_ref(), "alpha").await;
    let (b, dek_b) = org_with_key(s.as_ref(), "beta").await;
    let admin = inserted_user(s.as_ref(), a.id, &dek, "admin").await;
    let admin_b = inserted_user(s.as_ref(), b.id, &dek_b, "admin").await;
    assert!(!s.any_active_hold().await.unwrap());

    let h1 = lifecycle_hold(
        a.id.into(),
        HoldScope::User,
        &admin.to_string(),
        admin.into(),
        100,
    );
    let h2 = lifecycle_hold(
        a.id.into(),
        HoldScope::Patient,
        "bidx-pt",
        admin.into(),
        200,
    );
    let hb = lifecycle_hold(
        b.id.into(),
        HoldScope::Conversation,
        "conv",
        admin_b.into(),
        150,
    );
    for h in [&h1, &h2, &hb] {
        s.insert_hold(h, &lifecycle_hold_key(h)).await.unwrap();
    }
    assert!(s.any_active_hold().await.unwrap());
    assert_eq!(s.get_hold(a.id, h1.id).await.unwrap(), h1);
    assert_eq!(s.get_hold(a.id, h2.id).await.unwrap(), h2);
    // The hold's data key is stored with it.
    assert_eq!(
        s.get_data_key(&h1.dek_id).await.unwrap(),
        lifecycle_hold_key(&h1)
    );
    // A data key id already taken: nothing is stored.
    let dup = HoldRow {
        id: Uuid::new_v4(),
        ..h2.clone()
    };
    assert!(matches!(
        s.insert_hold(&dup, &lifecycle_hold_key(&h2)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.get_hold(a.id, dup.id).await,
        Err(StoreError::NotFound)
    ));

    let mut listed = s.list_holds(a.id).await.unwrap();
    listed.sort_by_key(|h| h.id);
    let mut expected = vec![h1.clone(), h2.clone()];
    expected.sort_by_key(|h| h.id);
    assert_eq!(listed, expected);
    assert_eq!(s.list_holds(b.id).await.unwrap(), vec![hb.clone()]);
    assert!(matches!(
        s.get_hold(b.id, h1.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_hold(a.id, Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));

    // Released once, and only within its organisation.
    assert!(
        !s.release_hold(b.id, h1.id, admin_b, 300, &[9; 10])
            .await
            .unwrap()
    );
    assert_eq!(s.get_hold(a.id, h1.id).await.unwrap(), h1);
    assert!(
        s.release_hold(a.id, h1.id, admin, 300, &[9; 10])
            .await
            .unwrap()
    );
    assert!(
        !s.release_hold(a.id, h1.id, admin, 400, &[5; 3])
            .await
            .unwrap(),
        "a hold is released once"
    );
    let released = HoldRow {
        released_by: Some(admin),
        released_at: Some(300),
        release_reason_enc: Some(vec![9; 10]),
        ..h1.clone()
    };
    assert_eq!(s.get_hold(a.id, h1.id).await.unwrap(), released);
    assert!(
        s.list_holds(a.id).await.unwrap().contains(&released),
        "released holds stay in the register"
    );
    assert!(
        !s.release_hold(a.id, Uuid::new_v4(), admin, 300, &[1])
            .await
            .unwrap()
    );

    assert!(s.any_active_hold().await.unwrap());
    assert!(s.release_hold(a.id, h2.id, admin, 500, &[1]).await.unwrap());
    assert!(
        s.any_active_hold().await.unwrap(),
        "another organisation's hold is still active"
    );
    assert!(
        s.release_hold(b.id, hb.id, admin_b, 500, &[1])
            .await
            .unwrap()
    );
    assert!(!s.any_active_hold().await.unwrap());
}

pub async fn deletion_candidates_follow_retention_lifespans_and_recalls<E: Engine>(s: Arc<E>) {
    let w = lifecycle_ward(s.as_ref(), "alpha").await;
    let c = w.conversation;
    let (old, _) = lifecycle_send(s.as_ref(), &w, c, 100, None, None).await;
    let (recalled, recalled_key) = lifecycle_send(s.as_ref(), &w, c, 300, None, None).await;
    let (new, new_key) = lifecycle_send(s.as_ref(), &w, c, 500, None, None).await;
    let (ephemeral, _) = lifecycle_send(s.as_ref(), &w, c, 500, Some(600), None).await;
    // A copy shared again later counts from its original's time.
    let (copy, _) = lifecycle_send(s.as_ref(), &w, c, 900, None, Some((old.id, 100))).await;
    // A membership notice is never a candidate.
    let carol = inserted_user(s.as_ref(), w.org.id, &w.dek, "carol").await;
    let joined = MessageRow::membership_notice(c, 0, w.alice, 50);
    assert!(s.add_member(c, carol, &[], &joined).await.unwrap().0);
    let notice = lifecycle_recall_notice(c, w.alice.into(), recalled.id, 310);
    assert!(
        s.recall(c, recalled.id, false, &notice)
            .await
            .unwrap()
            .is_some()
    );
    let (elsewhere, _) = lifecycle_send(s.as_ref(), &w, w.other, 100, None, None).await;

    // No retention: only what is recalled with its body still stored.
    let recalled_candidate = Candidate {
        id: recalled.id,
        sender_user: Some(w.alice),
        created_at: 300,
        expires_at: None,
        recalled_at: Some(310),
        has_body: true,
    };
    assert_eq!(
        s.deletion_candidates(c, None, 550).await.unwrap(),
        vec![recalled_candidate.clone()]
    );
    // Retention: strictly older than the cut-off.
    assert_eq!(
        lifecycle_candidate_ids(s.as_ref(), c, Some(200), 550).await,
        sorted(vec![old.id, copy.id, recalled.id])
    );
    assert_eq!(
        lifecycle_candidate_ids(s.as_ref(), c, Some(100), 550).await,
        vec![recalled.id]
    );
    // Lifespans: expired at `now`.
    let got = s.deletion_candidates(c, Some(200), 600).await.unwrap();
    assert_eq!(
        sorted(got.iter().map(|x| x.id).collect()),
        sorted(vec![old.id, copy.id, recalled.id, ephemeral.id])
    );
    assert_eq!(
        got.iter().find(|x| x.id == ephemeral.id).unwrap(),
        &Candidate {
            id: ephemeral.id,
            sender_user: Some(w.alice),
            created_at: 500,
            expires_at: Some(600),
            recalled_at: None,
            has_body: true,
        }
    );
    assert_eq!(
        got.iter().find(|x| x.id == copy.id).unwrap().created_at,
        900
    );
    assert_eq!(
        lifecycle_candidate_ids(s.as_ref(), c, None, 599).await,
        vec![recalled.id]
    );
    // Everything older: application messages and recall notices only.
    let all = s.deletion_candidates(c, Some(10_000), 0).await.unwrap();
    assert_eq!(
        sorted(all.iter().map(|x| x.id).collect()),
        sorted(vec![
            old.id,
            copy.id,
            recalled.id,
            new.id,
            ephemeral.id,
            notice.id
        ])
    );
    assert_eq!(
        all.iter().find(|x| x.id == notice.id).unwrap(),
        &Candidate {
            id: notice.id,
            sender_user: Some(w.alice),
            created_at: 310,
            expires_at: None,
            recalled_at: None,
            has_body: false,
        }
    );
    assert_eq!(
        lifecycle_candidate_ids(s.as_ref(), w.other, Some(10_000), 10_000).await,
        vec![elsewhere.id],
        "candidates are the conversation's own"
    );

    // Shredding keeps the recalled row and destroys its body and key.
    assert_eq!(s.shred_bodies(w.other, &[recalled.id]).await.unwrap(), 0);
    assert_eq!(
        s.get_message(c, recalled.id).await.unwrap().body,
        recalled.body
    );
    assert_eq!(s.shred_bodies(c, &[recalled.id]).await.unwrap(), 1);
    assert_eq!(
        s.get_message(c, recalled.id).await.unwrap(),
        MessageRow {
            body: None,
            dek_id: None,
            recalled_at: Some(310),
            ..recalled.clone()
        }
    );
    assert!(matches!(
        s.get_data_key(&recalled_key.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.deletion_candidates(c, None, 550)
            .await
            .unwrap()
            .is_empty(),
        "a shredded recall is no longer a candidate"
    );
    let shredded = s.deletion_candidates(c, Some(10_000), 0).await.unwrap();
    assert_eq!(
        shredded.iter().find(|x| x.id == recalled.id).unwrap(),
        &Candidate {
            has_body: false,
            ..recalled_candidate
        }
    );
    assert_eq!(s.shred_bodies(c, &[recalled.id]).await.unwrap(), 0);
    // Other messages keep theirs.
    assert_eq!(s.get_message(c, new.id).await.unwrap(), new);
    assert_eq!(s.get_data_key(&new_key.id).await.unwrap(), new_key);
}

pub async fn deleting_messages_takes_their_copies_inbox_entries_and_keys<E: Engine>(s: Arc<E>) {
    let w = lifecycle_ward(s.as_ref(), "alpha").await;
    let c = w.conversation;
    let (old, old_key) = lifecycle_send(s.as_ref(), &w, c, 100, None, None).await;
    let (copy, copy_key) = lifecycle_send(s.as_ref(), &w, c, 900, None, Some((old.id, 100))).await;
    let (ephemeral, ephemeral_key) = lifecycle_send(s.as_ref(), &w, c, 200, Some(300), None).await;
    let (kept, kept_key) = lifecycle_send(s.as_ref(), &w, c, 500, None, None).await;
    let (elsewhere, elsewhere_key) = lifecycle_send(s.as_ref(), &w, w.other, 100, None, None).await;
    let (recalled_too, _) = lifecycle_send(s.as_ref(), &w, c, 550, None, None).await;
    let notice = lifecycle_recall_notice(c, w.alice.into(), recalled_too.id, 600);
    assert!(
        s.recall(c, recalled_too.id, true, &notice)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        lifecycle_inbox(s.as_ref(), w.bob_device.into()).await,
        vec![
            old.id,
            copy.id,
            ephemeral.id,
            kept.id,
            elsewhere.id,
            notice.id
        ]
    );
    assert_eq!(s.receipts(old.id).await.unwrap().len(), 1);

    // A message of another conversation is out of reach.
    assert_eq!(s.delete_messages(c, &[elsewhere.id]).await.unwrap(), 0);
    assert_eq!(
        s.get_message(w.other, elsewhere.id).await.unwrap(),
        elsewhere
    );
    assert_eq!(
        s.get_data_key(&elsewhere_key.id).await.unwrap(),
        elsewhere_key
    );

    // The original takes its copy along: three keys destroyed for two ids.
    assert_eq!(
        s.delete_messages(c, &[old.id, ephemeral.id]).await.unwrap(),
        3
    );
    for id in [old.id, copy.id, ephemeral.id] {
        assert!(matches!(
            s.get_message(c, id).await,
            Err(StoreError::NotFound)
        ));
    }
    for k in [&old_key, &copy_key, &ephemeral_key] {
        assert!(matches!(
            s.get_data_key(&k.id).await,
            Err(StoreError::NotFound)
        ));
    }
    assert!(s.receipts(old.id).await.unwrap().is_empty());
    assert_eq!(
        lifecycle_inbox(s.as_ref(), w.bob_device.into()).await,
        vec![kept.id, elsewhere.id, notice.id]
    );
    assert_eq!(s.get_message(c, kept.id).await.unwrap(), kept);
    assert_eq!(s.get_data_key(&kept_key.id).await.unwrap(), kept_key);
    assert_eq!(
        s.delete_messages(c, &[old.id, ephemeral.id]).await.unwrap(),
        0,
        "deleting again destroys nothing"
    );

    // A row without a key of its own (a recall notice, a shredded recall)
    // goes without destroying any.
    assert_eq!(
        s.delete_messages(c, &[notice.id, recalled_too.id])
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        s.get_message(c, notice.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_message(c, recalled_too.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        lifecycle_candidate_ids(s.as_ref(), c, Some(10_000), 10_000).await,
        vec![kept.id]
    );
}

pub async fn expired_attachments_are_listed_and_deleted_with_their_keys<E: Engine>(s: Arc<E>) {
    let w = lifecycle_ward(s.as_ref(), "alpha").await;
    let c = w.conversation;
    let attach = |conversation: Uuid, created_at: i64| {
        let k = data_key(Some(w.org.id));
        (
            AttachmentRow {
                id: Uuid::new_v4(),
                conversation_id: conversation,
                uploader_device: w.alice_device,
                data: vec![5; 64],
                created_at,
                dek_id: Some(k.id.clone()),
            },
            k,
        )
    };
    let (a1, k1) = attach(c, 100);
    let (a2, k2) = attach(c, 200);
    let (a3, k3) = attach(c, 300);
    let (ao, ko) = attach(w.other, 100);
    for (a, k) in [(&a1, &k1), (&a2, &k2), (&a3, &k3), (&ao, &ko)] {
        s.insert_attachment(a, k).await.unwrap();
    }

    assert!(s.expired_attachments(c, 100).await.unwrap().is_empty());
    assert_eq!(s.expired_attachments(c, 200).await.unwrap(), vec![a1.id]);
    assert_eq!(
        sorted(s.expired_attachments(c, 301).await.unwrap()),
        sorted(vec![a1.id, a2.id, a3.id])
    );
    assert_eq!(
        s.expired_attachments(w.other, 10_000).await.unwrap(),
        vec![ao.id]
    );

    // Only the conversation's own are deleted, each with its key.
    assert_eq!(
        s.delete_attachments(c, &[a1.id, a2.id, ao.id])
            .await
            .unwrap(),
        2
    );
    for (a, k) in [(&a1, &k1), (&a2, &k2)] {
        assert!(matches!(
            s.get_attachment(c, a.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            s.get_data_key(&k.id).await,
            Err(StoreError::NotFound)
        ));
    }
    let (back, key) = s.get_attachment(w.other, ao.id).await.unwrap();
    assert_eq!((back, key), (ao.clone(), Some(ko.clone())));
    assert_eq!(s.get_attachment(c, a3.id).await.unwrap().0, a3);
    assert_eq!(s.get_data_key(&k3.id).await.unwrap(), k3);
    assert_eq!(s.expired_attachments(c, 10_000).await.unwrap(), vec![a3.id]);
    assert_eq!(
        s.delete_attachments(c, &[a1.id, a2.id]).await.unwrap(),
        0,
        "deleting again destroys nothing"
    );
    assert_eq!(s.delete_attachments(w.other, &[ao.id]).await.unwrap(), 1);
    assert!(
        s.expired_attachments(w.other, 10_000)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn deletion_receipts_are_listed_newest_first_per_organisation<E: Engine>(s: Arc<E>) {
    let (a, _) = org_with_key(s.as_ref(), "alpha").await;
    let (b, _) = org_with_key(s.as_ref(), "beta").await;
    let json = |n: i64| format!(r#"{{"run":{n}}}"#);
    for (o, at) in [(a.id, 100), (a.id, 300), (a.id, 200), (b.id, 400)] {
        s.insert_receipt(o, Uuid::new_v4(), at, &json(at))
            .await
            .unwrap();
    }
    assert_eq!(
        s.list_receipts(a.id, 10).await.unwrap(),
        vec![json(300), json(200), json(100)]
    );
    assert_eq!(
        s.list_receipts(a.id, 2).await.unwrap(),
        vec![json(300), json(200)]
    );
    assert_eq!(s.list_receipts(b.id, 10).await.unwrap(), vec![json(400)]);
    assert!(
        s.list_receipts(Uuid::new_v4().into(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn job_leases_are_held_by_one_holder_until_they_lapse<E: Engine>(s: Arc<E>) {
    assert!(s.take_lease("purge", "node-a", 100, 160).await.unwrap());
    assert!(
        !s.take_lease("purge", "node-b", 120, 180).await.unwrap(),
        "a held lease is not taken by another"
    );
    assert!(
        s.take_lease("purge", "node-a", 150, 210).await.unwrap(),
        "the holder renews"
    );
    assert!(
        !s.take_lease("purge", "node-b", 200, 260).await.unwrap(),
        "the renewal holds past the first term"
    );
    assert!(
        s.take_lease("sweep", "node-b", 200, 260).await.unwrap(),
        "leases are per name"
    );
    assert!(
        s.take_lease("purge", "node-b", 211, 270).await.unwrap(),
        "a lapsed lease is free"
    );
    assert!(!s.take_lease("purge", "node-a", 220, 280).await.unwrap());

    // Racing nodes: exactly one gets a free lease.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.take_lease("race", &format!("node-{i}"), 1000, 1060)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap() as i32;
    }
    assert_eq!(won, 1);
}

pub async fn recall_marks_a_message_once_and_shreds_it_on_request<E: Engine>(s: Arc<E>) {
    let w = lifecycle_ward(s.as_ref(), "alpha").await;
    let c = w.conversation;
    let (kept, kept_key) = lifecycle_send(s.as_ref(), &w, c, 100, None, None).await;
    let (kept_copy, kept_copy_key) =
        lifecycle_send(s.as_ref(), &w, c, 110, None, Some((kept.id, 100))).await;
    let (shred, shred_key) = lifecycle_send(s.as_ref(), &w, c, 120, None, None).await;
    let (shred_copy, shred_copy_key) =
        lifecycle_send(s.as_ref(), &w, c, 130, None, Some((shred.id, 120))).await;
    let (untouched, _) = lifecycle_send(s.as_ref(), &w, c, 140, None, None).await;
    let (elsewhere, _) = lifecycle_send(s.as_ref(), &w, w.other, 150, None, None).await;
    let members = sorted(vec![w.alice_device, w.bob_device]);

    // Without shredding: marked, body kept, every member device told.
    let n1 = lifecycle_recall_notice(c, w.alice.into(), kept.id, 300);
    let woken = s.recall(c, kept.id, false, &n1).await.unwrap().unwrap();
    assert_eq!(sorted(woken), members);
    assert_eq!(
        s.get_message(c, kept.id).await.unwrap(),
        MessageRow {
            recalled_at: Some(300),
            ..kept.clone()
        }
    );
    assert_eq!(
        s.get_message(c, kept_copy.id).await.unwrap(),
        MessageRow {
            recalled_at: Some(300),
            ..kept_copy.clone()
        },
        "its copies shared again are recalled with it"
    );
    assert_eq!(s.get_data_key(&kept_key.id).await.unwrap(), kept_key);
    assert_eq!(
        s.get_data_key(&kept_copy_key.id).await.unwrap(),
        kept_copy_key
    );
    assert_eq!(s.get_message(c, n1.id).await.unwrap(), n1);

    // Recalled once: a second recall stores nothing and shreds nothing.
    let again = lifecycle_recall_notice(c, w.alice.into(), kept.id, 310);
    assert!(s.recall(c, kept.id, true, &again).await.unwrap().is_none());
    assert!(matches!(
        s.get_message(c, again.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_message(c, kept.id).await.unwrap().body, kept.body);
    assert_eq!(s.get_data_key(&kept_key.id).await.unwrap(), kept_key);

    // Only application messages of the conversation are recalled.
    let of_notice = lifecycle_recall_notice(c, w.alice.into(), n1.id, 320);
    assert!(
        s.recall(c, n1.id, false, &of_notice)
            .await
            .unwrap()
            .is_none()
    );
    let wrong_conv = lifecycle_recall_notice(w.other, w.alice.into(), untouched.id, 320);
    assert!(
        s.recall(w.other, untouched.id, false, &wrong_conv)
            .await
            .unwrap()
            .is_none()
    );
    let missing = lifecycle_recall_notice(c, w.alice.into(), Uuid::new_v4(), 320);
    assert!(
        s.recall(c, missing.recalls.unwrap(), false, &missing)
            .await
            .unwrap()
            .is_none()
    );
    for n in [&of_notice, &missing] {
        assert!(matches!(
            s.get_message(c, n.id).await,
            Err(StoreError::NotFound)
        ));
    }
    assert!(matches!(
        s.get_message(w.other, wrong_conv.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.get_message(c, untouched.id).await.unwrap().recalled_at,
        None
    );

    // Shredding: the bodies and keys of the message and its copies go.
    let n2 = lifecycle_recall_notice(c, w.alice.into(), shred.id, 400);
    let woken = s.recall(c, shred.id, true, &n2).await.unwrap().unwrap();
    assert_eq!(sorted(woken), members);
    for (m, k) in [(&shred, &shred_key), (&shred_copy, &shred_copy_key)] {
        assert_eq!(
            s.get_message(c, m.id).await.unwrap(),
            MessageRow {
                body: None,
                dek_id: None,
                recalled_at: Some(400),
                ..m.clone()
            }
        );
        assert!(matches!(
            s.get_data_key(&k.id).await,
            Err(StoreError::NotFound)
        ));
    }

    // Devices see the notices and no longer the recalled messages.
    assert_eq!(
        lifecycle_inbox(s.as_ref(), w.bob_device.into()).await,
        vec![untouched.id, elsewhere.id, n1.id, n2.id]
    );
    assert_eq!(
        lifecycle_inbox(s.as_ref(), w.alice_device.into()).await,
        vec![n1.id, n2.id],
        "the sender's own devices are told too"
    );
}

pub async fn wiping_a_device_retires_it_and_ends_only_its_owners_sessions<E: Engine>(s: Arc<E>) {
    let (a, dek) = org_with_key(s.as_ref(), "alpha").await;
    let (b, _) = org_with_key(s.as_ref(), "beta").await;
    let alice = inserted_user(s.as_ref(), a.id, &dek, "alice").await;
    let bob = inserted_user(s.as_ref(), a.id, &dek, "bob").await;
    let phone = inserted_device(
        s.as_ref(),
        a.id,
        alice,
        &[(vec![1; 8], false), (vec![2; 8], true)],
    )
    .await;
    let laptop = inserted_device(s.as_ref(), a.id, alice, &[(vec![3; 8], false)]).await;
    let bob_phone = inserted_device(s.as_ref(), a.id, bob, &[]).await;

    let on_phone = [
        session(a.id, alice, phone),
        session(a.id, alice, phone),
        session(a.id, alice, phone),
    ];
    let on_laptop = session(a.id, alice, laptop);
    // Someone else's session bound to the same (client-chosen) device id.
    let squatter = session(a.id, bob, phone);
    for x in on_phone.iter().chain([&on_laptop, &squatter]) {
        s.insert_session(x).await.unwrap();
    }
    assert!(s.revoke_session(on_phone[2].id, 400).await.unwrap());

    let order = WipeRow {
        device_id: phone,
        org_id: a.id,
        user_id: alice,
        requested_by: bob,
        requested_at: 500,
        reason: "lost on the bus".into(),
        sessions_ended: 0,
        conversations: 0,
        confirmed_at: None,
    };
    assert_eq!(s.begin_wipe(&order).await.unwrap(), 2);
    let revoked_at = async |t: &SessionRow| {
        s.get_session_by_token_hash(&t.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
    };
    assert_eq!(revoked_at(&on_phone[0]).await, Some(500));
    assert_eq!(revoked_at(&on_phone[1]).await, Some(500));
    assert_eq!(revoked_at(&on_phone[2]).await, Some(400), "already ended");
    assert_eq!(revoked_at(&on_laptop).await, None);
    assert_eq!(
        revoked_at(&squatter).await,
        None,
        "another user's session on the same device id lives on"
    );
    assert_eq!(
        s.get_device(a.id, phone).await.unwrap().retired_at,
        Some(500)
    );
    assert_eq!(s.get_device(a.id, laptop).await.unwrap().retired_at, None);
    assert_eq!(
        s.claim_key_package(phone).await.unwrap(),
        None,
        "its key packages are dropped"
    );
    assert_eq!(s.claim_key_package(laptop).await.unwrap(), Some(vec![3; 8]));

    let recorded = WipeRow {
        sessions_ended: 2,
        ..order.clone()
    };
    assert_eq!(
        s.get_wipe(a.id, alice, phone).await.unwrap(),
        Some(recorded.clone())
    );
    assert_eq!(s.get_wipe(a.id, bob, phone).await.unwrap(), None);
    assert_eq!(s.get_wipe(b.id, alice, phone).await.unwrap(), None);
    assert_eq!(s.get_wipe(a.id, alice, laptop).await.unwrap(), None);

    // One order per device.
    assert!(matches!(
        s.begin_wipe(&WipeRow {
            requested_at: 600,
            ..order.clone()
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.get_wipe(a.id, alice, phone).await.unwrap(),
        Some(recorded.clone())
    );

    let laptop_order = WipeRow {
        device_id: laptop,
        requested_by: alice,
        requested_at: 700,
        reason: "stolen".into(),
        ..order.clone()
    };
    assert_eq!(s.begin_wipe(&laptop_order).await.unwrap(), 1);
    let bob_order = WipeRow {
        device_id: bob_phone,
        user_id: bob,
        requested_by: bob,
        requested_at: 600,
        reason: "dropped".into(),
        ..order.clone()
    };
    assert_eq!(s.begin_wipe(&bob_order).await.unwrap(), 0);

    s.set_wipe_conversations(phone, 3).await.unwrap();
    let recorded = WipeRow {
        conversations: 3,
        ..recorded
    };
    assert_eq!(
        s.get_wipe(a.id, alice, phone).await.unwrap(),
        Some(recorded.clone())
    );
    let laptop_recorded = WipeRow {
        sessions_ended: 1,
        ..laptop_order
    };
    let by_device = |mut v: Vec<WipeRow>| {
        v.sort_by_key(|x| x.device_id);
        v
    };
    assert_eq!(
        by_device(s.list_wipes(a.id, None).await.unwrap()),
        by_device(vec![
            recorded.clone(),
            laptop_recorded.clone(),
            bob_order.clone()
        ])
    );
    assert_eq!(
        by_device(s.list_wipes(a.id, Some(alice)).await.unwrap()),
        by_device(vec![recorded.clone(), laptop_recorded.clone()])
    );
    assert_eq!(
        s.list_wipes(a.id, Some(bob)).await.unwrap(),
        vec![bob_order]
    );
    assert!(s.list_wipes(b.id, None).await.unwrap().is_empty());
    assert!(
        s.list_wipes(a.id, Some(Uuid::new_v4().into()))
            .await
            .unwrap()
            .is_empty()
    );

    // Confirmed once, by the device's owner only.
    assert!(!s.confirm_wipe(a.id, bob, phone, 800).await.unwrap());
    assert!(!s.confirm_wipe(b.id, alice, phone, 800).await.unwrap());
    assert_eq!(
        s.get_wipe(a.id, alice, phone)
            .await
            .unwrap()
            .unwrap()
            .confirmed_at,
        None
    );
    assert!(s.confirm_wipe(a.id, alice, phone, 800).await.unwrap());
    assert!(
        !s.confirm_wipe(a.id, alice, phone, 900).await.unwrap(),
        "a wipe is confirmed once"
    );
    assert_eq!(
        s.get_wipe(a.id, alice, phone).await.unwrap(),
        Some(WipeRow {
            confirmed_at: Some(800),
            ..recorded
        })
    );
    assert_eq!(
        s.get_wipe(a.id, alice, laptop)
            .await
            .unwrap()
            .unwrap()
            .confirmed_at,
        None
    );
}

pub async fn retired_devices_leave_the_conversations_they_are_in_or_joining<E: Engine>(s: Arc<E>) {
    let w = lifecycle_ward(s.as_ref(), "alpha").await;
    let (c1, c2) = (w.conversation, w.other);
    let bob_only = lifecycle_conversation(
        s.as_ref(),
        w.org.id,
        &w.dek,
        &[w.bob],
        &[(w.bob, w.bob_device)],
        Default::default(),
        None,
    )
    .await;
    // A new device of Alice's waits to join both of her conversations.
    let tablet = inserted_device(s.as_ref(), w.org.id, w.alice, &[]).await;

    let both = sorted(vec![c1, c2]);
    assert_eq!(
        sorted(s.device_conversations(w.alice_device).await.unwrap()),
        both
    );
    assert_eq!(
        sorted(s.device_conversations(tablet).await.unwrap()),
        both,
        "waiting to join counts"
    );
    assert_eq!(
        sorted(s.device_conversations(w.bob_device).await.unwrap()),
        sorted(vec![c1, c2, bob_only])
    );
    assert!(
        s.device_conversations(Uuid::new_v4().into())
            .await
            .unwrap()
            .is_empty()
    );

    // A member device waits to be removed; the remaining members are told.
    let n1 = MessageRow::membership_notice(c1, 0, w.alice, 500);
    let (there, woken) = s
        .retire_from_conversation(c1, w.alice_device, &n1)
        .await
        .unwrap();
    assert!(there);
    assert_eq!(woken, vec![w.bob_device]);
    let state_of = |rows: &[ConversationDeviceRow], d: Uuid| {
        rows.iter().find(|r| r.device_id == d).map(|r| r.state)
    };
    let devices = s.conversation_devices(c1).await.unwrap();
    assert_eq!(
        state_of(&devices, w.alice_device.into()),
        Some(DeviceState::PendingRemove)
    );
    assert_eq!(
        state_of(&devices, tablet.into()),
        Some(DeviceState::PendingAdd)
    );
    assert_eq!(
        state_of(&devices, w.bob_device.into()),
        Some(DeviceState::Member)
    );
    assert_eq!(s.get_message(c1, n1.id).await.unwrap(), n1);
    assert!(
        lifecycle_inbox(s.as_ref(), w.bob_device.into())
            .await
            .contains(&n1.id)
    );

    // A device only waiting to join is dropped.
    let n2 = MessageRow::membership_notice(c1, 0, w.alice, 510);
    let (there, woken) = s.retire_from_conversation(c1, tablet, &n2).await.unwrap();
    assert!(there);
    assert_eq!(woken, vec![w.bob_device]);
    assert_eq!(
        state_of(&s.conversation_devices(c1).await.unwrap(), tablet.into()),
        None
    );
    assert_eq!(s.device_conversations(tablet).await.unwrap(), vec![c2]);
    assert_eq!(
        state_of(&s.conversation_devices(c2).await.unwrap(), tablet.into()),
        Some(DeviceState::PendingAdd),
        "other conversations are untouched"
    );

    // Not there: nothing changes and nobody is told.
    let n3 = MessageRow::membership_notice(bob_only, 0, w.alice, 520);
    let (there, woken) = s
        .retire_from_conversation(bob_only, w.alice_device, &n3)
        .await
        .unwrap();
    assert!(!there);
    assert!(woken.is_empty());
    assert!(matches!(
        s.get_message(bob_only, n3.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.conversation_devices(bob_only).await.unwrap(),
        vec![ConversationDeviceRow {
            device_id: w.bob_device,
            user_id: w.bob,
            state: DeviceState::Member,
        }]
    );
}
