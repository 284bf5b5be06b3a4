//! The clinicians' web app in Chromium, as a nurse uses it
//! (`tests/browser/web_app.mjs`): served by the server at `/` under its CSP,
//! sign-in with password and second factor, who is signed in, sign-out —
//! every screen checked by axe-core, screenshots in `target/screenshots/`.
//! The app must be built (`cargo xtask web`, which `cargo xtask test` runs);
//! outside CI a machine without it, Chromium or playwright-core skips.

use std::path::Path;

use wardline_proto::Role;

use crate::common::browser::{browser_available, run_script};
use crate::common::*;

fn web_app_built() -> bool {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../web/dist/index.html")
        .exists();
    if !built && std::env::var_os("CI").is_some() {
        panic!("CI must test the web app: build it first (cargo xtask web)");
    }
    if !built {
        eprintln!("skipping: web/dist is not built (cargo xtask web)");
    }
    built
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_signs_in_and_out_of_the_web_app() {
    if !browser_available() || !web_app_built() {
        return;
    }
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = t.setup_org("alpha").await;
    let nurse = t.user_with_role(&admin, Role::Nurse).await;
    let sessions_before = admin.client.list_sessions(nurse.user.id).await.unwrap();
    // A code of a step the nurse's enrolment did not use (no replay).
    t.next_totp_step();
    let code = t.totp_code(&nurse.totp_secret);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let steps = run_script(
        "web_app.mjs",
        serde_json::json!({
            "url": format!("{}/", t.url),
            "org": "alpha",
            "email": nurse.user.email,
            "password": PASSWORD,
            "wrongCode": wrong,
            "code": code,
            "displayName": nurse.user.display_name,
            "screenshots": screenshots,
        }),
        Some(&t.ca_pem),
    )
    .await;
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {steps:?}"))
            .clone()
    };
    assert_eq!(step("opened")["title"], "Sign in · Wardline");
    for s in ["opened", "password", "signed_in", "signed_out"] {
        assert_eq!(
            step(s)["focused"],
            "H1",
            "{s}: the screen's heading has focus"
        );
    }
    let alert = step("wrong_code")["alert"].as_str().unwrap().to_owned();
    assert!(alert.contains("code"), "{alert}");
    // Signing out ended the browser's session on the server.
    let sessions_after = admin.client.list_sessions(nurse.user.id).await.unwrap();
    assert_eq!(
        sessions_after.len(),
        sessions_before.len(),
        "{sessions_after:?}"
    );
}
