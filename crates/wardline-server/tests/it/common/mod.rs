//! Test harness: starts the real server on a free loopback port over TLS and
//! talks to it like a client. Each server gets its own data directory and, on
//! PostgreSQL, its own schema. The server's clock is a [`ManualClock`] so that
//! expiry and back-off are tested by moving time, not by sleeping.
#![allow(dead_code)]

pub mod browser;
pub mod push_service;

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::Handle;
use totp_rs::{Algorithm, Builder, Secret};
use uuid::Uuid;
use wardline_client::ApiClient;
use wardline_core::clock::{Clock, ManualClock};
use wardline_proto::Role;
use wardline_proto::auth::{LoginRequest, LoginStep, SetupRequest};
use wardline_proto::directory::{CreateUserRequest, User};
use wardline_server::{AppState, Config, Server};
use wardline_store_sql::SqlStore;

pub const PASSWORD: &str = "lantern orbit mossy teacup";

pub use wardline_store::Backend;
pub use wardline_store_sql::testing::fresh_database;

pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub sql: Arc<SqlStore>,
    /// The server's key provider (audit signing key, KEKs).
    pub keys: Arc<dyn wardline_crypto::KeyProvider>,
    pub config: Config,
    pub ca_pem: Vec<u8>,
    pub setup_code: Option<String>,
    pub data_dir: tempfile::TempDir,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl TestServer {
    /// `None` when the backend is not available here (PostgreSQL outside CI).
    pub async fn start(backend: Backend) -> Option<TestServer> {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<TestServer> {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let database_url = fresh_database(backend, data_dir.path()).await?;
        Some(Self::start_in(data_dir, Some(database_url), tweak).await)
    }

    /// A server on an existing data directory (`database_url` `None`: its
    /// embedded SQLite database, as `wardline serve --data-dir` opens it).
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        database_url: Option<String>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let mut config = Config {
            data_dir: data_dir.path().to_owned(),
            listen: addr,
            database_url,
            ..Config::default()
        };
        tweak(&mut config);
        let paths = wardline_server::tls::ensure_certificate(&config).expect("dev certificate");
        let ca_pem = std::fs::read(&paths.cert).unwrap();
        let clock = Arc::new(ManualClock::new());
        let server = Server::build_with_clock(config.clone(), clock.clone())
            .await
            .expect("server builds");
        let state = server.state().clone();
        let sql = server.sql().clone();
        let keys = server.keys().clone();
        let setup_code = server.setup_code().map(str::to_owned);
        let handle = Handle::new();
        let h = handle.clone();
        let task =
            tokio::spawn(async move { server.serve(listener, h).await.expect("server runs") });
        handle.listening().await.expect("server listening");
        TestServer {
            url: format!("https://127.0.0.1:{}", addr.port()),
            addr,
            clock,
            state,
            sql,
            keys,
            config,
            ca_pem,
            setup_code,
            data_dir,
            handle,
            task,
        }
    }

    /// Stops the server (as a crash or a deploy would) and starts a new one
    /// on the same address, database, keys and clock. Sessions, inboxes and
    /// durable jobs survive; the old node's background tasks are left with
    /// a closed pool, like a dead node's.
    pub async fn restart(&mut self) {
        self.handle.shutdown();
        (&mut self.task).await.expect("old server stopped");
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        let server = Server::build_with_clock(self.config.clone(), self.clock.clone())
            .await
            .expect("server builds again");
        self.state = server.state().clone();
        self.sql = server.sql().clone();
        self.keys = server.keys().clone();
        self.handle = Handle::new();
        let h = self.handle.clone();
        self.task =
            tokio::spawn(async move { server.serve(listener, h).await.expect("server runs") });
        self.handle
            .listening()
            .await
            .expect("server listening again");
    }

    /// An unauthenticated API client that trusts the server's certificate.
    pub fn client(&self) -> ApiClient {
        ApiClient::new(&self.url, Some(&self.ca_pem)).expect("client")
    }

    /// A raw HTTP client for malformed requests.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&self.ca_pem).unwrap())
            .build()
            .unwrap()
    }

    /// The served OpenAPI document.
    pub async fn openapi(&self) -> serde_json::Value {
        let resp = self
            .http()
            .get(format!("{}/api/openapi.json", self.url))
            .send()
            .await
            .unwrap();
        resp.json().await.unwrap()
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Moves to the start of the next TOTP step, so a fresh code is never a replay.
    pub fn next_totp_step(&self) {
        let now = self.clock.now();
        self.clock.advance(30 - now.rem_euclid(30));
    }

    pub fn totp_code(&self, secret_base32: &str) -> String {
        self.totp_code_at(secret_base32, self.clock.now())
    }

    /// The code an authenticator shows at `at` (Unix seconds): the next
    /// step's code is accepted now too (±1 step of skew), and after this
    /// step's (never twice).
    pub fn totp_code_at(&self, secret_base32: &str, at: i64) -> String {
        let t = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_secret(Secret::try_from_base32(secret_base32).unwrap())
            .build()
            .unwrap();
        t.generate(at as u64).to_string()
    }

    /// Runs first-start setup through the API and returns the signed-in
    /// administrator of the new organisation.
    pub async fn setup_org(&self, slug: &str) -> Actor {
        let code = self
            .setup_code
            .clone()
            .expect("fresh server has a setup code");
        let resp = self
            .client()
            .setup(&SetupRequest {
                setup_code: code,
                org_name: format!("Org {slug}"),
                org_slug: slug.into(),
                admin_email: format!("admin@{slug}.test"),
                admin_display_name: "Ada Admin".into(),
                admin_password: PASSWORD.into(),
            })
            .await
            .expect("setup");
        self.sign_in_enrolling(slug, &resp.admin).await
    }

    /// A further organisation, created as the host operator would (`admin bootstrap`).
    pub async fn create_org(&self, slug: &str) -> Actor {
        let dir = &self.state.directory;
        let org = dir
            .create_org(&format!("Org {slug}"), slug)
            .await
            .expect("org");
        let admin = dir
            .create_user(
                org.id,
                CreateUserRequest {
                    email: format!("admin@{slug}.test"),
                    display_name: "Other Admin".into(),
                    phone: None,
                    roles: vec![Role::OrgAdmin],
                    password: PASSWORD.into(),
                    password_change_required: false,
                },
            )
            .await
            .expect("admin");
        self.sign_in_enrolling(slug, &admin).await
    }

    /// Password login, TOTP enrolment and confirmation: a full session.
    pub async fn sign_in_enrolling(&self, org_slug: &str, user: &User) -> Actor {
        let device_id = Uuid::new_v4();
        let mut client = self.client();
        let resp = client
            .login(&LoginRequest {
                org: org_slug.into(),
                email: user.email.clone(),
                password: PASSWORD.into(),
                device_id,
                device_token: None,
            })
            .await
            .expect("login");
        assert_eq!(resp.step, LoginStep::MfaEnrolmentRequired);
        let session = resp.session.unwrap();
        client.set_token(Some(session.token.clone()));
        let enrol = client.enroll_totp().await.expect("enroll");
        let codes = client
            .confirm_totp(&self.totp_code(&enrol.secret_base32))
            .await
            .expect("confirm")
            .recovery_codes;
        self.next_totp_step();
        Actor {
            client,
            user: user.clone(),
            org_slug: org_slug.into(),
            token: session.token,
            device_id,
            totp_secret: enrol.secret_base32,
            recovery_codes: codes,
        }
    }

    /// As [`TestServer::user_with_role`], under a display name of its own
    /// (what the browser tests find people by).
    pub async fn user_named(&self, admin: &Actor, role: Role, name: &str) -> Actor {
        let a = self.user_with_role(admin, role).await;
        admin
            .client
            .update_user(
                a.user.id,
                &wardline_proto::directory::UpdateUserRequest {
                    display_name: Some(name.into()),
                    ..Default::default()
                },
            )
            .await
            .expect("rename user");
        a
    }

    /// Creates a user with `role` as `admin` and signs them in fully.
    pub async fn user_with_role(&self, admin: &Actor, role: Role) -> Actor {
        let user = admin
            .client
            .create_user(&CreateUserRequest {
                email: format!(
                    "{}-{}@{}.test",
                    role.as_str(),
                    &Uuid::new_v4().simple().to_string()[..6],
                    admin.org_slug
                ),
                display_name: format!("Test {}", role.as_str()),
                phone: Some("+15550100123".into()),
                roles: vec![role],
                password: PASSWORD.into(),
                // Tests sign in with it again and again; the first-sign-in
                // change has its own test (auth_flows).
                password_change_required: false,
            })
            .await
            .expect("create user");
        self.sign_in_enrolling(&admin.org_slug, &user).await
    }
}

