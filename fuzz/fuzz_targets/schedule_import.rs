//! On-call calendars as an import receives them: any text may be refused
//! with a reason, never panic; the shifts that come out lie in the window
//! asked for, end after they start and last at most a week.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wardline_core::routing::ical;

/// 2030-03-04T12:00:00Z and two weeks after.
const FROM: i64 = 1_898_856_000;
const UNTIL: i64 = FROM + 14 * 86_400;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Seed the fuzzer's search with the shape of a calendar.
    for candidate in [
        text.to_owned(),
        format!("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n{text}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    ] {
        if let Ok(parsed) = ical::parse(&candidate, FROM, UNTIL) {
            assert!(parsed.events.len() as i64 + parsed.problems.len() as i64 <= parsed.seen);
            for e in &parsed.events {
                for o in &e.occurrences {
                    let (s, end) = (o.starts_at, o.ends_at);
                    assert!(end > FROM && s < UNTIL, "outside the window");
                    // A week at most; a wall-clock end may add the hour a
                    // clock change takes back.
                    assert!(end > s && end - s <= 7 * 86_400 + 3600, "bad length");
                    assert!(o.primary.contains('@'), "an attendee covers it");
                }
            }
        }
    }
});
