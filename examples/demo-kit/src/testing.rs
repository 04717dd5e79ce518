//! The in-process backend the suites start a demo with (feature
//! `scenarios`): a memory store behind [`Flaky`] (to take it down), a 1 s
//! grace window, a 5 s freshness window, and the seeded accounts.
//!
//! An adapter's test binds a listener on an ephemeral port, serves its demo
//! app over [`Backend::engine`] and [`Backend::state`], trusting
//! [`CLIENT_IP_HEADER`] for the client IP, and answers a [`TestServer`]:
//!
//! ```ignore
//! async fn start() -> TestServer {
//!     let Backend { engine, state, store } = Backend::new();
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

use crate::DemoState;
use crate::accounts::Accounts;
use crate::config::{AUTH_COOKIE, SESSION_COOKIE};
use crate::scenarios::DemoServer;

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

/// The engine configuration of test servers: the demo's cookie names,
/// `Secure` on (as the demo's default), [`GRACE`].
pub fn config() -> Config {
    let built = Config::builder()
        .session_cookie_name(SESSION_COOKIE)
        .auth_cookie_name(AUTH_COOKIE)
        .grace_period(GRACE)
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
        let store = Arc::new(Flaky::new(MemoryStore::new()));
        let dyn_store: DynStore = store.clone();
        let state = DemoState { accounts: accounts(), fresh_for: FRESH };
        Self { engine: Expected::new(dyn_store, config()), state, store }
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
