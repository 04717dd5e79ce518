//! The SQLite dialect: every write a `BEGIN IMMEDIATE` transaction (or one
//! statement) on the store's one writer (`writer.rs`), a savepoint in the
//! writer's group transaction on a writer of its own; the options of a
//! store that opens its own connections in `options.rs`.

#[cfg(test)]
mod group_tests;
mod options;
mod rotation;
mod writer;

use std::future::Future;
use std::num::NonZeroUsize;
use std::ops::DerefMut;

use expected_core::store::{
    Confirmation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep, Rotated, Rotation,
};
use expected_core::{AuthMethod, Serial, SessionRecord, StoreError, Username};
use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqlitePool, SqliteQueryResult};
use sqlx::{Connection as _, SqliteConnection, Transaction};

pub use self::options::{SqliteStoreBuilder, Synchronous};
use self::rotation::RotationSql;
use self::writer::{WriteConn, Writer};
use crate::codec::{expired, micros};
use crate::dialect::{Connection, Dialect, Transactional};
use crate::driver::{BoxFuture, RowsAffected, Stmt};
use crate::error::{Failure, Transience, store_error};
use crate::statements::{CommonSql, SqlText, TxSql};
use crate::store::SqlStore;
use crate::tables::{Backend, Tables};
use crate::transactional;

/// The SQLite dialect (SQLite 3.35 or later; the bundled one).
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

/// The [`Store`](expected_core::Store) on SQLite: a [`SqlStore`] of the
/// SQLite dialect, whose methods it has.
///
/// # One writer
///
/// SQLite lets one connection write at a time. The store's writes (every
/// operation but the reads `get_login`, `list_logins`, `get_session` and
/// `count_sessions`) take turns, in the order they came, on one writer
/// inside the process, instead of each pooled connection competing for
/// SQLite's lock and sleeping in its busy handler; reads run in parallel on
/// the pool. A turn lasts one statement or one `BEGIN IMMEDIATE`
/// transaction, and nothing else is awaited during it (but a connection of
/// a pool of yours, below); a retry's pause comes after it.
///
/// - [`connect`](SqlStore::connect) and [`builder`](Self::builder) open a
///   pool of readers (10 by default) and a **writer of its own**: one
///   connection, opened with the same options, that the store holds for as
///   long as it lives (a turn begins with it in hand; it is checked and
///   replaced should it break). [`writer`](Self::writer) lends it for a
///   write of yours; [`close`](Self::close) closes it and the readers.
/// - [`new`](SqlStore::new) and [`with_tables`](SqlStore::with_tables), on
///   a pool of yours, open nothing: writes take their turns on **your
///   pool's** connections (any of them, one write at a time, each taken
///   from the pool at the start of its turn and given back at the end, so a
///   turn may wait for the pool to have a connection free), so the pool's size,
///   options, hooks and `close()` keep their meaning, and a pool whose
///   connections do not share one database (an in-memory database without
///   shared cache) behaves as it did. Turns still spare the busy handler;
///   a writer of its own also spares each write the trip to the pool and
///   keeps its page cache warm (have one with
///   [`SqliteStoreBuilder::connect_with`] and your options).
///
/// # Group commit
///
/// On a writer of its own, the writes that queue up while one runs share
/// one commit: they run in one `BEGIN IMMEDIATE` transaction of the
/// writer's (each operation's own transaction a savepoint in it), and the
/// write that finds no other waiting (or 64 in the group) commits for all.
/// None answers before the commit is durable; a failed commit fails every
/// write of the group (it is rolled back, or the connection is closed and
/// replaced, which rolls it back), and a write that fails is rolled back to
/// its savepoint and fails alone, the group committed at once. So under
/// load one `fsync` serves many writes: the commit rate no longer bounds
/// the write rate, and a write waits for one or two commits, not for one
/// per write queued before it.
///
/// Writes sent outside the store (through [`pool`](SqlStore::pool), or by
/// another process on the same file) do not take turns: they meet SQLite's
/// lock, which `BEGIN IMMEDIATE` takes at once, waited for up to the
/// connection's busy timeout (sqlx's default is 5 s) and retried (up to 12
/// attempts), as before. So several processes may share one file, each
/// with its own writer; within a process, one store (and its clones) per
/// file serializes everything.
///
/// # Durability
///
/// WAL mode and `synchronous = FULL` by default: a commit returns once the
/// WAL is on the disk. [`Synchronous::Normal`] (with
/// [`SqliteStoreBuilder::synchronous`]) commits faster and may lose the
/// last commits to a power cut, which a user whose rotation was lost
/// experiences as a theft alarm unless token keys are configured: read the
/// trade-off there.
pub type SqliteStore = SqlStore<Sqlite>;

