//! A private Redis (AOF, fsync on every write) is paused (SIGSTOP) and then
//! killed and restarted under a live store: calls fail with an
//! `Unavailable` store error meanwhile, the store recovers by itself, and no
//! login is lost.

mod support;

use std::time::{Duration, Instant};

use expected_core::store::{Inserted, Rotated};
use expected_core::{
    ChaChaTokens, ClientMeta, Config, Login, Store as _, StoreErrorKind, TokenSource as _, protocol,
};
use expected_store_redis::RedisStore;
use support::checks::{login_at, now, user};
use support::server::{RedisProcess, free_port};
use support::{purge, skip, unique_prefix};

/// Retries `probe` until it answers `Ok`, for at most 15 s.
async fn until_back<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, expected_core::StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline => {
                assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the store did not recover: {error}"),
        }
    }
}

async fn all_logins(store: &RedisStore, written: &[Login]) -> Vec<Login> {
    let mut found = Vec::new();
    for login in written {
        found.push(
            store.get_login(&login.username, &login.serial).await.expect("get_login").expect("login kept"),
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_restart_fail_with_store_errors_and_lose_nothing() {
    let started = tokio::task::spawn_blocking(|| {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("expected-redis-outage-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        RedisProcess::start(port, &dir, &["--appendonly", "yes", "--appendfsync", "always"])
    })
    .await
    .expect("spawn_blocking");
    let mut server = match started {
        Ok(server) => server,
        Err(why) => return skip("pause_and_restart_fail_with_store_errors_and_lose_nothing", &why),
    };
    let store = RedisStore::builder()
        .prefix(unique_prefix())
        .response_timeout(Some(Duration::from_millis(500)))
        .connection_timeout(Duration::from_millis(500))
        .reconnect_retries(1)
        .connect(server.url())
        .await
        .expect("connect to the private server");

    let at = now();
    let mut written = Vec::new();
    for name in ["alice", "bob", "carol"] {
        for _ in 0..3 {
            let (login, session, cookie) = login_at(&user(name), at);
            assert_eq!(store.create_login(&login).await.expect("create_login"), Inserted::Created);
            assert_eq!(
                store.create_session(&session, None).await.expect("create_session"),
                Inserted::Created
            );
            written.push((login, cookie));
        }
    }
    let logins: Vec<Login> = written.iter().map(|(login, _)| login.clone()).collect();

    // Paused: calls time out as Unavailable, quickly.
    server.signal("STOP").expect("SIGSTOP");
    let before = Instant::now();
    let error = store.get_login(&logins[0].username, &logins[0].serial).await.expect_err("paused");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(before.elapsed() < Duration::from_secs(5), "failed after {:?}", before.elapsed());
    let error = store.list_logins(&logins[0].username).await.expect_err("paused");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    // A rotation sent into the paused server: its outcome is unknown to the
    // caller (the server may run it once it wakes up), but a retry converges.
    let tokens = ChaChaTokens::from_os();
    let config = Config::builder().secure(false).build().expect("config");
    let (login, cookie) = &written[0];
    let id = tokens.session_id();
    let (rotation, _) =
        protocol::rotation(cookie, login, tokens.token(), &id, ClientMeta::default(), now(), &config);
    let error = store.rotate_login(&rotation).await.expect_err("paused");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    server.signal("CONT").expect("SIGCONT");

    let retried = until_back(|| store.rotate_login(&rotation)).await;
    assert!(matches!(retried, Rotated::Rotated | Rotated::NotCurrent), "{retried:?}");
    let mut rotated = login.clone();
    protocol::apply_rotation(&mut rotated, &rotation);
    let mut expected = logins.clone();
    expected[0] = rotated;
    assert_eq!(all_logins(&store, &logins).await, expected, "nothing lost while paused");

    // Killed: connection refused is Unavailable too, for reads and writes.
    server.kill();
    let error = store.list_logins(&logins[1].username).await.expect_err("killed");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let (extra, _, _) = login_at(&user("dave"), now());
    let error = store.create_login(&extra).await.expect_err("killed");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let error = store.delete_expired_logins(now()).await.expect_err("killed");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");

    // Restarted from its append-only file: the same store works again.
    tokio::task::block_in_place(|| server.restart()).expect("restart");
    let back = until_back(|| store.list_logins(&logins[3].username)).await;
    assert_eq!(back.len(), 3);
    assert_eq!(all_logins(&store, &logins).await, expected, "nothing lost across the restart");
    let (login, cookie) = &written[4];
    let id = tokens.session_id();
    let (rotation, _) =
        protocol::rotation(cookie, login, tokens.token(), &id, ClientMeta::default(), now(), &config);
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate"), Rotated::Rotated);
    assert_eq!(store.create_login(&extra).await.expect("create"), Inserted::Created);

    let _ = purge(&[server.url()], store.prefix()).await;
    drop(server);
}
