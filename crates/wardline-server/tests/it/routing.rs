//! Clinical routing through the real server with real MLS clients, on SQLite
//! and PostgreSQL: a STAT page to "on-call cardiology" that escalates to the
//! backup across a server restart and stops when acknowledged; an iCalendar
//! schedule with recurring shifts in time zones (from a file and a URL);
//! break-glass (refused without a reason, granted with one, notified, expired);
//! presence, the directory and the response report.

use std::time::Duration;

use crate::common::{Actor, Backend, Devices, TestServer, actions, has_action, texts, until};
use uuid::Uuid;
use wardline_client::core::{Event, MessageContent};
use wardline_proto::messaging::*;
use wardline_proto::routing::*;
use wardline_proto::{ErrorCode, Role};

pub(crate) struct Cardiology {
    pub(crate) role: ClinicalRole,
    pub(crate) charge: ClinicalRole,
    pub(crate) dept: Department,
}

/// Cardiology: a department, its charge-nurse role (held by `charge`), and
/// "Cardiology on-call" with `stat` as its own ladder and the charge nurse
/// as fallback.
pub(crate) async fn cardiology(
    admin: &Actor,
    charge: &Actor,
    stat: Vec<EscalationStep>,
) -> Cardiology {
    let dept = admin.client.create_department("Cardiology").await.unwrap();
    let charge_role = admin
        .client
        .create_clinical_role(&CreateRoleRequest {
            name: "Cardiology charge nurse".into(),
            department_id: Some(dept.id),
            fallback_role_id: None,
            holders: vec![charge.user.id],
            escalation: None,
        })
        .await
        .unwrap();
    let role = admin
        .client
        .create_clinical_role(&CreateRoleRequest {
            name: "Cardiology on-call".into(),
            department_id: Some(dept.id),
            fallback_role_id: Some(charge_role.id),
            holders: vec![],
            escalation: Some(EscalationPolicy {
                stat,
                urgent: vec![],
            }),
        })
        .await
        .unwrap();
    Cardiology {
        role,
        charge: charge_role,
        dept,
    }
}

pub(crate) fn step(after_secs: i64, action: EscalationAction) -> EscalationStep {
    EscalationStep { after_secs, action }
}

