//! Patient threads for staff: the messages of one patient, the practice's
//! threads with unread counts, the SMS log, and revoking links.

use super::*;
use crate::caller::Caller;

impl PatientService {
    pub(super) fn message_to_wire(
        &self,
        p: &Opened,
        m: PatientMessageRow,
    ) -> ApiResult<PatientMessage> {
        let (text, sealed) = if m.client_sealed {
            let bytes = p.key.open(&m.body_enc, &message_context(m.id))?;
            (String::new(), Some(wardline_proto::messaging::B64(bytes)))
        } else {
            (
                open(&p.key, "patient_messages", m.id, "body", &m.body_enc)?,
                None,
            )
        };
        Ok(PatientMessage {
            looks_like_opt_out: m.direction == PatientMessageDirection::FromPatient
                && looks_like_opt_out(&text),
            text,
            sealed,
            id: m.id,
            direction: m.direction,
            author: m.author_user,
            via: m.via,
            created_at: m.created_at,
            read_at: m.read_at,
        })
    }

    pub async fn messages(&self, p: &Opened) -> ApiResult<Vec<PatientMessage>> {
        self.store
            .patient_messages(p.row.org_id, p.row.id)
            .await?
            .into_iter()
            .map(|m| self.message_to_wire(p, m))
            .collect()
    }

    /// The thread as staff see it; marks the patient's messages read.
    pub async fn thread(&self, by: &Caller, id: Uuid) -> ApiResult<PatientThread> {
        let p = self.load(by.org_id, id).await?;
        by.audit.patient(&id.to_string());
        let messages = self.messages(&p).await?;
        let now = self.clock.now();
        self.store
            .mark_patient_messages_read(by.org_id, id, PatientMessageDirection::FromPatient, now)
            .await?;
        self.store
            .staff_notices_seen(by.org_id, by.user_id, id, now)
            .await?;
        Ok(PatientThread {
            patient_id: id,
            messages,
        })
    }

    pub async fn threads(&self, by: &Principal) -> ApiResult<Vec<PatientThreadSummary>> {
        let mut out = Vec::new();
        for a in self.store.thread_activity(by.org_id).await? {
            let p = self.load(by.org_id, a.patient_id).await?;
            out.push(PatientThreadSummary {
                patient_id: a.patient_id,
                patient_name: p.name,
                last_message_at: a.last_message_at,
                unread: a.unread,
            });
        }
        Ok(out)
    }

    pub async fn sms_log(&self, by: &Caller, id: Uuid) -> ApiResult<Vec<SmsRecord>> {
        self.load(by.org_id, id).await?;
        by.audit.patient(&id.to_string());
        Ok(self
            .store
            .sms_for_patient(by.org_id, id, 200)
            .await?
            .iter()
            .map(sms_to_wire)
            .collect())
    }

    pub async fn revoke_links(&self, by: &Caller, id: Uuid) -> ApiResult<i64> {
        self.load(by.org_id, id).await?;
        by.audit.patient(&id.to_string());
        Ok(self
            .store
            .revoke_links(by.org_id, id, self.clock.now())
            .await?)
    }
}
