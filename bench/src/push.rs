//! Web Push latency (issue 22): a STAT message → the notification shown by a
//! browser whose Wardline tab is closed. The push service is npm
//! `web-push-testing` on loopback (a real RFC 8030 service: it checks each
//! push's VAPID token and decrypts its RFC 8291 payload), so the figure is
//! Wardline's part plus a push service that answers at once — not Google's
//! or Mozilla's, whose own delivery to a device is outside Wardline's hands.
//!
//! A native device (client SDK, real MLS) sends `--pushes` STAT messages at
//! `--rate` to a group with the browser's user; `bench/web/push.mjs` stamps
//! each push as the service holds it and as the service worker shows it
//! (handed over the DevTools protocol, polled every 5 ms). Times are the
//! machine's wall clock in both processes, from just before the send.
//! The app must be built first (`cargo xtask bench push` does).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use wardline_client::core::MessageContent;
use wardline_proto::messaging::Priority;

use super::node::NodeScript;
use super::*;

/// web-push-testing on a free loopback port, stopped when dropped.
struct PushService(std::process::Child, u16);

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn browser_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/wardline-server/tests/browser")
}

async fn push_service() -> anyhow::Result<PushService> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let script = browser_dir().join("node_modules/web-push-testing/src/bin/server.js");
    anyhow::ensure!(
        script.exists(),
        "no web-push-testing: run npm ci in crates/wardline-server/tests/browser"
    );
    let child = Command::new("node")
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .context("node runs")?;
    let svc = PushService(child, port);
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http
            .post(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(svc);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("web-push-testing did not start")
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

pub async fn main(pushes: usize, rate: f64) -> anyhow::Result<()> {
    let svc = push_service().await?;
    let origin = format!("http://localhost:{}", svc.1);
    let (r, _, _) = start_with(None, 2, |c| c.push.services = vec![origin.clone()]).await?;
    let cfg = serde_json::json!({
        "url": format!("{}/", r.url),
        "org": "bench",
        "password": PASSWORD,
        "pin": "bench pin 4711",
        "email": "user0@bench.test",
        "pushService": origin,
    });
    let mut node = NodeScript::start("push.mjs", &cfg, &r.ca)?;
    let ready = node.line().await?;
    anyhow::ensure!(
        ready.contains("ready"),
        "unexpected line from push.mjs: {ready}"
    );

    // The sender: bench user 1's native device, in a group with user 0.
    let dir = tempfile::tempdir()?;
    let mut sender = messaging::device(&r.url, &r.ca, 1, dir.path()).await?;
    let browser_user = sender
        .api
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.email == "user0@bench.test")
        .context("bench user 0")?
        .id;
    let conv = messaging::group_of(
        std::slice::from_mut(&mut sender),
        &[browser_user],
        "Push bench".into(),
    )
    .await?;
    eprintln!(
        "bench: web push: {pushes} STAT messages at {rate}/s to a browser with Wardline closed"
    );
    let gap = Duration::from_secs_f64(1.0 / rate);
    for i in 0..pushes {
        let started = Instant::now();
        let sent = now_ms();
        let id = sender
            .send(
                conv,
                MessageContent::text(format!("STAT bench {i}")),
                Priority::Stat,
            )
            .await?;
        node.send(&serde_json::json!({ "message": id, "sent": sent }).to_string())?;
        tokio::time::sleep(gap.saturating_sub(started.elapsed())).await;
    }
    node.send("end")?;
    let m = node.result().await?;
    let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
    println!("| measure | result | target (issue 22) |");
    println!("| --- | --- | --- |");
    println!(
        "| STAT sent → push held by the push service (server: fan-out, queue, RFC 8291 encryption, VAPID, POST), p50 / p99 | {:.0} / {:.0} ms | |",
        f("service_p50_ms"),
        f("service_p99_ms")
    );
    println!(
        "| STAT sent → notification shown, Wardline tab closed ({} pushes, {} hand-overs), p50 / p99 (max) | {:.0} / {:.0} ms ({:.0} ms) | measured |",
        m["pushes"],
        m["deliveries"],
        f("shown_p50_ms"),
        f("shown_p99_ms"),
        f("shown_max_ms")
    );
    r.handle.shutdown();
    Ok(())
}
