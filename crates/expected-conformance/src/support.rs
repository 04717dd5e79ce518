//! Shared building blocks of the cases.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use expected_core::protocol;
use expected_core::store::{Deleted, Inserted, Rotation};
use expected_core::time::{Duration, OffsetDateTime};
use expected_core::{
    AuthCookie, AuthMethod, Authentication, ChaChaTokens, Client, ClientMeta, Config, CookieKind, Expected,
    GraceRefusal, Hooks, Login, LoginsEnded, ManualClock, Outcome, Presented, Registration, Serial,
    SessionCookie, SessionData, SessionDigest, SessionId, SessionRecord, SessionUser, SetCookie, SignIn,
    Store, TheftReport, Token, TokenSource, Username,
};

/// Asserts that an [`Outcome`](expected_core::Outcome) matches a pattern:
/// the message names the rule, the outcome found is appended.
macro_rules! assert_outcome {
    ($outcome:expr, $pattern:pat, $($what:tt)+) => {
        match &$outcome {
            $pattern => {}
            other => panic!("{}, got {other:?}", format_args!($($what)+)),
        }
    };
}

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

/// `at` with exactly `micros` microseconds in its second: a timestamp whose
/// last digit a store that keeps milliseconds would lose.
pub(crate) fn with_micros(at: OffsetDateTime, micros: u32) -> OffsetDateTime {
    at.replace_microsecond(micros).unwrap_or_else(|error| panic!("{micros} µs: {error}"))
}

/// A login with its session, as registration makes them.
pub(crate) struct Fresh {
    pub(crate) login: Login,
    pub(crate) cookie: AuthCookie,
    pub(crate) session: SessionRecord,
}

pub(crate) fn fresh_login(name: &Username, now: OffsetDateTime) -> Fresh {
    let tokens = tokens();
    let config = config();
    let serial = tokens.serial();
    let user = protocol::password_user(name, Some(serial), now);
    let session = protocol::new_session(Some(user), &tokens.session_id(), SessionData::new(), now, &config);
    let client = ClientMeta::new(Some([203, 0, 113, 7].into()), Some("Mozilla/5.0 (X11; Linux) Firefox/140"));
    let (login, cookie) = protocol::new_login(name, serial, tokens.token(), &session, client, now, &config);
    Fresh { login, cookie, session }
}

/// A fresh login whose session a cookie login opened: `Remembered`, with the
/// login's `authenticated_at`.
pub(crate) fn remembered_login(name: &Username, now: OffsetDateTime) -> Fresh {
    let mut fresh = fresh_login(name, now);
    fresh.session.user = Some(protocol::remembered_user(&fresh.login));
    fresh
}

/// A session of `user` (`None`: an anonymous visitor's) with a fresh id.
pub(crate) fn session_of(user: Option<SessionUser>, now: OffsetDateTime) -> SessionRecord {
    protocol::new_session(user, &tokens().session_id(), SessionData::new(), now, &config())
}

/// A password session of `name` bound to no login.
pub(crate) fn plain_session(name: &Username, now: OffsetDateTime) -> SessionRecord {
    session_of(Some(protocol::password_user(name, None, now)), now)
}

/// A session of `name` opened by the login `serial` (not the one the login is
/// bound to).
pub(crate) fn opened_by(name: &Username, serial: Serial, now: OffsetDateTime) -> SessionRecord {
    session_of(Some(protocol::password_user(name, Some(serial), now)), now)
}

/// A password session of `name`, opened by the login `login` (or by none),
/// that expires `minutes` after `now`.
pub(crate) fn expiring(
    name: &Username,
    login: Option<Serial>,
    now: OffsetDateTime,
    minutes: i64,
) -> SessionRecord {
    let mut session = session_of(Some(protocol::password_user(name, login, now)), now);
    session.expires_at = now + Duration::minutes(minutes);
    session
}

/// A cap of `n` sessions per user.
pub(crate) fn cap(n: usize) -> Option<std::num::NonZeroUsize> {
    Some(std::num::NonZeroUsize::new(n).unwrap_or_else(|| panic!("a cap of {n} must be positive")))
}

/// Stores a new session under the cap `max`; `what` names the rule.
pub(crate) async fn insert_capped<S: Store>(
    store: &S,
    session: &SessionRecord,
    max: Option<std::num::NonZeroUsize>,
    what: &str,
) {
    let created = store.create_session(session, max).await.expect("create_session");
    assert_eq!(created, Inserted::Created, "{what}");
}

