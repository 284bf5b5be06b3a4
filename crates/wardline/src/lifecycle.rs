//! `wardline admin lifecycle|holds|devices …`: the lifecycle policy with a
//! preview before it applies, deletion runs and their signed receipts, the
//! legal hold register, and remote wipe of lost devices (over the API).

use crate::term::say;
use anyhow::Context;
use uuid::Uuid;
use wardline_proto::lifecycle::*;

use crate::ClientOpts;
use crate::remote::{print_json, signed_in};

#[derive(clap::Subcommand)]
pub enum LifecycleCommand {
    /// The current policy.
    Show(ClientOpts),
    /// Show what a changed policy would delete now, without applying it.
    Preview(PolicyChange),
    /// Apply a changed policy (after showing what it deletes now).
    Set(PolicyChange),
    /// Run deletion now and print the signed receipt.
    Run(ClientOpts),
    /// The latest deletion receipts.
    Receipts(ClientOpts),
}

/// Changes to the current policy; what is not given stays.
#[derive(clap::Args)]
pub struct PolicyChange {
    /// Retention: a number of days, or "forever".
    #[arg(long)]
    retention: Option<String>,
    /// The server keeps every message at least this many days.
    #[arg(long)]
    minimum_days: Option<i64>,
    /// Default lifespan of every message (e.g. 3600, 90m, 12h, 7d), or "none".
    #[arg(long)]
    message_ttl: Option<String>,
    /// Longest lifespan a sender may choose (e.g. 30d).
    #[arg(long)]
    max_ttl: Option<String>,
    /// How long after sending the sender may recall (e.g. 15m).
    #[arg(long)]
    recall_window: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Subcommand)]
pub enum HoldsCommand {
    /// Place a hold on a user (id), a conversation (id) or a patient (reference).
    Place(PlaceArgs),
    /// The hold register.
    List(ClientOpts),
    /// Release a hold.
    Release(ReleaseArgs),
}

#[derive(clap::Args)]
pub struct PlaceArgs {
    /// user, conversation or patient.
    #[arg(long)]
    scope: String,
    #[arg(long)]
    target: String,
    #[arg(long)]
    matter: String,
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ReleaseArgs {
    hold: Uuid,
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Subcommand)]
pub enum DevicesCommand {
    /// Report a device lost: its sessions end, it leaves every conversation,
    /// and it erases itself the next time it reaches the server.
    Wipe(WipeArgs),
    /// Remote wipes and whether each device confirmed.
    Wipes(ClientOpts),
}

#[derive(clap::Args)]
pub struct WipeArgs {
    device: Uuid,
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    opts: ClientOpts,
}

/// Seconds from `3600`, `90s`, `15m`, `12h` or `7d`.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a duration (like 3600, 15m, 12h or 7d)"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => anyhow::bail!("{s:?}: the unit must be s, m, h or d"),
    };
    Ok(n * mult)
}

impl PolicyChange {
    fn apply(&self, mut p: LifecyclePolicy) -> anyhow::Result<LifecyclePolicy> {
        if let Some(r) = &self.retention {
            p.retention = if r.eq_ignore_ascii_case("forever") {
                Retention::Forever
            } else {
                Retention::Days(
                    r.parse()
                        .context("retention is a number of days or forever")?,
                )
            };
        }
        if let Some(d) = self.minimum_days {
            p.minimum_days = d;
        }
        if let Some(t) = &self.message_ttl {
            p.message_ttl_secs = if t.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(parse_duration(t)?)
            };
        }
        if let Some(t) = &self.max_ttl {
            p.max_ttl_secs = parse_duration(t)?;
        }
        if let Some(t) = &self.recall_window {
            p.recall_window_secs = parse_duration(t)?;
        }
        Ok(p)
    }
}

fn print_counts(title: &str, c: &DeletionCounts) {
    say!("{title}");
    say!("  messages past retention      {:>8}", c.retention_messages);
    say!("  ephemeral messages expired   {:>8}", c.expired_messages);
    say!("  recalled messages' copies    {:>8}", c.recalled_messages);
    say!("  attachments past retention   {:>8}", c.attachments);
    say!("  in {} conversation(s)", c.conversations);
    say!("  kept under legal hold        {:>8}", c.held_back);
    say!("  kept for the minimum         {:>8}", c.kept_for_minimum);
}

