//! The conformance suite and this crate's own checks on SQLite: in a fresh
//! temporary file (deleted afterwards) and in a fresh in-memory database.

#![cfg(feature = "sqlite")]

mod support;

use expected_conformance::{Harness, Unreachable};
use expected_store_sqlx::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use expected_store_sqlx::sqlx::{self};
use expected_store_sqlx::{SqliteStore, Tables};

async fn store_on(options: SqliteConnectOptions, tables: Tables) -> SqliteStore {
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        // An in-memory database lives as long as one connection to it.
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("pool: {e}"));
    let store = SqliteStore::with_tables(pool, tables);
    store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
    store
}

fn file_options() -> SqliteConnectOptions {
    let path = std::env::temp_dir().join(format!("{}.db", support::unique_name("expected_test")));
    SqliteConnectOptions::new().filename(path).create_if_missing(true).journal_mode(SqliteJournalMode::Wal)
}

fn memory_options() -> SqliteConnectOptions {
    // sqlx names each `:memory:` database uniquely and shares it between the
    // pool's connections.
    ":memory:".parse().unwrap_or_else(|e| panic!("{e}"))
}

async fn drop_store(store: &SqliteStore) {
    let file: Option<String> =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(store.pool())
            .await
            .ok();
    store.pool().close().await;
    if let Some(file) = file.filter(|f| f.contains("expected_test_")) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{file}{suffix}"));
        }
    }
}

#[derive(Default)]
struct FileHarness;

#[async_trait::async_trait]
impl Harness for FileHarness {
    type Store = SqliteStore;

    async fn store(&self) -> Result<SqliteStore, Unreachable> {
        Ok(store_on(file_options(), Tables::default()).await)
    }

    async fn cleanup(&self, store: &SqliteStore) {
        drop_store(store).await;
    }
}

#[derive(Default)]
struct MemoryHarness;

#[async_trait::async_trait]
impl Harness for MemoryHarness {
    type Store = SqliteStore;

    async fn store(&self) -> Result<SqliteStore, Unreachable> {
        Ok(store_on(memory_options(), Tables::default()).await)
    }

    async fn cleanup(&self, store: &SqliteStore) {
        drop_store(store).await;
    }
}

/// On a temporary file in WAL mode.
mod file {
    use super::FileHarness;
    expected_conformance::tests!(FileHarness);
}

/// On `:memory:`.
mod memory {
    use super::MemoryHarness;
    expected_conformance::tests!(MemoryHarness);
}

fn run<F: std::future::Future<Output = ()> + Send + 'static>(
    options: SqliteConnectOptions,
    tables: Tables,
    body: impl FnOnce(SqliteStore) -> F,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let store = store_on(options, tables).await;
        // Spawned, so that a failed check still drops what the test made.
        let outcome = tokio::spawn(body(store.clone())).await;
        drop_store(&store).await;
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.try_into_panic().unwrap_or_else(|e| Box::new(e.to_string())));
        }
    });
}

#[test]
fn migrate_is_idempotent_with_own_table_and_prefix() {
    let tables = Tables::with_prefix("auth_").unwrap_or_else(|e| panic!("{e}"));
    run(file_options(), tables, |store| async move {
        store.migrate().await.unwrap_or_else(|e| panic!("second migrate: {e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("third migrate: {e}"));
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM auth_migrations")
            .fetch_all(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(versions, vec![1]);
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
                .fetch_all(store.pool())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tables, ["auth_logins", "auth_migrations", "auth_sessions"]);
    });
}

#[test]
fn cleaning_runs_in_batches() {
    run(memory_options(), Tables::default(), |store| async move {
        support::check_batched_cleaning(store.with_batch_size(3)).await;
    });
}

#[test]
fn revocation_races_rotation() {
    run(file_options(), Tables::default(), |store| async move {
        support::check_revocation_races_rotation(store.clone(), false).await;
        support::check_revocation_races_rotation(store, true).await;
    });
}
