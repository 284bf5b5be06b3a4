//! Patients and patient texting.
//!
//! PHI never goes into an SMS. What may: a `no_phi` template (typed values
//! only, see [`templates`]) or the neutral notice of a secure message with its
//! link. The secure message itself is sealed in the database and shown on the
//! link's page only after the patient confirms their date of birth and a
//! one-time code texted to the number on file ([`portal`]).
//!
//! Every send checks, in this order: the number has not texted STOP, the
//! patient consented to the kind of text, and quiet hours (reminders and
//! notices wait until they end). Inbound keywords are handled before anything
//! else an inbound SMS could do. SMS leave through the durable outbox
//! ([`delivery`]) and a [`gateway::SmsGateway`].
//!
//! Patient messages are encrypted at rest with the patient's data key, not
//! end to end: the patient has no device keys, so the server must be able to
//! show them the message.

pub mod delivery;
pub mod gateway;
mod inbound;
pub mod portal;
mod records;
mod sending;
pub mod sms_size;
pub mod templates;
mod threads;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Notify;
use uuid::Uuid;
use wardline_crypto::DataKey;
use wardline_proto::patients::*;
use wardline_proto::{ErrorCode, OrgId, UserId};

use crate::audit::{AuditLog, AuditScope};
use crate::authz::Principal;
use crate::clock::Clock;
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult};
use crate::vault::{FieldRef, Vault};
use wardline_store::patients::*;
use wardline_store::{Store, StoreError};

/// How the server reaches patients: its public address and sender number.
#[derive(Debug, Clone)]
pub struct TextingSetup {
    /// `https://host[:port]` with no trailing slash.
    pub public_url: String,
    pub default_from: String,
    /// Validates webhook signatures; None: webhooks are refused.
    pub webhook_token: Option<String>,
}

#[derive(Clone)]
pub struct PatientService {
    store: Arc<dyn PatientStore>,
    orgs: Arc<dyn Store>,
    vault: Vault,
    clock: Arc<dyn Clock>,
    audit: AuditLog,
    setup: Arc<TextingSetup>,
    /// Wakes the outbox sender when something is due now.
    pub outbox: Arc<Notify>,
    /// Tells staff's open sync sockets of new notices (a patient replied).
    hub: crate::hub::DeliveryHub,
}

/// How many of a patient's most recent writers a reply is told to.
const REPLY_TOLD_TO: i64 = 10;
/// Most notices one listing (or one socket's catch-up) gives.
pub const MAX_NOTICES: i64 = 100;

/// A patient's decrypted record.
pub struct Opened {
    pub row: PatientRow,
    pub key: DataKey,
    pub name: String,
    pub dob: String,
    pub mrn: Option<String>,
    pub phone: String,
    pub language: String,
}

fn open(key: &DataKey, table: &str, id: Uuid, column: &str, sealed: &[u8]) -> ApiResult<String> {
    let id = id.to_string();
    Ok(Vault::open_str(
        key,
        FieldRef {
            table,
            row_id: &id,
            column,
        },
        sealed,
    )?)
}

fn seal(key: &DataKey, table: &str, id: Uuid, column: &str, value: &str) -> Vec<u8> {
    let id = id.to_string();
    Vault::seal(
        key,
        FieldRef {
            table,
            row_id: &id,
            column,
        },
        value,
    )
}

pub fn validate_language(raw: &str) -> ApiResult<()> {
    if (2..=3).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "language must be a lower-case language code such as en or es",
        ))
    }
}

pub fn validate_dob(raw: &str) -> ApiResult<()> {
    let ok = raw.len() == 10
        && raw
            .parse::<jiff::civil::Date>()
            .is_ok_and(|d| d.year() >= 1900 && d <= jiff::ZonedDateTime::now().date());
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "date_of_birth must be a past date as YYYY-MM-DD",
        ))
    }
}

