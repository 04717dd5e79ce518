//! The measurement behind `docs/operating.md`: what one user's login and
//! session cost on each store, and what a cleaning pass costs. Ignored by
//! `cargo test`; run it with
//!
//! ```text
//! cargo xtask capacity [--users N]
//! ```
//!
//! (optimized, N = 10 000 by default, after starting the test servers), or
//! one store at a time with `cargo test --release -p expected-demo-kit --test
//! capacity -- --ignored --nocapture postgres`.
//!
//! Each store gets N users, each of whom logs in with "remember me" (one
//! login, one session) from a browser with a typical 101-byte `User-Agent`,
//! then comes back once by the remember-me cookie (the token rotates: the
//! login now also holds the previous token's digest and the sealed
//! successor, the steady state of a login in use). The sessions hold no
//! application data: add the JSON of yours. Then the space the store uses is
//! read the store's own way, and divided by N:
//!
//! - PostgreSQL: `pg_total_relation_size` of both tables (rows, indexes,
//!   TOAST), as written and after `VACUUM FULL` (a rotation leaves dead row
//!   versions until autovacuum reuses them);
//! - MariaDB: `DATA_LENGTH + INDEX_LENGTH` after `ANALYZE TABLE` (InnoDB's
//!   estimate, in 16 KiB pages);
//! - SQLite: the file's growth (`page_count × page_size`) after `VACUUM`;
//! - Redis: `MEMORY USAGE` of every key of the prefix (records and the
//!   indexes), and the growth of `used_memory`;
//! - the memory store: the growth of the process's resident set.
//!
//! The cleaning pass: N more users log in the same way under a configuration
//! whose logins and sessions expire after 2 s; 3 s later one
//! `Expected::clean` deletes them all, each session with its login (on Redis
//! the records have already gone by TTL, and cleaning only prunes the
//! indexes of its 1024 buckets), and its time is reported.
//!
//! Servers: `EXPECTED_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), `EXPECTED_TEST_MYSQL_URL`
//! (`mysql://root@127.0.0.1:3306/test`), `EXPECTED_TEST_REDIS_URL`
//! (`redis://127.0.0.1:6379`). Every table and key it makes has a prefix of
//! its own and is dropped at the end.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use expected_core::{Client, Config, CookieKind, Expected, Outcome, Presented, Store, Username};
use expected_store_memory::MemoryStore;
use expected_store_redis::RedisStore;
use expected_store_redis::redis;
use expected_store_sqlx::sqlx::{self, Row as _};
use expected_store_sqlx::{MySqlStore, PgStore, SqliteStore, Tables};

/// A desktop Chrome's `User-Agent`: what the login records of its client.
const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// How many requests run at once while filling a store.
const CONCURRENCY: usize = 32;

fn users() -> u32 {
    std::env::var("CAPACITY_USERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// A prefix no other run shares.
fn prefix() -> String {
    format!("capacity_{}_", std::process::id())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Logins and sessions that expire two seconds after they are made.
fn short_lived() -> Config {
    let second = Duration::from_secs(1);
    Config::builder()
        .grace_period(Duration::ZERO)
        .session_idle_timeout(second)
        .session_absolute_timeout(second)
        .cookie_max_age(2 * second)
        .login_lifetime(2 * second)
        .build()
        .unwrap()
}

/// User `i`'s password login with "remember me", then one visit by the
/// remember-me cookie alone (a rotation).
async fn log_in_and_come_back<S: Store>(engine: &Expected<S>, i: u32) {
    let username = Username::new(format!("user{i:06}")).unwrap();
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 250) as u8));
    let client = Client { ip: Some(ip), user_agent: Some(USER_AGENT) };
    let login = Presented { client, ..Presented::default() };
    let registration = engine.register(&username, true, &login).await.unwrap();
    let auth = registration.cookies.iter().find(|c| c.kind() == CookieKind::Auth).unwrap();
    let back = Presented { auth: auth.value().into(), client, ..Presented::default() };
    let outcome = engine.authenticate(&back).await.outcome;
    assert!(matches!(outcome, Outcome::CookieLogin(_)), "user {i}: {outcome:?}");
}

