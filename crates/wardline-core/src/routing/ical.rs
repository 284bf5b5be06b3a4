//! On-call schedules from iCalendar (RFC 5545): each VEVENT is a shift.
//!
//! Parsing (line unfolding, parameters, quoting) is `icalendar`'s; RRULE
//! expansion is `rrule`'s; zones are chrono-tz's IANA database, with Windows
//! names (what Outlook and Exchange write: "Eastern Standard Time") mapped by
//! CLDR's windowsZones table (`windows-timezones`), and a calendar's own
//! VTIMEZONE block used for a name neither knows.
//!
//! What is Wardline's own:
//! - **Series and their exceptions.** Every VEVENT of one UID is one series:
//!   the master (no `RECURRENCE-ID`) expands by RRULE/RDATE/EXDATE, and each
//!   override (`RECURRENCE-ID`, highest `SEQUENCE` wins) replaces the
//!   occurrence it names, with its own times and attendees, or removes it
//!   when `STATUS:CANCELLED`. A cancelled master cancels the whole series.
//! - **Local time.** Recurrence is expanded in the event's wall-clock time
//!   (RFC 5545 §3.3.10), then each occurrence is placed in its zone: a time
//!   that happens twice (autumn) is the first, a time that does not exist
//!   (spring) is read with the offset before the gap (§3.3.5).
//! - **Who covers.** The first attendee (not `OPT-`/`NON-PARTICIPANT`)
//!   covers, the first `ROLE=OPT-PARTICIPANT` is the backup; an override
//!   without attendees keeps the series'.
//! - Saying why an event made no shift.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use icalendar::parser::{Component, Property, read_calendar_simple, unfold};
use rrule::{RRuleSet, Tz};
use wardline_proto::routing::ImportProblem;

/// Most occurrences one event may expand to (a daily shift for a year and more).
const MAX_OCCURRENCES: u16 = 1000;
/// How long before the window a recurring event may start: expansion walks
/// from DTSTART, so an old hourly rule would be a long walk for nothing.
const MAX_LEAD_SECS: i64 = 2 * 366 * 86_400;
/// Longest shift.
const MAX_SHIFT_SECS: i64 = 7 * 86_400;

/// One occurrence of a shift: who covers it, from when to when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// Unix seconds.
    pub starts_at: i64,
    /// Unix seconds, after `starts_at`.
    pub ends_at: i64,
    /// E-mail (lower case) of the attendee who covers the shift.
    pub primary: String,
    /// E-mail of the attendee with `ROLE=OPT-PARTICIPANT`.
    pub backup: Option<String>,
}

/// One series (every VEVENT of one UID) and its occurrences in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftEvent {
    pub uid: String,
    pub occurrences: Vec<Occurrence>,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub events: Vec<ShiftEvent>,
    pub problems: Vec<ImportProblem>,
    /// VEVENTs seen (including overrides, cancelled ones and those with problems).
    pub seen: i64,
}

fn prop<'a>(c: &'a Component<'a>, name: &str) -> Option<&'a Property<'a>> {
    c.properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn props<'a>(c: &'a Component<'a>, name: &'a str) -> impl Iterator<Item = &'a Property<'a>> {
    c.properties
        .iter()
        .filter(move |p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn param<'a>(p: &'a Property<'a>, key: &str) -> Option<&'a str> {
    p.params
        .iter()
        .find(|x| x.key.as_str().eq_ignore_ascii_case(key))
        .and_then(|x| x.val.as_ref())
        .map(|v| v.as_str().trim_matches('"'))
}

fn children<'a>(c: &'a Component<'a>, name: &'a str) -> impl Iterator<Item = &'a Component<'a>> {
    c.components
        .iter()
        .filter(move |x| x.name.as_str().eq_ignore_ascii_case(name))
}

fn utc_naive(t: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .naive_utc()
}

/// A naive time as RFC 5545 writes it, marked UTC: `rrule` expands in this
/// pseudo-zone so that its arithmetic is wall-clock arithmetic.
fn wall(t: NaiveDateTime) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A zone name as the user should see it in a problem (bounded).
fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

// ------------------------------------------------------------ time zones

/// A VTIMEZONE's changes of offset around the import's window.
#[derive(Debug)]
struct Defined {
    /// `(instant of change, offset before, offset after)`: Unix seconds, and
    /// seconds east of UTC; by instant.
    onsets: Vec<(i64, i32, i32)>,
}

#[derive(Debug, Clone, Copy)]
enum Zone<'z> {
    Utc,
    Iana(chrono_tz::Tz),
    Defined(&'z Defined),
}

impl Zone<'_> {
    /// Seconds east of UTC at the instant `t`.
    fn offset_at(&self, t: i64) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Iana(tz) => tz
                .offset_from_utc_datetime(&utc_naive(t))
                .fix()
                .local_minus_utc(),
            Zone::Defined(d) => match d.onsets.iter().rev().find(|o| o.0 <= t) {
                Some(o) => o.2,
                None => d.onsets.first().map_or(0, |o| o.1),
            },
        }
    }

    /// The instant of a wall-clock time: of a time that happens twice the
    /// first, of one skipped by a change the time read with the offset
    /// before the change (RFC 5545 §3.3.5).
    fn instant(&self, local: NaiveDateTime) -> i64 {
        let as_utc = local.and_utc().timestamp();
        let before_gap = |z: &Self| as_utc - i64::from(z.offset_at(as_utc - 86_400));
        match self {
            Zone::Utc => as_utc,
            Zone::Iana(tz) => match tz.from_local_datetime(&local) {
                chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                    t.timestamp()
                }
                chrono::LocalResult::None => before_gap(self),
            },
            Zone::Defined(d) => d
                .onsets
                .iter()
                .flat_map(|o| [o.1, o.2])
                .map(|off| as_utc - i64::from(off))
                .filter(|t| i64::from(self.offset_at(*t)) == as_utc - t)
                .min()
                .unwrap_or_else(|| before_gap(self)),
        }
    }

    /// The wall-clock time of an instant.
    fn local(&self, t: i64) -> NaiveDateTime {
        utc_naive(t + i64::from(self.offset_at(t)))
    }
}

