//! The lifecycle policy and a conversation's own settings (retention and
//! lifespan, never beyond the policy).

use super::*;

impl LifecycleService {
    pub async fn policy(&self, org: OrgId) -> ApiResult<LifecyclePolicy> {
        Ok(self.store.lifecycle_policy(org).await?)
    }

    pub async fn set_policy(
        &self,
        org: OrgId,
        p: LifecyclePolicy,
        audit: &AuditScope,
    ) -> ApiResult<LifecyclePolicy> {
        crate::policy::lifecycle::validate_policy(&p)?;
        let before = self.store.lifecycle_policy(org).await?;
        self.store.set_lifecycle_policy(org, &p).await?;
        audit.changed(&before, &p);
        Ok(p)
    }

    /// Sets a conversation's own retention and lifespan. Members may set the
    /// lifespan; retention is the compliance side's (`lifecycle_manage`).
    pub async fn set_conversation_lifecycle(
        &self,
        p: &Caller,
        id: Uuid,
        own: ConversationLifecycle,
    ) -> ApiResult<wardline_proto::messaging::Conversation> {
        p.audit.target("conversation", id);
        let c = found(
            self.messages.get_conversation(p.org_id, id).await,
            "conversation",
        )?;
        let member = self.messages.is_member(id, p.user_id).await?;
        if !member && !p.has(Permission::LifecycleManage) {
            return Err(ApiError::not_found("conversation"));
        }
        if own.retention != c.lifecycle.retention {
            p.authorize(Permission::LifecycleManage)?;
        }
        let policy = self.store.lifecycle_policy(p.org_id).await?;
        if let Some(r) = own.retention {
            check_retention(r, "retention", policy.minimum_days)?;
        }
        // Devices delete their own copies when a lifespan ends, where no
        // server-side hold reaches: under a legal hold no lifespan is set
        // (issue 18, item 8).
        if own.message_ttl_secs.is_some() && own.message_ttl_secs != c.lifecycle.message_ttl_secs {
            let holds = Holds::of(&self.store.list_holds(p.org_id).await?);
            let held = self
                .store
                .lifecycle_conversations(p.org_id)
                .await?
                .iter()
                .any(|lc| lc.id == id && holds.conversation(lc));
            if held {
                return Err(ApiError::conflict(
                    "a legal hold covers this conversation: its messages cannot be given a lifespan until the hold is released",
                ));
            }
        }
        if let Some(t) = own.message_ttl_secs
            && !(60..=policy.max_ttl_secs).contains(&t)
        {
            return Err(ApiError::validation(format!(
                "message_ttl_secs must be between 60 and {} (organisation policy)",
                policy.max_ttl_secs
            )));
        }
        self.store
            .set_conversation_lifecycle(p.org_id, id, &own)
            .await?;
        p.audit.changed(&c.lifecycle, &own);
        let c = self.messages.get_conversation(p.org_id, id).await?;
        self.messaging.to_wire(&c, Some(&p.audit)).await
    }
}
