//! The conformance suite and this crate's own checks on SQLite: in a fresh
//! temporary file (deleted afterwards), on a pool of the test's (writes
//! taking turns on it) and with a writer of the store's own, and in a fresh
//! in-memory database; then the checks of the one writer and of the
//! durability option.

#![cfg(feature = "sqlite")]

mod support;

use std::time::Duration;

use expected_conformance::Unreachable;
use expected_store_sqlx::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use expected_store_sqlx::sqlx::{self};
use expected_store_sqlx::{SqliteStore, Tables};

enum Sqlite {
    /// A temporary file in WAL mode, on a pool of the test's
    /// (`SqliteStore::with_tables`: writes take turns on it).
    File,
    /// The same file, opened by the store with a writer of its own
    /// (`SqliteStore::builder().connect_with`).
    OwnWriter,
    /// `:memory:`: sqlx names each such database uniquely and shares it
    /// between the pool's connections.
    Memory,
}

#[async_trait::async_trait]
impl support::Backend for Sqlite {
    type Store = SqliteStore;

    const TABLE_NAMES: &'static str = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1";

    const SETTLE: &'static str = "ANALYZE expected_sessions";

    const VERSION_1: &'static str = include_str!("v1/sqlite.sql");

    fn blob(bytes: &[u8]) -> String {
        format!("X'{}'", support::hex(bytes))
    }

    async fn create(&self, tables: Tables) -> Result<SqliteStore, Unreachable> {
        let options = match self {
            Self::File | Self::OwnWriter => wal_file().await,
            Self::Memory => ":memory:".parse().unwrap_or_else(|e| panic!("{e}")),
        };
        if let Self::OwnWriter = self {
            let store = SqliteStore::builder().tables(tables).max_readers(4).connect_with(options).await;
            return Ok(store.unwrap_or_else(|e| panic!("store: {e}")));
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // An in-memory database lives as long as one connection to it.
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("pool: {e}"));
        Ok(SqliteStore::with_tables(pool, tables))
    }

    async fn drop(&self, store: &SqliteStore) {
        let file: Option<String> =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(store.pool())
                .await
                .ok();
        store.close().await;
        if let Some(file) = file.filter(|f| f.contains("expected_test_")) {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(format!("{file}{suffix}"));
            }
        }
    }
}

mod file {
    crate::support::suite!(super::Sqlite::File);
}

mod own_writer {
    crate::support::suite!(super::Sqlite::OwnWriter);
}

mod memory {
    crate::support::suite!(super::Sqlite::Memory);
}

/// Options for a fresh temporary file in WAL mode.
fn temporary_file() -> SqliteConnectOptions {
    let path = std::env::temp_dir().join(format!("{}.db", support::unique_name("expected_test")));
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // The pool's first connections switch the new file to WAL at once;
        // on a loaded machine the one that waits can outlast sqlx's 5 s
        // default and fail the test with "database is locked".
        .busy_timeout(Duration::from_secs(30))
}

/// A [`temporary_file`] already in WAL mode: one connection switches it
/// before any pool opens several at once. Two connections switching a new
/// file together can meet a lock SQLite reports at once as "database is
/// locked", without waiting out the busy timeout (seen once in a run of
/// the whole suite on a loaded machine).
async fn wal_file() -> SqliteConnectOptions {
    use expected_store_sqlx::sqlx::{ConnectOptions as _, Connection as _};

    let options = temporary_file();
    let conn = options.connect().await.unwrap_or_else(|e| panic!("{e}"));
    conn.close().await.unwrap_or_else(|e| panic!("{e}"));
    options
}

