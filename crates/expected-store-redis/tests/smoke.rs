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

/// A measurement for `docs/benchmarks.md`, not a check:
/// [`expected_conformance::cost::revoke_cost`] with 10 000 and 64 sessions on
/// one user, then the first revocations on a user of 10 000 sessions written
/// before the per-login sets (their marker and sets deleted, as version 0.1
/// left them), printed as Markdown rows. `cargo test --release -p
/// expected-store-redis --test smoke -- --ignored revoke_cost --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/benchmarks.md, not a check"]
#[allow(clippy::print_stdout)] // its figures are what it is for
async fn revoke_cost() {
    use expected_conformance::cost;
    let store = match single_store().await {
        Ok(store) => store,
        Err(why) => return skip("revoke_cost", &why),
    };
    let prefix = store.prefix().to_owned();
    let check = async move {
        let mut table = String::from(cost::HEADER);
        for (sessions, rounds) in [(10_000, 3), (64, 20)] {
            table.push_str(&format!("\n{}", cost::revoke_cost(&store, sessions, rounds, || async {}).await));
        }
        println!("{table}");
        let name = checks::user("unindexed");
        let _ = cost::seed(&store, &name, 10_000).await;
        let layout: Vec<String> = support::keys_under(&[redis_url()], store.prefix())
            .await
            .expect("scan")
            .into_iter()
            .filter(|key| key.contains("}:I:") || key.contains("}:O:"))
            .collect();
        let client = expected_store_redis::redis::Client::open(redis_url()).expect("client");
        let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
        for key in &layout {
            let _: i64 = expected_store_redis::redis::cmd("DEL")
                .arg(key)
                .query_async(&mut connection)
                .await
                .expect("DEL");
        }
        println!("\nper-login sets and markers deleted: {}", layout.len());
        for attempt in ["first", "second"] {
            let serial = expected_core::TokenSource::serial(&expected_core::ChaChaTokens::from_os());
            let started = std::time::Instant::now();
            assert!(!store.delete_login(&name, &serial).await.expect("delete_login"));
            println!(
                "{attempt} revocation of a missing serial: {:.0} µs",
                started.elapsed().as_secs_f64() * 1e6
            );
        }
    };
    purge_after(&[redis_url()], &[&prefix], check).await;
}
