//! Built-in roles and the permissions they carry. The role → permission table
//! itself lives here so that clients can show it; the server checks it in one
//! place (`wardline_core::authz`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    OrgAdmin,
    ComplianceOfficer,
    Physician,
    Nurse,
    MedicalAssistant,
    FrontDesk,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::OrgAdmin,
        Role::ComplianceOfficer,
        Role::Physician,
        Role::Nurse,
        Role::MedicalAssistant,
        Role::FrontDesk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrgAdmin => "org_admin",
            Role::ComplianceOfficer => "compliance_officer",
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::MedicalAssistant => "medical_assistant",
            Role::FrontDesk => "front_desk",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What this role may do. Minimum necessary: clinical roles can look colleagues
    /// up in the directory but cannot manage accounts; the compliance officer can
    /// see sessions (who is signed in where) but cannot change users.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::OrgAdmin => &[
                DirectoryRead,
                UsersManage,
                SessionsRead,
                SessionsRevoke,
                OrgPolicyManage,
                Messaging,
                LifecycleManage,
                DevicesManage,
                MessagesRecall,
                RoutingManage,
                RoutingReports,
            ],
            Role::ComplianceOfficer => &[
                DirectoryRead,
                SessionsRead,
                AuditRead,
                Messaging,
                LifecycleManage,
                LegalHoldManage,
                RoutingReports,
                BreakGlassReview,
                ComplianceRolesManage,
            ],
            Role::Physician | Role::Nurse | Role::MedicalAssistant | Role::FrontDesk => {
                &[DirectoryRead, Messaging, PatientTexting]
            }
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: widths in format strings apply (the CLI's tables).
        f.pad(self.as_str())
    }
}

/// Something a caller may be allowed to do. Every handler names exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// List and look up colleagues in one's own organisation.
    DirectoryRead,
    /// Create, update, suspend, reactivate and deprovision users; reset MFA.
    UsersManage,
    /// List other users' sessions.
    SessionsRead,
    /// Revoke other users' sessions.
    SessionsRevoke,
    /// Change the organisation's session and MFA policy.
    OrgPolicyManage,
    /// Search the audit trail, run access reports and exports, fetch proofs.
    AuditRead,
    /// Register devices, take part in conversations (as a member only).
    Messaging,
    /// Patient records, texting consent, texts and secure messages to patients,
    /// patient threads. The care staff's, not the administrator's.
    PatientTexting,
    /// Preview the lifecycle policy's effect, run deletion now, read receipts.
    LifecycleManage,
    /// Place, list and release legal holds.
    LegalHoldManage,
    /// Mark any device of the organisation lost (remote wipe) and see wipes.
    DevicesManage,
    /// Recall anyone's message in the organisation, at any time.
    MessagesRecall,
    /// Departments, care teams, clinical roles and on-call schedules.
    RoutingManage,
    /// Response-time, unacknowledged and escalation reports.
    RoutingReports,
    /// Break-glass grants with their reasons, and the notifications about them.
    BreakGlassReview,
    /// Grant and remove the compliance officer role. Separation of duties:
    /// the role exists to check administrators, so it is not theirs to hand out.
    ComplianceRolesManage,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::DirectoryRead => "directory_read",
            Permission::UsersManage => "users_manage",
            Permission::SessionsRead => "sessions_read",
            Permission::SessionsRevoke => "sessions_revoke",
            Permission::OrgPolicyManage => "org_policy_manage",
            Permission::AuditRead => "audit_read",
            Permission::Messaging => "messaging",
            Permission::PatientTexting => "patient_texting",
            Permission::LifecycleManage => "lifecycle_manage",
            Permission::LegalHoldManage => "legal_hold_manage",
            Permission::DevicesManage => "devices_manage",
            Permission::MessagesRecall => "messages_recall",
            Permission::RoutingManage => "routing_manage",
            Permission::RoutingReports => "routing_reports",
            Permission::BreakGlassReview => "break_glass_review",
            Permission::ComplianceRolesManage => "compliance_roles_manage",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip_through_serde_and_parse() {
        for role in Role::ALL {
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("superuser"), None);
    }

    #[test]
    fn only_the_compliance_officer_reads_the_audit_trail() {
        for role in Role::ALL {
            let reads = role.permissions().contains(&Permission::AuditRead);
            assert_eq!(reads, role == Role::ComplianceOfficer, "{role}");
        }
    }

    #[test]
    fn only_the_compliance_officer_hands_out_its_role() {
        for role in Role::ALL {
            let grants = role
                .permissions()
                .contains(&Permission::ComplianceRolesManage);
            assert_eq!(grants, role == Role::ComplianceOfficer, "{role}");
        }
    }

    #[test]
    fn only_org_admin_manages_users() {
        for role in Role::ALL {
            let manages = role.permissions().contains(&Permission::UsersManage);
            assert_eq!(manages, role == Role::OrgAdmin, "{role}");
        }
    }
}
