//! The audit trail: every PHI-touching request leaves an entry that cannot be
//! altered or removed without detection.
//!
//! * [`AuditLog`] appends. One writer task per server takes entries from a
//!   channel, numbers them, hashes each into the RFC 9162 Merkle tree and the
//!   hash chain, and commits a whole batch in one transaction (group commit):
//!   callers wait for the commit, so an acknowledged action is always audited.
//!   Every `audit.checkpoint_every` entries or `checkpoint_interval_secs`
//!   seconds it signs a checkpoint (tree size, root, chain head) with the key
//!   provider's Ed25519 key.
//! * [`scope`] records one event per request to an audited route (the route
//!   table is [`scope::ROUTES`]; a test fails if a route is missing from it).
//! * [`verify`] recomputes everything from the stored rows and names the first
//!   place they depart from what was written and signed.
//! * [`service`] answers searches, access reports, exports and proofs;
//!   [`siem`] streams entries to syslog and JSON Lines; [`retention`] purges.

pub mod anonymous;
pub mod record;
pub mod retention;
pub mod scope;
pub mod siem;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use wardline_crypto::KeyProvider;
use wardline_crypto::merkle::{CHAIN_GENESIS, CompactRange, Hash, chain_hash, leaf_hash};
use wardline_proto::audit::{
    ActorKind, AuditAction, AuditEvent, FieldChange, Outcome, checkpoint_message,
};
use wardline_proto::{ErrorCode, OrgId};

use crate::clock::Clock;
use crate::config::AuditConfig;
use crate::error::{ApiError, ApiResult};
use wardline_store::{AuditStore, CheckpointRow, StoreError};

pub use scope::AuditScope;

/// How a patient reference's blind index is stored in `audit_log.patient_id`
/// (patient record ids are stored as they are).
pub const PATIENT_REF_PREFIX: &str = "ref:";

/// A patient reference's blind index as the audit trail stores it.
pub fn patient_ref_key(index: &str) -> String {
    format!("{PATIENT_REF_PREFIX}{index}")
}

/// An event to append; the writer adds the sequence number and time.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub org_id: Option<OrgId>,
    pub actor_kind: ActorKind,
    pub actor_id: Option<String>,
    pub device_id: Option<Uuid>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: AuditAction,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub patient_id: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// What an administrative action changed (see [`AuditEvent::changes`]).
    pub changes: Vec<FieldChange>,
}

impl NewEvent {
    /// An action by the server itself or an operator tool (`retention`, `cli`).
    pub fn service(name: &str, action: AuditAction) -> NewEvent {
        NewEvent {
            org_id: None,
            actor_kind: ActorKind::Service,
            actor_id: Some(name.to_owned()),
            device_id: None,
            source_ip: None,
            user_agent: None,
            action,
            target_type: None,
            target_id: None,
            patient_id: None,
            outcome: Outcome::Success,
            reason: None,
            changes: Vec::new(),
        }
    }

    pub fn target(mut self, kind: &str, id: impl ToString) -> NewEvent {
        self.target_type = Some(kind.to_owned());
        self.target_id = Some(id.to_string());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> NewEvent {
        self.reason = Some(reason.into());
        self
    }
}

// The channel is sized in commands; most are appends, so the big variant is
// the common one and boxing it would only add an allocation per entry.
#[allow(clippy::large_enum_variant)]
enum Command {
    Append(NewEvent, oneshot::Sender<Result<i64, String>>),
    Checkpoint(oneshot::Sender<Result<Option<i64>, String>>),
}

/// Handle to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Command>,
}

fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the audit trail could not be written, so the request was not completed; try again",
    )
}

impl AuditLog {
    /// Loads the log's tip (latest checkpoint plus the entries after it) and
    /// starts the writer task.
    pub async fn start(
        store: Arc<dyn AuditStore>,
        keys: Arc<dyn KeyProvider>,
        clock: Arc<dyn Clock>,
        cfg: &AuditConfig,
    ) -> Result<AuditLog, StoreError> {
        let tip = load_tip(store.as_ref(), keys.as_ref(), clock.as_ref()).await?;
        let (tx, rx) = mpsc::channel(16_384);
        let writer = Writer {
            store,
            keys,
            clock,
            every: cfg.checkpoint_every,
            interval_ms: (cfg.checkpoint_interval_secs as i64).saturating_mul(1000),
            tip,
        };
        tokio::spawn(writer.run(rx));
        Ok(AuditLog { tx })
    }

