//! The peer of `cargo xtask bench http --peer`: axum 0.8 with tower-sessions
//! 0.14 on the store the benchmark names, answering the two requests of its
//! session-hit scenario as the demo does.
//!
//! - `POST /api/login` (the demo's JSON body; the password is not checked:
//!   logins are not measured, only the session hits after them): a new
//!   session id, the user in the session, 204.
//! - `GET /api/me`: the user read back from the session and answered as the
//!   demo's `Me` (`via` `session`), or 401. With `PEER_NO_STORE` set, with
//!   `Cache-Control: no-store` and `Vary: Cookie`, as our layer answers.
//!
//! `EXPECTED_ADDR` (or `PEER_ADDR`) is where it listens, `EXPECTED_STORE`
//! (or `PEER_STORE`) its store: `memory:`, `sqlite:PATH`, `postgres://…`
//! (tower-sessions-sqlx-store, sqlx 0.8, its own schema) or `redis://…`
//! (tower-sessions-redis-store, fred, one connection as our Redis store
//! has; SQLite in WAL mode, sqlx's default pool sizes as ours). A session is
//! saved only when it changes (tower-sessions' default expiry), so a hit is
//! one read of the store, as the demo's is. The cookie is not `Secure`
//! (plain HTTP on the loopback; the benchmark's cookie jar keeps either).
//!
//! Built by hand, never by the workspace:
//! `cargo build --release --manifest-path peers/tower-sessions/Cargo.toml
//! --target-dir target`, then `cargo xtask bench http --peer
//! target/release/peer`.

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, response::IntoResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};
use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;
use tower_sessions_sqlx_store::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The session's key for who is logged in.
const WHO: &str = "who";

#[derive(Deserialize)]
struct LoginBody {
    username: String,
}

#[derive(Serialize, Deserialize)]
struct Who {
    username: String,
    #[serde(with = "time::serde::rfc3339")]
    authenticated_at: OffsetDateTime,
}

/// The demo's `Me`, field for field.
#[derive(Serialize)]
struct Me {
    username: String,
    via: &'static str,
    method: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    authenticated_at: OffsetDateTime,
    fresh: bool,
}

async fn login(session: Session, Json(body): Json<LoginBody>) -> impl IntoResponse {
    if session.cycle_id().await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let who = Who { username: body.username, authenticated_at: OffsetDateTime::now_utc() };
    match session.insert(WHO, who).await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether `/api/me` answers with the two headers our layer adds to every
/// response that depends on the cookies (`PEER_NO_STORE` set): the same
/// response bytes, for a like-for-like run.
static NO_STORE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn me(session: Session) -> Result<axum::response::Response, StatusCode> {
    match session.get::<Who>(WHO).await {
        Ok(Some(who)) => {
            let me = Json(Me {
                username: who.username,
                via: "session",
                method: "password",
                fresh: OffsetDateTime::now_utc() - who.authenticated_at < time::Duration::minutes(5),
                authenticated_at: who.authenticated_at,
            });
            if NO_STORE.load(std::sync::atomic::Ordering::Relaxed) {
                use axum::http::header::{CACHE_CONTROL, VARY};
                Ok(([(CACHE_CONTROL, "no-store"), (VARY, "Cookie")], me).into_response())
            } else {
                Ok(me.into_response())
            }
        }
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn setting(name: &str, fallback: &str) -> Result<String, Failure> {
    std::env::var(name).or_else(|_| std::env::var(fallback)).map_err(|_| format!("{name} is not set").into())
}

async fn serve<S: SessionStore + Clone>(addr: SocketAddr, store: S) -> Result<(), Failure> {
    let app = Router::new()
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .layer(SessionManagerLayer::new(store).with_secure(false));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let addr: SocketAddr = setting("EXPECTED_ADDR", "PEER_ADDR")?.parse()?;
    let store = setting("EXPECTED_STORE", "PEER_STORE")?;
    NO_STORE.store(std::env::var_os("PEER_NO_STORE").is_some(), std::sync::atomic::Ordering::Relaxed);
    if store == "memory" || store == "memory:" {
        serve(addr, MemoryStore::default()).await
    } else if let Some(path) = store.strip_prefix("sqlite:") {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new().connect_with(options).await?;
        let store = SqliteStore::new(pool);
        store.migrate().await?;
        serve(addr, store).await
    } else if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        let pool = PgPoolOptions::new().connect(&store).await?;
        let store = PostgresStore::new(pool);
        store.migrate().await?;
        serve(addr, store).await
    } else if store.starts_with("redis://") {
        let pool = Pool::new(Config::from_url(&store)?, None, None, None, 1)?;
        pool.init().await?;
        serve(addr, RedisStore::new(pool)).await
    } else {
        Err(format!("{store}: memory:, sqlite:PATH, postgres://… or redis://…").into())
    }
}
