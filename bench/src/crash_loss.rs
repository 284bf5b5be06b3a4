//! Crash-loss: members of one conversation send and sync continuously
//! through the client SDK (`wardline_client::chat::Chat`, the code a real
//! client runs: encrypted local store, outbox, retries) while the server
//! process is killed with SIGKILL and restarted, again and again. Afterwards:
//!
//! * every message a sender's SDK saw accepted (and, since the SDK retries,
//!   every message it queued) is in every other member's store exactly once,
//!   in the sender's order, and decrypts;
//! * no member holds a message its sender never saw accepted (nothing
//!   unacknowledged is half-visible);
//! * all members agree on the conversation's order;
//! * each device's inbox on the server, read again from position 0, has
//!   gap-free positions and no message twice.
//!
//! Half the members receive over the sync WebSocket (reconnecting after each
//! crash), half by HTTP sync, so both delivery paths are killed mid-flight.
//!
//! Any violation is reported with the message ids and fails the run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio_tungstenite::tungstenite::Message;
use wardline_client::chat::{Chat, ChatError, SyncSocket};
use wardline_client::core::{Event, MessageContent};
use wardline_proto::messaging::*;
use wardline_proto::sync::{ClientFrame, InboxEntry, ServerFrame};

use super::process::{ServerProcess, seed};
use super::*;

pub struct Report {
    pub backend: String,
    pub kills: usize,
    pub members: usize,
    pub accepted: usize,
    pub deliveries: usize,
    pub transport_errors: u64,
    pub queued_offline: u64,
    pub over_websocket: u64,
    pub mean_restart: Duration,
    pub secs: f64,
    pub problems: Vec<String>,
}

struct Member {
    chat: Chat,
    rejected: Vec<String>,
    errors: Vec<String>,
    transport_errors: u64,
    queued_offline: u64,
    over_websocket: u64,
}

fn is_transport(e: &ChatError) -> bool {
    matches!(
        e,
        ChatError::Api(wardline_client::ClientError::Transport(_)) | ChatError::Socket(_)
    )
}

impl Member {
    fn note(&mut self, events: &[Event]) {
        for e in events {
            if let Event::Rejected {
                message_id, reason, ..
            } = e
            {
                self.rejected.push(format!("{message_id}: {reason}"));
            }
        }
    }

    fn failed(&mut self, e: ChatError) {
        if is_transport(&e) {
            self.transport_errors += 1;
        } else {
            self.errors.push(e.to_string());
        }
    }

    async fn sync(&mut self) {
        match self.chat.sync().await {
            Ok(events) => self.note(&events),
            Err(e) => self.failed(e),
        }
    }
}

