//! `wardline audit …`: `verify` works on the database and key file directly
//! (it must not trust the server it checks); `search`, `report`, `export` and
//! `checkpoint` go through the API as the signed-in compliance officer.

use crate::term::say;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;
use wardline_client::profile::write_private;
use wardline_core::audit::verify::{Options, Trusted, verify};
use wardline_crypto::{LocalKeyFile, verify_checkpoint_signature};
use wardline_proto::audit::{AuditEvent, AuditQuery, Outcome, checkpoint_message};
use wardline_store_sql::SqlStore;

use crate::remote::{print_json, signed_in};
use crate::{ClientOpts, ServerOpts, load_config};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log from the database and check every signed
    /// checkpoint; exits 1 and says where if anything was altered.
    Verify(VerifyArgs),
    /// Search the organisation's audit trail (newest first).
    Search(SearchArgs),
    /// Who accessed this patient's information.
    Report {
        patient: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Export matching events as CSV or JSON Lines.
    Export {
        #[arg(long, value_parser = ["csv", "jsonl"])]
        format: String,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        filter: Filter,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show the latest signed checkpoint and check its signature: against a
    /// key pinned with `--public-key`, or (said so) the key the server sends.
    Checkpoint {
        /// `KEY_ID=HEX_PUBLIC_KEY`, from a copy kept away from the server.
        #[arg(long = "public-key", value_name = "KEY_ID=HEX")]
        public_key: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    server: ServerOpts,
    /// Where the last verified checkpoint is remembered (default:
    /// `<data_dir>/audit-verified.json`). Keep it off the database host to
    /// also catch a rollback of database and state together.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Recompute from the beginning (the purge point) instead of from the
    /// last verified checkpoint. The state file is still checked: a full run
    /// never accepts what an incremental one would refuse.
    #[arg(long)]
    full: bool,
    /// Accept checkpoints and purges signed by this audit key only, given as
    /// `KEY_ID=HEX_PUBLIC_KEY` (repeatable; `wardline audit checkpoint`
    /// shows it). Keys pinned in the state file are accepted too. Without
    /// either, the key file on this host is trusted once and then pinned in
    /// the state file.
    #[arg(long = "public-key", value_name = "KEY_ID=HEX")]
    public_keys: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Default)]
pub struct Filter {
    /// The acting user's id (or a service name).
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    patient: Option<String>,
    #[arg(long)]
    device: Option<Uuid>,
    /// The target's id.
    #[arg(long)]
    target: Option<String>,
    /// An action such as `auth.login`.
    #[arg(long)]
    action: Option<String>,
    /// Only this outcome: `success`, `failure` or `denied`.
    #[arg(long, value_parser = parse_outcome)]
    outcome: Option<Outcome>,
    /// From (Unix ms).
    #[arg(long)]
    from_ms: Option<i64>,
    /// Until (Unix ms).
    #[arg(long)]
    to_ms: Option<i64>,
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    Outcome::parse(s).ok_or_else(|| "one of success, failure, denied".to_owned())
}

impl Filter {
    fn query(&self, limit: Option<i64>) -> AuditQuery {
        AuditQuery {
            actor: self.actor.clone(),
            patient: self.patient.clone(),
            device: self.device,
            target: self.target.clone(),
            action: self.action.clone(),
            outcome: self.outcome,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            before_seq: None,
            limit,
        }
    }
}

#[derive(clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    filter: Filter,
    /// At most this many events (1–1000).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify(args) => verify_log(args).await,
        AuditCommand::Search(args) => search(args).await,
        AuditCommand::Report { patient, opts } => report(&patient, opts).await,
        AuditCommand::Export {
            format,
            output,
            filter,
            opts,
        } => export(&format, output, &filter, opts).await,
        AuditCommand::Checkpoint { public_key, opts } => checkpoint(public_key, opts).await,
    }
}

