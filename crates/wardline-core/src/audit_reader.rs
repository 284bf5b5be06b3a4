//! Reading the audit trail: search, the per-patient access report, exports,
//! checkpoints and proofs. Always scoped to the caller's organisation (proofs
//! show hashes only; an inclusion proof is given only for the caller's own
//! organisation's entries).

use std::collections::BTreeMap;
use std::sync::Arc;

use wardline_crypto::KeyProvider;
use wardline_crypto::merkle::{CompactRange, Hash, LeafSet, ProofError};
use wardline_proto::OrgId;
use wardline_proto::audit::{
    AccessReport, AccessorSummary, AuditEvent, AuditPage, AuditQuery, Checkpoint, ConsistencyProof,
    InclusionProof,
};

use crate::audit::{PATIENT_REF_PREFIX, frontier_of, hash32, record};
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult};
use crate::messaging::MessagingService;
use crate::vault::Vault;
use wardline_store::{AuditRow, AuditStore, CheckpointRow, StoreError};

/// Largest search page; also the page size of exports and reports.
pub const MAX_PAGE: i64 = 1000;
/// An access report covers at most this many events (a wider report is a
/// search or an export).
const REPORT_MAX_EVENTS: usize = 10_000;

#[derive(Clone)]
pub struct AuditService {
    store: Arc<dyn AuditStore>,
    keys: Arc<dyn KeyProvider>,
    vault: Vault,
    /// Where a patient reference's blind index is opened again (the
    /// conversations that name it, sealed).
    references: MessagingService,
}

fn decode_all(rows: &[AuditRow]) -> ApiResult<Vec<AuditEvent>> {
    rows.iter()
        .map(|r| {
            record::decode_for_wire(r).map_err(|e| {
                ApiError::internal(format!("audit entry {} is unreadable: {e}", r.seq))
            })
        })
        .collect()
}

fn proof_error(e: ProofError) -> ApiError {
    match e {
        ProofError::Purged(_) => ApiError::new(wardline_proto::ErrorCode::NotFound, e.to_string()),
        _ => ApiError::validation(e.to_string()),
    }
}

pub fn checkpoint_to_wire(cp: &CheckpointRow, public_key: &[u8; 32]) -> Checkpoint {
    Checkpoint {
        size: cp.size,
        at_ms: cp.at_ms,
        root: hex::encode(&cp.root),
        chain_head: hex::encode(&cp.chain_head),
        key_id: cp.key_id.clone(),
        public_key: hex::encode(public_key),
        signature: hex::encode(&cp.signature),
    }
}

impl AuditService {
    pub fn new(deps: &Deps, references: MessagingService) -> AuditService {
        AuditService {
            store: deps.audit_store.clone(),
            keys: deps.keys.clone(),
            vault: deps.vault.clone(),
            references,
        }
    }

    /// How a patient the caller names is stored in the trail: a patient
    /// record's id as it is, any other reference (an MRN) by its keyed
    /// blind index (finding M5 of 2026-11-30: MRNs were stored in clear).
    pub fn stored_patient(&self, org: OrgId, patient: &str) -> String {
        let patient = patient.trim();
        if uuid::Uuid::parse_str(patient).is_ok() {
            patient.to_owned()
        } else {
            crate::audit::patient_ref_key(&crate::policy::lifecycle::patient_index(
                &self.vault,
                org,
                patient,
            ))
        }
    }

    /// Gives the compliance officer the references behind stored blind
    /// indexes (one lookup per distinct index; an index no conversation
    /// names any more stays as it is).
    async fn open_patients(&self, org: OrgId, events: &mut [AuditEvent]) -> ApiResult<()> {
        let mut opened: BTreeMap<String, Option<String>> = BTreeMap::new();
        for e in events.iter_mut() {
            let Some(index) = e
                .patient_id
                .as_deref()
                .and_then(|p| p.strip_prefix(PATIENT_REF_PREFIX))
            else {
                continue;
            };
            let reference = match opened.get(index) {
                Some(r) => r.clone(),
                None => {
                    let r = self.references.patient_reference(org, index).await?;
                    opened.insert(index.to_owned(), r.clone());
                    r
                }
            };
            if let Some(r) = reference {
                e.patient_id = Some(r);
            }
        }
        Ok(())
    }