async fn stat_page_escalates_across_a_restart_and_stops_when_acknowledged(backend: Backend) {
    let Some(mut t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("mercy").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let ana = t.user_with_role(&admin, Role::Physician).await;
    let ben = t.user_with_role(&admin, Role::Physician).await;
    let carla = t.user_with_role(&admin, Role::Nurse).await;
    let auditor = t.user_with_role(&admin, Role::ComplianceOfficer).await;
    let c = cardiology(
        &admin,
        &carla,
        vec![
            step(60, EscalationAction::Renotify),
            step(120, EscalationAction::Backup),
            step(180, EscalationAction::Sms),
        ],
    )
    .await;
    let now = t.now();
    admin
        .client
        .create_shift(
            c.role.id,
            &CreateShiftRequest {
                user_id: ana.user.id,
                backup_user_id: Some(ben.user.id),
                starts_at: now - 3600,
                ends_at: now + 11 * 3600,
            },
        )
        .await
        .unwrap();

    let devices = Devices::new();
    let mut n = devices.of(&nurse, "nurse station").await;
    let mut a = devices.of(&ana, "Ana's phone").await;
    let mut b = devices.of(&ben, "Ben's phone").await;

    // The nurse pages the role, not a person: it resolves to Ana, on call.
    let page = n.page(c.role.id, None).await.unwrap();
    assert_eq!(page.resolved_to.user_id, ana.user.id);
    assert_eq!(page.via, ResolvedVia::OnCall);
    assert!(!page.nobody_on_call);
    let conv = page.conversation.id;
    assert_eq!(page.conversation.role_id, Some(c.role.id));
    let text = "PLAINTEXT-CANARY STAT chest pain bed 4, troponin rising";
    let stat = n
        .send(conv, MessageContent::text(text), Priority::Stat)
        .await
        .unwrap();
    a.sync().await.unwrap();
    assert_eq!(texts(&a, conv), vec![text.to_owned()]);
    let e = n.api.escalation(conv, stat).await.unwrap();
    assert_eq!(e.state, EscalationState::Open);
    assert_eq!(e.role_id, Some(c.role.id));
    assert_eq!(e.resolved_user, Some(ana.user.id));
    assert_eq!(e.resolved_via, Some(ResolvedVia::OnCall));
    assert_eq!(e.notified, vec![ana.user.id]);
    assert_eq!(e.next_action, Some(EscalationAction::Renotify));
    assert_eq!(e.next_at, Some(e.created_at + 60));

    // Unacknowledged for a minute: Ana is alerted again (an entry without content).
    t.clock.advance(61);
    // (The row and its events are read one after the other: wait for both.)
    let e = until("the re-notification", async || {
        let e = n.api.escalation(conv, stat).await.unwrap();
        (e.events.len() == 1 && e.next_action == Some(EscalationAction::Backup)).then_some(e)
    })
    .await;
    assert_eq!(e.events[0].action, EscalationAction::Renotify);
    assert_eq!(e.events[0].users, vec![ana.user.id]);
    let events = a.sync().await.unwrap();
    let alert = events
        .iter()
        .find_map(|e| match e {
            Event::Alert { alert, .. } => Some(alert.clone()),
            _ => None,
        })
        .expect("Ana's device got the alert");
    assert_eq!(alert.message_id, stat);
    assert!(!alert.text.contains("CANARY"), "{alert:?}");
    // It names the sender, whose own devices get the alert too (they follow
    // the escalation) and must not ask them to acknowledge it (issue 18).
    assert_eq!(alert.sender, Some(nurse.user.id));

    // The server restarts while the next step waits; the new node picks it up.
    t.clock.advance(40);
    t.restart().await;
    t.clock.advance(20);
    let e = until("the escalation to the backup", async || {
        let e = n.api.escalation(conv, stat).await.unwrap();
        (e.events.len() == 2 && e.next_action == Some(EscalationAction::Sms)).then_some(e)
    })
    .await;
    assert_eq!(e.events[1].action, EscalationAction::Backup);
    assert_eq!(e.events[1].users, vec![ben.user.id]);
    assert_eq!(e.notified, vec![ana.user.id, ben.user.id]);
    assert_eq!(e.next_action, Some(EscalationAction::Sms));

    // Ben joined after the message: the nurse's device shares it again with
    // him (MLS gives a newcomer nothing from before), and he reads it.
    n.sync().await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(texts(&b, conv), vec![text.to_owned()]);
    // It is the original (issue 18, item 5): its id, time, sender and STAT
    // priority, not a routine copy sent now.
    let held = b.core.conversations[&conv].messages[0].clone();
    let original = a.core.conversations[&conv].messages[0].clone();
    assert_eq!(
        (held.id, held.sent_at, held.sender_user, held.priority),
        (stat, original.sent_at, nurse.user.id, Priority::Stat)
    );
    assert!(held.sent_at < t.now() - 60);
    // Read by that id, on the original's receipts.
    b.mark_shown(conv, &[held.id]).await.unwrap();
    let r = n.api.receipts(conv, stat).await.unwrap();
    assert!(
        r.receipts
            .iter()
            .any(|x| x.device_id == ben.device_id && x.read_at.is_some()),
        "{r:?}"
    );
    a.sync().await.unwrap();
    assert_eq!(
        texts(&a, conv),
        vec![text.to_owned()],
        "no duplicate for Ana"
    );

    // The sender cannot acknowledge; Ben does, and the escalation stops.
    let own = n.api.acknowledge(conv, stat).await.unwrap_err();
    assert_eq!(own.code(), Some(ErrorCode::Forbidden));
    let e = b.acknowledge(conv, held.id).await.unwrap();
    assert_eq!(e.state, EscalationState::Acknowledged);
    assert_eq!(e.acknowledged_by, Some(ben.user.id));
    assert_eq!(e.acknowledged_device, Some(ben.device_id));
    assert_eq!(e.next_at, None);
    // The nurse (and Ana, alerted before) are told, and may stand down.
    for device in [&mut n, &mut a] {
        let events = device.sync().await.unwrap();
        assert!(
            events.iter().any(|e| matches!(e, Event::Alert { alert, .. }
                if alert.action == EscalationAction::Acknowledged
                    && alert.by == Some(ben.user.id)
                    && alert.message_id == stat)),
            "{events:?}"
        );
    }
    let again = a.acknowledge(conv, stat).await.unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::Conflict));
    t.clock.advance(120);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let e = n.api.escalation(conv, stat).await.unwrap();
    assert_eq!(
        e.events.len(),
        2,
        "no step after the acknowledgement: {e:?}"
    );
    assert_eq!(e.state, EscalationState::Acknowledged);

    // Two more STATs: the second joins the first's escalation (one alert
    // stream), which ends in texts that carry no content.
    let s2 = n
        .send(
            conv,
            MessageContent::text("PLAINTEXT-CANARY again"),
            Priority::Stat,
        )
        .await
        .unwrap();
    let s3 = n
        .send(
            conv,
            MessageContent::text("PLAINTEXT-CANARY still"),
            Priority::Stat,
        )
        .await
        .unwrap();
    let e3 = n.api.escalation(conv, s3).await.unwrap();
    assert_eq!(e3.state, EscalationState::Merged);
    assert_eq!(e3.merged_into, Some(s2));
    // An urgent message joins the open STAT too; a STAT never joins a
    // weaker (urgent) escalation (checked in `urgent_never_downgrades_a_stat`).
    let u = n
        .send(
            conv,
            MessageContent::text("PLAINTEXT-CANARY also"),
            Priority::Urgent,
        )
        .await
        .unwrap();
    assert_eq!(
        n.api.escalation(conv, u).await.unwrap().merged_into,
        Some(s2)
    );
    t.clock.advance(185);
    let e2 = until("the texts", async || {
        let e = n.api.escalation(conv, s2).await.unwrap();
        (e.events.len() == 3 && e.state == EscalationState::Exhausted).then_some(e)
    })
    .await;
    let sms = &e2.events[2];
    assert_eq!(sms.action, EscalationAction::Sms);
    assert!(sms.sms);
    assert_eq!(sms.users, vec![ana.user.id, ben.user.id]);
    assert_eq!(e2.state, EscalationState::Exhausted);
    let log = t.config.sms_file_path();
    let sent = until("the texts to leave", async || {
        let s = std::fs::read_to_string(&log).unwrap_or_default();
        (s.matches("staff_alert").count() >= 2 || s.matches("a STAT message").count() >= 2)
            .then_some(s)
    })
    .await;
    assert!(sent.contains(&format!("/alerts/{s2}")), "{sent}");
    assert!(
        !sent.contains("CANARY") && !sent.contains("chest"),
        "{sent}"
    );
    // The link leads into the web app at that message (the id in the
    // fragment, which no server sees again), or, without the app, says to
    // sign in on a device; never anything of the message.
    let no_redirects = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&t.ca_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirects
        .get(format!("{}/alerts/{s2}", t.url))
        .send()
        .await
        .unwrap();
    if wardline_server::routes::web_app::built() {
        assert_eq!(page.status(), 303);
        assert_eq!(page.headers()["location"], format!("/#alert={s2}").as_str());
    } else {
        assert_eq!(page.status(), 200);
        let body = page.text().await.unwrap();
        assert!(
            body.contains("sign in") && !body.contains("CANARY"),
            "{body}"
        );
    }
    // Not a message id: the notice, whatever is built.
    let page = no_redirects
        .get(format!("{}/alerts/not-an-id", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("sign in"));
    // Acknowledging the merged message closes the escalation it joined.
    let e = a.acknowledge(conv, s3).await.unwrap();
    assert_eq!(e.state, EscalationState::Acknowledged);
    assert_eq!(
        n.api.escalation(conv, s2).await.unwrap().acknowledged_by,
        Some(ana.user.id)
    );

    // Everything is on the audit trail.
    let log = actions(&t).await;
    for (action, target) in [
        ("routing.page", conv.to_string()),
        ("message.submit", conv.to_string()),
        ("routing.escalation.step", stat.to_string()),
        ("message.acknowledge", stat.to_string()),
        ("routing.escalation.step", s2.to_string()),
    ] {
        assert!(has_action(&log, action, &target), "{action} on {target}");
    }
    let steps = log
        .iter()
        .filter(|(a, _, t, _)| a == "routing.escalation.step" && *t == Some(stat.to_string()))
        .count();
    assert_eq!(steps, 2);

    // The report: by role and department, with read and acknowledgement times.
    let report = admin
        .client
        .response_report(t.now() - 3600, t.now() + 1)
        .await
        .unwrap();
    let by_role = report
        .by_role
        .iter()
        .find(|r| r.id == Some(c.role.id))
        .unwrap();
    assert_eq!(by_role.name, "Cardiology on-call");
    assert_eq!(
        by_role.messages, 2,
        "the merged message and the copy for Ben count once"
    );
    assert_eq!(by_role.acknowledged, 2);
    assert_eq!(by_role.escalated, 2);
    assert_eq!(by_role.unacknowledged, 0);
    assert_eq!(by_role.median_ack_secs.map(|s| s > 0), Some(true));
    let by_dept = report
        .by_department
        .iter()
        .find(|r| r.id == Some(c.dept.id))
        .unwrap();
    assert_eq!(by_dept.name, "Cardiology");
    assert_eq!(report.escalated.len(), 2);
    assert!(report.unacknowledged.is_empty());
    let denied = nurse.client.response_report(0, 1).await.unwrap_err();
    assert_eq!(denied.code(), Some(ErrorCode::Forbidden));
    let _ = (auditor, c.charge);
}

