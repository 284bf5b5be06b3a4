//! `cargo xtask <command>`: the project's own build, test and bench entry points.
//!
//! * `serve [args…]`   build and run the server (`cargo xtask serve --demo`)
//! * `test [args…]`    the whole test suite (nextest if installed, else cargo test),
//!   after installing the browser test's Node packages, then the client core's
//!   WebAssembly build (`wasm`)
//! * `wasm`            `cargo check` of `wardline-client`'s core for wasm32-unknown-unknown
//! * `lint`            rustfmt check and clippy with warnings as errors
//! * `bench [args…]`   the benchmarks in `bench/` (release build): no command for
//!   the micro-benchmarks, `load`, `side-by-side` (Matrix Synapse), `crash-loss`,
//!   `escalation`
//! * `api-fuzz`        schemathesis against the served OpenAPI document (`api_fuzz.rs`)
//! * `fuzz`            the cargo-fuzz targets in `fuzz/`, N seconds each (`fuzz.rs`)
//!
//! No dependencies, so it builds in a second.

mod api_fuzz;
mod fuzz;

use std::env;
use std::process::{Command, ExitCode};

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> ExitCode {
    eprintln!("xtask: running {cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("xtask: cannot run {cmd:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The client's protocol core must build for the browser: a web client will
/// reuse it. The WebAssembly standard library comes from rustup if missing;
/// the getrandom backends need the cfg flag (host build scripts are unaffected).
/// The browser test's Node packages (playwright-core, axe-core; pinned in
/// `tests/browser/package-lock.json`), installed once. Chromium itself is
/// Debian's (`apt-get install chromium`, done by `.ci/run`).
fn browser_deps() -> ExitCode {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/wardline-server/tests/browser");
    if ["playwright-core", "axe-core"]
        .iter()
        .all(|p| dir.join("node_modules").join(p).exists())
    {
        return ExitCode::SUCCESS;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir);
    let code = run(npm);
    if code != ExitCode::SUCCESS && env::var_os("CI").is_none() {
        eprintln!("xtask: npm ci failed; the browser test will be skipped outside CI");
        return ExitCode::SUCCESS;
    }
    code
}

fn wasm_check() -> ExitCode {
    const TARGET: &str = "wasm32-unknown-unknown";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == TARGET)
        })
        .unwrap_or(false);
    if !installed {
        let mut add = Command::new("rustup");
        add.args(["target", "add", TARGET]);
        let code = run(add);
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    let mut c = cargo();
    c.args([
        "check",
        "--package",
        "wardline-client",
        "--no-default-features",
        "--target",
        TARGET,
    ])
    .env("RUSTFLAGS", "--cfg getrandom_backend=\"wasm_js\"");
    run(c)
}

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let Some(cmd) = args.next() else {
        eprintln!("usage: cargo xtask <serve|test|wasm|lint|bench> [args…]");
        return ExitCode::FAILURE;
    };
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "serve" => {
            let mut c = cargo();
            c.args(["run", "--quiet", "--package", "wardline", "--", "serve"])
                .args(&rest);
            run(c)
        }
        "test" => {
            // In CI, PostgreSQL is part of the suite, never optional.
            if env::var_os("CI").is_some() && env::var_os("WARDLINE_TEST_POSTGRES_URL").is_none() {
                eprintln!(
                    "xtask: CI is set but WARDLINE_TEST_POSTGRES_URL is not; PostgreSQL tests are required"
                );
                return ExitCode::FAILURE;
            }
            if env::var_os("WARDLINE_TEST_POSTGRES_URL").is_none() {
                eprintln!(
                    "xtask: WARDLINE_TEST_POSTGRES_URL is not set: PostgreSQL variants will be skipped"
                );
            }
            let code = browser_deps();
            if code != ExitCode::SUCCESS {
                return code;
            }
            let mut c = cargo();
            if has_nextest() {
                c.args(["nextest", "run", "--workspace", "--no-fail-fast"])
                    .args(&rest);
            } else {
                c.args(["test", "--workspace", "--no-fail-fast"])
                    .args(&rest);
            }
            let code = run(c);
            if code != ExitCode::SUCCESS {
                return code;
            }
            wasm_check()
        }
        "wasm" => wasm_check(),
        "lint" => {
            let mut fmt = cargo();
            fmt.args(["fmt", "--all", "--check"]);
            let code = run(fmt);
            if code != ExitCode::SUCCESS {
                return code;
            }
            let mut clippy = cargo();
            clippy.args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]);
            run(clippy)
        }
        "bench" => {
            let mut c = cargo();
            c.args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "wardline-bench",
                "--",
            ])
            .args(&rest);
            run(c)
        }
        "api-fuzz" => api_fuzz::main(&rest),
        "fuzz" => fuzz::main(&rest),
        other => {
            eprintln!(
                "xtask: unknown command {other:?}; expected serve, test, wasm, lint, bench, api-fuzz or fuzz"
            );
            ExitCode::FAILURE
        }
    }
}
