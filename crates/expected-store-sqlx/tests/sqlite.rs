//! The conformance suite and this crate's own checks on SQLite: in a fresh
//! temporary file (deleted afterwards) and in a fresh in-memory database.

#![cfg(feature = "sqlite")]

mod support;

use expected_conformance::Unreachable;
use expected_store_sqlx::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use expected_store_sqlx::sqlx::{self};
use expected_store_sqlx::{SqliteStore, Tables};

enum Sqlite {
    /// A temporary file in WAL mode.
    File,
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
            Self::File => {
                let path = std::env::temp_dir().join(format!("{}.db", support::unique_name("expected_test")));
                SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // The pool's first connections switch the new file to WAL
                    // at once; on a loaded machine the one that waits can
                    // outlast sqlx's 5 s default and fail the test with
                    // "database is locked".
                    .busy_timeout(std::time::Duration::from_secs(30))
            }
            Self::Memory => ":memory:".parse().unwrap_or_else(|e| panic!("{e}")),
        };
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
        store.pool().close().await;
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

mod memory {
    crate::support::suite!(super::Sqlite::Memory);
}
