//! What the memory store holds per remembered login: registrations on the
//! engine over a `MemoryStore`, the process's resident memory before and
//! after.
//!
//! Each registration is a password login with "remember me" of a user of
//! its own (a 24-byte username), from a client with a 71-byte `User-Agent`
//! and an IPv4 address: one login record and its session, as the store keeps
//! them, with everything the store's maps add around them (keys, buckets,
//! the allocator's overhead), which is what RSS sees and what a deployment
//! pays.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use expected_core::{Client, Config, Expected, Presented, Username};
use expected_store_memory::MemoryStore;

use crate::Result;
use crate::http::USER_AGENT;

/// Registrations measured without `--logins`.
pub(crate) const DEFAULT_LOGINS: usize = 200_000;

/// The figures of one run.
#[derive(Debug)]
pub(crate) struct Figures {
    /// Registrations made.
    pub(crate) logins: usize,
    /// The username's length, in bytes.
    pub(crate) username_bytes: usize,
    /// Resident memory before and after, in bytes.
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
    /// What the store then holds: (logins, sessions).
    pub(crate) held: (usize, usize),
    /// How long the registrations took, in seconds.
    pub(crate) seconds: f64,
}

impl Figures {
    /// Resident bytes per login and its session.
    pub(crate) fn bytes_per_login(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.logins.max(1) as f64
    }

    /// The report, as lines.
    pub(crate) fn report(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "memory store: {} registrations (remember me; {}-byte usernames, {}-byte user agent, IPv4) in {:.1} s",
            self.logins,
            self.username_bytes,
            USER_AGENT.len(),
            self.seconds
        );
        let _ = writeln!(text, "held: {} logins, {} sessions", self.held.0, self.held.1);
        let _ = writeln!(
            text,
            "RSS: {:.1} MiB before, {:.1} MiB after",
            self.rss_before as f64 / 1_048_576.0,
            self.rss_after as f64 / 1_048_576.0
        );
        let _ = writeln!(text, "bytes per login with its session: {:.0}", self.bytes_per_login());
        text
    }
}

/// The process's resident set size, in bytes (`VmRSS` of
/// `/proc/self/status`).
fn rss() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    let line =
        status.lines().find(|line| line.starts_with("VmRSS:")).ok_or("no VmRSS in /proc/self/status")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|_| format!("cannot read {line:?}"))?;
    Ok(kib * 1024)
}

/// Registers `logins` users on a fresh engine over a memory store.
pub(crate) async fn run(logins: usize) -> Result<Figures> {
    let engine = Expected::new(MemoryStore::new(), Config::default());
    let client = Client { ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))), user_agent: Some(USER_AGENT) };
    let presented = Presented { client, ..Presented::default() };
    let name = |i: usize| format!("bench-user-{i:013}");
    // One registration first, so that what the engine allocates once is not
    // counted.
    let warm = Username::new("bench-warm-up").map_err(|e| format!("username: {e}"))?;
    let _registered = engine.register(&warm, true, &presented).await.map_err(|e| format!("register: {e}"))?;
    let rss_before = rss()?;
    let started = Instant::now();
    for i in 0..logins {
        let username = Username::new(name(i)).map_err(|e| format!("username: {e}"))?;
        let _registered =
            engine.register(&username, true, &presented).await.map_err(|e| format!("register: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_after = rss()?;
    let held = engine.store().len();
    let expected = (logins + 1, logins + 1);
    if held != expected {
        return Err(format!("the store holds {held:?} (logins, sessions), not {expected:?}").into());
    }
    Ok(Figures { logins, username_bytes: name(0).len(), rss_before, rss_after, held, seconds })
}
