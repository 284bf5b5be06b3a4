//! Conversations and who should be in them: creation, listing, membership
//! changes (marked for the members' clients to commit), refounding, and
//! key-package claims for the devices to add.

use super::*;
use crate::caller::Caller;

impl MessagingService {
    /// The conversation, if the caller is a member; 404 otherwise (whether it
    /// exists is not the caller's business).
    pub(super) async fn member_conversation(
        &self,
        p: &Principal,
        id: Uuid,
    ) -> ApiResult<ConversationRow> {
        let c = match self.store.get_conversation(p.org_id, id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return Err(conversation_not_found()),
            Err(e) => return Err(e.into()),
        };
        if !self.store.is_member(id, p.user_id).await? {
            return Err(conversation_not_found());
        }
        Ok(c)
    }

    /// The conversation's title and patient reference, opened from the vault.
    pub(super) async fn open_sealed(
        &self,
        c: &ConversationRow,
    ) -> ApiResult<(Option<String>, Option<String>)> {
        if c.title_enc.is_none() && c.patient_ref_enc.is_none() {
            return Ok((None, None));
        }
        let id = c.id.to_string();
        let key = self.vault.record_key(&c.dek_id).await?;
        let open = |col: &str, v: &Option<Vec<u8>>| -> ApiResult<Option<String>> {
            v.as_ref()
                .map(|v| {
                    Vault::open_str(
                        &key,
                        FieldRef {
                            table: "conversations",
                            row_id: &id,
                            column: col,
                        },
                        v,
                    )
                    .map_err(ApiError::internal)
                })
                .transpose()
        };
        Ok((
            open("title", &c.title_enc)?,
            open("patient_ref", &c.patient_ref_enc)?,
        ))
    }

    pub(super) async fn policy(&self, org: OrgId) -> ApiResult<MessagingPolicy> {
        Ok(self.directory_store.get_org(org).await?.policy.messaging)
    }

    /// Whether the organisation's policy shows read receipts here whatever a
    /// member prefers. A conversation with a patient is a clinical thread.
    pub(super) fn receipts_mandatory(policy: &MessagingPolicy, c: &ConversationRow) -> bool {
        let class = if c.patient_ref_enc.is_some() {
            ConversationClass::Clinical
        } else if c.kind == ConversationKind::Direct {
            ConversationClass::Direct
        } else {
            ConversationClass::Group
        };
        policy.mandatory_read_receipts.contains(&class)
    }

    /// The conversation's wire form (the caller must be allowed to see it).
    pub async fn to_wire(
        &self,
        c: &ConversationRow,
        audit: Option<&AuditScope>,
    ) -> ApiResult<Conversation> {
        let policy = self.policy(c.org_id).await?;
        let lifecycle = self.lifecycle.lifecycle_policy(c.org_id).await?;
        self.to_wire_with(c, &policy, &lifecycle, audit).await
    }

    pub(super) async fn to_wire_with(
        &self,
        c: &ConversationRow,
        policy: &MessagingPolicy,
        lifecycle: &LifecyclePolicy,
        audit: Option<&AuditScope>,
    ) -> ApiResult<Conversation> {
        let (title, patient_ref) = self.open_sealed(c).await?;
        if let (Some(a), Some(index)) = (audit, &c.patient_ref_bidx) {
            a.patient_ref(index);
        }
        Ok(Conversation {
            id: c.id,
            kind: c.kind,
            title,
            patient_ref,
            created_by: c.created_by.into(),
            created_at: c.created_at,
            epoch: c.epoch,
            members: self
                .store
                .conversation_members(c.id)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
            devices: self
                .store
                .conversation_devices(c.id)
                .await?
                .into_iter()
                .map(|d| ConversationDevice {
                    device_id: d.device_id.into(),
                    user_id: d.user_id.into(),
                    state: d.state,
                })
                .collect(),
            read_receipts_mandatory: Self::receipts_mandatory(policy, c),
            last_activity_at: c.last_activity_at,
            lifecycle: crate::policy::lifecycle::effective(lifecycle, &c.lifecycle),
            lifecycle_own: c.lifecycle.clone(),
            role_id: c.role_id,
            care_team_id: c.care_team_id,
        })
    }