async fn paging_follows_presence_and_falls_back(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("mercy").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let ana = t.user_with_role(&admin, Role::Physician).await;
    let ben = t.user_with_role(&admin, Role::Physician).await;
    let carla = t.user_with_role(&admin, Role::Nurse).await;
    let c = cardiology(&admin, &carla, vec![step(120, EscalationAction::Renotify)]).await;
    let devices = Devices::new();
    let mut n = devices.of(&nurse, "nurse station").await;
    let _carla = devices.of(&carla, "charge phone").await;

    // Nobody on call: the nurse is told at once and the fallback role is used.
    let page = n.page(c.role.id, None).await.unwrap();
    assert!(page.nobody_on_call);
    assert_eq!(page.via, ResolvedVia::FallbackRole);
    assert_eq!(page.resolved_to.user_id, carla.user.id);
    assert!(page.notice.contains("nobody is on call"), "{}", page.notice);

    // On call, but in a procedure: the backup.
    let now = t.now();
    admin
        .client
        .create_shift(
            c.role.id,
            &CreateShiftRequest {
                user_id: ana.user.id,
                backup_user_id: Some(ben.user.id),
                starts_at: now - 60,
                ends_at: now + 3600,
            },
        )
        .await
        .unwrap();
    ana.client
        .set_presence(&SetPresenceRequest {
            status: PresenceStatus::InProcedure,
            until: Some(now + 300),
        })
        .await
        .unwrap();
    let _b = devices.of(&ben, "Ben's phone").await;
    let page = n.page(c.role.id, None).await.unwrap();
    assert_eq!(page.via, ResolvedVia::Backup);
    assert_eq!(page.resolved_to.user_id, ben.user.id);
    assert!(page.notice.contains("in procedure"), "{}", page.notice);
    // A new conversation for the new person: Carla (no longer paged) is not in it.
    assert!(page.conversation.members.contains(&ben.user.id));
    assert!(!page.conversation.members.contains(&carla.user.id));
    let again = n.page(c.role.id, None).await.unwrap();
    assert_eq!(
        again.conversation.id, page.conversation.id,
        "same person: reused"
    );

    // The directory: by name, role and department, with presence and on-call.
    let found = nurse.client.search_directory("cardiology").await.unwrap();
    let ids: Vec<Uuid> = found.entries.iter().map(|e| e.user_id).collect();
    assert!(ids.contains(&carla.user.id), "{found:?}");
    let oncall = nurse.client.on_call(c.role.id).await.unwrap();
    assert_eq!(
        oncall.primary.unwrap().presence,
        PresenceStatus::InProcedure
    );
    assert_eq!(oncall.backup.unwrap().user_id, ben.user.id);
    let by_name = nurse
        .client
        .search_directory(&ana.user.display_name)
        .await
        .unwrap();
    let ana_entry = by_name
        .entries
        .iter()
        .find(|e| e.user_id == ana.user.id)
        .unwrap();
    assert_eq!(ana_entry.on_call, vec!["Cardiology on-call".to_owned()]);
    assert_eq!(ana_entry.presence, PresenceStatus::InProcedure);

    // Ana sees her own status, and when it ends.
    let own = ana.client.presence().await.unwrap();
    assert_eq!(
        (own.status, own.until),
        (PresenceStatus::InProcedure, Some(now + 300))
    );
    assert_eq!(
        nurse.client.presence().await.unwrap().status,
        PresenceStatus::Available,
        "never set: available"
    );

    // Presence lapses back to available.
    t.clock.advance(301);
    let own = ana.client.presence().await.unwrap();
    assert_eq!((own.status, own.until), (PresenceStatus::Available, None));
    let page = n.page(c.role.id, None).await.unwrap();
    assert_eq!(page.via, ResolvedVia::OnCall);
    assert_eq!(page.resolved_to.user_id, ana.user.id);

    // A suspended account is never paged, whatever the schedule says.
    admin.client.suspend_user(ana.user.id).await.unwrap();
    let page = n.page(c.role.id, None).await.unwrap();
    assert_eq!(page.via, ResolvedVia::Backup);
    assert!(page.notice.contains("not active"), "{}", page.notice);
    admin.client.reactivate_user(ana.user.id).await.unwrap();
    // Suspension ended her sessions.
    let ana_client = t.sign_in_as_device(&ana, ana.device_id).await;

    // An administrator edits the role: a new ladder, Ben as a holder; a
    // fallback chain that leads back is refused.
    let mut edit = CreateRoleRequest {
        name: c.role.name.clone(),
        department_id: c.role.department_id,
        fallback_role_id: c.role.fallback_role_id,
        holders: vec![ben.user.id],
        escalation: Some(EscalationPolicy {
            stat: vec![step(30, EscalationAction::Backup)],
            urgent: vec![],
        }),
    };
    let edited = admin
        .client
        .update_clinical_role(c.role.id, &edit)
        .await
        .unwrap();
    assert_eq!(edited.holders, vec![ben.user.id]);
    assert_eq!(edited.escalation.unwrap().stat.len(), 1);
    let back = CreateRoleRequest {
        name: c.charge.name.clone(),
        department_id: c.charge.department_id,
        fallback_role_id: Some(c.role.id),
        holders: c.charge.holders.clone(),
        escalation: None,
    };
    let e = admin
        .client
        .update_clinical_role(c.charge.id, &back)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Validation));
    edit.escalation = Some(EscalationPolicy {
        stat: vec![step(5, EscalationAction::Renotify)],
        urgent: vec![],
    });
    let e = admin
        .client
        .update_clinical_role(c.role.id, &edit)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Validation));

    // Bad input: clear errors.
    let e = ana_client
        .set_presence(&SetPresenceRequest {
            status: PresenceStatus::Busy,
            until: Some(t.now() - 1),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Validation));
    let e = nurse
        .client
        .page_role(Uuid::new_v4(), &PageRoleRequest { patient_ref: None })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    let e = admin
        .client
        .create_department("Cardiology")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Conflict));
    let e = nurse
        .client
        .create_department("Oncology")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
}

