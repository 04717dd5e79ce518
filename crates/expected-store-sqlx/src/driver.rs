//! sqlx's generic API, as the store's shared code uses it.
//!
//! sqlx implements encoding, decoding and execution for each database on its
//! own, so generic code over a `sqlx::Database` would have to repeat a dozen
//! bounds (`&[u8]: Encode<DB>`, `&mut DB::Connection: Executor`, …) on every
//! item. Here they are stated once, on the blanket impls below, and turned
//! into methods of [`Driver`]: `Dialect::Db: Driver` is then all the shared
//! code needs, and the compiler checks each backend against it.
//!
//! What it covers is exactly what the shared code does: [`Stmt`] binds the
//! value types of the schema (bytes, text, `BIGINT`, each maybe `NULL`) and
//! runs on a connection; [`Row`] reads them back by position.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use expected_core::Username;
use expected_core::store::Rotation;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::codec::{LoginValues, SessionValues, micros, owner_name};
use crate::dialect::Dialect;
use crate::statements::{SqlText, sql};

/// A boxed, sendable future, as sqlx's executors answer.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A statement before it runs: its text and the values bound so far.
pub(crate) type Query<DB> = sqlx::query::Query<'static, DB, <DB as Database>::Arguments>;

/// A database result that says how many rows a statement changed (sqlx has
/// no trait for it: each driver's result has its own method).
pub trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

/// Values of type `T` bind as parameters of this database's statements
/// (`'t`: what `T` borrows, as sqlx's `Encode<'t, _>` of an `Option<&'t _>`
/// wants it).
pub trait Binds<'t, T>: Database {
    /// Binds `value` as the next parameter.
    fn bind(query: Query<Self>, value: T) -> Query<Self>;
}

impl<'t, T, DB> Binds<'t, T> for DB
where
    DB: Database,
    T: Encode<'t, DB> + Type<DB>,
{
    fn bind(query: Query<Self>, value: T) -> Query<Self> {
        query.bind(value)
    }
}

/// A column of this database's rows reads as a `T`.
pub trait Reads<T>: Database {
    /// The value of column `index` (from 0).
    fn read(row: &Self::Row, index: usize) -> Result<T, sqlx::Error>;
}

impl<T, DB> Reads<T> for DB
where
    DB: Database,
    usize: ColumnIndex<DB::Row>,
    T: for<'r> Decode<'r, DB> + Type<DB>,
{
    fn read(row: &Self::Row, index: usize) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(row, index)
    }
}

/// What the shared code asks of a sqlx database: the schema's value types
/// bound and read, and statements run on one of its connections.
pub trait Driver:
    Database<QueryResult: RowsAffected>
    + for<'a> Binds<'a, &'a [u8]>
    + for<'a> Binds<'a, Option<&'a [u8]>>
    + for<'a> Binds<'a, &'a str>
    + for<'a> Binds<'a, Option<&'a str>>
    + for<'a> Binds<'a, i64>
    + for<'a> Binds<'a, Option<i64>>
    + Reads<Vec<u8>>
    + Reads<Option<Vec<u8>>>
    + Reads<String>
    + Reads<Option<String>>
    + Reads<i64>
    + Reads<Option<i64>>
{
    /// Runs `query` on `conn`: the rows it changed.
    fn execute(conn: &mut Self::Connection, query: Query<Self>) -> BoxFuture<'_, Result<u64, sqlx::Error>>;

    /// Runs `query` on `conn`: its first row, if any.
    fn fetch_optional(
        conn: &mut Self::Connection,
        query: Query<Self>,
    ) -> BoxFuture<'_, Result<Option<Self::Row>, sqlx::Error>>;

    /// Runs `query` on a connection of `pool`, given back as soon as the
    /// row is read: its first row, if any.
    fn fetch_optional_pooled(
        pool: &Pool<Self>,
        query: Query<Self>,
    ) -> BoxFuture<'_, Result<Option<Self::Row>, sqlx::Error>>;

    /// Runs `query` on `conn`: every row.
    fn fetch_all(
        conn: &mut Self::Connection,
        query: Query<Self>,
    ) -> BoxFuture<'_, Result<Vec<Self::Row>, sqlx::Error>>;

    /// Runs a script (statements without parameters, `;`-separated) on
    /// `conn`.
    fn run_script(conn: &mut Self::Connection, script: String) -> BoxFuture<'_, Result<(), sqlx::Error>>;
}

