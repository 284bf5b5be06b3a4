//! Debian's Chromium driven by npm `playwright-core` scripts in
//! `tests/browser/` (one process per script run, one JSON line per step on
//! stdout), for the pages people use: the patient portal, the web app.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium and playwright-core are installed by `.ci/run` and `cargo xtask
/// test`; outside CI a machine without them skips (CI fails instead).
pub fn browser_available() -> bool {
    let ok = Path::new("/usr/bin/chromium").exists()
        && browser_dir().join("node_modules/playwright-core").exists();
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI must run the browser tests: install chromium and run npm ci in tests/browser");
    }
    if !ok {
        eprintln!("skipping: no /usr/bin/chromium or tests/browser/node_modules");
    }
    ok
}

/// Runs `tests/browser/<script>` with `cfg` as its one argument, trusting
/// `ca_pem` (if any) for Node's own requests to the server; returns its
/// steps, or fails the test with what it printed.
pub async fn run_script(script: &str, cfg: Value, ca_pem: Option<&[u8]>) -> Vec<Value> {
    let ca = ca_pem.map(|pem| {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), pem).unwrap();
        file
    });
    let mut node = std::process::Command::new("node");
    node.arg(browser_dir().join(script))
        .arg(cfg.to_string())
        .current_dir(browser_dir());
    if let Some(ca) = &ca {
        node.env("NODE_EXTRA_CA_CERTS", ca.path());
    }
    let out = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The step a script printed as `{"step": name, …}`, or fails the test
/// with every step it did print.
pub fn step(steps: &[Value], name: &str) -> Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {steps:?}"))
        .clone()
}

/// A script run the test talks to while it runs: its steps arrive as it
/// prints them ([`Live::step`]), and the script waits for signals the test
/// gives ([`Live::signal`]; `waitFor(name)` in `tests/browser/lib.mjs`) — for
/// what only the test can do in the middle (move the server's clock, write
/// from the command line).
pub struct Live {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<Value>,
    signals: tempfile::TempDir,
    _ca: Option<tempfile::NamedTempFile>,
}

impl Live {
    /// Starts `tests/browser/<script>` with `cfg` (plus `signals`, the
    /// directory the script watches) as its one argument.
    pub fn start(script: &str, mut cfg: Value, ca_pem: Option<&[u8]>) -> Live {
        let signals = tempfile::tempdir().unwrap();
        cfg["signals"] = Value::String(signals.path().to_string_lossy().into_owned());
        let ca = ca_pem.map(|pem| {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), pem).unwrap();
            file
        });
        let mut node = std::process::Command::new("node");
        node.arg(browser_dir().join(script))
            .arg(cfg.to_string())
            .current_dir(browser_dir())
            .stdout(std::process::Stdio::piped());
        if let Some(ca) = &ca {
            node.env("NODE_EXTRA_CA_CERTS", ca.path());
        }
        let mut child = node.spawn().expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        // A thread, not a task: the test's runtime may be busy driving
        // the server and the command-line devices.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Live {
            child,
            lines,
            seen: Vec::new(),
            signals,
            _ca: ca,
        }
    }

    /// Waits for the script to print step `name` (or fails the test with
    /// what it printed, if it ends first).
    pub async fn step(&mut self, name: &str) -> Value {
        if let Some(s) = self.seen.iter().find(|s| s["step"] == name) {
            return s.clone();
        }
        while let Some(line) = self.lines.recv().await {
            let v: Value = serde_json::from_str(&line).unwrap();
            self.seen.push(v.clone());
            if v["step"] == name {
                return v;
            }
        }
        let status = self.child.wait().unwrap();
        panic!(
            "the script ended ({status}) without step {name}; its steps: {:?} (its stderr is above)",
            self.seen
        );
    }

    /// Lets the script go on past `waitForSignal(name)`.
    pub fn signal(&self, name: &str) {
        self.signal_with(name, Value::Null);
    }

    /// As [`Live::signal`], handing the script `value` (what `waitForSignal`
    /// returns), such as second-factor codes for a time the test moved to.
    pub fn signal_with(&self, name: &str, value: Value) {
        // Written aside and renamed: the script never reads half a file.
        let tmp = self.signals.path().join(format!(".{name}"));
        std::fs::write(&tmp, value.to_string()).unwrap();
        std::fs::rename(tmp, self.signals.path().join(name)).unwrap();
    }

    /// Waits for the script to end, which must be a success; its steps.
    /// (Its output has ended by then: the wait is short.)
    pub async fn finish(mut self) -> Vec<Value> {
        while let Some(line) = self.lines.recv().await {
            self.seen.push(serde_json::from_str(&line).unwrap());
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "browser run failed: {:?}", self.seen);
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A failed test must not leave a browser running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
