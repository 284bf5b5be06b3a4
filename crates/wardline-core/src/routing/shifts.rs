//! Schedules: shifts and who covers a role now, calendar imports (a file or a
//! subscribed feed, fetched on its own loop), overlap warnings.

use super::*;

impl RoutingService {
    /// The shift covering `role` at `at`, by [`on_call_order`].
    pub async fn shift_at(&self, org: OrgId, role: Uuid, at: i64) -> ApiResult<Option<Shift>> {
        Ok(self
            .store
            .list_shifts(org, role, at, at + 1)
            .await?
            .into_iter()
            .max_by(on_call_order))
    }

    pub async fn shifts(&self, org: OrgId, role: Uuid, q: ShiftQuery) -> ApiResult<ShiftList> {
        found(self.store.get_role(org, role).await, "clinical role")?;
        let from = q.from.unwrap_or_else(|| self.clock.now());
        let until = q.until.unwrap_or(from.saturating_add(14 * DAY));
        if until <= from || until.saturating_sub(from) > 100 * DAY {
            return Err(ApiError::bad_request(
                "until must be after from, at most 100 days later",
            ));
        }
        Ok(ShiftList {
            shifts: self.store.list_shifts(org, role, from, until).await?,
        })
    }

    pub async fn create_shift(
        &self,
        org: OrgId,
        role: Uuid,
        req: CreateShiftRequest,
    ) -> ApiResult<Shift> {
        found(self.store.get_role(org, role).await, "clinical role")?;
        if req.ends_at <= req.starts_at || req.ends_at.saturating_sub(req.starts_at) > 7 * DAY {
            return Err(ApiError::validation(
                "a shift must end after it starts and last at most 7 days",
            ));
        }
        self.active_user(org, req.user_id.into()).await?;
        if let Some(b) = req.backup_user_id {
            if b == req.user_id {
                return Err(ApiError::validation("the backup must be someone else"));
            }
            self.active_user(org, b.into()).await?;
        }
        let s = Shift {
            id: Uuid::new_v4(),
            role_id: role,
            user_id: req.user_id,
            backup_user_id: req.backup_user_id,
            starts_at: req.starts_at,
            ends_at: req.ends_at,
            source: "manual".into(),
        };
        self.store.insert_shift(org, &s).await?;
        Ok(s)
    }

    pub async fn delete_shift(&self, org: OrgId, role: Uuid, id: Uuid) -> ApiResult<()> {
        if !self.store.delete_shift(org, role, id).await? {
            return Err(ApiError::not_found("shift"));
        }
        Ok(())
    }

    /// Imports a role's schedule from iCalendar text or a URL; events seen
    /// before are replaced (by UID), so a re-import is safe.
    pub async fn import_schedule(
        &self,
        org: OrgId,
        role: Uuid,
        req: ImportScheduleRequest,
    ) -> ApiResult<ImportScheduleResult> {
        found(self.store.get_role(org, role).await, "clinical role")?;
        let days = req.days.unwrap_or(90);
        if !(1..=366).contains(&days) {
            return Err(ApiError::validation("days must be 1..=366"));
        }
        if req.subscribe && req.url.is_none() {
            return Err(ApiError::validation("subscribe keeps a feed: give its url"));
        }
        let (text, url) = match (req.ics, req.url) {
            (Some(t), None) => (t, None),
            (None, Some(u)) => (fetch_calendar(&u).await?, Some(u)),
            _ => {
                return Err(ApiError::validation(
                    "give the calendar as ics or as url, not both",
                ));
            }
        };
        let result = self.import_text(org, role, &text, days).await?;
        if let (true, Some(url)) = (req.subscribe, url) {
            self.subscribe(org, role, &url, days, &result).await?;
        }
        Ok(result)
    }

    pub(super) async fn subscribe(
        &self,
        org: OrgId,
        role: Uuid,
        url: &str,
        days: i64,
        first: &ImportScheduleResult,
    ) -> ApiResult<()> {
        let now = self.clock.now();
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let (key_row, key) = self.vault.new_key_row(org)?;
        let row_id = role.to_string();
        let feed = FeedRow {
            role_id: role,
            org_id: org,
            dek_id: key_row.id.clone(),
            url_enc: Vault::seal(
                &key,
                FieldRef {
                    table: "schedule_feeds",
                    row_id: &row_id,
                    column: "url",
                },
                url,
            ),
            host,
            days,
            subscribed_at: now,
            next_fetch_at: now + FEED_EVERY,
            last_fetched_at: Some(now),
            last_result: Some(summary(first)),
        };
        self.store.put_feed(&feed, &key_row).await?;
        Ok(())
    }

    pub async fn feed(&self, org: OrgId, role: Uuid) -> ApiResult<ScheduleFeed> {
        let f = found(self.store.get_feed(org, role).await, "schedule feed")?;
        Ok(ScheduleFeed {
            role_id: f.role_id,
            host: f.host,
            days: f.days,
            subscribed_at: f.subscribed_at,
            last_fetched_at: f.last_fetched_at,
            last_result: f.last_result,
            next_fetch_at: f.next_fetch_at,
        })
    }