impl<DB> Driver for DB
where
    DB: Database<QueryResult: RowsAffected>
        + for<'a> Binds<'a, &'a [u8]>
        + for<'a> Binds<'a, Option<&'a [u8]>>
        + for<'a> Binds<'a, &'a str>
        + for<'a> Binds<'a, Option<&'a str>>
        + for<'a> Binds<'a, i64>
        + for<'a> Binds<'a, Option<i64>>
        + Reads<Vec<u8>>
        + Reads<Option<Vec<u8>>>
        + Reads<String>
        + Reads<Option<String>>
        + Reads<i64>
        + Reads<Option<i64>>,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn execute(conn: &mut Self::Connection, query: Query<Self>) -> BoxFuture<'_, Result<u64, sqlx::Error>> {
        Box::pin(async move { Ok(conn.execute(query).await?.rows_affected()) })
    }

    fn fetch_optional(
        conn: &mut Self::Connection,
        query: Query<Self>,
    ) -> BoxFuture<'_, Result<Option<Self::Row>, sqlx::Error>> {
        conn.fetch_optional(query)
    }

    fn fetch_optional_pooled(
        pool: &Pool<Self>,
        query: Query<Self>,
    ) -> BoxFuture<'_, Result<Option<Self::Row>, sqlx::Error>> {
        pool.fetch_optional(query)
    }

    fn fetch_all(
        conn: &mut Self::Connection,
        query: Query<Self>,
    ) -> BoxFuture<'_, Result<Vec<Self::Row>, sqlx::Error>> {
        conn.fetch_all(query)
    }

    fn run_script(conn: &mut Self::Connection, script: String) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(conn).await?;
            Ok(())
        })
    }
}

/// A statement of dialect `D` being bound, then run on a connection.
pub struct Stmt<D: Dialect> {
    query: Query<D::Db>,
    dialect: PhantomData<fn() -> D>,
}

impl<D: Dialect> Stmt<D> {
    /// The statement `text`, nothing bound yet.
    pub fn new(text: &SqlText) -> Self {
        Self { query: sqlx::query(sql(text)), dialect: PhantomData }
    }

