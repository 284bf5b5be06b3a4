//! Messaging benchmarks.
//!
//! * `mls`: what a commit costs the committer and a receiver, and how big the
//!   commit and Welcome are, in groups of 10, 100 and 1,000 devices (client
//!   side; `wardline_client::core::mls`).
//! * `delivery`: a 20-member conversation through the server: application
//!   messages per second (real MLS ciphertext, several senders at once, each
//!   fanned out to 19 other devices), and the latency from the start of a
//!   submission to the entry arriving on a recipient's sync WebSocket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use wardline_client::chat::Chat;
use wardline_client::core::MessageContent;
use wardline_client::core::mls::MlsDevice;
use wardline_proto::messaging::*;
use wardline_proto::sync::ServerFrame;

use super::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn mls_rows(rows: &mut Vec<String>) -> anyhow::Result<()> {
    for n in [10usize, 100, 1000] {
        eprintln!("bench: MLS group of {n}");
        let conv = Uuid::new_v4();
        let mut creator = MlsDevice::generate(Uuid::new_v4(), Uuid::new_v4())?;
        creator.create_group(conv)?;
        let mut members = Vec::new();
        let mut kps = Vec::new();
        for _ in 1..n {
            let d = MlsDevice::generate(Uuid::new_v4(), Uuid::new_v4())?;
            let (mut one, _) = d.key_packages(1)?;
            kps.push(one.remove(0));
            members.push(d);
        }
        let t = Instant::now();
        let (_, welcome) = creator.add(conv, &kps)?;
        let initial = t.elapsed();
        creator.merge_pending(conv)?;
        let t = Instant::now();
        members[0].join(&welcome)?;
        let join = t.elapsed();
        let rounds = if n >= 1000 { 5 } else { 10 };
        let (mut add, mut add_proc, mut rem, mut rem_proc) = (vec![], vec![], vec![], vec![]);
        let (mut commit_bytes, mut welcome_bytes) = (0, 0);
        for _ in 0..rounds {
            let newcomer = MlsDevice::generate(Uuid::new_v4(), Uuid::new_v4())?;
            let (mut kp, _) = newcomer.key_packages(1)?;
            let t = Instant::now();
            let (commit, welcome) = creator.add(conv, &[kp.remove(0)])?;
            add.push(t.elapsed());
            creator.merge_pending(conv)?;
            commit_bytes = commit.len();
            welcome_bytes = welcome.len();
            let t = Instant::now();
            members[0].process(conv, &commit)?;
            add_proc.push(t.elapsed());
            let t = Instant::now();
            let commit = creator.remove(conv, &[newcomer.device])?;
            rem.push(t.elapsed());
            creator.merge_pending(conv)?;
            let t = Instant::now();
            members[0].process(conv, &commit)?;
            rem_proc.push(t.elapsed());
        }
        let row = |what: &str, d: Duration, extra: String| {
            format!(
                "| client | MLS, {n} members: {what} | {:.0} /s | {} | {extra} |",
                1.0 / d.as_secs_f64(),
                ms(d)
            )
        };
        rows.push(row(
            &format!("create group and add {} devices in one commit", n - 1),
            initial,
            format!("Welcome {} kB", welcome.len() / 1024),
        ));
        rows.push(row("join from that Welcome", join, "—".into()));
        rows.push(row(
            "commit adding one device (committer)",
            median(add),
            format!(
                "commit {commit_bytes} B, Welcome {} kB",
                welcome_bytes / 1024
            ),
        ));
        rows.push(row(
            "process that commit (receiver)",
            median(add_proc),
            "—".into(),
        ));
        rows.push(row(
            "commit removing one device (committer)",
            median(rem),
            "—".into(),
        ));
        rows.push(row(
            "process that commit (receiver)",
            median(rem_proc),
            "—".into(),
        ));
    }
    Ok(())
}

/// A signed-in device of bench user `i` with its chat state in `dir`.
pub async fn device(url: &str, ca: &[u8], i: usize, dir: &std::path::Path) -> anyhow::Result<Chat> {
    let device = Uuid::new_v4();
    let api = ApiClient::new(url, Some(ca))?;
    let resp = api
        .login(&LoginRequest {
            org: "bench".into(),
            email: format!("user{i}@bench.test"),
            password: PASSWORD.into(),
            device_id: device,
            device_token: None,
        })
        .await?;
    let session = resp.session.context("session")?;
    let api = api.with_token(Some(session.token));
    let me = api.current_session().await?;
    Ok(Chat::open(
        api,
        &dir.join(format!("{i}.wls")),
        "bench passphrase",
        me.user.id,
        device,
        "bench",
    )
    .await?)
}

