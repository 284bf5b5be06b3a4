//! Sign-in, MFA, sessions and lockout, end to end over HTTPS, on both backends.

use crate::common::{Backend, PASSWORD, TestServer};
use uuid::Uuid;
use wardline_proto::auth::{LoginRequest, LoginStep};
use wardline_proto::directory::OrgPolicy;
use wardline_proto::{ErrorCode, Role};

fn login_req(org: &str, email: &str, password: &str) -> LoginRequest {
    LoginRequest {
        org: org.into(),
        email: email.into(),
        password: password.into(),
        device_id: Uuid::new_v4(),
        device_token: None,
    }
}

async fn setup_code_works_once_and_mfa_is_required_by_default(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    assert_eq!(admin.recovery_codes.len(), 10);
    let me = admin.client.current_session().await.unwrap();
    assert_eq!(me.user.roles, vec![Role::OrgAdmin]);
    assert!(!me.mfa_enrolment_required);
    assert!(me.user.mfa_enabled);
    // The setup code is spent.
    let again = t
        .client()
        .setup(&wardline_proto::auth::SetupRequest {
            setup_code: t.setup_code.clone().unwrap(),
            org_name: "Second".into(),
            org_slug: "second".into(),
            admin_email: "x@second.test".into(),
            admin_display_name: "X".into(),
            admin_password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::InvalidCredentials));

    // A session that has not enrolled MFA can do nothing but enrol.
    let nurse = admin
        .client
        .create_user(&wardline_proto::directory::CreateUserRequest {
            email: "nurse@riverside.test".into(),
            display_name: "Nora Nurse".into(),
            phone: None,
            roles: vec![Role::Nurse],
            password: PASSWORD.into(),
            // The default: the administrator's password is temporary.
            password_change_required: true,
        })
        .await
        .unwrap();
    let resp = t
        .client()
        .login(&login_req("riverside", &nurse.email, PASSWORD))
        .await
        .unwrap();
    assert_eq!(resp.step, LoginStep::MfaEnrolmentRequired);
    let issued = resp.session.unwrap();
    assert!(issued.password_change_required);
    let pending = t.client().with_token(Some(issued.token));
    assert_eq!(
        pending.list_users().await.unwrap_err().code(),
        Some(ErrorCode::MfaEnrolmentRequired)
    );
    assert!(
        pending
            .current_session()
            .await
            .unwrap()
            .mfa_enrolment_required
    );
    let enrol = pending.enroll_totp().await.unwrap();
    assert!(enrol.otpauth_uri.starts_with("otpauth://totp/"));
    assert_eq!(
        pending.confirm_totp("000000").await.unwrap_err().code(),
        Some(ErrorCode::InvalidCredentials)
    );
    pending
        .confirm_totp(&t.totp_code(&enrol.secret_base32))
        .await
        .unwrap();
    // Issue 18, item 8: then the temporary password gives way to the
    // user's own before anything else.
    assert_eq!(
        pending.list_users().await.unwrap_err().code(),
        Some(ErrorCode::PasswordChangeRequired)
    );
    assert_eq!(
        pending
            .change_password(PASSWORD, PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Validation),
        "not the same one again"
    );
    let own = "violet harbour lantern 1987";
    pending.change_password(PASSWORD, own).await.unwrap();
    assert_eq!(
        pending.list_users().await.unwrap().len(),
        2,
        "the same session is now complete"
    );
    let old = t
        .client()
        .login(&login_req("riverside", &nurse.email, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(old.code(), Some(ErrorCode::InvalidCredentials));
    let next = t
        .client()
        .login(&login_req("riverside", &nurse.email, own))
        .await
        .unwrap();
    assert_eq!(next.step, LoginStep::MfaRequired);
    assert_eq!(
        pending.enroll_totp().await.unwrap_err().code(),
        Some(ErrorCode::Conflict)
    );
}

async fn totp_login_rejects_replay_and_recovery_codes_work_once(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let c = t.client();
    let start = c
        .login(&login_req("riverside", &admin.user.email, PASSWORD))
        .await
        .unwrap();
    assert_eq!(start.step, LoginStep::MfaRequired);
    assert!(start.session.is_none());
    let code = t.totp_code(&admin.totp_secret);
    let mfa = start.mfa_token.unwrap();
    let s = c.verify_mfa(&mfa, &code).await.unwrap();
    assert!(s.token.starts_with("wls_"));
    // The same code again, in the same 30 s step, is a replay.
    let second = c
        .login(&login_req("riverside", &admin.user.email, PASSWORD))
        .await
        .unwrap();
    let err = c
        .verify_mfa(second.mfa_token.as_deref().unwrap(), &code)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidCredentials));
    // The challenge token is single-use too.
    assert_eq!(
        c.verify_mfa(&mfa, &code).await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );

    let rc = admin.recovery_codes[0].to_uppercase();
    c.verify_mfa(second.mfa_token.as_deref().unwrap(), &rc)
        .await
        .unwrap();
    let third = c
        .login(&login_req("riverside", &admin.user.email, PASSWORD))
        .await
        .unwrap();
    let err = c
        .verify_mfa(third.mfa_token.as_deref().unwrap(), &rc)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::InvalidCredentials),
        "a recovery code works once"
    );

    // Five wrong codes end the challenge. (The clock moves past the per-user
    // back-off between attempts, which `wrong_mfa_codes_back_off_across_challenges`
    // tests on its own.)
    let fourth = c
        .login(&login_req("riverside", &admin.user.email, PASSWORD))
        .await
        .unwrap();
    let tok = fourth.mfa_token.unwrap();
    for _ in 0..5 {
        t.clock.advance(20);
        assert_eq!(
            c.verify_mfa(&tok, "123456").await.unwrap_err().code(),
            Some(ErrorCode::InvalidCredentials)
        );
    }
    t.next_totp_step();
    let good = t.totp_code(&admin.totp_secret);
    assert_eq!(
        c.verify_mfa(&tok, &good).await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );

    // And a challenge expires after five minutes.
    let fifth = c
        .login(&login_req("riverside", &admin.user.email, PASSWORD))
        .await
        .unwrap();
    t.clock.advance(301);
    let code = t.totp_code(&admin.totp_secret);
    assert_eq!(
        c.verify_mfa(fifth.mfa_token.as_deref().unwrap(), &code)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Unauthenticated)
    );
}