/// Removes a temporary file and its WAL and shared-memory files.
fn remove(options: &SqliteConnectOptions) {
    let file = options.get_filename().display().to_string();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{file}{suffix}"));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `chains` cookie-login chains at once, one login each (of `users`
/// users), each rotated `rotations` times: every rotation must answer
/// `Rotated`, and none may fail.
async fn rotate_concurrently(store: &SqliteStore, users: usize, chains: usize, rotations: usize) {
    use expected_core::protocol::{apply_rotation, new_login, new_session, password_user, rotation};
    use expected_core::store::{Inserted, Rotated};
    use expected_core::{
        ChaChaTokens, ClientMeta, Config, SessionData, Store as _, TokenSource as _, Username,
    };

    let mut tasks = tokio::task::JoinSet::new();
    for chain in 0..chains {
        let store = store.clone();
        tasks.spawn(async move {
            let (tokens, config) = (ChaChaTokens::from_os(), Config::default());
            let now = expected_core::Clock::now(&expected_core::SystemClock);
            let user = Username::new(format!("user{}", chain % users)).unwrap_or_else(|e| panic!("{e}"));
            let serial = tokens.serial();
            let owner = Some(password_user(&user, Some(serial), now));
            let session = new_session(owner, &tokens.session_id(), SessionData::new(), now, &config);
            let (mut login, mut cookie) =
                new_login(&user, serial, tokens.token(), &session, ClientMeta::default(), now, &config);
            assert_eq!(store.create_login(&login).await.ok(), Some(Inserted::Created));
            assert_eq!(store.create_session(&session, None).await.ok(), Some(Inserted::Created));
            for i in 0..rotations {
                let (next, next_cookie) = rotation(
                    &cookie,
                    &login,
                    tokens.token(),
                    &tokens.session_id(),
                    ClientMeta::default(),
                    now,
                    &config,
                );
                match store.rotate_login(&next).await {
                    Ok(Rotated::Rotated) => {}
                    other => panic!("chain {chain}, rotation {i}: {other:?}"),
                }
                apply_rotation(&mut login, &next);
                cookie = next_cookie;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(error) = done {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// Writes take turns in the process, so they never meet SQLite's lock:
/// with the connections' busy timeout at 0 (a write finding the database
/// locked fails at once), 64 concurrent chains of 20 rotations each all
/// succeed, on a pool of the test's (writes taking turns on its
/// connections) and with a writer of the store's own. Pooled connections
/// that competed for the lock failed here: each attempt found it taken, and
/// the store's 12 attempts ran out.
#[test]
fn concurrent_rotations_never_meet_the_lock() {
    runtime().block_on(async {
        for own_writer in [false, true] {
            let options = temporary_file().busy_timeout(Duration::ZERO);
            let store = if own_writer {
                SqliteStore::builder().max_readers(8).connect_with(options.clone()).await
            } else {
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(options.clone())
                    .await
                    .unwrap_or_else(|e| panic!("pool: {e}"));
                Ok(SqliteStore::new(pool))
            }
            .unwrap_or_else(|e| panic!("store: {e}"));
            store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
            rotate_concurrently(&store, 8, 64, 20).await;
            store.close().await;
            remove(&options);
        }
    });
}

/// With a writer of its own, every write of the store runs on that one
/// connection: after concurrent rotations, SQLite's per-connection count of
/// rows changed (`total_changes()`) is the writer's alone, and every reader
/// connection changed nothing.
#[test]
fn writes_run_on_the_one_writer() {
    runtime().block_on(async {
        let options = temporary_file();
        let readers = 4;
        let store = SqliteStore::builder()
            .max_readers(readers)
            .connect_with(options.clone())
            .await
            .unwrap_or_else(|e| panic!("store: {e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
        rotate_concurrently(&store, 4, 16, 10).await;

        let changes = async |conn: &mut sqlx::SqliteConnection| {
            sqlx::query_scalar::<_, i64>("SELECT total_changes()").fetch_one(conn).await
        };
        let mut writer = store.writer().await.unwrap_or_else(|e| panic!("writer: {e}"));
        // Each chain: a login and a session, then per rotation at least the
        // login's update, the new session and the old one's deletion.
        assert!(changes(&mut *writer).await.unwrap_or_else(|e| panic!("{e}")) >= 16 * (2 + 10 * 3));
        drop(writer);
        let mut held = Vec::new();
        for _ in 0..readers {
            let mut reader = store.pool().acquire().await.unwrap_or_else(|e| panic!("reader: {e}"));
            assert_eq!(changes(&mut reader).await.ok(), Some(0), "a reader connection wrote");
            held.push(reader);
        }
        drop(held);
        store.close().await;
        remove(&options);
    });
}

/// Two stores on one file, as two processes would be (each its own writer):
/// their writers meet SQLite's lock and wait for it (the busy timeout), and
/// every rotation of both succeeds.
#[test]
fn two_writers_on_one_file_share_the_lock() {
    runtime().block_on(async {
        let options = temporary_file();
        let open = || SqliteStore::builder().max_readers(4).connect_with(options.clone());
        let first = open().await.unwrap_or_else(|e| panic!("store: {e}"));
        first.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
        let second = open().await.unwrap_or_else(|e| panic!("store: {e}"));
        let (a, b) = (first.clone(), second.clone());
        let (one, two) = tokio::join!(
            tokio::spawn(async move { rotate_concurrently(&a, 4, 16, 15).await }),
            tokio::spawn(async move { rotate_concurrently(&b, 4, 16, 15).await }),
        );
        for done in [one, two] {
            if let Err(error) = done {
                std::panic::resume_unwind(error.into_panic());
            }
        }
        first.close().await;
        second.close().await;
        remove(&options);
    });
}

/// Writes abandoned midway (their futures dropped, as when a client goes
/// away) neither keep the writer's turn nor leave a transaction open on its
/// connection: a write after them goes through.
#[test]
fn abandoned_writes_free_the_writer() {
    runtime().block_on(async {
        let options = temporary_file();
        let store = SqliteStore::builder()
            .connect_with(options.clone())
            .await
            .unwrap_or_else(|e| panic!("store: {e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
        for round in 0..20u64 {
            let busy = {
                let store = store.clone();
                tokio::spawn(async move { rotate_concurrently(&store, 4, 16, 1000).await })
            };
            tokio::time::sleep(Duration::from_millis(1 + round % 7)).await;
            busy.abort();
            let _ = busy.await;
            let after = tokio::time::timeout(Duration::from_secs(20), rotate_concurrently(&store, 1, 1, 1));
            assert!(after.await.is_ok(), "round {round}: a write after abandoned ones did not finish");
        }
        store.close().await;
        remove(&options);
    });
}

/// `PRAGMA synchronous`, read back from the writer and from a reader: FULL
/// (2) by default, NORMAL (1) when asked, and as the options say when the
/// builder is not asked.
#[test]
fn synchronous_is_full_unless_normal_is_asked() {
    use expected_store_sqlx::Synchronous;
    use expected_store_sqlx::sqlx::sqlite::SqliteSynchronous;

    runtime().block_on(async {
        let check = async |store: Result<SqliteStore, expected_core::StoreError>,
                           expected: i64,
                           what: &str| {
            let store = store.unwrap_or_else(|e| panic!("{what}: {e}"));
            let pragma = "PRAGMA synchronous";
            let mut conn = store.writer().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            let writer: i64 =
                sqlx::query_scalar(pragma).fetch_one(&mut *conn).await.unwrap_or_else(|e| panic!("{e}"));
            drop(conn);
            let reader: i64 =
                sqlx::query_scalar(pragma).fetch_one(store.pool()).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((writer, reader), (expected, expected), "{what}: (writer, reader) synchronous");
            let file: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(store.pool())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            store.close().await;
            remove(&SqliteConnectOptions::new().filename(file));
        };
        let url = || {
            let file = std::env::temp_dir().join(format!("{}.db", support::unique_name("expected_test")));
            format!("sqlite://{}", file.display())
        };
        let (full, normal) = (2, 1);
        check(SqliteStore::connect(&url()).await, full, "connect").await;
        check(SqliteStore::builder().connect(&url()).await, full, "builder").await;
        let builder = || SqliteStore::builder().synchronous(Synchronous::Normal);
        check(builder().connect(&url()).await, normal, "builder, Normal").await;
        let options = || temporary_file().synchronous(SqliteSynchronous::Normal);
        check(SqliteStore::builder().connect_with(options()).await, normal, "NORMAL options").await;
        let options = || temporary_file().synchronous(SqliteSynchronous::Full);
        check(builder().connect_with(options()).await, normal, "FULL options, builder Normal").await;
    });
}
