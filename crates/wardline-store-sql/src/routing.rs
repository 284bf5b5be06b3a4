//! [`RoutingStore`] on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;
use wardline_proto::messaging::Priority;
use wardline_proto::routing::{
    CareTeam, ClinicalRole, Department, EscalationAction, EscalationState, Notification, Presence,
    PresenceStatus, Shift,
};
use wardline_proto::{DeviceId, OrgId, UserId};

use crate::shared_inserts::{ids_json, insert_key, insert_message};
use crate::{SqlStore, bool_col, map_unique, opt_uuid, uuid_col};
use wardline_store::messaging::{MessageRow, Woken};
use wardline_store::routing::*;
use wardline_store::{DataKeyRow, Result, StoreError};

fn ids_from(row: &AnyRow, col: &str) -> Result<Vec<Uuid>> {
    serde_json::from_str(&row.try_get::<String, _>(col)?)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn routed_from_row(row: &AnyRow) -> Result<RoutedRow> {
    let priority: String = row.try_get("priority")?;
    let state: String = row.try_get("state")?;
    Ok(RoutedRow {
        message_id: uuid_col(row, "message_id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        conversation_id: uuid_col(row, "conversation_id")?,
        sender_user: (uuid_col(row, "sender_user")?).into(),
        priority: Priority::parse(&priority)
            .ok_or_else(|| StoreError::Corrupt(format!("priority {priority:?}")))?,
        role_id: opt_uuid(row, "role_id")?,
        resolved_user: (opt_uuid(row, "resolved_user")?).map(Into::into),
        resolved_via: row.try_get("resolved_via")?,
        department_id: opt_uuid(row, "department_id")?,
        state: EscalationState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("escalation state {state:?}")))?,
        step: row.try_get("step")?,
        next_at: row.try_get("next_at")?,
        lease_until: row.try_get("lease_until")?,
        notified: (ids_from(row, "notified")?)
            .into_iter()
            .map(Into::into)
            .collect(),
        merged_into: opt_uuid(row, "merged_into")?,
        escalations: row.try_get("escalations")?,
        acked_by: (opt_uuid(row, "acked_by")?).map(Into::into),
        acked_device: (opt_uuid(row, "acked_device")?).map(Into::into),
        acked_at: row.try_get("acked_at")?,
        created_at: row.try_get("created_at")?,
    })
}

fn shift_from_row(row: &AnyRow) -> Result<Shift> {
    Ok(Shift {
        id: uuid_col(row, "id")?,
        role_id: uuid_col(row, "role_id")?,
        user_id: uuid_col(row, "user_id")?,
        backup_user_id: opt_uuid(row, "backup_user_id")?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        source: row.try_get("source")?,
    })
}

