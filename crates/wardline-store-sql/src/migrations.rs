//! Schema migrations, compiled into the binary.
//!
//! Each engine has its own SQL files (types differ) with the same numbering; a
//! migration is applied once, in a transaction, and recorded in
//! `schema_migrations`. Several nodes starting at once are serialised by the
//! database (PostgreSQL advisory lock; SQLite's single writer).

use sqlx::AnyPool;

use wardline_store::{Backend, Result};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "audit",
        sqlite: include_str!("../migrations/sqlite/0002_audit.sql"),
        postgres: include_str!("../migrations/postgres/0002_audit.sql"),
    },
    Migration {
        version: 3,
        name: "messaging",
        sqlite: include_str!("../migrations/sqlite/0003_messaging.sql"),
        postgres: include_str!("../migrations/postgres/0003_messaging.sql"),
    },
    Migration {
        version: 4,
        name: "patients",
        sqlite: include_str!("../migrations/sqlite/0004_patients.sql"),
        postgres: include_str!("../migrations/postgres/0004_patients.sql"),
    },
    Migration {
        version: 5,
        name: "lifecycle",
        sqlite: include_str!("../migrations/sqlite/0005_lifecycle.sql"),
        postgres: include_str!("../migrations/postgres/0005_lifecycle.sql"),
    },
    Migration {
        version: 6,
        name: "routing",
        sqlite: include_str!("../migrations/sqlite/0006_routing.sql"),
        postgres: include_str!("../migrations/postgres/0006_routing.sql"),
    },
    Migration {
        version: 7,
        name: "hardening",
        sqlite: include_str!("../migrations/sqlite/0007_hardening.sql"),
        postgres: include_str!("../migrations/postgres/0007_hardening.sql"),
    },
    Migration {
        version: 8,
        name: "inbound",
        sqlite: include_str!("../migrations/sqlite/0008_inbound.sql"),
        postgres: include_str!("../migrations/postgres/0008_inbound.sql"),
    },
    Migration {
        version: 9,
        name: "shared_again",
        sqlite: include_str!("../migrations/sqlite/0009_shared_again.sql"),
        postgres: include_str!("../migrations/postgres/0009_shared_again.sql"),
    },
    Migration {
        version: 10,
        name: "audit_changes",
        sqlite: include_str!("../migrations/sqlite/0010_audit_changes.sql"),
        postgres: include_str!("../migrations/postgres/0010_audit_changes.sql"),
    },
    Migration {
        version: 11,
        name: "password_change",
        sqlite: include_str!("../migrations/sqlite/0011_password_change.sql"),
        postgres: include_str!("../migrations/postgres/0011_password_change.sql"),
    },
    Migration {
        version: 12,
        name: "staff_notices",
        sqlite: include_str!("../migrations/sqlite/0012_staff_notices.sql"),
        postgres: include_str!("../migrations/postgres/0012_staff_notices.sql"),
    },
    Migration {
        version: 13,
        name: "socket_tickets",
        sqlite: include_str!("../migrations/sqlite/0013_socket_tickets.sql"),
        postgres: include_str!("../migrations/postgres/0013_socket_tickets.sql"),
    },
    Migration {
        version: 14,
        name: "web_push",
        sqlite: include_str!("../migrations/sqlite/0014_web_push.sql"),
        postgres: include_str!("../migrations/postgres/0014_web_push.sql"),
    },
    Migration {
        version: 15,
        name: "report_indexes",
        sqlite: include_str!("../migrations/sqlite/0015_report_indexes.sql"),
        postgres: include_str!("../migrations/postgres/0015_report_indexes.sql"),
    },
];

/// Arbitrary constant naming Wardline's migration lock in PostgreSQL.
const PG_MIGRATION_LOCK: i64 = 0x5741_5244_4c49_4e45; // "WARDLINE"

pub async fn run(pool: &AnyPool, backend: Backend) -> Result<()> {
    let mut conn = pool.acquire().await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply_pending(&mut conn, backend).await;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply_pending(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for m in MIGRATIONS {
        let applied: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *conn)
                .await?;
        if applied.is_some() {
            continue;
        }
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(unix_now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
    }
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
