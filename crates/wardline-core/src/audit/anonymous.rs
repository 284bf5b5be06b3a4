//! Keeping anonymous traffic from filling the audit trail (finding M7 of
//! 2026-11-30: every unauthenticated request wrote a permanent row, 4,700 a
//! second from one client, about 3.5 GB an hour that retention may not touch
//! for years, nor at all under a legal hold).
//!
//! * Anonymous requests are limited per client address (a token bucket:
//!   `limits.anonymous_per_sec`, bursts of `limits.anonymous_burst`): each
//!   request that ends without a signed-in user or patient takes a token;
//!   with none left, requests that bring no credentials are answered 429
//!   before they run (a request with a session token still runs, so a
//!   flood from a shared address never locks its signed-in users out).
//! * Refusals of anonymous requests (401, 403, 429) are recorded once per
//!   (address, route, minute) as they happen, and the rest of that minute's
//!   as one entry with the count (reason `anonymous_repeats: …`), written
//!   when the minute is over. Every other request is still recorded, one
//!   entry each, before it is answered.
//! * Below `limits.min_free_disk_mib` free on the data directory's file
//!   system, anonymous requests are refused (503) before anything is written.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wardline_proto::audit::{ActorKind, AuditAction, Outcome};

use super::{AuditLog, NewEvent};

/// The current minute since the Unix epoch (the repeats' bucket).
pub fn unix_minute() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64 / 60)
}

/// (address, route, minute) of refused anonymous requests.
type RepeatKey = (IpAddr, String, i64);

/// Per-address token buckets, the minute's repeated refusals, and the disk
/// check's last answer.
pub struct AnonymousGate {
    per_sec: f64,
    burst: f64,
    min_free_bytes: u64,
    data_dir: PathBuf,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    /// (address, route, minute) → the route's action and the refusals after
    /// the first.
    repeats: Mutex<HashMap<RepeatKey, (AuditAction, u64)>>,
    disk: Mutex<Option<(Instant, bool)>>,
}

/// What to do with an anonymous request before it runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Run,
    /// Over the address's rate: answer 429.
    TooFast,
    /// Under the disk floor: answer 503.
    DiskFull,
}

/// Buckets not used for this long are forgotten (their address is back to
/// a full bucket anyway).
const BUCKET_IDLE: Duration = Duration::from_secs(600);
const DISK_CHECK_EVERY: Duration = Duration::from_secs(5);

impl AnonymousGate {
    pub fn new(per_sec: u32, burst: u32, min_free_mib: u64, data_dir: PathBuf) -> AnonymousGate {
        AnonymousGate {
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            min_free_bytes: min_free_mib.saturating_mul(1024 * 1024),
            data_dir,
            buckets: Mutex::new(HashMap::new()),
            repeats: Mutex::new(HashMap::new()),
            disk: Mutex::new(None),
        }
    }