pub async fn run(
    backend: &str,
    db: Option<String>,
    kills: usize,
    members: usize,
) -> anyhow::Result<Report> {
    eprintln!("crash-loss: {backend}: seeding {members} users");
    let seeded = seed(db, members).await?;
    let mut server = ServerProcess::spawn(&seeded).await?;
    let dir = tempfile::tempdir()?;
    let mut chats = messaging::devices(&seeded.url, &seeded.ca, members, dir.path()).await?;
    let conv = messaging::conversations(&mut chats, members).await?[0];

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, chat) in chats.into_iter().enumerate() {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = Member {
                chat,
                rejected: Vec::new(),
                errors: Vec::new(),
                transport_errors: 0,
                queued_offline: 0,
                over_websocket: 0,
            };
            // Odd members receive on the sync WebSocket (reconnecting after
            // each crash, as a client does), even ones by HTTP sync.
            let websocket = i % 2 == 1;
            let mut socket: Option<SyncSocket> = None;
            let mut batch: Vec<InboxEntry> = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let text = MessageContent::text(format!("member {i} message {n}"));
                match m.chat.send(conv, text, Priority::Routine).await {
                    // Still in the outbox: the server was down; it goes on the next sync.
                    Ok(_) if !m.chat.core.outbox.is_empty() => m.queued_offline += 1,
                    Ok(_) => {}
                    Err(e) => m.failed(e),
                }
                let pause = Duration::from_millis(rand::thread_rng().gen_range(5..25));
                if !websocket {
                    if n.is_multiple_of(3) {
                        m.sync().await;
                    }
                    tokio::time::sleep(pause).await;
                    continue;
                }
                if socket.is_none() {
                    match m.chat.connect().await {
                        Ok(s) => socket = Some(s),
                        Err(e) => m.failed(e),
                    }
                }
                // Read what the socket has until the pause is over.
                let until = tokio::time::Instant::now() + pause;
                while let Some(s) = socket.as_mut() {
                    let frame = match tokio::time::timeout_at(until, s.next()).await {
                        Err(_) => break,
                        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ServerFrame>(&t),
                        Ok(Some(Ok(_))) => continue,
                        // Closed or broken (the server was killed): reconnect next time.
                        Ok(_) => {
                            socket = None;
                            batch.clear();
                            m.transport_errors += 1;
                            break;
                        }
                    };
                    match frame {
                        Ok(ServerFrame::Entry(e)) => {
                            m.over_websocket += 1;
                            batch.push(*e);
                        }
                        Ok(ServerFrame::Idle { .. }) if !batch.is_empty() => {
                            let mut events = Vec::new();
                            for e in batch.drain(..) {
                                events.extend(m.chat.core.apply(&e));
                            }
                            m.note(&events);
                            // Saved before acknowledged, as the SDK's watch loop does.
                            if let Err(e) = m.chat.save() {
                                m.failed(e);
                            }
                            let ack = ClientFrame::Ack {
                                up_to: m.chat.core.cursor,
                            };
                            let ack = serde_json::to_string(&ack).expect("frames serialise");
                            if s.send(Message::Text(ack.into())).await.is_err() {
                                socket = None;
                            }
                        }
                        // Staff notices, later frames: not this bench's.
                        Ok(
                            ServerFrame::Idle { .. }
                            | ServerFrame::Notice(_)
                            | ServerFrame::Unknown,
                        ) => {}
                        Err(e) => m.errors.push(format!("unexpected frame: {e}")),
                    }
                }
                if socket.is_none() {
                    tokio::time::sleep_until(until).await;
                }
            }
            m
        }));
    }

    let bar = indicatif::ProgressBar::new(kills as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "crash-loss {prefix}: {bar:30} {pos}/{len} kills, {elapsed}",
        )?,
    );
    bar.set_prefix(backend.to_owned());
    let mut restarts = Duration::ZERO;
    for _ in 0..kills {
        let wait = rand::thread_rng().gen_range(200..1200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill9()?;
        restarts += server.restart().await?;
        bar.inc(1);
    }
    bar.finish();
    // A last stretch of load after the final restart, then everyone drains.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut members_back = Vec::new();
    for t in tasks {
        members_back.push(t.await?);
    }
    for _round in 0..5 {
        for m in members_back.iter_mut() {
            m.sync().await;
        }
    }
    let secs = started.elapsed().as_secs_f64();

    let mut problems = Vec::new();
    for (i, m) in members_back.iter().enumerate() {
        if !m.chat.core.outbox.is_empty() {
            let ids: Vec<String> = m
                .chat
                .core
                .outbox
                .iter()
                .map(|o| o.id.to_string())
                .collect();
            problems.push(format!(
                "member {i}: {} queued message(s) never accepted: {}",
                ids.len(),
                ids.join(", ")
            ));
        }
        for r in &m.rejected {
            problems.push(format!("member {i}: entry rejected: {r}"));
        }
        // Errors other than an unreachable server, each kind once.
        let mut kinds: Vec<&String> = m.errors.iter().collect();
        kinds.sort();
        kinds.dedup();
        for e in kinds {
            problems.push(format!("member {i}: error: {e}"));
        }
    }

    // What each member holds: its own accepted messages and the others'.
    let device_of: Vec<Uuid> = members_back
        .iter()
        .map(|m| m.chat.core.mls.device)
        .collect();
    let held: Vec<Vec<(Uuid, Uuid)>> = members_back
        .iter()
        .map(|m| {
            m.chat
                .core
                .conversations
                .get(&conv)
                .map(|c| {
                    c.messages
                        .iter()
                        .map(|msg| (msg.sender_device, msg.id))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let sent: Vec<Vec<Uuid>> = (0..members)
        .map(|s| {
            held[s]
                .iter()
                .filter(|(d, _)| *d == device_of[s])
                .map(|(_, id)| *id)
                .collect()
        })
        .collect();
    let accepted: usize = sent.iter().map(Vec::len).sum();
    let mut deliveries = 0;
    for (r, mine) in held.iter().enumerate() {
        let mut seen = HashSet::new();
        for (_, id) in mine {
            if !seen.insert(*id) {
                problems.push(format!("member {r}: message {id} held twice"));
            }
        }
        for s in (0..members).filter(|s| *s != r) {
            let got: Vec<Uuid> = mine
                .iter()
                .filter(|(d, _)| *d == device_of[s])
                .map(|(_, id)| *id)
                .collect();
            deliveries += got.len();
            if got != sent[s] {
                let want: HashSet<&Uuid> = sent[s].iter().collect();
                let have: HashSet<&Uuid> = got.iter().collect();
                let lost: Vec<String> = want.difference(&have).map(|i| i.to_string()).collect();
                let extra: Vec<String> = have.difference(&want).map(|i| i.to_string()).collect();
                problems.push(format!(
                    "member {r} from member {s}: {} lost [{}], {} never accepted [{}], order {}",
                    lost.len(),
                    lost.join(", "),
                    extra.len(),
                    extra.join(", "),
                    if lost.is_empty() && extra.is_empty() {
                        "differs"
                    } else {
                        "—"
                    }
                ));
            }
        }
    }
    // One order for the conversation: any two members list the messages
    // both received (neither sent) in the same order.
    for a in 0..members {
        for b in (a + 1)..members {
            let common = |x: usize| -> Vec<Uuid> {
                held[x]
                    .iter()
                    .filter(|(d, _)| *d != device_of[a] && *d != device_of[b])
                    .map(|(_, id)| *id)
                    .collect()
            };
            if common(a) != common(b) {
                problems.push(format!(
                    "members {a} and {b} disagree on the conversation's order"
                ));
            }
        }
    }
    // The server's inbox of each device, read again from the start.
    for (i, m) in members_back.iter().enumerate() {
        let mut after = 0;
        let mut ids: HashMap<Uuid, i64> = HashMap::new();
        loop {
            let page = m.chat.api.sync(after, 500).await?;
            for e in &page.entries {
                if e.seq != after + 1 {
                    problems.push(format!(
                        "member {i}: inbox jumps from position {after} to {}",
                        e.seq
                    ));
                }
                if let Some(first) = ids.insert(e.message_id, e.seq) {
                    problems.push(format!(
                        "member {i}: message {} in the inbox twice (positions {first} and {})",
                        e.message_id, e.seq
                    ));
                }
                after = e.seq;
            }
            if !page.more {
                break;
            }
        }
    }
    let transport_errors = members_back.iter().map(|m| m.transport_errors).sum();
    let queued_offline = members_back.iter().map(|m| m.queued_offline).sum();
    let over_websocket = members_back.iter().map(|m| m.over_websocket).sum();
    if members > 1 && over_websocket == 0 {
        problems.push("no entry arrived over the WebSocket".into());
    }
    drop(server);
    Ok(Report {
        backend: backend.to_owned(),
        kills,
        members,
        accepted,
        deliveries,
        transport_errors,
        queued_offline,
        over_websocket,
        mean_restart: restarts / kills.max(1) as u32,
        secs,
        problems,
    })
}

pub async fn main(kills: usize, members: usize, pg: Option<String>) -> anyhow::Result<()> {
    let mut reports = vec![run("SQLite", None, kills, members).await?];
    match pg {
        Some(pg) => reports.push(run("PostgreSQL", Some(pg), kills, members).await?),
        None if std::env::var_os("CI").is_some() => {
            anyhow::bail!("crash-loss: CI needs PostgreSQL (WARDLINE_TEST_POSTGRES_URL)")
        }
        None => eprintln!("crash-loss: no PostgreSQL URL; PostgreSQL not tested"),
    }
    println!(
        "| backend | kills (SIGKILL) | members | messages accepted | deliveries checked | entries pushed over the WebSocket | sent while the server was down (outbox) | syncs that found it down | mean restart to ready | run | losses, duplicates, misorders |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut failed = false;
    for r in &reports {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} ms | {:.0} s | {} |",
            r.backend,
            r.kills,
            r.members,
            r.accepted,
            r.deliveries,
            r.over_websocket,
            r.queued_offline,
            r.transport_errors,
            r.mean_restart.as_millis(),
            r.secs,
            r.problems.len()
        );
        for p in &r.problems {
            eprintln!("crash-loss: {}: {p}", r.backend);
            failed = true;
        }
    }
    anyhow::ensure!(!failed, "crash-loss found problems (listed above)");
    Ok(())
}
