//! Message lifecycle and device control through the real server with real MLS
//! clients, on SQLite and PostgreSQL: retention with a preview and signed
//! receipts, legal hold (and its pause of audit retention), ephemeral
//! messages, recall, and remote wipe of a lost device (sessions, groups, the
//! local store, the confirmation, selective wipe on deprovisioning).

use crate::common::{
    Actor, Backend, Devices, PASSPHRASE, TestServer, actions, contains, database_bytes, group,
    has_action, texts,
};
use sqlx::Row;
use uuid::Uuid;
use wardline_client::chat::{Chat, ChatError};
use wardline_client::core::{ChatCore, Event, MessageContent, derive_key};
use wardline_proto::ErrorCode;
use wardline_proto::Role;
use wardline_proto::lifecycle::*;
use wardline_proto::sync::InboxEntry;

use wardline_core::audit::retention;
use wardline_proto::messaging::*;

const DAY: i64 = 86_400;

/// Sessions end when days pass: sign each device in again, as its user would.
async fn resume(t: &TestServer, who: &Actor, chat: &mut Chat) {
    chat.api = t.sign_in_as_device(who, chat.core.mls.device).await;
}

async fn resume_actor(t: &TestServer, who: &mut Actor) {
    who.client = t.sign_in_as_device(who, who.device_id).await;
}

async fn db(t: &TestServer) -> sqlx::AnyPool {
    sqlx::AnyPool::connect(&t.config.database_url.clone().unwrap())
        .await
        .unwrap()
}

