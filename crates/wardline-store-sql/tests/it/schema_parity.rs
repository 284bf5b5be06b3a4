//! Schema parity: the SQLite and PostgreSQL migration trees are written by
//! hand, side by side (types differ). This test migrates both and compares
//! what they built — tables, columns with their (mapped) types and
//! nullability, primary keys, unique keys, other indexes, foreign keys and
//! triggers — so that a migration added to one tree only, or a column that
//! drifted, fails here instead of on a hospital's database.

use std::collections::BTreeSet;

use sqlx::Row;
use wardline_store::Backend;
use wardline_store_sql::SqlStore;
use wardline_store_sql::testing::fresh_database;

/// One fact about a schema, in a form both engines can be brought to.
type Fact = String;

/// SQLite's declared type and PostgreSQL's `data_type`, mapped to the four
/// kinds the store uses (see the `wardline-store-sql` crate docs).
fn kind(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "text" | "character varying" => "text",
        "integer" | "bigint" | "smallint" | "int" => "integer",
        "blob" | "bytea" => "bytes",
        "real" | "double precision" => "real",
        other => panic!("a column type the parity test does not know: {other}"),
    }
}

async fn sqlite_facts(url: &str) -> BTreeSet<Fact> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let mut facts = BTreeSet::new();
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("name"))
    .collect();
    for t in &tables {
        facts.insert(format!("table {t}"));
        let mut pk: Vec<(i64, String)> = Vec::new();
        for c in sqlx::query("SELECT name, type, \"notnull\" AS nn, pk FROM pragma_table_info($1)")
            .bind(t)
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            let name: String = c.get("name");
            let pk_pos: i64 = c.get("pk");
            // SQLite lets a primary key column be NULL unless declared NOT
            // NULL; PostgreSQL makes it NOT NULL. Both refuse NULL keys in
            // practice (every insert gives one), so keys count as NOT NULL.
            let not_null = c.get::<i64, _>("nn") == 1 || pk_pos > 0;
            facts.insert(format!(
                "column {t}.{name} {} {}",
                kind(c.get("type")),
                if not_null { "not null" } else { "null" }
            ));
            if pk_pos > 0 {
                pk.push((pk_pos, name));
            }
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        facts.insert(format!("primary key {t} ({})", pk.join(", ")));
        for ix in
            sqlx::query("SELECT name, \"unique\" AS u, origin, partial FROM pragma_index_list($1)")
                .bind(t)
                .fetch_all(&pool)
                .await
                .unwrap()
        {
            let name: String = ix.get("name");
            let origin: String = ix.get("origin");
            if origin == "pk" {
                continue;
            }
            let cols: Vec<String> =
                sqlx::query("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get("name"))
                    .collect();
            let partial = if ix.get::<i64, _>("partial") == 1 {
                " partial"
            } else {
                ""
            };
            if ix.get::<i64, _>("u") == 1 {
                facts.insert(format!("unique {t} ({}){partial}", cols.join(", ")));
            }
            if origin == "c" {
                facts.insert(format!(
                    "index {name} on {t} ({}){partial}",
                    cols.join(", ")
                ));
            }
        }
        for fk in sqlx::query("SELECT \"table\" AS rt, \"from\" AS fc, \"to\" AS tc FROM pragma_foreign_key_list($1) ORDER BY id, seq")
            .bind(t)
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            let rt: String = fk.get("rt");
            let fc: String = fk.get("fc");
            let tc: Option<String> = fk.get("tc");
            facts.insert(format!("foreign key {t}.{fc} -> {rt}.{}", tc.unwrap_or_default()));
        }
    }
    // Triggers by what they guard (table, timing, event), not by name: a
    // PostgreSQL trigger may cover UPDATE and DELETE at once.
    for tr in sqlx::query("SELECT sql, tbl_name FROM sqlite_master WHERE type = 'trigger'")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let sql: String = tr.get::<String, _>("sql").to_ascii_uppercase();
        let t: String = tr.get("tbl_name");
        let timing = ["BEFORE", "AFTER", "INSTEAD OF"]
            .into_iter()
            .find(|w| sql.contains(&format!(" {w} ")))
            .expect("trigger timing");
        let event = ["INSERT", "UPDATE", "DELETE"]
            .into_iter()
            .find(|w| sql.contains(&format!("{timing} {w}")))
            .expect("trigger event");
        facts.insert(format!("trigger on {t}: {timing} {event}"));
    }
    pool.close().await;
    facts
}

