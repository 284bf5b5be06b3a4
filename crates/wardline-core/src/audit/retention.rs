//! Audit retention: entries older than `audit.retention_days` are deleted, up
//! to the newest signed checkpoint whose entries are all past the cutoff. The
//! checkpoints themselves are kept (the purge point's compact range is in its
//! checkpoint), so what remains still verifies and still yields proofs.
//!
//! A purge is itself an audit event, and the database refuses the delete unless
//! it is recorded in `audit_purges` first (see the migration's triggers).

use std::sync::Arc;
use std::time::Duration;

use wardline_crypto::KeyProvider;
use wardline_proto::audit::{AuditAction, purge_message};

use super::{AuditLog, NewEvent};
use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use wardline_store::{AuditStore, LifecycleStore, PurgeRow};

pub const DAY_MS: i64 = 86_400_000;
pub use crate::config::MIN_RETENTION_DAYS;

/// Purges what the policy allows; returns `(purged up to seq, rows deleted)`.
///
/// Order matters for the verifier: the `audit.purge` event is appended first
/// (so it is in the log, above the purge point, before anything is deleted),
/// then the purge record naming that event is signed and stored with the
/// delete in one transaction. An event whose purge then does not happen (a
/// hold placed meanwhile, a crash) is harmless: the verifier checks events
/// of recorded purges, not the other way round.
pub async fn purge_expired(
    store: &dyn AuditStore,
    holds: &dyn LifecycleStore,
    keys: &dyn KeyProvider,
    log: &AuditLog,
    clock: &dyn Clock,
    retention_days: u32,
) -> ApiResult<Option<(i64, u64)>> {
    if retention_days < MIN_RETENTION_DAYS {
        return Err(ApiError::validation(format!(
            "audit retention must be at least {MIN_RETENTION_DAYS} days"
        )));
    }
    // A legal hold preserves the record of what happened to held data too:
    // nothing is purged while any hold is active.
    if holds.any_active_hold().await? {
        tracing::info!("audit retention purge skipped: a legal hold is active");
        return Ok(None);
    }
    let now = clock.now_ms();
    let cutoff = now - i64::from(retention_days) * DAY_MS;
    let Some(size) = store.audit_purgeable_size(cutoff).await? else {
        return Ok(None);
    };
    if size <= store.audit_purged_up_to().await? {
        return Ok(None);
    }
    let event_seq = log
        .record(
            NewEvent::service("retention", AuditAction::AuditPurge)
                .target("audit_log", size)
                .reason(format!(
                    "entries 1–{size} older than {retention_days} days (before {cutoff} ms) purged; checkpoints kept"
                )),
        )
        .await?;
    // A hold placed while the event was written wins: its entry is now below
    // the purge event, and the verifier would (rightly) refuse the purge.
    if holds.any_active_hold().await? {
        tracing::info!("audit retention purge abandoned: a legal hold was placed");
        return Ok(None);
    }
    let at_ms = store
        .audit_entries(event_seq - 1, 1)
        .await?
        .first()
        .filter(|r| r.seq == event_seq)
        .map(|r| r.at_ms)
        .ok_or_else(|| ApiError::internal("the audit purge event just written is missing"))?;
    let retention = i64::from(retention_days);
    // The record's own cutoff is from the event's (hash-chained) time, so the
    // signed fields agree with what the log says happened.
    let cutoff = cutoff.min(at_ms - retention * DAY_MS);
    let sig = keys
        .sign_checkpoint(&purge_message(size, at_ms, cutoff, retention, event_seq))
        .map_err(|e| ApiError::internal(format!("signing the audit purge: {e}")))?;
    let deleted = store
        .purge_audit(&PurgeRow {
            up_to: size,
            at_ms,
            cutoff_ms: cutoff,
            retention_days: Some(retention),
            event_seq: Some(event_seq),
            key_id: Some(sig.key_id),
            signature: Some(sig.signature.to_vec()),
        })
        .await?;
    tracing::info!(up_to = size, deleted, "audit retention purge");
    Ok(Some((size, deleted)))
}

/// The purge at start and then daily.
pub fn worker(
    store: Arc<dyn AuditStore>,
    holds: Arc<dyn LifecycleStore>,
    keys: Arc<dyn KeyProvider>,
    log: AuditLog,
    clock: Arc<dyn Clock>,
    retention_days: u32,
) -> Box<dyn crate::worker::Worker> {
    crate::worker::Every::new(
        "audit-retention",
        Duration::from_secs(24 * 3600),
        move || {
            let (store, holds, keys, log, clock) = (
                store.clone(),
                holds.clone(),
                keys.clone(),
                log.clone(),
                clock.clone(),
            );
            async move {
                if let Err(e) = purge_expired(
                    store.as_ref(),
                    holds.as_ref(),
                    keys.as_ref(),
                    &log,
                    clock.as_ref(),
                    retention_days,
                )
                .await
                {
                    tracing::error!(error = %e.message, "audit retention purge failed");
                }
            }
        },
    )
}
