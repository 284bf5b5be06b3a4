//! The clinical workflow in the clinicians' web app (issue 22), in Chromium
//! (`tests/browser/clinical.mjs`), against the real server with its test
//! clock: a STAT page to "Cardiology on-call" from the nurse's browser
//! escalates (re-alert, then the backup) while nobody answers, and the
//! backup's acknowledgement from his browser stops the ladder, each step on
//! the nurse's screen; a recall from the browser removes the message from a
//! command-line device and another browser; search on the device finds a
//! word written three days earlier among 10,000 messages.

use std::time::Duration;

use wardline_client::core::MessageContent;
use wardline_proto::Role;
use wardline_proto::messaging::{ConversationKind, CreateConversationRequest, Priority};
use wardline_proto::routing::*;

use crate::common::browser::{Live, browser_available};
use crate::common::push_service::{PushService, push_service_available};
use crate::common::*;
use crate::routing::{Cardiology, cardiology, step};
use crate::web_app::web_app_built;

/// Messages written after the one the nurse searches for.
const FILLER: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stat_page_escalates_and_is_acknowledged_in_the_browser() {
    if !browser_available() || !web_app_built() {
        return;
    }
    if !push_service_available() {
        return;
    }
    let push = PushService::start().await;
    let t = TestServer::start_with(Backend::Sqlite, |c| c.push.services = vec![push.origin()])
        .await
        .unwrap();
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_named(&admin, Role::Nurse, "Nora Night").await;
    let ana = t.user_named(&admin, Role::Physician, "Ana Oncall").await;
    let ben = t.user_named(&admin, Role::Physician, "Ben Backup").await;
    let carla = t.user_named(&admin, Role::Nurse, "Carla Charge").await;
    let clerk = t
        .user_named(&admin, Role::MedicalAssistant, "Dana Clerk")
        .await;

    // Cardiology: "Cardiology on-call" (Ana tonight, Ben her backup) with a
    // short STAT ladder, and its charge nurse (Carla) as fallback.
    let Cardiology { role, dept, .. } = cardiology(
        &admin,
        &carla,
        vec![
            step(60, EscalationAction::Renotify),
            step(120, EscalationAction::Backup),
            step(180, EscalationAction::Sms),
        ],
    )
    .await;

    let devices = Devices::new();
    let mut oncall = devices.of(&ana, "Ana's phone").await;
    let mut writer = devices.of(&clerk, "Ward clerk's terminal").await;
    let (ana_device, clerk_device) = (oncall.core.mls.device, writer.core.mls.device);

    // A patient thread of another team, for break-glass: Ana and Carla are
    // the bed 4 team; break-glass lasts five minutes here.
    let mut policy = admin.client.policy().await.unwrap();
    policy.routing.break_glass_minutes = 5;
    admin.client.set_policy(&policy).await.unwrap();
    let team = admin
        .client
        .create_care_team(&CreateCareTeamRequest {
            name: "Bed 4 team".into(),
            department_id: Some(dept.id),
            members: vec![ana.user.id, carla.user.id],
        })
        .await
        .unwrap();
    let patient = "MRN-55501";
    let ephemeral = "Door code for the on-call room is 4471";
    let after_lifespan = "Family meeting moved to 16:00";
    let patient_text = "K+ 6.1 in bed 4, repeat sent, ECG ordered";
    let bed4 = oncall
        .create(&CreateConversationRequest {
            kind: ConversationKind::Group,
            title: Some("Bed 4".into()),
            members: vec![carla.user.id],
            patient_ref: Some(patient.into()),
            care_team_id: Some(team.id),
        })
        .await
        .unwrap()
        .id;
    oncall
        .send(bed4, MessageContent::text(patient_text), Priority::Routine)
        .await
        .unwrap();

    t.next_totp_step();
    let codes = |secret: &str| serde_json::json!([t.totp_code(secret)]);
    let stat = "STAT chest pain bed 4, troponin rising, ECG changes";
    let wrong = "Potassium 6.1 for bed 9 (wrong patient, ignore)";
    let cli_reply = "Seen: which bed was that?";
    let searched = "Bed 12 reports a latex allergy, use the nitrile gloves";
    let screenshots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let mut live = Live::start(
        "clinical.mjs",
        serde_json::json!({
            "url": format!("{}/", t.url),
            "pushService": push.origin(),
            "org": "alpha",
            "password": PASSWORD,
            "pin": "4711 heron",
            "screenshots": screenshots,
            "role": role.name,
            "stat": stat,
            "wrongPatient": wrong,
            "cliReply": cli_reply,
            "searchWord": "latex",
            "searchPartial": "nitri",
            "lastFiller": format!("Obs round {FILLER}: all stable"),
            "ephemeral": ephemeral,
            "afterLifespan": after_lifespan,
            "patient": patient,
            "patientMessage": patient_text,
            "breakGlassReason": "Covering the cardiac arrest call in bed 4, the team is in theatre",
            "nurse": { "email": nurse.user.email, "name": "Nora Night", "codes": codes(&nurse.totp_secret) },
            "backup": { "email": ben.user.email, "name": "Ben Backup", "codes": codes(&ben.totp_secret) },
        }),
        Some(&t.ca_pem),
    );
    live.step("ready").await;

    // Search: one message, then three days later 10,000 more, written from
    // the command line into a group with the nurse's browser.
    let ward = writer
        .create(&CreateConversationRequest {
            kind: ConversationKind::Group,
            title: Some("Ward 7 handover".into()),
            members: vec![nurse.user.id],
            patient_ref: None,
            care_team_id: None,
        })
        .await
        .unwrap()
        .id;
    writer
        .send(ward, MessageContent::text(searched), Priority::Routine)
        .await
        .unwrap();
    let written_at = t.now();
    // Three days on, every session has ended: each device signs in again.
    t.clock.advance(3 * 86_400);
    writer.api = t.sign_in_as_device(&clerk, clerk_device).await;
    oncall.api = t.sign_in_as_device(&ana, ana_device).await;
    let admin_api = t.sign_in_mfa(&admin).await;
    let started = std::time::Instant::now();
    for i in 1..=FILLER {
        let c = &mut writer.core;
        c.queue(
            ward,
            MessageContent::text(format!("Obs round {i}: all stable")),
            Priority::Routine,
            None,
        );
        let req = c.encrypt_next().unwrap().unwrap();
        let done = writer.api.submit(ward, &req).await.unwrap();
        writer.core.sent_next(done.created_at, done.expires_at);
    }
    eprintln!("{FILLER} messages written in {:?}", started.elapsed());
    // Tonight's shift, from now (after the three days).
    let now = t.now();
    admin_api
        .create_shift(
            role.id,
            &CreateShiftRequest {
                user_id: ana.user.id,
                backup_user_id: Some(ben.user.id),
                starts_at: now - 3600,
                ends_at: now + 11 * 3600,
            },
        )
        .await
        .unwrap();
    // The browsers sign in again (their sessions ended too), with codes
    // for now: the test moved the clock.
    t.next_totp_step();
    live.signal_with(
        "seeded",
        serde_json::json!({
            "nurse": t.totp_code(&nurse.totp_secret),
            "backup": t.totp_code(&ben.totp_secret),
        }),
    );
    let search = live.step("search").await;
    assert!(search["count"].as_u64().unwrap() == 1, "{search}");
    assert!(
        search["first"].as_str().unwrap().contains(searched),
        "{search}"
    );
    assert_eq!(search["partialCount"], 1, "{search}");
    assert!(
        search["opened"].as_str().unwrap().contains(searched),
        "{search}"
    );
    assert_eq!(search["focused"], true, "{search}");
    eprintln!(
        "search over {} messages: {} ms (written at {written_at})",
        FILLER + 1,
        search["tookMs"]
    );

    // The directory shows who covers cardiology tonight.
    let directory = live.step("directory").await;
    let d = directory["directory"].as_str().unwrap();
    assert!(d.contains("Ana Oncall"), "{d}");
    assert!(d.contains("on call: Cardiology on-call"), "{d}");
    assert!(
        live.step("presence").await["shown"]
            .as_str()
            .unwrap()
            .contains("Busy")
    );
    assert_eq!(
        t.sign_in_mfa(&ben).await.presence().await.unwrap().status,
        PresenceStatus::Busy
    );

    // The page reached Ana, on call; the nurse was told so.
    let paged = live.step("paged").await;
    let notice = paged["notice"].as_str().unwrap();
    assert!(notice.starts_with("Paged Cardiology on-call: "), "{paged}");
    assert!(notice.contains("Ana Oncall"), "{paged}");
    assert!(
        paged["offered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "Cardiology on-call"),
        "{paged}"
    );
    let ladder = paged["ladder"].as_str().unwrap();
    assert!(ladder.contains("Ana Oncall (on call)"), "{ladder}");
    assert!(ladder.contains("Next: alert again at"), "{ladder}");
    // Ana's phone has it, STAT.
    let (conv, message) = until("the STAT on Ana's phone", async || {
        oncall.sync().await.unwrap();
        oncall.core.conversations.values().find_map(|c| {
            c.messages
                .iter()
                .find(|m| m.content.text == stat)
                .map(|m| (c.id, m.clone()))
        })
    })
    .await;
    assert_eq!(message.priority, Priority::Stat);
    let e = oncall.api.escalation(conv, message.id).await.unwrap();
    assert_eq!(e.state, EscalationState::Open);
    assert_eq!(e.resolved_via, Some(ResolvedVia::OnCall));

    // Nobody answers: a minute, then two.
    t.clock.advance(61);
    until("the re-alert", async || {
        let e = oncall.api.escalation(conv, message.id).await.unwrap();
        (e.events.len() == 1).then_some(())
    })
    .await;
    t.clock.advance(60);
    until("the backup", async || {
        let e = oncall.api.escalation(conv, message.id).await.unwrap();
        (e.events.len() == 2).then_some(())
    })
    .await;
    live.signal_with("escalated", serde_json::json!({ "stat": message.id }));
    let escalated = live.step("escalated").await;
    let ladder = escalated["ladder"].as_str().unwrap();
    assert!(ladder.contains("Alerted again: Ana Oncall"), "{ladder}");
    assert!(ladder.contains("Backup brought in: Ben Backup"), "{ladder}");
    assert!(ladder.contains("Next: text a sign-in link at"), "{ladder}");

    // Ben's Wardline was closed: the push reached his browser and its
    // notification says what kind of thing waits, nothing more.
    let pushed = live.step("pushed").await;
    assert_eq!(
        pushed["payload"],
        serde_json::json!({ "v": 1, "kind": "waiting", "message": message.id })
    );
    let n = &pushed["notification"];
    assert_eq!(n["title"], "A message is waiting for your acknowledgement");
    assert_eq!(n["body"], "Open Wardline to read it.");
    assert_eq!(n["requireInteraction"], true);
    let shown = n.to_string();
    for secret in ["chest", "troponin", "Nora", "Cardiology", "bed"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        pushed["tabs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u == "about:blank"),
        "no Wardline tab was open: {pushed}"
    );
    eprintln!(
        "backup brought in → notification shown: {} ms ({} deliveries)",
        pushed["ms"], pushed["deliveries"]
    );

    // Ben acknowledged from his browser: the ladder stopped.
    let acked = live.step("acknowledged").await;
    assert!(
        acked["banner"]
            .as_str()
            .unwrap()
            .contains("STAT from Nora Night"),
        "{acked}"
    );
    assert!(
        acked["ladder"]
            .as_str()
            .unwrap()
            .contains("Acknowledged by Ben Backup"),
        "{acked}"
    );
    assert!(
        acked["backupSees"]
            .as_str()
            .unwrap()
            .contains("Acknowledged by Ben Backup"),
        "{acked}"
    );
    let e = oncall.api.escalation(conv, message.id).await.unwrap();
    assert_eq!(e.state, EscalationState::Acknowledged);
    assert_eq!(e.acknowledged_by, Some(ben.user.id));
    t.clock.advance(120);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let e = oncall.api.escalation(conv, message.id).await.unwrap();
    assert_eq!(
        e.events.len(),
        2,
        "no step after the acknowledgement: {e:?}"
    );

    // The wrong-patient message reaches Ana's phone; she answers; the nurse
    // recalls it from her browser and it is gone from Ana's phone too.
    until("the wrong-patient message on Ana's phone", async || {
        oncall.sync().await.unwrap();
        texts(&oncall, conv)
            .iter()
            .any(|t| t == wrong)
            .then_some(())
    })
    .await;
    oncall
        .send(conv, MessageContent::text(cli_reply), Priority::Routine)
        .await
        .unwrap();
    let recalled = live.step("recalled").await;
    let outcome = recalled["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("Read before the recall by") && outcome.contains("Ben Backup"),
        "{recalled}"
    );
    assert!(
        !recalled["backupAfter"].as_str().unwrap().contains(wrong),
        "{recalled}"
    );
    until("the recall on Ana's phone", async || {
        oncall.sync().await.unwrap();
        let c = &oncall.core.conversations[&conv];
        c.messages
            .iter()
            .any(|m| m.recalled_at.is_some())
            .then_some(())
    })
    .await;
    assert!(!texts(&oncall, conv).iter().any(|t| t == wrong));

    // A disappearing message (five minutes) and, after the conversation's
    // lifespan was set (an hour), one that lives an hour: both say so where
    // they arrive; Ana's phone has them.
    let d = live.step("disappearing").await;
    assert!(
        d["ephemeralMeta"]
            .as_str()
            .unwrap()
            .contains("disappears at"),
        "{d}"
    );
    assert!(
        d["lifespanNote"]
            .as_str()
            .unwrap()
            .contains("Messages here disappear 1 hour after they are sent"),
        "{d}"
    );
    assert!(
        d["laterMeta"].as_str().unwrap().contains("disappears at"),
        "{d}"
    );
    let ttl = until("the disappearing messages on Ana's phone", async || {
        oncall.sync().await.unwrap();
        let c = &oncall.core.conversations[&conv];
        let e = c.messages.iter().find(|m| m.content.text == ephemeral)?;
        let l = c
            .messages
            .iter()
            .find(|m| m.content.text == after_lifespan)?;
        Some((e.expires_at? - e.sent_at, l.expires_at? - l.sent_at))
    })
    .await;
    assert_eq!(ttl, (300, 3600));

    // Break-glass from Ben's browser: with a reason, a banner while it
    // lasts. Ana's phone (a member) takes his device in and shares the
    // thread's recent messages again.
    let broke = live.step("broke_glass").await;
    assert!(
        broke["threads"]
            .as_str()
            .unwrap()
            .contains("Bed 4 · break-glass until"),
        "{broke}"
    );
    let banner = broke["banner"].as_str().unwrap();
    assert!(
        banner.contains("Break-glass access to Bed 4 until")
            && banner.contains("Reason given: Covering the cardiac arrest call"),
        "{banner}"
    );
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let member = tokio::spawn(async move {
        while !*stopped.borrow() {
            oncall.sync().await.unwrap();
            let _ = tokio::time::timeout(Duration::from_millis(300), stopped.changed()).await;
        }
        oncall
    });
    let thread = live.step("patient_thread").await;
    assert!(
        thread["shown"].as_str().unwrap().contains(patient_text),
        "{thread}"
    );
    // Five minutes on, the grant ends: Ana's phone commits his device out
    // of the group, and his browser is out of the thread.
    let ben_api = t.sign_in_mfa(&ben).await;
    assert_eq!(
        ben_api.own_break_glass_grants().await.unwrap().grants.len(),
        1
    );
    t.clock.advance(301);
    until("the grant to end", async || {
        ben_api
            .own_break_glass_grants()
            .await
            .unwrap()
            .grants
            .is_empty()
            .then_some(())
    })
    .await;
    t.next_totp_step();
    live.signal_with(
        "expired",
        serde_json::json!({
            "sharedCode": t.totp_code(&nurse.totp_secret),
            "sharedCode2": t.totp_code_at(&nurse.totp_secret, t.now() + 30),
        }),
    );
    let expired = live.step("expired").await;
    stop.send(true).unwrap();
    let oncall = member.await.unwrap();
    // The five-minute message is gone from Ana's phone too; the hour one stays.
    let left = texts(&oncall, conv);
    assert!(!left.iter().any(|t| t == ephemeral), "{left:?}");
    assert!(left.iter().any(|t| t == after_lifespan), "{left:?}");
    assert!(
        !expired["listed"]
            .as_str()
            .unwrap()
            .contains("Break-glass access"),
        "{expired}"
    );
    // The escalation text's link, in his browser: the PIN, then the STAT.
    let link = live.step("alert_link").await;
    assert!(link["shown"].as_str().unwrap().contains(stat), "{link}");
    assert!(
        !link["address"]
            .as_str()
            .unwrap()
            .contains(&message.id.to_string()),
        "{link}"
    );
    // A shared computer's tab closed without signing out: the next tab
    // there erased what it had kept.
    let left_behind = live.step("shared_left_behind").await;
    assert!(
        left_behind["leftStore"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "wardline"),
        "{left_behind}"
    );
    assert_eq!(
        left_behind["databases"],
        serde_json::json!([]),
        "{left_behind}"
    );
    assert_eq!(
        left_behind["sameDevice"], false,
        "a new device id: {left_behind}"
    );

    // The shared computer kept nothing, and is not among her devices.
    let shared = live.step("shared_signed_out").await;
    assert!(
        shared["sharedNote"]
            .as_str()
            .unwrap()
            .starts_with("Shared computer"),
        "{shared}"
    );
    assert!(
        shared["hadStore"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "wardline"),
        "{shared}"
    );
    assert_eq!(
        shared["sharedOffered"], 0,
        "no notifications offered: {shared}"
    );
    let left = &shared["left"];
    assert_eq!(left["databases"], serde_json::json!([]), "{shared}");
    assert_eq!(left["caches"], serde_json::json!([]), "{shared}");
    assert_eq!(left["serviceWorkers"], 0, "{shared}");
    assert!(left["deviceId"].is_null(), "{shared}");
    let removed: uuid::Uuid = shared["sharedDevice"].as_str().unwrap().parse().unwrap();
    let theirs = t
        .sign_in_mfa(&admin)
        .await
        .user_devices(nurse.user.id)
        .await
        .unwrap()
        .devices;
    assert!(!theirs.iter().any(|d| d.id == removed), "{theirs:?}");
    assert!(!theirs.is_empty(), "her own browser stays: {theirs:?}");
    live.finish().await;
}
