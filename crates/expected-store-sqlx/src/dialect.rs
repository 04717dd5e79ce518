//! What differs between the three backends, as one trait.
//!
//! [`SqlStore`] is written once, over a [`Dialect`]; each backend module
//! (`postgres`, `mysql`, `sqlite`) defines a marker type and implements the
//! trait for it: its sqlx database, how it binds a username, how it tells a
//! transient error, how it begins a write transaction and where its writes
//! go, its statements, and the operations whose SQL is its own
//! (PostgreSQL's single-statement CTEs, MySQL's multi-table `DELETE`,
//! SQLite's `BEGIN IMMEDIATE` transactions on its one writer). MySQL and
//! SQLite share their transactional operations through [`Transactional`].
//!
//! A new `Store` operation that one backend does in fewer round trips: a
//! method here whose default body is the shared way (written against
//! [`SqlStore`]'s parts, or the contract's default in steps, such as
//! [`rotate_current_in_steps`]), overridden in that backend's impl (its statement text in
//! its `Sql`, e.g. `postgres/sql.rs`), and the `Store` impl (`contract.rs`)
//! calling it. `rotate_current` and `create_remembered` are such: one
//! statement each on PostgreSQL, the contract's default elsewhere.

use std::fmt::Debug;
use std::future::Future;
use std::num::NonZeroUsize;
use std::ops::DerefMut;

use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation, create_remembered_in_steps, rotate_current_in_steps,
};
use expected_core::{Login, Serial, SessionRecord, StoreError, Username};
use sqlx::error::DatabaseError;
use sqlx::{Database, Pool, Transaction};

use crate::driver::{BoxFuture, Driver, Stmt};
use crate::error::{Failure, Transience};
use crate::statements::CommonSql;
#[cfg(any(feature = "mysql", feature = "sqlite"))]
use crate::statements::TxSql;
use crate::store::SqlStore;
use crate::tables::{Backend, Tables};

/// A sqlx connection of dialect `D`'s database.
pub(crate) type Connection<D> = <<D as Dialect>::Db as Database>::Connection;

