//! The conformance suite and the Redis-specific checks on a 3-primary Redis
//! Cluster that the tests start on loopback (see `support/cluster.rs`).

#![cfg(feature = "cluster")]

mod support;

use support::harness::{ClusterHarness, cluster_store};
use support::{checks, purge, skip};

expected_conformance::tests!(ClusterHarness);
expected_conformance::rollback_tests!(ClusterHarness);

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

/// `expected-redis --cluster` against this cluster: the operator's commands,
/// output and exit codes (`expected_conformance::admin::operator_commands`).
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_on_the_cluster() {
    let (store, nodes) = match cluster_store().await {
        Ok(found) => found,
        Err(why) => return skip("cluster::operator_commands_on_the_cluster", &why),
    };
    let prefix = store.prefix().to_owned();
    let urls = nodes.join(",");
    let cli = move |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_expected-redis"))
            .args(args)
            .args(["--cluster", "--redis-url", &urls, "--key-prefix", &prefix])
            .env_remove("REDIS_URL")
            .output()
            .unwrap_or_else(|e| panic!("cannot run expected-redis: {e}"));
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
    };
    let prefix = store.prefix().to_owned();
    let checked = tokio::spawn(expected_conformance::admin::operator_commands(store, cli)).await;
    let _ = purge(&nodes, &prefix).await;
    if let Err(error) = checked {
        std::panic::resume_unwind(error.into_panic());
    }
}