    /// Binds the next parameter.
    pub fn bind<'t, T>(self, value: T) -> Self
    where
        D::Db: Binds<'t, T>,
    {
        Self { query: <D::Db as Binds<'t, T>>::bind(self.query, value), dialect: PhantomData }
    }

    /// Binds a username, as the dialect stores it.
    pub fn user(self, user: &Username) -> Self {
        D::bind_name(self, user.as_str())
    }

    /// Binds a session's owner: its username, or `''` for an anonymous
    /// session.
    pub fn owner(self, owner: Option<&Username>) -> Self {
        D::bind_name(self, owner_name(owner))
    }

    /// Binds a login's 13 columns, `username` first, in the order of
    /// [`LOGIN_COLUMNS`](crate::statements::LOGIN_COLUMNS).
    pub fn login(self, user: &Username, v: &LoginValues<'_>) -> Self {
        self.user(user)
            .bind(v.serial)
            .bind(v.token)
            .bind(v.previous_token)
            .bind(v.previous_rotated_at)
            .bind(v.previous_sealed)
            .bind(v.session_digest)
            .bind(v.created_at)
            .bind(v.last_used_at)
            .bind(v.expires_at)
            .bind(v.client_ip.as_deref())
            .bind(v.user_agent)
            .bind(v.authenticated_at)
    }

    /// Binds the login a rotation acts on, as its compare-and-swap finds
    /// it: username, serial, and the digest of the token expected current.
    pub fn rotated_login_key(self, rotation: &Rotation) -> Self {
        self.user(&rotation.username)
            .bind(&rotation.serial.as_bytes()[..])
            .bind(&rotation.expected.as_bytes()[..])
    }

    /// Binds what a rotation writes to its login, in the order every
    /// dialect's compare-and-swap sets it: the new token's digest, the
    /// previous token (digest, when rotated, sealed), last use, expiry,
    /// client IP (`client_ip`, the text of `rotation.client.ip`) and user
    /// agent.
    pub fn rotated_login_state(self, rotation: &Rotation, client_ip: Option<&str>) -> Self {
        self.bind(&rotation.token.as_bytes()[..])
            .bind(&rotation.previous.digest.as_bytes()[..])
            .bind(micros(rotation.previous.rotated_at))
            .bind(&rotation.previous.sealed.as_bytes()[..])
            .bind(micros(rotation.last_used_at))
            .bind(micros(rotation.expires_at))
            .bind(client_ip)
            .bind(rotation.client.user_agent.as_deref())
    }

    /// Binds a session's 8 columns, owner first, in the order of
    /// [`SESSION_COLUMNS`](crate::statements::SESSION_COLUMNS).
    pub fn session(self, v: &SessionValues<'_>) -> Self {
        self.owner(v.owner)
            .bind(v.digest)
            .bind(v.login_serial)
            .bind(v.method)
            .bind(v.authenticated_at)
            .bind(v.data.as_str())
            .bind(v.created_at)
            .bind(v.expires_at)
    }

    /// The sqlx query, for a dialect's own code to bind and read types the
    /// shared code does not (PostgreSQL's arrays and booleans) and to run it
    /// on the pool.
    pub fn query(self) -> Query<D::Db> {
        self.query
    }

    /// Runs it: the rows it changed.
    pub async fn execute(self, conn: &mut <D::Db as Database>::Connection) -> Result<u64, sqlx::Error> {
        D::Db::execute(conn, self.query).await
    }

    /// Runs it: its first row, if any.
    pub async fn fetch_optional(
        self,
        conn: &mut <D::Db as Database>::Connection,
    ) -> Result<Option<Row<D>>, sqlx::Error> {
        Ok(D::Db::fetch_optional(conn, self.query).await?.map(Row))
    }

    /// Runs it on a connection of `pool`: its first row, if any. One boxed
    /// future for the pool's acquire and the statement, where a
    /// [`fetch_optional`](Self::fetch_optional) on a connection acquired
    /// first nests the acquire's (kilobytes) in every caller's state: the
    /// session read of every request takes this.
    pub async fn fetch_optional_pooled(self, pool: &Pool<D::Db>) -> Result<Option<Row<D>>, sqlx::Error> {
        Ok(D::Db::fetch_optional_pooled(pool, self.query).await?.map(Row))
    }

    /// Runs it: its one row (a statement that always answers one, such as
    /// an aggregate).
    pub async fn fetch_one(self, conn: &mut <D::Db as Database>::Connection) -> Result<Row<D>, sqlx::Error> {
        self.fetch_optional(conn).await?.ok_or(sqlx::Error::RowNotFound)
    }

    /// Runs it: every row.
    pub async fn fetch_all(
        self,
        conn: &mut <D::Db as Database>::Connection,
    ) -> Result<Vec<Row<D>>, sqlx::Error> {
        Ok(D::Db::fetch_all(conn, self.query).await?.into_iter().map(Row).collect())
    }
}

/// A row of dialect `D`, read by position.
pub struct Row<D: Dialect>(<D::Db as Database>::Row);

impl<D: Dialect> Row<D> {
    /// Column `index` (from 0).
    pub fn get<T>(&self, index: usize) -> Result<T, sqlx::Error>
    where
        D::Db: Reads<T>,
    {
        <D::Db as Reads<T>>::read(&self.0, index)
    }
}
