//! The request/response exchange that adapters drive: lazy authentication,
//! sessions for anonymous visitors, freshness.

use std::sync::Arc;

use expected_conformance::{Flaky, Operation};
use expected_core::cookies::PresentedCookies;
use expected_core::exchange::{AuthError, SessionError};
use expected_core::time::Duration;
use expected_core::{
    AuthMethod, ClientMeta, Config, CookieKind, DynStore, Exchange, Expected, ManualClock, SetCookie,
    Unauthenticated, Username, Via,
};
use expected_store_memory::MemoryStore;

struct Setup {
    engine: Arc<Expected<DynStore>>,
    flaky: Arc<Flaky<MemoryStore>>,
    clock: ManualClock,
}

fn setup_with(config: Config) -> Setup {
    let flaky = Arc::new(Flaky::new(MemoryStore::new()));
    let clock = ManualClock::starting_now();
    let engine = Expected::new(flaky.clone(), config).with_clock(clock.clone()).into_dyn();
    Setup { engine: Arc::new(engine), flaky, clock }
}

fn setup() -> Setup {
    setup_with(Config::builder().secure(false).build().unwrap_or_else(|e| panic!("{e}")))
}

fn value(cookies: &[SetCookie], kind: CookieKind) -> Option<String> {
    cookies.iter().find(|c| c.kind() == kind && !c.is_removal()).map(|c| c.value().to_owned())
}

fn begin(s: &Setup, session: Option<String>, auth: Option<String>) -> Exchange<DynStore> {
    let cookies = PresentedCookies::new(session.as_deref(), auth.as_deref());
    begin_with(s, cookies)
}

fn begin_with(s: &Setup, cookies: PresentedCookies) -> Exchange<DynStore> {
    Exchange::new(s.engine.clone(), cookies, ClientMeta::new(None, Some("test")))
}

fn alice() -> Username {
    Username::new("alice").unwrap_or_else(|e| panic!("{e}"))
}

fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// Logs alice in with "remember me" and answers her (session, auth) cookies.
async fn logged_in(s: &Setup) -> (Option<String>, Option<String>) {
    let first = begin(s, None, None);
    ok(first.register(&alice(), true).await);
    let (cookies, saved) = first.finish().await;
    assert!(saved.is_ok(), "registering saves nothing more");
    (value(&cookies, CookieKind::Session), value(&cookies, CookieKind::Auth))
}

#[tokio::test]
async fn nothing_is_read_until_asked() {
    let s = setup();
    let (session, auth) = logged_in(&s).await;
    let calls = s.flaky.total_calls();
    let exchange = begin(&s, session, auth);
    let (cookies, saved) = exchange.finish().await;
    assert!(saved.is_ok());
    assert!(cookies.is_empty(), "a request that never asks sets no cookie");
    assert_eq!(s.flaky.total_calls(), calls, "a request that never asks makes no store call");
    assert!(!exchange.was_loaded().await);
}

#[tokio::test]
async fn register_then_session_data_then_cookie_login() {
    let s = setup();
    let exchange = begin(&s, None, None);
    assert_eq!(ok(exchange.current_user().await), None);
    ok(exchange.register(&alice(), true).await);
    let user = ok(exchange.current_user().await).unwrap_or_else(|| panic!("registered"));
    assert_eq!((user.via, user.method), (Via::Password, AuthMethod::Password));
    ok(exchange.insert("cart", vec!["book"]).await);
    let (cookies, saved) = exchange.finish().await;
    assert!(saved.is_ok());
    let (session, auth) = (value(&cookies, CookieKind::Session), value(&cookies, CookieKind::Auth));
    assert!(session.is_some() && auth.is_some(), "both cookies set on a remembered login");

    let next = begin(&s, session.clone(), auth.clone());
    assert_eq!(ok(next.current_user().await).map(|u| u.via), Some(Via::Session));
    assert_eq!(ok(next.get::<Vec<String>>("cart").await), Some(vec!["book".to_owned()]), "data was saved");
    assert!(next.finish().await.0.is_empty(), "nothing to set on a plain hit");

    s.clock.advance(Duration::hours(1));
    let later = begin(&s, session, auth);
    let user = ok(later.current_user().await).unwrap_or_else(|| panic!("cookie login"));
    assert_eq!((user.via, user.method), (Via::CookieLogin, AuthMethod::Remembered));
    assert_eq!(user.username, alice());
    assert_eq!(
        ok(later.get::<Vec<String>>("cart").await),
        None,
        "session data does not survive a cookie login"
    );
    let (cookies, _) = later.finish().await;
    assert_eq!(cookies.len(), 2, "rotated auth cookie and new session cookie");
}

