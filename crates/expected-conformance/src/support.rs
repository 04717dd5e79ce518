//! Shared building blocks of the cases.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use expected_core::protocol;
use expected_core::time::{Duration, OffsetDateTime};
use expected_core::{
    AuthCookie, Authentication, ChaChaTokens, ClientMeta, Config, CookieKind, Expected, Hooks, Login,
    ManualClock, Presented, Registration, Session, SessionData, SessionId, SetCookie, Store, TheftReport,
    Token, TokenSource, Username,
};

pub(crate) fn user(name: &str) -> Username {
    Username::new(name).unwrap_or_else(|error| panic!("{name:?} should be a valid username: {error}"))
}

/// A clock at the real current time: records stay inside what a store with
/// real expiry (Redis TTLs) keeps.
pub(crate) fn clock() -> ManualClock {
    ManualClock::starting_now()
}

pub(crate) fn now() -> OffsetDateTime {
    expected_core::Clock::now(&clock())
}

pub(crate) fn tokens() -> ChaChaTokens {
    ChaChaTokens::from_os()
}

pub(crate) fn config() -> Config {
    Config::builder().secure(false).build().unwrap_or_else(|error| panic!("test config: {error}"))
}

/// A login with its session, as registration makes them.
pub(crate) struct Fresh {
    pub(crate) login: Login,
    pub(crate) cookie: AuthCookie,
    pub(crate) session: Session,
}

pub(crate) fn fresh_login(name: &Username, now: OffsetDateTime) -> Fresh {
    let tokens = tokens();
    let config = config();
    let serial = tokens.serial();
    let session =
        protocol::new_session(name, &tokens.session_id(), Some(serial), SessionData::new(), now, &config);
    let client = ClientMeta::new(Some([203, 0, 113, 7].into()), Some("Mozilla/5.0 (X11; Linux) Firefox/140"));
    let (login, cookie) = protocol::new_login(name, serial, tokens.token(), &session, client, now, &config);
    Fresh { login, cookie, session }
}

pub(crate) fn plain_session(name: &Username, now: OffsetDateTime) -> Session {
    protocol::new_session(name, &tokens().session_id(), None, SessionData::new(), now, &config())
}

pub(crate) fn rotation_for(
    fresh: &Fresh,
    now: OffsetDateTime,
) -> (expected_core::store::Rotation, Token, SessionId) {
    let tokens = tokens();
    let token = tokens.token();
    let id = tokens.session_id();
    let (rotation, _) =
        protocol::rotation(&fresh.cookie, token.clone(), &id, ClientMeta::default(), now, &config());
    (rotation, token, id)
}

pub(crate) async fn created<S: Store>(store: &S, fresh: &Fresh) {
    let login = store.create_login(&fresh.login).await.expect("create_login");
    assert_eq!(login, expected_core::store::Inserted::Created, "create_login of a new login");
    let session = store.create_session(&fresh.session).await.expect("create_session");
    assert_eq!(session, expected_core::store::Inserted::Created, "create_session of a new session");
}

pub(crate) fn after(at: OffsetDateTime, seconds: i64) -> OffsetDateTime {
    at + Duration::seconds(seconds)
}

/// Records every theft report.
#[derive(Clone, Default)]
pub(crate) struct Recorder(pub(crate) Arc<Mutex<Vec<TheftReport>>>);

impl Recorder {
    pub(crate) fn reports(&self) -> Vec<TheftReport> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Hooks for Recorder {
    async fn on_theft(&self, report: &TheftReport) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(report.clone());
    }
}

pub(crate) fn engine<S: Store>(store: S, clock: &ManualClock, config: Config) -> Expected<S> {
    Expected::new(store, config).with_clock(clock.clone())
}

/// A client's cookie jar.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jar {
    pub(crate) session: Option<String>,
    pub(crate) auth: Option<String>,
}

impl Jar {
    pub(crate) fn presented(&self) -> Presented<'_> {
        Presented { session: self.session.as_deref(), auth: self.auth.as_deref(), ..Presented::default() }
    }

    /// Applies `Set-Cookie`s as a browser would.
    pub(crate) fn apply(&mut self, cookies: &[SetCookie]) {
        for cookie in cookies {
            let value = (!cookie.is_removal()).then(|| cookie.value().to_owned());
            match cookie.kind() {
                CookieKind::Session => self.session = value,
                CookieKind::Auth => self.auth = value,
            }
        }
    }

    pub(crate) fn without_session(&self) -> Self {
        Self { session: None, auth: self.auth.clone() }
    }

    pub(crate) fn only_session(&self) -> Self {
        Self { session: self.session.clone(), auth: None }
    }
}

pub(crate) async fn register<S: Store>(
    engine: &Expected<S>,
    name: &Username,
    remember: bool,
) -> (Jar, Registration) {
    let registration = engine.register(name, remember, &Presented::default()).await.expect("register");
    let mut jar = Jar::default();
    jar.apply(&registration.cookies);
    assert!(jar.session.is_some(), "register sets the session cookie");
    assert_eq!(jar.auth.is_some(), remember, "register sets the auth cookie exactly when remembered");
    (jar, registration)
}

pub(crate) async fn visit<S: Store>(engine: &Expected<S>, jar: &mut Jar) -> Authentication {
    let result = engine.authenticate(&jar.presented()).await;
    jar.apply(&result.cookies);
    result
}
