//! The `expected-sqlx` command, run as an operator would: `migrate` on an
//! empty PostgreSQL database, an empty MariaDB database and a new SQLite file,
//! twice each (the second run applies nothing), with the tables checked
//! afterwards; then the operator's commands (`logins list`, `logins revoke`,
//! `sessions count`, `clean`) on what an engine wrote there, their output and
//! exit codes included.

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

/// Twice: the first run applies every migration, the second nothing.
fn migrate_twice(url: &str) {
    let first = migrate(url);
    for version in expected_store_sqlx::Tables::default().migrations(expected_store_sqlx::Backend::Sqlite) {
        let line = format!("applied migration {}", version.version);
        assert!(first.contains(&line), "first run: {first}");
    }
    let second = migrate(url);
    assert!(second.contains("nothing applied"), "second run: {second}");
}

/// Runs `expected-sqlx ARGS --database-url URL`: (exit code, stdout, stderr).
fn sqlx_cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_expected-sqlx"))
        .args(args)
        .args(["--database-url", url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run expected-sqlx: {e}"));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// Which store to open on a migrated database.
#[derive(Clone, Copy)]
enum Kind {
    Postgres,
    MySql,
    Sqlite,
}

/// The operator's commands on a migrated database at `url`, against what an
/// engine over the same database wrote.
async fn admin_commands(url: &str, kind: Kind) {
    use expected_store_sqlx::{MySqlStore, PgStore, SqliteStore};
    match kind {
        Kind::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap_or_else(|e| panic!("{e}"));
            expected_conformance::admin::operator_commands(PgStore::new(pool.clone()), |args| {
                sqlx_cli(url, args)
            })
            .await;
            pool.close().await;
        }
        Kind::MySql => {
            let pool = sqlx::MySqlPool::connect(url).await.unwrap_or_else(|e| panic!("{e}"));
            expected_conformance::admin::operator_commands(MySqlStore::new(pool.clone()), |args| {
                sqlx_cli(url, args)
            })
            .await;
            pool.close().await;
        }
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap_or_else(|e| panic!("{e}"));
            expected_conformance::admin::operator_commands(SqliteStore::new(pool.clone()), |args| {
                sqlx_cli(url, args)
            })
            .await;
            pool.close().await;
        }
    }
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
fn a_bad_url_is_one_line_and_exit_code_1() {
    let (code, out, err) = sqlx_cli("postgres://nobody@127.0.0.1:1/none", &["logins", "list", "alice"]);
    assert_eq!((code, out.as_str()), (1, ""), "an unreachable store exits 1: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("expected-sqlx: store"), "{err}");
    let (code, _, err) = sqlx_cli("ftp://example", &["clean"]);
    assert_eq!(code, 2, "a URL naming no backend is a usage error: {err}");
}

#[test]
fn migrate_command_on_an_empty_sqlite_file() {
    let dir = std::env::temp_dir().join(support::unique_name("expected_cli"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("new.db");
    let url = format!("sqlite:{}", file.display());
    migrate_twice(&url);
    runtime().block_on(admin_commands(&url, Kind::Sqlite));
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

/// A server with databases: how to name one, and list its tables.
struct Server {
    what: &'static str,
    admin_url: String,
    quote: char,
    /// Lists the tables of the database connected to, sorted.
    tables: &'static str,
    /// Appended to `DROP DATABASE IF EXISTS name`.
    drop_options: &'static str,
    /// The store on it.
    kind: Kind,
}

/// Creates an empty database on `server`, runs the command twice on it,
/// checks its tables, and drops it whatever happened.
async fn migrate_on_a_fresh_database<C: sqlx::Connection>(server: Server)
where
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    String: for<'r> sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
    for<'r> (String,): sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
{
    let mut admin = match support::connect::<C>(server.what, &server.admin_url).await {
        Ok(admin) => admin,
        Err(why) => return unreachable(server.what, why.0),
    };
    let (q, name) = (server.quote, support::unique_name("expected_cli"));
    let create = format!("CREATE DATABASE {q}{name}{q}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut admin).await.unwrap_or_else(|e| panic!("{e}"));
    let (base, _) = server.admin_url.rsplit_once('/').unwrap_or((server.admin_url.as_str(), ""));
    let url = format!("{base}/{name}");
    let checked = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            migrate_twice(&url);
            runtime().block_on(admin_commands(&url, server.kind));
        }
    })
    .await;
    let tables: Vec<String> = match C::connect(&url).await {
        Ok(mut conn) => {
            let rows: Vec<(String,)> =
                sqlx::query_as(server.tables).fetch_all(&mut conn).await.unwrap_or_default();
            let _ = conn.close().await;
            rows.into_iter().map(|(table,)| table).collect()
        }
        Err(_) => Vec::new(),
    };
    let drop = format!("DROP DATABASE IF EXISTS {q}{name}{q}{}", server.drop_options);
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic.into_panic());
    }
    assert_eq!(tables, ["expected_logins", "expected_migrations", "expected_sessions"], "{}", server.what);
}

#[test]
fn migrate_command_on_an_empty_postgres_database() {
    runtime().block_on(migrate_on_a_fresh_database::<sqlx::PgConnection>(Server {
        what: "PostgreSQL",
        admin_url: support::env_or("EXPECTED_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"),
        quote: '"',
        tables: "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        drop_options: " WITH (FORCE)",
        kind: Kind::Postgres,
    }));
}

#[test]
fn migrate_command_on_an_empty_mariadb_database() {
    runtime().block_on(migrate_on_a_fresh_database::<sqlx::MySqlConnection>(Server {
        what: "MariaDB",
        admin_url: support::env_or("EXPECTED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
        quote: '`',
        tables: "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() ORDER BY 1",
        drop_options: "",
        kind: Kind::MySql,
    }));
}
