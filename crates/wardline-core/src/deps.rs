//! The dependency bundle every domain service is built from: the stores (one
//! per trait, usually one engine behind all of them), the inter-node bus, the
//! vault, the clock, the key provider and the audit log. A service takes
//! `&Deps` plus only what is its own (another service, a setting), so adding
//! a dependency touches the bundle once instead of every constructor's
//! positional arguments, and two stores of the same type cannot be swapped.

use std::sync::Arc;

use wardline_crypto::KeyProvider;
use wardline_store::{
    AuditStore, Bus, LifecycleStore, MessagingStore, PatientStore, ReportStore, RoutingStore, Store,
};

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::vault::Vault;

#[derive(Clone)]
pub struct Deps {
    /// Organisations, users, sessions, settings, data keys.
    pub store: Arc<dyn Store>,
    pub messaging: Arc<dyn MessagingStore>,
    pub patients: Arc<dyn PatientStore>,
    pub routing: Arc<dyn RoutingStore>,
    pub lifecycle: Arc<dyn LifecycleStore>,
    /// The analytics report's aggregations.
    pub reports: Arc<dyn ReportStore>,
    pub audit_store: Arc<dyn AuditStore>,
    /// Wake-ups for the other nodes' sockets.
    pub bus: Arc<dyn Bus>,
    pub vault: Vault,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<dyn KeyProvider>,
    /// The one audit writer.
    pub audit: AuditLog,
}
