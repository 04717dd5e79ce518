//! The conformance suite and this crate's own checks on PostgreSQL, each in
//! a fresh schema dropped afterwards.
//!
//! `EXPECTED_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

#![cfg(feature = "postgres")]

mod support;

use std::str::FromStr as _;

use expected_conformance::Unreachable;
use expected_store_sqlx::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use expected_store_sqlx::sqlx::{self, Connection as _};
use expected_store_sqlx::{PgStore, Tables};

fn url() -> String {
    support::env_or("EXPECTED_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
}

async fn admin() -> Result<sqlx::PgConnection, Unreachable> {
    support::connect("PostgreSQL", &url()).await
}

/// A fresh schema per store; the pool's connections search only it.
struct Postgres;

#[async_trait::async_trait]
impl support::Backend for Postgres {
    type Store = PgStore;

    const TABLE_NAMES: &'static str = "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1";

    const VERSION_1: &'static str = include_str!("v1/postgres.sql");

    fn blob(bytes: &[u8]) -> String {
        format!("'\\x{}'", support::hex(bytes))
    }

    async fn create(&self, tables: Tables) -> Result<PgStore, Unreachable> {
        let mut admin = admin().await?;
        let schema = support::unique_name("expected_test");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create schema: {e}"));
        let _ = admin.close().await;
        let options = PgConnectOptions::from_str(&url())
            .unwrap_or_else(|e| panic!("bad URL: {e}"))
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("pool: {e}"));
        Ok(PgStore::with_tables(pool, tables))
    }

    async fn drop(&self, store: &PgStore) {
        let schema: Option<String> =
            sqlx::query_scalar("SELECT current_schema()").fetch_one(store.pool()).await.ok().flatten();
        store.pool().close().await;
        if let (Some(schema), Ok(mut admin)) = (schema, admin().await)
            && schema.starts_with("expected_test_")
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
                .execute(&mut admin)
                .await;
        }
    }
}

support::suite!(Postgres);
