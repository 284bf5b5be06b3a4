//! The analytics report (`GET /api/v1/reports/activity`, issue 23) on both
//! engines: two days of real activity (a care team's messages, a STAT page
//! acknowledged after it was read, one left unanswered, sign-ins) give the
//! expected counts and percentiles, and SQLite and PostgreSQL give the same
//! report for the same activity.

use wardline_client::core::MessageContent;
use wardline_proto::Role;
use wardline_proto::messaging::{ConversationKind, CreateConversationRequest, Priority};
use wardline_proto::reports::{ActivityReport, DailySeries};
use wardline_proto::routing::*;

use crate::common::*;
use crate::routing::{Cardiology, cardiology};

const DAY: i64 = 86_400;

fn series<'a>(all: &'a [DailySeries], name: &str) -> &'a [i64] {
    &all.iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no series {name} in {all:?}"))
        .counts
}

/// Two UTC days of activity; the report with the test clock's `now` at the
/// end, and the first day's number.
async fn seeded(backend: Backend) -> Option<(ActivityReport, i64)> {
    let t = TestServer::start(backend).await?;
    // Start at the beginning of a UTC day, with sessions that outlive a
    // night (the test moves the clock by hours).
    let now = t.now();
    t.clock.advance(DAY - now.rem_euclid(DAY) + 8 * 3600);
    let admin = t.create_org("reports").await;
    let mut policy = admin.client.policy().await.unwrap();
    policy.idle_timeout_secs = DAY;
    policy.absolute_lifetime_secs = 7 * DAY;
    admin.client.set_policy(&policy).await.unwrap();
    // A session keeps the idle limit it began with: a new one for the report.
    let reader = t.sign_in_mfa(&admin).await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let physician = t.user_with_role(&admin, Role::Physician).await;
    let Cardiology { role, dept, .. } = cardiology(&admin, &nurse, vec![]).await;
    let team = admin
        .client
        .create_care_team(&CreateCareTeamRequest {
            name: "Bed 4 team".into(),
            department_id: Some(dept.id),
            members: vec![nurse.user.id, physician.user.id],
        })
        .await
        .unwrap();
    let devices = Devices::new();
    let mut n = devices.of(&nurse, "nurse station").await;
    let mut p = devices.of(&physician, "physician's phone").await;
    let first_day = t.now() / DAY;

    // Day 1: three routine messages in the care team's conversation (two by
    // the physician, one by the nurse), and a STAT page to the on-call role
    // (the nurse holds its fallback) shown to her after 2 minutes and acknowledged
    // after 5.
    let bed4 = p
        .create(&CreateConversationRequest {
            kind: ConversationKind::Group,
            title: Some("Bed 4".into()),
            members: vec![nurse.user.id],
            patient_ref: Some("MRN-1".into()),
            care_team_id: Some(team.id),
        })
        .await
        .unwrap()
        .id;
    for text in ["Labs are back", "Family at 4"] {
        p.send(bed4, MessageContent::text(text), Priority::Routine)
            .await
            .unwrap();
    }
    n.sync().await.unwrap();
    n.send(bed4, MessageContent::text("Noted"), Priority::Routine)
        .await
        .unwrap();
    let page = p.page(role.id, None).await.unwrap();
    let conv = page.conversation.id;
    let stat = p
        .send(conv, MessageContent::text("STAT bed 4"), Priority::Stat)
        .await
        .unwrap();
    t.clock.advance(120);
    n.sync().await.unwrap();
    n.mark_shown(conv, &[stat]).await.unwrap();
    t.clock.advance(180);
    n.api.acknowledge(conv, stat).await.unwrap();

    // Day 2: an urgent message nobody acknowledges.
    t.clock.advance(20 * 3600);
    p.sync().await.unwrap();
    p.send(
        conv,
        MessageContent::text("Urgent: bed 4 again"),
        Priority::Urgent,
    )
    .await
    .unwrap();
    t.clock.advance(600);
    let report = reader
        .get_json::<ActivityReport>(&format!(
            "/api/v1/reports/activity?since={}&until={}",
            first_day * DAY,
            t.now() + 1
        ))
        .await
        .unwrap();
    Some((report, first_day))
}

