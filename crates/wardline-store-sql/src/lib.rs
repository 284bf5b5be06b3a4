//! Every `wardline-store` trait on SQLite or PostgreSQL through sqlx's `Any` driver.
//!
//! The queries are written once in the SQL both engines accept (`$n`
//! placeholders, `ON CONFLICT`, `RETURNING`) and the column types are limited to
//! TEXT, 64-bit integers and bytes, which map identically on both. What differs
//! (DDL, pragmas, the migration lock) is chosen by [`Backend`]. Booleans are
//! stored as 0/1 integers for the same reason.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use uuid::Uuid;
use wardline_proto::directory::{OrgPolicy, UserStatus};
use wardline_proto::{DeviceId, OrgId, Role, SessionId, UserId};

use wardline_store::{
    Backend, DataKeyRow, MfaChallengeRow, OrgRow, Result, SessionRow, Store, StoreError,
    ThrottleRow, UserRow,
};

mod audit;
pub mod bus;
mod lifecycle;
mod messaging;
pub mod migrations;
mod patients;
mod reports;
mod routing;
mod shared_inserts;
pub mod testing;

pub use bus::PgBus;

pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) bulk: BulkPool,
    /// Bumped after every change that can end sessions (revocation, a user's
    /// status or roles): open WebSockets re-check their session when it moves.
    session_changes: tokio::sync::watch::Sender<u64>,
    /// SQLite has one writer at a time; a writer that finds the database busy
    /// sleeps in SQLite's busy handler (1, 2, 5 … 100 ms) and retries. Write
    /// transactions queue here instead, and so start the moment the previous
    /// one commits (see bench/RESULTS.md). Unused on PostgreSQL.
    write_lock: tokio::sync::Mutex<()>,
}

/// An engine-native pool beside the `Any` one, for reading the audit log in
/// bulk (verification, SIEM export, proofs): the `Any` driver's per-row conversion
/// makes those reads three times slower (see bench/RESULTS.md). Same SQL.
pub(crate) enum BulkPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl SqlStore {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and brings the schema
    /// up to date.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Corrupt(format!(
                "unsupported database URL scheme (expected sqlite:// or postgres://): {}",
                url.split(':').next().unwrap_or("")
            )));
        };
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers proceed during a write; synchronous=FULL
                            // makes every acknowledged commit survive power loss. A 16 MiB
                            // page cache and a 40 MB WAL between checkpoints keep the audit
                            // log's index pages in memory and its fsyncs few (more audit
                            // appends per second, bench/RESULTS.md). secure_delete zeroes
                            // what a deletion frees, so deleted messages do not linger in
                            // free pages of the file.
                            sqlx::raw_sql(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 10000;",
                            )
                            .execute(conn)
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?
            }
        };
        migrations::run(&pool, backend).await?;
        let bulk = match backend {
            Backend::Sqlite => BulkPool::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(2)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::raw_sql("PRAGMA busy_timeout = 10000;")
                                .execute(conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?,
            ),
            Backend::Postgres => BulkPool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?,
            ),
        };
        Ok(SqlStore {
            pool,
            backend,
            bulk,
            session_changes: tokio::sync::watch::channel(0).0,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Begins a transaction that will write: on SQLite, first waits its turn
    /// among this process's writers. Keep the guard until after the commit.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<(
        Option<tokio::sync::MutexGuard<'_, ()>>,
        sqlx::Transaction<'static, sqlx::Any>,
    )> {
        Ok(match self.backend {
            // IMMEDIATE takes SQLite's write lock at BEGIN, where the busy
            // handler waits for it. A deferred transaction that reads first
            // takes the lock at its first write, and SQLite refuses that
            // upgrade at once ("database is locked", no wait) while another
            // connection holds the lock: the queue above does not cover a
            // transaction given up before its rollback has run (sqlx rolls a
            // dropped transaction back after handing the connection back),
            // nor another process on the same file (the CLI).
            Backend::Sqlite => (
                Some(self.write_lock.lock().await),
                self.pool.begin_with("BEGIN IMMEDIATE").await?,
            ),
            Backend::Postgres => (None, self.pool.begin().await?),
        })
    }

    /// Changes whenever a session may have ended on this node.
    pub fn session_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.session_changes.subscribe()
    }

    pub(crate) fn sessions_changed(&self) {
        self.session_changes.send_modify(|n| *n += 1);
    }

    /// The SQLite URL of the embedded database in `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("wardline.db").display()
        )
    }

    /// Folds the SQLite write-ahead log into the main file (used by tests that
    /// scan the raw file, and by backups).
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        match &self.bulk {
            BulkPool::Sqlite(p) => p.close().await,
            BulkPool::Postgres(p) => p.close().await,
        }
    }
}