fn consent_now(history: &[ConsentRow]) -> Vec<ConsentScope> {
    let mut granted = BTreeMap::new();
    for c in history {
        if let Some(scope) = c.scope {
            match c.action {
                ConsentAction::Granted => {
                    granted.insert(scope, true);
                }
                ConsentAction::Revoked => {
                    granted.insert(scope, false);
                }
                _ => {}
            }
        }
    }
    granted
        .into_iter()
        .filter(|(_, g)| *g)
        .map(|(s, _)| s)
        .collect()
}

pub(crate) fn sms_to_wire(s: &SmsRow) -> SmsRecord {
    SmsRecord {
        id: s.id,
        kind: s.kind,
        template: s.template.clone(),
        status: s.status,
        attempts: s.attempts,
        created_at: s.created_at,
        send_after: s.send_after,
        sent_at: s.sent_at,
        error: s.error.clone(),
        size: None,
    }
}

/// The body of a secure message to a patient.
enum SecureBody {
    /// Text the server seals.
    Text(String),
    /// Ciphertext sealed by the writer's client, and the key fragment for the link.
    Sealed(Vec<u8>, String),
}

/// Where a client-sealed message's bytes live (the vault seals them again at rest).
fn message_context(id: Uuid) -> Vec<u8> {
    FieldRef {
        table: "patient_messages",
        row_id: &id.to_string(),
        column: "sealed_body",
    }
    .context()
}

/// What an inbound SMS turned out to be (for the audit reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    Stop,
    Start,
    Help,
    /// A message from a known patient's number, added to their thread.
    Message,
    /// Neither a keyword nor from a number on file, or from a number that opted out.
    Ignored,
    /// The provider delivered this SMS before (a webhook retry or a replay).
    Duplicate,
}

impl Inbound {
    pub fn as_str(self) -> &'static str {
        match self {
            Inbound::Stop => "stop",
            Inbound::Start => "start",
            Inbound::Help => "help",
            Inbound::Message => "message",
            Inbound::Ignored => "ignored",
            Inbound::Duplicate => "duplicate",
        }
    }
}

/// The carriers' keywords, matched on the whole message.
fn keyword(body: &str) -> Option<Inbound> {
    // As patients type them (real-world case 07 of issue 19): whatever is not
    // a letter or digit around the word goes (smart quotes, an ellipsis, an
    // emoji, punctuation), and spaces, hyphens and underscores inside it
    // ("opt out", "Opt-Out"). A sentence keeps its other characters and so
    // matches nothing ("Stop. Thank you" stays a message for staff).
    let word: String = body
        .trim_matches(|c: char| !c.is_alphanumeric())
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '_' | '‐' | '‑' | '–' | '—'))
        .flat_map(char::to_uppercase)
        .collect();
    match word.as_str() {
        // The carriers' list and the FCC's 2024 revocation words (in
        // providers' defaults since 2025: REVOKE, OPTOUT).
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE" | "OPTOUT" => {
            Some(Inbound::Stop)
        }
        "START" | "UNSTOP" | "YES" => Some(Inbound::Start),
        "HELP" | "INFO" => Some(Inbound::Help),
        _ => None,
    }
}

