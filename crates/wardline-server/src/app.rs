//! Assembly: builds the services from the configuration, the router from the
//! domain routers, and serves it over TLS.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use wardline_crypto::{KeyProvider, LocalKeyFile};

use crate::connections;
use wardline_core::audit::AuditLog;
use wardline_core::audit_reader::AuditService;
use wardline_core::auth::AuthService;
use wardline_core::clock::{Clock, SystemClock};
use wardline_core::config::Config;
use wardline_core::credentials::password::Passwords;
use wardline_core::directory::DirectoryService;
use wardline_core::lifecycle::LifecycleService;
use wardline_core::messaging::MessagingService;
use wardline_core::patients::{PatientService, TextingSetup};
use wardline_core::routing::RoutingService;
use wardline_store::bus::LocalOnly;
use wardline_store::{AuditStore, Backend, Bus, Store, StoreError};
use wardline_store_sql::{PgBus, SqlStore};

use crate::state::AppState;
use wardline_core::deps::Deps;
use wardline_core::vault::{Vault, VaultError};
use wardline_core::worker::{Every, Shutdown, Worker, Workers};
use wardline_core::{audit, patients};

use crate::{http, ops, request_audit, routes, telemetry, tls};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("key provider: {0}")]
    Keys(#[from] wardline_crypto::CryptoError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Vault(#[from] VaultError),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("{0}")]
    Setup(String),
    #[error("audit: {0}")]
    Audit(String),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wardline API",
        description = "Secure clinical messaging. Errors are always `{ \"error\": { \"code\", \"message\" } }`. \
                       Times are Unix seconds. Authenticate with `Authorization: Bearer <session token>`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "setup", description = "First start"),
        (name = "auth", description = "Sign-in, MFA, sessions"),
        (name = "sessions", description = "Session administration"),
        (name = "users", description = "Users and roles"),
        (name = "organisation", description = "Organisation and policy"),
        (name = "audit", description = "Audit trail: search, access reports, exports, proofs (compliance officer)"),
        (name = "messaging", description = "Devices, conversations, MLS message delivery, sync, receipts"),
        (name = "patients", description = "Patients, texting consent, templates, SMS and secure messages to patients, patient threads"),
        (name = "sms-webhooks", description = "The SMS provider's callbacks (signed): inbound texts and delivery status"),
        (name = "patient-portal", description = "The patient's HTML pages behind a secure link (identity check, messages, reply)"),
        (name = "routing", description = "Clinical routing: departments, care teams, clinical roles, presence, on-call schedules (iCalendar), pages to a role, acknowledgement and escalation, patient context and break-glass, response reports"),
        (name = "reports", description = "Analytics for administrators and compliance officers: counts per day over a time range, aggregated by the database"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Declares the errors that every operation can return, so that handlers only
/// document their own: 400 (bad parameters or body), 413/415/422 (bodies), and for
/// operations that need a session 401 and 403 (including MFA enrolment pending).
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let r = &mut op.responses.responses;
                r.entry("400".into())
                    .or_insert_with(|| error("Malformed parameters or body"));
                if has_body {
                    r.entry("413".into())
                        .or_insert_with(|| error("Body larger than limits.max_body_bytes"));
                    r.entry("415".into())
                        .or_insert_with(|| error("Body is not application/json"));
                    r.entry("422".into())
                        .or_insert_with(|| error("Well-formed but invalid values"));
                }
                if secured {
                    r.entry("401".into())
                        .or_insert_with(|| error("Missing, expired or revoked session"));
                    r.entry("403".into())
                        .or_insert_with(|| error("Not permitted, or MFA enrolment pending"));
                }
            }
        }
    }
}

/// The API routes and the OpenAPI document generated from the same handlers.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let (router, mut doc) = OpenApiRouter::with_openapi(doc)
        .merge(routes::auth::router())
        .merge(routes::directory::router())
        .merge(routes::audit::router())
        .merge(routes::messaging::router())
        .merge(routes::lifecycle::router())
        .merge(routes::patients::router())
        .merge(routes::routing::router())
        .merge(routes::reports::router())
        .split_for_parts();
    // After the merge: the derive's own modifiers run before any path exists.
    CommonErrors.modify(&mut doc);
    (router, doc)
}

pub struct Server {
    config: Config,
    state: AppState,
    sql: Arc<SqlStore>,
    /// PostgreSQL only: the wake-up bus between nodes (closed at shutdown).
    pg_bus: Option<Arc<PgBus>>,
    clock: Arc<dyn Clock>,
    setup_code: Option<String>,
    keys: Arc<dyn KeyProvider>,
    /// The Web Push sender, until the workers start and take it.
    push_sender: std::sync::Mutex<Option<wardline_core::push::PushSender>>,
}

