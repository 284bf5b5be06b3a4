//! [`AuditStore`] on SQLite and PostgreSQL (same SQL, see `sql.rs`).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use wardline_proto::OrgId;
use wardline_proto::audit::AuditQuery;

use crate::{BulkPool, SqlStore, map_unique};
use wardline_store::Result;
use wardline_store::audit::{AuditRow, AuditStore, CheckpointRow, PurgeRow};

macro_rules! audit_cols {
    () => {
        "seq, at_ms, org_id, actor_kind, actor_id, device_id, source_ip, user_agent, action, \
         target_type, target_id, patient_id, outcome, reason, changes, leaf_hash, chain_hash, mac"
    };
}

macro_rules! checkpoint_cols {
    () => {
        "size, at_ms, root, chain_head, key_id, signature, frontier"
    };
}

/// Decodes an audit row from any engine's row type (the `Any` pool and the
/// native bulk pools share it).
fn audit_from_row<R>(r: &R) -> Result<AuditRow>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'v> i64: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> String: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Vec<u8>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AuditRow {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        org_id: r.try_get("org_id")?,
        actor_kind: r.try_get("actor_kind")?,
        actor_id: r.try_get("actor_id")?,
        device_id: r.try_get("device_id")?,
        source_ip: r.try_get("source_ip")?,
        user_agent: r.try_get("user_agent")?,
        action: r.try_get("action")?,
        target_type: r.try_get("target_type")?,
        target_id: r.try_get("target_id")?,
        patient_id: r.try_get("patient_id")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        changes: r.try_get("changes")?,
        leaf_hash: r.try_get("leaf_hash")?,
        chain_hash: r.try_get("chain_hash")?,
        mac: r.try_get("mac")?,
    })
}

/// `INSERT … VALUES (…), (…)` for `rows` rows. Built once per size from the
/// column list alone (no input reaches it), then kept for the process.
fn insert_sql(rows: usize) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static CACHE: LazyLock<Mutex<HashMap<usize, &'static str>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut cache = CACHE.lock().expect("insert SQL cache poisoned");
    cache.entry(rows).or_insert_with(|| {
        let groups: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=AUDIT_COLUMNS)
                    .map(|c| format!("${}", r * AUDIT_COLUMNS + c))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit_log ({}) VALUES {}",
            audit_cols!(),
            groups.join(", ")
        );
        Box::leak(sql.into_boxed_str())
    })
}

/// Rows per INSERT statement: one statement per row costs more than the
/// commit's fsync once batches are large (18 × 64 = 1152 parameters, within
/// both engines' limits).
const INSERT_CHUNK: usize = 64;
const AUDIT_COLUMNS: usize = 18;

/// Runs `query` on the engine-native bulk pool and decodes every row with
/// `decode`. A macro because the query and row types differ per engine; the
/// SQL and the decoding are the same.
macro_rules! bulk_fetch {
    ($store:expr, $query:expr, $decode:expr) => {
        match &$store.bulk {
            BulkPool::Sqlite(p) => $query.fetch_all(p).await?.iter().map($decode).collect(),
            BulkPool::Postgres(p) => $query.fetch_all(p).await?.iter().map($decode).collect(),
        }
    };
}

