//! Patient records and their consent history: creation, listing, viewing
//! (audited), consent changes, and the check before anything is texted.

use super::*;
use crate::caller::Caller;

impl PatientService {
    pub async fn create(&self, by: &Caller, req: CreatePatientRequest) -> ApiResult<Patient> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ApiError::validation("name must be 1-200 characters"));
        }
        validate_dob(&req.date_of_birth)?;
        let region = self.policy(by.org_id).await?.default_region;
        let phone = crate::phone::e164(&req.phone, region.as_deref())?;
        let language = req.language.unwrap_or_else(|| "en".into());
        validate_language(&language)?;
        let mrn = req
            .mrn
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
        if let Some(m) = &mrn
            && (m.chars().count() > 64 || m.chars().any(char::is_control))
        {
            return Err(ApiError::validation("mrn is at most 64 characters"));
        }
        let id = Uuid::new_v4();
        let (dek_id, key) = self.vault.new_record_key(Some(by.org_id)).await?;
        let t = "patients";
        let row = PatientRow {
            id,
            org_id: by.org_id,
            dek_id,
            name_enc: seal(&key, t, id, "name", name),
            dob_enc: seal(&key, t, id, "date_of_birth", &req.date_of_birth),
            mrn_enc: mrn.as_ref().map(|m| seal(&key, t, id, "mrn", m)),
            phone_enc: seal(&key, t, id, "phone", &phone),
            language_enc: seal(&key, t, id, "language", &language),
            phone_index: self.vault.index(by.org_id, "patient-phone", &phone),
            mrn_index: mrn
                .as_ref()
                .map(|m| self.vault.index(by.org_id, "patient-mrn", m)),
            created_by: by.user_id.to_string(),
            created_at: self.clock.now(),
        };
        match self.store.insert_patient(&row).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::conflict("a patient with this MRN already exists"));
            }
            Err(e) => return Err(e.into()),
        }
        by.audit.target("patient", id);
        by.audit.patient(&id.to_string());
        let opened = self.open_patient(row).await?;
        let secure = self.policy(by.org_id).await?.secure_messages;
        self.to_wire(&opened, secure).await
    }

    pub async fn list(&self, by: &Principal) -> ApiResult<Vec<Patient>> {
        let mut out = Vec::new();
        let secure = self.policy(by.org_id).await?.secure_messages;
        for row in self.store.list_patients(by.org_id).await? {
            let p = self.open_patient(row).await?;
            out.push(self.to_wire(&p, secure).await?);
        }
        Ok(out)
    }

    pub async fn view(&self, by: &Caller, id: Uuid) -> ApiResult<Patient> {
        let p = self.load(by.org_id, id).await?;
        by.audit.patient(&id.to_string());
        let secure = self.policy(by.org_id).await?.secure_messages;
        self.to_wire(&p, secure).await
    }

    // ------------------------------------------------------------ consent

    pub async fn record_consent(
        &self,
        by: &Caller,
        id: Uuid,
        req: RecordConsentRequest,
    ) -> ApiResult<ConsentHistory> {
        if req.method == ConsentMethod::SmsKeyword {
            return Err(ApiError::validation(
                "sms_keyword consent is recorded only from the patient's own texts",
            ));
        }
        let p = self.load(by.org_id, id).await?;
        by.audit.patient(&id.to_string());
        self.store
            .insert_consent(&ConsentRow {
                id: Uuid::new_v4(),
                org_id: by.org_id,
                patient_id: id,
                scope: Some(req.scope),
                action: if req.granted {
                    ConsentAction::Granted
                } else {
                    ConsentAction::Revoked
                },
                method: req.method,
                actor_kind: "user".into(),
                actor_id: by.user_id.to_string(),
                at: self.clock.now(),
            })
            .await?;
        by.audit
            .reason(if req.granted { "granted" } else { "revoked" });
        self.history(&p).await
    }

    pub async fn consent_history(&self, by: &Caller, id: Uuid) -> ApiResult<ConsentHistory> {
        let p = self.load(by.org_id, id).await?;
        by.audit.patient(&id.to_string());
        self.history(&p).await
    }

    pub(super) async fn history(&self, p: &Opened) -> ApiResult<ConsentHistory> {
        let rows = self.store.consents(p.row.org_id, p.row.id).await?;
        Ok(ConsentHistory {
            patient_id: p.row.id,
            consent: consent_now(&rows),
            sms_opted_out: self
                .store
                .is_opted_out(p.row.org_id, &p.row.phone_index)
                .await?,
            events: rows
                .into_iter()
                .map(|c| ConsentEvent {
                    id: c.id,
                    scope: c.scope,
                    action: c.action,
                    method: c.method,
                    recorded_by_kind: c.actor_kind,
                    recorded_by: c.actor_id,
                    at: c.at,
                })
                .collect(),
        })
    }

    /// The checks every send makes, in the order the carriers' rules and
    /// consent ask for: STOP first, then the patient's consent.
    pub(super) async fn ensure_may_text(&self, p: &Opened, scope: ConsentScope) -> ApiResult<()> {
        if self
            .store
            .is_opted_out(p.row.org_id, &p.row.phone_index)
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::PatientOptedOut,
                "this patient's number replied STOP: no texts are sent to it until the patient texts START",
            ));
        }
        if !consent_now(&self.store.consents(p.row.org_id, p.row.id).await?).contains(&scope) {
            return Err(ApiError::new(
                ErrorCode::ConsentRequired,
                format!(
                    "no recorded consent to {}: record the patient's consent first",
                    match scope {
                        ConsentScope::Reminders => "text reminders",
                        ConsentScope::SecureMessages => "secure messages by text",
                    }
                ),
            ));
        }
        Ok(())
    }
}
