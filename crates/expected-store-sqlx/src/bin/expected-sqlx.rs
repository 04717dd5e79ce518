//! `expected-sqlx`: the `expected` tables from the command line: set them up,
//! and the operator's commands for an incident.
//!
//! ```text
//! expected-sqlx migrate            [--database-url URL] [--table-prefix PREFIX]
//! expected-sqlx schema --backend postgres|mysql|sqlite [--table-prefix PREFIX]
//! expected-sqlx logins list USER [--json]
//! expected-sqlx logins revoke USER SERIAL
//! expected-sqlx logins revoke USER --all
//! expected-sqlx sessions count
//! expected-sqlx clean
//! ```
//!
//! The URL defaults to `$DATABASE_URL` and its scheme picks the backend
//! (`postgres://`, `mysql://`, `mariadb://`, `sqlite:`; `migrate` creates a
//! missing SQLite file, the other commands do not). The operator commands'
//! output and exit codes are `expected_core::admin`'s: 0 done, 1 the store
//! failed, 2 a usage error, 3 nothing found.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use expected_core::admin::{self, AdminCommand, AdminError};
use expected_core::{Config, Expected};
use expected_store_sqlx::{Backend, Tables};

/// The `expected` tables: migrations, schema, and the operator's commands.
#[derive(Debug, Parser)]
#[command(name = "expected-sqlx", version)]
struct Cli {
    /// The database (default: $DATABASE_URL); its scheme picks the backend.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The tables' name prefix.
    #[arg(long, global = true, default_value = "expected_")]
    table_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Creates or upgrades the tables (idempotent).
    Migrate,
    /// Prints the SQL, for teams with their own migration tooling.
    Schema {
        /// Which dialect.
        #[arg(long, value_parser = ["postgres", "postgresql", "mysql", "mariadb", "sqlite"])]
        backend: String,
    },
    #[command(flatten)]
    Admin(AdminCommand),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("expected-sqlx: {error}");
            error.exit_code()
        }
    }
}

fn url(cli: &Cli) -> Result<(&str, Backend), AdminError> {
    let url = cli
        .database_url
        .as_deref()
        .ok_or_else(|| AdminError::Usage("no --database-url and no $DATABASE_URL".to_owned()))?;
    let backend = Backend::from_url(url).ok_or_else(|| {
        AdminError::Usage("the URL names no known backend (postgres, mysql, sqlite)".to_owned())
    })?;
    Ok((url, backend))
}

async fn run(cli: Cli) -> Result<String, AdminError> {
    let tables = Tables::with_prefix(&cli.table_prefix).map_err(|e| AdminError::Usage(e.to_string()))?;
    match &cli.command {
        Command::Schema { backend } => {
            let backend = match backend.as_str() {
                "postgres" | "postgresql" => Backend::Postgres,
                "mysql" | "mariadb" => Backend::MySql,
                _ => Backend::Sqlite,
            };
            Ok(tables.schema_sql(backend))
        }
        Command::Migrate => {
            let (url, backend) = url(&cli)?;
            let applied = connect(backend, url, tables, true, Action::Migrate).await?;
            Ok(applied)
        }
        Command::Admin(command) => {
            let (url, backend) = url(&cli)?;
            connect(backend, url, tables, false, Action::Admin(command)).await
        }
    }
}

/// How long connecting may take: an operator in an incident wants a clear
/// "unreachable" soon, not sqlx's 30 s default.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

enum Action<'a> {
    Migrate,
    Admin(&'a AdminCommand),
}

fn store_error(error: impl std::fmt::Display) -> AdminError {
    AdminError::Store(expected_core::StoreError::new(
        expected_core::StoreErrorKind::Unavailable,
        error.to_string(),
    ))
}

fn migrated(backend: Backend, applied: Vec<i64>) -> String {
    if applied.is_empty() {
        return format!("{backend}: schema up to date, nothing applied\n");
    }
    applied.iter().map(|version| format!("{backend}: applied migration {version}\n")).collect()
}

/// Runs `action` on a store of `backend` at `url` (creating a missing SQLite
/// file only when `create` is set), closing the pool afterwards.
async fn connect(
    backend: Backend,
    url: &str,
    tables: Tables,
    create: bool,
    action: Action<'_>,
) -> Result<String, AdminError> {
    let _ = (url, &tables, create, &action);
    // One arm per backend, the same steps in each: the store types differ.
    macro_rules! with_store {
        ($store:expr) => {{
            let store = $store;
            let result = match action {
                Action::Migrate => {
                    store.migrate().await.map(|applied| migrated(backend, applied)).map_err(Into::into)
                }
                Action::Admin(command) => {
                    let engine = Expected::new(store.clone(), Config::default());
                    admin::run(&engine, command, |now| store.count_sessions(now)).await
                }
            };
            store.pool().close().await;
            result
        }};
    }
    match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let options =
                expected_store_sqlx::sqlx::postgres::PgPoolOptions::new().acquire_timeout(CONNECT_TIMEOUT);
            let pool = options.connect(url).await.map_err(store_error)?;
            with_store!(expected_store_sqlx::PgStore::with_tables(pool, tables))
        }
        #[cfg(feature = "mysql")]
        Backend::MySql => {
            let options =
                expected_store_sqlx::sqlx::mysql::MySqlPoolOptions::new().acquire_timeout(CONNECT_TIMEOUT);
            let pool = options.connect(url).await.map_err(store_error)?;
            with_store!(expected_store_sqlx::MySqlStore::with_tables(pool, tables))
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            use std::str::FromStr as _;
            let options = expected_store_sqlx::sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(|e| AdminError::Usage(e.to_string()))?
                .create_if_missing(create);
            let pool = expected_store_sqlx::sqlx::sqlite::SqlitePoolOptions::new()
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(store_error)?;
            with_store!(expected_store_sqlx::SqliteStore::with_tables(pool, tables))
        }
        #[allow(unreachable_patterns)]
        other => {
            Err(AdminError::Usage(format!("this build has no {other} support: enable the `{other}` feature")))
        }
    }
}