/// An anonymous visitor's session.
pub(crate) fn anonymous_session(now: OffsetDateTime) -> SessionRecord {
    session_of(None, now)
}

/// The same session under `owner`: the same digest, another key.
pub(crate) fn owned_by(session: &SessionRecord, owner: Option<&Username>) -> SessionRecord {
    let mut moved = session.clone();
    moved.user = owner.map(|name| protocol::password_user(name, None, session.created_at));
    moved
}

pub(crate) fn rotation_for(fresh: &Fresh, now: OffsetDateTime) -> (Rotation, Token, SessionId) {
    let tokens = tokens();
    let token = tokens.token();
    let id = tokens.session_id();
    let (rotation, _) = protocol::rotation(
        &fresh.cookie,
        &fresh.login,
        token.clone(),
        &id,
        ClientMeta::default(),
        now,
        &config(),
    );
    (rotation, token, id)
}

/// Stores a fresh login and its session.
pub(crate) async fn created<S: Store>(store: &S, fresh: &Fresh) {
    let login = store.create_login(&fresh.login).await.expect("create_login");
    assert_eq!(login, Inserted::Created, "create_login of a new login answers Created");
    insert_session(store, &fresh.session).await;
}

/// Stores a login without any session.
pub(crate) async fn insert_login<S: Store>(store: &S, login: &Login) {
    let created = store.create_login(login).await.expect("create_login");
    assert_eq!(created, Inserted::Created, "create_login of a new login answers Created");
}

/// Stores a new session.
pub(crate) async fn insert_session<S: Store>(store: &S, session: &SessionRecord) {
    let created = store.create_session(session, None).await.expect("create_session");
    assert_eq!(created, Inserted::Created, "create_session of a new session answers Created");
}

/// Reads a session back under the owner it names.
pub(crate) async fn stored<S: Store>(store: &S, session: &SessionRecord) -> Option<SessionRecord> {
    store.get_session(session.username(), &session.digest).await.expect("get_session")
}

/// Reads a session under `owner`.
pub(crate) async fn session_at<S: Store>(
    store: &S,
    owner: Option<&Username>,
    digest: &SessionDigest,
) -> Option<SessionRecord> {
    store.get_session(owner, digest).await.expect("get_session")
}

/// Reads a login.
pub(crate) async fn login_at<S: Store>(store: &S, name: &Username, serial: &Serial) -> Option<Login> {
    store.get_login(name, serial).await.expect("get_login")
}

/// Asserts that `session` reads back exactly as given; `what` names the rule.
pub(crate) async fn assert_kept<S: Store>(store: &S, session: &SessionRecord, what: &str) {
    assert_eq!(stored(store, session).await.as_ref(), Some(session), "{what}");
}

/// Asserts that `session` is gone; `what` names the rule.
pub(crate) async fn assert_gone<S: Store>(store: &S, session: &SessionRecord, what: &str) {
    assert_eq!(stored(store, session).await, None, "{what}");
}

/// Asserts that creating `session` again under its key, holding `other`
/// data, is refused and leaves the stored one as it was; `what` names the
/// kind of session.
pub(crate) async fn assert_create_refused<S: Store>(
    store: &S,
    session: &SessionRecord,
    other: SessionData,
    what: &str,
) {
    let second = SessionRecord { data: other, ..session.clone() };
    assert_eq!(
        store.create_session(&second, None).await.expect("create_session"),
        Inserted::AlreadyExists,
        "creating {what} under an existing key must be refused"
    );
    assert_kept(store, session, &format!("a refused create leaves {what} untouched")).await;
}

/// The serials of a user's logins, sorted.
pub(crate) async fn serials_of<S: Store>(store: &S, name: &Username) -> Vec<Serial> {
    let mut serials: Vec<Serial> =
        store.list_logins(name).await.expect("list_logins").iter().map(|login| login.serial).collect();
    serials.sort();
    serials
}

/// `serials`, sorted.
pub(crate) fn sorted(mut serials: Vec<Serial>) -> Vec<Serial> {
    serials.sort();
    serials
}

pub(crate) fn after(at: OffsetDateTime, seconds: i64) -> OffsetDateTime {
    at + Duration::seconds(seconds)
}

/// A `std` duration as a `time` one.
pub(crate) fn span(duration: std::time::Duration) -> Duration {
    Duration::try_from(duration).unwrap_or_else(|error| panic!("{duration:?}: {error}"))
}

