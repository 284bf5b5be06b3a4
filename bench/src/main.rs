//! Wardline benchmarks, run by `cargo xtask bench`.
//!
//! * `argon2`: cost of hashing and verifying one password with the production
//!   parameters (Argon2id, 19 MiB, 2 passes): the floor under every login.
//! * `login`: the password step of `POST /api/v1/auth/login` over HTTPS,
//!   sequential, on SQLite and on PostgreSQL.
//! * `requests`: authenticated `GET /api/v1/auth/session` (token lookup,
//!   idle check, user load) and `GET /api/v1/users` (plus PHI decryption of
//!   every user) with N concurrent clients, on SQLite and on PostgreSQL.
//!
//! * `audit`: durable audit appends per second through the group-committing
//!   writer (many concurrent producers) against one producer waiting for each
//!   commit, and the time `wardline audit verify` takes per entry, on SQLite
//!   and PostgreSQL.
//!
//! * `messaging` (see `messaging.rs`): MLS commit cost by group size, and a
//!   20-member conversation's message rate and delivery latency on both engines.
//!
//! Commands (each its own module), with the server as a separate process
//! (`process.rs`) so that its CPU and memory can be read and it can be killed:
//!
//! * `load`: simulated clients over WebSocket with real MLS (`load.rs`);
//! * `side-by-side`: the same room workload against Matrix Synapse (`synapse.rs`);
//! * `crash-loss`: SIGKILL under load, then exactly-once checks (`crash_loss.rs`).
//!
//! Client and server share this machine (loopback, TLS, HTTP/1.1 keep-alive),
//! so the figures are for the whole path on two cores, not server-only.

mod console;
mod crash_loss;
mod escalation;
mod load;
mod messaging;
mod node;
mod process;
mod push;
mod synapse;
mod web;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use uuid::Uuid;
use wardline_client::ApiClient;
use wardline_core::audit::verify::verify;
use wardline_core::audit::{AuditLog, NewEvent};
use wardline_core::clock::SystemClock;
use wardline_core::config::AuditConfig;
use wardline_core::credentials::password::Passwords;
use wardline_crypto::LocalKeyFile;
use wardline_proto::Role;
use wardline_proto::audit::{ActorKind, AuditAction, Outcome};
use wardline_proto::auth::{LoginRequest, SetupRequest};
use wardline_proto::directory::{CreateUserRequest, OrgPolicy};
use wardline_server::{Config, Server};
use wardline_store::AuditStore;
use wardline_store_sql::SqlStore;

const PASSWORD: &str = "lantern orbit mossy teacup";

