//! End-to-end encrypted messaging through the real server, with real MLS
//! clients (`wardline_client::chat::Chat`), on SQLite and PostgreSQL:
//! conversations across devices, offline catch-up, receipts, the WebSocket,
//! the security properties (no plaintext at rest, removed and new members,
//! forged, replayed, stale and misaddressed messages) and bad input.

use std::time::Duration;

use crate::common::{
    Backend, Devices, PASSPHRASE, TestServer, contains, database_bytes, group, texts,
};
use sqlx::Row;
use uuid::Uuid;
use wardline_client::ApiClient;
use wardline_client::chat::Chat;
use wardline_client::core::{Event, MessageContent};
use wardline_proto::messaging::*;
use wardline_proto::{ErrorCode, Role};
use wardline_store::AuditStore;

/// Two users on three devices: a clinical thread, one device offline and
/// catching up, replies, receipts, and no plaintext on the server.
async fn conversation_across_devices(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "Alice's phone").await;
    let mut b1 = devices.of(&bob, "Bob's phone").await;
    let (bob2_api, bob2_id) = t.sign_in_device(&bob).await;
    let mut b2 = devices
        .open(bob2_api, bob.user.id, bob2_id, "Bob's ward iPad")
        .await;

    // Bob's devices see each other.
    let mine = b1.api.my_devices().await.unwrap();
    assert_eq!(mine.devices.len(), 2);
    assert!(
        mine.devices
            .iter()
            .all(|d| d.key_packages_available == 20 && d.has_last_resort)
    );

    let conv = group(&mut a, &[bob.user.id], Some("MRN-0042-canary")).await;
    let c = a.api.conversation(conv).await.unwrap();
    assert_eq!(c.epoch, 1, "one commit added both of Bob's devices");
    assert!(c.devices.iter().all(|d| d.state == DeviceState::Member));
    assert!(c.read_receipts_mandatory, "clinical thread");

    // Bob's phone joins and reads; the iPad stays offline. The phone is told
    // that the iPad was registered to Bob's account after it.
    let ev = b1.sync().await.unwrap();
    assert!(ev.contains(&Event::Joined { conversation: conv }));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::NewDevice { device, .. } if *device == bob2_id)),
        "{ev:?}"
    );
    assert!(
        !b1.sync()
            .await
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::NewDevice { .. }))
    );
    // Every device's identity key is in the tamper-evident audit trail.
    let trail = t.sql.audit_entries(0, 10_000).await.unwrap();
    for key in [
        a.core.mls.identity_key(),
        b1.core.mls.identity_key(),
        b2.core.mls.identity_key(),
    ] {
        let fp = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&key));
        assert!(
            trail.iter().any(|r| r.action == "device.register"
                && r.target_type.as_deref() == Some("identity_key_sha256")
                && r.target_id.as_deref() == Some(fp.as_str())),
            "identity key {fp} not in the audit trail"
        );
    }
    let canary = "PLAINTEXT-CANARY potassium 6.8 bed 12";
    let sent = a
        .send(conv, MessageContent::text(canary), Priority::Stat)
        .await
        .unwrap();
    b1.sync().await.unwrap();
    assert_eq!(texts(&b1, conv), vec![canary]);
    let got = &b1.core.conversations[&conv].messages[0];
    assert_eq!(
        (got.priority, got.sender_user),
        (Priority::Stat, alice.user.id)
    );
    let reply = MessageContent {
        text: "PLAINTEXT-CANARY-REPLY repeat K+ drawn".into(),
        reply_to: Some(sent),
        ..Default::default()
    };
    b1.send(conv, reply.clone(), Priority::Urgent)
        .await
        .unwrap();
    a.sync().await.unwrap();
    assert_eq!(texts(&a, conv), vec![canary, &reply.text]);
    assert_eq!(
        a.core.conversations[&conv].messages[1].content.reply_to,
        Some(sent)
    );

    // Receipts before the iPad is back: delivered to Bob's phone only.
    let r = a.api.receipts(conv, sent).await.unwrap();
    assert_eq!(r.priority, Priority::Stat);
    let by_device = |r: &MessageReceipts, d: Uuid| {
        r.receipts
            .iter()
            .find(|x| x.device_id == d)
            .cloned()
            .unwrap()
    };
    assert!(by_device(&r, bob.device_id).delivered_at.is_some());
    assert!(by_device(&r, bob2_id).delivered_at.is_none());

    // The iPad catches up: it joined before the messages, so it reads both.
    let ev = b2.sync().await.unwrap();
    assert!(ev.contains(&Event::Joined { conversation: conv }));
    assert_eq!(texts(&b2, conv), vec![canary, &reply.text]);
    // The reply came from Bob's other device: Bob's own, sent from the phone.
    let own = &b2.core.conversations[&conv].messages[1];
    assert!(own.mine && own.sender_device == bob.device_id);

    // Read receipts are mandatory in a clinical thread, whatever Bob prefers.
    b1.api
        .set_messaging_preferences(&MessagingPreferences {
            share_read_receipts: false,
        })
        .await
        .unwrap();
    // Issue 19, case 15: a watermark ("read up to here") never marks an
    // urgent or STAT message read; only showing it does.
    assert_eq!(b1.mark_read(conv).await.unwrap(), Some(sent));
    let r = a.api.receipts(conv, sent).await.unwrap();
    assert!(
        by_device(&r, bob.device_id).read_at.is_none(),
        "a STAT is read when shown"
    );
    assert_eq!(b1.mark_shown(conv, &[sent]).await.unwrap(), 1);
    assert_eq!(b1.mark_shown(conv, &[sent]).await.unwrap(), 0, "once");
    let r = a.api.receipts(conv, sent).await.unwrap();
    assert!(by_device(&r, bob.device_id).read_at.is_some());
    // A message not in the device's inbox: 404, and nothing marked.
    let stranger = b1
        .api
        .mark_shown(conv, &[Uuid::new_v4()])
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Some(ErrorCode::NotFound));
    assert!(by_device(&r, bob2_id).delivered_at.is_some());

    // In an ordinary group Bob's preference hides them.
    let plain = group(&mut a, &[bob.user.id], None).await;
    b1.sync().await.unwrap();
    let m = a
        .send(plain, MessageContent::text("coffee?"), Priority::Routine)
        .await
        .unwrap();
    b1.sync().await.unwrap();
    b1.mark_read(plain).await.unwrap();
    let r = a.api.receipts(plain, m).await.unwrap();
    let bob_phone = by_device(&r, bob.device_id);
    assert!(bob_phone.delivered_at.is_some() && bob_phone.read_at.is_none());

    // Nothing of the content on the server, nor the title.
    let db = database_bytes(&t).await;
    for needle in [
        "PLAINTEXT-CANARY",
        "potassium",
        "K+ drawn",
        "Ward 4 night team",
    ] {
        assert!(
            !contains(&db, needle),
            "{needle:?} found in the {backend:?} database"
        );
    }
    // The patient reference is sealed in the conversation; only the audit
    // trail names it in clear (its access reports search by it, see issue 4).
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT patient_ref_enc FROM conversations WHERE id = '{conv}'"
    )))
    .fetch_one(
        &sqlx::AnyPool::connect(&t.config.database_url.clone().unwrap())
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let sealed: Vec<u8> = row.get("patient_ref_enc");
    assert!(!contains(&sealed, "MRN-0042"));
    // … nor in the devices' local stores.
    for entry in std::fs::read_dir(devices.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, "PLAINTEXT-CANARY"));
    }
    // The local store reopens with the passphrase, and only with it.
    let path = devices.dir.path().join(format!("{}.wls", alice.device_id));
    drop(a);
    assert!(
        Chat::open(
            alice.client.clone(),
            &path,
            "wrong",
            alice.user.id,
            alice.device_id,
            "x"
        )
        .await
        .is_err()
    );
    let a = Chat::open(
        alice.client.clone(),
        &path,
        PASSPHRASE,
        alice.user.id,
        alice.device_id,
        "x",
    )
    .await
    .unwrap();
    assert_eq!(texts(&a, conv), vec![canary, &reply.text]);

    // The patient's access report lists who opened the clinical thread.
    let report: serde_json::Value = serde_json::to_value(
        t.state
            .audit_reader
            .access_report(
                t.state.store.get_org_by_slug("alpha").await.unwrap().id,
                "MRN-0042-canary",
                None,
                None,
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        report.to_string().contains("conversation.create"),
        "{report}"
    );
    assert!(report.to_string().contains("message.submit"), "{report}");
    // … and who read it there, and looked at its receipts (issue 18, item 7).
    assert!(report.to_string().contains("message.read"), "{report}");
    assert!(report.to_string().contains("receipts.view"), "{report}");
}