/// `+HHMM` or `+HHMMSS` (TZOFFSETFROM/TO) as seconds east of UTC.
fn utc_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).map_or(Some(0), |x| x.parse::<i32>().ok());
    let secs = n(0..2)? * 3600 + n(2..4)? * 60 + n(4..6)?;
    (secs < 24 * 3600).then_some(sign * secs)
}

/// A DATE or DATE-TIME value: the wall time, whether it was UTC (`Z`), and
/// whether it was a whole day.
fn value(s: &str) -> Result<(NaiveDateTime, bool, bool), String> {
    let s = s.trim();
    // VALUE=PERIOD (an RDATE): the period's start.
    let s = s.split_once('/').map_or(s, |(start, _)| start);
    if s.len() == 8 {
        let d = NaiveDate::parse_from_str(s, "%Y%m%d")
            .map_err(|_| format!("\"{}\" is not a date", shown(s)))?;
        return Ok((d.and_time(chrono::NaiveTime::MIN), false, true));
    }
    let (body, utc) = match s.strip_suffix(['Z', 'z']) {
        Some(b) => (b, true),
        None => (s, false),
    };
    NaiveDateTime::parse_from_str(body, "%Y%m%dT%H%M%S")
        .map(|t| (t, utc, false))
        .map_err(|_| format!("\"{}\" is not a date-time", shown(s)))
}

/// An IANA zone by name, by its Windows name (CLDR's world-wide default), or
/// by the IANA name at the end of a prefixed one (Lightning, Citadel and
/// others write `/mozilla.org/20050126_1/America/New_York`).
fn iana(name: &str) -> Option<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>()
        .ok()
        .or_else(|| {
            name.parse::<windows_timezones::WindowsTimezone>()
                .ok()
                .map(chrono_tz::Tz::from)
        })
        .or_else(|| {
            name.match_indices('/')
                .find_map(|(i, _)| name[i + 1..].parse::<chrono_tz::Tz>().ok())
        })
}

/// A VTIMEZONE as onsets around `[from, until)`.
fn defined(c: &Component<'_>, from: i64, until: i64) -> Result<Defined, String> {
    let lo = utc_naive(from - 2 * 366 * 86_400);
    let hi = utc_naive(until + 2 * 366 * 86_400);
    let mut onsets = Vec::new();
    for ob in c.components.iter().filter(|x| {
        ["STANDARD", "DAYLIGHT"]
            .iter()
            .any(|n| x.name.as_str().eq_ignore_ascii_case(n))
    }) {
        let offset = |name: &str| {
            prop(ob, name)
                .and_then(|p| utc_offset(p.val.as_str()))
                .ok_or_else(|| format!("VTIMEZONE: no valid {name}"))
        };
        let (before, after) = (offset("TZOFFSETFROM")?, offset("TZOFFSETTO")?);
        let start = value(
            prop(ob, "DTSTART")
                .ok_or("VTIMEZONE: no DTSTART")?
                .val
                .as_str(),
        )?
        .0;
        let mut locals = vec![start];
        if let Some(rule) = prop(ob, "RRULE") {
            // Exchange starts its rules in 1601: walk from two years before.
            let start = if start < lo {
                use chrono::Datelike;
                start.with_year(lo.year()).unwrap_or(start)
            } else {
                start
            };
            let rule = with_wall_until(rule.val.as_str(), |v| {
                let (t, utc, _) = value(v)?;
                Ok(if utc {
                    t + Duration::seconds(i64::from(before))
                } else {
                    t
                })
            })?;
            let set: RRuleSet = format!("DTSTART:{}\nRRULE:{rule}", wall(start))
                .parse()
                .map_err(|e| format!("VTIMEZONE: {e}"))?;
            locals = wall_times(set, lo, hi);
        }
        for r in props(ob, "RDATE") {
            for v in r.val.as_str().split(',') {
                locals.push(value(v)?.0);
            }
        }
        onsets.extend(
            locals
                .into_iter()
                .map(|l| (l.and_utc().timestamp() - i64::from(before), before, after)),
        );
    }
    if onsets.is_empty() {
        return Err("VTIMEZONE has no STANDARD or DAYLIGHT".into());
    }
    onsets.sort_unstable();
    Ok(Defined { onsets })
}

