//! The store, written once over its [`Dialect`]: its parts, constructors
//! and accessors. The [`Store`](expected_core::Store) contract is in
//! `contract.rs`.

use std::future::Future;
use std::sync::Arc;

use expected_core::StoreError;
use expected_core::store::SessionCount;
use expected_core::time::OffsetDateTime;
use sqlx::Pool;
use sqlx::pool::PoolConnection;

use crate::DEFAULT_BATCH;
use crate::codec::micros;
use crate::dialect::Dialect;
use crate::driver::Stmt;
use crate::error::{Failure, retry, store_error};
use crate::statements::CommonSql;
use crate::tables::Tables;

/// A [`Store`](expected_core::Store) on a SQL database, generic over its
/// dialect: use it as [`PgStore`](crate::PgStore),
/// [`MySqlStore`](crate::MySqlStore) or [`SqliteStore`](crate::SqliteStore),
/// whichever features are enabled.
///
/// Cheap to clone: clones share the pool (and on SQLite the writer).
pub struct SqlStore<D: Dialect> {
    pub(crate) pool: Pool<D::Db>,
    pub(crate) writer: D::Writer,
    pub(crate) tables: Tables,
    pub(crate) batch: u32,
    pub(crate) sql: Arc<D::Sql>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            tables: self.tables.clone(),
            batch: self.batch,
            sql: Arc::clone(&self.sql),
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &D::BACKEND)
            .field("pool", &self.pool)
            .field("writer", &self.writer)
            .field("tables", &self.tables)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store on `pool` with the default [`Tables`].
    ///
    /// On SQLite the store's writes take turns on `pool` (see
    /// [`SqliteStore`](crate::SqliteStore)).
    pub fn new(pool: Pool<D::Db>) -> Self {
        Self::with_tables(pool, Tables::default())
    }

    /// A store on `pool` with the given table names.
    ///
    /// ```no_run
    /// use expected_store_sqlx::{PgStore, Tables};
    /// use expected_store_sqlx::sqlx::PgPool;
    ///
    /// # #[cfg(feature = "postgres")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = PgPool::connect("postgres://app@db/app").await?;
    /// // Tables `auth_logins`, `auth_sessions` and `auth_migrations`:
    /// let store = PgStore::with_tables(pool, Tables::with_prefix("auth_")?);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_tables(pool: Pool<D::Db>, tables: Tables) -> Self {
        let writer = D::writer(&pool);
        Self::from_parts(pool, writer, tables, DEFAULT_BATCH)
    }

    /// A store of its parts; the batch size as given (within
    /// [`Dialect::MAX_BATCH`]).
    pub(crate) fn from_parts(pool: Pool<D::Db>, writer: D::Writer, tables: Tables, batch: u32) -> Self {
        let batch = batch.clamp(1, D::MAX_BATCH);
        let sql = Arc::new(D::sql(&tables, batch));
        Self { pool, writer, tables, batch, sql }
    }

    /// Connects a pool on `url`. Does not migrate.
    ///
    /// On PostgreSQL and MySQL the pool has [`pool_options`](crate::pool_options)
    /// (sqlx's defaults, but no ping before each statement: only before
    /// using a connection idle for a second or more); use
    /// [`new`](Self::new) with your own pool to tune it. On SQLite
    /// (`sqlite://path.db`, `sqlite::memory:`) the file is created if
    /// missing and opened in WAL mode, with a pool of readers and the
    /// store's one writer (see [`SqliteStore`](crate::SqliteStore), and
    /// [`SqliteStore::builder`](crate::SqliteStore::builder) for the
    /// options).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (pool, writer) = D::connect(url).await?;
        Ok(Self::from_parts(pool, writer, Tables::default(), DEFAULT_BATCH))
    }

    /// Sets how many rows one cleaning statement deletes at most (default
    /// [`DEFAULT_BATCH`]; at least 1; on MySQL at most
    /// [`MySqlStore::MAX_BATCH`](crate::MySqlStore::MAX_BATCH), to which a
    /// larger setting is lowered).
    ///
    /// ```no_run
    /// use expected_store_sqlx::PgStore;
    ///
    /// # #[cfg(feature = "postgres")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// // Shorter statements (less lock time per statement), more of them:
    /// let store = PgStore::connect("postgres://app@db/app").await?.with_batch_size(500);
    /// let cleaned = expected_core::Expected::new(store, Default::default()).clean().await?;
    /// # let _ = cleaned;
    /// # Ok(()) }
    /// ```
    pub fn with_batch_size(self, batch: u32) -> Self {
        Self::from_parts(self.pool, self.writer, self.tables, batch)
    }

    /// The pool (on SQLite the readers' pool; the writer is
    /// [`SqliteStore::writer`](crate::SqliteStore::writer)).
    pub fn pool(&self) -> &Pool<D::Db> {
        &self.pool
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates or upgrades the schema, answering the versions it applied
    /// (none when it was up to date): idempotent, and safe to run from
    /// several processes at once.
    ///
    /// - PostgreSQL: one transaction under a transaction-scoped advisory
    ///   lock; DDL is transactional, so a failed migration leaves nothing
    ///   behind.
    /// - MySQL: under `GET_LOCK`. MySQL commits DDL at once, so every
    ///   statement is idempotent on its own and a migration is recorded only
    ///   once all its statements ran.
    /// - SQLite: one `BEGIN IMMEDIATE` transaction, serialized by SQLite's
    ///   write lock, all or nothing.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        D::migrate(self).await
    }

    /// How many live sessions (`expires_at > now`) the store holds, users'
    /// and visitors': what `expected-sqlx sessions count` prints. One
    /// statement, a scan of the expiry index.
    pub async fn count_sessions(&self, now: OffsetDateTime) -> Result<SessionCount, StoreError> {
        let row = self
            .retry(|| async {
                let mut conn = self.read().await?;
                Ok(Stmt::<D>::new(&self.common().count_sessions)
                    .bind(micros(now))
                    .fetch_one(&mut conn)
                    .await?)
            })
            .await?;
        let counted = |index| {
            row.get::<i64>(index)
                .map(|n| u64::try_from(n).unwrap_or_default())
                .map_err(|e| store_error(e, D::classify))
        };
        let (total, anonymous) = (counted(0)?, counted(1)?);
        Ok(SessionCount { users: total.saturating_sub(anonymous), anonymous })
    }

    /// Runs `attempt` (one statement or one transaction) until it succeeds,
    /// fails for good, or has failed transiently too often
    /// ([`crate::error::retry`]), telling the dialect of each failure.
    pub(crate) async fn retry<T, F, Fut>(&self, mut attempt: F) -> Result<T, StoreError>
    where
        T: Send,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>> + Send,
    {
        retry(D::classify, || {
            let attempt = attempt();
            async move {
                let outcome = D::attempt(&self.writer, attempt).await;
                if let Err(Failure::Sql(error)) = &outcome {
                    D::failed(&self.writer, error);
                }
                if D::contended(&self.writer) {
                    tokio::task::yield_now().await;
                }
                outcome
            }
        })
        .await
    }

    /// The statements every dialect shares.
    pub(crate) fn common(&self) -> &CommonSql {
        D::common(&self.sql)
    }

    /// A connection to read on.
    pub(crate) async fn read(&self) -> Result<PoolConnection<D::Db>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// The connection to write on, held for one statement or transaction
    /// (and never across a pause between attempts: each attempt takes it
    /// anew).
    pub(crate) async fn write(&self) -> Result<D::WriteConn, sqlx::Error> {
        D::write(&self.pool, &self.writer).await
    }
}
