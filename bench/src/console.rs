//! `cargo xtask bench console`: the administration console's heavy reads
//! (issue 23), over HTTP as the console sends them, on SQLite and
//! PostgreSQL:
//!
//! * audit search (`GET /api/v1/audit/events`, a page of 50) with each of
//!   the console's filters over a trail of `--audit-entries` entries
//!   (2,000 staff with a device each, 5,000 patients, a mix of actions,
//!   1 % refused and 1 % failed), a different value per request;
//! * the activity report (`GET /api/v1/reports/activity`) over `--days` of
//!   an organisation of `--users` staff (10 departments, each with a
//!   clinical role and a care team; about 4 messages a person a day, each
//!   delivered to two devices and mostly read; pages to the roles; a
//!   session a person a day), seeded as past activity.
//!
//! * the Users screen in Chromium with `--screen-users` people (SQLite
//!   only: the browser's side is the same on both): opening it, searching,
//!   scrolling (`bench/web/users.mjs`).
//!
//! Figures: p50 and p95 of `--runs` sequential requests each.

use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use uuid::Uuid;
use wardline_core::audit::NewEvent;
use wardline_proto::Role;
use wardline_proto::audit::{ActorKind, AuditAction, Outcome};
use wardline_proto::auth::LoginRequest;
use wardline_proto::directory::CreateUserRequest;
use wardline_proto::messaging::Priority;
use wardline_proto::routing::{CreateCareTeamRequest, CreateDepartmentRequest, CreateRoleRequest};
use wardline_store::reports::*;

use crate::{PASSWORD, Running, ms, percentile, start};

const DAY: i64 = 86_400;

/// The request path of a query's `i`th run.
type PathOf<'a> = Box<dyn Fn(usize) -> String + 'a>;

pub async fn main(
    pg: Option<String>,
    audit_entries: u64,
    users: usize,
    days: i64,
    runs: usize,
    screen_users: usize,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if screen_users > 0 {
        users_screen(screen_users, &mut rows).await?;
    }
    backend("SQLite", None, audit_entries, users, days, runs, &mut rows).await?;
    match pg {
        Some(pg) => {
            backend(
                "PostgreSQL",
                Some(pg),
                audit_entries,
                users,
                days,
                runs,
                &mut rows,
            )
            .await?
        }
        None => eprintln!(
            "bench: no PostgreSQL (--postgres or WARDLINE_TEST_POSTGRES_URL): SQLite only"
        ),
    }
    println!("| backend | request | p50 ms | p95 ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

/// Signs in `email` (MFA is off on the bench's server); its token.
async fn token(r: &Running, email: &str) -> anyhow::Result<String> {
    let client = wardline_client::ApiClient::new(&r.url, Some(&r.ca))?;
    let resp = client
        .login(&LoginRequest {
            org: "bench".into(),
            email: email.into(),
            password: PASSWORD.into(),
            device_id: Uuid::new_v4(),
            device_token: None,
        })
        .await?;
    Ok(resp.session.context("session")?.token)
}

/// `runs` sequential GETs of `path(i)`; their sorted latencies.
async fn measure(
    r: &Running,
    token: &str,
    runs: usize,
    path: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<Duration>> {
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&r.ca)?)
        .build()?;
    // One untimed request first: connection and TLS set up.
    http.get(format!("{}{}", r.url, path(0)))
        .bearer_auth(token)
        .send()
        .await?;
    let mut lat = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        let resp = http
            .get(format!("{}{}", r.url, path(i + 1)))
            .bearer_auth(token)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "{}: {status} {}",
            path(i + 1),
            String::from_utf8_lossy(&body)
        );
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok(lat)
}

fn row(name: &str, what: &str, lat: &[Duration]) -> String {
    format!(
        "| {name} | {what} | {} | {} | {} |",
        ms(percentile(lat, 0.5)),
        ms(percentile(lat, 0.95)),
        ms(*lat.last().expect("runs > 0"))
    )
}

const ACTIONS: [AuditAction; 6] = [
    AuditAction::ConversationView,
    AuditAction::MessageSubmit,
    AuditAction::UserView,
    AuditAction::SessionView,
    AuditAction::MessageSync,
    AuditAction::Login,
];

