//! `wardline admin lifecycle|holds|devices` and `wardline chat recall|send
//! --disappear-after` against `wardline serve`: a policy previewed before it is
//! applied, a deletion run's receipt, the legal hold register, a recalled
//! message shown as recalled, an ephemeral message, and a lost device that
//! erases its store and profile when it next runs a command.

use std::path::Path;

use crate::support::*;

fn run(profile: &Path, args: &[&str]) -> String {
    run_ok(profile, args)
}

#[test]
fn lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = |name: &str| dir.path().join(format!("{name}.json"));
    let (ada, bo, cora) = (p("ada"), p("bo"), p("cora"));
    let (ok, out, err) = bootstrap_test_clinic(&ada, &data);
    assert!(ok, "{out} {err}");
    let port = free_port();
    let (_server, url, cert) = serve(&data, port);
    login_enrolling(&ada, &url, &cert, "test", "ada@test.example");
    for (email, name, role) in [
        ("bo@test.example", "Dr Bo Physician", "physician"),
        ("cora@test.example", "Cora Compliance", "compliance_officer"),
    ] {
        create_user(&ada, email, name, role);
    }
    login_enrolling(&bo, &url, &cert, "test", "bo@test.example");
    login_enrolling(&cora, &url, &cert, "test", "cora@test.example");

    // A conversation, a recalled message and an ephemeral one.
    run(&bo, &["chat", "list"]);
    let conv = run(&ada, &["chat", "new", "--with", "bo@test.example"])
        .trim()
        .to_owned();
    let wrong = run(&ada, &["chat", "send", &conv[..8], "give 50 mg metoprolol"])
        .trim()
        .to_owned();
    let read = run(&bo, &["chat", "read", &conv[..8]]);
    assert!(read.contains("metoprolol"), "{read}");
    let recalled = run(&ada, &["chat", "recall", &conv[..8], &wrong[..8]]);
    assert!(
        recalled.contains("recalled; 2 device(s) told to delete it"),
        "{recalled}"
    );
    assert!(recalled.contains("Dr Bo Physician"), "{recalled}");
    assert!(recalled.contains("had read it"), "{recalled}");
    let read = run(&bo, &["chat", "read", &conv[..8]]);
    assert!(!read.contains("metoprolol"), "{read}");
    assert!(read.contains("(message recalled"), "{read}");
    run(
        &ada,
        &[
            "chat",
            "send",
            &conv[..8],
            "door code 4471",
            "--disappear-after",
            "10m",
        ],
    );
    let read = run(&bo, &["chat", "read", &conv[..8]]);
    assert!(read.contains("(disappears "), "{read}");
    let set = run(&bo, &["chat", "disappear", &conv[..8], "24h"]);
    assert!(set.contains("86400 seconds"), "{set}");

    // The policy: previewed, then applied; a run and its receipt.
    let preview = run(
        &ada,
        &["admin", "lifecycle", "preview", "--retention", "30"],
    );
    assert!(
        preview.contains("the changed policy would delete now:"),
        "{preview}"
    );
    assert!(preview.contains("messages past retention"), "{preview}");
    let set = run(
        &ada,
        &[
            "admin",
            "lifecycle",
            "set",
            "--retention",
            "3650",
            "--recall-window",
            "30m",
        ],
    );
    assert!(set.contains("policy applied"), "{set}");
    let shown = run(&ada, &["admin", "lifecycle", "show"]);
    assert!(
        shown.contains("\"days\": 3650") && shown.contains("1800"),
        "{shown}"
    );
    let (ok, _, err) = wardline(&bo, &["admin", "lifecycle", "set", "--retention", "1"], "");
    assert!(!ok && err.contains("403"), "{err}");
    let receipt = run(&cora, &["admin", "lifecycle", "run"]);
    assert!(
        receipt.contains("deletion run") && receipt.contains("signed by"),
        "{receipt}"
    );
    let receipts = run(&cora, &["admin", "lifecycle", "receipts"]);
    assert!(receipts.contains("\"signature\""), "{receipts}");

    // The hold register.
    let hold = run(
        &cora,
        &[
            "admin",
            "holds",
            "place",
            "--scope",
            "conversation",
            "--target",
            &conv,
            "--matter",
            "Doe v. General",
            "--reason",
            "litigation notice",
        ],
    );
    let listed = run(&cora, &["admin", "holds", "list"]);
    assert!(
        listed.contains(hold.trim()) && listed.contains("active"),
        "{listed}"
    );
    let released = run(
        &cora,
        &[
            "admin",
            "holds",
            "release",
            hold.trim(),
            "--reason",
            "settled",
        ],
    );
    assert!(released.contains("settled"), "{released}");

    // Issue 18, item 7: the compliance officer's search shows who (by
    // name), from where, and what an administrative change changed.
    run(
        &ada,
        &[
            "admin",
            "policy",
            "--patch",
            r#"{"messaging": {"history_days": 7}}"#,
        ],
    );
    let found = run(&cora, &["audit", "search", "--action", "org.policy.update"]);
    assert!(found.contains("Ada Admin ("), "{found}");
    assert!(found.contains("127.0.0.1"), "{found}");
    assert!(found.contains("messaging.history_days: 14 → 7"), "{found}");

    // The latest checkpoint is checked against a pinned key, never just the
    // one the server sends (the H1 kind, in `audit checkpoint`).
    let cp = run(&cora, &["audit", "checkpoint"]);
    assert!(cp.contains("not pinned"), "{cp}");
    let key_line = cp
        .lines()
        .find(|l| l.starts_with("key "))
        .unwrap()
        .to_owned();
    let key_id = key_line.split_whitespace().nth(1).unwrap().to_owned();
    let public = key_line
        .split('(')
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_owned();
    let pinned = run(
        &cora,
        &[
            "audit",
            "checkpoint",
            "--public-key",
            &format!("{key_id}={public}"),
        ],
    );
    assert!(pinned.contains("valid (pinned key)"), "{pinned}");
    let other = format!("{key_id}={}", "ab".repeat(32));
    let (ok, out, _) = wardline_env(
        &cora,
        &["audit", "checkpoint", "--public-key", &other],
        "",
        &[],
    );
    assert!(!ok, "{out}");

    // Bo's device is lost: the administrator wipes it; its next command
    // erases the store and the profile.
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bo).unwrap()).unwrap();
    let device = profile["device_id"].as_str().unwrap().to_owned();
    // The keys of messages Bo sealed for patients sit beside the profile
    // (L2 of the 2026-11-30 findings: the wipe left them).
    let mut keys_path = bo.as_os_str().to_owned();
    keys_path.push(".patient-keys");
    let keys_path = std::path::PathBuf::from(keys_path);
    std::fs::write(
        &keys_path,
        r#"{"0b9e4b1e-7f55-4a4b-9f67-3d2b5f3c9a10":"k=secret"}"#,
    )
    .unwrap();
    let wiped = run(
        &ada,
        &[
            "admin",
            "devices",
            "wipe",
            &device,
            "--reason",
            "left on the bus",
        ],
    );
    assert!(wiped.contains("1 session(s) ended"), "{wiped}");
    let (ok, _, err) = wardline_env(&bo, &["chat", "list"], "", &[PASS_ENV]);
    assert!(!ok && err.contains("reported lost"), "{err}");
    assert!(!bo.exists(), "profile erased");
    assert!(!bo.with_extension("chat").exists(), "message store erased");
    assert!(!keys_path.exists(), "patient message keys erased");
    let wipes = run(&ada, &["admin", "devices", "wipes"]);
    assert!(
        wipes.contains(&device) && wipes.contains("confirmed"),
        "{wipes}"
    );
}