pub(crate) fn map_unique(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::from(e),
    }
}

pub(crate) fn uuid_col(row: &AnyRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::from_str(&s).map_err(|_| StoreError::Corrupt(format!("{col} is not a uuid")))
}

pub(crate) fn opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::from_str(&s).map_err(|_| StoreError::Corrupt(format!("{col} is not a uuid"))))
        .transpose()
}

pub(crate) fn bool_col(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

fn roles_to_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn roles_from_text(s: &str) -> Result<Vec<Role>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| Role::parse(p).ok_or_else(|| StoreError::Corrupt(format!("unknown role {p:?}"))))
        .collect()
}

fn policy_json(p: &OrgPolicy) -> String {
    serde_json::to_string(&p.messaging).expect("policy serialises")
}

fn patient_policy_json(p: &OrgPolicy) -> String {
    serde_json::to_string(&p.patients).expect("policy serialises")
}

fn device_policy_json(p: &OrgPolicy) -> String {
    serde_json::to_string(&p.devices).expect("policy serialises")
}

fn routing_policy_json(p: &OrgPolicy) -> String {
    serde_json::to_string(&p.routing).expect("policy serialises")
}

fn org_from_row(row: &AnyRow) -> Result<OrgRow> {
    Ok(OrgRow {
        id: (uuid_col(row, "id")?).into(),
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        policy: OrgPolicy {
            idle_timeout_secs: row.try_get("idle_timeout_secs")?,
            absolute_lifetime_secs: row.try_get("absolute_lifetime_secs")?,
            mfa_required: bool_col(row, "mfa_required")?,
            messaging: serde_json::from_str(&row.try_get::<String, _>("messaging_policy")?)
                .map_err(|e| StoreError::Corrupt(format!("messaging_policy: {e}")))?,
            patients: serde_json::from_str(&row.try_get::<String, _>("patient_policy")?)
                .map_err(|e| StoreError::Corrupt(format!("patient_policy: {e}")))?,
            devices: serde_json::from_str(&row.try_get::<String, _>("device_policy")?)
                .map_err(|e| StoreError::Corrupt(format!("device_policy: {e}")))?,
            routing: serde_json::from_str(&row.try_get::<String, _>("routing_policy")?)
                .map_err(|e| StoreError::Corrupt(format!("routing_policy: {e}")))?,
        },
        created_at: row.try_get("created_at")?,
    })
}

/// Decodes a data key whose columns carry `prefix` (`""`, or `"k_"` where a
/// join aliased them away from the user's columns of the same name).
pub(crate) fn data_key_from_row(row: &AnyRow, prefix: &str) -> Result<DataKeyRow> {
    let col = |name: &str| format!("{prefix}{name}");
    let org: Option<String> = row.try_get(col("org_id").as_str())?;
    Ok(DataKeyRow {
        id: row.try_get(col("id").as_str())?,
        org_id: org
            .map(|s| OrgId::from_str(&s))
            .transpose()
            .map_err(|_| StoreError::Corrupt("data key org_id".into()))?,
        kek_id: row.try_get(col("kek_id").as_str())?,
        wrapped: row.try_get(col("wrapped").as_str())?,
        created_at: row.try_get(col("created_at").as_str())?,
    })
}

/// Column lists as macros so that `concat!` keeps every query a static string
/// (sqlx refuses dynamically built SQL, which rules out injection by construction).
macro_rules! user_cols {
    () => {
        "id, org_id, dek_id, email_bidx, email_enc, display_name_enc, phone_enc, roles, status, \
         password_hash, totp_secret_enc, totp_enabled, totp_last_step, password_change_required, \
         created_at, updated_at"
    };
}