/// A removed member cannot read what is sent after; a new member cannot read
/// what was sent before; nothing is accepted while a removal is pending.
async fn membership_changes_are_cryptographic(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    let carol = t.user_with_role(&admin, Role::MedicalAssistant).await;
    let dave = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "a").await;
    let mut b = devices.of(&bob, "b").await;
    let mut c = devices.of(&carol, "c").await;
    let mut d = devices.of(&dave, "d").await;
    let conv = group(&mut a, &[bob.user.id, carol.user.id], None).await;
    b.sync().await.unwrap();
    c.sync().await.unwrap();
    a.send(
        conv,
        MessageContent::text("before removal"),
        Priority::Routine,
    )
    .await
    .unwrap();
    c.sync().await.unwrap();
    assert_eq!(texts(&c, conv), vec!["before removal"]);

    // Carol is removed on the server; until a commit takes her device out of
    // the group, no message is accepted.
    a.api.remove_member(conv, carol.user.id).await.unwrap();
    a.core.queue(
        conv,
        MessageContent::text("too early"),
        Priority::Routine,
        None,
    );
    let early = a.core.encrypt_next().unwrap().unwrap();
    let err = a.api.submit(conv, &early).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::MembershipPending));
    a.core.drop_next();
    // Bob's client notices and commits the removal itself.
    b.sync().await.unwrap();
    let after = a.api.conversation(conv).await.unwrap();
    assert!(after.devices.iter().all(|x| x.user_id != carol.user.id));
    a.sync().await.unwrap();
    let secret = a
        .send(
            conv,
            MessageContent::text("after removal"),
            Priority::Routine,
        )
        .await
        .unwrap();
    // Carol's device gets nothing more, and could not read it if it did.
    c.sync().await.unwrap();
    assert_eq!(texts(&c, conv), vec!["before removal"]);
    let body: Vec<u8> = t
        .state
        .messaging
        .inbox_after(bob.device_id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.message_id == secret)
        .and_then(|e| e.mls)
        .unwrap()
        .0;
    assert!(
        c.core.mls.process(conv, &body).is_err(),
        "removed member decrypted a later message"
    );
    // Nor can she send: her device is not in the group.
    let err = c
        .api
        .submit(
            conv,
            &SubmitMessageRequest {
                message_id: Uuid::new_v4(),
                kind: MessageKind::Application,
                mls: B64(b.core.mls.encrypt(conv, b"y").unwrap()),
                priority: Priority::Routine,
                welcome: None,
                added_devices: vec![],
                removed_devices: vec![],
                ttl_secs: None,
                shared_again: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");

    // Everyone's client records the removal as the MLS commit made it.
    let change = a.core.conversations[&conv].changes.last().cloned().unwrap();
    assert_eq!(change.removed, vec![(carol.user.id, carol.device_id)]);
    assert_eq!(change.by, Some(bob.user.id));
    assert_eq!(
        b.core.conversations[&conv].changes.last().unwrap().removed,
        change.removed
    );

    // Dave joins later and cannot read what came before.
    a.api.add_member(conv, dave.user.id).await.unwrap();
    a.reconcile(conv).await.unwrap();
    let ev = d.sync().await.unwrap();
    assert!(ev.contains(&Event::Joined { conversation: conv }));
    assert!(texts(&d, conv).is_empty());
    assert_eq!(
        a.core.conversations[&conv].changes.last().unwrap().added,
        vec![(dave.user.id, dave.device_id)]
    );
    assert!(
        d.core.mls.process(conv, &body).is_err(),
        "new member decrypted an earlier message"
    );
    a.send(
        conv,
        MessageContent::text("welcome Dave"),
        Priority::Routine,
    )
    .await
    .unwrap();
    d.sync().await.unwrap();
    assert_eq!(texts(&d, conv), vec!["welcome Dave"]);

    // Deprovisioning takes a user out of every conversation: Dave's device is
    // cut off at once and removed from the group by the next member's client.
    admin.client.deprovision_user(dave.user.id).await.unwrap();
    let c = a.api.conversation(conv).await.unwrap();
    assert!(!c.members.contains(&dave.user.id));
    assert!(
        c.devices
            .iter()
            .any(|x| x.device_id == dave.device_id && x.state == DeviceState::PendingRemove)
    );
    a.sync().await.unwrap(); // Alice's client commits the removal
    let c = a.api.conversation(conv).await.unwrap();
    assert!(c.devices.iter().all(|x| x.user_id != dave.user.id));
    assert_eq!(
        a.core.conversations[&conv].changes.last().unwrap().removed,
        vec![(dave.user.id, dave.device_id)]
    );

    // A new device of an existing member joins all of that user's conversations.
    let (bob2_api, bob2_id) = t.sign_in_device(&bob).await;
    let mut b2 = devices.open(bob2_api, bob.user.id, bob2_id, "b2").await;
    let pending = a.api.conversation(conv).await.unwrap();
    assert!(
        pending
            .devices
            .iter()
            .any(|x| x.device_id == bob2_id && x.state == DeviceState::PendingAdd)
    );
    b.sync().await.unwrap(); // any member's client adds it
    let ev = b2.sync().await.unwrap();
    assert!(ev.contains(&Event::Joined { conversation: conv }), "{ev:?}");
    a.sync().await.unwrap();
    a.send(
        conv,
        MessageContent::text("hi Bob's second device"),
        Priority::Routine,
    )
    .await
    .unwrap();
    b2.sync().await.unwrap();
    // It is given the recent history by the devices that wrote it (issue
    // 18, item 4), then what is sent from now on.
    assert_eq!(
        texts(&b2, conv),
        vec![
            "before removal",
            "after removal",
            "welcome Dave",
            "hi Bob's second device"
        ]
    );
}

/// Forged, replayed, stale, misaddressed and non-member messages are refused
/// with clear errors and change nothing.
async fn bad_messages_change_nothing(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    let eve = t.user_with_role(&admin, Role::FrontDesk).await;
    let dave = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "a").await;
    let mut b = devices.of(&bob, "b").await;
    let e = devices.of(&eve, "e").await;
    let _d = devices.of(&dave, "d").await;
    let conv = group(&mut a, &[bob.user.id], None).await;
    b.sync().await.unwrap();

    let submit = |api: &ApiClient, conv: Uuid, kind: MessageKind, mls: Vec<u8>, id: Uuid| {
        let api = api.clone();
        async move {
            api.submit(
                conv,
                &SubmitMessageRequest {
                    message_id: id,
                    kind,
                    mls: B64(mls),
                    priority: Priority::Routine,
                    welcome: None,
                    added_devices: vec![],
                    removed_devices: vec![],
                    ttl_secs: None,
                    shared_again: None,
                },
            )
            .await
        }
    };
    let state = |api: ApiClient| async move {
        let c = api.conversation(conv).await.unwrap();
        (c.epoch, c.devices)
    };
    let before = state(a.api.clone()).await;
    let bob_inbox = b.api.sync(0, 500).await.unwrap().entries.len();

    // Not MLS at all.
    let err = submit(
        &a.api,
        conv,
        MessageKind::Application,
        b"hello in clear".to_vec(),
        Uuid::new_v4(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
    // An MLS message of another group.
    let other = group(&mut a, &[bob.user.id], None).await;
    let foreign = a.core.mls.encrypt(other, b"elsewhere").unwrap();
    let err = submit(
        &a.api,
        conv,
        MessageKind::Application,
        foreign,
        Uuid::new_v4(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
    // Unknown conversation.
    let good = a
        .core
        .mls
        .encrypt(conv, &MessageContent::text("real").to_bytes())
        .unwrap();
    let err = submit(
        &a.api,
        Uuid::new_v4(),
        MessageKind::Application,
        good.clone(),
        Uuid::new_v4(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    // A non-member (registered, same organisation).
    let err = submit(
        &e.api,
        conv,
        MessageKind::Application,
        good.clone(),
        Uuid::new_v4(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    // Labelled as a commit.
    let err = submit(
        &a.api,
        conv,
        MessageKind::Commit,
        good.clone(),
        Uuid::new_v4(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest));
    assert_eq!(state(a.api.clone()).await, before);

    // Accepted once; the same id again is an idempotent retry; a replay under a new id is refused.
    let id = Uuid::new_v4();
    let ok = submit(&a.api, conv, MessageKind::Application, good.clone(), id)
        .await
        .unwrap();
    assert!(!ok.duplicate);
    let again = submit(&a.api, conv, MessageKind::Application, good.clone(), id)
        .await
        .unwrap();
    assert!(again.duplicate);
    let err = submit(
        &a.api,
        conv,
        MessageKind::Application,
        good.clone(),
        Uuid::new_v4(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Replayed));
    // Bob received it exactly once and reads it; a byte-flipped copy (which the
    // server cannot tell from a real one) is rejected by his client.
    let mut forged = good.clone();
    let n = forged.len();
    forged[n - 5] ^= 0x40;
    submit(
        &a.api,
        conv,
        MessageKind::Application,
        forged,
        Uuid::new_v4(),
    )
    .await
    .unwrap();
    let ev = b.sync().await.unwrap();
    assert_eq!(texts(&b, conv), vec!["real"]);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Rejected { .. })),
        "{ev:?}"
    );
    // The second group's Welcome, the real message and the forged copy.
    assert_eq!(
        b.api.sync(0, 500).await.unwrap().entries.len(),
        bob_inbox + 3
    );

    // Two commits for the same epoch: exactly one wins; the other is told so.
    a.api.add_member(conv, dave.user.id).await.unwrap();
    let c = a.api.conversation(conv).await.unwrap();
    let dave_dev = dave.device_id;
    let ka = a.api.claim_key_packages(conv, &[dave_dev]).await.unwrap();
    let kb = b.api.claim_key_packages(conv, &[dave_dev]).await.unwrap();
    let ca = a.core.commit_add(conv, &ka.key_packages).unwrap();
    let cb = b.core.commit_add(conv, &kb.key_packages).unwrap();
    a.api.submit(conv, &ca).await.unwrap();
    a.core.mls.merge_pending(conv).unwrap();
    let err = b.api.submit(conv, &cb).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::StaleEpoch), "{err}");
    let after = a.api.conversation(conv).await.unwrap();
    assert_eq!(after.epoch, c.epoch + 1);
    // The loser recovers: drops its commit, applies the winner's, keeps talking.
    b.core.mls.clear_pending(conv).unwrap();
    b.sync().await.unwrap();
    b.send(
        conv,
        MessageContent::text("still in sync"),
        Priority::Routine,
    )
    .await
    .unwrap();
    a.sync().await.unwrap();
    assert!(texts(&a, conv).contains(&"still in sync".to_owned()));
}

/// Real-time delivery over the WebSocket, and revocation closing it.
async fn websocket_delivery(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "a").await;
    let mut b = devices.of(&bob, "b").await;
    let conv = group(&mut a, &[bob.user.id], None).await;
    b.sync().await.unwrap();
    // L6 of the 2026-11-30 findings: one session opened 2,000 sockets. A
    // device holds at most 4 on a node; the fifth is refused (429), and a
    // closed one makes room.
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(a.connect().await.unwrap());
    }
    let err = a.connect().await.unwrap_err().to_string();
    assert!(err.contains("429"), "{err}");
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    open.push(a.connect().await.unwrap());
    drop(open);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        let r = b
            .watch(|e| {
                let _ = tx.send(e.clone());
                true
            })
            .await;
        (r, b)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.send(
        conv,
        MessageContent::text("over the socket"),
        Priority::Urgent,
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Event::Message { message, .. }) = rx.recv().await {
                return message;
            }
        }
    })
    .await
    .expect("message pushed over the WebSocket");
    assert_eq!(got.content.text, "over the socket");
    // Signing Bob out everywhere closes his socket at once.
    admin
        .client
        .revoke_sessions(bob.user.id, None)
        .await
        .unwrap();
    let (result, b) = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("socket closed on revocation")
        .unwrap();
    result.unwrap();
    // What arrived over the socket was acknowledged: delivered (socket
    // acknowledgements are written in batches, within a moment).
    let mut delivered = false;
    for _ in 0..40 {
        let r = a.api.receipts(conv, got.id).await.unwrap();
        if r.receipts.iter().all(|x| x.delivered_at.is_some()) {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the socket's acknowledgement was never written");
    drop(b);
}

/// Messages written offline wait in the encrypted outbox and go out in order;
/// a retry after a lost answer delivers the message once.
async fn offline_outbox(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "a").await;
    let mut b = devices.of(&bob, "b").await;
    let conv = group(&mut a, &[bob.user.id], None).await;
    b.sync().await.unwrap();
    // Offline: nothing listens on this port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://{}", dead.local_addr().unwrap());
    drop(dead);
    let online = std::mem::replace(
        &mut a.api,
        ApiClient::new(&dead_url, Some(&t.ca_pem))
            .unwrap()
            .with_token(Some(alice.token.clone())),
    );
    for i in 1..=3 {
        a.send(
            conv,
            MessageContent::text(format!("offline {i}")),
            Priority::Routine,
        )
        .await
        .unwrap();
    }
    assert_eq!(a.core.outbox.len(), 3);
    a.api = online;
    assert_eq!(a.flush().await.unwrap(), 3);
    b.sync().await.unwrap();
    assert_eq!(texts(&b, conv), vec!["offline 1", "offline 2", "offline 3"]);

    // The server stores a message but its answer is lost (a crash, a dropped
    // connection): the retry sends the same bytes under the same id and is
    // taken as that message, not refused as another one under its id
    // (found by `cargo xtask bench crash-loss`).
    a.core.queue(
        conv,
        MessageContent::text("answer lost"),
        Priority::Routine,
        None,
    );
    let first = a.core.encrypt_next().unwrap().unwrap();
    a.api.submit(conv, &first).await.unwrap();
    let retry = a.core.encrypt_next().unwrap().unwrap();
    assert_eq!(retry.mls, first.mls);
    assert!(a.api.submit(conv, &retry).await.unwrap().duplicate);
    assert_eq!(a.flush().await.unwrap(), 1);
    assert!(a.core.outbox.is_empty());
    b.sync().await.unwrap();
    assert_eq!(
        texts(&b, conv),
        vec!["offline 1", "offline 2", "offline 3", "answer lost"]
    );

    // Issue 18, item 1: a message the server refuses for good (here: larger
    // than any submission it takes) does not jam the outbox in silence: it is
    // taken out with the server's reason, and the ones behind it go.
    let online = std::mem::replace(
        &mut a.api,
        ApiClient::new(&dead_url, Some(&t.ca_pem))
            .unwrap()
            .with_token(Some(alice.token.clone())),
    );
    let huge = a
        .send(
            conv,
            MessageContent::text("x".repeat(9 << 20)),
            Priority::Routine,
        )
        .await
        .unwrap();
    a.send(
        conv,
        MessageContent::text("behind the refused one"),
        Priority::Routine,
    )
    .await
    .unwrap();
    a.api = online;
    assert_eq!(a.flush().await.unwrap(), 1);
    assert!(a.core.outbox.is_empty());
    assert_eq!(a.refused.len(), 1, "{:?}", a.refused);
    assert_eq!(a.refused[0].message, huge);
    b.sync().await.unwrap();
    assert_eq!(texts(&b, conv).last().unwrap(), "behind the refused one");

    // M9 of the 2026-11-30 findings: Alice's new device is in the
    // conversation but not yet its MLS group (no member device has added it).
    // A message to it waits, and says why; it no longer holds back a STAT to
    // another conversation.
    let carol = t.user_with_role(&admin, Role::Nurse).await;
    let mut c = devices.of(&carol, "c").await;
    let (api2, device2) = t.sign_in_device(&alice).await;
    let mut a2 = devices.open(api2, alice.user.id, device2, "a2").await;
    a2.sync().await.unwrap();
    let waits = a2
        .send(
            conv,
            MessageContent::text("from the new device"),
            Priority::Routine,
        )
        .await
        .unwrap();
    assert!(
        a2.core.outbox.iter().any(|o| o.id == waits),
        "waiting {:?}, has group {}, conversations {:?}",
        a2.waiting,
        a2.core.mls.has_group(conv),
        a2.core
            .conversations
            .get(&conv)
            .map(|c| (c.closed, c.messages.len()))
    );
    assert_eq!(
        a2.waiting.get(&conv),
        Some(&wardline_client::chat::Waiting::NotJoined)
    );
    let other = group(&mut a2, &[carol.user.id], None).await;
    a2.send(other, MessageContent::text("potassium 6.9"), Priority::Stat)
        .await
        .unwrap();
    assert_eq!(a2.core.outbox.len(), 1, "only the waiting message is left");
    c.sync().await.unwrap();
    assert_eq!(texts(&c, other), vec!["potassium 6.9"]);
    // Once a member's device adds it, the waiting message goes out.
    a.sync().await.unwrap();
    a2.sync().await.unwrap();
    assert!(a2.core.outbox.is_empty(), "{:?}", a2.waiting);
    b.sync().await.unwrap();
    assert_eq!(texts(&b, conv).last().unwrap(), "from the new device");
}

