//! `expected-sqlx`: sets up the `expected` tables from the command line.
//!
//! ```text
//! expected-sqlx migrate [--database-url URL] [--table-prefix PREFIX]
//! expected-sqlx schema --backend postgres|mysql|sqlite [--table-prefix PREFIX]
//! ```
//!
//! `migrate` creates or upgrades the schema (idempotent); the URL defaults to
//! `$DATABASE_URL` and its scheme picks the backend (`postgres://`,
//! `mysql://`, `mariadb://`, `sqlite:`; SQLite files are created if
//! missing). `schema` prints the SQL instead, for your own migration tool.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use expected_store_sqlx::{Backend, Tables};

const USAGE: &str = "\
usage:
  expected-sqlx migrate [--database-url URL] [--table-prefix PREFIX]
  expected-sqlx schema --backend postgres|mysql|sqlite [--table-prefix PREFIX]

migrate: creates or upgrades the expected tables (idempotent). URL defaults to
         $DATABASE_URL; its scheme picks the backend (postgres://, mysql://,
         mariadb://, sqlite:).
schema:  prints the SQL, for teams with their own migration tooling.
The default table prefix is `expected_`.";

struct Args {
    command: String,
    url: Option<String>,
    prefix: String,
    backend: Option<String>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = args.next().ok_or("no command given")?;
    let mut parsed = Args { command, url: None, prefix: "expected_".to_owned(), backend: None };
    while let Some(flag) = args.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
        match name.as_str() {
            "--database-url" => parsed.url = Some(value()?),
            "--table-prefix" => parsed.prefix = value()?,
            "--backend" => parsed.backend = Some(value()?),
            "-h" | "--help" => parsed.command = "help".to_owned(),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(parsed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("expected-sqlx: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse(std::env::args().skip(1)).map_err(|e| format!("{e}\n\n{USAGE}"))?;
    let tables = Tables::with_prefix(&args.prefix).map_err(|e| e.to_string())?;
    match args.command.as_str() {
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        "schema" => {
            let backend = match args.backend.as_deref() {
                Some("postgres" | "postgresql") => Backend::Postgres,
                Some("mysql" | "mariadb") => Backend::MySql,
                Some("sqlite") => Backend::Sqlite,
                Some(other) => return Err(format!("unknown backend {other}")),
                None => return Err("schema needs --backend postgres|mysql|sqlite".to_owned()),
            };
            print!("{}", tables.schema_sql(backend));
            Ok(())
        }
        "migrate" => {
            let url = match args.url {
                Some(url) => url,
                None => {
                    std::env::var("DATABASE_URL").map_err(|_| "no --database-url and no $DATABASE_URL")?
                }
            };
            let backend = Backend::from_url(&url).ok_or("the URL names no known backend")?;
            let applied = migrate(backend, &url, tables).await?;
            if applied.is_empty() {
                println!("{backend}: schema up to date, nothing applied");
            } else {
                for version in applied {
                    println!("{backend}: applied migration {version}");
                }
            }
            Ok(())
        }
        other => Err(format!("unknown command {other}\n\n{USAGE}")),
    }
}

async fn migrate(backend: Backend, url: &str, tables: Tables) -> Result<Vec<i64>, String> {
    let _ = (url, &tables);
    match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let pool = expected_store_sqlx::sqlx::PgPool::connect(url).await.map_err(|e| e.to_string())?;
            let store = expected_store_sqlx::PgStore::with_tables(pool, tables);
            let applied = store.migrate().await.map_err(|e| e.to_string());
            store.pool().close().await;
            applied
        }
        #[cfg(feature = "mysql")]
        Backend::MySql => {
            let pool = expected_store_sqlx::sqlx::MySqlPool::connect(url).await.map_err(|e| e.to_string())?;
            let store = expected_store_sqlx::MySqlStore::with_tables(pool, tables);
            let applied = store.migrate().await.map_err(|e| e.to_string());
            store.pool().close().await;
            applied
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            use std::str::FromStr as _;
            let options = expected_store_sqlx::sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(|e| e.to_string())?
                .create_if_missing(true);
            let pool = expected_store_sqlx::sqlx::SqlitePool::connect_with(options)
                .await
                .map_err(|e| e.to_string())?;
            let store = expected_store_sqlx::SqliteStore::with_tables(pool, tables);
            let applied = store.migrate().await.map_err(|e| e.to_string());
            store.pool().close().await;
            applied
        }
        #[allow(unreachable_patterns)]
        other => Err(format!("this build has no {other} support: enable the `{other}` feature")),
    }
}
