//! Sending to patients: the organisation's templates, the outbox entry with
//! the STOP → consent → quiet-hours checks, template sends, secure messages
//! (the SMS carries only a link), and staff alerts by SMS.

use super::*;
use crate::caller::Caller;

impl PatientService {
    /// Every template with what its SMS costs (the listing administrators see).
    pub async fn templates(&self, org: OrgId) -> ApiResult<Vec<Template>> {
        let practice_phone = self.policy(org).await?.practice_phone;
        let mut all = self.texts(org).await?;
        for t in &mut all {
            t.sms = templates::sms_size(&t.body, t.class, &practice_phone, &self.setup.public_url);
        }
        Ok(all)
    }

    /// Every template, built-in ones overridden by the organisation's own;
    /// without their cost (sends need the text, not the estimate).
    pub(super) async fn texts(&self, org: OrgId) -> ApiResult<Vec<Template>> {
        let own = self.store.templates(org).await?;
        let mut all: BTreeMap<(String, String), Template> = BTreeMap::new();
        for (key, lang, class, body) in templates::BUILT_IN {
            all.insert(
                (key.to_string(), lang.to_string()),
                Template {
                    key: key.to_string(),
                    language: lang.to_string(),
                    body: body.to_string(),
                    class: *class,
                    placeholders: templates::placeholders(body)?,
                    built_in: true,
                    sms: None,
                },
            );
        }
        for t in own {
            all.insert(
                (t.key.clone(), t.language.clone()),
                Template {
                    placeholders: templates::placeholders(&t.body)?,
                    sms: None,
                    key: t.key,
                    language: t.language,
                    body: t.body,
                    class: t.class,
                    built_in: false,
                },
            );
        }
        Ok(all.into_values().collect())
    }

    pub async fn put_template(
        &self,
        by: &Caller,
        key: &str,
        language: &str,
        req: PutTemplateRequest,
    ) -> ApiResult<Vec<Template>> {
        templates::validate(key, language, &req.body, req.class)?;
        // The text and class before, for the &by.audit event (a template is a
        // form with placeholders, never a patient's data).
        let before = self
            .texts(by.org_id)
            .await?
            .into_iter()
            .find(|t| t.key == key && t.language == language)
            .map(|t| serde_json::json!({"body": t.body, "class": t.class}));
        let after = serde_json::json!({"body": req.body, "class": req.class});
        self.store
            .put_template(&TemplateRow {
                org_id: by.org_id,
                key: key.to_owned(),
                language: language.to_owned(),
                body: req.body,
                class: req.class,
                updated_by: by.user_id.to_string(),
                updated_at: self.clock.now(),
            })
            .await?;
        by.audit
            .changed(&before.unwrap_or_else(|| serde_json::json!({})), &after);
        self.templates(by.org_id).await
    }

    /// The template in the patient's language, else English.
    pub(super) async fn template(
        &self,
        org: OrgId,
        key: &str,
        language: &str,
    ) -> ApiResult<Template> {
        let all = self.texts(org).await?;
        all.iter()
            .find(|t| t.key == key && t.language == language)
            .or_else(|| all.iter().find(|t| t.key == key && t.language == "en"))
            .cloned()
            .ok_or_else(|| ApiError::not_found("template"))
    }

    // ------------------------------------------------------------ sending

