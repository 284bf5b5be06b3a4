//! `wardline audit verify`: recompute the log from the stored rows and compare
//! it with what was written (per-row leaf hashes and chain links) and with what
//! was signed (checkpoints).
//!
//! Trust comes only from signatures under *pinned* public keys (the caller's
//! `--public-key` or its state file; the key file on the database host is
//! trusted only on the very first run, and then pinned) and from the state the
//! caller kept outside the database after the last run ([`Trusted`]: the
//! checkpoint verified last, the purge point, the keys, the legal holds open
//! then). Stored leaf and chain hashes are only used to *locate* a change: an
//! editor who does not recompute them is pinned to the exact row; one who
//! does is still caught by the next checkpoint's root.
//!
//! Retention purges must be explained: each purge record is signed, names its
//! own `audit.purge` entry, deletes only entries older than the retention
//! period (judged from signed times) and happened while no legal hold was
//! open; the purge point never moves backwards from the state's.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use wardline_crypto::merkle::{CHAIN_GENESIS, CompactRange, Hash, chain_hash, leaf_hash};
use wardline_crypto::{KeyProvider, verify_checkpoint_signature};
use wardline_proto::audit::{checkpoint_message, purge_message};

use super::retention::DAY_MS;
use super::{frontier_of, hash32, record};
use wardline_store::{AuditRow, AuditStore, CheckpointRow, PurgeRow, StoreError};

/// What a previous verification established, kept by the caller off the
/// database host: the next run starts at `size` (incremental) and fails if
/// the log no longer agrees with any of it (rollback, substituted key,
/// unexplained purge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trusted {
    /// The newest checkpoint that verified, and its root (hex).
    pub size: i64,
    pub root: String,
    /// Entries `1..=purged_up_to` had been purged (by signed, checked
    /// purges); the lowest retained entry is the next one.
    #[serde(default)]
    pub purged_up_to: i64,
    /// Audit signing keys by id (hex Ed25519 public keys): checkpoints and
    /// purges signed by any other key are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// Legal holds placed and not released as of `size` (their ids).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub open_holds: BTreeSet<String>,
}

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The state of the last run, if any.
    pub trusted: Option<Trusted>,
    /// Recompute from the purge point even when `trusted` is given; `trusted`
    /// is still checked (its checkpoint, purge point and keys).
    pub full: bool,
    /// Public keys to accept, by key id, besides `trusted.keys`. With none at
    /// all, the key provider's keys are used (trust on first use) and the
    /// report names them, so the caller can pin them.
    pub pinned_keys: BTreeMap<String, [u8; 32]>,
    /// A purge of entries younger than this many days is refused.
    pub retention_days: u32,
}

