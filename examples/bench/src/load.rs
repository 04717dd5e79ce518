//! The scenarios: N connections, each with its own cookie jar, driving a
//! running demo for a bounded time, every response checked.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use expected_demo_kit::{AUTH_COOKIE, DEMO_USERS, SESSION_COOKIE};
use tokio::task::JoinSet;

use crate::Result;
use crate::http::{Connection, Response};
use crate::stats::Latencies;

/// What the connections do, request after request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// Logged in once with a password, then `GET /api/me` with the session
    /// cookie (and the remember-me cookie, as a browser sends both): a
    /// session read.
    SessionHit,
    /// `GET /api/me` with the remember-me cookie alone: every request is a
    /// cookie login, which rotates the connection's token and opens a new
    /// session; the connection keeps the new remember-me cookie and drops
    /// the session cookie, so the next request logs in by cookie again.
    CookieLogin,
    /// A visitor's `PUT /api/session/n` (a JSON number, one more each time)
    /// with its session cookie: an anonymous session read and written.
    AnonWrite,
}

impl Scenario {
    /// Every scenario, in the table's order.
    pub(crate) const ALL: [Self; 3] = [Self::SessionHit, Self::CookieLogin, Self::AnonWrite];

    /// Whether its connections log in with a password first.
    fn logs_in(self) -> bool {
        matches!(self, Self::SessionHit | Self::CookieLogin)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SessionHit => "session-hit",
            Self::CookieLogin => "cookie-login",
            Self::AnonWrite => "anon-write",
        })
    }
}

/// What a scenario's connections talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The demo: a password login must set its remember-me cookie.
    Demo,
    /// A peer server measured beside it (`--peer`): any 2xx answer to the
    /// login that sets a cookie will do, and only session hits run.
    Peer,
}

/// The most connections a login scenario can use: each connection holds a
/// login of one of the demo's users, and the engine keeps at most 20 per
/// user (`Config::max_logins_per_user`), evicting the oldest.
pub(crate) fn max_login_connections() -> usize {
    let per_user = expected_core::Config::default().max_logins_per_user().map_or(usize::MAX, |n| n.get());
    per_user.saturating_mul(DEMO_USERS.len())
}

/// How long and how hard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// The demo's address.
    pub(crate) addr: SocketAddr,
    /// Concurrent connections.
    pub(crate) connections: usize,
    /// Requests before the measurement starts.
    pub(crate) warmup: Duration,
    /// How long the measurement lasts.
    pub(crate) measure: Duration,
}

/// What a scenario came to.
#[derive(Debug)]
pub(crate) struct Run {
    /// Requests sent after the set-up (warm-up and measurement): the
    /// denominator of the store's counters, read around them.
    pub(crate) requests: u64,
    /// Requests sent and answered inside the measurement window.
    pub(crate) measured: u64,
    /// The window, in seconds.
    pub(crate) seconds: f64,
    /// Latencies of the measured requests.
    pub(crate) latencies: Latencies,
    /// Requests whose answer was not the expected one, thefts apart.
    pub(crate) errors: u64,
    /// Cookie logins answered 401 `unexpected_token`: a replayed token,
    /// which must never happen here (each connection rotates its own chain).
    pub(crate) thefts: u64,
    /// The first failure, for the report.
    pub(crate) first_error: Option<String>,
    /// The CPU time the server watched ([`Prepared::run`]) used inside the
    /// measurement window; `None` unwatched or unreadable.
    pub(crate) server_cpu: Option<Duration>,
}

impl Run {
    /// An empty run whose measurement lasts `measure`.
    pub(crate) fn new(measure: Duration) -> Self {
        Self {
            requests: 0,
            measured: 0,
            seconds: measure.as_secs_f64(),
            latencies: Latencies::default(),
            errors: 0,
            thefts: 0,
            first_error: None,
            server_cpu: None,
        }
    }

    /// The watched server's CPU time per measured request, in µs.
    pub(crate) fn server_micros_per_request(&self) -> Option<f64> {
        crate::cpu::micros_per_request(self.server_cpu, self.measured)
    }

    /// Measured requests per second.
    pub(crate) fn per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.measured as f64 / self.seconds } else { 0.0 }
    }
}

