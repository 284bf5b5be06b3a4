//! `wardline patients …` against `wardline serve`: a nurse records a patient
//! and their consent, writes a secure message, and reads the thread; nothing
//! without consent.

use crate::support::*;

fn patients(profile: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut full = vec!["patients"];
    full.extend_from_slice(args);
    wardline_env(profile, &full, "", &[PASS_ENV])
}

#[test]
fn a_nurse_texts_a_patient_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ada, nina) = (dir.path().join("ada.json"), dir.path().join("nina.json"));
    let (ok, out, err) = bootstrap_test_clinic(&ada, &data);
    assert!(ok, "{out} {err}");
    let port = free_port();
    let (server, url, cert) = serve(&data, port);
    login_enrolling(&ada, &url, &cert, "test", "ada@test.example");
    let (ok, _, err) = wardline(
        &ada,
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
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    login_enrolling(&nina, &url, &cert, "test", "nina@test.example");

    let (ok, id, err) = patients(
        &nina,
        &[
            "add",
            "--name",
            "Maria Quintero",
            "--dob",
            "1984-03-07",
            "--phone",
            "+1 555 123 0001",
            "--mrn",
            "MRN-CLI-1",
            "--language",
            "es",
        ],
    );
    assert!(ok, "{err}");
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 36, "{id}");

    // Without consent the send is refused, with the reason.
    let (ok, _, err) = patients(&nina, &["send", &id, "CANARY-PATIENT results normal"]);
    assert!(!ok && err.contains("consent"), "{err}");
    for scope in ["reminders", "secure_messages"] {
        let (ok, _, err) = patients(
            &nina,
            &["consent", &id, "--scope", scope, "--method", "written"],
        );
        assert!(ok, "{err}");
    }
    let (ok, out, err) = patients(&nina, &["list"]);
    assert!(
        ok && out.contains("Maria Quintero") && out.contains("reminders, secure_messages"),
        "{out} {err}"
    );

    let (ok, out, err) = patients(&nina, &["send", &id, "CANARY-PATIENT results normal"]);
    assert!(ok, "{err}");
    let sent: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sent["sms"]["kind"], "secure_notice");
    let (ok, out, err) = patients(
        &nina,
        &[
            "text",
            &id,
            "appointment_reminder",
            "--param",
            "date=2026-12-01",
            "--param",
            "time=09:30",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"reminder\""), "{out}");
    let (ok, out, err) = patients(
        &nina,
        &["text", &id, "appointment_reminder", "--param", "date=soon"],
    );
    assert!(!ok && err.contains("{date}"), "{out} {err}");

    // Sealed on this machine by default: the key stays in the profile's key
    // file (0600); a team-readable message is sealed by the server instead.
    let keys = dir.path().join("nina.json.patient-keys");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Sealed under the device's passphrase (L2 of the 2026-11-30 findings:
    // it was plaintext JSON): no key fragment in the file.
    let raw = std::fs::read(&keys).unwrap();
    assert!(
        !raw.windows(2).any(|w| w == b"k="),
        "a key fragment in clear"
    );
    let (ok, _, err) = patients(
        &nina,
        &["send", &id, "CANARY-TEAM see you Friday", "--team-readable"],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = patients(&nina, &["thread", &id]);
    assert!(
        ok && out.contains("practice (staff): CANARY-PATIENT results normal")
            && out.contains("practice (staff): CANARY-TEAM see you Friday"),
        "{out} {err}"
    );
    // Without the key (another profile's view), the sealed message stays sealed.
    std::fs::remove_file(&keys).unwrap();
    let (ok, out, _) = patients(&nina, &["thread", &id]);
    assert!(
        ok && !out.contains("CANARY-PATIENT") && out.contains("sealed by the writer"),
        "{out}"
    );
    // Issue 18, item 8: the organisation decides. Team-readable by policy:
    // a plain `send` is read by colleagues; sealed by the writer by policy:
    // `--team-readable` is refused with the reason.
    let policy = |readers: &str| {
        let (ok, _, err) = wardline(
            &ada,
            &[
                "admin",
                "policy",
                "--patch",
                &format!(r#"{{"patients": {{"secure_messages": "{readers}"}}}}"#),
            ],
            "",
        );
        assert!(ok, "{err}");
    };
    policy("team");
    let (ok, _, err) = patients(&nina, &["send", &id, "CANARY-POLICY bring your list"]);
    assert!(ok, "{err}");
    let (ok, out, _) = patients(&nina, &["thread", &id]);
    assert!(ok && out.contains("CANARY-POLICY bring your list"), "{out}");
    policy("writer");
    let (ok, _, err) = patients(&nina, &["send", &id, "CANARY-NO", "--team-readable"]);
    assert!(!ok && err.contains("secure_messages = writer"), "{err}");
    policy("writer_chooses");
    let (ok, out, err) = patients(&nina, &["threads"]);
    assert!(
        ok && out.contains("Maria Quintero") && out.contains("unread 0"),
        "{out} {err}"
    );

    // The consent history for the record, and the SMS status list.
    let (ok, out, err) = patients(&nina, &["consents", &id, "--csv"]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(
        rows[0],
        "at,scope,action,method,recorded_by_kind,recorded_by"
    );
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[1].contains(",reminders,granted,written,user,"),
        "{out}"
    );
    let (ok, out, err) = patients(&nina, &["sms", &id]);
    assert!(
        ok && out.contains("secure_notice") && out.contains("reminder"),
        "{out} {err}"
    );

    let log = stop_and_log(server);
    assert!(
        !log.contains("CANARY-PATIENT") && !log.contains("Maria"),
        "{log}"
    );
}
