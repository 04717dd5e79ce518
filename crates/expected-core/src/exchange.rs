//! One request/response exchange, for framework adapters.
//!
//! An adapter makes an [`Exchange`] from the request's cookies
//! ([`Exchange::begin`]), hands it to the application (in request extensions,
//! say), and after the handler calls [`Exchange::finish`] for the
//! `Set-Cookie`s to send. In between, the application reads who is logged in,
//! reads and writes session data, and registers or ends logins; the exchange
//! keeps the cookies consistent whatever it does. Every decision stays here,
//! so the axum and actix adapters behave the same.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cookies::{CookieKind, SetCookie};
use crate::engine::{Client, Device, EngineError, Expected, Outcome, Presented, TheftReport};
use crate::record::{ClientMeta, Session};
use crate::secret::{Serial, Username};
use crate::store::{Deleted, Store, StoreError};

/// How the request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A valid session cookie.
    Session,
    /// The auth cookie, rotated.
    CookieLogin,
    /// The previous auth cookie inside the grace window.
    Grace,
    /// A password login during this request ([`Exchange::register`]).
    Password,
}

impl Via {
    /// A short lowercase name: `session`, `cookie`, `grace`, `password`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::CookieLogin => "cookie",
            Self::Grace => "grace",
            Self::Password => "password",
        }
    }
}

/// What an adapter does with a request when the store is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Answer `503 Service Unavailable` with [`STORE_UNAVAILABLE_JSON`] and no
    /// cookie change, without calling the handler. The default.
    #[default]
    ServiceUnavailable,
    /// Call the handler with the request unauthenticated (cookies still
    /// untouched): for pages that work for anonymous users too.
    Anonymous,
}

/// The body of the 503 answer to a store outage.
pub const STORE_UNAVAILABLE_JSON: &str = r#"{"error":"store_unavailable"}"#;

/// Why a route that needs a logged-in user refuses a request (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// Not logged in: `{"error":"unauthenticated"}`.
    #[error("not logged in")]
    NotLoggedIn,
    /// This very request detected a replayed remember-me cookie and revoked
    /// every login of the user: `{"error":"unexpected_token"}`.
    #[error("a replayed remember-me cookie revoked every login")]
    UnexpectedToken,
}

impl Unauthenticated {
    /// The machine-readable error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotLoggedIn => "unauthenticated",
            Self::UnexpectedToken => "unexpected_token",
        }
    }

    /// The JSON body of the 401 answer.
    pub fn json(self) -> &'static str {
        match self {
            Self::NotLoggedIn => r#"{"error":"unauthenticated"}"#,
            Self::UnexpectedToken => r#"{"error":"unexpected_token"}"#,
        }
    }
}

/// The client IP to keep for the devices list: the last address of a trusted
/// proxy header (`X-Forwarded-For`'s last hop is the one your proxy saw;
/// `X-Real-IP` has one) when the adapter was told to trust one and it parses,
/// else the peer address.
pub fn client_ip(trusted_header: Option<&str>, peer: Option<std::net::IpAddr>) -> Option<std::net::IpAddr> {
    trusted_header.and_then(|text| text.rsplit(',').next()).and_then(|last| last.trim().parse().ok()).or(peer)
}

/// Why a session operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The request is not authenticated, so it has no session.
    #[error("the request has no session (not authenticated)")]
    NoSession,
    /// The value does not serialize to, or deserialize from, JSON.
    #[error("session value: {0}")]
    Json(#[from] serde_json::Error),
}

struct State {
    outcome: Outcome,
    via: Option<Via>,
    session: Option<Session>,
    dirty: bool,
    cookies: Vec<SetCookie>,
    /// The cookie values the client holds once this response is applied.
    session_cookie: Option<String>,
    auth_cookie: Option<String>,
}

impl State {
    /// Applies `Set-Cookie`s, each replacing an earlier one of its kind.
    fn apply(&mut self, cookies: Vec<SetCookie>) {
        for cookie in cookies {
            let value = (!cookie.is_removal()).then(|| cookie.value().to_owned());
            match cookie.kind() {
                CookieKind::Session => self.session_cookie = value,
                CookieKind::Auth => self.auth_cookie = value,
            }
            self.cookies.retain(|earlier| earlier.kind() != cookie.kind());
            self.cookies.push(cookie);
        }
    }
}

/// The authentication side of one HTTP (or other) exchange.
pub struct Exchange<S> {
    engine: Arc<Expected<S>>,
    client: ClientMeta,
    state: Mutex<State>,
}

