//! The stores the demo runs on: each gets a database (or server, or file)
//! of its own for the benchmark, and a counter of the work the store's
//! server did.
//!
//! | store | what the benchmark makes | counter |
//! |---|---|---|
//! | memory | nothing | none |
//! | SQLite | a file in the work directory | none (no server) |
//! | PostgreSQL | a database, dropped at the end | the database's transactions (`pg_stat_database`): every statement the store sends outside `migrate` is a transaction of its own |
//! | MariaDB | a database and a user, dropped at the end | the user's statements (`USER_STATISTICS`, with `userstat` on for the run and put back after) |
//! | Redis | a `redis-server` of its own on a free port, stopped at the end | its commands (`INFO commandstats`, `INFO` itself apart), which count those the store's Lua scripts run; and the scripts (`EVALSHA`, `EVAL`) apart, each one round trip |

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::{Connection as _, MySqlConnection, PgConnection};
use tokio::process::{Child, Command};

use crate::Result;
use crate::demo::free_port;

/// The PostgreSQL server to make the benchmark's database on (the tests'
/// variable; its path names a database to connect to for that).
const POSTGRES_URL: (&str, &str) = ("EXPECTED_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
/// The MariaDB server (a user allowed to create databases and users).
const MYSQL_URL: (&str, &str) = ("EXPECTED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
/// The `redis-server` binary (the Redis tests' variable).
const REDIS_SERVER: (&str, &str) = ("EXPECTED_REDIS_SERVER", "redis-server");

fn setting((name, default): (&str, &str)) -> String {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

/// A store the benchmark runs the demo on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreKind {
    /// `memory:`.
    Memory,
    /// A SQLite file (WAL, `synchronous = FULL`: the store's settings).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MariaDB (or MySQL).
    Mariadb,
    /// Redis.
    Redis,
}

impl StoreKind {
    /// Every store, in the table's order.
    pub(crate) const ALL: [Self; 5] =
        [Self::Memory, Self::Sqlite, Self::Postgres, Self::Mariadb, Self::Redis];

    /// What its counter counts, per request.
    pub(crate) fn counter(self) -> Option<&'static str> {
        match self {
            Self::Memory | Self::Sqlite => None,
            Self::Postgres => Some("transactions (= statements)"),
            Self::Mariadb => Some("statements"),
            Self::Redis => Some("commands, those in scripts included (scripts)"),
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mariadb => "mariadb",
            Self::Redis => "redis",
        })
    }
}

/// A store server's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count {
    /// Transactions, statements or commands (see [`StoreKind::counter`]).
    pub(crate) work: u64,
    /// Redis: the scripts run (`EVALSHA` and `EVAL` calls).
    pub(crate) scripts: Option<u64>,
}

impl Count {
    fn work(work: u64) -> Self {
        Self { work, scripts: None }
    }
}

/// A store made for the benchmark, and what it takes to count its work and
/// to clean it up.
pub(crate) struct Backend {
    /// Which store.
    pub(crate) kind: StoreKind,
    /// Its URL, for the demo's `EXPECTED_STORE` and the raw reference.
    pub(crate) url: String,
    inner: Inner,
}

enum Inner {
    Plain,
    Postgres { admin: PgConnection, database: String },
    Mariadb { admin: MySqlConnection, database: String, user: String, userstat_was: bool },
    Redis { server: Child, connection: redis::aio::MultiplexedConnection },
}

