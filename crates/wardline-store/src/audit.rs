//! Storage of the audit trail, behind its own trait: the log is append-only,
//! so this trait has no update or delete except the retention purge.
//!
//! Rows come back raw (strings and bytes, as stored): the verifier must be
//! able to read and report a row that was tampered with into something the
//! domain types cannot represent, so decoding happens in `crate::audit`.

use async_trait::async_trait;
use wardline_proto::OrgId;
use wardline_proto::audit::AuditQuery;

use super::Result;

/// One audit entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub org_id: Option<String>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub device_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub patient_id: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// The event's `changes` as JSON; `None` when there are none.
    pub changes: Option<String>,
    pub leaf_hash: Vec<u8>,
    pub chain_hash: Vec<u8>,
    /// The key provider's HMAC of `chain_hash`.
    pub mac: Vec<u8>,
}

/// A signed checkpoint as stored; `frontier` is the compact range at `size`,
/// 32-byte hashes concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub size: i64,
    pub at_ms: i64,
    pub root: Vec<u8>,
    pub chain_head: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
    pub frontier: Vec<u8>,
}

/// A retention purge as stored: entries `1..=up_to` were deleted. Every field
/// after `cutoff_ms` is covered by `signature` (the audit key, over
/// [`wardline_proto::audit::purge_message`]); they are optional only because a
/// row written without them is exactly what the verifier must be able to read
/// and refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRow {
    pub up_to: i64,
    pub at_ms: i64,
    pub cutoff_ms: i64,
    pub retention_days: Option<i64>,
    /// The purge's own `audit.purge` entry.
    pub event_seq: Option<i64>,
    pub key_id: Option<String>,
    pub signature: Option<Vec<u8>>,
}

#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends entries (consecutive seqs) and optionally a checkpoint in one
    /// transaction. A seq that already exists (another writer got there first)
    /// is [`super::StoreError::Conflict`] and nothing is written.
    async fn append_audit(
        &self,
        entries: &[AuditRow],
        checkpoint: Option<&CheckpointRow>,
    ) -> Result<()>;
    async fn last_audit_entry(&self) -> Result<Option<AuditRow>>;
    /// Entries with `seq > after`, ascending, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>>;
    /// Leaf hashes of entries `after < seq <= up_to`, ascending.
    async fn audit_leaf_hashes(&self, after: i64, up_to: i64) -> Result<Vec<Vec<u8>>>;
    /// One organisation's entries matching `q`, newest first, at most `limit`.
    async fn search_audit(&self, org: OrgId, q: &AuditQuery, limit: i64) -> Result<Vec<AuditRow>>;

    async fn latest_audit_checkpoint(&self) -> Result<Option<CheckpointRow>>;
    /// The checkpoint of exactly `size` entries, if one was made.
    async fn audit_checkpoint(&self, size: i64) -> Result<Option<CheckpointRow>>;
    /// Checkpoints with `size > after`, ascending, at most `limit`.
    async fn audit_checkpoints(&self, after: i64, limit: i64) -> Result<Vec<CheckpointRow>>;

    /// Highest `up_to` of the retention purges (0 if none).
    async fn audit_purged_up_to(&self) -> Result<i64>;
    /// Every recorded purge, ascending by `up_to`.
    async fn audit_purges(&self) -> Result<Vec<PurgeRow>>;
    /// The largest checkpoint size signed before `cutoff_ms` (so every entry
    /// it covers is older) and above the current purge point.
    async fn audit_purgeable_size(&self, cutoff_ms: i64) -> Result<Option<i64>>;
    /// Records `purge` (signed, its event already appended) and deletes the
    /// entries up to its `up_to` (a checkpoint size), in one transaction;
    /// returns how many were deleted. The database refuses an unsigned record
    /// and deletes above the record's cutoff (the migration's triggers).
    async fn purge_audit(&self, purge: &PurgeRow) -> Result<u64>;

    /// The last seq a SIEM sink has been sent (0 if never).
    async fn audit_export_cursor(&self, sink: &str) -> Result<i64>;
    async fn set_audit_export_cursor(&self, sink: &str, seq: i64, now_ms: i64) -> Result<()>;
}