/// Attachments: encrypted by the client, size-limited by policy, members only.
async fn attachments(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    let eve = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "a").await;
    let mut b = devices.of(&bob, "b").await;
    let e = devices.of(&eve, "e").await;
    let conv = group(&mut a, &[bob.user.id], Some("MRN-7-wound")).await;
    b.sync().await.unwrap();
    let photo = b"\x89PNG wound photo, day 3".repeat(100);
    let (sealed, key) = wardline_client::core::content::seal_attachment(&photo);
    let up = a.api.upload_attachment(conv, sealed).await.unwrap();
    let content = MessageContent {
        text: "wound photo".into(),
        reply_to: None,
        attachments: vec![wardline_client::core::AttachmentRef {
            id: up.attachment_id,
            kind: wardline_client::core::AttachmentKind::Photo,
            name: "wound.png".into(),
            mime: "image/png".into(),
            size: photo.len() as u64,
            key,
        }],
        shared_again: None,
        forwarded: None,
    };
    a.send(conv, content, Priority::Routine).await.unwrap();
    b.sync().await.unwrap();
    let got = b.core.conversations[&conv].messages[0].content.attachments[0].clone();
    let blob = b.api.download_attachment(conv, got.id).await.unwrap();
    assert_eq!(
        wardline_client::core::content::open_attachment(&blob, &got.key).unwrap(),
        photo
    );
    assert!(!contains(&database_bytes(&t).await, "wound photo"));
    // The download is in the patient's access report (issue 18, item 7).
    let report = t
        .state
        .audit_reader
        .access_report(admin.user.org_id.into(), "MRN-7-wound", None, None)
        .await
        .unwrap();
    assert!(
        report.events.iter().any(|x| x.action
            == wardline_proto::audit::AuditAction::AttachmentDownload
            && x.actor_id == Some(bob.user.id.to_string())),
        "{:?}",
        report.events
    );
    // Not a member: not found.
    let err = e.api.download_attachment(conv, got.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    // Over the organisation's limit: 413.
    let mut policy = admin.client.policy().await.unwrap();
    policy.messaging.max_attachment_bytes = 1024;
    admin.client.set_policy(&policy).await.unwrap();
    let err = a
        .api
        .upload_attachment(conv, vec![7u8; 2048])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PayloadTooLarge));
}

