//! Patients and patient texting: consent, templates, SMS, secure messages.
//!
//! Standard SMS is not encrypted, so PHI never goes into one. An SMS carries
//! either a template classified `no_phi` (an appointment reminder with a date
//! and a time) or a neutral notice with a short-lived secure link; whatever
//! else a practice writes to a patient is stored encrypted on the server and
//! shown only after the patient proves who they are on the link's page.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who can read a secure message to a patient, besides the patient: the
/// organisation's choice (`patients.secure_messages`), between continuity of
/// care (a covering colleague sees what the patient was told) and keeping
/// the text from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SecureMessageReaders {
    /// Each writer chooses per message: sealed on the writer's device unless
    /// they make it team-readable (the default).
    #[default]
    WriterChooses,
    /// Always team-readable: the server seals each message (`text`), so
    /// everyone in the practice with `patient_texting` reads it in the
    /// thread. Messages sealed on a device are refused.
    Team,
    /// Always sealed on the writer's device (`sealed`): only the writer and
    /// the patient read it, and the server never holds the text. Team-readable
    /// messages are refused.
    Writer,
}

/// Patient-texting policy of an organisation (part of its policy document).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PatientTextingPolicy {
    /// The practice's phone line, filled into `{practice_phone}` and the HELP reply.
    pub practice_phone: String,
    /// Seconds a secure link stays valid (300 ..= 604800; 24 hours by default).
    #[cfg_attr(feature = "openapi", schema(minimum = 300, maximum = 604800))]
    pub link_ttl_secs: i64,
    /// Successful identity checks one link allows (1 ..= 50).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
    pub link_max_uses: i64,
    /// Failed identity checks (date of birth or code) after which a link locks (1 ..= 20).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 20))]
    pub verify_max_failures: i64,
    /// No reminders or notices in these hours (patient-initiated replies such
    /// as verification codes and keyword answers still go out). None: no quiet hours.
    pub quiet_hours: Option<QuietHours>,
    /// Sender number for this organisation's SMS; unset: the server's `sms.from`.
    pub sms_from: Option<String>,
    /// ISO 3166-1 alpha-2 region (`US`, `GB`) for patient numbers written
    /// without a country code; unset: every number needs its `+` and code.
    pub default_region: Option<String>,
    /// Who reads a secure message besides the patient (see
    /// [`SecureMessageReaders`]); the writer's choice by default.
    pub secure_messages: SecureMessageReaders,
}

impl Default for PatientTextingPolicy {
    fn default() -> Self {
        PatientTextingPolicy {
            practice_phone: String::new(),
            link_ttl_secs: 24 * 3600,
            link_max_uses: 5,
            verify_max_failures: 5,
            quiet_hours: Some(QuietHours::default()),
            sms_from: None,
            default_region: None,
            secure_messages: SecureMessageReaders::default(),
        }
    }
}

/// Local times `start` (inclusive) to `end` (exclusive), `HH:MM`, in an IANA
/// time zone; `start` after `end` spans midnight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    pub time_zone: String,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
            time_zone: "UTC".into(),
        }
    }
}

