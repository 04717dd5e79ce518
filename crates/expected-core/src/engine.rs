//! The engine: applies the [protocol](crate::protocol) through a [`Store`].

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::clock::{Clock, SystemClock, to_store_precision};
use crate::config::Config;
use crate::cookies::{CookieKind, CookieValues, PresentedCookies, SetCookie};
use crate::credential::{AuthCookie, CookieError, SessionCookie};
use crate::protocol::{self, Judgement, SessionJudgement, TheftCause};
use crate::record::{AuthMethod, ClientMeta, Login, SessionData, SessionRecord, SessionUser};
use crate::secret::{OsTokens, Serial, SessionDigest, SessionId, TokenSource, Username};
use crate::store::{
    Confirmation, CurrentRotated, Deleted, GraceInserted, Inserted, Keep, Remembered, Rotated, Store,
    StoreError, StoreErrorKind,
};
use crate::telemetry::{self, Instrumented};

/// How many times a create retries with fresh random keys, and a cookie login
/// re-reads after losing a race, before giving up.
const ATTEMPTS: usize = 4;

/// What the client presented with a request: the raw values of the two
/// cookies, and who it is.
///
/// Each cookie can come with several values: a browser sends every cookie of
/// the name it holds for the request's host and path (a host-only one and a
/// `Domain` one after a deploy added a `Domain`, or one a sibling subdomain
/// planted). The engine judges them all; see [`Expected::authenticate`].
/// One value converts with `.into()`:
///
/// ```
/// # use expected_core::Presented;
/// let value: Option<&str> = Some("1.YWxpY2U.AwMD");
/// let presented = Presented { session: value.into(), ..Presented::default() };
/// assert_eq!(presented.session.len(), 1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The session cookie's values (none when the request carried none).
    pub session: CookieValues<'a>,
    /// The auth cookie's values (none when the request carried none).
    pub auth: CookieValues<'a>,
    /// The client's address and user agent.
    pub client: Client<'a>,
}

impl<'a> Presented<'a> {
    /// What a request presented: the cookie values as
    /// [`read_cookie_headers`](crate::cookies::read_cookie_headers) read
    /// them, and the client.
    pub fn from_cookies(cookies: &'a PresentedCookies, client: Client<'a>) -> Self {
        Self { session: cookies.session_values(), auth: cookies.auth_values(), client }
    }
}

/// The client behind a request, borrowed from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
}

impl Client<'_> {
    /// What a store keeps of this client.
    pub fn meta(&self) -> ClientMeta {
        ClientMeta::new(self.ip, self.user_agent)
    }
}

/// An authenticated request: a logged-in user's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    session: SessionRecord,
    user: SessionUser,
}

impl Authenticated {
    /// The session, when it is a user's (`None` for an anonymous one).
    pub fn new(session: SessionRecord) -> Option<Self> {
        let user = session.user.clone()?;
        Some(Self { session, user })
    }

    /// Who is authenticated.
    pub fn username(&self) -> &Username {
        &self.user.username
    }

    /// Who, through which login, how and when they proved it.
    pub fn user(&self) -> &SessionUser {
        &self.user
    }

    /// The request's server-side session.
    pub fn session(&self) -> &SessionRecord {
        &self.session
    }

    /// Takes the session.
    pub fn into_session(self) -> SessionRecord {
        self.session
    }
}

/// A replayed auth cookie was detected and the user's logins were revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TheftReport {
    /// The user whose cookie was replayed.
    pub username: Username,
    /// The login (device) whose old token was presented.
    pub serial: Serial,
    /// What was deleted.
    pub deleted: Deleted,
    /// Why the cookie was taken for a replayed copy.
    pub cause: TheftCause,
    /// The client that presented the old token: the thief or the victim,
    /// whichever came second.
    pub client: ClientMeta,
    /// The client the login recorded at its last use. For
    /// [`TheftCause::ForeignClient`], the rotation that replaced the
    /// presented token: one of the two holds a copy of the other's cookie.
    pub recorded: ClientMeta,
    /// When it was detected.
    pub at: OffsetDateTime,
}

/// A request presented the previous token inside the grace window with the
/// `User-Agent` the rotation recorded, from another network
/// ([`GraceBinding::Client`](crate::GraceBinding::Client)): it got no
/// successor and its cookies were cleared, and nothing was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraceRefusal {
    /// Whose login.
    pub username: Username,
    /// Which login (device).
    pub serial: Serial,
    /// The client that presented the previous token.
    pub client: ClientMeta,
    /// The client the winning rotation recorded.
    pub recorded: ClientMeta,
    /// When.
    pub at: OffsetDateTime,
}

/// A cookie login presented a token ahead of the store, which the server's
/// key derives from the stored one: the store had lost `steps` rotations (a
/// failover to a replica that missed them, a backup restore), and the
/// rotation was re-applied instead of raising theft. The request is a
/// [`Outcome::CookieLogin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackHealed {
    /// Whose login.
    pub username: Username,
    /// Which login (device).
    pub serial: Serial,
    /// How many rotations the store had lost for this login.
    pub steps: u16,
    /// The client that presented the token.
    pub client: ClientMeta,
    /// When.
    pub at: OffsetDateTime,
}

/// What authenticating a request came to. Each variant is one outcome of the
/// protocol; see `docs/protocol.md` for the table.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum Outcome {
    /// A valid server-side session: authenticated, nothing rotated.
    Session(Authenticated),
    /// No valid session, but the auth cookie carried the current token: it was
    /// rotated and a new session opened.
    CookieLogin(Authenticated),
    /// The auth cookie carried the previous token inside the grace window (a
    /// concurrent request, or a lost response): authenticated, and the client
    /// gets the successor cookies, with no second rotation.
    Grace(Authenticated),
    /// A valid anonymous visitor's session, and no auth cookie: not logged
    /// in, but the visitor's session data is there.
    AnonymousSession(SessionRecord),
    /// Neither cookie was presented, or only a session cookie that is no
    /// longer valid.
    Anonymous,
    /// A cookie could not be parsed. It is cleared.
    Malformed(CookieKind, CookieError),
    /// The auth cookie names no login (or another user's): cleared.
    UnknownLogin,
    /// The auth cookie's login was unused for longer than the cookie max age,
    /// or outlived its lifetime: it is deleted and the cookie cleared.
    ExpiredLogin,
    /// A replayed old token: every login and session of the user was deleted,
    /// the theft hook was called, the cookies are cleared.
    Theft(TheftReport),
    /// The previous token inside the grace window from the rotation's
    /// `User-Agent` but another network: not authenticated, no successor
    /// handed out, the cookies cleared, nothing revoked, the
    /// [`Hooks::on_grace_refused`] hook called.
    GraceRefused(GraceRefusal),
    /// The user-validity hook refused the user: their logins and sessions were
    /// deleted, the cookies are cleared.
    UserRejected(Username),
    /// The store (or the user-validity hook) failed. Fail closed: not
    /// authenticated, and nothing changed, cookies included, so the user is
    /// logged in again once the store is back.
    Unavailable(StoreError),
}

