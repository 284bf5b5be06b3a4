//! `wardline chat …`: end-to-end encrypted conversations from a terminal.
//!
//! The device's MLS state, messages and outbox live in a local store next to
//! the profile (`<profile>.chat`), sealed under a passphrase (asked for, or
//! `WARDLINE_PASSPHRASE`). Every command first catches up with the server, so
//! messages written offline go out, in order, at the next command.

use crate::term::say;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use uuid::Uuid;
use wardline_client::chat::{Chat, ChatError};
use wardline_client::core::{
    AttachmentKind, AttachmentRef, Event, GroupChange, LocalMessage, MessageContent, content,
};
use wardline_proto::messaging::*;

use crate::remote::{print_json, profile_path, signed_in};
use crate::{ClientOpts, input};

#[derive(clap::Subcommand)]
pub enum ChatCommand {
    /// Start a conversation with colleagues (by e-mail).
    New(NewArgs),
    /// Your conversations.
    List(ClientOpts),
    /// Send a message (queued and sent later if the server is unreachable).
    Send(SendArgs),
    /// Show a conversation's messages and mark them read.
    Read(ReadArgs),
    /// Print messages as they arrive (WebSocket), until interrupted.
    Watch(WatchArgs),
    /// Delivery and read receipts of a message (default: your latest).
    Receipts(ReceiptsArgs),
    /// Add a colleague to a group.
    Add(MemberArgs),
    /// Remove a colleague from a group.
    Remove(MemberArgs),
    /// Leave a group.
    Leave(ConvArgs),
    /// Start a conversation again from this device, when it waits to join
    /// and no member device is left to add it (all were removed or wiped).
    Refound(ConvArgs),
    /// Save the attachments of a message (owner-only files).
    Download(DownloadArgs),
    /// Your devices: name, identity key fingerprint, key packages left.
    Devices(ClientOpts),
    /// Recall a message you sent (within the organisation's window; an
    /// administrator at any time): every device deletes it.
    Recall(RecallArgs),
    /// Give a conversation's messages a lifespan (e.g. 24h), or "none".
    Disappear(DisappearArgs),
    /// Message a clinical role ("Cardiology on-call"): it reaches whoever
    /// covers it now (or the backup or fallback, and you are told).
    Page(PageArgs),
    /// Acknowledge an urgent or STAT message (its escalation stops).
    Ack(AckArgs),
    /// Where an urgent or STAT message's escalation stands.
    Escalation(AckArgs),
    /// Open a patient's conversations: joined through your care team, or by
    /// break-glass with --reason (time-limited, audited, reviewed).
    OpenPatient(OpenPatientArgs),
}

