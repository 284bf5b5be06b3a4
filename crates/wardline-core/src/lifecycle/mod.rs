//! Message lifecycle and device control: the lifecycle policy (retention,
//! lifespans, recall window) and its deletion runs with signed receipts, legal
//! holds, message recall, and remote wipe of lost devices.
//!
//! Order of precedence (see `wardline_proto::lifecycle`): legal hold beats
//! everything; then the retention minimum; then retention; then lifespans and
//! recall. Devices stop receiving a recalled or expired message at once (the
//! inbox leaves it out); the server's copy goes when the rules allow.
//!
//! One file per operation: the policy and a conversation's settings in
//! `policy.rs`, deletion runs and receipts in `deletion.rs`, legal holds in
//! `holds.rs`, recall in `recall.rs`, remote wipe in `devices.rs`.

mod deletion;
mod devices;
mod holds;
mod policy;
mod recall;

use deletion::within_minimum;
use holds::{Holds, active_hold_ids};

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
use crate::caller::Caller;
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
}