async fn activity_report(backend: Backend) {
    let Some((r, _)) = seeded(backend).await else {
        return;
    };
    assert_eq!(r.days.len(), 2, "{:?}", r.days);
    // Application messages: day 1 the three in Bed 4 and the STAT, day 2
    // the urgent one; by the sender's staff role.
    assert_eq!(series(&r.messages_by_role, "physician"), [3, 1]);
    assert_eq!(series(&r.messages_by_role, "nurse"), [1, 0]);
    assert_eq!(series(&r.messages_by_department, "Cardiology"), [4, 1]);
    assert_eq!(series(&r.escalations, "STAT"), [1, 0]);
    assert_eq!(series(&r.escalations, "Urgent"), [0, 1]);
    assert_eq!(series(&r.escalations, "Unacknowledged"), [0, 1]);
    // The STAT: read after 120 s, acknowledged after 300 s.
    let on_call = r
        .responses_by_role
        .iter()
        .find(|s| s.name == "Cardiology on-call")
        .unwrap_or_else(|| panic!("{:?}", r.responses_by_role));
    assert_eq!(on_call.messages, 2);
    assert_eq!(on_call.acknowledged, 1);
    assert_eq!(on_call.median_read_secs, Some(120));
    assert_eq!(on_call.median_ack_secs, Some(300));
    assert_eq!(on_call.p90_ack_secs, Some(300));
    let cardiology = r
        .responses_by_department
        .iter()
        .find(|s| s.name == "Cardiology")
        .unwrap();
    assert_eq!(cardiology.messages, 2);
    // Everyone signed in on day 1: the administrator, the nurse, the physician.
    assert_eq!(series(&r.active, "Users")[0], 3);
    assert!(
        series(&r.patient_texting, "Texts sent")
            .iter()
            .all(|&n| n == 0)
    );

    // A range past a year, or backwards, is refused.
    let t = TestServer::start(backend).await.unwrap();
    let admin = t.create_org("reports-bad").await;
    for q in ["since=100&until=50", "since=0&until=40000000"] {
        let err = admin
            .client
            .get_json::<ActivityReport>(&format!("/api/v1/reports/activity?{q}"))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(wardline_proto::ErrorCode::BadRequest),
            "{q}"
        );
    }
}

/// The same activity gives the same report on SQLite and PostgreSQL (its
/// days shifted to the same start: the servers' clocks differ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_agree_on_both_engines() {
    let Some((lite, _)) = seeded(Backend::Sqlite).await else {
        return;
    };
    let Some((pg, _)) = seeded(Backend::Postgres).await else {
        return;
    };
    let strip = |mut r: ActivityReport| {
        r.since = 0;
        r.until = 0;
        r.days.clear();
        r
    };
    assert_eq!(strip(lite), strip(pg));
}

both_backends!(activity_report);

/// `serve --demo` comes with a month of past activity, so the analytics
/// screen of a fresh demo is not empty (and nothing of it reaches a device).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_has_a_month_of_activity() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    wardline_server::demo::ensure_demo(&t.state, t.data_dir.path())
        .await
        .unwrap();
    let org = t
        .state
        .directory
        .org_by_slug(wardline_server::demo::DEMO_SLUG)
        .await
        .unwrap();
    let r = t
        .state
        .reports
        .activity(org.id, Default::default())
        .await
        .unwrap();
    let total = |all: &[DailySeries]| -> i64 { all.iter().flat_map(|s| s.counts.iter()).sum() };
    assert!(total(&r.messages_by_role) > 500, "{:?}", r.messages_by_role);
    assert!(total(&r.messages_by_department) > 300);
    assert!(series(&r.escalations, "Urgent").iter().sum::<i64>() > 20);
    assert!(
        series(&r.active, "Users")
            .iter()
            .filter(|&&n| n > 0)
            .count()
            >= 29
    );
    assert!(series(&r.patient_texting, "Opt-outs").iter().sum::<i64>() > 0);
    let on_call = r
        .responses_by_role
        .iter()
        .find(|s| s.name == "Cardiology on-call")
        .expect("pages to the on-call role");
    assert!(on_call.median_ack_secs.is_some_and(|s| s > 0));
    // Weekends are quieter than weekdays.
    let by_day: Vec<i64> = (0..r.days.len())
        .map(|i| r.messages_by_role.iter().map(|s| s.counts[i]).sum())
        .collect();
    assert!(by_day.iter().max() > by_day.iter().filter(|&&n| n > 0).min());
}