impl Outcome {
    /// The authenticated request, if any.
    pub fn authenticated(&self) -> Option<&Authenticated> {
        match self {
            Self::Session(auth) | Self::CookieLogin(auth) | Self::Grace(auth) => Some(auth),
            Self::AnonymousSession(_)
            | Self::Anonymous
            | Self::Malformed(..)
            | Self::UnknownLogin
            | Self::ExpiredLogin
            | Self::Theft(_)
            | Self::GraceRefused(_)
            | Self::UserRejected(_)
            | Self::Unavailable(_) => None,
        }
    }

    /// The request's live session, a user's or an anonymous visitor's.
    pub fn session(&self) -> Option<&SessionRecord> {
        match self {
            Self::AnonymousSession(session) => Some(session),
            other => other.authenticated().map(Authenticated::session),
        }
    }

    /// Takes the authenticated request, if any.
    pub fn into_authenticated(self) -> Option<Authenticated> {
        match self {
            Self::Session(auth) | Self::CookieLogin(auth) | Self::Grace(auth) => Some(auth),
            Self::AnonymousSession(_)
            | Self::Anonymous
            | Self::Malformed(..)
            | Self::UnknownLogin
            | Self::ExpiredLogin
            | Self::Theft(_)
            | Self::GraceRefused(_)
            | Self::UserRejected(_)
            | Self::Unavailable(_) => None,
        }
    }

    /// The authenticated user, if any.
    pub fn username(&self) -> Option<&Username> {
        self.authenticated().map(Authenticated::username)
    }

    /// Whether this request detected a replayed cookie (to warn the user).
    pub fn theft_detected(&self) -> bool {
        matches!(self, Self::Theft(_))
    }

    /// A short, stable snake-case name of the outcome: `session`,
    /// `cookie_login`, `grace`, `anonymous_session`, `anonymous`,
    /// `malformed`, `unknown_login`, `expired_login`, `theft`,
    /// `grace_refused`, `user_rejected`, `unavailable`. The `outcome` label
    /// of the `expected_authentications_total` metric and the `outcome`
    /// field of the `authenticate` span.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Session(_) => "session",
            Self::CookieLogin(_) => "cookie_login",
            Self::Grace(_) => "grace",
            Self::AnonymousSession(_) => "anonymous_session",
            Self::Anonymous => "anonymous",
            Self::Malformed(..) => "malformed",
            Self::UnknownLogin => "unknown_login",
            Self::ExpiredLogin => "expired_login",
            Self::Theft(_) => "theft",
            Self::GraceRefused(_) => "grace_refused",
            Self::UserRejected(_) => "user_rejected",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// The user this outcome is about: the authenticated one, the victim of
    /// a theft, whose grace was refused or who was rejected. `None` for the
    /// others (the cookie of an unknown or expired login names a user, but
    /// nothing proves it).
    pub(crate) fn subject(&self) -> Option<&Username> {
        match self {
            Self::Theft(report) => Some(&report.username),
            Self::GraceRefused(refusal) => Some(&refusal.username),
            Self::UserRejected(username) => Some(username),
            other => other.username(),
        }
    }
}

/// The result of [`Expected::authenticate`]: the outcome, and the cookies the
/// response must set or clear.
#[derive(Debug)]
#[must_use]
pub struct Authentication {
    /// What the request came to.
    pub outcome: Outcome,
    /// `Set-Cookie`s for the response.
    pub cookies: Vec<SetCookie>,
}

/// The result of [`Expected::register`].
#[derive(Debug)]
#[must_use]
pub struct Registration {
    /// The new session (method [`AuthMethod::Password`]), holding the data
    /// carried over from the visitor's anonymous session.
    pub session: SessionRecord,
    /// The new login's serial, when "remember me" was chosen.
    pub serial: Option<Serial>,
    /// `Set-Cookie`s for the response.
    pub cookies: Vec<SetCookie>,
}

/// One of a user's logins, as a devices page shows it. Serializes with RFC
/// 3339 times and the serial in base64url.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// The login's serial (to revoke it).
    pub serial: Serial,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last opened a session.
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    /// When the user last entered their password on it.
    #[serde(with = "time::serde::rfc3339")]
    pub authenticated_at: OffsetDateTime,
    /// The last client IP seen.
    pub ip: Option<IpAddr>,
    /// The last user agent seen.
    pub user_agent: Option<String>,
    /// Whether it is the login of the session asking.
    pub current: bool,
}

/// What a cleaning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Expired logins deleted.
    pub logins: u64,
    /// Expired sessions deleted.
    pub sessions: u64,
}

/// Errors of the engine's explicit operations (register, logout, …).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed; nothing was changed that a retry would not redo.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store kept answering that freshly generated random keys exist.
    #[error("could not create a record with a fresh random key after {ATTEMPTS} attempts")]
    KeyCollision,
}

/// A password login just happened: a new session and, with "remember me", a
/// new login (device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// Who signed in.
    pub username: Username,
    /// The new login's serial, when "remember me" was chosen: a new device to
    /// tell the user about.
    pub serial: Option<Serial>,
    /// The client that signed in.
    pub client: ClientMeta,
    /// When.
    pub at: OffsetDateTime,
}

/// Why logins ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndCause {
    /// The device logged itself out.
    Logout,
    /// The user (or an admin) revoked it from the devices list.
    Revoked,
    /// "Log out everywhere".
    LogoutEverywhere,
    /// "Log out the other devices", from the device that stays.
    LogoutOthers,
    /// A replayed cookie: every login of the user was revoked.
    Theft,
    /// Over the per-user cap, least recently used.
    Evicted,
    /// The user-validity hook refused the user.
    UserRejected,
    /// Unused past the cookie max age, or past its lifetime.
    Expired,
    /// A new password login on the same device replaced it.
    Replaced,
}

impl EndCause {
    /// A short, stable snake-case name: `logout`, `revoked`,
    /// `logout_everywhere`, `logout_others`, `theft`, `evicted`,
    /// `user_rejected`, `expired`, `replaced` (the `cause` label of the
    /// `expected_logins_ended_total` metric).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::LogoutEverywhere => "logout_everywhere",
            Self::LogoutOthers => "logout_others",
            Self::Theft => "theft",
            Self::Evicted => "evicted",
            Self::UserRejected => "user_rejected",
            Self::Expired => "expired",
            Self::Replaced => "replaced",
        }
    }
}

/// Logins that ended, with their sessions: close what the app ties to them
/// (WebSockets, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginsEnded {
    /// Whose logins.
    pub username: Username,
    /// Which logins.
    pub serials: Vec<Serial>,
    /// Why.
    pub cause: EndCause,
}