#[tokio::test]
async fn a_visitor_who_only_reads_costs_no_write_and_gets_no_cookie() {
    let s = setup();
    let exchange = begin(&s, None, None);
    assert_eq!(ok(exchange.get::<String>("theme").await), None);
    assert!(ok(exchange.data().await).is_empty());
    let writes_before = s.flaky.calls(Operation::CreateSession);
    let (cookies, saved) = exchange.finish().await;
    assert!(saved.is_ok());
    assert!(cookies.is_empty(), "no cookie for a visitor who never writes");
    assert_eq!(s.flaky.calls(Operation::CreateSession), writes_before, "no session record created");
}

#[tokio::test]
async fn a_visitors_data_lives_in_an_anonymous_session_and_moves_into_the_login() {
    let s = setup();
    let visit = begin(&s, None, None);
    ok(visit.insert("theme", "dark").await);
    let (cookies, saved) = visit.finish().await;
    assert!(saved.is_ok());
    let anonymous =
        value(&cookies, CookieKind::Session).unwrap_or_else(|| panic!("a session cookie on first write"));
    assert_eq!(anonymous.split('.').count(), 2, "the anonymous cookie form carries no username");

    let again = begin(&s, Some(anonymous.clone()), None);
    assert_eq!(ok(again.get::<String>("theme").await).as_deref(), Some("dark"), "the visitor's data is back");
    assert_eq!(ok(again.current_user().await), None, "a visitor is not logged in");
    ok(again.insert("note", "hello").await);
    ok(again.register(&alice(), false).await);
    let (cookies, saved) = again.finish().await;
    assert!(saved.is_ok());
    let logged_in = value(&cookies, CookieKind::Session).unwrap_or_else(|| panic!("a new session cookie"));
    assert_ne!(logged_in, anonymous, "login gives the session a new id: no fixation");

    let after = begin(&s, Some(logged_in), None);
    assert_eq!(ok(after.get::<String>("theme").await).as_deref(), Some("dark"), "stored data carried over");
    assert_eq!(ok(after.get::<String>("note").await).as_deref(), Some("hello"), "unsaved data carried over");
    let old = begin(&s, Some(anonymous), None);
    assert!(ok(old.data().await).is_empty(), "the anonymous session is gone");
}

#[tokio::test]
async fn data_written_in_the_login_request_itself_moves_into_the_login() {
    let s = setup();
    let exchange = begin(&s, None, None);
    ok(exchange.insert("oauth_state", "xyz").await);
    ok(exchange.register(&alice(), true).await);
    let (cookies, saved) = exchange.finish().await;
    assert!(saved.is_ok());
    let next = begin(&s, value(&cookies, CookieKind::Session), None);
    assert_eq!(
        ok(next.get::<String>("oauth_state").await).as_deref(),
        Some("xyz"),
        "data not yet stored when the visitor logged in is carried too"
    );
    assert_eq!(s.flaky.inner().len().1, 1, "only the logged-in session exists: no anonymous record was made");
}

#[tokio::test]
async fn logout_ends_the_data_and_the_next_write_starts_a_new_anonymous_session() {
    let s = setup();
    let (session, auth) = logged_in(&s).await;
    let exchange = begin(&s, session.clone(), auth);
    ok(exchange.insert("k", 1).await);
    ok(exchange.logout().await);
    assert!(ok(exchange.data().await).is_empty(), "logout ends the session data");
    ok(exchange.insert("after", 2).await);
    let (cookies, saved) = exchange.finish().await;
    assert!(saved.is_ok());
    let fresh = value(&cookies, CookieKind::Session).unwrap_or_else(|| panic!("a new anonymous session"));
    assert_ne!(Some(fresh.clone()), session);
    assert!(cookies.iter().any(|c| c.kind() == CookieKind::Auth && c.is_removal()), "auth cookie cleared");
    let next = begin(&s, Some(fresh), None);
    assert_eq!(ok(next.get::<i32>("after").await), Some(2));
    assert_eq!(ok(next.get::<i32>("k").await), None, "the logged-in data did not survive logout");
    assert_eq!(ok(next.current_user().await), None);
}

#[tokio::test]
async fn session_data_over_the_limit_is_refused_and_changes_nothing() {
    let config = Config::builder().secure(false).max_session_data_bytes(64).build();
    let s = setup_with(config.unwrap_or_else(|e| panic!("{e}")));
    let exchange = begin(&s, None, None);
    ok(exchange.insert("small", "x").await);
    let refused = exchange.insert("big", "y".repeat(100)).await;
    assert!(matches!(refused, Err(SessionError::TooLarge { limit: 64, .. })), "{refused:?}");
    assert_eq!(ok(exchange.get::<String>("big").await), None, "the refused write changed nothing");
    assert_eq!(ok(exchange.get::<String>("small").await).as_deref(), Some("x"));
}