    /// Records the patient of a clinical thread on the request's audit event,
    /// so that the patient's access report lists who wrote there.
    pub async fn tag_patient(&self, c: &ConversationRow, audit: &AuditScope) -> ApiResult<()> {
        if let Some(index) = &c.patient_ref_bidx {
            audit.patient_ref(index);
        }
        Ok(())
    }

    /// The patient reference behind a blind index, from a conversation that
    /// names it (sealed there); `None` if no conversation does.
    pub async fn patient_reference(&self, org: OrgId, index: &str) -> ApiResult<Option<String>> {
        let Some((id, _)) = self
            .routing
            .conversations_by_patient(org, index)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let c = self.store.get_conversation(org, id).await?;
        Ok(self.open_sealed(&c).await?.1)
    }

    pub(super) async fn active_colleague(&self, org: OrgId, user: UserId) -> ApiResult<()> {
        match self.directory_store.get_user(org, user).await {
            Ok(u) if u.status == UserStatus::Active => Ok(()),
            Ok(_) => Err(ApiError::validation(format!(
                "user {user} is not active and cannot join conversations"
            ))),
            Err(StoreError::NotFound) => Err(ApiError::validation(format!(
                "user {user} is not in this organisation"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_conversation(
        &self,
        p: &Caller,
        req: CreateConversationRequest,
    ) -> ApiResult<(bool, Conversation)> {
        let device = self.device_of(p).await?;
        let policy = self.policy(p.org_id).await?;
        let mut others: Vec<UserId> = req.members.clone().into_iter().map(Into::into).collect();
        others.sort();
        others.dedup();
        if others.contains(&p.user_id) {
            return Err(ApiError::validation(
                "members lists the other participants, not yourself",
            ));
        }
        let title = req
            .title
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if title.is_some_and(|t| t.chars().count() > 200) {
            return Err(ApiError::validation("title must be at most 200 characters"));
        }
        let patient_ref = req
            .patient_ref
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if patient_ref.is_some_and(|t| t.chars().count() > 100) {
            return Err(ApiError::validation(
                "patient_ref must be at most 100 characters",
            ));
        }
        let direct_key = match req.kind {
            ConversationKind::Direct => {
                if others.len() != 1 {
                    return Err(ApiError::validation(
                        "a direct conversation has exactly one other member",
                    ));
                }
                if title.is_some() || patient_ref.is_some() {
                    return Err(ApiError::validation(
                        "a direct conversation has no title or patient context; create a group",
                    ));
                }
                let mut pair = [p.user_id, others[0]];
                pair.sort();
                Some(format!("{}:{}", pair[0], pair[1]))
            }
            ConversationKind::Group => {
                if others.is_empty() {
                    return Err(ApiError::validation(
                        "a group needs at least one other member",
                    ));
                }
                if others.len() as i64 + 1 > policy.max_group_members {
                    return Err(ApiError::validation(format!(
                        "a group may have at most {} members (organisation policy)",
                        policy.max_group_members
                    )));
                }
                None
            }
        };
        for u in &others {
            self.active_colleague(p.org_id, *u).await?;
        }
        if let Some(team) = req.care_team_id {
            if patient_ref.is_none() {
                return Err(ApiError::validation(
                    "care_team_id goes with a patient_ref: it says who may open the patient's thread",
                ));
            }
            match self.routing.get_team(p.org_id, team).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    return Err(ApiError::validation("care_team_id is not a care team here"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(key) = &direct_key
            && let Some(existing) = self.store.find_direct(p.org_id, key).await?
        {
            p.audit.target("conversation", existing.id);
            return Ok((false, self.to_wire(&existing, Some(&p.audit)).await?));
        }
        let id = Uuid::new_v4();
        let now = self.clock.now();
        let (dek_id, key) = self.vault.new_record_key(Some(p.org_id)).await?;
        let row_id = id.to_string();
        let seal = |col: &str, v: &str| {
            Vault::seal(
                &key,
                FieldRef {
                    table: "conversations",
                    row_id: &row_id,
                    column: col,
                },
                v,
            )
        };
        let row = ConversationRow {
            id,
            org_id: p.org_id,
            kind: req.kind,
            dek_id,
            title_enc: title.map(|t| seal("title", t)),
            patient_ref_enc: patient_ref.map(|t| seal("patient_ref", t)),
            direct_key,
            created_by: p.user_id,
            created_at: now,
            epoch: 0,
            last_activity_at: now,
            lifecycle: Default::default(),
            patient_ref_bidx: patient_ref
                .map(|r| crate::policy::lifecycle::patient_index(&self.vault, p.org_id, r)),
            role_id: None,
            routed_user: None,
            routed_via: None,
            care_team_id: req.care_team_id,
        };
        let mut members = vec![p.user_id];
        members.extend(others.iter().copied());
        let mut devices = Vec::new();
        for u in &members {
            for d in self.store.list_user_devices(p.org_id, *u).await? {
                devices.push(ConversationDeviceRow {
                    device_id: d.device.id,
                    user_id: *u,
                    // The creator's device makes the group; it adds the rest.
                    state: if d.device.id == device.id {
                        DeviceState::Member
                    } else {
                        DeviceState::PendingAdd
                    },
                });
            }
        }
        p.audit.target("conversation", id);
        match self
            .store
            .create_conversation(&row, &members, &devices)
            .await
        {
            Ok(()) => {}
            // Lost a race with the other participant creating the same pair.
            Err(StoreError::Conflict(_)) if row.direct_key.is_some() => {
                let key = row.direct_key.as_deref().unwrap_or_default();
                let existing = self
                    .store
                    .find_direct(p.org_id, key)
                    .await?
                    .ok_or_else(conversation_not_found)?;
                return Ok((false, self.to_wire(&existing, Some(&p.audit)).await?));
            }
            Err(e) => return Err(e.into()),
        }
        Ok((true, self.to_wire(&row, Some(&p.audit)).await?))
    }

    pub async fn list_conversations(&self, p: &Principal) -> ApiResult<ConversationList> {
        let rows = self.store.user_conversations(p.org_id, p.user_id).await?;
        let policy = self.policy(p.org_id).await?;
        let lifecycle = self.lifecycle.lifecycle_policy(p.org_id).await?;
        let mut conversations = Vec::with_capacity(rows.len());
        for c in &rows {
            conversations.push(self.to_wire_with(c, &policy, &lifecycle, None).await?);
        }
        Ok(ConversationList { conversations })
    }

    pub async fn conversation(&self, p: &Caller, id: Uuid) -> ApiResult<Conversation> {
        let c = self.member_conversation(p, id).await?;
        self.to_wire(&c, Some(&p.audit)).await
    }

    pub async fn add_member(&self, p: &Caller, id: Uuid, user: UserId) -> ApiResult<Conversation> {
        let c = self.member_conversation(p, id).await?;
        if c.kind == ConversationKind::Direct {
            return Err(ApiError::validation(
                "a direct conversation has two members; create a group to add people",
            ));
        }
        self.active_colleague(p.org_id, user).await?;
        let policy = self.policy(p.org_id).await?;
        if self.store.conversation_members(id).await?.len() as i64 >= policy.max_group_members {
            return Err(ApiError::validation(format!(
                "a group may have at most {} members (organisation policy)",
                policy.max_group_members
            )));
        }
        let devices: Vec<_> = self
            .store
            .list_user_devices(p.org_id, user)
            .await?
            .into_iter()
            .map(|d| d.device.id)
            .collect();
        let notice = MessageRow::membership_notice(id, c.epoch, p.user_id, self.clock.now());
        let (added, woken) = self.store.add_member(id, user, &devices, &notice).await?;
        if !added {
            return Err(ApiError::conflict("already a member"));
        }
        self.wake(&woken).await;
        self.to_wire(
            &self.store.get_conversation(p.org_id, id).await?,
            Some(&p.audit),
        )
        .await
    }

    /// Removes `user` (the caller themself: leaving).
    pub async fn remove_member(
        &self,
        p: &Caller,
        id: Uuid,
        user: UserId,
    ) -> ApiResult<Conversation> {
        let c = self.member_conversation(p, id).await?;
        if c.kind == ConversationKind::Direct {
            return Err(ApiError::validation(
                "nobody can be removed from a direct conversation",
            ));
        }
        let notice = MessageRow::membership_notice(id, c.epoch, p.user_id, self.clock.now());
        let (removed, woken) = self.store.remove_member(id, user, &notice).await?;
        if !removed {
            return Err(ApiError::not_found("member"));
        }
        self.wake(&woken).await;
        let c = self.store.get_conversation(p.org_id, id).await?;
        self.to_wire(&c, Some(&p.audit)).await
    }

    /// Starts a conversation's group again from the caller's device, which is
    /// waiting to join it while no member device is left to add it (see
    /// [`MessagingStore::refound_conversation`]). Messages sent before stay
    /// readable only on devices that had them.
    pub async fn refound(&self, p: &Caller, id: Uuid) -> ApiResult<Conversation> {
        let device = self.device_of(p).await?;
        let c = self.member_conversation(p, id).await?;
        let notice = MessageRow::membership_notice(id, 0, p.user_id, self.clock.now());
        let (done, woken) = self
            .store
            .refound_conversation(id, device.id, &notice)
            .await?;
        if !done {
            return Err(ApiError::conflict(
                "the conversation still has a member device (it will add this one), or this device is not waiting to join it",
            ));
        }
        self.wake(&woken).await;
        let c = self.store.get_conversation(p.org_id, c.id).await?;
        self.to_wire(&c, Some(&p.audit)).await
    }

    /// Takes a departing user out of every conversation (deprovisioning).
    pub async fn remove_from_all_conversations(
        &self,
        org: OrgId,
        user: UserId,
        actor: UserId,
    ) -> ApiResult<()> {
        for c in self.store.user_conversations(org, user).await? {
            let notice = MessageRow::membership_notice(c.id, c.epoch, actor, self.clock.now());
            let (_, woken) = self.store.remove_member(c.id, user, &notice).await?;
            self.wake(&woken).await;
        }
        Ok(())
    }

    pub async fn claim_key_packages(
        &self,
        p: &Principal,
        id: Uuid,
        req: ClaimKeyPackagesRequest,
    ) -> ApiResult<ClaimedKeyPackages> {
        self.device_of(p).await?;
        self.member_conversation(p, id).await?;
        if req.device_ids.len() > 5000 {
            return Err(ApiError::validation("too many devices in one claim"));
        }
        let devices = self.store.conversation_devices(id).await?;
        let mut out = Vec::new();
        for want in &req.device_ids {
            let Some(d) = devices.iter().find(|d| d.device_id == *want) else {
                return Err(ApiError::validation(format!(
                    "device {want} is not waiting to join this conversation"
                )));
            };
            if d.state != DeviceState::PendingAdd {
                return Err(ApiError::validation(format!(
                    "device {want} is not waiting to join this conversation"
                )));
            }
            if let Some(kp) = self.store.claim_key_package((*want).into()).await? {
                out.push(ClaimedKeyPackage {
                    device_id: *want,
                    user_id: d.user_id.into(),
                    key_package: B64(kp),
                });
            }
        }
        Ok(ClaimedKeyPackages { key_packages: out })
    }
}
