//! Typed HTTP client for the Wardline API.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use wardline_proto::audit::*;
use wardline_proto::auth::*;
use wardline_proto::directory::*;
use wardline_proto::lifecycle::*;
use wardline_proto::messaging::*;
use wardline_proto::patients::*;
use wardline_proto::routing::*;
use wardline_proto::sync::SyncResponse;
use wardline_proto::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message} ({status}, {code:?})")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    /// Said once: where, and the innermost cause ("Connection refused"),
    /// not reqwest's chain that names the URL at every level.
    #[error("cannot reach the server{}: {}", transport_where(.0), transport_cause(.0))]
    Transport(reqwest::Error),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("profile: {0}")]
    Profile(String),
    #[error("unexpected response ({status}): {body}")]
    Unexpected { status: u16, body: String },
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e)
    }
}

fn transport_where(e: &reqwest::Error) -> String {
    e.url()
        .map(|u| format!(" at {}", u.origin().ascii_serialization()))
        .unwrap_or_default()
}

fn transport_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl ClientError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// The API's error body as a [`ClientError`], or the raw start of whatever
/// else came back.
fn error_of(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: e.error.code,
            message: e.error.message,
        },
        Err(_) => ClientError::Unexpected {
            status: status.as_u16(),
            body: String::from_utf8_lossy(bytes).chars().take(200).collect(),
        },
    }
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// The certificate trusted instead of the system roots, kept for the
    /// WebSocket connection (which does not go through reqwest).
    ca_pem: Option<Vec<u8>>,
}

impl ApiClient {
    /// `ca_pem`: a CA or self-signed certificate to trust instead of the
    /// system's roots (the server's development certificate).
    pub fn new(base: &str, ca_pem: Option<&[u8]>) -> Result<ApiClient> {
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(pem) = ca_pem {
            // Trust exactly this certificate (bundle), not the system roots.
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            if certs.is_empty() {
                return Err(ClientError::Tls("no certificate in the CA file".into()));
            }
            builder = builder.tls_certs_only(certs);
        }
        Ok(ApiClient {
            http: builder.build()?,
            base: base.trim_end_matches('/').to_owned(),
            token: None,
            ca_pem: ca_pem.map(<[u8]>::to_vec),
        })
    }

