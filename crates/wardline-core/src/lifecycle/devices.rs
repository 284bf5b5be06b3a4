//! Remote wipe of lost devices: the order, the sessions it ends, the
//! conversations the device leaves, and the device's confirmation.

use super::*;

impl LifecycleService {
    /// Marks a device lost: its sessions end now, it is retired and taken out
    /// of every conversation (members' clients commit its removal), and the
    /// next time it calls the server it is told to erase itself.
    pub async fn wipe(
        &self,
        p: &Caller,
        device: DeviceId,
        req: WipeDeviceRequest,
    ) -> ApiResult<DeviceWipe> {
        p.audit.target("device", device);
        let reason = req.reason.trim();
        check_text(reason, "reason", 500)?;
        let d = found(self.messages.get_device(p.org_id, device).await, "device")?;
        if d.user_id != p.user_id {
            p.authorize(Permission::DevicesManage)?;
        }
        self.wipe_device(p.org_id, d.user_id, device, p.user_id, reason)
            .await
    }

    /// Wipes every device of a departing user (selective wipe on offboarding).
    pub async fn wipe_user_devices(
        &self,
        org: OrgId,
        user: UserId,
        actor: UserId,
    ) -> ApiResult<Vec<DeviceWipe>> {
        let mut out = Vec::new();
        for d in self.messages.list_user_devices(org, user).await? {
            match self
                .wipe_device(org, user, d.device.id, actor, "user deprovisioned")
                .await
            {
                Ok(w) => out.push(w),
                Err(e) if e.code == ErrorCode::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn wipe_device(
        &self,
        org: OrgId,
        user: UserId,
        device: DeviceId,
        actor: UserId,
        reason: &str,
    ) -> ApiResult<DeviceWipe> {
        let now = self.clock.now();
        let mut row = WipeRow {
            device_id: device,
            org_id: org,
            user_id: user,
            requested_by: actor,
            requested_at: now,
            reason: reason.to_owned(),
            sessions_ended: 0,
            conversations: 0,
            confirmed_at: None,
        };
        row.sessions_ended = match self.store.begin_wipe(&row).await {
            Ok(n) => n,
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::conflict("this device was wiped already"));
            }
            Err(e) => return Err(e.into()),
        };
        for conv in self.store.device_conversations(device).await? {
            let c = self.messages.get_conversation(org, conv).await?;
            let notice = MessageRow::membership_notice(conv, c.epoch, actor, now);
            let (changed, woken) = self
                .store
                .retire_from_conversation(conv, device, &notice)
                .await?;
            if changed {
                row.conversations += 1;
                self.messaging.wake(&woken).await;
            }
        }
        self.store
            .set_wipe_conversations(device, row.conversations)
            .await?;
        Ok(wire_wipe(&row))
    }

    pub async fn wipes(&self, p: &Principal) -> ApiResult<DeviceWipeList> {
        let user = (!p.has(Permission::DevicesManage)).then_some(p.user_id);
        Ok(DeviceWipeList {
            wipes: self
                .store
                .list_wipes(p.org_id, user)
                .await?
                .iter()
                .map(wire_wipe)
                .collect(),
        })
    }

    /// A user's devices as an administrator sees them (the route authorizes:
    /// one's own, or `devices_manage`): devices in use, then wiped ones.
    /// Errors: 404 for a user not in the organisation.
    pub async fn managed_devices(
        &self,
        p: &Principal,
        user: UserId,
    ) -> ApiResult<ManagedDeviceList> {
        found(self.directory.get_user(p.org_id, user).await, "user")?;
        let policy = self.directory.get_org(p.org_id).await?.policy.devices;
        let contacts: std::collections::HashMap<DeviceId, i64> = self
            .directory
            .device_last_contacts(p.org_id, user)
            .await?
            .into_iter()
            .collect();
        let mut devices: Vec<ManagedDevice> = self
            .messages
            .list_user_devices(p.org_id, user)
            .await?
            .into_iter()
            .map(|s| ManagedDevice {
                id: s.device.id.into(),
                user_id: user.into(),
                refusals: policy.refusals(s.device.posture.as_ref()),
                name: s.device.name,
                created_at: s.device.created_at,
                posture: s.device.posture,
                key_packages_available: s.available,
                last_contact_at: contacts.get(&s.device.id).copied(),
                wipe: None,
            })
            .collect();
        let mut wipes = self.store.list_wipes(p.org_id, Some(user)).await?;
        wipes.sort_by_key(|w| std::cmp::Reverse(w.requested_at));
        for w in &wipes {
            let Some(d) = self.messages.get_device(p.org_id, w.device_id).await.ok() else {
                continue;
            };
            devices.push(ManagedDevice {
                id: d.id.into(),
                user_id: user.into(),
                name: d.name,
                created_at: d.created_at,
                posture: d.posture,
                refusals: Vec::new(),
                key_packages_available: 0,
                last_contact_at: contacts.get(&d.id).copied(),
                wipe: Some(wire_wipe(w)),
            });
        }
        Ok(ManagedDeviceList { devices })
    }

    /// The confirmation of the wiped device's own session (`session` is one
    /// the wipe ended: [`crate::auth::AuthService::wiped_session`]).
    pub async fn confirm_wipe(
        &self,
        session: &wardline_store::SessionRow,
        confirmation: WipeConfirmation,
    ) -> ApiResult<DeviceWipe> {
        let (org, user, device) = (session.org_id, session.user_id, session.device_id);
        if !confirmation.erased {
            return Err(ApiError::validation(
                "confirm only after erasing the local store and keys (erased: true)",
            ));
        }
        self.store
            .confirm_wipe(org, user, device, self.clock.now())
            .await?;
        let w = self
            .store
            .get_wipe(org, user, device)
            .await?
            .ok_or_else(|| ApiError::not_found("device wipe"))?;
        Ok(wire_wipe(&w))
    }
}

fn wire_wipe(w: &WipeRow) -> DeviceWipe {
    DeviceWipe {
        device_id: w.device_id.into(),
        user_id: w.user_id.into(),
        status: if w.confirmed_at.is_some() {
            WipeStatus::Confirmed
        } else {
            WipeStatus::Pending
        },
        requested_by: w.requested_by.into(),
        requested_at: w.requested_at,
        reason: w.reason.clone(),
        confirmed_at: w.confirmed_at,
        sessions_ended: w.sessions_ended,
        conversations: w.conversations,
    }
}
