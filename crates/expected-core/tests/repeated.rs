//! Several values of one cookie name (a host-only and a `Domain` cookie after
//! a deploy added a `Domain`, or a value a sibling subdomain planted): the
//! reader keeps them all, the engine judges them all before acting on one,
//! and removals reach the host-only twin.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use expected_conformance::{Flaky, Operation};
use expected_core::cookies::{PresentedCookies, read_cookie_headers};
use expected_core::time::Duration;
use expected_core::{
    AuthCookie, ChaChaTokens, ClientMeta, Config, CookieKind, CookieValues, Exchange, Expected, Hooks,
    ManualClock, Outcome, Presented, SetCookie, Store, TheftReport, Username,
};
use expected_store_memory::MemoryStore;

type Engine = Expected<Arc<Flaky<MemoryStore>>>;

fn user(name: &str) -> Username {
    Username::new(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Counts theft reports.
#[derive(Debug, Default)]
struct Thefts(AtomicUsize);

#[async_trait]
impl Hooks for Thefts {
    async fn on_theft(&self, _: &TheftReport) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Setup {
    engine: Engine,
    store: Arc<Flaky<MemoryStore>>,
    clock: ManualClock,
    thefts: Arc<Thefts>,
}

fn setup_with(domain: Option<&str>) -> Setup {
    let store = Arc::new(Flaky::new(MemoryStore::new()));
    let clock = ManualClock::starting_now();
    let config = Config::builder()
        .secure(false)
        .domain(domain.map(str::to_owned))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let thefts = Arc::new(Thefts::default());
    let engine = Expected::new(store.clone(), config)
        .with_clock(clock.clone())
        .with_tokens(ChaChaTokens::from_seed([9; 32]))
        .with_hooks(thefts.clone());
    Setup { engine, store, clock, thefts }
}

fn setup() -> Setup {
    setup_with(None)
}

/// Rotation calls so far: the optimistic one a cookie login tries first
/// (which rotates when the token is current) and the plain one.
fn rotations(store: &Flaky<MemoryStore>) -> usize {
    store.calls(Operation::RotateLogin) + store.calls(Operation::RotateCurrent)
}

fn value(cookies: &[SetCookie], kind: CookieKind) -> Option<String> {
    cookies.iter().find(|c| c.kind() == kind && !c.is_removal()).map(|c| c.value().to_owned())
}

fn values<'a>(list: &[&'a str]) -> CookieValues<'a> {
    list.iter().copied().collect()
}

/// Logs `name` in with "remember me": (session, auth) values.
async fn register(s: &Setup, name: &str) -> (String, String) {
    let registration = s.engine.register(&user(name), true, &Presented::default()).await;
    let cookies = registration.unwrap_or_else(|e| panic!("register: {e}")).cookies;
    match (value(&cookies, CookieKind::Session), value(&cookies, CookieKind::Auth)) {
        (Some(session), Some(auth)) => (session, auth),
        other => panic!("registration cookies: {other:?}"),
    }
}

/// A cookie login with `auth` alone: (session, new auth) values.
async fn cookie_login(s: &Setup, auth: &str) -> (String, String) {
    let result = s.engine.authenticate(&Presented { auth: auth.into(), ..Presented::default() }).await;
    assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
    match (value(&result.cookies, CookieKind::Session), value(&result.cookies, CookieKind::Auth)) {
        (Some(session), Some(auth)) => (session, auth),
        other => panic!("cookie login cookies: {other:?}"),
    }
}

/// Logs `name` in with "remember me" and out again: the dead values.
async fn logged_out(s: &Setup, name: &str) -> (String, String) {
    let (session, auth) = register(s, name).await;
    let presented =
        Presented { session: session.as_str().into(), auth: auth.as_str().into(), ..Presented::default() };
    s.engine.logout(&presented).await.unwrap_or_else(|e| panic!("logout: {e}"));
    (session, auth)
}

async fn login_count(s: &Setup, name: &str) -> usize {
    s.store.list_logins(&user(name)).await.map(|l| l.len()).unwrap_or_else(|e| panic!("{e}"))
}

/// What the response does to the auth cookie: (host-only removal, removal,
/// value) per `Set-Cookie`, in order.
fn auth_changes(cookies: &[SetCookie]) -> Vec<(bool, bool)> {
    cookies
        .iter()
        .filter(|c| c.kind() == CookieKind::Auth)
        .map(|c| (c.is_host_only_removal(), c.is_removal()))
        .collect()
}

