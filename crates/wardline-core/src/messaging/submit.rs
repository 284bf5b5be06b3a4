//! Accepting an MLS message: the framing and epoch checks, ordering and
//! fan-out to every member device's inbox, and the routing record of a
//! prioritised message.

use super::*;
use crate::caller::Caller;

impl MessagingService {
    pub async fn submit(
        &self,
        p: &Caller,
        id: Uuid,
        req: SubmitMessageRequest,
    ) -> ApiResult<SubmitMessageResponse> {
        let device = self.device_of(p).await?;
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, &p.audit).await?;
        let framing = mls::inspect_message(&req.mls.0)
            .map_err(|e| ApiError::bad_request(format!("mls: {e}")))?;
        if framing.group_id != mls::group_id(id).as_slice() {
            return Err(ApiError::bad_request(
                "mls: the message belongs to another conversation's group",
            ));
        }
        let want = match req.kind {
            MessageKind::Commit => FramedContent::Commit,
            MessageKind::Application => FramedContent::Application,
            _ => {
                return Err(ApiError::bad_request(
                    "kind must be commit or application; Welcomes travel with their commit",
                ));
            }
        };
        if framing.content != want {
            return Err(ApiError::bad_request(format!(
                "mls: kind is {} but the message is {}",
                req.kind.as_str(),
                framing.content.as_str()
            )));
        }
        if want == FramedContent::Application && !framing.encrypted {
            return Err(ApiError::bad_request(
                "mls: application messages must be encrypted (PrivateMessage)",
            ));
        }
        let is_commit = req.kind == MessageKind::Commit;
        if !is_commit
            && (req.welcome.is_some()
                || !req.added_devices.is_empty()
                || !req.removed_devices.is_empty())
        {
            return Err(ApiError::bad_request(
                "welcome, added_devices and removed_devices belong to commits",
            ));
        }
        if req.welcome.is_some() == req.added_devices.is_empty() {
            return Err(ApiError::bad_request(
                "a commit that adds devices carries their Welcome, and only then",
            ));
        }
        if let Some(w) = &req.welcome {
            mls::check_welcome(&w.0).map_err(|e| ApiError::bad_request(format!("welcome: {e}")))?;
        }
        let now = self.clock.now();
        let expires_at = if is_commit {
            if req.ttl_secs.is_some() {
                return Err(ApiError::bad_request(
                    "ttl_secs belongs to application messages",
                ));
            }
            None
        } else {
            let policy = self.lifecycle.lifecycle_policy(p.org_id).await?;
            crate::policy::lifecycle::message_ttl(&policy, &c.lifecycle, req.ttl_secs)?
                .map(|t| now + t)
        };
        // A copy shared again for members who joined later names the
        // submitter's own earlier message here, and keeps its identity: the
        // recipients see (acknowledge, recall, read) the original, at its
        // time and priority (issue 18, item 5).
        let original = match req.shared_again {
            None => None,
            Some(_) if is_commit => {
                return Err(ApiError::bad_request(
                    "shared_again belongs to application messages",
                ));
            }
            Some(named) => match self.store.get_message(id, named).await {
                Ok(m) if m.kind == MessageKind::Application && m.sender_user == Some(p.user_id) => {
                    // Gone for its readers: nothing to share (the
                    // sender's outbox drops the copy).
                    if m.recalled_at.is_some() {
                        return Err(ApiError::new(
                            ErrorCode::NotFound,
                            "shared_again names a recalled message",
                        ));
                    }
                    Some(m)
                }
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(ApiError::validation(
                        "shared_again names none of your messages in this conversation",
                    ));
                }
                Err(e) => return Err(e.into()),
            },
        };
        let hash = |b: &[u8]| Sha256::digest(b).to_vec();
        // Each body is sealed under its own data key, so that deleting the key
        // (retention, expiry, recall) destroys every copy of it.
        let mut keys = Vec::new();
        let mut seal = |id: Uuid, bytes: &[u8]| -> ApiResult<(Vec<u8>, String)> {
            let (row, key) = self.vault.new_key_row(p.org_id)?;
            let id = id.to_string();
            let sealed = Vault::seal_bytes(
                &key,
                FieldRef {
                    table: "messages",
                    row_id: &id,
                    column: "body",
                },
                bytes,
            );
            let dek = row.id.clone();
            keys.push(row);
            Ok((sealed, dek))
        };
        let (body, dek) = seal(req.message_id, &req.mls.0)?;
        let welcome_id = Uuid::new_v4();
        let welcome_sealed = req
            .welcome
            .as_ref()
            .map(|w| seal(welcome_id, &w.0))
            .transpose()?;
        let message = MessageRow {
            id: req.message_id,
            conversation_id: id,
            kind: req.kind,
            sender_user: Some(p.user_id),
            sender_device: Some(device.id),
            epoch: framing.epoch as i64,
            // A commit is plumbing, not a clinical message; a copy is what
            // its original was.
            priority: match &original {
                _ if is_commit => Priority::Routine,
                Some(o) => o.priority,
                None => req.priority,
            },
            body_hash: Some(hash(&req.mls.0)),
            body: Some(body),
            created_at: now,
            dek_id: Some(dek),
            expires_at,
            recalled_at: None,
            recalls: None,
            alert: None,
            // Naming a copy names its original.
            shared_again: original.as_ref().map(|o| o.shared_again.unwrap_or(o.id)),
            original_created_at: original
                .as_ref()
                .map(|o| o.original_created_at.unwrap_or(o.created_at)),
        };
        let welcome = req
            .welcome
            .zip(welcome_sealed)
            .map(|(w, (body, dek))| MessageRow {
                id: welcome_id,
                kind: MessageKind::Welcome,
                body_hash: Some(hash(&w.0)),
                body: Some(body),
                dek_id: Some(dek),
                expires_at: None,
                shared_again: None,
                original_created_at: None,
                ..message.clone()
            });
        // Web Push for a new clinical message (not plumbing, not a copy for
        // newcomers): its priority, nothing else.
        let push = (req.kind == MessageKind::Application && !is_commit && original.is_none())
            .then(|| crate::push::PushKind::of(req.priority));
        let routed = if is_commit || original.is_some() {
            // A copy for newcomers: its original carries the routing and the
            // escalation.
            None
        } else {
            self.plan_routed(p, &c, &message).await?
        };
        let outcome = self
            .store
            .submit(&Submission {
                message,
                welcome,
                added: req.added_devices.into_iter().map(Into::into).collect(),
                removed: req.removed_devices.into_iter().map(Into::into).collect(),
                keys,
                routed,
            })
            .await?;
        match outcome {
            SubmitOutcome::Accepted { epoch, recipients } => {
                self.wake(&recipients).await;
                if let Some(kind) = push {
                    let to = crate::push::Audience::AllBut(p.user_id);
                    self.push.send(&recipients, kind, req.message_id, to);
                }
                Ok(SubmitMessageResponse {
                    message_id: req.message_id,
                    epoch,
                    created_at: now,
                    duplicate: false,
                    expires_at,
                })
            }
            SubmitOutcome::Duplicate {
                epoch,
                created_at,
                expires_at,
            } => Ok(SubmitMessageResponse {
                message_id: req.message_id,
                epoch,
                created_at,
                duplicate: true,
                expires_at,
            }),
            SubmitOutcome::StaleEpoch { current } => Err(ApiError::new(
                ErrorCode::StaleEpoch,
                format!(
                    "the conversation is at epoch {current}, the message was made for epoch {}; process the inbox and retry",
                    framing.epoch
                ),
            )),
            SubmitOutcome::Replayed => Err(ApiError::new(
                ErrorCode::Replayed,
                "this MLS message was already delivered",
            )),
            SubmitOutcome::IdTaken => Err(ApiError::conflict(
                "message_id is already used by a different message",
            )),
            SubmitOutcome::NotMember => Err(ApiError::forbidden(
                "this device is not in the conversation's group (yet); wait for its Welcome",
            )),
            SubmitOutcome::WrongDevices(why) => Err(ApiError::validation(why)),
            SubmitOutcome::PendingRemovals => Err(ApiError::new(
                ErrorCode::MembershipPending,
                "a removed member's device is still in the group; commit its removal first",
            )),
        }
    }

    /// The routing record an application message gets (urgent, STAT, or in a
    /// conversation opened to page a role): see `routing::escalation`.
    pub(super) async fn plan_routed(
        &self,
        p: &Principal,
        c: &ConversationRow,
        m: &MessageRow,
    ) -> ApiResult<Option<wardline_store::routing::RoutedRow>> {
        if m.priority == Priority::Routine && c.role_id.is_none() {
            return Ok(None);
        }
        let policy = self.directory_store.get_org(p.org_id).await?.policy.routing;
        let role = match c.role_id {
            Some(r) => match self.routing.get_role(p.org_id, r).await {
                Ok(role) => Some(role),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let steps = crate::policy::routing::ladder(&policy, role.as_ref(), m.priority);
        let open = self.routing.open_in_conversation(c.id, m.priority).await?;
        let recipients = self
            .store
            .conversation_members(c.id)
            .await?
            .into_iter()
            .filter(|u| *u != p.user_id)
            .collect();
        Ok(crate::policy::routing::plan_routed(
            m.id,
            p.org_id,
            c.id,
            p.user_id,
            m.priority,
            role.map(|r| crate::policy::routing::RoleRoute {
                role_id: r.id,
                resolved_user: c.routed_user,
                resolved_via: c.routed_via.clone(),
                department_id: r.department_id,
            }),
            &steps,
            open.as_ref(),
            recipients,
            m.created_at,
        ))
    }
}
