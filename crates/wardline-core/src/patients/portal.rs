//! Secure links and the patient's identity check.
//!
//! A link is `<public_url>/p/<token>`: 256 random bits, stored as a SHA-256
//! hash, expiring (`link_ttl_secs`), with a number of uses (`link_max_uses`),
//! revocable. Opening it reveals nothing. The patient first gives their date
//! of birth; if it matches, a six-digit code goes by SMS to the number on
//! file, bound to that browser by a challenge in the page's form. The right
//! code consumes one use and opens a portal session (a random cookie, hashed
//! in the database, 15 minutes at most, scoped to the link's path). Every
//! wrong date of birth or code counts; at `verify_max_failures` the link locks.

use rand::Rng;
use uuid::Uuid;
use wardline_crypto::token::{hash_token, new_token};
use wardline_proto::OrgId;
use wardline_proto::patients::{
    PatientMessage, PatientMessageDirection, PatientTextingPolicy, SmsKind,
};

use super::{Opened, PatientService, seal, templates};
use crate::error::{ApiError, ApiResult};
use wardline_store::StoreError;
use wardline_store::patients::{LinkRow, PatientMessageRow};

/// How long a texted code is valid.
pub const CODE_TTL_SECS: i64 = 600;
/// Least time between two codes for one link (each one is a paid SMS to the patient).
pub const CODE_RESEND_SECS: i64 = 60;
/// Longest portal session.
pub const SESSION_SECS: i64 = 15 * 60;

/// Why a portal step did not go through; each becomes a page.
#[derive(Debug)]
pub enum PortalError {
    /// Unknown, expired, revoked or used up: the same page for all, so the
    /// page tells a guesser nothing.
    Invalid,
    /// Too many failed checks.
    Locked,
    /// Wrong date of birth or code; `left` attempts remain.
    Wrong {
        left: i64,
    },
    /// The code expired or was replaced: ask for a new one.
    CodeExpired,
    /// A code was sent less than a minute ago.
    TooSoon,
    /// The number opted out of texts, so no code can be sent.
    OptedOut,
    /// No live portal session (sign in again through the link).
    SessionEnded,
    Api(ApiError),
}

impl From<ApiError> for PortalError {
    fn from(e: ApiError) -> Self {
        PortalError::Api(e)
    }
}

impl From<StoreError> for PortalError {
    fn from(e: StoreError) -> Self {
        PortalError::Api(e.into())
    }
}

/// One identity-check attempt taken on a link: `count` attempts (this one
/// included) stand against the link's `max`.
struct Attempt {
    max: i64,
    count: i64,
}

impl Attempt {
    /// The answer to a wrong date of birth or code (already counted).
    fn failed(&self) -> PortalError {
        if self.count >= self.max {
            PortalError::Locked
        } else {
            PortalError::Wrong {
                left: self.max - self.count,
            }
        }
    }
}

/// A live link and its patient.
pub struct LinkView {
    pub link: LinkRow,
    pub patient: Opened,
}

fn hashed(token: &str) -> String {
    hex::encode(hash_token(token))
}

fn code_hash(link: Uuid, challenge: &str, code: &str) -> String {
    hashed(&format!("{link}:{challenge}:{code}"))
}

