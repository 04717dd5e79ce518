//! A real backup restored under concurrent cookie logins (issue 13):
//! PostgreSQL with `pg_dump` and `pg_restore`, SQLite with `VACUUM INTO` and
//! the file copied back.
//!
//! 32 chains register a remember-me login each and then make cookie logins
//! one after another (each rotates the token) through the engine with
//! [token keys](expected_core::keys); the backup is taken while they run, in
//! the middle of their rotations; they rotate on, and the backup is
//! restored. Asserted: no chain raises theft, every chain logs in with the
//! cookie it holds (the store had lost some of its rotations: each heals),
//! and the cookie a chain held before the backup, replayed, is still theft
//! (it revokes that user only; the other chains log in once more).
//!
//! PostgreSQL: a schema of its own in `EXPECTED_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dumped with `pg_dump -Fc -n`
//! and restored with `pg_restore --clean --single-transaction`. SQLite: a
//! temporary file in WAL mode, backed up with `VACUUM INTO` while the pool
//! serves the chains; restored by closing the pool, copying the backup over
//! the file (its `-wal` and `-shm` removed) and opening a new pool. Without
//! a PostgreSQL this fails under `CI`, and is skipped loudly otherwise.

#![cfg(all(feature = "postgres", feature = "sqlite"))]
#![allow(clippy::print_stderr)]

mod support;

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use expected_conformance::rollback::Heard;
use expected_core::keys::{KeyId, TokenKey, TokenKeys};
use expected_core::{Config, CookieKind, Expected, ManualClock, Outcome, Presented, Store, Username};
use expected_store_sqlx::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use expected_store_sqlx::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use expected_store_sqlx::sqlx::{self, Connection as _};
use expected_store_sqlx::{PgStore, SqliteStore};

/// Concurrent chains.
const CHAINS: usize = 32;
/// Cookie logins each chain makes, half before the backup starts.
const ROTATIONS: usize = 12;
/// Pause between two cookie logins of a chain.
const THINK: Duration = Duration::from_millis(10);

fn config() -> Config {
    let key = TokenKey::new(KeyId::new("backup").expect("key id"), &[0x17; 32]).expect("key");
    let keys = TokenKeys::new(key, Vec::new()).expect("keys");
    Config::builder().secure(false).token_keys(Some(keys)).build().expect("config")
}

/// What differs between the two databases: taking a backup while the
/// store serves, and restoring it (which may need a new store).
#[async_trait]
trait Backup: Send + Sync + 'static {
    type Store: Store + Clone;
    async fn backup(&self, store: &Self::Store) -> Result<(), String>;
    async fn restore(&self, store: Self::Store) -> Result<Self::Store, String>;
}

/// One cookie login with `auth`: the new cookie, or why not.
async fn cookie_login<S: Store>(engine: &Expected<S>, auth: &str) -> Result<String, String> {
    let result = engine.authenticate(&Presented { auth: Some(auth).into(), ..Presented::default() }).await;
    match &result.outcome {
        Outcome::CookieLogin(_) | Outcome::Grace(_) => result
            .cookies
            .iter()
            .find(|c| c.kind() == CookieKind::Auth && !c.is_removal())
            .map(|c| c.value().to_owned())
            .ok_or_else(|| "no new auth cookie".to_owned()),
        other => Err(format!("{other:?}")),
    }
}

async fn restore_under_chains<B: Backup>(backup: B, store: B::Store) {
    let clock = ManualClock::starting_now();
    let heard = Heard::default();
    let engine =
        Arc::new(Expected::new(store.clone(), config()).with_clock(clock.clone()).with_hooks(heard.clone()));
    let mut first = Vec::new();
    for i in 0..CHAINS {
        let user = Username::new(format!("chain-{i}")).expect("username");
        let registration = engine.register(&user, true, &Presented::default()).await.expect("register");
        let auth = registration.cookies.iter().find(|c| c.kind() == CookieKind::Auth).expect("auth cookie");
        first.push((user, auth.value().to_owned()));
    }
    let half = Arc::new(tokio::sync::Barrier::new(CHAINS + 1));
    let backed_up = Arc::new(tokio::sync::Barrier::new(CHAINS + 1));
    let mut tasks = Vec::new();
    for (user, auth) in first.clone() {
        let (engine, half, backed_up) = (Arc::clone(&engine), Arc::clone(&half), Arc::clone(&backed_up));
        tasks.push(tokio::spawn(async move {
            let mut auth = auth;
            for round in 0..ROTATIONS {
                if round == ROTATIONS / 2 {
                    half.wait().await;
                }
                // The backup runs while the chains go on rotating.
                if round == ROTATIONS / 2 + 2 {
                    backed_up.wait().await;
                }
                tokio::time::sleep(THINK).await;
                auth = cookie_login(&engine, &auth)
                    .await
                    .map_err(|why| format!("{user} round {round}: {why}"))?;
            }
            Ok::<_, String>((user, auth))
        }));
    }
    half.wait().await;
    backup.backup(&store).await.unwrap_or_else(|why| panic!("backup: {why}"));
    backed_up.wait().await;
    let mut last = Vec::new();
    for task in tasks {
        last.push(task.await.expect("chain task").unwrap_or_else(|why| panic!("before the restore: {why}")));
    }
    let store = backup.restore(store).await.unwrap_or_else(|why| panic!("restore: {why}"));
    let engine = Expected::new(store.clone(), config()).with_clock(clock.clone()).with_hooks(heard.clone());
    clock.advance(expected_core::time::Duration::minutes(5));

    for (user, auth) in &mut last {
        *auth = cookie_login(&engine, auth)
            .await
            .unwrap_or_else(|why| panic!("{user}: every chain logs in after the restore, got {why}"));
    }
    assert!(heard.thefts().is_empty(), "no false theft after the restore: {:?}", heard.thefts());
    let heals = heard.heals();
    assert!(
        heals.len() == CHAINS
            && heals.iter().all(|heal| heal.steps >= 1 && usize::from(heal.steps) <= ROTATIONS),
        "every chain had lost rotations since the backup, and healed: {heals:?}"
    );
    eprintln!(
        "restored: {} chains healed, {} lost rotations in all",
        heals.len(),
        heals.iter().map(|heal| u64::from(heal.steps)).sum::<u64>()
    );

    // A cookie from before the backup is still theft, and revokes that user only.
    let (victim, old) = &first[0];
    let replay =
        engine.authenticate(&Presented { auth: Some(old.as_str()).into(), ..Presented::default() }).await;
    assert!(
        matches!(replay.outcome, Outcome::Theft(_)),
        "a replayed pre-backup cookie is theft: {:?}",
        replay.outcome
    );
    assert!(store.list_logins(victim).await.expect("list_logins").is_empty(), "the theft revokes {victim}");
    for (user, auth) in last.iter().skip(1) {
        clock.advance(expected_core::time::Duration::seconds(1));
        cookie_login(&engine, auth).await.unwrap_or_else(|why| panic!("{user} still logs in: {why}"));
    }
}

