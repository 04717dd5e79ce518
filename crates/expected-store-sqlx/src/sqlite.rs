//! The SQLite store.

use std::sync::Arc;

use expected_core::store::{Confirmation, ExpiredLogin};
use expected_core::{AuthMethod, Serial, StoreError, Username};
use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::DEFAULT_BATCH;
use crate::codec::{micros, owner_name};
use crate::common::{CommonSql, SqlText, TxSql, expire_in_batches, sql, store_impl, tx_impl};
use crate::error::{Failure, Transience, retry, store_error};
use crate::tables::{Backend, Tables};

type Db = sqlx::Sqlite;

fn classify(error: &dyn DatabaseError) -> Transience {
    let code = error.code().and_then(|code| code.parse::<i32>().ok()).unwrap_or(0);
    // SQLITE_BUSY and SQLITE_LOCKED with their extended codes: the busy
    // timeout (or shared-cache unlock notification) already waited.
    match code & 0xff {
        5 | 6 => Transience::Busy,
        _ => Transience::No,
    }
}

fn username(user: &Username) -> &str {
    user.as_str()
}

/// A session's owner: the username, or `''` for an anonymous session.
fn owner(owner: Option<&Username>) -> &str {
    owner_name(owner)
}

#[derive(Debug)]
struct Sql {
    common: CommonSql,
    tx: TxSql,
    delete_login_sessions: SqlText,
    delete_login: SqlText,
    expire_login_sessions: SqlText,
    expire_logins: SqlText,
    confirm_session: SqlText,
    confirm_login: SqlText,
}

impl Sql {
    fn new(tables: &Tables, batch: u32) -> Self {
        let logins = Backend::Sqlite.quote(tables.logins());
        let sessions = Backend::Sqlite.quote(tables.sessions());
        Self {
            common: CommonSql::new(Backend::Sqlite, tables, batch),
            tx: TxSql::new(Backend::Sqlite, tables),
            // Each of the login's sessions found by an index: with an OR of
            // the two, SQLite reads every session of the user.
            delete_login_sessions: format!(
                "DELETE FROM {sessions} WHERE username = $1 AND digest IN \
                 (SELECT digest FROM {sessions} WHERE username = $1 AND login_serial = $2 \
                  UNION ALL SELECT session_digest FROM {logins} WHERE username = $1 AND serial = $2)"
            )
            .into(),
            delete_login: format!("DELETE FROM {logins} WHERE username = $1 AND serial = $2").into(),
            // One batch, in one write transaction: the sessions opened by the
            // first `batch` expired logins, then those logins (the same ones:
            // same order, nothing else writes meanwhile).
            expire_login_sessions: format!(
                "DELETE FROM {sessions} WHERE rowid IN (SELECT s.rowid FROM \
                 (SELECT username, serial, session_digest FROM {logins} WHERE expires_at <= $1 \
                  ORDER BY expires_at, rowid LIMIT {batch}) AS b \
                 JOIN {sessions} AS s ON s.username = b.username \
                  AND (s.login_serial = b.serial OR s.digest = b.session_digest))"
            )
            .into(),
            expire_logins: format!(
                "DELETE FROM {logins} WHERE rowid IN \
                 (SELECT rowid FROM {logins} WHERE expires_at <= $1 ORDER BY expires_at, rowid LIMIT {batch}) \
                 RETURNING username, serial"
            )
            .into(),
            confirm_session: format!(
                "UPDATE {sessions} SET method = '{}', authenticated_at = $3 WHERE username = $1 AND digest = $2",
                AuthMethod::Password.as_str()
            )
            .into(),
            confirm_login: format!(
                "UPDATE {logins} SET authenticated_at = $3 WHERE username = $1 AND serial = $2"
            )
            .into(),
        }
    }
}

/// The [`Store`](expected_core::Store) on SQLite.
///
/// Every write transaction starts with `BEGIN IMMEDIATE`, so writers queue on
/// SQLite's lock (for the pool's busy timeout) instead of failing to upgrade.
/// Use WAL mode for a file database read while written.
///
/// Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    tables: Tables,
    batch: u32,
    sql: Arc<Sql>,
}

impl SqliteStore {
    /// A store on `pool` with the default [`Tables`].
    pub fn new(pool: SqlitePool) -> Self {
        Self::with_tables(pool, Tables::default())
    }

