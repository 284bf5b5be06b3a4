//! On-call schedules from iCalendar (RFC 5545): each VEVENT is a shift.
//!
//! Parsing (line unfolding, parameters, quoting) is `icalendar`'s; recurrence
//! (RRULE, RDATE, EXDATE in IANA time zones, across DST changes) is `rrule`'s.
//! What is Wardline's own: which attendee covers and which is the backup, the
//! time zone a floating time means, and saying why an event made no shift.

use chrono::{DateTime, TimeZone};
use icalendar::parser::{Component, Property, read_calendar_simple, unfold};
use rrule::{RRuleSet, Tz};
use wardline_proto::routing::ImportProblem;

/// Most occurrences one event may expand to (a daily shift for a year and more).
const MAX_OCCURRENCES: u16 = 1000;
/// How long before the window a recurring event may start: expansion walks
/// from DTSTART, so an old hourly rule would be a long walk for nothing.
const MAX_LEAD_SECS: i64 = 2 * 366 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftEvent {
    pub uid: String,
    /// E-mail of the attendee who covers the shift.
    pub primary: String,
    /// E-mail of the attendee with `ROLE=OPT-PARTICIPANT`.
    pub backup: Option<String>,
    /// `(start, end)` Unix seconds of each occurrence in the window.
    pub occurrences: Vec<(i64, i64)>,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub events: Vec<ShiftEvent>,
    pub problems: Vec<ImportProblem>,
    /// VEVENTs seen (including those with problems).
    pub seen: i64,
}

fn prop<'a>(c: &'a Component<'a>, name: &str) -> Option<&'a Property<'a>> {
    c.properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn param<'a>(p: &'a Property<'a>, key: &str) -> Option<&'a str> {
    p.params
        .iter()
        .find(|x| x.key.as_str().eq_ignore_ascii_case(key))
        .and_then(|x| x.val.as_ref())
        .map(|v| v.as_str().trim_matches('"'))
}

/// A DTSTART-like property as an rrule content line, with the calendar's
/// zone given to a floating time.
fn date_line(name: &str, p: &Property<'_>, default_tz: &str) -> Result<String, String> {
    if param(p, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE")) {
        return Err(format!(
            "{name} is a whole day; a shift needs a start and end time"
        ));
    }
    let value = p.val.as_str().trim();
    Ok(match param(p, "TZID") {
        Some(tz) => format!("{name};TZID={tz}:{value}"),
        None if value.ends_with('Z') => format!("{name}:{value}"),
        None => format!("{name};TZID={default_tz}:{value}"),
    })
}

/// The Unix time of one DTSTART-like line (parsed by rrule, which knows zones).
fn instant(line: &str) -> Result<i64, String> {
    // rrule parses a set, which needs a rule: one occurrence, the start itself.
    let line = format!(
        "{}\nRRULE:FREQ=DAILY;COUNT=1",
        line.replacen("DTEND", "DTSTART", 1)
    );
    let set: RRuleSet = line
        .parse()
        .map_err(|e| format!("{e} (time zones must be IANA names such as America/New_York)"))?;
    Ok(set.get_dt_start().timestamp())
}

/// RFC 5545 DURATION (`PT12H`, `P1D`, `P1W`, `-` not allowed for a shift).
fn duration_secs(s: &str) -> Option<i64> {
    let s = s.trim().strip_prefix('+').unwrap_or(s.trim());
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = 0i64;
    let mut read = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut n = String::new();
        for ch in part.chars() {
            if ch.is_ascii_digit() {
                n.push(ch);
            } else {
                let mult = units.iter().find(|(u, _)| *u == ch)?.1;
                total += n.parse::<i64>().ok()? * mult;
                n.clear();
            }
        }
        n.is_empty().then_some(())
    };
    read(date, &[('W', 7 * 86_400), ('D', 86_400)])?;
    read(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    (total > 0).then_some(total)
}

