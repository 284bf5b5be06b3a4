//! Storage of patients, texting consent, templates, patient threads, secure
//! links and the SMS outbox.
//!
//! Every PHI column receives vault ciphertext; lookups go through blind
//! indexes (`phone_index`, `mrn_index`); link tokens, codes and portal
//! sessions are SHA-256 hashes. The outbox is a durable queue: a row is
//! claimed with a lease, so a crashed sender's rows go out from another node
//! once the lease lapses, and two nodes never claim the same row at once.

use async_trait::async_trait;
use uuid::Uuid;
use wardline_proto::patients::{
    ConsentAction, ConsentMethod, ConsentScope, PatientMessageDirection, SmsKind, SmsStatus,
    TemplateClass,
};
use wardline_proto::{OrgId, UserId};

use super::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub dek_id: String,
    pub name_enc: Vec<u8>,
    pub dob_enc: Vec<u8>,
    pub mrn_enc: Option<Vec<u8>>,
    pub phone_enc: Vec<u8>,
    pub language_enc: Vec<u8>,
    pub phone_index: String,
    pub mrn_index: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub patient_id: Uuid,
    pub scope: Option<ConsentScope>,
    pub action: ConsentAction,
    pub method: ConsentMethod,
    pub actor_kind: String,
    pub actor_id: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    pub org_id: OrgId,
    pub key: String,
    pub language: String,
    pub body: String,
    pub class: TemplateClass,
    pub updated_by: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientMessageRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub patient_id: Uuid,
    pub direction: PatientMessageDirection,
    pub author_user: Option<Uuid>,
    pub via: String,
    pub body_enc: Vec<u8>,
    /// `body_enc` holds the writer's client ciphertext, not server-sealed text.
    pub client_sealed: bool,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

/// A notice to one member of staff (content-free: a kind and a patient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffNoticeRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub user_id: UserId,
    /// `patient_reply`.
    pub kind: String,
    pub patient_id: Uuid,
    pub created_at: i64,
    pub seen_at: Option<i64>,
}

/// A patient thread's activity: last message time and unread patient messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadActivity {
    pub patient_id: Uuid,
    pub last_message_at: i64,
    pub unread: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub patient_id: Uuid,
    pub token_hash: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: i64,
    pub uses: i64,
    pub failures: i64,
    pub locked_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub challenge_hash: Option<String>,
    pub code_hash: Option<String>,
    pub code_expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRow {
    pub id: Uuid,
    pub org_id: OrgId,
    pub patient_id: Option<Uuid>,
    pub dek_id: String,
    pub from_number: String,
    pub to_enc: Vec<u8>,
    pub body_enc: Vec<u8>,
    /// Key fragment to append to the link (client-sealed messages), until sent.
    pub fragment_enc: Option<Vec<u8>>,
    pub phone_index: String,
    pub kind: SmsKind,
    pub template: Option<String>,
    pub status: SmsStatus,
    pub attempts: i64,
    pub send_after: i64,
    pub lease_until: Option<i64>,
    pub provider_id: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub updated_at: i64,
}

#[async_trait]
pub trait PatientStore: Send + Sync {
    // Patients.
    /// `Conflict("patient mrn")` if the MRN is taken in the organisation.
    async fn insert_patient(&self, p: &PatientRow) -> Result<()>;
    async fn get_patient(&self, org: OrgId, id: Uuid) -> Result<PatientRow>;
    async fn list_patients(&self, org: OrgId) -> Result<Vec<PatientRow>>;
    async fn patients_by_phone(&self, org: OrgId, phone_index: &str) -> Result<Vec<PatientRow>>;

    // Consent.
    async fn insert_consent(&self, c: &ConsentRow) -> Result<()>;
    /// Oldest first.
    async fn consents(&self, org: OrgId, patient: Uuid) -> Result<Vec<ConsentRow>>;
    /// Records a STOP; false if the number had already opted out.
    async fn opt_out(&self, org: OrgId, phone_index: &str, at: i64) -> Result<bool>;
    /// Lifts a STOP; false if the number had not opted out.
    async fn opt_in(&self, org: OrgId, phone_index: &str) -> Result<bool>;
    async fn is_opted_out(&self, org: OrgId, phone_index: &str) -> Result<bool>;
    /// Records an inbound SMS by the provider's id; false if one with that id
    /// was already handled (a retry). True again for an id seen but not
    /// handled (the earlier attempt failed half-way): acting twice on a
    /// keyword is harmless, losing a STOP is not.
    async fn claim_inbound(&self, org: OrgId, provider_id: &str, at: i64) -> Result<bool>;
    /// Records that an inbound SMS was acted on.
    async fn inbound_handled(&self, org: OrgId, provider_id: &str, at: i64) -> Result<()>;
    /// Stores a patient's text (one row per matching record) and records the
    /// SMS as handled, in one transaction.
    async fn insert_inbound_messages(
        &self,
        org: OrgId,
        provider_id: &str,
        rows: &[PatientMessageRow],
        at: i64,
    ) -> Result<()>;

