//! The raw reference: what the store itself can do of a cookie login, with
//! no HTTP, no adapter and no engine around it.
//!
//! A tight loop of exactly the store call a cookie login with a current
//! token makes (the engine's `cookie_login`: `rotate_current` with the
//! rotation `protocol::current_rotation` plans), each rotating the loop's own
//! chain, on the store's own code, hence its statements and durability
//! settings (SQLite in WAL with `synchronous = FULL`, PostgreSQL and
//! MariaDB as the server is configured, the same server the demo used). A
//! SQL store runs it on one connection by default (one task on the store's
//! pool: the store's rate for a single stream of commits); `sql_tasks`
//! more run that many on the store's pool (sqlx's default, at most 10
//! connections, as in the demo). Redis runs it from `connections` tasks on
//! the store's one multiplexed connection, as the demo uses it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use expected_core::store::{CurrentRotated, Inserted};
use expected_core::time::OffsetDateTime;
use expected_core::{ClientMeta, Config, OsTokens, SessionData, Store, TokenSource as _, Username, protocol};
use expected_store_redis::RedisStore;
use expected_store_sqlx::{MySqlStore, PgStore, SqliteStore};
use tokio::task::JoinSet;

use crate::Result;
use crate::http::USER_AGENT;
use crate::load::Run;
use crate::stats::Latencies;
use crate::stores::StoreKind;

/// The Redis key prefix of the reference's records (the demo's are under
/// `expected-demo`).
const REDIS_PREFIX: &str = "expected-bench-reference";

/// Runs the reference on the store `kind` at `url` (migrated if it is not
/// yet); `None` for the memory store, which has nothing to compare with.
pub(crate) async fn run(
    kind: StoreKind,
    url: &str,
    (connections, sql_tasks): (usize, usize),
    warmup: Duration,
    measure: Duration,
) -> Result<Option<Run>> {
    let failed = |e: expected_core::StoreError| format!("the reference's store at {url}: {e}");
    // A SQL store: its own pool, migrated, closed once the loops are done.
    macro_rules! on_sql {
        ($store:ty) => {{
            let store = <$store>::connect(url).await.map_err(failed)?;
            store.migrate().await.map_err(failed)?;
            let pool = store.pool().clone();
            let run = cookie_logins(Arc::new(store), sql_tasks, warmup, measure).await;
            pool.close().await;
            run?
        }};
    }
    let run = match kind {
        StoreKind::Memory => return Ok(None),
        StoreKind::Sqlite => on_sql!(SqliteStore),
        StoreKind::Postgres => on_sql!(PgStore),
        StoreKind::Mariadb => on_sql!(MySqlStore),
        StoreKind::Redis => {
            let store = RedisStore::builder().prefix(REDIS_PREFIX).connect(url).await.map_err(failed)?;
            cookie_logins(Arc::new(store), connections, warmup, measure).await?
        }
    };
    Ok(Some(run))
}

/// `tasks` loops of cookie logins on `store`, each on a login of its own.
async fn cookie_logins<S: Store>(
    store: Arc<S>,
    tasks: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Run> {
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + measure;
    let mut loops = JoinSet::new();
    for index in 0..tasks {
        loops.spawn(chain(store.clone(), index, measure_from, end));
    }
    let mut run = Run::new(measure);
    let mut all = Vec::new();
    while let Some(joined) = loops.join_next().await {
        let (requests, latencies) = joined.map_err(|e| format!("a reference loop panicked: {e}"))??;
        run.requests += requests;
        run.measured += latencies.len() as u64;
        all.extend(latencies);
    }
    run.latencies = Latencies::new(all);
    Ok(run)
}

/// One login rotated again and again until `end`: answers the cookie
/// logins made (the set-up's two writes counted as one) and the latencies
/// of those inside `[measure_from, end]`.
async fn chain<S: Store>(
    store: Arc<S>,
    index: usize,
    measure_from: Instant,
    end: Instant,
) -> Result<(u64, Vec<u32>)> {
    let config = Config::default();
    let tokens = OsTokens;
    let client = ClientMeta::new(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), Some(USER_AGENT));
    let now = OffsetDateTime::now_utc();
    let user = Username::new(format!("bench-reference-{index}")).map_err(|e| format!("username: {e}"))?;
    let serial = tokens.serial();
    let owner = protocol::password_user(&user, Some(serial), now);
    let session = protocol::new_session(Some(owner), &tokens.session_id(), SessionData::new(), now, &config);
    let (login, mut cookie) =
        protocol::new_login(&user, serial, tokens.token(), &session, client.clone(), now, &config);
    let created = (
        store.create_login(&login).await.map_err(|e| format!("create_login: {e}"))?,
        store
            .create_session(&session, config.max_sessions_per_user())
            .await
            .map_err(|e| format!("create_session: {e}"))?,
    );
    if created != (Inserted::Created, Inserted::Created) {
        return Err(format!("the reference's login and session were not created: {created:?}").into());
    }
    let mut made = 1;
    let mut latencies = Vec::new();
    loop {
        let started = Instant::now();
        if started >= end {
            return Ok((made, latencies));
        }
        // What the engine does for a current token: the optimistic
        // rotation, one store call (`Store::rotate_current`).
        let now = OffsetDateTime::now_utc();
        let (attempt, next) = protocol::current_rotation(
            &cookie,
            tokens.token(),
            &tokens.session_id(),
            client.clone(),
            now,
            &config,
        )
        .ok_or("current_rotation: the clock is out of range")?;
        match store.rotate_current(&attempt).await.map_err(|e| format!("rotate_current: {e}"))? {
            CurrentRotated::Rotated { .. } => cookie = next,
            other => {
                return Err(format!("rotate_current answered {other:?} on the reference's own chain").into());
            }
        }
        made += 1;
        let done = Instant::now();
        if started >= measure_from && done <= end {
            latencies.push(u32::try_from(done.duration_since(started).as_micros()).unwrap_or(u32::MAX));
        }
    }
}
