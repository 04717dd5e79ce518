//! Failover of a Redis Cluster with replicas under concurrent cookie logins
//! (issue 13): a promoted replica that missed the last rotations must heal,
//! not raise theft.
//!
//! Each run starts its own cluster of 3 primaries with a replica each on
//! loopback (`support::cluster::replicated`: ports from 7300 for the first
//! run and 7350 for the second, cluster-node-timeout 1 s), 32 chains of
//! remember-me cookie logins through the engine (each request drops the
//! session cookie, so each rotates the token; a chain pauses
//! [`THINK`] between requests), with [token keys](expected_core::keys).
//!
//! - `failover_of_a_primary_raises_no_theft`: SIGKILL the primary that holds
//!   slot 0; its replica is promoted.
//! - `failover_to_a_replica_that_missed_rotations_heals`: SIGSTOP that
//!   primary's replica first, for [`PAUSE`], while the chains rotate on,
//!   then SIGKILL the primary and SIGCONT the replica, which is promoted
//!   without the rotations it missed (Redis replication is asynchronous).
//!   Right after the SIGSTOP the primary drops its link to the stopped
//!   replica (`CLIENT KILL TYPE replica`, what its `repl-timeout` would do a
//!   little later), so the rotations of the whole pause reach no replica:
//!   without it, loopback socket buffers can carry the pause's replication
//!   stream to the replica when it wakes, and nothing would be lost. The stale replica's
//!   promotion is forced with `CLUSTER FAILOVER TAKEOVER` when the cluster
//!   has not promoted it by itself within [`PROMOTION`].
//!
//! Asserted for both: no chain raises theft, every chain logs in afterwards;
//! for the second, some rotations were really lost and healed (else the run
//! proved nothing). `failover_without_token_keys_raises_theft` (ignored; run
//! with `--ignored`) is the second run on the code path without keys: it
//! shows the false thefts the keys remove.
//!
//! Loopback only, bounded in time and requests. Without `redis-server` this
//! fails under `CI`, and is skipped loudly otherwise.

#![cfg(feature = "cluster")]
#![allow(clippy::print_stderr)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use expected_conformance::rollback::Heard;
use expected_core::keys::{KeyId, TokenKey, TokenKeys};
use expected_core::{Config, CookieKind, Expected, Outcome, Presented, Username};
use expected_store_redis::RedisStore;
use support::cluster::{Cluster, replicated};
use support::server::cli;

/// Concurrent chains.
const CHAINS: usize = 32;
/// Pause between two requests of a chain: ~15 rotations a second at most,
/// so the lost window stays well inside the 32 steps the walk covers.
const THINK: Duration = Duration::from_millis(100);
/// How long the replica is stopped before its primary is killed.
const PAUSE: Duration = Duration::from_millis(1500);
/// Steady load before the fault and after the failover.
const STEADY: Duration = Duration::from_secs(2);
/// How long the cluster may take to promote the replica on its own.
const PROMOTION: Duration = Duration::from_secs(6);
/// The most requests one chain makes.
const MAX_REQUESTS: u64 = 1_000;

/// One failover run at a time: two 6-node clusters and 64 chains on a
/// 2-core machine would measure the machine, not the store.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What a run came to (printed whole through `Debug`).
#[derive(Debug)]
#[allow(dead_code)]
struct Report {
    thefts: usize,
    heals: usize,
    lost_rotations: u64,
    requests: u64,
    unavailable: u64,
    /// Chains that did not log in after the failover, with their last outcome.
    not_logged_in: Vec<String>,
    killed: u16,
    promoted: u16,
    forced: bool,
}

fn keys() -> TokenKeys {
    let key = TokenKey::new(KeyId::new("failover").expect("key id"), &[0x42; 32]).expect("key");
    TokenKeys::new(key, Vec::new()).expect("keys")
}

/// The node lines of `CLUSTER NODES` from `port`: (id, port, flags, master id).
fn nodes(port: u16) -> Result<Vec<(String, u16, String, String)>, String> {
    let text = cli(port, &["CLUSTER", "NODES"])?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let node_port = fields.get(1)?.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            Some((
                (*fields.first()?).to_owned(),
                node_port,
                (*fields.get(2)?).to_owned(),
                (*fields.get(3)?).to_owned(),
            ))
        })
        .collect())
}

/// The primary serving slot 0 and its replica.
fn primary_and_replica(cluster: &Cluster) -> Result<(u16, u16), String> {
    let any = cluster.servers.first().ok_or("no server")?.port();
    let listed = nodes(any)?;
    // The primary whose line lists the slot range 0-…
    let text = cli(any, &["CLUSTER", "NODES"])?;
    let primary_id = text
        .lines()
        .find(|line| {
            line.contains("master") && line.split_whitespace().skip(8).any(|range| range.starts_with("0-"))
        })
        .and_then(|line| line.split_whitespace().next())
        .ok_or_else(|| format!("no primary holds slot 0:\n{text}"))?
        .to_owned();
    let primary = listed.iter().find(|node| node.0 == primary_id).map(|node| node.1).ok_or("primary port")?;
    let replica = listed
        .iter()
        .find(|node| node.2.contains("slave") && node.3 == primary_id)
        .map(|node| node.1)
        .ok_or_else(|| format!("the primary on {primary} has no replica:\n{text}"))?;
    Ok((primary, replica))
}

