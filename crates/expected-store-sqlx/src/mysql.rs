//! The MySQL / MariaDB store.

use std::sync::Arc;

use expected_core::store::{Confirmation, ExpiredLogin};
use expected_core::{AuthMethod, Serial, StoreError, Username};
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlDatabaseError, MySqlPool, MySqlPoolOptions};

use crate::DEFAULT_BATCH;
use crate::codec::{micros, owner_name};
use crate::common::{CommonSql, SqlText, TxSql, expire_in_batches, sql, store_impl, tx_impl};
use crate::error::{Failure, Transience, retry, store_error};
use crate::tables::{Backend, Tables};

type Db = sqlx::MySql;

fn classify(error: &dyn DatabaseError) -> Transience {
    match error.try_downcast_ref::<MySqlDatabaseError>().map(MySqlDatabaseError::number) {
        // ER_LOCK_DEADLOCK; ER_CHECKREAD (MariaDB's snapshot isolation).
        Some(1213 | 1020) => Transience::Conflict,
        _ => Transience::No,
    }
}

/// Usernames are `VARBINARY`: bound as their UTF-8 bytes, compared exactly.
fn username(user: &Username) -> &[u8] {
    user.as_str().as_bytes()
}

/// A session's owner: the username, or `''` for an anonymous session.
fn owner(owner: Option<&Username>) -> &[u8] {
    owner_name(owner).as_bytes()
}

#[derive(Debug)]
struct Sql {
    common: CommonSql,
    tx: TxSql,
    delete_login: SqlText,
    delete_login_sessions: SqlText,
    confirm: SqlText,
    expired_logins: SqlText,
    expire_logins_prefix: String,
}

impl Sql {
    fn new(tables: &Tables, batch: u32) -> Self {
        let logins = Backend::MySql.quote(tables.logins());
        let sessions = Backend::MySql.quote(tables.sessions());
        Self {
            common: CommonSql::new(Backend::MySql, tables, batch),
            tx: TxSql::new(Backend::MySql, tables),
            // One statement for the login, its bound session and the
            // sessions it opened; InnoDB locks the login row first and reads
            // the sessions current (not from a snapshot).
            delete_login: format!(
                "DELETE l, s FROM {logins} AS l LEFT JOIN {sessions} AS s \
                 ON s.username = l.username AND (s.digest = l.session_digest OR s.login_serial = l.serial) \
                 WHERE l.username = ? AND l.serial = ?"
            )
            .into(),
            delete_login_sessions: format!(
                "{} WHERE s.username = ? AND s.login_serial = ?",
                crate::common::delete_by_login(Backend::MySql, tables)
            )
            .into(),
            // One statement, atomic on its own: the session and, joined to
            // it (so only when the session exists), its login. With
            // CLIENT_FOUND_ROWS (sqlx sets it) rows affected counts the rows
            // matched, so a confirmation writing the values already there
            // still answers true.
            confirm: format!(
                "UPDATE {sessions} AS s LEFT JOIN {logins} AS l ON l.username = s.username AND l.serial = ? \
                 SET s.method = '{password}', s.authenticated_at = ?, l.authenticated_at = ? \
                 WHERE s.username = ? AND s.digest = ?",
                password = AuthMethod::Password.as_str()
            )
            .into(),
            expired_logins: format!(
                "SELECT username, serial FROM {logins} WHERE expires_at <= ? \
                 ORDER BY expires_at LIMIT {batch} FOR UPDATE"
            )
            .into(),
            expire_logins_prefix: format!(
                "DELETE l, s FROM {logins} AS l LEFT JOIN {sessions} AS s \
                 ON s.username = l.username AND (s.digest = l.session_digest OR s.login_serial = l.serial) \
                 WHERE l.expires_at <= ? AND (l.username, l.serial) IN "
            ),
        }
    }

    /// The batch delete for `n` locked logins: `(?, ?)` pairs after the
    /// prefix, values bound, never spliced.
    fn expire_logins(&self, n: usize) -> String {
        let pairs = vec!["(?, ?)"; n].join(", ");
        format!("{}({pairs})", self.expire_logins_prefix)
    }
}