async fn message_row(t: &TestServer, id: Uuid) -> Option<(Option<Vec<u8>>, Option<String>)> {
    sqlx::query("SELECT body, dek_id FROM messages WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&db(t).await)
        .await
        .unwrap()
        .map(|r| (r.get("body"), r.get("dek_id")))
}

async fn key_exists(t: &TestServer, id: &str) -> bool {
    sqlx::query("SELECT id FROM data_keys WHERE id = $1")
        .bind(id)
        .fetch_optional(&db(t).await)
        .await
        .unwrap()
        .is_some()
}

/// Retention with a preview first, a legal hold that keeps a conversation's
/// messages past it (and pauses audit retention), signed receipts, the
/// client deleting its expired copies, and the hold's release.
async fn retention_and_legal_hold(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let mut admin = t.setup_org("lc-ret").await;
    let mut officer = t.user_with_role(&admin, Role::ComplianceOfficer).await;
    let nina = t.user_with_role(&admin, Role::Nurse).await;
    let paul = t.user_with_role(&admin, Role::Physician).await;
    let devices = Devices::new();
    let mut n = devices.of(&nina, "Nina's phone").await;
    let mut p = devices.of(&paul, "Paul's phone").await;
    let clinical = group(&mut n, &[paul.user.id], Some("MRN-7731")).await;
    let chatter = group(&mut n, &[paul.user.id], None).await;
    p.sync().await.unwrap();
    n.send(
        clinical,
        MessageContent::text("K+ 6.1, repeat at 14:00"),
        Priority::Urgent,
    )
    .await
    .unwrap();
    n.send(
        chatter,
        MessageContent::text("cake in the break room"),
        Priority::Routine,
    )
    .await
    .unwrap();
    p.sync().await.unwrap();
    assert_eq!(texts(&p, chatter), ["cake in the break room"]);
    let held_msg = n.core.conversations[&clinical].messages[0].id;
    let gone_msg = n.core.conversations[&chatter].messages[0].id;
    let (gone_body, gone_key) = message_row(&t, gone_msg).await.unwrap();
    let (gone_body, gone_key) = (gone_body.unwrap(), gone_key.unwrap());
    assert!(key_exists(&t, &gone_key).await);

    // The compliance officer holds the patient's threads; a clinician cannot.
    let hold_req = PlaceHoldRequest {
        scope: HoldScope::Patient,
        target: " mrn-7731 ".into(),
        matter: "Doe v. General Hospital".into(),
        reason: "litigation notice received".into(),
    };
    let err = n.api.place_legal_hold(&hold_req).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let hold = officer.client.place_legal_hold(&hold_req).await.unwrap();
    assert_eq!(hold.target, "mrn-7731");
    assert!(hold.released_at.is_none());
    // Issue 18, item 8: under the hold no member gives the held thread a
    // lifespan (devices would delete their copies, beyond any server hold);
    // an unheld thread still takes one.
    let lifespan = ConversationLifecycle {
        retention: None,
        message_ttl_secs: Some(600),
    };
    let err = n
        .api
        .set_conversation_lifecycle(clinical, &lifespan)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    n.api
        .set_conversation_lifecycle(chatter, &lifespan)
        .await
        .unwrap();
    n.api
        .set_conversation_lifecycle(chatter, &ConversationLifecycle::default())
        .await
        .unwrap();
    let register = officer.client.legal_holds().await.unwrap();
    assert_eq!(register.holds.len(), 1);
    assert_eq!(register.holds[0].matter, "Doe v. General Hospital");
    // Matter and reason are sealed at rest.
    let db = database_bytes(&t).await;
    assert!(!contains(&db, "Doe v. General Hospital"));
    assert!(!contains(&db, "litigation notice received"));

    // Forty days pass. Nothing is deleted while the policy keeps forever.
    // (A checkpoint first: audit retention purges only up to a signed
    // checkpoint older than the cut-off; left to the writer's interval timer,
    // whether one falls before the jump was a race.)
    t.state.audit.checkpoint_now().await.unwrap();
    t.clock.advance(40 * DAY);
    resume_actor(&t, &mut admin).await;
    resume_actor(&t, &mut officer).await;
    resume(&t, &nina, &mut n).await;
    resume(&t, &paul, &mut p).await;
    let thirty = LifecyclePolicy {
        retention: Retention::Days(30),
        ..Default::default()
    };
    let preview = officer.client.lifecycle_preview(&thirty).await.unwrap();
    assert_eq!(preview.current_policy_deletes, DeletionCounts::default());
    assert_eq!(preview.would_delete.retention_messages, 1, "{preview:?}");
    assert_eq!(preview.would_delete.held_back, 1, "{preview:?}");
    // The preview changed nothing.
    assert!(message_row(&t, gone_msg).await.is_some());
    // Bad policies are refused whole.
    for bad in [
        LifecyclePolicy {
            retention: Retention::Days(0),
            ..Default::default()
        },
        LifecyclePolicy {
            retention: Retention::Days(10),
            minimum_days: 30,
            ..Default::default()
        },
        LifecyclePolicy {
            max_ttl_secs: 10,
            ..Default::default()
        },
    ] {
        let err = admin.client.set_lifecycle_policy(&bad).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Validation), "{bad:?}");
    }
    // Only the administrator changes the policy.
    let err = officer
        .client
        .set_lifecycle_policy(&thirty)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    admin.client.set_lifecycle_policy(&thirty).await.unwrap();
    // The event says what changed (issue 18, item 7); setting it again, nothing.
    let changes = |t: &TestServer| {
        let sql = t.sql.clone();
        async move {
            use wardline_store::AuditStore;
            let rows = sql.audit_entries(0, 100_000).await.unwrap();
            rows.iter()
                .rev()
                .find(|r| r.action == "lifecycle.policy.update" && r.outcome == "success")
                .map(|r| r.changes.clone())
                .unwrap()
        }
    };
    let recorded = changes(&t).await.expect("changes recorded");
    assert!(recorded.contains(r#""field":"retention"#), "{recorded}");
    admin.client.set_lifecycle_policy(&thirty).await.unwrap();
    assert_eq!(changes(&t).await, None);

    // Audit retention waits while a hold is active.
    assert_eq!(
        retention::purge_expired(
            t.sql.as_ref(),
            t.sql.as_ref(),
            t.keys.as_ref(),
            &t.state.audit,
            t.clock.as_ref(),
            365
        )
        .await
        .unwrap(),
        None
    );

    let receipt = officer.client.lifecycle_run().await.unwrap();
    assert_eq!(receipt.deleted.retention_messages, 1, "{receipt:?}");
    assert_eq!(receipt.deleted.held_back, 1);
    assert_eq!(receipt.holds_respected, 1);
    assert!(receipt.keys_destroyed >= 1);
    assert_eq!(receipt.policy, thirty);
    assert!(
        t.state.lifecycle.verify_receipt(&receipt),
        "receipt signature"
    );
    let mut forged = receipt.clone();
    forged.deleted.held_back = 0;
    assert!(
        !t.state.lifecycle.verify_receipt(&forged),
        "a changed receipt fails"
    );

    // Gone from the database, key and all; the held message is still there.
    assert!(message_row(&t, gone_msg).await.is_none());
    assert!(!key_exists(&t, &gone_key).await, "data key destroyed");
    let db = database_bytes(&t).await;
    assert!(
        !db.windows(gone_body.len())
            .any(|w| w == gone_body.as_slice()),
        "the deleted ciphertext is not left in the database file"
    );
    assert!(message_row(&t, held_msg).await.unwrap().0.is_some());

    // The devices delete their own expired copies (retention is 30 days).
    p.sync().await.unwrap();
    assert!(texts(&p, chatter).is_empty(), "{:?}", texts(&p, chatter));
    let path = devices.path(paul.device_id);
    // One writer per device store: this process lets go before opening it again.
    let api = p.api.clone();
    drop(p);
    let reopened = Chat::open(api, &path, PASSPHRASE, paul.user.id, paul.device_id, "x")
        .await
        .unwrap();
    assert!(
        texts(&reopened, chatter).is_empty(),
        "gone from the local store on disk"
    );

    // Releasing the hold lets retention take the held message too.
    let released = officer
        .client
        .release_legal_hold(hold.id, "case settled")
        .await
        .unwrap();
    assert!(released.released_at.is_some());
    assert_eq!(released.release_reason.as_deref(), Some("case settled"));
    let err = officer
        .client
        .release_legal_hold(hold.id, "again")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    let receipt2 = officer.client.lifecycle_run().await.unwrap();
    assert_eq!(receipt2.deleted.retention_messages, 1);
    assert_eq!(receipt2.deleted.held_back, 0);
    assert!(message_row(&t, held_msg).await.is_none());
    let receipts = officer.client.deletion_receipts().await.unwrap();
    assert_eq!(receipts.len(), 2);
    assert!(receipts.iter().all(|r| t.state.lifecycle.verify_receipt(r)));

    // A bad hold is refused with the right status.
    for (scope, target, code) in [
        (HoldScope::User, "not-a-uuid", ErrorCode::Validation),
        (
            HoldScope::User,
            &Uuid::new_v4().to_string()[..],
            ErrorCode::NotFound,
        ),
        (
            HoldScope::Conversation,
            &Uuid::new_v4().to_string()[..],
            ErrorCode::NotFound,
        ),
        (HoldScope::Patient, "", ErrorCode::Validation),
    ] {
        let err = officer
            .client
            .place_legal_hold(&PlaceHoldRequest {
                scope,
                target: target.into(),
                matter: "m".into(),
                reason: "r".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code), "{scope:?} {target}");
    }

    let log = actions(&t).await;
    assert!(has_action(&log, "legal_hold.place", &hold.id.to_string()));
    assert!(has_action(&log, "legal_hold.release", &hold.id.to_string()));
    assert!(has_action(&log, "lifecycle.run", &receipt.id.to_string()));
    assert!(
        log.iter()
            .any(|(a, o, _, _)| a == "lifecycle.preview" && o == "success")
    );
    assert!(
        log.iter()
            .any(|(a, o, _, _)| a == "lifecycle.policy.update" && o == "success")
    );
    // The run's own event carries the receipt's digest and counts.
    assert!(log.iter().any(|(a, _, t, r)| {
        a == "lifecycle.run"
            && t.as_deref() == Some(receipt.id.to_string().as_str())
            && r.as_deref()
                .is_some_and(|r| r.contains("receipt_sha256=") && r.contains("retention=1"))
    }));
    // Nodes share the scheduled run through a lease: one at a time, renewable
    // by its holder, free again once it lapses (a crashed node's).
    use wardline_store::LifecycleStore;
    let now = t.now();
    assert!(
        t.sql
            .take_lease("test-job", "node-a", now, now + 600)
            .await
            .unwrap()
    );
    assert!(
        !t.sql
            .take_lease("test-job", "node-b", now + 1, now + 601)
            .await
            .unwrap()
    );
    assert!(
        t.sql
            .take_lease("test-job", "node-a", now + 300, now + 900)
            .await
            .unwrap()
    );
    assert!(
        !t.sql
            .take_lease("test-job", "node-b", now + 899, now + 1500)
            .await
            .unwrap()
    );
    assert!(
        t.sql
            .take_lease("test-job", "node-b", now + 900, now + 1500)
            .await
            .unwrap()
    );
    // The scheduled run on two nodes: the second finds the lease taken.
    t.state.lifecycle.run_all("node-1").await.unwrap();
    t.state.lifecycle.run_all("node-2").await.unwrap();

    // With the hold released, audit retention runs again (checked last: it
    // purges the events above), once they are a year old.
    t.state.audit.checkpoint_now().await.unwrap();
    t.clock.advance(366 * 86_400);
    assert!(
        retention::purge_expired(
            t.sql.as_ref(),
            t.sql.as_ref(),
            t.keys.as_ref(),
            &t.state.audit,
            t.clock.as_ref(),
            365
        )
        .await
        .unwrap()
        .is_some()
    );
}

/// Ephemeral messages (per message and per conversation), the retention
/// minimum, and recall: by the sender within the window, by an administrator
/// after it, never by someone else; each device deletes its copy.
async fn ephemeral_and_recall(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("lc-eph").await;
    let nina = t.user_with_role(&admin, Role::Nurse).await;
    let paul = t.user_with_role(&admin, Role::Physician).await;
    let devices = Devices::new();
    let mut n = devices.of(&nina, "Nina's phone").await;
    let mut p1 = devices.of(&paul, "Paul's phone").await;
    let (p2_api, p2_id) = t.sign_in_device(&paul).await;
    let mut p2 = devices
        .open(p2_api, paul.user.id, p2_id, "Paul's iPad")
        .await;
    let conv = group(&mut n, &[paul.user.id], Some("MRN-0919")).await;
    p1.sync().await.unwrap();
    p2.sync().await.unwrap();

    // An ephemeral message: an hour's lifespan.
    let eph = n
        .send_with_ttl(
            conv,
            MessageContent::text("door code 4471"),
            Priority::Routine,
            Some(3600),
        )
        .await
        .unwrap();
    let mine = &n.core.conversations[&conv].messages[0];
    assert_eq!(mine.expires_at, Some(mine.sent_at + 3600));
    p1.sync().await.unwrap();
    let got = &p1.core.conversations[&conv].messages[0];
    assert_eq!(got.content.text, "door code 4471");
    assert_eq!(got.expires_at, mine.expires_at);
    // Lifespans outside the policy are refused.
    let err = n
        .send_with_ttl(conv, MessageContent::text("x"), Priority::Routine, Some(5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Validation), "{err}");
    assert!(
        n.core.outbox.is_empty(),
        "refused for good: out of the outbox"
    );

    // Two hours later: the iPad, offline until now, never receives it; the
    // others delete theirs; the server deletes it on its next run.
    t.clock.advance(7200);
    resume(&t, &nina, &mut n).await;
    resume(&t, &paul, &mut p1).await;
    resume(&t, &paul, &mut p2).await;
    p2.sync().await.unwrap();
    assert!(texts(&p2, conv).is_empty());
    p1.sync().await.unwrap();
    assert!(texts(&p1, conv).is_empty());
    n.sync().await.unwrap();
    assert!(texts(&n, conv).is_empty());
    let receipt = t
        .state
        .lifecycle
        .run(admin.user.org_id.into(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.deleted.expired_messages, 1, "{receipt:?}");
    assert!(message_row(&t, eph).await.is_none());

    // A conversation-wide lifespan, set by a member.
    let c = p1
        .api
        .set_conversation_lifecycle(
            conv,
            &ConversationLifecycle {
                retention: None,
                message_ttl_secs: Some(600),
            },
        )
        .await
        .unwrap();
    assert_eq!(c.lifecycle.message_ttl_secs, Some(600));
    // Retention is not a member's to change.
    let err = p1
        .api
        .set_conversation_lifecycle(
            conv,
            &ConversationLifecycle {
                retention: Some(Retention::Days(1)),
                message_ttl_secs: Some(600),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let short = n
        .send(
            conv,
            MessageContent::text("bed 12 is free"),
            Priority::Routine,
        )
        .await
        .unwrap();
    let m = n.core.conversations[&conv]
        .messages
        .iter()
        .find(|m| m.id == short)
        .unwrap();
    assert_eq!(m.expires_at, Some(m.sent_at + 600));
    p1.api
        .set_conversation_lifecycle(conv, &ConversationLifecycle::default())
        .await
        .unwrap();

    // Recall: Nina sent the wrong dose; Paul's phone read it, the iPad did not fetch it.
    let wrong = n
        .send(
            conv,
            MessageContent::text("give 50 mg metoprolol"),
            Priority::Urgent,
        )
        .await
        .unwrap();
    p1.sync().await.unwrap();
    p1.mark_shown(conv, &[wrong]).await.unwrap();
    let (body, key) = message_row(&t, wrong).await.unwrap();
    assert!(body.is_some());
    // Paul cannot recall Nina's message.
    let err = p1.api.recall(conv, wrong).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let r = n.recall(conv, wrong).await.unwrap();
    assert_eq!(r.server_copy, ServerCopy::Deleted);
    let phone = r
        .recipients
        .iter()
        .find(|d| d.device_id == paul.device_id)
        .unwrap();
    assert!(phone.read_at.is_some(), "Nina sees Paul had read it: {r:?}");
    let ipad = r.recipients.iter().find(|d| d.device_id == p2_id).unwrap();
    assert!(ipad.delivered_at.is_none());
    assert_eq!(r.devices_notified, 3, "Nina's own device and Paul's two");
    let (body, _) = message_row(&t, wrong).await.unwrap();
    assert!(body.is_none(), "the server's copy is deleted");
    assert!(!key_exists(&t, &key.unwrap()).await);
    let ev = p1.sync().await.unwrap();
    assert!(ev.contains(&Event::Recalled {
        conversation: conv,
        message: wrong
    }));
    let placeholder = p1.core.conversations[&conv]
        .messages
        .iter()
        .find(|m| m.id == wrong)
        .unwrap();
    assert!(placeholder.recalled_at.is_some());
    assert_eq!(placeholder.content.text, "");
    p2.sync().await.unwrap();
    assert!(!texts(&p2, conv).iter().any(|t| t.contains("metoprolol")));
    assert!(!texts(&n, conv).iter().any(|t| t.contains("metoprolol")));
    // Issue 18, item 8: the iPad never received the recalled message, so its
    // sync acknowledgement and a read watermark past it report nothing of it.
    p2.mark_read(conv).await.unwrap();
    let r = n.api.receipts(conv, wrong).await.unwrap();
    let ipad = r.receipts.iter().find(|d| d.device_id == p2_id).unwrap();
    assert!(
        ipad.delivered_at.is_none() && ipad.read_at.is_none(),
        "receipts only for what a device received: {ipad:?}"
    );
    let err = n.api.recall(conv, wrong).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));

    // After the window only an administrator recalls, and a minimum
    // retention keeps the server's copy (devices delete theirs all the same).
    let late = n
        .send(conv, MessageContent::text("wrong room"), Priority::Routine)
        .await
        .unwrap();
    p1.sync().await.unwrap();
    t.clock.advance(3600);
    resume(&t, &nina, &mut n).await;
    resume(&t, &paul, &mut p1).await;
    let err = n.api.recall(conv, late).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let mut admin = admin;
    resume_actor(&t, &mut admin).await;
    admin
        .client
        .set_lifecycle_policy(&LifecyclePolicy {
            minimum_days: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let r = admin.client.recall(conv, late).await.unwrap();
    assert_eq!(r.server_copy, ServerCopy::KeptForRetentionMinimum);
    p1.sync().await.unwrap();
    assert!(!texts(&p1, conv).contains(&"wrong room".to_owned()));
    let receipt = t
        .state
        .lifecycle
        .run(admin.user.org_id.into(), Some(admin.user.id.into()))
        .await
        .unwrap()
        .unwrap();
    // The recalled message and "bed 12 is free" (its 10 minutes are over).
    assert_eq!(receipt.deleted.kept_for_minimum, 2, "{receipt:?}");
    assert!(message_row(&t, late).await.unwrap().0.is_some());
    t.clock.advance(2 * DAY);
    resume_actor(&t, &mut admin).await;
    let receipt = t
        .state
        .lifecycle
        .run(admin.user.org_id.into(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.deleted.recalled_messages, 1, "{receipt:?}");
    assert_eq!(receipt.deleted.expired_messages, 1, "{receipt:?}");
    assert!(message_row(&t, short).await.is_none());
    assert!(message_row(&t, late).await.unwrap().0.is_none());

    // Recall of something that is not there.
    let err = admin.client.recall(conv, Uuid::new_v4()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    let err = admin.client.recall(Uuid::new_v4(), late).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));

    let log = actions(&t).await;
    assert!(has_action(&log, "message.recall", &wrong.to_string()));
    assert!(has_action(&log, "message.recall", &late.to_string()));
    assert!(has_action(
        &log,
        "conversation.lifecycle.update",
        &conv.to_string()
    ));
    assert!(log.iter().any(|(a, o, t, _)| a == "message.recall"
        && o == "denied"
        && t.as_deref() == Some(wrong.to_string().as_str())));
}

/// A lost phone: its sessions end, it leaves its groups (a member's client
/// commits the removal), it erases its store when it next calls and says so;
/// a copy of its store cannot read what is sent afterwards. Deprovisioning
/// wipes every device of the user.
async fn remote_wipe(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("lc-wipe").await;
    let nina = t.user_with_role(&admin, Role::Nurse).await;
    let paul = t.user_with_role(&admin, Role::Physician).await;
    let devices = Devices::new();
    let mut phone = devices.of(&nina, "Nina's phone").await;
    let (laptop_api, laptop_id) = t.sign_in_device(&nina).await;
    let mut laptop = devices
        .open(laptop_api, nina.user.id, laptop_id, "Nina's laptop")
        .await;
    let mut p = devices.of(&paul, "Paul's phone").await;
    let conv = group(&mut p, &[nina.user.id], None).await;
    phone.sync().await.unwrap();
    laptop.sync().await.unwrap();
    p.send(
        conv,
        MessageContent::text("before the loss"),
        Priority::Routine,
    )
    .await
    .unwrap();
    phone.sync().await.unwrap();
    assert_eq!(texts(&phone, conv), ["before the loss"]);
    // What a thief might copy off the phone (and its passphrase, worst case).
    let stolen = std::fs::read(devices.path(nina.device_id)).unwrap();

    // M8 of the 2026-11-30 findings: another organisation's administrator
    // signs in with the phone's device id (ids are listed to colleagues).
    let other = t.create_org("elsewhere").await;
    let impostor = t.sign_in_as_device(&other, nina.device_id).await;

    // Paul may not wipe Nina's phone; Nina may, from her laptop.
    let err = p.api.wipe_device(nina.device_id, "no").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let err = laptop
        .api
        .wipe_device(nina.device_id, "  ")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Validation));
    let err = laptop
        .api
        .wipe_device(Uuid::new_v4(), "lost")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    let w = laptop
        .api
        .wipe_device(nina.device_id, "left on the bus")
        .await
        .unwrap();
    assert_eq!(w.status, WipeStatus::Pending);
    assert_eq!(w.sessions_ended, 1, "only the phone's own session");
    assert_eq!(w.conversations, 1);
    // The other organisation's session is not the phone's: not ended, not
    // told of the wipe, and it cannot confirm it in the phone's place.
    impostor.current_session().await.unwrap();
    let err = impostor.confirm_wipe().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthenticated));
    let again = t.sign_in_as_device(&other, nina.device_id).await;
    again.current_session().await.unwrap();
    assert_eq!(
        admin.client.device_wipes().await.unwrap().wipes[0].status,
        WipeStatus::Pending
    );
    let err = admin
        .client
        .wipe_device(nina.device_id, "again")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));

    // The group removes the phone (Paul's client commits it).
    p.sync().await.unwrap();
    let c = p.api.conversation(conv).await.unwrap();
    assert!(
        !c.devices.iter().any(|d| d.device_id == nina.device_id),
        "{c:?}"
    );
    let after = p
        .send(
            conv,
            MessageContent::text("after the loss"),
            Priority::Routine,
        )
        .await
        .unwrap();
    laptop.sync().await.unwrap();
    assert!(texts(&laptop, conv).contains(&"after the loss".to_owned()));

    // The phone calls: told to wipe, it erases its store and confirms.
    let err = phone.api.my_devices().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeviceWiped));
    // A browser on that device is also told to erase what the site stored.
    let resp = t
        .http()
        .get(format!("{}/api/v1/auth/session", t.url))
        .bearer_auth(&nina.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("clear-site-data")
            .and_then(|v| v.to_str().ok()),
        Some("\"cache\", \"cookies\", \"storage\""),
        "{}",
        resp.status()
    );
    match phone.sync().await {
        Err(ChatError::Wiped { confirmed: true }) => {}
        other => panic!("expected a confirmed wipe, got {other:?}"),
    }
    assert!(!devices.path(nina.device_id).exists(), "local store erased");
    assert!(phone.core.conversations.is_empty());
    let err = phone.api.confirm_wipe().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::Unauthenticated),
        "confirmed once"
    );
    let wipes = admin.client.device_wipes().await.unwrap();
    assert_eq!(wipes.wipes.len(), 1);
    assert_eq!(wipes.wipes[0].status, WipeStatus::Confirmed);
    assert!(wipes.wipes[0].confirmed_at.is_some());
    // Signing in again from the wiped device is refused the same way.
    let login = t
        .client()
        .login(&wardline_proto::auth::LoginRequest {
            org: nina.org_slug.clone(),
            email: nina.user.email.clone(),
            password: crate::common::PASSWORD.into(),
            device_id: nina.device_id,
            device_token: None,
        })
        .await
        .unwrap_err();
    assert_eq!(login.code(), Some(ErrorCode::DeviceWiped));

    // The stolen copy cannot read what was sent after the removal.
    let key = derive_key(PASSPHRASE, Some(&stolen)).unwrap();
    let mut thief = ChatCore::open(&stolen, &key).unwrap();
    let entries = laptop.api.sync(0, 500).await.unwrap().entries;
    let e = entries.iter().find(|e| e.message_id == after).unwrap();
    let ev = thief.apply(&InboxEntry {
        seq: thief.cursor + 1,
        ..e.clone()
    });
    assert!(
        ev.iter().all(|e| !matches!(e, Event::Message { .. })),
        "{ev:?}"
    );
    assert!(matches!(ev.as_slice(), [Event::Rejected { .. }]), "{ev:?}");

    // Deprovisioning Paul wipes his device too.
    admin.client.deprovision_user(paul.user.id).await.unwrap();
    let wipes = admin.client.device_wipes().await.unwrap();
    let his = wipes
        .wipes
        .iter()
        .find(|w| w.device_id == paul.device_id)
        .unwrap();
    assert_eq!(his.reason, "user deprovisioned");
    assert!(matches!(p.sync().await, Err(ChatError::Wiped { .. })));
    assert!(!devices.path(paul.device_id).exists());

    let log = actions(&t).await;
    assert!(has_action(&log, "device.wipe", &nina.device_id.to_string()));
    assert!(has_action(
        &log,
        "device.wipe.confirm",
        &nina.device_id.to_string()
    ));
    assert!(log.iter().any(|(a, o, t, _)| a == "device.wipe"
        && o == "denied"
        && t.as_deref() == Some(nina.device_id.to_string().as_str())));
}