async fn sessions_end_after_idle_timeout_and_absolute_lifetime(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    // Activity keeps the session alive...
    for _ in 0..5 {
        t.clock.advance(800);
        admin
            .client
            .current_session()
            .await
            .expect("active within the idle timeout");
    }
    // ...silence past 15 minutes ends it, for good.
    t.clock.advance(901);
    let err = admin.client.current_session().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthenticated));
    t.clock.advance(-901);
    assert_eq!(
        admin.client.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );

    // The organisation shortens its policy; new sessions follow it, and so
    // do the ones already open (finding L4: they kept 900 s).
    let fresh = t.sign_in_mfa(&admin).await;
    let older = t.sign_in_mfa(&admin).await;
    assert_eq!(
        older.current_session().await.unwrap().idle_timeout_secs,
        900
    );
    fresh
        .set_policy(&OrgPolicy {
            idle_timeout_secs: 120,
            absolute_lifetime_secs: 600,
            mfa_required: true,
            messaging: Default::default(),
            patients: Default::default(),
            devices: Default::default(),
            routing: Default::default(),
        })
        .await
        .unwrap();
    let short = t.sign_in_mfa(&admin).await;
    assert_eq!(
        short.current_session().await.unwrap().idle_timeout_secs,
        120
    );
    // Issue 18, item 8: one part of the policy changes without a hand-built
    // full document (JSON merge patch, RFC 7396); the rest stays.
    let patched = fresh
        .patch_policy(&serde_json::json!({"messaging": {"max_group_members": 200}}))
        .await
        .unwrap();
    assert_eq!(patched.messaging.max_group_members, 200);
    assert_eq!(patched.idle_timeout_secs, 120, "untouched members stay");
    // Issue 18, item 7: the event says what changed, before → after.
    assert_eq!(
        last_changes(&t, "org.policy.update").await,
        serde_json::json!([{"field": "messaging.max_group_members", "before": "1000", "after": "200"}])
    );
    let reset = fresh
        .patch_policy(&serde_json::json!({"messaging": {"max_group_members": null}}))
        .await
        .unwrap();
    assert_eq!(
        reset.messaging.max_group_members, 1000,
        "null restores the default"
    );
    for bad in [
        serde_json::json!({"idle_timeout": 60}),
        serde_json::json!({"messaging": {"max_group_member": 5}}),
        serde_json::json!({"idle_timeout_secs": "soon"}),
        serde_json::json!({"idle_timeout_secs": 1}),
    ] {
        let e = fresh.patch_policy(&bad).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Validation), "{bad}: {e}");
    }
    let e = fresh
        .patch_policy(&serde_json::json!(["idle_timeout_secs"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadRequest), "not an object: {e}");
    let was = older.current_session().await.unwrap();
    assert_eq!(was.idle_timeout_secs, 120);
    assert!(was.expires_at <= was.created_at + 600);
    t.clock.advance(121);
    assert_eq!(
        older.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated),
        "the tightened idle timeout ended the older session"
    );
    t.clock.advance(-121);
    for _ in 0..5 {
        t.clock.advance(100);
        short
            .current_session()
            .await
            .expect("active within the idle timeout");
    }
    t.clock.advance(101);
    assert_eq!(
        short.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated),
        "absolute lifetime"
    );
    // Bad policy values are refused.
    let again = t.sign_in_mfa(&admin).await;
    let err = again
        .set_policy(&OrgPolicy {
            idle_timeout_secs: 5,
            absolute_lifetime_secs: 600,
            mfa_required: true,
            messaging: Default::default(),
            patients: Default::default(),
            devices: Default::default(),
            routing: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Validation));
}