#[derive(clap::Args)]
pub struct PageArgs {
    /// Clinical role (id or name).
    role: String,
    /// The message.
    #[arg(required = true, num_args = 1..)]
    text: Vec<String>,
    /// routine, urgent or stat.
    #[arg(long, default_value = "routine")]
    priority: String,
    /// Patient reference (makes it a clinical thread).
    #[arg(long)]
    patient: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct AckArgs {
    conversation: String,
    /// Message id (or a unique prefix).
    message: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct OpenPatientArgs {
    /// Patient reference.
    patient: String,
    /// Break-glass: why you need access now (10–500 characters).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct RecallArgs {
    conversation: String,
    /// Message id (or a unique prefix).
    message: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct DisappearArgs {
    conversation: String,
    /// Lifespan of every message from now on (e.g. 3600, 90m, 24h, 7d), or "none".
    after: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// Colleagues' e-mail addresses.
    #[arg(long = "with", required = true, num_args = 1..)]
    with: Vec<String>,
    /// Group title (a group is made when there is a title or several people).
    #[arg(long)]
    title: Option<String>,
    /// Patient reference: makes this a clinical thread.
    #[arg(long)]
    patient: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct SendArgs {
    /// Conversation id (or a unique prefix).
    conversation: String,
    /// The message.
    #[arg(required = true, num_args = 1..)]
    text: Vec<String>,
    /// routine, urgent or stat.
    #[arg(long, default_value = "routine")]
    priority: String,
    /// Answer this message (id or unique prefix).
    #[arg(long)]
    reply_to: Option<String>,
    /// Attach a file (encrypted before upload).
    #[arg(long)]
    attach: Vec<PathBuf>,
    /// Delete the message everywhere after this long (e.g. 600, 30m, 24h).
    #[arg(long)]
    disappear_after: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ReadArgs {
    conversation: String,
    /// Show only the last N messages.
    #[arg(long, default_value_t = 50)]
    last: usize,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Only this conversation.
    conversation: Option<String>,
    /// Stop after this many messages (scripts and tests).
    #[arg(long)]
    count: Option<usize>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ReceiptsArgs {
    conversation: String,
    message: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct MemberArgs {
    conversation: String,
    email: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ConvArgs {
    conversation: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct DownloadArgs {
    conversation: String,
    message: String,
    /// Where to write: a file for a message's one attachment, a directory
    /// (created if need be) for several, each under its own name. Mode 0600.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    opts: ClientOpts,
}

pub(crate) fn passphrase(creating: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("WARDLINE_PASSPHRASE") {
        return Ok(p);
    }
    let p = input::secret("Passphrase for this device's message store: ")?;
    if creating {
        if p.chars().count() < 4 {
            bail!("choose a passphrase or PIN of at least 4 characters");
        }
        if input::secret("Again: ")? != p {
            bail!("the passphrases differ");
        }
    }
    Ok(p)
}

/// Opens (or on first use creates and registers) this device's chat state.
async fn open(opts: &ClientOpts) -> anyhow::Result<Chat> {
    let (api, profile) = signed_in(opts)?;
    let path = profile_path(opts).with_extension("chat");
    // Offline, the store knows whose it is; the server is asked only when it
    // can answer (and must be, to create the store).
    let user = match api.current_session().await {
        Ok(me) => Some(me.user.id),
        Err(wardline_client::ClientError::Transport(_)) if path.exists() => None,
        Err(e) if e.code() == Some(wardline_proto::ErrorCode::DeviceWiped) => {
            return Err(wardline_client::chat::erase_device(&api, &path)
                .await
                .into());
        }
        Err(e) => return Err(e.into()),
    };
    let pass = passphrase(!path.exists())?;
    let chat = Chat::open_as(
        api,
        &path,
        &pass,
        user,
        profile.device_id,
        &format!("CLI on {}", hostname()),
    )
    .await
    .with_context(|| format!("opening the message store {}", path.display()))?;
    Ok(chat)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "this computer".into())
}

/// Syncs; when the server cannot be reached, says so (and since when) and
/// goes on with this device's copy — reading works offline, within the
/// device policy's `max_offline_days` (checked when the store opens).
/// Returns whether the server answered.
async fn sync_or_offline(chat: &mut Chat) -> anyhow::Result<bool> {
    match chat.sync().await {
        Ok(events) => {
            report(&events, chat.user());
            report_refused(chat);
            Ok(true)
        }
        Err(ChatError::Api(e @ wardline_client::ClientError::Transport(_))) => {
            let since = match chat.core.server_time() {
                0 => "never reached".to_owned(),
                t => format!("last reached {}", time(t)),
            };
            eprintln!("offline: {e}; showing this device's copy (server {since})");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Everyone's display name, for showing senders (kept on the device for
/// showing them offline too).
async fn names(chat: &mut Chat) -> HashMap<Uuid, String> {
    chat.names().await.into_iter().collect()
}

fn resolve(chat: &Chat, prefix: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(prefix) {
        return Ok(id);
    }
    let hits: Vec<Uuid> = chat
        .core
        .conversations
        .keys()
        .filter(|id| id.to_string().starts_with(prefix))
        .copied()
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no conversation starts with {prefix:?}; see `wardline chat list`"),
        _ => bail!("{prefix:?} matches several conversations; give more of the id"),
    }
}

fn resolve_message(chat: &Chat, conv: Uuid, prefix: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(prefix) {
        return Ok(id);
    }
    let hits: Vec<Uuid> = chat
        .core
        .conversations
        .get(&conv)
        .map(|c| {
            c.messages
                .iter()
                .filter(|m| m.id.to_string().starts_with(prefix))
                .map(|m| m.id)
                .collect()
        })
        .unwrap_or_default();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no message starts with {prefix:?}"),
        _ => bail!("{prefix:?} matches several messages"),
    }
}

async fn user_by_email(chat: &Chat, email: &str) -> anyhow::Result<Uuid> {
    let want = email.trim().to_lowercase();
    chat.api
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.email.to_lowercase() == want)
        .map(|u| u.id)
        .with_context(|| format!("nobody in your organisation has the e-mail {email}"))
}

fn time(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| ts.to_string())
}

fn short(id: Uuid) -> String {
    id.to_string()[..8].to_owned()
}

fn print_message(m: &LocalMessage, names: &HashMap<Uuid, String>) {
    let who = if m.mine {
        "you".to_owned()
    } else {
        names
            .get(&m.sender_user)
            .cloned()
            .unwrap_or_else(|| short(m.sender_user))
    };
    let flag = match m.priority {
        Priority::Routine => String::new(),
        p => format!(" [{}]", p.as_str().to_uppercase()),
    };
    if let Some(at) = m.recalled_at {
        say!(
            "{}  {}  {who}: (message recalled {})",
            short(m.id),
            time(m.sent_at),
            time(at)
        );
        return;
    }
    let reply = m
        .content
        .reply_to
        .map(|r| format!(" (reply to {})", short(r)))
        .unwrap_or_default();
    let forwarded = m
        .content
        .forwarded
        .as_ref()
        .map(|f| {
            let by = names
                .get(&f.sender_user)
                .cloned()
                .unwrap_or_else(|| short(f.sender_user));
            match &f.patient_ref {
                Some(p) => format!(" (forwarded: {by}, {}, patient {p})", time(f.sent_at)),
                None => format!(" (forwarded: {by}, {})", time(f.sent_at)),
            }
        })
        .unwrap_or_default();
    let disappears = m
        .expires_at
        .map(|t| format!(" (disappears {})", time(t)))
        .unwrap_or_default();
    say!(
        "{}  {}  {who}{flag}{reply}{forwarded}{disappears}: {}",
        short(m.id),
        time(m.sent_at),
        m.content.text
    );
    for a in &m.content.attachments {
        say!(
            "          attachment {:?} {} ({}, {} bytes)",
            a.kind,
            a.name,
            a.mime,
            a.size
        );
    }
}

/// "Nina Nurse's device 1a2b3c4d joined; Carl's device 9f8e7d6c left", as
/// the MLS commit made it (not as the server says).
fn print_change(c: &GroupChange, names: &HashMap<Uuid, String>) {
    let name = |u: &Uuid| names.get(u).cloned().unwrap_or_else(|| short(*u));
    let mut parts = Vec::new();
    for (u, d) in &c.added {
        parts.push(format!("{}'s device {} joined", name(u), short(*d)));
    }
    for (u, d) in &c.removed {
        parts.push(format!("{}'s device {} left", name(u), short(*d)));
    }
    if !parts.is_empty() {
        say!("--------  {}  — {}", time(c.at), parts.join("; "));
    }
}

/// Warnings, new devices and escalation alerts from a sync, for `me`
/// (alerts about my own message are not asks to acknowledge it).
/// Outbox messages the server refused for good (see `Chat::refused`).
fn report_refused(chat: &Chat) {
    for r in &chat.refused {
        eprintln!(
            "not sent: message {} to conversation {} was refused by the server and taken out of the outbox: {}",
            r.message, r.conversation, r.reason
        );
    }
}

fn report(events: &[Event], me: Uuid) {
    for e in events {
        match e {
            Event::Rejected { reason, .. } => {
                eprintln!("warning: a message could not be opened and was skipped: {reason}");
            }
            Event::NewDevice { device, name } => new_device(*device, name),
            Event::Alert {
                conversation,
                alert,
            } => print_alert(*conversation, alert, Some(me)),
            _ => {}
        }
    }
}

/// A staff notice: which patient replied, never what they wrote.
fn print_notice(n: &wardline_proto::patients::StaffNotice) {
    match n.kind {
        wardline_proto::patients::StaffNoticeKind::PatientReply => eprintln!(
            "PATIENT REPLY at {}: read it with `wardline patients thread {}`",
            time(n.created_at),
            n.patient_id
        ),
    }
}

/// An escalation alert: what waits and where, never content. To the sender
/// (`me`) it reports how their message's escalation goes; to anyone else it
/// asks for the acknowledgement.
fn print_alert(conversation: Uuid, alert: &wardline_proto::routing::AlertNotice, me: Option<Uuid>) {
    eprintln!("{}", alert_line(conversation, alert, me));
}

fn alert_line(
    conversation: Uuid,
    alert: &wardline_proto::routing::AlertNotice,
    me: Option<Uuid>,
) -> String {
    use wardline_proto::routing::EscalationAction;
    if alert.action == EscalationAction::Acknowledged {
        return format!(
            "[{}] {} (message {})",
            short(conversation),
            alert.text,
            alert.message_id
        );
    }
    if me.is_some() && alert.sender == me && alert.action == EscalationAction::Unanswered {
        return format!(
            "UNANSWERED [{}] your message {}: {}",
            short(conversation),
            alert.message_id,
            alert.text
        );
    }
    if me.is_some() && alert.sender == me {
        // Issue 18: the sender was asked to acknowledge their own message.
        return format!(
            "[{}] your message {}: {} (step: {}; `wardline chat escalation {} {}` shows where it stands)",
            short(conversation),
            alert.message_id,
            alert.text,
            alert.action.as_str(),
            conversation,
            alert.message_id
        );
    }
    format!(
        "ALERT [{}] {} (message {}; acknowledge with `wardline chat ack {} {}`)",
        short(conversation),
        alert.text,
        alert.message_id,
        conversation,
        alert.message_id
    )
}

fn new_device(device: Uuid, name: &str) {
    eprintln!(
        "notice: a new device was registered to your account: {name:?} ({device}). \
         If that was not you, tell your administrator now."
    );
}

pub async fn run(cmd: ChatCommand) -> anyhow::Result<()> {
    let profile = profile_path(opts_of(&cmd));
    let r = dispatch(cmd).await;
    if let Err(e) = &r
        && let Some(ChatError::Wiped { .. }) = e.downcast_ref::<ChatError>()
    {
        erase_profile(&profile);
    }
    r
}

/// What a wiped device erases besides its message store (which
/// `wardline_client::chat::erase_device` overwrote and removed before it
/// confirmed): the keys of messages it sealed for patients (finding L2 of
/// 2026-11-30: that file stayed behind) and the profile with its session
/// token. Files are overwritten before they are removed.
pub(crate) fn erase_profile(profile: &std::path::Path) {
    let keys = wardline_client::patient_keys::PatientKeys::path_for(profile);
    for path in [profile.with_extension("chat"), keys, profile.to_owned()] {
        if let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) {
            let _ = std::fs::write(&path, vec![0u8; len as usize]);
        }
        let _ = std::fs::remove_file(&path);
    }
}

fn opts_of(cmd: &ChatCommand) -> &ClientOpts {
    match cmd {
        ChatCommand::New(a) => &a.opts,
        ChatCommand::List(o) | ChatCommand::Devices(o) => o,
        ChatCommand::Send(a) => &a.opts,
        ChatCommand::Read(a) => &a.opts,
        ChatCommand::Watch(a) => &a.opts,
        ChatCommand::Receipts(a) => &a.opts,
        ChatCommand::Add(a) | ChatCommand::Remove(a) => &a.opts,
        ChatCommand::Leave(a) | ChatCommand::Refound(a) => &a.opts,
        ChatCommand::Download(a) => &a.opts,
        ChatCommand::Recall(a) => &a.opts,
        ChatCommand::Disappear(a) => &a.opts,
        ChatCommand::Page(a) => &a.opts,
        ChatCommand::Ack(a) | ChatCommand::Escalation(a) => &a.opts,
        ChatCommand::OpenPatient(a) => &a.opts,
    }
}

async fn dispatch(cmd: ChatCommand) -> anyhow::Result<()> {
    match cmd {
        ChatCommand::New(args) => new(args).await,
        ChatCommand::List(opts) => list(opts).await,
        ChatCommand::Send(args) => send(args).await,
        ChatCommand::Read(args) => read(args).await,
        ChatCommand::Watch(args) => watch(args).await,
        ChatCommand::Receipts(args) => receipts(args).await,
        ChatCommand::Add(args) => member(args, true).await,
        ChatCommand::Remove(args) => member(args, false).await,
        ChatCommand::Leave(args) => leave(args).await,
        ChatCommand::Refound(args) => refound(args).await,
        ChatCommand::Download(args) => download(args).await,
        ChatCommand::Devices(opts) => devices(opts).await,
        ChatCommand::Recall(args) => recall(args).await,
        ChatCommand::Disappear(args) => disappear(args).await,
        ChatCommand::Page(args) => page(args).await,
        ChatCommand::Ack(args) => ack(args, true).await,
        ChatCommand::Escalation(args) => ack(args, false).await,
        ChatCommand::OpenPatient(args) => open_patient(args).await,
    }
}

async fn page(args: PageArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let priority = Priority::parse(&args.priority.to_lowercase())
        .context("priority must be routine, urgent or stat")?;
    let role = crate::routing::role_id(&chat.api, &args.role).await?;
    let p = chat.page(role, args.patient).await?;
    if p.nobody_on_call {
        eprintln!("nobody on call: {}", p.notice);
    } else {
        eprintln!("{}", p.notice);
    }
    let id = chat
        .send(
            p.conversation.id,
            MessageContent::text(args.text.join(" ")),
            priority,
        )
        .await?;
    if args.opts.json {
        return print_json(&serde_json::json!({
            "conversation_id": p.conversation.id,
            "message_id": id,
            "resolved_to": p.resolved_to,
            "via": p.via,
            "nobody_on_call": p.nobody_on_call,
        }));
    }
    say!(
        "{id} sent to {} in {}",
        p.resolved_to.display_name,
        p.conversation.id
    );
    Ok(())
}

/// `ack`: acknowledges; otherwise shows where the escalation stands.
async fn ack(args: AckArgs, acknowledge: bool) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let conv = resolve(&chat, &args.conversation)?;
    let message = resolve_message(&chat, conv, &args.message)?;
    let e = if acknowledge {
        chat.acknowledge(conv, message).await?
    } else {
        chat.api.escalation(conv, message).await?
    };
    if args.opts.json {
        return print_json(&e);
    }
    let names = names(&mut chat).await;
    let name = |u: Uuid| names.get(&u).cloned().unwrap_or_else(|| short(u));
    say!(
        "{} {}: {:?}",
        short(e.message_id),
        e.priority.as_str(),
        e.state
    );
    for ev in &e.events {
        let who: Vec<String> = ev.users.iter().map(|u| name(*u)).collect();
        say!(
            "  {}  {}{}  {}",
            time(ev.at),
            ev.action.as_str(),
            if ev.sms { " (text)" } else { "" },
            who.join(", ")
        );
    }
    if let (Some(by), Some(at)) = (e.acknowledged_by, e.acknowledged_at) {
        say!(
            "  acknowledged by {} at {} (device {})",
            name(by),
            time(at),
            e.acknowledged_device.map(short).unwrap_or_default()
        );
    } else if let (Some(at), Some(a)) = (e.next_at, e.next_action) {
        say!("  next: {} at {}", a.as_str(), time(at));
    }
    Ok(())
}

async fn open_patient(args: OpenPatientArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let r = chat
        .api
        .open_patient(&wardline_proto::routing::OpenPatientRequest {
            patient_ref: args.patient,
            reason: args.reason,
        })
        .await?;
    report(&chat.sync().await?, chat.user());
    if args.opts.json {
        return print_json(&r);
    }
    for c in &r.conversations {
        say!("{}  {:?}", c.conversation_id, c.via);
    }
    for g in &r.grants {
        say!(
            "break-glass access until {} (grant {}); the compliance officer has been told",
            time(g.expires_at),
            g.id
        );
    }
    Ok(())
}

async fn recall(args: RecallArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let conv = resolve(&chat, &args.conversation)?;
    let message = resolve_message(&chat, conv, &args.message)?;
    let r = chat.recall(conv, message).await?;
    if args.opts.json {
        return print_json(&r);
    }
    let names = names(&mut chat).await;
    say!(
        "{} recalled; {} device(s) told to delete it",
        short(r.message_id),
        r.devices_notified
    );
    for d in &r.recipients {
        let who = names
            .get(&d.user_id)
            .cloned()
            .unwrap_or_else(|| short(d.user_id));
        let state = match (d.read_at, d.delivered_at) {
            (Some(t), _) => format!("had read it ({})", time(t)),
            (None, Some(t)) => format!("had received it ({}), not read", time(t)),
            (None, None) => "had not received it".to_owned(),
        };
        say!("  {who} (device {}): {state}", short(d.device_id));
    }
    Ok(())
}

async fn disappear(args: DisappearArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let conv = resolve(&chat, &args.conversation)?;
    // Only the lifespan changes; the conversation's retention stays as set.
    let mut own = chat.api.conversation(conv).await?.lifecycle_own;
    let ttl = if args.after.eq_ignore_ascii_case("none") {
        None
    } else {
        Some(crate::lifecycle::parse_duration(&args.after)?)
    };
    let c = chat
        .api
        .set_conversation_lifecycle(conv, &{
            own.message_ttl_secs = ttl;
            own
        })
        .await?;
    if args.opts.json {
        return print_json(&c);
    }
    match c.lifecycle.message_ttl_secs {
        Some(t) => say!("messages here now disappear {t} seconds after they are sent"),
        None => say!("messages here no longer disappear"),
    }
    Ok(())
}

async fn new(args: NewArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let mut members = Vec::new();
    for e in &args.with {
        members.push(user_by_email(&chat, e).await?);
    }
    let kind = if members.len() == 1 && args.title.is_none() && args.patient.is_none() {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    };
    let c = chat
        .create(&CreateConversationRequest {
            kind,
            title: args.title,
            members,
            patient_ref: args.patient,
            care_team_id: None,
        })
        .await?;
    if args.opts.json {
        return print_json(&c);
    }
    say!("{}", c.id);
    unreached_note(&mut chat, c.id).await;
    Ok(())
}

/// Says which members have no device in the conversation yet: what is sent
/// now reaches them only with the history their first device is given.
async fn unreached_note(chat: &mut Chat, conv: Uuid) {
    let me = chat.user();
    let unreached: Vec<Uuid> = chat
        .core
        .unreached_members(conv)
        .into_iter()
        .filter(|u| *u != me)
        .collect();
    if unreached.is_empty() {
        return;
    }
    let names = names(chat).await;
    for u in unreached {
        eprintln!(
            "note: not delivered to {} yet: no device of theirs is in the conversation; \
             it reaches them with the recent history when one joins",
            names.get(&u).cloned().unwrap_or_else(|| short(u))
        );
    }
}

async fn list(opts: ClientOpts) -> anyhow::Result<()> {
    let mut chat = open(&opts).await?;
    if !sync_or_offline(&mut chat).await? {
        return list_local(&chat, opts.json);
    }
    let list = chat.api.conversations().await?;
    if opts.json {
        return print_json(&list);
    }
    let names = names(&mut chat).await;
    say!(
        "{:<36}  {:<6}  {:<16}  {:>4}  title / members",
        "id",
        "kind",
        "last activity",
        "msgs"
    );
    for c in &list.conversations {
        let who: Vec<String> = c
            .members
            .iter()
            .filter(|m| **m != chat.user())
            .map(|m| names.get(m).cloned().unwrap_or_else(|| short(*m)))
            .collect();
        let msgs = chat
            .core
            .conversations
            .get(&c.id)
            .map_or(0, |l| l.messages.len());
        let mut label = c.title.clone().unwrap_or_default();
        if let Some(p) = &c.patient_ref {
            label = format!("{label} [patient {p}]");
        }
        say!(
            "{}  {:<6}  {:<16}  {msgs:>4}  {} — {}",
            c.id,
            c.kind.as_str(),
            time(c.last_activity_at),
            label.trim(),
            who.join(", ")
        );
    }
    Ok(())
}

/// `chat list` from this device's store (offline): what it holds, newest first.
fn list_local(chat: &Chat, json: bool) -> anyhow::Result<()> {
    let mut convs: Vec<_> = chat.core.conversations.values().collect();
    let last =
        |c: &&wardline_client::core::LocalConversation| c.messages.last().map_or(0, |m| m.sent_at);
    convs.sort_by_key(|c| std::cmp::Reverse(last(c)));
    if json {
        let rows: Vec<_> = convs
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "title": c.title,
                    "patient_ref": c.patient_ref,
                    "members": c.members,
                    "messages": c.messages.len(),
                    "last_activity_at": last(c),
                })
            })
            .collect();
        return print_json(&rows);
    }
    say!("{:<36}  {:<16}  {:>4}  title", "id", "last message", "msgs");
    for c in convs {
        let mut label = c.title.clone().unwrap_or_default();
        if let Some(p) = &c.patient_ref {
            label = format!("{label} [patient {p}]");
        }
        say!(
            "{}  {:<16}  {:>4}  {}",
            c.id,
            time(last(&c)),
            c.messages.len(),
            label.trim()
        );
    }
    Ok(())
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    let online = match chat.sync().await {
        Ok(ev) => {
            report(&ev, chat.user());
            true
        }
        Err(e) => {
            eprintln!("offline ({e}); the message will be queued");
            false
        }
    };
    let conv = resolve(&chat, &args.conversation)?;
    let priority = Priority::parse(&args.priority.to_lowercase())
        .context("priority must be routine, urgent or stat")?;
    let reply_to = args
        .reply_to
        .as_deref()
        .map(|r| resolve_message(&chat, conv, r))
        .transpose()?;
    let mut attachments = Vec::new();
    for path in &args.attach {
        if !online {
            bail!("attachments need the server; try again when online");
        }
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        let ext = name.rsplit('.').next().unwrap_or("").to_lowercase();
        let (kind, mime) = match ext.as_str() {
            "png" => (AttachmentKind::Photo, "image/png"),
            "jpg" | "jpeg" => (AttachmentKind::Photo, "image/jpeg"),
            "m4a" | "ogg" | "opus" | "wav" => (AttachmentKind::Voice, "audio/*"),
            "pdf" => (AttachmentKind::File, "application/pdf"),
            _ => (AttachmentKind::File, "application/octet-stream"),
        };
        if chat
            .core
            .device_policy
            .as_ref()
            .is_some_and(|p| !p.allows_attachment(mime))
        {
            bail!("{name}: the organisation's device policy does not allow {mime} attachments");
        }
        let (sealed, key) = content::seal_attachment(&data);
        let up = chat.api.upload_attachment(conv, sealed).await?;
        attachments.push(AttachmentRef {
            id: up.attachment_id,
            kind,
            name,
            mime: mime.into(),
            size: data.len() as u64,
            key,
        });
    }
    let content = MessageContent {
        text: args.text.join(" "),
        reply_to,
        attachments,
        shared_again: None,
        forwarded: None,
    };
    let ttl = args
        .disappear_after
        .as_deref()
        .map(crate::lifecycle::parse_duration)
        .transpose()?;
    let id = chat.send_with_ttl(conv, content, priority, ttl).await?;
    report_refused(&chat);
    if chat.core.outbox.iter().any(|o| o.id == id) {
        // Say why: a conversation this device has not joined is not the
        // same as the server being out of reach.
        match chat.waiting.get(&conv) {
            Some(why) => say!(
                "{id} queued: {why}; it is sent, in order, by the next chat command after that"
            ),
            None => say!("{id} queued (offline): it is sent, in order, by the next chat command"),
        }
    } else {
        say!("{id}");
        // Say who it did not reach (issue 18, item 4).
        unreached_note(&mut chat, conv).await;
    }
    for (other, why) in chat.waiting.iter().filter(|(c, _)| **c != conv) {
        let n = chat
            .core
            .outbox
            .iter()
            .filter(|o| o.conversation == *other)
            .count();
        eprintln!("note: {n} message(s) to conversation {other} wait: {why}");
    }
    Ok(())
}

async fn read(args: ReadArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    let online = sync_or_offline(&mut chat).await?;
    let conv = resolve(&chat, &args.conversation)?;
    let names = names(&mut chat).await;
    let Some(c) = chat.core.conversations.get(&conv) else {
        bail!("this device has no messages of {conv} (yet)");
    };
    // A read receipt means "seen": only the messages printed are marked.
    let shown: Vec<Uuid>;
    if args.opts.json {
        let msgs: Vec<_> = c.messages.iter().collect();
        shown = msgs.iter().map(|m| m.id).collect();
        print_json(&msgs)?;
    } else {
        let title = c
            .title
            .clone()
            .unwrap_or_else(|| "direct conversation".into());
        say!("— {title} —");
        let skip = c.messages.len().saturating_sub(args.last);
        let unshown = c.messages[..skip].iter().filter(|m| !m.mine).count();
        if unshown > 0 {
            say!(
                "({unshown} earlier message(s) from others not shown here, so not marked read by this; --last {} shows them)",
                c.messages.len()
            );
        }
        let printed = &c.messages[skip..];
        shown = printed.iter().map(|m| m.id).collect();
        // Changes older than the first message shown only when all are shown.
        let from = match printed.first() {
            Some(m) if skip > 0 => m.sent_at,
            _ => i64::MIN,
        };
        let mut changes = c.changes.iter().filter(|g| g.at >= from).peekable();
        for m in printed {
            while let Some(g) = changes.next_if(|g| g.at <= m.sent_at) {
                print_change(g, &names);
            }
            print_message(m, &names);
        }
        for g in changes {
            print_change(g, &names);
        }
        for o in chat.core.outbox.iter().filter(|o| o.conversation == conv) {
            say!("{}  (queued)  you: {}", short(o.id), o.content.text);
        }
    }
    if online {
        chat.mark_shown(conv, &shown).await?;
    } else {
        eprintln!("(read receipts need the server: run `chat read` again when online)");
    }
    Ok(())
}

async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    let only = args
        .conversation
        .as_deref()
        .map(|c| resolve(&chat, c))
        .transpose()?;
    let names = names(&mut chat).await;
    let me = chat.user();
    let mut seen = 0usize;
    let mut backoff = Duration::from_secs(1);
    loop {
        let result = chat
            .watch(|e| {
                match e {
                    Event::Message {
                        conversation,
                        message,
                    } if only.is_none_or(|c| c == *conversation) => {
                        if args.opts.json {
                            let _ = print_json(message);
                        } else {
                            crate::term::put(&format!("[{}] ", short(*conversation)));
                            print_message(message, &names);
                        }
                        seen += 1;
                    }
                    Event::Joined { conversation } => {
                        eprintln!("joined conversation {conversation}");
                    }
                    Event::Commit {
                        conversation,
                        change,
                    } if only.is_none_or(|c| c == *conversation) && !args.opts.json => {
                        crate::term::put(&format!("[{}] ", short(*conversation)));
                        print_change(change, &names);
                    }
                    Event::Removed { conversation } => {
                        eprintln!("removed from conversation {conversation}");
                    }
                    Event::Rejected { reason, .. } => {
                        eprintln!("warning: skipped a message that could not be opened: {reason}");
                    }
                    Event::NewDevice { device, name } => new_device(*device, name),
                    Event::Alert {
                        conversation,
                        alert,
                    } if only.is_none_or(|c| c == *conversation) => {
                        print_alert(*conversation, alert, Some(me))
                    }
                    Event::Notice { notice } => print_notice(notice),
                    _ => {}
                }
                args.count.is_none_or(|n| seen < n)
            })
            .await;
        if args.count.is_some_and(|n| seen >= n) {
            return Ok(());
        }
        match result {
            Ok(()) => eprintln!("connection closed; reconnecting"),
            // The store is already erased; run() removes the profile.
            Err(e @ ChatError::Wiped { .. }) => return Err(e.into()),
            Err(e) if e.code() == Some(wardline_proto::ErrorCode::Unauthenticated) => {
                bail!("the session ended; run `wardline login`")
            }
            Err(e) => eprintln!(
                "connection lost ({e}); reconnecting in {} s",
                backoff.as_secs()
            ),
        }
        // Other commands on this device run while the server is away.
        chat.let_go();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
        // Only the server's verdict on the session ends it: a restart, a
        // network cut or a proxy error is a reason to reconnect, not to sign out.
        match chat.api.current_session().await {
            Ok(_) => backoff = Duration::from_secs(1),
            Err(e) if e.code() == Some(wardline_proto::ErrorCode::Unauthenticated) => {
                bail!("the session ended; run `wardline login`")
            }
            // A wipe order is obeyed by the next watch's sync.
            Err(e) => eprintln!("the server cannot be reached ({e}); trying again"),
        }
    }
}

