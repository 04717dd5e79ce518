//! SQLite's one writer: the store's writes take turns in the process instead
//! of competing for SQLite's write lock, and the writes that queue up while
//! one commits are made durable together, by the next commit.
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
//! # Group commit
//!
//! Taking turns alone leaves one durable commit (a `fsync` of the WAL, with
//! `synchronous = FULL`) per write, and each write waits for the commits of
//! all the writes queued before it: at 32 connections the p99 of a cookie
//! login was 32 of those (25 ms on a disk that syncs in 0.6 ms). So the
//! writes of the store's operations run in one transaction of the writer's
//! (`BEGIN IMMEDIATE`), each write's own transaction a savepoint in it (a
//! single statement as it is): the **group**. A write whose statements are
//! done hands the turn to the next write if one is waiting, and waits for
//! the group's commit; the write that finds no one waiting (or the group
//! full, [`MAX_GROUP`]) commits, for all of them. Every member learns the
//! commit's outcome, and none answers before it: a write reported done is
//! on the disk, as before. A write that fails is rolled back to its
//! savepoint, and the group is committed at once, before anyone else writes
//! in it (SQLite may have rolled the whole transaction back on such a
//! failure: `SQLITE_FULL`, `SQLITE_IOERR`, a trigger's `RAISE(ROLLBACK)`);
//! then the commit fails and so do the members that waited for it. A commit
//! that fails is rolled back, and if that fails too the connection is
//! closed (SQLite rolls back what a closing connection had not committed)
//! and replaced: a member is never told its write failed when it is on the
//! disk, nor done when it is not.
//!
//! The commit runs in a task of its own, so that a request abandoned
//! meanwhile (its client gone, its future dropped) cannot cut it short and
//! leave its group's members without an answer; a write abandoned while it
//! held the turn, or while it waited for it, leaves a task behind that
//! commits whatever group is left open, so the group does not sit on
//! SQLite's write lock (other processes wait on it) until the next write.
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
//! statements. A connection that broke (its thread gone) is checked and
//! replaced by the next write.
//!
//! A writer on a pool given to `new` takes turns without groups: each write
//! commits on its own, on whichever of the pool's connections it is lent.
//!
//! When writes are waiting, the store yields once an operation is done
//! ([`Writer::contended`]), so that the next write (woken when the turn was
//! let go) starts before the task that let it go carries on with its own
//! work, such as answering its request: the writer does not sit idle
//! meanwhile.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use expected_core::StoreError;
use expected_core::store::StoreErrorKind;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePool, SqliteTransactionManager};
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use sqlx_core::sql_str::SqlSafeStr as _;
use sqlx_core::transaction::TransactionManager as _;
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard, watch};

use crate::dialect::Dialect as _;
use crate::error::{Failure, store_error};

/// The most writes one commit makes durable. Each member runs its
/// statements (tens of microseconds) before the group commits, so this
/// bounds how long the group's first member waits for its answer.
pub(crate) const MAX_GROUP: usize = 64;

tokio::task_local! {
    /// The attempt of a store operation whose writes join the writer's group
    /// ([`Writer::attempt`]).
    static MEMBER: Member;
}

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
        /// How many groups were committed (or failed to be): the tests'
        /// view of how many writes shared a commit.
        commits: Arc<AtomicU64>,
    },
    /// Turns on a pool given to `new`: one write at a time, each on one of
    /// the pool's connections, taken for the turn and given back after.
    Shared { pool: SqlitePool, turn: Arc<Mutex<()>> },
}

/// The store's own connection.
struct Held {
    /// `None` until reopened after it broke.
    line: Option<Line>,
    /// [`Writer::close`] was called.
    closed: bool,
}

/// The writer's connection and the group whose transaction is open on it.
struct Line {
    conn: SqliteConnection,
    /// Begun by the group's first member, committed by its last.
    group: Option<Group>,
    /// The connection's state is unknown (a failed commit that could not be
    /// rolled back either): the next turn closes it and opens another.
    broken: bool,
    commits: Arc<AtomicU64>,
}

/// The writes of one transaction of the writer's, waiting for its commit.
struct Group {
    /// The members whose writes are done and wait for the commit.
    members: usize,
    /// The commit's outcome, sent to every member.
    outcome: watch::Sender<Option<Result<(), GroupFailed>>>,
}