async fn revocation_takes_effect_immediately(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    // A second device of the nurse.
    let tablet = t.sign_in_mfa(&nurse).await;
    assert_eq!(
        admin
            .client
            .list_sessions(nurse.user.id)
            .await
            .unwrap()
            .len(),
        2
    );

    // Revoke only the first device.
    let r = admin
        .client
        .revoke_sessions(nurse.user.id, Some(nurse.device_id))
        .await
        .unwrap();
    assert_eq!(r.revoked, 1);
    assert_eq!(
        nurse.client.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );
    tablet
        .current_session()
        .await
        .expect("the other device is untouched");

    // Revoke everything.
    assert_eq!(
        admin
            .client
            .revoke_sessions(nurse.user.id, None)
            .await
            .unwrap()
            .revoked,
        1
    );
    assert_eq!(
        tablet.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );

    // Suspension ends sessions and bars sign-in; reactivation restores sign-in.
    let laptop = t.sign_in_mfa(&nurse).await;
    admin.client.suspend_user(nurse.user.id).await.unwrap();
    assert_eq!(
        laptop.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );
    let err = t
        .client()
        .login(&login_req("riverside", &nurse.user.email, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    admin.client.reactivate_user(nurse.user.id).await.unwrap();
    let back = t.sign_in_mfa(&nurse).await;
    back.current_session().await.unwrap();

    // Logout ends only that session.
    back.logout().await.unwrap();
    assert_eq!(
        back.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );

    // Deprovisioning is final.
    admin.client.deprovision_user(nurse.user.id).await.unwrap();
    assert_eq!(
        t.client()
            .login(&login_req("riverside", &nurse.user.email, PASSWORD))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::InvalidCredentials)
    );
    assert_eq!(
        admin
            .client
            .reactivate_user(nurse.user.id)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Conflict)
    );
}

async fn password_change_and_mfa_reset(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let doc = t.user_with_role(&admin, Role::Physician).await;
    let other = t.sign_in_mfa(&doc).await;
    assert_eq!(
        doc.client
            .change_password("wrong password here", "harbor quill ember violet")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::InvalidCredentials)
    );
    assert_eq!(
        doc.client
            .change_password(PASSWORD, "password123456")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Validation)
    );
    doc.client
        .change_password(PASSWORD, "harbor quill ember violet")
        .await
        .unwrap();
    doc.client
        .current_session()
        .await
        .expect("the changing session stays");
    assert_eq!(
        other.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated),
        "other sessions end"
    );
    assert_eq!(
        t.client()
            .login(&login_req("riverside", &doc.user.email, PASSWORD))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::InvalidCredentials)
    );

    // Lost phone: the admin resets MFA; the user must enrol again.
    admin.client.reset_mfa(doc.user.id).await.unwrap();
    assert_eq!(
        doc.client.current_session().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );
    let resp = t
        .client()
        .login(&login_req(
            "riverside",
            &doc.user.email,
            "harbor quill ember violet",
        ))
        .await
        .unwrap();
    assert_eq!(resp.step, LoginStep::MfaEnrolmentRequired);
}