async fn receipts(args: ReceiptsArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    sync_or_offline(&mut chat).await?;
    let conv = resolve(&chat, &args.conversation)?;
    let message = match &args.message {
        Some(m) => resolve_message(&chat, conv, m)?,
        None => chat
            .core
            .conversations
            .get(&conv)
            .and_then(|c| c.messages.iter().rev().find(|m| m.mine))
            .map(|m| m.id)
            .context("you have sent nothing in this conversation from this device")?,
    };
    let (r, kept_at) = chat.receipts(conv, message).await?;
    if args.opts.json {
        return print_json(&r);
    }
    let names = names(&mut chat).await;
    say!("message {} ({})", message, r.priority.as_str());
    if let Some(at) = kept_at {
        say!("(offline: as the server said at {})", time(at));
    }
    say!(
        "{:<24}  {:<8}  {:<16}  {:<16}",
        "recipient",
        "device",
        "delivered",
        "read"
    );
    let show = |t: Option<i64>| t.map(time).unwrap_or_else(|| "—".into());
    for x in &r.receipts {
        say!(
            "{:<24}  {:<8}  {:<16}  {:<16}",
            names
                .get(&x.user_id)
                .cloned()
                .unwrap_or_else(|| short(x.user_id)),
            short(x.device_id),
            show(x.delivered_at),
            show(x.read_at)
        );
    }
    for x in &r.not_received {
        let why = match x.reason {
            NotReceivedReason::NoDevice => {
                "no device yet (their first device is given the recent history)"
            }
            NotReceivedReason::JoinedLater => {
                "not received: their devices joined after it (shared again by the sender's device)"
            }
        };
        say!(
            "{:<24}  {}",
            names
                .get(&x.user_id)
                .cloned()
                .unwrap_or_else(|| short(x.user_id)),
            why
        );
    }
    Ok(())
}

