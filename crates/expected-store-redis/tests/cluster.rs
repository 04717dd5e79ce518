//! The conformance suite and the Redis-specific checks on a 3-primary Redis
//! Cluster that the tests start on loopback (see `support/cluster.rs`).

#![cfg(feature = "cluster")]

mod support;

use support::harness::{ClusterHarness, cluster_store};
use support::{checks, purge, skip};

expected_conformance::tests!(ClusterHarness);

support::store_checks!("cluster::", cluster_store);

/// Every primary holds some of the buckets: the cluster really spreads users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_spread_over_every_primary() {
    use expected_core::Store as _;
    let (store, nodes) = match cluster_store().await {
        Ok(found) => found,
        Err(why) => return skip("cluster::users_spread_over_every_primary", &why),
    };
    let now = checks::now();
    for i in 0..60 {
        let (login, _, _) = checks::login_at(&checks::user(&format!("user-{i}")), now);
        let _ = store.create_login(&login).await.expect("create_login");
    }
    for node in &nodes {
        let keys = support::keys_under(std::slice::from_ref(node), store.prefix()).await.expect("scan");
        assert!(!keys.is_empty(), "{node} holds no key of 60 users");
    }
    let cleaned =
        store.delete_expired_logins(now + expected_core::time::Duration::days(1000)).await.expect("clean");
    assert_eq!(cleaned.len(), 60);
    let _ = purge(&nodes, store.prefix()).await;
}
