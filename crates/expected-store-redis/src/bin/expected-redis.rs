//! `expected-redis`: the operator's commands for an `expected` Redis store.
//!
//! ```text
//! expected-redis [--redis-url URL] [--key-prefix PREFIX] [--cluster] logins list USER [--json]
//! expected-redis … logins revoke USER SERIAL
//! expected-redis … logins revoke USER --all
//! expected-redis … sessions count
//! expected-redis … clean
//! ```
//!
//! The URL defaults to `$REDIS_URL`; with `--cluster` it is a comma-separated
//! list of cluster nodes. Output and exit codes are `expected_core::admin`'s:
//! 0 done, 1 the store failed, 2 a usage error, 3 nothing found.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use expected_core::admin::{self, AdminCommand, AdminError};
use expected_core::{Config, Expected};
use expected_store_redis::RedisStore;

/// The operator's commands for an `expected` Redis store.
#[derive(Debug, Parser)]
#[command(name = "expected-redis", version)]
struct Cli {
    /// The Redis server (default: $REDIS_URL), or with `--cluster` its nodes,
    /// comma-separated.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// The store's key prefix.
    #[arg(long, global = true, default_value = expected_store_redis::DEFAULT_PREFIX)]
    key_prefix: String,
    /// The URL lists the nodes of a Redis Cluster.
    #[arg(long, global = true)]
    cluster: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("expected-redis: {error}");
            error.exit_code()
        }
    }
}

async fn connect(cli: &Cli) -> Result<RedisStore, AdminError> {
    let url = cli
        .redis_url
        .as_deref()
        .ok_or_else(|| AdminError::Usage("no --redis-url and no $REDIS_URL".to_owned()))?;
    let builder = RedisStore::builder().prefix(cli.key_prefix.clone());
    if cli.cluster {
        #[cfg(feature = "cluster")]
        return Ok(builder.connect_cluster(url.split(',').map(str::trim)).await?);
        #[cfg(not(feature = "cluster"))]
        return Err(AdminError::Usage(
            "this build has no cluster support: enable the `cluster` feature".into(),
        ));
    }
    Ok(builder.connect(url).await?)
}

async fn run(cli: &Cli) -> Result<String, AdminError> {
    let store = connect(cli).await?;
    let engine = Expected::new(store.clone(), Config::default());
    admin::run(&engine, &cli.command, |now| store.count_sessions(now)).await
}