    pub async fn unsubscribe(&self, org: OrgId, role: Uuid) -> ApiResult<()> {
        if !self.store.delete_feed(org, role).await? {
            return Err(ApiError::not_found("schedule feed"));
        }
        Ok(())
    }

    /// Imports the due subscribed feeds again (from the ticker): a failed
    /// fetch keeps the shifts already imported and is retried sooner.
    pub async fn refresh_feeds(&self) -> ApiResult<()> {
        let now = self.clock.now();
        for f in self.store.claim_feeds(now, now + 300, 5).await? {
            let key = self
                .vault
                .unwrap_key(&self.directory_store.get_data_key(&f.dek_id).await?)?;
            let row_id = f.role_id.to_string();
            let url = Vault::open_str(
                &key,
                FieldRef {
                    table: "schedule_feeds",
                    row_id: &row_id,
                    column: "url",
                },
                &f.url_enc,
            )?;
            let outcome = match fetch_calendar(&url).await {
                Ok(text) => self.import_text(f.org_id, f.role_id, &text, f.days).await,
                Err(e) => Err(e),
            };
            let (result, next) = match &outcome {
                Ok(r) => (summary(r), now + FEED_EVERY),
                Err(e) => (format!("failed: {}", e.message), now + FEED_RETRY),
            };
            self.store
                .feed_fetched(f.role_id, now, &result, next)
                .await?;
            self.audit
                .record(
                    crate::audit::NewEvent {
                        org_id: Some(f.org_id),
                        outcome: if outcome.is_ok() {
                            wardline_proto::audit::Outcome::Success
                        } else {
                            wardline_proto::audit::Outcome::Failure
                        },
                        ..crate::audit::NewEvent::service(
                            "schedule-feed",
                            wardline_proto::audit::AuditAction::ScheduleImport,
                        )
                    }
                    .target("clinical_role", f.role_id)
                    .reason(result),
                )
                .await?;
        }
        Ok(())
    }

    /// Parses a calendar and makes it the role's imported schedule: every
    /// imported shift not yet ended is replaced, so a shift cancelled or
    /// removed upstream goes on the next import or feed refresh. Shifts
    /// entered by hand stay; overlaps of different people are warned about.
    pub(super) async fn import_text(
        &self,
        org: OrgId,
        role: Uuid,
        text: &str,
        days: i64,
    ) -> ApiResult<ImportScheduleResult> {
        let now = self.clock.now();
        let parsed =
            ical::parse(text, now - DAY, now + days * DAY).map_err(ApiError::validation)?;
        let mut problems = parsed.problems;
        let mut shifts = Vec::new();
        let mut emails: HashMap<String, Option<UserId>> = HashMap::new();
        for e in parsed.events {
            let source = format!("ical:{}", e.uid);
            // One problem per event and reason, however many occurrences it
            // hits: `(no active attendee, no active backup)` counts.
            let mut missing = (0, 0);
            for o in e.occurrences {
                let mut lookup = async |email: &str| -> ApiResult<Option<UserId>> {
                    if let Some(u) = emails.get(email) {
                        return Ok(*u);
                    }
                    let u = self
                        .directory
                        .find_by_email(org, email)
                        .await?
                        .filter(|u| u.status == UserStatus::Active)
                        .map(|u| u.id);
                    emails.insert(email.to_owned(), u);
                    Ok(u)
                };
                let Some(primary) = lookup(&o.primary).await? else {
                    missing.0 += 1;
                    continue;
                };
                let backup = match &o.backup {
                    Some(b) => match lookup(b).await? {
                        Some(u) => Some(u),
                        None => {
                            missing.1 += 1;
                            continue;
                        }
                    },
                    None => None,
                };
                // Ended shifts are history, kept as they were.
                if o.ends_at <= now {
                    continue;
                }
                shifts.push(Shift {
                    id: Uuid::new_v4(),
                    role_id: role,
                    user_id: primary.into(),
                    backup_user_id: backup.map(Into::into),
                    starts_at: o.starts_at,
                    ends_at: o.ends_at,
                    source: source.clone(),
                });
            }
            for (n, reason) in [
                (missing.0, "its attendee is not an active user here"),
                (missing.1, "its backup attendee is not an active user here"),
            ] {
                if n > 0 {
                    problems.push(ImportProblem {
                        event: e.uid.clone(),
                        reason: format!("{reason} ({n} shift(s) not imported)"),
                    });
                }
            }
        }
        let earlier = self.store.replace_imported(org, role, now, &shifts).await?;
        let same = |a: &Shift, b: &Shift| {
            (a.user_id, a.backup_user_id, a.starts_at, a.ends_at)
                == (b.user_id, b.backup_user_id, b.starts_at, b.ends_at)
        };
        let removed = earlier
            .iter()
            .filter(|old| !shifts.iter().any(|new| same(old, new)))
            .count() as i64;
        let horizon = now + days * DAY;
        let in_force = self.store.list_shifts(org, role, now, horizon).await?;
        Ok(ImportScheduleResult {
            events: parsed.seen,
            shifts: shifts.len() as i64,
            replaced: earlier.len() as i64,
            removed,
            problems,
            warnings: overlaps(&in_force),
        })
    }

