//! Opening a store from a URL.

use std::sync::Arc;

use expected_core::{DynStore, StoreError};
use expected_store_memory::MemoryStore;

/// Why [`open_store`] could not open a store.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The scheme names a store this build was compiled without.
    #[error("{url}: this build has no {what} store (build the demo kit with its feature `{feature}`)")]
    NotAvailable {
        /// The URL asked for, password hidden.
        url: String,
        /// Which store that is.
        what: &'static str,
        /// The demo kit's feature that brings it.
        feature: &'static str,
    },
    /// The URL's scheme is not one the demos know.
    #[error(
        "{0}: not a store URL; use memory:, sqlite:FILE, postgres://…, mysql://…, redis://… or \
         redis-cluster://HOST:PORT,…"
    )]
    UnknownScheme(String),
    /// The store could not be reached, or its schema not created.
    #[error("{url}: {source}")]
    Store {
        /// The URL, password hidden.
        url: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
}

impl OpenStoreError {
    /// Whether the URL itself is wrong (a configuration error: exit code 2)
    /// rather than the store failing.
    pub fn is_configuration(&self) -> bool {
        !matches!(self, Self::Store { .. })
    }
}

/// `url` with the password of its user info replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_owned(),
    }
}

/// Opens the store `url` names and creates its schema if it needs one:
///
/// | URL | store | kit feature (default on) |
/// |---|---|---|
/// | `memory:` | in-process, lost on restart | |
/// | `sqlite:FILE` | SQLite file, created if missing (`expected-store-sqlx`) | `sqlite` |
/// | `postgres://…`, `postgresql://…` | PostgreSQL (`expected-store-sqlx`) | `postgres` |
/// | `mysql://…`, `mariadb://…` | MySQL or MariaDB (`expected-store-sqlx`) | `mysql` |
/// | `redis://…` | Redis, keys under `expected-demo` (`expected-store-redis`) | `redis` |
/// | `redis-cluster://HOST:PORT,HOST:PORT,…` | a Redis Cluster through any of its nodes, keys under `expected-demo` (needs token keys, [`env::TOKEN_KEYS`](crate::env::TOKEN_KEYS)) | `redis` |
pub async fn open_store(url: &str) -> Result<DynStore, OpenStoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("memory") => Ok(Arc::new(MemoryStore::new())),
        Some("sqlite") => sqlite(url).await,
        Some("postgres" | "postgresql") => postgres(url).await,
        Some("mysql" | "mariadb") => mysql(url).await,
        Some("redis" | "rediss") => redis(url).await,
        Some("redis-cluster") => redis_cluster(url).await,
        _ => Err(OpenStoreError::UnknownScheme(redact(url))),
    }
}

/// Whether `url` names a Redis Cluster (`redis-cluster://…`).
pub fn is_cluster_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("redis-cluster"))
}

