//! Load generator: simulated clients, each a real device (the client SDK's
//! MLS state, its own session), connected over the sync WebSocket, in
//! conversations of a given size, each sending real MLS application messages
//! at a set rate (or as fast as the server answers). Measured on the client
//! side with one clock:
//!
//! * messages stored per second (the server's accepted answers) and entries
//!   delivered per second (arrivals on recipients' sockets);
//! * delivery latency from the start of a submission to its arrival on a
//!   recipient's socket, per delivery and to the last recipient device;
//! * the server process's CPU time and resident memory (`/proc`);
//! * the server's memory per idle connected WebSocket, with thousands open.
//!
//! Recipients decrypt every message (what a device does); an entry that does
//! not decrypt counts as an error.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio_tungstenite::tungstenite::Message;
use wardline_client::chat::Chat;
use wardline_client::core::{Event, MessageContent};
use wardline_proto::messaging::*;
use wardline_proto::sync::{ClientFrame, InboxEntry, ServerFrame};

use super::process::{self, ServerProcess, seed};
use super::*;

/// Submissions in flight and what arrived, shared by all simulated clients.
#[derive(Default)]
pub struct Tracker {
    pending: Mutex<HashMap<Uuid, Track>>,
    /// Submission start → arrival on one recipient's socket.
    per_delivery: Mutex<Vec<Duration>>,
    /// Submission start → arrival on the last recipient's socket.
    to_all: Mutex<Vec<Duration>>,
    pub stored: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
}

struct Track {
    sent_at: Instant,
    remaining: usize,
    max: Duration,
}

impl Tracker {
    /// A message is about to be submitted; `recipients` devices should get it.
    pub fn sending(&self, id: Uuid, recipients: usize) {
        self.pending.lock().unwrap().insert(
            id,
            Track {
                sent_at: Instant::now(),
                remaining: recipients,
                max: Duration::ZERO,
            },
        );
    }

    pub fn arrived(&self, id: Uuid, at: Instant) {
        let mut pending = self.pending.lock().unwrap();
        let Some(t) = pending.get_mut(&id) else {
            return;
        };
        let lat = at - t.sent_at;
        t.max = t.max.max(lat);
        t.remaining -= 1;
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.per_delivery.lock().unwrap().push(lat);
        if t.remaining == 0 {
            let max = t.max;
            pending.remove(&id);
            self.to_all.lock().unwrap().push(max);
        }
    }

    /// Messages not yet at every recipient.
    pub fn outstanding(&self) -> usize {
        self.pending.lock().unwrap().len()
    }
}

/// One measured phase.
pub struct Stats {
    /// From the first send to the last arrival (or the drain's end).
    pub secs: f64,
    /// The sending window.
    pub send_secs: f64,
    pub stored: u64,
    pub delivered: u64,
    /// Sorted, as are `to_all`'s.
    pub per_delivery: Vec<Duration>,
    pub to_all: Vec<Duration>,
    pub undelivered: usize,
    pub errors: u64,
    /// Server CPU time over the phase ÷ wall time (1.0 = one core busy).
    pub server_cpu: Option<f64>,
    pub server_rss: Option<u64>,
    /// This process's (the simulated clients') CPU over the phase ÷ wall time.
    pub clients_cpu: f64,
    /// All PostgreSQL processes' CPU over the phase ÷ wall time, when asked.
    pub postgres_cpu: Option<f64>,
}

impl Stats {
    pub fn stored_rate(&self) -> f64 {
        self.stored as f64 / self.send_secs
    }

    pub fn delivered_rate(&self) -> f64 {
        self.delivered as f64 / self.secs
    }

    /// The `q` quantile of the latency to every recipient, in seconds (NaN
    /// if nothing arrived).
    pub fn to_all_secs(&self, q: f64) -> f64 {
        if self.to_all.is_empty() {
            return f64::NAN;
        }
        percentile(&self.to_all, q).as_secs_f64()
    }

    /// p50, p99, max of the latency to every recipient.
    pub fn to_all_ms(&self) -> (String, String, String) {
        quantiles(&self.to_all)
    }

    pub fn per_delivery_ms(&self) -> (String, String, String) {
        quantiles(&self.per_delivery)
    }
}

