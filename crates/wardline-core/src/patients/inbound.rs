//! What patients send back: inbound SMS (keywords change consent, replies
//! join the thread and are told to the staff who wrote) and the provider's
//! status callbacks.

use super::*;

impl PatientService {
    /// An SMS from `from` to the organisation's number (signature already
    /// checked). Keywords are honoured before anything else.
    pub async fn inbound(
        &self,
        org: OrgId,
        scope: &AuditScope,
        provider_id: &str,
        from: &str,
        body: &str,
    ) -> ApiResult<Inbound> {
        if provider_id.is_empty() || provider_id.len() > 64 {
            return Err(ApiError::bad_request("MessageSid must be 1-64 characters"));
        }
        // Seen and acted on as one: an id is "handled" only once what it
        // asked for is done (a STOP lost half-way is handled on the retry).
        if !self
            .store
            .claim_inbound(org, provider_id, self.clock.now())
            .await?
        {
            return Ok(Inbound::Duplicate);
        }
        let handled = async |what: Inbound| -> ApiResult<Inbound> {
            self.store
                .inbound_handled(org, provider_id, self.clock.now())
                .await?;
            Ok(what)
        };
        let Ok(from) = crate::phone::e164(from, None) else {
            return handled(Inbound::Ignored).await;
        };
        let policy = self.policy(org).await?;
        let phone_index = self.vault.index(org, "patient-phone", &from);
        let mut patients = Vec::new();
        for row in self.store.patients_by_phone(org, &phone_index).await? {
            patients.push(self.open_patient(row).await?);
        }
        if let Some(first) = patients.first() {
            // The patient texted: they are the actor.
            scope.actor_patient(org, first.row.id);
        }
        let language = patients
            .first()
            .map(|p| p.language.clone())
            .unwrap_or_else(|| "en".into());
        let now = self.clock.now();
        let kind = keyword(body);
        let (patients_ref, from_ref, index_ref, policy_ref, language_ref) =
            (&patients, &from, &phone_index, &policy, &language);
        let reply = |key: &'static str| async move {
            let t = self.template(org, key, language_ref).await?;
            let text = templates::render(&t.body, &self.server_values(policy_ref));
            self.enqueue(
                org,
                patients_ref.first(),
                from_ref,
                index_ref,
                &text,
                None,
                SmsKind::KeywordReply,
                Some(key),
                policy_ref,
            )
            .await
        };
        match kind {
            Some(Inbound::Stop) => {
                if self.store.opt_out(org, &phone_index, now).await? {
                    for p in &patients {
                        self.keyword_consent(p, ConsentAction::OptedOut, now)
                            .await?;
                    }
                    // One confirmation, and nothing after it.
                    reply(templates::KEYWORD_STOP).await?;
                }
                handled(Inbound::Stop).await
            }
            Some(Inbound::Start) => {
                if self.store.opt_in(org, &phone_index).await? {
                    for p in &patients {
                        self.keyword_consent(p, ConsentAction::OptedIn, now).await?;
                    }
                    reply(templates::KEYWORD_START).await?;
                }
                handled(Inbound::Start).await
            }
            Some(Inbound::Help) => {
                reply(templates::KEYWORD_HELP).await?;
                handled(Inbound::Help).await
            }
            _ => {
                if patients.is_empty() || self.store.is_opted_out(org, &phone_index).await? {
                    return handled(Inbound::Ignored).await;
                }
                let text: String = body.chars().take(1600).collect();
                let rows: Vec<PatientMessageRow> = patients
                    .iter()
                    .map(|p| {
                        let id = Uuid::new_v4();
                        PatientMessageRow {
                            id,
                            org_id: org,
                            patient_id: p.row.id,
                            direction: PatientMessageDirection::FromPatient,
                            author_user: None,
                            via: "sms".into(),
                            body_enc: seal(&p.key, "patient_messages", id, "body", &text),
                            client_sealed: false,
                            created_at: now,
                            read_at: None,
                        }
                    })
                    .collect();
                self.store
                    .insert_inbound_messages(org, provider_id, &rows, now)
                    .await?;
                for p in &patients {
                    self.tell_writers(org, p.row.id, now).await;
                }
                Ok(Inbound::Message)
            }
        }
    }

    pub(super) async fn keyword_consent(
        &self,
        p: &Opened,
        action: ConsentAction,
        at: i64,
    ) -> ApiResult<()> {
        Ok(self
            .store
            .insert_consent(&ConsentRow {
                id: Uuid::new_v4(),
                org_id: p.row.org_id,
                patient_id: p.row.id,
                scope: None,
                action,
                method: ConsentMethod::SmsKeyword,
                actor_kind: "patient".into(),
                actor_id: p.row.id.to_string(),
                at,
            })
            .await?)
    }

    /// A delivery status from the provider.
    pub async fn status_callback(
        &self,
        org: OrgId,
        scope: &AuditScope,
        provider_id: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> ApiResult<()> {
        // Every status the provider documents for a message's lifecycle.
        // Callbacks travel and are retried independently, so they arrive
        // late, twice and out of order: the store moves a status only
        // forward, and a terminal one never changes (real-world case 09 of
        // issue 19).
        let status = match status {
            "accepted" | "scheduled" | "queued" | "sending" | "sent" => SmsStatus::Sent,
            "delivered" | "read" | "partially_delivered" => SmsStatus::Delivered,
            "undelivered" => SmsStatus::Undelivered,
            "failed" => SmsStatus::Failed,
            "canceled" => SmsStatus::Cancelled,
            // Statuses of messages received, not sent: nothing to record.
            "receiving" | "received" => return Ok(()),
            _ => return Err(ApiError::validation("unknown MessageStatus")),
        };
        // An error code belongs to the status that carried it.
        let error = error_code
            .filter(|_| matches!(status, SmsStatus::Undelivered | SmsStatus::Failed))
            .map(|c| format!("carrier error {}", c.chars().take(16).collect::<String>()));
        match self
            .store
            .sms_status_by_provider(org, provider_id, status, error.as_deref(), self.clock.now())
            .await
        {
            Ok(row) => {
                scope.target("sms", row.id);
                if let Some(p) = row.patient_id {
                    scope.patient(&p.to_string());
                }
                scope.reason(status.as_str());
                Ok(())
            }
            Err(StoreError::NotFound) => Err(ApiError::not_found("message")),
            Err(e) => Err(e.into()),
        }
    }
}
