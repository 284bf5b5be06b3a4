//! The `wardline` binary end to end: offline bootstrap, a real server process,
//! `login` with TOTP enrolment driven through stdin, admin commands, KEK
//! rotation while the server runs, revocation, and graceful shutdown.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn bootstrap_serve_login_admin_rotate_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let profile = dir.path().join("profile.json");

    // Host operator creates the organisation offline.
    let (ok, out, err) = bootstrap_test_clinic(&profile, &data);
    assert!(ok, "bootstrap: {out} {err}");
    assert!(out.contains("created organisation Test Clinic"), "{out}");

    // The server, as a separate process.
    let (mut server, url, cert) = serve(&data, free_port());

    // Login with enrolment: read the secret from stderr, answer with a code.
    let mut login = Command::new(BIN)
        .args([
            "login",
            "--server",
            &url,
            "--ca-cert",
            cert.to_str().unwrap(),
            "--org",
            "test",
            "--email",
            "ada@test.example",
        ])
        .env("WARDLINE_PROFILE", &profile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = login.stdin.take().unwrap();
    writeln!(stdin, "{PASSWORD}").unwrap();
    let mut lines = BufReader::new(login.stderr.take().unwrap()).lines();
    let mut transcript = String::new();
    let mut secret = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        transcript.push_str(&line);
        transcript.push('\n');
        if let Some(s) = line.split("by hand: ").nth(1) {
            let s = s.trim_end_matches(')').to_owned();
            writeln!(stdin, "{}", totp_now(&s)).unwrap();
            secret = Some(s);
        }
    }
    assert!(
        login.wait().unwrap().success(),
        "login failed:\n{transcript}"
    );
    assert!(secret.is_some(), "no enrolment prompt:\n{transcript}");
    assert!(transcript.contains("recovery codes"), "{transcript}");
    assert_eq!(
        std::fs::metadata(&profile).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !transcript.contains("wls_"),
        "the session token is never printed"
    );

    let (ok, out, err) = wardline(&profile, &["whoami"], "");
    assert!(ok, "{err}");
    assert!(
        out.contains("Ada Admin <ada@test.example> in Test Clinic"),
        "{out}"
    );

    let (ok, _, err) = wardline(
        &profile,
        &[
            "admin",
            "users",
            "create",
            "--email",
            "nina@test.example",
            "--name",
            "Nina Nurse",
            "--role",
            "nurse",
            "--phone",
            "+15550100200",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = wardline(&profile, &["admin", "users", "list", "--json"], "");
    assert!(ok, "{err}");
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);
    let (ok, _, err) = wardline(
        &profile,
        &["admin", "users", "suspend", "nina@test.example"],
        "",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = wardline(
        &profile,
        &[
            "admin",
            "users",
            "create",
            "--email",
            "x@test.example",
            "--name",
            "X",
            "--role",
            "surgeon",
        ],
        "",
    );
    assert!(!ok && err.contains("unknown role"), "{err}");

    // Rotate the KEK while the server runs; everything keeps working.
    let (ok, out, err) = wardline(
        &profile,
        &["admin", "rotate-kek", "--data-dir", data_s, "--retire-old"],
        "",
    );
    assert!(ok, "rotate: {out} {err}");
    assert!(
        out.contains("rewrapped") && out.contains("retired"),
        "{out}"
    );
    let (ok, out, err) = wardline(
        &profile,
        &["admin", "users", "show", "nina@test.example", "--json"],
        "",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("Nina Nurse") && out.contains("suspended"),
        "{out}"
    );

    // The audit trail is the compliance officer's, not the administrator's.
    let (ok, _, err) = wardline(&profile, &["audit", "search", "--action", "auth.login"], "");
    assert!(!ok && err.contains("audit_read"), "{err}");

    // Revoking one's own sessions signs the CLI out at once.
    let (ok, out, _) = wardline(
        &profile,
        &["admin", "sessions", "revoke", "ada@test.example"],
        "",
    );
    assert!(ok && out.contains("revoked 1"), "{out}");
    let (ok, _, err) = wardline(&profile, &["whoami"], "");
    assert!(!ok && err.contains("session"), "{err}");

    // SIGTERM: graceful shutdown, exit status 0.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "server exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, log) = server.output();
    for secret_text in [
        PASSWORD,
        "ada@test.example",
        "Nina Nurse",
        "+15550100200",
        "wls_",
    ] {
        assert!(
            !log.contains(secret_text),
            "server log contains {secret_text:?}"
        );
    }
    assert!(
        log.contains("\"route\":\"/api/v1/users/{id}/suspend\""),
        "request log uses route templates: {log}"
    );
    // L8 of the 2026-11-30 findings: a clean stop logged an ERROR (a loop
    // met the closed pool). The loops now stop first.
    assert!(
        !log.contains("\"level\":\"ERROR\""),
        "a clean shutdown logged an error: {log}"
    );
    // L7: owner-only modes for the database, keys and certificate.
    for (path, mode) in [
        ("wardline.db", 0o600),
        ("keys", 0o700),
        ("keys/kek.json", 0o600),
        ("tls", 0o700),
        ("tls/key.pem", 0o600),
    ] {
        let got = std::fs::metadata(data.join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(got, mode, "{path}: {got:o}");
    }

    // The audit trail verifies (the server signed a last checkpoint on the way
    // out), then incrementally, and a changed row is named.
    let verify = || wardline(&profile, &["audit", "verify", "--data-dir", data_s], "");
    let (ok, out, err) = verify();
    assert!(ok, "verify: {out} {err}");
    assert!(
        out.contains("OK: the log is intact; verified up to the signed checkpoint"),
        "{out}"
    );
    let (ok, out, _) = verify();
    assert!(ok && out.contains("incremental from checkpoint"), "{out}");
    let state_file = data.join("audit-verified.json");
    assert_eq!(
        std::fs::metadata(&state_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let state = std::fs::read(&state_file).unwrap();
    let db = data.join("wardline.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::raw_sql(
            "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET outcome = 'failure' WHERE seq = 3",
        )
        .execute(&mut c)
        .await
        .unwrap();
    });
    let (ok, out, _) = wardline(
        &profile,
        &["audit", "verify", "--full", "--data-dir", data_s],
        "",
    );
    assert!(!ok, "{out}");
    assert!(out.contains("TAMPERING: entry 3 was modified"), "{out}");
    // H1: a failing --full run keeps the state as it was, and the verifier
    // never creates a key file (L3).
    assert_eq!(std::fs::read(&state_file).unwrap(), state);
    std::fs::rename(data.join("keys/kek.json"), data.join("kek.json.aside")).unwrap();
    let (ok, out, err) = verify();
    assert!(!ok, "{out}");
    assert!(err.contains("not found"), "{err}");
    assert!(
        !data.join("keys/kek.json").exists(),
        "the verifier made a key file"
    );
}

/// Issue 18, item 8: `--json` before the subcommand is taken, and output cut
/// short (`wardline … | head`) ends the command quietly instead of a panic.
#[test]
fn json_anywhere_and_a_closed_pipe() {
    let missing = Path::new("/nonexistent/wardline-profile.json");
    let (ok, _, err) = wardline(missing, &["--json", "whoami"], "");
    assert!(!ok && err.contains("no profile"), "{err}");
    let mut child = Command::new(BIN)
        .args(["totp-code", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

/// The key as the web app's enrolment screen shows it (groups of four) is
/// taken as typed or pasted — one quoted argument or several — and gives
/// the same code as the key written solid (a newcomer's finding).
#[test]
fn totp_code_takes_the_key_as_the_app_shows_it() {
    let code = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("totp-code")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let solid = code(&["JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"]);
    // (A code may roll over between two runs: compare with a third.)
    let spaced = code(&["JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"]);
    let split = code(&[
        "jbsw", "y3dp", "ehpk", "3pxp", "jbsw", "y3dp", "ehpk", "3pxp",
    ]);
    let again = code(&["JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"]);
    assert!(
        solid == spaced || spaced == again,
        "{solid} {spaced} {again}"
    );
    assert!(solid == split || split == again, "{solid} {split} {again}");
    assert_eq!(spaced.trim().len(), 6, "{spaced}");
}
