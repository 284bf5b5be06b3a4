//! The MLS delivery service: devices and their key packages, conversations
//! and who should be in them, ordering and fan-out of MLS messages, sync,
//! receipts and encrypted attachments.
//!
//! The server decides *who* belongs in a conversation (organisation, policy,
//! membership); the MLS group is the cryptographic enforcement of that, kept
//! in line by the members' clients. When the server's view changes (a member
//! added or removed, a new device registered) it marks the devices
//! `pending_add` / `pending_remove` and tells the members' devices; any of
//! them commits the change (one commit per epoch wins, the others get
//! `stale_epoch` and see the winner's commit in their inbox). Until a removed
//! member's devices are out of the group, no application message is accepted,
//! so nothing sent after a removal is encrypted to them.

pub mod acks;
pub mod hub;
pub mod routes;
pub mod ws;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;
use wardline_crypto::mls::{self, FramedContent};
use wardline_proto::directory::UserStatus;
use wardline_proto::lifecycle::{DevicePosture, DeviceStatus, LifecyclePolicy};
use wardline_proto::messaging::*;
use wardline_proto::{DeviceId, ErrorCode, OrgId, UserId};

use crate::audit::AuditScope;
use crate::authz::Principal;
use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use crate::vault::{FieldRef, Vault};
pub use hub::DeliveryHub;
use wardline_store::messaging::*;
use wardline_store::{Bus, LifecycleStore, RoutingStore, Store, StoreError};

/// Most key packages accepted in one upload, and most a device may hold.
const MAX_KEY_PACKAGES_PER_UPLOAD: usize = 200;
const MAX_KEY_PACKAGE_BYTES: usize = 16 * 1024;
const MAX_SYNC_LIMIT: i64 = 500;

#[derive(Clone)]
pub struct MessagingService {
    store: Arc<dyn MessagingStore>,
    lifecycle: Arc<dyn LifecycleStore>,
    directory_store: Arc<dyn Store>,
    routing: Arc<dyn RoutingStore>,
    /// Wake-ups for the other nodes' sockets.
    bus: Arc<dyn Bus>,
    vault: Vault,
    clock: Arc<dyn Clock>,
    pub hub: DeliveryHub,
    acks: acks::AckBatcher,
    /// Attachment uploads being read, per session (see [`UploadPermit`]).
    uploads: Arc<std::sync::Mutex<std::collections::HashMap<wardline_proto::SessionId, usize>>>,
}

/// Uploads one session may have in flight at once: each may hold up to the
/// organisation's attachment limit in memory while it is read.
pub const MAX_UPLOADS_PER_SESSION: usize = 2;

/// Leave to read one attachment body: its size limit, the uploading device,
/// and a place among the session's uploads (given back when dropped).
pub struct UploadPermit {
    pub max_bytes: i64,
    conversation: Uuid,
    device: Uuid,
    org: OrgId,
    session: wardline_proto::SessionId,
    uploads: Arc<std::sync::Mutex<std::collections::HashMap<wardline_proto::SessionId, usize>>>,
}

impl Drop for UploadPermit {
    fn drop(&mut self) {
        let mut u = self.uploads.lock().expect("uploads lock");
        if let Some(n) = u.get_mut(&self.session) {
            *n -= 1;
            if *n == 0 {
                u.remove(&self.session);
            }
        }
    }
}

fn attachment_too_large(max: i64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("attachments may be at most {max} bytes (organisation policy)"),
    )
}

fn conversation_not_found() -> ApiError {
    ApiError::not_found("conversation")
}

impl MessagingService {
    pub fn new(
        store: Arc<dyn MessagingStore>,
        lifecycle: Arc<dyn LifecycleStore>,
        directory_store: Arc<dyn Store>,
        routing: Arc<dyn RoutingStore>,
        bus: Arc<dyn Bus>,
        vault: Vault,
        clock: Arc<dyn Clock>,
    ) -> Self {
        MessagingService {
            bus,
            acks: acks::AckBatcher::new(store.clone(), clock.clone()),
            store,
            lifecycle,
            directory_store,
            routing,
            vault,
            clock,
            hub: DeliveryHub::default(),
            uploads: Default::default(),
        }
    }

    /// Wakes the devices' open sockets here and, through the [`Bus`], on
    /// every other node.
    pub async fn wake(&self, devices: &[Uuid]) {
        if devices.is_empty() {
            return;
        }
        self.hub.wake(devices);
        if let Err(e) = self.bus.announce(devices).await {
            // Delivery does not depend on it: other nodes' sockets poll.
            tracing::warn!(error = %e, "inbox wake-up notification failed");
        }
    }

    /// The caller's registered device (the one its session is bound to), if
    /// it meets the organisation's device policy.
    pub async fn device_of(&self, p: &Principal) -> ApiResult<DeviceRow> {
        let d = self.registered_device(p).await?;
        let policy = self.directory_store.get_org(p.org_id).await?.policy.devices;
        let refusals = policy.refusals(d.posture.as_ref());
        if !refusals.is_empty() {
            return Err(ApiError::new(
                ErrorCode::DeviceBlocked,
                format!(
                    "this device does not meet the organisation's device policy: {}",
                    refusals.join("; ")
                ),
            ));
        }
        Ok(d)
    }

    /// The caller's registered device, whatever its posture.
    async fn registered_device(&self, p: &Principal) -> ApiResult<DeviceRow> {
        match self.store.get_device(p.org_id, p.device_id).await {
            Ok(d) if d.user_id == p.user_id && d.retired_at.is_none() => Ok(d),
            Ok(_) | Err(StoreError::NotFound) => Err(ApiError::new(
                ErrorCode::DeviceNotRegistered,
                "register this device first: POST /api/v1/devices",
            )),
            Err(e) => Err(e.into()),
        }
    }

    // ------------------------------------------------------------ devices