/// One place where the stored log departs from what was written or signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The entry's content no longer matches the hash written with it.
    Modified { seq: i64, detail: String },
    /// Entries with these sequence numbers are gone.
    Deleted { from_seq: i64, to_seq: i64 },
    /// The entry at `seq` was written at `original_seq`.
    Reordered { seq: i64, original_seq: i64 },
    /// Entries `from_seq..=to_seq` were each written `by` positions away
    /// (`by < 0`: something was inserted before them; `by > 0`: entries before
    /// them were deleted and the rest renumbered).
    Renumbered { from_seq: i64, to_seq: i64, by: i64 },
    /// An entry that matches its own hash but does not follow the entry before
    /// it in the hash chain: inserted, or its predecessor was replaced.
    Inserted { seq: i64 },
    /// Entries that are internally consistent (content, leaf and chain agree)
    /// but whose MAC does not check: written or rewritten by someone with
    /// database access, not by Wardline. Catches what no checkpoint covers yet.
    Forged { from_seq: i64, to_seq: i64 },
    /// The recomputed tree or chain of the first `size` entries differs from
    /// the signed checkpoint: something in `(after, size]` changed even though
    /// its stored hashes were recomputed to hide it.
    CheckpointMismatch { size: i64, after: i64 },
    /// A checkpoint's signature does not verify.
    BadSignature { size: i64, detail: String },
    /// A checkpoint (or the last verified state) covers entries that are gone.
    Truncated { expected: i64, found: i64 },
    /// The checkpoint verified last time is missing or has another root.
    TrustedCheckpointChanged { size: i64 },
    /// A retention purge Wardline did not make, or made against its rules.
    BadPurge { up_to: i64, detail: String },
    /// Entries were purged while legal holds were open.
    PurgeDuringHold { up_to: i64, holds: Vec<String> },
    /// Fewer entries are purged than the last verification saw: a purge
    /// record was removed.
    PurgeRolledBack { expected: i64, found: i64 },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Modified { seq, detail } => write!(f, "entry {seq} was modified ({detail})"),
            Finding::Deleted { from_seq, to_seq } if from_seq == to_seq => {
                write!(f, "entry {from_seq} was deleted")
            }
            Finding::Deleted { from_seq, to_seq } => {
                write!(f, "entries {from_seq}–{to_seq} were deleted")
            }
            Finding::Reordered { seq, original_seq } => {
                write!(
                    f,
                    "entry {seq} was reordered: it was written as entry {original_seq}"
                )
            }
            Finding::Renumbered {
                from_seq,
                to_seq,
                by,
            } if *by < 0 => write!(
                f,
                "entr{} {}–{} inserted: entries {from_seq}–{to_seq} were written {} position{} earlier",
                if *by == -1 { "y" } else { "ies" },
                from_seq + by,
                from_seq - 1,
                -by,
                if *by == -1 { "" } else { "s" }
            ),
            Finding::Renumbered {
                from_seq,
                to_seq,
                by,
            } => write!(
                f,
                "{by} entr{} deleted before entry {from_seq} and the rest renumbered: entries {from_seq}–{to_seq} were written {by} position{} later",
                if *by == 1 { "y was" } else { "ies were" },
                if *by == 1 { "" } else { "s" }
            ),
            Finding::Inserted { seq } => {
                write!(
                    f,
                    "entry {seq} was inserted (it does not follow entry {} in the hash chain)",
                    seq - 1
                )
            }
            Finding::Forged { from_seq, to_seq } if from_seq == to_seq => write!(
                f,
                "entry {from_seq} was not written by Wardline (its authentication code does not match)"
            ),
            Finding::Forged { from_seq, to_seq } => write!(
                f,
                "entries {from_seq}–{to_seq} were not written by Wardline (their authentication codes do not match)"
            ),
            Finding::CheckpointMismatch { size, after } => write!(
                f,
                "the signed checkpoint at {size} entries does not match: entries {}–{size} were altered and their hashes recomputed",
                after + 1
            ),
            Finding::BadSignature { size, detail } => {
                write!(f, "checkpoint {size} has an invalid signature ({detail})")
            }
            Finding::Truncated { expected, found } => write!(
                f,
                "the log was truncated: signed checkpoints cover {expected} entries, only {found} remain"
            ),
            Finding::TrustedCheckpointChanged { size } => write!(
                f,
                "the checkpoint at {size} entries verified last time is missing or changed (rollback)"
            ),
            Finding::BadPurge { up_to, detail } => write!(
                f,
                "the purge of entries 1–{up_to} was not made by Wardline's retention ({detail})"
            ),
            Finding::PurgeDuringHold { up_to, holds } => write!(
                f,
                "entries 1–{up_to} were purged while legal hold{} {} {} open",
                if holds.len() == 1 { "" } else { "s" },
                holds.join(", "),
                if holds.len() == 1 { "was" } else { "were" }
            ),
            Finding::PurgeRolledBack { expected, found } => write!(
                f,
                "entries up to {expected} were purged when last verified, but the purge records now end at {found} (a purge record was removed)"
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: i64,
    pub entries_checked: i64,
    pub checkpoints_checked: i64,
    pub last_seq: i64,
    /// The newest checkpoint that verified with nothing wrong before it, with
    /// the purge point, the keys that signed and the holds open there: the
    /// state for the next run.
    pub trusted: Option<Trusted>,
    /// Keys that were trusted on first use (no key was pinned): whoever runs
    /// the verifier should compare them with a copy kept elsewhere.
    pub keys_trusted_on_first_use: Vec<String>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// How far out of place an entry is looked for before it is called modified.
const MOVE_WINDOW: i64 = 8;
const PAGE: i64 = 10_000;

/// Per-row observation before runs are summarised.
enum RowIssue {
    Moved { seq: i64, by: i64 },
    Other(Finding),
}

/// Public keys signatures are checked with: the pinned ones if any, else the
/// key provider's (remembered, so the caller can pin them).
struct Signatures<'a> {
    provider: &'a dyn KeyProvider,
    pinned: BTreeMap<String, [u8; 32]>,
    used: BTreeMap<String, [u8; 32]>,
}