/// The device policy: the PIN a store needs, posture that blocks a device
/// (rooted, OS too old) until it is fixed, and the offline limit.
async fn device_policy(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("lc-dev").await;
    let nina = t.user_with_role(&admin, Role::Nurse).await;
    let paul = t.user_with_role(&admin, Role::Physician).await;
    let mut org = admin.client.policy().await.unwrap();
    org.devices.min_pin_length = 8;
    org.devices.max_offline_days = Some(3);
    org.devices
        .min_os_versions
        .insert("ios".into(), "17.0".into());
    org.devices.allowed_attachment_types = vec!["image/*".into()];
    admin.client.set_policy(&org).await.unwrap();
    let mut bad = org.clone();
    bad.devices.min_pin_length = 2;
    let err = admin.client.set_policy(&bad).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Validation));

    // A store sealed under a short PIN is refused before the device registers.
    let dir = tempfile::tempdir().unwrap();
    let err = Chat::open(
        nina.client.clone(),
        &dir.path().join("n.wls"),
        "1234",
        nina.user.id,
        nina.device_id,
        "phone",
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("at least 8"), "{err}");
    assert!(nina.client.my_devices().await.unwrap().devices.is_empty());
    let devices = Devices::new();
    let mut n = devices.of(&nina, "Nina's phone").await;
    let mut p = devices.of(&paul, "Paul's phone").await;
    assert_eq!(n.core.device_policy.as_ref().unwrap().min_pin_length, 8);
    assert!(
        n.core
            .device_policy
            .as_ref()
            .unwrap()
            .allows_attachment("image/png")
    );
    assert!(
        !n.core
            .device_policy
            .as_ref()
            .unwrap()
            .allows_attachment("application/zip")
    );
    let conv = group(&mut p, &[nina.user.id], None).await;
    n.sync().await.unwrap();

    // An old iOS is blocked until it is updated; so is a jailbroken phone.
    let status = n
        .report_posture(&DevicePosture {
            platform: "iOS".into(),
            os_version: "16.7.2".into(),
            compromised: false,
        })
        .await
        .unwrap();
    assert!(!status.allowed);
    assert!(
        status.refusals[0].contains("older than the minimum 17.0"),
        "{status:?}"
    );
    let err = n.sync().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeviceBlocked), "{err}");
    let err = n
        .send(conv, MessageContent::text("x"), Priority::Routine)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DeviceBlocked), "{err}");
    n.core.drop_next();
    let status = n
        .report_posture(&DevicePosture {
            platform: "ios".into(),
            os_version: "17.4".into(),
            compromised: false,
        })
        .await
        .unwrap();
    assert!(status.allowed, "{status:?}");
    n.send(conv, MessageContent::text("updated"), Priority::Routine)
        .await
        .unwrap();
    let status = n
        .report_posture(&DevicePosture {
            platform: "ios".into(),
            os_version: "17.4".into(),
            compromised: true,
        })
        .await
        .unwrap();
    assert!(!status.allowed);
    assert_eq!(
        n.api.sync(0, 10).await.unwrap_err().code(),
        Some(ErrorCode::DeviceBlocked)
    );
    // Bad reports change nothing.
    let err = n
        .api
        .report_posture(&DevicePosture {
            platform: "".into(),
            os_version: "1".into(),
            compromised: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Validation));

    // Offline for longer than the policy allows, the store does not open
    // without the server.
    p.sync().await.unwrap();
    let now = p.core.server_time();
    assert_eq!(p.core.offline_too_long(now + 2 * DAY), None);
    assert_eq!(p.core.offline_too_long(now + 4 * DAY), Some(4));

    let log = actions(&t).await;
    assert!(
        log.iter()
            .any(|(a, o, _, _)| a == "device.posture.report" && o == "success")
    );
}

