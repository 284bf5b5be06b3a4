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
mod attachments;
mod conversations;
mod devices;
mod push;
mod submit;
mod sync;

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
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult};
use crate::hub::DeliveryHub;
use crate::vault::{FieldRef, Vault};
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
    /// Web Push to devices whose app is closed.
    push: crate::push::WebPush,
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
    pub fn new(deps: &Deps) -> Self {
        let (store, lifecycle, directory_store, routing, vault, clock) = (
            deps.messaging.clone(),
            deps.lifecycle.clone(),
            deps.store.clone(),
            deps.routing.clone(),
            deps.vault.clone(),
            deps.clock.clone(),
        );
        MessagingService {
            bus: deps.bus.clone(),
            acks: acks::AckBatcher::new(store.clone(), clock.clone()),
            store,
            lifecycle,
            directory_store,
            routing,
            vault,
            clock,
            hub: DeliveryHub::default(),
            push: crate::push::WebPush::off(),
            uploads: Default::default(),
        }
    }

    /// Sends Web Push through `push` (built over this service's hub).
    pub fn with_push(mut self, push: crate::push::WebPush) -> Self {
        self.push = push;
        self
    }

    /// The Web Push handle (off unless [`MessagingService::with_push`]).
    pub fn push(&self) -> &crate::push::WebPush {
        &self.push
    }

    /// The server's clock (Unix seconds), which devices expire messages by
    /// (the sync socket's idle frame carries it).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Wakes the devices' open sockets here and, through the [`Bus`], on
    /// every other node.
    pub async fn wake(&self, devices: &[DeviceId]) {
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
}