impl Signatures<'_> {
    fn check(&mut self, key_id: &str, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let public = if self.pinned.is_empty() {
            match self.used.get(key_id) {
                Some(k) => *k,
                None => self
                    .provider
                    .checkpoint_public_key(key_id)
                    .map_err(|e| e.to_string())?,
            }
        } else {
            *self
                .pinned
                .get(key_id)
                .ok_or_else(|| format!("signed by key {key_id:?}, which is not a pinned key"))?
        };
        let sig = <[u8; 64]>::try_from(signature).map_err(|_| "signature is not 64 bytes")?;
        if !verify_checkpoint_signature(&public, message, &sig) {
            return Err("signature does not match".to_owned());
        }
        self.used.insert(key_id.to_owned(), public);
        Ok(())
    }
}

struct Walk<'a> {
    sigs: Signatures<'a>,
    /// Tree and chain recomputed from the rows' content.
    range: CompactRange,
    chain: Hash,
    /// The stored chain value of the previous row (for locating breaks).
    stored_chain: Hash,
    /// The sequence number the next row should have.
    next_seq: i64,
    /// The previous row had a finding, so its stored chain value says nothing
    /// about where the next row belongs.
    prev_row_flagged: bool,
    last_checkpoint: i64,
    /// A row-level finding since the last checkpoint (which then needs no
    /// second report as a checkpoint mismatch).
    row_finding_since_checkpoint: bool,
    trusted: Option<Trusted>,
    clean: bool,
    issues: Vec<RowIssue>,
    purged_up_to: i64,
    /// Legal holds placed and not yet released at this point of the walk.
    open_holds: BTreeSet<String>,
    /// Recorded purges by their event's seq.
    purge_events: BTreeMap<i64, PurgeRow>,
    /// Purges whose event the walk met (and checked).
    purge_events_seen: BTreeSet<i64>,
}