    pub async fn on_call(&self, org: OrgId, role: Uuid) -> ApiResult<OnCall> {
        let r = found(self.store.get_role(org, role).await, "clinical role")?;
        let now = self.clock.now();
        let presence = self.presence_map(org).await?;
        let shift = self.shift_at(org, role, now).await?;
        let (primary, backup) = match &shift {
            Some(s) => (
                Some(self.person(org, s.user_id.into(), &presence).await?),
                match s.backup_user_id {
                    Some(b) => Some(self.person(org, b.into(), &presence).await?),
                    None => None,
                },
            ),
            None => (None, None),
        };
        Ok(OnCall {
            role_id: role,
            role_name: r.name,
            at: now,
            shift,
            primary,
            backup,
        })
    }
}

/// One line for a feed's status.
pub(super) fn summary(r: &ImportScheduleResult) -> String {
    format!(
        "{} shifts from {} events ({} removed); {} problems; {} overlaps",
        r.shifts,
        r.events,
        r.removed,
        r.problems.len(),
        r.warnings.len()
    )
}

/// Most overlap warnings an import lists.
const MAX_OVERLAP_WARNINGS: usize = 20;

/// Shifts of different people covering the same time, and who is on call
/// then by [`on_call_order`]. `shifts` are by start.
pub(super) fn overlaps(shifts: &[Shift]) -> Vec<ImportProblem> {
    let name = |s: &Shift| match s.source.strip_prefix("ical:") {
        Some(uid) => uid.to_owned(),
        None => format!("shift {} (entered by hand)", s.id),
    };
    let when = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| t.to_string())
    };
    let mut out = Vec::new();
    let mut more = 0;
    for (i, a) in shifts.iter().enumerate() {
        for b in shifts[i + 1..]
            .iter()
            .take_while(|b| b.starts_at < a.ends_at)
        {
            if a.user_id == b.user_id {
                continue;
            }
            if out.len() == MAX_OVERLAP_WARNINGS {
                more += 1;
                continue;
            }
            let winner = if on_call_order(a, b).is_ge() { a } else { b };
            let rule = if a.starts_at == b.starts_at {
                "they start together; the one entered by hand, else the one ending later, is on call"
            } else {
                "the one that started later is on call from its start"
            };
            out.push(ImportProblem {
                event: name(b),
                reason: format!(
                    "covers the same time as {} from {} to {}: {rule} ({})",
                    name(a),
                    when(b.starts_at),
                    when(a.ends_at.min(b.ends_at)),
                    name(winner),
                ),
            });
        }
    }
    if more > 0 {
        out.push(ImportProblem {
            event: "…".into(),
            reason: format!("{more} more overlapping shift(s)"),
        });
    }
    out
}

/// `webcal://` and `webcals://` are not transports but "open this in a
/// calendar app" links that scheduling tools hand out (real-world case 05 of
/// issue 19): every client fetches them as `https://`, and a `webcal://`
/// link from a plain-http server as `http://`.
pub(super) fn calendar_locations(url: &str) -> ApiResult<Vec<reqwest::Url>> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|_| ApiError::validation("url is not a valid URL"))?;
    let with_scheme = |scheme: &str| {
        let rest = &parsed.as_str()[parsed.scheme().len()..];
        reqwest::Url::parse(&format!("{scheme}{rest}"))
            .map_err(|_| ApiError::validation("url is not a valid URL"))
    };
    match parsed.scheme() {
        "http" | "https" => Ok(vec![parsed.clone()]),
        "webcals" => Ok(vec![with_scheme("https")?]),
        "webcal" => Ok(vec![with_scheme("https")?, with_scheme("http")?]),
        other => Err(ApiError::validation(format!(
            "url must be https:// (or http://, webcal://, webcals://), not {other}://"
        ))),
    }
}

/// Fetches a calendar over http(s): at most 2 MiB, 20 seconds.
pub(super) async fn fetch_calendar(url: &str) -> ApiResult<String> {
    let locations = calendar_locations(url)?;
    let mut last = None;
    for parsed in locations {
        match fetch_calendar_at(parsed).await {
            Ok(text) => return Ok(text),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one location"))
}

pub(super) async fn fetch_calendar_at(parsed: reqwest::Url) -> ApiResult<String> {
    let fail = |e: &dyn std::fmt::Display| {
        ApiError::validation(format!("the calendar could not be fetched: {e}"))
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| fail(&e))?;
    let mut resp = client
        .get(parsed)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| fail(&e.without_url()))?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(&e.without_url()))? {
        body.extend_from_slice(&chunk);
        if body.len() > 2 * 1024 * 1024 {
            return Err(ApiError::validation("the calendar is larger than 2 MiB"));
        }
    }
    String::from_utf8(body).map_err(|_| ApiError::validation("the calendar is not UTF-8 text"))
}
