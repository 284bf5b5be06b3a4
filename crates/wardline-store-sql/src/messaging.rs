//! [`MessagingStore`] on SQLite and PostgreSQL.
//!
//! Every change that orders messages starts by writing the conversation row:
//! that takes the row lock on PostgreSQL and the write lock on SQLite before
//! anything is read, so the epoch check, the fan-out and the membership
//! changes of one transaction see no concurrent commit. Inbox positions are
//! per device (`devices.inbox_seq`), allocated inside the same transaction, so
//! a device's cursor never skips an entry committed late.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;
use wardline_proto::messaging::{ConversationKind, DeviceState, MessageKind, Priority};
use wardline_proto::{DeviceId, OrgId, UserId};

use crate::shared_inserts::{insert_key, insert_message};
use crate::{SqlStore, bool_col, data_key_from_row, map_unique, opt_uuid, uuid_col};
use wardline_store::messaging::*;
use wardline_store::{Backend, DataKeyRow, Result, StoreError};

/// The data key of a row joined as `k_*` columns (`LEFT JOIN`: may be absent).
fn joined_key(row: &AnyRow) -> Result<Option<DataKeyRow>> {
    if row.try_get::<Option<String>, _>("k_id")?.is_none() {
        return Ok(None);
    }
    data_key_from_row(row, "k_").map(Some)
}

fn device_from_row(row: &AnyRow) -> Result<DeviceRow> {
    Ok(DeviceRow {
        id: (uuid_col(row, "id")?).into(),
        org_id: (uuid_col(row, "org_id")?).into(),
        user_id: (uuid_col(row, "user_id")?).into(),
        name: row.try_get("name")?,
        identity_key: row.try_get("identity_key")?,
        created_at: row.try_get("created_at")?,
        retired_at: row.try_get("retired_at")?,
        inbox_seq: row.try_get("inbox_seq")?,
        acked_seq: row.try_get("acked_seq")?,
        posture: match row.try_get::<Option<i64>, _>("posture_at")? {
            None => None,
            Some(_) => Some(wardline_proto::lifecycle::DevicePosture {
                platform: row
                    .try_get::<Option<String>, _>("platform")?
                    .unwrap_or_default(),
                os_version: row
                    .try_get::<Option<String>, _>("os_version")?
                    .unwrap_or_default(),
                compromised: bool_col(row, "compromised")?,
            }),
        },
    })
}

fn conversation_from_row(row: &AnyRow) -> Result<ConversationRow> {
    let kind: String = row.try_get("kind")?;
    Ok(ConversationRow {
        id: uuid_col(row, "id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        kind: ConversationKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("conversation kind {kind:?}")))?,
        dek_id: row.try_get("dek_id")?,
        title_enc: row.try_get("title_enc")?,
        patient_ref_enc: row.try_get("patient_ref_enc")?,
        direct_key: row.try_get("direct_key")?,
        created_by: (uuid_col(row, "created_by")?).into(),
        created_at: row.try_get("created_at")?,
        epoch: row.try_get("epoch")?,
        last_activity_at: row.try_get("last_activity_at")?,
        lifecycle: serde_json::from_str(&row.try_get::<String, _>("lifecycle")?)
            .map_err(|e| StoreError::Corrupt(format!("conversation lifecycle: {e}")))?,
        patient_ref_bidx: row.try_get("patient_ref_bidx")?,
        role_id: opt_uuid(row, "role_id")?,
        routed_user: (opt_uuid(row, "routed_user")?).map(Into::into),
        routed_via: row.try_get("routed_via")?,
        care_team_id: opt_uuid(row, "care_team_id")?,
    })
}

fn message_from_row(row: &AnyRow) -> Result<MessageRow> {
    let kind: String = row.try_get("kind")?;
    let priority: String = row.try_get("priority")?;
    Ok(MessageRow {
        id: uuid_col(row, "id")?,
        conversation_id: uuid_col(row, "conversation_id")?,
        kind: MessageKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("message kind {kind:?}")))?,
        sender_user: (opt_uuid(row, "sender_user")?).map(Into::into),
        sender_device: (opt_uuid(row, "sender_device")?).map(Into::into),
        epoch: row.try_get("epoch")?,
        priority: Priority::parse(&priority)
            .ok_or_else(|| StoreError::Corrupt(format!("priority {priority:?}")))?,
        body: row.try_get("body")?,
        body_hash: row.try_get("body_hash")?,
        created_at: row.try_get("created_at")?,
        dek_id: row.try_get("dek_id")?,
        expires_at: row.try_get("expires_at")?,
        recalled_at: row.try_get("recalled_at")?,
        recalls: opt_uuid(row, "recalls")?,
        alert: row.try_get("alert")?,
        shared_again: opt_uuid(row, "shared_again")?,
        original_created_at: row.try_get("original_created_at")?,
    })
}