    pub fn with_token(mut self, token: Option<String>) -> ApiClient {
        self.token = token;
        self
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            let body: &[u8] = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
                b"null"
            } else {
                &bytes
            };
            return serde_json::from_slice(body).map_err(|_| ClientError::Unexpected {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            });
        }
        Err(error_of(status, &bytes))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    /// GET any API path (with its query string) as JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T> {
        self.get(path_and_query).await
    }

    /// `path?k=v&…` from the non-null fields of `query`, percent-encoded.
    fn with_query(path: &str, query: &impl Serialize) -> String {
        let mut url = reqwest::Url::parse("http://x").expect("static URL");
        url.set_path(path);
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(query) {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in fields {
                match v {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(s) => {
                        pairs.append_pair(&k, &s);
                    }
                    other => {
                        pairs.append_pair(&k, &other.to_string());
                    }
                }
            }
        }
        match url.query() {
            Some(q) if !q.is_empty() => format!("{}?{q}", url.path()),
            _ => url.path().to_owned(),
        }
    }

    pub async fn audit_search(&self, q: &AuditQuery) -> Result<AuditPage> {
        self.get(&Self::with_query("/api/v1/audit/events", q)).await
    }

    pub async fn audit_access_report(&self, patient: &str) -> Result<AccessReport> {
        let mut url = reqwest::Url::parse("http://x/api/v1/audit/patients").expect("static URL");
        url.path_segments_mut()
            .expect("http URLs have paths")
            .push(patient)
            .push("access-report");
        self.get(url.path()).await
    }

    /// CSV (`csv`) or JSON Lines (`jsonl`) export, as bytes.
    pub async fn audit_export(&self, format: &str, q: &AuditQuery) -> Result<Vec<u8>> {
        #[derive(Serialize)]
        struct WithFormat<'a> {
            format: &'a str,
            #[serde(flatten)]
            q: &'a AuditQuery,
        }
        let path = Self::with_query("/api/v1/audit/export", &WithFormat { format, q });
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(error_of(status, &bytes))
    }

    pub async fn audit_latest_checkpoint(&self) -> Result<Checkpoint> {
        self.get("/api/v1/audit/checkpoints/latest").await
    }

    pub async fn audit_inclusion_proof(
        &self,
        seq: i64,
        tree_size: Option<i64>,
    ) -> Result<InclusionProof> {
        let size = tree_size
            .map(|s| format!("&tree_size={s}"))
            .unwrap_or_default();
        self.get(&format!("/api/v1/audit/proofs/inclusion?seq={seq}{size}"))
            .await
    }

    pub async fn audit_consistency_proof(&self, from: i64, to: i64) -> Result<ConsistencyProof> {
        self.get(&format!(
            "/api/v1/audit/proofs/consistency?from_size={from}&to_size={to}"
        ))
        .await
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }

    // Messaging.

    pub async fn register_device(&self, req: &RegisterDeviceRequest) -> Result<Device> {
        self.post("/api/v1/devices", req).await
    }

    pub async fn my_devices(&self) -> Result<DeviceList> {
        self.get("/api/v1/devices").await
    }

    pub async fn user_devices(&self, user: Uuid) -> Result<DeviceList> {
        self.get(&format!("/api/v1/users/{user}/devices")).await
    }

    pub async fn upload_key_packages(&self, req: &UploadKeyPackagesRequest) -> Result<DeviceList> {
        self.post("/api/v1/devices/key-packages", req).await
    }

    pub async fn create_conversation(
        &self,
        req: &CreateConversationRequest,
    ) -> Result<Conversation> {
        self.post("/api/v1/conversations", req).await
    }

    pub async fn conversations(&self) -> Result<ConversationList> {
        self.get("/api/v1/conversations").await
    }

    pub async fn conversation(&self, id: Uuid) -> Result<Conversation> {
        self.get(&format!("/api/v1/conversations/{id}")).await
    }

    pub async fn add_member(&self, id: Uuid, user: Uuid) -> Result<Conversation> {
        self.post(
            &format!("/api/v1/conversations/{id}/members"),
            &AddMemberRequest { user_id: user },
        )
        .await
    }

    pub async fn remove_member(&self, id: Uuid, user: Uuid) -> Result<Conversation> {
        self.send::<(), _>(
            Method::DELETE,
            &format!("/api/v1/conversations/{id}/members/{user}"),
            None,
        )
        .await
    }

    pub async fn claim_key_packages(
        &self,
        id: Uuid,
        devices: &[Uuid],
    ) -> Result<ClaimedKeyPackages> {
        self.post(
            &format!("/api/v1/conversations/{id}/key-packages/claim"),
            &ClaimKeyPackagesRequest {
                device_ids: devices.to_vec(),
            },
        )
        .await
    }

    pub async fn submit(
        &self,
        id: Uuid,
        req: &SubmitMessageRequest,
    ) -> Result<SubmitMessageResponse> {
        self.post(&format!("/api/v1/conversations/{id}/messages"), req)
            .await
    }

    pub async fn sync(&self, after: i64, limit: i64) -> Result<SyncResponse> {
        self.get(&format!("/api/v1/sync?after={after}&limit={limit}"))
            .await
    }

    pub async fn ack(&self, up_to: i64) -> Result<AckResponse> {
        self.post("/api/v1/sync/ack", &AckRequest { up_to }).await
    }

    /// Routine messages up to and including `up_to` (a watermark).
    pub async fn mark_read(&self, id: Uuid, up_to: Uuid) -> Result<ReadResponse> {
        self.post(
            &format!("/api/v1/conversations/{id}/read"),
            &ReadRequest {
                up_to_message_id: Some(up_to),
                ..Default::default()
            },
        )
        .await
    }

    /// Exactly `ids`, each shown to the person.
    pub async fn mark_shown(&self, id: Uuid, ids: &[Uuid]) -> Result<ReadResponse> {
        self.post(
            &format!("/api/v1/conversations/{id}/read"),
            &ReadRequest {
                message_ids: ids.to_vec(),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn receipts(&self, id: Uuid, message: Uuid) -> Result<MessageReceipts> {
        self.get(&format!(
            "/api/v1/conversations/{id}/messages/{message}/receipts"
        ))
        .await
    }

    pub async fn messaging_preferences(&self) -> Result<MessagingPreferences> {
        self.get("/api/v1/messaging/preferences").await
    }

    pub async fn set_messaging_preferences(
        &self,
        p: &MessagingPreferences,
    ) -> Result<MessagingPreferences> {
        self.send(Method::PUT, "/api/v1/messaging/preferences", Some(p))
            .await
    }

    pub async fn upload_attachment(
        &self,
        id: Uuid,
        ciphertext: Vec<u8>,
    ) -> Result<AttachmentUploaded> {
        let mut req = self
            .http
            .post(format!(
                "{}/api/v1/conversations/{id}/attachments",
                self.base
            ))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(ciphertext);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            });
        }
        Err(error_of(status, &bytes))
    }

    pub async fn download_attachment(&self, id: Uuid, attachment: Uuid) -> Result<Vec<u8>> {
        let mut req = self.http.get(format!(
            "{}/api/v1/conversations/{id}/attachments/{attachment}",
            self.base
        ));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(error_of(status, &bytes))
    }

    // Patients.

    pub async fn create_patient(&self, req: &CreatePatientRequest) -> Result<Patient> {
        self.post("/api/v1/patients", req).await
    }

    pub async fn patients(&self) -> Result<PatientList> {
        self.get("/api/v1/patients").await
    }

    pub async fn patient(&self, id: Uuid) -> Result<Patient> {
        self.get(&format!("/api/v1/patients/{id}")).await
    }

    pub async fn record_consent(
        &self,
        id: Uuid,
        req: &RecordConsentRequest,
    ) -> Result<ConsentHistory> {
        self.post(&format!("/api/v1/patients/{id}/consents"), req)
            .await
    }

    pub async fn consent_history(&self, id: Uuid) -> Result<ConsentHistory> {
        self.get(&format!("/api/v1/patients/{id}/consents")).await
    }

    pub async fn send_patient_text(
        &self,
        id: Uuid,
        req: &SendTemplateRequest,
    ) -> Result<SendOutcome> {
        self.post(&format!("/api/v1/patients/{id}/texts"), req)
            .await
    }

    pub async fn send_patient_message(
        &self,
        id: Uuid,
        req: &SendSecureMessageRequest,
    ) -> Result<SendOutcome> {
        self.post(&format!("/api/v1/patients/{id}/messages"), req)
            .await
    }

    pub async fn patient_thread(&self, id: Uuid) -> Result<PatientThread> {
        self.get(&format!("/api/v1/patients/{id}/messages")).await
    }

    pub async fn patient_sms(&self, id: Uuid) -> Result<SmsList> {
        self.get(&format!("/api/v1/patients/{id}/sms")).await
    }

    pub async fn revoke_patient_links(&self, id: Uuid) -> Result<LinksRevoked> {
        self.post_empty(&format!("/api/v1/patients/{id}/links/revoke"))
            .await
    }

    pub async fn patient_threads(&self) -> Result<PatientThreadList> {
        self.get("/api/v1/patient-threads").await
    }

    /// The caller's unseen notices (patients who replied).
    pub async fn notices(&self) -> Result<StaffNoticeList> {
        self.get("/api/v1/notices").await
    }

    pub async fn sms_templates(&self) -> Result<TemplateList> {
        self.get("/api/v1/sms/templates").await
    }

    pub async fn put_sms_template(
        &self,
        key: &str,
        language: &str,
        req: &PutTemplateRequest,
    ) -> Result<TemplateList> {
        self.send(
            Method::PUT,
            &format!("/api/v1/sms/templates/{key}/{language}"),
            Some(req),
        )
        .await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send::<(), T>(Method::POST, path, None).await
    }

    // ---------------------------------------------------------- lifecycle

    pub async fn lifecycle_policy(&self) -> Result<LifecyclePolicy> {
        self.get("/api/v1/lifecycle/policy").await
    }

    pub async fn set_lifecycle_policy(&self, p: &LifecyclePolicy) -> Result<LifecyclePolicy> {
        self.send(Method::PUT, "/api/v1/lifecycle/policy", Some(p))
            .await
    }

    pub async fn lifecycle_preview(&self, p: &LifecyclePolicy) -> Result<LifecyclePreview> {
        self.post("/api/v1/lifecycle/preview", p).await
    }

    pub async fn lifecycle_run(&self) -> Result<DeletionReceipt> {
        self.post_empty("/api/v1/lifecycle/run").await
    }

    pub async fn deletion_receipts(&self) -> Result<Vec<DeletionReceipt>> {
        self.get("/api/v1/lifecycle/receipts").await
    }

    pub async fn set_conversation_lifecycle(
        &self,
        id: Uuid,
        own: &ConversationLifecycle,
    ) -> Result<Conversation> {
        self.send(
            Method::PUT,
            &format!("/api/v1/conversations/{id}/lifecycle"),
            Some(own),
        )
        .await
    }

    pub async fn place_legal_hold(&self, req: &PlaceHoldRequest) -> Result<LegalHold> {
        self.post("/api/v1/legal-holds", req).await
    }

    pub async fn legal_holds(&self) -> Result<LegalHoldList> {
        self.get("/api/v1/legal-holds").await
    }

    pub async fn release_legal_hold(&self, id: Uuid, reason: &str) -> Result<LegalHold> {
        self.post(
            &format!("/api/v1/legal-holds/{id}/release"),
            &ReleaseHoldRequest {
                reason: reason.to_owned(),
            },
        )
        .await
    }

    pub async fn recall(&self, id: Uuid, message: Uuid) -> Result<RecallResult> {
        self.post_empty(&format!(
            "/api/v1/conversations/{id}/messages/{message}/recall"
        ))
        .await
    }

    pub async fn wipe_device(&self, device: Uuid, reason: &str) -> Result<DeviceWipe> {
        self.post(
            &format!("/api/v1/devices/{device}/wipe"),
            &WipeDeviceRequest {
                reason: reason.to_owned(),
            },
        )
        .await
    }

    pub async fn device_status(&self) -> Result<DeviceStatus> {
        self.get("/api/v1/devices/posture").await
    }

    pub async fn report_posture(&self, posture: &DevicePosture) -> Result<DeviceStatus> {
        self.send(Method::PUT, "/api/v1/devices/posture", Some(posture))
            .await
    }

    pub async fn device_wipes(&self) -> Result<DeviceWipeList> {
        self.get("/api/v1/devices/wipes").await
    }

    /// Confirms this device's wipe with the session token the wipe ended.
    pub async fn confirm_wipe(&self) -> Result<DeviceWipe> {
        self.post(
            "/api/v1/devices/wipe-confirmation",
            &WipeConfirmation { erased: true },
        )
        .await
    }

    pub async fn setup(&self, req: &SetupRequest) -> Result<SetupResponse> {
        self.post("/api/v1/setup", req).await
    }

    pub async fn login(&self, req: &LoginRequest) -> Result<LoginResponse> {
        self.post("/api/v1/auth/login", req).await
    }

    pub async fn verify_mfa(&self, mfa_token: &str, code: &str) -> Result<IssuedSession> {
        self.post(
            "/api/v1/auth/mfa/verify",
            &MfaVerifyRequest {
                mfa_token: mfa_token.into(),
                code: code.into(),
            },
        )
        .await
    }

    pub async fn enroll_totp(&self) -> Result<TotpEnrolment> {
        self.post_empty("/api/v1/auth/totp/enroll").await
    }

    pub async fn confirm_totp(&self, code: &str) -> Result<TotpConfirmResponse> {
        self.post(
            "/api/v1/auth/totp/confirm",
            &TotpConfirmRequest { code: code.into() },
        )
        .await
    }

    pub async fn current_session(&self) -> Result<CurrentSession> {
        self.get("/api/v1/auth/session").await
    }

    pub async fn logout(&self) -> Result<()> {
        self.post_empty("/api/v1/auth/logout").await
    }

    pub async fn change_password(&self, current: &str, new: &str) -> Result<()> {
        self.post(
            "/api/v1/auth/password",
            &ChangePasswordRequest {
                current_password: current.into(),
                new_password: new.into(),
            },
        )
        .await
    }

    pub async fn org(&self) -> Result<Organisation> {
        self.get("/api/v1/org").await
    }

    pub async fn policy(&self) -> Result<OrgPolicy> {
        self.get("/api/v1/org/policy").await
    }

    pub async fn set_policy(&self, p: &OrgPolicy) -> Result<OrgPolicy> {
        self.send(Method::PUT, "/api/v1/org/policy", Some(p)).await
    }

    /// Changes part of the policy: a JSON merge patch (RFC 7396).
    pub async fn patch_policy(&self, patch: &serde_json::Value) -> Result<OrgPolicy> {
        self.send(Method::PATCH, "/api/v1/org/policy", Some(patch))
            .await
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.get::<UserList>("/api/v1/users").await?.users)
    }

    pub async fn create_user(&self, req: &CreateUserRequest) -> Result<User> {
        self.post("/api/v1/users", req).await
    }

    pub async fn user(&self, id: Uuid) -> Result<User> {
        self.get(&format!("/api/v1/users/{id}")).await
    }

    pub async fn update_user(&self, id: Uuid, req: &UpdateUserRequest) -> Result<User> {
        self.send(Method::PATCH, &format!("/api/v1/users/{id}"), Some(req))
            .await
    }

    /// Grants (`true`) or removes the compliance officer role (a compliance
    /// officer's act; never one's own).
    pub async fn set_compliance_officer(&self, id: Uuid, grant: bool) -> Result<User> {
        let method = if grant { Method::PUT } else { Method::DELETE };
        self.send::<(), User>(
            method,
            &format!("/api/v1/users/{id}/compliance-officer"),
            None,
        )
        .await
    }

    /// Starts a conversation's group again from this device (see the route).
    pub async fn refound_conversation(&self, id: Uuid) -> Result<Conversation> {
        self.post_empty(&format!("/api/v1/conversations/{id}/refound"))
            .await
    }

    pub async fn suspend_user(&self, id: Uuid) -> Result<User> {
        self.post_empty(&format!("/api/v1/users/{id}/suspend"))
            .await
    }

    pub async fn reactivate_user(&self, id: Uuid) -> Result<User> {
        self.post_empty(&format!("/api/v1/users/{id}/reactivate"))
            .await
    }

    pub async fn deprovision_user(&self, id: Uuid) -> Result<User> {
        self.post_empty(&format!("/api/v1/users/{id}/deprovision"))
            .await
    }

    pub async fn reset_mfa(&self, id: Uuid) -> Result<()> {
        self.post_empty(&format!("/api/v1/users/{id}/mfa/reset"))
            .await
    }

    pub async fn roles(&self) -> Result<Vec<RoleInfo>> {
        Ok(self.get::<RoleList>("/api/v1/roles").await?.roles)
    }

    pub async fn list_sessions(&self, user: Uuid) -> Result<Vec<SessionSummary>> {
        self.get(&format!("/api/v1/users/{user}/sessions")).await
    }

    pub async fn revoke_sessions(
        &self,
        user: Uuid,
        device: Option<Uuid>,
    ) -> Result<RevokedSessions> {
        let q = device
            .map(|d| format!("?device_id={d}"))
            .unwrap_or_default();
        self.send::<(), _>(
            Method::DELETE,
            &format!("/api/v1/users/{user}/sessions{q}"),
            None,
        )
        .await
    }

    // ------------------------------------------------------------ routing

    pub async fn routing_directory(&self) -> Result<RoutingDirectory> {
        self.get("/api/v1/routing/directory").await
    }

    pub async fn create_department(&self, name: &str) -> Result<Department> {
        self.post(
            "/api/v1/routing/departments",
            &CreateDepartmentRequest {
                name: name.to_owned(),
            },
        )
        .await
    }

    pub async fn create_care_team(&self, req: &CreateCareTeamRequest) -> Result<CareTeam> {
        self.post("/api/v1/routing/care-teams", req).await
    }

    pub async fn add_team_member(&self, team: Uuid, user: Uuid) -> Result<CareTeam> {
        self.post(
            &format!("/api/v1/routing/care-teams/{team}/members"),
            &TeamMemberRequest { user_id: user },
        )
        .await
    }

    pub async fn create_clinical_role(&self, req: &CreateRoleRequest) -> Result<ClinicalRole> {
        self.post("/api/v1/routing/roles", req).await
    }

    pub async fn update_clinical_role(
        &self,
        id: Uuid,
        req: &CreateRoleRequest,
    ) -> Result<ClinicalRole> {
        self.send(
            Method::PUT,
            &format!("/api/v1/routing/roles/{id}"),
            Some(req),
        )
        .await
    }

    pub async fn search_directory(&self, q: &str) -> Result<DirectorySearchResult> {
        let q = serde_urlencoded::to_string([("q", q)]).unwrap_or_default();
        self.get(&format!("/api/v1/routing/search?{q}")).await
    }

    /// One's own presence as it applies now.
    pub async fn presence(&self) -> Result<Presence> {
        self.get("/api/v1/routing/presence").await
    }

    pub async fn set_presence(&self, req: &SetPresenceRequest) -> Result<Presence> {
        self.send(Method::PUT, "/api/v1/routing/presence", Some(req))
            .await
    }

    pub async fn shifts(&self, role: Uuid, from: i64, until: i64) -> Result<ShiftList> {
        self.get(&format!(
            "/api/v1/routing/roles/{role}/shifts?from={from}&until={until}"
        ))
        .await
    }

    pub async fn create_shift(&self, role: Uuid, req: &CreateShiftRequest) -> Result<Shift> {
        self.post(&format!("/api/v1/routing/roles/{role}/shifts"), req)
            .await
    }

    pub async fn import_schedule(
        &self,
        role: Uuid,
        req: &ImportScheduleRequest,
    ) -> Result<ImportScheduleResult> {
        self.post(
            &format!("/api/v1/routing/roles/{role}/schedule/import"),
            req,
        )
        .await
    }

    pub async fn schedule_feed(&self, role: Uuid) -> Result<ScheduleFeed> {
        self.get(&format!("/api/v1/routing/roles/{role}/schedule/feed"))
            .await
    }

    pub async fn unsubscribe_feed(&self, role: Uuid) -> Result<()> {
        self.send::<(), ()>(
            Method::DELETE,
            &format!("/api/v1/routing/roles/{role}/schedule/feed"),
            None,
        )
        .await
    }

    pub async fn on_call(&self, role: Uuid) -> Result<OnCall> {
        self.get(&format!("/api/v1/routing/roles/{role}/on-call"))
            .await
    }

    pub async fn page_role(&self, role: Uuid, req: &PageRoleRequest) -> Result<PageRoleResponse> {
        self.post(&format!("/api/v1/routing/roles/{role}/page"), req)
            .await
    }

    pub async fn escalation(&self, conv: Uuid, message: Uuid) -> Result<Escalation> {
        self.get(&format!(
            "/api/v1/conversations/{conv}/messages/{message}/escalation"
        ))
        .await
    }

    pub async fn acknowledge(&self, conv: Uuid, message: Uuid) -> Result<Escalation> {
        self.post_empty(&format!(
            "/api/v1/conversations/{conv}/messages/{message}/acknowledge"
        ))
        .await
    }

    pub async fn open_patient(&self, req: &OpenPatientRequest) -> Result<PatientAccess> {
        self.post("/api/v1/routing/patient-access", req).await
    }

    pub async fn break_glass_grants(&self) -> Result<BreakGlassList> {
        self.get("/api/v1/routing/break-glass").await
    }

    /// The caller's own break-glass grants still running.
    pub async fn own_break_glass_grants(&self) -> Result<BreakGlassList> {
        self.get("/api/v1/routing/break-glass/mine").await
    }

    pub async fn notifications(&self) -> Result<NotificationList> {
        self.get("/api/v1/routing/notifications").await
    }

    pub async fn response_report(&self, since: i64, until: i64) -> Result<ResponseReport> {
        self.get(&format!(
            "/api/v1/routing/reports/responses?since={since}&until={until}"
        ))
        .await
    }
}
