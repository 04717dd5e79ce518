//! The conformance suite and this crate's own checks on PostgreSQL, each in
//! a fresh schema dropped afterwards.
//!
//! `EXPECTED_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

#![cfg(feature = "postgres")]

mod support;

use std::str::FromStr as _;

use expected_conformance::Unreachable;
use expected_store_sqlx::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use expected_store_sqlx::sqlx::{self, Connection as _};
use expected_store_sqlx::{PgStore, Tables};

fn url() -> String {
    support::env_or("EXPECTED_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
}

async fn admin() -> Result<sqlx::PgConnection, Unreachable> {
    support::connect("PostgreSQL", &url()).await
}

/// Runs `test`'s `body` on a runtime of two workers with an admin
/// connection; an unreachable server skips it loudly, or fails it under CI.
fn with_admin<Body, Run>(test: &str, body: Body)
where
    Body: FnOnce(sqlx::PgConnection) -> Run,
    Run: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        match admin().await {
            Ok(admin) => body(admin).await,
            Err(Unreachable(why)) => {
                assert!(
                    !expected_conformance::ci(),
                    "{test}: PostgreSQL unreachable and CI is set, so this is a failure: {why}"
                );
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED {test}: backend unreachable: {why}\n");
            }
        }
    });
}

/// A fresh schema per store; the pool's (at most `connections`)
/// connections search only it.
struct Postgres {
    connections: u32,
}

/// What the suite runs on.
const POSTGRES: Postgres = Postgres { connections: 8 };

#[async_trait::async_trait]
impl support::Backend for Postgres {
    type Store = PgStore;

    const TABLE_NAMES: &'static str = "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1";

    const SETTLE: &'static str = "VACUUM ANALYZE expected_sessions";

    const VERSION_1: &'static str = include_str!("v1/postgres.sql");

    fn blob(bytes: &[u8]) -> String {
        format!("'\\x{}'", support::hex(bytes))
    }

    async fn create(&self, tables: Tables) -> Result<PgStore, Unreachable> {
        let mut admin = admin().await?;
        let schema = support::unique_name("expected_test");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create schema: {e}"));
        let _ = admin.close().await;
        let options = PgConnectOptions::from_str(&url())
            .unwrap_or_else(|e| panic!("bad URL: {e}"))
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(self.connections)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("pool: {e}"));
        Ok(PgStore::with_tables(pool, tables))
    }

    async fn drop(&self, store: &PgStore) {
        let schema: Option<String> =
            sqlx::query_scalar("SELECT current_schema()").fetch_one(store.pool()).await.ok().flatten();
        store.pool().close().await;
        if let (Some(schema), Ok(mut admin)) = (schema, admin().await)
            && schema.starts_with("expected_test_")
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
                .execute(&mut admin)
                .await;
        }
    }
}

support::suite!(POSTGRES);

/// How many rows of the sessions table PostgreSQL has read so far, by
/// sequential scans and as index entries, on the one connection of `store`
/// (its statistics flushed first).
async fn session_rows_read(store: &PgStore) -> i64 {
    let _ = sqlx::query("SELECT pg_stat_force_next_flush()").execute(store.pool()).await;
    sqlx::query_scalar(
        "SELECT ((SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes \
             WHERE schemaname = current_schema() AND relname = 'expected_sessions') \
         + (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND relname = 'expected_sessions'))::bigint",
    )
    .fetch_one(store.pool())
    .await
    .unwrap_or_else(|e| panic!("table statistics: {e}"))
}

