//! A device's inbox: sync pages, acknowledgements, read marks, receipts and
//! the user's receipt preference.

use super::*;
use crate::caller::Caller;
use wardline_proto::sync::{InboxEntry, SharedAgain, SyncQuery, SyncResponse};

impl MessagingService {
    pub async fn sync(&self, p: &Principal, q: SyncQuery) -> ApiResult<SyncResponse> {
        let device = self.device_of(p).await?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=MAX_SYNC_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_SYNC_LIMIT}"
            )));
        }
        if q.after < 0 {
            return Err(ApiError::bad_request("after must not be negative"));
        }
        let now = self.clock.now();
        let rows = self
            .store
            .inbox_after(device.id, q.after, limit + 1, now)
            .await?;
        let more = rows.len() as i64 > limit;
        Ok(SyncResponse {
            entries: rows
                .into_iter()
                .take(limit as usize)
                .map(|r| self.entry(r))
                .collect::<ApiResult<_>>()?,
            more,
            acked: device.acked_seq,
            server_time: now,
        })
    }

    pub async fn inbox_after(
        &self,
        device: Uuid,
        after: i64,
        limit: i64,
    ) -> ApiResult<Vec<InboxEntry>> {
        self.store
            .inbox_after(device.into(), after, limit, self.clock.now())
            .await?
            .into_iter()
            .map(|r| self.entry(r))
            .collect()
    }

    pub async fn ack(&self, p: &Principal, up_to: i64) -> ApiResult<AckResponse> {
        let device = self.device_of(p).await?;
        self.ack_device(device.id.into(), up_to).await
    }

    /// An acknowledgement from a sync WebSocket: written with others within
    /// a moment (see [`acks`]); one beyond the inbox is ignored.
    pub fn queue_ack(&self, device: Uuid, up_to: i64) {
        if up_to >= 0 {
            self.acks.queue(device, up_to);
        }
    }

    pub async fn ack_device(&self, device: Uuid, up_to: i64) -> ApiResult<AckResponse> {
        if up_to < 0 {
            return Err(ApiError::validation("up_to must not be negative"));
        }
        match self
            .store
            .ack(device.into(), up_to, self.clock.now())
            .await?
        {
            Some(acked) => Ok(AckResponse { acked }),
            None => Err(ApiError::validation(
                "up_to is beyond the last entry handed to this device",
            )),
        }
    }

    /// Read receipts: only for messages shown to the person (issue 19,
    /// case 15); a watermark covers routine messages only.
    pub async fn mark_read(
        &self,
        p: &Caller,
        id: Uuid,
        req: ReadRequest,
    ) -> ApiResult<ReadResponse> {
        let mark = match (&req.message_ids[..], req.up_to_message_id) {
            ([], Some(up_to)) => ReadMark::UpTo(up_to),
            (ids, None) if !ids.is_empty() && ids.len() <= MAX_READ_IDS => ReadMark::Shown(ids),
            _ => {
                return Err(ApiError::validation(format!(
                    "give message_ids (1 to {MAX_READ_IDS} messages shown) or up_to_message_id, not both"
                )));
            }
        };
        let device = self.device_of(p).await?;
        // Reading a patient's thread is an access to that patient's
        // information: it is in their access report (issue 18, item 7).
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, &p.audit).await?;
        match self
            .store
            .mark_read(device.id, id, mark, self.clock.now())
            .await?
        {
            Some(marked) => Ok(ReadResponse { marked }),
            None => Err(ApiError::not_found("message in this device's inbox")),
        }
    }

    pub async fn receipts(
        &self,
        p: &Caller,
        id: Uuid,
        message: Uuid,
    ) -> ApiResult<MessageReceipts> {
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, &p.audit).await?;
        let m = match self.store.get_message(id, message).await {
            Err(StoreError::NotFound) => return Err(ApiError::not_found("message")),
            other => other?,
        };
        // A copy shared again is the original to its readers.
        let message = m.shared_again.unwrap_or(message);
        let mandatory = Self::receipts_mandatory(&self.policy(p.org_id).await?, &c);
        let rows = self.store.receipts(message).await?;
        // Every member is accounted for: those none of whose devices has it
        // are listed with why (issue 18, item 4).
        let devices = self.store.conversation_devices(id).await?;
        let not_received = self
            .store
            .conversation_members(id)
            .await?
            .into_iter()
            .filter(|u| Some(*u) != m.sender_user && !rows.iter().any(|r| r.user_id == *u))
            .map(|u| NotReceived {
                user_id: u.into(),
                reason: if devices.iter().any(|d| d.user_id == u) {
                    NotReceivedReason::JoinedLater
                } else {
                    NotReceivedReason::NoDevice
                },
            })
            .collect();
        Ok(MessageReceipts {
            message_id: message,
            priority: m.priority,
            not_received,
            receipts: rows
                .into_iter()
                .map(|r| Receipt {
                    user_id: r.user_id.into(),
                    device_id: r.device_id.into(),
                    delivered_at: r.delivered_at,
                    read_at: if mandatory || r.shares_read_receipts || r.user_id == p.user_id {
                        r.read_at
                    } else {
                        None
                    },
                })
                .collect(),
        })
    }

    pub async fn preferences(&self, p: &Principal) -> ApiResult<MessagingPreferences> {
        Ok(MessagingPreferences {
            share_read_receipts: self.store.share_read_receipts(p.user_id).await?,
        })
    }

    pub async fn set_preferences(
        &self,
        p: &Principal,
        prefs: MessagingPreferences,
    ) -> ApiResult<MessagingPreferences> {
        self.store
            .set_share_read_receipts(p.user_id, prefs.share_read_receipts)
            .await?;
        Ok(prefs)
    }
}

impl MessagingService {
    /// An inbox entry for the device, its body opened from the vault.
    fn entry(&self, r: InboxRow) -> ApiResult<InboxEntry> {
        let mut m = r.message;
        if let (Some(body), Some(key)) = (&m.body, &r.key) {
            let id = m.id.to_string();
            m.body = Some(Vault::open_bytes(
                &self.vault.unwrap_key(key)?,
                FieldRef {
                    table: "messages",
                    row_id: &id,
                    column: "body",
                },
                body,
            )?);
        }
        Ok(entry(r.seq, m))
    }
}

pub(super) fn entry(seq: i64, m: MessageRow) -> InboxEntry {
    InboxEntry {
        seq,
        message_id: m.id,
        conversation_id: m.conversation_id,
        kind: m.kind,
        sender_user: m.sender_user.map(Into::into),
        sender_device: m.sender_device.map(Into::into),
        epoch: m.epoch,
        priority: m.priority,
        created_at: m.created_at,
        mls: m.body.map(B64),
        expires_at: m.expires_at,
        recalls: m.recalls,
        // Written by the server from typed values only.
        // The notice payload column: an alert's or a history request's,
        // written by the server from typed values only.
        alert: (m.kind == MessageKind::Alert)
            .then(|| {
                m.alert
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok())
            })
            .flatten()
            .map(Box::new),
        history: (m.kind == MessageKind::History)
            .then(|| {
                m.alert
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok())
            })
            .flatten(),
        shared_again: m.shared_again.map(|o| SharedAgain {
            message_id: o,
            created_at: m.original_created_at.unwrap_or(m.created_at),
        }),
    }
}
