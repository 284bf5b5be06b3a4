//! `wardline audit verify`: recompute the log from the stored rows and compare
//! it with what was written (per-row leaf hashes and chain links) and with what
//! was signed (checkpoints).
//!
//! Trust comes only from checkpoint signatures (the key provider's Ed25519 key)
//! and from the checkpoint the caller verified last time (`trusted`, kept
//! outside the database by the CLI). Stored leaf and chain hashes are only used
//! to *locate* a change: an editor who does not recompute them is pinned to the
//! exact row; one who does is still caught by the next checkpoint's root.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wardline_crypto::merkle::{CHAIN_GENESIS, CompactRange, Hash, chain_hash, leaf_hash};
use wardline_crypto::{KeyProvider, verify_checkpoint_signature};
use wardline_proto::audit::checkpoint_message;

use super::{frontier_of, hash32, record};
use crate::store::{AuditRow, AuditStore, CheckpointRow, StoreError};

/// The checkpoint a previous verification ended at: the next run starts there
/// (incremental) and fails if the log no longer agrees with it (rollback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trusted {
    pub size: i64,
    pub root: String,
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
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: i64,
    pub entries_checked: i64,
    pub checkpoints_checked: i64,
    pub last_seq: i64,
    /// The newest checkpoint that verified with nothing wrong before it: the
    /// starting point of the next incremental run.
    pub trusted: Option<Trusted>,
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

struct Walk {
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
}

/// Verifies the log. `progress(done, total)` is called after each page.
pub async fn verify(
    store: &dyn AuditStore,
    keys: &dyn KeyProvider,
    trusted: Option<&Trusted>,
    mut progress: impl FnMut(i64, i64),
) -> Result<Report, StoreError> {
    let purged = store.audit_purged_up_to().await?;
    let last_seq = store.last_audit_entry().await?.map_or(0, |r| r.seq);
    let mut issues = Vec::new();

    // Where to start: the last verified checkpoint, else the purge point, else 0.
    let mut start: Option<CheckpointRow> = None;
    if let Some(t) = trusted {
        match store.audit_checkpoint(t.size).await? {
            Some(cp) if hex::encode(&cp.root) == t.root => start = Some(cp),
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
    };
    if let Some(cp) = &start {
        check_signature(keys, cp, &mut walk);
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
            walk.trusted = Some(Trusted {
                size: cp.size,
                root: hex::encode(&cp.root),
            });
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
            checked += 1;
            let size = walk.range.size() as i64;
            if let Some(cp) = checkpoints.get(&size) {
                checkpoints_checked += 1;
                check_checkpoint(keys, cp, &mut walk);
            }
        }
        progress(after - first, last_seq - first);
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
    Ok(Report {
        started_at: first,
        entries_checked: checked,
        checkpoints_checked,
        last_seq,
        trusted: walk.trusted,
        findings: summarise(walk.issues),
    })
}

fn check_signature(keys: &dyn KeyProvider, cp: &CheckpointRow, walk: &mut Walk) {
    let msg = checkpoint_message(
        cp.size,
        cp.at_ms,
        &hex::encode(&cp.root),
        &hex::encode(&cp.chain_head),
    );
    let detail = match (
        keys.checkpoint_public_key(&cp.key_id),
        <[u8; 64]>::try_from(cp.signature.as_slice()),
    ) {
        (Ok(public), Ok(sig)) if verify_checkpoint_signature(&public, &msg, &sig) => return,
        (Ok(_), Ok(_)) => "signature does not match".to_owned(),
        (Err(e), _) => e.to_string(),
        (_, Err(_)) => "signature is not 64 bytes".to_owned(),
    };
    walk.clean = false;
    walk.issues.push(RowIssue::Other(Finding::BadSignature {
        size: cp.size,
        detail,
    }));
}

fn check_checkpoint(keys: &dyn KeyProvider, cp: &CheckpointRow, walk: &mut Walk) {
    let before = walk.issues.len();
    check_signature(keys, cp, walk);
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
        walk.trusted = Some(Trusted {
            size: cp.size,
            root: hex::encode(&cp.root),
        });
    }
}

fn check_row(row: &AuditRow, keys: &dyn KeyProvider, walk: &mut Walk) {
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
