//! Chaos under load: the axum demo over PostgreSQL (a database of its own)
//! and over Redis (a private `redis-server` on a free port), 32 browsers
//! (each its own cookie jar) making remember-me cookie logins in a loop —
//! each round drops the session cookie, so every request rotates the token —
//! while the store is paused and restarted under them.
//!
//! - PostgreSQL, pause: the test database stops taking connections
//!   (`ALTER DATABASE … ALLOW_CONNECTIONS false`) and its backends are
//!   terminated, for [`OUTAGE`]; restart: its backends are terminated again
//!   (every pooled connection dies at once, as in a server restart). The
//!   shared server itself is never restarted: other tests use it.
//! - Redis, pause: SIGSTOP, then SIGCONT after [`OUTAGE`]; restart: SIGKILL
//!   and a new process on the same port and append-only file.
//!
//! Asserted: every answer is a 200 or, during an outage and a short
//! recovery after it, a 503; never a theft (`unexpected_token`) nor a lost
//! login; and every chain is logged in by its cookie afterwards. Loopback
//! only, bounded in time and requests. Without a server this fails under
//! `CI`, and is skipped loudly otherwise.

#![allow(clippy::print_stderr)]

#[path = "../examples/demo/app.rs"]
mod app;

#[allow(dead_code, unreachable_pub)]
#[path = "../../expected-store-redis/tests/support/server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use expected_axum::ExpectedLayer;
use expected_core::{DynStore, Expected, TokenSource as _};
use expected_demo_kit::scenarios::{Client, Jar, ServedAt};
use expected_demo_kit::{DEMO_USERS, DemoConfig, DemoState, ci, testing};
use expected_store_redis::RedisStore;
use expected_store_sqlx::PgStore;
use expected_store_sqlx::sqlx::postgres::PgPoolOptions;
use expected_store_sqlx::sqlx::{self, Connection as _, PgConnection};
use redis_server::{RedisProcess, free_port};

/// Concurrent browsers.
const CHAINS: usize = 32;
/// How long each outage lasts.
const OUTAGE: Duration = Duration::from_secs(3);
/// Steady load before, between and after the outages.
const STEADY: Duration = Duration::from_secs(1);
/// After an outage ends, how long 503s are still fine (reconnecting).
const RECOVERY: Duration = Duration::from_secs(3);
/// Pause between two requests of a chain: 32 chains, at most ~640 req/s.
const THINK: Duration = Duration::from_millis(50);
/// The most requests one chain makes.
const MAX_REQUESTS: u64 = 2_000;