/// Verifies the log. `progress(done, total)` is called after each page.
pub async fn verify(
    store: &dyn AuditStore,
    keys: &dyn KeyProvider,
    opts: &Options,
    mut progress: impl FnMut(i64, i64),
) -> Result<Report, StoreError> {
    let trusted = opts.trusted.as_ref();
    let purges = store.audit_purges().await?;
    let purged = purges.iter().map(|p| p.up_to).max().unwrap_or(0);
    let last_seq = store.last_audit_entry().await?.map_or(0, |r| r.seq);
    let mut issues = Vec::new();

    let mut pinned = opts.pinned_keys.clone();
    for (id, hex_key) in trusted.map(|t| &t.keys).into_iter().flatten() {
        match hex::decode(hex_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            Some(k) => {
                pinned.entry(id.clone()).or_insert(k);
            }
            None => {
                return Err(StoreError::Corrupt(format!(
                    "the state's public key {id:?} is not 32 bytes of hex"
                )));
            }
        }
    }
    let first_use = pinned.is_empty();
    let sigs = Signatures {
        provider: keys,
        pinned,
        used: BTreeMap::new(),
    };

    // The purge point never moves backwards from what was verified.
    if let Some(t) = trusted
        && t.purged_up_to > purged
    {
        issues.push(RowIssue::Other(Finding::PurgeRolledBack {
            expected: t.purged_up_to,
            found: purged,
        }));
    }
    // Where to start: the last verified checkpoint (unless `full`), moved up
    // to the purge point if entries were purged past it; else the purge
    // point; else 0. The trusted checkpoint is checked either way.
    let mut start: Option<CheckpointRow> = None;
    let mut open_holds = BTreeSet::new();
    if let Some(t) = trusted {
        match store.audit_checkpoint(t.size).await? {
            Some(cp) if hex::encode(&cp.root) == t.root => {
                if !opts.full && cp.size >= purged {
                    start = Some(cp);
                    open_holds = t.open_holds.clone();
                }
            }
            _ => issues.push(RowIssue::Other(Finding::TrustedCheckpointChanged {
                size: t.size,
            })),
        }
    }
    if start.is_none() && purged > 0 {
        start = store.audit_checkpoint(purged).await?;
        if start.is_none() {
            return Err(StoreError::Corrupt(format!(
                "entries up to {purged} were purged but the checkpoint there is missing"
            )));
        }
    }
    let mut walk = Walk {
        sigs,
        range: CompactRange::new(),
        chain: CHAIN_GENESIS,
        stored_chain: CHAIN_GENESIS,
        next_seq: 1,
        prev_row_flagged: false,
        last_checkpoint: 0,
        row_finding_since_checkpoint: false,
        trusted: None,
        clean: issues.is_empty(),
        issues,
        purged_up_to: purged,
        open_holds,
        purge_events: purges
            .iter()
            .filter_map(|p| p.event_seq.map(|e| (e, p.clone())))
            .collect(),
        purge_events_seen: BTreeSet::new(),
    };
    check_purges(store, &purges, opts.retention_days, &mut walk).await?;
    if let Some(cp) = &start {
        check_signature(cp, &mut walk);
        walk.range = frontier_of(cp)?;
        walk.chain = hash32(&cp.chain_head, "chain head")?;
        walk.stored_chain = walk.chain;
        walk.last_checkpoint = cp.size;
        walk.next_seq = cp.size + 1;
        if walk.range.root().as_slice() != cp.root.as_slice() {
            walk.issues
                .push(RowIssue::Other(Finding::CheckpointMismatch {
                    size: cp.size,
                    after: 0,
                }));
        }
        if walk.clean && walk.issues.is_empty() {
            walk.trusted = Some(walk.state_at(cp));
        }
    }
    let first = walk.range.size() as i64;

    let checkpoints: BTreeMap<i64, CheckpointRow> = store
        .audit_checkpoints(first, i64::MAX)
        .await?
        .into_iter()
        .map(|c| (c.size, c))
        .collect();
    let mut checkpoints_checked = i64::from(start.is_some());
    let mut after = first;
    let mut checked = 0i64;
    loop {
        let rows = store.audit_entries(after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            check_row(row, keys, &mut walk);
            follow_holds_and_purges(row, &mut walk);
            checked += 1;
            let size = walk.range.size() as i64;
            if let Some(cp) = checkpoints.get(&size) {
                checkpoints_checked += 1;
                check_checkpoint(cp, &mut walk);
            }
        }
        progress(after - first, last_seq - first);
    }
    // The newest purge's own event lies above its purge point, so the walk
    // must have met it (unless this run started after it: an earlier run did).
    if let Some(p) = purges.iter().max_by_key(|p| p.up_to)
        && let Some(e) = p.event_seq
        && e > first
        && !walk.purge_events_seen.contains(&e)
    {
        walk.fail(Finding::BadPurge {
            up_to: p.up_to,
            detail: format!("its audit.purge event {e} is missing"),
        });
    }
    let found = walk.next_seq - 1;
    let expected = checkpoints
        .keys()
        .next_back()
        .copied()
        .max(trusted.map(|t| t.size))
        .unwrap_or(0);
    if expected > found {
        walk.issues
            .push(RowIssue::Other(Finding::Truncated { expected, found }));
    }
    let keys_trusted_on_first_use = if first_use {
        walk.sigs.used.keys().cloned().collect()
    } else {
        Vec::new()
    };
    Ok(Report {
        started_at: first,
        entries_checked: checked,
        checkpoints_checked,
        last_seq,
        trusted: walk.trusted,
        keys_trusted_on_first_use,
        findings: summarise(walk.issues),
    })
}