    fn check_key_packages(
        p: &Principal,
        identity_key: &[u8],
        kps: &[B64],
        last_resort: Option<&B64>,
    ) -> ApiResult<Vec<(Vec<u8>, bool)>> {
        if kps.len() > MAX_KEY_PACKAGES_PER_UPLOAD {
            return Err(ApiError::validation(format!(
                "at most {MAX_KEY_PACKAGES_PER_UPLOAD} key packages per upload"
            )));
        }
        let mut out = Vec::with_capacity(kps.len() + 1);
        let all = kps
            .iter()
            .map(|k| (k, false))
            .chain(last_resort.map(|k| (k, true)));
        for (i, (kp, want_last_resort)) in all.enumerate() {
            if kp.0.len() > MAX_KEY_PACKAGE_BYTES {
                return Err(ApiError::validation(format!(
                    "key package {i} is larger than {MAX_KEY_PACKAGE_BYTES} bytes"
                )));
            }
            let checked = mls::check_key_package(&kp.0)
                .map_err(|e| ApiError::validation(format!("key package {i}: {e}")))?;
            if (checked.user, checked.device) != (p.user_id, p.device_id) {
                return Err(ApiError::validation(format!(
                    "key package {i}: its credential names another user or device"
                )));
            }
            if checked.signature_key != identity_key {
                return Err(ApiError::validation(format!(
                    "key package {i}: not signed by this device's identity key"
                )));
            }
            if checked.last_resort != want_last_resort {
                return Err(ApiError::validation(format!(
                    "key package {i}: {}",
                    if want_last_resort {
                        "last_resort must carry the last-resort extension"
                    } else {
                        "one-use key packages must not carry the last-resort extension"
                    }
                )));
            }
            out.push((kp.0.clone(), want_last_resort));
        }
        Ok(out)
    }