/// Users `from..to` log in and come back, [`CONCURRENCY`] at a time.
async fn fill<S: Store>(engine: &Arc<Expected<S>>, from: u32, to: u32) -> Duration {
    let started = Instant::now();
    let mut next = from;
    while next < to {
        let batch = (next..to).take(CONCURRENCY).map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move { log_in_and_come_back(&engine, i).await })
        });
        let handles: Vec<_> = batch.collect();
        next += handles.len() as u32;
        for handle in handles {
            handle.await.unwrap();
        }
    }
    started.elapsed()
}

/// The cleaning pass over `n` expired users' logins and sessions (users
/// `n..2n`, under [`short_lived`]), and the time it took.
async fn clean_expired<S: Store>(store: S, n: u32) -> (expected_core::Cleaned, Duration) {
    let engine = Arc::new(Expected::new(store, short_lived()));
    fill(&engine, n, 2 * n).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let cleaned = engine.clean().await.unwrap();
    (cleaned, started.elapsed())
}

fn per_user(bytes: i64, n: u32) -> String {
    format!("{:.0}", bytes as f64 / f64::from(n))
}

/// Users `0..n` log in and come back on `store`, under the default
/// configuration; says how long it took.
async fn fill_default<S: Store + Clone>(name: &str, store: &S, n: u32) {
    let engine = Arc::new(Expected::new(store.clone(), Config::default()));
    let took = fill(&engine, 0, n).await;
    println!("{name}: {n} users logged in and back in {:.1} s", took.as_secs_f64());
}

/// The cleaning pass of [`clean_expired`], reported; on every store but
/// Redis (where TTL has dropped the records already) it must have deleted
/// every expired login.
async fn clean_and_report<S: Store>(name: &str, store: S, n: u32) {
    let (cleaned, took) = clean_expired(store, n).await;
    println!(
        "{name}: cleaning {n} expired users: {} logins (and their sessions), {} lone sessions deleted in {:.0} ms ({:.1} µs per user)",
        cleaned.logins,
        cleaned.sessions,
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e6 / f64::from(n),
    );
    if name != "redis" {
        assert_eq!(cleaned.logins, u64::from(n), "every expired login, its session with it");
    }
}

#[test]
#[ignore = "a measurement: cargo xtask capacity"]
fn postgres() {
    runtime().block_on(async {
        let n = users();
        let url = env_or("EXPECTED_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect(&url).await.unwrap();
        let tables = Tables::with_prefix(&prefix()).unwrap();
        let store = PgStore::with_tables(pool.clone(), tables.clone());
        store.migrate().await.unwrap();
        fill_default("postgres", &store, n).await;
        let size = async |table: &str| -> i64 {
            sqlx::query("SELECT pg_total_relation_size($1::regclass)")
                .bind(table)
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0)
        };
        let (logins, sessions) = (size(tables.logins()).await, size(tables.sessions()).await);
        for table in [tables.logins(), tables.sessions()] {
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM FULL {table}"))).execute(&pool).await.unwrap();
        }
        let (vacuumed_logins, vacuumed_sessions) =
            (size(tables.logins()).await, size(tables.sessions()).await);
        println!(
            "postgres: per user, logins {} B, sessions {} B as written; {} B and {} B after VACUUM FULL",
            per_user(logins, n),
            per_user(sessions, n),
            per_user(vacuumed_logins, n),
            per_user(vacuumed_sessions, n),
        );
        clean_and_report("postgres", store, n).await;
        for table in [tables.logins(), tables.sessions(), tables.migrations_table()] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table} CASCADE")))
                .execute(&pool)
                .await
                .unwrap();
        }
    });
}

#[test]
#[ignore = "a measurement: cargo xtask capacity"]
fn mariadb() {
    runtime().block_on(async {
        let n = users();
        let url = env_or("EXPECTED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
        let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(8).connect(&url).await.unwrap();
        let tables = Tables::with_prefix(&prefix()).unwrap();
        let store = MySqlStore::with_tables(pool.clone(), tables.clone());
        store.migrate().await.unwrap();
        fill_default("mariadb", &store, n).await;
        let mut sizes = Vec::new();
        for table in [tables.logins(), tables.sessions()] {
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE TABLE {table}"))).execute(&pool).await.unwrap();
            let row = sqlx::query(
                "SELECT CAST(DATA_LENGTH + INDEX_LENGTH AS SIGNED) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            )
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
            sizes.push(row.get::<i64, _>(0));
        }
        println!(
            "mariadb: per user, logins {} B, sessions {} B (InnoDB estimate)",
            per_user(sizes[0], n),
            per_user(sizes[1], n)
        );
        clean_and_report("mariadb", store, n).await;
        for table in [tables.logins(), tables.sessions(), tables.migrations_table()] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}"))).execute(&pool).await.unwrap();
        }
    });
}