async fn member(args: MemberArgs, add: bool) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let conv = resolve(&chat, &args.conversation)?;
    let user = user_by_email(&chat, &args.email).await?;
    if add {
        chat.api.add_member(conv, user).await?;
    } else {
        chat.api.remove_member(conv, user).await?;
    }
    chat.reconcile(conv).await?;
    say!("{} {}", if add { "added" } else { "removed" }, args.email);
    Ok(())
}

async fn leave(args: ConvArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let conv = resolve(&chat, &args.conversation)?;
    let me = chat.user();
    chat.api.remove_member(conv, me).await?;
    chat.core.left(conv)?;
    chat.save()?;
    say!("left {conv}");
    Ok(())
}

async fn refound(args: ConvArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let conv = resolve(&chat, &args.conversation)?;
    let c = chat.refound(conv).await?;
    let waiting = chat
        .core
        .outbox
        .iter()
        .filter(|o| o.conversation == conv)
        .count();
    say!(
        "started {conv} again from this device; {} device(s) being added{}",
        c.devices.len().saturating_sub(1),
        if waiting == 0 {
            String::new()
        } else {
            format!("; {waiting} message(s) still waiting")
        }
    );
    Ok(())
}

/// A sender's file name as a name in a local directory: no directories, no
/// control characters, never empty or hidden.
fn local_name(name: &str, index: usize) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let clean = clean.trim_start_matches('.').trim();
    if clean.is_empty() {
        format!("attachment-{}", index + 1)
    } else {
        clean.chars().take(200).collect()
    }
}

async fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let mut chat = open(&args.opts).await?;
    report(&chat.sync().await?, chat.user());
    let conv = resolve(&chat, &args.conversation)?;
    let msg = resolve_message(&chat, conv, &args.message)?;
    let attachments = chat
        .core
        .conversations
        .get(&conv)
        .and_then(|c| c.messages.iter().find(|m| m.id == msg))
        .map(|m| m.content.attachments.clone())
        .unwrap_or_default();
    if attachments.is_empty() {
        bail!("that message has no attachment");
    }
    // One attachment to a file name; several (or a directory given) into
    // that directory under their own names.
    let into_dir = attachments.len() > 1 || args.out.is_dir();
    if into_dir {
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
    }
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (i, att) in attachments.iter().enumerate() {
        let sealed = chat.api.download_attachment(conv, att.id).await?;
        let data = content::open_attachment(&sealed, &att.key)
            .context("the attachment does not match its key (altered on the server?)")?;
        let path = if into_dir {
            let mut name = local_name(&att.name, i);
            while !used.insert(name.clone()) {
                name = format!("{}-{name}", i + 1);
            }
            args.out.join(name)
        } else {
            args.out.clone()
        };
        // Owner-only, like the message store: attachments are PHI.
        wardline_client::profile::write_private(&path, &data)
            .with_context(|| format!("writing {}", path.display()))?;
        say!("{} ({} bytes) → {}", att.name, att.size, path.display());
    }
    Ok(())
}

