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

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let mut admin = match admin().await {
            Ok(admin) => admin,
            Err(Unreachable(why)) => {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!! SKIPPED a_cookie_login_is_one_statement: backend unreachable: {why}\n"
                );
                return;
            }
        };
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

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let mut admin = match admin().await {
            Ok(admin) => admin,
            Err(Unreachable(why)) => {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!! SKIPPED a_remembered_login_is_at_most_two_statements: backend unreachable: {why}\n"
                );
                return;
            }
        };
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
