//! The clinicians' web app in headless Chromium (`bench/web/web_app.mjs`),
//! on this server over loopback: cold load to an interactive sign-in form,
//! bytes transferred (as sent: gzipped), device set-up and PIN unlock
//! (Argon2id in wasm, then catch-up), and browser → browser delivery latency
//! at a steady rate (two members; the send is stamped when Enter is pressed,
//! the arrival when the message appears in the other browser's list).
//!
//! The app must be built first (`cargo xtask bench web` does); Chromium and
//! the browser tests' Node packages as for the tests (`cargo xtask test`).

use std::path::Path;
use std::process::Command;

use super::*;

pub async fn main(messages: usize, rate: f64) -> anyhow::Result<()> {
    let (r, _, _) = start(None, 2).await?;
    let ca = tempfile::NamedTempFile::new()?;
    std::fs::write(ca.path(), &r.ca)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/web_app.mjs");
    let cfg = serde_json::json!({
        "url": format!("{}/", r.url),
        "org": "bench",
        "password": PASSWORD,
        "users": ["user0@bench.test", "user1@bench.test"],
        "names": ["Bench User 0", "Bench User 1"],
        "pin": "bench pin 4711",
        "messages": messages,
        "rate": rate,
    });
    eprintln!("bench: web app: {messages} messages at {rate}/s between two browsers");
    let out = Command::new("node")
        .arg(&script)
        .arg(cfg.to_string())
        .env("NODE_EXTRA_CA_CERTS", ca.path())
        .output()
        .context("node runs")?;
    anyhow::ensure!(
        out.status.success(),
        "web_app.mjs failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).context("one JSON result")?;
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
    r.handle.shutdown();
    Ok(())
}
