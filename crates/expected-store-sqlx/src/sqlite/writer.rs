//! SQLite's one writer: the store's writes take turns in the process instead
//! of competing for SQLite's write lock.
//!
//! SQLite lets one connection write at a time. Pooled connections that all
//! write race for that lock, and the losers sleep in SQLite's busy handler
//! (1, 2, 5, 10, … 100 ms) however soon the winner commits: at 32 concurrent
//! cookie logins that was 1.7 k logins per second with a p99 of 117 ms,
//! against 6 k transactions per second for one connection alone. Here the
//! store's writes queue on an in-process FIFO lock ([`Writer`]) and run one
//! after the other, so none waits in the busy handler for another of the
//! same process; reads stay on the pool, in parallel (WAL).
//!
//! A turn is one statement or one transaction, and nothing but that
//! statement or transaction is awaited while it is held: the retry's pause
//! comes after the turn is let go. Other processes on the same file still
//! meet SQLite's lock, which `BEGIN IMMEDIATE` takes at once and the busy
//! timeout waits for, as before.
//!
//! The store's own writer holds its connection for good: a turn begins with
//! the connection already in hand (no pool to take it from and give it back
//! to, which would cost the next write a round trip to SQLite's thread and
//! two task wake-ups). sqlx's SQLite connection runs its commands in order
//! on its thread, so a write abandoned midway (its future dropped) leaves
//! nothing behind: the rollback sqlx queues runs before the next write's
//! `BEGIN`. A connection that broke (its thread gone) is checked and
//! replaced by the next write.
//!
//! When writes are waiting, the store yields once an operation is done
//! ([`Writer::contended`]), so that the next write (woken when the turn was
//! let go) starts before the task that let it go carries on with its own
//! work, such as answering its request: the writer does not sit idle
//! meanwhile.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePool};
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

/// Where a SQLite store's writes go, one at a time, in the order they came
/// (tokio's mutex queues its waiters in order).
#[derive(Clone)]
pub struct Writer {
    writes: Arc<Writes>,
    /// How many writes wait for their turn.
    waiting: Arc<AtomicUsize>,
}

enum Writes {
    /// The store's own connection (`connect`, the builder).
    Own {
        /// To open it again if it breaks.
        options: Box<SqliteConnectOptions>,
        /// The connection, whose lock is the turn.
        held: Arc<Mutex<Held>>,
        /// A write failed as if the connection broke: check it first.
        suspect: AtomicBool,
    },
    /// Turns on a pool given to `new`: one write at a time, each on one of
    /// the pool's connections, taken for the turn and given back after.
    Shared { pool: SqlitePool, turn: Arc<Mutex<()>> },
}

/// The store's own connection.
struct Held {
    /// `None` until reopened after it broke.
    conn: Option<SqliteConnection>,
    /// [`Writer::close`] was called.
    closed: bool,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.writes {
            Writes::Own { options, .. } => {
                f.debug_struct("Writer").field("own", options).finish_non_exhaustive()
            }
            Writes::Shared { pool, .. } => {
                f.debug_struct("Writer").field("shared", pool).finish_non_exhaustive()
            }
        }
    }
}

impl Writer {
    /// A writer of its own, on `conn` (opened with `options`).
    pub(crate) fn own(options: SqliteConnectOptions, conn: SqliteConnection) -> Self {
        let held = Arc::new(Mutex::new(Held { conn: Some(conn), closed: false }));
        let writes = Writes::Own { options: Box::new(options), held, suspect: AtomicBool::new(false) };
        Self { writes: Arc::new(writes), waiting: Arc::default() }
    }

    /// Writes taking turns on `pool` (a pool given to `new`).
    pub(crate) fn shared(pool: &SqlitePool) -> Self {
        let writes = Writes::Shared { pool: pool.clone(), turn: Arc::new(Mutex::new(())) };
        Self { writes: Arc::new(writes), waiting: Arc::default() }
    }

    /// Waits for the writer's turn: the connection to write on, held until
    /// the [`WriteConn`] is dropped.
    pub(crate) async fn write(&self) -> Result<WriteConn, sqlx::Error> {
        match &*self.writes {
            Writes::Own { options, held, suspect } => {
                let mut turn = self.wait_for(Arc::clone(held)).await;
                if turn.closed {
                    return Err(sqlx::Error::PoolClosed);
                }
                if suspect.swap(false, Ordering::Relaxed)
                    && let Some(conn) = turn.conn.as_mut()
                    && conn.ping().await.is_err()
                {
                    turn.conn = None;
                }
                if turn.conn.is_none() {
                    turn.conn = Some(options.connect().await?);
                }
                let conn = OwnedMutexGuard::try_map(turn, |held| held.conn.as_mut())
                    .map_err(|_| sqlx::Error::PoolClosed)?;
                Ok(WriteConn(Turn::Own(conn)))
            }
            Writes::Shared { pool, turn } => {
                let turn = self.wait_for(Arc::clone(turn)).await;
                let conn = pool.acquire().await?;
                Ok(WriteConn(Turn::Shared { conn, _turn: turn }))
            }
        }
    }

    /// Waits for the turn that `lock` gives, counted among the waiting.
    /// (A wait abandoned midway, its future dropped, is not counted after.)
    async fn wait_for<T>(&self, lock: Arc<Mutex<T>>) -> OwnedMutexGuard<T> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        lock.lock_owned().await
    }

    /// Whether writes wait for their turn: the store then yields after an
    /// operation, so that the next write runs before the rest of the task
    /// that let the writer go (the handler answering its request).
    pub(crate) fn contended(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// A write failed with `error`: if it looks like a broken connection,
    /// the next write checks the connection first (one round trip) and
    /// replaces it if need be.
    pub(crate) fn failed(&self, error: &sqlx::Error) {
        if let Writes::Own { suspect, .. } = &*self.writes
            && matches!(error, sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
        {
            suspect.store(true, Ordering::Relaxed);
        }
    }

    /// Closes the writer's own connection, once the write in progress is
    /// done; writes after that fail (`PoolClosed`). A shared writer has
    /// nothing of its own to close.
    pub(crate) async fn close(&self) {
        if let Writes::Own { held, .. } = &*self.writes {
            let mut held = held.lock().await;
            held.closed = true;
            if let Some(conn) = held.conn.take() {
                let _ = conn.close().await;
            }
        }
    }
}

/// The connection a write runs on, during its turn (until dropped).
pub struct WriteConn(Turn);

enum Turn {
    Own(OwnedMappedMutexGuard<Held, SqliteConnection>),
    Shared {
        // Fields drop in order: the connection goes back to the pool, then
        // the next write's turn begins.
        conn: PoolConnection<Sqlite>,
        _turn: OwnedMutexGuard<()>,
    },
}

impl Deref for WriteConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.0 {
            Turn::Own(conn) => conn,
            Turn::Shared { conn, .. } => conn,
        }
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.0 {
            Turn::Own(conn) => conn,
            Turn::Shared { conn, .. } => conn,
        }
    }
}