impl Walk<'_> {
    fn fail(&mut self, f: Finding) {
        self.clean = false;
        self.issues.push(RowIssue::Other(f));
    }

    /// The state a clean run ending at `cp` leaves for the next one.
    fn state_at(&self, cp: &CheckpointRow) -> Trusted {
        Trusted {
            size: cp.size,
            root: hex::encode(&cp.root),
            purged_up_to: self.purged_up_to,
            keys: self
                .sigs
                .used
                .iter()
                .chain(&self.sigs.pinned)
                .map(|(id, k)| (id.clone(), hex::encode(k)))
                .collect(),
            open_holds: self.open_holds.clone(),
        }
    }
}

/// Each purge record: signed by a trusted key, at a signed checkpoint older
/// than its cutoff, with a cutoff at least the retention period before it.
/// (Its event and the holds open then are checked as the walk meets it.)
async fn check_purges(
    store: &dyn AuditStore,
    purges: &[PurgeRow],
    retention_days: u32,
    walk: &mut Walk<'_>,
) -> Result<(), StoreError> {
    for p in purges {
        let bad = |detail: String| Finding::BadPurge {
            up_to: p.up_to,
            detail,
        };
        let (Some(days), Some(event_seq), Some(key_id), Some(sig)) =
            (p.retention_days, p.event_seq, &p.key_id, &p.signature)
        else {
            walk.fail(bad("its record is not signed".into()));
            continue;
        };
        let msg = purge_message(p.up_to, p.at_ms, p.cutoff_ms, days, event_seq);
        if let Err(detail) = walk.sigs.check(key_id, &msg, sig) {
            walk.fail(bad(format!("its record's {detail}")));
            continue;
        }
        if days < i64::from(retention_days) {
            walk.fail(bad(format!(
                "it kept {days} days, less than the {retention_days}-day retention"
            )));
        }
        if p.cutoff_ms > p.at_ms.saturating_sub(days.saturating_mul(DAY_MS)) {
            walk.fail(bad(format!(
                "its cutoff is less than {days} days before the purge"
            )));
        }
        if event_seq <= p.up_to {
            walk.fail(bad(format!(
                "its event {event_seq} is not above the purge point"
            )));
        }
        match store.audit_checkpoint(p.up_to).await? {
            None => walk.fail(bad("no checkpoint at its purge point".into())),
            Some(cp) => {
                check_signature(&cp, walk);
                if cp.at_ms >= p.cutoff_ms {
                    walk.fail(bad(format!(
                        "the checkpoint at {} entries was signed after its cutoff: those entries were younger than the retention period",
                        p.up_to
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Keeps track of open legal holds, and checks a purge's event when the
/// walk reaches it: the right action, target and time, and no hold open.
fn follow_holds_and_purges(row: &AuditRow, walk: &mut Walk<'_>) {
    let success = row.outcome == "success";
    match (row.action.as_str(), &row.target_id) {
        ("legal_hold.place", Some(id)) if success => {
            walk.open_holds.insert(id.clone());
        }
        ("legal_hold.release", Some(id)) if success => {
            walk.open_holds.remove(id);
        }
        _ => {}
    }
    let Some(p) = walk.purge_events.get(&row.seq).cloned() else {
        return;
    };
    walk.purge_events_seen.insert(row.seq);
    let up_to = p.up_to.to_string();
    if row.action != "audit.purge"
        || row.target_id.as_deref() != Some(up_to.as_str())
        || !success
        || row.at_ms != p.at_ms
    {
        walk.fail(Finding::BadPurge {
            up_to: p.up_to,
            detail: format!(
                "entry {} is not its audit.purge event (action {}, target {:?}, at {} ms)",
                row.seq, row.action, row.target_id, row.at_ms
            ),
        });
    }
    if !walk.open_holds.is_empty() {
        let holds = walk.open_holds.iter().cloned().collect();
        walk.fail(Finding::PurgeDuringHold {
            up_to: p.up_to,
            holds,
        });
    }
}

fn check_signature(cp: &CheckpointRow, walk: &mut Walk<'_>) {
    let msg = checkpoint_message(
        cp.size,
        cp.at_ms,
        &hex::encode(&cp.root),
        &hex::encode(&cp.chain_head),
    );
    if let Err(detail) = walk.sigs.check(&cp.key_id, &msg, &cp.signature) {
        walk.clean = false;
        walk.issues.push(RowIssue::Other(Finding::BadSignature {
            size: cp.size,
            detail,
        }));
    }
}

fn check_checkpoint(cp: &CheckpointRow, walk: &mut Walk<'_>) {
    let before = walk.issues.len();
    check_signature(cp, walk);
    let differs = walk.range.root().as_slice() != cp.root.as_slice()
        || walk.chain.as_slice() != cp.chain_head.as_slice();
    if differs && !walk.row_finding_since_checkpoint {
        walk.issues
            .push(RowIssue::Other(Finding::CheckpointMismatch {
                size: cp.size,
                after: walk.last_checkpoint,
            }));
    }
    if walk.issues.len() > before {
        walk.clean = false;
    }
    walk.last_checkpoint = cp.size;
    walk.row_finding_since_checkpoint = false;
    // A correctly signed checkpoint is an anchor: judge the next interval
    // against it, not against a recomputation an earlier change already bent.
    if let Ok(frontier) = frontier_of(cp)
        && frontier.root().as_slice() == cp.root.as_slice()
        && let Ok(chain) = hash32(&cp.chain_head, "chain head")
        && !matches!(walk.issues.last(), Some(RowIssue::Other(Finding::BadSignature { size, .. })) if *size == cp.size)
    {
        walk.range = frontier;
        walk.chain = chain;
    }
    if walk.clean {
        walk.trusted = Some(walk.state_at(cp));
    }
}

fn check_row(row: &AuditRow, keys: &dyn KeyProvider, walk: &mut Walk<'_>) {
    let issues_before = walk.issues.len();
    let gap = row.seq > walk.next_seq;
    if gap {
        walk.issues.push(RowIssue::Other(Finding::Deleted {
            from_seq: walk.next_seq,
            to_seq: row.seq - 1,
        }));
    }
    walk.next_seq = row.seq + 1;
    let stored_leaf = hash32(&row.leaf_hash, "leaf").unwrap_or([0u8; 32]);
    let stored_chain = hash32(&row.chain_hash, "chain").unwrap_or([0u8; 32]);
    let content_leaf = match record::decode(row) {
        Err(detail) => {
            walk.issues.push(RowIssue::Other(Finding::Modified {
                seq: row.seq,
                detail,
            }));
            None
        }
        Ok(mut event) => {
            let leaf = leaf_hash(&event.canonical_bytes());
            if leaf != stored_leaf {
                match find_original_position(&mut event, &stored_leaf) {
                    Some(by) => walk.issues.push(RowIssue::Moved { seq: row.seq, by }),
                    None => walk.issues.push(RowIssue::Other(Finding::Modified {
                        seq: row.seq,
                        detail: "content does not match its hash".into(),
                    })),
                }
            } else if keys
                .audit_entry_mac(&stored_chain)
                .map_or(true, |mac| mac.as_slice() != row.mac.as_slice())
            {
                walk.issues.push(RowIssue::Other(Finding::Forged {
                    from_seq: row.seq,
                    to_seq: row.seq,
                }));
            } else if !gap
                && !walk.prev_row_flagged
                && chain_hash(&walk.stored_chain, &stored_leaf) != stored_chain
            {
                walk.issues
                    .push(RowIssue::Other(Finding::Inserted { seq: row.seq }));
            }
            Some(leaf)
        }
    };
    let leaf = content_leaf.unwrap_or(stored_leaf);
    walk.chain = chain_hash(&walk.chain, &leaf);
    walk.range.push(leaf);
    walk.stored_chain = stored_chain;
    walk.prev_row_flagged = walk.issues.len() > issues_before;
    if walk.prev_row_flagged {
        walk.clean = false;
        walk.row_finding_since_checkpoint = true;
    }
}

/// If the row's content hashes to its stored leaf under another sequence
/// number, the row was moved: returns by how much.
fn find_original_position(
    event: &mut wardline_proto::audit::AuditEvent,
    stored_leaf: &Hash,
) -> Option<i64> {
    let seq = event.seq;
    let found = (1..=MOVE_WINDOW).flat_map(|d| [d, -d]).find(|d| {
        event.seq = seq + d;
        leaf_hash(&event.canonical_bytes()) == *stored_leaf
    });
    event.seq = seq;
    found
}

/// Turns per-row moves into reorders (swaps, single moves) and runs of
/// renumbered entries; drops the chain breaks a renumbering implies.
fn summarise(issues: Vec<RowIssue>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut i = 0;
    while i < issues.len() {
        match &issues[i] {
            RowIssue::Other(f) => out.push(f.clone()),
            RowIssue::Moved { seq, by } => {
                let (seq, by) = (*seq, *by);
                let mut j = i + 1;
                while let Some(RowIssue::Moved { seq: s, by: b }) = issues.get(j) {
                    if *b != by || *s != seq + (j - i) as i64 {
                        break;
                    }
                    j += 1;
                }
                if j - i >= 2 && by.abs() < (j - i) as i64 {
                    out.push(Finding::Renumbered {
                        from_seq: seq,
                        to_seq: seq + (j - i) as i64 - 1,
                        by,
                    });
                    i = j;
                    continue;
                }
                for issue in &issues[i..j] {
                    if let RowIssue::Moved { seq, by } = *issue {
                        out.push(Finding::Reordered {
                            seq,
                            original_seq: seq + by,
                        });
                    }
                }
                i = j;
                continue;
            }
        }
        i += 1;
    }
    // A run renumbered by -n starts right after the n inserted entries, which
    // show as chain breaks; they are reported once, as the insertion.
    let renumbered: Vec<(i64, i64)> = out
        .iter()
        .filter_map(|f| match f {
            Finding::Renumbered { from_seq, by, .. } => Some((*from_seq, *by)),
            _ => None,
        })
        .collect();
    out.retain(|f| match f {
        Finding::Inserted { seq } => !renumbered
            .iter()
            .any(|(from, by)| *by < 0 && (from + by..*from).contains(seq)),
        _ => true,
    });
    // Consecutive forged entries are one finding.
    let mut merged: Vec<Finding> = Vec::with_capacity(out.len());
    for f in out {
        if let (
            Some(Finding::Forged { to_seq, .. }),
            Finding::Forged {
                from_seq: next,
                to_seq: next_to,
            },
        ) = (merged.last_mut(), &f)
            && *next == *to_seq + 1
        {
            *to_seq = *next_to;
            continue;
        }
        merged.push(f);
    }
    merged
}