/// Signs in `n` devices of bench users `0..n`.
pub async fn devices(
    url: &str,
    ca: &[u8],
    n: usize,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<Chat>> {
    let bar =
        indicatif::ProgressBar::new(n as u64).with_style(indicatif::ProgressStyle::with_template(
            "devices: {bar:30} {pos}/{len} signed in, {elapsed}",
        )?);
    let mut chats = Vec::new();
    for i in 0..n {
        chats.push(messaging::device(url, ca, i, dir).await?);
        bar.inc(1);
    }
    bar.finish();
    Ok(chats)
}

/// Puts `chats` into conversations of `size` (the last may be smaller);
/// every member's device joins the group. Returns each chat's conversation.
pub async fn conversations(chats: &mut [Chat], size: usize) -> anyhow::Result<Vec<Uuid>> {
    let mut convs = Vec::new();
    for group in chats.chunks_mut(size) {
        if group.len() < 2 {
            anyhow::bail!("a conversation needs two members; use a size that divides the clients");
        }
        let conv = group_of(group, &[], format!("bench {size}")).await?;
        convs.extend(std::iter::repeat_n(conv, group.len()));
    }
    Ok(convs)
}

/// A group conversation started by `chats[0]` with the other chats' users
/// and `also` (users without a chat here, e.g. the web bench's browsers);
/// every chat's device joins it before this returns.
pub async fn group_of(chats: &mut [Chat], also: &[Uuid], title: String) -> anyhow::Result<Uuid> {
    let mut members: Vec<Uuid> = chats[1..].iter().map(|c| c.user()).collect();
    members.extend_from_slice(also);
    let conv = chats[0]
        .create(&CreateConversationRequest {
            kind: ConversationKind::Group,
            title: Some(title),
            members,
            patient_ref: None,
            care_team_id: None,
        })
        .await?
        .id;
    for c in chats.iter_mut().skip(1) {
        c.sync().await?;
        anyhow::ensure!(c.core.mls.has_group(conv), "a member did not join");
    }
    Ok(conv)
}

pub async fn delivery_rows(
    name: &str,
    db: Option<String>,
    args: &Args,
    rows: &mut Vec<String>,
) -> anyhow::Result<()> {
    const MEMBERS: usize = 20;
    eprintln!("bench: {name}: {MEMBERS}-member conversation");
    let (r, _admin, _) = start(db, MEMBERS).await?;
    let dir = tempfile::tempdir()?;
    let mut chats = devices(&r.url, &r.ca, MEMBERS, dir.path()).await?;
    let conv = conversations(&mut chats, MEMBERS).await?[0];

    // Throughput: several members send at once, as fast as the server takes it.
    let senders = 4;
    let deadline = Instant::now() + Duration::from_secs(args.secs);
    let mut tasks = Vec::new();
    for mut chat in chats.drain(..senders) {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                chat.core.queue(
                    conv,
                    MessageContent::text("bench message of ordinary length, about one line"),
                    Priority::Routine,
                    None,
                );
                let req = chat.core.encrypt_next().context("queued")??;
                let t = Instant::now();
                let resp = chat.api.submit(conv, &req).await?;
                lat.push(t.elapsed());
                chat.core.sent_next(resp.created_at, resp.expires_at);
            }
            Ok::<_, anyhow::Error>((lat, chat))
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut back = Vec::new();
    for t in tasks {
        let (lat, chat) = t.await??;
        all.extend(lat);
        back.push(chat);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    rows.push(format!(
        "| {name} | {MEMBERS}-member conversation: messages accepted, {senders} senders (fan-out to 19 devices each) | {rate:.0} /s | {} | {} |",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99))
    ));

    // Latency: one sender, a recipient's WebSocket, 200 messages one at a time.
    // The recipient first catches up, so the socket carries only the probes.
    let mut receiver = chats.pop().context("a receiver")?;
    receiver.sync().await?;
    let sent_at: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let mut socket = receiver.connect().await?;
    let total = 200;
    let sent = sent_at.clone();
    let listener = tokio::spawn(async move {
        let mut lat = Vec::new();
        while lat.len() < total {
            let Some(msg) = socket.next().await else {
                break;
            };
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg?
                && let ServerFrame::Entry(e) = serde_json::from_str::<ServerFrame>(&t)?
            {
                let now = Instant::now();
                if let Some(at) = sent.lock().unwrap().get(&e.message_id) {
                    lat.push(now - *at);
                }
            }
        }
        Ok::<_, anyhow::Error>(lat)
    });
    let mut sender = back.pop().context("a sender")?;
    for _ in 0..total {
        sender.core.queue(
            conv,
            MessageContent::text("latency probe"),
            Priority::Stat,
            None,
        );
        let req = sender.core.encrypt_next().context("queued")??;
        sent_at
            .lock()
            .unwrap()
            .insert(req.message_id, Instant::now());
        let resp = sender.api.submit(conv, &req).await?;
        sender.core.sent_next(resp.created_at, resp.expires_at);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut lat = tokio::time::timeout(Duration::from_secs(60), listener).await???;
    lat.sort();
    rows.push(format!(
        "| {name} | {MEMBERS}-member conversation: delivery latency, submit → recipient's WebSocket ({} messages) | — | {} | {} |",
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    ));
    r.handle.shutdown();
    Ok(())
}