async fn lockout_backs_off_but_never_bars_forever(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let c = t.client();
    let bad = login_req("riverside", &admin.user.email, "not the password at all");
    for _ in 0..5 {
        assert_eq!(
            c.login(&bad).await.unwrap_err().code(),
            Some(ErrorCode::InvalidCredentials)
        );
    }
    // Back-off now: even the right password waits, and says how long.
    let err = c
        .login(&login_req("riverside", &admin.user.email, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    let resp = t
        .http()
        .post(format!("{}/api/v1/auth/login", t.url))
        .json(&login_req("riverside", &admin.user.email, PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    // The wait doubles with each failure and is capped at 15 minutes.
    for _ in 0..20 {
        t.clock.advance(1000);
        c.login(&bad).await.unwrap_err();
    }
    let r = t
        .http()
        .post(format!("{}/api/v1/auth/login", t.url))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait <= 900, "capped, got {wait}");
    t.clock.advance(901);
    let ok = c
        .login(&login_req("riverside", &admin.user.email, PASSWORD))
        .await
        .unwrap();
    assert_eq!(
        ok.step,
        LoginStep::MfaRequired,
        "after the back-off the user gets in"
    );

    // Unknown accounts and organisations fail the same way as a wrong password
    // (the clock moves past the per-address back-off this test has built up).
    t.clock.advance(1000);
    assert_eq!(
        c.login(&login_req("riverside", "ghost@riverside.test", PASSWORD))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::InvalidCredentials)
    );
    t.clock.advance(1000);
    assert_eq!(
        c.login(&login_req("nowhere", &admin.user.email, PASSWORD))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::InvalidCredentials)
    );
}

async fn administrators_cannot_lock_themselves_out(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let me = admin.user.id;
    assert_eq!(
        admin.client.suspend_user(me).await.unwrap_err().code(),
        Some(ErrorCode::Conflict)
    );
    assert_eq!(
        admin.client.deprovision_user(me).await.unwrap_err().code(),
        Some(ErrorCode::Conflict)
    );
    let demote = wardline_proto::directory::UpdateUserRequest {
        roles: Some(vec![Role::Nurse]),
        ..Default::default()
    };
    assert_eq!(
        admin
            .client
            .update_user(me, &demote)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Conflict)
    );
    // Adding a role to oneself is refused too (separation of duties);
    // renaming oneself is fine.
    let more = wardline_proto::directory::UpdateUserRequest {
        roles: Some(vec![Role::OrgAdmin, Role::Physician]),
        ..Default::default()
    };
    assert_eq!(
        admin
            .client
            .update_user(me, &more)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Conflict)
    );
    let renamed = wardline_proto::directory::UpdateUserRequest {
        display_name: Some("Ada Renamed".into()),
        roles: Some(vec![Role::OrgAdmin]),
        ..Default::default()
    };
    assert_eq!(
        admin
            .client
            .update_user(me, &renamed)
            .await
            .unwrap()
            .display_name,
        "Ada Renamed"
    );
    admin
        .client
        .current_session()
        .await
        .expect("still signed in");
    // Another administrator can demote this one.
    let second = t.user_with_role(&admin, Role::OrgAdmin).await;
    assert_eq!(
        second.client.update_user(me, &demote).await.unwrap().roles,
        vec![Role::Nurse]
    );
    // Issue 18, item 7: the event says which roles went and came (it said
    // only "user.update").
    let changes = last_changes(&t, "user.update").await;
    assert_eq!(
        changes,
        serde_json::json!([{"field": "roles", "before": "[\"org_admin\"]", "after": "[\"nurse\"]"}]),
        "{changes}"
    );
}

/// The `changes` of the newest successful audit event with `action`.
async fn last_changes(t: &TestServer, action: &str) -> serde_json::Value {
    use wardline_store::AuditStore;
    let rows = t.sql.audit_entries(0, 100_000).await.unwrap();
    let row = rows
        .iter()
        .rev()
        .find(|r| r.action == action && r.outcome == "success")
        .expect("the event");
    serde_json::from_str(row.changes.as_deref().unwrap_or("[]")).unwrap()
}

