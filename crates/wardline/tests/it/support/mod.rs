//! Running the `wardline` binary in tests: a command with a profile, a server
//! process, sign-in with TOTP enrolment driven through stdin.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_wardline");
pub const PASSWORD: &str = "lantern orbit mossy teacup";
/// The password a user chooses at first sign-in, in place of the temporary
/// one an administrator set (`PASSWORD`).
pub const OWN_PASSWORD: &str = "violet harbour quill 1987";

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub Child, Drained);

/// A child's stdout and stderr, read as they come: a server that logs more
/// than a pipe holds (64 KiB) would otherwise block on its next log line
/// and stop answering — which once looked like a server hang.
struct Drained {
    out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    err: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Killed {
    /// Spawns `cmd` with its stdout and stderr piped and drained.
    pub fn spawn(cmd: &mut Command) -> Killed {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let drain = |mut r: Box<dyn std::io::Read + Send>| {
            let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let b = buf.clone();
            let t = std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    b.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            });
            (buf, t)
        };
        let (out, t1) = drain(Box::new(child.stdout.take().unwrap()));
        let (err, t2) = drain(Box::new(child.stderr.take().unwrap()));
        Killed(
            child,
            Drained {
                out,
                err,
                threads: vec![t1, t2],
            },
        )
    }

    /// (stdout, stderr) of an exited child, all of it.
    pub fn output(&mut self) -> (String, String) {
        for t in self.1.threads.drain(..) {
            let _ = t.join();
        }
        let text = |b: &std::sync::Mutex<Vec<u8>>| {
            String::from_utf8_lossy(&b.lock().unwrap()).into_owned()
        };
        (text(&self.1.out), text(&self.1.err))
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `wardline args…` with `stdin`, returning (success, stdout, stderr).
pub fn wardline(profile: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    wardline_env(profile, args, stdin, &[])
}

pub fn wardline_env(
    profile: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("WARDLINE_PROFILE", profile)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `admin bootstrap` of the organisation "Test Clinic" (`test`) with its
/// administrator ada@test.example, as a host operator would, offline.
pub fn bootstrap_test_clinic(profile: &Path, data: &Path) -> (bool, String, String) {
    wardline(
        profile,
        &[
            "admin",
            "bootstrap",
            "--data-dir",
            data.to_str().unwrap(),
            "--org-name",
            "Test Clinic",
            "--org-slug",
            "test",
            "--email",
            "ada@test.example",
            "--name",
            "Ada Admin",
        ],
        &format!("{PASSWORD}\n"),
    )
}

pub fn totp_now(secret: &str) -> String {
    let out = Command::new(BIN)
        .args(["totp-code", secret])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `wardline serve` on `port`, once `/readyz` answers. Returns the process,
/// the base URL and the development certificate.
pub fn serve(data: &Path, port: u16) -> (Killed, String, PathBuf) {
    let url = format!("https://127.0.0.1:{port}");
    let server = Killed::spawn(
        Command::new(BIN)
            .args([
                "serve",
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            // Checkpoints often enough that a short test has signed ones.
            .env("WARDLINE_AUDIT__CHECKPOINT_EVERY", "20"),
    );
    let cert = data.join("tls/cert.pem");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if cert.exists() {
            let http = reqwest::blocking::Client::builder()
                .tls_certs_only(
                    reqwest::Certificate::from_pem_bundle(&std::fs::read(&cert).unwrap()).unwrap(),
                )
                .build()
                .unwrap();
            if http
                .get(format!("{url}/readyz"))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, url, cert)
}

/// First sign-in of a user: password, TOTP enrolment answered from the
/// printed secret. Returns the TOTP secret and the transcript (stderr).
pub fn login_enrolling(
    profile: &Path,
    url: &str,
    cert: &Path,
    org: &str,
    email: &str,
) -> (String, String) {
    // Signed in from the certificate's directory with a relative path, as a
    // person would; every later command runs elsewhere (issue 18, item 8:
    // the profile kept the relative path and failed in any other directory).
    let mut login = Command::new(BIN)
        .args([
            "login",
            "--server",
            url,
            "--ca-cert",
            cert.file_name().unwrap().to_str().unwrap(),
            "--org",
            org,
            "--email",
            email,
        ])
        .current_dir(cert.parent().unwrap())
        .env("WARDLINE_PROFILE", profile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = login.stdin.take().unwrap();
    writeln!(stdin, "{PASSWORD}").unwrap();
    let lines = BufReader::new(login.stderr.take().unwrap()).lines();
    let mut transcript = String::new();
    let mut secret = None;
    for line in lines {
        let line = line.unwrap();
        transcript.push_str(&line);
        transcript.push('\n');
        if let Some(s) = line.split("by hand: ").nth(1) {
            let s = s.trim_end_matches(')').to_owned();
            writeln!(stdin, "{}", totp_now(&s)).unwrap();
            secret = Some(s);
        }
        // A user an administrator created chooses their own password
        // (issue 18, item 8); later sign-ins use it.
        if line.starts_with("Your password was set by an administrator") {
            writeln!(stdin, "{OWN_PASSWORD}\n{OWN_PASSWORD}").unwrap();
        }
    }
    assert!(
        login.wait().unwrap().success(),
        "login failed:\n{transcript}"
    );
    (secret.expect("no enrolment prompt"), transcript)
}

/// Server log (stderr) of a stopped server process.
pub fn stop_and_log(mut server: Killed) -> String {
    let pid = server.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stopped = true;
    while server.0.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            stopped = false;
            let _ = server.0.kill();
            let _ = server.0.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, log) = server.output();
    // Said with what the server logged last, which says where it was.
    assert!(
        stopped,
        "server did not stop on SIGTERM within 20 s; its log ends:\n{}",
        log.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    log
}

/// Passphrase of the test profiles' message stores.
pub const PASS_ENV: (&str, &str) = ("WARDLINE_PASSPHRASE", "7314 lantern");

/// Runs `wardline args…` (with the store passphrase) and returns its stdout;
/// fails the test, with both outputs, if the command fails.
pub fn run_ok(profile: &Path, args: &[&str]) -> String {
    let (ok, out, err) = wardline_env(profile, args, "", &[PASS_ENV]);
    assert!(ok, "wardline {args:?} failed:\n{out}\n{err}");
    out
}

/// `admin users create` as the administrator in `admin`.
pub fn create_user(admin: &Path, email: &str, name: &str, role: &str) {
    let (ok, _, err) = wardline(
        admin,
        &[
            "admin", "users", "create", "--email", email, "--name", name, "--role", role,
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
}