/// The most placeholders one prepared statement takes: the protocol counts
/// them in 16 bits, and the server refuses more ("too many placeholders").
const MAX_PLACEHOLDERS: u32 = u16::MAX as u32;

/// The [`Store`](expected_core::Store) on MySQL 8 or MariaDB 10.5+.
///
/// Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    tables: Tables,
    batch: u32,
    sql: Arc<Sql>,
}

impl MySqlStore {
    /// A store on `pool` with the default [`Tables`].
    pub fn new(pool: MySqlPool) -> Self {
        Self::with_tables(pool, Tables::default())
    }

    /// A store on `pool` with the given table names.
    ///
    /// ```no_run
    /// use expected_store_sqlx::{MySqlStore, Tables};
    /// use expected_store_sqlx::sqlx::MySqlPool;
    ///
    /// # #[cfg(feature = "mysql")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = MySqlPool::connect("mysql://app@db/app").await?;
    /// // Tables `auth_logins`, `auth_sessions` and `auth_migrations`:
    /// let store = MySqlStore::with_tables(pool, Tables::with_prefix("auth_")?);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_tables(pool: MySqlPool, tables: Tables) -> Self {
        let sql = Arc::new(Sql::new(&tables, DEFAULT_BATCH));
        Self { pool, tables, batch: DEFAULT_BATCH, sql }
    }

    /// Connects a pool with sqlx's default options (use [`MySqlStore::new`]
    /// with your own [`MySqlPoolOptions`] to tune it). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = MySqlPoolOptions::new().connect(url).await.map_err(|e| store_error(e, classify))?;
        Ok(Self::new(pool))
    }

    /// The largest batch: a batch of expired logins is deleted by one
    /// statement that binds `now` and each login's username and serial, so
    /// `1 + 2 × batch` placeholders, of which MySQL and MariaDB take at most
    /// 65 535.
    pub const MAX_BATCH: u32 = (MAX_PLACEHOLDERS - 1) / 2;

    /// Sets how many rows one cleaning statement deletes at most (default
    /// [`DEFAULT_BATCH`]; at least 1, at most [`MySqlStore::MAX_BATCH`], to
    /// which a larger setting is lowered).
    ///
    /// ```no_run
    /// use expected_store_sqlx::MySqlStore;
    ///
    /// # #[cfg(feature = "mysql")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// // Shorter statements (less lock time per statement), more of them:
    /// let store = MySqlStore::connect("mysql://app@db/app").await?.with_batch_size(500);
    /// let cleaned = expected_core::Expected::new(store, Default::default()).clean().await?;
    /// # let _ = cleaned;
    /// # Ok(()) }
    /// ```
    pub fn with_batch_size(mut self, batch: u32) -> Self {
        self.batch = batch.clamp(1, Self::MAX_BATCH);
        self.sql = Arc::new(Sql::new(&self.tables, self.batch));
        self
    }

    /// The pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates or upgrades the schema, answering the versions it applied
    /// (none when it was up to date): idempotent, and safe to run from
    /// several processes at once (`GET_LOCK` serializes them). MySQL commits
    /// DDL at once, so every statement is idempotent on its own and a
    /// migration is recorded only once all its statements ran.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(|e| store_error(e, classify))?;
        let lock = format!("expected-store-sqlx.{}", self.tables.migrations_table());
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(LEFT(CONCAT(COALESCE(DATABASE(), ''), '.', ?), 64), 60)")
                .bind(&lock)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| store_error(e, classify))?;
        if locked != Some(1) {
            return Err(StoreError::new(
                expected_core::StoreErrorKind::Unavailable,
                "another migration held the migration lock for 60 s",
            ));
        }
        let outcome = self.migrate_locked(&mut conn).await.map_err(|e| e.into_store(classify));
        let released = sqlx::query("SELECT RELEASE_LOCK(LEFT(CONCAT(COALESCE(DATABASE(), ''), '.', ?), 64))")
            .bind(&lock)
            .execute(&mut *conn)
            .await;
        if released.is_err() {
            // The lock dies with the connection: do not hand it back.
            conn.detach();
        }
        outcome
    }

    async fn migrate_locked(&self, conn: &mut sqlx::MySqlConnection) -> Result<Vec<i64>, Failure> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(crate::schema::migrations_table(Backend::MySql, &self.tables)))
            .execute(&mut *conn)
            .await?;
        let table = Backend::MySql.quote(self.tables.migrations_table());
        let applied: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
                .fetch_all(&mut *conn)
                .await?;
        let mut done = Vec::new();
        for migration in self.tables.migrations(Backend::MySql) {
            if applied.contains(&migration.version) {
                continue;
            }
            for statement in migration.statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *conn).await?;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (version, description, applied_at) VALUES (?, ?, ?)"
            )))
            .bind(migration.version)
            .bind(migration.description)
            .bind(micros(expected_core::time::OffsetDateTime::now_utc()))
            .execute(&mut *conn)
            .await?;
            done.push(migration.version);
        }
        Ok(done)
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        self.pool.begin().await
    }

    /// A rotation's or a session creation's transaction, at READ COMMITTED
    /// (the next transaction only; the connection's own level is untouched),
    /// in the same round trip as its start.
    ///
    /// Under InnoDB's default REPEATABLE READ, the statements that delete a
    /// login's old sessions and evict a user's sessions beyond the cap lock
    /// every row they scan of the user's range of the sessions' primary key,
    /// with the gaps, and the cap's subquery share-locks the rows it reads:
    /// rotations of two devices of one user then deadlock on each other's
    /// new session (InnoDB 1213, measured by the HTTP benchmark: 25 of 4 315
    /// cookie logins failed after every retry with 10 browsers per user).
    /// READ COMMITTED locks only the rows a statement changes, with no gap
    /// locks, and the subquery reads without locking. Nothing here needs
    /// more: every statement names its rows, the login's row lock (taken
    /// first, by the compare-and-swap or the binding) orders a rotation with
    /// a racing `delete_login` or `delete_user` (which stay at the default
    /// level: they read the serials they delete under a lock with its gap),
    /// and a cap counted while another creation is uncommitted can leave the
    /// user one session over it until the next creation, as documented on
    /// `Store`'s rules ("Sessions per user are capped").
    async fn begin_session_write(&self) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        self.pool.begin_with("SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION").await
    }

    async fn remove_login(&self, user: &Username, serial: &Serial) -> Result<bool, StoreError> {
        let done = retry(classify, || async {
            Ok(sqlx::query(sql(&self.sql.delete_login))
                .bind(username(user))
                .bind(&serial.as_bytes()[..])
                .execute(&self.pool)
                .await?)
        })
        .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // No login: end the sessions it opened all the same (the join above
        // starts from the login, so it found none of them).
        retry(classify, || async {
            Ok(sqlx::query(sql(&self.sql.delete_login_sessions))
                .bind(username(user))
                .bind(&serial.as_bytes()[..])
                .execute(&self.pool)
                .await?)
        })
        .await?;
        Ok(false)
    }

    /// Batches of one transaction each: lock up to `batch` expired logins,
    /// delete them and the sessions they opened in one statement, commit.
    async fn expire_logins(&self, now: i64) -> Result<Vec<ExpiredLogin>, StoreError> {
        expire_in_batches(self.batch, || {
            retry(classify, || async {
                let mut tx = self.begin().await?;
                let keys: Vec<(Vec<u8>, Vec<u8>)> =
                    sqlx::query_as(sql(&self.sql.expired_logins)).bind(now).fetch_all(&mut *tx).await?;
                if keys.is_empty() {
                    tx.commit().await?;
                    return Ok(keys);
                }
                let mut query =
                    sqlx::query(sqlx::AssertSqlSafe(self.sql.expire_logins(keys.len()))).bind(now);
                for (user, serial) in &keys {
                    query = query.bind(user.as_slice()).bind(serial.as_slice());
                }
                query.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(keys)
            })
        })
        .await
    }

    async fn confirm(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        let at = micros(confirmation.at);
        let done = retry(classify, || async {
            Ok(sqlx::query(sql(&self.sql.confirm))
                .bind(confirmation.login.as_ref().map(|serial| &serial.as_bytes()[..]))
                .bind(at)
                .bind(at)
                .bind(username(&confirmation.username))
                .bind(&confirmation.session.as_bytes()[..])
                .execute(&self.pool)
                .await?)
        })
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

store_impl!(MySqlStore);
tx_impl!(MySqlStore);