/// Owner-only modes for what the data directory holds (finding L7: the
/// database files were 0644 and `keys/`, `tls/` 0755, so only the 0700 data
/// directory stood between them and other local users). The SQLite database
/// is created 0600 before SQLite opens it, and SQLite gives its `-wal` and
/// `-shm` files the database file's mode; files from older versions are
/// narrowed at every start.
pub fn restrict_data_files(dir: &std::path::Path, default_sqlite: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let db = dir.join("wardline.db");
    if default_sqlite && !db.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&db)?;
    }
    for (name, mode) in [
        ("wardline.db", 0o600),
        ("wardline.db-wal", 0o600),
        ("wardline.db-shm", 0o600),
        ("keys", 0o700),
        ("tls", 0o700),
    ] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

impl Server {
    pub async fn build(config: Config) -> Result<Server, StartError> {
        Server::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Server::build`], with a clock the caller controls (tests).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Server, StartError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| StartError::DataDir(dir.display().to_string(), e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StartError::DataDir(dir.display().to_string(), e))?;
        let default_sqlite = config.database_url() == SqlStore::sqlite_url(dir);
        restrict_data_files(dir, default_sqlite)
            .map_err(|e| StartError::DataDir(dir.display().to_string(), e))?;
        let keys: Arc<dyn KeyProvider> =
            Arc::new(LocalKeyFile::open_or_create(&config.key_file())?);
        let sql = Arc::new(SqlStore::connect(&config.database_url()).await?);
        let store: Arc<dyn Store> = sql.clone();
        let audit_store: Arc<dyn AuditStore> = sql.clone();
        let audit = AuditLog::start(
            audit_store.clone(),
            keys.clone(),
            clock.clone(),
            &config.audit,
        )
        .await?;
        // Fail at start, not later in the background, on a bad SIEM setting.
        audit::siem::check(&config.audit).map_err(StartError::Audit)?;
        let vault = Vault::open(keys.clone(), store.clone(), clock.clone()).await?;
        // Several nodes share a PostgreSQL database and wake each other
        // through it; a SQLite node is alone.
        let pg_bus = match sql.backend() {
            Backend::Postgres => Some(Arc::new(PgBus::new(&config.database_url())?)),
            Backend::Sqlite => None,
        };
        let bus: Arc<dyn Bus> = match &pg_bus {
            Some(b) => b.clone(),
            None => Arc::new(LocalOnly),
        };
        // One engine behind every store trait.
        let deps = Deps {
            store: store.clone(),
            messaging: sql.clone(),
            patients: sql.clone(),
            routing: sql.clone(),
            lifecycle: sql.clone(),
            reports: sql.clone(),
            audit_store: audit_store.clone(),
            bus,
            vault,
            clock: clock.clone(),
            keys: keys.clone(),
            audit: audit.clone(),
        };
        let messaging = MessagingService::new(&deps);
        let vapid = wardline_core::push::VapidKey::load(&deps.vault).await?;
        let (push, push_sender) = wardline_core::push::WebPush::new(
            &config.push,
            config
                .push
                .contact
                .clone()
                .unwrap_or_else(|| config.public_url()),
            vapid,
            deps.messaging.clone(),
            clock.clone(),
            messaging.hub.clone(),
        );
        let messaging = messaging.with_push(push);
        let lifecycle = LifecycleService::new(&deps, messaging.clone());
        let patients = PatientService::new(
            &deps,
            TextingSetup {
                public_url: config.public_url(),
                default_from: config.sms.from.clone(),
                webhook_token: config.sms.auth_token.clone(),
            },
            messaging.hub.clone(),
        );
        messaging.hub.set_caps(
            config.limits.max_sockets_per_device,
            config.limits.max_sockets_per_user,
        );
        let passwords = Passwords::new();
        let directory = DirectoryService::new(&deps, passwords.clone(), config.auth.clone());
        let auth = AuthService::new(&deps, directory.clone(), passwords, config.auth.clone());
        let routing = RoutingService::new(
            &deps,
            directory.clone(),
            messaging.clone(),
            patients.clone(),
            config.public_url(),
        );
        let setup_code = directory
            .ensure_setup_code()
            .await
            .map_err(|e| StartError::Setup(e.message))?;
        let (_, doc) = api();
        let openapi = Arc::new(http::served_openapi(&doc));
        let state = AppState {
            auth,
            directory,
            audit,
            audit_reader: AuditService::new(&deps, messaging.clone()),
            reports: wardline_core::reports::ReportService::new(&deps),
            store,
            history: sql.clone(),
            messaging,
            lifecycle,
            patients,
            routing,
            session_changes: sql.session_changes(),
            metrics: telemetry::metrics(),
            openapi,
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            metrics_token: config.metrics_token.clone().map(Arc::new),
            anonymous: Arc::new(audit::anonymous::AnonymousGate::new(
                config.limits.anonymous_per_sec,
                config.limits.anonymous_burst,
                config.limits.min_free_disk_mib,
                config.data_dir.clone(),
            )),
        };
        Ok(Server {
            config,
            state,
            sql,
            pg_bus,
            clock,
            setup_code,
            keys,
            push_sender: std::sync::Mutex::new(push_sender),
        })
    }

    /// The one-time setup code, on a server that has no organisation yet.
    pub fn setup_code(&self) -> Option<&str> {
        self.setup_code.as_deref()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn sql(&self) -> &Arc<SqlStore> {
        &self.sql
    }

    /// The key provider (audit signing, KEKs).
    pub fn keys(&self) -> &Arc<dyn KeyProvider> {
        &self.keys
    }

    pub fn router(&self) -> Router {
        let (api, _) = api();
        api.merge(ops::router())
            .merge(routes::web_app::router())
            .fallback(http::not_found)
            .method_not_allowed_fallback(http::method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(
                http::AllowedOrigins::new(&self.config.public_url(), self.config.tls.insecure_http),
                http::refuse_foreign_origins,
            ))
            .layer(axum::middleware::from_fn_with_state(
                request_audit::RequestAudit {
                    audit: self.state.audit.clone(),
                    anonymous: self.state.anonymous.clone(),
                    trusted_proxies: self.state.trusted_proxies.clone(),
                },
                request_audit::record_requests,
            ))
            .layer(axum::middleware::from_fn(http::observe))
            .layer(DefaultBodyLimit::max(self.config.limits.max_body_bytes))
            .layer(axum::middleware::map_request({
                let rate = self.config.limits.body_min_bytes_per_sec;
                let grace = Duration::from_secs(self.config.limits.header_read_timeout_secs);
                move |req: axum::extract::Request| async move {
                    connections::min_rate_body(req, rate, grace)
                }
            }))
            .layer(CatchPanicLayer::custom(http::panic_response))
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until `handle` is told to shut down.
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        handle: Handle<SocketAddr>,
    ) -> Result<(), StartError> {
        let mut workers = Workers::default();
        for worker in self.workers()? {
            workers.start(worker);
        }
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Listen(self.config.listen, e))?;
        let limits = &self.config.limits;
        let acceptor = connections::LimitedAcceptor::new(connections::ConnectionLimits::new(
            limits.max_connections,
            limits.max_connections_per_address,
            self.config.trusted_proxies.clone(),
        ));
        let head_timeout = Duration::from_secs(limits.header_read_timeout_secs);
        let result = if self.config.tls.insecure_http {
            tracing::warn!(%addr, "serving plain HTTP (tls.insecure_http); only behind a TLS proxy on this host");
            let mut server = axum_server::from_tcp(listener)
                .map_err(|e| StartError::Listen(addr, e))?
                .acceptor(acceptor)
                .first_request_timeout(head_timeout);
            server
                .http_builder()
                .http1()
                .header_read_timeout(head_timeout);
            server.handle(handle).serve(app).await
        } else {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let paths = tls::ensure_certificate(&self.config).map_err(StartError::Tls)?;
            let tls = RustlsConfig::from_pem_file(&paths.cert, &paths.key)
                .await
                .map_err(StartError::Tls)?;
            tracing::info!(%addr, "serving HTTPS (HTTP/1.1 and HTTP/2)");
            let mut server = axum_server::from_tcp_rustls(listener, tls)
                .map_err(|e| StartError::Listen(addr, e))?
                .map(|tls| tls.acceptor(acceptor))
                .first_request_timeout(head_timeout);
            server
                .http_builder()
                .http1()
                .header_read_timeout(head_timeout);
            server.handle(handle).serve(app).await
        };
        // The HTTP side has drained. Stop the background loops before the
        // pool closes (a loop that met a closed pool logged an ERROR on every
        // clean shutdown): each finishes its step, and one that does not
        // within the grace period is aborted, which every loop survives as it
        // survives a crash (steps and runs are leased and idempotent,
        // transactions roll back).
        workers.stop(WORKER_GRACE).await;
        // The last minutes' repeated anonymous refusals, counted in memory.
        self.state
            .anonymous
            .flush(&self.state.audit, i64::MAX)
            .await;
        // Sign what the last interval appended, so that a stopped node leaves
        // no unsigned tail.
        if let Err(e) = self.state.audit.checkpoint_now().await {
            tracing::error!(error = %e.message, "final audit checkpoint failed");
        }
        if let Some(bus) = &self.pg_bus {
            bus.close().await;
        }
        self.sql.close().await;
        result.map_err(|e| StartError::Listen(addr, e))
    }

    /// Background work of a serving node: SIEM export, audit retention,
    /// lifecycle deletion, escalation and routing loops, the SMS sender, the
    /// anonymous-refusal flush, and (on PostgreSQL) inbox wake-ups from other
    /// nodes. Not started by [`Server::build`], so that CLI commands that
    /// build a server to reach its services do not export or purge.
    fn workers(&self) -> Result<Vec<Box<dyn Worker>>, StartError> {
        let mut workers: Vec<Box<dyn Worker>> = Vec::new();
        let audit_store: Arc<dyn AuditStore> = self.sql.clone();
        workers.extend(
            audit::siem::worker(&self.config.audit, audit_store.clone(), self.clock.clone())
                .map_err(StartError::Audit)?,
        );
        workers.push(audit::retention::worker(
            audit_store,
            self.sql.clone(),
            self.keys.clone(),
            self.state.audit.clone(),
            self.clock.clone(),
            self.config.audit.retention_days,
        ));
        let gateway: Arc<dyn patients::gateway::SmsGateway> = match self.config.sms.gateway {
            wardline_core::config::SmsGatewayKind::File => Arc::new(
                patients::gateway::FileGateway::new(self.config.sms_file_path()),
            ),
            wardline_core::config::SmsGatewayKind::Http => {
                Arc::new(patients::gateway::HttpGateway::new(
                    &self.config.sms.api_url,
                    &self.config.sms.account_sid,
                    self.config.sms.auth_token.as_deref().unwrap_or_default(),
                ))
            }
        };
        // A node name for the leases (deletion, housekeeping): unique per start.
        let node = format!("node-{}", uuid::Uuid::new_v4());
        workers.push(self.state.lifecycle.clone().worker(node.clone()));
        workers.extend(self.state.routing.clone().workers(node));
        workers.push(Box::new(patients::delivery::Sender::new(
            self.state.patients.clone(),
            gateway,
            self.config.sms.max_attempts,
        )));
        let (gate, log) = (self.state.anonymous.clone(), self.state.audit.clone());
        workers.push(Every::new(
            "anonymous-refusals",
            Duration::from_secs(15),
            move || {
                let (gate, log) = (gate.clone(), log.clone());
                async move { gate.flush(&log, audit::anonymous::unix_minute()).await }
            },
        ));
        if let Some(sender) = self.push_sender.lock().expect("push sender lock").take() {
            workers.push(Box::new(sender));
        }
        if self.pg_bus.is_some() {
            workers.push(Box::new(WakeUpListener {
                url: self.config.database_url(),
                hub: self.state.messaging.hub.clone(),
            }));
        }
        Ok(workers)
    }

    /// Binds `config.listen` and serves until SIGINT or SIGTERM, then drains
    /// open requests for up to 10 seconds.
    pub async fn run(self) -> Result<(), StartError> {
        let listener = std::net::TcpListener::bind(self.config.listen)
            .map_err(|e| StartError::Listen(self.config.listen, e))?;
        let handle = Handle::new();
        let h = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: draining open requests");
            h.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        self.serve(listener, handle).await
    }
}

/// How long the background loops get to finish their step at shutdown.
const WORKER_GRACE: Duration = Duration::from_secs(10);

/// Inbox wake-ups from the other nodes (PostgreSQL `LISTEN`), to this node's
/// sockets.
struct WakeUpListener {
    url: String,
    hub: wardline_core::hub::DeliveryHub,
}

#[async_trait::async_trait]
impl Worker for WakeUpListener {
    fn name(&self) -> &'static str {
        "inbox-wake-ups"
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) {
        let hub = self.hub;
        PgBus::listen(
            self.url,
            move |devices| hub.wake(&devices.iter().copied().map(Into::into).collect::<Vec<_>>()),
            shutdown.receiver(),
        )
        .await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
