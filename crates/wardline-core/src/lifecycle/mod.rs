//! Message lifecycle and device control: the lifecycle policy (retention,
//! lifespans, recall window) and its deletion runs with signed receipts, legal
//! holds, message recall, and remote wipe of lost devices.
//!
//! Order of precedence (see `wardline_proto::lifecycle`): legal hold beats
//! everything; then the retention minimum; then retention; then lifespans and
//! recall. Devices stop receiving a recalled or expired message at once (the
//! inbox leaves it out); the server's copy goes when the rules allow.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wardline_crypto::KeyProvider;
use wardline_proto::audit::AuditAction;
use wardline_proto::lifecycle::*;
use wardline_proto::messaging::MessageKind;
use wardline_proto::{DeviceId, ErrorCode, OrgId, Permission, UserId};

use crate::audit::{AuditLog, AuditScope, NewEvent};
use crate::authz::Principal;
use crate::clock::Clock;
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult, check_text, found};
use crate::messaging::MessagingService;
use crate::policy::lifecycle::{check_retention, effective, patient_index};
use crate::vault::{FieldRef, Vault};
use wardline_store::lifecycle::*;
use wardline_store::messaging::{MessageRow, MessagingStore};
use wardline_store::{Store, StoreError};

const DAY: i64 = 86_400;
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

/// Which active holds cover what.
struct Holds {
    users: HashSet<String>,
    conversations: HashSet<String>,
    patients: HashSet<String>,
    count: i64,
}

impl Holds {
    fn of(rows: &[HoldRow]) -> Holds {
        let mut h = Holds {
            users: HashSet::new(),
            conversations: HashSet::new(),
            patients: HashSet::new(),
            count: 0,
        };
        for r in rows.iter().filter(|r| r.released_at.is_none()) {
            h.count += 1;
            match r.scope {
                HoldScope::User => h.users.insert(r.target.clone()),
                HoldScope::Conversation => h.conversations.insert(r.target.clone()),
                HoldScope::Patient => h.patients.insert(r.target.clone()),
            };
        }
        h
    }

    fn conversation(&self, c: &LifecycleConversation) -> bool {
        self.conversations.contains(&c.id.to_string())
            || c.patient_ref_bidx
                .as_ref()
                .is_some_and(|b| self.patients.contains(b))
            || c.members
                .iter()
                .any(|u| self.users.contains(&u.to_string()))
    }

    fn sender(&self, u: Option<UserId>) -> bool {
        u.is_some_and(|u| self.users.contains(&u.to_string()))
    }
}

#[derive(Clone)]
pub struct LifecycleService {
    store: Arc<dyn LifecycleStore>,
    messages: Arc<dyn MessagingStore>,
    directory: Arc<dyn Store>,
    messaging: MessagingService,
    vault: Vault,
    keys: Arc<dyn KeyProvider>,
    clock: Arc<dyn Clock>,
    audit: AuditLog,
}