    pub async fn register_device(
        &self,
        p: &Principal,
        req: RegisterDeviceRequest,
        audit: &AuditScope,
    ) -> ApiResult<Device> {
        audit.target("device", p.device_id);
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(ApiError::validation("name must be 1 to 64 characters"));
        }
        if req.identity_key.0.len() != 32 {
            return Err(ApiError::validation(
                "identity_key must be a 32-byte Ed25519 public key",
            ));
        }
        let kps = Self::check_key_packages(
            p,
            &req.identity_key.0,
            &req.key_packages,
            Some(&req.last_resort),
        )?;
        let now = self.clock.now();
        let row = DeviceRow {
            id: p.device_id,
            org_id: p.org_id,
            user_id: p.user_id,
            name: name.to_owned(),
            identity_key: req.identity_key.0,
            created_at: now,
            retired_at: None,
            inbox_seq: 0,
            acked_seq: 0,
            posture: None,
        };
        let woken = self.store.insert_device(&row, &kps).await.map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "this device is already registered; upload key packages with POST /api/v1/devices/key-packages",
            ),
            e => e.into(),
        })?;
        self.wake(&woken).await;
        // The new device (the user's first, or another one) joins the user's
        // conversations from now on: the members' devices share the recent
        // history with it (issue 18, item 4).
        let days = self.policy(p.org_id).await?.history_days;
        for c in self.store.user_conversations(p.org_id, p.user_id).await? {
            self.request_history_of(p.org_id, c.id, p.user_id, Some(p.device_id), days)
                .await?;
        }
        // Publish the identity key in the tamper-evident trail, so that a
        // device added behind a user's back would show there for good.
        audit.also(
            wardline_proto::audit::AuditAction::DeviceRegister,
            "identity_key_sha256",
            hex::encode(Sha256::digest(&row.identity_key)),
        );
        Ok(Device {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            identity_key: B64(row.identity_key),
            created_at: now,
            key_packages_available: kps.iter().filter(|(_, lr)| !lr).count() as i64,
            has_last_resort: true,
        })
    }

    /// Asks the members' devices to share their recent messages again with a
    /// newcomer — `user`, who joined the conversation, or `device`, their
    /// first or new device (MLS gives a newcomer nothing from before): a
    /// server entry naming them, no content. How far back is the
    /// organisation's `messaging.history_days`.
    pub async fn request_history(
        &self,
        org: OrgId,
        conversation: Uuid,
        user: UserId,
        device: Option<DeviceId>,
    ) -> ApiResult<()> {
        let days = self.policy(org).await?.history_days;
        self.request_history_of(org, conversation, user, device, days)
            .await
    }

    /// [`MessagingService::request_history`] with the policy's span already read.
    async fn request_history_of(
        &self,
        org: OrgId,
        conversation: Uuid,
        user: UserId,
        device: Option<DeviceId>,
        days: i64,
    ) -> ApiResult<()> {
        if days == 0 {
            return Ok(());
        }
        let c = self.store.get_conversation(org, conversation).await?;
        // Every device already in the group shares what it sent: the
        // newcomer's other devices too when it is a new device.
        let devices: Vec<DeviceId> = self
            .store
            .conversation_devices(conversation)
            .await?
            .into_iter()
            .filter(|d| {
                d.state == DeviceState::Member
                    && match device {
                        Some(new) => d.device_id != new,
                        None => d.user_id != user,
                    }
            })
            .map(|d| d.device_id)
            .collect();
        if devices.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let notice = wardline_proto::routing::HistoryNotice {
            user,
            since: now - days * 86_400,
            device,
        };
        let row = MessageRow {
            alert: Some(serde_json::to_string(&notice).expect("notice serialises")),
            ..MessageRow::notice(MessageKind::History, conversation, c.epoch, user, now)
        };
        let woken = self.routing.insert_notice(&row, &devices).await?;
        self.wake(&woken).await;
        Ok(())
    }

    pub async fn list_devices(&self, org: OrgId, user: UserId) -> ApiResult<DeviceList> {
        let rows = self.store.list_user_devices(org, user).await?;
        Ok(DeviceList {
            devices: rows
                .into_iter()
                .map(|s| Device {
                    id: s.device.id,
                    user_id: s.device.user_id,
                    name: s.device.name,
                    identity_key: B64(s.device.identity_key),
                    created_at: s.device.created_at,
                    key_packages_available: s.available,
                    has_last_resort: s.has_last_resort,
                })
                .collect(),
        })
    }

    pub async fn upload_key_packages(
        &self,
        p: &Principal,
        req: UploadKeyPackagesRequest,
    ) -> ApiResult<DeviceList> {
        let device = self.device_of(p).await?;
        let kps = Self::check_key_packages(
            p,
            &device.identity_key,
            &req.key_packages,
            req.last_resort.as_ref(),
        )?;
        self.store
            .add_key_packages(device.id, &kps, self.clock.now())
            .await?;
        self.list_devices(p.org_id, p.user_id).await
    }

    /// The device policy and whether the caller's device meets it (a device
    /// not yet registered sees the policy, e.g. the PIN length it needs).
    pub async fn device_status(&self, p: &Principal) -> ApiResult<DeviceStatus> {
        let policy = self.directory_store.get_org(p.org_id).await?.policy.devices;
        let posture = match self.registered_device(p).await {
            Ok(d) => d.posture,
            Err(e) if e.code == ErrorCode::DeviceNotRegistered => None,
            Err(e) => return Err(e),
        };
        let refusals = policy.refusals(posture.as_ref());
        Ok(DeviceStatus {
            allowed: refusals.is_empty(),
            refusals,
            posture,
            policy,
        })
    }

    /// Records what the caller's device reports about itself; answers with
    /// whether it now meets the policy.
    pub async fn report_posture(
        &self,
        p: &Principal,
        posture: DevicePosture,
    ) -> ApiResult<DeviceStatus> {
        let ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 32;
        if !ok(&posture.platform) || !ok(&posture.os_version) {
            return Err(ApiError::validation(
                "platform and os_version must be 1 to 32 characters",
            ));
        }
        let d = self.registered_device(p).await?;
        let posture = DevicePosture {
            platform: posture.platform.trim().to_lowercase(),
            os_version: posture.os_version.trim().to_owned(),
            compromised: posture.compromised,
        };
        self.store
            .set_posture(d.id, &posture, self.clock.now())
            .await?;
        self.device_status(p).await
    }

    // ------------------------------------------------------ conversations

    /// The conversation, if the caller is a member; 404 otherwise (whether it
    /// exists is not the caller's business).
    async fn member_conversation(&self, p: &Principal, id: Uuid) -> ApiResult<ConversationRow> {
        let c = match self.store.get_conversation(p.org_id, id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return Err(conversation_not_found()),
            Err(e) => return Err(e.into()),
        };
        if !self.store.is_member(id, p.user_id).await? {
            return Err(conversation_not_found());
        }
        Ok(c)
    }

    /// The conversation's title and patient reference, opened from the vault.
    async fn open_sealed(
        &self,
        c: &ConversationRow,
    ) -> ApiResult<(Option<String>, Option<String>)> {
        if c.title_enc.is_none() && c.patient_ref_enc.is_none() {
            return Ok((None, None));
        }
        let id = c.id.to_string();
        let key = self.vault.record_key(&c.dek_id).await?;
        let open = |col: &str, v: &Option<Vec<u8>>| -> ApiResult<Option<String>> {
            v.as_ref()
                .map(|v| {
                    Vault::open_str(
                        &key,
                        FieldRef {
                            table: "conversations",
                            row_id: &id,
                            column: col,
                        },
                        v,
                    )
                    .map_err(ApiError::internal)
                })
                .transpose()
        };
        Ok((
            open("title", &c.title_enc)?,
            open("patient_ref", &c.patient_ref_enc)?,
        ))
    }

    async fn policy(&self, org: OrgId) -> ApiResult<MessagingPolicy> {
        Ok(self.directory_store.get_org(org).await?.policy.messaging)
    }

    /// Whether the organisation's policy shows read receipts here whatever a
    /// member prefers. A conversation with a patient is a clinical thread.
    fn receipts_mandatory(policy: &MessagingPolicy, c: &ConversationRow) -> bool {
        let class = if c.patient_ref_enc.is_some() {
            ConversationClass::Clinical
        } else if c.kind == ConversationKind::Direct {
            ConversationClass::Direct
        } else {
            ConversationClass::Group
        };
        policy.mandatory_read_receipts.contains(&class)
    }

    /// The conversation's wire form (the caller must be allowed to see it).
    pub async fn to_wire(
        &self,
        c: &ConversationRow,
        audit: Option<&AuditScope>,
    ) -> ApiResult<Conversation> {
        let policy = self.policy(c.org_id).await?;
        let lifecycle = self.lifecycle.lifecycle_policy(c.org_id).await?;
        self.to_wire_with(c, &policy, &lifecycle, audit).await
    }

    async fn to_wire_with(
        &self,
        c: &ConversationRow,
        policy: &MessagingPolicy,
        lifecycle: &LifecyclePolicy,
        audit: Option<&AuditScope>,
    ) -> ApiResult<Conversation> {
        let (title, patient_ref) = self.open_sealed(c).await?;
        if let (Some(a), Some(index)) = (audit, &c.patient_ref_bidx) {
            a.patient_ref(index);
        }
        Ok(Conversation {
            id: c.id,
            kind: c.kind,
            title,
            patient_ref,
            created_by: c.created_by,
            created_at: c.created_at,
            epoch: c.epoch,
            members: self.store.conversation_members(c.id).await?,
            devices: self
                .store
                .conversation_devices(c.id)
                .await?
                .into_iter()
                .map(|d| ConversationDevice {
                    device_id: d.device_id,
                    user_id: d.user_id,
                    state: d.state,
                })
                .collect(),
            read_receipts_mandatory: Self::receipts_mandatory(policy, c),
            last_activity_at: c.last_activity_at,
            lifecycle: crate::lifecycle::effective(lifecycle, &c.lifecycle),
            lifecycle_own: c.lifecycle.clone(),
            role_id: c.role_id,
            care_team_id: c.care_team_id,
        })
    }

    /// Records the patient of a clinical thread on the request's audit event,
    /// so that the patient's access report lists who wrote there.
    pub async fn tag_patient(&self, c: &ConversationRow, audit: &AuditScope) -> ApiResult<()> {
        if let Some(index) = &c.patient_ref_bidx {
            audit.patient_ref(index);
        }
        Ok(())
    }

    /// The patient reference behind a blind index, from a conversation that
    /// names it (sealed there); `None` if no conversation does.
    pub async fn patient_reference(&self, org: OrgId, index: &str) -> ApiResult<Option<String>> {
        let Some((id, _)) = self
            .routing
            .conversations_by_patient(org, index)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let c = self.store.get_conversation(org, id).await?;
        Ok(self.open_sealed(&c).await?.1)
    }

    async fn active_colleague(&self, org: OrgId, user: UserId) -> ApiResult<()> {
        match self.directory_store.get_user(org, user).await {
            Ok(u) if u.status == UserStatus::Active => Ok(()),
            Ok(_) => Err(ApiError::validation(format!(
                "user {user} is not active and cannot join conversations"
            ))),
            Err(StoreError::NotFound) => Err(ApiError::validation(format!(
                "user {user} is not in this organisation"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_conversation(
        &self,
        p: &Principal,
        req: CreateConversationRequest,
        audit: &AuditScope,
    ) -> ApiResult<(bool, Conversation)> {
        let device = self.device_of(p).await?;
        let policy = self.policy(p.org_id).await?;
        let mut others: Vec<UserId> = req.members.clone();
        others.sort();
        others.dedup();
        if others.contains(&p.user_id) {
            return Err(ApiError::validation(
                "members lists the other participants, not yourself",
            ));
        }
        let title = req
            .title
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if title.is_some_and(|t| t.chars().count() > 200) {
            return Err(ApiError::validation("title must be at most 200 characters"));
        }
        let patient_ref = req
            .patient_ref
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if patient_ref.is_some_and(|t| t.chars().count() > 100) {
            return Err(ApiError::validation(
                "patient_ref must be at most 100 characters",
            ));
        }
        let direct_key = match req.kind {
            ConversationKind::Direct => {
                if others.len() != 1 {
                    return Err(ApiError::validation(
                        "a direct conversation has exactly one other member",
                    ));
                }
                if title.is_some() || patient_ref.is_some() {
                    return Err(ApiError::validation(
                        "a direct conversation has no title or patient context; create a group",
                    ));
                }
                let mut pair = [p.user_id, others[0]];
                pair.sort();
                Some(format!("{}:{}", pair[0], pair[1]))
            }
            ConversationKind::Group => {
                if others.is_empty() {
                    return Err(ApiError::validation(
                        "a group needs at least one other member",
                    ));
                }
                if others.len() as i64 + 1 > policy.max_group_members {
                    return Err(ApiError::validation(format!(
                        "a group may have at most {} members (organisation policy)",
                        policy.max_group_members
                    )));
                }
                None
            }
        };
        for u in &others {
            self.active_colleague(p.org_id, *u).await?;
        }
        if let Some(team) = req.care_team_id {
            if patient_ref.is_none() {
                return Err(ApiError::validation(
                    "care_team_id goes with a patient_ref: it says who may open the patient's thread",
                ));
            }
            match self.routing.get_team(p.org_id, team).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    return Err(ApiError::validation("care_team_id is not a care team here"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(key) = &direct_key
            && let Some(existing) = self.store.find_direct(p.org_id, key).await?
        {
            audit.target("conversation", existing.id);
            return Ok((false, self.to_wire(&existing, Some(audit)).await?));
        }
        let id = Uuid::new_v4();
        let now = self.clock.now();
        let (dek_id, key) = self.vault.new_record_key(Some(p.org_id)).await?;
        let row_id = id.to_string();
        let seal = |col: &str, v: &str| {
            Vault::seal(
                &key,
                FieldRef {
                    table: "conversations",
                    row_id: &row_id,
                    column: col,
                },
                v,
            )
        };
        let row = ConversationRow {
            id,
            org_id: p.org_id,
            kind: req.kind,
            dek_id,
            title_enc: title.map(|t| seal("title", t)),
            patient_ref_enc: patient_ref.map(|t| seal("patient_ref", t)),
            direct_key,
            created_by: p.user_id,
            created_at: now,
            epoch: 0,
            last_activity_at: now,
            lifecycle: Default::default(),
            patient_ref_bidx: patient_ref
                .map(|r| crate::lifecycle::patient_index(&self.vault, p.org_id, r)),
            role_id: None,
            routed_user: None,
            routed_via: None,
            care_team_id: req.care_team_id,
        };
        let mut members = vec![p.user_id];
        members.extend(others.iter().copied());
        let mut devices = Vec::new();
        for u in &members {
            for d in self.store.list_user_devices(p.org_id, *u).await? {
                devices.push(ConversationDeviceRow {
                    device_id: d.device.id,
                    user_id: *u,
                    // The creator's device makes the group; it adds the rest.
                    state: if d.device.id == device.id {
                        DeviceState::Member
                    } else {
                        DeviceState::PendingAdd
                    },
                });
            }
        }
        audit.target("conversation", id);
        match self
            .store
            .create_conversation(&row, &members, &devices)
            .await
        {
            Ok(()) => {}
            // Lost a race with the other participant creating the same pair.
            Err(StoreError::Conflict(_)) if row.direct_key.is_some() => {
                let key = row.direct_key.as_deref().unwrap_or_default();
                let existing = self
                    .store
                    .find_direct(p.org_id, key)
                    .await?
                    .ok_or_else(conversation_not_found)?;
                return Ok((false, self.to_wire(&existing, Some(audit)).await?));
            }
            Err(e) => return Err(e.into()),
        }
        Ok((true, self.to_wire(&row, Some(audit)).await?))
    }

    pub async fn list_conversations(&self, p: &Principal) -> ApiResult<ConversationList> {
        let rows = self.store.user_conversations(p.org_id, p.user_id).await?;
        let policy = self.policy(p.org_id).await?;
        let lifecycle = self.lifecycle.lifecycle_policy(p.org_id).await?;
        let mut conversations = Vec::with_capacity(rows.len());
        for c in &rows {
            conversations.push(self.to_wire_with(c, &policy, &lifecycle, None).await?);
        }
        Ok(ConversationList { conversations })
    }

    pub async fn conversation(
        &self,
        p: &Principal,
        id: Uuid,
        audit: &AuditScope,
    ) -> ApiResult<Conversation> {
        let c = self.member_conversation(p, id).await?;
        self.to_wire(&c, Some(audit)).await
    }

    pub async fn add_member(
        &self,
        p: &Principal,
        id: Uuid,
        user: UserId,
        audit: &AuditScope,
    ) -> ApiResult<Conversation> {
        let c = self.member_conversation(p, id).await?;
        if c.kind == ConversationKind::Direct {
            return Err(ApiError::validation(
                "a direct conversation has two members; create a group to add people",
            ));
        }
        self.active_colleague(p.org_id, user).await?;
        let policy = self.policy(p.org_id).await?;
        if self.store.conversation_members(id).await?.len() as i64 >= policy.max_group_members {
            return Err(ApiError::validation(format!(
                "a group may have at most {} members (organisation policy)",
                policy.max_group_members
            )));
        }
        let devices: Vec<_> = self
            .store
            .list_user_devices(p.org_id, user)
            .await?
            .into_iter()
            .map(|d| d.device.id)
            .collect();
        let notice = MessageRow::membership_notice(id, c.epoch, p.user_id, self.clock.now());
        let (added, woken) = self.store.add_member(id, user, &devices, &notice).await?;
        if !added {
            return Err(ApiError::conflict("already a member"));
        }
        self.wake(&woken).await;
        self.to_wire(
            &self.store.get_conversation(p.org_id, id).await?,
            Some(audit),
        )
        .await
    }

    /// Removes `user` (the caller themself: leaving).
    pub async fn remove_member(
        &self,
        p: &Principal,
        id: Uuid,
        user: UserId,
        audit: &AuditScope,
    ) -> ApiResult<Conversation> {
        let c = self.member_conversation(p, id).await?;
        if c.kind == ConversationKind::Direct {
            return Err(ApiError::validation(
                "nobody can be removed from a direct conversation",
            ));
        }
        let notice = MessageRow::membership_notice(id, c.epoch, p.user_id, self.clock.now());
        let (removed, woken) = self.store.remove_member(id, user, &notice).await?;
        if !removed {
            return Err(ApiError::not_found("member"));
        }
        self.wake(&woken).await;
        let c = self.store.get_conversation(p.org_id, id).await?;
        self.to_wire(&c, Some(audit)).await
    }

    /// Starts a conversation's group again from the caller's device, which is
    /// waiting to join it while no member device is left to add it (see
    /// [`MessagingStore::refound_conversation`]). Messages sent before stay
    /// readable only on devices that had them.
    pub async fn refound(
        &self,
        p: &Principal,
        id: Uuid,
        audit: &AuditScope,
    ) -> ApiResult<Conversation> {
        let device = self.device_of(p).await?;
        let c = self.member_conversation(p, id).await?;
        let notice = MessageRow::membership_notice(id, 0, p.user_id, self.clock.now());
        let (done, woken) = self
            .store
            .refound_conversation(id, device.id, &notice)
            .await?;
        if !done {
            return Err(ApiError::conflict(
                "the conversation still has a member device (it will add this one), or this device is not waiting to join it",
            ));
        }
        self.wake(&woken).await;
        let c = self.store.get_conversation(p.org_id, c.id).await?;
        self.to_wire(&c, Some(audit)).await
    }

    /// Takes a departing user out of every conversation (deprovisioning).
    pub async fn remove_from_all_conversations(
        &self,
        org: OrgId,
        user: UserId,
        actor: UserId,
    ) -> ApiResult<()> {
        for c in self.store.user_conversations(org, user).await? {
            let notice = MessageRow::membership_notice(c.id, c.epoch, actor, self.clock.now());
            let (_, woken) = self.store.remove_member(c.id, user, &notice).await?;
            self.wake(&woken).await;
        }
        Ok(())
    }

    pub async fn claim_key_packages(
        &self,
        p: &Principal,
        id: Uuid,
        req: ClaimKeyPackagesRequest,
    ) -> ApiResult<ClaimedKeyPackages> {
        self.device_of(p).await?;
        self.member_conversation(p, id).await?;
        if req.device_ids.len() > 5000 {
            return Err(ApiError::validation("too many devices in one claim"));
        }
        let devices = self.store.conversation_devices(id).await?;
        let mut out = Vec::new();
        for want in &req.device_ids {
            let Some(d) = devices.iter().find(|d| d.device_id == *want) else {
                return Err(ApiError::validation(format!(
                    "device {want} is not waiting to join this conversation"
                )));
            };
            if d.state != DeviceState::PendingAdd {
                return Err(ApiError::validation(format!(
                    "device {want} is not waiting to join this conversation"
                )));
            }
            if let Some(kp) = self.store.claim_key_package(*want).await? {
                out.push(ClaimedKeyPackage {
                    device_id: *want,
                    user_id: d.user_id,
                    key_package: B64(kp),
                });
            }
        }
        Ok(ClaimedKeyPackages { key_packages: out })
    }

    // ----------------------------------------------------------- messages

    pub async fn submit(
        &self,
        p: &Principal,
        id: Uuid,
        req: SubmitMessageRequest,
        audit: &AuditScope,
    ) -> ApiResult<SubmitMessageResponse> {
        let device = self.device_of(p).await?;
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, audit).await?;
        let framing = mls::inspect_message(&req.mls.0)
            .map_err(|e| ApiError::bad_request(format!("mls: {e}")))?;
        if framing.group_id != mls::group_id(id).as_slice() {
            return Err(ApiError::bad_request(
                "mls: the message belongs to another conversation's group",
            ));
        }
        let want = match req.kind {
            MessageKind::Commit => FramedContent::Commit,
            MessageKind::Application => FramedContent::Application,
            _ => {
                return Err(ApiError::bad_request(
                    "kind must be commit or application; Welcomes travel with their commit",
                ));
            }
        };
        if framing.content != want {
            return Err(ApiError::bad_request(format!(
                "mls: kind is {} but the message is {}",
                req.kind.as_str(),
                framing.content.as_str()
            )));
        }
        if want == FramedContent::Application && !framing.encrypted {
            return Err(ApiError::bad_request(
                "mls: application messages must be encrypted (PrivateMessage)",
            ));
        }
        let is_commit = req.kind == MessageKind::Commit;
        if !is_commit
            && (req.welcome.is_some()
                || !req.added_devices.is_empty()
                || !req.removed_devices.is_empty())
        {
            return Err(ApiError::bad_request(
                "welcome, added_devices and removed_devices belong to commits",
            ));
        }
        if req.welcome.is_some() == req.added_devices.is_empty() {
            return Err(ApiError::bad_request(
                "a commit that adds devices carries their Welcome, and only then",
            ));
        }
        if let Some(w) = &req.welcome {
            mls::check_welcome(&w.0).map_err(|e| ApiError::bad_request(format!("welcome: {e}")))?;
        }
        let now = self.clock.now();
        let expires_at = if is_commit {
            if req.ttl_secs.is_some() {
                return Err(ApiError::bad_request(
                    "ttl_secs belongs to application messages",
                ));
            }
            None
        } else {
            let policy = self.lifecycle.lifecycle_policy(p.org_id).await?;
            crate::lifecycle::message_ttl(&policy, &c.lifecycle, req.ttl_secs)?.map(|t| now + t)
        };
        // A copy shared again for members who joined later names the
        // submitter's own earlier message here, and keeps its identity: the
        // recipients see (acknowledge, recall, read) the original, at its
        // time and priority (issue 18, item 5).
        let original = match req.shared_again {
            None => None,
            Some(_) if is_commit => {
                return Err(ApiError::bad_request(
                    "shared_again belongs to application messages",
                ));
            }
            Some(named) => match self.store.get_message(id, named).await {
                Ok(m) if m.kind == MessageKind::Application && m.sender_user == Some(p.user_id) => {
                    // Gone for its readers: nothing to share (the
                    // sender's outbox drops the copy).
                    if m.recalled_at.is_some() {
                        return Err(ApiError::new(
                            ErrorCode::NotFound,
                            "shared_again names a recalled message",
                        ));
                    }
                    Some(m)
                }
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(ApiError::validation(
                        "shared_again names none of your messages in this conversation",
                    ));
                }
                Err(e) => return Err(e.into()),
            },
        };
        let hash = |b: &[u8]| Sha256::digest(b).to_vec();
        // Each body is sealed under its own data key, so that deleting the key
        // (retention, expiry, recall) destroys every copy of it.
        let mut keys = Vec::new();
        let mut seal = |id: Uuid, bytes: &[u8]| -> ApiResult<(Vec<u8>, String)> {
            let (row, key) = self.vault.new_key_row(p.org_id)?;
            let id = id.to_string();
            let sealed = Vault::seal_bytes(
                &key,
                FieldRef {
                    table: "messages",
                    row_id: &id,
                    column: "body",
                },
                bytes,
            );
            let dek = row.id.clone();
            keys.push(row);
            Ok((sealed, dek))
        };
        let (body, dek) = seal(req.message_id, &req.mls.0)?;
        let welcome_id = Uuid::new_v4();
        let welcome_sealed = req
            .welcome
            .as_ref()
            .map(|w| seal(welcome_id, &w.0))
            .transpose()?;
        let message = MessageRow {
            id: req.message_id,
            conversation_id: id,
            kind: req.kind,
            sender_user: Some(p.user_id),
            sender_device: Some(device.id),
            epoch: framing.epoch as i64,
            // A commit is plumbing, not a clinical message; a copy is what
            // its original was.
            priority: match &original {
                _ if is_commit => Priority::Routine,
                Some(o) => o.priority,
                None => req.priority,
            },
            body_hash: Some(hash(&req.mls.0)),
            body: Some(body),
            created_at: now,
            dek_id: Some(dek),
            expires_at,
            recalled_at: None,
            recalls: None,
            alert: None,
            // Naming a copy names its original.
            shared_again: original.as_ref().map(|o| o.shared_again.unwrap_or(o.id)),
            original_created_at: original
                .as_ref()
                .map(|o| o.original_created_at.unwrap_or(o.created_at)),
        };
        let welcome = req
            .welcome
            .zip(welcome_sealed)
            .map(|(w, (body, dek))| MessageRow {
                id: welcome_id,
                kind: MessageKind::Welcome,
                body_hash: Some(hash(&w.0)),
                body: Some(body),
                dek_id: Some(dek),
                expires_at: None,
                shared_again: None,
                original_created_at: None,
                ..message.clone()
            });
        let routed = if is_commit || original.is_some() {
            // A copy for newcomers: its original carries the routing and the
            // escalation.
            None
        } else {
            self.plan_routed(p, &c, &message).await?
        };
        let outcome = self
            .store
            .submit(&Submission {
                message,
                welcome,
                added: req.added_devices,
                removed: req.removed_devices,
                keys,
                routed,
            })
            .await?;
        match outcome {
            SubmitOutcome::Accepted { epoch, recipients } => {
                self.wake(&recipients).await;
                Ok(SubmitMessageResponse {
                    message_id: req.message_id,
                    epoch,
                    created_at: now,
                    duplicate: false,
                    expires_at,
                })
            }
            SubmitOutcome::Duplicate {
                epoch,
                created_at,
                expires_at,
            } => Ok(SubmitMessageResponse {
                message_id: req.message_id,
                epoch,
                created_at,
                duplicate: true,
                expires_at,
            }),
            SubmitOutcome::StaleEpoch { current } => Err(ApiError::new(
                ErrorCode::StaleEpoch,
                format!(
                    "the conversation is at epoch {current}, the message was made for epoch {}; process the inbox and retry",
                    framing.epoch
                ),
            )),
            SubmitOutcome::Replayed => Err(ApiError::new(
                ErrorCode::Replayed,
                "this MLS message was already delivered",
            )),
            SubmitOutcome::IdTaken => Err(ApiError::conflict(
                "message_id is already used by a different message",
            )),
            SubmitOutcome::NotMember => Err(ApiError::forbidden(
                "this device is not in the conversation's group (yet); wait for its Welcome",
            )),
            SubmitOutcome::WrongDevices(why) => Err(ApiError::validation(why)),
            SubmitOutcome::PendingRemovals => Err(ApiError::new(
                ErrorCode::MembershipPending,
                "a removed member's device is still in the group; commit its removal first",
            )),
        }
    }

    /// The routing record an application message gets (urgent, STAT, or in a
    /// conversation opened to page a role): see `routing::escalation`.
    async fn plan_routed(
        &self,
        p: &Principal,
        c: &ConversationRow,
        m: &MessageRow,
    ) -> ApiResult<Option<wardline_store::routing::RoutedRow>> {
        if m.priority == Priority::Routine && c.role_id.is_none() {
            return Ok(None);
        }
        let policy = self.directory_store.get_org(p.org_id).await?.policy.routing;
        let role = match c.role_id {
            Some(r) => match self.routing.get_role(p.org_id, r).await {
                Ok(role) => Some(role),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let steps = crate::routing::escalation::ladder(&policy, role.as_ref(), m.priority);
        let open = self.routing.open_in_conversation(c.id, m.priority).await?;
        let recipients = self
            .store
            .conversation_members(c.id)
            .await?
            .into_iter()
            .filter(|u| *u != p.user_id)
            .collect();
        Ok(crate::routing::escalation::plan_routed(
            m.id,
            p.org_id,
            c.id,
            p.user_id,
            m.priority,
            role.map(|r| crate::routing::escalation::RoleRoute {
                role_id: r.id,
                resolved_user: c.routed_user,
                resolved_via: c.routed_via.clone(),
                department_id: r.department_id,
            }),
            &steps,
            open.as_ref(),
            recipients,
            m.created_at,
        ))
    }

    pub async fn sync(&self, p: &Principal, q: SyncQuery) -> ApiResult<SyncResponse> {
        let device = self.device_of(p).await?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=MAX_SYNC_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_SYNC_LIMIT}"
            )));
        }
        if q.after < 0 {
            return Err(ApiError::bad_request("after must not be negative"));
        }
        let now = self.clock.now();
        let rows = self
            .store
            .inbox_after(device.id, q.after, limit + 1, now)
            .await?;
        let more = rows.len() as i64 > limit;
        Ok(SyncResponse {
            entries: rows
                .into_iter()
                .take(limit as usize)
                .map(|r| self.entry(r))
                .collect::<ApiResult<_>>()?,
            more,
            acked: device.acked_seq,
            server_time: now,
        })
    }

    pub async fn inbox_after(
        &self,
        device: Uuid,
        after: i64,
        limit: i64,
    ) -> ApiResult<Vec<InboxEntry>> {
        self.store
            .inbox_after(device, after, limit, self.clock.now())
            .await?
            .into_iter()
            .map(|r| self.entry(r))
            .collect()
    }

    pub async fn ack(&self, p: &Principal, up_to: i64) -> ApiResult<AckResponse> {
        let device = self.device_of(p).await?;
        self.ack_device(device.id, up_to).await
    }

    /// An acknowledgement from a sync WebSocket: written with others within
    /// a moment (see [`acks`]); one beyond the inbox is ignored.
    pub fn queue_ack(&self, device: Uuid, up_to: i64) {
        if up_to >= 0 {
            self.acks.queue(device, up_to);
        }
    }

    pub async fn ack_device(&self, device: Uuid, up_to: i64) -> ApiResult<AckResponse> {
        if up_to < 0 {
            return Err(ApiError::validation("up_to must not be negative"));
        }
        match self.store.ack(device, up_to, self.clock.now()).await? {
            Some(acked) => Ok(AckResponse { acked }),
            None => Err(ApiError::validation(
                "up_to is beyond the last entry handed to this device",
            )),
        }
    }

    /// Read receipts: only for messages shown to the person (issue 19,
    /// case 15); a watermark covers routine messages only.
    pub async fn mark_read(
        &self,
        p: &Principal,
        id: Uuid,
        req: ReadRequest,
        audit: &AuditScope,
    ) -> ApiResult<ReadResponse> {
        let mark = match (&req.message_ids[..], req.up_to_message_id) {
            ([], Some(up_to)) => ReadMark::UpTo(up_to),
            (ids, None) if !ids.is_empty() && ids.len() <= MAX_READ_IDS => ReadMark::Shown(ids),
            _ => {
                return Err(ApiError::validation(format!(
                    "give message_ids (1 to {MAX_READ_IDS} messages shown) or up_to_message_id, not both"
                )));
            }
        };
        let device = self.device_of(p).await?;
        // Reading a patient's thread is an access to that patient's
        // information: it is in their access report (issue 18, item 7).
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, audit).await?;
        match self
            .store
            .mark_read(device.id, id, mark, self.clock.now())
            .await?
        {
            Some(marked) => Ok(ReadResponse { marked }),
            None => Err(ApiError::not_found("message in this device's inbox")),
        }
    }

    pub async fn receipts(
        &self,
        p: &Principal,
        id: Uuid,
        message: Uuid,
        audit: &AuditScope,
    ) -> ApiResult<MessageReceipts> {
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, audit).await?;
        let m = match self.store.get_message(id, message).await {
            Err(StoreError::NotFound) => return Err(ApiError::not_found("message")),
            other => other?,
        };
        // A copy shared again is the original to its readers.
        let message = m.shared_again.unwrap_or(message);
        let mandatory = Self::receipts_mandatory(&self.policy(p.org_id).await?, &c);
        let rows = self.store.receipts(message).await?;
        // Every member is accounted for: those none of whose devices has it
        // are listed with why (issue 18, item 4).
        let devices = self.store.conversation_devices(id).await?;
        let not_received = self
            .store
            .conversation_members(id)
            .await?
            .into_iter()
            .filter(|u| Some(*u) != m.sender_user && !rows.iter().any(|r| r.user_id == *u))
            .map(|u| NotReceived {
                user_id: u,
                reason: if devices.iter().any(|d| d.user_id == u) {
                    NotReceivedReason::JoinedLater
                } else {
                    NotReceivedReason::NoDevice
                },
            })
            .collect();
        Ok(MessageReceipts {
            message_id: message,
            priority: m.priority,
            not_received,
            receipts: rows
                .into_iter()
                .map(|r| Receipt {
                    user_id: r.user_id,
                    device_id: r.device_id,
                    delivered_at: r.delivered_at,
                    read_at: if mandatory || r.shares_read_receipts || r.user_id == p.user_id {
                        r.read_at
                    } else {
                        None
                    },
                })
                .collect(),
        })
    }

    pub async fn preferences(&self, p: &Principal) -> ApiResult<MessagingPreferences> {
        Ok(MessagingPreferences {
            share_read_receipts: self.store.share_read_receipts(p.user_id).await?,
        })
    }

    pub async fn set_preferences(
        &self,
        p: &Principal,
        prefs: MessagingPreferences,
    ) -> ApiResult<MessagingPreferences> {
        self.store
            .set_share_read_receipts(p.user_id, prefs.share_read_receipts)
            .await?;
        Ok(prefs)
    }

    // -------------------------------------------------------- attachments

    /// Everything an upload is checked for before its body is read (finding
    /// M3 of 2026-11-30: bodies up to 100 MiB were buffered, and copied,
    /// before the organisation's 25 MiB limit applied): the device, the
    /// membership, the size the caller declares (`content_length`), and a
    /// place among the session's uploads in flight.
    pub async fn begin_upload(
        &self,
        p: &Principal,
        id: Uuid,
        content_length: Option<u64>,
        audit: &AuditScope,
    ) -> ApiResult<UploadPermit> {
        let device = self.device_of(p).await?;
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, audit).await?;
        let max = self.policy(p.org_id).await?.max_attachment_bytes;
        if content_length.is_some_and(|n| n > max as u64) {
            return Err(attachment_too_large(max));
        }
        {
            let mut u = self.uploads.lock().expect("uploads lock");
            let n = u.entry(p.session_id).or_insert(0);
            if *n >= MAX_UPLOADS_PER_SESSION {
                return Err(ApiError {
                    message: format!(
                        "at most {MAX_UPLOADS_PER_SESSION} uploads at a time per session; wait for one to finish"
                    ),
                    ..ApiError::rate_limited(1)
                });
            }
            *n += 1;
        }
        Ok(UploadPermit {
            max_bytes: max,
            conversation: id,
            device: device.id,
            org: p.org_id,
            session: p.session_id,
            uploads: self.uploads.clone(),
        })
    }

    /// Stores an attachment read under `permit` (at most its `max_bytes`).
    pub async fn upload_attachment(
        &self,
        permit: UploadPermit,
        data: &[u8],
    ) -> ApiResult<AttachmentUploaded> {
        if data.len() as i64 > permit.max_bytes {
            return Err(attachment_too_large(permit.max_bytes));
        }
        if data.is_empty() {
            return Err(ApiError::validation("an attachment cannot be empty"));
        }
        let id = permit.conversation;
        let attachment_id = Uuid::new_v4();
        let size = data.len() as i64;
        let (key_row, key) = self.vault.new_key_row(permit.org)?;
        let row = AttachmentRow {
            id: attachment_id,
            conversation_id: id,
            uploader_device: permit.device,
            data: Vault::seal_bytes(&key, attachment_field(&attachment_id.to_string()), data),
            created_at: self.clock.now(),
            dek_id: Some(key_row.id.clone()),
        };
        self.store.insert_attachment(&row, &key_row).await?;
        Ok(AttachmentUploaded {
            attachment_id,
            size,
        })
    }

    pub async fn attachment(
        &self,
        p: &Principal,
        id: Uuid,
        attachment: Uuid,
        audit: &AuditScope,
    ) -> ApiResult<Vec<u8>> {
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, audit).await?;
        match self.store.get_attachment(id, attachment).await {
            Ok((a, None)) => Ok(a.data),
            Ok((a, Some(key))) => Ok(Vault::open_bytes(
                &self.vault.unwrap_key(&key)?,
                attachment_field(&a.id.to_string()),
                &a.data,
            )?),
            Err(StoreError::NotFound) => Err(ApiError::not_found("attachment")),
            Err(e) => Err(e.into()),
        }
    }
}

