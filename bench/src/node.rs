//! The benchmarks' Node scripts (`bench/web/*.mjs`, Chromium through
//! playwright-core): started with one JSON argument and the server's
//! certificate trusted (`NODE_EXTRA_CA_CERTS`, which the scripts also hand
//! to Chromium), fed lines on stdin, read line by line on stdout; the last
//! line is their result.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::Context;

pub struct NodeScript {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    _ca: tempfile::NamedTempFile,
}

impl NodeScript {
    /// Starts `bench/web/<script>` with `cfg`, trusting `ca` (PEM).
    pub fn start(script: &str, cfg: &serde_json::Value, ca: &[u8]) -> anyhow::Result<NodeScript> {
        let ca_file = tempfile::NamedTempFile::new()?;
        std::fs::write(ca_file.path(), ca)?;
        let mut child = Command::new("node")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("web")
                    .join(script),
            )
            .arg(cfg.to_string())
            .env("NODE_EXTRA_CA_CERTS", ca_file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("node runs")?;
        let stdin = child.stdin.take().context("stdin")?;
        // The script's lines, read on a thread of their own (blocking reads).
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let out = child.stdout.take().context("stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(NodeScript {
            name: script.to_owned(),
            child,
            stdin: Some(stdin),
            lines,
            _ca: ca_file,
        })
    }

    /// The script's next line; an error if it ended first.
    pub async fn line(&mut self) -> anyhow::Result<String> {
        self.lines
            .recv()
            .await
            .with_context(|| format!("{} ended early (its error is above)", self.name))
    }

    /// Writes one line to the script's input.
    pub fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("input already closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes the script's input, waits for it to end and gives its last
    /// line as JSON; an error if it failed.
    pub async fn result(mut self) -> anyhow::Result<serde_json::Value> {
        drop(self.stdin.take());
        let mut last = String::new();
        while let Some(line) = self.lines.recv().await {
            last = line;
        }
        let mut child = self.child;
        let status = tokio::task::spawn_blocking(move || child.wait()).await??;
        anyhow::ensure!(
            status.success(),
            "{} failed (its error is above); last line: {last}",
            self.name
        );
        let m: serde_json::Value = serde_json::from_str(&last).context("one JSON result")?;
        eprintln!("bench: {} measured {m}", self.name);
        Ok(m)
    }
}
