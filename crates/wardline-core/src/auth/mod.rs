//! Authentication: password login, the TOTP second factor and recovery codes,
//! sessions (opaque tokens stored hashed, idle timeout, absolute lifetime,
//! immediate revocation) and login throttling.
//!
//! Throttling keys on (account, source address), on the account alone and on the
//! source address, each with its own free attempts and exponential back-off
//! capped at `auth.lockout_max_secs`. The cap is what keeps an attacker from
//! locking a real user out for good; keying on (account, address) first means a
//! guesser elsewhere mostly slows themself down.

use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;
use wardline_crypto::token::{hash_token, new_code, new_token};
use wardline_proto::audit::AuditAction;
use wardline_proto::auth::{
    ChangePasswordRequest, CurrentSession, IssuedSession, LoginRequest, LoginResponse, LoginStep,
    MfaVerifyRequest, SessionSummary, TotpEnrolment,
};
use wardline_proto::directory::UserStatus;
use wardline_proto::sync::SocketTicket;
use wardline_proto::{DeviceId, ErrorCode, OrgId, SessionId, UserId};

use crate::audit::AuditScope;
use crate::authz::Principal;
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::credentials::password::{self, Passwords};
use crate::credentials::totp;
use crate::deps::Deps;
use crate::directory::{DirectoryService, org_to_wire};
use crate::error::{ApiError, ApiResult};
use wardline_store::{
    LifecycleStore, MfaChallengeRow, OrgRow, SessionRow, Store, StoreError, UserRow,
};

const MFA_CHALLENGE_SECS: i64 = 300;
/// How long a socket ticket waits for its upgrade: the web app asks for one
/// right before it opens the socket.
pub const SOCKET_TICKET_SECS: i64 = 30;
const MFA_MAX_ATTEMPTS: i64 = 5;
const RECOVERY_CODES: usize = 10;
/// A failure streak is forgotten after a day without failures.
const THROTTLE_DECAY_SECS: i64 = 24 * 3600;
/// How long an attempt in flight holds its key (until it is judged, then the
/// back-off or nothing holds it); bounds the wait if a node dies mid-attempt.
const ATTEMPT_HOLD_SECS: i64 = 10;
/// How long a remembered-device token lets its device past account-wide
/// back-off after the sign-in that issued it.
const REMEMBER_SECS: i64 = 180 * 24 * 3600;

#[derive(Clone)]
pub struct AuthService {
    store: Arc<dyn Store>,
    /// Remote wipe orders (a wiped device's session answers `device_wiped`).
    wipes: Arc<dyn LifecycleStore>,
    directory: DirectoryService,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    cfg: AuthConfig,
}

fn invalid_login() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "organisation, e-mail or password is wrong",
    )
}

fn invalid_code() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the code is wrong or has already been used",
    )
}

fn device_wiped() -> ApiError {
    ApiError::new(
        ErrorCode::DeviceWiped,
        "this device was reported lost: erase its local store and keys, then confirm with POST /api/v1/devices/wipe-confirmation",
    )
}

/// The session a wiped device still holds (revoked by the wipe), for its
/// confirmation; `None` for any other token.
impl AuthService {
    pub async fn wiped_session(&self, token: &str) -> ApiResult<Option<SessionRow>> {
        let Some(s) = self
            .store
            .get_session_by_token_hash(&hash_token(token))
            .await?
        else {
            return Ok(None);
        };
        let wiped = self
            .wipes
            .get_wipe(s.org_id, s.user_id, s.device_id)
            .await?
            .is_some_and(|w| w.confirmed_at.is_none() && w.requested_at >= s.created_at);
        Ok(wiped.then_some(s))
    }
}

/// Seconds of back-off after `failures` failures with `free` free attempts.
fn backoff_secs(failures: i64, free: i64, max: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let exp = (failures - free).min(30) as u32;
    (1i64 << exp).min(max)
}

/// Recovery codes are compared without case, spaces or dashes.
fn normalise_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

struct ThrottleKey {
    key: String,
    free: i64,
}

