//! The demo organisation for `wardline serve --demo`: one user per built-in
//! role, so that a newcomer can sign in and try every permission at once.
//! The generated password is kept in `data_dir/demo-credentials.json` (0600)
//! so that later starts can show it again; a real deployment never uses this.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use wardline_proto::Role;
use wardline_proto::directory::CreateUserRequest;

use crate::error::ApiError;
use crate::state::AppState;
use wardline_store::StoreError;

pub const DEMO_SLUG: &str = "demo";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoCredentials {
    pub org: String,
    pub password: String,
    /// (role, e-mail)
    pub users: Vec<(Role, String)>,
}

pub fn demo_email(role: Role) -> String {
    format!("{}@demo.wardline.test", role.as_str().replace('_', "."))
}

/// Clinical routing to try: a Cardiology department, its charge nurse (the
/// demo nurse), "Cardiology on-call" covered by the demo physician for the
/// coming week (backup: the medical assistant), and a care team.
async fn routing_demo(
    state: &AppState,
    org: wardline_proto::OrgId,
    ids: &std::collections::HashMap<Role, uuid::Uuid>,
) -> Result<(), ApiError> {
    use wardline_proto::routing::*;
    let r = &state.routing;
    let dept = r
        .create_department(
            org,
            CreateDepartmentRequest {
                name: "Cardiology".into(),
            },
        )
        .await?;
    let charge = r
        .create_role(
            org,
            CreateRoleRequest {
                name: "Cardiology charge nurse".into(),
                department_id: Some(dept.id),
                fallback_role_id: None,
                holders: vec![ids[&Role::Nurse]],
                escalation: None,
            },
        )
        .await?;
    let on_call = r
        .create_role(
            org,
            CreateRoleRequest {
                name: "Cardiology on-call".into(),
                department_id: Some(dept.id),
                fallback_role_id: Some(charge.id),
                holders: vec![ids[&Role::Physician]],
                escalation: None,
            },
        )
        .await?;
    let now = r.now();
    for day in 0..7 {
        r.create_shift(
            org,
            on_call.id,
            CreateShiftRequest {
                user_id: ids[&Role::Physician],
                backup_user_id: Some(ids[&Role::MedicalAssistant]),
                starts_at: now - 3600 + day * 86_400,
                ends_at: now - 3600 + (day + 1) * 86_400,
            },
        )
        .await?;
    }
    r.create_team(
        org,
        CreateCareTeamRequest {
            name: "Riverside cardiology team".into(),
            department_id: Some(dept.id),
            members: vec![
                ids[&Role::Physician],
                ids[&Role::Nurse],
                ids[&Role::MedicalAssistant],
            ],
        },
    )
    .await?;
    Ok(())
}

/// Creates the demo organisation if it does not exist; returns its credentials.
pub async fn ensure_demo(state: &AppState, data_dir: &Path) -> Result<DemoCredentials, ApiError> {
    let file = data_dir.join("demo-credentials.json");
    match state.directory.org_by_slug(DEMO_SLUG).await {
        Ok(_) => {
            let text = fs::read_to_string(&file).map_err(|e| {
                ApiError::internal(format!(
                    "demo organisation exists but {}: {e}",
                    file.display()
                ))
            })?;
            return serde_json::from_str(&text).map_err(ApiError::internal);
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let org = state
        .directory
        .create_org("Riverside Demo Clinic", DEMO_SLUG)
        .await?;
    // Texts go out at once in the demo (no quiet hours), with a practice line.
    let mut policy = org.policy.clone();
    policy.patients.quiet_hours = None;
    policy.patients.practice_phone = "+1 555 010 2000".into();
    state
        .directory
        .update_policy(org.id, policy, &wardline_core::audit::AuditScope::default())
        .await?;
    let password = format!(
        "{}-{}",
        wardline_crypto::token::new_code(3, 5),
        wardline_crypto::token::new_code(1, 5)
    );
    let mut users = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for (i, role) in Role::ALL.into_iter().enumerate() {
        let email = demo_email(role);
        // Mobiles in the range kept for fiction (555-01xx), so an escalation's
        // SMS step reaches the demo's file gateway like a real phone would.
        let phone = format!("+1555010{:04}", 150 + i);
        let name = format!("Demo {}", role.as_str().replace('_', " "));
        let user = state
            .directory
            .create_user(
                org.id,
                CreateUserRequest {
                    email: email.clone(),
                    display_name: name,
                    phone: Some(phone),
                    roles: vec![role],
                    password: password.clone(),
                    // The demo's passwords are printed for trying it out.
                    password_change_required: false,
                },
            )
            .await?;
        ids.insert(role, user.id);
        users.push((role, email));
    }
    routing_demo(state, org.id, &ids).await?;
    let creds = DemoCredentials {
        org: DEMO_SLUG.into(),
        password,
        users,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .map_err(|e| ApiError::internal(format!("{}: {e}", file.display())))?;
    f.write_all(
        serde_json::to_string_pretty(&creds)
            .map_err(ApiError::internal)?
            .as_bytes(),
    )
    .map_err(|e| ApiError::internal(format!("{}: {e}", file.display())))?;
    Ok(creds)
}
