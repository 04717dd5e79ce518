//! The cluster support of `expected-store-redis`'s tests, shared.

#[path = "../../../expected-store-redis/tests/support/cluster.rs"]
pub(crate) mod cluster;
#[path = "../../../expected-store-redis/tests/support/server.rs"]
pub(crate) mod server;
