//! `cargo xtask fuzz [--seconds N]`: every cargo-fuzz target in `fuzz/`
//! (nightly, libFuzzer, AddressSanitizer) for N seconds each (default 20),
//! from its corpus in `fuzz/corpus/` (kept between runs, not committed).
//! Installs cargo-fuzz if missing. Fails on the first crash; the input is in
//! `fuzz/artifacts/<target>/`.

use std::process::{Command, ExitCode};

use crate::{repo_root, run};

pub const TARGETS: [&str; 4] = [
    "mls_ingest",
    "request_bodies",
    "patient_texting",
    "schedule_import",
];

pub fn main(args: &[String]) -> ExitCode {
    let seconds = match args {
        [] => "20".to_owned(),
        [flag, n] if flag == "--seconds" && n.parse::<u32>().is_ok() => n.clone(),
        _ => {
            eprintln!("usage: cargo xtask fuzz [--seconds N]");
            return ExitCode::FAILURE;
        }
    };
    let has_cargo_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        let mut install = Command::new("cargo");
        install.args(["install", "cargo-fuzz"]);
        if run(install) != ExitCode::SUCCESS {
            return ExitCode::FAILURE;
        }
    }
    let dir = repo_root().join("fuzz");
    for target in TARGETS {
        let mut c = Command::new("cargo");
        c.args(["+nightly", "fuzz", "run", "-O", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .current_dir(&dir);
        // Built first, so that a target that no longer compiles (the fuzz
        // crate is outside the workspace: the suite does not build it) is
        // not reported as a crash it found.
        let mut build = Command::new("cargo");
        build
            .args(["+nightly", "fuzz", "build", "-O", target])
            .current_dir(&dir);
        if run(build) != ExitCode::SUCCESS {
            eprintln!("xtask fuzz: {target} does not build (fuzz/fuzz_targets/{target}.rs)");
            return ExitCode::FAILURE;
        }
        let code = run(c);
        if code != ExitCode::SUCCESS {
            eprintln!("xtask fuzz: {target} found a crash (see fuzz/artifacts/{target}/)");
            return code;
        }
    }
    ExitCode::SUCCESS
}