#[allow(clippy::too_many_arguments)]
async fn backend(
    name: &str,
    db: Option<String>,
    audit_entries: u64,
    users: usize,
    days: i64,
    runs: usize,
    rows: &mut Vec<String>,
) -> anyhow::Result<()> {
    eprintln!("bench: {name}: starting a server");
    let (r, _client, admin_email) = start(db, 0).await?;
    let state = r.state.clone();
    let org = state
        .directory
        .org_by_slug("bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let api = |e: wardline_core::error::ApiError| anyhow::anyhow!(e.message);
    state
        .directory
        .create_user(
            org.id,
            CreateUserRequest {
                email: "officer@bench.test".into(),
                display_name: "Bench Officer".into(),
                phone: None,
                roles: vec![Role::ComplianceOfficer],
                password: PASSWORD.into(),
                password_change_required: false,
            },
        )
        .await
        .map_err(api)?;

    // ---- Audit search -------------------------------------------------
    let staff: Vec<(Uuid, Uuid)> = (0..2000)
        .map(|_| (Uuid::new_v4(), Uuid::new_v4()))
        .collect();
    let patients: Vec<Uuid> = (0..5000).map(|_| Uuid::new_v4()).collect();
    eprintln!("bench: {name}: filling the audit trail with {audit_entries} entries");
    let filled = Instant::now();
    let marks = fill_audit(&state.audit, org.id, &staff, &patients, audit_entries).await?;
    eprintln!(
        "bench: {name}: filled in {:.0} s",
        filled.elapsed().as_secs_f64()
    );
    let officer = token(&r, "officer@bench.test").await?;
    let events = "/api/v1/audit/events?limit=50";
    let (mid_from, mid_to) = marks;
    let queries: Vec<(&str, PathOf)> = vec![
        (
            "newest page, no filter",
            Box::new(move |_| events.to_owned()),
        ),
        (
            "actor (one of 2,000 staff)",
            Box::new(|i| format!("{events}&actor={}", staff[i * 37 % staff.len()].0)),
        ),
        (
            "patient (one of 5,000)",
            Box::new(|i| format!("{events}&patient={}", patients[i * 101 % patients.len()])),
        ),
        (
            "device",
            Box::new(|i| format!("{events}&device={}", staff[i * 53 % staff.len()].1)),
        ),
        (
            "action (1 in 6)",
            Box::new(|i| format!("{events}&action={}", ACTIONS[i % ACTIONS.len()].as_str())),
        ),
        (
            "outcome denied (1 %)",
            Box::new(move |_| format!("{events}&outcome=denied")),
        ),
        (
            "time range (10 s in the middle)",
            Box::new(move |_| format!("{events}&from_ms={mid_from}&to_ms={mid_to}")),
        ),
        (
            "actor and time range",
            Box::new(|i| {
                format!(
                    "{events}&actor={}&from_ms={mid_from}&to_ms={mid_to}",
                    staff[i * 41 % staff.len()].0
                )
            }),
        ),
        (
            "a page half-way down (before_seq)",
            Box::new(move |i| format!("{events}&before_seq={}", audit_entries / 2 + i as u64)),
        ),
    ];
    for (what, path) in &queries {
        eprintln!("bench: {name}: audit search, {what}");
        let lat = measure(&r, &officer, runs, path).await?;
        rows.push(row(
            name,
            &format!("audit search over {audit_entries} entries: {what}"),
            &lat,
        ));
    }

    // ---- Activity report ---------------------------------------------
    eprintln!("bench: {name}: {users} staff and {days} days of activity");
    let seeded = Instant::now();
    seed_activity(&state, org.id, users, days).await?;
    eprintln!(
        "bench: {name}: seeded in {:.0} s",
        seeded.elapsed().as_secs_f64()
    );
    let admin = token(&r, &admin_email).await?;
    let now = state.routing.now();
    let since = now - days * DAY;
    let lat = measure(&r, &admin, runs, |_| {
        format!("/api/v1/reports/activity?since={since}")
    })
    .await?;
    rows.push(row(
        name,
        &format!("activity report, {days} days of {users} staff"),
        &lat,
    ));
    r.handle.shutdown();
    Ok(())
}

/// Appends `n` entries (64 producers, group commit); the time window of 10 s
/// around the middle entry (Unix ms).
async fn fill_audit(
    log: &wardline_core::audit::AuditLog,
    org: wardline_proto::OrgId,
    staff: &[(Uuid, Uuid)],
    patients: &[Uuid],
    n: u64,
) -> anyhow::Result<(i64, i64)> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = Arc::new(AtomicU64::new(0));
    let middle = Arc::new(std::sync::Mutex::new(0i64));
    let staff = Arc::new(staff.to_vec());
    let patients = Arc::new(patients.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (log, next, middle) = (log.clone(), next.clone(), middle.clone());
        let (staff, patients) = (staff.clone(), patients.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                if i == n / 2 {
                    *middle.lock().expect("lock") = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_millis() as i64;
                }
                let (user, device) =
                    staff[(i.wrapping_mul(2_654_435_761) % staff.len() as u64) as usize];
                let outcome = match i % 100 {
                    0 => Outcome::Denied,
                    1 => Outcome::Failure,
                    _ => Outcome::Success,
                };
                log.record(NewEvent {
                    org_id: Some(org),
                    actor_kind: ActorKind::User,
                    actor_id: Some(user.to_string()),
                    device_id: Some(device),
                    source_ip: Some("10.20.30.40".into()),
                    user_agent: Some("wardline-bench/1".into()),
                    action: ACTIONS[(i % ACTIONS.len() as u64) as usize],
                    target_type: Some("conversation".into()),
                    target_id: Some(Uuid::new_v4().to_string()),
                    patient_id: (i % 3 == 0).then(|| {
                        patients[(i.wrapping_mul(7919) % patients.len() as u64) as usize]
                            .to_string()
                    }),
                    outcome,
                    reason: (outcome != Outcome::Success).then(|| "forbidden".to_owned()),
                    changes: Vec::new(),
                })
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let m = *middle.lock().expect("lock");
    Ok((m - 5_000, m + 5_000))
}

/// `users` staff over 10 departments, `days` days of past activity.
async fn seed_activity(
    state: &wardline_server::AppState,
    org: wardline_proto::OrgId,
    users: usize,
    days: i64,
) -> anyhow::Result<()> {
    let api = |e: wardline_core::error::ApiError| anyhow::anyhow!(e.message);
    let roles_cycle = [
        Role::Nurse,
        Role::Nurse,
        Role::Physician,
        Role::MedicalAssistant,
        Role::FrontDesk,
    ];
    let mut staff = Vec::with_capacity(users);
    for i in 0..users {
        let u = state
            .directory
            .create_user(
                org,
                CreateUserRequest {
                    email: format!("staff{i}@bench.test"),
                    display_name: format!("Staff {i}"),
                    phone: None,
                    roles: vec![roles_cycle[i % roles_cycle.len()]],
                    password: PASSWORD.into(),
                    password_change_required: false,
                },
            )
            .await
            .map_err(api)?;
        staff.push((
            wardline_proto::UserId::from(u.id),
            wardline_proto::DeviceId::from(Uuid::new_v4()),
        ));
    }
    let mut units = Vec::new();
    for d in 0..10 {
        let dept = state
            .routing
            .create_department(
                org,
                CreateDepartmentRequest {
                    name: format!("Department {d}"),
                },
            )
            .await
            .map_err(api)?;
        let role = state
            .routing
            .create_role(
                org,
                CreateRoleRequest {
                    name: format!("Department {d} on-call"),
                    department_id: Some(dept.id),
                    fallback_role_id: None,
                    holders: vec![],
                    escalation: None,
                },
            )
            .await
            .map_err(api)?;
        let team = state
            .routing
            .create_team(
                org,
                CreateCareTeamRequest {
                    name: format!("Team {d}"),
                    department_id: Some(dept.id),
                    members: vec![],
                },
            )
            .await
            .map_err(api)?;
        units.push((dept.id, role.id, team.id));
    }
    let dek_id = state
        .store
        .get_user(org, staff[0].0)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .dek_id;
    let mut rng = rand::rngs::StdRng::seed_from_u64(90);
    let now = state.routing.now();
    let start = (now / DAY - days) * DAY;
    let mut h = ActivityHistory {
        dek_id,
        ..Default::default()
    };
    for (user, device) in &staff {
        h.devices.push(HistoryDevice {
            id: *device,
            user_id: *user,
            created_at: start,
        });
    }
    let mut convs = Vec::new();
    for (i, (_, role, team)) in units.iter().enumerate() {
        for (role_id, team_id) in [(None, Some(*team)), (Some(*role), None)] {
            let c = HistoryConversation {
                id: Uuid::new_v4(),
                created_by: staff[i].0,
                created_at: start,
                role_id,
                care_team_id: team_id,
            };
            convs.push(c.id);
            h.conversations.push(c);
        }
    }
    for d in 0..days {
        let day = start + d * DAY;
        for (k, (user, device)) in staff.iter().enumerate() {
            let unit = k % units.len();
            let (dept, role, _) = units[unit];
            let (team_conv, role_conv) = (convs[unit * 2], convs[unit * 2 + 1]);
            for _ in 0..rng.gen_range(2..7) {
                let at = day + rng.gen_range(0..DAY);
                let peers = [staff[(k + 10) % users], staff[(k + 20) % users]];
                let page = rng.gen_bool(0.03);
                h.messages.push(HistoryMessage {
                    id: Uuid::new_v4(),
                    conversation_id: if page { role_conv } else { team_conv },
                    sender_user: *user,
                    sender_device: *device,
                    priority: if page {
                        Priority::Urgent
                    } else {
                        Priority::Routine
                    },
                    created_at: at,
                    deliveries: peers
                        .iter()
                        .map(|p| {
                            (
                                p.1,
                                rng.gen_bool(0.85).then(|| at + rng.gen_range(10..3600)),
                            )
                        })
                        .collect(),
                    routing: page.then(|| HistoryRouting {
                        role_id: Some(role),
                        department_id: Some(dept),
                        escalations: rng.gen_range(0..3),
                        acknowledged: rng
                            .gen_bool(0.9)
                            .then(|| (peers[0].0, at + rng.gen_range(30..1800))),
                    }),
                });
            }
            let begun = day + rng.gen_range(0..DAY / 2);
            h.sessions.push(HistorySession {
                user_id: *user,
                device_id: *device,
                created_at: begun,
                last_seen_at: begun + rng.gen_range(600..DAY / 2),
            });
        }
        if rng.gen_bool(0.3) {
            h.opt_outs.push(day + rng.gen_range(0..DAY));
        }
    }
    eprintln!(
        "bench: {} messages, {} sessions to write",
        h.messages.len(),
        h.sessions.len()
    );
    state
        .history
        .import_history(org, &h)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The Users screen with `n` people, in Chromium.
async fn users_screen(n: usize, rows: &mut Vec<String>) -> anyhow::Result<()> {
    eprintln!("bench: SQLite: the Users screen with {n} people");
    let (r, _client, admin_email) = start(None, 0).await?;
    let org = r
        .state
        .directory
        .org_by_slug("bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Four at a time: password hashing is capped at two per core.
    let made = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (state, next) = (r.state.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n - 1 {
                    return Ok::<_, anyhow::Error>(());
                }
                state
                    .directory
                    .create_user(
                        org.id,
                        CreateUserRequest {
                            email: format!("person{i}@bench.test"),
                            display_name: format!("Person {i:04}"),
                            phone: None,
                            roles: vec![[Role::Nurse, Role::Physician, Role::FrontDesk][i % 3]],
                            password: PASSWORD.into(),
                            password_change_required: false,
                        },
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprintln!(
        "bench: {n} people added in {:.0} s",
        made.elapsed().as_secs_f64()
    );
    let cfg = serde_json::json!({
        "url": format!("{}/", r.url),
        "org": "bench",
        "email": admin_email,
        "password": PASSWORD,
        "people": n,
        "searches": ["Person 4", "Person 12", "person3", "Person 0999", "person49", "Person 42", "nobody", "Person 1", "Person 25", "Person 3333"],
    });
    let node = crate::node::NodeScript::start("users.mjs", &cfg, &r.ca)?;
    let m = node.result().await?;
    let f = |v: &serde_json::Value| v.as_f64().map_or("—".to_owned(), |x| format!("{x:.1}"));
    rows.push(format!(
        "| SQLite (Chromium) | Users screen, {n} people: opened until all are listed | {} | — | — |",
        f(&m["openMs"])
    ));
    rows.push(format!(
        "| SQLite (Chromium) | Users screen, {n} people: a search typed until the count changes | {} | {} | {} |",
        f(&m["search"]["p50"]),
        f(&m["search"]["p95"]),
        f(&m["search"]["max"])
    ));
    rows.push(format!(
        "| SQLite (Chromium) | Users screen, {n} people: a scrollbar jump until its rows are drawn ({} rows exist at most; heap {} MiB) | {} | {} | {} |",
        m["rowsAtOnce"],
        f(&m["heapMiB"]),
        f(&m["scroll"]["p50"]),
        f(&m["scroll"]["p95"]),
        f(&m["scroll"]["max"])
    ));
    r.handle.shutdown();
    Ok(())
}
