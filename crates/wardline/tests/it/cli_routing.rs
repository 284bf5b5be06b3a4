//! `wardline routing …` and `wardline chat page|ack|escalation|open-patient`
//! against `wardline serve`: a department and clinical roles, an on-call
//! schedule imported from an .ics file, a STAT page that reaches whoever is
//! on call (and the backup when they are in a procedure), its acknowledgement,
//! the directory search, the report, and break-glass seen by the compliance
//! officer.

use crate::support::*;

/// A calendar whose daily 24-hour shift (07:00 New York time) covers now:
/// Bo on call, Dan his backup.
fn calendar() -> String {
    let now = time::OffsetDateTime::now_utc();
    let start = (now - time::Duration::days(2)).date();
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:cardio-daily@test.example\r\nDTSTART;TZID=America/New_York:{:04}{:02}{:02}T070000\r\nDURATION:PT24H\r\nRRULE:FREQ=DAILY;COUNT=10\r\nATTENDEE;ROLE=REQ-PARTICIPANT:mailto:bo@test.example\r\nATTENDEE;ROLE=OPT-PARTICIPANT:mailto:dan@test.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        start.year(),
        start.month() as u8,
        start.day()
    )
}

#[test]
fn routing_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = |name: &str| dir.path().join(format!("{name}.json"));
    let (ada, bo, dan, nell, cora) = (p("ada"), p("bo"), p("dan"), p("nell"), p("cora"));
    let (ok, out, err) = bootstrap_test_clinic(&ada, &data);
    assert!(ok, "{out} {err}");
    let port = free_port();
    let (_server, url, cert) = serve(&data, port);
    login_enrolling(&ada, &url, &cert, "test", "ada@test.example");
    for (email, name, role) in [
        ("bo@test.example", "Dr Bo Cardio", "physician"),
        ("dan@test.example", "Dr Dan Backup", "physician"),
        ("nell@test.example", "Nell Charge", "nurse"),
        ("cora@test.example", "Cora Compliance", "compliance_officer"),
    ] {
        create_user(&ada, email, name, role);
    }
    for (profile, email) in [
        (&bo, "bo@test.example"),
        (&dan, "dan@test.example"),
        (&nell, "nell@test.example"),
        (&cora, "cora@test.example"),
    ] {
        login_enrolling(profile, &url, &cert, "test", email);
        run_ok(profile, &["chat", "list"]); // registers the device
    }
    run_ok(&ada, &["chat", "list"]);

    // The directory: a department, the charge nurse role, and on-call cardiology.
    run_ok(&ada, &["routing", "add-department", "Cardiology"]);
    run_ok(
        &ada,
        &[
            "routing",
            "add-role",
            "Cardiology charge nurse",
            "--department",
            "cardiology",
            "--holder",
            "nell@test.example",
        ],
    );
    run_ok(
        &ada,
        &[
            "routing",
            "add-role",
            "Cardiology on-call",
            "--department",
            "Cardiology",
            "--fallback",
            "Cardiology charge nurse",
            "--stat-ladder",
            "2m:renotify,4m:backup,6m:fallback_role,8m:sms",
        ],
    );
    let edited = run_ok(
        &ada,
        &[
            "routing",
            "edit-role",
            "Cardiology on-call",
            "--urgent-ladder",
            "10m:renotify,20m:sms",
        ],
    );
    assert!(edited.contains("its own escalation ladders"), "{edited}");
    let (ok, _, err) = wardline(
        &ada,
        &[
            "routing",
            "edit-role",
            "Cardiology charge nurse",
            "--fallback",
            "Cardiology on-call",
        ],
        "",
    );
    assert!(!ok && err.contains("lead back"), "{err}");
    let ics = dir.path().join("oncall.ics");
    std::fs::write(&ics, calendar()).unwrap();
    let imported = run_ok(
        &ada,
        &[
            "routing",
            "import",
            "Cardiology on-call",
            "--file",
            ics.to_str().unwrap(),
            "--days",
            "3",
        ],
    );
    assert!(imported.contains("1 event(s)"), "{imported}");
    let oncall = run_ok(&nell, &["routing", "on-call", "cardiology on-call"]);
    assert!(
        oncall.contains("Cardiology on-call: Dr Bo Cardio (available)"),
        "{oncall}"
    );
    assert!(oncall.contains("backup: Dr Dan Backup"), "{oncall}");
    let shifts = run_ok(
        &nell,
        &["routing", "shifts", "Cardiology on-call", "--days", "2"],
    );
    assert!(
        shifts.contains("ical:cardio-daily@test.example"),
        "{shifts}"
    );

    // A STAT page reaches Bo; he reads and acknowledges it.
    let page = run_ok(
        &nell,
        &[
            "chat",
            "page",
            "Cardiology on-call",
            "STAT bed 12 VT on monitor",
            "--priority",
            "stat",
            "--json",
        ],
    );
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    let conv = page["conversation_id"].as_str().unwrap().to_owned();
    let msg = page["message_id"].as_str().unwrap().to_owned();
    assert_eq!(page["via"], "on_call");
    let read = run_ok(&bo, &["chat", "read", &conv[..8]]);
    assert!(read.contains("VT on monitor"), "{read}");
    let state = run_ok(&nell, &["chat", "escalation", &conv[..8], &msg[..8]]);
    assert!(
        state.contains("Open") && state.contains("next: renotify"),
        "{state}"
    );
    let (ok, _, err) = wardline_env(
        &nell,
        &["chat", "ack", &conv[..8], &msg[..8]],
        "",
        &[PASS_ENV],
    );
    assert!(!ok && err.contains("cannot acknowledge their own"), "{err}");
    let acked = run_ok(&bo, &["chat", "ack", &conv[..8], &msg[..8]]);
    assert!(
        acked.contains("Acknowledged") && acked.contains("acknowledged by Dr Bo Cardio"),
        "{acked}"
    );

    // Bo scrubs in: the next page goes to Dan, and Nell is told why.
    run_ok(&bo, &["routing", "presence", "in_procedure", "--for", "2h"]);
    let (ok, out, err) = wardline_env(
        &nell,
        &["chat", "page", "Cardiology on-call", "urgent: K+ 6.4"],
        "",
        &[PASS_ENV],
    );
    assert!(ok, "{err}");
    assert!(out.contains("sent to Dr Dan Backup"), "{out}");
    assert!(err.contains("in procedure"), "{err}");
    let found = run_ok(&nell, &["routing", "search", "cardio"]);
    assert!(
        found.contains("Dr Bo Cardio") && found.contains("in_procedure"),
        "{found}"
    );
    assert!(found.contains("on call: Cardiology on-call"), "{found}");

    // The report: by role and department.
    let report = run_ok(&ada, &["routing", "report", "--days", "1"]);
    assert!(report.contains("Cardiology on-call"), "{report}");
    assert!(report.contains("by department"), "{report}");
    let (ok, _, err) = wardline(&nell, &["routing", "report"], "");
    assert!(!ok && err.contains("403"), "{err}");

    // Break-glass: refused without a reason, granted with one, reviewed.
    run_ok(
        &bo,
        &[
            "chat",
            "new",
            "--with",
            "nell@test.example",
            "--title",
            "Bed 12",
            "--patient",
            "MRN-88120",
        ],
    );
    let (ok, _, err) = wardline_env(
        &dan,
        &["chat", "open-patient", "MRN-88120"],
        "",
        &[PASS_ENV],
    );
    assert!(!ok && err.contains("reason"), "{err}");
    let opened = run_ok(
        &dan,
        &[
            "chat",
            "open-patient",
            "MRN-88120",
            "--reason",
            "Cross-covering bed 12 overnight, primary team in theatre",
        ],
    );
    assert!(
        opened.contains("BreakGlass") && opened.contains("compliance officer"),
        "{opened}"
    );
    let notes = run_ok(&cora, &["routing", "notifications"]);
    assert!(notes.contains("break_glass"), "{notes}");
    let grants = run_ok(&cora, &["routing", "break-glass"]);
    assert!(grants.contains("Cross-covering bed 12"), "{grants}");
}