async fn verify_log(args: VerifyArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.server)?;
    // Read-only: a verifier never creates or changes keys.
    let keys = LocalKeyFile::open_read_only(&cfg.key_file())?;
    let store = SqlStore::connect(&cfg.database_url()).await?;
    let state_path = args
        .state
        .unwrap_or_else(|| cfg.data_dir.join("audit-verified.json"));
    let trusted: Option<Trusted> = if state_path.exists() {
        let text = std::fs::read_to_string(&state_path)
            .with_context(|| format!("reading {}", state_path.display()))?;
        Some(serde_json::from_str(&text).with_context(|| {
            format!("{} is not a verification state file", state_path.display())
        })?)
    } else {
        None
    };
    let mut pinned_keys = std::collections::BTreeMap::new();
    for pin in &args.public_keys {
        let (id, hex_key) = pin
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--public-key takes KEY_ID=HEX, not {pin:?}"))?;
        let key: [u8; 32] = hex::decode(hex_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("--public-key {id}: not 32 bytes of hex"))?;
        pinned_keys.insert(id.trim().to_owned(), key);
    }
    let opts = Options {
        trusted: trusted.clone(),
        full: args.full,
        pinned_keys,
        retention_days: cfg.audit.retention_days,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {pos}/{len} entries ({per_sec}, {eta} left)",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report = verify(&store, &keys, &opts, |done, total| {
        bar.set_length(total.max(0) as u64);
        bar.set_position(done.max(0) as u64);
    })
    .await?;
    bar.finish_and_clear();
    store.close().await;

    if args.json {
        print_json(&report)?;
    } else {
        say!(
            "checked {} entries ({}..={}) and {} checkpoints{}",
            report.entries_checked,
            report.started_at + 1,
            report.last_seq,
            report.checkpoints_checked,
            if trusted.is_some() && !args.full {
                format!(" (incremental from checkpoint {})", report.started_at)
            } else {
                String::new()
            }
        );
        for f in &report.findings {
            say!("TAMPERING: {f}");
        }
    }
    if !report.ok() {
        // Keep the old state: the next run must see the same problem.
        std::process::exit(1);
    }
    if !report.keys_trusted_on_first_use.is_empty() && !args.json {
        say!(
            "NOTE: no audit key was pinned; trusted this host's key file for {} and pinned {} in {} (compare with a copy kept elsewhere, or pass --public-key)",
            report.keys_trusted_on_first_use.join(", "),
            if report.keys_trusted_on_first_use.len() == 1 {
                "it"
            } else {
                "them"
            },
            state_path.display()
        );
    }
    if let Some(t) = &report.trusted {
        // Never move the state backwards (a clean report cannot, but the
        // state is the rollback anchor: keep it monotonic by construction).
        if trusted
            .as_ref()
            .is_none_or(|old| t.size >= old.size && t.purged_up_to >= old.purged_up_to)
        {
            write_state(&state_path, t)?;
        }
        if !args.json {
            say!(
                "OK: the log is intact; verified up to the signed checkpoint at {} entries",
                t.size
            );
        }
    } else if !args.json {
        say!("OK: the log is intact (no signed checkpoint yet)");
    }
    Ok(())
}

