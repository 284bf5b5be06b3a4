//! `wardline patients …`: patient texting from the terminal (over the API, as
//! the signed-in care-team member).

use crate::term::say;
use std::collections::BTreeMap;

use anyhow::Context;
use clap::Subcommand;
use uuid::Uuid;
use wardline_proto::patients::*;

use wardline_client::core::patient::{open_for_patient, seal_for_patient};
use wardline_client::patient_keys::PatientKeys;
use wardline_proto::messaging::B64;

use crate::ClientOpts;
use crate::remote::{print_json, profile_path, signed_in};

#[derive(Subcommand)]
pub enum PatientsCommand {
    /// Create a patient record.
    Add(AddArgs),
    /// The organisation's patients.
    List(ClientOpts),
    /// Record consent given (or, with --withdraw, withdrawn).
    Consent(ConsentArgs),
    /// A patient's consent history (every decision and keyword, oldest
    /// first), for the record: a table, `--json`, or `--csv`.
    Consents(ConsentsArgs),
    /// The SMS sent to a patient and their delivery status (never their text).
    Sms(SmsArgs),
    /// Send a template: `--param date=2026-12-01 --param time=09:30`.
    Text(TextArgs),
    /// Write a secure message (the SMS carries only a notice and a link).
    /// Who reads it besides the patient is the organisation's policy
    /// (`patients.secure_messages`): `team` — the server seals it and every
    /// colleague with patient texting reads it in the thread; `writer` —
    /// sealed here with a fresh key that travels only in the link's
    /// fragment, so the server never holds it readable (this profile keeps
    /// the key to show it again); `writer_chooses` (default) — sealed here
    /// unless `--team-readable`.
    Send(SendArgs),
    /// Read a patient thread (marks the patient's messages read).
    Thread(ThreadArgs),
    /// The practice's patient threads with unread counts.
    Threads(ClientOpts),
}

