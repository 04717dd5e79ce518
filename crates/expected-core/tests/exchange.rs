//! The request/response exchange that adapters drive.

use std::sync::Arc;

use expected_conformance::Flaky;
use expected_core::exchange::{OnStoreError, client_ip};
use expected_core::time::Duration;
use expected_core::{
    ClientMeta, Config, CookieKind, DynStore, Exchange, Expected, ManualClock, SetCookie, Username, Via,
};
use expected_store_memory::MemoryStore;

struct Setup {
    engine: Arc<Expected<DynStore>>,
    flaky: Arc<Flaky<MemoryStore>>,
    clock: ManualClock,
}

fn setup() -> Setup {
    let flaky = Arc::new(Flaky::new(MemoryStore::new()));
    let clock = ManualClock::starting_now();
    let config = Config::builder().secure(false).build().unwrap_or_else(|e| panic!("{e}"));
    let engine = Expected::new(flaky.clone(), config).with_clock(clock.clone()).into_dyn();
    Setup { engine: Arc::new(engine), flaky, clock }
}

fn value(cookies: &[SetCookie], kind: CookieKind) -> Option<String> {
    cookies.iter().find(|c| c.kind() == kind && !c.is_removal()).map(|c| c.value().to_owned())
}

async fn begin(s: &Setup, session: Option<String>, auth: Option<String>) -> Exchange<DynStore> {
    Exchange::begin(s.engine.clone(), session, auth, ClientMeta::new(None, Some("test"))).await
}

fn alice() -> Username {
    Username::new("alice").unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn register_then_session_data_then_cookie_login() {
    let s = setup();
    let exchange = begin(&s, None, None).await;
    assert_eq!(exchange.username(), None);
    assert!(exchange.insert("k", 1).is_err(), "no session before login");
    exchange.register(&alice(), true).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exchange.via(), Some(Via::Password));
    exchange.insert("cart", vec!["book"]).unwrap_or_else(|e| panic!("{e}"));
    let (cookies, saved) = exchange.finish().await;
    assert!(saved.is_ok());
    let (session, auth) = (value(&cookies, CookieKind::Session), value(&cookies, CookieKind::Auth));
    assert!(session.is_some() && auth.is_some());

    let next = begin(&s, session.clone(), auth.clone()).await;
    assert_eq!(next.via(), Some(Via::Session));
    assert_eq!(
        next.get::<Vec<String>>("cart").ok().flatten(),
        Some(vec!["book".to_owned()]),
        "data was saved"
    );
    assert!(next.finish().await.0.is_empty(), "nothing to set on a plain hit");

    s.clock.advance(Duration::hours(1));
    let later = begin(&s, session, auth).await;
    assert_eq!(later.via(), Some(Via::CookieLogin));
    assert_eq!(later.username(), Some(alice()));
    let (cookies, _) = later.finish().await;
    assert_eq!(cookies.len(), 2, "rotated auth cookie and new session cookie");
}

#[tokio::test]
async fn logout_and_revoking_this_device_clear_both_cookies() {
    let s = setup();
    let first = begin(&s, None, None).await;
    first.register(&alice(), true).await.unwrap_or_else(|e| panic!("{e}"));
    let (cookies, _) = first.finish().await;
    let (session, auth) = (value(&cookies, CookieKind::Session), value(&cookies, CookieKind::Auth));

    let exchange = begin(&s, session.clone(), auth.clone()).await;
    let serial = exchange.login().unwrap_or_else(|| panic!("remembered"));
    let devices = exchange.devices().await.ok().flatten().unwrap_or_default();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].current);
    assert_eq!(exchange.revoke(&serial).await.ok().flatten(), Some(true));
    assert_eq!(exchange.username(), None, "revoking this device logs it out");
    let (cookies, _) = exchange.finish().await;
    assert_eq!(cookies.len(), 2);
    assert!(cookies.iter().all(SetCookie::is_removal));
    assert_eq!(begin(&s, session, auth).await.username(), None);
}

#[tokio::test]
async fn register_then_logout_in_one_exchange_leaves_nothing_behind() {
    let s = setup();
    let exchange = begin(&s, None, None).await;
    exchange.register(&alice(), true).await.unwrap_or_else(|e| panic!("{e}"));
    exchange.logout().await.unwrap_or_else(|e| panic!("{e}"));
    let (cookies, _) = exchange.finish().await;
    assert!(cookies.iter().all(SetCookie::is_removal), "the last word for each cookie wins");
    let logins = s.engine.devices(&alice(), None).await.unwrap_or_default();
    assert!(logins.is_empty(), "logout ended the login registered earlier in the same exchange");
}

#[tokio::test]
async fn an_outage_is_reported_and_touches_no_cookie() {
    let s = setup();
    let first = begin(&s, None, None).await;
    first.register(&alice(), true).await.unwrap_or_else(|e| panic!("{e}"));
    let (cookies, _) = first.finish().await;
    s.flaky.set_down(true);
    let exchange = begin(&s, value(&cookies, CookieKind::Session), value(&cookies, CookieKind::Auth)).await;
    assert!(exchange.store_unavailable());
    assert!(exchange.refused(OnStoreError::ServiceUnavailable));
    assert!(!exchange.refused(OnStoreError::Anonymous));
    assert_eq!(exchange.username(), None);
    assert_eq!(exchange.require_user(), Err(expected_core::exchange::Unauthenticated::NotLoggedIn));
    assert!(exchange.finish().await.0.is_empty());
}

#[tokio::test]
async fn theft_is_reported_on_the_exchange() {
    let s = setup();
    let first = begin(&s, None, None).await;
    first.register(&alice(), true).await.unwrap_or_else(|e| panic!("{e}"));
    let (cookies, _) = first.finish().await;
    let stolen = value(&cookies, CookieKind::Auth);
    s.clock.advance(Duration::hours(1));
    assert_eq!(begin(&s, None, stolen.clone()).await.via(), Some(Via::CookieLogin));
    s.clock.advance(Duration::minutes(1));
    let replay = begin(&s, None, stolen).await;
    assert_eq!(replay.theft().map(|t| t.username), Some(alice()));
    assert!(replay.theft_detected());
    assert_eq!(replay.username(), None);
    assert_eq!(replay.require_user(), Err(expected_core::exchange::Unauthenticated::UnexpectedToken));
}

#[test]
fn client_ip_prefers_the_trusted_header_and_its_last_hop() {
    let peer = Some(std::net::IpAddr::from([10, 0, 0, 1]));
    let last_hop = Some(std::net::IpAddr::from([198, 51, 100, 2]));
    assert_eq!(client_ip(Some("203.0.113.9, 198.51.100.2"), peer), last_hop);
    assert_eq!(
        client_ip(Some(" 2001:db8::1 "), peer),
        Some("2001:db8::1".parse().unwrap_or_else(|e| panic!("{e}")))
    );
    assert_eq!(client_ip(None, peer), peer, "no trusted header: the peer");
    assert_eq!(client_ip(Some("garbage"), peer), peer, "unparseable falls back to the peer");
}
