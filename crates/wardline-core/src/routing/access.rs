//! Patient context: opening a patient's threads as care team or by
//! break-glass with a reason, grants and the notifications they send.

use super::*;
use crate::caller::Caller;
use wardline_proto::ErrorCode;

impl RoutingService {
    /// Opens a patient's conversations for the caller: members already are;
    /// the care team joins; anyone else needs break-glass with a reason,
    /// which grants time-limited membership, tells the compliance officer
    /// and is audited.
    pub async fn open_patient(
        &self,
        p: &Caller,
        req: OpenPatientRequest,
    ) -> ApiResult<PatientAccess> {
        let patient = req.patient_ref.trim();
        check_text(patient, "patient_ref", 100)?;
        let bidx = crate::policy::lifecycle::patient_index(&self.vault, p.org_id, patient);
        p.audit.patient_ref(&bidx);
        let conversations = self.store.conversations_by_patient(p.org_id, &bidx).await?;
        if conversations.is_empty() {
            return Err(ApiError::not_found("conversation about this patient"));
        }
        let teams: HashMap<Uuid, CareTeam> = self
            .store
            .list_teams(p.org_id)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        // The departments where the caller holds a clinical role.
        let my_departments: BTreeSet<Uuid> = self
            .store
            .list_roles(p.org_id)
            .await?
            .into_iter()
            .filter(|r| r.holders.contains(&Into::into(p.user_id)))
            .filter_map(|r| r.department_id)
            .collect();
        let mut access = Vec::new();
        let mut locked = Vec::new();
        for (c, team) in conversations {
            let team = team.and_then(|t| teams.get(&t));
            if self.messages.is_member(c, p.user_id).await? {
                access.push((c, AccessVia::Member));
            } else if team.is_some_and(|t| t.members.contains(&Into::into(p.user_id))) {
                access.push((c, AccessVia::CareTeam));
            } else if team
                .and_then(|t| t.department_id)
                .is_some_and(|d| my_departments.contains(&d))
            {
                access.push((c, AccessVia::Department));
            } else {
                locked.push(c);
            }
        }
        let reason = req.reason.as_deref().map(str::trim).unwrap_or_default();
        let policy = self.policy(p.org_id).await?;
        if !locked.is_empty() && !p.roles.iter().any(|r| policy.break_glass_roles.contains(r)) {
            return Err(ApiError::forbidden(
                "you are not on this patient's care team, and your role may not break the glass \
                 (the organisation allows it to routing.break_glass_roles)",
            ));
        }
        if !locked.is_empty() && !(10..=500).contains(&reason.chars().count()) {
            return Err(ApiError::new(
                ErrorCode::BreakGlassReasonRequired,
                "you are not on this patient's care team: break-glass access needs a stated reason (10 to 500 characters), which the compliance officer reviews",
            ));
        }
        let now = self.clock.now();
        let mut grants = Vec::new();
        for c in &locked {
            let (key_row, key) = self.vault.new_key_row(p.org_id)?;
            let dek_id = key_row.id.clone();
            let id = Uuid::new_v4();
            let row_id = id.to_string();
            let g = GrantRow {
                id,
                org_id: p.org_id,
                conversation_id: *c,
                user_id: p.user_id,
                dek_id,
                reason_enc: Vault::seal(
                    &key,
                    FieldRef {
                        table: "break_glass",
                        row_id: &row_id,
                        column: "reason",
                    },
                    reason,
                ),
                granted_at: now,
                expires_at: now + policy.break_glass_minutes * 60,
                ended_at: None,
            };
            self.store.insert_grant(&g, &key_row).await?;
            self.add_member(p.org_id, *c, p.user_id, p.user_id).await?;
            self.messaging
                .request_history(p.org_id, *c, p.user_id, None)
                .await?;
            self.store
                .insert_notification(
                    p.org_id,
                    &Notification {
                        id: Uuid::new_v4(),
                        kind: "break_glass".into(),
                        subject: p.user_id.into(),
                        detail: format!(
                            "break-glass access to conversation {c} until {} (grant {id})",
                            g.expires_at
                        ),
                        created_at: now,
                    },
                )
                .await?;
            p.audit.also(
                wardline_proto::audit::AuditAction::BreakGlassGrant,
                "break_glass",
                id,
            );
            grants.push(BreakGlassGrant {
                id,
                conversation_id: *c,
                user_id: p.user_id.into(),
                reason: Some(reason.to_owned()),
                granted_at: now,
                expires_at: g.expires_at,
                ended_at: None,
            });
            access.push((*c, AccessVia::BreakGlass));
        }
        for (c, via) in &access {
            if matches!(via, AccessVia::CareTeam | AccessVia::Department) {
                self.add_member(p.org_id, *c, p.user_id, p.user_id).await?;
                self.messaging
                    .request_history(p.org_id, *c, p.user_id, None)
                    .await?;
            }
        }
        Ok(PatientAccess {
            conversations: access
                .into_iter()
                .map(|(conversation_id, via)| PatientConversationAccess {
                    conversation_id,
                    via,
                })
                .collect(),
            grants,
        })
    }

    pub async fn grants(&self, org: OrgId) -> ApiResult<BreakGlassList> {
        self.grants_where(org, |_| true).await
    }

    /// The caller's own break-glass grants still running (not ended, not
    /// expired), with the reasons they gave: what their app shows while
    /// the access lasts.
    pub async fn own_grants(&self, p: &Principal) -> ApiResult<BreakGlassList> {
        let now = self.clock.now();
        let me = p.user_id;
        self.grants_where(p.org_id, |g| {
            g.user_id == me && g.ended_at.is_none() && g.expires_at > now
        })
        .await
    }

    async fn grants_where(
        &self,
        org: OrgId,
        keep: impl Fn(&GrantRow) -> bool,
    ) -> ApiResult<BreakGlassList> {
        let mut out = Vec::new();
        for g in self
            .store
            .list_grants(org)
            .await?
            .into_iter()
            .filter(|g| keep(g))
        {
            let key = self
                .vault
                .unwrap_key(&self.directory_store.get_data_key(&g.dek_id).await?)?;
            let row_id = g.id.to_string();
            let reason = Vault::open_str(
                &key,
                FieldRef {
                    table: "break_glass",
                    row_id: &row_id,
                    column: "reason",
                },
                &g.reason_enc,
            )?;
            out.push(BreakGlassGrant {
                id: g.id,
                conversation_id: g.conversation_id,
                user_id: g.user_id.into(),
                reason: Some(reason),
                granted_at: g.granted_at,
                expires_at: g.expires_at,
                ended_at: g.ended_at,
            });
        }
        Ok(BreakGlassList { grants: out })
    }

    pub async fn notifications(&self, org: OrgId) -> ApiResult<NotificationList> {
        Ok(NotificationList {
            notifications: self.store.list_notifications(org).await?,
        })
    }
}