/// A field of `INFO replication` on `port`.
fn replication(port: u16, field: &str) -> Option<String> {
    let text = cli(port, &["INFO", "replication"]).ok()?;
    text.lines().find_map(|line| line.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_owned()))
}

/// Waits until the replica on `replica` has everything the primary on
/// `primary` wrote (equal replication offsets).
fn wait_synced(primary: u16, replica: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let written = replication(primary, "master_repl_offset");
        let received = replication(replica, "slave_repl_offset");
        if written.is_some()
            && written == received
            && replication(replica, "master_link_status").as_deref() == Some("up")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("replica {replica} never caught up: {written:?} vs {received:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `replica` is a primary; after [`PROMOTION`], forces it.
fn wait_promoted(replica: u16) -> Result<bool, String> {
    let start = Instant::now();
    let mut forced = false;
    loop {
        if replication(replica, "role").as_deref() == Some("master") {
            return Ok(forced);
        }
        if !forced && start.elapsed() > PROMOTION {
            cli(replica, &["CLUSTER", "FAILOVER", "TAKEOVER"])?;
            forced = true;
        }
        if start.elapsed() > PROMOTION * 3 {
            return Err(format!("replica {replica} was not promoted"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A chain: its username and its auth cookie value.
struct Chain {
    user: Username,
    auth: String,
}

/// One cookie login of `chain`: `Ok(Ok(()))` logged in (cookie updated),
/// `Ok(Err(why))` store unavailable (cookie kept), `Err` anything else.
async fn cookie_login(
    engine: &Expected<RedisStore>,
    chain: &mut Chain,
) -> Result<Result<(), String>, String> {
    let result = engine
        .authenticate(&Presented { auth: Some(chain.auth.as_str()).into(), ..Presented::default() })
        .await;
    match &result.outcome {
        Outcome::CookieLogin(_) | Outcome::Grace(_) => {
            if let Some(set) = result.cookies.iter().find(|c| c.kind() == CookieKind::Auth && !c.is_removal())
            {
                chain.auth = set.value().to_owned();
            }
            Ok(Ok(()))
        }
        Outcome::Unavailable(error) => Ok(Err(error.to_string())),
        other => Err(format!("{}: {other:?}", chain.user)),
    }
}

/// The fault a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillPrimary,
    PauseReplicaThenKillPrimary,
}

async fn run(first_port: u16, fault: Fault, with_keys: bool) -> Result<Report, String> {
    let mut cluster =
        tokio::task::spawn_blocking(move || replicated(first_port)).await.map_err(|e| e.to_string())??;
    let (primary, replica) = primary_and_replica(&cluster)?;
    let mut config = Config::builder().secure(false);
    if with_keys {
        config = config.token_keys(Some(keys()));
    }
    let config = config.build().map_err(|e| e.to_string())?;
    let store = RedisStore::builder()
        .prefix(support::unique_prefix())
        .response_timeout(Some(Duration::from_millis(500)))
        .connect_cluster(cluster.nodes.iter().map(String::as_str))
        .await
        .map_err(|e| e.to_string())?;
    let heard = Heard::default();
    let engine = Arc::new(Expected::new(store, config).with_hooks(heard.clone()));

    let mut chains = Vec::new();
    for i in 0..CHAINS {
        let user = Username::new(format!("chain-{i}")).map_err(|e| e.to_string())?;
        let registration =
            engine.register(&user, true, &Presented::default()).await.map_err(|e| e.to_string())?;
        let auth = registration
            .cookies
            .iter()
            .find(|c| c.kind() == CookieKind::Auth)
            .map(|c| c.value().to_owned())
            .ok_or("no auth cookie")?;
        chains.push(Chain { user, auth });
    }
    // The logins themselves must survive the failover: wait for the replica.
    tokio::task::spawn_blocking(move || wait_synced(primary, replica)).await.map_err(|e| e.to_string())??;

    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let unavailable = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for mut chain in chains {
        let (engine, stop, requests, unavailable) =
            (Arc::clone(&engine), Arc::clone(&stop), Arc::clone(&requests), Arc::clone(&unavailable));
        tasks.push(tokio::spawn(async move {
            let mut made = 0;
            while !stop.load(Ordering::Relaxed) && made < MAX_REQUESTS {
                tokio::time::sleep(THINK).await;
                made += 1;
                requests.fetch_add(1, Ordering::Relaxed);
                match cookie_login(&engine, &mut chain).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(why) => return Err((chain, why)),
                }
            }
            Ok(chain)
        }));
    }

    tokio::time::sleep(STEADY).await;
    let index = |port: u16| cluster.servers.iter().position(|s| s.port() == port).ok_or("no such server");
    let (primary_at, replica_at) = (index(primary)?, index(replica)?);
    if fault == Fault::PauseReplicaThenKillPrimary {
        cluster.servers[replica_at].signal("STOP")?;
        // What the primary's repl-timeout does to an unresponsive replica,
        // without waiting for it: the link drops, and what the primary
        // acknowledges from now on reaches no replica. (Without this the
        // kernel's socket buffers may still hold the whole pause's stream,
        // and the stopped replica read it on waking: nothing lost.)
        let link = cli(primary, &["CLIENT", "KILL", "TYPE", "replica"])?;
        if link.trim() != "1" {
            return Err(format!("the primary on {primary} had {} replica links, not 1", link.trim()));
        }
        tokio::time::sleep(PAUSE).await;
    }
    cluster.servers[primary_at].kill();
    if fault == Fault::PauseReplicaThenKillPrimary {
        cluster.servers[replica_at].signal("CONT")?;
    }
    let forced =
        tokio::task::spawn_blocking(move || wait_promoted(replica)).await.map_err(|e| e.to_string())??;
    let alive: Vec<u16> = cluster.servers.iter().map(|s| s.port()).filter(|port| *port != primary).collect();
    let _ = tokio::task::spawn_blocking(move || wait_until_ok_without(&alive)).await;
    tokio::time::sleep(STEADY).await;
    stop.store(true, Ordering::Relaxed);

    let mut not_logged_in = Vec::new();
    let mut finished = Vec::new();
    for task in tasks {
        match task.await.map_err(|e| e.to_string())? {
            Ok(chain) => finished.push(chain),
            Err((chain, why)) => {
                not_logged_in.push(why);
                finished.push(chain);
            }
        }
    }
    // Afterwards, every chain logs in with the cookie it holds.
    let deadline = Instant::now() + Duration::from_secs(30);
    for chain in &mut finished {
        loop {
            match cookie_login(&engine, chain).await {
                Ok(Ok(())) => break,
                Ok(Err(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Ok(Err(why)) => {
                    not_logged_in.push(format!("{}: store still unavailable: {why}", chain.user));
                    break;
                }
                Err(why) => {
                    not_logged_in.push(format!("after the failover: {why}"));
                    break;
                }
            }
        }
    }
    let thefts = heard.thefts().len();
    let heals = heard.heals();
    let report = Report {
        thefts,
        heals: heals.len(),
        lost_rotations: heals.iter().map(|heal| u64::from(heal.steps)).sum(),
        requests: requests.load(Ordering::Relaxed),
        unavailable: unavailable.load(Ordering::Relaxed),
        not_logged_in,
        killed: primary,
        promoted: replica,
        forced,
    };
    eprintln!("failover {fault:?} (keys: {with_keys}): {report:?}");
    Ok(report)
}

/// Waits until the nodes still running see the cluster healthy again (the
/// killed primary still counts among the known nodes, as failed).
fn wait_until_ok_without(alive: &[u16]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let ok = alive
            .iter()
            .all(|port| cli(*port, &["CLUSTER", "INFO"]).is_ok_and(|info| info.contains("cluster_state:ok")));
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the cluster did not come back to cluster_state:ok".to_owned())
}

fn failover(name: &str, first_port: u16, fault: Fault, with_keys: bool) -> Option<Report> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    match runtime.block_on(run(first_port, fault, with_keys)) {
        Ok(report) => Some(report),
        Err(why) if why.contains("cannot start") => {
            support::skip(name, &why);
            None
        }
        Err(why) => panic!("{name}: {why}"),
    }
}

#[test]
fn failover_of_a_primary_raises_no_theft() {
    let Some(report) = failover("failover_of_a_primary_raises_no_theft", 7300, Fault::KillPrimary, true)
    else {
        return;
    };
    assert_eq!(report.thefts, 0, "no chain raises theft: {report:?}");
    assert!(report.not_logged_in.is_empty(), "every chain logs in afterwards: {report:?}");
}

#[test]
fn failover_to_a_replica_that_missed_rotations_heals() {
    let name = "failover_to_a_replica_that_missed_rotations_heals";
    let Some(report) = failover(name, 7350, Fault::PauseReplicaThenKillPrimary, true) else { return };
    assert_eq!(report.thefts, 0, "no chain raises theft: {report:?}");
    assert!(report.not_logged_in.is_empty(), "every chain logs in afterwards: {report:?}");
    assert!(report.heals > 0, "the promoted replica had really lost rotations, and they healed: {report:?}");
}

/// The second run without token keys: what the code did before them.
#[test]
#[ignore = "a demonstration of the false thefts without token keys; run with --ignored"]
fn failover_without_token_keys_raises_theft() {
    let name = "failover_without_token_keys_raises_theft";
    let Some(report) = failover(name, 7350, Fault::PauseReplicaThenKillPrimary, false) else { return };
    assert!(report.thefts > 0, "without keys, lost rotations are false thefts: {report:?}");
}