// ---------------------------------------------------------------- patients

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatePatientRequest {
    /// Full name (1–200 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// `YYYY-MM-DD`, in the past; the patient confirms it before a secure message opens.
    #[cfg_attr(feature = "openapi", schema(format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub date_of_birth: String,
    /// Medical record number, unique in the organisation (at most 64 characters).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub mrn: Option<String>,
    /// Mobile number, E.164 (`+15551234567`; spaces, dashes, dots and brackets are ignored).
    #[cfg_attr(feature = "openapi", schema(pattern = "^\\+[0-9 ().-]{8,24}$"))]
    pub phone: String,
    /// Preferred language (lower-case primary tag such as `en`, `es`); `en` if unset.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z]{2,3}$"))]
    pub language: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Patient {
    pub id: Uuid,
    pub name: String,
    pub date_of_birth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrn: Option<String>,
    pub phone: String,
    pub language: String,
    /// Scopes the patient currently consents to.
    pub consent: Vec<ConsentScope>,
    /// The patient's number texted STOP: nothing is sent until they text START.
    pub sms_opted_out: bool,
    pub created_at: i64,
    /// How a secure message to this patient is to be written (organisation
    /// policy `patients.secure_messages`).
    #[serde(default)]
    pub secure_messages: SecureMessageReaders,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientList {
    pub patients: Vec<Patient>,
}

// ---------------------------------------------------------------- consent

/// What a patient agreed to be texted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    /// Plain-SMS reminders from `no_phi` templates.
    Reminders,
    /// Notices of secure messages (and the messages behind the link).
    SecureMessages,
}

impl ConsentScope {
    pub const ALL: [ConsentScope; 2] = [ConsentScope::Reminders, ConsentScope::SecureMessages];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentScope::Reminders => "reminders",
            ConsentScope::SecureMessages => "secure_messages",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentScope> {
        ConsentScope::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// How consent was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentMethod {
    Verbal,
    Written,
    Electronic,
    /// The patient texted a keyword (STOP / START).
    SmsKeyword,
}

impl ConsentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::Verbal => "verbal",
            ConsentMethod::Written => "written",
            ConsentMethod::Electronic => "electronic",
            ConsentMethod::SmsKeyword => "sms_keyword",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentMethod> {
        [
            ConsentMethod::Verbal,
            ConsentMethod::Written,
            ConsentMethod::Electronic,
            ConsentMethod::SmsKeyword,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Records a consent decision (given or withdrawn) for one scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordConsentRequest {
    pub scope: ConsentScope,
    /// True: consent given; false: withdrawn.
    pub granted: bool,
    pub method: ConsentMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    Granted,
    Revoked,
    /// STOP from the patient's number (all scopes).
    OptedOut,
    /// START from the patient's number (lifts the opt-out; consents stand as they were).
    OptedIn,
}

impl ConsentAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAction::Granted => "granted",
            ConsentAction::Revoked => "revoked",
            ConsentAction::OptedOut => "opted_out",
            ConsentAction::OptedIn => "opted_in",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentAction> {
        [
            ConsentAction::Granted,
            ConsentAction::Revoked,
            ConsentAction::OptedOut,
            ConsentAction::OptedIn,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One entry of a patient's consent history (kept forever, never edited).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentEvent {
    pub id: Uuid,
    /// None for opt-out and opt-in, which cover every scope.
    pub scope: Option<ConsentScope>,
    pub action: ConsentAction,
    pub method: ConsentMethod,
    /// `user` (who recorded it) or `patient` (a keyword from their number).
    pub recorded_by_kind: String,
    pub recorded_by: String,
    pub at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentHistory {
    pub patient_id: Uuid,
    pub consent: Vec<ConsentScope>,
    pub sms_opted_out: bool,
    /// Oldest first.
    pub events: Vec<ConsentEvent>,
}

// ---------------------------------------------------------------- templates

/// Whether a template's text may travel in plain SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TemplateClass {
    /// May go in a plain SMS: only typed placeholders (dates, times, phone
    /// numbers, the link), never free text.
    NoPhi,
    /// Sent as a secure message behind a link; the SMS is only the notice.
    Phi,
}

impl TemplateClass {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateClass::NoPhi => "no_phi",
            TemplateClass::Phi => "phi",
        }
    }

    pub fn parse(s: &str) -> Option<TemplateClass> {
        [TemplateClass::NoPhi, TemplateClass::Phi]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    /// `appointment_reminder`, `pre_visit_instructions`, `lab_result_available`,
    /// `new_secure_message`, or one the organisation added.
    pub key: String,
    pub language: String,
    pub body: String,
    pub class: TemplateClass,
    /// Placeholders the sender fills in (`{date}` …); the server fills
    /// `{link}`, `{expires_hours}`, `{practice_phone}` and `{code}` itself.
    pub placeholders: Vec<String>,
    /// Built-in text (false once the organisation has its own for this key and language).
    pub built_in: bool,
    /// What one SMS of it costs, placeholders filled with their usual longest
    /// values; absent for a `phi` template (it is read behind a link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsSize>,
}

/// How an SMS is encoded (3GPP TS 23.038).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SmsEncoding {
    /// GSM 7-bit default alphabet: 160 units in one SMS, 153 per part.
    Gsm7,
    /// Any character outside it makes the whole text UCS-2: 70 UTF-16 units
    /// in one SMS, 67 per part.
    Ucs2,
}

/// What a text costs as SMS: providers bill per part (segment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmsSize {
    pub encoding: SmsEncoding,
    /// GSM-7 units (extension characters such as € count 2) or UTF-16 units.
    pub units: i64,
    /// Parts the text is sent in.
    pub segments: i64,
    /// The characters that made it UCS-2 (control and space characters as `U+XXXX`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_gsm: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateList {
    pub templates: Vec<Template>,
}

/// The organisation's approved text for a template key and language.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutTemplateRequest {
    /// 1–600 characters; placeholders in braces.
    pub body: String,
    pub class: TemplateClass,
}

// ---------------------------------------------------------------- sending

/// Sends a template to a patient. A `no_phi` template goes as a plain SMS; a
/// `phi` one becomes a secure message and the SMS carries only the notice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendTemplateRequest {
    pub template: String,
    /// Values for the template's placeholders: `…date` as `YYYY-MM-DD`,
    /// `…time` as `HH:MM`, `…phone` as a phone number; other placeholders only
    /// in `phi` templates.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// A secure message to a patient. The patient gets an SMS notice with a
/// link. Exactly one of `text` (1–4000 characters, sealed by the server) and
/// `sealed` (sealed by the writer's client, so the server never holds it readable).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendSecureMessageRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<ClientSealed>,
}