#[test]
#[ignore = "a measurement: cargo xtask capacity"]
fn sqlite() {
    runtime().block_on(async {
        let n = users();
        let dir = std::env::temp_dir().join(format!("{}sqlite", prefix()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("capacity.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let bytes = async |store: &SqliteStore| -> i64 {
            sqlx::query("VACUUM").execute(store.pool()).await.unwrap();
            let pages: i64 = sqlx::query("PRAGMA page_count").fetch_one(store.pool()).await.unwrap().get(0);
            let size: i64 = sqlx::query("PRAGMA page_size").fetch_one(store.pool()).await.unwrap().get(0);
            pages * size
        };
        let empty = bytes(&store).await;
        fill_default("sqlite", &store, n).await;
        let full = bytes(&store).await;
        println!(
            "sqlite: per user, logins and sessions {} B (file growth after VACUUM)",
            per_user(full - empty, n)
        );
        clean_and_report("sqlite", store, n).await;
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// Every key matching `pattern`.
async fn redis_scan(connection: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let (mut cursor, mut keys) = (0_u64, Vec::new());
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return keys;
        }
    }
}

async fn used_memory(connection: &mut redis::aio::MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query_async(connection).await.unwrap();
    info.lines().find_map(|line| line.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap()
}

#[test]
#[ignore = "a measurement: cargo xtask capacity"]
fn redis() {
    runtime().block_on(async {
        let n = users();
        let url = env_or("EXPECTED_TEST_REDIS_URL", "redis://127.0.0.1:6379");
        let mut connection =
            redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let prefix = format!("capacity_{}", std::process::id());
        let pattern = format!("{prefix}:*");
        let store = RedisStore::builder().prefix(prefix.as_str()).connect(url.as_str()).await.unwrap();
        let before = used_memory(&mut connection).await;
        fill_default("redis", &store, n).await;
        let after = used_memory(&mut connection).await;
        let keys = redis_scan(&mut connection, &pattern).await;
        // By kind: `P:{B}:l:…` logins, `P:{B}:s:…` sessions, the rest indexes.
        let (mut logins, mut sessions, mut indexes) = (0_i64, 0_i64, 0_i64);
        for key in &keys {
            let usage: Option<i64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut connection)
                .await
                .unwrap();
            let kind = key.split_once("}:").and_then(|(_, rest)| rest.get(..2));
            match kind {
                Some("l:") => logins += usage.unwrap_or(0),
                Some("s:") => sessions += usage.unwrap_or(0),
                _ => indexes += usage.unwrap_or(0),
            }
        }
        println!(
            "redis: per user, {:.1} keys, {} B by MEMORY USAGE (login {} B, session {} B, indexes {} B), {} B of used_memory growth",
            keys.len() as f64 / f64::from(n),
            per_user(logins + sessions + indexes, n),
            per_user(logins, n),
            per_user(sessions, n),
            per_user(indexes, n),
            per_user(after - before, n)
        );
        clean_and_report("redis", store, n).await;
        for batch in redis_scan(&mut connection, &pattern).await.chunks(1000) {
            let () = redis::cmd("DEL").arg(batch).query_async(&mut connection).await.unwrap();
        }
    });
}

/// The process's resident set, from `/proc/self/status`.
fn resident_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: i64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

#[test]
#[ignore = "a measurement: cargo xtask capacity"]
fn memory() {
    runtime().block_on(async {
        let n = users();
        let engine = Arc::new(Expected::new(MemoryStore::new(), Config::default()));
        // Warm up the runtime and the allocator on users that stay.
        fill(&engine, 0, 100).await;
        let before = resident_bytes();
        let took = fill(&engine, 100, 100 + n).await;
        let after = resident_bytes();
        println!("memory: {n} users logged in and back in {:.1} s", took.as_secs_f64());
        println!("memory: per user, {} B of resident set growth", per_user(after - before, n));
        clean_and_report("memory", MemoryStore::new(), n).await;
    });
}
