//! A tour of the protocol for the telemetry tests: one engine driven
//! through every authentication outcome, each cause of an ended login,
//! every store operation and a store outage, keeping every secret it saw.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use expected_conformance::Flaky;
use expected_core::time::Duration;
use expected_core::{
    AuthCookie, ChaChaTokens, Client, Config, CookieKind, Expected, Hooks, ManualClock, Presented,
    SessionCookie, SessionData, SetCookie, StoreError, Username,
};
use expected_store_memory::MemoryStore;

/// The users of the tour. The victim's name is distinctive, so that a trace
/// that spelled it out would be found.
pub(crate) const VICTIM: &str = "victim-Zq7@example.org";
pub(crate) const BOB: &str = "bob-Kx2@example.org";
pub(crate) const CAROL: &str = "carol-Jm5@example.org";
/// The user the hooks refuse.
pub(crate) const MALLORY: &str = "mallory-Wv9@example.org";
pub(crate) const DAVE: &str = "dave-Rt3@example.org";
pub(crate) const ERIN: &str = "erin-Hs8@example.org";

pub(crate) type Store = Arc<Flaky<MemoryStore>>;
pub(crate) type Engine = Expected<Store>;

pub(crate) fn user(name: &str) -> Username {
    Username::new(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Refuses [`MALLORY`].
struct RefuseMallory;

#[async_trait]
impl Hooks for RefuseMallory {
    async fn is_user_valid(&self, username: &Username) -> Result<bool, StoreError> {
        Ok(username.as_str() != MALLORY)
    }
}

pub(crate) fn engine() -> (Engine, Store, ManualClock) {
    let store = Arc::new(Flaky::new(MemoryStore::new()));
    let clock = ManualClock::starting_now();
    let config = Config::builder().secure(false).build().unwrap_or_else(|e| panic!("{e}"));
    let engine = Expected::new(store.clone(), config)
        .with_clock(clock.clone())
        .with_tokens(ChaChaTokens::from_seed([3; 32]))
        .with_hooks(RefuseMallory);
    (engine, store, clock)
}

/// One device's cookies and the client it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jar {
    pub(crate) session: Option<String>,
    pub(crate) auth: Option<String>,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) user_agent: Option<String>,
}

impl Jar {
    pub(crate) fn device(ip: &str, user_agent: &str) -> Self {
        Self { ip: ip.parse().ok(), user_agent: Some(user_agent.to_owned()), ..Self::default() }
    }

    pub(crate) fn presented(&self) -> Presented<'_> {
        Presented {
            session: self.session.as_deref().into(),
            auth: self.auth.as_deref().into(),
            client: Client { ip: self.ip, user_agent: self.user_agent.as_deref() },
        }
    }

    pub(crate) fn auth_only(&self) -> Self {
        Self { session: None, ..self.clone() }
    }

    pub(crate) fn apply(&mut self, cookies: &[SetCookie]) {
        for cookie in cookies {
            let value = (!cookie.is_removal()).then(|| cookie.value().to_owned());
            match cookie.kind() {
                CookieKind::Session => self.session = value,
                CookieKind::Auth => self.auth = value,
            }
        }
    }
}

/// Every secret the tour saw, in every form it could leak in: each cookie
/// value whole, the token and session id inside it, the username's base64
/// the cookies carry, the stored digests, and what their `Debug` shows.
#[derive(Debug, Default)]
pub(crate) struct Secrets(pub(crate) Vec<String>);

impl Secrets {
    pub(crate) fn jar(&mut self, jar: &Jar) {
        for value in [&jar.session, &jar.auth].into_iter().flatten() {
            self.value(value);
        }
    }

    pub(crate) fn cookies(&mut self, cookies: &[SetCookie]) {
        for cookie in cookies.iter().filter(|cookie| !cookie.is_removal()) {
            self.value(cookie.value());
        }
    }

    fn value(&mut self, value: &str) {
        self.0.push(value.to_owned());
        if let Ok(auth) = AuthCookie::parse(value) {
            self.0.push(auth.token.to_base64());
            let digest = auth.token.digest();
            self.0.push(digest.to_base64());
            self.0.push(format!("{digest:?}"));
        }
        if let Ok(session) = SessionCookie::parse(value) {
            self.0.push(session.id.to_base64());
            let digest = session.id.digest();
            self.0.push(digest.to_base64());
            self.0.push(format!("{digest:?}"));
        }
        // The username's base64, as the cookie carries it.
        if let Some(part) = value.split('.').nth(1).filter(|part| part.len() > 4) {
            self.0.push(part.to_owned());
        }
    }
}

async fn register(engine: &Engine, name: &str, remember: bool, jar: &mut Jar, seen: &mut Secrets) {
    let registration = engine.register(&user(name), remember, &jar.presented()).await;
    let registration = registration.unwrap_or_else(|e| panic!("register {name}: {e}"));
    seen.cookies(&registration.cookies);
    jar.apply(&registration.cookies);
}

async fn authenticate(engine: &Engine, jar: &mut Jar, seen: &mut Secrets, expected: &str) {
    seen.jar(jar);
    let result = engine.authenticate(&jar.presented()).await;
    assert_eq!(result.outcome.as_str(), expected, "{:?}", result.outcome);
    seen.cookies(&result.cookies);
    jar.apply(&result.cookies);
}

