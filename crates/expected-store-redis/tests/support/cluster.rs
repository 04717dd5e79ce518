//! A 3-primary Redis Cluster on loopback, started once per test process from
//! the installed `redis-server` and `redis-cli`.
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
    /// A URL per primary.
    pub(crate) nodes: Vec<String>,
    _servers: Vec<RedisProcess>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The cluster, started on first use.
pub(crate) fn cluster() -> Result<&'static Cluster, String> {
    CLUSTER.get_or_init(start).as_ref().map_err(Clone::clone)
}

fn start() -> Result<Cluster, String> {
    if let Ok(urls) = std::env::var("EXPECTED_TEST_CLUSTER_URL") {
        let nodes = urls.split(',').map(|url| url.trim().to_owned()).filter(|url| !url.is_empty()).collect();
        return Ok(Cluster { nodes, _servers: Vec::new() });
    }
    let first: u16 = match std::env::var("EXPECTED_TEST_CLUSTER_PORT") {
        Ok(port) => port.parse().map_err(|_| format!("EXPECTED_TEST_CLUSTER_PORT={port} is not a port"))?,
        Err(_) => 7100,
    };
    let mut last_error = String::new();
    for attempt in 0..5u16 {
        let base = first + attempt * 10;
        let dir = std::env::temp_dir().join(format!("expected-redis-cluster-{base}"));
        if owned_by_a_live_process(&dir) {
            last_error = format!("ports {base}-{} are used by another live test run", base + 2);
            continue;
        }
        if kill_stale(&dir) {
            wait_free(base, Duration::from_secs(5));
        }
        let ports = [base, base + 1, base + 2];
        if !ports.iter().all(|port| port_is_free(*port) && port_is_free(port + 10_000)) {
            last_error = format!("ports {base}-{} or their bus ports are taken", base + 2);
            continue;
        }
        let _ = std::fs::remove_dir_all(&dir);
        match start_on(&ports, dir) {
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

fn wait_free(base: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline
        && !(base..base + 3).all(|port| port_is_free(port) && port_is_free(port + 10_000))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_on(ports: &[u16; 3], dir: PathBuf) -> Result<Cluster, String> {
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join("owner"), std::process::id().to_string()).map_err(|e| e.to_string())?;
    let mut servers = Vec::new();
    for port in ports {
        let config = format!("nodes-{port}.conf");
        servers.push(RedisProcess::start(
            *port,
            &dir,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config,
                "--cluster-node-timeout",
                "5000",
                "--appendonly",
                "no",
            ],
        )?);
    }
    let addresses: Vec<String> = ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addresses.iter().map(String::as_str));
    create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    cli(ports[0], &create)?;
    wait_until_ok(ports)?;
    Ok(Cluster {
        nodes: ports.iter().map(|port| format!("redis://127.0.0.1:{port}")).collect(),
        _servers: servers,
    })
}

/// Waits until every node sees the whole cluster healthy.
fn wait_until_ok(ports: &[u16]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let healthy = ports.iter().all(|port| {
            cli(*port, &["CLUSTER", "INFO"]).is_ok_and(|info| {
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&format!("cluster_known_nodes:{}", ports.len()))
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