/// A signed-in user.
pub struct Actor {
    pub client: ApiClient,
    pub user: User,
    pub org_slug: String,
    pub token: String,
    pub device_id: Uuid,
    pub totp_secret: String,
    pub recovery_codes: Vec<String>,
}

/// Defines `<name>_sqlite` and `<name>_postgres` tests from one
/// `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            paste::paste! {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<$name _sqlite>]() { $name($crate::common::Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn [<$name _postgres>]() { $name($crate::common::Backend::Postgres).await }
            }
        )*
    };
}

impl TestServer {
    /// Appends `n` test entries to the audit trail (a service acting on
    /// numbered items), straight through the writer.
    pub async fn fill_audit(&self, n: usize) {
        for i in 0..n {
            self.state
                .audit
                .record(
                    wardline_core::audit::NewEvent::service(
                        "test",
                        wardline_proto::audit::AuditAction::AuditSearch,
                    )
                    .target("item", i),
                )
                .await
                .unwrap();
        }
    }

    /// A further full session (new device) for an already enrolled user.
    pub async fn sign_in_mfa(&self, who: &Actor) -> ApiClient {
        self.sign_in_device(who).await.0
    }

    /// As [`TestServer::sign_in_mfa`], also returning the new device's id.
    pub async fn sign_in_device(&self, who: &Actor) -> (ApiClient, Uuid) {
        let device_id = Uuid::new_v4();
        (self.sign_in_as_device(who, device_id).await, device_id)
    }