/// p50, p99, max of sorted latencies.
fn quantiles(v: &[Duration]) -> (String, String, String) {
    if v.is_empty() {
        return ("—".into(), "—".into(), "—".into());
    }
    (
        ms(percentile(v, 0.5)),
        ms(percentile(v, 0.99)),
        ms(*v.last().unwrap()),
    )
}

fn sorted(v: &Mutex<Vec<Duration>>) -> Vec<Duration> {
    let mut v = std::mem::take(&mut *v.lock().unwrap());
    v.sort();
    v
}

/// The server process a phase watches, and whether its PostgreSQL too.
#[derive(Clone, Copy)]
pub struct Observed {
    pub pid: u32,
    pub postgres: bool,
}

/// How fast senders send.
#[derive(Clone, Copy)]
pub enum Pace {
    /// This many messages per second over all senders, spread evenly.
    Rate(f64),
    /// Each sender sends its next message as soon as the last was accepted.
    Flat,
}

impl std::fmt::Display for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pace::Rate(r) => write!(f, "{r} msg/s offered"),
            Pace::Flat => write!(f, "as fast as accepted"),
        }
    }
}

/// One simulated client for one phase: sends on its pace until `until`,
/// receives over its sync WebSocket (arrival stamped by a reader task, so a
/// submission in flight does not delay the clock), decrypts and acknowledges,
/// until `stop`.
pub async fn client(
    mut chat: Chat,
    conv: Uuid,
    recipients: usize,
    every: Option<Duration>,
    until: Instant,
    tracker: Arc<Tracker>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Chat> {
    let socket = chat.connect().await?;
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<InboxEntry>>();
    let t = tracker.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(text) = msg else { continue };
            let frame = match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Entry(e)) => {
                    if e.kind == MessageKind::Application {
                        t.arrived(e.message_id, Instant::now());
                    }
                    Some(*e)
                }
                Ok(ServerFrame::Idle { .. }) => None,
                Ok(ServerFrame::Notice(_) | ServerFrame::Unknown) => continue,
                Err(_) => {
                    t.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            if tx.send(frame).is_err() {
                break;
            }
        }
    });
    // Spread the first sends over one interval so the clients do not march in step.
    let mut next = Instant::now()
        + every.map_or(Duration::ZERO, |e| {
            e.mul_f64(rand::thread_rng().gen_range(0.0..1.0))
        });
    let mut acked = chat.core.cursor;
    loop {
        let sending = Instant::now() < until;
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()), if sending => {
                chat.core.queue(conv, MessageContent::text("load test message of ordinary length, about one line"), Priority::Routine, None);
                let req = chat.core.encrypt_next().context("queued")??;
                tracker.sending(req.message_id, recipients);
                match chat.api.submit(conv, &req).await {
                    Ok(r) => {
                        chat.core.sent_next(r.created_at, r.expires_at);
                        tracker.stored.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        chat.core.drop_next();
                        tracker.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                next = match every {
                    Some(e) => next + e,
                    None => Instant::now(),
                };
            }
            item = rx.recv() => match item {
                Some(Some(e)) => {
                    for ev in chat.core.apply(&e) {
                        if matches!(ev, Event::Rejected { .. }) {
                            tracker.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                // Acknowledge what was applied once the server has sent all it had.
                Some(None) if chat.core.cursor > acked => {
                    acked = chat.core.cursor;
                    let ack = serde_json::to_string(&ClientFrame::Ack { up_to: acked })?;
                    sink.send(Message::Text(ack.into())).await?;
                }
                Some(None) => {}
                None => break,
            },
            _ = stop.changed() => break,
        }
    }
    reader.abort();
    Ok(chat)
}

/// Runs one phase over `chats` (each in `convs[i]`, with `size` members) and
/// hands the chats back.
pub async fn phase(
    label: &str,
    chats: Vec<Chat>,
    convs: &[Uuid],
    size: usize,
    pace: Pace,
    secs: u64,
    server: Option<Observed>,
) -> anyhow::Result<(Vec<Chat>, Stats)> {
    let (server_pid, postgres) = server.map_or((None, false), |s| (Some(s.pid), s.postgres));
    let tracker = Arc::new(Tracker::default());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let every = pace.interval(chats.len());
    let cpu0 = server_pid.map(process::cpu_time).transpose()?;
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (chat, conv) in chats.into_iter().zip(convs) {
        tasks.push(tokio::spawn(client(
            chat,
            *conv,
            size - 1,
            every,
            until,
            tracker.clone(),
            stop.clone(),
        )));
    }
    let stats = observe(label, started, until, &tracker, server_pid, cpu0, postgres).await?;
    stop_tx.send(true)?;
    let mut back = Vec::new();
    for t in tasks {
        back.push(t.await??);
    }
    Ok((back, stats))
}

impl Pace {
    /// Time between one sender's messages, with `senders` sending.
    pub fn interval(self, senders: usize) -> Option<Duration> {
        match self {
            Pace::Rate(r) => Some(Duration::from_secs_f64(senders as f64 / r)),
            Pace::Flat => None,
        }
    }
}

/// Shows progress until `until`, waits (at most 30 s) for what was sent to
/// arrive everywhere, and sums up the phase that began at `started`.
pub async fn observe(
    label: &str,
    started: Instant,
    until: Instant,
    tracker: &Tracker,
    server_pid: Option<u32>,
    cpu0: Option<Duration>,
    postgres: bool,
) -> anyhow::Result<Stats> {
    let pg0 = postgres.then(process::postgres_cpu_time).transpose()?;
    let secs = (until - started).as_secs();
    let (me, mine0, t0) = (
        std::process::id(),
        process::cpu_time(std::process::id())?,
        Instant::now(),
    );
    let bar = indicatif::ProgressBar::new(secs).with_style(
        indicatif::ProgressStyle::with_template("{prefix}: {bar:30} {pos}/{len} s  {msg}")?,
    );
    bar.set_prefix(label.to_owned());
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        bar.set_position(started.elapsed().as_secs().min(secs));
        bar.set_message(format!(
            "{} stored, {} delivered",
            tracker.stored.load(Ordering::Relaxed),
            tracker.delivered.load(Ordering::Relaxed)
        ));
    }
    let drain = Instant::now() + Duration::from_secs(30);
    while tracker.outstanding() > 0 && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs_f = started.elapsed().as_secs_f64();
    let cpu = match (server_pid, cpu0) {
        (Some(pid), Some(c0)) => Some((process::cpu_time(pid)? - c0).as_secs_f64() / secs_f),
        _ => None,
    };
    bar.finish();
    Ok(Stats {
        secs: secs_f,
        send_secs: (until - started).as_secs_f64(),
        stored: tracker.stored.load(Ordering::Relaxed),
        delivered: tracker.delivered.load(Ordering::Relaxed),
        per_delivery: sorted(&tracker.per_delivery),
        to_all: sorted(&tracker.to_all),
        undelivered: tracker.outstanding(),
        errors: tracker.errors.load(Ordering::Relaxed),
        server_cpu: cpu,
        server_rss: server_pid.map(process::rss).transpose()?,
        clients_cpu: (process::cpu_time(me)? - mine0).as_secs_f64() / t0.elapsed().as_secs_f64(),
        postgres_cpu: match pg0 {
            Some(p0) => Some(
                (process::postgres_cpu_time()? - p0).as_secs_f64() / t0.elapsed().as_secs_f64(),
            ),
            None => None,
        },
    })
}

/// Opens `n` sync WebSockets over the chats' sessions (round robin), holds
/// them idle, and returns the server's resident memory before and after and
/// its CPU use while they sat idle.
async fn idle_sockets(
    chats: &[Chat],
    n: usize,
    server: &ServerProcess,
) -> anyhow::Result<(u64, u64, f64)> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.rss()?;
    let bar =
        indicatif::ProgressBar::new(n as u64).with_style(indicatif::ProgressStyle::with_template(
            "idle WebSockets: {bar:30} {pos}/{len} open, {elapsed}",
        )?);
    let opened = futures_util::stream::iter(0..n)
        .map(|i| {
            let chat = &chats[i % chats.len()];
            async move { chat.connect().await }
        })
        .buffer_unordered(32);
    futures_util::pin_mut!(opened);
    let mut readers = Vec::with_capacity(n);
    while let Some(socket) = opened.next().await {
        let socket = socket?;
        // Read (and drop) what the server sends, as an idle client does.
        readers.push(tokio::spawn(async move {
            let (_sink, mut stream) = socket.split();
            while let Some(Ok(_)) = stream.next().await {}
        }));
        bar.inc(1);
    }
    bar.finish();
    // Two of the server's 5 s backstop polls with every socket open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = server.cpu_time()?;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = (server.cpu_time()? - cpu0).as_secs_f64() / t.elapsed().as_secs_f64();
    let after = server.rss()?;
    for r in readers {
        r.abort();
    }
    Ok((before, after, idle_cpu))
}

