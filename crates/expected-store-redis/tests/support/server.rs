//! Private `redis-server` processes started by the tests.
//!
//! Every process is started with `--pidfile` in a directory the test owns,
//! and a watchdog shell kills it once the test process is gone, so that a
//! crashed or interrupted run leaves nothing behind for long; a later run
//! also kills what an earlier one left in a directory it reuses.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `redis-server` binary: `EXPECTED_REDIS_SERVER`, or the one on `PATH`.
pub(crate) fn server_binary() -> String {
    std::env::var("EXPECTED_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// The `redis-cli` binary: `EXPECTED_REDIS_CLI`, or the one on `PATH`.
pub(crate) fn cli_binary() -> String {
    std::env::var("EXPECTED_REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned())
}

/// Whether nothing listens on, and nothing can be bound to, `port` of the
/// loopback address.
pub(crate) fn port_is_free(port: u16) -> bool {
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    TcpListener::bind(address).is_ok()
        && TcpStream::connect_timeout(&address.into(), Duration::from_millis(100)).is_err()
}

/// A port the system just handed out, with `port + 10000` (a cluster bus)
/// free as well.
pub(crate) fn free_port() -> Result<u16, String> {
    for _ in 0..50 {
        let listener =
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        drop(listener);
        if port < 55_000 && port_is_free(port + 10_000) {
            return Ok(port);
        }
    }
    Err("no free port pair found".to_owned())
}

/// Runs `redis-cli -p port args…` and answers its output.
pub(crate) fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new(cli_binary())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", cli_binary()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("redis-cli {args:?} failed: {text}{}", String::from_utf8_lossy(&output.stderr)))
    }
}

/// Whether `pid` is a `redis-server` listening on `port` (it names its port
/// in its process title), so that a recycled pid is never killed.
pub(crate) fn is_our_server(pid: u32, port: u16) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    cmdline.contains("redis-server") && cmdline.contains(&format!(":{port}"))
}

/// Kills the processes whose pid files (`<port>.pid`) lie in `dir`, left by an
/// earlier run, if they still are those servers; answers whether any was.
pub(crate) fn kill_stale(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let mut killed = false;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "pid") {
            continue;
        }
        let port = path.file_stem().and_then(|stem| stem.to_str()).and_then(|stem| stem.parse::<u16>().ok());
        let pid = std::fs::read_to_string(&path).ok().and_then(|text| text.trim().parse::<u32>().ok());
        if let (Some(port), Some(pid)) = (port, pid) {
            if is_our_server(pid, port) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                killed = true;
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    killed
}

/// Starts a shell that waits for this process to end, then kills the
/// `(pid, port)` servers that still are what they were and removes `dir`.
pub(crate) fn watchdog(servers: &[(u32, u16)], dir: &Path) {
    let kills: Vec<String> = servers
        .iter()
        .map(|(pid, port)| {
            format!(
                "if tr '\\0' ' ' < /proc/{pid}/cmdline 2>/dev/null | grep -q 'redis-server.*:{port}'; \
                 then kill -9 {pid}; fi"
            )
        })
        .collect();
    let script = format!(
        "while kill -0 {owner} 2>/dev/null; do sleep 1; done; {kills}; rm -rf '{dir}'",
        owner = std::process::id(),
        kills = kills.join("; "),
        dir = dir.display(),
    );
    // Not waited for: it outlives this process on purpose.
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// One `redis-server` child. Dropping it kills it.
pub(crate) struct RedisProcess {
    child: Child,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisProcess {
    /// Starts `redis-server` on `port` with its files in `dir`, plus `extra`
    /// arguments, and waits until it answers `PING`.
    pub(crate) fn start(port: u16, dir: &Path, extra: &[&str]) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let child = Self::spawn(port, dir, &extra)?;
        let process = Self { child, port, dir: dir.to_owned(), extra };
        process.wait_ready()?;
        Ok(process)
    }

    fn spawn(port: u16, dir: &Path, extra: &[String]) -> Result<Child, String> {
        let child = Command::new(server_binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--pidfile")
            .arg(dir.join(format!("{port}.pid")))
            .arg("--logfile")
            .arg(dir.join(format!("{port}.log")))
            .args(["--save", ""])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", server_binary()))?;
        watchdog(&[(child.id(), port)], dir);
        Ok(child)
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if cli(self.port, &["PING"]).is_ok_and(|answer| answer.trim() == "PONG") {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join(format!("{}.log", self.port))).unwrap_or_default();
                return Err(format!("redis-server on port {} did not come up:\n{log}", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`STOP`, `CONT`, …) to the server.
    pub(crate) fn signal(&self, signal: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("kill -{signal} failed")) }
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, directory and arguments.
    pub(crate) fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !port_is_free(self.port) {
            if Instant::now() > deadline {
                return Err(format!("port {} stays busy", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Self::spawn(self.port, &self.dir, &self.extra)?;
        self.wait_ready()
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