/// Registration and conversation input errors are 4xx with clear codes.
async fn bad_registration_and_conversation_input(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    // Messaging before registering the device.
    let err = alice.client.sync(0, 10).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeviceNotRegistered));
    // Key packages of another device, or garbage.
    let other = wardline_client::core::ChatCore::new(alice.user.id, Uuid::new_v4()).unwrap();
    let reg = other.registration("stolen", 2).unwrap();
    let err = alice.client.register_device(&reg).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Validation), "{err}");
    let mine = wardline_client::core::ChatCore::new(alice.user.id, alice.device_id).unwrap();
    let mut reg = mine.registration("mine", 2).unwrap();
    reg.key_packages.push(B64(b"junk".to_vec()));
    let err = alice.client.register_device(&reg).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Validation), "{err}");
    let mut reg = mine.registration("mine", 2).unwrap();
    reg.identity_key = B64(other.mls.identity_key());
    assert_eq!(
        alice.client.register_device(&reg).await.unwrap_err().code(),
        Some(ErrorCode::Validation)
    );
    let reg = mine.registration("mine", 2).unwrap();
    alice.client.register_device(&reg).await.unwrap();
    assert_eq!(
        alice.client.register_device(&reg).await.unwrap_err().code(),
        Some(ErrorCode::Conflict)
    );
    // Conversations: self, strangers, direct rules.
    let create = |kind, members: Vec<Uuid>| CreateConversationRequest {
        kind,
        title: None,
        members,
        patient_ref: None,
        care_team_id: None,
    };
    for (req, why) in [
        (
            create(ConversationKind::Direct, vec![]),
            "direct without partner",
        ),
        (create(ConversationKind::Group, vec![]), "empty group"),
        (
            create(ConversationKind::Group, vec![alice.user.id]),
            "self as member",
        ),
        (
            create(ConversationKind::Group, vec![Uuid::new_v4()]),
            "stranger",
        ),
    ] {
        let err = alice.client.create_conversation(&req).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Validation), "{why}: {err}");
    }
    // A direct conversation is unique per pair, whoever creates it.
    let d1 = alice
        .client
        .create_conversation(&create(ConversationKind::Direct, vec![bob.user.id]))
        .await
        .unwrap();
    let d2 = alice
        .client
        .create_conversation(&create(ConversationKind::Direct, vec![bob.user.id]))
        .await
        .unwrap();
    assert_eq!(d1.id, d2.id);
    // Raw malformed bodies.
    let http = t.http();
    let resp = http
        .post(format!("{}/api/v1/conversations/{}/messages", t.url, d1.id))
        .bearer_auth(&alice.token)
        .json(
            &serde_json::json!({"message_id": Uuid::new_v4(), "kind": "application", "mls": "%%%"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http
        .get(format!("{}/api/v1/sync?after=-1", t.url))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http
        .post(format!("{}/api/v1/sync/ack", t.url))
        .bearer_auth(&alice.token)
        .json(&serde_json::json!({"up_to": 99999}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let resp = http
        .get(format!("{}/api/v1/sync/ws", t.url))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "plain GET on the socket route");
}

/// M9 of the 2026-11-30 findings, second half: a conversation whose member
/// devices were all wiped could never progress (the new devices waited for a
/// Welcome nobody could send, and every message was refused). The waiting
/// device is told why, and starts the group again.
async fn a_group_whose_devices_were_all_wiped_is_founded_again(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "a").await;
    let mut b = devices.of(&bob, "b").await;
    let conv = group(&mut a, &[bob.user.id], None).await;
    b.sync().await.unwrap();
    a.send(conv, MessageContent::text("before"), Priority::Routine)
        .await
        .unwrap();
    // Both phones are lost.
    admin
        .client
        .wipe_device(alice.device_id, "lost")
        .await
        .unwrap();
    admin
        .client
        .wipe_device(bob.device_id, "lost")
        .await
        .unwrap();
    // Their new devices are in the conversation, waiting for a Welcome.
    let (api, dev) = t.sign_in_device(&alice).await;
    let mut a2 = devices.open(api, alice.user.id, dev, "a2").await;
    let (api, dev) = t.sign_in_device(&bob).await;
    let mut b2 = devices.open(api, bob.user.id, dev, "b2").await;
    a2.sync().await.unwrap();
    b2.sync().await.unwrap();
    a2.send(conv, MessageContent::text("after"), Priority::Urgent)
        .await
        .unwrap();
    assert_eq!(
        a2.waiting.get(&conv),
        Some(&wardline_client::chat::Waiting::Orphaned)
    );
    // Not for a device that is not waiting, nor while a member device is left.
    let err = a2
        .api
        .refound_conversation(Uuid::new_v4())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    // Started again from Alice's new device: Bob's new device joins and reads.
    let c = a2.refound(conv).await.unwrap();
    assert!(
        c.devices
            .iter()
            .all(|d| d.state == DeviceState::Member || d.state == DeviceState::PendingAdd),
        "{c:?}"
    );
    assert!(a2.core.outbox.is_empty(), "{:?}", a2.waiting);
    b2.sync().await.unwrap();
    assert_eq!(texts(&b2, conv), vec!["after"]);
    let err = b2.api.refound_conversation(conv).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::Conflict),
        "it has members again"
    );
    b2.send(conv, MessageContent::text("got it"), Priority::Routine)
        .await
        .unwrap();
    a2.sync().await.unwrap();
    assert_eq!(texts(&a2, conv), vec!["after", "got it"]);
}

