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