pub async fn lifecycle(cmd: LifecycleCommand) -> anyhow::Result<()> {
    match cmd {
        LifecycleCommand::Show(opts) => {
            let (c, _) = signed_in(&opts)?;
            print_json(&c.lifecycle_policy().await?)
        }
        LifecycleCommand::Preview(change) => preview_or_set(change, false).await,
        LifecycleCommand::Set(change) => preview_or_set(change, true).await,
        LifecycleCommand::Run(opts) => {
            let (c, _) = signed_in(&opts)?;
            let r = c.lifecycle_run().await?;
            if opts.json {
                return print_json(&r);
            }
            print_counts(
                &format!(
                    "deletion run {} (receipt signed by {})",
                    r.id, r.signing_key_id
                ),
                &r.deleted,
            );
            say!("  data keys destroyed          {:>8}", r.keys_destroyed);
            Ok(())
        }
        LifecycleCommand::Receipts(opts) => {
            let (c, _) = signed_in(&opts)?;
            print_json(&c.deletion_receipts().await?)
        }
    }
}

async fn preview_or_set(change: PolicyChange, apply: bool) -> anyhow::Result<()> {
    let (c, _) = signed_in(&change.opts)?;
    let candidate = change.apply(c.lifecycle_policy().await?)?;
    let preview = c.lifecycle_preview(&candidate).await?;
    if !apply {
        if change.opts.json {
            return print_json(&preview);
        }
        print_counts(
            "the changed policy would delete now:",
            &preview.would_delete,
        );
        print_counts(
            "the current policy deletes now:",
            &preview.current_policy_deletes,
        );
        return Ok(());
    }
    let p = c.set_lifecycle_policy(&candidate).await?;
    if change.opts.json {
        return print_json(&p);
    }
    print_counts(
        "policy applied; the next deletion run (within five minutes) deletes:",
        &preview.would_delete,
    );
    Ok(())
}

pub async fn holds(cmd: HoldsCommand) -> anyhow::Result<()> {
    match cmd {
        HoldsCommand::Place(a) => {
            let (c, _) = signed_in(&a.opts)?;
            let scope = HoldScope::parse(&a.scope.to_lowercase())
                .context("scope must be user, conversation or patient")?;
            let h = c
                .place_legal_hold(&PlaceHoldRequest {
                    scope,
                    target: a.target,
                    matter: a.matter,
                    reason: a.reason,
                })
                .await?;
            if a.opts.json {
                return print_json(&h);
            }
            say!("{}", h.id);
            Ok(())
        }
        HoldsCommand::List(opts) => {
            let (c, _) = signed_in(&opts)?;
            let list = c.legal_holds().await?;
            if opts.json {
                return print_json(&list);
            }
            say!(
                "{:<36}  {:<12}  {:<8}  matter / target",
                "id",
                "scope",
                "status"
            );
            for h in &list.holds {
                say!(
                    "{}  {:<12}  {:<8}  {} / {}",
                    h.id,
                    h.scope.as_str(),
                    if h.released_at.is_some() {
                        "released"
                    } else {
                        "active"
                    },
                    h.matter,
                    h.target
                );
            }
            Ok(())
        }
        HoldsCommand::Release(a) => {
            let (c, _) = signed_in(&a.opts)?;
            print_json(&c.release_legal_hold(a.hold, &a.reason).await?)
        }
    }
}

pub async fn devices(cmd: DevicesCommand) -> anyhow::Result<()> {
    match cmd {
        DevicesCommand::Wipe(a) => {
            let (c, _) = signed_in(&a.opts)?;
            let w = c.wipe_device(a.device, &a.reason).await?;
            if a.opts.json {
                return print_json(&w);
            }
            say!(
                "device {} wiped: {} session(s) ended, leaving {} conversation(s); it erases itself when it next reaches the server",
                w.device_id,
                w.sessions_ended,
                w.conversations
            );
            Ok(())
        }
        DevicesCommand::Wipes(opts) => {
            let (c, _) = signed_in(&opts)?;
            let list = c.device_wipes().await?;
            if opts.json {
                return print_json(&list);
            }
            say!("{:<36}  {:<36}  {:<10}  reason", "device", "user", "status");
            for w in &list.wipes {
                say!(
                    "{}  {}  {:<10}  {}",
                    w.device_id,
                    w.user_id,
                    match w.status {
                        WipeStatus::Pending => "pending",
                        WipeStatus::Confirmed => "confirmed",
                    },
                    w.reason
                );
            }
            Ok(())
        }
    }
}