/// Issue 18, item 4: a member with no device yet, and a user's new device
/// (staff move between workstations), are given the recent history by the
/// members' devices, as the originals (ids, times, priorities); receipts
/// list every member, "no device yet" included, and the sender's device
/// knows whom a message did not reach. `messaging.history_days = 0` turns
/// it off.
async fn members_and_new_devices_are_given_the_recent_history(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let doc = t.user_with_role(&admin, Role::Physician).await;
    // Carl has an account and no device yet.
    let carl = t.user_with_role(&admin, Role::Physician).await;
    let devices = Devices::new();
    let mut n = devices.of(&nurse, "nurse station").await;
    let mut d = devices.of(&doc, "doc phone").await;
    let conv = group(&mut n, &[doc.user.id, carl.user.id], None).await;
    d.sync().await.unwrap();
    let canary = "PLAINTEXT-CANARY bed 3 needs review";
    let first = n
        .send(conv, MessageContent::text(canary), Priority::Urgent)
        .await
        .unwrap();
    let first_at = n.core.conversations[&conv].messages[0].sent_at;
    assert_eq!(n.core.unreached_members(conv), vec![carl.user.id]);
    t.clock.advance(60);
    d.sync().await.unwrap();
    d.send(conv, MessageContent::text("on my way"), Priority::Routine)
        .await
        .unwrap();
    let r = n.api.receipts(conv, first).await.unwrap();
    assert_eq!(
        r.not_received,
        vec![NotReceived {
            user_id: carl.user.id,
            reason: NotReceivedReason::NoDevice
        }]
    );
    assert!(r.receipts.iter().any(|x| x.user_id == doc.user.id));

    // Carl's first device: each member device shares what it sent.
    t.clock.advance(60);
    let mut c = devices.of(&carl, "Carl's phone").await;
    n.sync().await.unwrap();
    d.sync().await.unwrap();
    c.sync().await.unwrap();
    assert_eq!(texts(&c, conv), vec![canary, "on my way"]);
    let got = c.core.conversations[&conv].messages[0].clone();
    assert_eq!(
        (got.id, got.priority, got.sender_user, got.sent_at),
        (first, Priority::Urgent, nurse.user.id, first_at),
        "the original's identity"
    );
    assert!(n.core.unreached_members(conv).is_empty());
    // Read by its own id; the sender sees it.
    assert_eq!(c.mark_shown(conv, &[first]).await.unwrap(), 1);
    let r = n.api.receipts(conv, first).await.unwrap();
    assert!(r.not_received.is_empty(), "{r:?}");
    let carls = r
        .receipts
        .iter()
        .find(|x| x.user_id == carl.user.id)
        .expect("Carl's device in the receipts");
    assert!(carls.delivered_at.is_some() && carls.read_at.is_some());
    // Those who had them keep one copy.
    n.sync().await.unwrap();
    d.sync().await.unwrap();
    assert_eq!(texts(&n, conv), vec![canary, "on my way"]);
    assert_eq!(texts(&d, conv), vec![canary, "on my way"]);

    // The nurse moves to a ward PC: her new device is given the history too.
    let (api, dev) = t.sign_in_device(&nurse).await;
    let mut n2 = devices.open(api, nurse.user.id, dev, "ward PC").await;
    for chat in [&mut n, &mut d, &mut c, &mut n2] {
        chat.sync().await.unwrap();
    }
    assert_eq!(texts(&n2, conv), vec![canary, "on my way"]);
    assert!(n2.core.conversations[&conv].messages[0].mine);

    // With history turned off, a new device starts empty.
    admin
        .client
        .patch_policy(&serde_json::json!({"messaging": {"history_days": 0}}))
        .await
        .unwrap();
    let bad = admin
        .client
        .patch_policy(&serde_json::json!({"messaging": {"history_days": 91}}))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::Validation));
    let (api, dev) = t.sign_in_device(&doc).await;
    let mut d2 = devices.open(api, doc.user.id, dev, "doc tablet").await;
    for chat in [&mut n, &mut d, &mut c, &mut d2] {
        chat.sync().await.unwrap();
    }
    assert!(d2.core.conversations.contains_key(&conv));
    assert!(texts(&d2, conv).is_empty(), "{:?}", texts(&d2, conv));
}

