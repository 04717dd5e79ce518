//! The conformance harnesses: the single Redis, and the local cluster.

use expected_conformance::{Harness, RollbackHarness, Unreachable};
use expected_store_redis::RedisStore;
use expected_store_redis::redis::{self, aio::ConnectionLike};

use super::{keys_under, purge, redis_url, single_store};

/// Every key under a store's prefix, as `DUMP` serialized it, with its
/// remaining time to live in milliseconds (-1: none): the rollback cases'
/// snapshot. Restoring deletes every key under the prefix and `RESTORE`s
/// these, as a restarted Redis does with an older RDB file, or a promoted
/// replica that missed the last writes holds.
pub(crate) struct RedisSnapshot(Vec<(String, i64, Vec<u8>)>);

async fn dump_all<C: ConnectionLike + Send>(
    connection: &mut C,
    keys: Vec<String>,
) -> Result<RedisSnapshot, redis::RedisError> {
    let mut dumped = Vec::with_capacity(keys.len());
    for key in keys {
        let value: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query_async(connection).await?;
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(connection).await?;
        if let Some(value) = value {
            dumped.push((key, ttl, value));
        }
    }
    Ok(RedisSnapshot(dumped))
}

async fn restore_all<C: ConnectionLike + Send>(
    connection: &mut C,
    now: Vec<String>,
    snapshot: &RedisSnapshot,
) -> Result<(), redis::RedisError> {
    for key in now {
        let _: i64 = redis::cmd("UNLINK").arg(&key).query_async(connection).await?;
    }
    for (key, ttl, value) in &snapshot.0 {
        let ttl = (*ttl).max(0);
        let _: () =
            redis::cmd("RESTORE").arg(key).arg(ttl).arg(value).arg("REPLACE").query_async(connection).await?;
    }
    Ok(())
}

async fn single_connection() -> Result<redis::aio::MultiplexedConnection, Unreachable> {
    Ok(redis::Client::open(redis_url())?.get_multiplexed_async_connection().await?)
}

#[async_trait::async_trait]
impl RollbackHarness for SingleHarness {
    type Snapshot = RedisSnapshot;

    async fn snapshot(&self, store: &RedisStore) -> Result<RedisSnapshot, Unreachable> {
        let keys = keys_under(&[redis_url()], store.prefix()).await?;
        Ok(dump_all(&mut single_connection().await?, keys).await?)
    }

    async fn restore(&self, store: &RedisStore, snapshot: &RedisSnapshot) -> Result<(), Unreachable> {
        let keys = keys_under(&[redis_url()], store.prefix()).await?;
        Ok(restore_all(&mut single_connection().await?, keys, snapshot).await?)
    }
}

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

#[cfg(feature = "cluster")]
async fn cluster_connection() -> Result<(redis::cluster_async::ClusterConnection, Vec<String>), Unreachable> {
    let nodes = super::cluster::cluster().map_err(Unreachable)?.nodes.clone();
    let client = redis::cluster::ClusterClient::new(nodes.clone())?;
    Ok((client.get_async_connection().await?, nodes))
}

#[cfg(feature = "cluster")]
#[async_trait::async_trait]
impl RollbackHarness for ClusterHarness {
    type Snapshot = RedisSnapshot;

    async fn snapshot(&self, store: &RedisStore) -> Result<RedisSnapshot, Unreachable> {
        let (mut connection, nodes) = cluster_connection().await?;
        let keys = keys_under(&nodes, store.prefix()).await?;
        Ok(dump_all(&mut connection, keys).await?)
    }

    async fn restore(&self, store: &RedisStore, snapshot: &RedisSnapshot) -> Result<(), Unreachable> {
        let (mut connection, nodes) = cluster_connection().await?;
        let keys = keys_under(&nodes, store.prefix()).await?;
        Ok(restore_all(&mut connection, keys, snapshot).await?)
    }
}