async fn wrong_mfa_codes_back_off_across_challenges(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let c = t.client();
    let wrong = |code: &str| {
        if code == "000000" {
            "111111".to_string()
        } else {
            "000000".to_string()
        }
    };
    // Five wrong codes, each on a fresh challenge (password known).
    for _ in 0..5 {
        let ch = c
            .login(&login_req("riverside", &admin.user.email, PASSWORD))
            .await
            .unwrap();
        let code = wrong(&t.totp_code(&admin.totp_secret));
        let err = c
            .verify_mfa(ch.mfa_token.as_deref().unwrap(), &code)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidCredentials));
    }
    // A new challenge does not reset the count: even the right code waits.
    let ch = c
        .login(&login_req("riverside", &admin.user.email, PASSWORD))
        .await
        .unwrap();
    let right = t.totp_code(&admin.totp_secret);
    let err = c
        .verify_mfa(ch.mfa_token.as_deref().unwrap(), &right)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    // After the back-off the right code works, and success clears the count.
    t.clock.advance(2);
    t.next_totp_step();
    let right = t.totp_code(&admin.totp_secret);
    c.verify_mfa(ch.mfa_token.as_deref().unwrap(), &right)
        .await
        .unwrap();
}

/// H2's kind at sign-in: a burst of concurrent guesses at one account's
/// password, or at its second factor over many challenges, is judged one at a
/// time (count, then check), never all at once past the limit.
async fn concurrent_guesses_are_judged_one_at_a_time(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let bad = login_req("riverside", &admin.user.email, "not the password at all");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (c, bad) = (t.client(), bad.clone());
            tokio::spawn(async move { c.login(&bad).await.unwrap_err().code() })
        })
        .collect();
    let mut judged = 0;
    for task in tasks {
        match task.await.unwrap() {
            Some(ErrorCode::InvalidCredentials) => judged += 1,
            Some(ErrorCode::RateLimited) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(
        (1..=5).contains(&judged),
        "{judged} of 40 concurrent guesses were judged"
    );

    // Second factor: many challenges (the password is known), then every
    // code at once.
    t.clock.advance(3600);
    let c = t.client();
    let mut challenges = Vec::new();
    for _ in 0..30 {
        let ch = c
            .login(&login_req("riverside", &admin.user.email, PASSWORD))
            .await
            .unwrap();
        challenges.push(ch.mfa_token.unwrap());
    }
    let right = t.totp_code(&admin.totp_secret);
    let tasks: Vec<_> = challenges
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let c = t.client();
            let code = format!(
                "{:06}",
                (right.parse::<u32>().unwrap() + 1 + i as u32) % 1_000_000
            );
            tokio::spawn(async move { c.verify_mfa(&token, &code).await.unwrap_err().code() })
        })
        .collect();
    let mut judged = 0;
    for task in tasks {
        match task.await.unwrap() {
            Some(ErrorCode::InvalidCredentials) => judged += 1,
            Some(ErrorCode::RateLimited) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(
        (1..=5).contains(&judged),
        "{judged} of 30 concurrent codes were judged"
    );
}

/// M4 of the 2026-11-30 findings: an administrator gave themselves the
/// compliance officer role (audit reading, legal-hold release, break-glass
/// review: the checks on administrators). Now a compliance officer grants
/// and removes it, nobody changes their own roles, and each change is in the
/// compliance register.
async fn the_compliance_role_is_not_the_administrators(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let me = admin.user.id;
    let with = |roles: Vec<Role>| wardline_proto::directory::UpdateUserRequest {
        roles: Some(roles),
        ..Default::default()
    };
    // The reproduction: PATCH own roles to add compliance_officer.
    let err = admin
        .client
        .update_user(me, &with(vec![Role::OrgAdmin, Role::ComplianceOfficer]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    // An organisation without one may have its first named by an administrator.
    let officer = t.user_with_role(&admin, Role::ComplianceOfficer).await;
    // From then on, administrators neither create nor make compliance officers.
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let err = admin
        .client
        .update_user(
            nurse.user.id,
            &with(vec![Role::Nurse, Role::ComplianceOfficer]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let err = admin
        .client
        .create_user(&wardline_proto::directory::CreateUserRequest {
            email: "second.officer@riverside.test".into(),
            display_name: "Second Officer".into(),
            phone: None,
            roles: vec![Role::ComplianceOfficer],
            password: PASSWORD.into(),
            password_change_required: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let err = admin
        .client
        .update_user(officer.user.id, &with(vec![Role::Nurse]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "nor remove it");
    let err = admin
        .client
        .set_compliance_officer(nurse.user.id, true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    // The compliance officer grants and removes it, never on themselves.
    let u = officer
        .client
        .set_compliance_officer(nurse.user.id, true)
        .await
        .unwrap();
    assert_eq!(u.roles, vec![Role::ComplianceOfficer, Role::Nurse]);
    let u = officer
        .client
        .set_compliance_officer(nurse.user.id, false)
        .await
        .unwrap();
    assert_eq!(u.roles, vec![Role::Nurse]);
    let err = officer
        .client
        .set_compliance_officer(officer.user.id, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    // Each change is in the compliance register.
    let notes = officer.client.notifications().await.unwrap().notifications;
    let changes: Vec<(Uuid, &str)> = notes
        .iter()
        .filter(|n| n.kind == "compliance_role")
        .map(|n| (n.subject, n.detail.as_str()))
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes.contains(&(
        officer.user.id,
        "the organisation's first compliance officer was named"
    )));
    assert!(changes.contains(&(nurse.user.id, "granted the compliance officer role")));
    assert!(changes.contains(&(nurse.user.id, "removed the compliance officer role")));
}

/// Issue 19, case 12 (fixture `fixtures/realworld/12-totp-spaced-code.txt`):
/// the code as the authenticator app shows it, `123 456`, was refused at
/// enrolment and at sign-in and counted toward the back-off.
async fn authenticator_codes_are_read_as_typed(backend: Backend) {
    let Some(t) = TestServer::start(backend).await else {
        return;
    };
    let admin = t.setup_org("riverside").await;
    let user = admin
        .client
        .create_user(&wardline_proto::directory::CreateUserRequest {
            email: "ma@riverside.test".into(),
            display_name: "Mo Assistant".into(),
            phone: None,
            roles: vec![Role::MedicalAssistant],
            password: PASSWORD.into(),
            password_change_required: false,
        })
        .await
        .unwrap();
    let spaced = |code: String, sep: &str| format!("{}{sep}{}", &code[..3], &code[3..]);
    // Enrolment with the spaced code.
    let mut c = t.client();
    let first = c
        .login(&login_req("riverside", &user.email, PASSWORD))
        .await
        .unwrap();
    c.set_token(Some(first.session.unwrap().token));
    let enrol = c.enroll_totp().await.unwrap();
    c.confirm_totp(&spaced(t.totp_code(&enrol.secret_base32), " "))
        .await
        .expect("the code as the app shows it");
    // Sign-in with a hyphenated one, and with spaces around.
    for sep in ["-", "\u{a0}"] {
        t.next_totp_step();
        let c = t.client();
        let ch = c
            .login(&login_req("riverside", &user.email, PASSWORD))
            .await
            .unwrap();
        c.verify_mfa(
            ch.mfa_token.as_deref().unwrap(),
            &format!(" {} ", spaced(t.totp_code(&enrol.secret_base32), sep)),
        )
        .await
        .unwrap_or_else(|e| panic!("{sep:?}: {e}"));
    }
}

both_backends!(
    authenticator_codes_are_read_as_typed,
    the_compliance_role_is_not_the_administrators,
    concurrent_guesses_are_judged_one_at_a_time,
    wrong_mfa_codes_back_off_across_challenges,
    administrators_cannot_lock_themselves_out,
    setup_code_works_once_and_mfa_is_required_by_default,
    totp_login_rejects_replay_and_recovery_codes_work_once,
    sessions_end_after_idle_timeout_and_absolute_lifetime,
    revocation_takes_effect_immediately,
    password_change_and_mfa_reset,
    lockout_backs_off_but_never_bars_forever,
);

/// M1 of the 2026-11-30 findings: 65 wrong passwords from 13 addresses put the
/// account into back-off everywhere, renewable forever, and the on-call
/// clinician was locked out. A device that signed in before (its
/// remembered-device token, NIST SP 800-63B §5.2.2) is judged on its own key;
/// the organisation is told the account is under attack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_guessing_does_not_lock_out_a_known_device() {
    let t = TestServer::start_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await
    .unwrap();
    let admin = t.setup_org("riverside").await;
    let officer = t.user_with_role(&admin, Role::ComplianceOfficer).await;
    let victim = t.user_with_role(&admin, Role::Physician).await;
    // The clinician's phone signs in fully once and keeps its mark.
    let phone = Uuid::new_v4();
    t.next_totp_step();
    let c = t.client();
    let ch = c
        .login(&LoginRequest {
            device_id: phone,
            ..login_req("riverside", &victim.user.email, PASSWORD)
        })
        .await
        .unwrap();
    let session = c
        .verify_mfa(
            ch.mfa_token.as_deref().unwrap(),
            &t.totp_code(&victim.totp_secret),
        )
        .await
        .unwrap();
    let mark = session
        .remembered_device
        .expect("a full sign-in marks the device");

    let http = t.http();
    let login = |xff: String, req: LoginRequest| {
        http.post(format!("{}/api/v1/auth/login", t.url))
            .header("x-forwarded-for", xff)
            .json(&req)
            .send()
    };
    // The attack: five wrong passwords from each of 13 addresses.
    for a in 30..43 {
        for _ in 0..5 {
            let r = login(
                format!("198.51.100.{a}"),
                login_req("riverside", &victim.user.email, "not the password at all"),
            )
            .await
            .unwrap();
            assert!([401, 429].contains(&r.status().as_u16()), "{}", r.status());
        }
    }
    // Someone with the right password on a new device waits...
    let fresh = login(
        "203.0.113.98".into(),
        login_req("riverside", &victim.user.email, PASSWORD),
    )
    .await
    .unwrap();
    assert_eq!(fresh.status(), 429, "the account is in back-off");
    // ...the phone that signed in before does not, from any address.
    let known = login(
        "203.0.113.99".into(),
        LoginRequest {
            device_id: phone,
            device_token: Some(mark.clone()),
            ..login_req("riverside", &victim.user.email, PASSWORD)
        },
    )
    .await
    .unwrap();
    assert_eq!(known.status(), 200, "{}", known.text().await.unwrap());
    // The mark is bound to its device: on another device id it is ignored.
    let elsewhere = login(
        "203.0.113.99".into(),
        LoginRequest {
            device_token: Some(mark),
            ..login_req("riverside", &victim.user.email, PASSWORD)
        },
    )
    .await
    .unwrap();
    assert_eq!(elsewhere.status(), 429);
    // The organisation is told.
    let notes = officer.client.notifications().await.unwrap().notifications;
    assert!(
        notes
            .iter()
            .any(|n| n.kind == "sign_in_attack" && n.subject == victim.user.id),
        "{notes:?}"
    );
}

/// Behind a trusted proxy, back-off follows the real client address, so one
/// guesser does not slow down everyone else behind the same proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_off_follows_the_client_behind_a_trusted_proxy() {
    let t = TestServer::start_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await
    .unwrap();
    let admin = t.setup_org("riverside").await;
    let http = t.http();
    let login = |who: &str, xff: &str, password: &str| {
        http.post(format!("{}/api/v1/auth/login", t.url))
            .header("x-forwarded-for", xff)
            .json(&login_req("riverside", who, password))
            .send()
    };
    // Password spraying: a different account each time, so only the
    // per-address back-off can stop it.
    for i in 0..25 {
        login(
            &format!("ghost{i}@riverside.test"),
            "198.51.100.1",
            "wrong password",
        )
        .await
        .unwrap();
    }
    assert_eq!(
        login("someone@riverside.test", "198.51.100.1", "x")
            .await
            .unwrap()
            .status(),
        429,
        "the guesser waits"
    );
    // A spoofed left-most entry does not help the guesser.
    assert_eq!(
        login("someone@riverside.test", "203.0.113.9, 198.51.100.1", "x")
            .await
            .unwrap()
            .status(),
        429
    );
    // Another client behind the same proxy signs in normally.
    let ok = login(&admin.user.email, "203.0.113.9", PASSWORD)
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
