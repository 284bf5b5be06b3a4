//! `cargo xtask <command>`: the project's own build, test and bench entry points.
//!
//! * `serve [args…]`   build the web app (`web`), then build and run the server
//!   (`cargo xtask serve --demo`)
//! * `test [args…]`    the whole test suite (nextest if installed, else cargo test),
//!   after building the web app and installing the browser tests' Node
//!   packages, then the client core's WebAssembly build (`wasm`)
//! * `web`             the clinicians' web app: `npm ci` in `web/` when its lock
//!   changed, then its build (API types generated from `web/openapi.json`, type
//!   check, vite) into `web/dist`, which the server serves at `/`
//! * `wasm`            `cargo check` of `wardline-client`'s core for wasm32-unknown-unknown
//! * `lint`            rustfmt check and clippy with warnings as errors
//! * `bench [args…]`   the benchmarks in `bench/` (release build): no command for
//!   the micro-benchmarks, `load`, `side-by-side` (Matrix Synapse), `crash-loss`,
//!   `escalation`
//! * `api-fuzz`        schemathesis against the served OpenAPI document (`api_fuzz.rs`)
//! * `crash-loss [args…]` the crash-loss run on the debug build the tests share
//!   (CI's smoke run; `bench crash-loss` is the release-built long run)
//! * `fuzz`            the cargo-fuzz targets in `fuzz/`, N seconds each (`fuzz.rs`)
//!
//! No dependencies, so it builds in a second.

mod api_fuzz;
mod fuzz;

use std::env;
use std::path::{Path, PathBuf};
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

/// The workspace's debug build as the test suite has it (`--all-targets`:
/// dev-dependencies built, so features resolved as for the tests), and the
/// directory its executables are in. After `cargo xtask test` this compiles
/// only the executables the tests did not need: a step that ran `cargo build
/// --package X` instead resolved features without the dev-dependencies and
/// rebuilt most of the dependency tree (three builds of it per CI run).
pub fn shared_debug_build() -> Result<std::path::PathBuf, ExitCode> {
    let mut build = cargo();
    build.args(["build", "--quiet", "--workspace", "--all-targets"]);
    let code = run(build);
    if code != ExitCode::SUCCESS {
        return Err(code);
    }
    Ok(target_dir().join("debug"))
}

/// The workspace's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// `npm ci` in `dir`. A failure fails the step in CI; elsewhere it is a
/// warning saying what `is_skipped`, and the step ends there, successfully.
fn npm_ci(dir: &Path, is_skipped: &str) -> Result<(), ExitCode> {
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    let code = run(npm);
    if code == ExitCode::SUCCESS {
        return Ok(());
    }
    if env::var_os("CI").is_some() {
        return Err(code);
    }
    eprintln!("xtask: npm ci failed in {}; {is_skipped}", dir.display());
    Err(ExitCode::SUCCESS)
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The browser test's Node packages (playwright-core, axe-core; pinned in
/// `tests/browser/package-lock.json`), installed once. Chromium itself is
/// Debian's (`apt-get install chromium`, done by `.ci/run`).
fn browser_deps() -> ExitCode {
    let dir = repo_root().join("crates/wardline-server/tests/browser");
    if ["playwright-core", "axe-core"]
        .iter()
        .all(|p| dir.join("node_modules").join(p).exists())
    {
        return ExitCode::SUCCESS;
    }
    match npm_ci(&dir, "the browser tests will be skipped outside CI") {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// The client's protocol core must build for the browser: a web client will
/// reuse it. The WebAssembly standard library comes from rustup if missing;
/// the getrandom backends need the cfg flag (host build scripts are unaffected).
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

/// The web app (`web/`): its Node packages, installed when `package-lock.json`
/// is newer than the last install, then `npm run build` (generates the API
/// types from `openapi.json`, type-checks, bundles into `dist/`). Without
/// npm, outside CI, the server is left to say how to build the app.
fn web_build() -> ExitCode {
    let dir = repo_root().join("web");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if (installed.is_none() || installed < modified(&dir.join("package-lock.json")))
        && let Err(code) = npm_ci(&dir, "the server will answer / with how to build the app")
    {
        return code;
    }
    let mut build = Command::new("npm");
    build.args(["run", "--silent", "build"]).current_dir(&dir);
    run(build)
}

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let Some(cmd) = args.next() else {
        eprintln!(
            "usage: cargo xtask <serve|test|web|wasm|lint|bench|api-fuzz|crash-loss|fuzz> [args…]"
        );
        return ExitCode::FAILURE;
    };
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "serve" => {
            let code = web_build();
            if code != ExitCode::SUCCESS {
                return code;
            }
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
            let code = web_build();
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
        "web" => web_build(),
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
        // The crash-loss smoke run on the shared debug build (`bench
        // crash-loss` is the release-built long run).
        "crash-loss" => match shared_debug_build() {
            Ok(dir) => {
                let mut c = Command::new(dir.join("wardline-bench"));
                c.arg("crash-loss").args(&rest);
                run(c)
            }
            Err(code) => code,
        },
        "fuzz" => fuzz::main(&rest),
        other => {
            eprintln!(
                "xtask: unknown command {other:?}; expected serve, test, web, wasm, lint, bench, api-fuzz, crash-loss or fuzz"
            );
            ExitCode::FAILURE
        }
    }
}