    pub fn validate(q: &AuditQuery) -> ApiResult<i64> {
        let limit = q.limit.unwrap_or(100);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::validation(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        if let (Some(f), Some(t)) = (q.from_ms, q.to_ms)
            && f >= t
        {
            return Err(ApiError::validation("from_ms must be before to_ms"));
        }
        if let Some(a) = &q.action
            && wardline_proto::audit::AuditAction::parse(a).is_none()
        {
            return Err(ApiError::validation(format!("unknown action {a:?}")));
        }
        Ok(limit)
    }

    pub async fn search(&self, org: OrgId, q: &AuditQuery) -> ApiResult<AuditPage> {
        let limit = Self::validate(q)?;
        let stored = AuditQuery {
            patient: q.patient.as_deref().map(|p| self.stored_patient(org, p)),
            ..q.clone()
        };
        let mut rows = self.store.search_audit(org, &stored, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut events = decode_all(&rows)?;
        self.open_patients(org, &mut events).await?;
        Ok(AuditPage {
            next_before: if more {
                events.last().map(|e| e.seq)
            } else {
                None
            },
            events,
        })
    }

    pub async fn access_report(
        &self,
        org: OrgId,
        patient_id: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> ApiResult<AccessReport> {
        let mut q = AuditQuery {
            patient: Some(patient_id.to_owned()),
            from_ms,
            to_ms,
            limit: Some(MAX_PAGE),
            ..AuditQuery::default()
        };
        let mut events = Vec::new();
        // The same keyset pages as search and export, until the cap.
        loop {
            let page = self.search(org, &q).await?;
            events.extend(page.events);
            match page.next_before {
                Some(b) if events.len() < REPORT_MAX_EVENTS => q.before_seq = Some(b),
                _ => break,
            }
        }
        events.truncate(REPORT_MAX_EVENTS);
        let mut by_actor: BTreeMap<(String, Option<String>), AccessorSummary> = BTreeMap::new();
        for e in &events {
            let key = (format!("{:?}", e.actor_kind), e.actor_id.clone());
            let s = by_actor.entry(key).or_insert_with(|| AccessorSummary {
                actor_kind: e.actor_kind,
                actor_id: e.actor_id.clone(),
                events: 0,
                first_ms: e.at_ms,
                last_ms: e.at_ms,
                devices: Vec::new(),
                actions: Vec::new(),
            });
            s.events += 1;
            s.first_ms = s.first_ms.min(e.at_ms);
            s.last_ms = s.last_ms.max(e.at_ms);
            if let Some(d) = e.device_id
                && !s.devices.contains(&d)
            {
                s.devices.push(d);
            }
            if !s.actions.contains(&e.action) {
                s.actions.push(e.action);
            }
        }
        let mut accessors: Vec<AccessorSummary> = by_actor.into_values().collect();
        accessors.sort_by_key(|a| std::cmp::Reverse(a.last_ms));
        Ok(AccessReport {
            patient_id: patient_id.to_owned(),
            from_ms,
            to_ms,
            accessors,
            events,
        })
    }

    async fn wire_checkpoint(&self, cp: &CheckpointRow) -> ApiResult<Checkpoint> {
        let public = self.keys.checkpoint_public_key(&cp.key_id)?;
        Ok(checkpoint_to_wire(cp, &public))
    }

    pub async fn latest_checkpoint(&self) -> ApiResult<Checkpoint> {
        let cp = self
            .store
            .latest_audit_checkpoint()
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    wardline_proto::ErrorCode::NotFound,
                    "no signed checkpoint yet: the first is signed after audit.checkpoint_every entries or audit.checkpoint_interval_secs (default 60 s)",
                )
            })?;
        self.wire_checkpoint(&cp).await
    }

    /// The purged prefix (as a compact range) and the stored leaf hashes up to `size`.
    async fn leaves(&self, size: i64) -> ApiResult<(CompactRange, Vec<Hash>)> {
        let purged = self.store.audit_purged_up_to().await?;
        let prefix = if purged > 0 {
            let cp = self.store.audit_checkpoint(purged).await?.ok_or_else(|| {
                ApiError::internal(format!("no checkpoint at the purge point {purged}"))
            })?;
            frontier_of(&cp)?
        } else {
            CompactRange::new()
        };
        if size < purged {
            return Err(proof_error(ProofError::Purged(purged as u64)));
        }
        let leaves = self
            .store
            .audit_leaf_hashes(purged, size)
            .await?
            .iter()
            .map(|h| hash32(h, "leaf hash"))
            .collect::<Result<Vec<_>, StoreError>>()?;
        if leaves.len() as i64 != size - purged {
            return Err(proof_error(ProofError::BeyondLog {
                size: size as u64,
                available: purged as u64 + leaves.len() as u64,
            }));
        }
        Ok((prefix, leaves))
    }

    /// Proof that entry `seq` is in the tree of `tree_size` entries (default:
    /// the latest checkpoint, so the root can be checked against a signature).
    pub async fn inclusion_proof(
        &self,
        org: OrgId,
        seq: i64,
        tree_size: Option<i64>,
    ) -> ApiResult<InclusionProof> {
        let size = match tree_size {
            Some(s) => s,
            None => self.latest_checkpoint().await?.size,
        };
        if seq < 1 || seq > size {
            return Err(ApiError::validation(format!(
                "seq must be between 1 and the tree size {size}"
            )));
        }
        let own = self.store.audit_entries(seq - 1, 1).await?;
        let Some(row) = own
            .first()
            .filter(|r| r.seq == seq && r.org_id == Some(org.to_string()))
        else {
            return Err(ApiError::not_found("audit entry"));
        };
        let (prefix, leaves) = self.leaves(size).await?;
        let set = LeafSet::new(&prefix, &leaves);
        let index = (seq - 1) as u64;
        let path = set
            .inclusion_proof(index, size as u64)
            .map_err(proof_error)?;
        Ok(InclusionProof {
            seq,
            tree_size: size,
            leaf_hash: hex::encode(&row.leaf_hash),
            path: path.iter().map(hex::encode).collect(),
            root: hex::encode(set.root(size as u64).map_err(proof_error)?),
        })
    }

    pub async fn consistency_proof(&self, from: i64, to: i64) -> ApiResult<ConsistencyProof> {
        if from < 0 || from > to {
            return Err(ApiError::validation("need 0 <= from_size <= to_size"));
        }
        let (prefix, leaves) = self.leaves(to).await?;
        let set = LeafSet::new(&prefix, &leaves);
        let path = set
            .consistency_proof(from as u64, to as u64)
            .map_err(proof_error)?;
        Ok(ConsistencyProof {
            from_size: from,
            to_size: to,
            from_root: hex::encode(set.root(from as u64).map_err(proof_error)?),
            to_root: hex::encode(set.root(to as u64).map_err(proof_error)?),
            path: path.iter().map(hex::encode).collect(),
        })
    }
}