impl LifecycleService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(deps: &Deps, messaging: MessagingService) -> Self {
        let (store, messages, directory, vault, keys, clock, audit) = (
            deps.lifecycle.clone(),
            deps.messaging.clone(),
            deps.store.clone(),
            deps.vault.clone(),
            deps.keys.clone(),
            deps.clock.clone(),
            deps.audit.clone(),
        );
        LifecycleService {
            store,
            messages,
            directory,
            messaging,
            vault,
            keys,
            clock,
            audit,
        }
    }

    // ------------------------------------------------------------ policy

    pub async fn policy(&self, org: OrgId) -> ApiResult<LifecyclePolicy> {
        Ok(self.store.lifecycle_policy(org).await?)
    }

    pub async fn set_policy(
        &self,
        org: OrgId,
        p: LifecyclePolicy,
        audit: &AuditScope,
    ) -> ApiResult<LifecyclePolicy> {
        crate::policy::lifecycle::validate_policy(&p)?;
        let before = self.store.lifecycle_policy(org).await?;
        self.store.set_lifecycle_policy(org, &p).await?;
        audit.changed(&before, &p);
        Ok(p)
    }

    /// Sets a conversation's own retention and lifespan. Members may set the
    /// lifespan; retention is the compliance side's (`lifecycle_manage`).
    pub async fn set_conversation_lifecycle(
        &self,
        p: &Principal,
        id: Uuid,
        own: ConversationLifecycle,
        audit: &AuditScope,
    ) -> ApiResult<wardline_proto::messaging::Conversation> {
        audit.target("conversation", id);
        let c = found(
            self.messages.get_conversation(p.org_id, id).await,
            "conversation",
        )?;
        let member = self.messages.is_member(id, p.user_id).await?;
        if !member && !p.has(Permission::LifecycleManage) {
            return Err(ApiError::not_found("conversation"));
        }
        if own.retention != c.lifecycle.retention {
            p.authorize(Permission::LifecycleManage)?;
        }
        let policy = self.store.lifecycle_policy(p.org_id).await?;
        if let Some(r) = own.retention {
            check_retention(r, "retention", policy.minimum_days)?;
        }
        // Devices delete their own copies when a lifespan ends, where no
        // server-side hold reaches: under a legal hold no lifespan is set
        // (issue 18, item 8).
        if own.message_ttl_secs.is_some() && own.message_ttl_secs != c.lifecycle.message_ttl_secs {
            let holds = Holds::of(&self.store.list_holds(p.org_id).await?);
            let held = self
                .store
                .lifecycle_conversations(p.org_id)
                .await?
                .iter()
                .any(|lc| lc.id == id && holds.conversation(lc));
            if held {
                return Err(ApiError::conflict(
                    "a legal hold covers this conversation: its messages cannot be given a lifespan until the hold is released",
                ));
            }
        }
        if let Some(t) = own.message_ttl_secs
            && !(60..=policy.max_ttl_secs).contains(&t)
        {
            return Err(ApiError::validation(format!(
                "message_ttl_secs must be between 60 and {} (organisation policy)",
                policy.max_ttl_secs
            )));
        }
        self.store
            .set_conversation_lifecycle(p.org_id, id, &own)
            .await?;
        audit.changed(&c.lifecycle, &own);
        let c = self.messages.get_conversation(p.org_id, id).await?;
        self.messaging.to_wire(&c, Some(audit)).await
    }

    // --------------------------------------------------------- deletion

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
            org_id: org,
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

    // ------------------------------------------------------- legal hold

    pub async fn place_hold(
        &self,
        p: &Principal,
        req: PlaceHoldRequest,
        audit: &AuditScope,
    ) -> ApiResult<LegalHold> {
        let matter = req.matter.trim();
        let reason = req.reason.trim();
        let target = req.target.trim();
        check_text(matter, "matter", 200)?;
        check_text(reason, "reason", 2000)?;
        let stored_target = match req.scope {
            HoldScope::User => {
                let id = parse_id(target, "user")?;
                found(self.directory.get_user(p.org_id, id).await, "user")?;
                id.to_string()
            }
            HoldScope::Conversation => {
                let id = parse_id(target, "conversation")?;
                found(
                    self.messages.get_conversation(p.org_id, id).await,
                    "conversation",
                )?;
                id.to_string()
            }
            HoldScope::Patient => {
                if target.is_empty() || target.chars().count() > 100 {
                    return Err(ApiError::validation(
                        "a patient reference must be 1 to 100 characters",
                    ));
                }
                let index = patient_index(&self.vault, p.org_id, target);
                audit.patient_ref(&index);
                index
            }
        };
        let id = Uuid::new_v4();
        audit.target("legal_hold", id);
        let (key_row, key) = self.vault.new_key_row(p.org_id)?;
        let row_id = id.to_string();
        let seal = |col: &str, v: &str| {
            Vault::seal(
                &key,
                FieldRef {
                    table: "legal_holds",
                    row_id: &row_id,
                    column: col,
                },
                v,
            )
        };
        let row = HoldRow {
            id,
            org_id: p.org_id,
            scope: req.scope,
            target: stored_target,
            dek_id: key_row.id.clone(),
            target_enc: seal("target", target),
            matter_enc: seal("matter", matter),
            reason_enc: seal("reason", reason),
            placed_by: p.user_id,
            placed_at: self.clock.now(),
            released_by: None,
            released_at: None,
            release_reason_enc: None,
        };
        self.store.insert_hold(&row, &key_row).await?;
        self.open_hold(&row).await
    }

    async fn open_hold(&self, h: &HoldRow) -> ApiResult<LegalHold> {
        let key = self.vault.record_key(&h.dek_id).await?;
        let row_id = h.id.to_string();
        let open = |col: &str, v: &[u8]| -> ApiResult<String> {
            Ok(Vault::open_str(
                &key,
                FieldRef {
                    table: "legal_holds",
                    row_id: &row_id,
                    column: col,
                },
                v,
            )?)
        };
        Ok(LegalHold {
            id: h.id,
            scope: h.scope,
            target: open("target", &h.target_enc)?,
            matter: open("matter", &h.matter_enc)?,
            reason: open("reason", &h.reason_enc)?,
            placed_by: h.placed_by,
            placed_at: h.placed_at,
            released_by: h.released_by,
            released_at: h.released_at,
            release_reason: h
                .release_reason_enc
                .as_deref()
                .map(|v| open("release_reason", v))
                .transpose()?,
        })
    }

    pub async fn holds(&self, org: OrgId) -> ApiResult<LegalHoldList> {
        let mut holds = Vec::new();
        for h in self.store.list_holds(org).await? {
            holds.push(self.open_hold(&h).await?);
        }
        Ok(LegalHoldList { holds })
    }

    pub async fn release_hold(
        &self,
        p: &Principal,
        id: Uuid,
        req: ReleaseHoldRequest,
        audit: &AuditScope,
    ) -> ApiResult<LegalHold> {
        audit.target("legal_hold", id);
        let reason = req.reason.trim();
        check_text(reason, "reason", 2000)?;
        let h = found(self.store.get_hold(p.org_id, id).await, "legal hold")?;
        let key = self.vault.record_key(&h.dek_id).await?;
        let sealed = Vault::seal(
            &key,
            FieldRef {
                table: "legal_holds",
                row_id: &id.to_string(),
                column: "release_reason",
            },
            reason,
        );
        if !self
            .store
            .release_hold(p.org_id, id, p.user_id, self.clock.now(), &sealed)
            .await?
        {
            return Err(ApiError::conflict("this hold was released already"));
        }
        self.open_hold(&self.store.get_hold(p.org_id, id).await?)
            .await
    }

    // ------------------------------------------------------------ recall

    pub async fn recall(
        &self,
        p: &Principal,
        conversation: Uuid,
        message: Uuid,
        audit: &AuditScope,
    ) -> ApiResult<RecallResult> {
        audit.target("message", message);
        let c = found(
            self.messages.get_conversation(p.org_id, conversation).await,
            "conversation",
        )?;
        let admin = p.has(Permission::MessagesRecall);
        if !admin && !self.messages.is_member(conversation, p.user_id).await? {
            return Err(ApiError::not_found("conversation"));
        }
        self.messaging.tag_patient(&c, audit).await?;
        let m = match self.messages.get_message(conversation, message).await {
            Ok(m) if m.kind == MessageKind::Application => m,
            Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::not_found("message")),
            Err(e) => return Err(e.into()),
        };
        if m.recalled_at.is_some() {
            return Err(ApiError::conflict("this message was recalled already"));
        }
        let policy = self.store.lifecycle_policy(p.org_id).await?;
        let now = self.clock.now();
        if !admin {
            if m.sender_user != Some(p.user_id) {
                return Err(ApiError::forbidden(
                    "only the sender (or an administrator) can recall a message",
                ));
            }
            if now - m.created_at > policy.recall_window_secs {
                return Err(ApiError::forbidden(format!(
                    "the recall window ({} seconds after sending) has passed; ask an administrator",
                    policy.recall_window_secs
                )));
            }
        }
        let holds = Holds::of(&self.store.list_holds(p.org_id).await?);
        let lc = LifecycleConversation {
            id: conversation,
            lifecycle: c.lifecycle.clone(),
            patient_ref_bidx: c.patient_ref_bidx.clone(),
            members: self.messages.conversation_members(conversation).await?,
        };
        let held = holds.conversation(&lc) || holds.sender(m.sender_user);
        let server_copy = if held {
            ServerCopy::KeptUnderLegalHold
        } else if within_minimum(&policy, m.created_at, now) {
            ServerCopy::KeptForRetentionMinimum
        } else {
            ServerCopy::Deleted
        };
        let recipients = self
            .messages
            .receipts(message)
            .await?
            .into_iter()
            .map(|r| ReadBeforeRecall {
                user_id: r.user_id,
                device_id: r.device_id,
                delivered_at: r.delivered_at,
                read_at: r.read_at,
            })
            .collect();
        let notice = MessageRow {
            recalls: Some(message),
            ..MessageRow::notice(MessageKind::Recall, conversation, c.epoch, p.user_id, now)
        };
        let Some(woken) = self
            .store
            .recall(
                conversation,
                message,
                server_copy == ServerCopy::Deleted,
                &notice,
            )
            .await?
        else {
            return Err(ApiError::conflict("this message was recalled already"));
        };
        let devices_notified = woken.len() as i64;
        self.messaging.wake(&woken).await;
        Ok(RecallResult {
            message_id: message,
            recalled_at: now,
            recipients,
            server_copy,
            devices_notified,
        })
    }

    // ------------------------------------------------------ lost devices

    /// Marks a device lost: its sessions end now, it is retired and taken out
    /// of every conversation (members' clients commit its removal), and the
    /// next time it calls the server it is told to erase itself.
    pub async fn wipe(
        &self,
        p: &Principal,
        device: DeviceId,
        req: WipeDeviceRequest,
        audit: &AuditScope,
    ) -> ApiResult<DeviceWipe> {
        audit.target("device", device);
        let reason = req.reason.trim();
        check_text(reason, "reason", 500)?;
        let d = found(self.messages.get_device(p.org_id, device).await, "device")?;
        if d.user_id != p.user_id {
            p.authorize(Permission::DevicesManage)?;
        }
        self.wipe_device(p.org_id, d.user_id, device, p.user_id, reason)
            .await
    }

    /// Wipes every device of a departing user (selective wipe on offboarding).
    pub async fn wipe_user_devices(
        &self,
        org: OrgId,
        user: UserId,
        actor: UserId,
    ) -> ApiResult<Vec<DeviceWipe>> {
        let mut out = Vec::new();
        for d in self.messages.list_user_devices(org, user).await? {
            match self
                .wipe_device(org, user, d.device.id, actor, "user deprovisioned")
                .await
            {
                Ok(w) => out.push(w),
                Err(e) if e.code == ErrorCode::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn wipe_device(
        &self,
        org: OrgId,
        user: UserId,
        device: DeviceId,
        actor: UserId,
        reason: &str,
    ) -> ApiResult<DeviceWipe> {
        let now = self.clock.now();
        let mut row = WipeRow {
            device_id: device,
            org_id: org,
            user_id: user,
            requested_by: actor,
            requested_at: now,
            reason: reason.to_owned(),
            sessions_ended: 0,
            conversations: 0,
            confirmed_at: None,
        };
        row.sessions_ended = match self.store.begin_wipe(&row).await {
            Ok(n) => n,
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::conflict("this device was wiped already"));
            }
            Err(e) => return Err(e.into()),
        };
        for conv in self.store.device_conversations(device).await? {
            let c = self.messages.get_conversation(org, conv).await?;
            let notice = MessageRow::membership_notice(conv, c.epoch, actor, now);
            let (changed, woken) = self
                .store
                .retire_from_conversation(conv, device, &notice)
                .await?;
            if changed {
                row.conversations += 1;
                self.messaging.wake(&woken).await;
            }
        }
        self.store
            .set_wipe_conversations(device, row.conversations)
            .await?;
        Ok(wire_wipe(&row))
    }

    pub async fn wipes(&self, p: &Principal) -> ApiResult<DeviceWipeList> {
        let user = (!p.has(Permission::DevicesManage)).then_some(p.user_id);
        Ok(DeviceWipeList {
            wipes: self
                .store
                .list_wipes(p.org_id, user)
                .await?
                .iter()
                .map(wire_wipe)
                .collect(),
        })
    }

    /// The confirmation of the wiped device's own session (`session` is one
    /// the wipe ended: [`crate::auth::AuthService::wiped_session`]).
    pub async fn confirm_wipe(
        &self,
        session: &wardline_store::SessionRow,
        confirmation: WipeConfirmation,
    ) -> ApiResult<DeviceWipe> {
        let (org, user, device) = (session.org_id, session.user_id, session.device_id);
        if !confirmation.erased {
            return Err(ApiError::validation(
                "confirm only after erasing the local store and keys (erased: true)",
            ));
        }
        self.store
            .confirm_wipe(org, user, device, self.clock.now())
            .await?;
        let w = self
            .store
            .get_wipe(org, user, device)
            .await?
            .ok_or_else(|| ApiError::not_found("device wipe"))?;
        Ok(wire_wipe(&w))
    }
}

/// Whether the retention minimum still keeps a message sent at `created_at`.
fn within_minimum(policy: &LifecyclePolicy, created_at: i64, now: i64) -> bool {
    now - created_at < policy.minimum_days * DAY
}

fn active_hold_ids(rows: &[HoldRow]) -> Vec<Uuid> {
    rows.iter()
        .filter(|r| r.released_at.is_none())
        .map(|r| r.id)
        .collect()
}

fn parse_id(s: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| ApiError::validation(format!("target must be a {what} id")))
}

fn wire_wipe(w: &WipeRow) -> DeviceWipe {
    DeviceWipe {
        device_id: w.device_id,
        user_id: w.user_id,
        status: if w.confirmed_at.is_some() {
            WipeStatus::Confirmed
        } else {
            WipeStatus::Pending
        },
        requested_by: w.requested_by,
        requested_at: w.requested_at,
        reason: w.reason.clone(),
        confirmed_at: w.confirmed_at,
        sessions_ended: w.sessions_ended,
        conversations: w.conversations,
    }
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
