//! `wardline routing …`: the directory of departments, care teams and
//! clinical roles, presence, on-call schedules (with iCalendar import), who
//! is on call, the response report and the break-glass register (over the
//! API). Paging a role and acknowledging are `wardline chat page|ack`.

use crate::term::say;
use anyhow::{Context, bail};
use uuid::Uuid;
use wardline_client::ApiClient;
use wardline_proto::routing::*;

use crate::ClientOpts;
use crate::lifecycle::parse_duration;
use crate::remote::{print_json, resolve, signed_in};

#[derive(clap::Subcommand)]
pub enum RoutingCommand {
    /// Departments, care teams and clinical roles.
    Directory(ClientOpts),
    /// Find colleagues by name, clinical role, department or care team.
    Search(SearchArgs),
    /// Set your availability: available, busy, in_procedure or off_duty.
    Presence(PresenceArgs),
    /// Add a department or service line.
    AddDepartment(NameArgs),
    /// Add a care team (members by e-mail).
    AddTeam(TeamArgs),
    /// Add someone (by e-mail) to a care team.
    AddTeamMember(TeamMemberArgs),
    /// Add a clinical role to page ("Cardiology on-call").
    AddRole(RoleArgs),
    /// Change a role: what is given replaces what it had (holders, fallback,
    /// ladders, name); the rest stays.
    EditRole(EditRoleArgs),
    /// A role's shifts.
    Shifts(ShiftsArgs),
    /// Add a shift to a role.
    AddShift(AddShiftArgs),
    /// Import a role's schedule from an iCalendar file or URL.
    Import(ImportArgs),
    /// A role's subscribed schedule feed: last fetch and its result.
    Feed(RoleRef),
    /// Stop importing a role's feed (its shifts stay).
    Unsubscribe(RoleRef),
    /// Who is on call for a role now.
    OnCall(RoleRef),
    /// Response times by role and department; unacknowledged and escalated messages.
    Report(ReportArgs),
    /// Break-glass grants with their reasons (compliance officer).
    BreakGlass(ClientOpts),
    /// What the compliance officer is told (compliance officer).
    Notifications(ClientOpts),
}

