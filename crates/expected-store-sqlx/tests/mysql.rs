//! The conformance suite and this crate's own checks on MySQL / MariaDB,
//! each in a fresh database dropped afterwards.
//!
//! `EXPECTED_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).

#![cfg(feature = "mysql")]

mod support;

use std::str::FromStr as _;

use expected_conformance::Unreachable;
use expected_store_sqlx::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use expected_store_sqlx::sqlx::{self, Connection as _};
use expected_store_sqlx::{MySqlStore, Tables};

fn url() -> String {
    support::env_or("EXPECTED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

async fn admin() -> Result<sqlx::MySqlConnection, Unreachable> {
    support::connect("MySQL", &url()).await
}

/// A fresh database per store.
struct MySql;

#[async_trait::async_trait]
impl support::Backend for MySql {
    type Store = MySqlStore;

    const TABLE_NAMES: &'static str = "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1";

    const SETTLE: &'static str = "ANALYZE TABLE expected_sessions";

    const VERSION_1: &'static str = include_str!("v1/mysql.sql");

    fn blob(bytes: &[u8]) -> String {
        format!("X'{}'", support::hex(bytes))
    }

    async fn create(&self, tables: Tables) -> Result<MySqlStore, Unreachable> {
        let mut admin = admin().await?;
        let database = support::unique_name("expected_test");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create database: {e}"));
        let _ = admin.close().await;
        let options = MySqlConnectOptions::from_str(&url())
            .unwrap_or_else(|e| panic!("bad URL: {e}"))
            .database(&database);
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("pool: {e}"));
        Ok(MySqlStore::with_tables(pool, tables))
    }

    async fn drop(&self, store: &MySqlStore) {
        let database: Option<String> =
            sqlx::query_scalar("SELECT DATABASE()").fetch_one(store.pool()).await.ok().flatten();
        store.pool().close().await;
        if let (Some(database), Ok(mut admin)) = (database, admin().await)
            && database.starts_with("expected_test_")
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE `{database}`")))
                .execute(&mut admin)
                .await;
        }
    }
}

support::suite!(MySql);

/// A cleaning batch never binds more placeholders than MySQL and MariaDB take
/// (65 535), whatever the batch size: 33 000 expired logins, with the batch
/// size asked at its largest, are one batch of `MySqlStore::MAX_BATCH` and
/// one of the rest, not one statement of 66 001 placeholders that the server
/// refuses.
#[test]
fn cleaning_stays_under_the_placeholder_limit() {
    const LOGINS: u32 = 33_000;
    let name = "cleaning_stays_under_the_placeholder_limit";
    expected_conformance::run(support::Fresh::new(MySql), name, |store| async move {
        use expected_core::Store as _;
        use support::SqlStore as _;

        assert_eq!(MySqlStore::MAX_BATCH, 32_767);
        let store = (*store).clone().with_batch_size(u32::MAX);
        // 0..100 000 from five cross-joined digit tables (MySQL and MariaDB
        // alike), each a login expired long ago.
        let digits = (0..10).map(|d| format!("SELECT {d} AS d")).collect::<Vec<_>>().join(" UNION ALL ");
        let numbers = (0..5).map(|i| format!("({digits}) AS t{i}")).collect::<Vec<_>>().join(" CROSS JOIN ");
        let n = "t0.d + 10 * t1.d + 100 * t2.d + 1000 * t3.d + 10000 * t4.d";
        let logins = store.tables().logins().to_owned();
        store
            .execute(format!(
                "INSERT INTO `{logins}` (username, serial, token, created_at, last_used_at, expires_at, authenticated_at) \
                 SELECT 'bulk', UNHEX(LPAD(HEX({n}), 32, '0')), UNHEX(REPEAT('00', 32)), 0, 0, 1, 0 \
                 FROM {numbers} WHERE {n} < {LOGINS}"
            ))
            .await;
        assert_eq!(store.integers("SELECT COUNT(*) FROM expected_logins").await, [i64::from(LOGINS)]);
        let now = expected_core::time::OffsetDateTime::now_utc();
        let expired = store.delete_expired_logins(now).await.unwrap_or_else(|e| panic!("cleaning: {e}"));
        assert_eq!(expired.len(), LOGINS as usize);
        assert_eq!(store.integers("SELECT COUNT(*) FROM expected_logins").await, [0]);
    });
}

