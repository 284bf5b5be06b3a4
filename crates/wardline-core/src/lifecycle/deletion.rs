//! Deletion under the lifecycle policy: the plan (shared by the preview and
//! the run), the run with its signed receipt, and the scheduled run under a
//! job lease (one node at a time).

use super::*;

/// How often a node looks for something to delete (deletion is idempotent;
/// the lease keeps it to one node at a time).
const RUN_EVERY: Duration = Duration::from_secs(300);
const LEASE: &str = "lifecycle-deletion";
/// Domain separation: a receipt's signature can never pass for a checkpoint's.
const RECEIPT_SIGNING_PREFIX: &[u8] = b"wardline-deletion-receipt-v1\n";

/// The deletions one conversation owes under a policy.
#[derive(Debug, Default)]
struct ConversationPlan {
    conversation: Uuid,
    delete: Vec<Uuid>,
    shred: Vec<Uuid>,
    attachments: Vec<Uuid>,
}

impl LifecycleService {
    /// What `policy` deletes in the organisation now.
    async fn plan(
        &self,
        org: OrgId,
        policy: &LifecyclePolicy,
        now: i64,
    ) -> ApiResult<(Vec<ConversationPlan>, DeletionCounts, i64)> {
        let holds = Holds::of(&self.store.list_holds(org).await?);
        let mut counts = DeletionCounts::default();
        let mut plans = Vec::new();
        for c in self.store.lifecycle_conversations(org).await? {
            let eff = effective(policy, &c.lifecycle);
            let cutoff = eff.retention.secs().map(|s| now - s);
            let held_conversation = holds.conversation(&c);
            let mut plan = ConversationPlan {
                conversation: c.id,
                ..Default::default()
            };
            for m in self.store.deletion_candidates(c.id, cutoff, now).await? {
                let retention_due = cutoff.is_some_and(|co| m.created_at < co);
                let expired = m.expires_at.is_some_and(|e| e <= now);
                let recalled = m.recalled_at.is_some() && m.has_body;
                if held_conversation || holds.sender(m.sender_user) {
                    counts.held_back += 1;
                    continue;
                }
                if retention_due {
                    counts.retention_messages += 1;
                    plan.delete.push(m.id);
                } else if within_minimum(policy, m.created_at, now) {
                    counts.kept_for_minimum += 1;
                } else if expired {
                    counts.expired_messages += 1;
                    plan.delete.push(m.id);
                } else if recalled {
                    counts.recalled_messages += 1;
                    plan.shred.push(m.id);
                }
            }
            if let Some(co) = cutoff
                && !held_conversation
            {
                plan.attachments = self.store.expired_attachments(c.id, co).await?;
                counts.attachments += plan.attachments.len() as i64;
            }
            if !(plan.delete.is_empty() && plan.shred.is_empty() && plan.attachments.is_empty()) {
                counts.conversations += 1;
                plans.push(plan);
            }
        }
        Ok((plans, counts, holds.count))
    }

    /// What the candidate policy would delete now, beside what the current one does.
    pub async fn preview(
        &self,
        org: OrgId,
        candidate: LifecyclePolicy,
    ) -> ApiResult<LifecyclePreview> {
        crate::policy::lifecycle::validate_policy(&candidate)?;
        let now = self.clock.now();
        let current = self.store.lifecycle_policy(org).await?;
        Ok(LifecyclePreview {
            would_delete: self.plan(org, &candidate, now).await?.1,
            current_policy_deletes: self.plan(org, &current, now).await?.1,
        })
    }