/// Leaving a group (`wardline chat leave`, the web app's Leave): the server
/// takes the person out at once; their device forgets the group's keys,
/// drops what it had not sent there yet and keeps the history, closed; the
/// next member's client commits the removal, and nothing later reaches them.
async fn a_member_who_leaves_reads_nothing_more(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("alpha").await;
    let alice = t.user_with_role(&admin, Role::Physician).await;
    let bob = t.user_with_role(&admin, Role::Nurse).await;
    let carol = t.user_with_role(&admin, Role::MedicalAssistant).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "a").await;
    let mut b = devices.of(&bob, "b").await;
    let mut c = devices.of(&carol, "c").await;
    let conv = group(&mut a, &[bob.user.id, carol.user.id], None).await;
    b.sync().await.unwrap();
    c.sync().await.unwrap();
    a.send(
        conv,
        MessageContent::text("before leaving"),
        Priority::Routine,
    )
    .await
    .unwrap();
    c.sync().await.unwrap();
    // Carol has a message queued for the group when she leaves.
    c.core.queue(
        conv,
        MessageContent::text("never sent"),
        Priority::Routine,
        None,
    );
    c.api.remove_member(conv, carol.user.id).await.unwrap();
    c.core.left(conv).unwrap();
    assert!(c.core.conversations[&conv].closed);
    assert!(
        !c.core.mls.has_group(conv),
        "the group's keys are forgotten"
    );
    assert!(c.core.outbox.is_empty());
    assert_eq!(texts(&c, conv), vec!["before leaving"]);
    // … also in what her device stores.
    c.save().unwrap();
    let sealed = c
        .core
        .seal(&wardline_client::core::derive_key("x", None).unwrap());
    let mut reopened = wardline_client::core::ChatCore::open(
        &sealed,
        &wardline_client::core::derive_key("x", Some(&sealed)).unwrap(),
    )
    .unwrap();
    assert!(!reopened.mls.has_group(conv));

    // Bob's client commits her removal; what comes next does not reach her.
    b.sync().await.unwrap();
    let after = a.api.conversation(conv).await.unwrap();
    assert!(!after.members.contains(&carol.user.id));
    assert!(after.devices.iter().all(|x| x.user_id != carol.user.id));
    a.sync().await.unwrap();
    a.send(
        conv,
        MessageContent::text("after leaving"),
        Priority::Routine,
    )
    .await
    .unwrap();
    b.sync().await.unwrap();
    c.sync().await.unwrap();
    assert_eq!(texts(&b, conv), vec!["before leaving", "after leaving"]);
    assert_eq!(texts(&c, conv), vec!["before leaving"]);
    assert!(c.core.conversations[&conv].closed);
}