fn postgres_url() -> String {
    std::env::var("EXPECTED_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn skip(test: &str, why: &str) {
    assert!(!ci(), "{test}: the server is unreachable and CI is set, so this is a failure: {why}");
    eprintln!("\n!!! SKIPPED {test}: {why}\n");
}

/// The demo's own engine settings (grace 30 s, cookie names, …), as
/// `EXPECTED_*` left unset gives them.
fn demo_config() -> expected_core::Config {
    match DemoConfig::from_lookup(|_| None) {
        Ok(config) => config.engine,
        Err(error) => panic!("the demo's defaults are invalid: {error}"),
    }
}

/// Serves the demo app over `store` on an ephemeral loopback port.
async fn serve(store: DynStore) -> ServedAt {
    let engine = Expected::new(store, demo_config());
    let passwords = std::sync::Arc::new(expected_demo_kit::Passwords::new(testing::accounts()));
    let metrics = expected_demo_kit::Metrics::install();
    let state = DemoState { accounts: testing::accounts(), passwords, fresh_for: testing::FRESH, metrics };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let service =
        app::app(ExpectedLayer::new(engine), state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    ServedAt(format!("http://{addr}"))
}

/// When outages were on: 503s are fine from a start to its end plus
/// [`RECOVERY`].
#[derive(Default)]
struct Windows {
    /// Milliseconds since the run started, `(from, to)`; `to` is `u64::MAX`
    /// while the outage lasts.
    spans: Mutex<Vec<(u64, u64)>>,
}

impl Windows {
    fn open(&self, at: u64) {
        self.spans.lock().expect("lock").push((at, u64::MAX));
    }
    fn close(&self, at: u64) {
        if let Some(last) = self.spans.lock().expect("lock").last_mut() {
            last.1 = at + RECOVERY.as_millis() as u64;
        }
    }
    fn covers(&self, from: u64, to: u64) -> bool {
        self.spans.lock().expect("lock").iter().any(|&(start, end)| to >= start && from <= end)
    }
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    cookie: AtomicU64,
    grace: AtomicU64,
    unavailable: AtomicU64,
    thefts: AtomicU64,
    unexpected: AtomicU64,
    slowest_ms: AtomicU64,
}

impl Tally {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

/// Logs browser `index` in with "remember me" (one of the demo users).
async fn login(client: Client, index: usize) -> Jar {
    let (username, password) = DEMO_USERS[index % DEMO_USERS.len()];
    let mut jar = Jar::with_agent(&format!("chaos-browser-{index}"));
    let body = serde_json::json!({ "username": username, "password": password, "remember": true });
    let reply = client.post_json("/api/login", &jar, &body).await;
    assert_eq!(reply.status.as_u16(), 200, "chain {index}: login: {}", reply.text());
    jar.apply(&reply);
    assert!(jar.remember.is_some(), "chain {index}: no remember-me cookie");
    jar
}

/// What the chains of one run share.
struct Run {
    client: Client,
    started: Instant,
    stop: AtomicBool,
    windows: Windows,
    tally: Tally,
    problems: Mutex<Vec<String>>,
}

impl Run {
    fn millis(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn problem(&self, what: String) {
        self.problems.lock().expect("lock").push(what);
    }
}

/// One browser, logged in: cookie logins until the run stops, each without
/// the session cookie.
async fn chain(index: usize, mut jar: Jar, run: Arc<Run>) -> Jar {
    let tally = &run.tally;
    let mut sent = 0;
    while !run.stop.load(Ordering::SeqCst) && sent < MAX_REQUESTS {
        sent += 1;
        let request = jar.without_session();
        let from = run.millis();
        let reply = run.client.get("/api/me", &request).await;
        let to = run.millis();
        tally.requests.fetch_add(1, Ordering::SeqCst);
        tally.slowest_ms.fetch_max(to - from, Ordering::SeqCst);
        match reply.status.as_u16() {
            200 => {
                let me: expected_demo_kit::api::Me = reply.json();
                if serde_json::to_value(me.via).unwrap_or_default() == "grace" {
                    tally.grace.fetch_add(1, Ordering::SeqCst);
                } else {
                    tally.cookie.fetch_add(1, Ordering::SeqCst);
                }
                jar = request;
                jar.apply(&reply);
            }
            503 => {
                tally.unavailable.fetch_add(1, Ordering::SeqCst);
                if !reply.set_cookies.is_empty() {
                    run.problem(format!("chain {index}: a 503 set cookies"));
                }
                if !run.windows.covers(from, to) {
                    run.problem(format!("chain {index}: a 503 outside an outage at {from} ms"));
                }
            }
            status => {
                let code = reply.json::<expected_demo_kit::api::ErrorBody>().error;
                if code == expected_demo_kit::api::error::UNEXPECTED_TOKEN {
                    tally.thefts.fetch_add(1, Ordering::SeqCst);
                } else {
                    tally.unexpected.fetch_add(1, Ordering::SeqCst);
                }
                run.problem(format!("chain {index}: {status} {code} at {from} ms"));
                // This browser is logged out: nothing more to learn from it.
                return jar;
            }
        }
        tokio::time::sleep(THINK).await;
    }
    jar
}

/// The outages one store goes through.
trait Chaos {
    fn name(&self) -> &'static str;
    /// Takes the store away for [`OUTAGE`] without losing anything.
    async fn pause(&mut self);
    /// Drops every connection to the store, as a restart does.
    async fn restart(&mut self);
}

/// One store at a time: the two tests share two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(chaos: &mut impl Chaos, store: DynStore) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = serve(store).await;
    let client = Client::new(&server);
    // Password logins first (Argon2, not what is under test), four at a time.
    let mut jars = Vec::new();
    for batch in (0..CHAINS).collect::<Vec<_>>().chunks(4) {
        let logins: Vec<_> = batch.iter().map(|&index| tokio::spawn(login(client.clone(), index))).collect();
        for handle in logins {
            jars.push(handle.await.expect("a login panicked"));
        }
    }
    let run = Arc::new(Run {
        client: client.clone(),
        started: Instant::now(),
        stop: AtomicBool::new(false),
        windows: Windows::default(),
        tally: Tally::default(),
        problems: Mutex::new(Vec::new()),
    });
    let chains: Vec<_> = jars
        .into_iter()
        .enumerate()
        .map(|(index, jar)| tokio::spawn(chain(index, jar, run.clone())))
        .collect();
    tokio::time::sleep(STEADY).await;
    run.windows.open(run.millis());
    chaos.pause().await;
    run.windows.close(run.millis());
    tokio::time::sleep(STEADY).await;
    run.windows.open(run.millis());
    chaos.restart().await;
    run.windows.close(run.millis());
    tokio::time::sleep(RECOVERY).await;
    run.stop.store(true, Ordering::SeqCst);
    let mut jars = Vec::new();
    for handle in chains {
        jars.push(handle.await.expect("a chain panicked"));
    }
    // Afterwards, every browser is logged in by its remember-me cookie.
    let mut logged_in = 0;
    for (index, jar) in jars.iter().enumerate() {
        let reply = client.get("/api/me", &jar.without_session()).await;
        if reply.status.as_u16() == 200 {
            logged_in += 1;
        } else {
            run.problem(format!("chain {index} afterwards: {} {}", reply.status, reply.text()));
        }
    }
    let t = &run.tally;
    eprintln!(
        "chaos {}: {CHAINS} chains, {} requests in {:.1} s: {} cookie logins, {} grace, {} × 503, \
         {} thefts, {} other failures, slowest {} ms; {logged_in}/{CHAINS} logged in afterwards",
        chaos.name(),
        Tally::get(&t.requests),
        run.started.elapsed().as_secs_f64(),
        Tally::get(&t.cookie),
        Tally::get(&t.grace),
        Tally::get(&t.unavailable),
        Tally::get(&t.thefts),
        Tally::get(&t.unexpected),
        Tally::get(&t.slowest_ms),
    );
    let problems = run.problems.lock().expect("lock");
    assert!(problems.is_empty(), "{}: {} problems:\n{}", chaos.name(), problems.len(), problems.join("\n"));
    assert_eq!(Tally::get(&t.thefts), 0);
    assert!(Tally::get(&t.unavailable) > 0, "{}: the outages were never seen", chaos.name());
    assert_eq!(logged_in, CHAINS);
}

// ------------------------------------------------------------ PostgreSQL

async fn admin_sql(admin: &mut PgConnection, statement: &str) {
    let query = sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()));
    if let Err(error) = query.execute(admin).await {
        panic!("{statement}: {error}");
    }
}

struct Postgres {
    admin: PgConnection,
    database: String,
}

impl Postgres {
    async fn sql(&mut self, statement: &str) {
        admin_sql(&mut self.admin, statement).await;
    }

    async fn terminate(&mut self) {
        let statement = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.database
        );
        self.sql(&statement).await;
    }
}