/// SQLite's statements: the shared ones, the transactions' (shared with
/// MySQL), and its own.
#[derive(Debug)]
pub struct Sql {
    common: CommonSql,
    tx: TxSql,
    rotation: RotationSql,
    delete_login_sessions: SqlText,
    delete_login: SqlText,
    expire_login_sessions: SqlText,
    expire_logins: SqlText,
    confirm_session: SqlText,
    confirm_login: SqlText,
}

impl Sql {
    pub(crate) fn new(tables: &Tables, batch: u32) -> Self {
        let logins = Backend::Sqlite.quote(tables.logins());
        let sessions = Backend::Sqlite.quote(tables.sessions());
        Self {
            common: CommonSql::new(Backend::Sqlite, tables, batch),
            tx: TxSql::new(Backend::Sqlite, tables),
            rotation: RotationSql::new(tables),
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

impl SqliteStore {
    /// Options for a store that opens its own connections: the table names,
    /// the batch size, [`Synchronous`], the number of readers.
    pub fn builder() -> SqliteStoreBuilder {
        SqliteStoreBuilder::default()
    }

    /// Waits for the writer's turn and hands over the connection the
    /// store's writes run on, until the returned guard is dropped: a write of
    /// your own (or a `PRAGMA` to read) in turn with the store's. Hold it
    /// briefly: every write of the store waits meanwhile. It is the store's
    /// own connection (a store from [`connect`](SqlStore::connect) or
    /// [`builder`](Self::builder)), with the group of the store's writes
    /// that was open on it committed first, so that your statements are
    /// your own; or one of the pool given to [`new`](SqlStore::new).
    ///
    /// ```no_run
    /// # #[cfg(feature = "sqlite")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use expected_store_sqlx::SqliteStore;
    /// use expected_store_sqlx::sqlx;
    ///
    /// let store = SqliteStore::connect("sqlite://app.db").await?;
    /// let mut writer = store.writer().await?;
    /// let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *writer).await?;
    /// assert_eq!(synchronous, 2); // FULL
    /// # Ok(()) }
    /// ```
    pub async fn writer(
        &self,
    ) -> Result<impl DerefMut<Target = SqliteConnection> + Send + use<>, StoreError> {
        self.writer.write().await.map_err(|e| store_error(e, Sqlite::classify))
    }

    /// Closes the store's connections, once the operations in progress are
    /// done: its writer's own connection and the readers' pool (a pool given
    /// to [`new`](SqlStore::new) is closed too: it is the store's only
    /// pool). Operations after that fail as `Unavailable`.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        SqliteQueryResult::rows_affected(self)
    }
}

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;
    type Sql = Sql;
    type Writer = Writer;
    type WriteConn = WriteConn;

    const BACKEND: Backend = Backend::Sqlite;

    fn classify(error: &dyn DatabaseError) -> Transience {
        let code = error.code().and_then(|code| code.parse::<i32>().ok()).unwrap_or(0);
        // SQLITE_BUSY and SQLITE_LOCKED with their extended codes: the busy
        // timeout (or shared-cache unlock notification) already waited.
        match code & 0xff {
            5 | 6 => Transience::Busy,
            _ => Transience::No,
        }
    }

    fn bind_name(stmt: Stmt<Self>, name: &str) -> Stmt<Self> {
        stmt.bind(name)
    }

    fn sql(tables: &Tables, batch: u32) -> Sql {
        Sql::new(tables, batch)
    }

    fn common(sql: &Sql) -> &CommonSql {
        &sql.common
    }

    fn writer(pool: &SqlitePool) -> Writer {
        Writer::shared(pool)
    }

    async fn write(_: &SqlitePool, writer: &Writer) -> Result<WriteConn, sqlx::Error> {
        writer.write().await
    }

    fn failed(writer: &Writer, error: &sqlx::Error) {
        writer.failed(error);
    }

    fn attempt<T: Send>(
        writer: &Writer,
        attempt: impl Future<Output = Result<T, Failure>> + Send,
    ) -> impl Future<Output = Result<T, Failure>> + Send {
        writer.attempt(attempt)
    }

    fn contended(writer: &Writer) -> bool {
        writer.contended()
    }

    fn begin(
        conn: &mut Connection<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'_, sqlx::Sqlite>, sqlx::Error>> {
        // Inside the writer's group transaction, a savepoint.
        if conn.is_in_transaction() {
            Box::pin(conn.begin())
        } else {
            Box::pin(conn.begin_with("BEGIN IMMEDIATE"))
        }
    }

    async fn connect(url: &str) -> Result<(SqlitePool, Writer), StoreError> {
        let store = SqliteStore::builder().connect(url).await?;
        Ok((store.pool, store.writer))
    }

    /// One `BEGIN IMMEDIATE` transaction on the writer: all or nothing,
    /// serialized with other processes by SQLite's write lock.
    async fn migrate(store: &SqliteStore) -> Result<Vec<i64>, StoreError> {
        store
            .retry(|| async {
                let mut conn = store.write().await?;
                let mut tx = Self::begin(&mut conn).await?;
                let done = crate::migrate::apply::<Self>(&mut tx, &store.tables).await?;
                tx.commit().await?;
                Ok(done)
            })
            .await
    }

    /// Four commands: `BEGIN IMMEDIATE`, the compare-and-swap, the rest in
    /// one, `COMMIT` (`rotation.rs`).
    async fn rotate(store: &SqliteStore, rotation: &Rotation) -> Result<Rotated, StoreError> {
        self::rotation::rotate(store, rotation).await
    }

    async fn insert_capped(
        store: &SqliteStore,
        session: &SessionRecord,
        max: NonZeroUsize,
    ) -> Result<Inserted, StoreError> {
        transactional::insert_capped(store, session, max).await
    }

    async fn create_grace(
        store: &SqliteStore,
        session: &SessionRecord,
        max: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        transactional::create_grace(store, session, max).await
    }

    /// The login's sessions, then the login, in one write transaction.
    async fn remove_login(store: &SqliteStore, user: &Username, serial: &Serial) -> Result<bool, StoreError> {
        store
            .retry(|| async {
                let mut conn = store.write().await?;
                let mut tx = Self::begin(&mut conn).await?;
                Stmt::<Self>::new(&store.sql.delete_login_sessions)
                    .user(user)
                    .bind(&serial.as_bytes()[..])
                    .execute(&mut tx)
                    .await?;
                let deleted = Stmt::<Self>::new(&store.sql.delete_login)
                    .user(user)
                    .bind(&serial.as_bytes()[..])
                    .execute(&mut tx)
                    .await?;
                tx.commit().await?;
                Ok(deleted > 0)
            })
            .await
    }

    async fn remove_user(
        store: &SqliteStore,
        user: &Username,
        keep: Option<&Keep>,
    ) -> Result<Deleted, StoreError> {
        transactional::remove_user(store, user, keep).await
    }

    /// The session, then (only if it exists) its login, in one write
    /// transaction.
    async fn confirm(store: &SqliteStore, confirmation: &Confirmation) -> Result<bool, StoreError> {
        let at = micros(confirmation.at);
        store
            .retry(|| async {
                let mut conn = store.write().await?;
                let mut tx = Self::begin(&mut conn).await?;
                let confirmed = Stmt::<Self>::new(&store.sql.confirm_session)
                    .user(&confirmation.username)
                    .bind(&confirmation.session.as_bytes()[..])
                    .bind(at)
                    .execute(&mut tx)
                    .await?;
                if confirmed == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if let Some(serial) = &confirmation.login {
                    Stmt::<Self>::new(&store.sql.confirm_login)
                        .user(&confirmation.username)
                        .bind(&serial.as_bytes()[..])
                        .bind(at)
                        .execute(&mut tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    /// One write transaction: the sessions the batch's logins opened, then
    /// the logins (`DELETE … RETURNING`).
    async fn expire_logins_batch(store: &SqliteStore, now: i64) -> Result<Vec<ExpiredLogin>, StoreError> {
        let keys = store
            .retry(|| async {
                let mut conn = store.write().await?;
                let mut tx = Self::begin(&mut conn).await?;
                Stmt::<Self>::new(&store.sql.expire_login_sessions).bind(now).execute(&mut tx).await?;
                let rows = Stmt::<Self>::new(&store.sql.expire_logins).bind(now).fetch_all(&mut tx).await?;
                tx.commit().await?;
                let keys = rows
                    .iter()
                    .map(|row| Ok((row.get::<String>(0)?, row.get::<Vec<u8>>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                Ok(keys)
            })
            .await?;
        expired(keys)
    }
}

impl Transactional for Sqlite {
    fn tx(sql: &Sql) -> &TxSql {
        &sql.tx
    }
}
