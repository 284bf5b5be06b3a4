//! [`LifecycleStore`] on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;
use wardline_proto::lifecycle::{ConversationLifecycle, HoldScope, LifecyclePolicy};
use wardline_proto::messaging::MessageKind;
use wardline_proto::{DeviceId, OrgId, UserId};

use crate::shared_inserts::{insert_key, insert_message};
use crate::{SqlStore, opt_uuid, uuid_col};
use wardline_store::lifecycle::*;
use wardline_store::messaging::{MessageRow, Woken};
use wardline_store::{DataKeyRow, Result, StoreError};

fn hold_from_row(row: &AnyRow) -> Result<HoldRow> {
    let scope: String = row.try_get("scope")?;
    Ok(HoldRow {
        id: uuid_col(row, "id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        scope: HoldScope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("hold scope {scope:?}")))?,
        target: row.try_get("target")?,
        dek_id: row.try_get("dek_id")?,
        target_enc: row.try_get("target_enc")?,
        matter_enc: row.try_get("matter_enc")?,
        reason_enc: row.try_get("reason_enc")?,
        placed_by: (uuid_col(row, "placed_by")?).into(),
        placed_at: row.try_get("placed_at")?,
        released_by: (opt_uuid(row, "released_by")?).map(Into::into),
        released_at: row.try_get("released_at")?,
        release_reason_enc: row.try_get("release_reason_enc")?,
    })
}

fn wipe_from_row(row: &AnyRow) -> Result<WipeRow> {
    Ok(WipeRow {
        device_id: (uuid_col(row, "device_id")?).into(),
        org_id: (uuid_col(row, "org_id")?).into(),
        user_id: (uuid_col(row, "user_id")?).into(),
        requested_by: (uuid_col(row, "requested_by")?).into(),
        requested_at: row.try_get("requested_at")?,
        reason: row.try_get("reason")?,
        sessions_ended: row.try_get("sessions_ended")?,
        conversations: row.try_get("conversations")?,
        confirmed_at: row.try_get("confirmed_at")?,
    })
}

/// Deletes the data keys of the given ids' rows (read before the rows go).
async fn delete_keys(tx: &mut Transaction<'_, Any>, keys: &[String]) -> Result<i64> {
    let mut n = 0;
    for k in keys {
        n += sqlx::query("DELETE FROM data_keys WHERE id = $1")
            .bind(k)
            .execute(&mut **tx)
            .await?
            .rows_affected() as i64;
    }
    Ok(n)
}

/// The data keys of a message's body and of its copies shared again for
/// later members (shredding one shreds them all).
async fn message_keys(
    tx: &mut Transaction<'_, Any>,
    conversation: Uuid,
    id: Uuid,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT dek_id FROM messages WHERE conversation_id = $2 AND (id = $1 OR shared_again = $1) \
         AND dek_id IS NOT NULL",
    )
    .bind(id.to_string())
    .bind(conversation.to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("dek_id")?))
        .collect()
}