    /// Deletes what the policy says now and returns the signed receipt (also
    /// stored and in the audit trail). `None` when scheduled and nothing was due.
    pub async fn run(
        &self,
        org: OrgId,
        run_by: Option<UserId>,
    ) -> ApiResult<Option<DeletionReceipt>> {
        let started_at = self.clock.now();
        let policy = self.store.lifecycle_policy(org).await?;
        let mut holds_seen = active_hold_ids(&self.store.list_holds(org).await?);
        let (mut plans, mut deleted, mut holds) = self.plan(org, &policy, started_at).await?;
        // A hold placed while the plan was made wins: plan again until the
        // holds stand still, so nothing it covers is deleted.
        loop {
            let now_held = active_hold_ids(&self.store.list_holds(org).await?);
            if now_held == holds_seen {
                break;
            }
            holds_seen = now_held;
            (plans, deleted, holds) = self.plan(org, &policy, started_at).await?;
        }
        if plans.is_empty() && run_by.is_none() {
            return Ok(None);
        }
        let mut keys_destroyed = 0;
        for p in &plans {
            keys_destroyed += self
                .store
                .delete_messages(p.conversation, &p.delete)
                .await?;
            keys_destroyed += self.store.shred_bodies(p.conversation, &p.shred).await?;
            keys_destroyed += self
                .store
                .delete_attachments(p.conversation, &p.attachments)
                .await?;
        }
        let mut receipt = DeletionReceipt {
            id: Uuid::new_v4(),
            org_id: org.into(),
            run_by: run_by.map_or_else(|| "scheduled".to_owned(), |u| u.to_string()),
            started_at,
            finished_at: self.clock.now(),
            policy_sha256: hex::encode(Sha256::digest(
                serde_json::to_vec(&policy).expect("policy serialises"),
            )),
            policy,
            deleted,
            keys_destroyed,
            holds_respected: holds,
            signing_key_id: String::new(),
            signature: String::new(),
        };
        let sig = self
            .keys
            .sign_checkpoint(&receipt_message(&receipt))
            .map_err(ApiError::internal)?;
        receipt.signing_key_id = sig.key_id;
        receipt.signature = base64::engine::general_purpose::STANDARD.encode(sig.signature);
        let json = serde_json::to_string(&receipt).expect("receipt serialises");
        self.store
            .insert_receipt(org, receipt.id, started_at, &json)
            .await?;
        let d = &receipt.deleted;
        let mut event = NewEvent::service("lifecycle", AuditAction::LifecycleRun)
            .target("deletion_receipt", receipt.id)
            .reason(format!(
            "run_by={} receipt_sha256={} retention={} expired={} recalled={} attachments={} held_back={} kept_for_minimum={} keys_destroyed={}",
            receipt.run_by,
            hex::encode(Sha256::digest(json.as_bytes())),
            d.retention_messages,
            d.expired_messages,
            d.recalled_messages,
            d.attachments,
            d.held_back,
            d.kept_for_minimum,
            keys_destroyed
        ));
        event.org_id = Some(org);
        self.audit.record(event).await?;
        tracing::info!(org = %org, keys_destroyed, "lifecycle deletion run");
        Ok(Some(receipt))
    }

    pub async fn receipts(&self, org: OrgId) -> ApiResult<Vec<DeletionReceipt>> {
        self.store
            .list_receipts(org, 100)
            .await?
            .iter()
            .map(|j| {
                serde_json::from_str(j)
                    .map_err(|e| ApiError::internal(format!("stored receipt: {e}")))
            })
            .collect()
    }

    /// Checks a receipt's signature with the installation's audit keys.
    pub fn verify_receipt(&self, r: &DeletionReceipt) -> bool {
        let Ok(public) = self.keys.checkpoint_public_key(&r.signing_key_id) else {
            return false;
        };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&r.signature) else {
            return false;
        };
        let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) else {
            return false;
        };
        wardline_crypto::key_provider::verify_checkpoint_signature(
            &public,
            &receipt_message(r),
            &sig,
        )
    }

    /// Deletion for every organisation every few minutes, on one node at a
    /// time (a lease); a crashed node's lease lapses.
    pub fn worker(self, node: String) -> Box<dyn crate::worker::Worker> {
        let node = Arc::new(node);
        crate::worker::Every::new("lifecycle-deletion", RUN_EVERY, move || {
            let (service, node) = (self.clone(), node.clone());
            async move {
                if let Err(e) = service.run_all(&node).await {
                    tracing::error!(error = %e.message, "lifecycle deletion run failed");
                }
            }
        })
    }

    pub async fn run_all(&self, node: &str) -> ApiResult<()> {
        let now = self.clock.now();
        let lease = RUN_EVERY.as_secs() as i64 * 2;
        if !self.store.take_lease(LEASE, node, now, now + lease).await? {
            return Ok(());
        }
        for org in self.store.org_ids().await? {
            self.run(org, None).await?;
        }
        Ok(())
    }
}

/// Whether the retention minimum still keeps a message sent at `created_at`.
pub(super) fn within_minimum(policy: &LifecyclePolicy, created_at: i64, now: i64) -> bool {
    now - created_at < policy.minimum_days * DAY
}

/// What a receipt's signature covers: its canonical JSON without the
/// signature and key id (the key id only picks the key that must verify it).
fn receipt_message(r: &DeletionReceipt) -> Vec<u8> {
    let mut unsigned = r.clone();
    unsigned.signature = String::new();
    unsigned.signing_key_id = String::new();
    let mut msg = RECEIPT_SIGNING_PREFIX.to_vec();
    msg.extend(serde_json::to_vec(&unsigned).expect("receipt serialises"));
    msg
}
