//! Redis-specific checks on the single Redis at `EXPECTED_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), each under its own key prefix.

mod support;

use expected_core::{Store as _, StoreErrorKind};
use expected_store_redis::RedisStore;
use support::{checks, purge_after, redis_url, single_store, skip};

support::store_checks!("", support::single_store_and_nodes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_isolate() {
    let (store, other) = match (single_store().await, single_store().await) {
        (Ok(store), Ok(other)) => (store, other),
        (Err(why), _) | (_, Err(why)) => return skip("prefixes_isolate", &why),
    };
    let prefixes = [store.prefix().to_owned(), other.prefix().to_owned()];
    let check = async move { checks::prefixes_isolate(&store, &other).await };
    purge_after(&[redis_url()], &[&prefixes[0], &prefixes[1]], check).await;
}

#[tokio::test]
async fn bad_prefixes_are_refused() {
    for prefix in ["", "a{b", "a}b"] {
        let error = RedisStore::builder().prefix(prefix).connect_lazy(redis_url()).expect_err(prefix);
        assert_eq!(error.kind(), StoreErrorKind::Backend);
    }
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let port = support::server::free_port().expect("a free port");
    let url = format!("redis://127.0.0.1:{port}");
    let error = RedisStore::connect(url.as_str()).await.expect_err("nothing listens");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let store = RedisStore::builder().reconnect_retries(0).connect_lazy(url.as_str()).expect("lazy");
    let name = checks::user("nobody");
    let error = store.list_logins(&name).await.expect_err("nothing listens");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
}

/// RESP3 answers `HGETALL` with a map rather than an array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_connections_work() {
    let url = redis_url();
    let url =
        if url.contains('?') { format!("{url}&protocol=resp3") } else { format!("{url}/?protocol=resp3") };
    let store = match RedisStore::builder().prefix(support::unique_prefix()).connect(url.as_str()).await {
        Ok(store) => store,
        Err(error) => return skip("resp3_connections_work", &error.to_string()),
    };
    let prefix = store.prefix().to_owned();
    let check = async move { checks::layout_and_ttls(&store, &[redis_url()]).await };
    purge_after(&[redis_url()], &[&prefix], check).await;
}