/// The node URLs of `redis-cluster://HOST:PORT,HOST:PORT,…` (user info, if
/// any, on the first node applies to every node): `redis://…` each. `None`
/// for no node.
pub fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (_, rest) = url.split_once("://")?;
    let (user_info, hosts) = match rest.rsplit_once('@') {
        Some((user_info, hosts)) => (format!("{user_info}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.trim_end_matches('/');
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| format!("redis://{user_info}{host}"))
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql", feature = "redis"))]
fn failed(url: &str) -> impl FnOnce(StoreError) -> OpenStoreError + '_ {
    move |source| OpenStoreError::Store { url: redact(url), source }
}

#[cfg(feature = "sqlite")]
async fn sqlite(url: &str) -> Result<DynStore, OpenStoreError> {
    let store = expected_store_sqlx::SqliteStore::connect(url).await.map_err(failed(url))?;
    store.migrate().await.map_err(failed(url))?;
    Ok(Arc::new(store))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<DynStore, OpenStoreError> {
    let store = expected_store_sqlx::PgStore::connect(url).await.map_err(failed(url))?;
    store.migrate().await.map_err(failed(url))?;
    Ok(Arc::new(store))
}

#[cfg(feature = "mysql")]
async fn mysql(url: &str) -> Result<DynStore, OpenStoreError> {
    // sqlx names both servers `mysql://`.
    let url_for_sqlx = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => url.to_owned(),
    };
    let store = expected_store_sqlx::MySqlStore::connect(&url_for_sqlx).await.map_err(failed(url))?;
    store.migrate().await.map_err(failed(url))?;
    Ok(Arc::new(store))
}

#[cfg(feature = "redis")]
async fn redis(url: &str) -> Result<DynStore, OpenStoreError> {
    let store = expected_store_redis::RedisStore::builder()
        .prefix("expected-demo")
        .connect(url)
        .await
        .map_err(failed(url))?;
    Ok(Arc::new(store))
}

#[cfg(feature = "redis")]
async fn redis_cluster(url: &str) -> Result<DynStore, OpenStoreError> {
    let nodes = cluster_nodes(url).ok_or_else(|| OpenStoreError::UnknownScheme(redact(url)))?;
    let store = expected_store_redis::RedisStore::builder()
        .prefix("expected-demo")
        .connect_cluster(nodes.iter().map(String::as_str))
        .await
        .map_err(failed(url))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
async fn redis_cluster(url: &str) -> Result<DynStore, OpenStoreError> {
    Err(OpenStoreError::NotAvailable { url: redact(url), what: "Redis Cluster", feature: "redis" })
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(url: &str) -> Result<DynStore, OpenStoreError> {
    Err(OpenStoreError::NotAvailable { url: redact(url), what: "SQLite", feature: "sqlite" })
}

#[cfg(not(feature = "postgres"))]
async fn postgres(url: &str) -> Result<DynStore, OpenStoreError> {
    Err(OpenStoreError::NotAvailable { url: redact(url), what: "PostgreSQL", feature: "postgres" })
}

#[cfg(not(feature = "mysql"))]
async fn mysql(url: &str) -> Result<DynStore, OpenStoreError> {
    Err(OpenStoreError::NotAvailable { url: redact(url), what: "MySQL", feature: "mysql" })
}

#[cfg(not(feature = "redis"))]
async fn redis(url: &str) -> Result<DynStore, OpenStoreError> {
    Err(OpenStoreError::NotAvailable { url: redact(url), what: "Redis", feature: "redis" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/app?x=1"), "postgres://app:***@db:5432/app?x=1");
        assert_eq!(redact("redis://:pw@127.0.0.1/0"), "redis://:***@127.0.0.1/0");
        assert_eq!(redact("mysql://root@localhost/test"), "mysql://root@localhost/test");
        assert_eq!(redact("sqlite:expected-demo.db"), "sqlite:expected-demo.db");
    }

    #[test]
    fn cluster_urls_name_every_node() {
        assert!(is_cluster_url("redis-cluster://127.0.0.1:7001"));
        assert!(!is_cluster_url("redis://127.0.0.1:7001"));
        assert_eq!(
            cluster_nodes("redis-cluster://127.0.0.1:7001, 127.0.0.1:7002,127.0.0.1:7003/"),
            Some(vec![
                "redis://127.0.0.1:7001".to_owned(),
                "redis://127.0.0.1:7002".to_owned(),
                "redis://127.0.0.1:7003".to_owned(),
            ])
        );
        assert_eq!(
            cluster_nodes("redis-cluster://:pw@a:1,b:2"),
            Some(vec!["redis://:pw@a:1".to_owned(), "redis://:pw@b:2".to_owned()])
        );
        assert_eq!(cluster_nodes("redis-cluster://"), None);
    }

    #[test]
    fn unknown_schemes_are_configuration_errors() {
        let runtime = tokio_free_block_on(open_store("ftp://x:pw@host/"));
        match runtime {
            Err(error @ OpenStoreError::UnknownScheme(_)) => {
                assert!(error.is_configuration());
                assert!(!error.to_string().contains("pw@"), "{error}");
            }
            Err(error) => panic!("{error}"),
            Ok(_) => panic!("ftp: was accepted"),
        }
        assert!(tokio_free_block_on(open_store("memory:")).is_ok());
    }

    /// Polls a future that never waits (memory: and unknown schemes).
    fn tokio_free_block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
        }
    }
}
