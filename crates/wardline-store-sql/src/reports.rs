//! [`ReportStore`] on SQLite and PostgreSQL: every aggregation is one
//! statement both engines run as written (integer division for UTC days,
//! window functions for nearest-rank percentiles, `||` for text), so the
//! report is the same figure on either (`reports_agree_on_both_engines`).

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use wardline_proto::messaging::Priority;
use wardline_proto::{DeviceId, OrgId};

use crate::SqlStore;
use wardline_store::Result;
use wardline_store::reports::*;

fn day_counts(rows: &[AnyRow]) -> Result<Vec<DayCount>> {
    rows.iter()
        .map(|r| {
            Ok(DayCount {
                day: r.try_get("day")?,
                key: r.try_get("key")?,
                count: r.try_get("n")?,
            })
        })
        .collect()
}

/// Messages per day by the sender's role list and the conversation's
/// clinical role and care team, in one pass over the range (the covering
/// index `messages_report` holds every column of `messages` it reads).
const MESSAGES_PER_DAY: &str = "SELECT m.created_at / 86400 AS day, u.roles AS roles, \
       c.role_id AS role_id, c.care_team_id AS care_team_id, COUNT(*) AS n \
     FROM messages m \
     JOIN conversations c ON c.id = m.conversation_id \
     JOIN users u ON u.id = m.sender_user \
     WHERE m.created_at >= $2 AND m.created_at < $3 AND m.kind = 'application' AND c.org_id = $1 \
     GROUP BY m.created_at / 86400, u.roles, c.role_id, c.care_team_id";

/// Sent → first read by someone else → acknowledged, per group; `{group}`
/// is a column of `routed_messages`. One row per (group, kind): `all` (the
/// count), `read` and `ack` (count and nearest-rank p50/p90: the smallest
/// time whose rank r has r/n ≥ p).
fn response_sql(group: &str) -> String {
    format!(
        "WITH r AS ( \
           SELECT rm.{group} AS grp, rm.created_at AS sent, rm.acked_at AS acked, \
             (SELECT MIN(i.read_at) FROM inbox i JOIN devices d ON d.id = i.device_id \
               WHERE i.message_id = rm.message_id AND d.user_id <> rm.sender_user) AS first_read \
           FROM routed_messages rm \
           WHERE rm.org_id = $1 AND rm.merged_into IS NULL AND rm.created_at >= $2 AND rm.created_at < $3 \
         ), reads AS ( \
           SELECT grp, first_read - sent AS d, \
             ROW_NUMBER() OVER (PARTITION BY grp ORDER BY first_read - sent) AS rn, \
             COUNT(*) OVER (PARTITION BY grp) AS n \
           FROM r WHERE first_read IS NOT NULL \
         ), acks AS ( \
           SELECT grp, acked - sent AS d, \
             ROW_NUMBER() OVER (PARTITION BY grp ORDER BY acked - sent) AS rn, \
             COUNT(*) OVER (PARTITION BY grp) AS n \
           FROM r WHERE acked IS NOT NULL \
         ) \
         SELECT grp, 'all' AS kind, COUNT(*) AS n, CAST(NULL AS BIGINT) AS p50, CAST(NULL AS BIGINT) AS p90 \
           FROM r GROUP BY grp \
         UNION ALL \
         SELECT grp, 'read' AS kind, MAX(n) AS n, \
           MIN(CASE WHEN rn * 100 >= n * 50 THEN d END) AS p50, \
           MIN(CASE WHEN rn * 100 >= n * 90 THEN d END) AS p90 \
           FROM reads GROUP BY grp \
         UNION ALL \
         SELECT grp, 'ack' AS kind, MAX(n) AS n, \
           MIN(CASE WHEN rn * 100 >= n * 50 THEN d END) AS p50, \
           MIN(CASE WHEN rn * 100 >= n * 90 THEN d END) AS p90 \
           FROM acks GROUP BY grp"
    )
}

static RESPONSES_BY_ROLE: LazyLock<String> = LazyLock::new(|| response_sql("role_id"));
static RESPONSES_BY_DEPARTMENT: LazyLock<String> = LazyLock::new(|| response_sql("department_id"));

const ESCALATIONS: &str = "SELECT created_at / 86400 AS day, \
       SUM(CASE WHEN priority = 'stat' THEN 1 ELSE 0 END) AS stat, \
       SUM(CASE WHEN priority = 'urgent' THEN 1 ELSE 0 END) AS urgent, \
       SUM(CASE WHEN escalations > 0 THEN 1 ELSE 0 END) AS escalated, \
       SUM(CASE WHEN state IN ('open', 'exhausted') THEN 1 ELSE 0 END) AS unacknowledged \
     FROM routed_messages \
     WHERE org_id = $1 AND merged_into IS NULL AND priority IN ('stat', 'urgent') \
       AND created_at >= $2 AND created_at < $3 \
     GROUP BY created_at / 86400";