fn user_from_row(row: &AnyRow) -> Result<UserRow> {
    let status: String = row.try_get("status")?;
    let roles: String = row.try_get("roles")?;
    Ok(UserRow {
        id: (uuid_col(row, "id")?).into(),
        org_id: (uuid_col(row, "org_id")?).into(),
        dek_id: row.try_get("dek_id")?,
        email_bidx: row.try_get("email_bidx")?,
        email_enc: row.try_get("email_enc")?,
        display_name_enc: row.try_get("display_name_enc")?,
        phone_enc: row.try_get("phone_enc")?,
        roles: roles_from_text(&roles)?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        password_hash: row.try_get("password_hash")?,
        totp_secret_enc: row.try_get("totp_secret_enc")?,
        totp_enabled: bool_col(row, "totp_enabled")?,
        totp_last_step: row.try_get("totp_last_step")?,
        password_change_required: bool_col(row, "password_change_required")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// `user_cols!` qualified with the alias `u`, for joins.
macro_rules! user_cols_u {
    () => {
        "u.id, u.org_id, u.dek_id, u.email_bidx, u.email_enc, u.display_name_enc, u.phone_enc, u.roles, u.status, \
         u.password_hash, u.totp_secret_enc, u.totp_enabled, u.totp_last_step, u.password_change_required, \
         u.created_at, u.updated_at"
    };
}

macro_rules! session_cols {
    () => {
        "id, org_id, user_id, device_id, token_hash, created_at, last_seen_at, expires_at, \
         idle_timeout_secs, mfa_complete, revoked_at"
    };
}

fn session_from_row(row: &AnyRow) -> Result<SessionRow> {
    Ok(SessionRow {
        id: (uuid_col(row, "id")?).into(),
        org_id: (uuid_col(row, "org_id")?).into(),
        user_id: (uuid_col(row, "user_id")?).into(),
        device_id: (uuid_col(row, "device_id")?).into(),
        token_hash: row.try_get("token_hash")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
        idle_timeout_secs: row.try_get("idle_timeout_secs")?,
        mfa_complete: bool_col(row, "mfa_complete")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn challenge_from_row(row: &AnyRow) -> Result<MfaChallengeRow> {
    Ok(MfaChallengeRow {
        token_hash: row.try_get("token_hash")?,
        org_id: (uuid_col(row, "org_id")?).into(),
        user_id: (uuid_col(row, "user_id")?).into(),
        device_id: (uuid_col(row, "device_id")?).into(),
        expires_at: row.try_get("expires_at")?,
        attempts: row.try_get("attempts")?,
    })
}

fn throttle_from_row(row: &AnyRow) -> Result<ThrottleRow> {
    Ok(ThrottleRow {
        key: row.try_get("key")?,
        failures: row.try_get("failures")?,
        last_failure_at: row.try_get("last_failure_at")?,
    })
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn consume_setting(&self, key: &str, value: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM settings WHERE key = $1 AND value = $2")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_data_key(&self, row: &DataKeyRow) -> Result<()> {
        sqlx::query("INSERT INTO data_keys (id, org_id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&row.id)
            .bind(row.org_id.map(|o| o.to_string()))
            .bind(&row.kek_id)
            .bind(&row.wrapped)
            .bind(row.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| map_unique(e, "data key id"))?;
        Ok(())
    }

    async fn get_data_key(&self, id: &str) -> Result<DataKeyRow> {
        let row = sqlx::query(
            "SELECT id, org_id, kek_id, wrapped, created_at FROM data_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        data_key_from_row(&row, "")
    }

    async fn data_keys_not_under(&self, kek_id: &str, limit: i64) -> Result<Vec<DataKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, org_id, kek_id, wrapped, created_at FROM data_keys WHERE kek_id <> $1 ORDER BY id LIMIT $2",
        )
        .bind(kek_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| data_key_from_row(r, "")).collect()
    }

    async fn rewrap_data_key(
        &self,
        id: &str,
        old_kek_id: &str,
        new_kek_id: &str,
        wrapped: &[u8],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE data_keys SET kek_id = $1, wrapped = $2 WHERE id = $3 AND kek_id = $4",
        )
        .bind(new_kek_id)
        .bind(wrapped)
        .bind(id)
        .bind(old_kek_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_data_keys_by_kek(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT kek_id, COUNT(*) AS n FROM data_keys GROUP BY kek_id ORDER BY kek_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kek_id")?, r.try_get("n")?)))
            .collect()
    }

    async fn insert_org(&self, org: &OrgRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO organisations (id, name, slug, idle_timeout_secs, absolute_lifetime_secs, mfa_required, created_at, messaging_policy, patient_policy, device_policy, routing_policy) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(org.id.to_string())
        .bind(&org.name)
        .bind(&org.slug)
        .bind(org.policy.idle_timeout_secs)
        .bind(org.policy.absolute_lifetime_secs)
        .bind(org.policy.mfa_required as i64)
        .bind(org.created_at)
        .bind(policy_json(&org.policy))
        .bind(patient_policy_json(&org.policy))
        .bind(device_policy_json(&org.policy))
        .bind(routing_policy_json(&org.policy))
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "organisation slug"))?;
        Ok(())
    }

    async fn get_org(&self, id: OrgId) -> Result<OrgRow> {
        let row = sqlx::query("SELECT * FROM organisations WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        org_from_row(&row)
    }

    async fn get_org_by_slug(&self, slug: &str) -> Result<OrgRow> {
        let row = sqlx::query("SELECT * FROM organisations WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        org_from_row(&row)
    }

    async fn count_orgs(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM organisations")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn update_org_policy(&self, id: OrgId, policy: &OrgPolicy) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE organisations SET idle_timeout_secs = $1, absolute_lifetime_secs = $2, mfa_required = $3, messaging_policy = $5, patient_policy = $6, device_policy = $7, routing_policy = $8 WHERE id = $4",
        )
        .bind(policy.idle_timeout_secs)
        .bind(policy.absolute_lifetime_secs)
        .bind(policy.mfa_required as i64)
        .bind(id.to_string())
        .bind(policy_json(policy))
        .bind(patient_policy_json(policy))
        .bind(device_policy_json(policy))
        .bind(routing_policy_json(policy))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // Finding L4 of 2026-11-30: sessions kept the timeout and lifetime
        // they were issued with after the policy tightened.
        let tightened = sqlx::query(
            "UPDATE sessions SET \
               idle_timeout_secs = CASE WHEN idle_timeout_secs > $2 THEN $2 ELSE idle_timeout_secs END, \
               expires_at = CASE WHEN expires_at > created_at + $3 THEN created_at + $3 ELSE expires_at END \
             WHERE org_id = $1 AND revoked_at IS NULL \
               AND (idle_timeout_secs > $2 OR expires_at > created_at + $3)",
        )
        .bind(id.to_string())
        .bind(policy.idle_timeout_secs)
        .bind(policy.absolute_lifetime_secs)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if tightened > 0 {
            self.sessions_changed();
        }
        Ok(())
    }

    async fn insert_user(&self, u: &UserRow) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO users (",
            user_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(u.id.to_string())
        .bind(u.org_id.to_string())
        .bind(&u.dek_id)
        .bind(&u.email_bidx)
        .bind(&u.email_enc)
        .bind(&u.display_name_enc)
        .bind(u.phone_enc.clone())
        .bind(roles_to_text(&u.roles))
        .bind(u.status.as_str())
        .bind(&u.password_hash)
        .bind(u.totp_secret_enc.clone())
        .bind(u.totp_enabled as i64)
        .bind(u.totp_last_step)
        .bind(u.password_change_required as i64)
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "user e-mail"))?;
        Ok(())
    }

    async fn get_user(&self, org: OrgId, id: UserId) -> Result<UserRow> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE org_id = $1 AND id = $2"
        ))
        .bind(org.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    async fn find_user_by_email(&self, org: OrgId, email_bidx: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE org_id = $1 AND email_bidx = $2"
        ))
        .bind(org.to_string())
        .bind(email_bidx)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users_with_keys(&self, org: OrgId) -> Result<Vec<(UserRow, DataKeyRow)>> {
        // The data key's columns are aliased so they cannot shadow the user's.
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_cols_u!(),
            ", k.id AS k_id, k.org_id AS k_org_id, k.kek_id AS k_kek_id, k.wrapped AS k_wrapped, \
             k.created_at AS k_created_at \
             FROM users u JOIN data_keys k ON k.id = u.dek_id WHERE u.org_id = $1 ORDER BY u.created_at, u.id"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((user_from_row(r)?, data_key_from_row(r, "k_")?)))
            .collect()
    }

    async fn update_user(&self, u: &UserRow) -> Result<()> {
        let done = sqlx::query(
            "UPDATE users SET email_bidx = $1, email_enc = $2, display_name_enc = $3, phone_enc = $4, roles = $5, \
             status = $6, password_hash = $7, totp_secret_enc = $8, totp_enabled = $9, updated_at = $10, \
             password_change_required = $13 WHERE org_id = $11 AND id = $12",
        )
        .bind(&u.email_bidx)
        .bind(&u.email_enc)
        .bind(&u.display_name_enc)
        .bind(u.phone_enc.clone())
        .bind(roles_to_text(&u.roles))
        .bind(u.status.as_str())
        .bind(&u.password_hash)
        .bind(u.totp_secret_enc.clone())
        .bind(u.totp_enabled as i64)
        .bind(u.updated_at)
        .bind(u.org_id.to_string())
        .bind(u.id.to_string())
        .bind(u.password_change_required as i64)
        .execute(&self.pool)
        .await
        .inspect(|_| self.sessions_changed())
        .map_err(|e| map_unique(e, "user e-mail"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn advance_totp_step(&self, org: OrgId, user: UserId, step: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET totp_last_step = $1 WHERE org_id = $2 AND id = $3 AND totp_last_step < $1")
            .bind(step)
            .bind(org.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &self,
        org: OrgId,
        user: UserId,
        hashes: &[Vec<u8>],
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2")
            .bind(org.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        for h in hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (org_id, user_id, code_hash) VALUES ($1, $2, $3)",
            )
            .bind(org.to_string())
            .bind(user.to_string())
            .bind(h)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn consume_recovery_code(&self, org: OrgId, user: UserId, hash: &[u8]) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2 AND code_hash = $3",
        )
        .bind(org.to_string())
        .bind(user.to_string())
        .bind(hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_session(&self, s: &SessionRow) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(s.id.to_string())
        .bind(s.org_id.to_string())
        .bind(s.user_id.to_string())
        .bind(s.device_id.to_string())
        .bind(&s.token_hash)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.idle_timeout_secs)
        .bind(s.mfa_complete as i64)
        .bind(s.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "session"))?;
        Ok(())
    }

    async fn get_session_by_token_hash(&self, hash: &[u8]) -> Result<Option<SessionRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<SessionRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn insert_socket_ticket(
        &self,
        ticket_hash: &[u8],
        session: SessionId,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO socket_tickets (ticket_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(ticket_hash)
        .bind(session.to_string())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_socket_ticket(&self, ticket_hash: &[u8], now: i64) -> Result<Option<SessionRow>> {
        // One statement: of two upgrades presenting the same ticket, only
        // the one whose DELETE removed the row gets a session.
        let taken = sqlx::query(
            "DELETE FROM socket_tickets WHERE ticket_hash = $1 RETURNING session_id, expires_at",
        )
        .bind(ticket_hash)
        .fetch_optional(&self.pool)
        .await?;
        sqlx::query("DELETE FROM socket_tickets WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let Some(taken) = taken else {
            return Ok(None);
        };
        if taken.try_get::<i64, _>("expires_at")? <= now {
            return Ok(None);
        }
        self.get_session(uuid_col(&taken, "session_id")?.into())
            .await
    }

    async fn touch_session(&self, id: SessionId, now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn complete_session_mfa(&self, id: SessionId) -> Result<()> {
        sqlx::query("UPDATE sessions SET mfa_complete = 1 WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_session(&self, id: SessionId, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        self.sessions_changed();
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_user_sessions(
        &self,
        org: OrgId,
        user: UserId,
        device: Option<DeviceId>,
        except: Option<SessionId>,
        now: i64,
    ) -> Result<u64> {
        // Empty string never matches a uuid column, so "no filter" needs no second query text.
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE org_id = $2 AND user_id = $3 AND revoked_at IS NULL \
             AND ($4 = '' OR device_id = $4) AND id <> $5",
        )
        .bind(now)
        .bind(org.to_string())
        .bind(user.to_string())
        .bind(device.map(|d| d.to_string()).unwrap_or_default())
        .bind(except.map(|s| s.to_string()).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        self.sessions_changed();
        Ok(done.rows_affected())
    }

    async fn list_user_sessions(
        &self,
        org: OrgId,
        user: UserId,
        now: i64,
    ) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND expires_at > $3 ORDER BY created_at, id"
        ))
        .bind(org.to_string())
        .bind(user.to_string())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn last_sign_ins(&self, org: OrgId) -> Result<Vec<(UserId, i64)>> {
        // One pass over the (org_id, user_id) index.
        let rows = sqlx::query(
            "SELECT user_id, MAX(created_at) AS at FROM sessions WHERE org_id = $1 GROUP BY user_id",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((uuid_col(r, "user_id")?.into(), r.try_get("at")?)))
            .collect()
    }

    async fn device_last_contacts(&self, org: OrgId, user: UserId) -> Result<Vec<(DeviceId, i64)>> {
        let rows = sqlx::query(
            "SELECT device_id, MAX(last_seen_at) AS at FROM sessions \
             WHERE org_id = $1 AND user_id = $2 GROUP BY device_id",
        )
        .bind(org.to_string())
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((uuid_col(r, "device_id")?.into(), r.try_get("at")?)))
            .collect()
    }

    async fn insert_mfa_challenge(&self, c: &MfaChallengeRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, org_id, user_id, device_id, expires_at, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.token_hash)
        .bind(c.org_id.to_string())
        .bind(c.user_id.to_string())
        .bind(c.device_id.to_string())
        .bind(c.expires_at)
        .bind(c.attempts)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "mfa challenge"))?;
        Ok(())
    }

    async fn get_mfa_challenge(&self, hash: &[u8]) -> Result<Option<MfaChallengeRow>> {
        let row = sqlx::query("SELECT * FROM mfa_challenges WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    async fn bump_mfa_challenge_attempts(&self, hash: &[u8]) -> Result<i64> {
        let row = sqlx::query("UPDATE mfa_challenges SET attempts = attempts + 1 WHERE token_hash = $1 RETURNING attempts")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(row.try_get("attempts")?)
    }

    async fn delete_mfa_challenge(&self, hash: &[u8]) -> Result<()> {
        sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1")
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_throttle(&self, key: &str) -> Result<Option<ThrottleRow>> {
        let row =
            sqlx::query("SELECT key, failures, last_failure_at FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(throttle_from_row).transpose()
    }

    async fn record_failure(&self, key: &str, now: i64, decay_before: i64) -> Result<ThrottleRow> {
        // One statement, so concurrent failures are all counted.
        let row = sqlx::query(
            "INSERT INTO login_throttle (key, failures, last_failure_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
               last_failure_at = $2 \
             RETURNING key, failures, last_failure_at",
        )
        .bind(key)
        .bind(now)
        .bind(decay_before)
        .fetch_one(&self.pool)
        .await?;
        throttle_from_row(&row)
    }

    async fn clear_throttle(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_attempt(
        &self,
        key: &str,
        now: i64,
        decay_before: i64,
        hold_until: i64,
    ) -> Result<std::result::Result<i64, i64>> {
        let taken = sqlx::query(
            "INSERT INTO login_throttle (key, failures, last_failure_at, held_until) VALUES ($1, 1, $2, $4) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
               last_failure_at = $2, held_until = $4 \
             WHERE login_throttle.held_until <= $2 \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(decay_before)
        .bind(hold_until)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = taken {
            return Ok(Ok(row.try_get("failures")?));
        }
        let held = sqlx::query("SELECT held_until FROM login_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(Err(match held {
            Some(r) => r.try_get("held_until")?,
            None => now,
        }))
    }

    async fn remember_device(
        &self,
        token_hash: &str,
        org: OrgId,
        user: UserId,
        device: DeviceId,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO remembered_devices (token_hash, org_id, user_id, device_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(org.to_string())
        .bind(user.to_string())
        .bind(device.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remembered_device(
        &self,
        token_hash: &str,
        not_before: i64,
    ) -> Result<Option<(OrgId, UserId, DeviceId)>> {
        let row = sqlx::query(
            "SELECT org_id, user_id, device_id FROM remembered_devices \
             WHERE token_hash = $1 AND created_at >= $2",
        )
        .bind(token_hash)
        .bind(not_before)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                uuid_col(&r, "org_id")?.into(),
                uuid_col(&r, "user_id")?.into(),
                uuid_col(&r, "device_id")?.into(),
            ))
        })
        .transpose()
    }

    async fn hold_throttle(&self, key: &str, until: i64) -> Result<()> {
        sqlx::query("UPDATE login_throttle SET held_until = $2 WHERE key = $1")
            .bind(key)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