    /// A store on `pool` with the given table names.
    ///
    /// ```no_run
    /// use expected_store_sqlx::{SqliteStore, Tables};
    /// use expected_store_sqlx::sqlx::SqlitePool;
    ///
    /// # #[cfg(feature = "sqlite")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = SqlitePool::connect("sqlite://app.db").await?;
    /// // Tables `auth_logins`, `auth_sessions` and `auth_migrations`:
    /// let store = SqliteStore::with_tables(pool, Tables::with_prefix("auth_")?);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_tables(pool: SqlitePool, tables: Tables) -> Self {
        let sql = Arc::new(Sql::new(&tables, DEFAULT_BATCH));
        Self { pool, tables, batch: DEFAULT_BATCH, sql }
    }

    /// Opens a pool on `url` (`sqlite://path.db`, `sqlite::memory:`), creating
    /// the file if missing, in WAL mode. Does not migrate.
    ///
    /// Note that with `sqlite::memory:` sqlx shares one in-memory database
    /// between the pool's connections, which lives as long as one of them.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options: SqliteConnectOptions = url.parse().map_err(|e| store_error(e, classify))?;
        let options = options.create_if_missing(true).journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool =
            SqlitePoolOptions::new().connect_with(options).await.map_err(|e| store_error(e, classify))?;
        Ok(Self::new(pool))
    }

    /// Sets how many rows one cleaning statement deletes at most (default
    /// [`DEFAULT_BATCH`]; at least 1).
    ///
    /// ```no_run
    /// use expected_store_sqlx::SqliteStore;
    ///
    /// # #[cfg(feature = "sqlite")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// // Shorter statements (less lock time per statement), more of them:
    /// let store = SqliteStore::connect("sqlite://app.db").await?.with_batch_size(500);
    /// let cleaned = expected_core::Expected::new(store, Default::default()).clean().await?;
    /// # let _ = cleaned;
    /// # Ok(()) }
    /// ```
    pub fn with_batch_size(mut self, batch: u32) -> Self {
        self.batch = batch.max(1);
        self.sql = Arc::new(Sql::new(&self.tables, self.batch));
        self
    }

    /// The pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates or upgrades the schema, answering the versions it applied
    /// (none when it was up to date) in one `BEGIN IMMEDIATE` transaction:
    /// idempotent, serialized by SQLite's write lock, all or nothing.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        retry(classify, || self.migrate_once()).await
    }

    async fn migrate_once(&self) -> Result<Vec<i64>, Failure> {
        let mut tx = self.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(crate::schema::migrations_table(Backend::Sqlite, &self.tables)))
            .execute(&mut *tx)
            .await?;
        let table = Backend::Sqlite.quote(self.tables.migrations_table());
        let applied: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
                .fetch_all(&mut *tx)
                .await?;
        let mut done = Vec::new();
        for migration in self.tables.migrations(Backend::Sqlite) {
            if applied.contains(&migration.version) {
                continue;
            }
            for statement in migration.statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (version, description, applied_at) VALUES ($1, $2, $3)"
            )))
            .bind(migration.version)
            .bind(migration.description)
            .bind(micros(expected_core::time::OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await?;
            done.push(migration.version);
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// A rotation's or a session creation's transaction: SQLite serializes
    /// writers, so the same as every other write.
    async fn begin_session_write(&self) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        self.begin().await
    }

    async fn expire_logins(&self, now: i64) -> Result<Vec<ExpiredLogin>, StoreError> {
        expire_in_batches(self.batch, || {
            retry(classify, || async {
                let mut tx = self.begin().await?;
                sqlx::query(sql(&self.sql.expire_login_sessions)).bind(now).execute(&mut *tx).await?;
                let keys: Vec<(String, Vec<u8>)> =
                    sqlx::query_as(sql(&self.sql.expire_logins)).bind(now).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(keys)
            })
        })
        .await
    }

    /// The session, then (only if it exists) its login, in one write
    /// transaction.
    async fn confirm(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        let at = micros(confirmation.at);
        retry(classify, || async {
            let mut tx = self.begin().await?;
            let done = sqlx::query(sql(&self.sql.confirm_session))
                .bind(username(&confirmation.username))
                .bind(&confirmation.session.as_bytes()[..])
                .bind(at)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            if let Some(serial) = &confirmation.login {
                sqlx::query(sql(&self.sql.confirm_login))
                    .bind(username(&confirmation.username))
                    .bind(&serial.as_bytes()[..])
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn remove_login(&self, user: &Username, serial: &Serial) -> Result<bool, StoreError> {
        retry(classify, || async {
            let mut tx = self.begin().await?;
            sqlx::query(sql(&self.sql.delete_login_sessions))
                .bind(username(user))
                .bind(&serial.as_bytes()[..])
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query(sql(&self.sql.delete_login))
                .bind(username(user))
                .bind(&serial.as_bytes()[..])
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }
}

store_impl!(SqliteStore);
tx_impl!(SqliteStore);
