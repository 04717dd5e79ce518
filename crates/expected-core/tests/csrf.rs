//! The CSRF synchronizer token through an `Exchange`, as the adapters use
//! it: made on first use, kept in the session, compared whole.

use std::sync::Arc;

use expected_core::csrf::{self, CsrfError};
use expected_core::{
    ChaChaTokens, ClientMeta, Config, CookieKind, Exchange, Expected, SessionHandle, SetCookie, Username,
};
use expected_store_memory::MemoryStore;

type Engine = Arc<Expected<Arc<MemoryStore>>>;

fn engine(seed: u8) -> Engine {
    let config = Config::builder().secure(false).build().unwrap_or_else(|e| panic!("{e}"));
    Arc::new(
        Expected::new(Arc::new(MemoryStore::new()), config).with_tokens(ChaChaTokens::from_seed([seed; 32])),
    )
}

/// One device's cookies.
#[derive(Debug, Clone, Default)]
struct Jar {
    session: Option<String>,
    auth: Option<String>,
}

impl Jar {
    fn apply(&mut self, cookies: &[SetCookie]) {
        for cookie in cookies {
            let value = (!cookie.is_removal()).then(|| cookie.value().to_owned());
            match cookie.kind() {
                CookieKind::Session => self.session = value,
                CookieKind::Auth => self.auth = value,
            }
        }
    }
}

/// Runs one request for `jar` through `handler`, applying its cookies.
async fn request<T, F, Fut>(engine: &Engine, jar: &mut Jar, handler: F) -> T
where
    F: FnOnce(Arc<Exchange<Arc<MemoryStore>>>) -> Fut,
    Fut: Future<Output = T>,
{
    let presented = expected_core::cookies::PresentedCookies::new(
        jar.session.iter().map(String::as_str),
        jar.auth.iter().map(String::as_str),
    );
    let exchange = Arc::new(Exchange::new(engine.clone(), presented, ClientMeta::default()));
    let answer = handler(exchange.clone()).await;
    let (cookies, saved) = exchange.finish().await;
    assert!(saved.is_ok(), "{saved:?}");
    jar.apply(&cookies);
    answer
}

fn session(exchange: &Arc<Exchange<Arc<MemoryStore>>>) -> SessionHandle<Arc<MemoryStore>> {
    SessionHandle::new(exchange.clone())
}

#[tokio::test]
async fn a_session_token_passes_and_nothing_else_does() {
    let engine = engine(3);
    let mut jar = Jar::default();

    // No session: nothing to compare with, and verifying makes none.
    let refused =
        request(&engine, &mut jar, |x| async move { session(&x).verify_csrf(Some("x")).await }).await;
    assert!(matches!(refused, Err(CsrfError::NoSession)), "{refused:?}");
    assert!(jar.session.is_none(), "verifying creates no session");

    // The first use makes the token, and a visitor's session to keep it.
    let token = request(&engine, &mut jar, |x| async move { session(&x).csrf_token().await }).await;
    let token = token.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(token.len(), 43, "32 bytes of base64url: {token}");
    assert!(jar.session.is_some(), "kept in a new visitor session");
    let again = request(&engine, &mut jar, |x| async move { session(&x).csrf_token().await }).await;
    assert_eq!(again.ok().as_deref(), Some(token.as_str()), "the same token for the session's life");
    let stored =
        request(&engine, &mut jar, |x| async move { session(&x).get::<String>(csrf::SESSION_KEY).await })
            .await;
    assert_eq!(stored.ok().flatten().as_deref(), Some(token.as_str()), "under the documented key");

    let presented = token.clone();
    let ok =
        request(&engine, &mut jar, |x| async move { session(&x).verify_csrf(Some(&presented)).await }).await;
    assert!(ok.is_ok(), "{ok:?}");
    for wrong in [String::new(), token[..42].to_owned(), format!("{token}A"), "A".repeat(43)] {
        let refused =
            request(&engine, &mut jar, |x| async move { session(&x).verify_csrf(Some(&wrong)).await }).await;
        assert!(matches!(refused, Err(CsrfError::Missing | CsrfError::Mismatch)), "{refused:?}");
    }
    let refused = request(&engine, &mut jar, |x| async move { session(&x).verify_csrf(None).await }).await;
    assert!(matches!(refused, Err(CsrfError::Missing)), "{refused:?}");

    // Another session's token is not this one's.
    let mut other = Jar::default();
    let theirs = request(&engine, &mut other, |x| async move { session(&x).csrf_token().await }).await;
    let theirs = theirs.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(theirs, token);
    let refused =
        request(&engine, &mut jar, |x| async move { session(&x).verify_csrf(Some(&theirs)).await }).await;
    assert!(matches!(refused, Err(CsrfError::Mismatch)), "{refused:?}");
}

#[tokio::test]
async fn tokens_come_from_the_engines_source_and_die_with_the_session() {
    // The same seeded source, the same token: it is the engine's source.
    let (first, second) = (engine(9), engine(9));
    let mut jars = (Jar::default(), Jar::default());
    let a = request(&first, &mut jars.0, |x| async move { session(&x).csrf_token().await }).await;
    let b = request(&second, &mut jars.1, |x| async move { session(&x).csrf_token().await }).await;
    assert_eq!(a.ok(), b.ok());

    // A logged-in, remembered user: the token is carried into the login's
    // session like any visitor data, and a cookie login's new session has
    // none, so a form rendered before it no longer passes.
    let engine = engine(4);
    let mut jar = Jar::default();
    let alice = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
    let token = request(&engine, &mut jar, |x| async move { session(&x).csrf_token().await }).await;
    let token = token.unwrap_or_else(|e| panic!("{e}"));
    let who = alice.clone();
    let registered = request(&engine, &mut jar, |x| async move { x.register(&who, true).await }).await;
    assert!(registered.is_ok(), "{registered:?}");
    let presented = token.clone();
    let ok =
        request(&engine, &mut jar, |x| async move { session(&x).verify_csrf(Some(&presented)).await }).await;
    assert!(ok.is_ok(), "carried over the login: {ok:?}");

    let mut restarted = Jar { session: None, ..jar.clone() };
    let presented = token.clone();
    let refused =
        request(&engine, &mut restarted, |x| async move { session(&x).verify_csrf(Some(&presented)).await })
            .await;
    assert!(
        matches!(refused, Err(CsrfError::Mismatch)),
        "a cookie login's session has no token: {refused:?}"
    );
    assert!(restarted.session.is_some() && restarted.session != jar.session, "the cookie login happened");
    let fresh = request(&engine, &mut restarted, |x| async move { session(&x).csrf_token().await }).await;
    assert_ne!(fresh.ok().as_deref(), Some(token.as_str()), "a new session, a new token");

    // Whatever an application wrote under the key is not a token.
    let mut odd = Jar::default();
    request(&engine, &mut odd, |x| async move { session(&x).insert(csrf::SESSION_KEY, 42).await }).await.ok();
    let refused =
        request(&engine, &mut odd, |x| async move { session(&x).verify_csrf(Some("42")).await }).await;
    assert!(matches!(refused, Err(CsrfError::Mismatch)), "{refused:?}");
    let made = request(&engine, &mut odd, |x| async move { session(&x).csrf_token().await }).await;
    assert_eq!(made.map(|token| token.len()).ok(), Some(43), "replaced by a token");
}
