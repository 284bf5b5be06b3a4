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
pub mod pages;
pub mod portal;
pub mod routes;
pub mod sms_size;
pub mod templates;

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
    hub: crate::messaging::hub::DeliveryHub,
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

/// Checks an organisation's patient-texting policy.
pub fn validate_policy(p: &PatientTextingPolicy) -> ApiResult<()> {
    if !(300..=604_800).contains(&p.link_ttl_secs) {
        return Err(ApiError::validation(
            "patients.link_ttl_secs must be between 300 and 604800",
        ));
    }
    if !(1..=50).contains(&p.link_max_uses) {
        return Err(ApiError::validation(
            "patients.link_max_uses must be between 1 and 50",
        ));
    }
    if !(1..=20).contains(&p.verify_max_failures) {
        return Err(ApiError::validation(
            "patients.verify_max_failures must be between 1 and 20",
        ));
    }
    if p.practice_phone.chars().count() > 40 {
        return Err(ApiError::validation(
            "patients.practice_phone is at most 40 characters",
        ));
    }
    if let Some(from) = &p.sms_from {
        crate::phone::e164(from, None)?;
    }
    if let Some(region) = &p.default_region {
        crate::phone::validate_region(region)?;
    }
    if let Some(q) = &p.quiet_hours {
        quiet_hours_end(q, 0)?;
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
    pub fn new(
        store: Arc<dyn PatientStore>,
        orgs: Arc<dyn Store>,
        vault: Vault,
        clock: Arc<dyn Clock>,
        audit: AuditLog,
        setup: TextingSetup,
        hub: crate::messaging::hub::DeliveryHub,
    ) -> PatientService {
        PatientService {
            store,
            orgs,
            vault,
            clock,
            audit,
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

    // ------------------------------------------------------------ records

    pub async fn create(
        &self,
        by: &Principal,
        scope: &AuditScope,
        req: CreatePatientRequest,
    ) -> ApiResult<Patient> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ApiError::validation("name must be 1-200 characters"));
        }
        validate_dob(&req.date_of_birth)?;
        let region = self.policy(by.org_id).await?.default_region;
        let phone = crate::phone::e164(&req.phone, region.as_deref())?;
        let language = req.language.unwrap_or_else(|| "en".into());
        validate_language(&language)?;
        let mrn = req
            .mrn
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
        if let Some(m) = &mrn
            && (m.chars().count() > 64 || m.chars().any(char::is_control))
        {
            return Err(ApiError::validation("mrn is at most 64 characters"));
        }
        let id = Uuid::new_v4();
        let (dek_id, key) = self.vault.new_record_key(Some(by.org_id)).await?;
        let t = "patients";
        let row = PatientRow {
            id,
            org_id: by.org_id,
            dek_id,
            name_enc: seal(&key, t, id, "name", name),
            dob_enc: seal(&key, t, id, "date_of_birth", &req.date_of_birth),
            mrn_enc: mrn.as_ref().map(|m| seal(&key, t, id, "mrn", m)),
            phone_enc: seal(&key, t, id, "phone", &phone),
            language_enc: seal(&key, t, id, "language", &language),
            phone_index: self.vault.index(by.org_id, "patient-phone", &phone),
            mrn_index: mrn
                .as_ref()
                .map(|m| self.vault.index(by.org_id, "patient-mrn", m)),
            created_by: by.user_id.to_string(),
            created_at: self.clock.now(),
        };
        match self.store.insert_patient(&row).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::conflict("a patient with this MRN already exists"));
            }
            Err(e) => return Err(e.into()),
        }
        scope.target("patient", id);
        scope.patient(&id.to_string());
        let opened = self.open_patient(row).await?;
        let secure = self.policy(by.org_id).await?.secure_messages;
        self.to_wire(&opened, secure).await
    }

    pub async fn list(&self, by: &Principal) -> ApiResult<Vec<Patient>> {
        let mut out = Vec::new();
        let secure = self.policy(by.org_id).await?.secure_messages;
        for row in self.store.list_patients(by.org_id).await? {
            let p = self.open_patient(row).await?;
            out.push(self.to_wire(&p, secure).await?);
        }
        Ok(out)
    }

    pub async fn view(&self, by: &Principal, scope: &AuditScope, id: Uuid) -> ApiResult<Patient> {
        let p = self.load(by.org_id, id).await?;
        scope.patient(&id.to_string());
        let secure = self.policy(by.org_id).await?.secure_messages;
        self.to_wire(&p, secure).await
    }

    // ------------------------------------------------------------ consent

    pub async fn record_consent(
        &self,
        by: &Principal,
        scope: &AuditScope,
        id: Uuid,
        req: RecordConsentRequest,
    ) -> ApiResult<ConsentHistory> {
        if req.method == ConsentMethod::SmsKeyword {
            return Err(ApiError::validation(
                "sms_keyword consent is recorded only from the patient's own texts",
            ));
        }
        let p = self.load(by.org_id, id).await?;
        scope.patient(&id.to_string());
        self.store
            .insert_consent(&ConsentRow {
                id: Uuid::new_v4(),
                org_id: by.org_id,
                patient_id: id,
                scope: Some(req.scope),
                action: if req.granted {
                    ConsentAction::Granted
                } else {
                    ConsentAction::Revoked
                },
                method: req.method,
                actor_kind: "user".into(),
                actor_id: by.user_id.to_string(),
                at: self.clock.now(),
            })
            .await?;
        scope.reason(if req.granted { "granted" } else { "revoked" });
        self.history(&p).await
    }

    pub async fn consent_history(
        &self,
        by: &Principal,
        scope: &AuditScope,
        id: Uuid,
    ) -> ApiResult<ConsentHistory> {
        let p = self.load(by.org_id, id).await?;
        scope.patient(&id.to_string());
        self.history(&p).await
    }

    async fn history(&self, p: &Opened) -> ApiResult<ConsentHistory> {
        let rows = self.store.consents(p.row.org_id, p.row.id).await?;
        Ok(ConsentHistory {
            patient_id: p.row.id,
            consent: consent_now(&rows),
            sms_opted_out: self
                .store
                .is_opted_out(p.row.org_id, &p.row.phone_index)
                .await?,
            events: rows
                .into_iter()
                .map(|c| ConsentEvent {
                    id: c.id,
                    scope: c.scope,
                    action: c.action,
                    method: c.method,
                    recorded_by_kind: c.actor_kind,
                    recorded_by: c.actor_id,
                    at: c.at,
                })
                .collect(),
        })
    }

    /// The checks every send makes, in the order the carriers' rules and
    /// consent ask for: STOP first, then the patient's consent.
    async fn ensure_may_text(&self, p: &Opened, scope: ConsentScope) -> ApiResult<()> {
        if self
            .store
            .is_opted_out(p.row.org_id, &p.row.phone_index)
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::PatientOptedOut,
                "this patient's number replied STOP: no texts are sent to it until the patient texts START",
            ));
        }
        if !consent_now(&self.store.consents(p.row.org_id, p.row.id).await?).contains(&scope) {
            return Err(ApiError::new(
                ErrorCode::ConsentRequired,
                format!(
                    "no recorded consent to {}: record the patient's consent first",
                    match scope {
                        ConsentScope::Reminders => "text reminders",
                        ConsentScope::SecureMessages => "secure messages by text",
                    }
                ),
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------ templates

    /// Every template with what its SMS costs (the listing administrators see).
    pub async fn templates(&self, org: OrgId) -> ApiResult<Vec<Template>> {
        let practice_phone = self.policy(org).await?.practice_phone;
        let mut all = self.texts(org).await?;
        for t in &mut all {
            t.sms = templates::sms_size(&t.body, t.class, &practice_phone, &self.setup.public_url);
        }
        Ok(all)
    }

    /// Every template, built-in ones overridden by the organisation's own;
    /// without their cost (sends need the text, not the estimate).
    async fn texts(&self, org: OrgId) -> ApiResult<Vec<Template>> {
        let own = self.store.templates(org).await?;
        let mut all: BTreeMap<(String, String), Template> = BTreeMap::new();
        for (key, lang, class, body) in templates::BUILT_IN {
            all.insert(
                (key.to_string(), lang.to_string()),
                Template {
                    key: key.to_string(),
                    language: lang.to_string(),
                    body: body.to_string(),
                    class: *class,
                    placeholders: templates::placeholders(body)?,
                    built_in: true,
                    sms: None,
                },
            );
        }
        for t in own {
            all.insert(
                (t.key.clone(), t.language.clone()),
                Template {
                    placeholders: templates::placeholders(&t.body)?,
                    sms: None,
                    key: t.key,
                    language: t.language,
                    body: t.body,
                    class: t.class,
                    built_in: false,
                },
            );
        }
        Ok(all.into_values().collect())
    }

    pub async fn put_template(
        &self,
        by: &Principal,
        key: &str,
        language: &str,
        req: PutTemplateRequest,
        audit: &AuditScope,
    ) -> ApiResult<Vec<Template>> {
        templates::validate(key, language, &req.body, req.class)?;
        // The text and class before, for the audit event (a template is a
        // form with placeholders, never a patient's data).
        let before = self
            .texts(by.org_id)
            .await?
            .into_iter()
            .find(|t| t.key == key && t.language == language)
            .map(|t| serde_json::json!({"body": t.body, "class": t.class}));
        let after = serde_json::json!({"body": req.body, "class": req.class});
        self.store
            .put_template(&TemplateRow {
                org_id: by.org_id,
                key: key.to_owned(),
                language: language.to_owned(),
                body: req.body,
                class: req.class,
                updated_by: by.user_id.to_string(),
                updated_at: self.clock.now(),
            })
            .await?;
        audit.changed(&before.unwrap_or_else(|| serde_json::json!({})), &after);
        self.templates(by.org_id).await
    }

    /// The template in the patient's language, else English.
    async fn template(&self, org: OrgId, key: &str, language: &str) -> ApiResult<Template> {
        let all = self.texts(org).await?;
        all.iter()
            .find(|t| t.key == key && t.language == language)
            .or_else(|| all.iter().find(|t| t.key == key && t.language == "en"))
            .cloned()
            .ok_or_else(|| ApiError::not_found("template"))
    }

    // ------------------------------------------------------------ sending

    /// Puts an SMS in the outbox. `quiet`: it waits for the end of quiet hours.
    #[allow(clippy::too_many_arguments)]
    async fn enqueue(
        &self,
        org: OrgId,
        patient: Option<&Opened>,
        to: &str,
        phone_index: &str,
        body: &str,
        fragment: Option<&str>,
        kind: SmsKind,
        template: Option<&str>,
        policy: &PatientTextingPolicy,
    ) -> ApiResult<SmsRow> {
        let now = self.clock.now();
        let send_after = match (&policy.quiet_hours, kind) {
            (Some(q), SmsKind::Reminder | SmsKind::SecureNotice) => quiet_hours_end(q, now)?,
            _ => now,
        };
        let id = Uuid::new_v4();
        let (dek_id, key) = match patient {
            Some(p) => (p.row.dek_id.clone(), p.key.clone()),
            None => self.vault.new_record_key(Some(org)).await?,
        };
        let row = SmsRow {
            id,
            org_id: org,
            patient_id: patient.map(|p| p.row.id),
            dek_id,
            from_number: policy
                .sms_from
                .clone()
                .unwrap_or_else(|| self.setup.default_from.clone()),
            to_enc: seal(&key, "sms_outbox", id, "to", to),
            body_enc: seal(&key, "sms_outbox", id, "body", body),
            fragment_enc: fragment.map(|f| seal(&key, "sms_outbox", id, "fragment", f)),
            phone_index: phone_index.to_owned(),
            kind,
            template: template.map(str::to_owned),
            status: SmsStatus::Queued,
            attempts: 0,
            send_after,
            lease_until: None,
            provider_id: None,
            error: None,
            created_at: now,
            sent_at: None,
            updated_at: now,
        };
        self.store.enqueue_sms(&row).await?;
        if send_after <= now {
            self.outbox.notify_one();
        }
        Ok(row)
    }

    /// Texts a clinician about an unacknowledged urgent message (escalation):
    /// the caller writes a notice and a sign-in link, never content. Goes
    /// through the same outbox, opt-out check and gateway as patient texts.
    pub async fn staff_alert(&self, org: OrgId, phone: &str, body: &str) -> ApiResult<()> {
        let phone = crate::phone::e164(phone, None)?;
        let index = self.vault.index(org, "patient-phone", &phone);
        let policy = self.policy(org).await?;
        self.enqueue(
            org,
            None,
            &phone,
            &index,
            body,
            None,
            SmsKind::StaffAlert,
            None,
            &policy,
        )
        .await?;
        Ok(())
    }

    fn server_values(&self, policy: &PatientTextingPolicy) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        v.insert("practice_phone".into(), policy.practice_phone.clone());
        v.insert(
            "expires_hours".into(),
            ((policy.link_ttl_secs + 3599) / 3600).to_string(),
        );
        v
    }

    /// Sends a template: a `no_phi` one as a plain SMS, a `phi` one as a
    /// secure message announced by a notice.
    pub async fn send_template(
        &self,
        by: &Principal,
        scope: &AuditScope,
        id: Uuid,
        req: SendTemplateRequest,
    ) -> ApiResult<SendOutcome> {
        if templates::SYSTEM.contains(&req.template.as_str()) {
            return Err(ApiError::validation(format!(
                "{} is sent by the server itself",
                req.template
            )));
        }
        let p = self.load(by.org_id, id).await?;
        scope.patient(&id.to_string());
        let t = self.template(by.org_id, &req.template, &p.language).await?;
        templates::check_params(&t.body, &req.params)?;
        let policy = self.policy(by.org_id).await?;
        let mut values = self.server_values(&policy);
        values.extend(req.params);
        let text = templates::render(&t.body, &values);
        match t.class {
            TemplateClass::NoPhi => {
                self.ensure_may_text(&p, ConsentScope::Reminders).await?;
                let sms = self
                    .enqueue(
                        by.org_id,
                        Some(&p),
                        &p.phone,
                        &p.row.phone_index,
                        &text,
                        None,
                        SmsKind::Reminder,
                        Some(&t.key),
                        &policy,
                    )
                    .await?;
                scope.target("sms", sms.id);
                Ok(SendOutcome {
                    sms: SmsRecord {
                        size: Some(sms_size::size(&text)),
                        ..sms_to_wire(&sms)
                    },
                    message_id: None,
                })
            }
            TemplateClass::Phi => {
                scope.reason("secure_message");
                self.send_secure_body(by, scope, &p, SecureBody::Text(text), &policy)
                    .await
            }
        }
    }

    pub async fn send_secure(
        &self,
        by: &Principal,
        scope: &AuditScope,
        id: Uuid,
        req: SendSecureMessageRequest,
    ) -> ApiResult<SendOutcome> {
        let body = match (req.text, req.sealed) {
            (Some(text), None) => {
                let n = text.trim().chars().count();
                if n == 0 || n > 4000 {
                    return Err(ApiError::validation("text must be 1-4000 characters"));
                }
                SecureBody::Text(text.trim().to_owned())
            }
            (None, Some(sealed)) => {
                // 4000 characters of UTF-8 at most, plus the format's overhead.
                if sealed.ciphertext.0.len() < 30 || sealed.ciphertext.0.len() > 16 * 1024 {
                    return Err(ApiError::validation(
                        "sealed.ciphertext must be 30 bytes to 16 KiB",
                    ));
                }
                let key = sealed.key_fragment.strip_prefix("k=").unwrap_or("");
                if key.len() != 43
                    || !key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(ApiError::validation(
                        "sealed.key_fragment must be k= and a 256-bit key in unpadded base64url",
                    ));
                }
                SecureBody::Sealed(sealed.ciphertext.0, sealed.key_fragment)
            }
            _ => {
                return Err(ApiError::validation("give exactly one of text and sealed"));
            }
        };
        let p = self.load(by.org_id, id).await?;
        scope.patient(&id.to_string());
        if matches!(body, SecureBody::Sealed(..)) {
            scope.reason("client_sealed");
        }
        let policy = self.policy(by.org_id).await?;
        // The organisation decides who reads what a patient is told.
        match (policy.secure_messages, &body) {
            (SecureMessageReaders::Team, SecureBody::Sealed(..)) => {
                return Err(ApiError::validation(
                    "the organisation's policy makes secure messages team-readable: send text, not sealed (patients.secure_messages = team)",
                ));
            }
            (SecureMessageReaders::Writer, SecureBody::Text(..)) => {
                return Err(ApiError::validation(
                    "the organisation's policy has secure messages sealed on the writer's device: send sealed, not text (patients.secure_messages = writer)",
                ));
            }
            _ => {}
        }
        self.send_secure_body(by, scope, &p, body, &policy).await
    }

    async fn send_secure_body(
        &self,
        by: &Principal,
        scope: &AuditScope,
        p: &Opened,
        body: SecureBody,
        policy: &PatientTextingPolicy,
    ) -> ApiResult<SendOutcome> {
        self.ensure_may_text(p, ConsentScope::SecureMessages)
            .await?;
        let now = self.clock.now();
        let message_id = Uuid::new_v4();
        let (body_enc, client_sealed, fragment) = match &body {
            SecureBody::Text(text) => (
                seal(&p.key, "patient_messages", message_id, "body", text),
                false,
                None,
            ),
            SecureBody::Sealed(ciphertext, fragment) => (
                p.key.seal(ciphertext, &message_context(message_id)),
                true,
                Some(fragment.as_str()),
            ),
        };
        self.store
            .insert_patient_message(&PatientMessageRow {
                id: message_id,
                org_id: p.row.org_id,
                patient_id: p.row.id,
                direction: PatientMessageDirection::ToPatient,
                author_user: Some(by.user_id),
                via: "staff".into(),
                body_enc,
                client_sealed,
                created_at: now,
                read_at: None,
            })
            .await?;
        let link = self.new_link(p, by.user_id.to_string(), policy).await?;
        let notice = self
            .template(p.row.org_id, templates::NEW_SECURE_MESSAGE, &p.language)
            .await?;
        let mut values = self.server_values(policy);
        values.insert("link".into(), link);
        let text = templates::render(&notice.body, &values);
        let sent = match fragment {
            Some(f) => delivery::with_fragment(&text, &self.setup.public_url, f),
            None => text.clone(),
        };
        let sms = self
            .enqueue(
                p.row.org_id,
                Some(p),
                &p.phone,
                &p.row.phone_index,
                &text,
                fragment,
                SmsKind::SecureNotice,
                Some(templates::NEW_SECURE_MESSAGE),
                policy,
            )
            .await?;
        scope.target("patient_message", message_id);
        Ok(SendOutcome {
            sms: SmsRecord {
                size: Some(sms_size::size(&sent)),
                ..sms_to_wire(&sms)
            },
            message_id: Some(message_id),
        })
    }

    // ------------------------------------------------------------ threads

    fn message_to_wire(&self, p: &Opened, m: PatientMessageRow) -> ApiResult<PatientMessage> {
        let (text, sealed) = if m.client_sealed {
            let bytes = p.key.open(&m.body_enc, &message_context(m.id))?;
            (String::new(), Some(wardline_proto::messaging::B64(bytes)))
        } else {
            (
                open(&p.key, "patient_messages", m.id, "body", &m.body_enc)?,
                None,
            )
        };
        Ok(PatientMessage {
            looks_like_opt_out: m.direction == PatientMessageDirection::FromPatient
                && looks_like_opt_out(&text),
            text,
            sealed,
            id: m.id,
            direction: m.direction,
            author: m.author_user,
            via: m.via,
            created_at: m.created_at,
            read_at: m.read_at,
        })
    }

    pub(crate) async fn messages(&self, p: &Opened) -> ApiResult<Vec<PatientMessage>> {
        self.store
            .patient_messages(p.row.org_id, p.row.id)
            .await?
            .into_iter()
            .map(|m| self.message_to_wire(p, m))
            .collect()
    }

    /// The thread as staff see it; marks the patient's messages read.
    pub async fn thread(
        &self,
        by: &Principal,
        scope: &AuditScope,
        id: Uuid,
    ) -> ApiResult<PatientThread> {
        let p = self.load(by.org_id, id).await?;
        scope.patient(&id.to_string());
        let messages = self.messages(&p).await?;
        let now = self.clock.now();
        self.store
            .mark_patient_messages_read(by.org_id, id, PatientMessageDirection::FromPatient, now)
            .await?;
        self.store
            .staff_notices_seen(by.org_id, by.user_id, id, now)
            .await?;
        Ok(PatientThread {
            patient_id: id,
            messages,
        })
    }

    pub async fn threads(&self, by: &Principal) -> ApiResult<Vec<PatientThreadSummary>> {
        let mut out = Vec::new();
        for a in self.store.thread_activity(by.org_id).await? {
            let p = self.load(by.org_id, a.patient_id).await?;
            out.push(PatientThreadSummary {
                patient_id: a.patient_id,
                patient_name: p.name,
                last_message_at: a.last_message_at,
                unread: a.unread,
            });
        }
        Ok(out)
    }

    pub async fn sms_log(
        &self,
        by: &Principal,
        scope: &AuditScope,
        id: Uuid,
    ) -> ApiResult<Vec<SmsRecord>> {
        self.load(by.org_id, id).await?;
        scope.patient(&id.to_string());
        Ok(self
            .store
            .sms_for_patient(by.org_id, id, 200)
            .await?
            .iter()
            .map(sms_to_wire)
            .collect())
    }

    pub async fn revoke_links(
        &self,
        by: &Principal,
        scope: &AuditScope,
        id: Uuid,
    ) -> ApiResult<i64> {
        self.load(by.org_id, id).await?;
        scope.patient(&id.to_string());
        Ok(self
            .store
            .revoke_links(by.org_id, id, self.clock.now())
            .await?)
    }

    // ------------------------------------------------------------ inbound

    /// An SMS from `from` to the organisation's number (signature already
    /// checked). Keywords are honoured before anything else.
    pub async fn inbound(
        &self,
        org: OrgId,
        scope: &AuditScope,
        provider_id: &str,
        from: &str,
        body: &str,
    ) -> ApiResult<Inbound> {
        if provider_id.is_empty() || provider_id.len() > 64 {
            return Err(ApiError::bad_request("MessageSid must be 1-64 characters"));
        }
        // Seen and acted on as one: an id is "handled" only once what it
        // asked for is done (a STOP lost half-way is handled on the retry).
        if !self
            .store
            .claim_inbound(org, provider_id, self.clock.now())
            .await?
        {
            return Ok(Inbound::Duplicate);
        }
        let handled = async |what: Inbound| -> ApiResult<Inbound> {
            self.store
                .inbound_handled(org, provider_id, self.clock.now())
                .await?;
            Ok(what)
        };
        let Ok(from) = crate::phone::e164(from, None) else {
            return handled(Inbound::Ignored).await;
        };
        let policy = self.policy(org).await?;
        let phone_index = self.vault.index(org, "patient-phone", &from);
        let mut patients = Vec::new();
        for row in self.store.patients_by_phone(org, &phone_index).await? {
            patients.push(self.open_patient(row).await?);
        }
        if let Some(first) = patients.first() {
            // The patient texted: they are the actor.
            scope.actor_patient(org, first.row.id);
        }
        let language = patients
            .first()
            .map(|p| p.language.clone())
            .unwrap_or_else(|| "en".into());
        let now = self.clock.now();
        let kind = keyword(body);
        let (patients_ref, from_ref, index_ref, policy_ref, language_ref) =
            (&patients, &from, &phone_index, &policy, &language);
        let reply = |key: &'static str| async move {
            let t = self.template(org, key, language_ref).await?;
            let text = templates::render(&t.body, &self.server_values(policy_ref));
            self.enqueue(
                org,
                patients_ref.first(),
                from_ref,
                index_ref,
                &text,
                None,
                SmsKind::KeywordReply,
                Some(key),
                policy_ref,
            )
            .await
        };
        match kind {
            Some(Inbound::Stop) => {
                if self.store.opt_out(org, &phone_index, now).await? {
                    for p in &patients {
                        self.keyword_consent(p, ConsentAction::OptedOut, now)
                            .await?;
                    }
                    // One confirmation, and nothing after it.
                    reply(templates::KEYWORD_STOP).await?;
                }
                handled(Inbound::Stop).await
            }
            Some(Inbound::Start) => {
                if self.store.opt_in(org, &phone_index).await? {
                    for p in &patients {
                        self.keyword_consent(p, ConsentAction::OptedIn, now).await?;
                    }
                    reply(templates::KEYWORD_START).await?;
                }
                handled(Inbound::Start).await
            }
            Some(Inbound::Help) => {
                reply(templates::KEYWORD_HELP).await?;
                handled(Inbound::Help).await
            }
            _ => {
                if patients.is_empty() || self.store.is_opted_out(org, &phone_index).await? {
                    return handled(Inbound::Ignored).await;
                }
                let text: String = body.chars().take(1600).collect();
                let rows: Vec<PatientMessageRow> = patients
                    .iter()
                    .map(|p| {
                        let id = Uuid::new_v4();
                        PatientMessageRow {
                            id,
                            org_id: org,
                            patient_id: p.row.id,
                            direction: PatientMessageDirection::FromPatient,
                            author_user: None,
                            via: "sms".into(),
                            body_enc: seal(&p.key, "patient_messages", id, "body", &text),
                            client_sealed: false,
                            created_at: now,
                            read_at: None,
                        }
                    })
                    .collect();
                self.store
                    .insert_inbound_messages(org, provider_id, &rows, now)
                    .await?;
                for p in &patients {
                    self.tell_writers(org, p.row.id, now).await;
                }
                Ok(Inbound::Message)
            }
        }
    }

    async fn keyword_consent(&self, p: &Opened, action: ConsentAction, at: i64) -> ApiResult<()> {
        Ok(self
            .store
            .insert_consent(&ConsentRow {
                id: Uuid::new_v4(),
                org_id: p.row.org_id,
                patient_id: p.row.id,
                scope: None,
                action,
                method: ConsentMethod::SmsKeyword,
                actor_kind: "patient".into(),
                actor_id: p.row.id.to_string(),
                at,
            })
            .await?)
    }

    /// A delivery status from the provider.
    pub async fn status_callback(
        &self,
        org: OrgId,
        scope: &AuditScope,
        provider_id: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> ApiResult<()> {
        // Every status the provider documents for a message's lifecycle.
        // Callbacks travel and are retried independently, so they arrive
        // late, twice and out of order: the store moves a status only
        // forward, and a terminal one never changes (real-world case 09 of
        // issue 19).
        let status = match status {
            "accepted" | "scheduled" | "queued" | "sending" | "sent" => SmsStatus::Sent,
            "delivered" | "read" | "partially_delivered" => SmsStatus::Delivered,
            "undelivered" => SmsStatus::Undelivered,
            "failed" => SmsStatus::Failed,
            "canceled" => SmsStatus::Cancelled,
            // Statuses of messages received, not sent: nothing to record.
            "receiving" | "received" => return Ok(()),
            _ => return Err(ApiError::validation("unknown MessageStatus")),
        };
        // An error code belongs to the status that carried it.
        let error = error_code
            .filter(|_| matches!(status, SmsStatus::Undelivered | SmsStatus::Failed))
            .map(|c| format!("carrier error {}", c.chars().take(16).collect::<String>()));
        match self
            .store
            .sms_status_by_provider(org, provider_id, status, error.as_deref(), self.clock.now())
            .await
        {
            Ok(row) => {
                scope.target("sms", row.id);
                if let Some(p) = row.patient_id {
                    scope.patient(&p.to_string());
                }
                scope.reason(status.as_str());
                Ok(())
            }
            Err(StoreError::NotFound) => Err(ApiError::not_found("message")),
            Err(e) => Err(e.into()),
        }
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
        let fixture = include_str!("../../tests/fixtures/realworld/07-optout-bodies.tsv");
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
