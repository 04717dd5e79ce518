//! The conformance harnesses: the single Redis, and the local cluster.

use expected_conformance::{Harness, Unreachable};
use expected_store_redis::RedisStore;

use super::{purge, redis_url, single_store};

/// Conformance on the single Redis at [`redis_url`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SingleHarness;

#[async_trait::async_trait]
impl Harness for SingleHarness {
    type Store = RedisStore;

    async fn store(&self) -> Result<RedisStore, Unreachable> {
        single_store().await.map_err(|why| Unreachable(format!("{}: {why}", redis_url())))
    }

    async fn cleanup(&self, store: &RedisStore) {
        if let Err(error) = purge(&[redis_url()], store.prefix()).await {
            eprintln!("cleanup of {} failed: {error}", store.prefix());
        }
    }
}

/// A store on the test cluster under a fresh prefix, and the cluster's nodes.
#[cfg(feature = "cluster")]
pub(crate) async fn cluster_store() -> Result<(RedisStore, Vec<String>), String> {
    let cluster =
        tokio::task::spawn_blocking(|| super::cluster::cluster().map(|cluster| cluster.nodes.clone()))
            .await
            .map_err(|error| error.to_string())??;
    let store = RedisStore::builder()
        .prefix(super::unique_prefix())
        .connect_cluster(cluster.iter().map(String::as_str))
        .await
        .map_err(|error| error.to_string())?;
    Ok((store, cluster))
}

/// Conformance on the local 3-primary cluster.
#[cfg(feature = "cluster")]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ClusterHarness;

#[cfg(feature = "cluster")]
#[async_trait::async_trait]
impl Harness for ClusterHarness {
    type Store = RedisStore;

    async fn store(&self) -> Result<RedisStore, Unreachable> {
        cluster_store().await.map(|(store, _)| store).map_err(|why| Unreachable(format!("cluster: {why}")))
    }

    async fn cleanup(&self, store: &RedisStore) {
        let nodes = match super::cluster::cluster() {
            Ok(cluster) => cluster.nodes.clone(),
            Err(_) => return,
        };
        if let Err(error) = purge(&nodes, store.prefix()).await {
            eprintln!("cleanup of {} failed: {error}", store.prefix());
        }
    }
}
