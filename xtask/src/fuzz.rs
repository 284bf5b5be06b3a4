//! `cargo xtask fuzz [--seconds N]`: every cargo-fuzz target in `fuzz/`
//! (nightly, libFuzzer, AddressSanitizer) for N seconds each (default 20),
//! from its corpus in `fuzz/corpus/` (kept between runs, not committed).
//! Installs cargo-fuzz if missing. Fails on the first crash; the input is in
//! `fuzz/artifacts/<target>/`.

use std::path::Path;
use std::process::{Command, ExitCode};

use crate::run;

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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for target in TARGETS {
        let mut c = Command::new("cargo");
        c.args(["+nightly", "fuzz", "run", "-O", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .current_dir(&dir);
        let code = run(c);
        if code != ExitCode::SUCCESS {
            eprintln!("xtask fuzz: {target} found a crash (see fuzz/artifacts/{target}/)");
            return code;
        }
    }
    ExitCode::SUCCESS
}
