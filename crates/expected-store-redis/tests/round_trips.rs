//! Round trips per cookie login, per password login and per session hit,
//! counted by a private `redis-server`'s own `INFO commandstats`: the
//! store's scripts (`EVALSHA`, `EVAL`) and its plain reads (`HGETALL`,
//! `HGET`, `HMGET`). Commands a script runs count under their own names
//! too, so plain reads are only asserted where no script runs.

mod support;

use std::collections::HashMap;

use expected_core::time::Duration;
use expected_core::{Config, CookieKind, Expected, ManualClock, Outcome, Presented, Username};
use expected_store_redis::RedisStore;
use support::checks::{login_at, now, session_0_1, user, write_0_1_session};
use support::server::{RedisProcess, cli, free_port};
use support::{skip, unique_prefix};

/// The calls of each command so far.
fn commandstats(port: u16) -> HashMap<String, u64> {
    let info = cli(port, &["INFO", "commandstats"]).unwrap_or_else(|e| panic!("{e}"));
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            Some((name.to_owned(), rest.split(',').next()?.parse().ok()?))
        })
        .collect()
}

/// What the store sent between two `commandstats`: scripts, and `HGETALL`s.
fn sent(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> (u64, u64) {
    let delta = |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    (delta("evalsha") + delta("eval"), delta("hgetall"))
}

/// A private `redis-server` of the test's own (its counters are the
/// test's alone) and a store on it; `None` when none starts (skipped
/// loudly, failed under CI).
async fn private_server(test: &str) -> Option<(RedisProcess, RedisStore)> {
    let started = tokio::task::spawn_blocking(|| {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("expected-redis-round-trips-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        RedisProcess::start(port, &dir, &[])
    })
    .await
    .expect("spawn_blocking");
    let server = match started {
        Ok(server) => server,
        Err(why) => {
            skip(test, &why);
            return None;
        }
    };
    let store = RedisStore::builder()
        .prefix(unique_prefix())
        .connect(server.url())
        .await
        .expect("connect to the private server");
    Some((server, store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_login_is_one_script() {
    let Some((server, store)) = private_server("a_cookie_login_is_one_script").await else { return };
    let clock = ManualClock::starting_now();
    let config = Config::builder().secure(false).build().expect("config");
    let engine = Expected::new(store, config).with_clock(clock.clone());
    let alice = Username::new("alice").expect("username");
    // Loads every script the store uses (a first EVALSHA of a script the
    // server does not know is retried after SCRIPT LOAD).
    let registration = engine.register(&alice, true, &Presented::default()).await.expect("register warms up");
    let auth_of = |cookies: &[expected_core::SetCookie]| {
        cookies
            .iter()
            .find(|c| c.kind() == CookieKind::Auth && !c.is_removal())
            .map(|c| c.value().to_owned())
            .expect("an auth cookie")
    };
    let mut auth = auth_of(&registration.cookies);
    clock.advance(Duration::hours(1));
    let warm =
        engine.authenticate(&Presented { auth: Some(auth.as_str()).into(), ..Presented::default() }).await;
    assert!(matches!(warm.outcome, Outcome::CookieLogin(_)), "{:?}", warm.outcome);
    auth = auth_of(&warm.cookies);

    for _ in 0..3 {
        clock.advance(Duration::hours(1));
        let before = commandstats(server.port());
        let result = engine
            .authenticate(&Presented { auth: Some(auth.as_str()).into(), ..Presented::default() })
            .await;
        let after = commandstats(server.port());
        assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
        assert_eq!(sent(&before, &after), (1, 0), "a cookie login is one script and no read");
        auth = auth_of(&result.cookies);
    }
}

/// Scripts per password login: with "remember me", one
/// (`create_remembered`) under the per-user login cap, two (and
/// `delete_login`) for a user at the cap; without, one (`create_session`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_login_is_at_most_two_scripts() {
    let Some((server, store)) = private_server("a_remembered_login_is_at_most_two_scripts").await else {
        return;
    };
    let clock = ManualClock::starting_now();
    let cap = 3;
    let config = Config::builder()
        .secure(false)
        .max_logins_per_user(std::num::NonZeroUsize::new(cap))
        .build()
        .expect("config");
    let engine = Expected::new(store, config).with_clock(clock.clone());
    let name = |n: &str| Username::new(n).expect("username");
    // Loads every script these registrations use (the last one ends
    // alice's oldest login), and brings alice to the cap.
    for _ in 0..=cap {
        let _registered =
            engine.register(&name("alice"), true, &Presented::default()).await.expect("warm up");
        clock.advance(Duration::minutes(1));
    }
    let _registered = engine.register(&name("nobody"), false, &Presented::default()).await.expect("warm up");

    for (n, (what, remember, expected)) in
        [("at the cap", true, 2), ("under the cap", true, 1), ("without remember me", false, 1)]
            .into_iter()
            .enumerate()
    {
        for attempt in 0..3 {
            clock.advance(Duration::minutes(1));
            let user = if what == "at the cap" { name("alice") } else { name(&format!("user{n}_{attempt}")) };
            let before = commandstats(server.port());
            let registration = engine.register(&user, remember, &Presented::default()).await.expect(what);
            let after = commandstats(server.port());
            assert_eq!(registration.serial.is_some(), remember, "{what}");
            assert_eq!(sent(&before, &after).0, expected, "a password login {what} is {expected} script(s)");
        }
    }
    let logins =
        expected_core::Store::list_logins(engine.store(), &name("alice")).await.expect("list_logins");
    assert_eq!(logins.len(), cap, "the cap held");
}

/// Calls of `command` between two `commandstats`.
fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, command: &str) -> u64 {
    after.get(command).copied().unwrap_or(0) - before.get(command).copied().unwrap_or(0)
}

/// A session hit is one `HGET` of one value, the packed session; a session
/// that is not there, or one written field by field (version 0.1), takes
/// an `HMGET` of its fields after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_hit_is_one_hget_of_the_packed_session() {
    let Some((server, store)) = private_server("a_session_hit_is_one_hget_of_the_packed_session").await
    else {
        return;
    };
    let alice = user("alice");
    let (_, session, _) = login_at(&alice, now());
    assert!(matches!(
        expected_core::Store::create_session(&store, &session, None).await,
        Ok(expected_core::store::Inserted::Created)
    ));
    let reads = |before: &HashMap<String, u64>, after: &HashMap<String, u64>| {
        (delta(before, after, "hget"), delta(before, after, "hmget"), sent(before, after).0)
    };
    for _ in 0..3 {
        let before = commandstats(server.port());
        let read = expected_core::Store::get_session(&store, Some(&alice), &session.digest).await;
        let after = commandstats(server.port());
        assert_eq!(read.expect("get_session"), Some(session.clone()));
        assert_eq!(reads(&before, &after), (1, 0, 0), "a hit is one HGET");
    }
    let unknown = expected_core::SessionId::from_bytes([7; 32]).digest();
    let before = commandstats(server.port());
    let read = expected_core::Store::get_session(&store, Some(&alice), &unknown).await;
    let after = commandstats(server.port());
    assert_eq!(read.expect("get_session"), None);
    assert_eq!(reads(&before, &after), (1, 1, 0), "a miss reads the fields too");

    let nodes = [server.url()];
    let at = now();
    let old = session_0_1(
        &alice,
        expected_core::SessionId::from_bytes([8; 32]).digest(),
        None,
        &expected_core::SessionData::new(),
        (at, at + Duration::hours(1)),
    );
    write_0_1_session(&store, &nodes, &old).await;
    let before = commandstats(server.port());
    let read = expected_core::Store::get_session(&store, Some(&alice), &old.digest).await;
    let after = commandstats(server.port());
    assert_eq!(read.expect("get_session"), Some(old));
    assert_eq!(reads(&before, &after), (1, 1, 0), "a 0.1 session reads by its fields");
}