/// Drops the body of a message and of its copies shared again, returning
/// their data keys for the caller to delete (that deletion is the shredding).
async fn shred_message(
    tx: &mut Transaction<'_, Any>,
    conversation: Uuid,
    id: Uuid,
) -> Result<Vec<String>> {
    let keys = message_keys(tx, conversation, id).await?;
    sqlx::query(
        "UPDATE messages SET body = NULL, dek_id = NULL \
         WHERE conversation_id = $2 AND (id = $1 OR shared_again = $1)",
    )
    .bind(id.to_string())
    .bind(conversation.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(keys)
}

#[async_trait]
impl LifecycleStore for SqlStore {
    async fn lifecycle_policy(&self, org: OrgId) -> Result<LifecyclePolicy> {
        let row = sqlx::query("SELECT lifecycle_policy FROM organisations WHERE id = $1")
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let json: String = row.try_get("lifecycle_policy")?;
        // '{}': never set (the column's default).
        if json == "{}" {
            return Ok(LifecyclePolicy::default());
        }
        serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("lifecycle_policy: {e}")))
    }

    async fn set_lifecycle_policy(&self, org: OrgId, policy: &LifecyclePolicy) -> Result<()> {
        let done = sqlx::query("UPDATE organisations SET lifecycle_policy = $2 WHERE id = $1")
            .bind(org.to_string())
            .bind(serde_json::to_string(policy).expect("policy serialises"))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_conversation_lifecycle(
        &self,
        org: OrgId,
        conversation: Uuid,
        lifecycle: &ConversationLifecycle,
    ) -> Result<()> {
        let done =
            sqlx::query("UPDATE conversations SET lifecycle = $3 WHERE id = $1 AND org_id = $2")
                .bind(conversation.to_string())
                .bind(org.to_string())
                .bind(serde_json::to_string(lifecycle).expect("lifecycle serialises"))
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn org_ids(&self) -> Result<Vec<OrgId>> {
        sqlx::query("SELECT id FROM organisations ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| uuid_col(r, "id").map(Into::into))
            .collect()
    }

    async fn lifecycle_conversations(&self, org: OrgId) -> Result<Vec<LifecycleConversation>> {
        let rows = sqlx::query(
            "SELECT id, lifecycle, patient_ref_bidx FROM conversations WHERE org_id = $1 ORDER BY id",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        let members = sqlx::query(
            "SELECT m.conversation_id, m.user_id FROM conversation_members m \
             JOIN conversations c ON c.id = m.conversation_id WHERE c.org_id = $1",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id = uuid_col(r, "id")?;
            let mut users = Vec::new();
            for m in &members {
                if uuid_col(m, "conversation_id")? == id {
                    users.push(uuid_col(m, "user_id")?);
                }
            }
            out.push(LifecycleConversation {
                id,
                lifecycle: serde_json::from_str(&r.try_get::<String, _>("lifecycle")?)
                    .map_err(|e| StoreError::Corrupt(format!("conversation lifecycle: {e}")))?,
                patient_ref_bidx: r.try_get("patient_ref_bidx")?,
                members: users.into_iter().map(Into::into).collect(),
            });
        }
        Ok(out)
    }

    async fn insert_hold(&self, h: &HoldRow, key: &DataKeyRow) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        insert_key(&mut tx, key).await?;
        sqlx::query(
            "INSERT INTO legal_holds (id, org_id, scope, target, dek_id, target_enc, matter_enc, reason_enc, placed_by, placed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(h.id.to_string())
        .bind(h.org_id.to_string())
        .bind(h.scope.as_str())
        .bind(&h.target)
        .bind(&h.dek_id)
        .bind(&h.target_enc)
        .bind(&h.matter_enc)
        .bind(&h.reason_enc)
        .bind(h.placed_by.to_string())
        .bind(h.placed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_holds(&self, org: OrgId) -> Result<Vec<HoldRow>> {
        sqlx::query("SELECT * FROM legal_holds WHERE org_id = $1 ORDER BY placed_at, id")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(hold_from_row)
            .collect()
    }

    async fn get_hold(&self, org: OrgId, id: Uuid) -> Result<HoldRow> {
        let row = sqlx::query("SELECT * FROM legal_holds WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        hold_from_row(&row)
    }

    async fn release_hold(
        &self,
        org: OrgId,
        id: Uuid,
        by: UserId,
        at: i64,
        reason_enc: &[u8],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE legal_holds SET released_by = $3, released_at = $4, release_reason_enc = $5 \
             WHERE id = $1 AND org_id = $2 AND released_at IS NULL",
        )
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(by.to_string())
        .bind(at)
        .bind(reason_enc)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn any_active_hold(&self) -> Result<bool> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM legal_holds WHERE released_at IS NULL")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(n > 0)
    }

    async fn deletion_candidates(
        &self,
        conversation: Uuid,
        created_before: Option<i64>,
        now: i64,
    ) -> Result<Vec<Candidate>> {
        // -1: no retention cut-off (nothing is created before it).
        let rows = sqlx::query(
            "SELECT id, sender_user, created_at, expires_at, recalled_at, dek_id, CASE WHEN body IS NULL THEN 0 ELSE 1 END AS has_body \
             FROM messages WHERE conversation_id = $1 AND kind IN ('application', 'recall') \
             AND (COALESCE(original_created_at, created_at) < $2 OR expires_at <= $3 \
                  OR (recalled_at IS NOT NULL AND body IS NOT NULL)) \
             ORDER BY created_at, id",
        )
        .bind(conversation.to_string())
        .bind(created_before.unwrap_or(-1))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Candidate {
                    id: uuid_col(r, "id")?,
                    sender_user: (opt_uuid(r, "sender_user")?).map(Into::into),
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    recalled_at: r.try_get("recalled_at")?,
                    has_body: crate::bool_col(r, "has_body")?,
                })
            })
            .collect()
    }

    async fn delete_messages(&self, conversation: Uuid, ids: &[Uuid]) -> Result<i64> {
        let mut destroyed = 0;
        // Small transactions: a long deletion never holds the write lock for long.
        for chunk in ids.chunks(200) {
            let (_writer, mut tx) = self.begin_write().await?;
            let mut keys = Vec::new();
            // A message's copies shared again for later members go with it
            // (they are the same message to their readers).
            for id in chunk {
                keys.extend(message_keys(&mut tx, conversation, *id).await?);
                sqlx::query(
                    "DELETE FROM inbox WHERE message_id IN \
                     (SELECT id FROM messages WHERE conversation_id = $2 AND (id = $1 OR shared_again = $1))",
                )
                .bind(id.to_string())
                .bind(conversation.to_string())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM messages WHERE conversation_id = $2 AND (id = $1 OR shared_again = $1)",
                )
                .bind(id.to_string())
                .bind(conversation.to_string())
                .execute(&mut *tx)
                .await?;
            }
            destroyed += delete_keys(&mut tx, &keys).await?;
            tx.commit().await?;
        }
        Ok(destroyed)
    }

    async fn shred_bodies(&self, conversation: Uuid, ids: &[Uuid]) -> Result<i64> {
        let (_writer, mut tx) = self.begin_write().await?;
        let mut keys = Vec::new();
        for id in ids {
            keys.extend(shred_message(&mut tx, conversation, *id).await?);
        }
        let destroyed = delete_keys(&mut tx, &keys).await?;
        tx.commit().await?;
        Ok(destroyed)
    }

    async fn expired_attachments(
        &self,
        conversation: Uuid,
        created_before: i64,
    ) -> Result<Vec<Uuid>> {
        sqlx::query(
            "SELECT id FROM attachments WHERE conversation_id = $1 AND created_at < $2 ORDER BY id",
        )
        .bind(conversation.to_string())
        .bind(created_before)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| uuid_col(r, "id"))
        .collect()
    }

    async fn delete_attachments(&self, conversation: Uuid, ids: &[Uuid]) -> Result<i64> {
        let (_writer, mut tx) = self.begin_write().await?;
        let mut keys = Vec::new();
        for id in ids {
            let row = sqlx::query(
                "DELETE FROM attachments WHERE id = $1 AND conversation_id = $2 RETURNING dek_id",
            )
            .bind(id.to_string())
            .bind(conversation.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(k) = row
                .map(|r| r.try_get::<Option<String>, _>("dek_id"))
                .transpose()?
                .flatten()
            {
                keys.push(k);
            }
        }
        let destroyed = delete_keys(&mut tx, &keys).await?;
        tx.commit().await?;
        Ok(destroyed)
    }

    async fn insert_receipt(
        &self,
        org: OrgId,
        id: Uuid,
        started_at: i64,
        json: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO deletion_receipts (id, org_id, started_at, receipt) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(started_at)
        .bind(json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_receipts(&self, org: OrgId, limit: i64) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT receipt FROM deletion_receipts WHERE org_id = $1 ORDER BY started_at DESC, id LIMIT $2",
        )
        .bind(org.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("receipt")?))
        .collect()
    }

    async fn take_lease(&self, name: &str, holder: &str, now: i64, until: i64) -> Result<bool> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO job_leases (name, holder, lease_until) VALUES ($1, '', 0) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE job_leases SET holder = $2, lease_until = $4 WHERE name = $1 AND (lease_until <= $3 OR holder = $2)",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recall(
        &self,
        conversation: Uuid,
        message: Uuid,
        shred: bool,
        notice: &MessageRow,
    ) -> Result<Option<Woken>> {
        let (_writer, mut tx) = self.begin_write().await?;
        Self::lock_conversation(&mut tx, conversation, notice.created_at).await?;
        let marked = sqlx::query(
            "UPDATE messages SET recalled_at = $3 WHERE id = $1 AND conversation_id = $2 \
             AND kind = $4 AND recalled_at IS NULL",
        )
        .bind(message.to_string())
        .bind(conversation.to_string())
        .bind(notice.created_at)
        .bind(MessageKind::Application.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            return Ok(None);
        }
        // Its copies shared again for later members go with it.
        sqlx::query(
            "UPDATE messages SET recalled_at = $3 WHERE shared_again = $1 AND conversation_id = $2 \
             AND recalled_at IS NULL",
        )
        .bind(message.to_string())
        .bind(conversation.to_string())
        .bind(notice.created_at)
        .execute(&mut *tx)
        .await?;
        if shred {
            let keys = shred_message(&mut tx, conversation, message).await?;
            delete_keys(&mut tx, &keys).await?;
        }
        insert_message(&mut tx, notice).await?;
        let woken = self.fan_out_to_members(&mut tx, notice, None).await?;
        tx.commit().await?;
        Ok(Some(woken))
    }

    async fn begin_wipe(&self, w: &WipeRow) -> Result<i64> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO device_wipes (device_id, org_id, user_id, requested_by, requested_at, reason, sessions_ended, conversations) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0)",
        )
        .bind(w.device_id.to_string())
        .bind(w.org_id.to_string())
        .bind(w.user_id.to_string())
        .bind(w.requested_by.to_string())
        .bind(w.requested_at)
        .bind(&w.reason)
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::map_unique(e, "device wipe"))?;
        sqlx::query("UPDATE devices SET retired_at = $2 WHERE id = $1 AND retired_at IS NULL")
            .bind(w.device_id.to_string())
            .bind(w.requested_at)
            .execute(&mut *tx)
            .await?;
        let ended = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 \
             WHERE device_id = $1 AND org_id = $3 AND user_id = $4 AND revoked_at IS NULL",
        )
        .bind(w.device_id.to_string())
        .bind(w.requested_at)
        .bind(w.org_id.to_string())
        .bind(w.user_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
        sqlx::query("DELETE FROM key_packages WHERE device_id = $1")
            .bind(w.device_id.to_string())
            .execute(&mut *tx)
            .await?;
        // A wiped device is told nothing more, not even that there is news.
        sqlx::query("DELETE FROM push_subscriptions WHERE device_id = $1")
            .bind(w.device_id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE device_wipes SET sessions_ended = $2 WHERE device_id = $1")
            .bind(w.device_id.to_string())
            .bind(ended)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(ended)
    }

    async fn retire_from_conversation(
        &self,
        conversation: Uuid,
        device: DeviceId,
        notice: &MessageRow,
    ) -> Result<(bool, Woken)> {
        let (_writer, mut tx) = self.begin_write().await?;
        Self::lock_conversation(&mut tx, conversation, notice.created_at).await?;
        let dropped = sqlx::query(
            "DELETE FROM conversation_devices WHERE conversation_id = $1 AND device_id = $2 AND state = 'pending_add'",
        )
        .bind(conversation.to_string())
        .bind(device.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let marked = sqlx::query(
            "UPDATE conversation_devices SET state = 'pending_remove' WHERE conversation_id = $1 AND device_id = $2",
        )
        .bind(conversation.to_string())
        .bind(device.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if dropped + marked == 0 {
            return Ok((false, Vec::new()));
        }
        insert_message(&mut tx, notice).await?;
        let woken = self.fan_out_to_members(&mut tx, notice, None).await?;
        tx.commit().await?;
        Ok((true, woken))
    }

    async fn device_conversations(&self, device: DeviceId) -> Result<Vec<Uuid>> {
        sqlx::query(
            "SELECT conversation_id FROM conversation_devices WHERE device_id = $1 ORDER BY conversation_id",
        )
        .bind(device.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| uuid_col(r, "conversation_id"))
        .collect()
    }

    async fn get_wipe(
        &self,
        org: OrgId,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<WipeRow>> {
        sqlx::query(
            "SELECT * FROM device_wipes WHERE device_id = $1 AND org_id = $2 AND user_id = $3",
        )
        .bind(device.to_string())
        .bind(org.to_string())
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(wipe_from_row)
        .transpose()
    }

    async fn list_wipes(&self, org: OrgId, user: Option<UserId>) -> Result<Vec<WipeRow>> {
        sqlx::query(
            "SELECT * FROM device_wipes WHERE org_id = $1 AND ($2 = '' OR user_id = $2) \
             ORDER BY requested_at, device_id",
        )
        .bind(org.to_string())
        .bind(user.map(|u| u.to_string()).unwrap_or_default())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(wipe_from_row)
        .collect()
    }

    async fn set_wipe_conversations(&self, device: DeviceId, n: i64) -> Result<()> {
        sqlx::query("UPDATE device_wipes SET conversations = $2 WHERE device_id = $1")
            .bind(device.to_string())
            .bind(n)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn confirm_wipe(
        &self,
        org: OrgId,
        user: UserId,
        device: DeviceId,
        at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE device_wipes SET confirmed_at = $2 \
             WHERE device_id = $1 AND org_id = $3 AND user_id = $4 AND confirmed_at IS NULL",
        )
        .bind(device.to_string())
        .bind(at)
        .bind(org.to_string())
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
