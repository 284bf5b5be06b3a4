//! Paging: who a page to a role reaches now (on call, backup, holder,
//! fallback role) and the page itself.

use super::*;
use crate::caller::Caller;

impl RoutingService {
    /// Whoever a page to `role` reaches now, skipping `except` (the sender)
    /// and anyone off duty or in a procedure.
    pub async fn resolve(&self, org: OrgId, role: Uuid, except: UserId) -> ApiResult<Resolution> {
        let now = self.clock.now();
        // Why someone cannot take the page now (none: they can).
        let unreachable = async |u: UserId| -> ApiResult<Option<String>> {
            if u == except {
                return Ok(Some("you".into()));
            }
            self.unreachable(org, u, now).await
        };
        let first = found(self.store.get_role(org, role).await, "clinical role")?;
        let mut role = first.clone();
        let mut notes: Vec<String> = Vec::new();
        for depth in 0..=MAX_FALLBACK_DEPTH {
            let fallback = depth > 0;
            let pick = |user: UserId, direct: ResolvedVia, notes: &[String]| {
                let via = if fallback {
                    ResolvedVia::FallbackRole
                } else {
                    direct
                };
                (user, via, notes.to_vec())
            };
            let mut chosen = None;
            if let Some(s) = self.shift_at(org, role.id, now).await? {
                match unreachable(s.user_id.into()).await? {
                    None => chosen = Some(pick(s.user_id.into(), ResolvedVia::OnCall, &notes)),
                    Some(why) => {
                        notes.push(format!("the person on call for {} is {why}", role.name));
                        if let Some(b) = s.backup_user_id
                            && unreachable(b.into()).await?.is_none()
                        {
                            chosen = Some(pick(b.into(), ResolvedVia::Backup, &notes));
                        }
                    }
                }
            } else {
                notes.push(format!("nobody is on call for {}", role.name));
            }
            if chosen.is_none() {
                for h in &role.holders {
                    if unreachable((*h).into()).await?.is_none() {
                        chosen = Some(pick((*h).into(), ResolvedVia::Holder, &notes));
                        break;
                    }
                }
            }
            if let Some((user, via, notes)) = chosen {
                return Ok(Resolution {
                    nobody_on_call: fallback || via == ResolvedVia::Holder,
                    notice: self.notice(org, &role, user, &notes).await?,
                    via,
                    user,
                    role: first,
                });
            }
            match role.fallback_role_id {
                Some(f) if depth < MAX_FALLBACK_DEPTH => {
                    role = self.store.get_role(org, f).await?;
                }
                _ => break,
            }
        }
        Err(ApiError::conflict(format!(
            "nobody can be reached for {}: {}; page someone directly",
            first.name,
            notes.join("; ")
        )))
    }

    pub(super) async fn notice(
        &self,
        org: OrgId,
        role: &ClinicalRole,
        user: UserId,
        notes: &[String],
    ) -> ApiResult<String> {
        let who = self.directory.user(org, user).await?.display_name;
        Ok(if notes.is_empty() {
            format!("{} is covered by {who}", role.name)
        } else {
            format!("{}; paging {who} ({})", notes.join("; "), role.name)
        })
    }

    /// Why `user` cannot take a page at `now` (none: they can): an account
    /// that is not active, or being in a procedure or off duty. The one
    /// check behind paging, escalation steps and hand-offs.
    pub(crate) async fn unreachable(
        &self,
        org: OrgId,
        user: UserId,
        now: i64,
    ) -> ApiResult<Option<String>> {
        match self.directory_store.get_user(org, user).await {
            Ok(row) if row.status == UserStatus::Active => {}
            Ok(_) | Err(StoreError::NotFound) => return Ok(Some("not active".into())),
            Err(e) => return Err(e.into()),
        }
        let presence = self.store.list_presence(org).await?;
        let status = presence_now(presence.iter().find(|p| p.user_id == user), now);
        Ok((!status.reachable()).then(|| status.as_str().replace('_', " ")))
    }

    /// Opens (or reuses) the caller's conversation to a role with whoever
    /// covers it now; the message the caller then sends there is recorded as
    /// sent to the role and resolved to that person.
    pub async fn page(
        &self,
        p: &Caller,
        role: Uuid,
        req: PageRoleRequest,
    ) -> ApiResult<PageRoleResponse> {
        let r = self.resolve(p.org_id, role, p.user_id).await?;
        // The sender's last page to this role is reused while it reaches the
        // same person; a new person on call gets a new conversation, so that
        // nobody off shift keeps receiving the role's messages.
        let reuse = match self
            .store
            .role_conversation(p.org_id, p.user_id, role, r.user)
            .await?
        {
            Some(c)
                if req.patient_ref.is_none() && self.messages.is_member(c, p.user_id).await? =>
            {
                Some(c)
            }
            _ => None,
        };
        let conversation = match reuse {
            Some(c) => {
                if !self.messages.is_member(c, r.user).await? {
                    self.add_member(p.org_id, c, r.user, p.user_id).await?;
                }
                c
            }
            None => {
                let (_, c) = self
                    .messaging
                    .create_conversation(
                        p,
                        CreateConversationRequest {
                            kind: ConversationKind::Group,
                            title: Some(format!("Page: {}", r.role.name)),
                            members: vec![r.user.into()],
                            patient_ref: req.patient_ref,
                            care_team_id: None,
                        },
                    )
                    .await?;
                c.id
            }
        };
        self.store
            .set_routing(conversation, role, r.user, r.via.as_str())
            .await?;
        // The event names the conversation opened; how it was routed, by ids.
        p.audit.target("conversation", conversation);
        p.audit.reason(&format!(
            "role {role} resolved to user {} ({})",
            r.user,
            r.via.as_str()
        ));
        let c = self
            .messages
            .get_conversation(p.org_id, conversation)
            .await?;
        let presence = self.presence_map(p.org_id).await?;
        Ok(PageRoleResponse {
            conversation: self.messaging.to_wire(&c, Some(&p.audit)).await?,
            role_id: role,
            role_name: r.role.name.clone(),
            resolved_to: self.person(p.org_id, r.user, &presence).await?,
            via: r.via,
            nobody_on_call: r.nobody_on_call,
            notice: r.notice,
        })
    }

    /// Adds a user to a conversation through the usual membership path (a
    /// member's client commits their devices into the MLS group).
    pub(super) async fn add_member(
        &self,
        org: OrgId,
        conversation: Uuid,
        user: UserId,
        actor: UserId,
    ) -> ApiResult<bool> {
        let c = self.messages.get_conversation(org, conversation).await?;
        let devices: Vec<_> = self
            .messages
            .list_user_devices(org, user)
            .await?
            .into_iter()
            .map(|d| d.device.id)
            .collect();
        let notice = MessageRow::membership_notice(conversation, c.epoch, actor, self.clock.now());
        let (added, woken) = self
            .messages
            .add_member(conversation, user, &devices, &notice)
            .await?;
        self.messaging.wake(&woken).await;
        Ok(added)
    }
}