fn feed_from_row(row: &AnyRow) -> Result<FeedRow> {
    Ok(FeedRow {
        role_id: uuid_col(row, "role_id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        dek_id: row.try_get("dek_id")?,
        url_enc: row.try_get("url_enc")?,
        host: row.try_get("host")?,
        days: row.try_get("days")?,
        subscribed_at: row.try_get("subscribed_at")?,
        next_fetch_at: row.try_get("next_fetch_at")?,
        last_fetched_at: row.try_get("last_fetched_at")?,
        last_result: row.try_get("last_result")?,
    })
}

fn grant_from_row(row: &AnyRow) -> Result<GrantRow> {
    Ok(GrantRow {
        id: uuid_col(row, "id")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        conversation_id: uuid_col(row, "conversation_id")?,
        user_id: (uuid_col(row, "user_id")?).into(),
        dek_id: row.try_get("dek_id")?,
        reason_enc: row.try_get("reason_enc")?,
        granted_at: row.try_get("granted_at")?,
        expires_at: row.try_get("expires_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

/// Inserts `(owner, user)` rows of a membership table (care-team members,
/// role holders) in the caller's transaction.
async fn insert_links(
    tx: &mut Transaction<'_, Any>,
    sql: &'static str,
    owner: Uuid,
    users: &[Uuid],
    at: i64,
) -> Result<()> {
    for u in users {
        sqlx::query(sql)
            .bind(owner.to_string())
            .bind(u.to_string())
            .bind(at)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

const TEAM_MEMBER: &str =
    "INSERT INTO care_team_members (team_id, user_id, added_at) VALUES ($1, $2, $3)";
const ROLE_HOLDER: &str =
    "INSERT INTO role_holders (role_id, user_id, added_at) VALUES ($1, $2, $3)";
const TEAM_MEMBERS: &str =
    "SELECT user_id FROM care_team_members WHERE team_id = $1 ORDER BY user_id";
const ROLE_HOLDERS: &str = "SELECT user_id FROM role_holders WHERE role_id = $1 ORDER BY user_id";

/// Deletes a role's schedule feed and the data key its URL was sealed under
/// (so the sealed URL is unreadable from then on); false if it had none.
async fn remove_feed(tx: &mut Transaction<'_, Any>, org: OrgId, role: Uuid) -> Result<bool> {
    let Some(row) =
        sqlx::query("SELECT dek_id FROM schedule_feeds WHERE role_id = $1 AND org_id = $2")
            .bind(role.to_string())
            .bind(org.to_string())
            .fetch_optional(&mut **tx)
            .await?
    else {
        return Ok(false);
    };
    let key: String = row.try_get("dek_id")?;
    sqlx::query("DELETE FROM schedule_feeds WHERE role_id = $1")
        .bind(role.to_string())
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM data_keys WHERE id = $1")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

impl SqlStore {
    /// The users of one owner in a membership table (`TEAM_MEMBERS`, `ROLE_HOLDERS`).
    async fn members_of(&self, sql: &'static str, id: Uuid) -> Result<Vec<Uuid>> {
        sqlx::query(sql)
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| uuid_col(r, "user_id"))
            .collect()
    }

    async fn team_from_row(&self, row: &AnyRow) -> Result<CareTeam> {
        let id = uuid_col(row, "id")?;
        Ok(CareTeam {
            id,
            name: row.try_get("name")?,
            department_id: opt_uuid(row, "department_id")?,
            members: self.members_of(TEAM_MEMBERS, id).await?,
            created_at: row.try_get("created_at")?,
        })
    }

    async fn role_from_row(&self, row: &AnyRow) -> Result<ClinicalRole> {
        let id = uuid_col(row, "id")?;
        let escalation: Option<String> = row.try_get("escalation")?;
        Ok(ClinicalRole {
            id,
            name: row.try_get("name")?,
            department_id: opt_uuid(row, "department_id")?,
            fallback_role_id: opt_uuid(row, "fallback_role_id")?,
            holders: self.members_of(ROLE_HOLDERS, id).await?,
            escalation: escalation
                .map(|e| serde_json::from_str(&e))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("role escalation: {e}")))?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[async_trait]
impl RoutingStore for SqlStore {
    async fn insert_department(&self, org: OrgId, d: &Department) -> Result<()> {
        sqlx::query(
            "INSERT INTO departments (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(d.id.to_string())
        .bind(org.to_string())
        .bind(&d.name)
        .bind(d.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "department name"))?;
        Ok(())
    }

    async fn list_departments(&self, org: OrgId) -> Result<Vec<Department>> {
        sqlx::query("SELECT * FROM departments WHERE org_id = $1 ORDER BY name")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(Department {
                    id: uuid_col(r, "id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn insert_team(&self, org: OrgId, t: &CareTeam) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO care_teams (id, org_id, department_id, name, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(t.id.to_string())
        .bind(org.to_string())
        .bind(t.department_id.map(|d| d.to_string()))
        .bind(&t.name)
        .bind(t.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "care team name"))?;
        insert_links(&mut tx, TEAM_MEMBER, t.id, &t.members, t.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_teams(&self, org: OrgId) -> Result<Vec<CareTeam>> {
        let rows = sqlx::query("SELECT * FROM care_teams WHERE org_id = $1 ORDER BY name")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.team_from_row(r).await?);
        }
        Ok(out)
    }

    async fn get_team(&self, org: OrgId, id: Uuid) -> Result<CareTeam> {
        let row = sqlx::query("SELECT * FROM care_teams WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.team_from_row(&row).await
    }

    async fn add_team_member(&self, org: OrgId, team: Uuid, user: UserId, at: i64) -> Result<bool> {
        self.get_team(org, team).await?;
        let done = sqlx::query(
            "INSERT INTO care_team_members (team_id, user_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_team_member(&self, org: OrgId, team: Uuid, user: UserId) -> Result<bool> {
        self.get_team(org, team).await?;
        let done = sqlx::query("DELETE FROM care_team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_role(&self, org: OrgId, r: &ClinicalRole) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO clinical_roles (id, org_id, department_id, name, fallback_role_id, escalation, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.id.to_string())
        .bind(org.to_string())
        .bind(r.department_id.map(|d| d.to_string()))
        .bind(&r.name)
        .bind(r.fallback_role_id.map(|d| d.to_string()))
        .bind(
            r.escalation
                .as_ref()
                .map(|e| serde_json::to_string(e).expect("escalation serialises")),
        )
        .bind(r.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "clinical role name"))?;
        insert_links(&mut tx, ROLE_HOLDER, r.id, &r.holders, r.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_role(&self, org: OrgId, r: &ClinicalRole, at: i64) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE clinical_roles SET name = $3, department_id = $4, fallback_role_id = $5, escalation = $6 \
             WHERE id = $1 AND org_id = $2",
        )
        .bind(r.id.to_string())
        .bind(org.to_string())
        .bind(&r.name)
        .bind(r.department_id.map(|d| d.to_string()))
        .bind(r.fallback_role_id.map(|d| d.to_string()))
        .bind(
            r.escalation
                .as_ref()
                .map(|e| serde_json::to_string(e).expect("escalation serialises")),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "clinical role name"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM role_holders WHERE role_id = $1")
            .bind(r.id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_links(&mut tx, ROLE_HOLDER, r.id, &r.holders, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_roles(&self, org: OrgId) -> Result<Vec<ClinicalRole>> {
        let rows = sqlx::query("SELECT * FROM clinical_roles WHERE org_id = $1 ORDER BY name")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.role_from_row(r).await?);
        }
        Ok(out)
    }

    async fn get_role(&self, org: OrgId, id: Uuid) -> Result<ClinicalRole> {
        let row = sqlx::query("SELECT * FROM clinical_roles WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.role_from_row(&row).await
    }

    async fn set_presence(&self, org: OrgId, p: &Presence) -> Result<()> {
        sqlx::query(
            "INSERT INTO presence (user_id, org_id, status, until_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET status = $3, until_at = $4, updated_at = $5",
        )
        .bind(p.user_id.to_string())
        .bind(org.to_string())
        .bind(p.status.as_str())
        .bind(p.until)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_presence(&self, org: OrgId) -> Result<Vec<Presence>> {
        sqlx::query("SELECT * FROM presence WHERE org_id = $1")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(Presence {
                    user_id: uuid_col(r, "user_id")?,
                    status: PresenceStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("presence {status:?}")))?,
                    until: r.try_get("until_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn insert_shift(&self, org: OrgId, s: &Shift) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        insert_shift(&mut tx, org, s).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn replace_imported(
        &self,
        org: OrgId,
        role: Uuid,
        since: i64,
        shifts: &[Shift],
    ) -> Result<Vec<Shift>> {
        let (_writer, mut tx) = self.begin_write().await?;
        let old = sqlx::query(
            "DELETE FROM shifts WHERE org_id = $1 AND role_id = $2 AND substr(source, 1, 5) = 'ical:' AND ends_at > $3 \
             RETURNING *",
        )
        .bind(org.to_string())
        .bind(role.to_string())
        .bind(since)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(shift_from_row)
        .collect::<Result<Vec<_>>>()?;
        for s in shifts {
            insert_shift(&mut tx, org, s).await?;
        }
        tx.commit().await?;
        Ok(old)
    }

    async fn list_shifts(
        &self,
        org: OrgId,
        role: Uuid,
        from: i64,
        until: i64,
    ) -> Result<Vec<Shift>> {
        sqlx::query(
            "SELECT * FROM shifts WHERE org_id = $1 AND role_id = $2 AND starts_at < $4 AND ends_at > $3 \
             ORDER BY starts_at, id",
        )
        .bind(org.to_string())
        .bind(role.to_string())
        .bind(from)
        .bind(until)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(shift_from_row)
        .collect()
    }

    async fn delete_shift(&self, org: OrgId, role: Uuid, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM shifts WHERE id = $1 AND org_id = $2 AND role_id = $3")
            .bind(id.to_string())
            .bind(org.to_string())
            .bind(role.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_feed(&self, f: &FeedRow, key: &DataKeyRow) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        // The earlier subscription goes, with its URL's key.
        remove_feed(&mut tx, f.org_id, f.role_id).await?;
        insert_key(&mut tx, key).await?;
        sqlx::query(
            "INSERT INTO schedule_feeds (role_id, org_id, dek_id, url_enc, host, days, subscribed_at, next_fetch_at, last_fetched_at, last_result) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(f.role_id.to_string())
        .bind(f.org_id.to_string())
        .bind(&f.dek_id)
        .bind(f.url_enc.clone())
        .bind(&f.host)
        .bind(f.days)
        .bind(f.subscribed_at)
        .bind(f.next_fetch_at)
        .bind(f.last_fetched_at)
        .bind(f.last_result.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_feed(&self, org: OrgId, role: Uuid) -> Result<FeedRow> {
        let row = sqlx::query("SELECT * FROM schedule_feeds WHERE role_id = $1 AND org_id = $2")
            .bind(role.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        feed_from_row(&row)
    }

    async fn delete_feed(&self, org: OrgId, role: Uuid) -> Result<bool> {
        let (_writer, mut tx) = self.begin_write().await?;
        let removed = remove_feed(&mut tx, org, role).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn claim_feeds(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<FeedRow>> {
        let rows = sqlx::query(
            "UPDATE schedule_feeds SET lease_until = $2 WHERE role_id IN (\
               SELECT role_id FROM schedule_feeds WHERE next_fetch_at <= $1 \
               AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_fetch_at LIMIT $3) \
             AND next_fetch_at <= $1 AND (lease_until IS NULL OR lease_until < $1) RETURNING *",
        )
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut feeds = rows.iter().map(feed_from_row).collect::<Result<Vec<_>>>()?;
        // RETURNING does not keep the subquery's order.
        feeds.sort_by_key(|f| (f.next_fetch_at, f.role_id));
        Ok(feeds)
    }

    async fn feed_fetched(
        &self,
        role: Uuid,
        at: i64,
        result: &str,
        next_fetch_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE schedule_feeds SET last_fetched_at = $2, last_result = $3, next_fetch_at = $4, \
             lease_until = NULL WHERE role_id = $1",
        )
        .bind(role.to_string())
        .bind(at)
        .bind(result)
        .bind(next_fetch_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn role_conversation(
        &self,
        org: OrgId,
        sender: UserId,
        role: Uuid,
        user: UserId,
    ) -> Result<Option<Uuid>> {
        sqlx::query(
            "SELECT id FROM conversations WHERE org_id = $1 AND created_by = $2 AND role_id = $3 \
             AND routed_user = $4 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(org.to_string())
        .bind(sender.to_string())
        .bind(role.to_string())
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| uuid_col(&r, "id"))
        .transpose()
    }

    async fn set_routing(
        &self,
        conversation: Uuid,
        role: Uuid,
        user: UserId,
        via: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE conversations SET role_id = $2, routed_user = $3, routed_via = $4 WHERE id = $1",
        )
        .bind(conversation.to_string())
        .bind(role.to_string())
        .bind(user.to_string())
        .bind(via)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn conversations_by_patient(
        &self,
        org: OrgId,
        patient_bidx: &str,
    ) -> Result<Vec<(Uuid, Option<Uuid>)>> {
        sqlx::query(
            "SELECT id, care_team_id FROM conversations WHERE org_id = $1 AND patient_ref_bidx = $2 \
             ORDER BY created_at LIMIT 100",
        )
        .bind(org.to_string())
        .bind(patient_bidx)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((uuid_col(r, "id")?, opt_uuid(r, "care_team_id")?)))
        .collect()
    }

    async fn get_routed(&self, org: OrgId, message: Uuid) -> Result<RoutedRow> {
        let row =
            sqlx::query("SELECT * FROM routed_messages WHERE message_id = $1 AND org_id = $2")
                .bind(message.to_string())
                .bind(org.to_string())
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
        routed_from_row(&row)
    }

    async fn open_in_conversation(
        &self,
        conversation: Uuid,
        priority: Priority,
    ) -> Result<Option<RoutedRow>> {
        // A STAT joins only an open STAT; an urgent message joins either.
        sqlx::query(
            "SELECT * FROM routed_messages WHERE conversation_id = $1 AND state = 'open' \
             AND (priority = 'stat' OR $2 <> 'stat') ORDER BY created_at LIMIT 1",
        )
        .bind(conversation.to_string())
        .bind(priority.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| routed_from_row(&r))
        .transpose()
    }

    async fn claim_due(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<RoutedRow>> {
        // The outer condition repeats the inner one: PostgreSQL re-checks it
        // on the locked row, so two nodes never hold the same job.
        let rows = sqlx::query(
            "UPDATE routed_messages SET lease_until = $2 WHERE message_id IN (\
               SELECT message_id FROM routed_messages WHERE state = 'open' AND next_at <= $1 \
               AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_at LIMIT $3) \
             AND state = 'open' AND next_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
             RETURNING *",
        )
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut due = rows
            .iter()
            .map(routed_from_row)
            .collect::<Result<Vec<_>>>()?;
        // RETURNING does not keep the subquery's order: under a backlog the
        // step that fell due first is taken first.
        due.sort_by_key(|r| (r.next_at, r.message_id));
        Ok(due)
    }

    async fn open_role_escalations(&self) -> Result<Vec<RoutedRow>> {
        sqlx::query(
            "SELECT * FROM routed_messages WHERE state = 'open' AND role_id IS NOT NULL ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(routed_from_row)
        .collect()
    }

    async fn advance(
        &self,
        r: &RoutedRow,
        from_step: i64,
        unleased_at: Option<i64>,
        event: Option<&EscalationEventRow>,
    ) -> Result<bool> {
        let (_writer, mut tx) = self.begin_write().await?;
        // `unleased_at` of i64::MIN: no lease condition (the caller holds it).
        let done = sqlx::query(
            "UPDATE routed_messages SET step = $2, next_at = $3, state = $4, notified = $5, \
               escalations = $6, lease_until = NULL WHERE message_id = $1 AND state = 'open' \
               AND step = $7 AND (lease_until IS NULL OR lease_until < $8 OR $8 = $9)",
        )
        .bind(r.message_id.to_string())
        .bind(r.step)
        .bind(r.next_at)
        .bind(r.state.as_str())
        .bind(ids_json(&r.notified))
        .bind(r.escalations)
        .bind(from_step)
        .bind(unleased_at.unwrap_or(i64::MIN))
        .bind(i64::MIN)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(e) = event {
            sqlx::query(
                "INSERT INTO escalation_events (id, message_id, at, action, users, sms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            // Time-ordered ids: steps caught up in one instant keep their order.
            .bind(Uuid::now_v7().to_string())
            .bind(e.message_id.to_string())
            .bind(e.at)
            .bind(e.action.as_str())
            .bind(ids_json(&e.users))
            .bind(i64::from(e.sms))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn escalation_events(&self, message: Uuid) -> Result<Vec<EscalationEventRow>> {
        sqlx::query("SELECT * FROM escalation_events WHERE message_id = $1 ORDER BY at, id")
            .bind(message.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let action: String = r.try_get("action")?;
                Ok(EscalationEventRow {
                    message_id: uuid_col(r, "message_id")?,
                    at: r.try_get("at")?,
                    action: EscalationAction::parse(&action)
                        .ok_or_else(|| StoreError::Corrupt(format!("action {action:?}")))?,
                    users: (ids_from(r, "users")?)
                        .into_iter()
                        .map(Into::into)
                        .collect(),
                    sms: bool_col(r, "sms")?,
                })
            })
            .collect()
    }

    async fn sms_sent_to(&self, user: UserId, since: i64) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM escalation_events WHERE sms = 1 AND at >= $2 \
             AND users LIKE '%' || $1 || '%'",
        )
        .bind(user.to_string())
        .bind(since)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    async fn acknowledge(
        &self,
        message: Uuid,
        user: UserId,
        device: DeviceId,
        at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE routed_messages SET state = 'acknowledged', acked_by = $2, acked_device = $3, \
               acked_at = $4, next_at = NULL, lease_until = NULL \
             WHERE (message_id = $1 OR merged_into = $1) AND state IN ('open', 'merged', 'exhausted')",
        )
        .bind(message.to_string())
        .bind(user.to_string())
        .bind(device.to_string())
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn routed_between(&self, org: OrgId, since: i64, until: i64) -> Result<Vec<RoutedRow>> {
        sqlx::query(
            "SELECT * FROM routed_messages WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 \
             ORDER BY created_at",
        )
        .bind(org.to_string())
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(routed_from_row)
        .collect()
    }

    async fn insert_notice(&self, notice: &MessageRow, devices: &[DeviceId]) -> Result<Woken> {
        let (_writer, mut tx) = self.begin_write().await?;
        insert_message(&mut tx, notice).await?;
        self.fan_out_to(&mut tx, notice, devices).await?;
        tx.commit().await?;
        Ok(devices.to_vec())
    }

    async fn insert_grant(&self, g: &GrantRow, key: &DataKeyRow) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        insert_key(&mut tx, key).await?;
        sqlx::query(
            "INSERT INTO break_glass (id, org_id, conversation_id, user_id, dek_id, reason_enc, granted_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(g.id.to_string())
        .bind(g.org_id.to_string())
        .bind(g.conversation_id.to_string())
        .bind(g.user_id.to_string())
        .bind(&g.dek_id)
        .bind(g.reason_enc.clone())
        .bind(g.granted_at)
        .bind(g.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn active_grant(
        &self,
        conversation: Uuid,
        user: UserId,
        now: i64,
    ) -> Result<Option<GrantRow>> {
        sqlx::query(
            "SELECT * FROM break_glass WHERE conversation_id = $1 AND user_id = $2 \
             AND ended_at IS NULL AND expires_at > $3 ORDER BY granted_at DESC LIMIT 1",
        )
        .bind(conversation.to_string())
        .bind(user.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| grant_from_row(&r))
        .transpose()
    }

    async fn list_grants(&self, org: OrgId) -> Result<Vec<GrantRow>> {
        sqlx::query(
            "SELECT * FROM break_glass WHERE org_id = $1 ORDER BY granted_at DESC LIMIT 500",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    async fn expired_grants(&self, now: i64) -> Result<Vec<GrantRow>> {
        sqlx::query("SELECT * FROM break_glass WHERE ended_at IS NULL AND expires_at <= $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(grant_from_row)
            .collect()
    }

    async fn end_grant(&self, id: Uuid, at: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE break_glass SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
                .bind(id.to_string())
                .bind(at)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_notification(&self, org: OrgId, n: &Notification) -> Result<()> {
        sqlx::query(
            "INSERT INTO notifications (id, org_id, kind, subject, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(n.id.to_string())
        .bind(org.to_string())
        .bind(&n.kind)
        .bind(n.subject.to_string())
        .bind(&n.detail)
        .bind(n.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_notifications(&self, org: OrgId) -> Result<Vec<Notification>> {
        sqlx::query(
            "SELECT * FROM notifications WHERE org_id = $1 ORDER BY created_at DESC LIMIT 500",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Notification {
                id: uuid_col(r, "id")?,
                kind: r.try_get("kind")?,
                subject: uuid_col(r, "subject")?,
                detail: r.try_get("detail")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
    }
}

async fn insert_shift(tx: &mut Transaction<'_, Any>, org: OrgId, s: &Shift) -> Result<()> {
    sqlx::query(
        "INSERT INTO shifts (id, org_id, role_id, user_id, backup_user_id, starts_at, ends_at, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(s.id.to_string())
    .bind(org.to_string())
    .bind(s.role_id.to_string())
    .bind(s.user_id.to_string())
    .bind(s.backup_user_id.map(|u| u.to_string()))
    .bind(s.starts_at)
    .bind(s.ends_at)
    .bind(&s.source)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
