//! Migrations: applied once, idempotent across restarts and nodes.

use wardline_store::Backend;
use wardline_store::Store;
use wardline_store_sql::SqlStore;
use wardline_store_sql::testing::fresh_database;

async fn migrations_are_idempotent(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let first = SqlStore::connect(&url).await.unwrap();
    first
        .insert_org(&wardline_store::conformance::org("alpha"))
        .await
        .unwrap();
    // A second node (or a restart) finds the schema in place and the data kept.
    let second = SqlStore::connect(&url).await.unwrap();
    assert_eq!(second.count_orgs().await.unwrap(), 1);
}

#[tokio::test]
async fn migrations_are_idempotent_sqlite() {
    migrations_are_idempotent(Backend::Sqlite).await;
}

#[tokio::test]
async fn migrations_are_idempotent_postgres() {
    migrations_are_idempotent(Backend::Postgres).await;
}