// ---- PostgreSQL -----------------------------------------------------------

fn postgres_url() -> String {
    support::env_or("EXPECTED_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
}

struct Postgres {
    schema: String,
    dump: PathBuf,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

#[async_trait]
impl Backup for Postgres {
    type Store = PgStore;

    async fn backup(&self, _: &PgStore) -> Result<(), String> {
        let (url, schema, dump) = (postgres_url(), self.schema.clone(), self.dump.display().to_string());
        tokio::task::spawn_blocking(move || {
            run("pg_dump", &["--format=custom", "--schema", &schema, "--file", &dump, "--dbname", &url])
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn restore(&self, store: PgStore) -> Result<PgStore, String> {
        // Nothing may hold a lock on the tables while they are replaced.
        let options = store.pool().connect_options().as_ref().clone();
        store.pool().close().await;
        let (url, dump) = (postgres_url(), self.dump.display().to_string());
        tokio::task::spawn_blocking(move || {
            run("pg_restore", &["--clean", "--if-exists", "--single-transaction", "--dbname", &url, &dump])
        })
        .await
        .map_err(|e| e.to_string())??;
        let pool =
            PgPoolOptions::new().max_connections(8).connect_with(options).await.map_err(|e| e.to_string())?;
        Ok(PgStore::with_tables(pool, store.tables().clone()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_restored_under_cookie_logins() {
    let name = "postgres_backup_restored_under_cookie_logins";
    let mut admin = match support::connect::<sqlx::PgConnection>("PostgreSQL", &postgres_url()).await {
        Ok(admin) => admin,
        Err(why) => {
            assert!(!expected_conformance::ci(), "{name}: PostgreSQL unreachable and CI is set: {}", why.0);
            eprintln!("\n!!! SKIPPED {name}: {}\n", why.0);
            return;
        }
    };
    let schema = support::unique_name("expected_backup");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut admin)
        .await
        .expect("schema");
    let options =
        PgConnectOptions::from_str(&postgres_url()).expect("URL").options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await.expect("pool");
    let store = PgStore::new(pool);
    store.migrate().await.expect("migrate");
    let dump = std::env::temp_dir().join(format!("{schema}.dump"));
    let backup = Postgres { schema: schema.clone(), dump: dump.clone() };
    let outcome = tokio::spawn(restore_under_chains(backup, store)).await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    let _ = std::fs::remove_file(&dump);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

// ---- SQLite ---------------------------------------------------------------

struct Sqlite {
    file: PathBuf,
    backup: PathBuf,
}

async fn sqlite_pool(file: &std::path::Path) -> Result<SqliteStore, String> {
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    let pool =
        SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(|e| e.to_string())?;
    Ok(SqliteStore::new(pool))
}

#[async_trait]
impl Backup for Sqlite {
    type Store = SqliteStore;

    async fn backup(&self, store: &SqliteStore) -> Result<(), String> {
        let into = self.backup.display().to_string().replace('\'', "''");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM INTO '{into}'")))
            .execute(store.pool())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn restore(&self, store: SqliteStore) -> Result<SqliteStore, String> {
        store.pool().close().await;
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.file.display()));
        }
        std::fs::copy(&self.backup, &self.file).map_err(|e| format!("copy the backup back: {e}"))?;
        sqlite_pool(&self.file).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_restored_under_cookie_logins() {
    let name = support::unique_name("expected_backup");
    let file = std::env::temp_dir().join(format!("{name}.db"));
    let backup = std::env::temp_dir().join(format!("{name}.backup.db"));
    let store = sqlite_pool(&file).await.unwrap_or_else(|why| panic!("{why}"));
    store.migrate().await.expect("migrate");
    let outcome =
        tokio::spawn(restore_under_chains(Sqlite { file: file.clone(), backup: backup.clone() }, store))
            .await;
    for path in [&file, &backup] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}
