//! Opening a SQLite store with options: [`SqliteStoreBuilder`], and how
//! durably it commits ([`Synchronous`]).

use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::Sqlite;
use super::writer::Writer;
use crate::DEFAULT_BATCH;
use crate::SqliteStore;
use crate::dialect::Dialect;
use crate::error::store_error;
use crate::store::SqlStore;
use crate::tables::Tables;
use expected_core::StoreError;

/// How durably SQLite commits: `PRAGMA synchronous` on the store's
/// connections (in WAL mode, which [`SqliteStore::connect`] sets).
///
/// The choice is between a commit that survives a power cut and a faster
/// commit. [`Full`](Self::Full), the default, flushes the WAL to the disk
/// at every commit; [`Normal`](Self::Normal) lets the operating system
/// write it when it will and flushes at checkpoints. Neither can corrupt
/// the database, and an application crash loses nothing with either (the
/// operating system still has the writes): only a power cut, or a crash of
/// the operating system or the machine, can undo the last commits under
/// `NORMAL`.
///
/// What a lost commit means here: a cookie login's rotation that the
/// browser saw (it holds the new token) but the database forgot (it knows
/// the one before) looks exactly like a stolen cookie replayed, so the next
/// request with that cookie is judged theft, and every login and session of
/// that user is revoked, with `on_theft` called. **With token keys
/// configured** (`ConfigBuilder::token_keys`, `docs/protocol.md` §13) a
/// login that lost up to `rollback_steps` rotations (32 by default) heals
/// instead: the presented token is found by deriving forward from the one
/// the database kept, and the rotation is applied again, with no alarm. So
/// `NORMAL` is a reasonable choice with token keys, and a risky one without.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous = FULL`: every commit waits for the WAL to reach the
    /// disk, so a commit that returned survives a power cut. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL`: commits do not wait for the disk (the WAL is
    /// flushed at checkpoints), so a power cut may undo the last ones:
    /// read the trade-off above.
    Normal,
}

impl From<Synchronous> for SqliteSynchronous {
    fn from(synchronous: Synchronous) -> Self {
        match synchronous {
            Synchronous::Full => Self::Full,
            Synchronous::Normal => Self::Normal,
        }
    }
}

/// The options of a [`SqliteStore`] that opens its own connections:
/// [`SqliteStore::builder`].
///
/// The store it opens has a pool of readers and a writer of its own (one
/// connection, on which every write takes its turn: see
/// [`SqliteStore`]), both opened with the same options.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use expected_store_sqlx::{SqliteStore, Synchronous, Tables};
///
/// let store = SqliteStore::builder()
///     .tables(Tables::with_prefix("auth_")?)
///     // Faster commits; a power cut may undo the last ones (configure token keys):
///     .synchronous(Synchronous::Normal)
///     .connect("sqlite://app.db")
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    tables: Tables,
    batch: u32,
    synchronous: Option<Synchronous>,
    max_readers: u32,
}

impl Default for SqliteStoreBuilder {
    fn default() -> Self {
        Self { tables: Tables::default(), batch: DEFAULT_BATCH, synchronous: None, max_readers: 10 }
    }
}

impl SqliteStoreBuilder {
    /// The table names (default [`Tables::default`]).
    pub fn tables(mut self, tables: Tables) -> Self {
        self.tables = tables;
        self
    }

    /// How many rows one cleaning statement deletes at most (default
    /// [`DEFAULT_BATCH`]; at least 1), as
    /// [`with_batch_size`](SqlStore::with_batch_size).
    pub fn batch_size(mut self, batch: u32) -> Self {
        self.batch = batch;
        self
    }

    /// How durably commits are written (default [`Synchronous::Full`] with
    /// [`connect`](Self::connect); with [`connect_with`](Self::connect_with)
    /// the options' own setting unless this is called). Read the trade-off
    /// at [`Synchronous`] before choosing `Normal`.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = Some(synchronous);
        self
    }

    /// How many connections read at most (default 10, sqlx's default pool
    /// size; at least 1). The writer is one more.
    pub fn max_readers(mut self, readers: u32) -> Self {
        self.max_readers = readers.max(1);
        self
    }

    /// Opens the store on `url` (`sqlite://path.db`, `sqlite::memory:`),
    /// creating the file if missing, in WAL mode, with
    /// `synchronous = FULL` unless [`synchronous`](Self::synchronous) says
    /// otherwise. Does not migrate.
    ///
    /// With `sqlite::memory:` sqlx names one in-memory database that the
    /// store's connections share; the writer keeps it alive as long as the
    /// store.
    pub async fn connect(self, url: &str) -> Result<SqliteStore, StoreError> {
        let options: SqliteConnectOptions = url.parse().map_err(|e| store_error(e, Sqlite::classify))?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(self.synchronous.unwrap_or_default().into());
        self.connect_with(options).await
    }

    /// Opens the store with `options` as given (file, journal mode, busy
    /// timeout, pragmas), but for [`synchronous`](Self::synchronous) if it
    /// was called. Use WAL mode (`journal_mode(SqliteJournalMode::Wal)`)
    /// for reads to run while a write commits. Does not migrate.
    pub async fn connect_with(self, options: SqliteConnectOptions) -> Result<SqliteStore, StoreError> {
        let options = match self.synchronous {
            Some(synchronous) => options.synchronous(synchronous.into()),
            None => options,
        };
        let failed = |e| store_error(e, Sqlite::classify);
        // The writer first: on a new file, its connection switches the
        // database to WAL before any reader opens. It lives as long as the
        // store.
        let writer = options.connect().await.map_err(failed)?;
        // Readers are checked when they come back to the pool (sqlx's
        // default), not again before each read.
        let readers = SqlitePoolOptions::new()
            .max_connections(self.max_readers)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(failed)?;
        Ok(SqlStore::from_parts(readers, Writer::own(options, writer), self.tables, self.batch))
    }
}
