//! `wardline chat` end to end, as people at terminals would use it: two users
//! on three devices (Nina has two) against `wardline serve`, one device offline
//! and catching up, a message written while the server is down and sent on
//! reconnect, real-time delivery with `chat watch`, receipts, and no message
//! text in the server's log or database.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn chat(profile: &Path, args: &[&str]) -> String {
    let mut full = vec!["chat"];
    full.extend_from_slice(args);
    let (ok, out, err) = wardline_env(profile, &full, "", &[PASS_ENV]);
    assert!(ok, "wardline chat {args:?} failed:\n{out}\n{err}");
    out
}

/// `wardline chat watch ARGS…` on `profile`, in the background.
fn watch(profile: &Path, args: &[&str]) -> Killed {
    Killed::spawn(
        Command::new(BIN)
            .args(["chat", "watch"])
            .args(args)
            .env("WARDLINE_PROFILE", profile)
            .env(PASS_ENV.0, PASS_ENV.1),
    )
}

/// Waits (at most `within`) for a watcher started with `--count` to exit;
/// its (stdout, stderr).
fn finished(mut w: Killed, within: Duration, what: &str) -> (String, String) {
    let deadline = std::time::Instant::now() + within;
    while w.0.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    w.output()
}

#[test]
fn two_users_three_devices_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = |name: &str| dir.path().join(format!("{name}.json"));
    let (ada, bo, nina1, nina2) = (p("ada"), p("bo"), p("nina-phone"), p("nina-ipad"));

    let (ok, out, err) = bootstrap_test_clinic(&ada, &data);
    assert!(ok, "{out} {err}");
    let port = free_port();
    let (server, url, cert) = serve(&data, port);
    login_enrolling(&ada, &url, &cert, "test", "ada@test.example");
    for (email, name, role) in [
        ("bo@test.example", "Dr Bo Physician", "physician"),
        ("nina@test.example", "Nina Nurse", "nurse"),
    ] {
        let (ok, _, err) = wardline(
            &ada,
            &[
                "admin",
                "users",
                "create",
                "--email",
                email,
                "--name",
                name,
                "--role",
                role,
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        );
        assert!(ok, "{err}");
    }
    login_enrolling(&bo, &url, &cert, "test", "bo@test.example");
    let (nina_secret, _) = login_enrolling(&nina1, &url, &cert, "test", "nina@test.example");
    // Nina's second device: same account, its own device id and session.
    std::thread::sleep(Duration::from_secs(1));
    let code = {
        // A fresh TOTP step, so the code is not refused as a replay.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        std::thread::sleep(Duration::from_secs(30 - now % 30 + 1));
        totp_now(&nina_secret)
    };
    let (ok, _, err) = wardline(
        &nina2,
        &[
            "login",
            "--server",
            &url,
            "--ca-cert",
            cert.to_str().unwrap(),
            "--org",
            "test",
            "--email",
            "nina@test.example",
            "--code",
            &code,
        ],
        // Her own, chosen at her first sign-in (the temporary one is gone).
        &format!("{OWN_PASSWORD}\n"),
    );
    assert!(ok, "{err}");

    // Each device registers on first use (its store is sealed by the passphrase).
    chat(&nina1, &["list"]);
    chat(&nina2, &["list"]);
    // Nina's phone is told about the new device on her account, once.
    let (ok, _, err) = wardline_env(&nina1, &["chat", "list"], "", &[PASS_ENV]);
    assert!(
        ok && err.contains("a new device was registered to your account"),
        "{err}"
    );
    let (_, _, err) = wardline_env(&nina1, &["chat", "list"], "", &[PASS_ENV]);
    assert!(!err.contains("new device"), "{err}");
    let devices = chat(&nina1, &["devices"]);
    assert_eq!(
        devices.lines().count(),
        3,
        "header and two devices: {devices}"
    );
    assert!(devices.contains("(this one)"), "{devices}");
    let conv = chat(
        &bo,
        &[
            "new",
            "--with",
            "nina@test.example",
            "--title",
            "Bed 7 handover",
            "--patient",
            "MRN-777001",
        ],
    )
    .trim()
    .to_owned();
    assert_eq!(conv.len(), 36, "{conv}");
    let listed = chat(&bo, &["list"]);
    assert!(
        listed.contains("Bed 7 handover") && listed.contains("Nina Nurse"),
        "{listed}"
    );

    chat(
        &bo,
        &[
            "send",
            &conv[..8],
            "CANARY-CLI potassium 6.9, repeat stat",
            "--priority",
            "stat",
        ],
    );
    // L1 of the 2026-11-30 findings: a sender's terminal escapes reached the
    // reader's terminal raw (window title, colours, overwritten lines).
    chat(
        &bo,
        &[
            "send",
            &conv[..8],
            "esc \x1b]0;PWNED-TITLE\x07\x1b[31mRED\x1b[0m\roverwrite \u{202e}txt.exe",
        ],
    );
    // Nina's phone reads (and so marks read); her iPad stays offline.
    let read = chat(&nina1, &["read", &conv[..8]]);
    assert!(
        !read.contains('\x1b') && !read.contains('\r') && !read.contains('\u{202e}'),
        "raw control characters reached the terminal: {read:?}"
    );
    assert!(
        read.contains("esc ^[]0;PWNED-TITLE^G^[[31mRED^[[0m^Moverwrite <U+202E>txt.exe"),
        "{read}"
    );
    assert!(
        read.contains("CANARY-CLI potassium 6.9") && read.contains("[STAT]"),
        "{read}"
    );
    let canary_id = read.lines().find(|l| l.contains("CANARY-CLI")).unwrap()[..8].to_owned();
    chat(
        &nina1,
        &["send", &conv[..8], "on my way", "--reply-to", &canary_id],
    );

    // The iPad catches up: both messages, the reply marked as one.
    let read = chat(&nina2, &["read", &conv[..8]]);
    assert!(read.contains("CANARY-CLI potassium 6.9"), "{read}");
    assert!(
        read.contains(&format!("you (reply to {canary_id}): on my way")),
        "{read}"
    );

    // Receipts of Bo's message, per device of Nina's.
    // Columns of Nina's rows: recipient, device, delivered, read ("—" when not yet).
    let nina_receipts = |args: &[&str]| {
        let mut all = vec!["receipts", &conv[..8]];
        all.extend_from_slice(args);
        chat(&bo, &all)
            .lines()
            .filter(|l| l.starts_with("Nina Nurse"))
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let rows = nina_receipts(&[]);
    let receipts = format!("{rows:?}");
    assert_eq!(rows.len(), 2, "{receipts}");
    // Columns: recipient, device, delivered, read ("—" when not yet).
    assert!(
        rows.iter().all(|r| r.len() == 4 && r[2] != "—"),
        "both delivered: {receipts}"
    );
    // Both of Nina's devices ran `chat read`, which marks the thread read.
    assert!(rows.iter().all(|r| r[3] != "—"), "both read: {receipts}");

    // Issue 19, case 15: a receipt means "seen". An urgent instruction and
    // two routine lines; `read --last 1` shows only the last, so only the
    // last is marked read, and the reader is told what was not shown.
    chat(
        &bo,
        &[
            "send",
            &conv[..8],
            "Bed 7: hold the 18:00 heparin, platelets 41",
            "--priority",
            "urgent",
        ],
    );
    let sent: serde_json::Value =
        serde_json::from_str(&chat(&bo, &["read", &conv[..8], "--json"])).unwrap();
    let urgent = sent.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    chat(
        &bo,
        &["send", &conv[..8], "Also: family meeting moved to 15:00"],
    );
    chat(&bo, &["send", &conv[..8], "Thanks"]);
    let last = chat(&nina1, &["read", &conv[..8], "--last", "1"]);
    assert!(
        last.contains("Thanks") && !last.contains("heparin"),
        "{last}"
    );
    assert!(
        last.contains("earlier message(s) from others not shown here, so not marked read"),
        "{last}"
    );
    let rows = nina_receipts(&[&urgent[..8]]);
    assert!(rows.iter().any(|r| r[2] != "—"), "delivered: {rows:?}");
    assert!(
        rows.iter().all(|r| r[3] == "—"),
        "never shown, so not read: {rows:?}"
    );
    chat(&nina1, &["read", &conv[..8]]);
    assert!(
        nina_receipts(&[&urgent[..8]]).iter().any(|r| r[3] != "—"),
        "shown now, so read"
    );

    // Issue 18, item 8: a message's every attachment is saved, owner-only.
    let (lab, ecg) = (dir.path().join("lab.pdf"), dir.path().join("ecg.png"));
    std::fs::write(&lab, b"%PDF-1.4 potassium 6.9").unwrap();
    std::fs::write(&ecg, b"\x89PNG peaked T waves").unwrap();
    chat(
        &bo,
        &[
            "send",
            &conv[..8],
            "two files",
            "--attach",
            lab.to_str().unwrap(),
            "--attach",
            ecg.to_str().unwrap(),
        ],
    );
    let all: serde_json::Value =
        serde_json::from_str(&chat(&nina1, &["read", &conv[..8], "--json"])).unwrap();
    let with_files = all.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = dir.path().join("saved");
    chat(
        &nina1,
        &[
            "download",
            &conv[..8],
            &with_files[..8],
            "--out",
            saved.to_str().unwrap(),
        ],
    );
    for (name, bytes) in [
        ("lab.pdf", &b"%PDF-1.4 potassium 6.9"[..]),
        ("ecg.png", &b"\x89PNG peaked T waves"[..]),
    ] {
        let path = saved.join(name);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }

    // Real time: Bo watches while the iPad writes.
    let watcher = watch(&bo, &[&conv[..8], "--count", "1"]);
    std::thread::sleep(Duration::from_secs(2));
    chat(&nina2, &["send", &conv[..8], "from the ward iPad"]);
    let (out, _) = finished(
        watcher,
        Duration::from_secs(20),
        "watch did not print the message",
    );
    assert!(out.contains("Nina Nurse: from the ward iPad"), "{out}");

    // Issue 18, item 1: one device, two processes. Nina's phone watches (as
    // the README suggests) while the same profile starts a conversation and
    // sends from another terminal, and Bo writes so that the watcher has
    // something to save. The watcher used to write its stale copy back,
    // erasing what the other process created; that device's outbox then
    // jammed ("queued (offline)" for ever).
    let nina_watch = watch(&nina1, &[]);
    std::thread::sleep(Duration::from_secs(2));
    let side = chat(
        &nina1,
        &[
            "new",
            "--with",
            "bo@test.example",
            "--title",
            "Two terminals",
        ],
    )
    .trim()
    .to_owned();
    for i in 0..6 {
        chat(&bo, &["send", &conv[..8], &format!("from Bo {i}")]);
        let sent = chat(
            &nina1,
            &["send", &side[..8], &format!("second terminal {i}")],
        );
        assert!(!sent.contains("queued"), "{sent}");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    drop(nina_watch);
    let listed = chat(&nina1, &["list"]);
    assert!(listed.contains("Two terminals"), "{listed}");
    let read = chat(&bo, &["read", &side[..8]]);
    for i in 0..6 {
        assert!(read.contains(&format!("second terminal {i}")), "{read}");
    }
    let mine = chat(&nina1, &["read", &conv[..8]]);
    assert!(mine.contains("from Bo 5"), "{mine}");

    // Issue 18, item 3: a server restart is not a sign-out. Bo's watcher
    // waits through it and shows what arrives afterwards.
    let bo_watch = watch(&bo, &[&conv[..8], "--count", "1"]);
    std::thread::sleep(Duration::from_secs(2));

    // Receipts and names are kept on the device when fetched.
    let online = chat(&bo, &["receipts", &conv[..8]]);
    assert!(online.contains("Nina Nurse"), "{online}");

    // The server goes down; Nina writes anyway; it is sent when it is back.
    let mut log = stop_and_log(server);
    let (ok, out, err) = wardline_env(
        &nina1,
        &["chat", "send", &conv[..8], "written offline"],
        "",
        &[PASS_ENV],
    );
    assert!(ok && out.contains("queued (offline)"), "{out} {err}");
    // Issue 18, item 2: reading works offline, from this device's copy, and
    // says so (the server's address once, not in every layer of the error).
    let (ok, out, err) = wardline_env(&nina1, &["chat", "read", &conv[..8]], "", &[PASS_ENV]);
    assert!(
        ok && out.contains("CANARY-CLI potassium 6.9") && err.contains("offline"),
        "{out}\n{err}"
    );
    assert_eq!(err.matches("https://").count(), 1, "{err}");
    let (ok, out, err) = wardline_env(&nina1, &["chat", "list"], "", &[PASS_ENV]);
    assert!(
        ok && out.contains("Bed 7 handover") && out.contains("Two terminals"),
        "{out}\n{err}"
    );
    // … senders by name, and the receipts as last fetched, saying when.
    assert!(
        chat(&nina1, &["read", &conv[..8]]).contains("Dr Bo Physician: from Bo 5"),
        "names offline"
    );
    let (ok, out, err) = wardline_env(&bo, &["chat", "receipts", &conv[..8]], "", &[PASS_ENV]);
    assert!(
        ok && out.contains("(offline: as the server said at") && out.contains("Nina Nurse"),
        "{out}\n{err}"
    );
    let (server, _, _) = serve(&data, port);
    chat(&nina1, &["list"]); // any command flushes the outbox
    let (watched, watch_err) = finished(
        bo_watch,
        Duration::from_secs(90),
        "the watcher did not come back after the restart",
    );
    assert!(
        watched.contains("Nina Nurse: written offline") && !watch_err.contains("session ended"),
        "{watched}\n{watch_err}"
    );
    let read = chat(&bo, &["read", &conv[..8]]);
    assert!(read.contains("Nina Nurse: written offline"), "{read}");
    // Who is in the group, as the MLS commits made it: both of Nina's devices.
    assert_eq!(read.matches("Nina Nurse's device").count(), 2, "{read}");

    // Neither the log nor the database holds message text.
    log.push_str(&stop_and_log(server));
    let db = std::fs::read(data.join("wardline.db")).unwrap();
    for needle in [
        "CANARY-CLI",
        "potassium",
        "on my way",
        "written offline",
        "Bed 7 handover",
    ] {
        assert!(!log.contains(needle), "server log contains {needle:?}");
        assert!(
            !db.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "database contains {needle:?}"
        );
    }
    assert!(
        log.contains("/api/v1/conversations/{id}/messages"),
        "request log has message routes"
    );
}