/// Records every event the hooks see.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Events>>);

#[derive(Clone, Default)]
struct Events {
    thefts: Vec<TheftReport>,
    refusals: Vec<GraceRefusal>,
    ended: Vec<LoginsEnded>,
    sign_ins: Vec<SignIn>,
}

impl Recorder {
    fn events(&self) -> std::sync::MutexGuard<'_, Events> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn reports(&self) -> Vec<TheftReport> {
        self.events().thefts.clone()
    }

    pub(crate) fn refusals(&self) -> Vec<GraceRefusal> {
        self.events().refusals.clone()
    }

    /// Every `on_logins_ended` event, serials sorted.
    pub(crate) fn ended(&self) -> Vec<LoginsEnded> {
        self.events().ended.clone()
    }

    pub(crate) fn sign_ins(&self) -> Vec<SignIn> {
        self.events().sign_ins.clone()
    }
}

#[async_trait]
impl Hooks for Recorder {
    async fn on_theft(&self, report: &TheftReport) {
        self.events().thefts.push(report.clone());
    }

    async fn on_grace_refused(&self, refusal: &GraceRefusal) {
        self.events().refusals.push(refusal.clone());
    }

    async fn on_logins_ended(&self, event: &LoginsEnded) {
        let mut event = event.clone();
        event.serials.sort();
        self.events().ended.push(event);
    }

    async fn on_sign_in(&self, event: &SignIn) {
        self.events().sign_ins.push(event.clone());
    }
}

pub(crate) fn engine<S: Store>(store: S, clock: &ManualClock, config: Config) -> Expected<S> {
    Expected::new(store, config).with_clock(clock.clone())
}

/// An engine over `store` with a manual clock of its own.
pub(crate) fn engine_over<S: Store>(store: &Arc<S>, config: Config) -> (ManualClock, Expected<Arc<S>>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config);
    (clock, engine)
}

/// [`engine_over`], with a [`Recorder`] as its hooks.
pub(crate) fn heard_engine<S: Store>(
    store: &Arc<S>,
    config: Config,
) -> (ManualClock, Recorder, Expected<Arc<S>>) {
    let (clock, engine) = engine_over(store, config);
    let hooks = Recorder::default();
    (clock, hooks.clone(), engine.with_hooks(hooks))
}

/// A config with the test defaults and `tune` applied.
pub(crate) fn config_with(
    tune: impl FnOnce(expected_core::ConfigBuilder) -> expected_core::ConfigBuilder,
) -> Config {
    tune(Config::builder().secure(false)).build().unwrap_or_else(|error| panic!("test config: {error}"))
}

/// A client's cookie jar.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jar {
    pub(crate) session: Option<String>,
    pub(crate) auth: Option<String>,
}

impl Jar {
    pub(crate) fn presented(&self) -> Presented<'_> {
        Presented {
            session: self.session.as_deref().into(),
            auth: self.auth.as_deref().into(),
            ..Presented::default()
        }
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

    /// The parsed session cookie.
    pub(crate) fn session_cookie(&self) -> SessionCookie {
        let value = self.session.as_deref().expect("the jar holds a session cookie");
        SessionCookie::parse(value).expect("the engine's session cookie parses")
    }

    /// The parsed auth cookie.
    pub(crate) fn auth_cookie(&self) -> AuthCookie {
        let value = self.auth.as_deref().expect("the jar holds an auth cookie");
        AuthCookie::parse(value).expect("the engine's auth cookie parses")
    }
}

pub(crate) async fn register<S: Store>(
    engine: &Expected<S>,
    name: &Username,
    remember: bool,
) -> (Jar, Registration) {
    register_from(engine, name, remember, &Jar::default()).await
}

/// A password login with "remember me": its cookies, the registration and
/// the new login's serial.
pub(crate) async fn remembered<S: Store>(
    engine: &Expected<S>,
    name: &Username,
) -> (Jar, Registration, Serial) {
    let (jar, registration) = register(engine, name, true).await;
    let serial = registration.serial.expect("register with remember makes a login");
    (jar, registration, serial)
}