fn write_state(path: &std::path::Path, t: &Trusted) -> anyhow::Result<()> {
    write_private(path, &serde_json::to_vec_pretty(t)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Display names of the organisation's users by id, for showing actors as
/// people (issue 18, item 7); empty if the caller may not list users (ids
/// are shown then).
async fn user_names(c: &wardline_client::ApiClient) -> HashMap<String, String> {
    c.list_users()
        .await
        .map(|users| {
            users
                .into_iter()
                .map(|u| (u.id.to_string(), u.display_name))
                .collect()
        })
        .unwrap_or_default()
}

/// An actor as a person: the name with the id's first block, or the id (a
/// service name, an unknown user) as it is.
fn actor_text(e: &AuditEvent, names: &HashMap<String, String>) -> String {
    match e.actor_id.as_deref() {
        None => "-".into(),
        Some(id) => match names.get(id) {
            Some(name) => format!("{name} ({})", id.split('-').next().unwrap_or(id)),
            None => id.to_owned(),
        },
    }
}

fn print_events(events: &[AuditEvent], names: &HashMap<String, String>) {
    say!(
        "{:>8}  {:<19}  {:<24}  {:<7}  {:<30}  {:<8}  {:<15}  {:<10}  target",
        "seq",
        "time (UTC)",
        "action",
        "outcome",
        "actor",
        "device",
        "address",
        "patient"
    );
    for e in events {
        let when = time_text(e.at_ms);
        let outcome = serde_json::to_value(e.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        say!(
            "{:>8}  {:<19}  {:<24}  {:<7}  {:<30}  {:<8}  {:<15}  {:<10}  {}",
            e.seq,
            when,
            e.action,
            outcome,
            actor_text(e, names),
            e.device_id
                .map(|d| d.to_string()[..8].to_owned())
                .unwrap_or_else(|| "-".into()),
            e.source_ip.as_deref().unwrap_or("-"),
            e.patient_id.as_deref().unwrap_or("-"),
            match (&e.target_type, &e.target_id) {
                (Some(t), Some(id)) => format!("{t} {}", names.get(id).unwrap_or(id)),
                _ => "-".into(),
            }
        );
        for c in &e.changes {
            say!(
                "{:>8}  {}: {} → {}",
                "",
                c.field,
                c.before.as_deref().unwrap_or("(not recorded)"),
                c.after.as_deref().unwrap_or("(not recorded)")
            );
        }
    }
}

fn time_text(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => ms.to_string(),
    }
}

async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let (c, _) = signed_in(&args.opts)?;
    let page = c.audit_search(&args.filter.query(Some(args.limit))).await?;
    if args.opts.json {
        return print_json(&page);
    }
    print_events(&page.events, &user_names(&c).await);
    if let Some(b) = page.next_before {
        say!("(more: older than entry {b})");
    }
    Ok(())
}

async fn report(patient: &str, opts: ClientOpts) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let r = c.audit_access_report(patient).await?;
    if opts.json {
        return print_json(&r);
    }
    let names = user_names(&c).await;
    say!(
        "access to patient {}: {} events",
        r.patient_id,
        r.events.len()
    );
    for a in &r.accessors {
        let who = match a.actor_id.as_deref() {
            None => "(anonymous)".to_owned(),
            Some(id) => names
                .get(id)
                .map(|n| format!("{n} ({id})"))
                .unwrap_or_else(|| id.to_owned()),
        };
        say!(
            "  {:<36}  {:>4} events  {} – {}  devices: {}  actions: {}",
            who,
            a.events,
            time_text(a.first_ms),
            time_text(a.last_ms),
            a.devices.len(),
            a.actions
                .iter()
                .map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    say!();
    print_events(&r.events, &names);
    Ok(())
}

async fn export(
    format: &str,
    output: Option<PathBuf>,
    filter: &Filter,
    opts: ClientOpts,
) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let bytes = c.audit_export(format, &filter.query(None)).await?;
    match output {
        Some(path) => {
            // Exports hold patient references, addresses and user agents.
            write_private(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} bytes to {}", bytes.len(), path.display());
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}

async fn checkpoint(pinned: Option<String>, opts: ClientOpts) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let cp = c.audit_latest_checkpoint().await?;
    // The server's own word for its key proves nothing about the server: a
    // pinned key does (the same mistake as finding H1 of 2026-11-30).
    let key_hex = match &pinned {
        Some(pin) => {
            let (id, hex_key) = pin
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--public-key takes KEY_ID=HEX, not {pin:?}"))?;
            if id.trim() != cp.key_id {
                anyhow::bail!(
                    "the checkpoint is signed by key {:?}, not the pinned {:?}",
                    cp.key_id,
                    id.trim()
                );
            }
            hex_key.trim().to_owned()
        }
        None => cp.public_key.clone(),
    };
    let public: [u8; 32] = hex::decode(&key_hex)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("public key is not 32 bytes"))?;
    let sig: [u8; 64] = hex::decode(&cp.signature)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("signature is not 64 bytes"))?;
    let ok = verify_checkpoint_signature(
        &public,
        &checkpoint_message(cp.size, cp.at_ms, &cp.root, &cp.chain_head),
        &sig,
    );
    if opts.json {
        return print_json(&cp);
    }
    say!("size        {}", cp.size);
    say!("time        {}", time_text(cp.at_ms));
    say!("root        {}", cp.root);
    say!("chain head  {}", cp.chain_head);
    say!("key         {} ({})", cp.key_id, cp.public_key);
    say!(
        "signature   {}",
        match (ok, pinned.is_some()) {
            (true, true) => "valid (pinned key)",
            (true, false) =>
                "valid under the key the server sent (not pinned: compare it with a copy kept elsewhere, or pass --public-key)",
            (false, _) => "INVALID",
        }
    );
    if !ok {
        anyhow::bail!("the checkpoint signature does not verify");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_render_as_utc_dates() {
        assert_eq!(super::time_text(0), "1970-01-01 00:00:00");
        assert_eq!(super::time_text(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(super::time_text(951_782_400_000), "2000-02-29 00:00:00");
    }
}
