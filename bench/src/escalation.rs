//! `escalation`: how punctually unacknowledged STAT messages escalate when
//! many are waiting. `pages` nurses each page one clinical role and send a
//! STAT (real MLS, through the server); the role's ladder re-notifies after
//! `after` seconds. The person on call watches their sync WebSocket, and each
//! alert's arrival is compared with the moment its step fell due (the
//! server's whole-second `created_at` plus `after`): lateness = arrival − due.
//! What is measured is the whole path: the durable job row, the 2-second
//! ticker, the lease, the step, the alert entry and its delivery.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use wardline_client::core::{Event, MessageContent};
use wardline_proto::messaging::Priority;
use wardline_proto::routing::*;

use super::*;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

pub async fn rows(
    name: &str,
    db: Option<String>,
    pages: usize,
    after: i64,
    rows: &mut Vec<String>,
) -> anyhow::Result<()> {
    eprintln!("bench: {name}: {pages} STAT pages, re-notify after {after} s");
    // user0: on call; user1: backup; user2..: the nurses paging.
    let (r, admin, email) = start(db, pages + 2).await?;
    let token = admin
        .login(&LoginRequest {
            org: "bench".into(),
            email,
            password: PASSWORD.into(),
            device_id: Uuid::new_v4(),
            device_token: None,
        })
        .await?
        .session
        .context("session")?
        .token;
    let admin = admin.with_token(Some(token));
    let users: HashMap<String, Uuid> = admin
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.email, u.id))
        .collect();
    let user = |i: usize| users[&format!("user{i}@bench.test")];
    let role = admin
        .create_clinical_role(&CreateRoleRequest {
            name: "Bench on-call".into(),
            department_id: None,
            fallback_role_id: None,
            holders: vec![],
            escalation: Some(EscalationPolicy {
                stat: vec![EscalationStep {
                    after_secs: after,
                    action: EscalationAction::Renotify,
                }],
                urgent: vec![],
            }),
        })
        .await?;
    let now = unix_now() as i64;
    admin
        .create_shift(
            role.id,
            &CreateShiftRequest {
                user_id: user(0),
                backup_user_id: Some(user(1)),
                starts_at: now - 60,
                ends_at: now + 6 * 3600,
            },
        )
        .await?;
    let dir = tempfile::tempdir()?;
    let mut on_call = messaging::device(&r.url, &r.ca, 0, dir.path()).await?;
    on_call.sync().await?;
    // The on-call device watches from the start; every alert's arrival is stamped.
    let arrivals: Arc<Mutex<Vec<(Uuid, f64)>>> = Arc::default();
    let seen = arrivals.clone();
    let watcher = tokio::spawn(async move {
        loop {
            let r = on_call
                .watch(|e| {
                    if let Event::Alert { alert, .. } = e
                        && alert.action == EscalationAction::Renotify
                    {
                        let mut seen = seen.lock().expect("arrivals lock");
                        seen.push((alert.message_id, unix_now()));
                        return seen.len() < pages;
                    }
                    true
                })
                .await;
            if seen.lock().expect("arrivals lock").len() >= pages {
                return r;
            }
            r?;
        }
    });

    // The pages: each nurse's STAT; its step falls due at the second it was
    // created plus `after`.
    let bar = indicatif::ProgressBar::new(pages as u64).with_style(
        indicatif::ProgressStyle::with_template("pages: {bar:30} {pos}/{len}, {elapsed}")?,
    );
    let started = Instant::now();
    let mut due: HashMap<Uuid, f64> = HashMap::new();
    for i in 0..pages {
        let mut nurse = messaging::device(&r.url, &r.ca, i + 2, dir.path()).await?;
        let page = nurse.page(role.id, None).await?;
        let id = nurse
            .send(
                page.conversation.id,
                MessageContent::text(format!("bench STAT {i}")),
                Priority::Stat,
            )
            .await?;
        let e = nurse.api.escalation(page.conversation.id, id).await?;
        due.insert(id, (e.created_at + after) as f64);
        bar.inc(1);
    }
    bar.finish();
    let seeding = started.elapsed();
    let wait = Duration::from_secs(after as u64 + 60);
    tokio::time::timeout(wait, watcher)
        .await
        .context("the re-notifications did not all arrive in time")???;
    let mut lateness: Vec<Duration> = arrivals
        .lock()
        .expect("arrivals lock")
        .iter()
        .filter_map(|(m, at)| {
            due.get(m)
                .map(|d| Duration::from_secs_f64((at - d).max(0.0)))
        })
        .collect();
    anyhow::ensure!(
        lateness.len() == pages,
        "{name}: {} of {pages} re-notifications arrived",
        lateness.len()
    );
    lateness.sort();
    rows.push(format!(
        "| {name} | {pages} pages + STATs sent at {:.1} /s; re-notify due at {after} s: alert arrival after the due second | — | {} | {} (max {}) |",
        pages as f64 / seeding.as_secs_f64().max(0.001),
        ms(percentile(&lateness, 0.5)),
        ms(percentile(&lateness, 0.99)),
        ms(*lateness.last().expect("one at least"))
    ));
    r.handle.shutdown();
    Ok(())
}