#[derive(Parser)]
struct Args {
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Concurrent clients for the throughput measurements.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Sequential logins per backend.
    #[arg(long, default_value_t = 30)]
    logins: usize,
    /// PostgreSQL URL; defaults to $WARDLINE_TEST_POSTGRES_URL. Skipped if neither.
    #[arg(long, global = true)]
    postgres: Option<String>,
    /// Concurrent producers for the audit append measurements (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [64, 256, 1024])]
    audit_producers: Vec<usize>,
    /// Entries in the log that is verified (SQLite; PostgreSQL gets a fifth).
    #[arg(long, default_value_t = 1_000_000)]
    verify_entries: u64,
    /// Run only the messaging benchmarks (MLS commit cost, delivery).
    #[arg(long)]
    only_messaging: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// The administration console's heavy reads: audit search with each of
    /// its filters over a large trail, and the activity report over months
    /// of a large organisation, on both engines (`console.rs`).
    Console {
        /// Entries in the audit trail searched.
        #[arg(long, default_value_t = 1_000_000)]
        audit_entries: u64,
        /// Staff of the organisation whose activity is reported.
        #[arg(long, default_value_t = 500)]
        users: usize,
        /// Days of activity reported.
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// Requests per measured query.
        #[arg(long, default_value_t = 40)]
        runs: usize,
        /// People on the Users screen measured in Chromium (0: skip).
        #[arg(long, default_value_t = 5000)]
        screen_users: usize,
    },
    /// Web Push: a STAT message → the notification shown by a browser
    /// whose Wardline tab is closed, through a local push service (`push.rs`).
    Push {
        /// STAT messages sent.
        #[arg(long, default_value_t = 100)]
        pushes: usize,
        /// Messages per second.
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
    },
    /// The clinicians' web app in headless Chromium: load, transfer, PIN
    /// unlock, browser → browser delivery (`web.rs`).
    Web {
        /// Messages sent from one browser to the other.
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Messages per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Members of the conversation: the two browsers and simulated
        /// native devices (real MLS, on the sync socket) for the rest.
        #[arg(long, default_value_t = 2)]
        members: usize,
        /// Messages a simulated member writes into the conversation before
        /// the run (with `--members` above 2): the thread the second browser
        /// then opens, with the tab's memory read.
        #[arg(long, default_value_t = 0)]
        history: usize,
    },
    /// Kill -9 the server under continuous load, restart it, and check that
    /// nothing acknowledged was lost, duplicated or reordered.
    CrashLoss {
        /// SIGKILLs per backend.
        #[arg(long, default_value_t = 100)]
        kills: usize,
        /// Members of the conversation (each sends and receives).
        #[arg(long, default_value_t = 4)]
        members: usize,
    },
    /// Simulated clients over WebSocket with real MLS: rates, delivery
    /// latency, server CPU and memory, memory per idle WebSocket.
    Load {
        /// Simulated clients (devices), each its own user.
        #[arg(long, default_value_t = 200)]
        clients: usize,
        /// Conversation sizes, one phase each (divide the clients evenly).
        #[arg(long, value_delimiter = ',', default_values_t = [2, 20, 200])]
        sizes: Vec<usize>,
        /// Offered messages per second over all clients, per size (then a
        /// second phase as fast as the server accepts).
        #[arg(long, value_delimiter = ',', default_values_t = [200.0, 50.0, 5.0])]
        rates: Vec<f64>,
        /// Seconds of sending per phase.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Idle sync WebSockets to open at the end (0: skip).
        #[arg(long, default_value_t = 10_000)]
        idle_sockets: usize,
    },
    /// The same room workload against Wardline and Matrix Synapse (from
    /// PyPI, SQLite), with the ratios.
    SideBySide {
        /// Members of the room / conversation; each sends and receives.
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// Offered messages per second over all members, one phase each
        /// (then a phase as fast as each server accepts).
        #[arg(long, value_delimiter = ',', default_values_t = [10.0, 50.0])]
        rates: Vec<f64>,
        /// Seconds of sending per phase.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// STAT pages to one clinical role: how late the escalation's first step
    /// reaches the person on call when many wait at once (both engines).
    Escalation {
        /// Nurses paging (one STAT each), per run; one run per number.
        #[arg(long, value_delimiter = ',', default_values_t = [10, 200])]
        pages: Vec<usize>,
        /// Seconds after sending that the role's ladder re-notifies (15–86400).
        #[arg(long, default_value_t = 30)]
        after: i64,
    },
    /// The server process the other commands start (not for direct use).
    #[command(hide = true)]
    Server {
        #[arg(long)]
        data_dir: std::path::PathBuf,
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        database_url: Option<String>,
    },
}

struct Running {
    url: String,
    /// The server's services, for seeding in-process.
    state: wardline_server::AppState,
    ca: Vec<u8>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    listen: std::net::SocketAddr,
    database_url: Option<String>,
    dir: tempfile::TempDir,
}

async fn fresh_schema(base: &str) -> anyhow::Result<String> {
    Ok(wardline_store_sql::testing::fresh_postgres_schema(base, "wl_bench").await?)
}

/// A realistic mix: one organisation, 2,000 staff with a device each, 5,000
/// patients, a fresh target id per event (a message, a session …).
fn audit_event(i: u64) -> NewEvent {
    static ORG: LazyLock<Uuid> = LazyLock::new(Uuid::new_v4);
    static STAFF: LazyLock<Vec<(String, Uuid)>> = LazyLock::new(|| {
        (0..2000)
            .map(|_| (Uuid::new_v4().to_string(), Uuid::new_v4()))
            .collect()
    });
    let (user, device) = &STAFF[(i % 2000) as usize];
    NewEvent {
        org_id: Some((*ORG).into()),
        actor_kind: ActorKind::User,
        actor_id: Some(user.clone()),
        device_id: Some(*device),
        source_ip: Some("10.20.30.40".into()),
        user_agent: Some("wardline-bench/1".into()),
        action: AuditAction::UserView,
        target_type: Some("user".into()),
        target_id: Some(Uuid::new_v4().to_string()),
        patient_id: Some(format!("patient-{}", i.wrapping_mul(7919) % 5000)),
        outcome: Outcome::Success,
        reason: None,
        changes: Vec::new(),
    }
}

/// Appends `n` entries with `producers` concurrent producers; returns the
/// rate and the p50/p99 of the wait for durability.
async fn append_load(
    log: &AuditLog,
    producers: usize,
    until: impl Fn(u64, Instant) -> bool + Send + Sync + 'static,
) -> anyhow::Result<(u64, f64, Duration, Duration)> {
    let done = Arc::new(AtomicU64::new(0));
    let until = Arc::new(until);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let log = log.clone();
        let done = done.clone();
        let until = until.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = done.fetch_add(1, Ordering::Relaxed);
                if until(i, started) {
                    break;
                }
                let t = Instant::now();
                log.record(audit_event(i))
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let n = all.len() as u64;
    Ok((
        n,
        n as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    ))
}

async fn audit_rows(
    name: &str,
    db: Option<String>,
    args: &Args,
    verify_entries: u64,
    rows: &mut Vec<String>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = match db {
        Some(base) => fresh_schema(&base).await?,
        None => SqlStore::sqlite_url(dir.path()),
    };
    let store = Arc::new(SqlStore::connect(&url).await?);
    let keys = Arc::new(LocalKeyFile::open_or_create(&dir.path().join("kek.json"))?);
    let log = AuditLog::start(
        store.clone(),
        keys.clone(),
        Arc::new(SystemClock),
        &AuditConfig::default(),
    )
    .await?;
    let secs = args.secs;
    eprintln!("bench: {name}: audit appends, 1 producer, {secs} s");
    let (_, rate1, p50, p99) =
        append_load(&log, 1, move |_, t| t.elapsed().as_secs() >= secs).await?;
    rows.push(format!(
        "| {name} | audit append, 1 producer (one commit each) | {rate1:.0} /s | {} | {} |",
        ms(p50),
        ms(p99)
    ));
    for &producers in &args.audit_producers {
        eprintln!("bench: {name}: audit appends, {producers} producers, {secs} s");
        let (_, rate, p50, p99) =
            append_load(&log, producers, move |_, t| t.elapsed().as_secs() >= secs).await?;
        rows.push(format!(
            "| {name} | audit append, {producers} producers (group commit) | {rate:.0} /s ({:.1}× one producer) | {} | {} |",
            rate / rate1,
            ms(p50),
            ms(p99)
        ));
    }
    let producers = args.audit_producers.iter().copied().max().unwrap_or(64);
    let have = store.last_audit_entry().await?.map_or(0, |r| r.seq) as u64;
    if verify_entries > have {
        let more = verify_entries - have;
        eprintln!("bench: {name}: filling the log to {verify_entries} entries");
        append_load(&log, producers, move |i, _| i >= more).await?;
    }
    log.checkpoint_now()
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let total = store.last_audit_entry().await?.map_or(0, |r| r.seq);
    eprintln!("bench: {name}: verifying {total} entries");
    let t = Instant::now();
    let report = verify(
        store.as_ref(),
        keys.as_ref(),
        &Default::default(),
        |_, _| {},
    )
    .await?;
    let took = t.elapsed();
    anyhow::ensure!(report.ok(), "verification found {:?}", report.findings);
    let per_sec = total as f64 / took.as_secs_f64();
    rows.push(format!(
        "| {name} | audit verify, full ({total} entries, {} checkpoints) | {per_sec:.0} entries/s | {:.2} s total | 10M extrapolated: {:.0} s |",
        report.checkpoints_checked,
        took.as_secs_f64(),
        1e7 / per_sec
    ));
    store.close().await;
    Ok(())
}

/// A fresh server (in-process) with the organisation `bench` and `users`
/// nurses `user{i}@bench.test`, MFA off.
async fn start(
    database: Option<String>,
    users: usize,
) -> anyhow::Result<(Running, ApiClient, String)> {
    start_with(database, users, |_| {}).await
}

/// As [`start`], with `tweak` applied to the server's configuration.
async fn start_with(
    database: Option<String>,
    users: usize,
    tweak: impl FnOnce(&mut Config),
) -> anyhow::Result<(Running, ApiClient, String)> {
    let dir = tempfile::tempdir()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let database_url = match database {
        Some(base) => Some(fresh_schema(&base).await?),
        None => None,
    };
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        listen: addr,
        database_url: database_url.clone(),
        ..Config::default()
    };
    config.log.level = "warn".into();
    tweak(&mut config);
    let cert = wardline_server::tls::ensure_certificate(&config)?;
    let ca = std::fs::read(cert.cert)?;
    let server = Server::build(config).await?;
    let code = server
        .setup_code()
        .context("fresh server has a setup code")?
        .to_owned();
    let state = server.state().clone();
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move { server.serve(listener, h).await });
    handle.listening().await.context("listening")?;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let client = ApiClient::new(&url, Some(&ca))?;
    let setup = client
        .setup(&SetupRequest {
            setup_code: code,
            org_name: "Bench Clinic".into(),
            org_slug: "bench".into(),
            admin_email: "admin@bench.test".into(),
            admin_display_name: "Bench Admin".into(),
            admin_password: PASSWORD.into(),
        })
        .await?;
    // MFA changes nothing per request; turning it off keeps the set-up short.
    state
        .directory
        .update_policy(
            setup.organisation.id.into(),
            OrgPolicy {
                idle_timeout_secs: 900,
                absolute_lifetime_secs: 43_200,
                mfa_required: false,
                messaging: Default::default(),
                patients: Default::default(),
                devices: Default::default(),
                routing: Default::default(),
            },
            &Default::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    for i in 0..users {
        state
            .directory
            .create_user(
                setup.organisation.id.into(),
                CreateUserRequest {
                    email: format!("user{i}@bench.test"),
                    display_name: format!("Bench User {i}"),
                    phone: Some(format!("+1555010{i:04}")),
                    roles: vec![Role::Nurse],
                    password: PASSWORD.into(),
                    password_change_required: false,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    Ok((
        Running {
            url,
            state,
            ca,
            handle,
            listen: addr,
            database_url,
            dir,
        },
        client,
        setup.admin.email,
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

async fn throughput(
    r: &Running,
    token: &str,
    path: &str,
    clients: usize,
    secs: u64,
) -> anyhow::Result<(f64, Duration, Duration)> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&r.ca)?)
            .http1_only()
            .build()?;
        let url = format!("{}{path}", r.url);
        let token = token.to_owned();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = http.get(&url).bearer_auth(&token).send().await?;
                anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
                resp.bytes().await?;
                lat.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    all.sort();
    Ok((rate, percentile(&all, 0.5), percentile(&all, 0.99)))
}

async fn backend_rows(
    name: &str,
    db: Option<String>,
    args: &Args,
    rows: &mut Vec<String>,
) -> anyhow::Result<()> {
    eprintln!("bench: {name}: starting server and seeding 50 users");
    let (r, client, email) = start(db, 50).await?;
    // Sequential logins (password step); different device each time.
    let mut lat = Vec::new();
    let mut token = String::new();
    for _ in 0..args.logins {
        let t = Instant::now();
        let resp = client
            .login(&LoginRequest {
                org: "bench".into(),
                email: email.clone(),
                password: PASSWORD.into(),
                device_id: Uuid::new_v4(),
                device_token: None,
            })
            .await?;
        lat.push(t.elapsed());
        token = resp.session.context("session")?.token;
    }
    lat.sort();
    rows.push(format!(
        "| {name} | login (password step), sequential | {:.1} /s | {} | {} |",
        1.0 / (lat.iter().sum::<Duration>().as_secs_f64() / lat.len() as f64),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    ));
    for (label, path) in [
        ("GET /api/v1/auth/session", "/api/v1/auth/session"),
        ("GET /api/v1/users (51 users decrypted)", "/api/v1/users"),
    ] {
        eprintln!(
            "bench: {name}: {label}, {} clients, {} s",
            args.clients, args.secs
        );
        let (rate, p50, p99) = throughput(&r, &token, path, args.clients, args.secs).await?;
        rows.push(format!(
            "| {name} | {label}, {} clients | {rate:.0} /s | {} | {} |",
            args.clients,
            ms(p50),
            ms(p99)
        ));
    }
    r.handle.shutdown();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rows = Vec::new();

    let pg = args
        .postgres
        .clone()
        .or_else(|| std::env::var("WARDLINE_TEST_POSTGRES_URL").ok());
    match args.command {
        Some(Cmd::Server {
            data_dir,
            listen,
            database_url,
        }) => return process::serve_child(data_dir, listen, database_url).await,
        Some(Cmd::Web {
            messages,
            rate,
            members,
            history,
        }) => return web::main(messages, rate, members, history).await,
        Some(Cmd::Push { pushes, rate }) => return push::main(pushes, rate).await,
        Some(Cmd::Console {
            audit_entries,
            users,
            days,
            runs,
            screen_users,
        }) => return console::main(pg, audit_entries, users, days, runs, screen_users).await,
        Some(Cmd::CrashLoss { kills, members }) => {
            return crash_loss::main(kills, members, pg).await;
        }
        Some(Cmd::Load {
            clients,
            sizes,
            rates,
            secs,
            idle_sockets,
        }) => {
            let args = load::LoadArgs {
                clients,
                sizes,
                rates,
                secs,
                idle_sockets,
            };
            return load::main(args, pg).await;
        }
        Some(Cmd::SideBySide { users, rates, secs }) => {
            return synapse::main(users, &rates, secs).await;
        }
        Some(Cmd::Escalation { pages, after }) => {
            for n in &pages {
                escalation::rows("SQLite", None, *n, after, &mut rows).await?;
                if let Some(pg) = &pg {
                    escalation::rows("PostgreSQL", Some(pg.clone()), *n, after, &mut rows).await?;
                }
            }
            print_rows(rows);
            return Ok(());
        }
        None => {}
    }
    if args.only_messaging {
        messaging::mls_rows(&mut rows)?;
        messaging::delivery_rows("SQLite", None, &args, &mut rows).await?;
        if let Some(pg) = pg {
            messaging::delivery_rows("PostgreSQL", Some(pg), &args, &mut rows).await?;
        }
        print_rows(rows);
        return Ok(());
    }

    let passwords = Passwords::new();
    let n = 20;
    let t = Instant::now();
    let mut hash = String::new();
    for _ in 0..n {
        hash = passwords
            .hash(PASSWORD)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    let per_hash = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        passwords
            .verify(Some(&hash), PASSWORD)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    let per_verify = t.elapsed() / n;
    rows.push(format!(
        "| — | Argon2id hash (m=19 MiB, t=2, p=1) | {:.1} /s | {} | — |",
        1.0 / per_hash.as_secs_f64(),
        ms(per_hash)
    ));
    rows.push(format!(
        "| — | Argon2id verify | {:.1} /s | {} | — |",
        1.0 / per_verify.as_secs_f64(),
        ms(per_verify)
    ));

    messaging::mls_rows(&mut rows)?;
    messaging::delivery_rows("SQLite", None, &args, &mut rows).await?;
    backend_rows("SQLite", None, &args, &mut rows).await?;
    audit_rows("SQLite", None, &args, args.verify_entries, &mut rows).await?;
    match args
        .postgres
        .clone()
        .or_else(|| std::env::var("WARDLINE_TEST_POSTGRES_URL").ok())
    {
        Some(pg) => {
            messaging::delivery_rows("PostgreSQL", Some(pg.clone()), &args, &mut rows).await?;
            backend_rows("PostgreSQL", Some(pg.clone()), &args, &mut rows).await?;
            audit_rows(
                "PostgreSQL",
                Some(pg),
                &args,
                args.verify_entries / 5,
                &mut rows,
            )
            .await?;
        }
        None => eprintln!(
            "bench: no PostgreSQL URL (--postgres or WARDLINE_TEST_POSTGRES_URL); skipped"
        ),
    }

    print_rows(rows);
    Ok(())
}

fn print_rows(rows: Vec<String>) {
    println!("| backend | operation | rate | p50 ms | p99 ms |");
    println!("| --- | --- | --- | --- | --- |");
    for r in rows {
        println!("{r}");
    }
}