async fn devices(opts: ClientOpts) -> anyhow::Result<()> {
    let mut chat = open(&opts).await?;
    report(&chat.sync().await?, chat.user());
    let list = chat.api.my_devices().await?;
    if opts.json {
        return print_json(&list);
    }
    say!(
        "{:<36}  {:<24}  {:<16}  {:<16}  key packages",
        "device",
        "name",
        "registered",
        "identity key"
    );
    for d in &list.devices {
        let this = if d.id == chat.core.mls.device {
            " (this one)"
        } else {
            ""
        };
        say!(
            "{}  {:<24}  {:<16}  {:<16}  {}{}",
            d.id,
            d.name,
            time(d.created_at),
            &hex::encode(d.identity_key.0.as_slice())[..16],
            d.key_packages_available,
            this
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use wardline_proto::messaging::Priority;
    use wardline_proto::routing::{AlertNotice, EscalationAction};

    #[test]
    fn the_sender_is_not_asked_to_acknowledge_their_own_message() {
        let (me, other, conv) = (
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
        );
        let alert = AlertNotice {
            message_id: uuid::Uuid::new_v4(),
            priority: Priority::Stat,
            action: EscalationAction::Renotify,
            added: Vec::new(),
            text: "STAT message not acknowledged for 2 min".into(),
            by: None,
            sender: Some(me),
        };
        let mine = super::alert_line(conv, &alert, Some(me));
        assert!(
            mine.contains("your message") && !mine.contains("chat ack"),
            "{mine}"
        );
        let theirs = super::alert_line(conv, &alert, Some(other));
        assert!(
            theirs.starts_with("ALERT") && theirs.contains("chat ack"),
            "{theirs}"
        );
    }
}