#[tokio::test]
async fn garbage_then_the_current_cookie_logs_in() {
    let s = setup();
    let (_, current) = register(&s, "alice").await;
    let result = s
        .engine
        .authenticate(&Presented { auth: values(&["garbage", &current]), ..Presented::default() })
        .await;
    assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
    assert_eq!(auth_changes(&result.cookies), [(false, false)], "the good cookie is replaced, never cleared");
    let rotated = value(&result.cookies, CookieKind::Auth).unwrap_or_default();

    // Garbage after the good value: the same.
    let result = s
        .engine
        .authenticate(&Presented { auth: values(&[&rotated, "garbage"]), ..Presented::default() })
        .await;
    assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
    assert_eq!(rotations(&s.store), 2, "one rotation per request");
}

#[tokio::test]
async fn a_dead_then_a_live_session_is_a_session_hit() {
    let s = setup();
    let (live, _) = register(&s, "alice").await;
    let (dead, _) = register(&s, "bob").await;
    s.engine
        .logout(&Presented { session: dead.as_str().into(), ..Presented::default() })
        .await
        .unwrap_or_default();
    for list in [[dead.as_str(), live.as_str()], ["1.garbage", live.as_str()]] {
        let result =
            s.engine.authenticate(&Presented { session: values(&list), ..Presented::default() }).await;
        assert!(
            matches!(&result.outcome, Outcome::Session(auth) if auth.username().as_str() == "alice"),
            "{:?}",
            result.outcome
        );
        assert!(
            result.cookies.is_empty(),
            "a hit changes no cookie, not even the dead one's: {:?}",
            result.cookies
        );
    }
}