/// A group's commit failed: none of its writes was made durable.
#[derive(Debug, Clone)]
struct GroupFailed {
    kind: StoreErrorKind,
    message: Arc<str>,
}

impl GroupFailed {
    fn of(error: sqlx::Error) -> Self {
        let error = store_error(error, super::Sqlite::classify);
        Self { kind: error.kind(), message: error.to_string().into() }
    }

    /// The group's transaction is gone with its connection, uncommitted.
    fn lost() -> Self {
        Self { kind: StoreErrorKind::Unavailable, message: "the writer's connection was lost".into() }
    }

    fn into_store(self) -> StoreError {
        StoreError::new(self.kind, format!("the commit of this write's group failed: {}", self.message))
    }
}

/// The writer's turn, with its connection, held by a write.
type LineGuard = OwnedMappedMutexGuard<Held, Line>;

/// One attempt of a store operation (a task-local value, no allocation):
/// where its turn is left, group open, when its write is done (the
/// [`WriteConn`] dropped), for [`Writer::attempt`] to commit the group or
/// hand it on.
#[derive(Default)]
struct Member {
    parked: Cell<Option<LineGuard>>,
}

impl Drop for Member {
    /// The attempt was abandoned with the turn (and the group) in hand.
    fn drop(&mut self) {
        if let Some(line) = self.parked.take() {
            spawn_commit(line);
        }
    }
}

/// Commits `line`'s group, if one is open, in a task of its own (nothing to
/// wait for it: an abandoned write's).
fn spawn_commit(mut line: LineGuard) {
    if line.group.is_none() {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = commit_group(&mut line).await;
        });
    }
}

/// Commits the group open on `line`, if any, and tells its members.
async fn commit_group(line: &mut Line) -> Result<(), GroupFailed> {
    let Some(group) = line.group.take() else { return Ok(()) };
    line.commits.fetch_add(1, Ordering::Relaxed);
    let outcome = match SqliteTransactionManager::commit(&mut line.conn).await {
        Ok(()) => Ok(()),
        Err(error) => {
            // In doubt: roll back what is left of the transaction, or lose
            // the connection, which rolls it back as it closes.
            let rolled_back = SqliteTransactionManager::get_transaction_depth(&line.conn) == 0
                || SqliteTransactionManager::rollback(&mut line.conn).await.is_ok();
            line.broken = !rolled_back;
            Err(GroupFailed::of(error))
        }
    };
    group.outcome.send_replace(Some(outcome.clone()));
    outcome
}