/// The application's hooks into the protocol.
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// Called after a password login ([`Expected::register`]): mail "new
    /// sign-in" when `serial` is set, say. The default does nothing.
    async fn on_sign_in(&self, event: &SignIn) {
        let _ = event;
    }

    /// Called after logins ended, for whatever reason ([`EndCause`]), with
    /// their serials. The default does nothing.
    async fn on_logins_ended(&self, event: &LoginsEnded) {
        let _ = event;
    }

    /// Called after a replayed cookie was detected and the user's logins and
    /// sessions were deleted: e-mail the user, say. The default does nothing
    /// (the engine also emits a `tracing` warning).
    async fn on_theft(&self, report: &TheftReport) {
        let _ = report;
    }

    /// Called after a request presented the previous token inside the grace
    /// window from the rotation's `User-Agent` but another network, and was
    /// refused (nothing revoked): log it, or tell the user if it repeats.
    /// The default does nothing (the engine also emits a `tracing` warning).
    async fn on_grace_refused(&self, refusal: &GraceRefusal) {
        let _ = refusal;
    }

    /// Called after a cookie login healed a login the store had rolled back
    /// ([`RollbackHealed`]): count them, say; many at once tell of a
    /// failover or a restore. The default does nothing (the engine also
    /// emits a `tracing` warning).
    async fn on_rollback_healed(&self, event: &RollbackHealed) {
        let _ = event;
    }

    /// Consulted on every cookie login (and grace): answer `Ok(false)` for a
    /// disabled or deleted account, and its logins are dropped. An error fails
    /// closed, like a store error. The default accepts everyone.
    async fn is_user_valid(&self, username: &Username) -> Result<bool, StoreError> {
        let _ = username;
        Ok(true)
    }
}

#[async_trait]
impl<H: Hooks + ?Sized> Hooks for Arc<H> {
    async fn on_sign_in(&self, event: &SignIn) {
        (**self).on_sign_in(event).await;
    }
    async fn on_logins_ended(&self, event: &LoginsEnded) {
        (**self).on_logins_ended(event).await;
    }
    async fn on_theft(&self, report: &TheftReport) {
        (**self).on_theft(report).await;
    }
    async fn on_grace_refused(&self, refusal: &GraceRefusal) {
        (**self).on_grace_refused(refusal).await;
    }
    async fn on_rollback_healed(&self, event: &RollbackHealed) {
        (**self).on_rollback_healed(event).await;
    }
    async fn is_user_valid(&self, username: &Username) -> Result<bool, StoreError> {
        (**self).is_user_valid(username).await
    }
}

/// What one optimistic cookie-login attempt came to
/// ([`Expected::attempt_current`]).
enum Attempt {
    /// The rotation applied: the request is logged in.
    Rotated((Outcome, Vec<SetCookie>)),
    /// The new session's digest was taken: try again with another.
    SessionExists,
    /// Not rotated: judge the login as stored.
    Judge(Option<Login>),
}

/// What [`Expected::forget`] found and left to its caller.
#[derive(Debug, Default)]
struct Forgotten {
    /// The presented anonymous session's digest, and its data when live.
    anonymous: Option<(SessionDigest, Option<SessionData>)>,
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

#[async_trait]
impl Hooks for NoHooks {}

/// The engine: persistent logins and sessions over a [`Store`].
///
/// Cheap to share: wrap it in an [`Arc`] (adapters do).
pub struct Expected<S> {
    store: Instrumented<S>,
    config: Config,
    clock: Arc<dyn Clock>,
    tokens: Arc<dyn TokenSource>,
    hooks: Arc<dyn Hooks>,
}

impl<S> fmt::Debug for Expected<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expected")
            .field("config", &self.config)
            .field("tokens", &self.tokens.name())
            .finish_non_exhaustive()
    }
}

/// Clears both cookies, in every form the configuration could have set them
/// (the host-only twins too, when a `Domain` is configured).
fn remove_both(config: &Config) -> Vec<SetCookie> {
    SetCookie::remove_all(config)
}

/// How strongly one presented auth value claims a request, to pick among
/// several ([`Expected::authenticate`]). Ordered weakest first.
///
/// A value that authenticates beats every other. Of those, the one whose
/// login was used last wins (after a `Domain` change a device can hold two
/// logins; the one it used last is the one it goes on with), and of one
/// login the current token beats the previous one (the grace value of a twin
/// that was just rotated). Of the values that do not authenticate, the one
/// acted on is the one whose action matters most: an inconsistent record
/// fails the request closed, a replay is a theft (a real one: nothing else
/// authenticates), a refused grace (this device's own previous token, from
/// another network) clears the cookies and revokes nothing, an expired login
/// is deleted, an unknown one just cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Claim {
    Unknown,
    Expired,
    GraceRefused,
    Theft,
    Inconsistent,
    Authenticates { last_used_at: OffsetDateTime, current: bool },
}

impl Claim {
    fn of(judgement: &Judgement, login: Option<&Login>) -> Self {
        match (judgement, login) {
            (Judgement::Current | Judgement::Ahead { .. }, Some(login)) => {
                Self::Authenticates { last_used_at: login.last_used_at, current: true }
            }
            (Judgement::Grace { .. }, Some(login)) => {
                Self::Authenticates { last_used_at: login.last_used_at, current: false }
            }
            (Judgement::Inconsistent, _) => Self::Inconsistent,
            (Judgement::Theft { .. }, _) => Self::Theft,
            (Judgement::GraceRefused { .. }, _) => Self::GraceRefused,
            (Judgement::Expired, _) => Self::Expired,
            (
                Judgement::Unknown | Judgement::Current | Judgement::Ahead { .. } | Judgement::Grace { .. },
                _,
            ) => Self::Unknown,
        }
    }
}

impl<S: Store> Expected<S> {
    /// An engine over `store`, with the system clock, every secret drawn
    /// from the operating system ([`OsTokens`]: fork-safe), and no hooks.
    pub fn new(store: S, config: Config) -> Self {
        Self {
            store: Instrumented::new(store),
            config,
            clock: Arc::new(SystemClock),
            tokens: Arc::new(OsTokens),
            hooks: Arc::new(NoHooks),
        }
    }

    /// Replaces the clock.
    ///
    /// ```
    /// use expected_core::{Config, Expected, ManualClock};
    /// use expected_store_memory::MemoryStore;
    ///
    /// // A test that moves time by hand, past the session's idle timeout, say:
    /// let clock = ManualClock::starting_now();
    /// let engine = Expected::new(MemoryStore::new(), Config::default()).with_clock(clock.clone());
    /// let before = engine.now();
    /// clock.advance(expected_core::time::Duration::minutes(31));
    /// assert_eq!(engine.now() - before, expected_core::time::Duration::minutes(31));
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces the token source.
    ///
    /// ```
    /// use expected_core::{ChaChaTokens, Config, Expected};
    /// use expected_store_memory::MemoryStore;
    ///
    /// // Deterministic secrets, for tests only (`OsTokens`, the default, in production):
    /// let engine = Expected::new(MemoryStore::new(), Config::default())
    ///     .with_tokens(ChaChaTokens::from_seed([7; 32]));
    /// # let _ = engine;
    /// ```
    #[must_use]
    pub fn with_tokens(mut self, tokens: impl TokenSource) -> Self {
        self.tokens = Arc::new(tokens);
        self
    }

    /// Sets the application's hooks.
    ///
    /// ```
    /// use expected_core::{Config, Expected, Hooks, TheftReport};
    /// use expected_store_memory::MemoryStore;
    ///
    /// struct Mailer;
    ///
    /// #[async_trait::async_trait]
    /// impl Hooks for Mailer {
    ///     async fn on_theft(&self, report: &TheftReport) {
    ///         // Tell the user their sessions were closed: a copied cookie was used.
    ///         let _ = &report.username;
    ///     }
    /// }
    ///
    /// let engine = Expected::new(MemoryStore::new(), Config::default()).with_hooks(Mailer);
    /// # let _ = engine;
    /// ```
    #[must_use]
    pub fn with_hooks(mut self, hooks: impl Hooks) -> Self {
        self.hooks = Arc::new(hooks);
        self
    }