pub struct LoadArgs {
    pub clients: usize,
    pub sizes: Vec<usize>,
    pub rates: Vec<f64>,
    pub secs: u64,
    pub idle_sockets: usize,
}

pub async fn main(args: LoadArgs, pg: Option<String>) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut backends = vec![("SQLite", None)];
    if let Some(pg) = pg {
        backends.push(("PostgreSQL", Some(pg)));
    }
    let mut idle_rows = Vec::new();
    for (backend, db) in backends {
        eprintln!("load: {backend}: seeding {} users", args.clients);
        let seeded = seed(db, args.clients).await?;
        let server = ServerProcess::spawn(&seeded).await?;
        let dir = tempfile::tempdir()?;
        let mut chats =
            messaging::devices(&seeded.url, &seeded.ca, args.clients, dir.path()).await?;
        for (i, size) in args.sizes.iter().copied().enumerate() {
            let rate = args
                .rates
                .get(i)
                .copied()
                .unwrap_or(*args.rates.last().unwrap_or(&100.0));
            eprintln!("load: {backend}: conversations of {size}");
            let convs = messaging::conversations(&mut chats, size).await?;
            for pace in [Pace::Rate(rate), Pace::Flat] {
                let label = format!("{backend}, size {size}, {pace}");
                let (back, s) = phase(
                    &label,
                    chats,
                    &convs,
                    size,
                    pace,
                    args.secs,
                    Some(Observed {
                        pid: server.pid(),
                        postgres: backend == "PostgreSQL",
                    }),
                )
                .await?;
                chats = back;
                let (p50, p99, max) = s.to_all_ms();
                let (one50, one99, _) = s.per_delivery_ms();
                rows.push(format!(
                    "| {backend} | {} × {size} | {pace} | {:.0} | {:.0} | {one50} / {one99} | {p50} | {p99} | {max} | {:.0} % | {} MiB | {} | {:.0} % | {} |",
                    args.clients / size,
                    s.stored_rate(),
                    s.delivered_rate(),
                    s.server_cpu.unwrap_or(0.0) * 100.0,
                    s.server_rss.unwrap_or(0) / (1024 * 1024),
                    s.postgres_cpu.map_or("—".into(), |c| format!("{:.0} %", c * 100.0)),
                    s.clients_cpu * 100.0,
                    s.errors + s.undelivered as u64,
                ));
            }
        }
        if args.idle_sockets > 0 {
            let (before, after, cpu) = idle_sockets(&chats, args.idle_sockets, &server).await?;
            idle_rows.push(format!(
                "| {backend} | {} | {} MiB | {} MiB | {:.1} KiB | {:.0} % |",
                args.idle_sockets,
                before / (1024 * 1024),
                after / (1024 * 1024),
                (after.saturating_sub(before)) as f64 / args.idle_sockets as f64 / 1024.0,
                cpu * 100.0
            ));
        }
        drop(server);
    }
    println!(
        "| backend | conversations × members | pace | stored msg/s | delivered/s | one recipient p50 / p99 ms | every recipient p50 ms | p99 ms | max ms | server CPU | server RSS | PostgreSQL CPU | clients' CPU | errors + undelivered |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in rows {
        println!("{r}");
    }
    if !idle_rows.is_empty() {
        println!();
        println!(
            "| backend | idle sync WebSockets | server RSS before | after | per socket | server CPU while idle |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        for r in idle_rows {
            println!("{r}");
        }
    }
    Ok(())
}