/// Commits the group open on `line` (if any) in a task of its own, which a
/// dropped caller does not cut short, and hands the turn back.
async fn settle(mut line: LineGuard) -> (Option<LineGuard>, Result<(), GroupFailed>) {
    if line.group.is_none() {
        return (Some(line), Ok(()));
    }
    let commit = tokio::spawn(async move {
        let outcome = commit_group(&mut line).await;
        (line, outcome)
    });
    match commit.await {
        Ok((line, outcome)) => (Some(line), outcome),
        Err(_) => (None, Err(GroupFailed::lost())),
    }
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
        let commits = Arc::new(AtomicU64::new(0));
        let line = Line { conn, group: None, broken: false, commits: Arc::clone(&commits) };
        let held = Arc::new(Mutex::new(Held { line: Some(line), closed: false }));
        let writes =
            Writes::Own { options: Box::new(options), held, suspect: AtomicBool::new(false), commits };
        Self { writes: Arc::new(writes), waiting: Arc::default() }
    }

    /// Writes taking turns on `pool` (a pool given to `new`).
    pub(crate) fn shared(pool: &SqlitePool) -> Self {
        let writes = Writes::Shared { pool: pool.clone(), turn: Arc::new(Mutex::new(())) };
        Self { writes: Arc::new(writes), waiting: Arc::default() }
    }

    /// Runs one attempt of a store operation: a write it makes joins the
    /// writer's group, and the attempt's outcome is given once the group's
    /// commit is done (see the module's docs). A shared writer's attempts
    /// run as they are.
    pub(crate) async fn attempt<T>(
        &self,
        attempt: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        if !matches!(&*self.writes, Writes::Own { .. }) {
            return attempt.await;
        }
        MEMBER.scope(Member::default(), self.member(attempt)).await
    }

    /// [`attempt`](Self::attempt)'s work, with its [`Member`] set.
    async fn member<T>(&self, attempt: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
        let outcome = attempt.await;
        // The turn, if the attempt wrote: still ours, the group still open.
        let Some(mut line) = MEMBER.try_with(|member| member.parked.take()).ok().flatten() else {
            return outcome;
        };
        let Some(group) = line.group.as_mut() else { return outcome };
        if outcome.is_err() {
            // Its savepoint is rolled back; the transaction may be gone
            // too: settle the group before anyone writes in it again.
            let _ = settle(line).await;
            return outcome;
        }
        group.members += 1;
        if group.members >= MAX_GROUP || !self.contended() {
            let (_line, committed) = settle(line).await;
            return committed.map_err(|failed| Failure::Store(failed.into_store())).and(outcome);
        }
        // The next write joins the group, and commits it or hands it on.
        let mut done = group.outcome.subscribe();
        drop(line);
        let committed = match done.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or_else(|| Err(GroupFailed::lost())),
            // The group went with its connection, uncommitted.
            Err(_) => Err(GroupFailed::lost()),
        };
        committed.map_err(|failed| Failure::Store(failed.into_store())).and(outcome)
    }

    /// Waits for the writer's turn: the connection to write on, held until
    /// the [`WriteConn`] is dropped. Inside a store operation's attempt
    /// ([`attempt`](Self::attempt)) the connection is in the group's
    /// transaction; outside (a write of the application's, through
    /// `SqliteStore::writer`) any group open is committed first, so that the
    /// write's statements are its own.
    pub(crate) async fn write(&self) -> Result<WriteConn, sqlx::Error> {
        match &*self.writes {
            Writes::Own { options, held, suspect, commits } => {
                // `Err` outside a store operation's attempt; `Ok(Some(…))`
                // when the attempt writes again, its turn still its own.
                let parked = MEMBER.try_with(|member| member.parked.take());
                if let Ok(Some(line)) = parked {
                    return Ok(WriteConn(Turn::Member(Some(line))));
                }
                let line = self.line(options, held, suspect, commits).await?;
                match parked {
                    Ok(_) => {
                        let mut line = line;
                        if line.group.is_none() {
                            begin_group(&mut line).await?;
                        }
                        Ok(WriteConn(Turn::Member(Some(line))))
                    }
                    Err(_) => match settle(line).await {
                        (Some(line), _) if !line.broken => Ok(WriteConn(Turn::Own(line))),
                        _ => Err(sqlx::Error::WorkerCrashed),
                    },
                }
            }
            Writes::Shared { pool, turn } => {
                let turn = self.wait_for(Arc::clone(turn), None).await;
                let conn = pool.acquire().await?;
                Ok(WriteConn(Turn::Shared { conn, _turn: turn }))
            }
        }
    }

    /// Waits for the turn on the store's own connection, checking it first
    /// if a write failed as if it broke, and opening it again if it did.
    async fn line(
        &self,
        options: &SqliteConnectOptions,
        held: &Arc<Mutex<Held>>,
        suspect: &AtomicBool,
        commits: &Arc<AtomicU64>,
    ) -> Result<LineGuard, sqlx::Error> {
        let mut turn = self.wait_for(Arc::clone(held), Some(held)).await;
        if turn.closed {
            return Err(sqlx::Error::PoolClosed);
        }
        if turn.line.as_ref().is_some_and(|line| line.broken)
            && let Some(line) = turn.line.take()
        {
            let _ = line.conn.close().await;
        }
        if suspect.swap(false, Ordering::Relaxed)
            && let Some(line) = turn.line.as_mut()
            && line.conn.ping().await.is_err()
        {
            // Its group, if one was open, goes with it: its members are
            // told the connection was lost.
            turn.line = None;
        }
        if turn.line.is_none() {
            let conn = options.connect().await?;
            turn.line = Some(Line { conn, group: None, broken: false, commits: Arc::clone(commits) });
        }
        OwnedMutexGuard::try_map(turn, |held| held.line.as_mut()).map_err(|_| sqlx::Error::PoolClosed)
    }

    /// Waits for the turn that `lock` gives, counted among the waiting. A
    /// wait abandoned midway (its future dropped) is not counted after, and
    /// if it was on the store's own connection (`held`), it leaves a task
    /// that commits any group left open: the write that handed the turn on
    /// may have counted on this one to commit.
    async fn wait_for<T>(&self, lock: Arc<Mutex<T>>, held: Option<&Arc<Mutex<Held>>>) -> OwnedMutexGuard<T> {
        struct Waiting<'a> {
            waiting: &'a AtomicUsize,
            /// Set once the turn came: `None` while waiting.
            held: Option<&'a Arc<Mutex<Held>>>,
        }
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                if let Some(held) = self.held
                    && let Ok(runtime) = tokio::runtime::Handle::try_current()
                {
                    let held = Arc::clone(held);
                    runtime.spawn(async move {
                        let mut turn = held.lock_owned().await;
                        if let Some(line) = turn.line.as_mut() {
                            let _ = commit_group(line).await;
                        }
                    });
                }
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let mut waiting = Waiting { waiting: &self.waiting, held };
        let turn = lock.lock_owned().await;
        waiting.held = None;
        turn
    }

    /// Whether writes wait for their turn: the store then yields after an
    /// operation, so that the next write runs before the rest of the task
    /// that let the writer go (the handler answering its request); a write
    /// done then hands the group on rather than committing it.
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
    /// done and the group open committed; writes after that fail
    /// (`PoolClosed`). A shared writer has nothing of its own to close.
    pub(crate) async fn close(&self) {
        if let Writes::Own { held, .. } = &*self.writes {
            let mut turn = Arc::clone(held).lock_owned().await;
            // In a task of its own, which a dropped caller does not cut
            // short: the open group committed (its members told), then the
            // connection closed, the turn held throughout.
            let closing = tokio::spawn(async move {
                if let Some(line) = turn.line.as_mut() {
                    let _ = commit_group(line).await;
                }
                turn.closed = true;
                if let Some(line) = turn.line.take() {
                    let _ = line.conn.close().await;
                }
            });
            let _ = closing.await;
        }
    }

    /// How many group commits the writer made (or tried): fewer than its
    /// writes when they shared commits.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        match &*self.writes {
            Writes::Own { commits, .. } => commits.load(Ordering::Relaxed),
            Writes::Shared { .. } => 0,
        }
    }

    /// How many writes wait for their turn.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Begins a group's transaction on `line` (sqlx counts it, so that a