/// One connection's tally.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    measured: u64,
    latencies: Vec<u32>,
    errors: u64,
    thefts: u64,
    first_error: Option<String>,
}

/// Why one request failed.
enum Failure {
    /// 401 `unexpected_token`: the engine saw a replayed token.
    Theft(String),
    /// Anything else.
    Wrong(String),
}

/// The connections of a scenario, set up and ready to run.
#[derive(Debug)]
pub(crate) struct Prepared {
    scenario: Scenario,
    load: Load,
    connections: Vec<Connection>,
}

/// Opens the connections of `scenario` to the demo at `load.addr` and sets
/// them up: a password login each for the login scenarios, spread over the
/// demo users.
pub(crate) async fn prepare(scenario: Scenario, load: Load) -> Result<Prepared> {
    prepare_for(Target::Demo, scenario, load).await
}

/// [`prepare`], for the connections to `target`.
pub(crate) async fn prepare_for(target: Target, scenario: Scenario, load: Load) -> Result<Prepared> {
    if target == Target::Peer && scenario != Scenario::SessionHit {
        return Err(format!("{scenario}: only session hits run beside a peer").into());
    }
    if scenario.logs_in() && load.connections > max_login_connections() {
        return Err(format!(
            "{scenario} with {} connections: the demo's {} users hold at most {} logins",
            load.connections,
            DEMO_USERS.len(),
            max_login_connections()
        )
        .into());
    }
    let mut set_up = JoinSet::new();
    for index in 0..load.connections {
        set_up.spawn(set_up_connection(target, scenario, load.addr, index));
    }
    let mut connections = Vec::with_capacity(load.connections);
    while let Some(joined) = set_up.join_next().await {
        connections.push(joined.map_err(|e| format!("a connection's set-up panicked: {e}"))??);
    }
    Ok(Prepared { scenario, load, connections })
}

impl Prepared {
    /// Runs every connection through the warm-up and the measurement, and
    /// reads the CPU time of the `server` process (its pid) at the
    /// window's two ends.
    pub(crate) async fn run(self, server: Option<u32>) -> Result<Run> {
        let Self { scenario, load, connections } = self;
        let measure_from = Instant::now() + load.warmup;
        let end = measure_from + load.measure;
        let mut running = JoinSet::new();
        for connection in connections {
            running.spawn(drive(scenario, connection, measure_from, end));
        }
        let watch = server.map(|pid| {
            tokio::spawn(async move {
                tokio::time::sleep_until(measure_from.into()).await;
                let from = crate::cpu::cpu_time(pid)?;
                tokio::time::sleep_until(end.into()).await;
                crate::cpu::cpu_time(pid)?.checked_sub(from)
            })
        });
        let mut run = Run::new(load.measure);
        let mut all = Vec::new();
        while let Some(joined) = running.join_next().await {
            let tally = joined.map_err(|e| format!("a connection panicked: {e}"))?;
            run.requests += tally.requests;
            run.measured += tally.measured;
            run.errors += tally.errors;
            run.thefts += tally.thefts;
            if run.first_error.is_none() {
                run.first_error = tally.first_error;
            }
            all.extend(tally.latencies);
        }
        run.latencies = Latencies::new(all);
        if let Some(watch) = watch {
            run.server_cpu = watch.await.map_err(|e| format!("the CPU reading panicked: {e}"))?;
        }
        Ok(run)
    }
}

