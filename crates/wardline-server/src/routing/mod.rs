//! Clinical routing: the directory of departments, care teams and clinical
//! roles with presence; on-call schedules (manual and iCalendar); pages to a
//! role resolved to whoever covers it now; acknowledgement and the durable
//! escalation ladder; patient context with care-team access and break-glass;
//! response reports.
//!
//! The server still never reads content: a page opens (or reuses) an MLS
//! conversation with the person resolved, and escalation alerts are server
//! entries that name the waiting message, never its text.

pub mod escalation;
pub mod ical;
pub mod routes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;
use wardline_proto::directory::UserStatus;
use wardline_proto::messaging::{ConversationKind, CreateConversationRequest};
use wardline_proto::routing::*;
use wardline_proto::{OrgId, UserId};

use crate::audit::{AuditLog, AuditScope};
use crate::authz::Principal;
use crate::clock::Clock;
use crate::directory::DirectoryService;
use crate::error::{ApiError, ApiResult, check_text, found};
use crate::messaging::MessagingService;
use crate::patients::PatientService;
use crate::vault::{FieldRef, Vault};
use wardline_store::messaging::{MessageRow, MessagingStore};
use wardline_store::routing::{FeedRow, GrantRow, RoutingStore, presence_now};
use wardline_store::{LifecycleStore, Store, StoreError};

const DAY: i64 = 86_400;
/// How far a fallback role may lead to another fallback role.
const MAX_FALLBACK_DEPTH: usize = 3;
const MAX_SEARCH_RESULTS: usize = 50;
/// How often a subscribed schedule feed is imported again, and how soon
/// after a failed fetch.
const FEED_EVERY: i64 = 3600;
const FEED_RETRY: i64 = 900;

/// A name for the directory: trimmed, 1 to 100 characters.
fn name(value: &str, what: &str) -> ApiResult<String> {
    let v = value.trim();
    check_text(v, what, 100)?;
    Ok(v.to_owned())
}

/// Checks an escalation ladder: 1–10 steps, 15 s to a day, strictly later
/// each, and no `handoff` (which the server records, never schedules).
pub fn validate_escalation(p: &EscalationPolicy) -> ApiResult<()> {
    for (which, ladder) in [("stat", &p.stat), ("urgent", &p.urgent)] {
        if ladder.len() > 10 {
            return Err(ApiError::validation(format!(
                "escalation.{which} has at most 10 steps"
            )));
        }
        let mut last = 0;
        for s in ladder {
            if !(15..=DAY).contains(&s.after_secs) || s.after_secs <= last {
                return Err(ApiError::validation(format!(
                    "escalation.{which}: after_secs must be 15..=86400 and increase along the ladder"
                )));
            }
            if matches!(
                s.action,
                EscalationAction::Handoff
                    | EscalationAction::Acknowledged
                    | EscalationAction::Unanswered
            ) {
                return Err(ApiError::validation(format!(
                    "escalation.{which}: {} is recorded by the server, not a step",
                    s.action.as_str()
                )));
            }
            last = s.after_secs;
        }
    }
    Ok(())
}

pub fn validate_policy(p: &RoutingPolicy) -> ApiResult<()> {
    validate_escalation(&p.escalation)?;
    if !(30..=3600).contains(&p.renotify_min_secs) {
        return Err(ApiError::validation(
            "routing.renotify_min_secs must be 30..=3600",
        ));
    }
    if !(1..=30).contains(&p.sms_per_hour) {
        return Err(ApiError::validation("routing.sms_per_hour must be 1..=30"));
    }
    if !(5..=720).contains(&p.break_glass_minutes) {
        return Err(ApiError::validation(
            "routing.break_glass_minutes must be 5..=720",
        ));
    }
    if let Some(q) = &p.quiet_hours {
        crate::patients::quiet_hours_end(q, 0)
            .map_err(|e| ApiError::validation(format!("routing.quiet_hours: {}", e.message)))?;
    }
    Ok(())
}

/// Who a page to a role reaches now, and how.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub role: ClinicalRole,
    pub user: UserId,
    pub via: ResolvedVia,
    pub nobody_on_call: bool,
    pub notice: String,
}

#[derive(Clone)]
pub struct RoutingService {
    store: Arc<dyn RoutingStore>,
    /// Job leases (one node at a time for shift hand-offs).
    leases: Arc<dyn LifecycleStore>,
    messages: Arc<dyn MessagingStore>,
    directory_store: Arc<dyn Store>,
    directory: DirectoryService,
    messaging: MessagingService,
    patients: PatientService,
    vault: Vault,
    clock: Arc<dyn Clock>,
    audit: AuditLog,
    public_url: String,
}