impl Chaos for Postgres {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }
    async fn pause(&mut self) {
        self.sql(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.database)).await;
        self.terminate().await;
        tokio::time::sleep(OUTAGE).await;
        self.sql(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.database)).await;
    }
    async fn restart(&mut self) {
        self.terminate().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_logins_survive_postgres_outages() {
    let url = postgres_url();
    let mut admin = match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url)).await {
        Ok(Ok(admin)) => admin,
        Ok(Err(error)) => return skip("cookie_logins_survive_postgres_outages", &format!("{url}: {error}")),
        Err(_) => return skip("cookie_logins_survive_postgres_outages", &format!("{url}: timed out")),
    };
    let database = format!("expected_chaos_{}", expected_core::ChaChaTokens::from_os().serial().to_base64())
        .to_ascii_lowercase()
        .replace('-', "_");
    admin_sql(&mut admin, &format!("CREATE DATABASE {database}")).await;
    let _dropped = DropDatabase { admin_url: url.clone(), database: database.clone() };
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    let db_url = format!("{base}/{database}");
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&db_url)
        .await
        .expect("connect to the test database");
    let store = PgStore::new(pool.clone());
    store.migrate().await.expect("migrate");
    let mut chaos = Postgres { admin, database };
    run(&mut chaos, Arc::new(store)).await;
    pool.close().await;
}

/// Drops the test database when the test ends, passed or failed.
struct DropDatabase {
    admin_url: String,
    database: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (url, statement) =
            (self.admin_url.clone(), format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database));
        // A runtime of its own, on a thread of its own: this may run inside
        // the test's runtime, while it unwinds.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&url).await.map_err(std::io::Error::other)?;
                let query = sqlx::raw_sql(sqlx::AssertSqlSafe(statement));
                query.execute(&mut admin).await.map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the chaos test's database {}", self.database);
        }
    }
}

// ------------------------------------------------------------ Redis

struct Redis {
    server: RedisProcess,
}

impl Chaos for Redis {
    fn name(&self) -> &'static str {
        "Redis"
    }
    async fn pause(&mut self) {
        self.server.signal("STOP").expect("SIGSTOP");
        tokio::time::sleep(OUTAGE).await;
        self.server.signal("CONT").expect("SIGCONT");
    }
    async fn restart(&mut self) {
        let server = &mut self.server;
        tokio::task::block_in_place(|| server.restart()).expect("restart redis-server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_logins_survive_redis_outages() {
    let started = tokio::task::spawn_blocking(|| {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("expected-chaos-redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        // Append-only, fsync on every write: a restart loses nothing.
        RedisProcess::start(port, &dir, &["--appendonly", "yes", "--appendfsync", "always"])
    })
    .await
    .expect("spawn_blocking");
    let server = match started {
        Ok(server) => server,
        Err(why) => return skip("cookie_logins_survive_redis_outages", &why),
    };
    let store = RedisStore::builder()
        .prefix("expected-chaos")
        .response_timeout(Some(Duration::from_secs(2)))
        .connection_timeout(Duration::from_millis(500))
        .reconnect_retries(1)
        .connect(server.url())
        .await
        .expect("connect to the private redis-server");
    run(&mut Redis { server }, Arc::new(store)).await;
}