/// A user's second device, `other`, whose session another transaction has
/// locked (as a rotation or a deletion of that device would): rotating the
/// first device, and creating a session for the user under the cap, must
/// touch none of `other`'s rows, so neither waits for that lock. Before the
/// rotation ran at `READ COMMITTED` with its deletes and the cap's read
/// going through their indexes, both scanned the user's range of the
/// sessions' primary key and waited here (InnoDB's lock wait timeout, 50 s
/// by default), which is how two rotations of one user deadlocked under
/// load.
#[test]
fn rotating_one_device_locks_none_of_the_others_rows() {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use expected_core::protocol::{new_login, new_session, password_user, rotation};
    use expected_core::store::{Inserted, Rotated};
    use expected_core::time::OffsetDateTime;
    use expected_core::{
        ChaChaTokens, ClientMeta, Config, SessionData, Store as _, TokenSource as _, Username,
    };

    let name = "rotating_one_device_locks_none_of_the_others_rows";
    expected_conformance::run(support::Fresh::new(MySql), name, |store| async move {
        let now = OffsetDateTime::now_utc();
        let tokens = ChaChaTokens::from_os();
        let config = Config::default();
        let user = Username::new("two-devices").unwrap_or_else(|e| panic!("{e}"));
        let mut devices = Vec::new();
        for _ in 0..2 {
            let serial = tokens.serial();
            let owner = Some(password_user(&user, Some(serial), now));
            let session = new_session(owner, &tokens.session_id(), SessionData::new(), now, &config);
            let (login, cookie) =
                new_login(&user, serial, tokens.token(), &session, ClientMeta::default(), now, &config);
            assert_eq!(store.create_login(&login).await.ok(), Some(Inserted::Created));
            assert_eq!(store.create_session(&session, None).await.ok(), Some(Inserted::Created));
            devices.push((login, cookie, session));
        }
        // The device rotated is the one whose serial sorts first, so that
        // the other's rows come right after its own in every index on
        // `(username, login_serial)`: a scan of its range that locks the
        // record past the end reaches the other's locked session.
        devices.sort_by(|a, b| a.0.serial.as_bytes().cmp(b.0.serial.as_bytes()));
        let (login, cookie, _) = &devices[0];
        let (_, _, other_session) = &devices[1];

        // The other device's session, locked by a transaction left open.
        let mut holder = store.pool().begin().await.unwrap_or_else(|e| panic!("begin: {e}"));
        let locked: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT digest FROM expected_sessions WHERE username = ? AND digest = ? FOR UPDATE",
        )
        .bind(user.as_str().as_bytes())
        .bind(&other_session.digest.as_bytes()[..])
        .fetch_all(&mut *holder)
        .await
        .unwrap_or_else(|e| panic!("lock: {e}"));
        assert_eq!(locked.len(), 1, "the other device's session is there and locked");

        let patience = Duration::from_secs(10);
        let (planned, _) = rotation(
            cookie,
            login,
            tokens.token(),
            &tokens.session_id(),
            ClientMeta::default(),
            now,
            &config,
        );
        let rotated = tokio::time::timeout(patience, store.rotate_login(&planned))
            .await
            .unwrap_or_else(|_| panic!("the rotation waited for the other device's locked session"));
        assert_eq!(rotated.ok(), Some(Rotated::Rotated));

        let owner = Some(password_user(&user, None, now));
        let fresh = new_session(owner, &tokens.session_id(), SessionData::new(), now, &config);
        let cap = NonZeroUsize::new(64);
        let created = tokio::time::timeout(patience, store.create_session(&fresh, cap))
            .await
            .unwrap_or_else(|_| panic!("the capped creation waited for the other device's locked session"));
        assert_eq!(created.ok(), Some(Inserted::Created));

        holder.rollback().await.unwrap_or_else(|e| panic!("rollback: {e}"));
        // Nothing of the other device was touched.
        assert!(store.get_session(Some(&user), &other_session.digest).await.ok().flatten().is_some());
    });
}
