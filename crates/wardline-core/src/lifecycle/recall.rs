//! Recall of a message: every device deletes it, within the policy's window
//! (an administrator at any time).

use super::*;

impl LifecycleService {
    pub async fn recall(
        &self,
        p: &Caller,
        conversation: Uuid,
        message: Uuid,
    ) -> ApiResult<RecallResult> {
        p.audit.target("message", message);
        let c = found(
            self.messages.get_conversation(p.org_id, conversation).await,
            "conversation",
        )?;
        let admin = p.has(Permission::MessagesRecall);
        if !admin && !self.messages.is_member(conversation, p.user_id).await? {
            return Err(ApiError::not_found("conversation"));
        }
        self.messaging.tag_patient(&c, &p.audit).await?;
        let m = match self.messages.get_message(conversation, message).await {
            Ok(m) if m.kind == MessageKind::Application => m,
            Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::not_found("message")),
            Err(e) => return Err(e.into()),
        };
        if m.recalled_at.is_some() {
            return Err(ApiError::conflict("this message was recalled already"));
        }
        let policy = self.store.lifecycle_policy(p.org_id).await?;
        let now = self.clock.now();
        if !admin {
            if m.sender_user != Some(p.user_id) {
                return Err(ApiError::forbidden(
                    "only the sender (or an administrator) can recall a message",
                ));
            }
            if now - m.created_at > policy.recall_window_secs {
                return Err(ApiError::forbidden(format!(
                    "the recall window ({} seconds after sending) has passed; ask an administrator",
                    policy.recall_window_secs
                )));
            }
        }
        let holds = Holds::of(&self.store.list_holds(p.org_id).await?);
        let lc = LifecycleConversation {
            id: conversation,
            lifecycle: c.lifecycle.clone(),
            patient_ref_bidx: c.patient_ref_bidx.clone(),
            members: self.messages.conversation_members(conversation).await?,
        };
        let held = holds.conversation(&lc) || holds.sender(m.sender_user);
        let server_copy = if held {
            ServerCopy::KeptUnderLegalHold
        } else if within_minimum(&policy, m.created_at, now) {
            ServerCopy::KeptForRetentionMinimum
        } else {
            ServerCopy::Deleted
        };
        let recipients = self
            .messages
            .receipts(message)
            .await?
            .into_iter()
            .map(|r| ReadBeforeRecall {
                user_id: r.user_id.into(),
                device_id: r.device_id.into(),
                delivered_at: r.delivered_at,
                read_at: r.read_at,
            })
            .collect();
        let notice = MessageRow {
            recalls: Some(message),
            ..MessageRow::notice(MessageKind::Recall, conversation, c.epoch, p.user_id, now)
        };
        let Some(woken) = self
            .store
            .recall(
                conversation,
                message,
                server_copy == ServerCopy::Deleted,
                &notice,
            )
            .await?
        else {
            return Err(ApiError::conflict("this message was recalled already"));
        };
        let devices_notified = woken.len() as i64;
        self.messaging.wake(&woken).await;
        Ok(RecallResult {
            message_id: message,
            recalled_at: now,
            recipients,
            server_copy,
            devices_notified,
        })
    }
}