/// A session counts on the day it began and the day of its last request.
const ACTIVE: &str = "SELECT day, COUNT(DISTINCT user_id) AS users, COUNT(DISTINCT device_id) AS devices \
     FROM ( \
       SELECT created_at / 86400 AS day, user_id, device_id FROM sessions \
         WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 \
       UNION \
       SELECT last_seen_at / 86400 AS day, user_id, device_id FROM sessions \
         WHERE org_id = $1 AND last_seen_at >= $2 AND last_seen_at < $3 \
     ) a GROUP BY day";

const TEXTING: &str = "SELECT created_at / 86400 AS day, 'sent' AS key, COUNT(*) AS n FROM sms_outbox \
       WHERE org_id = $1 AND status IN ('sent', 'delivered') AND created_at >= $2 AND created_at < $3 \
       GROUP BY created_at / 86400 \
     UNION ALL \
     SELECT created_at / 86400 AS day, 'failed' AS key, COUNT(*) AS n FROM sms_outbox \
       WHERE org_id = $1 AND status IN ('failed', 'undelivered') AND created_at >= $2 AND created_at < $3 \
       GROUP BY created_at / 86400 \
     UNION ALL \
     SELECT since / 86400 AS day, 'opt_outs' AS key, COUNT(*) AS n FROM sms_opt_outs \
       WHERE org_id = $1 AND since >= $2 AND since < $3 \
       GROUP BY since / 86400 \
     UNION ALL \
     SELECT p.created_at / 86400 AS day, 'verifications' AS key, COUNT(*) AS n \
       FROM portal_sessions p JOIN secure_links l ON l.id = p.link_id \
       WHERE l.org_id = $1 AND p.created_at >= $2 AND p.created_at < $3 \
       GROUP BY p.created_at / 86400";

impl SqlStore {
    async fn range_query(
        &self,
        sql: &'static str,
        org: OrgId,
        since: i64,
        until: i64,
    ) -> Result<Vec<AnyRow>> {
        Ok(sqlx::query(sql)
            .bind(org.to_string())
            .bind(since)
            .bind(until)
            .fetch_all(&self.pool)
            .await?)
    }
}