/// `url` with its path (the database) replaced by `/{database}`, its query
/// kept.
fn with_database(url: &str, database: &str) -> Result<String> {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let (scheme, rest) = base.split_once("://").ok_or_else(|| format!("{url}: not a URL"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Ok(format!("{scheme}://{authority}/{database}{query}"))
}

/// `url`'s host and port, without user information.
fn host(url: &str) -> Result<&str> {
    let rest = url.split_once("://").map(|(_, rest)| rest).ok_or_else(|| format!("{url}: not a URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    Ok(authority.rsplit_once('@').map_or(authority, |(_, host)| host))
}

impl Backend {
    /// Makes a `kind` store for the benchmark named `tag` (database, user
    /// and file names), its files under `work`.
    pub(crate) async fn open(kind: StoreKind, work: &Path, tag: &str) -> Result<Self> {
        let (url, inner) = match kind {
            StoreKind::Memory => ("memory:".to_owned(), Inner::Plain),
            StoreKind::Sqlite => {
                (format!("sqlite:{}", work.join(format!("{tag}.db")).display()), Inner::Plain)
            }
            StoreKind::Postgres => {
                let admin_url = setting(POSTGRES_URL);
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| format!("PostgreSQL at {}: {e}", host(&admin_url).unwrap_or("?")))?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {tag}")))
                    .execute(&mut admin)
                    .await
                    .map_err(|e| format!("CREATE DATABASE {tag}: {e}"))?;
                (with_database(&admin_url, tag)?, Inner::Postgres { admin, database: tag.to_owned() })
            }
            StoreKind::Mariadb => open_mariadb(tag).await?,
            StoreKind::Redis => {
                let port = free_port()?;
                let binary = setting(REDIS_SERVER);
                let server = Command::new(&binary)
                    .args([
                        "--port",
                        &port.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| format!("cannot start {binary}: {e}"))?;
                let url = format!("redis://127.0.0.1:{port}");
                let connection = connect_redis(&url).await?;
                (url, Inner::Redis { server, connection })
            }
        };
        Ok(Self { kind, url, inner })
    }

    /// The store server's counter now; `None` for stores without one.
    pub(crate) async fn count(&mut self) -> Result<Option<Count>> {
        match &mut self.inner {
            Inner::Plain => Ok(None),
            Inner::Postgres { admin, database } => {
                Ok(Some(Count::work(pg_transactions(admin, database).await?)))
            }
            Inner::Mariadb { admin, user, .. } => {
                let statements: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE((SELECT SELECT_COMMANDS + UPDATE_COMMANDS + OTHER_COMMANDS \
                     FROM information_schema.USER_STATISTICS WHERE USER = ?), 0) AS SIGNED)",
                )
                .bind(&*user)
                .fetch_one(admin)
                .await
                .map_err(|e| format!("USER_STATISTICS: {e}"))?;
                Ok(Some(Count::work(statements.unsigned_abs())))
            }
            Inner::Redis { connection, .. } => {
                let info: String = redis::cmd("INFO")
                    .arg("commandstats")
                    .query_async(connection)
                    .await
                    .map_err(|e| format!("INFO commandstats: {e}"))?;
                let (work, scripts) = redis_calls(&info);
                Ok(Some(Count { work, scripts: Some(scripts) }))
            }
        }
    }

    /// Waits until the connections of the demo (or the reference) that just
    /// ended are gone from the server and their work is counted.
    pub(crate) async fn settle(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        match &mut self.inner {
            Inner::Plain | Inner::Redis { .. } => Ok(()),
            Inner::Postgres { admin, database } => {
                loop {
                    let left: i64 =
                        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                            .bind(&*database)
                            .fetch_one(&mut *admin)
                            .await
                            .map_err(|e| format!("pg_stat_activity: {e}"))?;
                    if left == 0 {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("{left} connections to {database} are still open").into());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // A closing backend leaves pg_stat_activity before its last
                // statistics reach pg_stat_database: wait until they stop
                // changing.
                let mut last = pg_transactions(admin, database).await?;
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let now = pg_transactions(admin, database).await?;
                    if now == last || Instant::now() > deadline {
                        return Ok(());
                    }
                    last = now;
                }
            }
            Inner::Mariadb { admin, user, .. } => loop {
                let left: i64 = sqlx::query_scalar(
                    "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.PROCESSLIST WHERE USER = ?",
                )
                .bind(&*user)
                .fetch_one(&mut *admin)
                .await
                .map_err(|e| format!("PROCESSLIST: {e}"))?;
                if left == 0 {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(format!("{left} connections of {user} are still open").into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
        }
    }

    /// Drops what [`open`](Self::open) made (the SQLite file goes with the
    /// work directory).
    pub(crate) async fn close(self) -> Result<()> {
        match self.inner {
            Inner::Plain => Ok(()),
            Inner::Postgres { mut admin, database } => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .map_err(|e| format!("DROP DATABASE {database}: {e}"))?;
                Ok(())
            }
            Inner::Mariadb { mut admin, database, user, userstat_was } => {
                let mut statements = vec![
                    format!("DROP DATABASE IF EXISTS {database}"),
                    format!("DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost'"),
                ];
                if !userstat_was {
                    statements.push("SET GLOBAL userstat = 0".to_owned());
                }
                for statement in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                        .execute(&mut admin)
                        .await
                        .map_err(|e| format!("{statement}: {e}"))?;
                }
                Ok(())
            }
            Inner::Redis { mut server, .. } => {
                server.start_kill().map_err(|e| format!("cannot stop the benchmark's redis-server: {e}"))?;
                server.wait().await.map_err(|e| format!("the benchmark's redis-server: {e}"))?;
                Ok(())
            }
        }
    }
}

/// A database and a user of the benchmark's own on MariaDB, with the
/// server's per-user statistics on.
async fn open_mariadb(tag: &str) -> Result<(String, Inner)> {
    let admin_url = setting(MYSQL_URL);
    let server = host(&admin_url)?.to_owned();
    let mut admin =
        MySqlConnection::connect(&admin_url).await.map_err(|e| format!("MariaDB at {server}: {e}"))?;
    let userstat: i64 = sqlx::query_scalar("SELECT CAST(@@GLOBAL.userstat AS SIGNED)")
        .fetch_one(&mut admin)
        .await
        .map_err(|e| format!("@@userstat (the counter needs MariaDB): {e}"))?;
    // Connections over TCP to 127.0.0.1 may match `localhost` or `%`.
    for statement in [
        format!("CREATE DATABASE {tag}"),
        format!("CREATE USER '{tag}'@'%', '{tag}'@'localhost'"),
        format!("GRANT ALL ON {tag}.* TO '{tag}'@'%', '{tag}'@'localhost'"),
        "SET GLOBAL userstat = 1".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("{statement}: {e}"))?;
    }
    let url = format!("mysql://{tag}@{server}/{tag}");
    let inner =
        Inner::Mariadb { admin, database: tag.to_owned(), user: tag.to_owned(), userstat_was: userstat != 0 };
    Ok((url, inner))
}

async fn pg_transactions(admin: &mut PgConnection, database: &str) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COALESCE((SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1), 0)",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .map_err(|e| format!("pg_stat_database: {e}"))?;
    Ok(count.unsigned_abs())
}

/// Connects to the benchmark's Redis, waiting for it to start.
async fn connect_redis(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).map_err(|e| format!("{url}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.get_multiplexed_async_connection().await {
            Ok(connection) => return Ok(connection),
            Err(error) if Instant::now() > deadline => {
                return Err(format!("redis-server at {url}: {error}").into());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The calls of every command in `INFO commandstats` but `INFO`'s, and
/// those of `EVALSHA` and `EVAL`.
fn redis_calls(info: &str) -> (u64, u64) {
    let calls = info.lines().filter_map(|line| {
        let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
        Some((name, rest.split(',').next()?.parse::<u64>().ok()?))
    });
    let (mut all, mut scripts) = (0, 0);
    for (name, n) in calls {
        if name != "info" {
            all += n;
        }
        if matches!(name, "evalsha" | "eval") {
            scripts += n;
        }
    }
    (all, scripts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() -> Result<()> {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "b1")?,
            "postgres://postgres@127.0.0.1:5432/b1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b1")?, "postgres://h/b1");
        assert_eq!(host("mysql://root:pw@127.0.0.1:3306/test")?, "127.0.0.1:3306");
        assert_eq!(host("mysql://db")?, "db");
        Ok(())
    }

    #[test]
    fn commandstats() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5,rejected_calls=0\r\n\
                    cmdstat_info:calls=3,usec=1\r\ncmdstat_client|setinfo:calls=2,usec=1\r\n";
        assert_eq!(redis_calls(info), (12, 10));
    }
}