#[derive(clap::Args)]
pub struct AddArgs {
    #[arg(long)]
    name: String,
    /// YYYY-MM-DD
    #[arg(long)]
    dob: String,
    /// Mobile number, E.164 (+15551234567).
    #[arg(long)]
    phone: String,
    #[arg(long)]
    mrn: Option<String>,
    #[arg(long, default_value = "en")]
    language: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ConsentArgs {
    patient: Uuid,
    #[arg(long, value_parser = ["reminders", "secure_messages"])]
    scope: String,
    #[arg(long, value_parser = ["verbal", "written", "electronic"])]
    method: String,
    #[arg(long)]
    withdraw: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ConsentsArgs {
    patient: Uuid,
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct SmsArgs {
    patient: Uuid,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct TextArgs {
    patient: Uuid,
    template: String,
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct SendArgs {
    patient: Uuid,
    text: String,
    #[arg(long)]
    team_readable: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(clap::Args)]
pub struct ThreadArgs {
    patient: Uuid,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn run(cmd: PatientsCommand) -> anyhow::Result<()> {
    let profile = profile_path(opts_of(&cmd));
    let r = dispatch(cmd).await;
    // A wiped device erases what it holds, whichever command heard of it.
    if let Err(e) = &r
        && e.downcast_ref::<wardline_client::ClientError>()
            .and_then(|e| e.code())
            == Some(wardline_proto::ErrorCode::DeviceWiped)
    {
        crate::chat::erase_profile(&profile);
    }
    r
}

/// The keys of the messages this profile sealed for patients, opened with
/// the device's passphrase (the message store's).
fn keys_of(opts: &ClientOpts) -> anyhow::Result<PatientKeys> {
    let profile = profile_path(opts);
    let path = PatientKeys::path_for(&profile);
    let creating = !path.exists() && !profile.with_extension("chat").exists();
    let pass = crate::chat::passphrase(creating)?;
    PatientKeys::load(&path, &pass).with_context(|| format!("opening {}", path.display()))
}

fn opts_of(cmd: &PatientsCommand) -> &ClientOpts {
    match cmd {
        PatientsCommand::List(o) | PatientsCommand::Threads(o) => o,
        PatientsCommand::Add(AddArgs { opts, .. })
        | PatientsCommand::Consent(ConsentArgs { opts, .. })
        | PatientsCommand::Consents(ConsentsArgs { opts, .. })
        | PatientsCommand::Sms(SmsArgs { opts, .. })
        | PatientsCommand::Text(TextArgs { opts, .. })
        | PatientsCommand::Send(SendArgs { opts, .. })
        | PatientsCommand::Thread(ThreadArgs { opts, .. }) => opts,
    }
}

async fn dispatch(cmd: PatientsCommand) -> anyhow::Result<()> {
    match cmd {
        PatientsCommand::Add(a) => add(a).await,
        PatientsCommand::List(o) => list(o).await,
        PatientsCommand::Consent(a) => consent(a).await,
        PatientsCommand::Consents(a) => consents(a).await,
        PatientsCommand::Sms(a) => sms(a).await,
        PatientsCommand::Text(a) => text(a).await,
        PatientsCommand::Send(a) => send(a).await,
        PatientsCommand::Thread(a) => thread(a).await,
        PatientsCommand::Threads(o) => threads(o).await,
    }
}

async fn add(args: AddArgs) -> anyhow::Result<()> {
    let AddArgs {
        name,
        dob,
        phone,
        mrn,
        language,
        opts,
    } = args;
    let (c, _) = signed_in(&opts)?;
    let p = c
        .create_patient(&CreatePatientRequest {
            name,
            date_of_birth: dob,
            mrn,
            phone,
            language: Some(language),
        })
        .await?;
    if opts.json {
        return print_json(&p);
    }
    say!("{}", p.id);
    Ok(())
}

async fn list(opts: ClientOpts) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let list = c.patients().await?;
    if opts.json {
        return print_json(&list);
    }
    for p in list.patients {
        let consent: Vec<&str> = p.consent.iter().map(|s| s.as_str()).collect();
        say!(
            "{}  {:<28} {}  consent: {}{}",
            p.id,
            p.name,
            p.date_of_birth,
            if consent.is_empty() {
                "none".into()
            } else {
                consent.join(", ")
            },
            if p.sms_opted_out {
                "  (texted STOP)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

async fn consent(args: ConsentArgs) -> anyhow::Result<()> {
    let ConsentArgs {
        patient,
        scope,
        method,
        withdraw,
        opts,
    } = args;
    let (c, _) = signed_in(&opts)?;
    let h = c
        .record_consent(
            patient,
            &RecordConsentRequest {
                scope: ConsentScope::parse(&scope).context("scope")?,
                granted: !withdraw,
                method: ConsentMethod::parse(&method).context("method")?,
            },
        )
        .await?;
    print_json(&h)
}

async fn consents(args: ConsentsArgs) -> anyhow::Result<()> {
    let ConsentsArgs { patient, csv, opts } = args;
    let (c, _) = signed_in(&opts)?;
    let h = c.consent_history(patient).await?;
    if opts.json {
        return print_json(&h);
    }
    let scope = |e: &ConsentEvent| e.scope.map(|s| s.as_str()).unwrap_or("all");
    if csv {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        w.write_record([
            "at",
            "scope",
            "action",
            "method",
            "recorded_by_kind",
            "recorded_by",
        ])?;
        for e in &h.events {
            w.write_record([
                e.at.to_string().as_str(),
                scope(e),
                e.action.as_str(),
                e.method.as_str(),
                &e.recorded_by_kind,
                &e.recorded_by,
            ])?;
        }
        w.flush()?;
        return Ok(());
    }
    say!(
        "now: {}{}",
        h.consent
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if h.sms_opted_out {
            " (texted STOP)"
        } else {
            ""
        }
    );
    for e in &h.events {
        say!(
            "{}  {:<16} {:<9} {:<11} by {} {}",
            e.at,
            scope(e),
            e.action.as_str(),
            e.method.as_str(),
            e.recorded_by_kind,
            e.recorded_by
        );
    }
    Ok(())
}

async fn sms(args: SmsArgs) -> anyhow::Result<()> {
    let SmsArgs { patient, opts } = args;
    let (c, _) = signed_in(&opts)?;
    let list = c.patient_sms(patient).await?;
    if opts.json {
        return print_json(&list);
    }
    for m in list.sms {
        say!(
            "{}  {:<18} {:<11} attempts {}  {}",
            m.created_at,
            m.kind.as_str(),
            m.status.as_str(),
            m.attempts,
            m.error.unwrap_or_default()
        );
    }
    Ok(())
}

async fn text(args: TextArgs) -> anyhow::Result<()> {
    let TextArgs {
        patient,
        template,
        params,
        opts,
    } = args;
    let (c, _) = signed_in(&opts)?;
    let mut map = BTreeMap::new();
    for p in params {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--param {p:?} is not NAME=VALUE"))?;
        map.insert(k.to_owned(), v.to_owned());
    }
    let out = c
        .send_patient_text(
            patient,
            &SendTemplateRequest {
                template,
                params: map,
            },
        )
        .await?;
    print_json(&out)
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let SendArgs {
        patient,
        text,
        team_readable,
        opts,
    } = args;
    let (c, _) = signed_in(&opts)?;
    // The organisation's policy decides who reads it; where it
    // leaves the choice to the writer, --team-readable makes it so.
    let team = match c.patient(patient).await?.secure_messages {
        SecureMessageReaders::Team => true,
        SecureMessageReaders::Writer => {
            if team_readable {
                anyhow::bail!(
                    "the organisation keeps secure messages sealed on the writer's device (patients.secure_messages = writer): send without --team-readable"
                );
            }
            false
        }
        SecureMessageReaders::WriterChooses => team_readable,
    };
    if team {
        let out = c
            .send_patient_message(
                patient,
                &SendSecureMessageRequest {
                    text: Some(text),
                    sealed: None,
                },
            )
            .await?;
        return print_json(&out);
    }
    let (ciphertext, fragment) = seal_for_patient(&text);
    let out = c
        .send_patient_message(
            patient,
            &SendSecureMessageRequest {
                text: None,
                sealed: Some(ClientSealed {
                    ciphertext: B64(ciphertext),
                    key_fragment: fragment.to_string(),
                }),
            },
        )
        .await?;
    let id = out
        .message_id
        .context("the server did not name the message")?;
    keys_of(&opts)?
        .insert(id, &fragment)
        .context("saving the message key")?;
    print_json(&out)
}

async fn thread(args: ThreadArgs) -> anyhow::Result<()> {
    let ThreadArgs { patient, opts } = args;
    let (c, _) = signed_in(&opts)?;
    let mut t = c.patient_thread(patient).await?;
    // Open what this profile sealed; others' sealed messages stay sealed.
    let keys = keys_of(&opts)?;
    for m in &mut t.messages {
        if let (Some(sealed), Some(key)) = (&m.sealed, keys.get(m.id))
            && let Some(text) = open_for_patient(&sealed.0, key)
        {
            m.text = text;
        }
    }
    if opts.json {
        return print_json(&t);
    }
    for m in t.messages {
        let who = match m.direction {
            PatientMessageDirection::ToPatient => "practice",
            PatientMessageDirection::FromPatient => "patient ",
        };
        let text = if m.text.is_empty() && m.sealed.is_some() {
            "(sealed by the writer's device: only they and the patient can read it)"
        } else {
            m.text.as_str()
        };
        say!("[{}] {who} ({}): {text}", m.created_at, m.via);
        if m.looks_like_opt_out {
            say!(
                "    ^ reads like a request to stop texting: confirm with the patient and, if so, \
                 withdraw their consent (patients consent ID --scope … --withdraw)"
            );
        }
    }
    Ok(())
}

async fn threads(opts: ClientOpts) -> anyhow::Result<()> {
    let (c, _) = signed_in(&opts)?;
    let list = c.patient_threads().await?;
    if opts.json {
        return print_json(&list);
    }
    for t in list.threads {
        say!(
            "{}  {:<28} unread {}",
            t.patient_id,
            t.patient_name,
            t.unread
        );
    }
    Ok(())
}
