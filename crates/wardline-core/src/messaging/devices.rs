//! Devices: registration with checked key packages, history for a new device,
//! listing, key-package uploads, status and posture.

use super::*;
use crate::caller::Caller;

impl MessagingService {
    pub(super) fn check_key_packages(
        p: &Principal,
        identity_key: &[u8],
        kps: &[B64],
        last_resort: Option<&B64>,
    ) -> ApiResult<Vec<(Vec<u8>, bool)>> {
        if kps.len() > MAX_KEY_PACKAGES_PER_UPLOAD {
            return Err(ApiError::validation(format!(
                "at most {MAX_KEY_PACKAGES_PER_UPLOAD} key packages per upload"
            )));
        }
        let mut out = Vec::with_capacity(kps.len() + 1);
        let all = kps
            .iter()
            .map(|k| (k, false))
            .chain(last_resort.map(|k| (k, true)));
        for (i, (kp, want_last_resort)) in all.enumerate() {
            if kp.0.len() > MAX_KEY_PACKAGE_BYTES {
                return Err(ApiError::validation(format!(
                    "key package {i} is larger than {MAX_KEY_PACKAGE_BYTES} bytes"
                )));
            }
            let checked = mls::check_key_package(&kp.0)
                .map_err(|e| ApiError::validation(format!("key package {i}: {e}")))?;
            if (checked.user, checked.device) != (p.user_id.into(), p.device_id.into()) {
                return Err(ApiError::validation(format!(
                    "key package {i}: its credential names another user or device"
                )));
            }
            if checked.signature_key != identity_key {
                return Err(ApiError::validation(format!(
                    "key package {i}: not signed by this device's identity key"
                )));
            }
            if checked.last_resort != want_last_resort {
                return Err(ApiError::validation(format!(
                    "key package {i}: {}",
                    if want_last_resort {
                        "last_resort must carry the last-resort extension"
                    } else {
                        "one-use key packages must not carry the last-resort extension"
                    }
                )));
            }
            out.push((kp.0.clone(), want_last_resort));
        }
        Ok(out)
    }