#[tokio::test]
async fn cycle_id_keeps_data_and_kills_the_old_id() {
    let s = setup();
    let (session, _) = logged_in(&s).await;
    let exchange = begin(&s, session.clone(), None);
    ok(exchange.insert("k", "v").await);
    ok(exchange.cycle_id().await);
    let (cookies, saved) = exchange.finish().await;
    assert!(saved.is_ok());
    let cycled = value(&cookies, CookieKind::Session).unwrap_or_else(|| panic!("a new id"));
    assert_ne!(Some(cycled.clone()), session);
    let next = begin(&s, Some(cycled), None);
    assert_eq!(ok(next.get::<String>("k").await).as_deref(), Some("v"), "data kept across the new id");
    assert_eq!(ok(next.current_user().await).map(|u| u.username), Some(alice()), "still logged in");
    let old = begin(&s, session, None);
    assert_eq!(ok(old.current_user().await), None, "the old id no longer works");
}

#[tokio::test]
async fn freshness_after_a_cookie_login_needs_a_password_confirmation() {
    let s = setup();
    let (_, auth) = logged_in(&s).await;
    let fresh_for = std::time::Duration::from_secs(600);
    s.clock.advance(Duration::hours(2));
    let exchange = begin(&s, None, auth);
    let refused = exchange.require_fresh(fresh_for).await;
    assert!(
        matches!(refused, Err(AuthError::Unauthenticated(Unauthenticated::ReauthenticationRequired))),
        "a cookie login is not fresh: {refused:?}"
    );
    ok(exchange.confirm_password().await);
    let user = ok(exchange.require_fresh(fresh_for).await);
    assert_eq!(user.method, AuthMethod::Password);
    let (cookies, _) = exchange.finish().await;
    let session = value(&cookies, CookieKind::Session);

    let next = begin(&s, session.clone(), None);
    assert!(
        ok(next.require_fresh(fresh_for).await).method == AuthMethod::Password,
        "stored, not just in memory"
    );
    s.clock.advance(Duration::minutes(11));
    let later = begin(&s, session, None);
    assert!(later.require_fresh(fresh_for).await.is_err(), "freshness wears off after max_age");
    let devices = ok(later.devices().await);
    assert_eq!(devices.len(), 1);
    assert_eq!(
        devices[0].authenticated_at,
        s.clock_now_minus(Duration::minutes(11)),
        "the login's authenticated_at moved with the confirmation"
    );
}

#[tokio::test]
async fn logout_others_keeps_this_device_only() {
    let s = setup();
    let (this_session, this_auth) = logged_in(&s).await;
    let (other_session, other_auth) = logged_in(&s).await;
    let exchange = begin(&s, this_session.clone(), this_auth.clone());
    let deleted = ok(exchange.logout_others().await);
    assert_eq!((deleted.logins, deleted.sessions), (1, 1), "the other device's login and session ended");
    assert!(exchange.finish().await.0.is_empty(), "this device's cookies stay");
    let this = begin(&s, this_session, None);
    assert_eq!(ok(this.current_user().await).map(|u| u.username), Some(alice()));
    let other = begin(&s, other_session, other_auth);
    assert_eq!(ok(other.current_user().await), None, "the other device is logged out");
}

#[tokio::test]
async fn logout_and_revoking_this_device_clear_both_cookies() {
    let s = setup();
    let (session, auth) = logged_in(&s).await;
    let exchange = begin(&s, session.clone(), auth.clone());
    let serial =
        ok(exchange.current_user().await).and_then(|u| u.login).unwrap_or_else(|| panic!("remembered"));
    let devices = ok(exchange.devices().await);
    assert_eq!(devices.len(), 1);
    assert!(devices[0].current);
    assert!(ok(exchange.revoke(&serial).await));
    assert_eq!(ok(exchange.current_user().await), None, "revoking this device logs it out");
    let (cookies, _) = exchange.finish().await;
    assert_eq!(cookies.len(), 2);
    assert!(cookies.iter().all(SetCookie::is_removal));
    assert_eq!(ok(begin(&s, session, auth).current_user().await), None);
}

#[tokio::test]
async fn signed_out_requests_are_refused_by_the_user_operations() {
    let s = setup();
    let exchange = begin(&s, None, None);
    let refused = exchange.devices().await;
    assert!(matches!(refused, Err(AuthError::Unauthenticated(Unauthenticated::NotLoggedIn))), "{refused:?}");
    assert!(exchange.logout_others().await.is_err());
    assert!(exchange.logout_everywhere().await.is_err());
    assert!(exchange.confirm_password().await.is_err());
}