impl RoutingService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn RoutingStore>,
        leases: Arc<dyn LifecycleStore>,
        messages: Arc<dyn MessagingStore>,
        directory_store: Arc<dyn Store>,
        directory: DirectoryService,
        messaging: MessagingService,
        patients: PatientService,
        vault: Vault,
        clock: Arc<dyn Clock>,
        audit: AuditLog,
        public_url: String,
    ) -> Self {
        RoutingService {
            store,
            leases,
            messages,
            directory_store,
            directory,
            messaging,
            patients,
            vault,
            clock,
            audit,
            public_url,
        }
    }

    /// The server's clock (the demo schedules shifts from it).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    async fn policy(&self, org: OrgId) -> ApiResult<RoutingPolicy> {
        Ok(self.directory_store.get_org(org).await?.policy.routing)
    }

    /// The user is an active member of the organisation.
    async fn active_user(&self, org: OrgId, user: UserId) -> ApiResult<()> {
        match self.directory_store.get_user(org, user).await {
            Ok(u) if u.status == UserStatus::Active => Ok(()),
            Ok(_) => Err(ApiError::validation(format!("user {user} is not active"))),
            Err(StoreError::NotFound) => Err(ApiError::validation(format!(
                "user {user} is not in this organisation"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn department_exists(&self, org: OrgId, id: Option<Uuid>) -> ApiResult<()> {
        if let Some(id) = id
            && !self
                .store
                .list_departments(org)
                .await?
                .iter()
                .any(|d| d.id == id)
        {
            return Err(ApiError::validation(
                "department_id is not a department here",
            ));
        }
        Ok(())
    }

    // --------------------------------------------------------- directory

    pub async fn directory(&self, org: OrgId) -> ApiResult<RoutingDirectory> {
        Ok(RoutingDirectory {
            departments: self.store.list_departments(org).await?,
            care_teams: self.store.list_teams(org).await?,
            roles: self.store.list_roles(org).await?,
        })
    }

    pub async fn create_department(
        &self,
        org: OrgId,
        req: CreateDepartmentRequest,
    ) -> ApiResult<Department> {
        let d = Department {
            id: Uuid::new_v4(),
            name: name(&req.name, "name")?,
            created_at: self.clock.now(),
        };
        found(self.store.insert_department(org, &d).await, "department")?;
        Ok(d)
    }

    pub async fn create_team(&self, org: OrgId, req: CreateCareTeamRequest) -> ApiResult<CareTeam> {
        self.department_exists(org, req.department_id).await?;
        let mut members = req.members.clone();
        members.sort();
        members.dedup();
        if members.len() > 500 {
            return Err(ApiError::validation("a care team has at most 500 members"));
        }
        for u in &members {
            self.active_user(org, *u).await?;
        }
        let t = CareTeam {
            id: Uuid::new_v4(),
            name: name(&req.name, "name")?,
            department_id: req.department_id,
            members,
            created_at: self.clock.now(),
        };
        found(self.store.insert_team(org, &t).await, "care team")?;
        Ok(t)
    }

    pub async fn add_team_member(
        &self,
        org: OrgId,
        team: Uuid,
        user: UserId,
    ) -> ApiResult<CareTeam> {
        found(self.store.get_team(org, team).await, "care team")?;
        self.active_user(org, user).await?;
        if !self
            .store
            .add_team_member(org, team, user, self.clock.now())
            .await?
        {
            return Err(ApiError::conflict("already on this care team"));
        }
        Ok(self.store.get_team(org, team).await?)
    }

    pub async fn remove_team_member(
        &self,
        org: OrgId,
        team: Uuid,
        user: UserId,
    ) -> ApiResult<CareTeam> {
        if !found(
            self.store.remove_team_member(org, team, user).await,
            "care team",
        )? {
            return Err(ApiError::not_found("care team member"));
        }
        Ok(self.store.get_team(org, team).await?)
    }

    /// A role as the request describes it (checked), with `id` and `created_at`.
    async fn role_from(
        &self,
        org: OrgId,
        id: Uuid,
        created_at: i64,
        req: CreateRoleRequest,
    ) -> ApiResult<ClinicalRole> {
        self.department_exists(org, req.department_id).await?;
        if let Some(f) = req.fallback_role_id {
            if f == id {
                return Err(ApiError::validation("a role cannot be its own fallback"));
            }
            found(self.store.get_role(org, f).await, "fallback role")?;
        }
        if let Some(e) = &req.escalation {
            validate_escalation(e)?;
        }
        let mut holders = req.holders.clone();
        holders.sort();
        holders.dedup();
        if holders.len() > 500 {
            return Err(ApiError::validation("a role has at most 500 holders"));
        }
        for u in &holders {
            self.active_user(org, *u).await?;
        }
        Ok(ClinicalRole {
            id,
            name: name(&req.name, "name")?,
            department_id: req.department_id,
            fallback_role_id: req.fallback_role_id,
            holders,
            escalation: req.escalation,
            created_at,
        })
    }

    pub async fn create_role(&self, org: OrgId, req: CreateRoleRequest) -> ApiResult<ClinicalRole> {
        let r = self
            .role_from(org, Uuid::new_v4(), self.clock.now(), req)
            .await?;
        found(self.store.insert_role(org, &r).await, "clinical role")?;
        Ok(r)
    }

    /// Replaces a role's name, department, fallback, holders and ladders
    /// (shifts stay; open escalations follow the new ladder from their next step).
    pub async fn update_role(
        &self,
        org: OrgId,
        id: Uuid,
        req: CreateRoleRequest,
        audit: &AuditScope,
    ) -> ApiResult<ClinicalRole> {
        let old = found(self.store.get_role(org, id).await, "clinical role")?;
        let r = self.role_from(org, id, old.created_at, req).await?;
        // A fallback chain must not come back to this role.
        let mut next = r.fallback_role_id;
        for _ in 0..=MAX_FALLBACK_DEPTH {
            let Some(f) = next else { break };
            if f == id {
                return Err(ApiError::validation(
                    "the fallback chain would lead back to this role",
                ));
            }
            next = self.store.get_role(org, f).await?.fallback_role_id;
        }
        found(
            self.store.update_role(org, &r, self.clock.now()).await,
            "clinical role",
        )?;
        audit.changed(&old, &r);
        Ok(r)
    }

    pub async fn set_presence(
        &self,
        p: &Principal,
        req: SetPresenceRequest,
    ) -> ApiResult<Presence> {
        let now = self.clock.now();
        if let Some(u) = req.until
            && !(now < u && u <= now + 7 * DAY)
        {
            return Err(ApiError::validation(
                "until must be in the future and at most 7 days ahead",
            ));
        }
        let presence = Presence {
            user_id: p.user_id,
            status: req.status,
            until: req.until,
            updated_at: now,
        };
        self.store.set_presence(p.org_id, &presence).await?;
        Ok(presence)
    }

    async fn presence_map(&self, org: OrgId) -> ApiResult<HashMap<UserId, Presence>> {
        Ok(self
            .store
            .list_presence(org)
            .await?
            .into_iter()
            .map(|p| (p.user_id, p))
            .collect())
    }

    async fn person(
        &self,
        org: OrgId,
        user: UserId,
        presence: &HashMap<UserId, Presence>,
    ) -> ApiResult<OnCallPerson> {
        Ok(OnCallPerson {
            user_id: user,
            display_name: self.directory.user(org, user).await?.display_name,
            presence: presence_now(presence.get(&user), self.clock.now()),
        })
    }

    /// People whose name, clinical role, department or care team matches `q`.
    pub async fn search(&self, org: OrgId, q: &str) -> ApiResult<DirectorySearchResult> {
        let q = q.trim().to_lowercase();
        if q.is_empty() || q.chars().count() > 100 {
            return Err(ApiError::bad_request("q must be 1 to 100 characters"));
        }
        let now = self.clock.now();
        let dir = self.directory(org).await?;
        let presence = self.presence_map(org).await?;
        let dept_name: HashMap<Uuid, &str> = dir
            .departments
            .iter()
            .map(|d| (d.id, d.name.as_str()))
            .collect();
        let mut on_call: HashMap<UserId, Vec<String>> = HashMap::new();
        for r in &dir.roles {
            if let Some(s) = self.shift_at(org, r.id, now).await? {
                on_call.entry(s.user_id).or_default().push(r.name.clone());
            }
        }
        let mut entries = Vec::new();
        for u in self.directory.list(org).await? {
            if u.status != UserStatus::Active {
                continue;
            }
            let roles: Vec<&ClinicalRole> = dir
                .roles
                .iter()
                .filter(|r| r.holders.contains(&u.id))
                .collect();
            let teams: Vec<&CareTeam> = dir
                .care_teams
                .iter()
                .filter(|t| t.members.contains(&u.id))
                .collect();
            let departments: BTreeSet<String> = roles
                .iter()
                .filter_map(|r| r.department_id)
                .chain(teams.iter().filter_map(|t| t.department_id))
                .filter_map(|d| dept_name.get(&d).map(|n| n.to_string()))
                .collect();
            let entry = DirectoryEntry {
                user_id: u.id,
                display_name: u.display_name.clone(),
                roles: roles.iter().map(|r| r.name.clone()).collect(),
                departments: departments.into_iter().collect(),
                care_teams: teams.iter().map(|t| t.name.clone()).collect(),
                presence: presence_now(presence.get(&u.id), now),
                on_call: on_call.remove(&u.id).unwrap_or_default(),
            };
            let hit = std::iter::once(&entry.display_name)
                .chain(&entry.roles)
                .chain(&entry.departments)
                .chain(&entry.care_teams)
                .chain(&entry.on_call)
                .any(|s| s.to_lowercase().contains(&q));
            if hit {
                entries.push(entry);
                if entries.len() == MAX_SEARCH_RESULTS {
                    break;
                }
            }
        }
        Ok(DirectorySearchResult { entries })
    }

    // --------------------------------------------------------- schedules

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
        self.active_user(org, req.user_id).await?;
        if let Some(b) = req.backup_user_id {
            if b == req.user_id {
                return Err(ApiError::validation("the backup must be someone else"));
            }
            self.active_user(org, b).await?;
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

    async fn subscribe(
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
    async fn import_text(
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
                    user_id: primary,
                    backup_user_id: backup,
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
                Some(self.person(org, s.user_id, &presence).await?),
                match s.backup_user_id {
                    Some(b) => Some(self.person(org, b, &presence).await?),
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

    // ------------------------------------------------------------ paging

    /// Whoever a page to `role` reaches now, skipping `except` (the sender)
    /// and anyone off duty or in a procedure.
    pub async fn resolve(&self, org: OrgId, role: Uuid, except: UserId) -> ApiResult<Resolution> {
        let now = self.clock.now();
        // Why someone cannot take the page now (none: they can).
        let unreachable = async |u: UserId| -> ApiResult<Option<String>> {
            if u == except {
                return Ok(Some("you".into()));
            }
            self.unreachable(org, u, now).await
        };
        let first = found(self.store.get_role(org, role).await, "clinical role")?;
        let mut role = first.clone();
        let mut notes: Vec<String> = Vec::new();
        for depth in 0..=MAX_FALLBACK_DEPTH {
            let fallback = depth > 0;
            let pick = |user: UserId, direct: ResolvedVia, notes: &[String]| {
                let via = if fallback {
                    ResolvedVia::FallbackRole
                } else {
                    direct
                };
                (user, via, notes.to_vec())
            };
            let mut chosen = None;
            if let Some(s) = self.shift_at(org, role.id, now).await? {
                match unreachable(s.user_id).await? {
                    None => chosen = Some(pick(s.user_id, ResolvedVia::OnCall, &notes)),
                    Some(why) => {
                        notes.push(format!("the person on call for {} is {why}", role.name));
                        if let Some(b) = s.backup_user_id
                            && unreachable(b).await?.is_none()
                        {
                            chosen = Some(pick(b, ResolvedVia::Backup, &notes));
                        }
                    }
                }
            } else {
                notes.push(format!("nobody is on call for {}", role.name));
            }
            if chosen.is_none() {
                for h in &role.holders {
                    if unreachable(*h).await?.is_none() {
                        chosen = Some(pick(*h, ResolvedVia::Holder, &notes));
                        break;
                    }
                }
            }
            if let Some((user, via, notes)) = chosen {
                return Ok(Resolution {
                    nobody_on_call: fallback || via == ResolvedVia::Holder,
                    notice: self.notice(org, &role, user, &notes).await?,
                    via,
                    user,
                    role: first,
                });
            }
            match role.fallback_role_id {
                Some(f) if depth < MAX_FALLBACK_DEPTH => {
                    role = self.store.get_role(org, f).await?;
                }
                _ => break,
            }
        }
        Err(ApiError::conflict(format!(
            "nobody can be reached for {}: {}; page someone directly",
            first.name,
            notes.join("; ")
        )))
    }

    async fn notice(
        &self,
        org: OrgId,
        role: &ClinicalRole,
        user: UserId,
        notes: &[String],
    ) -> ApiResult<String> {
        let who = self.directory.user(org, user).await?.display_name;
        Ok(if notes.is_empty() {
            format!("{} is covered by {who}", role.name)
        } else {
            format!("{}; paging {who} ({})", notes.join("; "), role.name)
        })
    }

    /// Why `user` cannot take a page at `now` (none: they can): an account
    /// that is not active, or being in a procedure or off duty. The one
    /// check behind paging, escalation steps and hand-offs.
    pub(crate) async fn unreachable(
        &self,
        org: OrgId,
        user: UserId,
        now: i64,
    ) -> ApiResult<Option<String>> {
        match self.directory_store.get_user(org, user).await {
            Ok(row) if row.status == UserStatus::Active => {}
            Ok(_) | Err(StoreError::NotFound) => return Ok(Some("not active".into())),
            Err(e) => return Err(e.into()),
        }
        let presence = self.store.list_presence(org).await?;
        let status = presence_now(presence.iter().find(|p| p.user_id == user), now);
        Ok((!status.reachable()).then(|| status.as_str().replace('_', " ")))
    }

    /// Opens (or reuses) the caller's conversation to a role with whoever
    /// covers it now; the message the caller then sends there is recorded as
    /// sent to the role and resolved to that person.
    pub async fn page(
        &self,
        p: &Principal,
        role: Uuid,
        req: PageRoleRequest,
        audit: &AuditScope,
    ) -> ApiResult<PageRoleResponse> {
        let r = self.resolve(p.org_id, role, p.user_id).await?;
        // The sender's last page to this role is reused while it reaches the
        // same person; a new person on call gets a new conversation, so that
        // nobody off shift keeps receiving the role's messages.
        let reuse = match self
            .store
            .role_conversation(p.org_id, p.user_id, role, r.user)
            .await?
        {
            Some(c)
                if req.patient_ref.is_none() && self.messages.is_member(c, p.user_id).await? =>
            {
                Some(c)
            }
            _ => None,
        };
        let conversation = match reuse {
            Some(c) => {
                if !self.messages.is_member(c, r.user).await? {
                    self.add_member(p.org_id, c, r.user, p.user_id).await?;
                }
                c
            }
            None => {
                let (_, c) = self
                    .messaging
                    .create_conversation(
                        p,
                        CreateConversationRequest {
                            kind: ConversationKind::Group,
                            title: Some(format!("Page: {}", r.role.name)),
                            members: vec![r.user],
                            patient_ref: req.patient_ref,
                            care_team_id: None,
                        },
                        audit,
                    )
                    .await?;
                c.id
            }
        };
        self.store
            .set_routing(conversation, role, r.user, r.via.as_str())
            .await?;
        // The event names the conversation opened; how it was routed, by ids.
        audit.target("conversation", conversation);
        audit.reason(&format!(
            "role {role} resolved to user {} ({})",
            r.user,
            r.via.as_str()
        ));
        let c = self
            .messages
            .get_conversation(p.org_id, conversation)
            .await?;
        let presence = self.presence_map(p.org_id).await?;
        Ok(PageRoleResponse {
            conversation: self.messaging.to_wire(&c, Some(audit)).await?,
            role_id: role,
            role_name: r.role.name.clone(),
            resolved_to: self.person(p.org_id, r.user, &presence).await?,
            via: r.via,
            nobody_on_call: r.nobody_on_call,
            notice: r.notice,
        })
    }

    /// Adds a user to a conversation through the usual membership path (a
    /// member's client commits their devices into the MLS group).
    async fn add_member(
        &self,
        org: OrgId,
        conversation: Uuid,
        user: UserId,
        actor: UserId,
    ) -> ApiResult<bool> {
        let c = self.messages.get_conversation(org, conversation).await?;
        let devices: Vec<_> = self
            .messages
            .list_user_devices(org, user)
            .await?
            .into_iter()
            .map(|d| d.device.id)
            .collect();
        let notice = MessageRow::membership_notice(conversation, c.epoch, actor, self.clock.now());
        let (added, woken) = self
            .messages
            .add_member(conversation, user, &devices, &notice)
            .await?;
        self.messaging.wake(&woken).await;
        Ok(added)
    }

    // ----------------------------------------------- patient context

    /// Opens a patient's conversations for the caller: members already are;
    /// the care team joins; anyone else needs break-glass with a reason,
    /// which grants time-limited membership, tells the compliance officer
    /// and is audited.
    pub async fn open_patient(
        &self,
        p: &Principal,
        req: OpenPatientRequest,
        audit: &AuditScope,
    ) -> ApiResult<PatientAccess> {
        let patient = req.patient_ref.trim();
        check_text(patient, "patient_ref", 100)?;
        let bidx = crate::lifecycle::patient_index(&self.vault, p.org_id, patient);
        audit.patient_ref(&bidx);
        let conversations = self.store.conversations_by_patient(p.org_id, &bidx).await?;
        if conversations.is_empty() {
            return Err(ApiError::not_found("conversation about this patient"));
        }
        let teams: HashMap<Uuid, CareTeam> = self
            .store
            .list_teams(p.org_id)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        // The departments where the caller holds a clinical role.
        let my_departments: BTreeSet<Uuid> = self
            .store
            .list_roles(p.org_id)
            .await?
            .into_iter()
            .filter(|r| r.holders.contains(&p.user_id))
            .filter_map(|r| r.department_id)
            .collect();
        let mut access = Vec::new();
        let mut locked = Vec::new();
        for (c, team) in conversations {
            let team = team.and_then(|t| teams.get(&t));
            if self.messages.is_member(c, p.user_id).await? {
                access.push((c, AccessVia::Member));
            } else if team.is_some_and(|t| t.members.contains(&p.user_id)) {
                access.push((c, AccessVia::CareTeam));
            } else if team
                .and_then(|t| t.department_id)
                .is_some_and(|d| my_departments.contains(&d))
            {
                access.push((c, AccessVia::Department));
            } else {
                locked.push(c);
            }
        }
        let reason = req.reason.as_deref().map(str::trim).unwrap_or_default();
        let policy = self.policy(p.org_id).await?;
        if !locked.is_empty() && !p.roles.iter().any(|r| policy.break_glass_roles.contains(r)) {
            return Err(ApiError::forbidden(
                "you are not on this patient's care team, and your role may not break the glass \
                 (the organisation allows it to routing.break_glass_roles)",
            ));
        }
        if !locked.is_empty() && !(10..=500).contains(&reason.chars().count()) {
            return Err(ApiError::forbidden(
                "you are not on this patient's care team: break-glass access needs a stated reason (10 to 500 characters), which the compliance officer reviews",
            ));
        }
        let now = self.clock.now();
        let mut grants = Vec::new();
        for c in &locked {
            let (key_row, key) = self.vault.new_key_row(p.org_id)?;
            let dek_id = key_row.id.clone();
            let id = Uuid::new_v4();
            let row_id = id.to_string();
            let g = GrantRow {
                id,
                org_id: p.org_id,
                conversation_id: *c,
                user_id: p.user_id,
                dek_id,
                reason_enc: Vault::seal(
                    &key,
                    FieldRef {
                        table: "break_glass",
                        row_id: &row_id,
                        column: "reason",
                    },
                    reason,
                ),
                granted_at: now,
                expires_at: now + policy.break_glass_minutes * 60,
                ended_at: None,
            };
            self.store.insert_grant(&g, &key_row).await?;
            self.add_member(p.org_id, *c, p.user_id, p.user_id).await?;
            self.messaging
                .request_history(p.org_id, *c, p.user_id, None)
                .await?;
            self.store
                .insert_notification(
                    p.org_id,
                    &Notification {
                        id: Uuid::new_v4(),
                        kind: "break_glass".into(),
                        subject: p.user_id,
                        detail: format!(
                            "break-glass access to conversation {c} until {} (grant {id})",
                            g.expires_at
                        ),
                        created_at: now,
                    },
                )
                .await?;
            audit.also(
                wardline_proto::audit::AuditAction::BreakGlassGrant,
                "break_glass",
                id,
            );
            grants.push(BreakGlassGrant {
                id,
                conversation_id: *c,
                user_id: p.user_id,
                reason: Some(reason.to_owned()),
                granted_at: now,
                expires_at: g.expires_at,
                ended_at: None,
            });
            access.push((*c, AccessVia::BreakGlass));
        }
        for (c, via) in &access {
            if matches!(via, AccessVia::CareTeam | AccessVia::Department) {
                self.add_member(p.org_id, *c, p.user_id, p.user_id).await?;
                self.messaging
                    .request_history(p.org_id, *c, p.user_id, None)
                    .await?;
            }
        }
        Ok(PatientAccess {
            conversations: access
                .into_iter()
                .map(|(conversation_id, via)| PatientConversationAccess {
                    conversation_id,
                    via,
                })
                .collect(),
            grants,
        })
    }

    pub async fn grants(&self, org: OrgId) -> ApiResult<BreakGlassList> {
        let mut out = Vec::new();
        for g in self.store.list_grants(org).await? {
            let key = self
                .vault
                .unwrap_key(&self.directory_store.get_data_key(&g.dek_id).await?)?;
            let row_id = g.id.to_string();
            let reason = Vault::open_str(
                &key,
                FieldRef {
                    table: "break_glass",
                    row_id: &row_id,
                    column: "reason",
                },
                &g.reason_enc,
            )?;
            out.push(BreakGlassGrant {
                id: g.id,
                conversation_id: g.conversation_id,
                user_id: g.user_id,
                reason: Some(reason),
                granted_at: g.granted_at,
                expires_at: g.expires_at,
                ended_at: g.ended_at,
            });
        }
        Ok(BreakGlassList { grants: out })
    }

    pub async fn notifications(&self, org: OrgId) -> ApiResult<NotificationList> {
        Ok(NotificationList {
            notifications: self.store.list_notifications(org).await?,
        })
    }

    // ------------------------------------------------------------ reports

    pub async fn report(&self, org: OrgId, q: ReportQuery) -> ApiResult<ResponseReport> {
        let until = q.until.unwrap_or_else(|| self.clock.now());
        let since = q.since.unwrap_or(until.saturating_sub(7 * DAY));
        if until <= since || until.saturating_sub(since) > 366 * DAY {
            return Err(ApiError::bad_request(
                "until must be after since, at most 366 days later",
            ));
        }
        let dir = self.directory(org).await?;
        let role_name: HashMap<Uuid, String> =
            dir.roles.iter().map(|r| (r.id, r.name.clone())).collect();
        let dept_name: HashMap<Uuid, String> = dir
            .departments
            .iter()
            .map(|d| (d.id, d.name.clone()))
            .collect();
        let rows = self.store.routed_between(org, since, until).await?;
        let policy = self.policy(org).await?;
        #[derive(Default)]
        struct Acc {
            messages: i64,
            read: Vec<i64>,
            acked: Vec<i64>,
            escalated: i64,
            unacknowledged: i64,
            unanswered: i64,
        }
        let mut by_role: BTreeMap<Option<Uuid>, Acc> = BTreeMap::new();
        let mut by_dept: BTreeMap<Option<Uuid>, Acc> = BTreeMap::new();
        let mut waiting = Vec::new();
        let mut escalated = Vec::new();
        let mut unanswered = Vec::new();
        for r in &rows {
            // One escalation stream counts once.
            if r.merged_into.is_some() {
                continue;
            }
            let first_read = self
                .messages
                .receipts(r.message_id)
                .await?
                .iter()
                .filter(|x| x.user_id != r.sender_user)
                .filter_map(|x| x.read_at)
                .min();
            for acc in [
                by_role.entry(r.role_id).or_default(),
                by_dept.entry(r.department_id).or_default(),
            ] {
                acc.messages += 1;
                if let Some(t) = first_read {
                    acc.read.push(t - r.created_at);
                }
                if let Some(t) = r.acked_at {
                    acc.acked.push(t - r.created_at);
                }
                acc.escalated += i64::from(r.escalations > 0);
                acc.unacknowledged += i64::from(matches!(
                    r.state,
                    EscalationState::Open | EscalationState::Exhausted
                ));
                acc.unanswered += i64::from(r.state == EscalationState::Exhausted);
            }
            let is_waiting = matches!(r.state, EscalationState::Open | EscalationState::Exhausted);
            if is_waiting || r.escalations > 0 {
                let view = self.escalation_with(r, &policy).await?;
                if r.escalations > 0 {
                    escalated.push(view.clone());
                }
                if r.state == EscalationState::Exhausted {
                    unanswered.push(view.clone());
                }
                if is_waiting {
                    waiting.push(view);
                }
            }
        }
        let times =
            |id: Option<Uuid>, names: &HashMap<Uuid, String>, none: &str, a: Acc| ResponseTimes {
                id,
                name: id
                    .and_then(|i| names.get(&i).cloned())
                    .unwrap_or_else(|| none.to_owned()),
                messages: a.messages,
                read: a.read.len() as i64,
                acknowledged: a.acked.len() as i64,
                escalated: a.escalated,
                unacknowledged: a.unacknowledged,
                unanswered: a.unanswered,
                median_read_secs: percentile(a.read.clone(), 50),
                median_ack_secs: percentile(a.acked.clone(), 50),
                p90_ack_secs: percentile(a.acked, 90),
            };
        Ok(ResponseReport {
            since,
            until,
            by_role: by_role
                .into_iter()
                .map(|(id, a)| times(id, &role_name, "(not sent to a role)", a))
                .collect(),
            by_department: by_dept
                .into_iter()
                .map(|(id, a)| times(id, &dept_name, "(no department)", a))
                .collect(),
            unacknowledged: waiting,
            unanswered,
            escalated,
        })
    }
}

/// One line for a feed's status.
fn summary(r: &ImportScheduleResult) -> String {
    format!(
        "{} shifts from {} events ({} removed); {} problems; {} overlaps",
        r.shifts,
        r.events,
        r.removed,
        r.problems.len(),
        r.warnings.len()
    )
}

/// Nearest-rank percentile of `v` (none when empty).
fn percentile(mut v: Vec<i64>, pct: usize) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = (pct * v.len()).div_ceil(100).max(1);
    Some(v[rank - 1])
}

/// Where a calendar link is fetched from, in order of preference.
/// Which of two shifts covering the same moment is on call (the greater),
/// never left to chance: the one that started last, so the incoming shift
/// takes over at hand-off; at equal starts a shift entered by hand (a
/// deliberate change) over an imported one; then the one ending later; then
/// the lower shift id, so every node and every read agree.
pub fn on_call_order(a: &Shift, b: &Shift) -> std::cmp::Ordering {
    a.starts_at
        .cmp(&b.starts_at)
        .then_with(|| (a.source == "manual").cmp(&(b.source == "manual")))
        .then_with(|| a.ends_at.cmp(&b.ends_at))
        .then_with(|| b.id.cmp(&a.id))
}

/// Most overlap warnings an import lists.
const MAX_OVERLAP_WARNINGS: usize = 20;

/// Shifts of different people covering the same time, and who is on call
/// then by [`on_call_order`]. `shifts` are by start.
fn overlaps(shifts: &[Shift]) -> Vec<ImportProblem> {
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
fn calendar_locations(url: &str) -> ApiResult<Vec<reqwest::Url>> {
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
async fn fetch_calendar(url: &str) -> ApiResult<String> {
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

async fn fetch_calendar_at(parsed: reqwest::Url) -> ApiResult<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19, case 05: every URL of `realworld/05-webcal-urls.txt`.
    #[test]
    fn webcal_links_are_fetched_over_https_then_http() {
        let fixture = include_str!("../../tests/fixtures/realworld/05-webcal-urls.txt");
        let urls: Vec<String> = fixture
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split('|').next().unwrap().trim().to_owned())
            .collect();
        assert_eq!(urls.len(), 4);
        for u in &urls {
            let u = u.as_str();
            let lower = u.to_ascii_lowercase();
            let got: Vec<String> = calendar_locations(u)
                .unwrap_or_else(|e| panic!("{u}: {}", e.message))
                .iter()
                .map(|l| l.scheme().to_owned())
                .collect();
            let want: &[&str] = if lower.starts_with("webcals:") {
                &["https"]
            } else if lower.starts_with("webcal:") {
                &["https", "http"]
            } else if lower.starts_with("https:") {
                &["https"]
            } else {
                &["http"]
            };
            assert_eq!(got, want, "{u}");
        }
        let l = calendar_locations("webcal://127.0.0.1:8000/oncall.ics?token=a%20b").unwrap();
        assert_eq!(
            l[1].as_str(),
            "http://127.0.0.1:8000/oncall.ics?token=a%20b"
        );
        let e = calendar_locations("ftp://example.org/x.ics").unwrap_err();
        assert!(e.message.contains("https://"), "{}", e.message);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(vec![], 50), None);
        assert_eq!(percentile(vec![30], 90), Some(30));
        assert_eq!(percentile(vec![5, 1, 3, 2, 4], 50), Some(3));
        assert_eq!(percentile((1..=10).collect(), 90), Some(9));
    }

    #[test]
    fn ladders_must_climb() {
        let mut p = EscalationPolicy::default();
        assert!(validate_escalation(&p).is_ok());
        p.stat[1].after_secs = p.stat[0].after_secs;
        assert!(validate_escalation(&p).is_err());
        let mut p = EscalationPolicy::default();
        p.urgent[0].action = EscalationAction::Handoff;
        assert!(validate_escalation(&p).is_err());
    }
}
