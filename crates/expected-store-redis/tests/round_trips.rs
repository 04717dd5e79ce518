//! Round trips per cookie login and per password login, counted by a
//! private `redis-server`'s own `INFO commandstats`: the store's scripts
//! (`EVALSHA`, `EVAL`) and its one plain read (`HGETALL`). Commands a script
//! runs count under their own names too, so `HGETALL` is only asserted
//! where no script runs it.

mod support;

use std::collections::HashMap;

use expected_core::time::Duration;
use expected_core::{Config, CookieKind, Expected, ManualClock, Outcome, Presented, Username};
use expected_store_redis::RedisStore;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_login_is_one_script() {
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
        Err(why) => return skip("a_cookie_login_is_one_script", &why),
    };
    let store = RedisStore::builder()
        .prefix(unique_prefix())
        .connect(server.url())
        .await
        .expect("connect to the private server");
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
        Err(why) => return skip("a_remembered_login_is_at_most_two_scripts", &why),
    };
    let store = RedisStore::builder()
        .prefix(unique_prefix())
        .connect(server.url())
        .await
        .expect("connect to the private server");
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
