//! The `expected-sqlx migrate` command, run as a user would: on an empty
//! PostgreSQL database, an empty MariaDB database and a new SQLite file, twice
//! each (the second run applies nothing), with the tables checked afterwards.

#![cfg(all(feature = "cli", feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod support;

use std::process::Command;

use expected_store_sqlx::sqlx::{self, Connection as _};

/// Runs `expected-sqlx migrate --database-url URL` and answers its stdout.
fn migrate(url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_expected-sqlx"))
        .args(["migrate", "--database-url", url])
        .output()
        .unwrap_or_else(|e| panic!("cannot run expected-sqlx: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{url}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Twice: the first run applies migration 1, the second nothing.
fn migrate_twice(url: &str) {
    let first = migrate(url);
    assert!(first.contains("applied migration 1"), "first run: {first}");
    let second = migrate(url);
    assert!(second.contains("nothing applied"), "second run: {second}");
}

/// A server that cannot be reached: a loud skip, or a failure under CI.
fn unreachable(what: &str, why: impl std::fmt::Display) {
    assert!(!expected_conformance::ci(), "{what} unreachable and CI is set: {why}");
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED {what}: unreachable: {why}\n");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn migrate_command_on_an_empty_sqlite_file() {
    let dir = std::env::temp_dir().join(support::unique_name("expected_cli"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("new.db");
    let url = format!("sqlite:{}", file.display());
    migrate_twice(&url);
    let tables: Vec<String> = runtime().block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(tables, ["expected_logins", "expected_migrations", "expected_sessions"]);
}

#[test]
fn migrate_command_on_an_empty_postgres_database() {
    let admin_url = support::env_or("EXPECTED_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
    runtime().block_on(async {
        let mut admin = match support::connect::<sqlx::PgConnection>("PostgreSQL", &admin_url).await {
            Ok(admin) => admin,
            Err(why) => return unreachable("PostgreSQL", why.0),
        };
        let name = support::unique_name("expected_cli");
        let create = format!("CREATE DATABASE \"{name}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (base, _) = admin_url.rsplit_once('/').unwrap_or((admin_url.as_str(), ""));
        let url = format!("{base}/{name}");
        let checked = tokio::task::spawn_blocking({
            let url = url.clone();
            move || migrate_twice(&url)
        })
        .await;
        let tables: Vec<String> = match sqlx::PgConnection::connect(&url).await {
            Ok(mut conn) => {
                let query = "SELECT table_name::text FROM information_schema.tables \
                             WHERE table_schema = 'public' ORDER BY 1";
                let tables = sqlx::query_scalar(query).fetch_all(&mut conn).await.unwrap_or_default();
                let _ = conn.close().await;
                tables
            }
            Err(_) => Vec::new(),
        };
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
        if let Err(panic) = checked {
            std::panic::resume_unwind(panic.into_panic());
        }
        assert_eq!(tables, ["expected_logins", "expected_migrations", "expected_sessions"]);
    });
}

#[test]
fn migrate_command_on_an_empty_mariadb_database() {
    let admin_url = support::env_or("EXPECTED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
    runtime().block_on(async {
        let mut admin = match support::connect::<sqlx::MySqlConnection>("MariaDB", &admin_url).await {
            Ok(admin) => admin,
            Err(why) => return unreachable("MariaDB", why.0),
        };
        let name = support::unique_name("expected_cli");
        let create = format!("CREATE DATABASE `{name}`");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut admin).await.unwrap_or_else(|e| panic!("{e}"));
        let (base, _) = admin_url.rsplit_once('/').unwrap_or((admin_url.as_str(), ""));
        let url = format!("{base}/{name}");
        let checked = tokio::task::spawn_blocking({
            let url = url.clone();
            move || migrate_twice(&url)
        })
        .await;
        let query = format!(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = '{name}' ORDER BY 1"
        );
        let tables: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
        let drop = format!("DROP DATABASE IF EXISTS `{name}`");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
        if let Err(panic) = checked {
            std::panic::resume_unwind(panic.into_panic());
        }
        assert_eq!(tables, ["expected_logins", "expected_migrations", "expected_sessions"]);
    });
}
