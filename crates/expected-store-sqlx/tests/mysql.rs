//! The conformance suite and this crate's own checks on MySQL / MariaDB,
//! each in a fresh database dropped afterwards.
//!
//! `EXPECTED_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).

#![cfg(feature = "mysql")]

mod support;

use std::str::FromStr as _;

use expected_conformance::{Harness, Unreachable};
use expected_store_sqlx::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use expected_store_sqlx::sqlx::{self, Connection as _};
use expected_store_sqlx::{MySqlStore, Tables};

fn url() -> String {
    support::env_or("EXPECTED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

async fn admin() -> Result<sqlx::MySqlConnection, Unreachable> {
    let connect = sqlx::MySqlConnection::connect(&url());
    match tokio::time::timeout(support::CONNECT_TIMEOUT, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(Unreachable(format!("MySQL at {}: {error}", url()))),
        Err(_) => Err(Unreachable(format!("MySQL at {}: connection timed out", url()))),
    }
}

/// A fresh database per store.
async fn fresh_store(tables: Tables) -> Result<MySqlStore, Unreachable> {
    let mut admin = admin().await?;
    let database = support::unique_name("expected_test");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    let _ = admin.close().await;
    let options =
        MySqlConnectOptions::from_str(&url()).unwrap_or_else(|e| panic!("bad URL: {e}")).database(&database);
    let pool = MySqlPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("pool: {e}"));
    let store = MySqlStore::with_tables(pool, tables);
    store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
    Ok(store)
}

async fn drop_store(store: &MySqlStore) {
    let database: Option<String> =
        sqlx::query_scalar("SELECT DATABASE()").fetch_one(store.pool()).await.ok().flatten();
    store.pool().close().await;
    if let (Some(database), Ok(mut admin)) = (database, admin().await)
        && database.starts_with("expected_test_")
    {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE `{database}`")))
            .execute(&mut admin)
            .await;
    }
}

#[derive(Default)]
struct MySqlHarness;

#[async_trait::async_trait]
impl Harness for MySqlHarness {
    type Store = MySqlStore;

    async fn store(&self) -> Result<MySqlStore, Unreachable> {
        fresh_store(Tables::default()).await
    }

    async fn cleanup(&self, store: &MySqlStore) {
        drop_store(store).await;
    }
}

expected_conformance::tests!(MySqlHarness);

fn run<F: std::future::Future<Output = ()> + Send + 'static>(
    name: &str,
    tables: Tables,
    body: impl FnOnce(MySqlStore) -> F,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let store = match fresh_store(tables).await {
            Ok(store) => store,
            Err(Unreachable(why)) => return support::unreachable(name, why),
        };
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
    run("migrate_is_idempotent_with_own_table_and_prefix", tables, |store| async move {
        store.migrate().await.unwrap_or_else(|e| panic!("second migrate: {e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("third migrate: {e}"));
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM auth_migrations")
            .fetch_all(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(versions, vec![1]);
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1",
        )
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tables, ["auth_logins", "auth_migrations", "auth_sessions"]);
    });
}

#[test]
fn cleaning_runs_in_batches() {
    run("cleaning_runs_in_batches", Tables::default(), |store| async move {
        support::check_batched_cleaning(store.with_batch_size(3)).await;
    });
}

#[test]
fn revocation_races_rotation() {
    run("revocation_races_rotation", Tables::default(), |store| async move {
        support::check_revocation_races_rotation(store.clone(), false).await;
        support::check_revocation_races_rotation(store, true).await;
    });
}
