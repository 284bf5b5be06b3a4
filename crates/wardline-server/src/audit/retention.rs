//! Audit retention: entries older than `audit.retention_days` are deleted, up
//! to the newest signed checkpoint whose entries are all past the cutoff. The
//! checkpoints themselves are kept (the purge point's compact range is in its
//! checkpoint), so what remains still verifies and still yields proofs.
//!
//! A purge is itself an audit event, and the database refuses the delete unless
//! it is recorded in `audit_purges` first (see the migration's triggers).

use std::sync::Arc;
use std::time::Duration;

use wardline_proto::audit::AuditAction;

use super::{AuditLog, NewEvent};
use crate::clock::Clock;
use crate::error::ApiResult;
use crate::store::{AuditStore, LifecycleStore};

const DAY_MS: i64 = 86_400_000;

/// Purges what the policy allows; returns `(purged up to seq, rows deleted)`.
pub async fn purge_expired(
    store: &dyn AuditStore,
    holds: &dyn LifecycleStore,
    log: &AuditLog,
    clock: &dyn Clock,
    retention_days: u32,
) -> ApiResult<Option<(i64, u64)>> {
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
    let deleted = store.purge_audit(size, now, cutoff).await?;
    log.record(
        NewEvent::service("retention", AuditAction::AuditPurge)
            .target("audit_log", size)
            .reason(format!(
                "entries 1–{size} older than {retention_days} days purged; checkpoints kept"
            )),
    )
    .await?;
    tracing::info!(up_to = size, deleted, "audit retention purge");
    Ok(Some((size, deleted)))
}

/// Runs the purge at start and then daily.
pub fn spawn_daily(
    store: Arc<dyn AuditStore>,
    holds: Arc<dyn LifecycleStore>,
    log: AuditLog,
    clock: Arc<dyn Clock>,
    retention_days: u32,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(24 * 3600));
        loop {
            every.tick().await;
            if let Err(e) = purge_expired(
                store.as_ref(),
                holds.as_ref(),
                &log,
                clock.as_ref(),
                retention_days,
            )
            .await
            {
                tracing::error!(error = %e.message, "audit retention purge failed");
            }
        }
    });
}