/// An RRULE with its UNTIL rewritten as a wall-clock time (see [`wall`]).
fn with_wall_until(
    rule: &str,
    to_wall: impl Fn(&str) -> Result<NaiveDateTime, String>,
) -> Result<String, String> {
    rule.trim()
        .split(';')
        .map(|part| match part.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("UNTIL") => {
                Ok(format!("UNTIL={}", wall(to_wall(v)?)))
            }
            _ => Ok(part.to_owned()),
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|parts| parts.join(";"))
}

/// The calendar's zones, and the zone of its floating times.
struct Zones {
    defined: HashMap<String, Defined>,
    /// `X-WR-TIMEZONE`, if the calendar names one.
    default: Option<String>,
}

impl Zones {
    fn zone(&self, tzid: &str) -> Result<Zone<'_>, String> {
        let name = tzid.trim().trim_matches('"');
        if let Some(tz) = iana(name) {
            return Ok(if tz == chrono_tz::UTC {
                Zone::Utc
            } else {
                Zone::Iana(tz)
            });
        }
        self.defined.get(name).map(Zone::Defined).ok_or_else(|| {
            format!(
                "time zone \"{}\" is neither an IANA name (such as America/New_York) nor a \
                 Windows one, and the calendar has no VTIMEZONE defining it",
                shown(name)
            )
        })
    }

    /// The zone of a time without one: the calendar's X-WR-TIMEZONE, else UTC.
    fn floating(&self) -> Result<Zone<'_>, String> {
        match &self.default {
            Some(name) => self.zone(name).map_err(|e| format!("X-WR-TIMEZONE: {e}")),
            None => Ok(Zone::Utc),
        }
    }
}

/// A DTSTART-like property: wall time, zone, whole day.
#[derive(Clone, Copy)]
struct When<'z> {
    local: NaiveDateTime,
    zone: Zone<'z>,
    all_day: bool,
}

impl When<'_> {
    fn instant(&self) -> i64 {
        self.zone.instant(self.local)
    }
}

fn when<'z>(name: &str, p: &Property<'_>, zones: &'z Zones) -> Result<When<'z>, String> {
    let (local, utc, all_day) = value(p.val.as_str()).map_err(|e| format!("{name}: {e}"))?;
    let zone = match param(p, "TZID") {
        _ if utc => Zone::Utc,
        Some(tz) => zones.zone(tz)?,
        None => zones.floating()?,
    };
    if all_day && param(p, "TZID").is_none() && zones.default.is_none() {
        return Err(format!(
            "{name} is a whole day and the calendar names no time zone (X-WR-TIMEZONE) to place it in"
        ));
    }
    Ok(When {
        local,
        zone,
        all_day,
    })
}

// ----------------------------------------------------------------- events

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

/// `(covers, backup)` of an event's attendees.
fn attendees(c: &Component<'_>) -> (Option<String>, Option<String>) {
    let mut primary = None;
    let mut backup = None;
    for a in props(c, "ATTENDEE") {
        let Some(email) = email_of(a) else { continue };
        match param(a, "ROLE").map(str::to_ascii_uppercase).as_deref() {
            Some("OPT-PARTICIPANT") => backup = backup.or(Some(email)),
            Some("NON-PARTICIPANT") => {}
            _ => primary = primary.or(Some(email)),
        }
    }
    (primary, backup)
}

/// How an occurrence's end follows from its start.
#[derive(Clone, Copy)]
enum End {
    /// DTEND in the start's zone: the same wall-clock length, so a 19:00–07:00
    /// night ends at 07:00 on the night the clocks change.
    Wall(Duration),
    /// DURATION, or DTEND in another zone: exact seconds.
    Exact(i64),
}

/// One VEVENT's times and people.
struct Parts<'z> {
    start: When<'z>,
    end: End,
    primary: Option<String>,
    backup: Option<String>,
}

impl Parts<'_> {
    fn end_of(&self, local: NaiveDateTime, starts_at: i64) -> i64 {
        match self.end {
            End::Wall(d) => self.start.zone.instant(local + d),
            End::Exact(s) => starts_at + s,
        }
    }
}