/// An offboarding cut short after the account was closed (a database error
/// before the conversations and devices were dealt with) is finished by a
/// retry: the retry still answers "already deprovisioned" but takes the user
/// out of the conversation and wipes the device. Before the deprovisioning
/// use case, the retry answered the conflict and did nothing.
async fn an_interrupted_offboarding_is_finished_by_a_retry(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("lc-offboard").await;
    let nina = t.user_with_role(&admin, Role::Nurse).await;
    let paul = t.user_with_role(&admin, Role::Physician).await;
    let devices = Devices::new();
    let mut n = devices.of(&nina, "Nina's phone").await;
    let _p = devices.of(&paul, "Paul's phone").await;
    let conv = group(&mut n, &[paul.user.id], None).await;
    // Only the first step ran: the account is closed.
    t.state
        .directory
        .set_status(
            admin.user.org_id.into(),
            admin.user.id.into(),
            paul.user.id.into(),
            wardline_proto::directory::UserStatus::Deprovisioned,
        )
        .await
        .unwrap();
    assert!(
        n.api
            .conversation(conv)
            .await
            .unwrap()
            .members
            .contains(&paul.user.id)
    );
    assert!(admin.client.device_wipes().await.unwrap().wipes.is_empty());

    let err = admin
        .client
        .deprovision_user(paul.user.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    assert!(
        !n.api
            .conversation(conv)
            .await
            .unwrap()
            .members
            .contains(&paul.user.id)
    );
    let wipes = admin.client.device_wipes().await.unwrap().wipes;
    assert_eq!(
        wipes
            .iter()
            .map(|w| (w.device_id, w.reason.as_str()))
            .collect::<Vec<_>>(),
        [(paul.device_id, "user deprovisioned")]
    );
    // A second retry finds nothing left to do.
    let err = admin
        .client
        .deprovision_user(paul.user.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    assert_eq!(admin.client.device_wipes().await.unwrap().wipes.len(), 1);
}

both_backends!(
    retention_and_legal_hold,
    ephemeral_and_recall,
    remote_wipe,
    an_interrupted_offboarding_is_finished_by_a_retry,
    device_policy
);