/// A connection ready for `scenario`.
async fn set_up_connection(
    target: Target,
    scenario: Scenario,
    addr: SocketAddr,
    index: usize,
) -> Result<Connection> {
    let mut connection = Connection::open(addr).await?;
    if !scenario.logs_in() {
        return Ok(connection);
    }
    let (username, password) = DEMO_USERS[index % DEMO_USERS.len()];
    let body = format!(r#"{{"username":"{username}","password":"{password}","remember":true}}"#);
    // The demo hashes passwords on a bounded pool: a burst of logins may be
    // told to come back (429 with Retry-After, the pool busy). Successful
    // logins are never throttled.
    for _ in 0..20 {
        let response = connection.send("POST", "/api/login", Some(body.as_bytes())).await?;
        let logged_in = match target {
            Target::Demo => response.status == 200 && connection.jar.get(AUTH_COOKIE).is_some(),
            Target::Peer => (200..300).contains(&response.status) && !connection.jar.is_empty(),
        };
        match response.status {
            _ if logged_in => return Ok(connection),
            429 => tokio::time::sleep(Duration::from_millis(250)).await,
            status => {
                return Err(format!("login of {username}: {status} {}", response.text()).into());
            }
        }
    }
    Err(format!("login of {username}: still refused after 20 tries").into())
}

/// Sends requests until `end`, counting those inside `[measure_from, end]`.
/// A failed request ends the connection (a cookie login's chain is broken
/// after one), and counts.
async fn drive(scenario: Scenario, mut connection: Connection, measure_from: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut counter = 0u64;
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        counter += 1;
        let result = step(scenario, &mut connection, counter).await;
        let done = Instant::now();
        tally.requests += 1;
        match result {
            Ok(()) => {
                if started >= measure_from && done <= end {
                    tally.measured += 1;
                    let micros = done.duration_since(started).as_micros();
                    tally.latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            Err(failure) => {
                let message = match failure {
                    Failure::Theft(message) => {
                        tally.thefts += 1;
                        message
                    }
                    Failure::Wrong(message) => {
                        tally.errors += 1;
                        message
                    }
                };
                tally.first_error.get_or_insert(message);
                return tally;
            }
        }
    }
    if scenario == Scenario::AnonWrite && counter > 0 {
        // The writes really landed: the session holds the last one.
        tally.requests += 1;
        if let Err(Failure::Wrong(message) | Failure::Theft(message)) =
            check_last_write(&mut connection, counter).await
        {
            tally.errors += 1;
            tally.first_error.get_or_insert(message);
        }
    }
    tally
}

fn wrong(what: &str, response: &Response) -> Failure {
    Failure::Wrong(format!("{what}: {} {}", response.status, response.text()))
}

/// One request of `scenario`, checked.
async fn step(scenario: Scenario, connection: &mut Connection, counter: u64) -> Result<(), Failure> {
    let failed = |e: crate::Error| Failure::Wrong(e.to_string());
    match scenario {
        Scenario::SessionHit => {
            let response = connection.send("GET", "/api/me", None).await.map_err(failed)?;
            if response.status != 200 || !response.body_has(r#""via":"session""#) {
                return Err(wrong("session hit", &response));
            }
        }
        Scenario::CookieLogin => {
            connection.jar.remove(SESSION_COOKIE);
            let presented = connection.jar.get(AUTH_COOKIE).map(str::to_owned);
            let response = connection.send("GET", "/api/me", None).await.map_err(failed)?;
            if response.status == 401 && response.body_has("unexpected_token") {
                return Err(Failure::Theft(format!("cookie login: theft detected: {}", response.text())));
            }
            if response.status != 200 || !response.body_has(r#""via":"cookie""#) {
                return Err(wrong("cookie login", &response));
            }
            let rotated =
                connection.jar.get(AUTH_COOKIE).is_some_and(|now| Some(now) != presented.as_deref());
            let session = response.set.iter().any(|name| name == SESSION_COOKIE);
            if !rotated || !session {
                return Err(wrong("cookie login without a new remember-me and session cookie", &response));
            }
        }
        Scenario::AnonWrite => {
            let body = counter.to_string();
            let response =
                connection.send("PUT", "/api/session/n", Some(body.as_bytes())).await.map_err(failed)?;
            if response.status != 204 || connection.jar.get(SESSION_COOKIE).is_none() {
                return Err(wrong("anonymous session write", &response));
            }
        }
    }
    Ok(())
}

async fn check_last_write(connection: &mut Connection, last: u64) -> Result<(), Failure> {
    let response =
        connection.send("GET", "/api/session", None).await.map_err(|e| Failure::Wrong(e.to_string()))?;
    if response.status != 200 || !response.body_has(&format!(r#""n":{last}}}"#)) {
        return Err(wrong(&format!("the session does not hold the last write ({last})"), &response));
    }
    Ok(())
}