    /// Appends `event` and returns its sequence number once it is durable.
    pub async fn record(&self, event: NewEvent) -> ApiResult<i64> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Append(event, done))
            .await
            .map_err(|_| unavailable())?;
        match wait.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "audit append failed");
                Err(unavailable())
            }
            Err(_) => Err(unavailable()),
        }
    }

    /// Signs a checkpoint now if there are entries since the last one; returns
    /// the size of the newest checkpoint.
    pub async fn checkpoint_now(&self) -> ApiResult<Option<i64>> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Checkpoint(done))
            .await
            .map_err(|_| unavailable())?;
        match wait.await {
            Ok(Ok(size)) => Ok(size),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "audit checkpoint failed");
                Err(unavailable())
            }
            Err(_) => Err(unavailable()),
        }
    }
}

/// The writer's view of the end of the log.
#[derive(Clone)]
struct Tip {
    range: CompactRange,
    chain: Hash,
    last_cp_size: u64,
    last_cp_at_ms: i64,
}

pub(crate) fn hash32(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

pub(crate) fn frontier_of(cp: &CheckpointRow) -> Result<CompactRange, StoreError> {
    let nodes = cp
        .frontier
        .chunks(32)
        .map(|c| hash32(c, "checkpoint frontier node"))
        .collect::<Result<Vec<_>, _>>()?;
    CompactRange::from_parts(cp.size as u64, nodes).ok_or_else(|| {
        StoreError::Corrupt(format!("checkpoint {} has a malformed frontier", cp.size))
    })
}

/// The end of the log as stored. Entries after the last checkpoint whose MAC
/// does not check were not written by a Wardline writer: they are adopted
/// (the sequence must go on) but reported loudly, and `audit verify` names them.
async fn load_tip(
    store: &dyn AuditStore,
    keys: &dyn KeyProvider,
    clock: &dyn Clock,
) -> Result<Tip, StoreError> {
    let (mut range, mut chain, mut after, last_cp_at_ms) =
        match store.latest_audit_checkpoint().await? {
            Some(cp) => (
                frontier_of(&cp)?,
                hash32(&cp.chain_head, "checkpoint chain head")?,
                cp.size,
                cp.at_ms,
            ),
            None => (CompactRange::new(), CHAIN_GENESIS, 0, clock.now_ms()),
        };
    let last_cp_size = range.size();
    loop {
        let rows = store.audit_entries(after, 10_000).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for r in &rows {
            range.push(hash32(&r.leaf_hash, "leaf hash")?);
            chain = hash32(&r.chain_hash, "chain hash")?;
            if keys
                .audit_entry_mac(&chain)
                .ok()
                .as_ref()
                .map(|m| m.as_slice())
                != Some(r.mac.as_slice())
            {
                tracing::error!(
                    seq = r.seq,
                    "audit entry not written by Wardline found at the end of the log; run `wardline audit verify`"
                );
                metrics::counter!("wardline_audit_forged_entries_total").increment(1);
            }
        }
    }
    Ok(Tip {
        range,
        chain,
        last_cp_size,
        last_cp_at_ms,
    })
}

struct Writer {
    store: Arc<dyn AuditStore>,
    keys: Arc<dyn KeyProvider>,
    clock: Arc<dyn Clock>,
    every: u64,
    interval_ms: i64,
    tip: Tip,
}

/// Most entries committed in one transaction.
const MAX_BATCH: usize = 2048;

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let tick = Duration::from_millis(self.interval_ms.clamp(100, 1000) as u64);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(first) = cmd else { break };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    self.handle(batch).await;
                }
                _ = ticker.tick() => {
                    let due = self.tip.range.size() > self.tip.last_cp_size
                        && self.clock.now_ms() - self.tip.last_cp_at_ms >= self.interval_ms;
                    if due && let Err(e) = self.write(&[], true).await {
                        tracing::error!(error = %e, "audit checkpoint failed");
                    }
                }
            }
        }
    }

    async fn handle(&mut self, batch: Vec<Command>) {
        let mut events = Vec::new();
        let mut appends = Vec::new();
        let mut checkpoints = Vec::new();
        for c in batch {
            match c {
                Command::Append(e, done) => {
                    events.push(e);
                    appends.push(done);
                }
                Command::Checkpoint(done) => checkpoints.push(done),
            }
        }
        let force = !checkpoints.is_empty();
        let mut checkpoint_error = None;
        let result: Vec<Result<i64, String>> = match self.write(&events, force).await {
            Ok(seqs) => seqs.into_iter().map(Ok).collect(),
            // One event the database refuses must not fail the others in its
            // group (other users' requests): write them one by one, so only
            // the bad one fails.
            Err(e) if events.len() > 1 => {
                tracing::warn!(error = %e, "audit group commit failed; writing its events one by one");
                let mut each = Vec::with_capacity(events.len());
                for event in &events {
                    each.push(
                        self.write(std::slice::from_ref(event), false)
                            .await
                            .map(|seqs| seqs[0])
                            .map_err(|e| e.to_string()),
                    );
                }
                if force && let Err(e) = self.write(&[], true).await {
                    checkpoint_error = Some(e.to_string());
                }
                each
            }
            Err(e) => {
                checkpoint_error = Some(e.to_string());
                vec![Err(e.to_string()); events.len()]
            }
        };
        for (done, r) in appends.into_iter().zip(result) {
            let _ = done.send(r);
        }
        let size = (self.tip.last_cp_size > 0).then_some(self.tip.last_cp_size as i64);
        for done in checkpoints {
            let _ = done.send(match &checkpoint_error {
                Some(e) => Err(e.clone()),
                None => Ok(size),
            });
        }
    }

    /// Commits `events` (and a checkpoint when due or `force`d). On a sequence
    /// conflict (another node appended) it reloads the tip and tries once more.
    async fn write(&mut self, events: &[NewEvent], force: bool) -> Result<Vec<i64>, StoreError> {
        match self.try_write(events, force).await {
            Err(StoreError::Conflict(_)) => {
                self.tip =
                    load_tip(self.store.as_ref(), self.keys.as_ref(), self.clock.as_ref()).await?;
                self.try_write(events, force).await
            }
            other => other,
        }
    }

    async fn try_write(
        &mut self,
        events: &[NewEvent],
        force: bool,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tip = self.tip.clone();
        let now = self.clock.now_ms();
        let mut rows = Vec::with_capacity(events.len());
        let mut seqs = Vec::with_capacity(events.len());
        for e in events {
            let seq = tip.range.size() as i64 + 1;
            let event = AuditEvent {
                seq,
                at_ms: now,
                org_id: e.org_id.map(Into::into),
                actor_kind: e.actor_kind,
                actor_id: storable(&e.actor_id),
                device_id: e.device_id,
                source_ip: storable(&e.source_ip),
                user_agent: storable(&e.user_agent),
                action: e.action,
                target_type: storable(&e.target_type),
                target_id: storable(&e.target_id),
                patient_id: storable(&e.patient_id),
                outcome: e.outcome,
                reason: storable(&e.reason),
                changes: e
                    .changes
                    .iter()
                    .map(|c| FieldChange {
                        field: storable_text(&c.field),
                        before: storable(&c.before),
                        after: storable(&c.after),
                    })
                    .collect(),
                leaf_hash: None,
            };
            let leaf = leaf_hash(&event.canonical_bytes());
            tip.chain = chain_hash(&tip.chain, &leaf);
            tip.range.push(leaf);
            let mac = self
                .keys
                .audit_entry_mac(&tip.chain)
                .map_err(|e| StoreError::Corrupt(format!("authenticating the audit entry: {e}")))?;
            rows.push(record::to_row(&event, &leaf, &tip.chain, &mac));
            seqs.push(seq);
        }
        let size = tip.range.size();
        let due = size >= tip.last_cp_size + self.every || force;
        let checkpoint = if due && size > tip.last_cp_size {
            let cp = sign_checkpoint(self.keys.as_ref(), &tip, now)?;
            tip.last_cp_size = size;
            tip.last_cp_at_ms = now;
            Some(cp)
        } else {
            None
        };
        self.store.append_audit(&rows, checkpoint.as_ref()).await?;
        metrics::counter!("wardline_audit_appended_total").increment(rows.len() as u64);
        metrics::histogram!("wardline_audit_batch_size").record(rows.len() as f64);
        if checkpoint.is_some() {
            metrics::counter!("wardline_audit_checkpoints_total").increment(1);
        }
        self.tip = tip;
        Ok(seqs)
    }
}