    /// Puts an SMS in the outbox. `quiet`: it waits for the end of quiet hours.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn enqueue(
        &self,
        org: OrgId,
        patient: Option<&Opened>,
        to: &str,
        phone_index: &str,
        body: &str,
        fragment: Option<&str>,
        kind: SmsKind,
        template: Option<&str>,
        policy: &PatientTextingPolicy,
    ) -> ApiResult<SmsRow> {
        let now = self.clock.now();
        let send_after = match (&policy.quiet_hours, kind) {
            (Some(q), SmsKind::Reminder | SmsKind::SecureNotice) => {
                crate::policy::patients::quiet_hours_end(q, now)?
            }
            _ => now,
        };
        let id = Uuid::new_v4();
        let (dek_id, key) = match patient {
            Some(p) => (p.row.dek_id.clone(), p.key.clone()),
            None => self.vault.new_record_key(Some(org)).await?,
        };
        let row = SmsRow {
            id,
            org_id: org,
            patient_id: patient.map(|p| p.row.id),
            dek_id,
            from_number: policy
                .sms_from
                .clone()
                .unwrap_or_else(|| self.setup.default_from.clone()),
            to_enc: seal(&key, "sms_outbox", id, "to", to),
            body_enc: seal(&key, "sms_outbox", id, "body", body),
            fragment_enc: fragment.map(|f| seal(&key, "sms_outbox", id, "fragment", f)),
            phone_index: phone_index.to_owned(),
            kind,
            template: template.map(str::to_owned),
            status: SmsStatus::Queued,
            attempts: 0,
            send_after,
            lease_until: None,
            provider_id: None,
            error: None,
            created_at: now,
            sent_at: None,
            updated_at: now,
        };
        self.store.enqueue_sms(&row).await?;
        if send_after <= now {
            self.outbox.notify_one();
        }
        Ok(row)
    }

    /// Texts a clinician about an unacknowledged urgent message (escalation):
    /// the caller writes a notice and a sign-in link, never content. Goes
    /// through the same outbox, opt-out check and gateway as patient texts.
    pub async fn staff_alert(&self, org: OrgId, phone: &str, body: &str) -> ApiResult<()> {
        let phone = crate::phone::e164(phone, None)?;
        let index = self.vault.index(org, "patient-phone", &phone);
        let policy = self.policy(org).await?;
        self.enqueue(
            org,
            None,
            &phone,
            &index,
            body,
            None,
            SmsKind::StaffAlert,
            None,
            &policy,
        )
        .await?;
        Ok(())
    }

    pub(super) fn server_values(&self, policy: &PatientTextingPolicy) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        v.insert("practice_phone".into(), policy.practice_phone.clone());
        v.insert(
            "expires_hours".into(),
            ((policy.link_ttl_secs + 3599) / 3600).to_string(),
        );
        v
    }

    /// Sends a template: a `no_phi` one as a plain SMS, a `phi` one as a
    /// secure message announced by a notice.
    pub async fn send_template(
        &self,
        by: &Caller,
        id: Uuid,
        req: SendTemplateRequest,
    ) -> ApiResult<SendOutcome> {
        if templates::SYSTEM.contains(&req.template.as_str()) {
            return Err(ApiError::validation(format!(
                "{} is sent by the server itself",
                req.template
            )));
        }
        let p = self.load(by.org_id, id).await?;
        by.audit.patient(&id.to_string());
        let t = self.template(by.org_id, &req.template, &p.language).await?;
        templates::check_params(&t.body, &req.params)?;
        let policy = self.policy(by.org_id).await?;
        let mut values = self.server_values(&policy);
        values.extend(req.params);
        let text = templates::render(&t.body, &values);
        match t.class {
            TemplateClass::NoPhi => {
                self.ensure_may_text(&p, ConsentScope::Reminders).await?;
                let sms = self
                    .enqueue(
                        by.org_id,
                        Some(&p),
                        &p.phone,
                        &p.row.phone_index,
                        &text,
                        None,
                        SmsKind::Reminder,
                        Some(&t.key),
                        &policy,
                    )
                    .await?;
                by.audit.target("sms", sms.id);
                Ok(SendOutcome {
                    sms: SmsRecord {
                        size: Some(sms_size::size(&text)),
                        ..sms_to_wire(&sms)
                    },
                    message_id: None,
                })
            }
            TemplateClass::Phi => {
                by.audit.reason("secure_message");
                self.send_secure_body(by, &p, SecureBody::Text(text), &policy)
                    .await
            }
        }
    }

    pub async fn send_secure(
        &self,
        by: &Caller,
        id: Uuid,
        req: SendSecureMessageRequest,
    ) -> ApiResult<SendOutcome> {
        let body = match (req.text, req.sealed) {
            (Some(text), None) => {
                let n = text.trim().chars().count();
                if n == 0 || n > 4000 {
                    return Err(ApiError::validation("text must be 1-4000 characters"));
                }
                SecureBody::Text(text.trim().to_owned())
            }
            (None, Some(sealed)) => {
                // 4000 characters of UTF-8 at most, plus the format's overhead.
                if sealed.ciphertext.0.len() < 30 || sealed.ciphertext.0.len() > 16 * 1024 {
                    return Err(ApiError::validation(
                        "sealed.ciphertext must be 30 bytes to 16 KiB",
                    ));
                }
                let key = sealed.key_fragment.strip_prefix("k=").unwrap_or("");
                if key.len() != 43
                    || !key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(ApiError::validation(
                        "sealed.key_fragment must be k= and a 256-bit key in unpadded base64url",
                    ));
                }
                SecureBody::Sealed(sealed.ciphertext.0, sealed.key_fragment)
            }
            _ => {
                return Err(ApiError::validation("give exactly one of text and sealed"));
            }
        };
        let p = self.load(by.org_id, id).await?;
        by.audit.patient(&id.to_string());
        if matches!(body, SecureBody::Sealed(..)) {
            by.audit.reason("client_sealed");
        }
        let policy = self.policy(by.org_id).await?;
        // The organisation decides who reads what a patient is told.
        match (policy.secure_messages, &body) {
            (SecureMessageReaders::Team, SecureBody::Sealed(..)) => {
                return Err(ApiError::validation(
                    "the organisation's policy makes secure messages team-readable: send text, not sealed (patients.secure_messages = team)",
                ));
            }
            (SecureMessageReaders::Writer, SecureBody::Text(..)) => {
                return Err(ApiError::validation(
                    "the organisation's policy has secure messages sealed on the writer's device: send sealed, not text (patients.secure_messages = writer)",
                ));
            }
            _ => {}
        }
        self.send_secure_body(by, &p, body, &policy).await
    }

    pub(super) async fn send_secure_body(
        &self,
        by: &Caller,
        p: &Opened,
        body: SecureBody,
        policy: &PatientTextingPolicy,
    ) -> ApiResult<SendOutcome> {
        self.ensure_may_text(p, ConsentScope::SecureMessages)
            .await?;
        let now = self.clock.now();
        let message_id = Uuid::new_v4();
        let (body_enc, client_sealed, fragment) = match &body {
            SecureBody::Text(text) => (
                seal(&p.key, "patient_messages", message_id, "body", text),
                false,
                None,
            ),
            SecureBody::Sealed(ciphertext, fragment) => (
                p.key.seal(ciphertext, &message_context(message_id)),
                true,
                Some(fragment.as_str()),
            ),
        };
        self.store
            .insert_patient_message(&PatientMessageRow {
                id: message_id,
                org_id: p.row.org_id,
                patient_id: p.row.id,
                direction: PatientMessageDirection::ToPatient,
                author_user: Some(by.user_id.into()),
                via: "staff".into(),
                body_enc,
                client_sealed,
                created_at: now,
                read_at: None,
            })
            .await?;
        let link = self.new_link(p, by.user_id.to_string(), policy).await?;
        let notice = self
            .template(p.row.org_id, templates::NEW_SECURE_MESSAGE, &p.language)
            .await?;
        let mut values = self.server_values(policy);
        values.insert("link".into(), link);
        let text = templates::render(&notice.body, &values);
        let sent = match fragment {
            Some(f) => delivery::with_fragment(&text, &self.setup.public_url, f),
            None => text.clone(),
        };
        let sms = self
            .enqueue(
                p.row.org_id,
                Some(p),
                &p.phone,
                &p.row.phone_index,
                &text,
                fragment,
                SmsKind::SecureNotice,
                Some(templates::NEW_SECURE_MESSAGE),
                policy,
            )
            .await?;
        by.audit.target("patient_message", message_id);
        Ok(SendOutcome {
            sms: SmsRecord {
                size: Some(sms_size::size(&sent)),
                ..sms_to_wire(&sms)
            },
            message_id: Some(message_id),
        })
    }
}
