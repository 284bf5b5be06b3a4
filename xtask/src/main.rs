//! `cargo xtask <command>`: the project's own build, test and bench entry points.
//!
//! * `serve [args…]`   build the web app (`web`), then build and run the server
//!   (`cargo xtask serve --demo`)
//! * `test [args…]`    the whole test suite (nextest if installed, else cargo test),
//!   after building the web app and installing the browser tests' Node
//!   packages
//! * `web`             the clinicians' web app: the client core's wasm bindings
//!   (`wasm`), `npm ci` in `web/` when its lock changed, then its build (API
//!   types generated from `web/openapi.json`, type check, vite) into
//!   `web/dist`, which the server serves at `/`
//! * `wasm`            the client core's wasm bindings (`crates/wardline-client-wasm`,
//!   wasm-bindgen-cli installed at the crate's version if missing) into `web/src/wasm/`
//! * `wasm-test`       the client core's wasm-bindgen tests in a dedicated
//!   worker of Chromium (chromedriver); part of `test`
//! * `lint`            rustfmt check and clippy with warnings as errors
//! * `bench [args…]`   the benchmarks in `bench/` (release build): no command for
//!   the micro-benchmarks, `load`, `side-by-side` (Matrix Synapse), `crash-loss`,
//!   `escalation`, `web` (the web app in Chromium; builds it first), `push`,
//!   `console` (audit search and analytics at size)
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
    if ["playwright-core", "axe-core", "web-push-testing"]
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

/// The WebAssembly standard library, from rustup if missing.
fn wasm_target() -> ExitCode {
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
    if installed {
        return ExitCode::SUCCESS;
    }
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    run(add)
}

/// The `wasm-bindgen` crate's version in `Cargo.lock`: the CLI must be
/// exactly it (the two share an unversioned schema).
fn wasm_bindgen_version() -> Option<String> {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"wasm-bindgen\"" {
            let v = lines.next()?.strip_prefix("version = \"")?;
            return Some(v.trim_end_matches('"').to_owned());
        }
    }
    None
}

/// `wasm-bindgen` (the CLI) at the crate's version, installed with cargo
/// (about 3 minutes, once per machine) when missing or another version.
fn wasm_bindgen_cli() -> Result<(), ExitCode> {
    let Some(version) = wasm_bindgen_version() else {
        eprintln!("xtask: no wasm-bindgen in Cargo.lock");
        return Err(ExitCode::FAILURE);
    };
    let have = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if have == format!("wasm-bindgen {version}") {
        return Ok(());
    }
    let mut install = cargo();
    install.args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        &format!("={version}"),
    ]);
    match run(install) {
        ExitCode::SUCCESS => Ok(()),
        code => Err(code),
    }
}

/// The client core's JavaScript bindings (`crates/wardline-client-wasm`),
/// built for wasm32 (profile `wasm`: optimised for size) and bound by
/// wasm-bindgen into `web/src/wasm/`, where the worker imports them. The
/// getrandom backends need the cfg flag, for the wasm target only.
fn wasm_build() -> ExitCode {
    let code = wasm_target();
    if code != ExitCode::SUCCESS {
        return code;
    }
    if let Err(code) = wasm_bindgen_cli() {
        return code;
    }
    let mut build = wasm_cargo(&["build", "--quiet", "--lib"]);
    build.args(["--profile", "wasm"]);
    let code = run(build);
    if code != ExitCode::SUCCESS {
        return code;
    }
    let module = target_dir().join("wasm32-unknown-unknown/wasm/wardline_client_wasm.wasm");
    let mut bind = Command::new("wasm-bindgen");
    bind.args(["--target", "web", "--out-dir"])
        .arg(repo_root().join("web/src/wasm"))
        .arg(module);
    run(bind)
}

/// `cargo <command> --package wardline-client-wasm --target wasm32-unknown-unknown`
/// with the getrandom backend the browser needs (a cfg flag, for the wasm
/// target only); the build and its tests share one profile and flags, so
/// one set of compiled dependencies.
fn wasm_cargo(command: &[&str]) -> Command {
    let mut c = cargo();
    c.args(command)
        .args([
            "--package",
            "wardline-client-wasm",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            "--cfg getrandom_backend=\"wasm_js\"",
        );
    c
}

/// The client core's wasm tests (`crates/wardline-client-wasm/tests/in_browser.rs`)
/// in a dedicated worker of Debian's Chromium: wasm-bindgen-test-runner (from
/// the pinned wasm-bindgen-cli) drives it through chromedriver (Debian's
/// `chromium-driver`), with the options in the crate's `webdriver.json`
/// (headless, no sandbox as root). Built in the `wasm` profile with the web
/// build's flags, so it shares that build's dependencies. Without
/// chromedriver, outside CI, it says so and passes; in CI that fails.
fn wasm_test() -> ExitCode {
    let code = wasm_target();
    if code != ExitCode::SUCCESS {
        return code;
    }
    if let Err(code) = wasm_bindgen_cli() {
        return code;
    }
    let driver = env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    if !driver.exists() {
        eprintln!(
            "xtask: no chromedriver at {} (apt-get install chromium-driver): the wasm tests in Chromium are skipped",
            driver.display()
        );
        return if env::var_os("CI").is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    // (No --quiet: cargo passes it on to the runner, which refuses it.)
    let mut test = wasm_cargo(&["test", "--test", "in_browser"]);
    test.args(["--profile", "wasm"])
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            "wasm-bindgen-test-runner",
        )
        .env("CHROMEDRIVER", &driver)
        // Argon2id at the store's parameters, several times per test.
        .env("WASM_BINDGEN_TEST_TIMEOUT", "120");
    run(test)
}

/// The web app (`web/`): the core's wasm bindings (`wasm_build`), its Node
/// packages, installed when `package-lock.json` is newer than the last
/// install, then `npm run build` (generates the API types from
/// `openapi.json`, type-checks, bundles into `dist/`). Without npm, outside
/// CI, the server is left to say how to build the app.
fn web_build() -> ExitCode {
    let code = wasm_build();
    if code != ExitCode::SUCCESS {
        return code;
    }
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
            "usage: cargo xtask <serve|test|web|wasm|wasm-test|lint|bench|api-fuzz|crash-loss|fuzz> [args…]"
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
            let code = wasm_test();
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
            run(c)
        }
        "wasm" => wasm_build(),
        "wasm-test" => wasm_test(),
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
            // The web app's benchmarks serve the app: build it first (a
            // release server embeds it), and the browser tests' Node
            // packages they drive Chromium with.
            if rest
                .first()
                .is_some_and(|c| c == "web" || c == "push" || c == "console")
            {
                for step in [web_build, browser_deps] {
                    let code = step();
                    if code != ExitCode::SUCCESS {
                        return code;
                    }
                }
            }
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