#[tokio::test]
async fn a_users_session_wins_over_a_visitors() {
    let s = setup();
    let (_, visitor) = s.engine.create_anonymous(Default::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let (live, _) = register(&s, "alice").await;
    let result = s
        .engine
        .authenticate(&Presented { session: values(&[visitor.value(), &live]), ..Presented::default() })
        .await;
    assert!(matches!(result.outcome, Outcome::Session(_)), "{:?}", result.outcome);
    let result = s
        .engine
        .authenticate(&Presented { session: values(&["1.x", visitor.value()]), ..Presented::default() })
        .await;
    assert!(matches!(result.outcome, Outcome::AnonymousSession(_)), "{:?}", result.outcome);
}

#[tokio::test]
async fn a_replayed_value_next_to_the_current_one_revokes_nothing() {
    for replay_first in [true, false] {
        let s = setup();
        let (_, other_device) = register(&s, "alice").await;
        let (_, old) = register(&s, "alice").await;
        let (_, current) = cookie_login(&s, &old).await;
        s.clock.advance(Duration::minutes(5));
        // `old` alone is now a replay; next to `current` it is a stale twin.
        let list =
            if replay_first { [old.as_str(), current.as_str()] } else { [current.as_str(), old.as_str()] };
        let before = rotations(&s.store);
        let result = s.engine.authenticate(&Presented { auth: values(&list), ..Presented::default() }).await;
        assert!(
            matches!(result.outcome, Outcome::CookieLogin(_)),
            "replay first {replay_first}: {:?}",
            result.outcome
        );
        assert_eq!(rotations(&s.store), before + 1, "exactly one rotation");
        assert_eq!(s.thefts.0.load(Ordering::SeqCst), 0, "no theft acted on");
        assert_eq!(s.store.calls(Operation::DeleteUser), 0, "nothing revoked");
        assert_eq!(login_count(&s, "alice").await, 2);
        // The next request presents the stale value and the rotated one.
        let rotated = value(&result.cookies, CookieKind::Auth).unwrap_or_default();
        let result = s
            .engine
            .authenticate(&Presented { auth: values(&[&old, &rotated]), ..Presented::default() })
            .await;
        assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
        // The other device was never touched: its cookie is still current.
        cookie_login(&s, &other_device).await;
    }
}

#[tokio::test]
async fn with_no_value_authenticating_the_replay_is_acted_on() {
    let s = setup();
    let (_, old) = register(&s, "alice").await;
    let (_, current) = cookie_login(&s, &old).await;
    s.clock.advance(Duration::minutes(5));
    let unknown = {
        let mut cookie = AuthCookie::parse(&current).unwrap_or_else(|e| panic!("{e}"));
        cookie.serial = expected_core::Serial::from_bytes([42; 16]);
        cookie.encode()
    };
    let result = s
        .engine
        .authenticate(&Presented { auth: values(&[&unknown, "garbage", &old]), ..Presented::default() })
        .await;
    assert!(matches!(result.outcome, Outcome::Theft(_)), "a real replay: {:?}", result.outcome);
    assert_eq!(s.thefts.0.load(Ordering::SeqCst), 1);
    assert_eq!(login_count(&s, "alice").await, 0);
    assert_eq!(result.cookies.len(), 2, "clear both: {:?}", result.cookies);
    assert!(result.cookies.iter().all(SetCookie::is_removal));
}

#[tokio::test]
async fn two_dead_values_are_as_one() {
    let s = setup();
    let (session, auth) = logged_out(&s, "alice").await;
    let (other_session, other_auth) = logged_out(&s, "bob").await;

    let sessions = s
        .engine
        .authenticate(&Presented { session: values(&[&session, &other_session]), ..Presented::default() })
        .await;
    assert!(matches!(sessions.outcome, Outcome::Anonymous), "{:?}", sessions.outcome);
    let kinds: Vec<_> = sessions.cookies.iter().map(|c| (c.kind(), c.is_removal())).collect();
    assert_eq!(kinds, [(CookieKind::Session, true)], "one removal, as for one dead value");

    let logins = s
        .engine
        .authenticate(&Presented { auth: values(&[&auth, &other_auth]), ..Presented::default() })
        .await;
    assert!(matches!(logins.outcome, Outcome::UnknownLogin), "{:?}", logins.outcome);
    assert_eq!(logins.cookies.len(), 2, "clear both: {:?}", logins.cookies);

    let garbage =
        s.engine.authenticate(&Presented { auth: values(&["x", "y"]), ..Presented::default() }).await;
    assert!(matches!(garbage.outcome, Outcome::Malformed(CookieKind::Auth, _)), "{:?}", garbage.outcome);
    assert_eq!(auth_changes(&garbage.cookies), [(false, true)]);
}

#[tokio::test]
async fn of_two_current_logins_the_one_used_last_wins_and_the_other_is_left_alone() {
    let s = setup();
    let (_, first) = register(&s, "alice").await;
    s.clock.advance(Duration::minutes(1));
    let (_, second) = register(&s, "alice").await;
    s.clock.advance(Duration::minutes(1));
    let (_, first) = cookie_login(&s, &first).await; // now the one used last
    s.clock.advance(Duration::minutes(1));
    let result =
        s.engine.authenticate(&Presented { auth: values(&[&second, &first]), ..Presented::default() }).await;
    let Outcome::CookieLogin(auth) = &result.outcome else { panic!("{:?}", result.outcome) };
    let winner = AuthCookie::parse(&first).unwrap_or_else(|e| panic!("{e}")).serial;
    assert_eq!(auth.user().login, Some(winner), "the login used last");
    // The other login was not rotated: its cookie is still current.
    cookie_login(&s, &second).await;
    assert_eq!(s.thefts.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn inside_the_grace_window_the_current_twin_wins_over_the_previous() {
    let s = setup();
    let (_, old) = register(&s, "alice").await;
    let (_, current) = cookie_login(&s, &old).await;
    let result =
        s.engine.authenticate(&Presented { auth: values(&[&old, &current]), ..Presented::default() }).await;
    assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
}

#[tokio::test]
async fn after_a_domain_change_the_user_stays_logged_in_and_the_host_only_twin_is_cleared() {
    // Before the deploy: host-only cookies, no Domain.
    let before = setup();
    let (session, old) = register(&before, "alice").await;
    // The deploy adds a Domain; the same store.
    let store = before.store.clone();
    let config = Config::builder()
        .secure(false)
        .domain(Some("example.com".into()))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = Expected::new(store.clone(), config)
        .with_clock(before.clock.clone())
        .with_hooks(before.thefts.clone());
    let s = Setup { engine, store, clock: before.clock.clone(), thefts: before.thefts.clone() };

    // The session idles out; the host-only cookie logs in and the response
    // sets the Domain cookies, which the browser keeps next to the old ones.
    s.clock.advance(Duration::hours(1));
    let first = s
        .engine
        .authenticate(&Presented {
            session: session.as_str().into(),
            auth: old.as_str().into(),
            ..Presented::default()
        })
        .await;
    assert!(matches!(first.outcome, Outcome::CookieLogin(_)), "{:?}", first.outcome);
    let current = value(&first.cookies, CookieKind::Auth).unwrap_or_default();
    let new_session = value(&first.cookies, CookieKind::Session).unwrap_or_default();

    // Past the grace window the browser sends both, the older first.
    s.clock.advance(Duration::minutes(5));
    let both = s
        .engine
        .authenticate(&Presented {
            auth: values(&[&old, &current]),
            session: values(&[&session]),
            ..Presented::default()
        })
        .await;
    assert!(matches!(both.outcome, Outcome::CookieLogin(_)), "not a theft: {:?}", both.outcome);
    assert_eq!(s.thefts.0.load(Ordering::SeqCst), 0);
    assert_eq!(
        auth_changes(&both.cookies),
        [(true, true), (false, false)],
        "clear the host-only twin, then set the Domain one"
    );
    let headers: Vec<String> = both.cookies.iter().map(SetCookie::header_value).collect();
    let host_only = headers.iter().filter(|h| !h.contains("Domain=")).count();
    assert_eq!(host_only, 2, "the host-only session and auth cookies are cleared: {headers:?}");
    assert!(
        headers.iter().filter(|h| !h.contains("Domain=")).all(|h| h.contains("Max-Age=0")),
        "{headers:?}"
    );

    // The session cookie the first response set is dead (the second cookie
    // login replaced it); with the twins gone, the new cookies are a hit.
    let _ = new_session;
    let session = value(&both.cookies, CookieKind::Session).unwrap_or_default();
    let hit =
        s.engine.authenticate(&Presented { session: session.as_str().into(), ..Presented::default() }).await;
    assert!(matches!(hit.outcome, Outcome::Session(_)), "{:?}", hit.outcome);

    // Clearing clears both forms.
    let cleared =
        s.engine.logout(&Presented { session: session.as_str().into(), ..Presented::default() }).await;
    let cleared = cleared.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cleared.len(), 4, "host-only and Domain removal of each: {cleared:?}");
}

#[tokio::test]
async fn logout_and_login_end_every_presented_login_that_proves_itself() {
    let s = setup();
    let (_, first) = register(&s, "alice").await;
    let (_, second) = register(&s, "alice").await;
    let (_, third) = register(&s, "alice").await;
    cookie_login(&s, &third).await;
    s.clock.advance(Duration::minutes(5));
    // `third` is now a replayed token: it proves nothing and ends nothing.
    let cookies = s
        .engine
        .logout(&Presented { auth: values(&[&first, "junk", &second, &third]), ..Presented::default() })
        .await;
    assert!(cookies.is_ok());
    assert_eq!(login_count(&s, "alice").await, 1, "first and second ended, the replayed one's login stays");
    assert_eq!(s.thefts.0.load(Ordering::SeqCst), 0, "a logout never acts on a replay");
}

#[tokio::test]
async fn the_exchange_reads_every_value_and_acts_on_the_winner() {
    let s = setup();
    let engine =
        Arc::new(Expected::new(s.store.clone(), s.engine.config().clone()).with_clock(s.clock.clone()));
    let (live, remembered) = register(&s, "alice").await;
    let header = format!("session=1.garbage; remember_me=junk; session={live}; remember_me={remembered}");
    let cookies: PresentedCookies =
        read_cookie_headers([header.as_bytes()], engine.config()).unwrap_or_default();
    assert_eq!((cookies.session_values().len(), cookies.auth_values().len()), (2, 2));

    // A session hit through the second value; a logout then ends it.
    let exchange = Exchange::new(engine.clone(), cookies.clone(), ClientMeta::default());
    let user = exchange.current_user().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(user.map(|u| u.username), Some(user_name("alice")));
    exchange.logout().await.unwrap_or_else(|e| panic!("{e}"));
    let (set, saved) = exchange.finish().await;
    assert!(saved.is_ok());
    assert!(set.iter().all(SetCookie::is_removal), "{set:?}");
    assert_eq!(login_count(&s, "alice").await, 0, "the winner's login ended");
    let again = s.engine.authenticate(&Presented::from_cookies(&cookies, Default::default())).await;
    assert!(matches!(again.outcome, Outcome::UnknownLogin), "{:?}", again.outcome);
}

fn user_name(name: &str) -> Username {
    user(name)
}