/// Revoking a serial the user does not have, revoking one login and a
/// rotation read a handful of rows, not the 1000 of the user's
/// sessions (an `OR` of the login's serial and its bound session had the
/// planner read all of them), as PostgreSQL's own statistics count them on
/// a pool of one connection.
#[test]
fn ending_a_login_reads_only_its_sessions() {
    use expected_core::protocol::{new_login, new_session, password_user, rotation};
    use expected_core::store::{Inserted, Rotated};
    use expected_core::{
        ChaChaTokens, ClientMeta, Config, SessionData, Store as _, TokenSource as _, Username,
    };

    let harness = support::Fresh::new(Postgres { connections: 1 });
    expected_conformance::run(harness, "ending_a_login_reads_only_its_sessions", |store| async move {
        let name = Username::new("busy").unwrap_or_else(|e| panic!("{e}"));
        let (serials, _) = expected_conformance::cost::seed(&*store, &name, 1000).await;
        // The planner's statistics, as a production database has them:
        // without them it takes the user's 1000 rows for a handful, and
        // reading them all for cheap.
        sqlx::query("ANALYZE expected_sessions")
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (tokens, config, now) = (
            ChaChaTokens::from_os(),
            Config::default(),
            expected_core::Clock::now(&expected_core::SystemClock),
        );
        let owner = Some(password_user(&name, Some(tokens.serial()), now));
        let session = new_session(owner, &tokens.session_id(), SessionData::new(), now, &config);
        let serial = session.login().unwrap_or_else(|| panic!("the session names its login"));
        let (login, cookie) =
            new_login(&name, serial, tokens.token(), &session, ClientMeta::default(), now, &config);
        assert_eq!(store.create_login(&login).await.ok(), Some(Inserted::Created));
        assert_eq!(store.create_session(&session, None).await.ok(), Some(Inserted::Created));

        let before = session_rows_read(&store).await;
        assert!(!store.delete_login(&name, &tokens.serial()).await.unwrap_or_else(|e| panic!("{e}")));
        let after_missing = session_rows_read(&store).await;
        assert!(
            after_missing - before < 50,
            "revoking a missing serial read {} of the user's 1001 sessions",
            after_missing - before
        );
        let (next, _) = rotation(
            &cookie,
            &login,
            tokens.token(),
            &tokens.session_id(),
            ClientMeta::default(),
            now,
            &config,
        );
        let next = expected_core::store::Rotation { max_sessions: None, ..next };
        assert_eq!(store.rotate_login(&next).await.ok(), Some(Rotated::Rotated));
        let after_rotation = session_rows_read(&store).await;
        assert!(
            after_rotation - after_missing < 50,
            "a rotation read {} of the user's 1001 sessions",
            after_rotation - after_missing
        );
        assert!(store.delete_login(&name, &serials[0]).await.unwrap_or_else(|e| panic!("{e}")));
        let after_revocation = session_rows_read(&store).await;
        assert!(
            after_revocation - after_rotation < 50,
            "revoking one login read {} of the user's 1001 sessions",
            after_revocation - after_rotation
        );
    });
}