async fn ical_schedule_with_recurrence_and_time_zones(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    // Monday 4 March 2030, 12:00 UTC (07:00 in New York): the file's quarter.
    // The US changes to summer time on Sunday 10 March 2030.
    let target = 1_898_856_000;
    assert!(
        t.now() < target,
        "the fixture's dates must stay in the future"
    );
    t.clock.advance(target - t.now());
    let mut admin = t.setup_org("mercy").await;
    let ana = t.user_with_role(&admin, Role::Physician).await;
    let ben = t.user_with_role(&admin, Role::Physician).await;
    let carla = t.user_with_role(&admin, Role::Nurse).await;
    let c = cardiology(&admin, &carla, vec![]).await;
    let ics = include_str!("../fixtures/cardiology-on-call.ics")
        .replace("{PRIMARY}", &ana.user.email)
        .replace("{BACKUP}", &ben.user.email.to_uppercase());
    let r = admin
        .client
        .import_schedule(
            c.role.id,
            &ImportScheduleRequest {
                ics: Some(ics.clone()),
                url: None,
                days: Some(14),
                subscribe: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.events, 7);
    assert_eq!(r.replaced, 0);
    let mut problems: Vec<&str> = r.problems.iter().map(|p| p.event.as_str()).collect();
    problems.sort();
    assert_eq!(
        problems,
        [
            "cardio-outlook-0314@oncall.mercy.example",
            "cardio-visiting-0312@oncall.mercy.example",
        ],
        "{:?}",
        r.problems
    );
    let reason = |uid: &str| {
        r.problems
            .iter()
            .find(|p| p.event.starts_with(uid))
            .unwrap()
            .reason
            .clone()
    };
    assert!(reason("cardio-visiting").contains("not an active user"));
    assert!(reason("cardio-outlook").contains("IANA"));

    let shifts = admin
        .client
        .shifts(c.role.id, target - 86_400, target + 14 * 86_400)
        .await
        .unwrap()
        .shifts;
    assert_eq!(shifts.len() as i64, r.shifts);
    let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let local = |s: i64| {
        jiff::Timestamp::from_second(s)
            .unwrap()
            .to_zoned_datetime(ny.clone())
    };
    let days: Vec<&Shift> = shifts
        .iter()
        .filter(|s| s.source == "ical:cardio-days-2030q1@oncall.mercy.example")
        .collect();
    let nights: Vec<&Shift> = shifts
        .iter()
        .filter(|s| s.source == "ical:cardio-nights-2030q1@oncall.mercy.example")
        .collect();
    // Weekdays 4–18 March (the window is 14 days), less the excluded
    // Wednesday 6th: 10 day shifts; nights every day.
    assert_eq!(days.len(), 10, "{days:#?}");
    for s in &days {
        let start = local(s.starts_at);
        let end = local(s.ends_at);
        assert_eq!((start.hour(), start.minute()), (7, 0), "{start}");
        assert_eq!((end.hour(), end.minute()), (19, 0), "{end}");
        assert!(!matches!(
            start.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        ));
        assert_ne!(start.date(), jiff::civil::date(2030, 3, 6));
        assert_eq!(s.user_id, ana.user.id);
        assert_eq!(s.backup_user_id, Some(ben.user.id));
    }
    // The same local time is a different UTC time across the change.
    let fri = days.iter().find(|s| local(s.starts_at).day() == 8).unwrap();
    let mon = days
        .iter()
        .find(|s| local(s.starts_at).day() == 11)
        .unwrap();
    assert_eq!(fri.starts_at % 86_400, 12 * 3600, "07:00 EST is 12:00 UTC");
    assert_eq!(mon.starts_at % 86_400, 11 * 3600, "07:00 EDT is 11:00 UTC");
    for s in &nights {
        assert_eq!(local(s.starts_at).hour(), 19);
        assert_eq!(s.ends_at - s.starts_at, 12 * 3600, "DURATION is exact");
        assert_eq!(s.user_id, ben.user.id);
        assert_eq!(s.backup_user_id, Some(ana.user.id));
    }
    let change_night = nights
        .iter()
        .find(|s| local(s.starts_at).day() == 9)
        .unwrap();
    assert_eq!(
        local(change_night.ends_at).hour(),
        8,
        "12 h across 02:00→03:00"
    );
    let utc = shifts
        .iter()
        .find(|s| s.source.contains("weekend-cover"))
        .unwrap();
    assert_eq!(utc.starts_at % 86_400, 14 * 3600);
    let floating = shifts
        .iter()
        .find(|s| s.source.contains("echo-clinic"))
        .unwrap();
    assert_eq!(
        floating.starts_at % 86_400,
        16 * 3600,
        "12:00 in the calendar's zone (EDT)"
    );
    assert!(!shifts.iter().any(|s| s.source.contains("cancelled")));

    // Who covers now: the day shift that began at 07:00 in New York.
    let now = admin.client.on_call(c.role.id).await.unwrap();
    assert_eq!(now.primary.unwrap().user_id, ana.user.id);
    assert_eq!(now.backup.unwrap().user_id, ben.user.id);
    // Hand-off at 19:00: the night shift (Ben) takes over.
    t.clock.advance(12 * 3600);
    admin.client = t.sign_in_as_device(&admin, admin.device_id).await;
    let later = admin.client.on_call(c.role.id).await.unwrap();
    assert_eq!(later.primary.unwrap().user_id, ben.user.id);

    // From a URL, again: the shifts not yet ended are replaced, not doubled
    // (the day shift that ended at 19:00 stays as it was).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::Mutex::new(ics.clone()));
    let body = served.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/oncall.ics",
            axum::routing::get(move || {
                let body = body.lock().unwrap().clone();
                async move { ([("content-type", "text/calendar")], body) }
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    let again = admin
        .client
        .import_schedule(
            c.role.id,
            &ImportScheduleRequest {
                ics: None,
                url: Some(format!("http://{addr}/oncall.ics")),
                days: Some(14),
                subscribe: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        again.removed, 0,
        "the same calendar removes nothing: {again:?}"
    );
    assert!(
        again.replaced >= r.shifts - 1,
        "every shift not ended is replaced: {again:?}"
    );
    let after = admin
        .client
        .shifts(c.role.id, target - 86_400, target + 14 * 86_400)
        .await
        .unwrap()
        .shifts;
    assert_eq!(after.len(), shifts.len());
    // Issue 19, case 05: the same feed given as a webcal:// link (what
    // scheduling tools hand out) is fetched over https, then http.
    let webcal = admin
        .client
        .import_schedule(
            c.role.id,
            &ImportScheduleRequest {
                ics: None,
                url: Some(format!("webcal://{addr}/oncall.ics")),
                days: Some(14),
                subscribe: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(webcal.shifts, again.shifts);

    // Subscribed: the scheduling system swaps the night cover; an hour on,
    // the feed is imported again without anyone asking.
    let feed = admin.client.schedule_feed(c.role.id).await.unwrap();
    assert_eq!(feed.host, "127.0.0.1");
    assert!(
        feed.last_result
            .as_deref()
            .unwrap()
            .contains("shifts from 7 events")
    );
    *served.lock().unwrap() = include_str!("../fixtures/cardiology-on-call.ics")
        .replace("{PRIMARY}", &carla.user.email)
        .replace("{BACKUP}", &ana.user.email);
    t.clock.advance(3601);
    admin.client = t.sign_in_as_device(&admin, admin.device_id).await;
    until("the feed to be imported again", async || {
        let f = admin.client.schedule_feed(c.role.id).await.unwrap();
        (f.last_fetched_at > feed.last_fetched_at).then_some(())
    })
    .await;
    let now_on = admin.client.on_call(c.role.id).await.unwrap();
    assert_eq!(
        now_on.primary.unwrap().user_id,
        ana.user.id,
        "nights: now Ana"
    );
    assert!(has_action(
        &actions(&t).await,
        "routing.schedule.import",
        &c.role.id.to_string()
    ));
    admin.client.unsubscribe_feed(c.role.id).await.unwrap();
    let gone = admin.client.schedule_feed(c.role.id).await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::NotFound));

    // Bad calendars and URLs are refused with the reason.
    for req in [
        ImportScheduleRequest {
            ics: Some("BEGIN:VCARD\r\nEND:VCARD\r\n".into()),
            url: None,
            days: None,
            subscribe: false,
        },
        ImportScheduleRequest {
            ics: None,
            url: Some("file:///etc/passwd".into()),
            days: None,
            subscribe: false,
        },
        ImportScheduleRequest {
            ics: None,
            url: Some(format!("http://{addr}/missing.ics")),
            days: None,
            subscribe: false,
        },
        ImportScheduleRequest {
            ics: Some(ics),
            url: None,
            days: Some(400),
            subscribe: false,
        },
        ImportScheduleRequest {
            ics: Some("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".into()),
            url: None,
            days: None,
            subscribe: true,
        },
    ] {
        let e = admin
            .client
            .import_schedule(c.role.id, &req)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Validation), "{req:?}: {e}");
    }
}

async fn break_glass_needs_a_reason_expires_and_is_reported(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let mut admin = t.setup_org("mercy").await;
    let mut policy = admin.client.policy().await.unwrap();
    policy.routing.break_glass_minutes = 5;
    admin.client.set_policy(&policy).await.unwrap();
    let ana = t.user_with_role(&admin, Role::Physician).await;
    let ben = t.user_with_role(&admin, Role::Nurse).await;
    let dana = t.user_with_role(&admin, Role::Physician).await;
    let auditor = t.user_with_role(&admin, Role::ComplianceOfficer).await;
    let frank = t.user_with_role(&admin, Role::Physician).await;
    let renal = admin.client.create_department("Renal").await.unwrap();
    admin
        .client
        .create_clinical_role(&CreateRoleRequest {
            name: "Renal registrar".into(),
            department_id: Some(renal.id),
            fallback_role_id: None,
            holders: vec![frank.user.id],
            escalation: None,
        })
        .await
        .unwrap();
    let team = admin
        .client
        .create_care_team(&CreateCareTeamRequest {
            name: "Bed 4 team".into(),
            department_id: Some(renal.id),
            members: vec![ana.user.id, ben.user.id],
        })
        .await
        .unwrap();
    let devices = Devices::new();
    let mut a = devices.of(&ana, "Ana's phone").await;
    let mut b = devices.of(&ben, "Ben's phone").await;
    let mut d = devices.of(&dana, "Dana's phone").await;
    let patient = "MRN-55501";
    let conv = a
        .create(&CreateConversationRequest {
            kind: ConversationKind::Group,
            title: Some("Bed 4".into()),
            members: vec![ben.user.id],
            patient_ref: Some(patient.into()),
            care_team_id: Some(team.id),
        })
        .await
        .unwrap()
        .id;
    b.sync().await.unwrap();
    a.send(
        conv,
        MessageContent::text("PLAINTEXT-CANARY K+ 6.1"),
        Priority::Routine,
    )
    .await
    .unwrap();

    // Dana is not on the care team: without a reason (or with a token one),
    // she is refused, and the refusal is audited.
    for reason in [None, Some("because".to_owned())] {
        let e = dana
            .client
            .open_patient(&OpenPatientRequest {
                patient_ref: patient.into(),
                reason,
            })
            .await
            .unwrap_err();
        // A code of its own: a client asks for the reason, rather than
        // telling her she may not.
        assert_eq!(e.code(), Some(ErrorCode::BreakGlassReasonRequired));
        assert!(e.to_string().contains("reason"), "{e}");
    }
    assert!(
        d.api.conversation(conv).await.is_err(),
        "no access without break-glass"
    );
    let log = actions(&t).await;
    assert!(
        log.iter()
            .any(|(a, o, _, _)| a == "patient.open" && o != "success"),
        "the refusal is on the trail"
    );

    // Issue 18, item 8: the front desk may not break the glass at all, with
    // any reason; the organisation's clinical roles may.
    let desk = t.user_with_role(&admin, Role::FrontDesk).await;
    let e = desk
        .client
        .open_patient(&OpenPatientRequest {
            patient_ref: patient.into(),
            reason: Some("Patient's daughter called asking for an update".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    assert!(e.to_string().contains("may not break the glass"), "{e}");

    // With a reason: time-limited membership, the compliance officer is told.
    let reason = "Covering cardiac arrest in bed 4, primary team unreachable";
    let access = dana
        .client
        .open_patient(&OpenPatientRequest {
            patient_ref: patient.into(),
            reason: Some(reason.into()),
        })
        .await
        .unwrap();
    let grant = access
        .grants
        .iter()
        .find(|g| g.conversation_id == conv)
        .unwrap()
        .clone();
    assert_eq!(grant.expires_at - grant.granted_at, 300);
    assert!(
        access
            .conversations
            .iter()
            .any(|c| c.conversation_id == conv && c.via == AccessVia::BreakGlass)
    );
    // Ana's device commits Dana's device in and shares its recent messages
    // again (MLS gives Dana nothing from before she joined); Ben's has none.
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    d.sync().await.unwrap();
    assert_eq!(texts(&d, conv), vec!["PLAINTEXT-CANARY K+ 6.1".to_owned()]);
    a.send(
        conv,
        MessageContent::text("thanks, Dana"),
        Priority::Routine,
    )
    .await
    .unwrap();
    d.sync().await.unwrap();
    let both = vec![
        "PLAINTEXT-CANARY K+ 6.1".to_owned(),
        "thanks, Dana".to_owned(),
    ];
    assert_eq!(texts(&d, conv), both);
    b.sync().await.unwrap();
    assert_eq!(texts(&b, conv), both, "members keep one copy");
    let note = auditor.client.notifications().await.unwrap();
    assert!(
        note.notifications.iter().any(|n| n.kind == "break_glass"
            && n.subject == dana.user.id
            && n.detail.contains(&grant.id.to_string())
            && !n.detail.contains(patient)),
        "{note:?}"
    );
    let grants = auditor.client.break_glass_grants().await.unwrap();
    assert_eq!(grants.grants[0].reason.as_deref(), Some(reason));
    let denied = dana.client.break_glass_grants().await.unwrap_err();
    assert_eq!(denied.code(), Some(ErrorCode::Forbidden));
    // Her own, while it runs, with her reason (her app's banner); nobody else's.
    let mine = dana.client.own_break_glass_grants().await.unwrap();
    assert_eq!(mine.grants.len(), 1);
    assert_eq!(
        (mine.grants[0].id, mine.grants[0].reason.as_deref()),
        (grant.id, Some(reason))
    );
    assert!(
        ben.client
            .own_break_glass_grants()
            .await
            .unwrap()
            .grants
            .is_empty()
    );
    let log = actions(&t).await;
    assert!(has_action(&log, "break_glass.grant", &grant.id.to_string()));

    // Ben, on the care team, opens it without break-glass (already a member).
    let ben_access = ben
        .client
        .open_patient(&OpenPatientRequest {
            patient_ref: patient.into(),
            reason: None,
        })
        .await
        .unwrap();
    assert!(ben_access.grants.is_empty());

    // Five minutes on, the grant ends: Dana leaves the conversation.
    t.clock.advance(301);
    until("the grant to end", async || {
        let g = auditor.client.break_glass_grants().await.unwrap();
        g.grants[0].ended_at.is_some().then_some(())
    })
    .await;
    let c = a.api.conversation(conv).await.unwrap();
    assert!(!c.members.contains(&dana.user.id));
    // A member's device commits her device out of the group; her device
    // learns from that commit that it is out (its copy closes).
    a.sync().await.unwrap();
    d.sync().await.unwrap();
    assert!(
        d.core.conversations[&conv].closed,
        "her device knows it is out"
    );
    let e = d.api.conversation(conv).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    assert!(
        d.api
            .own_break_glass_grants()
            .await
            .unwrap()
            .grants
            .is_empty(),
        "ended: no banner"
    );
    let log = actions(&t).await;
    assert!(has_action(
        &log,
        "break_glass.expire",
        &grant.id.to_string()
    ));

    // A care-team member who is not yet in the thread joins it by the team.
    admin.client = t.sign_in_as_device(&admin, admin.device_id).await;
    let eve = t.user_with_role(&admin, Role::Nurse).await;
    admin
        .client
        .add_team_member(team.id, eve.user.id)
        .await
        .unwrap();
    let eve_access = eve
        .client
        .open_patient(&OpenPatientRequest {
            patient_ref: patient.into(),
            reason: None,
        })
        .await
        .unwrap();
    assert_eq!(eve_access.conversations[0].via, AccessVia::CareTeam);
    // So does someone holding a clinical role in the team's department.
    let frank_access = frank
        .client
        .open_patient(&OpenPatientRequest {
            patient_ref: patient.into(),
            reason: None,
        })
        .await
        .unwrap();
    assert_eq!(frank_access.conversations[0].via, AccessVia::Department);
    assert!(frank_access.grants.is_empty());
    assert!(
        a.api
            .conversation(conv)
            .await
            .unwrap()
            .members
            .contains(&eve.user.id)
    );
}

async fn a_waiting_stat_is_handed_over_at_shift_change(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("mercy").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let day = t.user_with_role(&admin, Role::Physician).await;
    let night = t.user_with_role(&admin, Role::Physician).await;
    let carla = t.user_with_role(&admin, Role::Nurse).await;
    let c = cardiology(&admin, &carla, vec![step(1800, EscalationAction::Renotify)]).await;
    let now = t.now();
    for (who, from, to) in [
        (&day, now - 3600, now + 60),
        (&night, now + 60, now + 12 * 3600),
    ] {
        admin
            .client
            .create_shift(
                c.role.id,
                &CreateShiftRequest {
                    user_id: who.user.id,
                    backup_user_id: None,
                    starts_at: from,
                    ends_at: to,
                },
            )
            .await
            .unwrap();
    }
    let devices = Devices::new();
    let mut n = devices.of(&nurse, "nurse station").await;
    let mut d = devices.of(&day, "day phone").await;
    let mut nt = devices.of(&night, "night phone").await;
    let page = n.page(c.role.id, None).await.unwrap();
    assert_eq!(page.resolved_to.user_id, day.user.id);
    let conv = page.conversation.id;
    let text = "PLAINTEXT-CANARY STAT bed 9 rapid AF";
    let stat = n
        .send(conv, MessageContent::text(text), Priority::Stat)
        .await
        .unwrap();
    d.sync().await.unwrap();

    // 19:00: the night shift takes over while the STAT still waits.
    t.clock.advance(61);
    let e = until("the hand-off", async || {
        let e = n.api.escalation(conv, stat).await.unwrap();
        (!e.events.is_empty() && e.notified.len() == 2).then_some(e)
    })
    .await;
    assert_eq!(e.events[0].action, EscalationAction::Handoff);
    assert_eq!(e.events[0].users, vec![night.user.id]);
    assert_eq!(e.notified, vec![day.user.id, night.user.id]);
    assert_eq!(e.state, EscalationState::Open, "the ladder goes on");
    assert_eq!(e.next_action, Some(EscalationAction::Renotify));
    n.sync().await.unwrap(); // commits the night doctor in, shares the STAT again
    let events = nt.sync().await.unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Alert { alert, .. }
            if alert.action == EscalationAction::Handoff && alert.message_id == stat)),
        "{events:?}"
    );
    assert_eq!(texts(&nt, conv), vec![text.to_owned()]);
    let held = nt.core.conversations[&conv].messages[0].clone();
    assert_eq!((held.id, held.priority), (stat, Priority::Stat));
    let e = nt.acknowledge(conv, held.id).await.unwrap();
    assert_eq!(e.acknowledged_by, Some(night.user.id));

    // The sender recalls it: the copy shared with the night doctor goes too,
    // on the device that holds it and for one that has not fetched it yet.
    let (api, dev) = t.sign_in_device(&night).await;
    let mut nt2 = devices.open(api, night.user.id, dev, "night tablet").await;
    n.recall(conv, stat).await.unwrap();
    nt.sync().await.unwrap();
    let gone = &nt.core.conversations[&conv].messages[0];
    assert!(gone.recalled_at.is_some() && gone.content.text.is_empty());
    for chat in [&mut n, &mut d, &mut nt, &mut nt2] {
        chat.sync().await.unwrap();
    }
    assert!(
        texts(&nt2, conv).iter().all(|x| x.is_empty()),
        "{:?}",
        texts(&nt2, conv)
    );
    let pool = sqlx::AnyPool::connect(&t.config.database_url.clone().unwrap())
        .await
        .unwrap();
    let (copies, left): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) - COUNT(recalled_at) FROM messages WHERE shared_again = $1",
    )
    .bind(stat.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((copies, left), (1, 0), "one copy, recalled");
}

/// A STAT after an open urgent message starts its own (faster) ladder.
async fn urgent_never_downgrades_a_stat(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("mercy").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let doc = t.user_with_role(&admin, Role::Physician).await;
    let devices = Devices::new();
    let mut n = devices.of(&nurse, "nurse station").await;
    let mut d = devices.of(&doc, "doc phone").await;
    let conv = crate::common::group(&mut n, &[doc.user.id], None).await;
    d.sync().await.unwrap();
    let urgent = n
        .send(conv, MessageContent::text("K+ 5.9"), Priority::Urgent)
        .await
        .unwrap();
    let stat = n
        .send(conv, MessageContent::text("now VT"), Priority::Stat)
        .await
        .unwrap();
    let e = n.api.escalation(conv, stat).await.unwrap();
    assert_eq!(e.state, EscalationState::Open, "{e:?}");
    assert_eq!(e.merged_into, None);
    assert_eq!(e.next_at, Some(e.created_at + 120), "the STAT ladder");
    let e = n.api.escalation(conv, urgent).await.unwrap();
    assert_eq!(e.next_at, Some(e.created_at + 600), "the urgent ladder");
}

/// A real-world calendar (`fixtures/realworld/`) moved `weeks` weeks
/// on, so that its dates stay ahead of the clock and keep their weekdays,
/// with the demo people's addresses replaced by this test's.
fn moved_on(ics: &str, weeks: i64, people: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(ics.len());
    let mut rest = ics;
    // Every 8-digit date after ':', '=' or ',' (DTSTART, UNTIL, RECURRENCE-ID…).
    while let Some(i) = rest.find([':', '=', ',']) {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 8 && rest.starts_with("20") {
            let d = jiff::civil::Date::strptime("%Y%m%d", &rest[..8]).unwrap();
            let moved = d.checked_add(jiff::Span::new().weeks(weeks)).unwrap();
            out.push_str(&moved.strftime("%Y%m%d").to_string());
            rest = &rest[8..];
        }
    }
    out.push_str(rest);
    people
        .iter()
        .fold(out, |text, (demo, real)| text.replace(demo, real))
}

/// Issue 19, cases 01 and 04: a swapped, a moved and a cancelled night of a
/// series (RECURRENCE-ID), and shifts cancelled or removed upstream, as
/// scheduling tools export them; overlapping shifts resolved by rule.
async fn calendar_changes_upstream_change_who_is_on_call(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    // The fixtures' 2026-11-30, 12:00 UTC, 209 weeks on (2030-12-02, a Monday).
    const WEEKS: i64 = 209;
    let base = 1_796_040_000 + WEEKS * 7 * 86_400;
    assert!(
        t.now() < base,
        "the fixtures' dates must stay in the future"
    );
    t.clock.advance(base - t.now());
    let day = |d: i64| base + d * 86_400 - 12 * 3600; // midnight UTC of 30 Nov + d
    let mut admin = t.setup_org("riverside").await;
    let physician = t.user_with_role(&admin, Role::Physician).await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let assistant = t.user_with_role(&admin, Role::Nurse).await;
    let people = [
        (
            "physician@demo.wardline.test",
            physician.user.email.as_str(),
        ),
        ("nurse@demo.wardline.test", nurse.user.email.as_str()),
        (
            "medical.assistant@demo.wardline.test",
            assistant.user.email.as_str(),
        ),
    ];
    let role = async |admin: &Actor, name: &str| {
        admin
            .client
            .create_clinical_role(&CreateRoleRequest {
                name: name.into(),
                department_id: None,
                fallback_role_id: None,
                holders: vec![],
                escalation: None,
            })
            .await
            .unwrap()
            .id
    };
    let import = async |admin: &Actor, role: Uuid, fixture: &str| {
        admin
            .client
            .import_schedule(
                role,
                &ImportScheduleRequest {
                    ics: Some(moved_on(fixture, WEEKS, &people)),
                    url: None,
                    days: Some(60),
                    subscribe: false,
                },
            )
            .await
            .unwrap()
    };
    let shifts = async |admin: &Actor, role: Uuid| {
        let list = admin
            .client
            .shifts(role, base, base + 60 * 86_400)
            .await
            .unwrap();
        list.shifts
            .into_iter()
            .map(|s| {
                (
                    s.starts_at - day(0),
                    s.ends_at - s.starts_at,
                    s.user_id,
                    s.backup_user_id,
                )
            })
            .collect::<Vec<_>>()
    };
    const H: i64 = 3600;

    // Case 01: eight Tuesday nights 19:00–07:00 Chicago (01:00Z–13:00Z), one
    // swapped to the nurse, one starting at 21:00, one cancelled.
    let nights = role(&admin, "RW nights").await;
    let r = import(
        &admin,
        nights,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/01-swap.ics"
        )),
    )
    .await;
    assert!(r.problems.is_empty() && r.warnings.is_empty(), "{r:?}");
    assert_eq!((r.events, r.shifts), (4, 7));
    let (p, n, ma) = (physician.user.id, nurse.user.id, Some(assistant.user.id));
    let night = |d: i64, at: i64, who| (d * 86_400 + at, 12 * H, who, ma);
    assert_eq!(
        shifts(&admin, nights).await,
        [
            night(2, H, p),
            night(9, H, n),
            night(16, 3 * H, p),
            night(30, H, p),
            night(37, H, p),
            night(44, H, p),
            night(51, H, p),
        ]
    );
    // Case 04: the 12 December weekend cancelled upstream (STATUS:CANCELLED)…
    let weekend = (24 * H, p, None);
    let nephrology = role(&admin, "RW nephrology").await;
    let v1 = import(
        &admin,
        nephrology,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/04-v1.ics"
        )),
    )
    .await;
    assert_eq!(v1.shifts, 2);
    let cancelled = import(
        &admin,
        nephrology,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/04-v2-cancelled.ics"
        )),
    )
    .await;
    assert_eq!(
        (cancelled.shifts, cancelled.replaced, cancelled.removed),
        (1, 2, 1),
        "{cancelled:?}"
    );
    assert_eq!(
        shifts(&admin, nephrology).await,
        [(5 * 86_400 + 14 * H, weekend.0, weekend.1, weekend.2)]
    );
    // …or left out of the next export, and given to someone else under a new UID.
    let dropped_role = role(&admin, "RW nephrology 2").await;
    import(
        &admin,
        dropped_role,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/04-v1.ics"
        )),
    )
    .await;
    let dropped = import(
        &admin,
        dropped_role,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/04-v2-dropped.ics"
        )),
    )
    .await;
    assert_eq!((dropped.shifts, dropped.removed), (2, 1), "{dropped:?}");
    assert!(dropped.warnings.is_empty(), "{dropped:?}");
    assert_eq!(
        shifts(&admin, dropped_role).await,
        [
            (5 * 86_400 + 14 * H, 24 * H, p, None),
            (12 * 86_400 + 14 * H, 24 * H, assistant.user.id, None),
        ]
    );

    // Two shifts covering the same time: warned at import, and resolved by
    // the stated rule (a shift entered by hand wins at equal starts).
    let both = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/realworld/04-v1.ics"
    ))
    .replacen(
        "DTSTART;TZID=America/Chicago:20261212",
        "DTSTART;TZID=America/Chicago:20261205",
        1,
    )
    .replacen(
        "DTEND;TZID=America/Chicago:20261213",
        "DTEND;TZID=America/Chicago:20261206",
        1,
    );
    let overlap_role = role(&admin, "RW overlap").await;
    let r = import(&admin, overlap_role, &both).await;
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    assert!(r.warnings[0].reason.contains("start together"), "{r:?}");
    t.clock.advance(day(5) + 15 * H - t.now());
    admin.client = t.sign_in_as_device(&admin, admin.device_id).await;
    let imported_choice = admin
        .client
        .on_call(overlap_role)
        .await
        .unwrap()
        .primary
        .unwrap()
        .user_id;
    for _ in 0..3 {
        let again = admin.client.on_call(overlap_role).await.unwrap();
        assert_eq!(
            again.primary.unwrap().user_id,
            imported_choice,
            "never by chance"
        );
    }
    admin
        .client
        .create_shift(
            overlap_role,
            &CreateShiftRequest {
                user_id: assistant.user.id,
                backup_user_id: None,
                starts_at: day(5) + 14 * H,
                ends_at: day(6) + 14 * H,
            },
        )
        .await
        .unwrap();
    let by_hand = admin.client.on_call(overlap_role).await.unwrap();
    assert_eq!(by_hand.primary.unwrap().user_id, assistant.user.id);

    // During the swapped night the nurse is on call, every time.
    t.clock.advance(day(9) + 2 * H - t.now());
    admin.client = t.sign_in_as_device(&admin, admin.device_id).await;
    for _ in 0..3 {
        let on = admin.client.on_call(nights).await.unwrap();
        assert_eq!(on.primary.unwrap().user_id, n);
    }
}