    /// A fresh full session for an existing device (after its session ended).
    pub async fn sign_in_as_device(&self, who: &Actor, device_id: Uuid) -> ApiClient {
        self.next_totp_step();
        let c = self.client();
        let resp = c
            .login(&LoginRequest {
                org: who.org_slug.clone(),
                email: who.user.email.clone(),
                password: PASSWORD.into(),
                device_id,
                device_token: None,
            })
            .await
            .expect("login");
        assert_eq!(resp.step, LoginStep::MfaRequired);
        let s = c
            .verify_mfa(
                resp.mfa_token.as_deref().unwrap(),
                &self.totp_code(&who.totp_secret),
            )
            .await
            .expect("mfa");
        c.with_token(Some(s.token))
    }
}

/// Every table's rows as text (PostgreSQL) or the raw database file (SQLite):
/// what an attacker with the database would see.
pub async fn database_bytes(t: &TestServer) -> Vec<u8> {
    match wardline_store::Store::backend(t.sql.as_ref()) {
        wardline_store::Backend::Sqlite => {
            t.sql.checkpoint().await.unwrap();
            std::fs::read(t.data_dir.path().join("wardline.db")).unwrap()
        }
        wardline_store::Backend::Postgres => {
            let url = t.config.database_url.clone().unwrap();
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let tables: Vec<String> = sqlx::query(
                "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| sqlx::Row::get::<String, _>(r, "t"))
            .collect();
            assert!(tables.contains(&"messages".to_owned()));
            let mut out = Vec::new();
            for table in tables {
                let sql = format!("SELECT x::text AS r FROM \"{table}\" x");
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                {
                    out.extend_from_slice(sqlx::Row::get::<String, _>(&row, "r").as_bytes());
                    out.push(b'\n');
                }
            }
            out
        }
    }
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    let hex_needle = hex::encode(needle);
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
        || hay
            .windows(hex_needle.len())
            .any(|w| w.eq_ignore_ascii_case(hex_needle.as_bytes()))
}

/// Passphrase of the test devices' local message stores.
pub const PASSPHRASE: &str = "4821 quiet harbour";

/// Test devices' local message stores (client SDK `Chat`), one directory each test.
pub struct Devices {
    pub dir: tempfile::TempDir,
}

impl Devices {
    pub fn new() -> Devices {
        Devices {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, device: Uuid) -> std::path::PathBuf {
        self.dir.path().join(format!("{device}.wls"))
    }

    pub async fn open(
        &self,
        api: ApiClient,
        user: Uuid,
        device: Uuid,
        name: &str,
    ) -> wardline_client::chat::Chat {
        wardline_client::chat::Chat::open(api, &self.path(device), PASSPHRASE, user, device, name)
            .await
            .expect("open chat")
    }

    pub async fn of(&self, a: &Actor, name: &str) -> wardline_client::chat::Chat {
        self.open(a.client.clone(), a.user.id, a.device_id, name)
            .await
    }
}

/// The texts of a conversation as this device holds them.
pub fn texts(chat: &wardline_client::chat::Chat, conv: Uuid) -> Vec<String> {
    chat.core
        .conversations
        .get(&conv)
        .map(|c| c.messages.iter().map(|m| m.content.text.clone()).collect())
        .unwrap_or_default()
}

/// A group the creator's device makes with `members` (and a patient, if given).
pub async fn group(
    creator: &mut wardline_client::chat::Chat,
    members: &[Uuid],
    patient: Option<&str>,
) -> Uuid {
    use wardline_proto::messaging::{ConversationKind, CreateConversationRequest};
    creator
        .create(&CreateConversationRequest {
            kind: ConversationKind::Group,
            title: Some("Ward 4 night team".into()),
            members: members.to_vec(),
            patient_ref: patient.map(str::to_owned),
            care_team_id: None,
        })
        .await
        .expect("create group")
        .id
}

/// The audit trail as (action, outcome, target, reason), oldest first.
pub async fn actions(t: &TestServer) -> Vec<(String, String, Option<String>, Option<String>)> {
    use wardline_store::AuditStore;
    t.sql
        .audit_entries(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.outcome, r.target_id, r.reason))
        .collect()
}

/// A successful event of `action` on `target`.
pub fn has_action(
    log: &[(String, String, Option<String>, Option<String>)],
    action: &str,
    target: &str,
) -> bool {
    log.iter()
        .any(|(a, o, t, _)| a == action && o == "success" && t.as_deref() == Some(target))
}

/// Polls `check` every 200 ms until it holds (or fails the test after 30 s,
/// naming `what`): for what the server does in the background (escalation
/// steps, pushes, deliveries to other devices).
pub async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}
