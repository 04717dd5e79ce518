//! The writer's group commit (`writer.rs`), attacked: writes queued behind
//! one another share a commit; a write that fails in a group fails alone; a
//! write that ends the group's transaction fails the whole group, and no
//! write is told it is done unless it is on the disk; writes abandoned at
//! any point leave SQLite's write lock free without another write.
//!
//! The writes are queued deterministically: the test holds the writer's
//! turn (`SqliteStore::writer`), starts its writes, waits until all of them
//! wait for the turn, then lets it go.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use expected_core::protocol::{new_session, password_user};
use expected_core::store::Inserted;
use expected_core::{
    ChaChaTokens, Config, SessionData, SessionRecord, Store as _, TokenSource as _, Username,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions as _, Connection as _};

use super::SqliteStore;

/// A store with a writer of its own on a new file, migrated.
async fn store() -> (SqliteStore, SqliteConnectOptions) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "expected_group_{}_{}_{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let options = SqliteConnectOptions::new()
        .filename(std::env::temp_dir().join(name))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    let store = SqliteStore::builder()
        .max_readers(2)
        .connect_with(options.clone())
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
    (store, options)
}

async fn finish(store: SqliteStore, options: &SqliteConnectOptions) {
    store.close().await;
    let file = options.get_filename().display().to_string();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{file}{suffix}"));
    }
}

/// A session of user `name` (inserted by one statement, or by a
/// transaction of three when capped).
fn session(name: &str) -> SessionRecord {
    let tokens = ChaChaTokens::from_os();
    let now = expected_core::Clock::now(&expected_core::SystemClock);
    let user = Username::new(name).unwrap_or_else(|e| panic!("{e}"));
    let owner = Some(password_user(&user, Some(tokens.serial()), now));
    new_session(owner, &tokens.session_id(), SessionData::new(), now, &Config::default())
}

/// Waits until `writes` writes wait for the writer's turn (20 s at most).
async fn until_waiting(store: &SqliteStore, writes: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.writer.waiting() < writes {
        assert!(tokio::time::Instant::now() < deadline, "{writes} writes never waited for the turn");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Starts `writes` session writes (user `user{i}`, or `mallory` at the
/// indexes in `refused`), queued behind the test's hold of the writer, and
/// lets them go once all of them wait; their outcomes, in order, and how
/// many commits the writer made meanwhile.
async fn queued(
    store: &SqliteStore,
    writes: usize,
    refused: &[usize],
) -> (Vec<(String, Result<Inserted, expected_core::StoreError>)>, u64) {
    let hold = store.writer().await.unwrap_or_else(|e| panic!("writer: {e}"));
    let before = store.writer.commits();
    let mut tasks = Vec::new();
    for i in 0..writes {
        let name = if refused.contains(&i) { format!("mallory{i}") } else { format!("user{i}") };
        let (writes, record) = (store.clone(), session(&name));
        // Every other one capped: its insert a savepoint of the group.
        let cap = (i % 2 == 1).then_some(std::num::NonZeroUsize::MIN.saturating_add(4));
        tasks.push(tokio::spawn(async move { (name, writes.create_session(&record, cap).await) }));
        // In order: each write waits before the next starts.
        until_waiting(store, i + 1).await;
    }
    drop(hold);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|e| panic!("task: {e}")));
    }
    (outcomes, store.writer.commits() - before)
}

/// The users whose sessions are on the file, read by a connection of its
/// own (what another process sees: the committed writes).
async fn stored(options: &SqliteConnectOptions) -> BTreeSet<String> {
    let mut conn = options.connect().await.unwrap_or_else(|e| panic!("connect: {e}"));
    let names: Vec<String> = sqlx::query_scalar("SELECT username FROM expected_sessions")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("select: {e}"));
    let _ = conn.close().await;
    names.into_iter().collect()
}