    /// Whether a request from `ip` that brings no credentials may run now.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        if self.disk_is_low() {
            return Admission::DiskFull;
        }
        if self.tokens(ip, 0.0) >= 1.0 {
            Admission::Run
        } else {
            Admission::TooFast
        }
    }

    /// A request from `ip` ended anonymous: it takes a token.
    pub fn charge(&self, ip: IpAddr) {
        self.tokens(ip, 1.0);
    }

    /// The address's tokens after refilling, less `take` (never below 0).
    fn tokens(&self, ip: IpAddr, take: f64) -> f64 {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("buckets poisoned");
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < BUCKET_IDLE);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        *tokens = (*tokens - take).max(0.0);
        *tokens
    }

    fn disk_is_low(&self) -> bool {
        if self.min_free_bytes == 0 {
            return false;
        }
        let mut last = self.disk.lock().expect("disk check poisoned");
        if let Some((at, low)) = *last
            && at.elapsed() < DISK_CHECK_EVERY
        {
            return low;
        }
        let low = free_bytes(&self.data_dir).is_some_and(|free| free < self.min_free_bytes);
        if low {
            tracing::error!(
                "less than limits.min_free_disk_mib free for the data directory: anonymous requests are refused until there is room"
            );
        }
        *last = Some((Instant::now(), low));
        low
    }

    /// Whether `event` should be written now: anything but a refusal of an
    /// anonymous request is; of those, the first of its (address, `route`,
    /// minute) is, and later ones are counted for [`AnonymousGate::flush`].
    pub fn first_of_minute(&self, event: &NewEvent, ip: IpAddr, route: &str, minute: i64) -> bool {
        if event.actor_kind != ActorKind::Anonymous
            || !matches!(
                event.reason.as_deref(),
                Some("unauthenticated" | "forbidden" | "rate_limited")
            )
        {
            return true;
        }
        let mut repeats = self.repeats.lock().expect("repeats poisoned");
        match repeats.get_mut(&(ip, route.to_owned(), minute)) {
            Some((_, n)) => {
                *n += 1;
                false
            }
            None => {
                repeats.insert((ip, route.to_owned(), minute), (event.action, 0));
                true
            }
        }
    }

    /// Writes one entry per (address, action) for minutes before `now_minute`
    /// that had repeated refusals, with their count.
    pub async fn flush(&self, log: &AuditLog, now_minute: i64) {
        let done: Vec<(RepeatKey, (AuditAction, u64))> = {
            let mut repeats = self.repeats.lock().expect("repeats poisoned");
            let old: Vec<_> = repeats
                .keys()
                .filter(|(_, _, m)| *m < now_minute)
                .cloned()
                .collect();
            old.into_iter()
                .filter_map(|k| repeats.remove(&k).map(|v| (k, v)))
                .filter(|(_, (_, n))| *n > 0)
                .collect()
        };
        for ((ip, route, minute), (action, n)) in done {
            let event = NewEvent {
                source_ip: Some(ip.to_string()),
                actor_kind: ActorKind::Anonymous,
                actor_id: None,
                outcome: Outcome::Denied,
                reason: Some(format!(
                    "anonymous_repeats: {n} more refused anonymous requests to {route} in minute {minute} (Unix minutes)"
                )),
                ..NewEvent::service("anonymous", action)
            };
            if let Err(e) = log.record(event).await {
                tracing::error!(error = %e.message, "recording repeated anonymous refusals failed");
            }
        }
    }
}

/// Free bytes on the file system holding `dir` (for unprivileged users).
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate_and_cap_at_the_burst() {
        let gate = AnonymousGate::new(10, 3, 0, std::env::temp_dir());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(gate.admit(ip), Admission::Run);
            gate.charge(ip);
        }
        assert_eq!(gate.admit(ip), Admission::TooFast);
        assert_eq!(gate.admit("203.0.113.8".parse().unwrap()), Admission::Run);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(gate.admit(ip), Admission::Run, "refilled");
    }

    #[test]
    fn a_disk_floor_above_the_free_space_refuses() {
        let gate = AnonymousGate::new(10, 3, u64::MAX / (1024 * 1024), std::env::temp_dir());
        assert_eq!(
            gate.admit("203.0.113.7".parse().unwrap()),
            Admission::DiskFull
        );
        assert!(free_bytes(&std::env::temp_dir()).is_some_and(|b| b > 0));
    }

    #[test]
    fn refusals_after_the_first_of_a_minute_are_counted_not_written() {
        let gate = AnonymousGate::new(10, 3, 0, std::env::temp_dir());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let mut e = NewEvent::service("x", AuditAction::OrgView);
        e.actor_kind = ActorKind::Anonymous;
        e.outcome = Outcome::Denied;
        e.reason = Some("unauthenticated".into());
        let route = "GET /api/v1/org";
        assert!(gate.first_of_minute(&e, ip, route, 100));
        assert!(!gate.first_of_minute(&e, ip, route, 100));
        assert!(!gate.first_of_minute(&e, ip, route, 100));
        assert!(gate.first_of_minute(&e, ip, route, 101), "a new minute");
        assert!(
            gate.first_of_minute(&e, ip, "GET /api/v1/users", 100),
            "another route"
        );
        let mut signed_in = e.clone();
        signed_in.actor_kind = ActorKind::User;
        assert!(
            gate.first_of_minute(&signed_in, ip, route, 100),
            "users' events always"
        );
        assert_eq!(
            gate.repeats.lock().unwrap()[&(ip, route.to_owned(), 100)],
            (AuditAction::OrgView, 2)
        );
    }
}