#[derive(clap::Args)]
pub struct SearchArgs {
    query: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct PresenceArgs {
    status: String,
    /// Back to available after this long (e.g. 90m, 2h).
    #[arg(long = "for")]
    duration: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct NameArgs {
    name: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct TeamArgs {
    name: String,
    /// Department (id or name).
    #[arg(long)]
    department: Option<String>,
    /// Members' e-mail addresses.
    #[arg(long = "member")]
    members: Vec<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct TeamMemberArgs {
    /// Care team (id or name).
    team: String,
    email: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct RoleArgs {
    name: String,
    /// Department (id or name).
    #[arg(long)]
    department: Option<String>,
    /// Role (id or name) that a page falls back to when nobody covers this one.
    #[arg(long)]
    fallback: Option<String>,
    /// People who hold the role (e-mail), paged when no shift covers it.
    #[arg(long = "holder")]
    holders: Vec<String>,
    /// This role's STAT ladder, e.g. "2m:renotify,4m:backup,6m:fallback_role,8m:sms".
    #[arg(long)]
    stat_ladder: Option<String>,
    /// This role's urgent ladder (same form).
    #[arg(long)]
    urgent_ladder: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct EditRoleArgs {
    /// Clinical role (id or name).
    role: String,
    #[arg(long)]
    rename: Option<String>,
    /// Fallback role (id or name), or "none".
    #[arg(long)]
    fallback: Option<String>,
    /// The holders (e-mail), replacing the current ones.
    #[arg(long = "holder")]
    holders: Vec<String>,
    /// Remove every holder.
    #[arg(long, conflicts_with = "holders")]
    no_holders: bool,
    /// STAT ladder ("2m:renotify,4m:backup"), or "default" for the organisation's.
    #[arg(long)]
    stat_ladder: Option<String>,
    /// Urgent ladder (same form).
    #[arg(long)]
    urgent_ladder: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct RoleRef {
    /// Clinical role (id or name).
    role: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ShiftsArgs {
    role: String,
    /// How many days ahead (1–100).
    #[arg(long, default_value_t = 14)]
    days: i64,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct AddShiftArgs {
    role: String,
    /// Who covers (e-mail).
    #[arg(long)]
    user: String,
    /// Backup (e-mail).
    #[arg(long)]
    backup: Option<String>,
    /// Start: RFC 3339 (2026-12-01T19:00:00-05:00) or Unix seconds.
    #[arg(long)]
    from: String,
    /// End: RFC 3339 or Unix seconds.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    role: String,
    /// An .ics file.
    #[arg(long, conflicts_with = "url", required_unless_present = "url")]
    file: Option<std::path::PathBuf>,
    /// An http(s) URL the server fetches the calendar from.
    #[arg(long)]
    url: Option<String>,
    /// How far ahead recurring shifts are expanded (1–366).
    #[arg(long, default_value_t = 90)]
    days: i64,
    /// With --url: keep the feed and import it again every hour.
    #[arg(long, requires = "url")]
    subscribe: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The last this-many days.
    #[arg(long, default_value_t = 7)]
    days: i64,
    #[command(flatten)]
    opts: ClientOpts,
}

/// A role, team or department by id or (case-insensitive) name.
fn pick<'a, T>(
    items: &'a [T],
    key: &str,
    id: impl Fn(&T) -> Uuid,
    name: impl Fn(&T) -> &str,
    what: &str,
) -> anyhow::Result<&'a T> {
    if let Ok(u) = Uuid::parse_str(key)
        && let Some(hit) = items.iter().find(|i| id(i) == u)
    {
        return Ok(hit);
    }
    items
        .iter()
        .find(|i| name(i).eq_ignore_ascii_case(key.trim()))
        .with_context(|| format!("no {what} is called {key:?}; see `wardline routing directory`"))
}

pub async fn role_id(c: &ApiClient, key: &str) -> anyhow::Result<Uuid> {
    let d = c.routing_directory().await?;
    Ok(pick(&d.roles, key, |r| r.id, |r| &r.name, "clinical role")?.id)
}

async fn department_id(c: &ApiClient, key: &str) -> anyhow::Result<Uuid> {
    let d = c.routing_directory().await?;
    Ok(pick(&d.departments, key, |r| r.id, |r| &r.name, "department")?.id)
}

/// `2m:renotify,4m:backup` → ladder steps.
fn ladder(s: &str) -> anyhow::Result<Vec<EscalationStep>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (after, action) = part
                .split_once(':')
                .with_context(|| format!("{part:?}: write each step as <time>:<action>"))?;
            Ok(EscalationStep {
                after_secs: parse_duration(after)?,
                action: EscalationAction::parse(action.trim()).with_context(|| {
                    format!("{action:?}: renotify, backup, fallback_role, department or sms")
                })?,
            })
        })
        .collect()
}

/// Unix seconds from RFC 3339 or a number.
fn instant(s: &str) -> anyhow::Result<i64> {
    if let Ok(n) = s.trim().parse::<i64>() {
        return Ok(n);
    }
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{s:?} is neither RFC 3339 nor Unix seconds"))?;
    Ok(t.unix_timestamp())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn when(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

fn person(p: &Option<OnCallPerson>) -> String {
    match p {
        Some(p) => format!("{} ({})", p.display_name, p.presence.as_str()),
        None => "nobody".into(),
    }
}

pub async fn run(cmd: RoutingCommand) -> anyhow::Result<()> {
    match cmd {
        RoutingCommand::Directory(opts) => directory(opts).await,
        RoutingCommand::Search(a) => search(a).await,
        RoutingCommand::Presence(a) => presence(a).await,
        RoutingCommand::AddDepartment(a) => add_department(a).await,
        RoutingCommand::AddTeam(a) => add_team(a).await,
        RoutingCommand::AddTeamMember(a) => add_team_member(a).await,
        RoutingCommand::AddRole(a) => add_role(a).await,
        RoutingCommand::EditRole(a) => edit_role(a).await,
        RoutingCommand::Shifts(a) => shifts(a).await,
        RoutingCommand::AddShift(a) => add_shift(a).await,
        RoutingCommand::Import(a) => import(a).await,
        RoutingCommand::Feed(a) => feed(a).await,
        RoutingCommand::Unsubscribe(a) => unsubscribe(a).await,
        RoutingCommand::OnCall(a) => on_call(a).await,
        RoutingCommand::Report(a) => report(a).await,
        RoutingCommand::BreakGlass(opts) => break_glass(opts).await,
        RoutingCommand::Notifications(opts) => notifications(opts).await,
    }
}

async fn directory(opts: ClientOpts) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let d = c.routing_directory().await?;
    if opts.json {
        return print_json(&d);
    }
    say!("departments:");
    for x in &d.departments {
        say!("  {}  {}", x.id, x.name);
    }
    say!("care teams:");
    for t in &d.care_teams {
        say!("  {}  {} ({} members)", t.id, t.name, t.members.len());
    }
    say!("clinical roles:");
    for r in &d.roles {
        say!("  {}  {} ({} holders)", r.id, r.name, r.holders.len());
    }
    Ok(())
}

async fn search(a: SearchArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let r = c.search_directory(&a.query).await?;
    if a.opts.json {
        return print_json(&r);
    }
    for e in &r.entries {
        let on_call = if e.on_call.is_empty() {
            String::new()
        } else {
            format!("  on call: {}", e.on_call.join(", "))
        };
        say!(
            "{}  {:<24} {:<13} {}{}",
            e.user_id,
            e.display_name,
            e.presence.as_str(),
            e.roles.join(", "),
            on_call
        );
    }
    if r.entries.is_empty() {
        say!("nobody matches {:?}", a.query);
    }
    Ok(())
}

async fn presence(a: PresenceArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let status = PresenceStatus::parse(&a.status.to_lowercase().replace('-', "_"))
        .context("status is available, busy, in_procedure or off_duty")?;
    let until = match &a.duration {
        Some(d) => Some(now() + parse_duration(d)?),
        None => None,
    };
    let p = c
        .set_presence(&SetPresenceRequest { status, until })
        .await?;
    if a.opts.json {
        return print_json(&p);
    }
    match p.until {
        Some(u) => say!("{} until {}", p.status.as_str(), when(u)),
        None => say!("{}", p.status.as_str()),
    }
    Ok(())
}

async fn add_department(a: NameArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let d = c.create_department(&a.name).await?;
    say!("{}", d.id);
    Ok(())
}

async fn add_team(a: TeamArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let department_id = match &a.department {
        Some(d) => Some(department_id(&c, d).await?),
        None => None,
    };
    let mut members = Vec::new();
    for m in &a.members {
        members.push(resolve(&c, m).await?);
    }
    let t = c
        .create_care_team(&CreateCareTeamRequest {
            name: a.name,
            department_id,
            members,
        })
        .await?;
    say!("{}", t.id);
    Ok(())
}

async fn add_team_member(a: TeamMemberArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let d = c.routing_directory().await?;
    let team = pick(&d.care_teams, &a.team, |t| t.id, |t| &t.name, "care team")?.id;
    let t = c
        .add_team_member(team, resolve(&c, &a.email).await?)
        .await?;
    say!("{} now has {} members", t.name, t.members.len());
    Ok(())
}

async fn add_role(a: RoleArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let department_id = match &a.department {
        Some(d) => Some(department_id(&c, d).await?),
        None => None,
    };
    let fallback_role_id = match &a.fallback {
        Some(f) => Some(role_id(&c, f).await?),
        None => None,
    };
    let mut holders = Vec::new();
    for h in &a.holders {
        holders.push(resolve(&c, h).await?);
    }
    let escalation = match (&a.stat_ladder, &a.urgent_ladder) {
        (None, None) => None,
        (s, u) => Some(EscalationPolicy {
            stat: s.as_deref().map(ladder).transpose()?.unwrap_or_default(),
            urgent: u.as_deref().map(ladder).transpose()?.unwrap_or_default(),
        }),
    };
    let r = c
        .create_clinical_role(&CreateRoleRequest {
            name: a.name,
            department_id,
            fallback_role_id,
            holders,
            escalation,
        })
        .await?;
    say!("{}", r.id);
    Ok(())
}

async fn edit_role(a: EditRoleArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let d = c.routing_directory().await?;
    let role = pick(&d.roles, &a.role, |r| r.id, |r| &r.name, "clinical role")?.clone();
    let mut req = CreateRoleRequest {
        name: a.rename.unwrap_or(role.name),
        department_id: role.department_id,
        fallback_role_id: role.fallback_role_id,
        holders: role.holders,
        escalation: role.escalation,
    };
    if let Some(f) = &a.fallback {
        req.fallback_role_id = if f.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(pick(&d.roles, f, |r| r.id, |r| &r.name, "clinical role")?.id)
        };
    }
    if a.no_holders {
        req.holders.clear();
    } else if !a.holders.is_empty() {
        req.holders.clear();
        for h in &a.holders {
            req.holders.push(resolve(&c, h).await?);
        }
    }
    if a.stat_ladder.is_some() || a.urgent_ladder.is_some() {
        let org = c.policy().await?.routing.escalation;
        let mut e = req.escalation.take().unwrap_or(org.clone());
        if let Some(s) = &a.stat_ladder {
            e.stat = if s == "default" {
                org.stat.clone()
            } else {
                ladder(s)?
            };
        }
        if let Some(u) = &a.urgent_ladder {
            e.urgent = if u == "default" {
                org.urgent.clone()
            } else {
                ladder(u)?
            };
        }
        req.escalation = (e != org).then_some(e);
    }
    let r = c.update_clinical_role(role.id, &req).await?;
    if a.opts.json {
        return print_json(&r);
    }
    say!(
        "{}: {} holder(s), {}",
        r.name,
        r.holders.len(),
        if r.escalation.is_some() {
            "its own escalation ladders"
        } else {
            "the organisation's escalation ladders"
        }
    );
    Ok(())
}

async fn shifts(a: ShiftsArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let role = role_id(&c, &a.role).await?;
    let now = now();
    let list = c.shifts(role, now, now + a.days * 86_400).await?;
    if a.opts.json {
        return print_json(&list);
    }
    let names: std::collections::HashMap<Uuid, String> = c
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect();
    let name = |u: Uuid| names.get(&u).cloned().unwrap_or_else(|| u.to_string());
    for s in &list.shifts {
        say!(
            "{} → {}  {}{}  [{}]",
            when(s.starts_at),
            when(s.ends_at),
            name(s.user_id),
            s.backup_user_id
                .map(|b| format!(" (backup {})", name(b)))
                .unwrap_or_default(),
            s.source
        );
    }
    Ok(())
}

async fn add_shift(a: AddShiftArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let role = role_id(&c, &a.role).await?;
    let backup_user_id = match &a.backup {
        Some(b) => Some(resolve(&c, b).await?),
        None => None,
    };
    let s = c
        .create_shift(
            role,
            &CreateShiftRequest {
                user_id: resolve(&c, &a.user).await?,
                backup_user_id,
                starts_at: instant(&a.from)?,
                ends_at: instant(&a.to)?,
            },
        )
        .await?;
    say!("{}", s.id);
    Ok(())
}

async fn import(a: ImportArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let role = role_id(&c, &a.role).await?;
    let ics = match &a.file {
        Some(f) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?)
        }
        None => None,
    };
    let r = c
        .import_schedule(
            role,
            &ImportScheduleRequest {
                ics,
                url: a.url,
                days: Some(a.days),
                subscribe: a.subscribe,
            },
        )
        .await?;
    if a.opts.json {
        return print_json(&r);
    }
    say!(
        "{} event(s): {} shift(s) imported, {} earlier imported shift(s) replaced, {} of them removed (no longer in the calendar)",
        r.events,
        r.shifts,
        r.replaced,
        r.removed
    );
    for p in &r.problems {
        say!("  skipped {}: {}", p.event, p.reason);
    }
    for w in &r.warnings {
        say!("  overlap: {}: {}", w.event, w.reason);
    }
    Ok(())
}

async fn feed(a: RoleRef) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let f = c.schedule_feed(role_id(&c, &a.role).await?).await?;
    if a.opts.json {
        return print_json(&f);
    }
    say!(
        "feed from {} (subscribed {})",
        f.host,
        when(f.subscribed_at)
    );
    if let Some(t) = f.last_fetched_at {
        say!(
            "last fetched {}: {}",
            when(t),
            f.last_result.as_deref().unwrap_or("-")
        );
    }
    say!("next fetch {}", when(f.next_fetch_at));
    Ok(())
}

async fn unsubscribe(a: RoleRef) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    c.unsubscribe_feed(role_id(&c, &a.role).await?).await?;
    say!("unsubscribed; the shifts already imported stay");
    Ok(())
}