    // Templates.
    async fn templates(&self, org: OrgId) -> Result<Vec<TemplateRow>>;
    async fn put_template(&self, t: &TemplateRow) -> Result<()>;

    // Threads.
    async fn insert_patient_message(&self, m: &PatientMessageRow) -> Result<()>;
    /// Oldest first.
    async fn patient_messages(&self, org: OrgId, patient: Uuid) -> Result<Vec<PatientMessageRow>>;
    /// Marks unread messages of `direction` read at `at`.
    async fn mark_patient_messages_read(
        &self,
        org: OrgId,
        patient: Uuid,
        direction: PatientMessageDirection,
        at: i64,
    ) -> Result<()>;
    /// Every patient with messages, most recent first.
    async fn thread_activity(&self, org: OrgId) -> Result<Vec<ThreadActivity>>;
    /// The staff who wrote to `patient`, most recent writer first (at most `limit`).
    async fn patient_writers(&self, org: OrgId, patient: Uuid, limit: i64) -> Result<Vec<UserId>>;

    // Staff notices.
    async fn insert_staff_notices(&self, rows: &[StaffNoticeRow]) -> Result<()>;
    /// `user`'s unseen notices created after `after`, oldest first (at most `limit`).
    async fn unseen_staff_notices(
        &self,
        org: OrgId,
        user: UserId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StaffNoticeRow>>;
    /// `user` has seen `patient`'s notices (they opened the thread).
    async fn staff_notices_seen(
        &self,
        org: OrgId,
        user: UserId,
        patient: Uuid,
        at: i64,
    ) -> Result<()>;

    // Secure links.
    async fn insert_link(&self, l: &LinkRow) -> Result<()>;
    /// The one public lookup: by token hash, across organisations (the token names its link).
    async fn link_by_token(&self, token_hash: &str) -> Result<LinkRow>;
    /// Takes one identity-check attempt on the link *before* anything is
    /// compared: in one statement, only while the link is unlocked and under
    /// `max_failures`; it counts as a failure (locking the link at the limit)
    /// until [`PatientStore::link_attempt_passed`] gives it back. Returns the
    /// count with this attempt, or `None` when the link is locked or at the
    /// limit. So concurrent guesses are never evaluated beyond the limit.
    async fn link_attempt(&self, id: Uuid, max_failures: i64, at: i64) -> Result<Option<i64>>;
    /// The attempt taken by `link_attempt` passed: it no longer counts, and a
    /// lock that it alone caused is lifted.
    async fn link_attempt_passed(&self, id: Uuid, max_failures: i64) -> Result<()>;
    /// Sets the pending code, in one statement only if no code was set
    /// recently (the previous one expires no later than `previous_by`);
    /// false: one was (each code is a paid SMS to the patient).
    async fn link_set_code(
        &self,
        id: Uuid,
        challenge_hash: &str,
        code_hash: &str,
        expires_at: i64,
        previous_by: i64,
    ) -> Result<bool>;
    /// Consumes the pending code and one use, if one is left and the link is
    /// not locked. False: none left, or locked.
    async fn link_use(&self, id: Uuid) -> Result<bool>;
    /// Revokes a patient's open links; returns how many.
    async fn revoke_links(&self, org: OrgId, patient: Uuid, at: i64) -> Result<i64>;
    async fn insert_portal_session(
        &self,
        token_hash: &str,
        link: Uuid,
        at: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The link of a live portal session.
    async fn portal_session(&self, token_hash: &str, now: i64) -> Result<Uuid>;

    // SMS outbox.
    async fn enqueue_sms(&self, s: &SmsRow) -> Result<()>;
    /// Claims up to `limit` due rows (queued and due, or sending with a lapsed
    /// lease) for `lease_secs`, oldest first.
    async fn claim_due_sms(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<SmsRow>>;
    /// Marks the SMS handed over (and erases its key fragment).
    async fn sms_sent(&self, id: Uuid, provider_id: &str, at: i64) -> Result<()>;
    async fn sms_retry(&self, id: Uuid, send_after: i64, error: &str, at: i64) -> Result<()>;
    /// A final state without a provider id (failed, cancelled); erases the key fragment.
    async fn sms_finished(&self, id: Uuid, status: SmsStatus, error: &str, at: i64) -> Result<()>;
    /// A status callback: moves the row's status only forward (queued →
    /// sending → sent → a terminal one), never out of a terminal one, and
    /// sets `error` with the status that carried it. Returns the row as it
    /// now is (NotFound if there is none).
    async fn sms_status_by_provider(
        &self,
        org: OrgId,
        provider_id: &str,
        status: SmsStatus,
        error: Option<&str>,
        at: i64,
    ) -> Result<SmsRow>;
    async fn get_sms(&self, org: OrgId, id: Uuid) -> Result<SmsRow>;
    /// Newest first.
    async fn sms_for_patient(&self, org: OrgId, patient: Uuid, limit: i64) -> Result<Vec<SmsRow>>;
}