fn email_of(p: &Property<'_>) -> Option<String> {
    let v = p.val.as_str().trim();
    let lower = v.to_ascii_lowercase();
    lower
        .strip_prefix("mailto:")
        .map(|e| e.trim().to_owned())
        .filter(|e| e.contains('@'))
}

fn event(
    c: &Component<'_>,
    default_tz: &str,
    from: i64,
    until: i64,
) -> Result<Option<ShiftEvent>, String> {
    if prop(c, "STATUS").is_some_and(|s| s.val.as_str().eq_ignore_ascii_case("CANCELLED")) {
        return Ok(None);
    }
    let uid = prop(c, "UID")
        .map(|p| p.val.as_str().trim().to_owned())
        .filter(|u| !u.is_empty() && u.len() <= 255)
        .ok_or("no UID (needed so that a re-import replaces its shifts)")?;
    let start = prop(c, "DTSTART").ok_or("no DTSTART")?;
    let start_line = date_line("DTSTART", start, default_tz)?;
    let start_at = instant(&start_line)?;
    let length = match (prop(c, "DTEND"), prop(c, "DURATION")) {
        (Some(end), _) => instant(&date_line("DTEND", end, default_tz)?)? - start_at,
        (None, Some(d)) => duration_secs(d.val.as_str()).ok_or("DURATION is not valid")?,
        (None, None) => return Err("no DTEND or DURATION".into()),
    };
    if length <= 0 || length > 7 * 86_400 {
        return Err("a shift must end after it starts and last at most 7 days".into());
    }
    let mut primary = None;
    let mut backup = None;
    for a in c
        .properties
        .iter()
        .filter(|p| p.name.as_str().eq_ignore_ascii_case("ATTENDEE"))
    {
        let Some(email) = email_of(a) else { continue };
        match param(a, "ROLE").map(str::to_ascii_uppercase).as_deref() {
            Some("OPT-PARTICIPANT") => backup = backup.or(Some(email)),
            Some("NON-PARTICIPANT") => {}
            _ => primary = primary.or(Some(email)),
        }
    }
    let primary = primary.ok_or("no ATTENDEE (mailto:) says who covers the shift")?;
    let mut lines = vec![start_line];
    let mut recurring = false;
    for p in &c.properties {
        let name = p.name.as_str().to_ascii_uppercase();
        match name.as_str() {
            "RRULE" => {
                let rule = p.val.as_str().to_ascii_uppercase();
                if rule.contains("FREQ=MINUTELY") || rule.contains("FREQ=SECONDLY") {
                    return Err("shifts do not recur more often than hourly".into());
                }
                recurring = true;
                lines.push(format!("RRULE:{}", p.val.as_str().trim()));
            }
            "RDATE" | "EXDATE" => {
                recurring |= name == "RDATE";
                lines.push(date_line(&name, p, default_tz)?);
            }
            _ => {}
        }
    }
    if recurring && start_at < from - MAX_LEAD_SECS {
        return Err(
            "the recurring event starts more than two years ago; export the current schedule"
                .into(),
        );
    }
    let starts: Vec<i64> = if recurring {
        let set: RRuleSet = lines
            .join("\n")
            .parse()
            .map_err(|e| format!("recurrence: {e}"))?;
        let bound = |t: i64| -> Result<DateTime<Tz>, String> {
            Tz::UTC
                .timestamp_opt(t, 0)
                .single()
                .ok_or_else(|| "time out of range".to_owned())
        };
        let found = set
            .after(bound(from - length)?)
            .before(bound(until)?)
            .all(MAX_OCCURRENCES);
        found.dates.iter().map(|d| d.timestamp()).collect()
    } else {
        vec![start_at]
    };
    let occurrences = starts
        .into_iter()
        .map(|s| (s, s + length))
        .filter(|(s, e)| *e > from && *s < until)
        .collect();
    Ok(Some(ShiftEvent {
        uid,
        primary,
        backup,
        occurrences,
    }))
}

