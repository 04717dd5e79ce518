//! Shared test support: where the servers are, fresh key prefixes, cleanup,
//! and the conformance harnesses.

#![allow(dead_code, clippy::print_stderr)]

pub(crate) mod checks;
#[cfg(feature = "cluster")]
pub(crate) mod cluster;
pub(crate) mod harness;
pub(crate) mod server;

use expected_core::TokenSource as _;
use expected_store_redis::RedisStore;
use expected_store_redis::redis;

/// The URL of the single Redis the tests use.
pub(crate) fn redis_url() -> String {
    std::env::var("EXPECTED_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Whether an unreachable server is a failure (`CI` set, not `0`/`false`).
pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "0" && value != "false")
}

/// Skips a test loudly, or fails it under CI.
pub(crate) fn skip(test: &str, why: &str) {
    assert!(!ci(), "{test}: server unreachable and CI is set, so this is a failure: {why}");
    eprintln!("\n!!! SKIPPED {test}: server unreachable: {why}\n");
}

/// A key prefix no other test uses.
pub(crate) fn unique_prefix() -> String {
    let serial = expected_core::ChaChaTokens::from_os().serial();
    format!("expected-test:{}", serial.to_base64())
}

/// Deletes every key under `prefix` on each of `nodes` (every primary of a
/// cluster, or the one server) and answers how many there were.
pub(crate) async fn purge(nodes: &[String], prefix: &str) -> Result<usize, redis::RedisError> {
    let mut deleted = 0;
    for node in nodes {
        let mut connection = connect(node).await?;
        for key in scan(&mut connection, prefix).await? {
            // One key at a time: a cluster node refuses multi-slot deletes.
            let _: i64 = redis::cmd("UNLINK").arg(&key).query_async(&mut connection).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Every key under `prefix` on each of `nodes`.
pub(crate) async fn keys_under(nodes: &[String], prefix: &str) -> Result<Vec<String>, redis::RedisError> {
    let mut found = Vec::new();
    for node in nodes {
        found.extend(scan(&mut connect(node).await?, prefix).await?);
    }
    found.sort();
    Ok(found)
}

async fn connect(node: &str) -> Result<redis::aio::MultiplexedConnection, redis::RedisError> {
    redis::Client::open(node)?.get_multiplexed_async_connection().await
}

/// Every key under `prefix` on the node of `connection`.
async fn scan(
    connection: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Result<Vec<String>, redis::RedisError> {
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        found.extend(keys);
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// Awaits `check`, spawned so that a failed check still cleans up; then
/// purges each of `prefixes` on `nodes`, and only then fails the test if the
/// check failed.
pub(crate) async fn purge_after(
    nodes: &[String],
    prefixes: &[&str],
    check: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let outcome = tokio::spawn(check).await;
    for prefix in prefixes {
        let _ = purge(nodes, prefix).await;
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// A store on the single Redis under a fresh prefix.
pub(crate) async fn single_store() -> Result<RedisStore, String> {
    RedisStore::builder()
        .prefix(unique_prefix())
        .connect(redis_url())
        .await
        .map_err(|error| error.to_string())
}

/// The single Redis as [`store_checks!`] wants it: a store under a fresh
/// prefix, and the one node.
pub(crate) async fn single_store_and_nodes() -> Result<(RedisStore, Vec<String>), String> {
    Ok((single_store().await?, vec![redis_url()]))
}

/// One test per check of [`checks`] that takes a store and its nodes, each on
/// a fresh store from `$store` (an async fn answering the store and the nodes
/// it lives on, or why not: skipped loudly, failed under CI), purged
/// afterwards. `$label` starts the names in skip messages.
#[allow(unused_macros)]
macro_rules! store_checks {
    ($label:literal, $store:path) => {
        $crate::support::store_checks!(@each $label, $store;
            layout_and_ttls,
            redis_expiry_keeps_indexes_clean,
            cleaning_is_exact_ahead_of_redis,
            cleaning_many_in_one_bucket,
            corrupt_records_are_errors,
            wrong_types_are_corrupt,
            anonymous_sessions_layout,
            reads_version_0_1_records,
            ending_a_login_reads_only_its_sessions,
            capped_sessions_leave_no_index_entry,
            indexes_version_0_1_sessions_lazily,
        );
    };
    (@each $label:literal, $store:path; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, nodes) = match $store().await {
                Ok(found) => found,
                Err(why) => return $crate::support::skip(concat!($label, stringify!($name)), &why),
            };
            let (prefix, on) = (store.prefix().to_owned(), nodes.clone());
            let check = async move { $crate::support::checks::$name(&store, &on).await };
            $crate::support::purge_after(&nodes, &[&prefix], check).await;
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use store_checks;
