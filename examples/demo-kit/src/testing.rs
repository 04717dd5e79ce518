//! The in-process backend the suites start a demo with (feature
//! `scenarios`): a memory store behind [`Flaky`] (to take it down), a 1 s
//! grace window, a 5 s freshness window, the seeded accounts, and the
//! process's Prometheus recorder ([`Metrics::install`]) for `GET /metrics`.
//!
//! An adapter's test binds a listener on an ephemeral port, serves its demo
//! app over [`Backend::engine`] and [`Backend::state`] of the backend it is
//! given (the suite picks it per scenario: [`Backend::new`], or
//! [`Backend::with_cookie_domain`]), trusting [`CLIENT_IP_HEADER`] for the
//! client IP, and answers a [`TestServer`]:
//!
//! ```ignore
//! async fn start(backend: Backend) -> TestServer {
//!     let Backend { engine, state, store } = backend;
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
//!     let addr = listener.local_addr().expect("address");
//!     tokio::spawn(serve(listener, app(engine, state)));
//!     TestServer::new(addr, store)
//! }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use expected_conformance::Flaky;
use expected_core::{Config, DynStore, Expected};
use expected_store_memory::MemoryStore;

use crate::accounts::{Accounts, Passwords};
use crate::config::{AUTH_COOKIE, SESSION_COOKIE};
use crate::scenarios::DemoServer;
use crate::{DemoState, Metrics};

/// The grace window of test servers: short, so that a theft-after-grace
/// scenario sleeps about a second, not thirty.
pub const GRACE: Duration = Duration::from_secs(1);

/// The header test servers take the client IP from (set it with the
/// adapter's `trusted_client_ip_header`): a scenario sends it to play clients
/// on different networks from one loopback socket
/// ([`Jar::ip`](crate::scenarios::Jar::ip)). A real deployment trusts it only
/// behind its own proxy.
pub const CLIENT_IP_HEADER: &str = "x-forwarded-for";

/// The freshness window of test servers: short, so that a scenario can wait
/// for a password to go stale, long enough for a login and the requests
/// after it on a busy machine.
pub const FRESH: Duration = Duration::from_secs(5);

/// The cookie `Domain` of [`config_with_cookie_domain`]. The scenarios'
/// hand-made jars do not match domains against hosts, so any domain serves;
/// `.test` is reserved (RFC 6761), so this one names nothing real.
pub const COOKIE_DOMAIN: &str = "demo.test";

/// The engine configuration of test servers: the demo's cookie names,
/// `Secure` on (as the demo's default), [`GRACE`], host-only cookies.
pub fn config() -> Config {
    build(None)
}

/// [`config`] with the cookie `Domain` [`COOKIE_DOMAIN`]: a deployment after
/// the "Domain change" (`EXPECTED_COOKIE_DOMAIN`).
pub fn config_with_cookie_domain() -> Config {
    build(Some(COOKIE_DOMAIN))
}

fn build(domain: Option<&str>) -> Config {
    let built = Config::builder()
        .session_cookie_name(SESSION_COOKIE)
        .auth_cookie_name(AUTH_COOKIE)
        .grace_period(GRACE)
        .domain(domain.map(str::to_owned))
        .build();
    match built {
        Ok(config) => config,
        Err(error) => panic!("the test configuration is invalid: {error}"),
    }
}

/// The seeded accounts, hashed once per test process and shared.
pub fn accounts() -> Arc<Accounts> {
    static ACCOUNTS: OnceLock<Arc<Accounts>> = OnceLock::new();
    ACCOUNTS
        .get_or_init(|| match Accounts::seeded() {
            Ok(accounts) => Arc::new(accounts),
            Err(error) => panic!("cannot seed the demo accounts: {error}"),
        })
        .clone()
}

/// What a test server is made of.
#[derive(Debug)]
pub struct Backend {
    /// The engine over the store, for the demo's layer or middleware.
    pub engine: Expected<DynStore>,
    /// The seeded accounts and [`FRESH`], for the demo's handlers.
    pub state: DemoState,
    /// The store, to take down and bring back.
    pub store: Arc<Flaky<MemoryStore>>,
}

impl Backend {
    /// A fresh memory store behind [`Flaky`], [`config`], [`accounts`],
    /// [`FRESH`].
    pub fn new() -> Self {
        Self::with_config(config())
    }

    /// [`Backend::new`] with [`config_with_cookie_domain`]: the scenarios
    /// of a deployment whose cookies carry a `Domain`.
    pub fn with_cookie_domain() -> Self {
        Self::with_config(config_with_cookie_domain())
    }

    /// [`Backend::new`] with the engine configuration `config`.
    pub fn with_config(config: Config) -> Self {
        let store = Arc::new(Flaky::new(MemoryStore::new()));
        let dyn_store: DynStore = store.clone();
        // A throttle per server: scenarios running side by side in one
        // process must not count each other's failures.
        let passwords = Arc::new(Passwords::new(accounts()));
        // The process's one recorder: every server of a test binary counts
        // into it (`metrics_count_a_theft_and_an_outage` runs alone in its
        // binary for exact counts).
        let metrics = Metrics::install();
        let state = DemoState { accounts: accounts(), passwords, fresh_for: FRESH, metrics };
        Self { engine: Expected::new(dyn_store, config), state, store }
    }
}

impl Default for Backend {
    fn default() -> Self {
        Self::new()
    }
}

/// A demo served in-process at `addr` over a [`Backend`].
#[derive(Debug, Clone)]
pub struct TestServer {
    base_url: String,
    store: Arc<Flaky<MemoryStore>>,
}

impl TestServer {
    /// The server listening on `addr` over `store`.
    pub fn new(addr: SocketAddr, store: Arc<Flaky<MemoryStore>>) -> Self {
        Self { base_url: format!("http://{addr}"), store }
    }
}

impl DemoServer for TestServer {
    fn base_url(&self) -> String {
        self.base_url.clone()
    }

    fn set_store_down(&self, down: bool) {
        self.store.set_down(down);
    }

    fn grace_period(&self) -> Duration {
        GRACE
    }

    fn fresh_for(&self) -> Duration {
        FRESH
    }
}