async fn postgres_facts(url: &str) -> BTreeSet<Fact> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut facts = BTreeSet::new();
    for r in sqlx::query(
        "SELECT table_name::text AS t FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        facts.insert(format!("table {}", r.get::<String, _>("t")));
    }
    for c in sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty, is_nullable::text AS n \
         FROM information_schema.columns WHERE table_schema = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        facts.insert(format!(
            "column {}.{} {} {}",
            c.get::<String, _>("t"),
            c.get::<String, _>("c"),
            kind(c.get("ty")),
            if c.get::<String, _>("n") == "NO" { "not null" } else { "null" }
        ));
    }
    // Every index with its columns in order; which back a primary key or a
    // constraint, and which are partial.
    for ix in sqlx::query(
        "SELECT i.relname::text AS name, t.relname::text AS t, x.indisunique AS u, x.indisprimary AS p, \
                x.indpred IS NOT NULL AS partial, \
                EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) AS constraint_index, \
                ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord) AS cols \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        let name: String = ix.get("name");
        let t: String = ix.get("t");
        let cols: Vec<String> = ix.get("cols");
        let partial = if ix.get::<bool, _>("partial") { " partial" } else { "" };
        if ix.get::<bool, _>("p") {
            facts.insert(format!("primary key {t} ({})", cols.join(", ")));
            continue;
        }
        if ix.get::<bool, _>("u") {
            facts.insert(format!("unique {t} ({}){partial}", cols.join(", ")));
        }
        if !ix.get::<bool, _>("constraint_index") {
            facts.insert(format!("index {name} on {t} ({}){partial}", cols.join(", ")));
        }
    }
    for fk in sqlx::query(
        "SELECT t.relname::text AS t, a.attname::text AS fc, rt.relname::text AS rt, ra.attname::text AS tc \
         FROM pg_constraint k \
         JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_class rt ON rt.oid = k.confrelid \
         CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS u(f, r) \
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.f \
         JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = u.r \
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        facts.insert(format!(
            "foreign key {}.{} -> {}.{}",
            fk.get::<String, _>("t"),
            fk.get::<String, _>("fc"),
            fk.get::<String, _>("rt"),
            fk.get::<String, _>("tc")
        ));
    }
    // information_schema lists a trigger once per event and leaves out
    // TRUNCATE triggers: SQLite has no TRUNCATE, so those guards exist on
    // PostgreSQL only (the test below checks they are there).
    for tr in sqlx::query(
        "SELECT event_object_table::text AS t, action_timing::text AS timing, \
                event_manipulation::text AS event \
         FROM information_schema.triggers WHERE trigger_schema = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        facts.insert(format!(
            "trigger on {}: {} {}",
            tr.get::<String, _>("t"),
            tr.get::<String, _>("timing"),
            tr.get::<String, _>("event")
        ));
    }
    for tr in sqlx::query(
        "SELECT t.relname::text AS t FROM pg_trigger g \
         JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE NOT g.tgisinternal AND n.nspname = current_schema() AND (g.tgtype & 32) <> 0",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        facts.insert(format!("truncate guard on {}", tr.get::<String, _>("t")));
    }
    pool.close().await;
    facts
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg_url) = fresh_database(Backend::Postgres, dir.path()).await else {
        return;
    };
    let sqlite_url = fresh_database(Backend::Sqlite, dir.path()).await.unwrap();
    SqlStore::connect(&sqlite_url).await.unwrap().close().await;
    SqlStore::connect(&pg_url).await.unwrap().close().await;
    let sqlite = sqlite_facts(&sqlite_url).await;
    let mut postgres = postgres_facts(&pg_url).await;
    // Every table SQLite guards against DELETE is guarded against TRUNCATE
    // on PostgreSQL (TRUNCATE skips DELETE triggers).
    for guarded in sqlite.iter().filter_map(|f| {
        f.strip_prefix("trigger on ")?
            .strip_suffix(": BEFORE DELETE")
    }) {
        assert!(
            postgres.remove(&format!("truncate guard on {guarded}")),
            "{guarded} refuses DELETE but not TRUNCATE on PostgreSQL"
        );
    }
    assert!(
        sqlite.len() > 100,
        "the SQLite schema was read: {}",
        sqlite.len()
    );
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the migration trees drifted apart.\nonly on SQLite:\n  {}\nonly on PostgreSQL:\n  {}",
        only_sqlite
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        only_postgres
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}