/// Text as both engines store it: control characters (which the API refuses
/// at the edge, but an event can carry from elsewhere) become U+FFFD, so an
/// event can always be written, and written the same on SQLite and PostgreSQL.
fn storable_text(text: &str) -> String {
    storable(&Some(text.to_owned())).unwrap_or_default()
}

fn storable(text: &Option<String>) -> Option<String> {
    let t = text.as_ref()?;
    if !t
        .chars()
        .any(|c| crate::text::forbidden_control(u32::from(c)))
    {
        return Some(t.clone());
    }
    Some(
        t.chars()
            .map(|c| {
                if crate::text::forbidden_control(u32::from(c)) {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect(),
    )
}

fn sign_checkpoint(
    keys: &dyn KeyProvider,
    tip: &Tip,
    now: i64,
) -> Result<CheckpointRow, StoreError> {
    let size = tip.range.size() as i64;
    let root = tip.range.root();
    let msg = checkpoint_message(size, now, &hex::encode(root), &hex::encode(tip.chain));
    let sig = keys
        .sign_checkpoint(&msg)
        .map_err(|e| StoreError::Corrupt(format!("signing the audit checkpoint: {e}")))?;
    Ok(CheckpointRow {
        size,
        at_ms: now,
        root: root.to_vec(),
        chain_head: tip.chain.to_vec(),
        key_id: sig.key_id,
        signature: sig.signature.to_vec(),
        frontier: tip.range.nodes().concat(),
    })
}