/// A message sealed by the writer's client (`wardline_client::core::patient`):
/// AES-256-GCM under a fresh key that goes only into the link's `#fragment`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientSealed {
    /// `1 || nonce (12) || ciphertext || tag (16)`, at most 16 KiB.
    pub ciphertext: crate::b64::B64,
    /// `k=` and the 256-bit key in unpadded base64url. Put after the link in
    /// the SMS and erased from the server once the SMS has gone.
    pub key_fragment: String,
}

impl std::fmt::Debug for ClientSealed {
    // Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSealed")
            .field("ciphertext", &self.ciphertext)
            .field("key_fragment", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SmsKind {
    /// A `no_phi` template in plain text.
    Reminder,
    /// "You have a new secure message" with a link.
    SecureNotice,
    /// A one-time code for the link's identity check.
    VerificationCode,
    /// The answer to STOP / START / HELP.
    KeywordReply,
    /// To a clinician: an unacknowledged urgent message is waiting (a notice
    /// and a sign-in link, never content).
    StaffAlert,
}

impl SmsKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsKind::Reminder => "reminder",
            SmsKind::SecureNotice => "secure_notice",
            SmsKind::VerificationCode => "verification_code",
            SmsKind::KeywordReply => "keyword_reply",
            SmsKind::StaffAlert => "staff_alert",
        }
    }

    pub fn parse(s: &str) -> Option<SmsKind> {
        [
            SmsKind::Reminder,
            SmsKind::SecureNotice,
            SmsKind::VerificationCode,
            SmsKind::KeywordReply,
            SmsKind::StaffAlert,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SmsStatus {
    /// Waiting for its time (quiet hours, back-off) or a sender.
    Queued,
    /// Handed to a sender, not yet confirmed by the gateway.
    Sending,
    /// The gateway accepted it.
    Sent,
    /// The carrier confirmed delivery (status callback).
    Delivered,
    /// The carrier could not deliver it (status callback).
    Undelivered,
    /// The gateway refused it, or every retry failed.
    Failed,
    /// Not sent: the number opted out while it waited.
    Cancelled,
}

impl SmsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsStatus::Queued => "queued",
            SmsStatus::Sending => "sending",
            SmsStatus::Sent => "sent",
            SmsStatus::Delivered => "delivered",
            SmsStatus::Undelivered => "undelivered",
            SmsStatus::Failed => "failed",
            SmsStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<SmsStatus> {
        [
            SmsStatus::Queued,
            SmsStatus::Sending,
            SmsStatus::Sent,
            SmsStatus::Delivered,
            SmsStatus::Undelivered,
            SmsStatus::Failed,
            SmsStatus::Cancelled,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One outbound SMS as the practice may see it (never its text: a notice's
/// text holds the link).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmsRecord {
    pub id: Uuid,
    pub kind: SmsKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub status: SmsStatus,
    pub attempts: i64,
    pub created_at: i64,
    /// Not before this time (quiet hours, retry back-off).
    pub send_after: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the text costs; given when it is sent (the server keeps the text
    /// encrypted and does not open it to list the outbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<SmsSize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmsList {
    pub sms: Vec<SmsRecord>,
}

/// What a send did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendOutcome {
    pub sms: SmsRecord,
    /// The secure message the SMS announces, if it is a notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
}

// ---------------------------------------------------------------- threads

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PatientMessageDirection {
    /// From the practice to the patient.
    ToPatient,
    /// From the patient (their secure page or a text).
    FromPatient,
}

impl PatientMessageDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            PatientMessageDirection::ToPatient => "to_patient",
            PatientMessageDirection::FromPatient => "from_patient",
        }
    }

    pub fn parse(s: &str) -> Option<PatientMessageDirection> {
        [
            PatientMessageDirection::ToPatient,
            PatientMessageDirection::FromPatient,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientMessage {
    pub id: Uuid,
    pub direction: PatientMessageDirection,
    /// The staff member who wrote it (to the patient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Uuid>,
    /// Empty when the message was sealed by its writer's client (see `sealed`).
    pub text: String,
    /// The client-sealed ciphertext, which only a holder of the link's key can open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<crate::b64::B64>,
    /// `portal`, `sms` or `staff`.
    pub via: String,
    pub created_at: i64,
    /// When the other side first read it (the patient on their page, or staff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<i64>,
    /// A patient's message that reads like a request to stop texting
    /// ("please stop texting me") without being a carrier keyword: staff
    /// should confirm with the patient and record the opt-out (withdraw
    /// consent), as the FCC's revocation rule asks of any reasonable means.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub looks_like_opt_out: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientThread {
    pub patient_id: Uuid,
    /// Oldest first.
    pub messages: Vec<PatientMessage>,
}

/// A notice to a member of staff that is not a conversation's message:
/// content-free (a kind and the patient it is about). Live on the sync
/// WebSocket (`notice` frames) and listed by `GET /api/v1/notices` until the
/// user opens that patient's thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffNotice {
    pub id: Uuid,
    pub kind: StaffNoticeKind,
    pub patient_id: Uuid,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StaffNoticeKind {
    /// The patient replied (portal or SMS); told to the staff who wrote to
    /// them (the ten most recent writers).
    PatientReply,
}

impl StaffNoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffNoticeKind::PatientReply => "patient_reply",
        }
    }

    pub fn parse(s: &str) -> Option<StaffNoticeKind> {
        (s == "patient_reply").then_some(StaffNoticeKind::PatientReply)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffNoticeList {
    /// Unseen, oldest first (at most 100).
    pub notices: Vec<StaffNotice>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientThreadSummary {
    pub patient_id: Uuid,
    pub patient_name: String,
    pub last_message_at: i64,
    /// Messages from the patient no one in the practice has read yet.
    pub unread: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientThreadList {
    /// Most recent activity first.
    pub threads: Vec<PatientThreadSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinksRevoked {
    pub revoked: i64,
}