#[async_trait]
impl ReportStore for SqlStore {
    async fn messages_per_day(
        &self,
        org: OrgId,
        since: i64,
        until: i64,
    ) -> Result<Vec<MessageCount>> {
        self.range_query(MESSAGES_PER_DAY, org, since, until)
            .await?
            .iter()
            .map(|r| {
                Ok(MessageCount {
                    day: r.try_get("day")?,
                    roles: r.try_get("roles")?,
                    role_id: r.try_get("role_id")?,
                    care_team_id: r.try_get("care_team_id")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    async fn response_times(
        &self,
        org: OrgId,
        since: i64,
        until: i64,
        group: ResponseGroup,
    ) -> Result<Vec<ResponseRow>> {
        let sql: &'static str = match group {
            ResponseGroup::ClinicalRole => &RESPONSES_BY_ROLE,
            ResponseGroup::Department => &RESPONSES_BY_DEPARTMENT,
        };
        let mut out: Vec<ResponseRow> = Vec::new();
        for r in self.range_query(sql, org, since, until).await? {
            let key: Option<String> = r.try_get("grp")?;
            let kind: String = r.try_get("kind")?;
            let n: i64 = r.try_get("n")?;
            let (p50, p90): (Option<i64>, Option<i64>) = (r.try_get("p50")?, r.try_get("p90")?);
            let row = match out.iter_mut().position(|x| x.key == key) {
                Some(i) => &mut out[i],
                None => {
                    out.push(ResponseRow {
                        key,
                        ..Default::default()
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            match kind.as_str() {
                "all" => row.messages = n,
                "read" => (row.read, row.median_read_secs, row.p90_read_secs) = (n, p50, p90),
                _ => (row.acknowledged, row.median_ack_secs, row.p90_ack_secs) = (n, p50, p90),
            }
        }
        Ok(out)
    }

    async fn escalations_per_day(
        &self,
        org: OrgId,
        since: i64,
        until: i64,
    ) -> Result<Vec<DayCount>> {
        let mut out = Vec::new();
        for r in self.range_query(ESCALATIONS, org, since, until).await? {
            let day: i64 = r.try_get("day")?;
            for key in ["stat", "urgent", "escalated", "unacknowledged"] {
                out.push(DayCount {
                    day,
                    key: Some(key.to_owned()),
                    count: r.try_get(key)?,
                });
            }
        }
        Ok(out)
    }

    async fn active_per_day(&self, org: OrgId, since: i64, until: i64) -> Result<Vec<DayCount>> {
        let mut out = Vec::new();
        for r in self.range_query(ACTIVE, org, since, until).await? {
            let day: i64 = r.try_get("day")?;
            for key in ["users", "devices"] {
                out.push(DayCount {
                    day,
                    key: Some(key.to_owned()),
                    count: r.try_get(key)?,
                });
            }
        }
        Ok(out)
    }

    async fn texting_per_day(&self, org: OrgId, since: i64, until: i64) -> Result<Vec<DayCount>> {
        day_counts(&self.range_query(TEXTING, org, since, until).await?)
    }
}

#[async_trait]
impl HistoryStore for SqlStore {
    async fn import_history(&self, org: OrgId, h: &ActivityHistory) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        let org_id = org.to_string();
        for c in &h.conversations {
            sqlx::query(
                "INSERT INTO conversations (id, org_id, kind, dek_id, created_by, created_at, epoch, \
                   last_activity_at, role_id, care_team_id) \
                 VALUES ($1, $2, 'group', $3, $4, $5, 0, $5, $6, $7)",
            )
            .bind(c.id.to_string())
            .bind(&org_id)
            .bind(&h.dek_id)
            .bind(c.created_by.to_string())
            .bind(c.created_at)
            .bind(c.role_id.map(|r| r.to_string()))
            .bind(c.care_team_id.map(|t| t.to_string()))
            .execute(&mut *tx)
            .await?;
        }
        for d in &h.devices {
            sqlx::query(
                "INSERT INTO devices (id, org_id, user_id, name, identity_key, created_at, retired_at, inbox_seq, acked_seq) \
                 VALUES ($1, $2, $3, 'earlier device', $4, $5, $5, 0, 0)",
            )
            .bind(d.id.to_string())
            .bind(&org_id)
            .bind(d.user_id.to_string())
            .bind(vec![0u8; 32])
            .bind(d.created_at)
            .execute(&mut *tx)
            .await?;
        }
        let mut seqs: std::collections::HashMap<DeviceId, i64> = Default::default();
        for m in &h.messages {
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, kind, sender_user, sender_device, epoch, priority, created_at) \
                 VALUES ($1, $2, 'application', $3, $4, 0, $5, $6)",
            )
            .bind(m.id.to_string())
            .bind(m.conversation_id.to_string())
            .bind(m.sender_user.to_string())
            .bind(m.sender_device.to_string())
            .bind(m.priority.as_str())
            .bind(m.created_at)
            .execute(&mut *tx)
            .await?;
            for (device, read_at) in &m.deliveries {
                let seq = seqs.entry(*device).or_insert(0);
                *seq += 1;
                sqlx::query(
                    "INSERT INTO inbox (device_id, seq, message_id, conversation_id, delivered_at, read_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(device.to_string())
                .bind(*seq)
                .bind(m.id.to_string())
                .bind(m.conversation_id.to_string())
                .bind(m.created_at)
                .bind(*read_at)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(r) = &m.routing {
                let state = match (&r.acknowledged, m.priority) {
                    (Some(_), _) => "acknowledged",
                    (None, Priority::Routine) => "none",
                    (None, _) => "exhausted",
                };
                sqlx::query(
                    "INSERT INTO routed_messages (message_id, org_id, conversation_id, sender_user, priority, \
                       role_id, department_id, state, step, notified, escalations, acked_by, acked_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '[]', $9, $10, $11, $12)",
                )
                .bind(m.id.to_string())
                .bind(&org_id)
                .bind(m.conversation_id.to_string())
                .bind(m.sender_user.to_string())
                .bind(m.priority.as_str())
                .bind(r.role_id.map(|x| x.to_string()))
                .bind(r.department_id.map(|x| x.to_string()))
                .bind(state)
                .bind(r.escalations)
                .bind(r.acknowledged.map(|(u, _)| u.to_string()))
                .bind(r.acknowledged.map(|(_, at)| at))
                .bind(m.created_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (device, seq) in &seqs {
            sqlx::query("UPDATE devices SET inbox_seq = $1, acked_seq = $1 WHERE id = $2")
                .bind(*seq)
                .bind(device.to_string())
                .execute(&mut *tx)
                .await?;
        }
        for s in &h.sessions {
            sqlx::query(
                "INSERT INTO sessions (id, org_id, user_id, device_id, token_hash, created_at, last_seen_at, \
                   expires_at, idle_timeout_secs, mfa_complete, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 60, 1, $7)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&org_id)
            .bind(s.user_id.to_string())
            .bind(s.device_id.to_string())
            // Random: no token hashes to it.
            .bind(uuid::Uuid::new_v4().as_bytes().to_vec())
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .execute(&mut *tx)
            .await?;
        }
        for since in &h.opt_outs {
            sqlx::query(
                "INSERT INTO sms_opt_outs (org_id, phone_index, since) VALUES ($1, $2, $3)",
            )
            .bind(&org_id)
            .bind(format!("history-{}", uuid::Uuid::new_v4().simple()))
            .bind(*since)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