    /// The same engine over a type-erased store, so that adapters need no
    /// type parameter for it.
    pub fn into_dyn(self) -> Expected<crate::DynStore> {
        Expected {
            store: Instrumented::new(Arc::new(self.store.into_inner())),
            config: self.config,
            clock: self.clock,
            tokens: self.tokens,
            hooks: self.hooks,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store. Calls made through it directly are not the engine's: no
    /// `store` span, no latency recorded.
    pub fn store(&self) -> &S {
        self.store.inner()
    }

    /// The token source, for the other secrets of a request (the CSRF
    /// token).
    pub(crate) fn tokens(&self) -> &dyn TokenSource {
        &*self.tokens
    }

    /// The engine's current time, in store precision.
    pub fn now(&self) -> OffsetDateTime {
        to_store_precision(self.clock.now())
    }

    /// Authenticates a request from its cookies.
    ///
    /// Never fails: every result, a store failure included, is an
    /// [`Outcome`]. Apply [`Authentication::cookies`] to the response.
    ///
    /// A live session cookie answers [`Outcome::Session`] (a user's) or
    /// [`Outcome::AnonymousSession`] (a visitor's, when no auth cookie came
    /// with it). Otherwise the auth cookie decides; an anonymous session
    /// presented with an auth cookie is superseded by what the auth cookie
    /// comes to (its cookie is replaced or cleared, its record left to expire).
    ///
    /// **Several values of one name** (`docs/protocol.md` §3.5, §6): the session
    /// values are tried in request order and the first that names a live
    /// user's session wins; a visitor's session counts only when no user's
    /// does. Then every well-formed auth value is judged, read-only, before
    /// anything is acted on: a current or grace one wins (of several, the one
    /// whose login was used last; of one login, the current token), so a
    /// stale or planted value next to a good one causes no theft, no logout
    /// and no removal of the good cookie. Only when none authenticates is the
    /// strongest of the others acted on (a replay as a theft, an expired login
    /// deleted, an unknown one cleared). The cookie login runs once, on the
    /// chosen value: at most one rotation per request.
    ///
    /// Runs in an `authenticate` span whose `outcome` and `user` fields are
    /// set once it is decided, and counts the outcome (feature `metrics`):
    /// see [`telemetry`](crate::telemetry).
    pub async fn authenticate(&self, presented: &Presented<'_>) -> Authentication {
        let span = tracing::debug_span!("authenticate", outcome = Empty, user = Empty);
        let result = self.decide(presented).instrument(span.clone()).await;
        telemetry::authenticated(&result.outcome, &span);
        result
    }

    /// [`Expected::authenticate`], unobserved.
    async fn decide(&self, presented: &Presented<'_>) -> Authentication {
        let now = self.now();
        let config = &self.config;
        let mut cookies = Vec::new();
        let mut session_problem = None;
        let mut visitor = None;
        for value in presented.session.iter() {
            match SessionCookie::parse(value) {
                Err(error) => {
                    // The error alone, not an `Outcome`: this future is held
                    // across the session reads, and an outcome is larger.
                    session_problem.get_or_insert(error);
                }
                Ok(cookie) => match self.session_hit(&cookie, now).await {
                    Err(error) => return unavailable(error),
                    Ok(Some(session)) if session.user.is_some() => {
                        if let Some(auth) = Authenticated::new(session) {
                            // No cookie changes, not even for the values
                            // that missed: nothing tells which attributes
                            // they were set with, and a removal could match
                            // this live one.
                            return Authentication { outcome: Outcome::Session(auth), cookies };
                        }
                    }
                    // A later value may still be a user's session, which
                    // wins over a visitor's.
                    Ok(Some(anonymous)) => {
                        visitor.get_or_insert(anonymous);
                    }
                    Ok(None) => {}
                },
            }
        }
        if let Some(anonymous) = visitor.filter(|_| presented.auth.is_empty()) {
            return Authentication { outcome: Outcome::AnonymousSession(anonymous), cookies };
        }
        if !presented.session.is_empty() {
            // Whatever happens next, these session cookies are dead: replaced
            // on a cookie login, cleared otherwise.
            cookies.extend(SetCookie::removals(CookieKind::Session, config));
        }
        if presented.auth.is_empty() {
            let outcome = session_problem
                .map_or(Outcome::Anonymous, |error| Outcome::Malformed(CookieKind::Session, error));
            return Authentication { outcome, cookies };
        }
        // Boxed: the cookie login's states (the login read, the rotation,
        // the theft and grace paths) are most of this future's size, and
        // every request that asks who is logged in holds it, inline in
        // its handler's future, on a session hit too (4 320 bytes in all,
        // a large allocation and its copies per request).
        Box::pin(self.by_auth_cookie(presented, cookies, now)).await
    }

    /// [`Expected::decide`] for a request with auth cookies and no live
    /// session: the remember-me cookie decides, `cookies` holding what the
    /// session cookies' side already set.
    async fn by_auth_cookie(
        &self,
        presented: &Presented<'_>,
        mut cookies: Vec<SetCookie>,
        now: OffsetDateTime,
    ) -> Authentication {
        let config = &self.config;
        let mut parsed = Vec::with_capacity(presented.auth.len());
        let mut malformed = None;
        for value in presented.auth.iter() {
            match AuthCookie::parse(value) {
                Ok(cookie) => parsed.push(cookie),
                Err(error) => {
                    malformed.get_or_insert(error);
                }
            }
        }
        let client = presented.client.meta();
        let cookie = match self.choose_auth(parsed, &client, now).await {
            Err(error) => return unavailable(error),
            Ok(Some(cookie)) => cookie,
            Ok(None) => {
                SetCookie::merge_into(&mut cookies, SetCookie::removals(CookieKind::Auth, config));
                let outcome =
                    malformed.map_or(Outcome::Anonymous, |e| Outcome::Malformed(CookieKind::Auth, e));
                return Authentication { outcome, cookies };
            }
        };
        match self.cookie_login(&cookie, client, now).await {
            Err(error) => unavailable(error),
            Ok((outcome, set)) => {
                if outcome.authenticated().is_some() && presented.auth.len() > 1 {
                    // The values that lost may include the host-only twin
                    // left from before a `Domain` was configured: clear it.
                    // The winner is set again below with the configured
                    // attributes, so this cannot lose it.
                    SetCookie::merge_into(&mut cookies, self.host_only_twin(CookieKind::Auth));
                }
                SetCookie::merge_into(&mut cookies, set);
                Authentication { outcome, cookies }
            }
        }
    }

    /// The removal of the host-only cookie of `kind`, when a `Domain` is
    /// configured (without one there is no such twin to tell apart).
    fn host_only_twin(&self, kind: CookieKind) -> Option<SetCookie> {
        self.config.domain().map(|_| SetCookie::remove_host_only(kind, &self.config))
    }

    /// Which of several well-formed auth values the cookie login acts on:
    /// each is judged against its stored login first, read-only, and the
    /// strongest claim wins ([`Claim`]). With one value there is nothing to
    /// choose and nothing is read (the cookie login judges it itself).
    async fn choose_auth(
        &self,
        mut parsed: Vec<AuthCookie>,
        client: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<Option<AuthCookie>, StoreError> {
        if parsed.len() <= 1 {
            return Ok(parsed.pop());
        }
        let mut best: Option<(Claim, usize)> = None;
        for (index, cookie) in parsed.iter().enumerate() {
            let login = self.store.get_login(&cookie.username, &cookie.serial).await?;
            let judgement = protocol::judge(cookie, login.as_ref(), client, now, &self.config);
            let claim = Claim::of(&judgement, login.as_ref());
            // Strictly stronger only: of equal claims the first sent wins.
            if best.as_ref().is_none_or(|(strongest, _)| claim > *strongest) {
                best = Some((claim, index));
            }
        }
        Ok(best.and_then(|(_, index)| parsed.into_iter().nth(index)))
    }

    async fn session_hit(
        &self,
        cookie: &SessionCookie,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let owner = cookie.username.as_ref();
        // Hashed once: the lookup key and what the judgement compares.
        let digest = cookie.id.digest();
        let stored = self.store.get_session(owner, &digest).await?;
        match protocol::judge_session(cookie, &digest, stored.as_ref(), now, &self.config) {
            SessionJudgement::Unknown | SessionJudgement::Expired => Ok(None),
            SessionJudgement::Live { touch } => {
                let Some(session) = stored else { return Ok(None) };
                if !touch {
                    return Ok(Some(session));
                }
                // Boxed, as it is rare (a quarter of the idle timeout): its
                // state would otherwise add to every session hit's future.
                Box::pin(self.touch(owner, session, now)).await
            }
        }
    }

    /// Moves a live session's idle expiry forward; `None` when it was
    /// deleted between the read and the touch (a remote logout): it must
    /// not count.
    async fn touch(
        &self,
        owner: Option<&Username>,
        mut session: SessionRecord,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        session.expires_at = protocol::session_expiry(now, session.created_at, &self.config);
        let touched = self.store.touch_session(owner, &session.digest, session.expires_at).await?;
        Ok(touched.then_some(session))
    }

    /// The auth cookie for `next`, for what is left of `login`'s life.
    fn auth_cookie(&self, next: &AuthCookie, expires_at: OffsetDateTime, now: OffsetDateTime) -> SetCookie {
        SetCookie::auth_for(next, expires_at - now, &self.config)
    }

    /// The cookie-login path. Returns the outcome and the cookies it sets; a
    /// store error is returned as is, with nothing changed.
    async fn cookie_login(
        &self,
        cookie: &AuthCookie,
        client: ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(Outcome, Vec<SetCookie>), StoreError> {
        let config = &self.config;
        let clear = || remove_both(config);
        // The user-validity hook is asked once per request, before anything
        // can rotate: the optimistic attempt below rotates without reading
        // the login first, so it runs only once the hook said yes. A no or
        // an error is acted on only once the login is judged to
        // authenticate, as before (an unknown, expired or replayed cookie's
        // outcome does not depend on the hook).
        let mut verdict = Some(self.hooks.is_user_valid(&cookie.username).await);
        let optimistic = matches!(verdict, Some(Ok(true)));
        for _ in 0..ATTEMPTS {
            let login = match self.attempt_current(cookie, &client, now, optimistic).await? {
                Attempt::Rotated(outcome) => return Ok(outcome),
                Attempt::SessionExists => continue,
                Attempt::Judge(login) => login,
            };
            match protocol::judge(cookie, login.as_ref(), &client, now, config) {
                Judgement::Unknown => return Ok((Outcome::UnknownLogin, clear())),
                Judgement::Expired => {
                    if self.store.delete_login(&cookie.username, &cookie.serial).await? {
                        self.ended(&cookie.username, vec![cookie.serial], EndCause::Expired).await;
                    }
                    return Ok((Outcome::ExpiredLogin, clear()));
                }
                Judgement::Theft { cause, recorded } => {
                    let report = self.revoke_after_theft(cookie, cause, client, recorded, now).await?;
                    return Ok((Outcome::Theft(report), clear()));
                }
                Judgement::GraceRefused { recorded } => {
                    let refusal = GraceRefusal {
                        username: cookie.username.clone(),
                        serial: cookie.serial,
                        client,
                        recorded,
                        at: now,
                    };
                    tracing::warn!(
                        user = %refusal.username.tag(),
                        serial = %refusal.serial,
                        ip = ?refusal.client.ip,
                        recorded_ip = ?refusal.recorded.ip,
                        "previous remember-me token from another network inside the grace window: refused"
                    );
                    self.hooks.on_grace_refused(&refusal).await;
                    return Ok((Outcome::GraceRefused(refusal), clear()));
                }
                Judgement::Inconsistent => {
                    return Err(StoreError::corrupt(
                        "login's sealed successor does not match its current token",
                    ));
                }
                judgement @ (Judgement::Current | Judgement::Ahead { .. }) => {
                    let Some(login) = login else { return Ok((Outcome::UnknownLogin, clear())) };
                    if let Some(rejected) = self.reject_refused_user(&mut verdict, &cookie.username).await? {
                        return Ok((rejected, clear()));
                    }
                    let token = protocol::derived_successor(cookie, config)
                        .unwrap_or_else(|| self.tokens.token().into());
                    let id = self.tokens.session_id();
                    let (rotation, next) =
                        protocol::rotation(cookie, &login, token, &id, client.clone(), now, config);
                    match self.store.rotate_login(&rotation).await? {
                        Rotated::Rotated => {
                            if let Judgement::Ahead { steps } = judgement {
                                self.healed(cookie, steps, &client, now).await;
                            }
                            return self.logged_in(cookie, rotation, &next, id, now);
                        }
                        // Lost the race to a concurrent request: judge again
                        // against what it wrote (that is the grace case).
                        Rotated::NotCurrent | Rotated::SessionExists => continue,
                        Rotated::NotFound => return Ok((Outcome::UnknownLogin, clear())),
                    }
                }
                Judgement::Grace { token, key, session } => {
                    if let Some(rejected) = self.reject_refused_user(&mut verdict, &cookie.username).await? {
                        return Ok((rejected, clear()));
                    }
                    let serial = cookie.serial;
                    let Some(login) = login else { return Ok((Outcome::UnknownLogin, clear())) };
                    let Some((session, id)) = self.grace_session(&login, session, now).await? else {
                        // Revoked between the read and the grace session.
                        return Ok((Outcome::UnknownLogin, clear()));
                    };
                    let next = AuthCookie { username: cookie.username.clone(), serial, token, key };
                    let session_cookie = SessionCookie { username: Some(cookie.username.clone()), id };
                    let cookies = vec![
                        SetCookie::session(&session_cookie, config),
                        self.auth_cookie(&next, login.expires_at, now),
                    ];
                    let Some(auth) = Authenticated::new(session) else {
                        return Err(StoreError::corrupt("grace answered an anonymous session"));
                    };
                    return Ok((Outcome::Grace(auth), cookies));
                }
            }
        }
        Err(StoreError::new(
            StoreErrorKind::Backend,
            "cookie login kept losing rotation races; giving up without a decision",
        ))
    }

    /// The session a grace request joins: the one the winning rotation opened
    /// if it is still there, else a fresh one opened by the same login, which
    /// its next rotation and `delete_login` end. `None` when the login is
    /// gone by then: the fresh session is created only while the login
    /// exists, in one store step, so a revocation racing this leaves no
    /// session that would slide on for ever.
    async fn grace_session(
        &self,
        login: &Login,
        bound: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<Option<(SessionRecord, SessionId)>, StoreError> {
        if let Some(id) = bound {
            let found = self.store.get_session(Some(&login.username), &id.digest()).await?;
            if let Some(session) = found.filter(|session| session.is_live(now)) {
                return Ok(Some((session, id)));
            }
        }
        for _ in 0..ATTEMPTS {
            let id = self.tokens.session_id();
            let user = protocol::remembered_user(login);
            let session = protocol::new_session(Some(user), &id, SessionData::new(), now, &self.config);
            match self.store.create_grace_session(&session, self.config.max_sessions_per_user()).await? {
                GraceInserted::Created => return Ok(Some((session, id))),
                GraceInserted::LoginGone => return Ok(None),
                GraceInserted::AlreadyExists => {}
            }
        }
        Err(StoreError::new(StoreErrorKind::Backend, "session id collisions"))
    }

    /// The optimistic cookie login ([`Store::rotate_current`]) when
    /// `optimistic`, else a read: one round trip either way when the
    /// presented token is current. A login the attempt did not rotate comes
    /// back to be judged.
    async fn attempt_current(
        &self,
        cookie: &AuthCookie,
        client: &ClientMeta,
        now: OffsetDateTime,
        optimistic: bool,
    ) -> Result<Attempt, StoreError> {
        let config = &self.config;
        if optimistic {
            let token =
                protocol::derived_successor(cookie, config).unwrap_or_else(|| self.tokens.token().into());
            let id = self.tokens.session_id();
            if let Some((attempt, next)) =
                protocol::current_rotation(cookie, token, &id, client.clone(), now, config)
            {
                return Ok(match self.store.rotate_current(&attempt).await? {
                    CurrentRotated::Rotated { authenticated_at } => {
                        let rotation = attempt.with_authenticated_at(authenticated_at);
                        Attempt::Rotated(self.logged_in(cookie, rotation, &next, id, now)?)
                    }
                    CurrentRotated::SessionExists => Attempt::SessionExists,
                    CurrentRotated::NotApplied(login) => Attempt::Judge(login),
                });
            }
        }
        Ok(Attempt::Judge(self.store.get_login(&cookie.username, &cookie.serial).await?))
    }

    /// What a rotation that applied comes to: the new session, and the
    /// cookies that carry it and the successor `next`.
    fn logged_in(
        &self,
        cookie: &AuthCookie,
        rotation: crate::store::Rotation,
        next: &AuthCookie,
        id: SessionId,
        now: OffsetDateTime,
    ) -> Result<(Outcome, Vec<SetCookie>), StoreError> {
        let session_cookie = SessionCookie { username: Some(cookie.username.clone()), id };
        let cookies = vec![
            SetCookie::session(&session_cookie, &self.config),
            self.auth_cookie(next, rotation.expires_at, now),
        ];
        let Some(auth) = Authenticated::new(rotation.session) else {
            return Err(StoreError::corrupt("rotation opened an anonymous session"));
        };
        Ok((Outcome::CookieLogin(auth), cookies))
    }

    /// Acts on the user-validity hook's answer, asked before the first
    /// attempt (`verdict`), once a judgement authenticates: a refusal drops
    /// the user's logins, an error fails closed. `None` once acted on or for
    /// a yes.
    async fn reject_refused_user(
        &self,
        verdict: &mut Option<Result<bool, StoreError>>,
        username: &Username,
    ) -> Result<Option<Outcome>, StoreError> {
        match verdict.take() {
            None | Some(Ok(true)) => Ok(None),
            Some(Err(error)) => Err(error),
            Some(Ok(false)) => self.reject_user(username).await.map(Some),
        }
    }

    async fn reject_user(&self, username: &Username) -> Result<Outcome, StoreError> {
        let deleted = self.store.delete_user(username).await?;
        tracing::info!(user = %username.tag(), logins = deleted.logins, "user no longer valid; logins dropped");
        self.ended(username, deleted.serials, EndCause::UserRejected).await;
        Ok(Outcome::UserRejected(username.clone()))
    }

    async fn revoke_after_theft(
        &self,
        cookie: &AuthCookie,
        cause: TheftCause,
        client: ClientMeta,
        recorded: ClientMeta,
        now: OffsetDateTime,
    ) -> Result<TheftReport, StoreError> {
        let deleted = self.store.delete_user(&cookie.username).await?;
        let serials = deleted.serials.clone();
        let report = TheftReport {
            username: cookie.username.clone(),
            serial: cookie.serial,
            deleted,
            cause,
            client,
            recorded,
            at: now,
        };
        tracing::warn!(
            user = %report.username.tag(),
            serial = %report.serial,
            cause = report.cause.as_str(),
            logins = report.deleted.logins,
            sessions = report.deleted.sessions,
            ip = ?report.client.ip,
            recorded_ip = ?report.recorded.ip,
            "replayed remember-me cookie: every login and session of the user revoked"
        );
        self.hooks.on_theft(&report).await;
        self.ended(&cookie.username, serials, EndCause::Theft).await;
        Ok(report)
    }

    /// Reports a login healed after the store lost rotations.
    async fn healed(&self, cookie: &AuthCookie, steps: u16, client: &ClientMeta, now: OffsetDateTime) {
        let event = RollbackHealed {
            username: cookie.username.clone(),
            serial: cookie.serial,
            steps,
            client: client.clone(),
            at: now,
        };
        tracing::warn!(
            user = %event.username,
            serial = %event.serial,
            steps = event.steps,
            "remember-me token ahead of the store (lost rotations: failover or restore): rotation re-applied"
        );
        self.hooks.on_rollback_healed(&event).await;
    }

    /// Tells the hooks that logins ended, when there were any.
    async fn ended(&self, username: &Username, serials: Vec<Serial>, cause: EndCause) {
        if serials.is_empty() {
            return;
        }
        telemetry::logins_ended(cause, serials.len());
        let event = LoginsEnded { username: username.clone(), serials, cause };
        self.hooks.on_logins_ended(&event).await;
    }

    /// Registers a login after the application checked the user's password.
    ///
    /// Always opens a new session (a new id: no session fixation), method
    /// [`AuthMethod::Password`]; with `remember`, also a new login and its
    /// auth cookie. Whatever session and login the request presented are
    /// ended first, so a device never holds two logins. The data of a
    /// presented *anonymous* session moves into the new session and the
    /// anonymous record is deleted; a presented user's session ends with its
    /// data (it may be another user's).
    pub async fn register(
        &self,
        username: &Username,
        remember: bool,
        presented: &Presented<'_>,
    ) -> Result<Registration, EngineError> {
        self.register_carrying(username, remember, presented, None).await
    }

    /// [`Expected::register`], carrying `data` into the new session instead
    /// of what the presented anonymous session holds in the store (adapters
    /// pass the data as the request changed it). The presented session is
    /// ended all the same.
    pub async fn register_carrying(
        &self,
        username: &Username,
        remember: bool,
        presented: &Presented<'_>,
        data: Option<SessionData>,
    ) -> Result<Registration, EngineError> {
        let now = self.now();
        let config = &self.config;
        let forgotten = self.forget(presented, now, EndCause::Replaced).await?;
        let (anonymous, stored_data) = match forgotten.anonymous {
            Some((digest, data)) => (Some(digest), data),
            None => (None, None),
        };
        let data = data.or(stored_data).unwrap_or_default();
        let client = presented.client.meta();
        for _ in 0..ATTEMPTS {
            let id = self.tokens.session_id();
            let serial = remember.then(|| self.tokens.serial());
            let user = protocol::password_user(username, serial, now);
            let session = protocol::new_session(Some(user), &id, data.clone(), now, config);
            let session_cookie = SessionCookie { username: Some(username.clone()), id };
            let mut cookies = vec![SetCookie::session(&session_cookie, config)];
            if let Some(serial) = serial {
                let token = self.tokens.token();
                let (login, cookie) =
                    protocol::new_login(username, serial, token, &session, client.clone(), now, config);
                // One store call for the login, its session and what the
                // login cap needs to know (the user's other logins).
                let cap = config.max_logins_per_user();
                let sessions_cap = config.max_sessions_per_user();
                let others = match self
                    .store
                    .create_remembered(&login, &session, sessions_cap, cap.is_some())
                    .await?
                {
                    Remembered::Created { others } => others,
                    Remembered::LoginExists | Remembered::SessionExists => continue,
                };
                cookies.push(self.auth_cookie(&cookie, login.expires_at, now));
                if let (Some(max), Some(others)) = (cap, others) {
                    if let Err(error) = self.evict_over_cap(username, &others, max).await {
                        // The login is made; the cap is enforced again next time.
                        tracing::warn!(%error, user = %username.tag(), "could not evict logins over the cap");
                    }
                }
            } else {
                let cap = self.config.max_sessions_per_user();
                if self.store.create_session(&session, cap).await? == Inserted::AlreadyExists {
                    continue;
                }
                if !presented.auth.is_empty() {
                    cookies.extend(SetCookie::removals(CookieKind::Auth, config));
                }
            }
            // Several values of a name: one may be the host-only twin left
            // from before a `Domain` was configured. The cookies just set
            // replace the configured ones; clear the twins (first, so that a
            // browser that takes them for one cookie keeps the new value).
            for (kind, values) in
                [(CookieKind::Session, presented.session), (CookieKind::Auth, presented.auth)]
            {
                if values.len() > 1 && cookies.iter().any(|c| c.kind() == kind && !c.is_removal()) {
                    if let Some(twin) = self.host_only_twin(kind) {
                        cookies.insert(0, twin);
                    }
                }
            }
            // The data now lives in the new session: only then does the
            // visitor's record go, so a failure before this loses nothing.
            if let Some(digest) = anonymous {
                if let Err(error) = self.store.delete_session(None, &digest).await {
                    // Its cookie is replaced below, so nobody presents it
                    // again; cleaning removes it at its idle timeout.
                    tracing::warn!(%error, "could not delete the visitor's session after login");
                }
            }
            telemetry::registered(remember);
            let event = SignIn { username: username.clone(), serial, client: client.clone(), at: now };
            self.hooks.on_sign_in(&event).await;
            return Ok(Registration { session, serial, cookies });
        }
        Err(EngineError::KeyCollision)
    }

    /// Deletes the least recently used logins of `username` beyond the cap
    /// `max`, `others` being the user's logins but the one just registered
    /// (which is never deleted).
    async fn evict_over_cap(
        &self,
        username: &Username,
        others: &[Login],
        max: NonZeroUsize,
    ) -> Result<(), StoreError> {
        let mut evicted = Vec::new();
        for serial in protocol::logins_over_cap(others, max) {
            if self.store.delete_login(username, &serial).await? {
                evicted.push(serial);
            }
            tracing::debug!(user = %username.tag(), %serial, "login evicted over the per-user cap");
        }
        self.ended(username, evicted, EndCause::Evicted).await;
        Ok(())
    }

    /// Ends what a request presented: its sessions (and the logins that
    /// opened them), and each login an auth value names if the value proves
    /// it (the current token, or the previous one inside the grace window from
    /// the client the rotation recorded) or the login has expired anyway.
    /// With several values of a name, each one that proves itself counts (a
    /// device that holds two cookies after a `Domain` change logs both out);
    /// a value that proves nothing (stale, planted, replayed, a refused grace
    /// or a theft judgement) ends nothing: a logout from there must not end
    /// the device that holds the current token. A presented *anonymous*
    /// session is left to the caller ([`Forgotten::anonymous`]): a login
    /// deletes it only once the session that carries its data exists.
    async fn forget(
        &self,
        presented: &Presented<'_>,
        now: OffsetDateTime,
        cause: EndCause,
    ) -> Result<Forgotten, StoreError> {
        let mut forgotten = Forgotten::default();
        // The logins that ended, by user, so that each user's hook hears of
        // theirs in one event.
        let mut ended: Vec<(Username, Vec<Serial>)> = Vec::new();
        let mut note =
            |username: &Username, serial: Serial| match ended.iter_mut().find(|(u, _)| u == username) {
                Some((_, serials)) => serials.push(serial),
                None => ended.push((username.clone(), vec![serial])),
            };
        // Every value that proves itself ends what it names: the session ids
        // are bearer secrets, and the auth values must prove their login
        // below. What a stale or planted value names is left alone.
        for value in presented.session.iter() {
            let Ok(cookie) = SessionCookie::parse(value) else { continue };
            let digest = cookie.id.digest();
            let stored = self.store.get_session(cookie.username.as_ref(), &digest).await?;
            let Some(session) = stored.filter(|s| s.digest.matches(&cookie.id)) else { continue };
            match &session.user {
                None => {
                    // The visitor's session whose data a login carries: the
                    // first live one, as `authenticate` picks it.
                    if forgotten.anonymous.as_ref().is_none_or(|(_, data)| data.is_none()) {
                        let live = session.is_live(now);
                        forgotten.anonymous = Some((session.digest, live.then_some(session.data)));
                    }
                }
                Some(user) => {
                    self.store.delete_session(Some(&user.username), &session.digest).await?;
                    if let Some(serial) = user.login {
                        if self.store.delete_login(&user.username, &serial).await? {
                            note(&user.username, serial);
                        }
                    }
                }
            }
        }
        for value in presented.auth.iter() {
            let Ok(cookie) = AuthCookie::parse(value) else { continue };
            let login = self.store.get_login(&cookie.username, &cookie.serial).await?;
            let proven = matches!(
                protocol::judge(&cookie, login.as_ref(), &presented.client.meta(), now, &self.config),
                Judgement::Current | Judgement::Ahead { .. } | Judgement::Grace { .. } | Judgement::Expired
            );
            if proven && self.store.delete_login(&cookie.username, &cookie.serial).await? {
                note(&cookie.username, cookie.serial);
            }
        }
        for (username, serials) in ended {
            self.ended(&username, serials, cause).await;
        }
        Ok(forgotten)
    }

    /// Logs this device out: deletes the presented session (a visitor's too)
    /// and its login, and answers the cookies that clear both. On a store
    /// error nothing is cleared, so the user can retry.
    pub async fn logout(&self, presented: &Presented<'_>) -> Result<Vec<SetCookie>, StoreError> {
        let forgotten = self.forget(presented, self.now(), EndCause::Logout).await?;
        if let Some((digest, _)) = forgotten.anonymous {
            self.store.delete_session(None, &digest).await?;
        }
        Ok(remove_both(&self.config))
    }

    /// A user's logins, most recently used first; `current` marks the one
    /// that opened `session`.
    pub async fn devices(
        &self,
        username: &Username,
        session: Option<&SessionRecord>,
    ) -> Result<Vec<Device>, StoreError> {
        let mut logins = self.store.list_logins(username).await?;
        logins.sort_by(|a, b| b.last_used_at.cmp(&a.last_used_at).then(a.serial.cmp(&b.serial)));
        let current = session.filter(|s| s.username() == Some(username)).and_then(SessionRecord::login);
        Ok(logins
            .into_iter()
            .map(|login| Device {
                current: current == Some(login.serial),
                serial: login.serial,
                created_at: login.created_at,
                last_used_at: login.last_used_at,
                authenticated_at: login.authenticated_at,
                ip: login.client.ip,
                user_agent: login.client.user_agent,
            })
            .collect())
    }

    /// Revokes one of a user's logins: it and its session end at once (remote
    /// logout). Answers whether the user had that login.
    pub async fn revoke(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        let found = self.store.delete_login(username, serial).await?;
        if found {
            self.ended(username, vec![*serial], EndCause::Revoked).await;
        }
        Ok(found)
    }

    /// Deletes every login and session of a user: "log out everywhere".
    pub async fn logout_everywhere(&self, username: &Username) -> Result<Deleted, StoreError> {
        let deleted = self.store.delete_user(username).await?;
        self.ended(username, deleted.serials.clone(), EndCause::LogoutEverywhere).await;
        Ok(deleted)
    }

    /// Ends every other login and session of the session's user, keeping this
    /// session and the login that opened it: after a password change, say.
    /// One atomic store step, so a concurrent cookie login of another device
    /// does not survive it. An anonymous session has no other devices: it
    /// answers nothing deleted.
    pub async fn logout_others(&self, session: &SessionRecord) -> Result<Deleted, StoreError> {
        let Some(user) = &session.user else { return Ok(Deleted::default()) };
        let keep = Keep { session: session.digest, login: user.login };
        let deleted = self.store.delete_user_except(&user.username, &keep).await?;
        self.ended(&user.username, deleted.serials.clone(), EndCause::LogoutOthers).await;
        Ok(deleted)
    }

    /// Records that the application just checked the user's password again
    /// on this session: it becomes [`AuthMethod::Password`] with
    /// `authenticated_at` now, and so does its login. Answers the updated
    /// session, or `None` when it no longer exists (or is anonymous).
    pub async fn confirm_password(
        &self,
        session: &SessionRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(user) = &session.user else { return Ok(None) };
        let now = self.now();
        let confirmation = Confirmation {
            username: user.username.clone(),
            session: session.digest,
            login: user.login,
            at: now,
        };
        if !self.store.confirm_password(&confirmation).await? {
            return Ok(None);
        }
        let mut updated = session.clone();
        if let Some(user) = updated.user.as_mut() {
            user.method = AuthMethod::Password;
            user.authenticated_at = now;
        }
        Ok(Some(updated))
    }

    /// Opens an anonymous visitor's session holding `data`, and answers it
    /// with the cookie that carries it.
    pub async fn create_anonymous(
        &self,
        data: SessionData,
    ) -> Result<(SessionRecord, SetCookie), EngineError> {
        let now = self.now();
        for _ in 0..ATTEMPTS {
            let id = self.tokens.session_id();
            let session = protocol::new_session(None, &id, data.clone(), now, &self.config);
            // A visitor's session belongs to no user: no cap applies.
            if self.store.create_session(&session, None).await? == Inserted::Created {
                let cookie = SetCookie::session(&SessionCookie { username: None, id }, &self.config);
                return Ok((session, cookie));
            }
        }
        Err(EngineError::KeyCollision)
    }

    /// Gives a session a new id, keeping its owner, data and creation time
    /// (so the absolute timeout still counts from the first): the old id
    /// stops working at once. Answers the new session and its cookie, or
    /// `None` when the session no longer exists.
    pub async fn cycle_session(
        &self,
        session: &SessionRecord,
    ) -> Result<Option<(SessionRecord, SetCookie)>, EngineError> {
        let now = self.now();
        for _ in 0..ATTEMPTS {
            let id = self.tokens.session_id();
            let mut next = session.clone();
            next.digest = id.digest();
            next.expires_at = protocol::session_expiry(now, session.created_at, &self.config);
            // The new session replaces the old one: the user may hold one
            // more until the old one is deleted, so that the cap never
            // evicts the very session being cycled.
            let cap = self.config.max_sessions_per_user().map(|max| max.saturating_add(1));
            if self.store.create_session(&next, cap).await? == Inserted::AlreadyExists {
                continue;
            }
            if !self.store.delete_session(session.username(), &session.digest).await? {
                // The old one was ended meanwhile (a remote logout): so is this.
                self.store.delete_session(next.username(), &next.digest).await?;
                return Ok(None);
            }
            let username = next.username().cloned();
            let cookie = SetCookie::session(&SessionCookie { username, id }, &self.config);
            return Ok(Some((next, cookie)));
        }
        Err(EngineError::KeyCollision)
    }

    /// Saves a session's data and pushes out its idle expiry (never past the
    /// absolute timeout). Answers `false` when the session no longer exists
    /// (it is not recreated).
    pub async fn save_session(&self, session: &mut SessionRecord) -> Result<bool, StoreError> {
        session.expires_at = protocol::session_expiry(self.now(), session.created_at, &self.config);
        self.store.save_session(session).await
    }

    /// Deletes one session by its owner and digest.
    pub async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        self.store.delete_session(owner, digest).await
    }

    /// Deletes expired logins and sessions.
    pub async fn clean(&self) -> Result<Cleaned, StoreError> {
        let mut logins = 0;
        let cleaned = self.clean_counting(&mut logins).await;
        match &cleaned {
            Ok(done) => telemetry::cleaned(done.logins, done.sessions, true),
            Err(_) => telemetry::cleaned(logins, 0, false),
        }
        cleaned
    }

    /// [`Expected::clean`], setting `logins` as soon as they are deleted (a
    /// failure cleaning the sessions after that still counts them).
    async fn clean_counting(&self, logins: &mut u64) -> Result<Cleaned, StoreError> {
        let now = self.now();
        let mut expired = self.store.delete_expired_logins(now).await?;
        *logins = expired.len() as u64;
        let logins = *logins;
        expired.sort();
        let mut rest = expired.as_slice();
        while let Some(first) = rest.first() {
            let same = rest.iter().take_while(|login| login.username == first.username).count();
            let serials = rest[..same].iter().map(|login| login.serial).collect();
            self.ended(&first.username, serials, EndCause::Expired).await;
            rest = &rest[same..];
        }
        let sessions = self.store.delete_expired_sessions(now).await?;
        tracing::debug!(logins, sessions, "cleaned expired logins and sessions");
        Ok(Cleaned { logins, sessions })
    }
}

fn unavailable(error: StoreError) -> Authentication {
    tracing::error!(%error, "store unavailable; failing closed");
    Authentication { outcome: Outcome::Unavailable(error), cookies: Vec::new() }
}
