//! The patient-texting policy's rules: its validation and quiet hours (when a
//! text that may not go out during them may go).

use wardline_proto::patients::{PatientTextingPolicy, QuietHours};

use crate::error::{ApiError, ApiResult};

/// Checks an organisation's patient-texting policy.
pub fn validate_policy(p: &PatientTextingPolicy) -> ApiResult<()> {
    if !(300..=604_800).contains(&p.link_ttl_secs) {
        return Err(ApiError::invalid_field(
            "patients.link_ttl_secs",
            "patients.link_ttl_secs must be between 300 and 604800",
        ));
    }
    if !(1..=50).contains(&p.link_max_uses) {
        return Err(ApiError::invalid_field(
            "patients.link_max_uses",
            "patients.link_max_uses must be between 1 and 50",
        ));
    }
    if !(1..=20).contains(&p.verify_max_failures) {
        return Err(ApiError::invalid_field(
            "patients.verify_max_failures",
            "patients.verify_max_failures must be between 1 and 20",
        ));
    }
    if p.practice_phone.chars().count() > 40 {
        return Err(ApiError::invalid_field(
            "patients.practice_phone",
            "patients.practice_phone is at most 40 characters",
        ));
    }
    if let Some(from) = &p.sms_from {
        crate::phone::e164(from, None).map_err(|e| e.at_field("patients.sms_from"))?;
    }
    if let Some(region) = &p.default_region {
        crate::phone::validate_region(region).map_err(|e| e.at_field("patients.default_region"))?;
    }
    if let Some(q) = &p.quiet_hours {
        quiet_hours_end(q, 0).map_err(|e| e.at_field("patients.quiet_hours"))?;
    }
    Ok(())
}

/// When a text that may not go out during quiet hours may go: `now` outside
/// them, else the next end of quiet hours in the organisation's time zone.
pub fn quiet_hours_end(q: &QuietHours, now: i64) -> ApiResult<i64> {
    let bad = |what: &str| ApiError::validation(format!("patients.quiet_hours: {what}"));
    let tz = jiff::tz::TimeZone::get(&q.time_zone).map_err(|_| bad("unknown time_zone"))?;
    let parse = |s: &str| {
        (s.len() == 5)
            .then(|| s.parse::<jiff::civil::Time>().ok())
            .flatten()
            .ok_or_else(|| bad("start and end are HH:MM"))
    };
    let (start, end) = (parse(&q.start)?, parse(&q.end)?);
    if start == end {
        return Err(bad("start and end must differ"));
    }
    let ts = jiff::Timestamp::from_second(now).map_err(|_| bad("time out of range"))?;
    let local = ts.to_zoned_datetime(tz.clone());
    let t = local.time();
    let quiet = if start < end {
        t >= start && t < end
    } else {
        t >= start || t < end
    };
    if !quiet {
        return Ok(now);
    }
    let mut day = local.date();
    loop {
        let candidate = day
            .to_datetime(end)
            .to_zoned_datetime(tz.clone())
            .map_err(|_| bad("time out of range"))?;
        if candidate.timestamp() > ts {
            return Ok(candidate.timestamp().as_second());
        }
        day = day.tomorrow().map_err(|_| bad("time out of range"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start: &str, end: &str, tz: &str) -> QuietHours {
        QuietHours {
            start: start.into(),
            end: end.into(),
            time_zone: tz.into(),
        }
    }

    #[test]
    fn quiet_hours_push_to_their_end_in_local_time() {
        // 2026-11-23 03:00 UTC = 22:00 the evening before in New York (EST).
        let t = 1_795_402_800;
        let ny = q("21:00", "08:00", "America/New_York");
        // Next 08:00 New York = 13:00 UTC.
        assert_eq!(quiet_hours_end(&ny, t).unwrap(), t + 10 * 3600);
        // 15:00 UTC = 10:00 New York: not quiet.
        assert_eq!(quiet_hours_end(&ny, t + 12 * 3600).unwrap(), t + 12 * 3600);
        // A window that does not span midnight.
        let lunch = q("12:00", "13:00", "UTC");
        let noon_thirty = t - 3 * 3600 + 12 * 3600 + 1800; // 12:30 UTC
        assert_eq!(
            quiet_hours_end(&lunch, noon_thirty).unwrap(),
            noon_thirty + 1800
        );
        assert!(quiet_hours_end(&q("21:00", "21:00", "UTC"), t).is_err());
        assert!(quiet_hours_end(&q("9pm", "08:00", "UTC"), t).is_err());
        assert!(quiet_hours_end(&q("21:00", "08:00", "Mars/Olympus"), t).is_err());
    }
}