impl AuthService {
    pub fn new(
        deps: &Deps,
        directory: DirectoryService,
        passwords: Passwords,
        cfg: AuthConfig,
    ) -> AuthService {
        AuthService {
            store: deps.store.clone(),
            wipes: deps.lifecycle.clone(),
            directory,
            clock: deps.clock.clone(),
            passwords,
            cfg,
        }
    }

    fn throttle_keys(&self, org_slug: &str, email: &str, ip: IpAddr) -> [ThrottleKey; 3] {
        // Keys name the account by a keyed hash: the throttle table holds no e-mail.
        let email = email.trim().to_lowercase();
        let acct = self
            .directory
            .vault()
            .throttle_index(&format!("{}\u{0}{email}", org_slug.trim()));
        let free = self.cfg.lockout_free_attempts;
        [
            ThrottleKey {
                key: format!("acct-ip:{acct}:{ip}"),
                free,
            },
            ThrottleKey {
                key: format!("acct:{acct}"),
                free: free * 10,
            },
            ThrottleKey {
                key: format!("ip:{ip}"),
                free: free * 4,
            },
        ]
    }

    /// Refuses early, before any password hashing, while a back-off is running.
    async fn check_throttle(&self, keys: &[ThrottleKey]) -> ApiResult<()> {
        let now = self.clock.now();
        let mut wait = 0;
        for k in keys {
            if let Some(t) = self.store.get_throttle(&k.key).await? {
                if t.last_failure_at < now - THROTTLE_DECAY_SECS {
                    continue;
                }
                let until =
                    t.last_failure_at + backoff_secs(t.failures, k.free, self.cfg.lockout_max_secs);
                wait = wait.max(until - now);
            }
        }
        if wait > 0 {
            metrics::counter!("wardline_login_throttled_total").increment(1);
            return Err(ApiError::rate_limited(wait));
        }
        Ok(())
    }

    /// Takes one attempt under `k` before anything is compared (count, then
    /// check, in one statement: see [`Store::take_attempt`]); returns the
    /// attempt's number in the streak. Concurrent attempts under one key are
    /// refused (429) while one is in flight, so a burst cannot evaluate more
    /// guesses than the limit allows.
    async fn take_attempt(&self, k: &ThrottleKey) -> ApiResult<i64> {
        let now = self.clock.now();
        match self
            .store
            .take_attempt(
                &k.key,
                now,
                now - THROTTLE_DECAY_SECS,
                now + ATTEMPT_HOLD_SECS,
            )
            .await?
        {
            Ok(count) => Ok(count),
            Err(until) => {
                metrics::counter!("wardline_login_throttled_total").increment(1);
                Err(ApiError::rate_limited((until - now).max(1)))
            }
        }
    }

    /// The attempt numbered `count` under `k` failed: its back-off holds the key.
    async fn attempt_failed(&self, k: &ThrottleKey, count: i64) -> ApiResult<()> {
        let now = self.clock.now();
        self.store
            .hold_throttle(
                &k.key,
                now + backoff_secs(count, k.free, self.cfg.lockout_max_secs),
            )
            .await?;
        metrics::counter!("wardline_login_failures_total").increment(1);
        Ok(())
    }

    /// Tells the organisation (the compliance register, the log, a metric)
    /// that an account's failed sign-ins have put it into back-off: someone
    /// is guessing its password, probably from many addresses. Its devices
    /// that signed in before are not slowed.
    async fn account_under_attack(&self, user: &UserRow) -> ApiResult<()> {
        tracing::warn!(
            user = %user.id,
            "account in sign-in back-off after repeated failures: possible password guessing"
        );
        metrics::counter!("wardline_accounts_under_attack_total").increment(1);
        self.directory
            .notify(
                user.org_id,
                "sign_in_attack",
                user.id,
                "repeated failed sign-ins put this account into back-off; devices it signed in on before are not slowed, others wait",
            )
            .await
    }

    /// Counts a failure under each key (the failure itself is counted by
    /// [`AuthService::attempt_failed`]).
    async fn record_failure(&self, keys: &[ThrottleKey]) -> ApiResult<()> {
        let now = self.clock.now();
        for k in keys {
            self.store
                .record_failure(&k.key, now, now - THROTTLE_DECAY_SECS)
                .await?;
        }
        Ok(())
    }