both_backends!(
    a_member_who_leaves_reads_nothing_more,
    members_and_new_devices_are_given_the_recent_history,
    a_group_whose_devices_were_all_wiped_is_founded_again,
    conversation_across_devices,
    membership_changes_are_cryptographic,
    bad_messages_change_nothing,
    websocket_delivery,
    offline_outbox,
    attachments,
    bad_registration_and_conversation_input,
);

/// Two nodes on one PostgreSQL database: a message accepted on one wakes the
/// recipient's socket on the other (LISTEN/NOTIFY), without waiting for a poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_reach_other_nodes_postgres() {
    let Some(a_node) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    // Same database and same key file (nodes share the KEK), own port.
    let (db, dir) = (
        a_node.config.database_url.clone(),
        a_node.config.data_dir.clone(),
    );
    let b_node = TestServer::start_with(Backend::Postgres, |c| {
        c.database_url = db;
        c.data_dir = dir;
    })
    .await
    .unwrap();
    // Node B started last, so its setup code is the live one; the clients
    // talk to node B.
    let admin = b_node.setup_org("alpha").await;
    let alice = b_node.user_with_role(&admin, Role::Physician).await;
    let bob = b_node.user_with_role(&admin, Role::Nurse).await;
    let devices = Devices::new();
    let mut a = devices.of(&alice, "a").await;
    let mut b = devices.of(&bob, "b").await;
    let conv = group(&mut a, &[bob.user.id], None).await;
    b.sync().await.unwrap();
    // Bob's socket would be on node A: watch node A's hub for his device.
    let (mut woken, _slot) = a_node
        .state
        .messaging
        .hub
        .open_socket(bob.user.id.into(), bob.device_id.into())
        .unwrap();
    a.send(conv, MessageContent::text("across nodes"), Priority::Urgent)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(3), woken.changed())
        .await
        .expect("node A was told about the message accepted on node B")
        .unwrap();
}
