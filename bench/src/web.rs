//! The clinicians' web app in headless Chromium (`bench/web/web_app.mjs`),
//! on this server over loopback: cold load to an interactive sign-in form,
//! bytes transferred (as sent: gzipped), device set-up and PIN unlock
//! (Argon2id in wasm, then catch-up), and browser → browser delivery latency
//! at a steady rate (the send is stamped when Enter is pressed, the arrival
//! when the message appears in the other browser's thread).
//!
//! With `--members N` above 2 the conversation has N members: the two
//! browsers and N − 2 simulated ones, each a native device of the client SDK
//! (real MLS) on the sync WebSocket, receiving, decrypting and acknowledging
//! every message as a device does (`load::client`). One of them starts the
//! conversation and, with `--history H`, writes H messages into it first:
//! both browsers take them in live, then the second opens the thread, and
//! the tab's memory is read (its renderer process's resident set).
//!
//! The app must be built first (`cargo xtask bench web` does); Chromium and
//! the browser tests' Node packages as for the tests (`cargo xtask test`).

use wardline_client::core::MessageContent;
use wardline_proto::messaging::Priority;

use super::node::NodeScript;
use super::*;

pub async fn main(
    messages: usize,
    rate: f64,
    members: usize,
    history: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(members >= 2, "a conversation needs the two browsers");
    let (r, _, admin_email) = start(None, members).await?;
    // The app locks after `lock_after_idle_secs` without a key press (300 s
    // by default): a long history takes longer than that to come in.
    let admin = ApiClient::new(&r.url, Some(&r.ca))?;
    let session = admin
        .login(&LoginRequest {
            org: "bench".into(),
            email: admin_email,
            password: PASSWORD.into(),
            device_id: Uuid::new_v4(),
            device_token: None,
        })
        .await?
        .session
        .context("admin session")?;
    let admin = admin.with_token(Some(session.token));
    let mut policy = admin.policy().await?;
    policy.devices.lock_after_idle_secs = 86_400;
    admin.set_policy(&policy).await?;
    // The simulated members: bench users 2.., one device each.
    let dir = tempfile::tempdir()?;
    let mut sims = Vec::new();
    for i in 2..members {
        sims.push(messaging::device(&r.url, &r.ca, i, dir.path()).await?);
    }
    let cfg = serde_json::json!({
        "url": format!("{}/", r.url),
        "org": "bench",
        "password": PASSWORD,
        "users": ["user0@bench.test", "user1@bench.test"],
        "names": ["Bench User 0", "Bench User 1"],
        "pin": "bench pin 4711",
        "messages": messages,
        "rate": rate,
        "history": history,
    });
    eprintln!(
        "bench: web app: {messages} messages at {rate}/s, browser to browser, in a conversation of {members} ({} simulated), {history} messages of history",
        members - 2
    );
    let mut node = NodeScript::start("web_app.mjs", &cfg, &r.ca)?;
    let ready = node.line().await?;
    anyhow::ensure!(
        ready.contains("ready"),
        "unexpected line from web_app.mjs: {ready}"
    );

    // The simulated members' conversation with both browsers, and its history.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    let title = if sims.is_empty() {
        None
    } else {
        let title = format!("Ward round {members}");
        // The two browsers' users: bench users 0 and 1.
        let everyone = sims[0].api.list_users().await?;
        let browsers: Vec<Uuid> = everyone
            .iter()
            .filter(|u| ["user0@bench.test", "user1@bench.test"].contains(&u.email.as_str()))
            .map(|u| u.id)
            .collect();
        anyhow::ensure!(browsers.len() == 2, "the browsers' users are missing");
        let conv = messaging::group_of(&mut sims, &browsers, title.clone()).await?;
        let t0 = Instant::now();
        for i in 0..history {
            let c = &mut sims[0];
            c.core.queue(
                conv,
                MessageContent::text(format!("history {i}")),
                Priority::Routine,
                None,
            );
            let req = c.core.encrypt_next().context("queued")??;
            let done = c.api.submit(conv, &req).await?;
            c.core.sent_next(done.created_at, done.expires_at);
        }
        if history > 0 {
            eprintln!(
                "bench: {history} messages of history written in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
        }
        // From here on every simulated device takes each message in over its
        // socket, decrypts and acknowledges it (sending nothing).
        let tracker = Arc::new(load::Tracker::default());
        for chat in sims.drain(..) {
            running.push(tokio::spawn(load::client(
                chat,
                conv,
                0,
                None,
                Instant::now(),
                tracker.clone(),
                stop_rx.clone(),
            )));
        }
        Some(title)
    };
    node.send(&serde_json::json!({ "conversation": title }).to_string())?;
    let m = node.result().await;
    let _ = stop_tx.send(true);
    for r in running {
        r.await??;
    }
    let m = m?;
    let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
    println!("| measure | result | target (issue 21) |");
    println!("| --- | --- | --- |");
    println!(
        "| cold load to an interactive sign-in form | {:.0} ms | ≤ 1,000 ms |",
        f("load_ms")
    );
    println!(
        "| sign-in form: transferred (HTML, JS, CSS) | {:.0} kB | |",
        f("load_kb")
    );
    println!(
        "| JS + wasm transferred by the time the chat shows (gzip) | {:.0} kB | ≤ 1,500 kB |",
        f("app_kb")
    );
    println!(
        "| first use: PIN chosen → conversation list (Argon2id, keys, registration, catch-up) | {:.0} ms | |",
        f("create_ms")
    );
    println!(
        "| PIN unlock → conversation list (Argon2id in wasm, then catch-up) | {:.0} ms | ≤ 300 ms (Argon2id alone) |",
        f("unlock_ms")
    );
    println!(
        "| browser → browser delivery, {messages} messages at {rate}/s, p50 | {:.1} ms | ≤ 30 ms |",
        f("p50_ms")
    );
    println!(
        "| browser → browser delivery, p99 | {:.1} ms | ≤ 100 ms |",
        f("p99_ms")
    );
    println!(
        "| of which Enter → the submission answered (sender's side), p50 | {:.1} ms | |",
        f("posted_p50_ms")
    );
    if history > 0 {
        println!(
            "| {history} messages of history: written → in both browsers (live, over their sockets) | {:.1} s | |",
            f("history_ms") / 1000.0
        );
        println!(
            "| opening the {history}-message thread → its last message shown | {:.0} ms | ≤ 300 ms (issue 22) |",
            f("open_ms")
        );
        println!(
            "| search over the {history} messages on the device: in the worker, median (max) | {:.1} ms ({:.1} ms) | ≤ 100 ms (issue 22) |",
            f("search_worker_ms"),
            f("search_worker_max_ms")
        );
        println!(
            "| search: Enter → results on screen, median | {:.0} ms | |",
            f("search_screen_ms")
        );
    }
    println!(
        "| tab memory (largest renderer's private memory: page + worker), thread open | {:.0} MB ({:.0} MB after a GC) | ≤ 200 MB with 10,000 messages |",
        f("renderer_mb"),
        f("renderer_gc_mb")
    );
    println!(
        "| the same after the run | {:.0} MB ({:.0} MB after a GC) | |",
        f("renderer_after_mb"),
        f("renderer_after_gc_mb")
    );
    println!(
        "| page JS heap, thread open | {:.1} MB | |",
        f("page_heap_mb")
    );
    r.handle.shutdown();
    Ok(())
}