async fn on_call(a: RoleRef) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    let o = c.on_call(role_id(&c, &a.role).await?).await?;
    if a.opts.json {
        return print_json(&o);
    }
    say!("{}: {}", o.role_name, person(&o.primary));
    say!("backup: {}", person(&o.backup));
    if let Some(s) = &o.shift {
        say!("shift: {} → {}", when(s.starts_at), when(s.ends_at));
    }
    Ok(())
}

async fn report(a: ReportArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&a.opts)?;
    if !(1..=366).contains(&a.days) {
        bail!("--days must be 1 to 366");
    }
    let now = now();
    let r = c.response_report(now - a.days * 86_400, now + 1).await?;
    if a.opts.json {
        return print_json(&r);
    }
    let secs = |s: Option<i64>| s.map(|s| format!("{s}s")).unwrap_or_else(|| "-".into());
    for (title, rows) in [("by role", &r.by_role), ("by department", &r.by_department)] {
        say!("{title}:");
        say!(
            "  {:<32} {:>5} {:>5} {:>5} {:>5} {:>5} {:>8} {:>8} {:>8}",
            "",
            "sent",
            "read",
            "ack",
            "esc",
            "open",
            "read½",
            "ack½",
            "ack90"
        );
        for t in rows.iter() {
            say!(
                "  {:<32} {:>5} {:>5} {:>5} {:>5} {:>5} {:>8} {:>8} {:>8}",
                t.name,
                t.messages,
                t.read,
                t.acknowledged,
                t.escalated,
                t.unacknowledged,
                secs(t.median_read_secs),
                secs(t.median_ack_secs),
                secs(t.p90_ack_secs)
            );
        }
    }
    say!("unacknowledged:");
    for e in &r.unacknowledged {
        say!(
            "  {} {} sent {} ({} step(s) so far)",
            e.message_id,
            e.priority.as_str(),
            when(e.created_at),
            e.events.len()
        );
    }
    Ok(())
}

async fn break_glass(opts: ClientOpts) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let g = c.break_glass_grants().await?;
    if opts.json {
        return print_json(&g);
    }
    for x in &g.grants {
        say!(
            "{}  user {}  conversation {}  {} → {}{}\n    reason: {}",
            x.id,
            x.user_id,
            x.conversation_id,
            when(x.granted_at),
            when(x.expires_at),
            if x.ended_at.is_some() { " (ended)" } else { "" },
            x.reason.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

async fn notifications(opts: ClientOpts) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let n = c.notifications().await?;
    if opts.json {
        return print_json(&n);
    }
    for x in &n.notifications {
        say!("{}  {}  {}", when(x.created_at), x.kind, x.detail);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_and_instants() {
        let l = ladder("2m:renotify, 4m:backup,8m:sms").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].after_secs, 240);
        assert_eq!(l[2].action, EscalationAction::Sms);
        assert!(ladder("2m").is_err());
        assert!(ladder("2m:page").is_err());
        assert_eq!(instant("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(instant("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000);
        assert!(instant("tomorrow").is_err());
    }
}
