//! Fresh databases for tests (this crate's and the server's): a file in a
//! temporary directory on SQLite, a new schema on PostgreSQL.

use uuid::Uuid;
use wardline_store::{Backend, Result};

use crate::SqlStore;

/// The PostgreSQL URL for tests (`WARDLINE_TEST_POSTGRES_URL`). Without it the
/// PostgreSQL variant is skipped with a message, except in CI (`CI` set),
/// where skipping is a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var("WARDLINE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "CI is set but WARDLINE_TEST_POSTGRES_URL is not: PostgreSQL tests must run in CI"
            )
        }
        _ => {
            eprintln!("SKIPPED: set WARDLINE_TEST_POSTGRES_URL to run the PostgreSQL variant");
            None
        }
    }
}

/// A database URL for a fresh, empty schema (PostgreSQL) or file in `dir`
/// (SQLite); `None` when PostgreSQL is not available here.
///
/// # Panics
/// When PostgreSQL is configured but cannot be reached (a test setup fault).
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(SqlStore::sqlite_url(dir)),
        Backend::Postgres => {
            let base = postgres_url()?;
            Some(
                fresh_postgres_schema(&base, "wl_test")
                    .await
                    .expect("create a schema on PostgreSQL"),
            )
        }
    }
}

/// Creates an empty schema `<prefix>_<random>` in the PostgreSQL database at
/// `base` and returns a URL whose connections use it (`search_path`), so that
/// tests and benchmarks sharing one database never see each other's rows.
pub async fn fresh_postgres_schema(base: &str, prefix: &str) -> Result<String> {
    let schema = format!("{prefix}_{}", Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}