fn parts<'z>(c: &Component<'_>, zones: &'z Zones) -> Result<Parts<'z>, String> {
    let start = when("DTSTART", prop(c, "DTSTART").ok_or("no DTSTART")?, zones)?;
    let end = match (prop(c, "DTEND"), prop(c, "DURATION")) {
        (Some(p), _) => {
            let e = when("DTEND", p, zones)?;
            match (start.zone, e.zone) {
                (Zone::Iana(a), Zone::Iana(b)) if a == b => End::Wall(e.local - start.local),
                (Zone::Defined(a), Zone::Defined(b)) if std::ptr::eq(a, b) => {
                    End::Wall(e.local - start.local)
                }
                (Zone::Utc, Zone::Utc) => End::Wall(e.local - start.local),
                _ => End::Exact(e.instant() - start.instant()),
            }
        }
        (None, Some(d)) => {
            End::Exact(duration_secs(d.val.as_str()).ok_or("DURATION is not valid")?)
        }
        // RFC 5545 §3.6.1: a whole-day start without an end is that day.
        (None, None) if start.all_day => End::Wall(Duration::days(1)),
        (None, None) => return Err("no DTEND or DURATION".into()),
    };
    let (primary, backup) = attendees(c);
    let p = Parts {
        start,
        end,
        primary,
        backup,
    };
    let length = p.end_of(start.local, start.instant()) - start.instant();
    if length <= 0 || length > MAX_SHIFT_SECS {
        return Err("a shift must end after it starts and last at most 7 days".into());
    }
    Ok(p)
}

/// The wall-clock starts of a master event in (a margin around) the window.
fn expand(
    c: &Component<'_>,
    p: &Parts<'_>,
    zones: &Zones,
    from: i64,
    until: i64,
) -> Result<Vec<NaiveDateTime>, String> {
    let zone = p.start.zone;
    // RDATE/EXDATE/UNTIL values in the start's wall time, whatever form they came in.
    let to_wall = |v: &str, tzid: Option<&str>| -> Result<NaiveDateTime, String> {
        let (t, utc, date) = value(v)?;
        Ok(if utc {
            zone.local(Utc.from_utc_datetime(&t).timestamp())
        } else if date && !p.start.all_day {
            // UNTIL as a DATE: through that day; an EXDATE/RDATE date: at the start's time.
            t.date().and_time(p.start.local.time())
        } else if let Some(tz) = tzid {
            zone.local(zones.zone(tz)?.instant(t))
        } else {
            t
        })
    };
    let mut lines = vec![format!("DTSTART:{}", wall(p.start.local))];
    let mut recurring = false;
    for q in &c.properties {
        let name = q.name.as_str().to_ascii_uppercase();
        match name.as_str() {
            "RRULE" => {
                let rule = q.val.as_str().to_ascii_uppercase();
                if rule.contains("FREQ=MINUTELY") || rule.contains("FREQ=SECONDLY") {
                    return Err("shifts do not recur more often than hourly".into());
                }
                recurring = true;
                let rule = with_wall_until(&rule, |v| {
                    let t = to_wall(v, None)?;
                    // A date-only UNTIL includes its day.
                    Ok(if v.trim().len() == 8 {
                        t.date().and_hms_opt(23, 59, 59).unwrap_or(t)
                    } else {
                        t
                    })
                })?;
                lines.push(format!("RRULE:{rule}"));
            }
            "RDATE" | "EXDATE" => {
                recurring |= name == "RDATE";
                let values = q
                    .val
                    .as_str()
                    .split(',')
                    .map(|v| to_wall(v, param(q, "TZID")).map(wall))
                    .collect::<Result<Vec<_>, _>>()?;
                lines.push(format!("{name}:{}", values.join(",")));
            }
            _ => {}
        }
    }
    if !recurring {
        return Ok(vec![p.start.local]);
    }
    if p.start.instant() < from - MAX_LEAD_SECS {
        return Err(
            "the recurring event starts more than two years ago; export the current schedule"
                .into(),
        );
    }
    let set: RRuleSet = lines
        .join("\n")
        .parse()
        .map_err(|e| format!("recurrence: {e}"))?;
    // Wall-clock bounds, a day wider than any zone's offset.
    let lo = utc_naive(from - MAX_SHIFT_SECS - 2 * 86_400);
    let hi = utc_naive(until + 2 * 86_400);
    Ok(wall_times(set, lo, hi))
}

/// The wall-clock times of a set expanded in the pseudo-UTC of [`wall`],
/// between `lo` and `hi` (at most [`MAX_OCCURRENCES`]).
fn wall_times(set: RRuleSet, lo: NaiveDateTime, hi: NaiveDateTime) -> Vec<NaiveDateTime> {
    set.after(Tz::UTC.from_utc_datetime(&lo))
        .before(Tz::UTC.from_utc_datetime(&hi))
        .all(MAX_OCCURRENCES)
        .dates
        .iter()
        .map(|d| d.naive_utc())
        .collect()
}

/// One VEVENT of a series.
struct Item<'c> {
    comp: &'c Component<'c>,
    sequence: i64,
    cancelled: bool,
}