/// The transactions `database` has counted once every connection to it is
/// gone (a backend flushes its statistics as it exits) and the count has
/// settled.
async fn settled_transactions(admin: &mut sqlx::PgConnection, database: &str) -> i64 {
    let mut last = -1;
    for _ in 0..100 {
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(database)
            .fetch_one(&mut *admin)
            .await
            .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"));
        let count: i64 =
            sqlx::query_scalar("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1")
                .bind(database)
                .fetch_one(&mut *admin)
                .await
                .unwrap_or_else(|e| panic!("pg_stat_database: {e}"));
        if open == 0 && count == last {
            return count;
        }
        last = count;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    panic!("the statistics of {database} did not settle");
}

/// Statements per cookie login, as PostgreSQL counts them: the transactions
/// of a database of the test's own (`pg_stat_database`; every statement the
/// store sends is a transaction of its own), each phase on a pool of one
/// connection closed at its end (so that its statistics are flushed), less
/// what a phase that does nothing counts.
#[test]
fn a_cookie_login_is_one_statement() {
    use expected_core::{Config, CookieKind, Expected, ManualClock, Outcome, Presented, SetCookie, Username};

    with_admin("a_cookie_login_is_one_statement", |mut admin| async move {
        let database = support::unique_name("expected_rt");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create database: {e}"));
        let options =
            PgConnectOptions::from_str(&url()).unwrap_or_else(|e| panic!("bad URL: {e}")).database(&database);
        let clock = ManualClock::starting_now();
        let config = Config::builder().secure(false).build().unwrap_or_else(|e| panic!("{e}"));
        let engine = || async {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .unwrap_or_else(|e| panic!("pool: {e}"));
            Expected::new(PgStore::new(pool), config.clone()).with_clock(clock.clone())
        };
        let auth_of = |cookies: &[SetCookie]| {
            cookies
                .iter()
                .find(|c| c.kind() == CookieKind::Auth && !c.is_removal())
                .map(|c| c.value().to_owned())
                .unwrap_or_else(|| panic!("an auth cookie"))
        };
        let setup = engine().await;
        setup.store().migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
        let alice = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
        let registration =
            setup.register(&alice, true, &Presented::default()).await.unwrap_or_else(|e| panic!("{e}"));
        let mut auth = auth_of(&registration.cookies);
        setup.store().pool().close().await;

        // Two phases on fresh connections, one cookie login and one plus
        // `logins`: what a connection costs by itself (sqlx looks up types
        // on a connection's first statements) cancels out.
        let logins = 5;
        let mut counted = Vec::new();
        for extra in [0, logins] {
            let start = settled_transactions(&mut admin, &database).await;
            let phase = engine().await;
            for _ in 0..=extra {
                clock.advance(expected_core::time::Duration::hours(1));
                let presented = Presented { auth: Some(auth.as_str()).into(), ..Presented::default() };
                let result = phase.authenticate(&presented).await;
                assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
                auth = auth_of(&result.cookies);
            }
            phase.store().pool().close().await;
            counted.push(settled_transactions(&mut admin, &database).await - start);
        }
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
        assert_eq!(
            counted[1] - counted[0],
            logins,
            "a cookie login is one statement (phases of 1 and {} logins counted {counted:?})",
            logins + 1
        );
    });
}

/// Statements per password login, counted as `a_cookie_login_is_one_statement`
/// counts them: with "remember me", one (`create_remembered`) under the
/// per-user login cap and two (and `delete_login`) for a user at the cap;
/// without, one (`create_session`).
#[test]
fn a_remembered_login_is_at_most_two_statements() {
    use expected_core::{Config, Expected, ManualClock, Presented, Username};

    with_admin("a_remembered_login_is_at_most_two_statements", |mut admin| async move {
        let database = support::unique_name("expected_rt");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create database: {e}"));
        let options =
            PgConnectOptions::from_str(&url()).unwrap_or_else(|e| panic!("bad URL: {e}")).database(&database);
        let clock = ManualClock::starting_now();
        let cap = 3;
        let config = Config::builder()
            .secure(false)
            .max_logins_per_user(std::num::NonZeroUsize::new(cap))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let engine = || async {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .unwrap_or_else(|e| panic!("pool: {e}"));
            Expected::new(PgStore::new(pool), config.clone()).with_clock(clock.clone())
        };
        let name = |n: &str| Username::new(n).unwrap_or_else(|e| panic!("{e}"));
        let setup = engine().await;
        setup.store().migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
        // alice is at the cap: each registration of hers ends her oldest.
        for _ in 0..cap {
            let _registered = setup
                .register(&name("alice"), true, &Presented::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            clock.advance(expected_core::time::Duration::minutes(1));
        }
        setup.store().pool().close().await;

        // (who registers, remember me, statements expected per login); the
        // users under the cap are new in each phase.
        let scenarios =
            [("at the cap", true, 2), ("under the cap", true, 1), ("without remember me", false, 1)];
        let extra = 2;
        for (phase_name, (what, remember, expected)) in scenarios.into_iter().enumerate() {
            let mut counted = Vec::new();
            for ops in [1, 1 + extra] {
                let start = settled_transactions(&mut admin, &database).await;
                let phase = engine().await;
                for n in 0..ops {
                    clock.advance(expected_core::time::Duration::minutes(1));
                    let user = match what {
                        "at the cap" => name("alice"),
                        _ => name(&format!("user{phase_name}_{ops}_{n}")),
                    };
                    let registration = phase
                        .register(&user, remember, &Presented::default())
                        .await
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(registration.serial.is_some(), remember, "{what}");
                }
                phase.store().pool().close().await;
                counted.push(settled_transactions(&mut admin, &database).await - start);
            }
            assert_eq!(
                counted[1] - counted[0],
                expected * extra as i64,
                "a password login {what} is {expected} statement(s) (phases of 1 and {} counted {counted:?})",
                1 + extra
            );
        }
        let alices = PgStore::new(
            PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .unwrap_or_else(|e| panic!("pool: {e}")),
        );
        let left = expected_core::Store::list_logins(&alices, &name("alice")).await;
        assert_eq!(left.map(|l| l.len()).ok(), Some(cap), "the cap held");
        alices.pool().close().await;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    });
}

/// A loopback TCP relay to a PostgreSQL server that counts the
/// `ReadyForQuery` messages the server sends: one ends every statement, and
/// one answers every ping (a bare `Sync`), so their count is the pool's
/// round trips.
struct Relay {
    port: u16,
    ready: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Relay {
    async fn start(upstream: (String, u16)) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::AtomicU64;

        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("relay: {e}"));
        let port = listener.local_addr().unwrap_or_else(|e| panic!("relay: {e}")).port();
        let ready = Arc::new(AtomicU64::new(0));
        let counted = ready.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream.clone()).await else { continue };
                let (mut from_client, to_client) = client.into_split();
                let (from_server, mut to_server) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                });
                tokio::spawn(Self::count(from_server, to_client, counted.clone()));
            }
        });
        Self { port, ready }
    }

    /// Forwards the server's bytes, reading its messages' frames (a type
    /// byte, then a length that counts itself): the stream is framed from
    /// its first byte when the client asks for no TLS.
    async fn count(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        ready: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let read = match from.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            if to.write_all(&chunk[..read]).await.is_err() {
                return;
            }
            pending.extend_from_slice(&chunk[..read]);
            while pending.len() >= 5 {
                let length = u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
                if pending.len() < 1 + length {
                    break;
                }
                if pending[0] == b'Z' {
                    ready.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                pending.drain(..1 + length);
            }
        }
    }

    fn ready(&self) -> u64 {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The store's pool options ([`pool_options`](expected_store_sqlx::pool_options),
/// which `PgStore::connect` uses) do not ping a connection before each
/// statement as sqlx's default does: a session read on a busy pool is its
/// statement and the check sqlx makes when the connection comes back (two
/// `ReadyForQuery`, counted on the wire), where sqlx's default options make
/// it three. A connection idle for [`IDLE_BEFORE_PING`] is pinged before
/// use (three), and one the server ended meanwhile is replaced, unseen by
/// the read.
#[test]
fn the_pool_pings_only_idle_connections() {
    use expected_core::{SessionDigest, SessionId, Store as _};
    use expected_store_sqlx::sqlx::postgres::PgSslMode;
    use expected_store_sqlx::{IDLE_BEFORE_PING, pool_options};

    const READS: u64 = 20;
    let test = "the_pool_pings_only_idle_connections";
    with_admin(test, |mut admin| async move {
        let schema = support::unique_name("expected_test");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create schema: {e}"));
        let direct = PgConnectOptions::from_str(&url()).unwrap_or_else(|e| panic!("bad URL: {e}"));
        let relay = Relay::start((direct.get_host().to_owned(), direct.get_port())).await;
        let application = support::unique_name("expected_ping");
        let options = direct
            .clone()
            .host("127.0.0.1")
            .port(relay.port)
            .ssl_mode(PgSslMode::Disable)
            .application_name(&application)
            .options([("search_path", schema.as_str())]);
        let digest = SessionDigest::of(&SessionId::from_bytes([7; 32]));
        // `reads` session reads, one after the other on a pool of one
        // connection; the `ReadyForQuery` messages they took.
        let reads = |store: PgStore, reads: u64| {
            let relay = &relay;
            async move {
                // The first read opens the connection and prepares the
                // statement: not counted.
                let found = store.get_session(None, &digest).await;
                assert!(matches!(found, Ok(None)), "{found:?}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let before = relay.ready();
                for _ in 0..reads {
                    let found = store.get_session(None, &digest).await;
                    assert!(matches!(found, Ok(None)), "{found:?}");
                }
                // The last release check runs in a task of sqlx's.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                (store, relay.ready() - before)
            }
        };

        let store = PgStore::new(
            pool_options()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
        store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
        let (store, busy) = reads(store, READS).await;
        assert_eq!(busy, 2 * READS, "a read on a busy pool: its statement and the release check");

        // Idle past the threshold: pinged first.
        tokio::time::sleep(IDLE_BEFORE_PING + std::time::Duration::from_millis(200)).await;
        let before = relay.ready();
        let found = store.get_session(None, &digest).await;
        assert!(matches!(found, Ok(None)), "{found:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(relay.ready() - before, 3, "an idle connection is pinged before its statement");

        // The server ends the idle connection: the ping finds it gone, the
        // pool opens another, the read does not see it.
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&application)
        .fetch_all(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("pg_terminate_backend: {e}"));
        assert_eq!(ended, [true], "the store's one connection was ended");
        tokio::time::sleep(IDLE_BEFORE_PING + std::time::Duration::from_millis(200)).await;
        let found = store.get_session(None, &digest).await;
        assert!(matches!(found, Ok(None)), "a read after the server ended the idle connection: {found:?}");
        store.pool().close().await;

        // The control: sqlx's default options ping before every statement.
        let default = PgStore::new(
            PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let (default, pinged) = reads(default, READS).await;
        assert_eq!(pinged, 3 * READS, "sqlx's default options: a ping, the statement, the release check");
        default.pool().close().await;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .execute(&mut admin)
            .await;
    });
}