/// Whether a patient's message that is not a keyword still asks to stop
/// ("please stop texting me", "no more texts", "no me manden mensajes"): it
/// is stored for staff, flagged, and not acted on by itself — a sentence can
/// mean something else ("stop by tomorrow?"), a person confirms. Phrases in
/// English and Spanish, matched on lower-case words with punctuation,
/// apostrophes and accents ignored.
pub fn looks_like_opt_out(body: &str) -> bool {
    let plain: String = body
        .chars()
        .filter(|c| !matches!(c, '\'' | '’' | '‘'))
        .map(|c| match c {
            'á' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'Ú' => 'u',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .flat_map(char::to_lowercase)
        .collect();
    let words: Vec<&str> = plain.split_whitespace().collect();
    let text = format!(" {} ", words.join(" "));
    const PHRASES: &[&str] = &[
        // English.
        "stop texting",
        "stop text",
        "stop sending",
        "stop messaging",
        "stop message",
        "stop contacting",
        "stop these",
        "stop this",
        "stop it",
        "stop all",
        "please stop",
        "stop please",
        "dont text",
        "do not text",
        "dont send",
        "do not send",
        "dont message",
        "do not message",
        "dont contact",
        "do not contact",
        "no more text",
        "no more message",
        "no more sms",
        "unsubscribe",
        "opt out",
        "optout",
        "opt me out",
        "remove me",
        "remove my number",
        "take me off",
        "leave me alone",
        "wrong number",
        "not interested",
        "revoke",
        "cancel text",
        "cancel message",
        "cancel sms",
        // Spanish.
        "no me envie",
        "no me envien",
        "no me manden",
        "no me escriban",
        "no mas mensaje",
        "no mas texto",
        "dejen de",
        "deje de",
        "darme de baja",
        "de baja",
        "basta",
        "numero equivocado",
        "ya no quiero",
    ];
    PHRASES
        .iter()
        .any(|p| text.contains(&format!(" {p} ")) || text.contains(&format!(" {p}s ")))
}

impl PatientService {
    pub fn new(deps: &Deps, setup: TextingSetup, hub: crate::hub::DeliveryHub) -> PatientService {
        PatientService {
            store: deps.patients.clone(),
            orgs: deps.store.clone(),
            vault: deps.vault.clone(),
            clock: deps.clock.clone(),
            audit: deps.audit.clone(),
            setup: Arc::new(setup),
            outbox: Arc::new(Notify::new()),
            hub,
        }
    }

    /// A patient replied: the staff who wrote to them (the most recent
    /// [`REPLY_TOLD_TO`]) get a content-free notice, live on their sync
    /// sockets and listed until they open the thread (issue 18, item 8:
    /// staff had to poll `patients threads`). Best effort: the reply is
    /// stored already, and the thread's unread count says it either way.
    pub(crate) async fn tell_writers(&self, org: OrgId, patient: Uuid, now: i64) {
        let told = async {
            let writers = self
                .store
                .patient_writers(org, patient, REPLY_TOLD_TO)
                .await?;
            let rows: Vec<StaffNoticeRow> = writers
                .iter()
                .map(|u| StaffNoticeRow {
                    id: Uuid::new_v4(),
                    org_id: org,
                    user_id: *u,
                    kind: StaffNoticeKind::PatientReply.as_str().into(),
                    patient_id: patient,
                    created_at: now,
                    seen_at: None,
                })
                .collect();
            self.store.insert_staff_notices(&rows).await?;
            Ok::<_, StoreError>(writers)
        };
        match told.await {
            Ok(writers) => self.hub.notify(&writers),
            Err(e) => tracing::warn!(error = %e, "telling staff of a patient's reply failed"),
        }
    }

    /// The caller's unseen notices, oldest first, after `after` (Unix seconds).
    pub async fn notices(
        &self,
        org: OrgId,
        user: UserId,
        after: i64,
    ) -> ApiResult<StaffNoticeList> {
        let rows = self
            .store
            .unseen_staff_notices(org, user, after, MAX_NOTICES)
            .await?;
        Ok(StaffNoticeList {
            notices: rows
                .into_iter()
                .filter_map(|r| {
                    Some(StaffNotice {
                        id: r.id,
                        kind: StaffNoticeKind::parse(&r.kind)?,
                        patient_id: r.patient_id,
                        created_at: r.created_at,
                    })
                })
                .collect(),
        })
    }

    /// How patient texting is set up on this server (the SMS gateway, the
    /// public URL patients and the provider reach, the webhook token).
    pub fn setup(&self) -> &TextingSetup {
        &self.setup
    }

    async fn policy(&self, org: OrgId) -> ApiResult<PatientTextingPolicy> {
        Ok(self.orgs.get_org(org).await?.policy.patients)
    }

    pub(crate) async fn open_patient(&self, row: PatientRow) -> ApiResult<Opened> {
        let key = self.vault.record_key(&row.dek_id).await?;
        let t = "patients";
        Ok(Opened {
            name: open(&key, t, row.id, "name", &row.name_enc)?,
            dob: open(&key, t, row.id, "date_of_birth", &row.dob_enc)?,
            mrn: row
                .mrn_enc
                .as_ref()
                .map(|m| open(&key, t, row.id, "mrn", m))
                .transpose()?,
            phone: open(&key, t, row.id, "phone", &row.phone_enc)?,
            language: open(&key, t, row.id, "language", &row.language_enc)?,
            key,
            row,
        })
    }

    async fn load(&self, org: OrgId, id: Uuid) -> ApiResult<Opened> {
        match self.store.get_patient(org, id).await {
            Ok(row) => self.open_patient(row).await,
            Err(StoreError::NotFound) => Err(ApiError::not_found("patient")),
            Err(e) => Err(e.into()),
        }
    }

    async fn to_wire(&self, p: &Opened, secure: SecureMessageReaders) -> ApiResult<Patient> {
        let history = self.store.consents(p.row.org_id, p.row.id).await?;
        Ok(Patient {
            id: p.row.id,
            name: p.name.clone(),
            date_of_birth: p.dob.clone(),
            mrn: p.mrn.clone(),
            phone: p.phone.clone(),
            language: p.language.clone(),
            consent: consent_now(&history),
            sms_opted_out: self
                .store
                .is_opted_out(p.row.org_id, &p.row.phone_index)
                .await?,
            created_at: p.row.created_at,
            secure_messages: secure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_messages_in_any_case() {
        assert_eq!(keyword(" stop "), Some(Inbound::Stop));
        assert_eq!(keyword("Unsubscribe."), Some(Inbound::Stop));
        assert_eq!(keyword("STOPALL"), Some(Inbound::Stop));
        assert_eq!(keyword("quit"), Some(Inbound::Stop));
        assert_eq!(keyword("unstop"), Some(Inbound::Start));
        assert_eq!(keyword("help"), Some(Inbound::Help));
        assert_eq!(keyword("please stop sending me the link twice"), None);
    }

    /// Issue 19, case 07: every body of `realworld/07-optout-bodies.tsv`.
    #[test]
    fn keywords_as_patients_really_type_them() {
        let fixture = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/07-optout-bodies.tsv"
        ));
        let mut rows = 0;
        for line in fixture
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut cols = line.split('\t');
            let (body, expected) = (cols.next().unwrap(), cols.next().unwrap());
            let got = match keyword(body) {
                Some(Inbound::Stop) => "stop",
                Some(Inbound::Start) => "start",
                Some(Inbound::Help) => "help",
                _ => "message",
            };
            assert_eq!(got, expected, "{body:?}");
            rows += 1;
        }
        assert_eq!(rows, 17);
        // More of the same kinds.
        for body in [
            "STOP ALL",
            "Opt_out",
            "« stop »",
            "Stop!!! 🙏",
            "\u{a0}stop\u{a0}",
            "unsubscribe.",
        ] {
            assert_eq!(keyword(body), Some(Inbound::Stop), "{body:?}");
        }
        assert_eq!(keyword("Start 👍"), Some(Inbound::Start));
        assert_eq!(keyword("stop by the clinic?"), None);
    }

    /// Issue 19, case 07: sentences that ask to stop without being a keyword
    /// are flagged to staff; ordinary messages are not.
    #[test]
    fn look_alike_opt_outs_are_flagged() {
        for body in [
            "please stop texting me",
            "Stop texting me!!",
            "I don't want these, remove me",
            "No more texts please",
            "Do not text this number again",
            "wrong number",
            "Can you take me off this list?",
            "STOP sending these",
            "Por favor no me manden más mensajes",
            "Dejen de escribirme",
            "quiero darme de baja",
        ] {
            assert_eq!(keyword(body), None, "{body:?} is a sentence, not a keyword");
            assert!(looks_like_opt_out(body), "{body:?}");
        }
        for body in [
            "Can I bring my daughter?",
            "stop by the clinic tomorrow?",
            "Thanks, see you Monday",
            "The bus stop is closed",
            "Gracias, hasta el lunes",
        ] {
            assert!(!looks_like_opt_out(body), "{body:?}");
        }
    }
}