    pub async fn register_device(
        &self,
        p: &Caller,
        req: RegisterDeviceRequest,
    ) -> ApiResult<Device> {
        p.audit.target("device", p.device_id);
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(ApiError::validation("name must be 1 to 64 characters"));
        }
        if req.identity_key.0.len() != 32 {
            return Err(ApiError::validation(
                "identity_key must be a 32-byte Ed25519 public key",
            ));
        }
        let kps = Self::check_key_packages(
            p,
            &req.identity_key.0,
            &req.key_packages,
            Some(&req.last_resort),
        )?;
        let now = self.clock.now();
        let row = DeviceRow {
            id: p.device_id,
            org_id: p.org_id,
            user_id: p.user_id,
            name: name.to_owned(),
            identity_key: req.identity_key.0,
            created_at: now,
            retired_at: None,
            inbox_seq: 0,
            acked_seq: 0,
            posture: None,
        };
        let woken = self.store.insert_device(&row, &kps).await.map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "this device is already registered; upload key packages with POST /api/v1/devices/key-packages",
            ),
            e => e.into(),
        })?;
        self.wake(&woken).await;
        // The new device (the user's first, or another one) joins the user's
        // conversations from now on: the members' devices share the recent
        // history with it (issue 18, item 4).
        let days = self.policy(p.org_id).await?.history_days;
        for c in self.store.user_conversations(p.org_id, p.user_id).await? {
            self.request_history_of(p.org_id, c.id, p.user_id, Some(p.device_id), days)
                .await?;
        }
        // Publish the identity key in the tamper-evident trail, so that a
        // device added behind a user's back would show there for good.
        p.audit.also(
            wardline_proto::audit::AuditAction::DeviceRegister,
            "identity_key_sha256",
            hex::encode(Sha256::digest(&row.identity_key)),
        );
        Ok(Device {
            id: row.id.into(),
            user_id: row.user_id.into(),
            name: row.name,
            identity_key: B64(row.identity_key),
            created_at: now,
            key_packages_available: kps.iter().filter(|(_, lr)| !lr).count() as i64,
            has_last_resort: true,
        })
    }

    /// Asks the members' devices to share their recent messages again with a
    /// newcomer — `user`, who joined the conversation, or `device`, their
    /// first or new device (MLS gives a newcomer nothing from before): a
    /// server entry naming them, no content. How far back is the
    /// organisation's `messaging.history_days`.
    pub async fn request_history(
        &self,
        org: OrgId,
        conversation: Uuid,
        user: UserId,
        device: Option<DeviceId>,
    ) -> ApiResult<()> {
        let days = self.policy(org).await?.history_days;
        self.request_history_of(org, conversation, user, device, days)
            .await
    }

    /// [`MessagingService::request_history`] with the policy's span already read.
    pub(super) async fn request_history_of(
        &self,
        org: OrgId,
        conversation: Uuid,
        user: UserId,
        device: Option<DeviceId>,
        days: i64,
    ) -> ApiResult<()> {
        if days == 0 {
            return Ok(());
        }
        let c = self.store.get_conversation(org, conversation).await?;
        // Every device already in the group shares what it sent: the
        // newcomer's other devices too when it is a new device.
        let devices: Vec<DeviceId> = self
            .store
            .conversation_devices(conversation)
            .await?
            .into_iter()
            .filter(|d| {
                d.state == DeviceState::Member
                    && match device {
                        Some(new) => d.device_id != new,
                        None => d.user_id != user,
                    }
            })
            .map(|d| d.device_id)
            .collect();
        if devices.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let notice = wardline_proto::routing::HistoryNotice {
            user: user.into(),
            since: now - days * 86_400,
            device: device.map(Into::into),
        };
        let row = MessageRow {
            alert: Some(serde_json::to_string(&notice).expect("notice serialises")),
            ..MessageRow::notice(MessageKind::History, conversation, c.epoch, user, now)
        };
        let woken = self.routing.insert_notice(&row, &devices).await?;
        self.wake(&woken).await;
        Ok(())
    }

    pub async fn list_devices(&self, org: OrgId, user: UserId) -> ApiResult<DeviceList> {
        let rows = self.store.list_user_devices(org, user).await?;
        Ok(DeviceList {
            devices: rows
                .into_iter()
                .map(|s| Device {
                    id: s.device.id.into(),
                    user_id: s.device.user_id.into(),
                    name: s.device.name,
                    identity_key: B64(s.device.identity_key),
                    created_at: s.device.created_at,
                    key_packages_available: s.available,
                    has_last_resort: s.has_last_resort,
                })
                .collect(),
        })
    }

    pub async fn upload_key_packages(
        &self,
        p: &Principal,
        req: UploadKeyPackagesRequest,
    ) -> ApiResult<DeviceList> {
        let device = self.device_of(p).await?;
        let kps = Self::check_key_packages(
            p,
            &device.identity_key,
            &req.key_packages,
            req.last_resort.as_ref(),
        )?;
        self.store
            .add_key_packages(device.id, &kps, self.clock.now())
            .await?;
        self.list_devices(p.org_id, p.user_id).await
    }

    /// The device policy and whether the caller's device meets it (a device
    /// not yet registered sees the policy, e.g. the PIN length it needs).
    pub async fn device_status(&self, p: &Principal) -> ApiResult<DeviceStatus> {
        let policy = self.directory_store.get_org(p.org_id).await?.policy.devices;
        let posture = match self.registered_device(p).await {
            Ok(d) => d.posture,
            Err(e) if e.code == ErrorCode::DeviceNotRegistered => None,
            Err(e) => return Err(e),
        };
        let refusals = policy.refusals(posture.as_ref());
        Ok(DeviceStatus {
            allowed: refusals.is_empty(),
            refusals,
            posture,
            policy,
        })
    }

    /// Records what the caller's device reports about itself; answers with
    /// whether it now meets the policy.
    pub async fn report_posture(
        &self,
        p: &Principal,
        posture: DevicePosture,
    ) -> ApiResult<DeviceStatus> {
        let ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 32;
        if !ok(&posture.platform) || !ok(&posture.os_version) {
            return Err(ApiError::validation(
                "platform and os_version must be 1 to 32 characters",
            ));
        }
        let d = self.registered_device(p).await?;
        let posture = DevicePosture {
            platform: posture.platform.trim().to_lowercase(),
            os_version: posture.os_version.trim().to_owned(),
            compromised: posture.compromised,
        };
        self.store
            .set_posture(d.id, &posture, self.clock.now())
            .await?;
        self.device_status(p).await
    }
}