    /// Password sign-in. `audit` learns the organisation and account as soon
    /// as they are known, so that failed attempts are recorded against them.
    pub async fn login(
        &self,
        req: LoginRequest,
        ip: IpAddr,
        audit: &AuditScope,
    ) -> ApiResult<LoginResponse> {
        let [acct_ip, acct, addr] = self.throttle_keys(&req.org, &req.email, ip);
        // The address keys refuse early, before any password hashing.
        let by_address = [acct_ip, addr];
        self.check_throttle(&by_address).await?;

        let org = match self.directory.org_by_slug(req.org.trim()).await {
            Ok(o) => Some(o),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let user = match &org {
            Some(o) => {
                audit.org(o.id);
                self.directory.find_by_email(o.id, &req.email).await?
            }
            None => None,
        };
        if let Some(u) = &user {
            audit.target("user", u.id);
        }
        // The account's attempt is taken before the password is compared, so
        // concurrent guesses at one account are judged one at a time. A
        // device that signed in to this account before (its remembered-device
        // token, for this same device id) is judged on its own key instead:
        // guesses at the account from elsewhere, however many, never lock
        // it out (finding M1 of 2026-11-30; NIST SP 800-63B §5.2.2).
        let remembered = match (&req.device_token, &org, &user) {
            (Some(token), Some(o), Some(u)) => {
                let hash = hex::encode(hash_token(token.trim()));
                self.store
                    .remembered_device(&hash, self.clock.now() - REMEMBER_SECS)
                    .await?
                    .filter(|(ro, ru, rd)| *ro == o.id && *ru == u.id && *rd == req.device_id)
                    .map(|_| ThrottleKey {
                        key: format!("remembered:{hash}"),
                        free: self.cfg.lockout_free_attempts,
                    })
            }
            _ => None,
        };
        let key = remembered.as_ref().unwrap_or(&acct);
        let attempt = self.take_attempt(key).await?;
        let ok = self
            .passwords
            .verify(
                user.as_ref().map(|u| u.password_hash.as_str()),
                &req.password,
            )
            .await?;
        let (Some(org), Some(user), true) = (org, user.as_ref(), ok) else {
            self.record_failure(&by_address).await?;
            self.attempt_failed(key, attempt).await?;
            if remembered.is_none()
                // The failure that puts the account into back-off (ten times
                // the per-address allowance: many addresses are guessing).
                && attempt == acct.free
                && let Some(u) = &user
            {
                self.account_under_attack(u).await?;
            }
            return Err(invalid_login());
        };
        let user = user.clone();
        // Success clears the account's streaks (and this device's), not the
        // address's.
        self.store.clear_throttle(&by_address[0].key).await?;
        self.store.clear_throttle(&key.key).await?;
        // Only someone who knows the password learns that the account is barred.
        if user.status != UserStatus::Active {
            return Err(ApiError::forbidden(
                "this account is suspended or deprovisioned; contact your administrator",
            ));
        }
        audit.actor_user(org.id, user.id, req.device_id);
        // A wiped device stays retired: whoever holds it is told to erase it.
        if self
            .wipes
            .get_wipe(org.id, user.id, req.device_id.into())
            .await?
            .is_some()
        {
            return Err(device_wiped());
        }

        if user.totp_enabled {
            let token = new_token("wlm_");
            self.store
                .insert_mfa_challenge(&MfaChallengeRow {
                    token_hash: hash_token(&token),
                    org_id: org.id,
                    user_id: user.id,
                    device_id: req.device_id.into(),
                    expires_at: self.clock.now() + MFA_CHALLENGE_SECS,
                    attempts: 0,
                })
                .await?;
            audit.reason("mfa_required");
            return Ok(LoginResponse {
                step: LoginStep::MfaRequired,
                mfa_token: Some(token),
                session: None,
            });
        }
        if org.policy.mfa_required {
            let session = self
                .issue_session(&org, &user, req.device_id.into(), false)
                .await?;
            audit.reason("mfa_enrolment_required");
            audit.also(AuditAction::SessionCreate, "session", session.session_id);
            return Ok(LoginResponse {
                step: LoginStep::MfaEnrolmentRequired,
                mfa_token: None,
                session: Some(session),
            });
        }
        let session = self
            .issue_session(&org, &user, req.device_id.into(), true)
            .await?;
        audit.also(AuditAction::SessionCreate, "session", session.session_id);
        Ok(LoginResponse {
            step: LoginStep::Complete,
            mfa_token: None,
            session: Some(session),
        })
    }

    pub async fn verify_mfa(
        &self,
        req: MfaVerifyRequest,
        audit: &AuditScope,
    ) -> ApiResult<IssuedSession> {
        let hash = hash_token(req.mfa_token.trim());
        let now = self.clock.now();
        let challenge = match self.store.get_mfa_challenge(&hash).await? {
            Some(c) if c.expires_at > now => c,
            Some(_) => {
                self.store.delete_mfa_challenge(&hash).await?;
                return Err(ApiError::new(
                    ErrorCode::Unauthenticated,
                    "sign-in expired; sign in again",
                ));
            }
            None => {
                return Err(ApiError::new(
                    ErrorCode::Unauthenticated,
                    "unknown or used sign-in; sign in again",
                ));
            }
        };
        audit.actor_user(
            challenge.org_id,
            challenge.user_id,
            challenge.device_id.into(),
        );
        if self.store.bump_mfa_challenge_attempts(&hash).await? > MFA_MAX_ATTEMPTS {
            self.store.delete_mfa_challenge(&hash).await?;
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "too many wrong codes; sign in again",
            ));
        }
        let user = self
            .directory
            .user_row(challenge.org_id, challenge.user_id)
            .await?;
        if user.status != UserStatus::Active {
            return Err(ApiError::forbidden(
                "this account is suspended or deprovisioned",
            ));
        }
        // Wrong codes count per user across challenges: otherwise anyone who
        // knows the password could open challenge after challenge and try the
        // whole code space.
        let mfa_key = [ThrottleKey {
            key: format!("mfa:{}", user.id),
            free: self.cfg.lockout_free_attempts,
        }];
        let attempt = self.take_attempt(&mfa_key[0]).await?;
        if !self.check_second_factor(&user, &req.code).await? {
            self.attempt_failed(&mfa_key[0], attempt).await?;
            return Err(invalid_code());
        }
        self.store.clear_throttle(&mfa_key[0].key).await?;
        self.store.delete_mfa_challenge(&hash).await?;
        let org = self.directory.org(challenge.org_id).await?;
        let session = self
            .issue_session(&org, &user, challenge.device_id, true)
            .await?;
        audit.also(AuditAction::SessionCreate, "session", session.session_id);
        Ok(session)
    }

    /// A TOTP code (each time step accepted once) or a recovery code (each
    /// accepted once).
    async fn check_second_factor(&self, user: &UserRow, code: &str) -> ApiResult<bool> {
        let code = totp::typed_code(code);
        let code = code.as_str();
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            let Some(secret) = self.directory.open_totp_secret(user).await? else {
                return Ok(false);
            };
            let t = totp::totp(&secret, "Wardline", "user")?;
            return match totp::check(&t, code, self.clock.now()) {
                Some(step) => Ok(self
                    .store
                    .advance_totp_step(user.org_id, user.id, step)
                    .await?),
                None => Ok(false),
            };
        }
        let normalised = normalise_recovery_code(code);
        if normalised.is_empty() {
            return Ok(false);
        }
        Ok(self
            .store
            .consume_recovery_code(user.org_id, user.id, &hash_token(&normalised))
            .await?)
    }

    async fn issue_session(
        &self,
        org: &OrgRow,
        user: &UserRow,
        device: DeviceId,
        mfa_complete: bool,
    ) -> ApiResult<IssuedSession> {
        let token = new_token("wls_");
        let now = self.clock.now();
        let row = SessionRow {
            id: Uuid::new_v4().into(),
            org_id: org.id,
            user_id: user.id,
            device_id: device,
            token_hash: hash_token(&token),
            created_at: now,
            last_seen_at: now,
            expires_at: now + org.policy.absolute_lifetime_secs,
            idle_timeout_secs: org.policy.idle_timeout_secs,
            mfa_complete,
            revoked_at: None,
        };
        self.store.insert_session(&row).await?;
        metrics::counter!("wardline_sessions_created_total").increment(1);
        // A full sign-in marks the device as one this account uses.
        let remembered_device = if mfa_complete {
            let mark = new_token("wld_");
            self.store
                .remember_device(
                    &hex::encode(hash_token(&mark)),
                    org.id,
                    user.id,
                    device,
                    now,
                )
                .await?;
            Some(mark)
        } else {
            None
        };
        Ok(IssuedSession {
            token,
            session_id: row.id.into(),
            expires_at: row.expires_at,
            idle_timeout_secs: row.idle_timeout_secs,
            remembered_device,
            password_change_required: user.password_change_required,
        })
    }

    /// Resolves a bearer token to a principal, enforcing revocation, absolute
    /// expiry, idle timeout and the user's status on every request.
    /// The caller behind a session token. A session found past its idle
    /// timeout or absolute lifetime is ended here, once, and `audit` records
    /// that as `auth.session.expire`.
    pub async fn authenticate(&self, token: &str, audit: &AuditScope) -> ApiResult<Principal> {
        let session = self
            .store
            .get_session_by_token_hash(&hash_token(token))
            .await?;
        self.admit(session, audit).await
    }

    /// A one-time ticket for opening a sync WebSocket, where a browser cannot
    /// send the bearer token (no Authorization header on an upgrade). The
    /// ticket stands for the caller's session: it is good once, for
    /// [`SOCKET_TICKET_SECS`], and the socket it opens ends with the session.
    pub async fn issue_socket_ticket(&self, p: &Principal) -> ApiResult<SocketTicket> {
        let ticket = new_token("wlt_");
        let expires_at = self.clock.now() + SOCKET_TICKET_SECS;
        self.store
            .insert_socket_ticket(&hash_token(&ticket), p.session_id, expires_at)
            .await?;
        Ok(SocketTicket { ticket, expires_at })
    }

    /// The caller behind a socket ticket, which is used up by this call
    /// (whatever its outcome). The session is checked as for a token.
    pub async fn authenticate_socket_ticket(
        &self,
        ticket: &str,
        audit: &AuditScope,
    ) -> ApiResult<Principal> {
        let session = self
            .store
            .take_socket_ticket(&hash_token(ticket), self.clock.now())
            .await?;
        if session.is_none() {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "unknown, used or expired socket ticket; ask for a new one (POST /api/v1/sync/ticket)",
            ));
        }
        self.admit(session, audit).await
    }

    /// The caller of a session already admitted once (an open socket checks
    /// that its session is still live without keeping the token).
    pub async fn reauthenticate(&self, session: SessionId) -> ApiResult<Principal> {
        let row = self.store.get_session(session).await?;
        self.admit(row, &AuditScope::default()).await
    }

    /// Revocation, absolute expiry, idle timeout and the user's status.
    async fn admit(&self, session: Option<SessionRow>, audit: &AuditScope) -> ApiResult<Principal> {
        let now = self.clock.now();
        let Some(s) = session else {
            return Err(ApiError::unauthenticated());
        };
        if s.revoked_at.is_some() {
            // Ended by a remote wipe: the device must erase itself and confirm.
            if self
                .wipes
                .get_wipe(s.org_id, s.user_id, s.device_id)
                .await?
                .is_some_and(|w| w.confirmed_at.is_none() && w.requested_at >= s.created_at)
            {
                return Err(device_wiped());
            }
            return Err(ApiError::unauthenticated());
        }
        let idle = now - s.last_seen_at >= s.idle_timeout_secs;
        if idle || now >= s.expires_at {
            if self.store.revoke_session(s.id, now).await? {
                audit.org(s.org_id);
                audit.also(AuditAction::SessionExpire, "session", s.id);
            }
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                if idle {
                    "session ended after inactivity; sign in again"
                } else {
                    "session reached its maximum lifetime; sign in again"
                },
            ));
        }
        let user = self
            .directory
            .user_row(s.org_id, s.user_id)
            .await
            .map_err(|_| ApiError::unauthenticated())?;
        if user.status != UserStatus::Active {
            return Err(ApiError::unauthenticated());
        }
        // Writing on every request would serialise all traffic on the sessions
        // table; a write at most every 1/10 of the idle timeout keeps the
        // timeout accurate to 10 %.
        if now - s.last_seen_at >= (s.idle_timeout_secs / 10).clamp(1, 60) {
            self.store.touch_session(s.id, now).await?;
        }
        Ok(Principal {
            session_id: s.id,
            org_id: s.org_id,
            user_id: s.user_id,
            device_id: s.device_id,
            roles: user.roles,
            mfa_complete: s.mfa_complete,
            password_change_required: user.password_change_required,
        })
    }

    pub async fn current(&self, p: &Principal) -> ApiResult<CurrentSession> {
        let user = self.directory.user(p.org_id, p.user_id).await?;
        let org = self.directory.org(p.org_id).await?;
        let sessions = self
            .store
            .list_user_sessions(p.org_id, p.user_id, self.clock.now())
            .await?;
        let s = sessions
            .iter()
            .find(|s| s.id == p.session_id)
            .ok_or_else(ApiError::unauthenticated)?;
        Ok(CurrentSession {
            session_id: s.id.into(),
            device_id: s.device_id.into(),
            user,
            organisation: org_to_wire(&org),
            permissions: p.permissions(),
            created_at: s.created_at,
            expires_at: s.expires_at,
            idle_timeout_secs: s.idle_timeout_secs,
            mfa_enrolment_required: !s.mfa_complete,
            password_change_required: p.password_change_required,
        })
    }

    pub async fn logout(&self, p: &Principal) -> ApiResult<()> {
        self.store
            .revoke_session(p.session_id, self.clock.now())
            .await?;
        Ok(())
    }

    pub async fn begin_totp_enrolment(&self, p: &Principal) -> ApiResult<TotpEnrolment> {
        let mut user = self.directory.user_row(p.org_id, p.user_id).await?;
        if user.totp_enabled {
            return Err(ApiError::conflict(
                "an authenticator is already set up; an administrator can reset it",
            ));
        }
        let secret = totp::new_secret();
        user.totp_secret_enc = Some(self.directory.seal_totp_secret(&user, &secret).await?);
        user.updated_at = self.clock.now();
        self.directory.save_row(&user).await?;
        let wire = self.directory.to_wire(&user).await?;
        let org = self.directory.org(p.org_id).await?;
        let t = totp::totp(&secret, &format!("Wardline ({})", org.name), &wire.email)?;
        Ok(TotpEnrolment {
            secret_base32: totp::to_base32(&secret),
            otpauth_uri: t.to_url().map_err(ApiError::internal)?,
        })
    }

    /// Confirms enrolment with a first code; returns fresh recovery codes and
    /// upgrades the calling session to a full one.
    pub async fn confirm_totp(&self, p: &Principal, code: &str) -> ApiResult<Vec<String>> {
        let mut user = self.directory.user_row(p.org_id, p.user_id).await?;
        if user.totp_enabled {
            return Err(ApiError::conflict("an authenticator is already set up"));
        }
        let Some(secret) = self.directory.open_totp_secret(&user).await? else {
            return Err(ApiError::conflict(
                "start with POST /api/v1/auth/totp/enroll",
            ));
        };
        let t = totp::totp(&secret, "Wardline", "user")?;
        let Some(step) = totp::check(&t, code, self.clock.now()) else {
            return Err(invalid_code());
        };
        if !self
            .store
            .advance_totp_step(user.org_id, user.id, step)
            .await?
        {
            return Err(invalid_code());
        }
        user.totp_enabled = true;
        user.updated_at = self.clock.now();
        self.directory.save_row(&user).await?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_code(3, 5)).collect();
        let hashes: Vec<Vec<u8>> = codes
            .iter()
            .map(|c| hash_token(&normalise_recovery_code(c)))
            .collect();
        self.store
            .replace_recovery_codes(user.org_id, user.id, &hashes)
            .await?;
        self.store.complete_session_mfa(p.session_id).await?;
        Ok(codes)
    }

    /// An administrator clears a user's authenticator (lost phone): the user
    /// must enrol again at next sign-in, and is signed out everywhere now.
    pub async fn reset_mfa(&self, org: OrgId, user_id: UserId) -> ApiResult<()> {
        let mut user = self.directory.user_row(org, user_id).await?;
        user.totp_enabled = false;
        user.totp_secret_enc = None;
        user.updated_at = self.clock.now();
        self.directory.save_row(&user).await?;
        self.store.replace_recovery_codes(org, user_id, &[]).await?;
        self.store
            .revoke_user_sessions(org, user_id, None, None, self.clock.now())
            .await?;
        Ok(())
    }

    /// Changes the caller's password and signs out their other sessions.
    pub async fn change_password(
        &self,
        p: &Principal,
        req: ChangePasswordRequest,
    ) -> ApiResult<()> {
        let mut user = self.directory.user_row(p.org_id, p.user_id).await?;
        // A session left open is not a licence to guess the password it
        // would take over: the same attempt limit as sign-in.
        let key = ThrottleKey {
            key: format!("password-change:{}", user.id),
            free: self.cfg.lockout_free_attempts,
        };
        let attempt = self.take_attempt(&key).await?;
        if !self
            .passwords
            .verify(Some(&user.password_hash), &req.current_password)
            .await?
        {
            self.attempt_failed(&key, attempt).await?;
            return Err(ApiError::new(
                ErrorCode::InvalidCredentials,
                "current password is wrong",
            ));
        }
        self.store.clear_throttle(&key.key).await?;
        let wire = self.directory.to_wire(&user).await?;
        password::check_policy(&req.new_password, &[&wire.email, &wire.display_name])?;
        if req.new_password == req.current_password {
            return Err(ApiError::validation(
                "the new password must differ from the current one",
            ));
        }
        user.password_hash = self.passwords.hash(&req.new_password).await?;
        user.password_change_required = false;
        user.updated_at = self.clock.now();
        self.directory.save_row(&user).await?;
        self.store
            .revoke_user_sessions(
                p.org_id,
                p.user_id,
                None,
                Some(p.session_id),
                self.clock.now(),
            )
            .await?;
        Ok(())
    }

    pub async fn list_sessions(&self, org: OrgId, user: UserId) -> ApiResult<Vec<SessionSummary>> {
        self.directory.user_row(org, user).await?;
        let now = self.clock.now();
        Ok(self
            .store
            .list_user_sessions(org, user, now)
            .await?
            .into_iter()
            .filter(|s| now - s.last_seen_at < s.idle_timeout_secs)
            .map(|s| SessionSummary {
                id: s.id.into(),
                device_id: s.device_id.into(),
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                mfa_complete: s.mfa_complete,
            })
            .collect())
    }

    pub async fn revoke_sessions(
        &self,
        org: OrgId,
        user: UserId,
        device: Option<DeviceId>,
    ) -> ApiResult<u64> {
        self.directory.user_row(org, user).await?;
        Ok(self
            .store
            .revoke_user_sessions(org, user, device, None, self.clock.now())
            .await?)
    }

    pub async fn revoke_session(
        &self,
        org: OrgId,
        user: UserId,
        session: SessionId,
    ) -> ApiResult<()> {
        let sessions = self
            .store
            .list_user_sessions(org, user, self.clock.now())
            .await?;
        if !sessions.iter().any(|s| s.id == session) {
            return Err(ApiError::not_found("session"));
        }
        self.store.revoke_session(session, self.clock.now()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_free_attempts_and_is_capped() {
        assert_eq!(backoff_secs(4, 5, 900), 0);
        assert_eq!(backoff_secs(5, 5, 900), 1);
        assert_eq!(backoff_secs(6, 5, 900), 2);
        assert_eq!(backoff_secs(10, 5, 900), 32);
        assert_eq!(backoff_secs(100, 5, 900), 900);
        assert_eq!(backoff_secs(i64::MAX, 5, 900), 900);
    }

    #[test]
    fn recovery_codes_compare_loosely() {
        assert_eq!(normalise_recovery_code(" ABcde-fgh23 "), "abcdefgh23");
    }
}