/// A password login on a device that holds `jar`.
pub(crate) async fn register_from<S: Store>(
    engine: &Expected<S>,
    name: &Username,
    remember: bool,
    jar: &Jar,
) -> (Jar, Registration) {
    let registration = engine.register(name, remember, &jar.presented()).await.expect("register");
    let mut jar = jar.clone();
    jar.apply(&registration.cookies);
    assert!(jar.session.is_some(), "register sets the session cookie");
    assert_eq!(jar.auth.is_some(), remember, "register sets the auth cookie exactly when remembered");
    let user = registration.session.user.as_ref().expect("register opens a user's session");
    assert_eq!(
        (&user.username, user.method, user.authenticated_at),
        (name, AuthMethod::Password, engine.now()),
        "register opens a password session authenticated now"
    );
    (jar, registration)
}

/// An anonymous visitor holding `data`, as the engine opens it.
pub(crate) async fn visitor<S: Store>(engine: &Expected<S>, data: SessionData) -> (Jar, SessionRecord) {
    let (session, cookie) = engine.create_anonymous(data).await.expect("create_anonymous");
    assert_eq!(session.user, None, "create_anonymous opens an anonymous session");
    let mut jar = Jar::default();
    jar.apply(&[cookie]);
    assert_eq!(jar.session_cookie().username, None, "an anonymous session cookie names nobody");
    (jar, session)
}

/// What presenting `jar` comes to, without applying the answer's cookies.
pub(crate) async fn outcome_of<S: Store>(engine: &Expected<S>, jar: &Jar) -> Outcome {
    engine.authenticate(&jar.presented()).await.outcome
}

pub(crate) async fn visit<S: Store>(engine: &Expected<S>, jar: &mut Jar) -> Authentication {
    let result = engine.authenticate(&jar.presented()).await;
    jar.apply(&result.cookies);
    result
}

/// What `jar` presents from `client` (its address and user agent).
pub(crate) fn presented_from<'a>(jar: &'a Jar, client: &'a ClientMeta) -> Presented<'a> {
    let user_agent = client.user_agent.as_deref();
    Presented { client: Client { ip: client.ip, user_agent }, ..jar.presented() }
}

/// [`visit`] from `client`.
pub(crate) async fn visit_from<S: Store>(
    engine: &Expected<S>,
    jar: &mut Jar,
    client: &ClientMeta,
) -> Authentication {
    let result = engine.authenticate(&presented_from(jar, client)).await;
    jar.apply(&result.cookies);
    result
}

/// Spawns a revocation of the login `serial` of `name` racing something
/// else: `delete_login` in even rounds, `delete_user` in odd ones.
pub(crate) fn spawn_revocation<S: Store>(
    store: &Arc<S>,
    name: &Username,
    serial: Serial,
    round: usize,
) -> tokio::task::JoinHandle<Result<(), expected_core::StoreError>> {
    let (store, name) = (store.clone(), name.clone());
    tokio::spawn(async move {
        if round % 2 == 0 {
            store.delete_login(&name, &serial).await.map(|_| ())
        } else {
            store.delete_user(&name).await.map(|_| ())
        }
    })
}

/// A remembered login of `name` whose auth cookie `client` used an hour
/// after the password login, its session cookie gone: a cookie login. Answers
/// the jar still holding the replaced token (no session cookie), the
/// winner's jar and the login's serial.
pub(crate) async fn rotated_once<S: Store>(
    engine: &Expected<S>,
    clock: &ManualClock,
    name: &Username,
    client: &ClientMeta,
) -> (Jar, Jar, Serial) {
    let (jar, _, serial) = remembered(engine, name).await;
    clock.advance(Duration::hours(1));
    let stale = jar.without_session();
    let mut winner = stale.clone();
    let result = visit_from(engine, &mut winner, client).await;
    assert_outcome!(result.outcome, Outcome::CookieLogin(_), "the first use of the auth cookie rotates");
    (stale, winner, serial)
}

/// A client at `ip` sending `user_agent`.
pub(crate) fn client_at(ip: [u8; 4], user_agent: &str) -> ClientMeta {
    ClientMeta::new(Some(ip.into()), Some(user_agent))
}

/// Session data from a JSON object literal.
pub(crate) fn data(value: serde_json::Value) -> SessionData {
    value.as_object().cloned().expect("session data is a JSON object")
}

/// What a deletion removed, serials sorted: `(logins, sessions, serials)`.
pub(crate) fn summary(deleted: &Deleted) -> (u64, u64, Vec<Serial>) {
    (deleted.logins, deleted.sessions, sorted(deleted.serials.clone()))
}
