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
) -> Result<DemoRouting, ApiError> {
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
    let team = r
        .create_team(
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
    Ok(DemoRouting {
        department: dept.id,
        on_call: on_call.id,
        team: team.id,
    })
}

/// The demo's department, on-call role and care team, for its history.
struct DemoRouting {
    department: uuid::Uuid,
    on_call: uuid::Uuid,
    team: uuid::Uuid,
}

/// A month of made-up past activity (`ActivityHistory`), so the analytics
/// screen has something to show on a fresh demo: the six demo people's
/// messages on weekdays and weekends, urgent and STAT pages to "Cardiology
/// on-call" mostly acknowledged within minutes, sign-ins, a few opt-outs.
/// Seeded, so every demo shows the same month.
async fn history_demo(
    state: &AppState,
    org: wardline_proto::OrgId,
    ids: &std::collections::HashMap<Role, uuid::Uuid>,
    routing: &DemoRouting,
) -> Result<(), ApiError> {
    use rand::{Rng, SeedableRng};
    use wardline_proto::messaging::Priority;
    use wardline_store::reports::*;

    const DAY: i64 = 86_400;
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let today = state.routing.now().div_euclid(DAY) * DAY;
    let start = today - 30 * DAY;
    let dek_id = state
        .store
        .get_user(org, ids[&Role::OrgAdmin].into())
        .await?
        .dek_id;
    let mut h = ActivityHistory {
        dek_id,
        ..Default::default()
    };
    let people: Vec<(Role, wardline_proto::UserId, wardline_proto::DeviceId)> = Role::ALL
        .into_iter()
        .map(|r| (r, ids[&r].into(), uuid::Uuid::new_v4().into()))
        .collect();
    for (_, user, device) in &people {
        h.devices.push(HistoryDevice {
            id: *device,
            user_id: *user,
            created_at: start,
        });
    }
    let conversation = |role_id, care_team_id, by: Role| HistoryConversation {
        id: uuid::Uuid::new_v4(),
        created_by: ids[&by].into(),
        created_at: start,
        role_id,
        care_team_id,
    };
    let team = conversation(None, Some(routing.team), Role::Physician);
    let front = conversation(None, None, Role::FrontDesk);
    let paged = conversation(Some(routing.on_call), None, Role::Nurse);
    let (team_id, front_id, paged_id) = (team.id, front.id, paged.id);
    h.conversations.extend([team, front, paged]);
    let who = |role: Role| *people.iter().find(|p| p.0 == role).expect("every role");
    // Messages a day on a weekday: (sender, where).
    let daily: [(Role, uuid::Uuid, u32); 5] = [
        (Role::Physician, team_id, 9),
        (Role::Nurse, team_id, 14),
        (Role::MedicalAssistant, team_id, 6),
        (Role::FrontDesk, front_id, 5),
        (Role::OrgAdmin, front_id, 1),
    ];
    for d in 0..30 {
        let day = start + d * DAY;
        // 1970-01-01 was a Thursday: day numbers 2 and 3 (mod 7) are weekends.
        let weekend = matches!((day / DAY).rem_euclid(7), 2 | 3);
        let scale = if weekend { 0.4 } else { 1.0 };
        for (role, conv, n) in daily {
            let (_, user, device) = who(role);
            let n = (f64::from(n) * scale * rng.gen_range(0.6..1.4)).round() as u32;
            for _ in 0..n {
                let at = day + rng.gen_range(7 * 3600..19 * 3600);
                let readers = people
                    .iter()
                    .filter(|p| p.1 != user && !matches!(p.0, Role::ComplianceOfficer))
                    .take(3)
                    .map(|p| (p.2, rng.gen_bool(0.9).then(|| at + rng.gen_range(30..2400))))
                    .collect();
                h.messages.push(HistoryMessage {
                    id: uuid::Uuid::new_v4(),
                    conversation_id: conv,
                    sender_user: user,
                    sender_device: device,
                    priority: Priority::Routine,
                    created_at: at,
                    deliveries: readers,
                    routing: None,
                });
            }
        }
        // Pages to Cardiology on-call: urgent ones most days, a STAT some.
        let pages = rng.gen_range(0..4) + u32::from(!weekend);
        for i in 0..pages {
            let at = day + rng.gen_range(0..DAY);
            let (_, sender, device) = who(Role::Nurse);
            let (_, doctor, doctor_device) = who(Role::Physician);
            let answered = rng.gen_bool(0.92);
            let read = at + rng.gen_range(20..600);
            h.messages.push(HistoryMessage {
                id: uuid::Uuid::new_v4(),
                conversation_id: paged_id,
                sender_user: sender,
                sender_device: device,
                priority: if i == 0 && rng.gen_bool(0.5) {
                    Priority::Stat
                } else {
                    Priority::Urgent
                },
                created_at: at,
                deliveries: vec![(doctor_device, Some(read))],
                routing: Some(HistoryRouting {
                    role_id: Some(routing.on_call),
                    department_id: Some(routing.department),
                    escalations: if answered { rng.gen_range(0..2) } else { 3 },
                    acknowledged: answered.then(|| (doctor, read + rng.gen_range(30..900))),
                }),
            });
        }
        for (role, user, device) in &people {
            if weekend && !matches!(role, Role::Nurse | Role::Physician) {
                continue;
            }
            let begun = day + rng.gen_range(6 * 3600..10 * 3600);
            h.sessions.push(HistorySession {
                user_id: *user,
                device_id: *device,
                created_at: begun,
                last_seen_at: begun + rng.gen_range(3600..10 * 3600),
            });
        }
        if rng.gen_bool(0.2) {
            h.opt_outs.push(day + rng.gen_range(0..DAY));
        }
    }
    state.history.import_history(org, &h).await?;
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
    let routing = routing_demo(state, org.id, &ids).await?;
    history_demo(state, org.id, &ids, &routing).await?;
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