/// Key packages as `(bytes, last_resort)`.
/// Moves the device's cursor to `up_to` (never back) and marks those entries
/// delivered; `None` (nothing changed) if `up_to` is beyond its inbox.
///
/// Only the entries after the previous cursor are looked at: scanning the
/// whole inbox made every acknowledgement cost more as history grew.
async fn ack_in(
    tx: &mut Transaction<'_, Any>,
    device: DeviceId,
    up_to: i64,
    now: i64,
) -> Result<Option<i64>> {
    sqlx::query(
        "UPDATE inbox SET delivered_at = $3 WHERE device_id = $1 AND seq <= $2 AND delivered_at IS NULL \
         AND seq > (SELECT acked_seq FROM devices WHERE id = $1) \
         AND $2 <= (SELECT inbox_seq FROM devices WHERE id = $1) \
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = inbox.message_id AND m.recalled_at IS NOT NULL)",
    )
    .bind(device.to_string())
    .bind(up_to)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(
        "UPDATE devices SET acked_seq = CASE WHEN acked_seq < $2 THEN $2 ELSE acked_seq END \
         WHERE id = $1 AND $2 <= inbox_seq RETURNING acked_seq",
    )
    .bind(device.to_string())
    .bind(up_to)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) => Ok(Some(row.try_get("acked_seq")?)),
        None => Ok(None),
    }
}