fn checkpoint_from_row(r: &AnyRow) -> Result<CheckpointRow> {
    Ok(CheckpointRow {
        size: r.try_get("size")?,
        at_ms: r.try_get("at_ms")?,
        root: r.try_get("root")?,
        chain_head: r.try_get("chain_head")?,
        key_id: r.try_get("key_id")?,
        signature: r.try_get("signature")?,
        frontier: r.try_get("frontier")?,
    })
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(
        &self,
        entries: &[AuditRow],
        checkpoint: Option<&CheckpointRow>,
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        for chunk in entries.chunks(INSERT_CHUNK) {
            let mut q = sqlx::query(insert_sql(chunk.len()));
            for e in chunk {
                q = q
                    .bind(e.seq)
                    .bind(e.at_ms)
                    .bind(&e.org_id)
                    .bind(&e.actor_kind)
                    .bind(&e.actor_id)
                    .bind(&e.device_id)
                    .bind(&e.source_ip)
                    .bind(&e.user_agent)
                    .bind(&e.action)
                    .bind(&e.target_type)
                    .bind(&e.target_id)
                    .bind(&e.patient_id)
                    .bind(&e.outcome)
                    .bind(&e.reason)
                    .bind(&e.changes)
                    .bind(&e.leaf_hash)
                    .bind(&e.chain_hash)
                    .bind(&e.mac);
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| map_unique(e, "audit sequence number"))?;
        }
        if let Some(c) = checkpoint {
            sqlx::query(concat!(
                "INSERT INTO audit_checkpoints (",
                checkpoint_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(c.size)
            .bind(c.at_ms)
            .bind(&c.root)
            .bind(&c.chain_head)
            .bind(&c.key_id)
            .bind(&c.signature)
            .bind(&c.frontier)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, "audit checkpoint"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn last_audit_entry(&self) -> Result<Option<AuditRow>> {
        sqlx::query(concat!(
            "SELECT ",
            audit_cols!(),
            " FROM audit_log ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(audit_from_row)
        .transpose()
    }

    async fn audit_entries(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>> {
        const SQL: &str = concat!(
            "SELECT ",
            audit_cols!(),
            " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        bulk_fetch!(
            self,
            sqlx::query(SQL).bind(after).bind(limit),
            audit_from_row
        )
    }

    async fn audit_leaf_hashes(&self, after: i64, up_to: i64) -> Result<Vec<Vec<u8>>> {
        const SQL: &str =
            "SELECT leaf_hash FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq";
        bulk_fetch!(self, sqlx::query(SQL).bind(after).bind(up_to), |r| Ok(
            r.try_get::<Vec<u8>, _>("leaf_hash")?
        ))
    }

    async fn search_audit(&self, org: OrgId, q: &AuditQuery, limit: i64) -> Result<Vec<AuditRow>> {
        // Only the filters given, each a plain comparison, so the planner can
        // take the index that serves it (`audit_log_actor`, `_patient`,
        // `_device`, `_target`, `_org_at`): a `($n IS NULL OR col = $n)` form
        // hides them from SQLite, which then walked the whole trail for a
        // rare actor (bench/RESULTS.md, issue 23). The values are bound.
        enum Value<'a> {
            Text(&'a str),
            Int(i64),
        }
        let org_id = org.to_string();
        let device = q.device.map(|d| d.to_string());
        let mut filters: Vec<(&str, Value)> = vec![("org_id =", Value::Text(&org_id))];
        let text = [
            ("actor_id =", q.actor.as_deref()),
            ("patient_id =", q.patient.as_deref()),
            ("device_id =", device.as_deref()),
            ("target_id =", q.target.as_deref()),
            ("action =", q.action.as_deref()),
            ("outcome =", q.outcome.map(|o| o.as_str())),
        ];
        for (cond, v) in text {
            if let Some(v) = v {
                filters.push((cond, Value::Text(v)));
            }
        }
        let ints = [
            ("at_ms >=", q.from_ms),
            ("at_ms <", q.to_ms),
            ("seq <", q.before_seq),
        ];
        for (cond, v) in ints {
            if let Some(v) = v {
                filters.push((cond, Value::Int(v)));
            }
        }
        let mut sql = format!("SELECT {} FROM audit_log WHERE ", audit_cols!());
        for (i, (cond, _)) in filters.iter().enumerate() {
            if i > 0 {
                sql.push_str(" AND ");
            }
            sql.push_str(&format!("{cond} ${}", i + 1));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", filters.len() + 1));
        // Only fixed fragments and `$n` placeholders went into `sql`.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, v) in filters {
            query = match v {
                Value::Text(t) => query.bind(t),
                Value::Int(n) => query.bind(n),
            };
        }
        query
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<CheckpointRow>> {
        sqlx::query(concat!(
            "SELECT ",
            checkpoint_cols!(),
            " FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(checkpoint_from_row)
        .transpose()
    }

    async fn audit_checkpoint(&self, size: i64) -> Result<Option<CheckpointRow>> {
        sqlx::query(concat!(
            "SELECT ",
            checkpoint_cols!(),
            " FROM audit_checkpoints WHERE size = $1"
        ))
        .bind(size)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(checkpoint_from_row)
        .transpose()
    }

    async fn audit_checkpoints(&self, after: i64, limit: i64) -> Result<Vec<CheckpointRow>> {
        sqlx::query(concat!(
            "SELECT ",
            checkpoint_cols!(),
            " FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(checkpoint_from_row)
        .collect()
    }

    async fn audit_purged_up_to(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(up_to), 0) AS up_to FROM audit_purges")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("up_to")?)
    }

    async fn audit_purges(&self) -> Result<Vec<PurgeRow>> {
        sqlx::query(
            "SELECT up_to, at_ms, cutoff_ms, retention_days, event_seq, key_id, signature \
             FROM audit_purges ORDER BY up_to",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(PurgeRow {
                up_to: r.try_get("up_to")?,
                at_ms: r.try_get("at_ms")?,
                cutoff_ms: r.try_get("cutoff_ms")?,
                retention_days: r.try_get("retention_days")?,
                event_seq: r.try_get("event_seq")?,
                key_id: r.try_get("key_id")?,
                signature: r.try_get("signature")?,
            })
        })
        .collect()
    }

    async fn audit_purgeable_size(&self, cutoff_ms: i64) -> Result<Option<i64>> {
        // The checkpoint's own (signed) time, not its last entry's: the
        // verifier judges a purge's age from signed times only.
        let row = sqlx::query(
            "SELECT MAX(c.size) AS size FROM audit_checkpoints c JOIN audit_log l ON l.seq = c.size \
             WHERE c.at_ms < $1",
        )
        .bind(cutoff_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("size")?)
    }

    async fn purge_audit(&self, purge: &PurgeRow) -> Result<u64> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit_purges (up_to, at_ms, cutoff_ms, retention_days, event_seq, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(purge.up_to)
        .bind(purge.at_ms)
        .bind(purge.cutoff_ms)
        .bind(purge.retention_days)
        .bind(purge.event_seq)
        .bind(&purge.key_id)
        .bind(&purge.signature)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "audit purge"))?;
        let done = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
            .bind(purge.up_to)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn audit_export_cursor(&self, sink: &str) -> Result<i64> {
        let row = sqlx::query("SELECT last_seq FROM audit_export_cursors WHERE sink = $1")
            .bind(sink)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("last_seq")?,
            None => 0,
        })
    }

    async fn set_audit_export_cursor(&self, sink: &str, seq: i64, now_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_export_cursors (sink, last_seq, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (sink) DO UPDATE SET last_seq = excluded.last_seq, updated_ms = excluded.updated_ms",
        )
        .bind(sink)
        .bind(seq)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
