//! The demo under test, a child process on a loopback port of its own.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use expected_demo_kit::env;
use tokio::process::{Child, Command};

use crate::Result;
use crate::http::Connection;

/// How long a demo may take to answer `/healthz` (it migrates a SQL store
/// first, and hashes the demo users' passwords).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the demo logs after each pass of its cleaner (`cleaner pass`, or
/// `cleaner pass failed`).
const CLEANER_PASS: &str = "cleaner pass";

/// A running demo. Killed when dropped, whatever happened.
#[derive(Debug)]
pub(crate) struct Demo {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    log: PathBuf,
}

/// A free loopback port (bound, then released for the demo to take).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free port: {e}"))?;
    Ok(listener.local_addr().map_err(|e| format!("no free port: {e}"))?.port())
}

impl Demo {
    /// Starts `binary` on `store` (a store URL for `EXPECTED_STORE`) with
    /// every other setting at its default, its output in `log`, and waits
    /// until it answers `GET /healthz`.
    pub(crate) async fn start(binary: &Path, store: &str, log: &Path) -> Result<Self> {
        let mut demo = Self::spawn(binary, store, log)?;
        demo.wait_ready(true).await?;
        Ok(demo)
    }

    /// Starts a peer server (`--peer`) as [`start`](Self::start) starts the
    /// demo, and waits until it answers `GET /healthz` with anything: a
    /// peer need not have that route, nor the demo's cleaner.
    pub(crate) async fn start_peer(binary: &Path, store: &str, log: &Path) -> Result<Self> {
        let mut peer = Self::spawn(binary, store, log)?;
        peer.wait_ready(false).await?;
        Ok(peer)
    }

    fn spawn(binary: &Path, store: &str, log: &Path) -> Result<Self> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let output =
            std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let errors = output.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = Command::new(binary);
        // The demo's defaults, whatever the caller's environment says.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("EXPECTED_") {
                command.env_remove(name);
            }
        }
        command
            .env(env::ADDR, addr.to_string())
            .env(env::STORE, store)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(Self { child, addr, log: log.to_owned() })
    }

    /// Waits until the demo answers `GET /healthz` and its cleaner's first
    /// pass (at startup; on Redis a script per key bucket) is over, so that
    /// neither counts in what the store does for the requests; a peer (not
    /// `demo`) until it answers at all.
    async fn wait_ready(&mut self, demo: bool) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut serving = false;
        let who = if demo { "the demo" } else { "the peer" };
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| format!("{who}: {e}"))? {
                return Err(format!("{who} exited ({status}) before serving; {}", self.log_tail()).into());
            }
            if !serving
                && let Ok(mut connection) = Connection::open(self.addr).await
                && let Ok(response) = connection.send("GET", "/healthz", None).await
            {
                serving = response.status == 200 || !demo;
            }
            let cleaned =
                !demo || std::fs::read_to_string(&self.log).is_ok_and(|log| log.contains(CLEANER_PASS));
            if serving && cleaned {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{who} did not answer in {READY_TIMEOUT:?}; {}", self.log_tail()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The end of its log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("its log ({}) ends:\n{tail}", self.log.display())
    }

    /// Kills it (its store connections close with it) and waits until it
    /// is gone.
    pub(crate) async fn stop(mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().map_err(|e| format!("the demo: {e}"))? {
            return Err(format!("the demo died during the run ({status}); {}", self.log_tail()).into());
        }
        self.child.start_kill().map_err(|e| format!("cannot stop the demo: {e}"))?;
        self.child.wait().await.map_err(|e| format!("the demo: {e}"))?;
        Ok(())
    }
}