/// The calendar's shifts that overlap `[from, until)`.
pub fn parse(text: &str, from: i64, until: i64) -> Result<Parsed, String> {
    let unfolded = unfold(text);
    let components = read_calendar_simple(&unfolded)
        .map_err(|_| "not an iCalendar file: it could not be parsed".to_owned())?;
    let calendars: Vec<&Component<'_>> = components
        .iter()
        .filter(|c| c.name.as_str().eq_ignore_ascii_case("VCALENDAR"))
        .collect();
    if calendars.is_empty() {
        return Err("not an iCalendar file: no VCALENDAR".into());
    }
    let mut out = Parsed::default();
    for vcal in calendars {
        let default_tz = prop(vcal, "X-WR-TIMEZONE")
            .map(|p| p.val.as_str().trim().to_owned())
            .unwrap_or_else(|| "UTC".to_owned());
        for (i, c) in vcal
            .components
            .iter()
            .filter(|c| c.name.as_str().eq_ignore_ascii_case("VEVENT"))
            .enumerate()
        {
            out.seen += 1;
            let name = prop(c, "UID")
                .map(|p| p.val.as_str().trim().chars().take(255).collect())
                .unwrap_or_else(|| format!("event #{}", i + 1));
            match event(c, &default_tz, from, until) {
                Ok(Some(e)) => out.events.push(e),
                Ok(None) => {}
                Err(reason) => out.problems.push(ImportProblem {
                    event: name,
                    reason,
                }),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("PT12H"), Some(43_200));
        assert_eq!(duration_secs("P1DT2H30M"), Some(86_400 + 9_000));
        assert_eq!(duration_secs("P1W"), Some(604_800));
        assert_eq!(duration_secs("12H"), None);
        assert_eq!(duration_secs("PT"), None);
        assert_eq!(duration_secs("PT5X"), None);
    }

    #[test]
    fn a_weekly_shift_in_new_york_keeps_local_time_across_the_dst_change() {
        // 2026-10-26 is a Monday; DST ends in New York on 2026-11-01.
        let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:nights@test\r\nDTSTART;TZID=America/New_York:20261026T190000\r\nDTEND;TZID=America/New_York:20261027T070000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nATTENDEE;CN=A;ROLE=REQ-PARTICIPANT:mailto:A@test.org\r\nATTENDEE;ROLE=OPT-PARTICIPANT:mailto:b@test.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let p = parse(ics, 1_700_000_000, 1_900_000_000).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let e = &p.events[0];
        assert_eq!(e.primary, "a@test.org");
        assert_eq!(e.backup.as_deref(), Some("b@test.org"));
        let starts: Vec<i64> = e.occurrences.iter().map(|o| o.0).collect();
        // 19:00 EDT = 23:00 UTC; after the change 19:00 EST = 00:00 UTC.
        assert_eq!(starts[0], 1_793_055_600); // 2026-10-26T23:00:00Z
        assert_eq!(starts[1] - starts[0], 7 * 86_400 + 3600);
        assert_eq!(starts.len(), 3);
    }

    #[test]
    fn problems_are_named_per_event() {
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;VALUE=DATE:20261026\r\nATTENDEE:mailto:a@t.org\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:y\r\nDTSTART;TZID=Mars/Olympus:20261026T190000\r\nDURATION:PT8H\r\nATTENDEE:mailto:a@t.org\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:z\r\nDTSTART:20261026T190000Z\r\nDURATION:PT8H\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let p = parse(ics, 0, 2_000_000_000).unwrap();
        assert_eq!(p.seen, 3);
        assert!(p.events.is_empty());
        let reasons: Vec<_> = p.problems.iter().map(|x| x.event.as_str()).collect();
        assert_eq!(reasons, ["x", "y", "z"]);
        assert!(p.problems[1].reason.contains("IANA"), "{:?}", p.problems[1]);
        assert!(parse("hello", 0, 1).is_err());
    }
}
