//! [`PatientStore`] on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;
use wardline_proto::patients::{
    ConsentAction, ConsentMethod, ConsentScope, PatientMessageDirection, SmsKind, SmsStatus,
    TemplateClass,
};
use wardline_proto::{OrgId, UserId};

use crate::{SqlStore, map_unique, opt_uuid, uuid_col};
use wardline_store::patients::*;
use wardline_store::{Result, StoreError};

fn parsed<T>(row: &AnyRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s: String = row.try_get(col)?;
    parse(&s).ok_or_else(|| StoreError::Corrupt(format!("{col} {s:?}")))
}

fn patient_from_row(row: &AnyRow) -> Result<PatientRow> {
    Ok(PatientRow {
        id: uuid_col(row, "id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        dek_id: row.try_get("dek_id")?,
        name_enc: row.try_get("name_enc")?,
        dob_enc: row.try_get("dob_enc")?,
        mrn_enc: row.try_get("mrn_enc")?,
        phone_enc: row.try_get("phone_enc")?,
        language_enc: row.try_get("language_enc")?,
        phone_index: row.try_get("phone_index")?,
        mrn_index: row.try_get("mrn_index")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn consent_from_row(row: &AnyRow) -> Result<ConsentRow> {
    let scope: Option<String> = row.try_get("scope")?;
    Ok(ConsentRow {
        id: uuid_col(row, "id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        patient_id: uuid_col(row, "patient_id")?,
        scope: scope
            .map(|s| {
                ConsentScope::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("scope {s:?}")))
            })
            .transpose()?,
        action: parsed(row, "action", ConsentAction::parse)?,
        method: parsed(row, "method", ConsentMethod::parse)?,
        actor_kind: row.try_get("actor_kind")?,
        actor_id: row.try_get("actor_id")?,
        at: row.try_get("at")?,
    })
}

fn message_from_row(row: &AnyRow) -> Result<PatientMessageRow> {
    Ok(PatientMessageRow {
        id: uuid_col(row, "id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        patient_id: uuid_col(row, "patient_id")?,
        direction: parsed(row, "direction", PatientMessageDirection::parse)?,
        author_user: opt_uuid(row, "author_user")?,
        via: row.try_get("via")?,
        body_enc: row.try_get("body_enc")?,
        client_sealed: row.try_get::<i64, _>("client_sealed")? != 0,
        created_at: row.try_get("created_at")?,
        read_at: row.try_get("read_at")?,
    })
}

fn link_from_row(row: &AnyRow) -> Result<LinkRow> {
    Ok(LinkRow {
        id: uuid_col(row, "id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        patient_id: uuid_col(row, "patient_id")?,
        token_hash: row.try_get("token_hash")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        max_uses: row.try_get("max_uses")?,
        uses: row.try_get("uses")?,
        failures: row.try_get("failures")?,
        locked_at: row.try_get("locked_at")?,
        revoked_at: row.try_get("revoked_at")?,
        challenge_hash: row.try_get("challenge_hash")?,
        code_hash: row.try_get("code_hash")?,
        code_expires_at: row.try_get("code_expires_at")?,
    })
}

fn sms_from_row(row: &AnyRow) -> Result<SmsRow> {
    Ok(SmsRow {
        id: uuid_col(row, "id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        patient_id: opt_uuid(row, "patient_id")?,
        dek_id: row.try_get("dek_id")?,
        from_number: row.try_get("from_number")?,
        to_enc: row.try_get("to_enc")?,
        body_enc: row.try_get("body_enc")?,
        fragment_enc: row.try_get("fragment_enc")?,
        phone_index: row.try_get("phone_index")?,
        kind: parsed(row, "kind", SmsKind::parse)?,
        template: row.try_get("template")?,
        status: parsed(row, "status", SmsStatus::parse)?,
        attempts: row.try_get("attempts")?,
        send_after: row.try_get("send_after")?,
        lease_until: row.try_get("lease_until")?,
        provider_id: row.try_get("provider_id")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn not_found_if_none(rows_affected: u64) -> Result<()> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

#[async_trait]
impl PatientStore for SqlStore {
    async fn insert_patient(&self, p: &PatientRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO patients (id, org_id, dek_id, name_enc, dob_enc, mrn_enc, phone_enc, language_enc, phone_index, mrn_index, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(p.id.to_string())
        .bind(p.org_id.to_string())
        .bind(&p.dek_id)
        .bind(p.name_enc.clone())
        .bind(p.dob_enc.clone())
        .bind(p.mrn_enc.clone())
        .bind(p.phone_enc.clone())
        .bind(p.language_enc.clone())
        .bind(&p.phone_index)
        .bind(p.mrn_index.clone())
        .bind(&p.created_by)
        .bind(p.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "patient mrn"))?;
        Ok(())
    }

    async fn get_patient(&self, org: OrgId, id: Uuid) -> Result<PatientRow> {
        let row = sqlx::query("SELECT * FROM patients WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        patient_from_row(&row)
    }

    async fn list_patients(&self, org: OrgId) -> Result<Vec<PatientRow>> {
        sqlx::query("SELECT * FROM patients WHERE org_id = $1 ORDER BY created_at, id")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(patient_from_row)
            .collect()
    }

    async fn patients_by_phone(&self, org: OrgId, phone_index: &str) -> Result<Vec<PatientRow>> {
        sqlx::query(
            "SELECT * FROM patients WHERE org_id = $1 AND phone_index = $2 ORDER BY created_at, id",
        )
        .bind(org.to_string())
        .bind(phone_index)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(patient_from_row)
        .collect()
    }

    async fn insert_consent(&self, c: &ConsentRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO patient_consents (id, org_id, patient_id, scope, action, method, actor_kind, actor_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.id.to_string())
        .bind(c.org_id.to_string())
        .bind(c.patient_id.to_string())
        .bind(c.scope.map(|s| s.as_str()))
        .bind(c.action.as_str())
        .bind(c.method.as_str())
        .bind(&c.actor_kind)
        .bind(&c.actor_id)
        .bind(c.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn consents(&self, org: OrgId, patient: Uuid) -> Result<Vec<ConsentRow>> {
        sqlx::query(
            "SELECT * FROM patient_consents WHERE org_id = $1 AND patient_id = $2 ORDER BY seq",
        )
        .bind(org.to_string())
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(consent_from_row)
        .collect()
    }

    async fn opt_out(&self, org: OrgId, phone_index: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO sms_opt_outs (org_id, phone_index, since) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, phone_index) DO NOTHING",
        )
        .bind(org.to_string())
        .bind(phone_index)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn opt_in(&self, org: OrgId, phone_index: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sms_opt_outs WHERE org_id = $1 AND phone_index = $2")
            .bind(org.to_string())
            .bind(phone_index)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn is_opted_out(&self, org: OrgId, phone_index: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT since FROM sms_opt_outs WHERE org_id = $1 AND phone_index = $2")
                .bind(org.to_string())
                .bind(phone_index)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    async fn claim_inbound(&self, org: OrgId, provider_id: &str, at: i64) -> Result<bool> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sms_inbound_seen (org_id, provider_id, received_at) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, provider_id) DO NOTHING",
        )
        .bind(org.to_string())
        .bind(provider_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let handled: Option<i64> = sqlx::query(
            "SELECT handled_at FROM sms_inbound_seen WHERE org_id = $1 AND provider_id = $2",
        )
        .bind(org.to_string())
        .bind(provider_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("handled_at")?;
        tx.commit().await?;
        Ok(handled.is_none())
    }

    async fn inbound_handled(&self, org: OrgId, provider_id: &str, at: i64) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        mark_inbound_handled(&mut tx, org, provider_id, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_inbound_messages(
        &self,
        org: OrgId,
        provider_id: &str,
        rows: &[PatientMessageRow],
        at: i64,
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        for m in rows {
            insert_patient_message(&mut tx, m).await?;
        }
        mark_inbound_handled(&mut tx, org, provider_id, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn templates(&self, org: OrgId) -> Result<Vec<TemplateRow>> {
        let rows =
            sqlx::query("SELECT * FROM sms_templates WHERE org_id = $1 ORDER BY key, language")
                .bind(org.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(TemplateRow {
                    org_id: (uuid_col(r, "org_id")?).into(),
                    key: r.try_get("key")?,
                    language: r.try_get("language")?,
                    body: r.try_get("body")?,
                    class: parsed(r, "class", TemplateClass::parse)?,
                    updated_by: r.try_get("updated_by")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn put_template(&self, t: &TemplateRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO sms_templates (org_id, key, language, body, class, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (org_id, key, language) DO UPDATE SET body = excluded.body, class = excluded.class, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(t.org_id.to_string())
        .bind(&t.key)
        .bind(&t.language)
        .bind(&t.body)
        .bind(t.class.as_str())
        .bind(&t.updated_by)
        .bind(t.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_patient_message(&self, m: &PatientMessageRow) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        insert_patient_message(&mut tx, m).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn patient_messages(&self, org: OrgId, patient: Uuid) -> Result<Vec<PatientMessageRow>> {
        sqlx::query(
            "SELECT * FROM patient_messages WHERE org_id = $1 AND patient_id = $2 ORDER BY seq",
        )
        .bind(org.to_string())
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(message_from_row)
        .collect()
    }

    async fn mark_patient_messages_read(
        &self,
        org: OrgId,
        patient: Uuid,
        direction: PatientMessageDirection,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE patient_messages SET read_at = $4 \
             WHERE org_id = $1 AND patient_id = $2 AND direction = $3 AND read_at IS NULL",
        )
        .bind(org.to_string())
        .bind(patient.to_string())
        .bind(direction.as_str())
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn thread_activity(&self, org: OrgId) -> Result<Vec<ThreadActivity>> {
        let rows = sqlx::query(
            "SELECT patient_id, MAX(created_at) AS last_at, \
             SUM(CASE WHEN direction = 'from_patient' AND read_at IS NULL THEN 1 ELSE 0 END) AS unread \
             FROM patient_messages WHERE org_id = $1 GROUP BY patient_id ORDER BY last_at DESC, patient_id",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ThreadActivity {
                    patient_id: uuid_col(r, "patient_id")?,
                    last_message_at: r.try_get("last_at")?,
                    unread: r.try_get("unread")?,
                })
            })
            .collect()
    }

    async fn patient_writers(&self, org: OrgId, patient: Uuid, limit: i64) -> Result<Vec<UserId>> {
        let rows = sqlx::query(
            "SELECT author_user, MAX(created_at) AS last_at FROM patient_messages \
             WHERE org_id = $1 AND patient_id = $2 AND direction = 'to_patient' AND author_user IS NOT NULL \
             GROUP BY author_user ORDER BY last_at DESC, author_user LIMIT $3",
        )
        .bind(org.to_string())
        .bind(patient.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| uuid_col(r, "author_user").map(Into::into))
            .collect()
    }

    async fn insert_staff_notices(&self, rows: &[StaffNoticeRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (_writer, mut tx) = self.begin_write().await?;
        for n in rows {
            sqlx::query(
                "INSERT INTO staff_notices (id, org_id, user_id, kind, patient_id, created_at, seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(n.id.to_string())
            .bind(n.org_id.to_string())
            .bind(n.user_id.to_string())
            .bind(&n.kind)
            .bind(n.patient_id.to_string())
            .bind(n.created_at)
            .bind(n.seen_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn unseen_staff_notices(
        &self,
        org: OrgId,
        user: UserId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StaffNoticeRow>> {
        let rows = sqlx::query(
            "SELECT * FROM staff_notices WHERE user_id = $2 AND org_id = $1 AND seen_at IS NULL \
             AND created_at > $3 ORDER BY created_at, id LIMIT $4",
        )
        .bind(org.to_string())
        .bind(user.to_string())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StaffNoticeRow {
                    id: uuid_col(r, "id")?,
                    org_id: (uuid_col(r, "org_id")?).into(),
                    user_id: (uuid_col(r, "user_id")?).into(),
                    kind: r.try_get("kind")?,
                    patient_id: uuid_col(r, "patient_id")?,
                    created_at: r.try_get("created_at")?,
                    seen_at: r.try_get("seen_at")?,
                })
            })
            .collect()
    }

    async fn staff_notices_seen(
        &self,
        org: OrgId,
        user: UserId,
        patient: Uuid,
        at: i64,
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "UPDATE staff_notices SET seen_at = $4 WHERE org_id = $1 AND user_id = $2 \
             AND patient_id = $3 AND seen_at IS NULL",
        )
        .bind(org.to_string())
        .bind(user.to_string())
        .bind(patient.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_link(&self, l: &LinkRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO secure_links (id, org_id, patient_id, token_hash, created_by, created_at, expires_at, max_uses) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(l.id.to_string())
        .bind(l.org_id.to_string())
        .bind(l.patient_id.to_string())
        .bind(&l.token_hash)
        .bind(&l.created_by)
        .bind(l.created_at)
        .bind(l.expires_at)
        .bind(l.max_uses)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "link token"))?;
        Ok(())
    }

    async fn link_by_token(&self, token_hash: &str) -> Result<LinkRow> {
        let row = sqlx::query("SELECT * FROM secure_links WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        link_from_row(&row)
    }

    async fn link_attempt(&self, id: Uuid, max_failures: i64, at: i64) -> Result<Option<i64>> {
        // Count first, compare after: the lock and the limit are checked in
        // the same statement that counts, so a burst of concurrent guesses
        // cannot all pass a check made before any of them was counted.
        let row = sqlx::query(
            "UPDATE secure_links SET failures = failures + 1, \
             locked_at = CASE WHEN failures + 1 >= $2 THEN $3 ELSE locked_at END \
             WHERE id = $1 AND locked_at IS NULL AND failures < $2 RETURNING failures",
        )
        .bind(id.to_string())
        .bind(max_failures)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("failures"))
            .transpose()
            .map_err(Into::into)
    }

    async fn link_attempt_passed(&self, id: Uuid, max_failures: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE secure_links SET failures = failures - 1, \
             locked_at = CASE WHEN failures - 1 < $2 THEN NULL ELSE locked_at END \
             WHERE id = $1 AND failures > 0",
        )
        .bind(id.to_string())
        .bind(max_failures)
        .execute(&self.pool)
        .await?;
        not_found_if_none(done.rows_affected())
    }

    async fn link_set_code(
        &self,
        id: Uuid,
        challenge_hash: &str,
        code_hash: &str,
        expires_at: i64,
        previous_by: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE secure_links SET challenge_hash = $2, code_hash = $3, code_expires_at = $4 \
             WHERE id = $1 AND (code_expires_at IS NULL OR code_expires_at <= $5)",
        )
        .bind(id.to_string())
        .bind(challenge_hash)
        .bind(code_hash)
        .bind(expires_at)
        .bind(previous_by)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn link_use(&self, id: Uuid) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE secure_links SET uses = uses + 1, challenge_hash = NULL, code_hash = NULL, code_expires_at = NULL \
             WHERE id = $1 AND uses < max_uses AND code_hash IS NOT NULL AND locked_at IS NULL",
        )
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_links(&self, org: OrgId, patient: Uuid, at: i64) -> Result<i64> {
        let done = sqlx::query(
            "UPDATE secure_links SET revoked_at = $3 \
             WHERE org_id = $1 AND patient_id = $2 AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(org.to_string())
        .bind(patient.to_string())
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() as i64)
    }

    async fn insert_portal_session(
        &self,
        token_hash: &str,
        link: Uuid,
        at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO portal_sessions (token_hash, link_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(link.to_string())
        .bind(at)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "portal session"))?;
        Ok(())
    }

    async fn portal_session(&self, token_hash: &str, now: i64) -> Result<Uuid> {
        let row = sqlx::query(
            "SELECT link_id FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        uuid_col(&row, "link_id")
    }

    async fn enqueue_sms(&self, s: &SmsRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO sms_outbox (id, org_id, patient_id, dek_id, from_number, to_enc, body_enc, phone_index, kind, template, status, attempts, send_after, created_at, updated_at, fragment_enc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(s.id.to_string())
        .bind(s.org_id.to_string())
        .bind(s.patient_id.map(|p| p.to_string()))
        .bind(&s.dek_id)
        .bind(&s.from_number)
        .bind(s.to_enc.clone())
        .bind(s.body_enc.clone())
        .bind(&s.phone_index)
        .bind(s.kind.as_str())
        .bind(s.template.clone())
        .bind(s.status.as_str())
        .bind(s.attempts)
        .bind(s.send_after)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(s.fragment_enc.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_due_sms(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<SmsRow>> {
        // The outer WHERE repeats the due test: PostgreSQL re-evaluates it on
        // the row version it locks, so of two nodes racing for a row only one
        // updates it. SQLite runs one writer at a time anyway.
        let rows = sqlx::query(
            "UPDATE sms_outbox SET status = 'sending', lease_until = $2, attempts = attempts + 1, updated_at = $1 \
             WHERE id IN (SELECT id FROM sms_outbox \
                          WHERE (status = 'queued' AND send_after <= $1) OR (status = 'sending' AND lease_until < $1) \
                          ORDER BY send_after, id LIMIT $3) \
             AND ((status = 'queued' AND send_after <= $1) OR (status = 'sending' AND lease_until < $1)) \
             RETURNING *",
        )
        .bind(now)
        .bind(now + lease_secs)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut rows = rows.iter().map(sms_from_row).collect::<Result<Vec<_>>>()?;
        // `UPDATE … RETURNING` does not keep the subquery's order (both
        // engines returned the batch newest first): put it back, so that a
        // patient's texts go out in the order they were queued.
        rows.sort_by_key(|r| (r.send_after, r.id));
        Ok(rows)
    }

    async fn sms_sent(&self, id: Uuid, provider_id: &str, at: i64) -> Result<()> {
        // A status callback may have arrived first and moved it past `sent`.
        let done = sqlx::query(
            "UPDATE sms_outbox SET status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END, \
             provider_id = $2, sent_at = $3, lease_until = NULL, error = NULL, fragment_enc = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(provider_id)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "sms provider id"))?;
        not_found_if_none(done.rows_affected())
    }

    async fn sms_retry(&self, id: Uuid, send_after: i64, error: &str, at: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE sms_outbox SET status = 'queued', send_after = $2, error = $3, lease_until = NULL, updated_at = $4 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(send_after)
        .bind(error)
        .bind(at)
        .execute(&self.pool)
        .await?;
        not_found_if_none(done.rows_affected())
    }

    async fn sms_finished(&self, id: Uuid, status: SmsStatus, error: &str, at: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE sms_outbox SET status = $2, error = $3, lease_until = NULL, fragment_enc = NULL, updated_at = $4 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(error)
        .bind(at)
        .execute(&self.pool)
        .await?;
        not_found_if_none(done.rows_affected())
    }

    async fn sms_status_by_provider(
        &self,
        org: OrgId,
        provider_id: &str,
        status: SmsStatus,
        error: Option<&str>,
        at: i64,
    ) -> Result<SmsRow> {
        // One statement: the rank comparison and the update cannot be split
        // by a concurrent callback.
        let rank = |s: SmsStatus| match s {
            SmsStatus::Queued => 0,
            SmsStatus::Sending => 1,
            SmsStatus::Sent => 2,
            _ => 3,
        };
        let updated = sqlx::query(
            "UPDATE sms_outbox SET status = $3, error = $4, updated_at = $5 \
             WHERE org_id = $1 AND provider_id = $2 \
               AND (CASE status WHEN 'queued' THEN 0 WHEN 'sending' THEN 1 WHEN 'sent' THEN 2 ELSE 3 END) < $6 \
             RETURNING *",
        )
        .bind(org.to_string())
        .bind(provider_id)
        .bind(status.as_str())
        .bind(error)
        .bind(at)
        .bind(rank(status))
        .fetch_optional(&self.pool)
        .await?;
        let row = match updated {
            Some(r) => r,
            None => sqlx::query("SELECT * FROM sms_outbox WHERE org_id = $1 AND provider_id = $2")
                .bind(org.to_string())
                .bind(provider_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?,
        };
        sms_from_row(&row)
    }

    async fn get_sms(&self, org: OrgId, id: Uuid) -> Result<SmsRow> {
        let row = sqlx::query("SELECT * FROM sms_outbox WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        sms_from_row(&row)
    }

    async fn sms_for_patient(&self, org: OrgId, patient: Uuid, limit: i64) -> Result<Vec<SmsRow>> {
        sqlx::query(
            "SELECT * FROM sms_outbox WHERE org_id = $1 AND patient_id = $2 ORDER BY created_at DESC, id LIMIT $3",
        )
        .bind(org.to_string())
        .bind(patient.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(sms_from_row)
        .collect()
    }
}

async fn insert_patient_message(
    tx: &mut Transaction<'_, Any>,
    m: &PatientMessageRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO patient_messages (id, org_id, patient_id, direction, author_user, via, body_enc, created_at, read_at, client_sealed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(m.id.to_string())
    .bind(m.org_id.to_string())
    .bind(m.patient_id.to_string())
    .bind(m.direction.as_str())
    .bind(m.author_user.map(|u| u.to_string()))
    .bind(&m.via)
    .bind(m.body_enc.clone())
    .bind(m.created_at)
    .bind(m.read_at)
    .bind(m.client_sealed as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn mark_inbound_handled(
    tx: &mut Transaction<'_, Any>,
    org: OrgId,
    provider_id: &str,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE sms_inbound_seen SET handled_at = $3 WHERE org_id = $1 AND provider_id = $2",
    )
    .bind(org.to_string())
    .bind(provider_id)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
