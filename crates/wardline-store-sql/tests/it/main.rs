//! The engine's tests, one binary: the conformance suite on SQLite and on
//! PostgreSQL, migrations, and the schema parity of the two DDL trees.

mod coverage;
mod migrations;
mod schema_parity;

use std::sync::Arc;

use wardline_store::Backend;
use wardline_store_sql::SqlStore;
use wardline_store_sql::testing::fresh_database;

/// A fresh migrated store on `backend`, with the directory it lives in.
async fn open(backend: Backend) -> Option<(Arc<SqlStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, dir.path()).await?;
    let store = SqlStore::connect(&url).await.expect("connect and migrate");
    Some((Arc::new(store), dir))
}

mod sqlite {
    async fn open() -> Option<(
        std::sync::Arc<wardline_store_sql::SqlStore>,
        tempfile::TempDir,
    )> {
        super::open(wardline_store::Backend::Sqlite).await
    }
    wardline_store::conformance_suite!(open);
}

mod postgres {
    async fn open() -> Option<(
        std::sync::Arc<wardline_store_sql::SqlStore>,
        tempfile::TempDir,
    )> {
        super::open(wardline_store::Backend::Postgres).await
    }
    wardline_store::conformance_suite!(open);
}