/// Issue 18, item 6: a ladder whose steps reach nobody (no backup on shift,
/// no fallback role, nobody with a phone) does not count them as done: each
/// is recorded as reaching nobody, the next runs at once, and when the ladder
/// runs out the sender is told — a clinical-safety event, audited and in the
/// report.
async fn a_ladder_that_reaches_nobody_tells_the_sender(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let mut admin = t.setup_org("mercy").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let ana = t.user_with_role(&admin, Role::Physician).await;
    // The department's lead is told when the ladder runs out (policy
    // `routing.unanswered_to_department`, on by default).
    let lead = t.user_with_role(&admin, Role::Physician).await;
    let dept = admin.client.create_department("Radiology").await.unwrap();
    admin
        .client
        .create_clinical_role(&CreateRoleRequest {
            name: "Radiology lead".into(),
            department_id: Some(dept.id),
            fallback_role_id: None,
            holders: vec![lead.user.id],
            escalation: None,
        })
        .await
        .unwrap();
    let role = admin
        .client
        .create_clinical_role(&CreateRoleRequest {
            name: "Night radiology".into(),
            department_id: Some(dept.id),
            fallback_role_id: None,
            holders: vec![ana.user.id],
            escalation: Some(EscalationPolicy {
                stat: vec![
                    step(60, EscalationAction::Backup),
                    step(600, EscalationAction::FallbackRole),
                    step(1200, EscalationAction::Sms),
                ],
                urgent: vec![],
            }),
        })
        .await
        .unwrap();
    let devices = Devices::new();
    let mut n = devices.of(&nurse, "nurse station").await;
    let mut l = devices.of(&lead, "lead's phone").await;
    let page = n.page(role.id, None).await.unwrap();
    assert_eq!(page.resolved_to.user_id, ana.user.id);
    let conv = page.conversation.id;
    let stat = n
        .send(
            conv,
            MessageContent::text("STAT read my CT"),
            Priority::Stat,
        )
        .await
        .unwrap();
    // A minute on: no backup on shift and no fallback role — those steps
    // reach nobody, are recorded so, and the next runs at once (not at 10 and
    // 20 minutes): the text to Ana's phone, the last step.
    t.clock.advance(61);
    let e = until("the ladder to run out", async || {
        let e = n.api.escalation(conv, stat).await.unwrap();
        (e.state == EscalationState::Exhausted && e.events.len() == 3).then_some(e)
    })
    .await;
    assert!(
        e.events[0].users.is_empty() && e.events[1].users.is_empty(),
        "{e:?}"
    );
    assert_eq!(e.events[2].users, vec![ana.user.id], "{e:?}");
    assert!(
        e.events[2].at - e.created_at < 120,
        "not at its own time: {e:?}"
    );
    assert_eq!(e.notified, vec![ana.user.id]);
    // The sender is told at once.
    let told = until("the sender to be told", async || {
        let events = n.sync().await.unwrap();
        events.into_iter().find_map(|x| match x {
            Event::Alert { alert, .. } if alert.action == EscalationAction::Unanswered => {
                Some(alert)
            }
            _ => None,
        })
    })
    .await;
    assert_eq!(told.message_id, stat);
    assert!(told.text.contains("nobody acknowledged"), "{told:?}");
    let events = l.sync().await.unwrap();
    assert!(
        events.iter().any(|x| matches!(x, Event::Alert { alert, .. }
            if alert.action == EscalationAction::Unanswered && alert.message_id == stat)),
        "the department's lead is told: {events:?}"
    );
    assert!(has_action(
        &actions(&t).await,
        "routing.escalation.unanswered",
        &stat.to_string()
    ));
    admin.client = t.sign_in_as_device(&admin, admin.device_id).await;
    let report = admin
        .client
        .response_report(t.now() - 3600, t.now() + 1)
        .await
        .unwrap();
    assert_eq!(report.unanswered.len(), 1, "{report:?}");
    assert_eq!(report.unanswered[0].message_id, stat);
    let by_role = report
        .by_role
        .iter()
        .find(|r| r.id == Some(role.id))
        .unwrap();
    assert_eq!(by_role.unanswered, 1);
}

both_backends!(
    urgent_never_downgrades_a_stat,
    a_waiting_stat_is_handed_over_at_shift_change,
    stat_page_escalates_across_a_restart_and_stops_when_acknowledged,
    paging_follows_presence_and_falls_back,
    ical_schedule_with_recurrence_and_time_zones,
    calendar_changes_upstream_change_who_is_on_call,
    a_ladder_that_reaches_nobody_tells_the_sender,
    break_glass_needs_a_reason_expires_and_is_reported,
);