#[tokio::test]
async fn register_then_logout_in_one_exchange_leaves_nothing_behind() {
    let s = setup();
    let exchange = begin(&s, None, None);
    ok(exchange.register(&alice(), true).await);
    ok(exchange.logout().await);
    let (cookies, _) = exchange.finish().await;
    assert!(cookies.iter().all(SetCookie::is_removal), "the last word for each cookie wins");
    let logins = s.engine.devices(&alice(), None).await.unwrap_or_default();
    assert!(logins.is_empty(), "logout ended the login registered earlier in the same exchange");
}

#[tokio::test]
async fn an_outage_is_met_where_first_asked_and_touches_no_cookie() {
    let s = setup();
    let (session, auth) = logged_in(&s).await;
    s.flaky.set_down(true);
    let exchange = begin(&s, session, auth);
    assert!(!exchange.store_failed().await, "nothing asked yet");
    assert!(exchange.current_user().await.is_err(), "the first question meets the outage");
    assert!(exchange.store_failed().await);
    assert!(matches!(exchange.require_user().await, Err(AuthError::Store(_))), "fail closed, not 401");
    assert!(matches!(exchange.get::<i32>("k").await, Err(SessionError::Store(_))));
    assert!(exchange.insert("k", 1).await.is_err(), "no write on top of an unknown session");
    let (cookies, saved) = exchange.finish().await;
    assert!(cookies.is_empty(), "an outage changes no cookie");
    assert!(saved.is_ok());
}

#[tokio::test]
async fn conclude_answers_what_the_three_calls_answer() {
    let s = setup();
    let (session, auth) = logged_in(&s).await;

    // Nobody asked: nothing read, nothing set, nothing to keep from caches.
    let calls = s.flaky.total_calls();
    let untouched = begin(&s, session.clone(), auth.clone()).conclude().await;
    assert!(!untouched.asked && !untouched.store_failed && untouched.cookies.is_empty());
    assert!(untouched.saved.is_ok());
    assert_eq!(s.flaky.total_calls(), calls, "concluding an exchange nobody asked reads nothing");

    // A visitor's first write: concluding creates the session and sets its cookie.
    let visitor = begin(&s, None, None);
    ok(visitor.insert("cart", 1).await);
    let concluded = visitor.conclude().await;
    assert!(concluded.saved.is_ok());
    assert!(value(&concluded.cookies, CookieKind::Session).is_some(), "the new visitor session's cookie");
    assert!(concluded.asked && !concluded.store_failed);

    // A cookie login: asked, and the rotated cookies to send.
    s.clock.advance(Duration::hours(1));
    let remembered = begin(&s, None, auth.clone());
    assert_eq!(ok(remembered.current_user().await).map(|u| u.via), Some(Via::CookieLogin));
    let concluded = remembered.conclude().await;
    let rotated = value(&concluded.cookies, CookieKind::Auth);
    assert!(rotated.is_some() && rotated != auth, "the rotated auth cookie goes out");
    assert!(concluded.asked && !concluded.store_failed && concluded.saved.is_ok());

    // An outage met by the first question: no cookie, nothing saved.
    s.flaky.set_down(true);
    let failed = begin(&s, session, rotated);
    assert!(failed.current_user().await.is_err());
    let concluded = failed.conclude().await;
    assert!(concluded.asked && concluded.store_failed);
    assert!(concluded.cookies.is_empty(), "an outage changes no cookie");
    assert!(concluded.saved.is_ok());
}

#[tokio::test]
async fn theft_is_reported_on_the_exchange() {
    let s = setup();
    let (_, stolen) = logged_in(&s).await;
    s.clock.advance(Duration::hours(1));
    let first = begin(&s, None, stolen.clone());
    assert_eq!(ok(first.current_user().await).map(|u| u.via), Some(Via::CookieLogin));
    s.clock.advance(Duration::minutes(1));
    let replay = begin(&s, None, stolen);
    assert_eq!(ok(replay.theft().await).map(|t| t.username), Some(alice()));
    assert_eq!(ok(replay.current_user().await), None);
    assert!(matches!(
        replay.require_user().await,
        Err(AuthError::Unauthenticated(Unauthenticated::UnexpectedToken))
    ));
}

trait ClockExt {
    fn clock_now_minus(&self, by: Duration) -> expected_core::time::OffsetDateTime;
}

impl ClockExt for Setup {
    fn clock_now_minus(&self, by: Duration) -> expected_core::time::OffsetDateTime {
        self.engine.now() - by
    }
}