/// Drives `engine` through every authentication outcome once (in this
/// order: anonymous, anonymous_session, malformed, session, cookie_login,
/// grace, grace_refused, theft, unknown_login, user_rejected, unavailable,
/// expired_login), two registrations per kind (remembered, not), and ends
/// one login for each of logout, revoked, theft (the victim's one login),
/// user_rejected and expired; plus the other operations (devices, confirm,
/// cycle, save, logout everywhere and others, clean). Answers the secrets.
pub(crate) async fn tour(engine: &Engine, store: &Store, clock: &ManualClock) -> Secrets {
    let mut seen = Secrets::default();

    let mut visitor = Jar::device("192.0.2.50", "ua/visitor");
    authenticate(engine, &mut visitor, &mut seen, "anonymous").await;
    let (_, cookie) = engine.create_anonymous(SessionData::new()).await.unwrap_or_else(|e| panic!("{e}"));
    seen.cookies(std::slice::from_ref(&cookie));
    visitor.apply(&[cookie]);
    authenticate(engine, &mut visitor, &mut seen, "anonymous_session").await;
    let mut garbage = Jar { auth: Some("1.garbage".into()), ..Jar::default() };
    authenticate(engine, &mut garbage, &mut seen, "malformed").await;

    // The victim logs in from the visitor's session (its data moves).
    let mut victim = Jar { ip: "192.0.2.1".parse().ok(), user_agent: Some("ua/victim".into()), ..visitor };
    register(engine, VICTIM, true, &mut victim, &mut seen).await;
    let mut bob = Jar::device("198.51.100.7", "ua/bob");
    register(engine, BOB, false, &mut bob, &mut seen).await;
    authenticate(engine, &mut victim, &mut seen, "session").await;

    let before_rotation = victim.auth_only();
    let mut rotated = victim.auth_only();
    authenticate(engine, &mut rotated, &mut seen, "cookie_login").await;
    victim = rotated;
    // The pre-rotation cookie: the same browser inside the grace window, then
    // its user agent from another network, then another browser.
    authenticate(engine, &mut before_rotation.clone(), &mut seen, "grace").await;
    let mut elsewhere = Jar { ip: "203.0.113.9".parse().ok(), ..before_rotation.clone() };
    authenticate(engine, &mut elsewhere, &mut seen, "grace_refused").await;
    let mut thief = Jar { user_agent: Some("ua/thief".into()), ..before_rotation };
    authenticate(engine, &mut thief, &mut seen, "theft").await;
    authenticate(engine, &mut victim.auth_only(), &mut seen, "unknown_login").await;

    let mut mallory = Jar::device("192.0.2.66", "ua/mallory");
    register(engine, MALLORY, true, &mut mallory, &mut seen).await;
    authenticate(engine, &mut mallory.auth_only(), &mut seen, "user_rejected").await;

    store.set_down(true);
    authenticate(engine, &mut bob.clone(), &mut seen, "unavailable").await;
    store.set_down(false);

    // The rest of the engine's operations, on users of their own.
    let mut dave = Jar::device("192.0.2.70", "ua/dave");
    register(engine, DAVE, true, &mut dave, &mut seen).await;
    let devices = engine.devices(&user(DAVE), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(devices.len(), 1);
    let cleared = engine.logout(&dave.presented()).await.unwrap_or_else(|e| panic!("{e}"));
    dave.apply(&cleared);
    let mut erin = Jar::device("192.0.2.80", "ua/erin");
    register(engine, ERIN, true, &mut erin, &mut seen).await;
    let mut erin_laptop = Jar::device("192.0.2.81", "ua/erin-laptop");
    register(engine, ERIN, true, &mut erin_laptop, &mut seen).await;
    let serial = engine.devices(&user(ERIN), None).await.unwrap_or_else(|e| panic!("{e}"))[0].serial;
    assert!(engine.revoke(&user(ERIN), &serial).await.unwrap_or_else(|e| panic!("{e}")));
    let session = engine
        .authenticate(&bob.presented())
        .await
        .outcome
        .authenticated()
        .map(|auth| auth.session().clone())
        .unwrap_or_else(|| panic!("bob's session"));
    let confirmed = engine.confirm_password(&session).await.unwrap_or_else(|e| panic!("{e}"));
    let mut session = confirmed.unwrap_or_else(|| panic!("bob's session is gone"));
    session.data.insert("theme".into(), "dark".into());
    assert!(engine.save_session(&mut session).await.unwrap_or_else(|e| panic!("{e}")));
    let (cycled, cookie) = engine
        .cycle_session(&session)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("cycled away"));
    seen.cookies(std::slice::from_ref(&cookie));
    bob.apply(&[cookie]);
    engine.logout_others(&cycled).await.unwrap_or_else(|e| panic!("{e}"));
    engine.logout_everywhere(&user(BOB)).await.unwrap_or_else(|e| panic!("{e}"));

    // Last, as it moves the clock past every login's and session's life.
    let mut carol = Jar::device("192.0.2.90", "ua/carol");
    register(engine, CAROL, true, &mut carol, &mut seen).await;
    let config = engine.config();
    let lifetime = config.cookie_max_age().max(config.login_lifetime());
    clock.advance(Duration::try_from(lifetime).unwrap_or(Duration::MAX) + Duration::seconds(1));
    authenticate(engine, &mut carol.auth_only(), &mut seen, "expired_login").await;
    seen
}
