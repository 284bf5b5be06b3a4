//! Storage behind traits — [`Store`] and one per domain ([`MessagingStore`],
//! [`PatientStore`], [`RoutingStore`], [`LifecycleStore`], [`AuditStore`]) — so
//! that domain services never see SQL, and the row types they exchange.
//!
//! This crate holds no engine. `wardline-store-sql` implements every trait on
//! SQLite (the embedded default) and PostgreSQL (production, several nodes),
//! and runs the conformance suite ([`conformance`], feature `conformance`)
//! against both.
//!
//! Invariants every implementation keeps:
//! * every query on tenant data is scoped by `org_id`; a row of another
//!   organisation is indistinguishable from a missing one ([`StoreError::NotFound`]);
//! * PHI columns only ever receive ciphertext (see [`crate::vault`]); the store
//!   cannot tell and does not care;
//! * tokens and codes are stored as hashes only.

pub mod audit;
pub mod bus;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod lifecycle;
pub mod messaging;
pub mod patients;
pub mod reports;
pub mod routing;

use async_trait::async_trait;
use wardline_proto::directory::{OrgPolicy, UserStatus};
use wardline_proto::{DeviceId, OrgId, Role, SessionId, UserId};

pub use audit::{AuditRow, AuditStore, CheckpointRow, PurgeRow};
pub use bus::Bus;
pub use lifecycle::LifecycleStore;
pub use messaging::MessagingStore;
pub use patients::PatientStore;
pub use reports::{HistoryStore, ReportStore};
pub use routing::RoutingStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the string names it (e.g. `org slug`).
    #[error("already exists: {0}")]
    Conflict(&'static str),
    /// The database refused or failed; the engine's own error inside.
    #[error("database: {0}")]
    Database(Box<dyn std::error::Error + Send + Sync>),
    /// No connection could be had in time (a pool exhausted or the database
    /// down): the caller may try again later.
    #[error("database unavailable")]
    Unavailable,
    /// A stored value the code cannot interpret (a corrupt row or a bug).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The SQL engines' errors, for `?` in `wardline-store-sql` (the only crate
/// that enables the `sqlx` feature; the trait crate names no engine otherwise).
#[cfg(feature = "sqlx")]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::PoolTimedOut => StoreError::Unavailable,
            other => StoreError::Database(Box::new(other)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRow {
    pub id: OrgId,
    pub name: String,
    pub slug: String,
    pub policy: OrgPolicy,
    pub created_at: i64,
}

/// A data key wrapped by a KEK. `org_id` is `None` for installation-wide keys
/// (the blind-index key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRow {
    pub id: String,
    pub org_id: Option<OrgId>,
    pub kek_id: String,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

/// A user as stored: PHI fields are sealed under the row's data key `dek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
    pub org_id: OrgId,
    pub dek_id: String,
    /// Blind index of the normalised e-mail, unique per organisation.
    pub email_bidx: String,
    pub email_enc: Vec<u8>,
    pub display_name_enc: Vec<u8>,
    pub phone_enc: Option<Vec<u8>>,
    pub roles: Vec<Role>,
    pub status: UserStatus,
    pub password_hash: String,
    pub totp_secret_enc: Option<Vec<u8>>,
    pub totp_enabled: bool,
    /// Last TOTP time step accepted; a code is never accepted twice.
    pub totp_last_step: i64,
    /// The password was set by an administrator: the user must choose their
    /// own before the session does anything else.
    pub password_change_required: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: SessionId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub idle_timeout_secs: i64,
    /// False while the session may only enrol a second factor.
    pub mfa_complete: bool,
    pub revoked_at: Option<i64>,
}

/// The half-way state between a correct password and a correct second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallengeRow {
    pub token_hash: Vec<u8>,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub expires_at: i64,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleRow {
    pub key: String,
    pub failures: i64,
    pub last_failure_at: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;

    // Installation-wide settings (setup code hash, ...).
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Deletes the setting and returns whether it held `value`: a one-time
    /// secret is consumed atomically, so two racing requests cannot both use it.
    async fn consume_setting(&self, key: &str, value: &str) -> Result<bool>;

    // Data keys.
    async fn insert_data_key(&self, row: &DataKeyRow) -> Result<()>;
    async fn get_data_key(&self, id: &str) -> Result<DataKeyRow>;
    /// Up to `limit` data keys wrapped under some KEK other than `kek_id`.
    async fn data_keys_not_under(&self, kek_id: &str, limit: i64) -> Result<Vec<DataKeyRow>>;
    /// Replaces the wrapping of a data key if it is still wrapped under
    /// `old_kek_id` (compare-and-swap, so concurrent rotations do not clash).
    async fn rewrap_data_key(
        &self,
        id: &str,
        old_kek_id: &str,
        new_kek_id: &str,
        wrapped: &[u8],
    ) -> Result<bool>;
    /// (kek id, number of data keys under it).
    async fn count_data_keys_by_kek(&self) -> Result<Vec<(String, i64)>>;

    // Organisations.
    async fn insert_org(&self, org: &OrgRow) -> Result<()>;
    async fn get_org(&self, id: OrgId) -> Result<OrgRow>;
    async fn get_org_by_slug(&self, slug: &str) -> Result<OrgRow>;
    async fn count_orgs(&self) -> Result<i64>;
    /// Stores the policy and, in the same transaction, brings the
    /// organisation's live sessions under a tightened idle timeout or
    /// lifetime (a session never keeps a looser one than the policy).
    async fn update_org_policy(&self, id: OrgId, policy: &OrgPolicy) -> Result<()>;

    // Users.
    async fn insert_user(&self, user: &UserRow) -> Result<()>;
    async fn get_user(&self, org: OrgId, id: UserId) -> Result<UserRow>;
    async fn find_user_by_email(&self, org: OrgId, email_bidx: &str) -> Result<Option<UserRow>>;
    /// The organisation's users, each with its wrapped data key, in one
    /// round trip (listing decrypts every user's fields).
    async fn list_users_with_keys(&self, org: OrgId) -> Result<Vec<(UserRow, DataKeyRow)>>;
    /// Writes every mutable column of `user` (matched by org and id).
    async fn update_user(&self, user: &UserRow) -> Result<()>;
    /// Records `step` as the last used TOTP step if it is newer; false means replay.
    async fn advance_totp_step(&self, org: OrgId, user: UserId, step: i64) -> Result<bool>;
    async fn replace_recovery_codes(
        &self,
        org: OrgId,
        user: UserId,
        hashes: &[Vec<u8>],
    ) -> Result<()>;
    /// Deletes the code if present; true if it was there.
    async fn consume_recovery_code(&self, org: OrgId, user: UserId, hash: &[u8]) -> Result<bool>;

    // Sessions.
    async fn insert_session(&self, s: &SessionRow) -> Result<()>;
    async fn get_session_by_token_hash(&self, hash: &[u8]) -> Result<Option<SessionRow>>;
    async fn get_session(&self, id: SessionId) -> Result<Option<SessionRow>>;
    /// Keeps a one-time socket ticket (its SHA-256) for `session` until
    /// `expires_at` (Unix seconds).
    async fn insert_socket_ticket(
        &self,
        ticket_hash: &[u8],
        session: SessionId,
        expires_at: i64,
    ) -> Result<()>;
    /// Takes the ticket (it cannot be taken twice, even by two nodes at once)
    /// and returns its session if the ticket had not lapsed at `now`. Lapsed
    /// tickets are deleted on the way.
    async fn take_socket_ticket(&self, ticket_hash: &[u8], now: i64) -> Result<Option<SessionRow>>;
    async fn touch_session(&self, id: SessionId, now: i64) -> Result<()>;
    async fn complete_session_mfa(&self, id: SessionId) -> Result<()>;
    async fn revoke_session(&self, id: SessionId, now: i64) -> Result<bool>;
    /// Revokes the user's live sessions, optionally only those of one device,
    /// optionally sparing one session (the caller's own). Returns how many.
    async fn revoke_user_sessions(
        &self,
        org: OrgId,
        user: UserId,
        device: Option<DeviceId>,
        except: Option<SessionId>,
        now: i64,
    ) -> Result<u64>;
    /// Sessions that are neither revoked nor past their absolute expiry.
    async fn list_user_sessions(
        &self,
        org: OrgId,
        user: UserId,
        now: i64,
    ) -> Result<Vec<SessionRow>>;

    /// Each user's latest sign-in (the start of their newest session, Unix
    /// seconds), whatever became of it; users who never signed in are absent.
    async fn last_sign_ins(&self, org: OrgId) -> Result<Vec<(UserId, i64)>>;
    /// Each of a user's devices' last request (the latest `last_seen_at` of
    /// its sessions, live or not, Unix seconds).
    async fn device_last_contacts(&self, org: OrgId, user: UserId) -> Result<Vec<(DeviceId, i64)>>;

    // Login MFA challenges.
    async fn insert_mfa_challenge(&self, c: &MfaChallengeRow) -> Result<()>;
    async fn get_mfa_challenge(&self, hash: &[u8]) -> Result<Option<MfaChallengeRow>>;
    /// Adds one to the attempt counter and returns the new count.
    async fn bump_mfa_challenge_attempts(&self, hash: &[u8]) -> Result<i64>;
    async fn delete_mfa_challenge(&self, hash: &[u8]) -> Result<()>;

    // Login throttling.
    async fn get_throttle(&self, key: &str) -> Result<Option<ThrottleRow>>;
    /// Counts one failure; the count restarts when the previous failure is older
    /// than `decay_before`. Returns the row after the update.
    async fn record_failure(&self, key: &str, now: i64, decay_before: i64) -> Result<ThrottleRow>;
    async fn clear_throttle(&self, key: &str) -> Result<()>;
    /// Takes one attempt under `key` *before* anything is compared, in one
    /// statement: only if nothing holds the key now (a back-off, or another
    /// attempt in flight), it counts the attempt as a failure (a streak whose
    /// last failure is older than `decay_before` restarts at 1) and holds the
    /// key until `hold_until`. Returns `Ok(count)` with this attempt, or
    /// `Err(held_until)` when held. Concurrent attempts under one key are
    /// therefore evaluated one at a time, never past the limit.
    async fn take_attempt(
        &self,
        key: &str,
        now: i64,
        decay_before: i64,
        hold_until: i64,
    ) -> Result<std::result::Result<i64, i64>>;
    /// After a failed attempt: hold `key` until `until` (its back-off).
    async fn hold_throttle(&self, key: &str, until: i64) -> Result<()>;

    // Remembered devices (NIST SP 800-63B §5.2.2).
    async fn remember_device(
        &self,
        token_hash: &str,
        org: OrgId,
        user: UserId,
        device: DeviceId,
        now: i64,
    ) -> Result<()>;
    /// The account and device a remembered-device token was given to, if it
    /// was given after `not_before`.
    async fn remembered_device(
        &self,
        token_hash: &str,
        not_before: i64,
    ) -> Result<Option<(OrgId, UserId, DeviceId)>>;
}