/// member's own transaction is a savepoint in it).
async fn begin_group(line: &mut Line) -> Result<(), sqlx::Error> {
    match SqliteTransactionManager::begin(&mut line.conn, Some("BEGIN IMMEDIATE".into_sql_str())).await {
        Ok(()) => {
            line.group = Some(Group { members: 0, outcome: watch::channel(None).0 });
            Ok(())
        }
        Err(error) => {
            // A transaction sqlx counts as open outside any group (a write
            // of the application's left one): not ours to commit.
            if matches!(error, sqlx::Error::InvalidSavePointStatement) {
                line.broken = true;
            }
            Err(error)
        }
    }
}

/// The connection a write runs on, during its turn (until dropped).
pub struct WriteConn(Turn);

enum Turn {
    /// A store operation's write, in the group: the turn goes back to the
    /// attempt when dropped (`None` only then).
    Member(Option<LineGuard>),
    /// A write of the application's, on the store's own connection.
    Own(LineGuard),
    Shared {
        // Fields drop in order: the connection goes back to the pool, then
        // the next write's turn begins.
        conn: PoolConnection<Sqlite>,
        _turn: OwnedMutexGuard<()>,
    },
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        if let Turn::Member(line) = &mut self.0 {
            let mut line = line.take();
            let _ = MEMBER.try_with(|member| member.parked.set(line.take()));
            // Dropped outside its attempt (it cannot be, but should it be):
            // the group is not left open.
            if let Some(line) = line {
                spawn_commit(line);
            }
        }
    }
}

impl Deref for WriteConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.0 {
            Turn::Member(Some(line)) | Turn::Own(line) => &line.conn,
            Turn::Member(None) => unreachable!("a member's turn is parked only when dropped"),
            Turn::Shared { conn, .. } => conn,
        }
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.0 {
            Turn::Member(Some(line)) | Turn::Own(line) => &mut line.conn,
            Turn::Member(None) => unreachable!("a member's turn is parked only when dropped"),
            Turn::Shared { conn, .. } => conn,
        }
    }
}