/// A trigger that refuses the sessions of users named `mallory…`, with
/// `RAISE(ABORT)` (the statement fails) or `RAISE(ROLLBACK)` (SQLite rolls
/// back the whole transaction, the group's).
async fn refuse_mallory(store: &SqliteStore, raise: &str) {
    let mut conn = store.writer().await.unwrap_or_else(|e| panic!("writer: {e}"));
    let trigger = format!(
        "CREATE TRIGGER refuse_mallory BEFORE INSERT ON expected_sessions \
         WHEN NEW.username LIKE 'mallory%' BEGIN SELECT RAISE({raise}, 'refused'); END"
    );
    sqlx::query(sqlx::AssertSqlSafe(trigger))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("trigger: {e}"));
}

/// Every write told it is done is on the file, and none told it failed is.
fn done_iff_stored(
    outcomes: &[(String, Result<Inserted, expected_core::StoreError>)],
    stored: &BTreeSet<String>,
) {
    for (name, outcome) in outcomes {
        assert_eq!(
            outcome.is_ok(),
            stored.contains(name),
            "{name}: {outcome:?}, stored: {}",
            stored.contains(name)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_together_share_one_commit() {
    let (store, options) = store().await;
    let (outcomes, commits) = queued(&store, 32, &[]).await;
    for (name, outcome) in &outcomes {
        assert_eq!(outcome.as_ref().ok(), Some(&Inserted::Created), "{name}");
    }
    assert_eq!(commits, 1, "32 writes queued together, committed together");
    let on_file = stored(&options).await;
    assert_eq!(on_file.len(), 32);
    done_iff_stored(&outcomes, &on_file);
    // A write alone commits alone, before it answers.
    let before = store.writer.commits();
    let alone = store.create_session(&session("alone"), None).await;
    assert_eq!(alone.ok(), Some(Inserted::Created));
    assert_eq!(store.writer.commits() - before, 1);
    assert!(stored(&options).await.contains("alone"));
    finish(store, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_in_a_group_fails_alone() {
    let (store, options) = store().await;
    refuse_mallory(&store, "ABORT").await;
    // Write 9 is capped: its transaction a savepoint, rolled back.
    let (outcomes, commits) = queued(&store, 32, &[9]).await;
    for (i, (name, outcome)) in outcomes.iter().enumerate() {
        assert_eq!(outcome.is_ok(), i != 9, "{name}: {outcome:?}");
    }
    // The group is committed at the failure (in case it ended the
    // transaction), the writes after it form the next.
    assert_eq!(commits, 2);
    let on_file = stored(&options).await;
    assert_eq!(on_file.len(), 31);
    done_iff_stored(&outcomes, &on_file);
    finish(store, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_ends_the_groups_transaction_fails_its_group() {
    let (store, options) = store().await;
    refuse_mallory(&store, "ROLLBACK").await;
    // Write 10 is one statement, write 21 a capped transaction's: each
    // takes the group's transaction down with it, and the writes done
    // before it in its group, which waited for the commit, are not on the
    // file: they must not be told they are.
    let (outcomes, commits) = queued(&store, 32, &[10, 21]).await;
    let on_file = stored(&options).await;
    done_iff_stored(&outcomes, &on_file);
    for (i, (name, outcome)) in outcomes.iter().enumerate() {
        assert_eq!(outcome.is_ok(), i > 21, "{name}: {outcome:?}");
    }
    assert_eq!(commits, 3);
    assert_eq!(on_file.len(), 10);
    // The writer's connection was replaced; the store writes on.
    assert_eq!(store.create_session(&session("after"), None).await.ok(), Some(Inserted::Created));
    assert!(stored(&options).await.contains("after"));
    finish(store, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_writes_leave_the_write_lock_free() {
    let (store, options) = store().await;
    let mut other = impatient(&options).await;
    for round in 0..24u64 {
        let hold = store.writer().await.unwrap_or_else(|e| panic!("writer: {e}"));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (store, record) = (store.clone(), session(&format!("user{round}_{i}")));
            let cap = (i % 2 == 1).then_some(std::num::NonZeroUsize::MIN.saturating_add(4));
            tasks.push(tokio::spawn(async move { store.create_session(&record, cap).await }));
        }
        until_waiting(&store, 8).await;
        drop(hold);
        // Abandoned at a different point each round: waiting for the turn,
        // holding it with the group open, waiting for the group's commit.
        tokio::time::sleep(Duration::from_micros(150 * round)).await;
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        // With no other write of the store's, the lock comes free.
        lock_comes_free(&mut other, &format!("round {round}")).await;
    }
    let _ = other.close().await;
    assert_eq!(store.create_session(&session("after"), None).await.ok(), Some(Inserted::Created));
    finish(store, &options).await;
}

/// Another connection to the store's file, whose busy timeout is 0: a
/// lock taken fails at once.
async fn impatient(options: &SqliteConnectOptions) -> sqlx::SqliteConnection {
    options.clone().busy_timeout(Duration::ZERO).connect().await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Another connection (busy timeout 0) takes SQLite's write lock within
/// 10 s: the store left no transaction open.
async fn lock_comes_free(other: &mut sqlx::SqliteConnection, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match sqlx::query("BEGIN IMMEDIATE").execute(&mut *other).await {
            Ok(_) => break,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: the store still holds the write lock ({error})"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    sqlx::query("ROLLBACK").execute(&mut *other).await.unwrap_or_else(|e| panic!("rollback: {e}"));
}

/// The one write of its group, abandoned while it holds the turn (its
/// statement slowed by a trigger that counts to a few million): no other
/// write is waiting to commit the group, so the write's own leftovers must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_with_the_turn_in_hand_leaves_the_write_lock_free() {
    let (store, options) = store().await;
    let mut conn = store.writer().await.unwrap_or_else(|e| panic!("writer: {e}"));
    sqlx::query(
        "CREATE TRIGGER slow_down BEFORE INSERT ON expected_sessions WHEN NEW.username LIKE 'slow%' \
         BEGIN SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
         LIMIT 3000000) SELECT x FROM c); END",
    )
    .execute(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("trigger: {e}"));
    drop(conn);
    let mut other = impatient(&options).await;
    for round in 0..3 {
        let (writes, record) = (store.clone(), session(&format!("slow{round}")));
        let write = tokio::spawn(async move { writes.create_session(&record, None).await });
        // Until the write holds the turn: its statement takes the lock.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.is_ok() {
            sqlx::query("ROLLBACK").execute(&mut other).await.unwrap_or_else(|e| panic!("rollback: {e}"));
            assert!(tokio::time::Instant::now() < deadline, "round {round}: the write never took the lock");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        write.abort();
        let _ = write.await;
        lock_comes_free(&mut other, &format!("round {round}")).await;
    }
    let _ = other.close().await;
    assert_eq!(store.create_session(&session("after"), None).await.ok(), Some(Inserted::Created));
    finish(store, &options).await;
}

/// `close` while a group waits for its commit (the close queued between the
/// writes): the group's writes are committed and told so, the writes after
/// the close fail and are not on the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_the_group_it_finds_open() {
    let (store, options) = store().await;
    let hold = store.writer().await.unwrap_or_else(|e| panic!("writer: {e}"));
    let mut tasks = Vec::new();
    let mut closing = None;
    for i in 0..8 {
        if i == 4 {
            let store = store.clone();
            closing = Some(tokio::spawn(async move { store.close().await }));
            // The close's wait is not counted among the writes': give it
            // time to queue for the turn behind the first four.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let name = format!("user{i}");
        let (writes, record) = (store.clone(), session(&name));
        tasks.push(tokio::spawn(async move { (name, writes.create_session(&record, None).await) }));
        until_waiting(&store, i + 1).await;
    }
    drop(hold);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|e| panic!("task: {e}")));
    }
    if let Some(closing) = closing {
        closing.await.unwrap_or_else(|e| panic!("close: {e}"));
    }
    let on_file = stored(&options).await;
    done_iff_stored(&outcomes, &on_file);
    for (i, (name, outcome)) in outcomes.iter().enumerate() {
        assert_eq!(outcome.is_ok(), i < 4, "{name}: {outcome:?}");
    }
    finish(store, &options).await;
}