/// Link tokens are 43 characters of base64url; anything else is not looked up.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl PatientService {
    /// A new link for `p`; returns its URL (the only place the token exists).
    pub(crate) async fn new_link(
        &self,
        p: &Opened,
        created_by: String,
        policy: &PatientTextingPolicy,
    ) -> ApiResult<String> {
        let token = new_token("");
        let now = self.clock.now();
        self.store
            .insert_link(&LinkRow {
                id: Uuid::new_v4(),
                org_id: p.row.org_id,
                patient_id: p.row.id,
                token_hash: hashed(&token),
                created_by,
                created_at: now,
                expires_at: now + policy.link_ttl_secs,
                max_uses: policy.link_max_uses,
                uses: 0,
                failures: 0,
                locked_at: None,
                revoked_at: None,
                challenge_hash: None,
                code_hash: None,
                code_expires_at: None,
            })
            .await?;
        Ok(format!("{}/p/{token}", self.setup.public_url))
    }

    /// The link behind `token` if it may still be used.
    pub async fn portal_link(&self, token: &str) -> Result<LinkView, PortalError> {
        self.link_for(token, true).await
    }

    /// The link a refused portal request named, if it exists at all
    /// (locked, expired, revoked or used up): the refusal is audited with
    /// its organisation, link and patient, so it shows in that patient's
    /// access report and in the organisation's searches (issue 18, item 7).
    /// Not told to the requester: the page is the same either way.
    pub async fn refused_link(&self, token: &str) -> Option<(OrgId, Uuid, Uuid)> {
        if !well_formed(token) {
            return None;
        }
        match self.store.link_by_token(&hashed(token)).await {
            Ok(l) => Some((l.org_id, l.id, l.patient_id)),
            Err(_) => None,
        }
    }

    /// `uses_left`: the link must still have a use for a new identity check;
    /// a session opened by its last use lives on without one.
    async fn link_for(&self, token: &str, uses_left: bool) -> Result<LinkView, PortalError> {
        if !well_formed(token) {
            return Err(PortalError::Invalid);
        }
        let link = match self.store.link_by_token(&hashed(token)).await {
            Ok(l) => l,
            Err(StoreError::NotFound) => return Err(PortalError::Invalid),
            Err(e) => return Err(e.into()),
        };
        if link.revoked_at.is_some()
            || link.expires_at <= self.clock.now()
            || (uses_left && link.uses >= link.max_uses)
        {
            return Err(PortalError::Invalid);
        }
        if link.locked_at.is_some() {
            return Err(PortalError::Locked);
        }
        let row = self.store.get_patient(link.org_id, link.patient_id).await?;
        let patient = self.open_patient(row).await?;
        Ok(LinkView { link, patient })
    }

    /// Takes one attempt on the link before anything is compared (see
    /// [`wardline_store::PatientStore::link_attempt`]): a locked link, or one
    /// whose attempts are all taken by concurrent requests, evaluates nothing.
    async fn attempt(&self, view: &LinkView) -> Result<Attempt, PortalError> {
        let max = self.policy(view.link.org_id).await?.verify_max_failures;
        match self
            .store
            .link_attempt(view.link.id, max, self.clock.now())
            .await?
        {
            Some(count) => Ok(Attempt { max, count }),
            None => Err(PortalError::Locked),
        }
    }

    async fn attempt_passed(&self, view: &LinkView, a: &Attempt) -> Result<(), PortalError> {
        Ok(self.store.link_attempt_passed(view.link.id, a.max).await?)
    }

    /// Step one: the date of birth. On a match, texts a code and returns the
    /// challenge the code form must carry.
    pub async fn portal_check_dob(
        &self,
        view: &LinkView,
        dob: &str,
    ) -> Result<String, PortalError> {
        let attempt = self.attempt(view).await?;
        if dob.trim() != view.patient.dob {
            return Err(attempt.failed());
        }
        self.attempt_passed(view, &attempt).await?;
        let now = self.clock.now();
        let org = view.link.org_id;
        if self
            .store
            .is_opted_out(org, &view.patient.row.phone_index)
            .await?
        {
            return Err(PortalError::OptedOut);
        }
        let challenge = new_token("");
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
        // A code at most once a minute, decided in the statement that sets it
        // (concurrent right answers would each have texted one).
        if !self
            .store
            .link_set_code(
                view.link.id,
                &hashed(&challenge),
                &code_hash(view.link.id, &challenge, &code),
                now + CODE_TTL_SECS,
                now + CODE_TTL_SECS - CODE_RESEND_SECS,
            )
            .await?
        {
            return Err(PortalError::TooSoon);
        }
        let policy = self.policy(org).await?;
        let t = self
            .template(org, templates::VERIFICATION_CODE, &view.patient.language)
            .await?;
        let mut values = self.server_values(&policy);
        values.insert("code".into(), code);
        self.enqueue(
            org,
            Some(&view.patient),
            &view.patient.phone,
            &view.patient.row.phone_index,
            &templates::render(&t.body, &values),
            None,
            SmsKind::VerificationCode,
            Some(templates::VERIFICATION_CODE),
            &policy,
        )
        .await?;
        Ok(challenge)
    }

    /// Step two: the texted code. Consumes one use of the link and returns a
    /// portal session token (for the cookie).
    pub async fn portal_check_code(
        &self,
        view: &LinkView,
        challenge: &str,
        code: &str,
    ) -> Result<String, PortalError> {
        let now = self.clock.now();
        let pending = view.link.challenge_hash.as_deref() == Some(hashed(challenge).as_str())
            && view.link.code_expires_at.is_some_and(|e| e > now);
        if !pending {
            return Err(PortalError::CodeExpired);
        }
        let code = crate::credentials::totp::typed_code(code);
        let attempt = self.attempt(view).await?;
        if view.link.code_hash.as_deref()
            != Some(code_hash(view.link.id, challenge, &code).as_str())
        {
            return Err(attempt.failed());
        }
        self.attempt_passed(view, &attempt).await?;
        if !self.store.link_use(view.link.id).await? {
            // Another browser used the code, or the last use, first.
            return Err(PortalError::Invalid);
        }
        let session = new_token("wlp_");
        self.store
            .insert_portal_session(
                &hashed(&session),
                view.link.id,
                now,
                (now + SESSION_SECS).min(view.link.expires_at),
            )
            .await?;
        Ok(session)
    }

    /// The link and patient of a live portal session for `token`'s link.
    pub async fn portal_session(
        &self,
        token: &str,
        session: Option<&str>,
    ) -> Result<LinkView, PortalError> {
        let link_of_session = match session {
            Some(s) => match self
                .store
                .portal_session(&hashed(s), self.clock.now())
                .await
            {
                Ok(id) => Some(id),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let view = self.link_for(token, false).await?;
        if link_of_session != Some(view.link.id) {
            return Err(PortalError::SessionEnded);
        }
        Ok(view)
    }

    /// The patient's thread; marks the practice's messages read.
    pub async fn portal_thread(&self, view: &LinkView) -> ApiResult<Vec<PatientMessage>> {
        let messages = self.messages(&view.patient).await?;
        self.store
            .mark_patient_messages_read(
                view.link.org_id,
                view.patient.row.id,
                PatientMessageDirection::ToPatient,
                self.clock.now(),
            )
            .await?;
        Ok(messages)
    }

    pub async fn portal_reply(&self, view: &LinkView, text: &str) -> ApiResult<Uuid> {
        let text = text.trim();
        let n = text.chars().count();
        if n == 0 || n > 4000 {
            return Err(ApiError::validation("a reply is 1-4000 characters"));
        }
        let id = Uuid::new_v4();
        let p = &view.patient;
        self.store
            .insert_patient_message(&PatientMessageRow {
                id,
                org_id: p.row.org_id,
                patient_id: p.row.id,
                direction: PatientMessageDirection::FromPatient,
                author_user: None,
                via: "portal".into(),
                body_enc: seal(&p.key, "patient_messages", id, "body", text),
                client_sealed: false,
                created_at: self.clock.now(),
                read_at: None,
            })
            .await?;
        self.tell_writers(p.row.org_id, p.row.id, self.clock.now())
            .await;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        assert!(well_formed(&new_token("")));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}=", &new_token("")[..42])));
        assert!(!well_formed(&"a".repeat(44)));
    }
}
