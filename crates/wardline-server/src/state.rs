//! What a route handler may use: the services and the few HTTP-side values
//! (metrics, the OpenAPI document, proxies, the anonymous gate). Apart from
//! `app.rs` so that the routes depend on the services, not on the assembly.
//!
//! A handler extracts only the service it uses (`State<MessagingService>`),
//! through the [`FromRef`] impls below, not the whole state: what a handler
//! can reach is in its signature.

use std::sync::Arc;

use axum::extract::FromRef;

use metrics_exporter_prometheus::PrometheusHandle;
use wardline_store::Store;

use wardline_core::audit::AuditLog;
use wardline_core::audit_reader::AuditService;
use wardline_core::auth::AuthService;
use wardline_core::directory::DirectoryService;
use wardline_core::lifecycle::LifecycleService;
use wardline_core::messaging::MessagingService;
use wardline_core::patients::PatientService;
use wardline_core::routing::RoutingService;

/// Everything a handler may use. Cheap to clone (all `Arc`s inside).
#[derive(Clone)]
pub struct AppState {
    pub auth: AuthService,
    pub directory: DirectoryService,
    /// Appends to the audit trail (the request middleware and services).
    pub audit: AuditLog,
    /// Reads the audit trail (search, reports, proofs).
    pub audit_reader: AuditService,
    pub store: Arc<dyn Store>,
    /// Past activity for the demo organisation and the analytics benchmark.
    pub history: Arc<dyn wardline_store::HistoryStore>,
    /// Devices, conversations, delivery (the MLS delivery service).
    pub messaging: MessagingService,
    /// Retention, legal holds, recall, remote wipe.
    pub lifecycle: LifecycleService,
    /// Patients, consent, templates, SMS, secure links.
    pub patients: PatientService,
    /// Directory of roles and teams, on-call, pages, escalation, break-glass.
    pub routing: RoutingService,
    /// Analytics over a time range.
    pub reports: wardline_core::reports::ReportService,
    /// Moves when a session may have ended (open sockets re-check theirs).
    pub session_changes: tokio::sync::watch::Receiver<u64>,
    pub metrics: PrometheusHandle,
    pub openapi: Arc<String>,
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
    /// `metrics_token`: lets another host read `/metrics`.
    pub metrics_token: Option<Arc<String>>,
    /// Anonymous requests' rate, repeated refusals, the disk floor.
    pub anonymous: Arc<wardline_core::audit::anonymous::AnonymousGate>,
}

/// The proxies whose `X-Forwarded-For` is believed (the client's address
/// for sign-in throttling and the audit trail).
#[derive(Clone)]
pub struct TrustedProxies(pub Arc<Vec<std::net::IpAddr>>);

impl FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> TrustedProxies {
        TrustedProxies(state.trusted_proxies.clone())
    }
}

/// `State<Service>` for each service a handler may extract.
macro_rules! services_from_state {
    ($($field:ident: $ty:ty),* $(,)?) => {
        $(impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> $ty {
                state.$field.clone()
            }
        })*
    };
}

services_from_state!(
    auth: AuthService,
    directory: DirectoryService,
    audit_reader: AuditService,
    messaging: MessagingService,
    lifecycle: LifecycleService,
    patients: PatientService,
    routing: RoutingService,
    reports: wardline_core::reports::ReportService,
);