/// One of the crate's SQL dialects (sealed: the crate's three backends).
pub trait Dialect: Sized + Send + Sync + 'static {
    /// The sqlx database.
    type Db: Driver;

    /// The dialect's statements, built once per store from the table names
    /// and the batch size.
    type Sql: Debug + Send + Sync + 'static;

    /// What the store keeps to write with, beside its pool: nothing on
    /// PostgreSQL and MySQL, whose writes go to the pool; SQLite's one
    /// writer.
    type Writer: Clone + Debug + Send + Sync + 'static;

    /// A connection held for one write (a statement or a transaction).
    type WriteConn: DerefMut<Target = Connection<Self>> + Send;

    /// The backend, for the schema and the SQL shared with other dialects.
    const BACKEND: Backend;

    /// The largest cleaning batch (placeholders a statement may take).
    const MAX_BATCH: u32 = u32::MAX;

    /// Whether a database error is transient, and how.
    fn classify(error: &dyn DatabaseError) -> Transience;

    /// Binds a username, or `''` for an anonymous session's owner (text;
    /// bytes on MySQL, whose column is `VARBINARY`).
    fn bind_name(stmt: Stmt<Self>, name: &str) -> Stmt<Self>;

    /// The dialect's statements.
    fn sql(tables: &Tables, batch: u32) -> Self::Sql;

    /// The statements every dialect shares, among them.
    fn common(sql: &Self::Sql) -> &CommonSql;

    /// The writer of a store on `pool` (`new`, `with_tables`).
    fn writer(pool: &Pool<Self::Db>) -> Self::Writer;

    /// The connection to write on, for one statement or transaction.
    fn write(
        pool: &Pool<Self::Db>,
        writer: &Self::Writer,
    ) -> impl Future<Output = Result<Self::WriteConn, sqlx::Error>> + Send;

    /// An operation failed with `error` (after its connection was let go):
    /// a writer that holds a connection of its own may want to check it.
    fn failed(writer: &Self::Writer, error: &sqlx::Error) {
        let _ = (writer, error);
    }

    /// Runs one attempt of an operation (each of [`SqlStore::retry`]'s):
    /// as it is by default; on SQLite's own writer, the writes of attempts
    /// that queue up together are made durable by one commit.
    fn attempt<T: Send>(
        writer: &Self::Writer,
        attempt: impl Future<Output = Result<T, Failure>> + Send,
    ) -> impl Future<Output = Result<T, Failure>> + Send {
        let _ = writer;
        attempt
    }

    /// Whether other writes wait for the writer (after an operation the
    /// store then yields, so that the next write starts at once).
    fn contended(writer: &Self::Writer) -> bool {
        let _ = writer;
        false
    }

    /// Begins a write transaction on `conn` (SQLite: `BEGIN IMMEDIATE`, so
    /// that the write lock is taken at once rather than upgraded later, or
    /// a savepoint inside the writer's group transaction).
    fn begin(conn: &mut Connection<Self>) -> BoxFuture<'_, Result<Transaction<'_, Self::Db>, sqlx::Error>>;

    /// A pool with sqlx's default options on `url`, and its writer
    /// (`connect`).
    fn connect(url: &str) -> impl Future<Output = Result<(Pool<Self::Db>, Self::Writer), StoreError>> + Send;

    /// Creates or upgrades the schema, serialized with other processes doing
    /// the same.
    fn migrate(store: &SqlStore<Self>) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    /// `rotate_login`.
    fn rotate(
        store: &SqlStore<Self>,
        rotation: &Rotation,
    ) -> impl Future<Output = Result<Rotated, StoreError>> + Send;

    /// `rotate_current`, the optimistic cookie login: by default the
    /// contract's own (`get_login`, then `rotate_login` when it applies);
    /// PostgreSQL's is one statement.
    fn rotate_current(
        store: &SqlStore<Self>,
        attempt: &CurrentRotation,
    ) -> impl Future<Output = Result<CurrentRotated, StoreError>> + Send {
        rotate_current_in_steps(store, attempt)
    }

    /// `create_remembered`, a password login with "remember me": by default
    /// the contract's own (`create_login`, `create_grace_session`, then
    /// `list_logins` when asked); PostgreSQL's is one statement.
    fn create_remembered(
        store: &SqlStore<Self>,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> impl Future<Output = Result<Remembered, StoreError>> + Send {
        create_remembered_in_steps(store, login, session, max_sessions, list_logins)
    }

    /// `create_session` of a user's session under a cap of `max`.
    fn insert_capped(
        store: &SqlStore<Self>,
        session: &SessionRecord,
        max: NonZeroUsize,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send;

    /// `create_grace_session` of a session that names its login.
    fn create_grace(
        store: &SqlStore<Self>,
        session: &SessionRecord,
        max: Option<NonZeroUsize>,
    ) -> impl Future<Output = Result<GraceInserted, StoreError>> + Send;

    /// `delete_login`.
    fn remove_login(
        store: &SqlStore<Self>,
        user: &Username,
        serial: &Serial,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// `delete_user` (`keep` is `None`) and `delete_user_except`.
    fn remove_user(
        store: &SqlStore<Self>,
        user: &Username,
        keep: Option<&Keep>,
    ) -> impl Future<Output = Result<Deleted, StoreError>> + Send;

    /// `confirm_password`.
    fn confirm(
        store: &SqlStore<Self>,
        confirmation: &Confirmation,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// One cleaning batch of expired logins and the sessions they opened
    /// (`now` in microseconds): the logins deleted. One statement or
    /// transaction, retried as a whole.
    fn expire_logins_batch(
        store: &SqlStore<Self>,
        now: i64,
    ) -> impl Future<Output = Result<Vec<ExpiredLogin>, StoreError>> + Send;
}

#[cfg(any(feature = "mysql", feature = "sqlite"))]
/// A dialect whose grace session, capped session and user deletion (and on
/// MySQL rotation) are write transactions of several statements (MySQL and
/// SQLite: neither can change two tables in one statement with
/// `RETURNING`), run by [`crate::transactional`].
pub(crate) trait Transactional: Dialect {
    /// The transactions' statements, among the dialect's.
    fn tx(sql: &Self::Sql) -> &TxSql;

    /// Begins the write transaction of a rotation or of a session's
    /// creation (under a cap, or a grace session) on `conn`: by default
    /// [`Dialect::begin`] (SQLite, whose writer serializes writes anyway);
    /// MySQL's runs at `READ COMMITTED`, which locks only the rows it
    /// writes.
    fn begin_session_write(
        conn: &mut Connection<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'_, Self::Db>, sqlx::Error>> {
        Self::begin(conn)
    }
}