fn attachment_field(id: &str) -> FieldRef<'_> {
    FieldRef {
        table: "attachments",
        row_id: id,
        column: "data",
    }
}

impl MessagingService {
    /// An inbox entry for the device, its body opened from the vault.
    fn entry(&self, r: InboxRow) -> ApiResult<InboxEntry> {
        let mut m = r.message;
        if let (Some(body), Some(key)) = (&m.body, &r.key) {
            let id = m.id.to_string();
            m.body = Some(Vault::open_bytes(
                &self.vault.unwrap_key(key)?,
                FieldRef {
                    table: "messages",
                    row_id: &id,
                    column: "body",
                },
                body,
            )?);
        }
        Ok(entry(r.seq, m))
    }
}

fn entry(seq: i64, m: MessageRow) -> InboxEntry {
    InboxEntry {
        seq,
        message_id: m.id,
        conversation_id: m.conversation_id,
        kind: m.kind,
        sender_user: m.sender_user,
        sender_device: m.sender_device,
        epoch: m.epoch,
        priority: m.priority,
        created_at: m.created_at,
        mls: m.body.map(B64),
        expires_at: m.expires_at,
        recalls: m.recalls,
        // Written by the server from typed values only.
        // The notice payload column: an alert's or a history request's,
        // written by the server from typed values only.
        alert: (m.kind == MessageKind::Alert)
            .then(|| {
                m.alert
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok())
            })
            .flatten()
            .map(Box::new),
        history: (m.kind == MessageKind::History)
            .then(|| {
                m.alert
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok())
            })
            .flatten(),
        shared_again: m.shared_again.map(|o| SharedAgain {
            message_id: o,
            created_at: m.original_created_at.unwrap_or(m.created_at),
        }),
    }
}