fn item<'c>(comp: &'c Component<'c>) -> Item<'c> {
    Item {
        comp,
        sequence: prop(comp, "SEQUENCE")
            .and_then(|p| p.val.as_str().trim().parse().ok())
            .unwrap_or(0),
        cancelled: prop(comp, "STATUS")
            .is_some_and(|s| s.val.as_str().trim().eq_ignore_ascii_case("CANCELLED")),
    }
}

/// Every VEVENT of one UID: the master and its overrides.
fn series(
    uid: &str,
    items: &[Item<'_>],
    zones: &Zones,
    from: i64,
    until: i64,
    problems: &mut Vec<ImportProblem>,
) -> Option<ShiftEvent> {
    let problem = |event: String, reason: String| ImportProblem { event, reason };
    fn rid_of<'c>(i: &Item<'c>) -> Option<&'c Property<'c>> {
        prop(i.comp, "RECURRENCE-ID")
    }
    // Of copies of one component the highest SEQUENCE, then the later in the file.
    let master = items
        .iter()
        .filter(|i| rid_of(i).is_none())
        .max_by_key(|i| i.sequence);
    // `(occurrence named, its instant, the override)`.
    let mut overrides: Vec<(When<'_>, i64, &Item<'_>)> = Vec::new();
    for i in items {
        let Some(rid) = rid_of(i) else { continue };
        if param(rid, "RANGE").is_some_and(|r| r.eq_ignore_ascii_case("THISANDFUTURE")) {
            problems.push(problem(
                uid.to_owned(),
                "a change to this and all later occurrences (RANGE=THISANDFUTURE) is not \
                 supported; export the series split in two"
                    .into(),
            ));
            return None;
        }
        let at = match when("RECURRENCE-ID", rid, zones) {
            Ok(w) => w,
            Err(e) => {
                problems.push(problem(uid.to_owned(), e));
                return None;
            }
        };
        let instant = at.instant();
        match overrides.iter_mut().find(|(_, t, _)| *t == instant) {
            Some(slot) if slot.2.sequence <= i.sequence => *slot = (at, instant, i),
            Some(_) => {}
            None => overrides.push((at, instant, i)),
        }
    }
    if master.is_some_and(|m| m.cancelled) {
        return None;
    }
    let mut occurrences = Vec::new();
    let mut people = (None, None);
    if let Some(m) = master {
        let expanded = parts(m.comp, zones).and_then(|p| {
            let starts = expand(m.comp, &p, zones, from, until)?;
            Ok((p, starts))
        });
        let (p, starts) = match expanded {
            Ok(x) => x,
            Err(e) => {
                problems.push(problem(uid.to_owned(), e));
                return None;
            }
        };
        let Some(primary) = p.primary.clone() else {
            problems.push(problem(
                uid.to_owned(),
                "no ATTENDEE (mailto:) says who covers the shift".into(),
            ));
            return None;
        };
        for local in starts {
            let starts_at = p.start.zone.instant(local);
            let replaced = overrides
                .iter()
                .any(|(w, t, _)| *t == starts_at || (w.all_day && w.local.date() == local.date()));
            if !replaced {
                occurrences.push(Occurrence {
                    starts_at,
                    ends_at: p.end_of(local, starts_at),
                    primary: primary.clone(),
                    backup: p.backup.clone(),
                });
            }
        }
        people = (Some(primary), p.backup);
    }
    for (at, _, o) in &overrides {
        if o.cancelled {
            continue;
        }
        let name = format!(
            "{uid} (occurrence of {})",
            at.local.format("%Y-%m-%d %H:%M")
        );
        let p = match parts(o.comp, zones) {
            Ok(p) => p,
            Err(e) => {
                problems.push(problem(name, e));
                continue;
            }
        };
        // An override without attendees keeps the series'.
        let (primary, backup) = match p.primary.clone() {
            Some(x) => (x, p.backup.clone()),
            None => match &people.0 {
                Some(x) => (x.clone(), people.1.clone()),
                None => {
                    problems.push(problem(
                        name,
                        "no ATTENDEE (mailto:) says who covers the shift".into(),
                    ));
                    continue;
                }
            },
        };
        let starts_at = p.start.instant();
        occurrences.push(Occurrence {
            starts_at,
            ends_at: p.end_of(p.start.local, starts_at),
            primary,
            backup,
        });
    }
    // In the window; and a wall-clock end that a clock change put at or
    // before the start (a half-hour shift in the hour taken back) is no shift.
    occurrences.retain(|o| o.ends_at > from && o.starts_at < until && o.ends_at > o.starts_at);
    occurrences.sort_by_key(|o| o.starts_at);
    Some(ShiftEvent {
        uid: uid.to_owned(),
        occurrences,
    })
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
        let mut zones = Zones {
            defined: HashMap::new(),
            default: prop(vcal, "X-WR-TIMEZONE").map(|p| p.val.as_str().trim().to_owned()),
        };
        for tz in children(vcal, "VTIMEZONE") {
            let Some(id) = prop(tz, "TZID") else { continue };
            // A definition that cannot be read is not an error of its own:
            // an event in that zone says so.
            if let Ok(d) = defined(tz, from, until) {
                zones
                    .defined
                    .insert(id.val.as_str().trim().trim_matches('"').to_owned(), d);
            }
        }
        // Series by UID, in the order they first appear.
        let mut order: Vec<(String, Vec<Item<'_>>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, c) in children(vcal, "VEVENT").enumerate() {
            out.seen += 1;
            let uid = prop(c, "UID")
                .map(|p| p.val.as_str().trim().to_owned())
                .filter(|u| !u.is_empty() && u.len() <= 255);
            let Some(uid) = uid else {
                out.problems.push(ImportProblem {
                    event: prop(c, "UID")
                        .map(|p| p.val.as_str().trim().chars().take(255).collect())
                        .filter(|u: &String| !u.is_empty())
                        .unwrap_or_else(|| format!("event #{}", i + 1)),
                    reason: "no UID (needed so that a re-import replaces its shifts)".into(),
                });
                continue;
            };
            let at = *index.entry(uid.clone()).or_insert_with(|| {
                order.push((uid, Vec::new()));
                order.len() - 1
            });
            order[at].1.push(item(c));
        }
        for (uid, items) in &order {
            if let Some(e) = series(uid, items, &zones, from, until, &mut out.problems) {
                out.events.push(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    /// `(start, end, primary, backup)` of every occurrence, in UTC text.
    fn shifts(p: &Parsed) -> Vec<(String, String, String, Option<String>)> {
        let show = |t: i64| utc_naive(t).format("%Y-%m-%dT%H:%MZ").to_string();
        let mut all: Vec<_> = p
            .events
            .iter()
            .flat_map(|e| &e.occurrences)
            .map(|o| {
                (
                    show(o.starts_at),
                    show(o.ends_at),
                    o.primary.clone(),
                    o.backup.clone(),
                )
            })
            .collect();
        all.sort();
        all
    }

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
    fn offsets() {
        assert_eq!(utc_offset("-0500"), Some(-18_000));
        assert_eq!(utc_offset("+0530"), Some(19_800));
        assert_eq!(utc_offset("+013045"), Some(5_445));
        assert_eq!(utc_offset("0500"), None);
        assert_eq!(utc_offset("+2500"), None);
    }

    #[test]
    fn a_weekly_shift_in_new_york_keeps_local_time_across_the_dst_change() {
        // 2026-10-26 is a Monday; DST ends in New York on 2026-11-01.
        let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:nights@test\r\nDTSTART;TZID=America/New_York:20261026T190000\r\nDTEND;TZID=America/New_York:20261027T070000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nATTENDEE;CN=A;ROLE=REQ-PARTICIPANT:mailto:A@test.org\r\nATTENDEE;ROLE=OPT-PARTICIPANT:mailto:b@test.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let p = parse(ics, 1_700_000_000, 1_900_000_000).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let e = &p.events[0];
        assert_eq!(e.occurrences[0].primary, "a@test.org");
        assert_eq!(e.occurrences[0].backup.as_deref(), Some("b@test.org"));
        let starts: Vec<i64> = e.occurrences.iter().map(|o| o.starts_at).collect();
        // 19:00 EDT = 23:00 UTC; after the change 19:00 EST = 00:00 UTC.
        assert_eq!(starts[0], 1_793_055_600); // 2026-10-26T23:00:00Z
        assert_eq!(starts[1] - starts[0], 7 * 86_400 + 3600);
        assert_eq!(starts.len(), 3);
        // The night the clocks go back still ends at 07:00 local (12:00Z, 13 hours).
        assert_eq!(e.occurrences[0].ends_at, at("2026-10-27T11:00:00Z"));
    }

    #[test]
    fn problems_are_named_per_event() {
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;VALUE=DATE:20261026\r\nATTENDEE:mailto:a@t.org\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:y\r\nDTSTART;TZID=Mars/Olympus:20261026T190000\r\nDURATION:PT8H\r\nATTENDEE:mailto:a@t.org\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:z\r\nDTSTART:20261026T190000Z\r\nDURATION:PT8H\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let p = parse(ics, 0, 2_000_000_000).unwrap();
        assert_eq!(p.seen, 3);
        assert!(p.events.is_empty());
        let reasons: Vec<_> = p.problems.iter().map(|x| x.event.as_str()).collect();
        assert_eq!(reasons, ["x", "y", "z"]);
        assert!(
            p.problems[0].reason.contains("X-WR-TIMEZONE"),
            "{:?}",
            p.problems[0]
        );
        assert!(p.problems[1].reason.contains("IANA"), "{:?}", p.problems[1]);
        assert!(parse("hello", 0, 1).is_err());
    }

    /// Issue 19, case 01: a swapped, a moved and a cancelled night of a
    /// weekly series (RECURRENCE-ID overrides of one UID).
    #[test]
    fn overrides_replace_or_cancel_the_occurrence_they_name() {
        let ics = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/01-swap.ics"
        ));
        let p = parse(ics, at("2026-11-30T00:00:00Z"), at("2027-01-29T00:00:00Z")).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.seen, 4);
        let ph = "physician@demo.wardline.test";
        let ma = Some("medical.assistant@demo.wardline.test".to_owned());
        let night =
            |s: &str, e: &str, who: &str| (s.to_owned(), e.to_owned(), who.to_owned(), ma.clone());
        assert_eq!(
            shifts(&p),
            [
                night("2026-12-02T01:00Z", "2026-12-02T13:00Z", ph),
                night(
                    "2026-12-09T01:00Z",
                    "2026-12-09T13:00Z",
                    "nurse@demo.wardline.test"
                ),
                night("2026-12-16T03:00Z", "2026-12-16T15:00Z", ph),
                night("2026-12-30T01:00Z", "2026-12-30T13:00Z", ph),
                night("2027-01-06T01:00Z", "2027-01-06T13:00Z", ph),
                night("2027-01-13T01:00Z", "2027-01-13T13:00Z", ph),
                night("2027-01-20T01:00Z", "2027-01-20T13:00Z", ph),
            ]
        );
    }

    #[test]
    fn the_latest_sequence_of_an_override_wins_and_a_cancelled_series_makes_nothing() {
        let base = "BEGIN:VCALENDAR\r\nX-WR-TIMEZONE:Europe/Berlin\r\nBEGIN:VEVENT\r\nUID:s\r\nDTSTART:20261201T080000\r\nDTEND:20261201T200000\r\nRRULE:FREQ=DAILY;UNTIL=20261203\r\nATTENDEE:mailto:a@t.org\r\n{M}END:VEVENT\r\n\
            BEGIN:VEVENT\r\nUID:s\r\nSEQUENCE:2\r\nRECURRENCE-ID:20261202T080000\r\nDTSTART:20261202T090000\r\nDTEND:20261202T200000\r\nATTENDEE:mailto:b@t.org\r\nEND:VEVENT\r\n\
            BEGIN:VEVENT\r\nUID:s\r\nSEQUENCE:1\r\nRECURRENCE-ID:20261202T080000\r\nDTSTART:20261202T100000\r\nDTEND:20261202T200000\r\nATTENDEE:mailto:c@t.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let from = at("2026-11-30T00:00:00Z");
        let p = parse(&base.replace("{M}", ""), from, from + 30 * 86_400).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let got = shifts(&p);
        // UNTIL as a date includes its day: 1, 2 (overridden) and 3 December.
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[1].0, "2026-12-02T08:00Z");
        assert_eq!(got[1].2, "b@t.org");
        let cancelled = parse(
            &base.replace("{M}", "STATUS:CANCELLED\r\n"),
            from,
            from + 30 * 86_400,
        )
        .unwrap();
        assert!(cancelled.events.is_empty() && cancelled.problems.is_empty());
    }

    /// Issue 19, case 03: Outlook/Exchange names zones the Windows way, with
    /// VTIMEZONE blocks, and folds its long UIDs.
    #[test]
    fn windows_zone_names_are_mapped_to_their_iana_zones() {
        let ics = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/03-outlook.ics"
        ));
        let p = parse(ics, at("2026-11-30T00:00:00Z"), at("2027-01-14T00:00:00Z")).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(
            p.events[0]
                .uid
                .ends_with("0001000000011223344556677889900AABBCCDDEEFF")
        );
        let got: Vec<(String, String)> = shifts(&p).into_iter().map(|s| (s.0, s.1)).collect();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            got,
            [
                pair("2026-12-03T00:00Z", "2026-12-03T12:00Z"),
                pair("2026-12-05T14:00Z", "2026-12-06T02:00Z"),
                pair("2026-12-10T00:00Z", "2026-12-10T12:00Z"),
                pair("2026-12-17T00:00Z", "2026-12-17T12:00Z"),
                pair("2026-12-24T00:00Z", "2026-12-24T12:00Z"),
                pair("2026-12-31T00:00Z", "2026-12-31T12:00Z"),
            ]
        );
    }

    /// A zone name nobody knows is read from the calendar's VTIMEZONE,
    /// including its daylight-saving rule; prefixed IANA names are read too.
    #[test]
    fn an_unknown_zone_name_is_read_from_its_vtimezone() {
        let outlook = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/03-outlook.ics"
        ))
        .replace("Eastern Standard Time", "Customized Time Zone");
        // A time in summer: the DAYLIGHT rule applies (-0400).
        let summer = outlook
            .replace("20261202T190000", "20260701T190000")
            .replace("20261203T070000", "20260702T070000")
            .replace(
                "RRULE:FREQ=WEEKLY;UNTIL=20270105T000000Z;INTERVAL=1;BYDAY=WE;WKST=SU\r\n",
                "",
            );
        for (ics, want) in [
            (&outlook, "2026-12-03T00:00Z"),
            (&summer, "2026-07-01T23:00Z"),
        ] {
            let p = parse(ics, at("2026-06-01T00:00:00Z"), at("2027-01-14T00:00:00Z")).unwrap();
            assert!(p.problems.is_empty(), "{:?}", p.problems);
            assert_eq!(shifts(&p)[0].0, want);
        }
        let mozilla = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:m\r\nDTSTART;TZID=/mozilla.org/20050126_1/America/New_York:20261202T190000\r\nDURATION:PT12H\r\nATTENDEE:mailto:a@t.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let p = parse(mozilla, 0, 2_000_000_000).unwrap();
        assert_eq!(shifts(&p)[0].0, "2026-12-03T00:00Z");
    }

    /// Case 04's feeds: a cancelled event makes no shift.
    #[test]
    fn a_cancelled_event_makes_no_shift() {
        let from = at("2026-11-30T00:00:00Z");
        let v1 = parse(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/realworld/04-v1.ics"
            )),
            from,
            from + 30 * 86_400,
        )
        .unwrap();
        assert_eq!(shifts(&v1).len(), 2);
        let v2 = parse(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/realworld/04-v2-cancelled.ics"
            )),
            from,
            from + 30 * 86_400,
        )
        .unwrap();
        assert!(v2.problems.is_empty(), "{:?}", v2.problems);
        let got = shifts(&v2);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].0.as_str(), got[0].2.as_str()),
            ("2026-12-05T14:00Z", "physician@demo.wardline.test")
        );
    }

    /// Every DTSTART/UNTIL form RFC 5545 allows: UTC, floating (in the
    /// calendar's zone), TZID; UNTIL as UTC, local or a date; whole days.
    #[test]
    fn every_date_form_is_read() {
        let cal = |event: &str| {
            format!(
                "BEGIN:VCALENDAR\r\nX-WR-TIMEZONE:America/Chicago\r\nBEGIN:VEVENT\r\nUID:f\r\n{event}ATTENDEE:mailto:a@t.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            )
        };
        let from = at("2026-11-30T00:00:00Z");
        let first = |event: &str| {
            let p = parse(&cal(event), from, from + 40 * 86_400).unwrap();
            assert!(p.problems.is_empty(), "{event}: {:?}", p.problems);
            let s = shifts(&p);
            (s.len(), s[0].0.clone(), s[0].1.clone())
        };
        // Floating: the calendar's zone.
        assert_eq!(
            first("DTSTART:20261201T190000\r\nDURATION:PT12H\r\n").1,
            "2026-12-02T01:00Z"
        );
        assert_eq!(
            first("DTSTART:20261201T190000Z\r\nDURATION:PT12H\r\n").1,
            "2026-12-01T19:00Z"
        );
        // A whole day in the calendar's zone, with and without DTEND.
        let day = (
            "2026-12-01T06:00Z".to_owned(),
            "2026-12-02T06:00Z".to_owned(),
        );
        let (n, s, e) = first("DTSTART;VALUE=DATE:20261201\r\n");
        assert_eq!((n, (s, e)), (1, day.clone()));
        let (n, s, e) = first(
            "DTSTART;VALUE=DATE:20261201\r\nDTEND;VALUE=DATE:20261202\r\nRRULE:FREQ=WEEKLY;UNTIL=20261215\r\n",
        );
        assert_eq!((n, (s, e)), (3, day));
        // UNTIL in UTC, in local time, as a date: the 15 December night is included each way.
        for until in ["20261216T010000Z", "20261215T190000", "20261215"] {
            let rule = format!(
                "DTSTART;TZID=America/Chicago:20261201T190000\r\nDURATION:PT12H\r\nRRULE:FREQ=WEEKLY;UNTIL={until}\r\n"
            );
            assert_eq!(first(&rule).0, 3, "UNTIL={until}");
        }
        // EXDATE in UTC and as a local time remove the same night.
        for ex in [
            "EXDATE:20261209T010000Z",
            "EXDATE;TZID=America/Chicago:20261208T190000",
        ] {
            let rule = format!(
                "DTSTART;TZID=America/Chicago:20261201T190000\r\nDURATION:PT12H\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n{ex}\r\n"
            );
            assert_eq!(first(&rule).0, 2, "{ex}");
        }
    }

    /// A night shift at the spring change: 02:30 does not exist and is read
    /// with the offset before the gap; in autumn 01:30 is the first one.
    #[test]
    fn times_at_a_clock_change_are_placed_as_rfc_5545_says() {
        let ny = Zone::Iana(chrono_tz::America::New_York);
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").unwrap();
        assert_eq!(ny.instant(t("20270314T023000")), at("2027-03-14T07:30:00Z"));
        assert_eq!(ny.instant(t("20261101T013000")), at("2026-11-01T05:30:00Z"));
    }
}
