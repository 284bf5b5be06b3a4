//! The caller's device's Web Push subscription (see [`crate::push`]): what to
//! subscribe with, keeping the browser's subscription, forgetting it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wardline_proto::messaging::{PushSettings, PushSubscriptionRequest};
use wardline_store::messaging::PushSubscriptionRow;

use super::*;

impl MessagingService {
    /// The server's VAPID key and whether the caller's device is subscribed.
    pub async fn push_settings(&self, p: &Principal) -> ApiResult<PushSettings> {
        let device = self.registered_device(p).await?;
        self.push_settings_of(device.id).await
    }

    /// What [`MessagingService::push_settings`] answers, for a device already looked up.
    async fn push_settings_of(&self, device: DeviceId) -> ApiResult<PushSettings> {
        let subscribed = self
            .store
            .live_push_subscription(device, self.clock.now())
            .await?
            .is_some();
        Ok(PushSettings {
            vapid_public_key: self.push.public_key().map(str::to_owned),
            subscribed,
        })
    }

    /// Keeps the browser's subscription for the caller's device (replacing
    /// the one it had). Refused when push is off (409) or for an endpoint
    /// that is not a configured push service, a key that is not a P-256
    /// point or a secret that is not 16 bytes (422).
    pub async fn subscribe_push(
        &self,
        p: &Principal,
        req: PushSubscriptionRequest,
    ) -> ApiResult<PushSettings> {
        let device = self.registered_device(p).await?;
        self.push.check_endpoint(&req.endpoint)?;
        let p256dh = URL_SAFE_NO_PAD
            .decode(req.keys.p256dh.trim_end_matches('='))
            .ok()
            .filter(|k| web_push_native::p256::PublicKey::from_sec1_bytes(k).is_ok())
            .ok_or_else(|| {
                ApiError::validation("keys.p256dh: not a P-256 public key in base64url")
            })?;
        let auth = URL_SAFE_NO_PAD
            .decode(req.keys.auth.trim_end_matches('='))
            .ok()
            .filter(|a| a.len() == 16)
            .ok_or_else(|| ApiError::validation("keys.auth: not 16 bytes in base64url"))?;
        self.store
            .put_push_subscription(&PushSubscriptionRow {
                device_id: device.id,
                org_id: p.org_id,
                user_id: p.user_id,
                endpoint: req.endpoint,
                p256dh,
                auth,
                created_at: self.clock.now(),
            })
            .await?;
        self.push_settings_of(device.id).await
    }

    /// Forgets the caller's device's subscription (no error if it had none).
    pub async fn unsubscribe_push(&self, p: &Principal) -> ApiResult<PushSettings> {
        let device = self.registered_device(p).await?;
        self.store.delete_push_subscription(device.id).await?;
        self.push_settings_of(device.id).await
    }
}
