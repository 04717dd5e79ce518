//! The conformance suite and this crate's own checks on MySQL / MariaDB,
//! each in a fresh database dropped afterwards.
//!
//! `EXPECTED_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).

#![cfg(feature = "mysql")]

mod support;

use std::str::FromStr as _;

use expected_conformance::Unreachable;
use expected_store_sqlx::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use expected_store_sqlx::sqlx::{self, Connection as _};
use expected_store_sqlx::{MySqlStore, Tables};

fn url() -> String {
    support::env_or("EXPECTED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

async fn admin() -> Result<sqlx::MySqlConnection, Unreachable> {
    support::connect("MySQL", &url()).await
}

/// A fresh database per store.
struct MySql;

#[async_trait::async_trait]
impl support::Backend for MySql {
    type Store = MySqlStore;

    const TABLE_NAMES: &'static str = "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1";

    const VERSION_1: &'static str = include_str!("v1/mysql.sql");

    fn blob(bytes: &[u8]) -> String {
        format!("X'{}'", support::hex(bytes))
    }

    async fn create(&self, tables: Tables) -> Result<MySqlStore, Unreachable> {
        let mut admin = admin().await?;
        let database = support::unique_name("expected_test");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create database: {e}"));
        let _ = admin.close().await;
        let options = MySqlConnectOptions::from_str(&url())
            .unwrap_or_else(|e| panic!("bad URL: {e}"))
            .database(&database);
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("pool: {e}"));
        Ok(MySqlStore::with_tables(pool, tables))
    }

    async fn drop(&self, store: &MySqlStore) {
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
}

support::suite!(MySql);