async fn insert_key_packages(
    tx: &mut Transaction<'_, Any>,
    device: DeviceId,
    kps: &[(Vec<u8>, bool)],
    now: i64,
) -> Result<()> {
    for (kp, last_resort) in kps {
        sqlx::query(
            "INSERT INTO key_packages (device_id, data, last_resort, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(device.to_string())
        .bind(kp.clone())
        .bind(*last_resort as i64)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl SqlStore {
    /// Puts `m` in the inbox of every member device of its conversation except
    /// `except` (the sender's), in one statement each for the positions and
    /// the entries, whatever the group size.
    pub(crate) async fn fan_out_to_members(
        &self,
        tx: &mut Transaction<'_, Any>,
        m: &MessageRow,
        except: Option<DeviceId>,
    ) -> Result<Vec<DeviceId>> {
        let conv = m.conversation_id.to_string();
        let except = except.map(|d| d.to_string()).unwrap_or_default();
        if self.backend == Backend::Postgres {
            // Lock the recipients in id order, so that two conversations sharing
            // devices cannot deadlock on their positions.
            sqlx::query(
                "SELECT id FROM devices WHERE id IN (SELECT device_id FROM conversation_devices WHERE conversation_id = $1 AND state = 'member' AND device_id <> $2) ORDER BY id FOR UPDATE",
            )
            .bind(&conv)
            .bind(&except)
            .fetch_all(&mut **tx)
            .await?;
        }
        let rows = sqlx::query(
            "UPDATE devices SET inbox_seq = inbox_seq + 1 WHERE id IN (SELECT device_id FROM conversation_devices WHERE conversation_id = $1 AND state = 'member' AND device_id <> $2) RETURNING id",
        )
        .bind(&conv)
        .bind(&except)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO inbox (device_id, seq, message_id, conversation_id) \
             SELECT d.id, d.inbox_seq, $3, $1 FROM devices d \
             WHERE d.id IN (SELECT device_id FROM conversation_devices WHERE conversation_id = $1 AND state = 'member' AND device_id <> $2)",
        )
        .bind(&conv)
        .bind(&except)
        .bind(m.id.to_string())
        .execute(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| uuid_col(r, "id").map(Into::into))
            .collect()
    }

    pub(crate) async fn fan_out_to(
        &self,
        tx: &mut Transaction<'_, Any>,
        m: &MessageRow,
        devices: &[DeviceId],
    ) -> Result<()> {
        let mut sorted = devices.to_vec();
        sorted.sort();
        for d in sorted {
            let seq: i64 = sqlx::query(
                "UPDATE devices SET inbox_seq = inbox_seq + 1 WHERE id = $1 RETURNING inbox_seq",
            )
            .bind(d.to_string())
            .fetch_one(&mut **tx)
            .await?
            .try_get("inbox_seq")?;
            sqlx::query(
                "INSERT INTO inbox (device_id, seq, message_id, conversation_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(d.to_string())
            .bind(seq)
            .bind(m.id.to_string())
            .bind(m.conversation_id.to_string())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Takes the conversation's lock (see the module comment) and returns its epoch.
    pub(crate) async fn lock_conversation(
        tx: &mut Transaction<'_, Any>,
        id: Uuid,
        now: i64,
    ) -> Result<i64> {
        let row = sqlx::query(
            "UPDATE conversations SET last_activity_at = $2 WHERE id = $1 RETURNING epoch",
        )
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(row.try_get("epoch")?)
    }

    async fn device_state(
        tx: &mut Transaction<'_, Any>,
        conversation: Uuid,
        device: DeviceId,
    ) -> Result<Option<DeviceState>> {
        let row = sqlx::query(
            "SELECT state FROM conversation_devices WHERE conversation_id = $1 AND device_id = $2",
        )
        .bind(conversation.to_string())
        .bind(device.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        row.map(|r| {
            let s: String = r.try_get("state")?;
            DeviceState::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("device state {s:?}")))
        })
        .transpose()
    }
}

#[async_trait]
impl MessagingStore for SqlStore {
    async fn insert_device(
        &self,
        d: &DeviceRow,
        key_packages: &[(Vec<u8>, bool)],
    ) -> Result<Woken> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO devices (id, org_id, user_id, name, identity_key, created_at, retired_at, inbox_seq, acked_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, 0)",
        )
        .bind(d.id.to_string())
        .bind(d.org_id.to_string())
        .bind(d.user_id.to_string())
        .bind(&d.name)
        .bind(d.identity_key.clone())
        .bind(d.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "device"))?;
        insert_key_packages(&mut tx, d.id, key_packages, d.created_at).await?;
        // A new device of an existing member joins all of that user's conversations.
        let convs = sqlx::query(
            "SELECT conversation_id FROM conversation_members WHERE user_id = $1 ORDER BY conversation_id",
        )
        .bind(d.user_id.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut woken = Vec::new();
        for row in convs {
            let conv = uuid_col(&row, "conversation_id")?;
            let epoch = Self::lock_conversation(&mut tx, conv, d.created_at).await?;
            sqlx::query(
                "INSERT INTO conversation_devices (conversation_id, device_id, user_id, state) VALUES ($1, $2, $3, 'pending_add')",
            )
            .bind(conv.to_string())
            .bind(d.id.to_string())
            .bind(d.user_id.to_string())
            .execute(&mut *tx)
            .await?;
            let notice = MessageRow::membership_notice(conv, epoch, d.user_id, d.created_at);
            insert_message(&mut tx, &notice).await?;
            woken.extend(self.fan_out_to_members(&mut tx, &notice, None).await?);
        }
        tx.commit().await?;
        Ok(woken)
    }

    async fn get_device(&self, org: OrgId, id: DeviceId) -> Result<DeviceRow> {
        let row = sqlx::query("SELECT * FROM devices WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        device_from_row(&row)
    }

    async fn list_user_devices(&self, org: OrgId, user: UserId) -> Result<Vec<DeviceStock>> {
        let rows = sqlx::query(
            "SELECT d.*, \
               (SELECT COUNT(*) FROM key_packages k WHERE k.device_id = d.id AND k.last_resort = 0) AS available, \
               (SELECT COUNT(*) FROM key_packages k WHERE k.device_id = d.id AND k.last_resort = 1) AS last_resorts \
             FROM devices d WHERE d.org_id = $1 AND d.user_id = $2 AND d.retired_at IS NULL ORDER BY d.created_at, d.id",
        )
        .bind(org.to_string())
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeviceStock {
                    device: device_from_row(r)?,
                    available: r.try_get("available")?,
                    has_last_resort: r.try_get::<i64, _>("last_resorts")? > 0,
                })
            })
            .collect()
    }

    async fn add_key_packages(
        &self,
        device: DeviceId,
        kps: &[(Vec<u8>, bool)],
        now: i64,
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        if kps.iter().any(|(_, lr)| *lr) {
            sqlx::query("DELETE FROM key_packages WHERE device_id = $1 AND last_resort = 1")
                .bind(device.to_string())
                .execute(&mut *tx)
                .await?;
        }
        insert_key_packages(&mut tx, device, kps, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_posture(
        &self,
        device: DeviceId,
        posture: &wardline_proto::lifecycle::DevicePosture,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE devices SET platform = $2, os_version = $3, compromised = $4, posture_at = $5 WHERE id = $1",
        )
        .bind(device.to_string())
        .bind(&posture.platform)
        .bind(&posture.os_version)
        .bind(posture.compromised as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn put_push_subscription(&self, s: &PushSubscriptionRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO push_subscriptions (device_id, org_id, user_id, endpoint, p256dh, auth, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (device_id) DO UPDATE SET endpoint = excluded.endpoint, p256dh = excluded.p256dh, \
             auth = excluded.auth, created_at = excluded.created_at",
        )
        .bind(s.device_id.to_string())
        .bind(s.org_id.to_string())
        .bind(s.user_id.to_string())
        .bind(&s.endpoint)
        .bind(&s.p256dh)
        .bind(&s.auth)
        .bind(s.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "push subscription"))?;
        Ok(())
    }

    async fn delete_push_subscription(&self, device: DeviceId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM push_subscriptions WHERE device_id = $1")
            .bind(device.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn live_push_subscription(
        &self,
        device: DeviceId,
        now: i64,
    ) -> Result<Option<PushSubscriptionRow>> {
        let row = sqlx::query(
            "SELECT p.device_id, p.org_id, p.user_id, p.endpoint, p.p256dh, p.auth, p.created_at \
             FROM push_subscriptions p JOIN devices d ON d.id = p.device_id \
             WHERE p.device_id = $1 AND d.retired_at IS NULL AND EXISTS ( \
               SELECT 1 FROM sessions s WHERE s.device_id = p.device_id \
               AND s.revoked_at IS NULL AND s.expires_at > $2)",
        )
        .bind(device.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PushSubscriptionRow {
                device_id: uuid_col(&r, "device_id")?.into(),
                org_id: uuid_col(&r, "org_id")?.into(),
                user_id: uuid_col(&r, "user_id")?.into(),
                endpoint: r.try_get("endpoint")?,
                p256dh: r.try_get("p256dh")?,
                auth: r.try_get("auth")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn claim_key_package(&self, device: DeviceId) -> Result<Option<Vec<u8>>> {
        // One-use first, oldest first; DELETE … RETURNING makes the claim atomic,
        // so two adders never get the same one-use package. On PostgreSQL
        // concurrent claimers must skip the rows others are taking: without
        // SKIP LOCKED they all picked the same oldest row, the losers found
        // it gone and answered "no package" (or the last-resort one) while
        // one-use packages were left (the conformance suite found it).
        // SQLite runs one writing statement at a time.
        let sql = match self.backend {
            Backend::Postgres => {
                "DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages WHERE device_id = $1 AND last_resort = 0 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING data"
            }
            Backend::Sqlite => {
                "DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages WHERE device_id = $1 AND last_resort = 0 ORDER BY id LIMIT 1) RETURNING data"
            }
        };
        let row = sqlx::query(sql)
            .bind(device.to_string())
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            return Ok(Some(row.try_get("data")?));
        }
        let row = sqlx::query(
            "SELECT data FROM key_packages WHERE device_id = $1 AND last_resort = 1 ORDER BY id DESC LIMIT 1",
        )
        .bind(device.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get("data")?)).transpose()
    }

    async fn create_conversation(
        &self,
        c: &ConversationRow,
        members: &[UserId],
        devices: &[ConversationDeviceRow],
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO conversations (id, org_id, kind, dek_id, title_enc, patient_ref_enc, direct_key, created_by, created_at, epoch, last_activity_at, lifecycle, patient_ref_bidx, role_id, routed_user, routed_via, care_team_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(c.id.to_string())
        .bind(c.org_id.to_string())
        .bind(c.kind.as_str())
        .bind(&c.dek_id)
        .bind(c.title_enc.clone())
        .bind(c.patient_ref_enc.clone())
        .bind(c.direct_key.clone())
        .bind(c.created_by.to_string())
        .bind(c.created_at)
        .bind(c.epoch)
        .bind(c.last_activity_at)
        .bind(serde_json::to_string(&c.lifecycle).expect("lifecycle serialises"))
        .bind(c.patient_ref_bidx.clone())
        .bind(c.role_id.map(|r| r.to_string()))
        .bind(c.routed_user.map(|r| r.to_string()))
        .bind(c.routed_via.clone())
        .bind(c.care_team_id.map(|r| r.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "direct conversation"))?;
        for m in members {
            sqlx::query(
                "INSERT INTO conversation_members (conversation_id, user_id, added_at) VALUES ($1, $2, $3)",
            )
            .bind(c.id.to_string())
            .bind(m.to_string())
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for d in devices {
            sqlx::query(
                "INSERT INTO conversation_devices (conversation_id, device_id, user_id, state) VALUES ($1, $2, $3, $4)",
            )
            .bind(c.id.to_string())
            .bind(d.device_id.to_string())
            .bind(d.user_id.to_string())
            .bind(d.state.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_conversation(&self, org: OrgId, id: Uuid) -> Result<ConversationRow> {
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        conversation_from_row(&row)
    }

    async fn find_direct(&self, org: OrgId, key: &str) -> Result<Option<ConversationRow>> {
        let row = sqlx::query("SELECT * FROM conversations WHERE direct_key = $1 AND org_id = $2")
            .bind(key)
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| conversation_from_row(&r)).transpose()
    }

    async fn conversation_members(&self, id: Uuid) -> Result<Vec<UserId>> {
        let rows = sqlx::query(
            "SELECT user_id FROM conversation_members WHERE conversation_id = $1 ORDER BY added_at, user_id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| uuid_col(r, "user_id").map(Into::into))
            .collect()
    }

    async fn is_member(&self, id: Uuid, user: UserId) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 AS one FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }

    async fn conversation_devices(&self, id: Uuid) -> Result<Vec<ConversationDeviceRow>> {
        let rows = sqlx::query(
            "SELECT device_id, user_id, state FROM conversation_devices WHERE conversation_id = $1 ORDER BY user_id, device_id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("state")?;
                Ok(ConversationDeviceRow {
                    device_id: (uuid_col(r, "device_id")?).into(),
                    user_id: (uuid_col(r, "user_id")?).into(),
                    state: DeviceState::parse(&s)
                        .ok_or_else(|| StoreError::Corrupt(format!("device state {s:?}")))?,
                })
            })
            .collect()
    }

    async fn user_conversations(&self, org: OrgId, user: UserId) -> Result<Vec<ConversationRow>> {
        let rows = sqlx::query(
            "SELECT c.* FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id \
             WHERE c.org_id = $1 AND m.user_id = $2 ORDER BY c.last_activity_at DESC, c.id",
        )
        .bind(org.to_string())
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    async fn add_member(
        &self,
        conversation: Uuid,
        user: UserId,
        devices: &[DeviceId],
        notice: &MessageRow,
    ) -> Result<(bool, Woken)> {
        let (_writer, mut tx) = self.begin_write().await?;
        Self::lock_conversation(&mut tx, conversation, notice.created_at).await?;
        let added = sqlx::query(
            "INSERT INTO conversation_members (conversation_id, user_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(conversation.to_string())
        .bind(user.to_string())
        .bind(notice.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !added {
            return Ok((false, Vec::new()));
        }
        for d in devices {
            // A device still waiting to be removed (the user left and came back)
            // goes back to waiting to be added.
            sqlx::query(
                "INSERT INTO conversation_devices (conversation_id, device_id, user_id, state) VALUES ($1, $2, $3, 'pending_add') \
                 ON CONFLICT (conversation_id, device_id) DO UPDATE SET state = 'pending_add'",
            )
            .bind(conversation.to_string())
            .bind(d.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        }
        insert_message(&mut tx, notice).await?;
        let woken = self.fan_out_to_members(&mut tx, notice, None).await?;
        tx.commit().await?;
        Ok((true, woken))
    }

    async fn remove_member(
        &self,
        conversation: Uuid,
        user: UserId,
        notice: &MessageRow,
    ) -> Result<(bool, Woken)> {
        let (_writer, mut tx) = self.begin_write().await?;
        Self::lock_conversation(&mut tx, conversation, notice.created_at).await?;
        let removed = sqlx::query(
            "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conversation.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !removed {
            return Ok((false, Vec::new()));
        }
        sqlx::query(
            "DELETE FROM conversation_devices WHERE conversation_id = $1 AND user_id = $2 AND state = 'pending_add'",
        )
        .bind(conversation.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE conversation_devices SET state = 'pending_remove' WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conversation.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
        insert_message(&mut tx, notice).await?;
        let woken = self.fan_out_to_members(&mut tx, notice, None).await?;
        tx.commit().await?;
        Ok((true, woken))
    }

    async fn refound_conversation(
        &self,
        conversation: Uuid,
        device: DeviceId,
        notice: &MessageRow,
    ) -> Result<(bool, Woken)> {
        let (_writer, mut tx) = self.begin_write().await?;
        Self::lock_conversation(&mut tx, conversation, notice.created_at).await?;
        let members: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM conversation_devices WHERE conversation_id = $1 AND state = 'member'",
        )
        .bind(conversation.to_string())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if members > 0
            || Self::device_state(&mut tx, conversation, device).await?
                != Some(DeviceState::PendingAdd)
        {
            return Ok((false, Vec::new()));
        }
        sqlx::query(
            "DELETE FROM conversation_devices WHERE conversation_id = $1 AND state = 'pending_remove'",
        )
        .bind(conversation.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE conversation_devices SET state = 'member' WHERE conversation_id = $1 AND device_id = $2",
        )
        .bind(conversation.to_string())
        .bind(device.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE conversations SET epoch = 0 WHERE id = $1")
            .bind(conversation.to_string())
            .execute(&mut *tx)
            .await?;
        insert_message(&mut tx, notice).await?;
        let woken = self.fan_out_to_members(&mut tx, notice, None).await?;
        tx.commit().await?;
        Ok((true, woken))
    }

    async fn submit(&self, s: &Submission) -> Result<SubmitOutcome> {
        let m = &s.message;
        let sender = m
            .sender_device
            .ok_or_else(|| StoreError::Corrupt("submission without a sender device".into()))?;
        let (_writer, mut tx) = self.begin_write().await?;
        let epoch = Self::lock_conversation(&mut tx, m.conversation_id, m.created_at).await?;
        if let Some(prev) = sqlx::query("SELECT * FROM messages WHERE id = $1")
            .bind(m.id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        {
            let prev = message_from_row(&prev)?;
            return Ok(
                if prev.conversation_id == m.conversation_id && prev.body_hash == m.body_hash {
                    SubmitOutcome::Duplicate {
                        epoch,
                        created_at: prev.created_at,
                        expires_at: prev.expires_at,
                    }
                } else {
                    SubmitOutcome::IdTaken
                },
            );
        }
        let seen =
            sqlx::query("SELECT id FROM messages WHERE conversation_id = $1 AND body_hash = $2")
                .bind(m.conversation_id.to_string())
                .bind(m.body_hash.clone())
                .fetch_optional(&mut *tx)
                .await?;
        if seen.is_some() {
            return Ok(SubmitOutcome::Replayed);
        }
        if Self::device_state(&mut tx, m.conversation_id, sender).await?
            != Some(DeviceState::Member)
        {
            return Ok(SubmitOutcome::NotMember);
        }
        if m.epoch != epoch {
            return Ok(SubmitOutcome::StaleEpoch { current: epoch });
        }
        match m.kind {
            MessageKind::Application => {
                let pending: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM conversation_devices WHERE conversation_id = $1 AND state = 'pending_remove'",
                )
                .bind(m.conversation_id.to_string())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if pending > 0 {
                    return Ok(SubmitOutcome::PendingRemovals);
                }
            }
            MessageKind::Commit => {
                for d in &s.added {
                    if Self::device_state(&mut tx, m.conversation_id, *d).await?
                        != Some(DeviceState::PendingAdd)
                    {
                        return Ok(SubmitOutcome::WrongDevices(
                            "added_devices names a device that is not waiting to be added",
                        ));
                    }
                }
                for d in &s.removed {
                    if Self::device_state(&mut tx, m.conversation_id, *d).await?
                        != Some(DeviceState::PendingRemove)
                    {
                        return Ok(SubmitOutcome::WrongDevices(
                            "removed_devices names a device that is not waiting to be removed",
                        ));
                    }
                }
            }
            MessageKind::Welcome
            | MessageKind::Membership
            | MessageKind::Recall
            | MessageKind::Alert
            | MessageKind::History => {
                return Err(StoreError::Corrupt(
                    "only commits and application messages are submitted".into(),
                ));
            }
        }
        for k in &s.keys {
            insert_key(&mut tx, k).await?;
        }
        insert_message(&mut tx, m).await?;
        if let Some(r) = &s.routed {
            crate::shared_inserts::insert_routed(&mut tx, r).await?;
        }
        let mut recipients = self.fan_out_to_members(&mut tx, m, Some(sender)).await?;
        let mut new_epoch = epoch;
        if m.kind == MessageKind::Commit {
            new_epoch = epoch + 1;
            sqlx::query("UPDATE conversations SET epoch = $2 WHERE id = $1")
                .bind(m.conversation_id.to_string())
                .bind(new_epoch)
                .execute(&mut *tx)
                .await?;
            if let Some(w) = &s.welcome {
                insert_message(&mut tx, w).await?;
                self.fan_out_to(&mut tx, w, &s.added).await?;
                recipients.extend(s.added.iter().copied());
            }
            for d in &s.added {
                sqlx::query(
                    "UPDATE conversation_devices SET state = 'member' WHERE conversation_id = $1 AND device_id = $2",
                )
                .bind(m.conversation_id.to_string())
                .bind(d.to_string())
                .execute(&mut *tx)
                .await?;
            }
            // The devices this commit removes get it too (and nothing after):
            // processing it is how a removed device learns it is out — its
            // copy of the conversation closes instead of waiting for
            // messages that will never come (a member taken out, a
            // break-glass grant that ended).
            if !s.removed.is_empty() {
                self.fan_out_to(&mut tx, m, &s.removed).await?;
                recipients.extend(s.removed.iter().copied());
            }
            for d in &s.removed {
                sqlx::query(
                    "DELETE FROM conversation_devices WHERE conversation_id = $1 AND device_id = $2",
                )
                .bind(m.conversation_id.to_string())
                .bind(d.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(SubmitOutcome::Accepted {
            epoch: new_epoch,
            recipients,
        })
    }

    async fn get_message(&self, conversation: Uuid, id: Uuid) -> Result<MessageRow> {
        let row = sqlx::query("SELECT * FROM messages WHERE id = $1 AND conversation_id = $2")
            .bind(id.to_string())
            .bind(conversation.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        message_from_row(&row)
    }

    async fn inbox_after(
        &self,
        device: DeviceId,
        after: i64,
        limit: i64,
        now: i64,
    ) -> Result<Vec<InboxRow>> {
        // Skipping recalled and expired entries leaves gaps in what a device
        // sees, never in positions: its cursor still moves past them.
        let rows = sqlx::query(
            "SELECT i.seq, m.*, k.id AS k_id, k.org_id AS k_org_id, k.kek_id AS k_kek_id, \
               k.wrapped AS k_wrapped, k.created_at AS k_created_at \
             FROM inbox i JOIN messages m ON m.id = i.message_id LEFT JOIN data_keys k ON k.id = m.dek_id \
             WHERE i.device_id = $1 AND i.seq > $2 AND m.recalled_at IS NULL \
               AND (m.expires_at IS NULL OR m.expires_at > $4) ORDER BY i.seq LIMIT $3",
        )
        .bind(device.to_string())
        .bind(after)
        .bind(limit)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InboxRow {
                    seq: r.try_get("seq")?,
                    message: message_from_row(r)?,
                    key: joined_key(r)?,
                })
            })
            .collect()
    }

    async fn ack(&self, device: DeviceId, up_to: i64, now: i64) -> Result<Option<i64>> {
        let (_writer, mut tx) = self.begin_write().await?;
        let acked = ack_in(&mut tx, device, up_to, now).await?;
        tx.commit().await?;
        Ok(acked)
    }

    async fn ack_many(&self, acks: &[(DeviceId, i64)], now: i64) -> Result<()> {
        if acks.is_empty() {
            return Ok(());
        }
        let mut acks = acks.to_vec();
        // One lock order for every writer (PostgreSQL: no deadlocks between batches).
        acks.sort();
        let (_writer, mut tx) = self.begin_write().await?;
        for (device, up_to) in acks {
            ack_in(&mut tx, device, up_to, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mark_read(
        &self,
        device: DeviceId,
        conversation: Uuid,
        mark: ReadMark<'_>,
        now: i64,
    ) -> Result<Option<i64>> {
        let (_writer, mut tx) = self.begin_write().await?;
        let seq_of = async |tx: &mut Transaction<'static, Any>,
                            message: Uuid|
               -> Result<Option<i64>> {
            // The message or, on a device that joined later, its copy
            // shared again (the device shows it under the original's id).
            Ok(sqlx::query(
                "SELECT seq FROM inbox WHERE device_id = $1 AND conversation_id = $3 AND message_id IN \
                 (SELECT id FROM messages WHERE conversation_id = $3 AND (id = $2 OR shared_again = $2)) \
                 ORDER BY seq LIMIT 1",
            )
            .bind(device.to_string())
            .bind(message.to_string())
            .bind(conversation.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| row.try_get::<i64, _>("seq"))
            .transpose()?)
        };
        let mut marked = 0;
        match mark {
            ReadMark::Shown(ids) => {
                for id in ids {
                    let Some(seq) = seq_of(&mut tx, *id).await? else {
                        return Ok(None);
                    };
                    marked += sqlx::query(
                        "UPDATE inbox SET read_at = $3, delivered_at = COALESCE(delivered_at, $3) \
                         WHERE device_id = $1 AND seq = $2 AND read_at IS NULL \
                         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = inbox.message_id AND m.recalled_at IS NOT NULL)",
                    )
                    .bind(device.to_string())
                    .bind(seq)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected() as i64;
                }
            }
            ReadMark::UpTo(message) => {
                let Some(seq) = seq_of(&mut tx, message).await? else {
                    return Ok(None);
                };
                marked = sqlx::query(
                    "UPDATE inbox SET read_at = $4, delivered_at = COALESCE(delivered_at, $4) \
                     WHERE device_id = $1 AND conversation_id = $2 AND seq <= $3 AND read_at IS NULL \
                     AND message_id IN (SELECT id FROM messages WHERE conversation_id = $2 AND priority = 'routine' \
                     AND recalled_at IS NULL)",
                )
                .bind(device.to_string())
                .bind(conversation.to_string())
                .bind(seq)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected() as i64;
            }
        }
        tx.commit().await?;
        Ok(Some(marked))
    }

    async fn receipts(&self, message: Uuid) -> Result<Vec<ReceiptRow>> {
        let rows = sqlx::query(
            "SELECT i.device_id, d.user_id, i.delivered_at, i.read_at, COALESCE(p.share_read_receipts, 1) AS share \
             FROM inbox i JOIN devices d ON d.id = i.device_id \
             LEFT JOIN messaging_preferences p ON p.user_id = d.user_id \
             WHERE i.message_id IN (SELECT id FROM messages WHERE id = $1 OR shared_again = $1) \
             ORDER BY d.user_id, i.device_id",
        )
        .bind(message.to_string())
        .fetch_all(&self.pool)
        .await?;
        // A device that holds the message and a copy shared again later has
        // it once: the earliest delivery and reading of either.
        let mut out: Vec<ReceiptRow> = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = ReceiptRow {
                user_id: (uuid_col(r, "user_id")?).into(),
                device_id: (uuid_col(r, "device_id")?).into(),
                delivered_at: r.try_get("delivered_at")?,
                read_at: r.try_get("read_at")?,
                shares_read_receipts: bool_col(r, "share")?,
            };
            match out.last_mut() {
                Some(last) if last.device_id == row.device_id => {
                    let earliest = |a: Option<i64>, b: Option<i64>| match (a, b) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    last.delivered_at = earliest(last.delivered_at, row.delivered_at);
                    last.read_at = earliest(last.read_at, row.read_at);
                }
                _ => out.push(row),
            }
        }
        Ok(out)
    }

    async fn share_read_receipts(&self, user: UserId) -> Result<bool> {
        let row =
            sqlx::query("SELECT share_read_receipts FROM messaging_preferences WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.map_or(Ok(true), |r| bool_col(&r, "share_read_receipts"))
    }

    async fn set_share_read_receipts(&self, user: UserId, share: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO messaging_preferences (user_id, share_read_receipts) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET share_read_receipts = $2",
        )
        .bind(user.to_string())
        .bind(share as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_attachment(&self, a: &AttachmentRow, key: &DataKeyRow) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        insert_key(&mut tx, key).await?;
        sqlx::query(
            "INSERT INTO attachments (id, conversation_id, uploader_device, size, data, created_at, dek_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(a.id.to_string())
        .bind(a.conversation_id.to_string())
        .bind(a.uploader_device.to_string())
        .bind(a.data.len() as i64)
        .bind(a.data.clone())
        .bind(a.created_at)
        .bind(a.dek_id.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_attachment(
        &self,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<(AttachmentRow, Option<DataKeyRow>)> {
        let row = sqlx::query(
            "SELECT a.*, k.id AS k_id, k.org_id AS k_org_id, k.kek_id AS k_kek_id, \
               k.wrapped AS k_wrapped, k.created_at AS k_created_at \
             FROM attachments a LEFT JOIN data_keys k ON k.id = a.dek_id \
             WHERE a.id = $1 AND a.conversation_id = $2",
        )
        .bind(id.to_string())
        .bind(conversation.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok((
            AttachmentRow {
                id: uuid_col(&row, "id")?,
                conversation_id: uuid_col(&row, "conversation_id")?,
                uploader_device: (uuid_col(&row, "uploader_device")?).into(),
                data: row.try_get("data")?,
                created_at: row.try_get("created_at")?,
                dek_id: row.try_get("dek_id")?,
            },
            joined_key(&row)?,
        ))
    }
}