impl<S> std::fmt::Debug for Exchange<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").field("client", &self.client).finish_non_exhaustive()
    }
}

impl<S: Store> Exchange<S> {
    /// Authenticates a request from its two cookies' values and its client.
    pub async fn begin(
        engine: Arc<Expected<S>>,
        session_cookie: Option<String>,
        auth_cookie: Option<String>,
        client: ClientMeta,
    ) -> Self {
        let presented = Presented {
            session: session_cookie.as_deref(),
            auth: auth_cookie.as_deref(),
            client: Client { ip: client.ip, user_agent: client.user_agent.as_deref() },
        };
        let result = engine.authenticate(&presented).await;
        let via = match &result.outcome {
            Outcome::Session(_) => Some(Via::Session),
            Outcome::CookieLogin(_) => Some(Via::CookieLogin),
            Outcome::Grace(_) => Some(Via::Grace),
            Outcome::Anonymous
            | Outcome::Malformed(..)
            | Outcome::UnknownLogin
            | Outcome::ExpiredLogin
            | Outcome::Theft(_)
            | Outcome::UserRejected(_)
            | Outcome::Unavailable(_) => None,
        };
        let session = result.outcome.authenticated().map(|auth| auth.session.clone());
        let mut state = State {
            outcome: result.outcome,
            via,
            session,
            dirty: false,
            cookies: Vec::new(),
            session_cookie,
            auth_cookie,
        };
        state.apply(result.cookies);
        Self { engine, client, state: Mutex::new(state) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No method panics while holding the lock with the state half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the client will present next: the cookies as this exchange left them.
    fn presented(&self) -> OwnedPresented {
        let state = self.state();
        OwnedPresented {
            session: state.session_cookie.clone(),
            auth: state.auth_cookie.clone(),
            ip: self.client.ip,
            user_agent: self.client.user_agent.clone(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Expected<S>> {
        &self.engine
    }

    /// Runs `f` on what authenticating the request came to.
    pub fn with_outcome<R>(&self, f: impl FnOnce(&Outcome) -> R) -> R {
        f(&self.state().outcome)
    }

    /// Who is logged in now (after any register or logout in this exchange).
    pub fn username(&self) -> Option<Username> {
        self.state().session.as_ref().map(|session| session.username.clone())
    }

    /// How the user got logged in, while they are.
    pub fn via(&self) -> Option<Via> {
        let state = self.state();
        state.session.as_ref().and(state.via)
    }

    /// The theft report, when this request detected a replayed cookie.
    pub fn theft(&self) -> Option<TheftReport> {
        match &self.state().outcome {
            Outcome::Theft(report) => Some(report.clone()),
            _ => None,
        }
    }

    /// Whether authenticating failed because the store was unavailable (the
    /// adapter answers 503, or treats the request as anonymous).
    pub fn store_unavailable(&self) -> bool {
        matches!(self.state().outcome, Outcome::Unavailable(_))
    }

    /// Whether the adapter must answer 503 ([`STORE_UNAVAILABLE_JSON`])
    /// without calling the handler, under `policy`.
    pub fn refused(&self, policy: OnStoreError) -> bool {
        policy == OnStoreError::ServiceUnavailable && self.store_unavailable()
    }

    /// Whether someone is logged in.
    pub fn is_authenticated(&self) -> bool {
        self.state().session.is_some()
    }

    /// Whether this request detected a replayed remember-me cookie: every
    /// login and session of the user was just revoked. Tell them.
    pub fn theft_detected(&self) -> bool {
        matches!(self.state().outcome, Outcome::Theft(_))
    }

    /// The logged-in user, or why a route that needs one refuses the request.
    pub fn require_user(&self) -> Result<Username, Unauthenticated> {
        match self.username() {
            Some(username) => Ok(username),
            None if self.theft_detected() => Err(Unauthenticated::UnexpectedToken),
            None => Err(Unauthenticated::NotLoggedIn),
        }
    }

    /// The current session, if logged in.
    pub fn session(&self) -> Option<Session> {
        self.state().session.clone()
    }

    /// The serial of the login behind the current session, if any.
    pub fn login(&self) -> Option<Serial> {
        self.state().session.as_ref().and_then(|session| session.login)
    }

    /// Reads a session value.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let state = self.state();
        let session = state.session.as_ref().ok_or(SessionError::NoSession)?;
        match session.data.get(key) {
            Some(value) => Ok(Some(T::deserialize(value)?)),
            None => Ok(None),
        }
    }

    /// Writes a session value; saved by [`Exchange::finish`].
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value)?;
        let mut state = self.state();
        let session = state.session.as_mut().ok_or(SessionError::NoSession)?;
        if session.data.get(key) != Some(&value) {
            session.data.insert(key.to_owned(), value);
            state.dirty = true;
        }
        Ok(())
    }

    /// Removes a session value; saved by [`Exchange::finish`].
    pub fn remove(&self, key: &str) -> Result<Option<serde_json::Value>, SessionError> {
        let mut state = self.state();
        let session = state.session.as_mut().ok_or(SessionError::NoSession)?;
        let removed = session.data.remove(key);
        state.dirty |= removed.is_some();
        Ok(removed)
    }

    /// Logs `username` in after the application checked their password:
    /// a new session (always a new id), and a new login when `remember`.
    /// Whatever this request presented is ended first.
    pub async fn register(&self, username: &Username, remember: bool) -> Result<(), EngineError> {
        let presented = self.presented();
        let registration = self.engine.register(username, remember, &presented.borrowed()).await?;
        let mut state = self.state();
        state.session = Some(registration.session);
        state.via = Some(Via::Password);
        state.dirty = false;
        state.apply(registration.cookies);
        Ok(())
    }

    /// Logs this device out: its session and login end, both cookies are
    /// cleared.
    pub async fn logout(&self) -> Result<(), StoreError> {
        let presented = self.presented();
        let cleared = self.engine.logout(&presented.borrowed()).await?;
        self.ended(cleared);
        Ok(())
    }

    fn ended(&self, cleared: Vec<SetCookie>) {
        let mut state = self.state();
        state.session = None;
        state.dirty = false;
        state.apply(cleared);
    }

    /// The logged-in user's devices, with this one marked current.
    pub async fn devices(&self) -> Result<Option<Vec<Device>>, StoreError> {
        let Some(session) = self.session() else { return Ok(None) };
        self.engine.devices(&session.username, Some(&session)).await.map(Some)
    }

    /// Revokes one of the logged-in user's logins (remote logout). Revoking
    /// this device's own login logs this device out too. Answers whether the
    /// user had that login; `None` when not logged in.
    pub async fn revoke(&self, serial: &Serial) -> Result<Option<bool>, StoreError> {
        let Some(session) = self.session() else { return Ok(None) };
        let found = self.engine.revoke(&session.username, serial).await?;
        if found && session.login == Some(*serial) {
            self.ended(remove_both(self.engine.config()));
        }
        Ok(Some(found))
    }

    /// Ends every login and session of the logged-in user, this device's
    /// included. `None` when not logged in.
    pub async fn logout_everywhere(&self) -> Result<Option<Deleted>, StoreError> {
        let Some(username) = self.username() else { return Ok(None) };
        let deleted = self.engine.logout_everywhere(&username).await?;
        self.ended(remove_both(self.engine.config()));
        Ok(Some(deleted))
    }

    /// Saves changed session data and answers the `Set-Cookie`s for the
    /// response. On a store error while saving, the cookies are still
    /// answered alongside the error, so the adapter can send them and log.
    pub async fn finish(&self) -> (Vec<SetCookie>, Result<(), StoreError>) {
        let (dirty_session, cookies) = {
            let mut state = self.state();
            let dirty = std::mem::take(&mut state.dirty);
            (state.session.clone().filter(|_| dirty), state.cookies.clone())
        };
        let saved = match dirty_session {
            Some(mut session) => self.engine.save_session(&mut session).await.map(|_| ()),
            None => Ok(()),
        };
        (cookies, saved)
    }
}

fn remove_both(config: &crate::Config) -> Vec<SetCookie> {
    vec![SetCookie::remove(CookieKind::Session, config), SetCookie::remove(CookieKind::Auth, config)]
}

/// A `Presented` that owns its strings, to cross an `.await`.
struct OwnedPresented {
    session: Option<String>,
    auth: Option<String>,
    ip: Option<std::net::IpAddr>,
    user_agent: Option<String>,
}

impl OwnedPresented {
    fn borrowed(&self) -> Presented<'_> {
        Presented {
            session: self.session.as_deref(),
            auth: self.auth.as_deref(),
            client: Client { ip: self.ip, user_agent: self.user_agent.as_deref() },
        }
    }
}
