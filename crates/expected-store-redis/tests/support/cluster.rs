//! A 3-primary Redis Cluster on loopback, started once per test process from
//! the installed `redis-server` and `redis-cli`; and clusters of 3 primaries
//! with a replica each ([`replicated`]), one per failover test, which the
//! test may kill nodes of.
//!
//! Ports: `EXPECTED_TEST_CLUSTER_PORT` (default 7100) and the next two, with
//! their cluster bus ports 10000 higher. Files live in
//! `$TMPDIR/expected-redis-cluster-<port>`. Set `EXPECTED_TEST_CLUSTER_URL`
//! (a comma-separated list of node URLs) to use a running cluster instead.
//!
//! Servers left by a crashed run are found by their pid files and killed;
//! ports held by anything else, or by a test run still alive, move the
//! cluster up by 10 ports. The
//! servers die with the test process: a watchdog shell kills them once it is
//! gone (statics are never dropped).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::server::{RedisProcess, cli, kill_stale, port_is_free};

/// A running cluster.
pub(crate) struct Cluster {
    /// A URL per node.
    pub(crate) nodes: Vec<String>,
    /// The servers, primaries first (in port order), then the replicas.
    pub(crate) servers: Vec<RedisProcess>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The cluster, started on first use.
pub(crate) fn cluster() -> Result<&'static Cluster, String> {
    CLUSTER.get_or_init(start).as_ref().map_err(Clone::clone)
}

fn start() -> Result<Cluster, String> {
    if let Ok(urls) = std::env::var("EXPECTED_TEST_CLUSTER_URL") {
        let nodes = urls.split(',').map(|url| url.trim().to_owned()).filter(|url| !url.is_empty()).collect();
        return Ok(Cluster { nodes, servers: Vec::new() });
    }
    let first: u16 = match std::env::var("EXPECTED_TEST_CLUSTER_PORT") {
        Ok(port) => port.parse().map_err(|_| format!("EXPECTED_TEST_CLUSTER_PORT={port} is not a port"))?,
        Err(_) => 7100,
    };
    start_layout(first, 0, &["--cluster-node-timeout", "5000"])
}

/// A cluster of 3 primaries with a replica each, of its own (not shared by
/// the test process): ports from `first` (`EXPECTED_TEST_REPLICATED_PORT`
/// adds to it), moving up by 10 when taken, files in
/// `$TMPDIR/expected-redis-cluster-<port>`. Failover is quick: a node is
/// taken for failed after 1 s, and a replica may take over however long it
/// was out of touch (`cluster-replica-validity-factor 0`).
pub(crate) fn replicated(first: u16) -> Result<Cluster, String> {
    let shift: u16 = match std::env::var("EXPECTED_TEST_REPLICATED_PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("EXPECTED_TEST_REPLICATED_PORT={port} is not a port"))?
            .saturating_sub(7300),
        Err(_) => 0,
    };
    start_layout(
        first + shift,
        1,
        &["--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0"],
    )
}

/// Starts 3 primaries with `replicas` replicas each on the first free run of
/// ports from `first`.
fn start_layout(first: u16, replicas: u16, extra: &[&str]) -> Result<Cluster, String> {
    let count = 3 * (1 + replicas);
    let mut last_error = String::new();
    for attempt in 0..5u16 {
        let base = first + attempt * 10;
        let dir = std::env::temp_dir().join(format!("expected-redis-cluster-{base}"));
        let ports: Vec<u16> = (base..base + count).collect();
        if owned_by_a_live_process(&dir) {
            last_error = format!("ports {base}-{} are used by another live test run", base + count - 1);
            continue;
        }
        if kill_stale(&dir) {
            wait_free(&ports, Duration::from_secs(5));
        }
        if !ports.iter().all(|port| port_is_free(*port) && port_is_free(port + 10_000)) {
            last_error = format!("ports {base}-{} or their bus ports are taken", base + count - 1);
            continue;
        }
        let _ = std::fs::remove_dir_all(&dir);
        match start_on(&ports, replicas, extra, dir) {
            Ok(cluster) => return Ok(cluster),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// Whether the test process that started the cluster in `dir` still runs.
fn owned_by_a_live_process(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("owner"))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .is_some_and(|pid| {
            pid != std::process::id() && std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
}

fn wait_free(ports: &[u16], within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline
        && !ports.iter().all(|port| port_is_free(*port) && port_is_free(port + 10_000))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_on(ports: &[u16], replicas: u16, extra: &[&str], dir: PathBuf) -> Result<Cluster, String> {
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join("owner"), std::process::id().to_string()).map_err(|e| e.to_string())?;
    let mut servers = Vec::new();
    for port in ports {
        let config = format!("nodes-{port}.conf");
        let mut args =
            vec!["--cluster-enabled", "yes", "--cluster-config-file", &config, "--appendonly", "no"];
        args.extend(extra);
        servers.push(RedisProcess::start(*port, &dir, &args)?);
    }
    let addresses: Vec<String> = ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addresses.iter().map(String::as_str));
    let replica_count = 3 * usize::from(replicas);
    let replicas = replicas.to_string();
    create.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
    cli(ports[0], &create)?;
    wait_until_ok(ports, replica_count)?;
    Ok(Cluster { nodes: ports.iter().map(|port| format!("redis://127.0.0.1:{port}")).collect(), servers })
}

/// Waits until every node sees the whole cluster healthy, with its
/// `replicas` replicas in their role: `--cluster create` makes them replicas
/// by gossip, which a loaded machine spreads slowly, and a test that looks
/// for a primary's replica must find it.
fn wait_until_ok(ports: &[u16], replicas: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let healthy = ports.iter().all(|port| {
            cli(*port, &["CLUSTER", "INFO"]).is_ok_and(|info| {
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&format!("cluster_known_nodes:{}", ports.len()))
            }) && cli(*port, &["CLUSTER", "NODES"]).is_ok_and(|nodes| {
                nodes
                    .lines()
                    .filter(|line| {
                        line.split_whitespace().nth(2).is_some_and(|flags| flags.contains("slave"))
                    })
                    .count()
                    == replicas
            })
        });
        if healthy {
            return Ok(());
        }
        if Instant::now() > deadline {
            let info = cli(ports[0], &["CLUSTER", "INFO"]).unwrap_or_else(|error| error);
            return Err(format!("the cluster did not reach cluster_state:ok:\n{info}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
