//! One request/response exchange, for framework adapters.
//!
//! An adapter makes an [`Exchange`] from the request's cookies
//! ([`Exchange::new`], no I/O), hands the application two views of it, an
//! [`AuthHandle`] and a [`SessionHandle`] (in request extensions, say), and
//! after the handler calls [`Exchange::conclude`] for the `Set-Cookie`s to send
//! (and whether to answer 503, and whether the response may be cached).
//!
//! **Lazy.** Nothing touches the store until a handler first asks who is
//! logged in or reads or writes session data; a request that never asks costs
//! no store call and gets no cookie. A store outage is then met by that first
//! question, as a [`StoreError`] the handler passes on with `?` (the adapters
//! answer it 503).
//!
//! **Sessions for everyone.** Anonymous visitors read and write session data
//! through the same [`SessionHandle`]; the record is created only when data is
//! first written, so a visitor who never writes costs no store write and gets
//! no cookie. On a password login ([`AuthHandle::register`]) the visitor's data
//! moves into the new session, under a new id.
//!
//! Every decision stays here, so the axum and actix adapters behave the same.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio::sync::{Mutex, MutexGuard};

use crate::config::Config;
use crate::cookies::{CookieKind, PresentedCookies, SetCookie};
use crate::credential::SessionCookie;
use crate::engine::{Authentication, Client, Device, EngineError, Expected, Outcome, Presented, TheftReport};
use crate::record::{AuthMethod, ClientMeta, SessionData, SessionRecord};
use crate::secret::{Serial, Username};
use crate::store::{Deleted, Store, StoreError};

/// How the request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Via {
    /// A valid session cookie.
    Session,
    /// The auth cookie, rotated.
    CookieLogin,
    /// The previous auth cookie inside the grace window.
    Grace,
    /// A password login during this request ([`AuthHandle::register`]).
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

/// Why a route that needs a logged-in user refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// Not logged in: `{"error":"unauthenticated"}`.
    #[error("not logged in")]
    NotLoggedIn,
    /// This very request detected a replayed remember-me cookie and revoked
    /// every login of the user: `{"error":"unexpected_token"}`.
    #[error("a replayed remember-me cookie revoked every login")]
    UnexpectedToken,
    /// Logged in, but not with a recent enough password entry:
    /// `{"error":"reauthentication_required"}`.
    #[error("a recent password entry is required")]
    ReauthenticationRequired,
}

impl Unauthenticated {
    /// The machine-readable error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotLoggedIn => "unauthenticated",
            Self::UnexpectedToken => "unexpected_token",
            Self::ReauthenticationRequired => "reauthentication_required",
        }
    }
}

/// Why an authentication question could not be answered yes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Nobody (or nobody fresh enough) is logged in.
    #[error(transparent)]
    Unauthenticated(#[from] Unauthenticated),
    /// The store failed: fail closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Registering could not draw fresh random keys.
    #[error(transparent)]
    Engine(EngineError),
}

impl From<EngineError> for AuthError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(error) => Self::Store(error),
            other => Self::Engine(other),
        }
    }
}

/// Why a session operation could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed while loading the session: fail closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The value does not serialize to, or deserialize from, JSON.
    #[error("session value: {0}")]
    Json(#[from] serde_json::Error),
    /// The write would make the session data larger than
    /// [`Config::max_session_data_bytes`](crate::Config::max_session_data_bytes);
    /// nothing was changed.
    #[error("session data would be {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Serialized size the write would have made.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Who is logged in, how and when they proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// The user.
    pub username: Username,
    /// The login (device) behind the session, when "remember me" was chosen.
    pub login: Option<Serial>,
    /// How this request was authenticated.
    pub via: Via,
    /// How the session was opened or last confirmed.
    pub method: AuthMethod,
    /// When the user last entered their password on this device.
    pub authenticated_at: OffsetDateTime,
}

impl CurrentUser {
    /// Whether the user entered their password less than `max_age` before
    /// `now` on this session: method [`AuthMethod::Password`] and a recent
    /// `authenticated_at`.
    pub fn is_fresh_at(&self, max_age: Duration, now: OffsetDateTime) -> bool {
        is_fresh_at(self.method, self.authenticated_at, max_age, now)
    }
}

/// [`CurrentUser::is_fresh_at`] on a session's user fields.
fn is_fresh_at(
    method: AuthMethod,
    authenticated_at: OffsetDateTime,
    max_age: Duration,
    now: OffsetDateTime,
) -> bool {
    let max_age = time::Duration::try_from(max_age).unwrap_or(time::Duration::MAX);
    method == AuthMethod::Password && now - authenticated_at < max_age
}

/// The request's session as this exchange holds it.
enum Current {
    /// No session, and no data.
    Empty,
    /// An anonymous visitor wrote data; the record is created by
    /// [`Exchange::finish`].
    Pending(SessionData),
    /// A stored session, a user's or a visitor's.
    Stored(SessionRecord),
}

impl Current {
    fn data(&self) -> Option<&SessionData> {
        match self {
            Self::Empty => None,
            Self::Pending(data) => Some(data),
            Self::Stored(session) => Some(&session.data),
        }
    }
}

/// What authenticating the request came to, once it was asked.
struct Loaded {
    current: Current,
    via: Option<Via>,
    dirty: bool,
    theft: Option<TheftReport>,
    /// The store error met by authenticating, kept to answer every later
    /// question of this request the same way.
    failure: Option<StoreError>,
}

struct State {
    loaded: Option<Loaded>,
    cookies: Vec<SetCookie>,
    /// The cookie values that count once this response is applied: what the
    /// request presented, narrowed to the winner once authentication found
    /// one, replaced by what this exchange set, emptied by what it cleared.
    /// A later login or logout in the same exchange acts on these.
    presented: PresentedCookies,
}

impl State {
    /// Applies `Set-Cookie`s, each replacing an earlier one for the same
    /// browser cookie.
    fn apply(&mut self, cookies: Vec<SetCookie>) {
        for cookie in cookies {
            if !cookie.is_removal() {
                self.presented.replace(cookie.kind(), Some(cookie.value()));
            } else if !cookie.is_host_only_removal() {
                self.presented.replace(cookie.kind(), None);
            }
            // A host-only removal next to a configured `Domain` clears a
            // stale twin, not the value this exchange goes on with.
            SetCookie::merge_into(&mut self.cookies, [cookie]);
        }
    }

    /// Keeps only the session value that names `session`: the winner of
    /// several, so that a later login or logout acts on it alone.
    fn narrow_session(&mut self, session: &SessionRecord) {
        self.presented.retain(CookieKind::Session, |value| {
            SessionCookie::parse(value).is_ok_and(|cookie| session.digest.matches(&cookie.id))
        });
    }

    /// What the request presented, borrowed from the state and `client`.
    fn presented_borrowed<'a>(&'a self, client: &'a ClientMeta) -> Presented<'a> {
        let client = Client { ip: client.ip, user_agent: client.user_agent.as_deref() };
        Presented::from_cookies(&self.presented, client)
    }

    /// What the request presented, copied: for the paths that change the
    /// state while the engine still reads it (a login, a logout).
    fn presented(&self, client: &ClientMeta) -> OwnedPresented {
        OwnedPresented {
            cookies: self.presented.clone(),
            ip: client.ip,
            user_agent: client.user_agent.clone(),
        }
    }
}

/// The logged-in user of a loaded exchange, copied for the handler.
fn current_user_of(loaded: &Loaded) -> Option<CurrentUser> {
    let Current::Stored(session) = &loaded.current else { return None };
    let user = session.user.as_ref()?;
    Some(CurrentUser {
        username: user.username.clone(),
        login: user.login,
        via: loaded.via.unwrap_or(Via::Session),
        method: user.method,
        authenticated_at: user.authenticated_at,
    })
}

/// A copy of a store error, to answer it again.
fn again(error: &StoreError) -> StoreError {
    StoreError::new(error.kind(), error.to_string())
}

/// The authentication side of one HTTP (or other) exchange: the adapter's
/// lifecycle ([`Exchange::new`], [`Exchange::conclude`]); handlers see it
/// through [`AuthHandle`] and [`SessionHandle`].
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
    /// An exchange for a request that carried these cookie values (every
    /// value of each name, as
    /// [`read_cookie_headers`](crate::cookies::read_cookie_headers) reads
    /// them): nothing is read from the store yet.
    pub fn new(engine: Arc<Expected<S>>, cookies: PresentedCookies, client: ClientMeta) -> Self {
        let state = State { loaded: None, cookies: Vec::new(), presented: cookies };
        Self { engine, client, state: Mutex::new(state) }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Expected<S>> {
        &self.engine
    }

    /// The state, authenticated first if nobody asked yet.
    async fn loaded(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().await;
        if state.loaded.is_none() {
            // Borrowed, not copied: every request that asks who is logged in
            // comes through here, and the state is ours until we let go.
            // Boxed: every future that asks (a guard's, an extractor's, and
            // the handler's that holds them) would otherwise hold the
            // authentication's whole state, taken once per request.
            let Authentication { outcome, cookies } =
                Box::pin(self.engine.authenticate(&state.presented_borrowed(&self.client))).await;
            let via = match &outcome {
                Outcome::Session(_) => Some(Via::Session),
                Outcome::CookieLogin(_) => Some(Via::CookieLogin),
                Outcome::Grace(_) => Some(Via::Grace),
                _ => None,
            };
            // A session hit on the request's only session value needs no
            // narrowing: that value is the one the session was found by.
            // Narrowing parses and hashes every value again, which only
            // picks a winner among several, or drops the values a cookie
            // login or the grace path replaced.
            let found_by_the_only_value =
                matches!(outcome, Outcome::Session(_) | Outcome::AnonymousSession(_))
                    && state.presented.session_values().len() == 1;
            let (mut theft, mut failure) = (None, None);
            // The session moves out of the outcome: a hit copies no record.
            let session = match outcome {
                Outcome::Session(auth) | Outcome::CookieLogin(auth) | Outcome::Grace(auth) => {
                    Some(auth.into_session())
                }
                Outcome::AnonymousSession(session) => Some(session),
                Outcome::Theft(report) => {
                    theft = Some(report);
                    None
                }
                Outcome::Unavailable(error) => {
                    failure = Some(error);
                    None
                }
                Outcome::Anonymous
                | Outcome::Malformed(..)
                | Outcome::UnknownLogin
                | Outcome::ExpiredLogin
                | Outcome::GraceRefused(_)
                | Outcome::UserRejected(_) => None,
            };
            let current = match session {
                Some(session) => {
                    if !found_by_the_only_value {
                        state.narrow_session(&session);
                    }
                    Current::Stored(session)
                }
                None => Current::Empty,
            };
            state.loaded = Some(Loaded { current, via, dirty: false, theft, failure });
            state.apply(cookies);
        }
        state
    }

    /// Runs `f` on the authenticated state, or answers the store error that
    /// authenticating met.
    async fn with_loaded<R>(&self, f: impl FnOnce(&mut Loaded) -> R) -> Result<R, StoreError> {
        let mut state = self.loaded().await;
        let Some(loaded) = state.loaded.as_mut() else {
            return Err(StoreError::new(crate::StoreErrorKind::Backend, "exchange state missing"));
        };
        if let Some(error) = &loaded.failure {
            return Err(again(error));
        }
        Ok(f(loaded))
    }

    /// Authenticates the request now, if nobody asked yet, and answers the
    /// store error that met, if any.
    pub async fn authenticate(&self) -> Result<(), StoreError> {
        self.with_loaded(|_| ()).await
    }

    /// Whether the request was authenticated and the store failed: the
    /// adapter answers 503. `false` when nobody asked yet.
    pub async fn store_failed(&self) -> bool {
        self.state.lock().await.loaded.as_ref().is_some_and(|loaded| loaded.failure.is_some())
    }

    /// Who is logged in now (after any register or logout in this exchange).
    pub async fn current_user(&self) -> Result<Option<CurrentUser>, StoreError> {
        self.with_loaded(|loaded| current_user_of(loaded)).await
    }

    /// The logged-in user, or why a route that needs one refuses the request.
    pub async fn require_user(&self) -> Result<CurrentUser, AuthError> {
        // One read of the state for the user and the theft alike: every
        // guarded request asks this, and its future is part of the
        // handler's, which axum boxes per request (two reads, one after the
        // other, made that box too big for the allocator's per-thread cache).
        self.with_loaded(|loaded| match current_user_of(loaded) {
            Some(user) => Ok(user),
            None if loaded.theft.is_some() => Err(Unauthenticated::UnexpectedToken.into()),
            None => Err(Unauthenticated::NotLoggedIn.into()),
        })
        .await?
    }

    /// The logged-in user when they entered their password on this session
    /// less than `max_age` ago; else why not.
    pub async fn require_fresh(&self, max_age: Duration) -> Result<CurrentUser, AuthError> {
        let user = self.require_user().await?;
        if user.is_fresh_at(max_age, self.engine.now()) {
            Ok(user)
        } else {
            Err(Unauthenticated::ReauthenticationRequired.into())
        }
    }

    /// The theft report, when this request detected a replayed cookie.
    pub async fn theft(&self) -> Result<Option<TheftReport>, StoreError> {
        self.with_loaded(|loaded| loaded.theft.clone()).await
    }

    /// The request's session record, a user's or a visitor's, once stored.
    pub async fn session_record(&self) -> Result<Option<SessionRecord>, StoreError> {
        self.with_loaded(|loaded| match &loaded.current {
            Current::Stored(session) => Some(session.clone()),
            Current::Empty | Current::Pending(_) => None,
        })
        .await
    }

    /// Reads a session value.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let value =
            self.with_loaded(|loaded| loaded.current.data().and_then(|data| data.get(key).cloned())).await?;
        Ok(value.map(T::deserialize).transpose()?)
    }

    /// The whole session data (empty when there is no session).
    pub async fn data(&self) -> Result<SessionData, StoreError> {
        self.with_loaded(|loaded| loaded.current.data().cloned().unwrap_or_default()).await
    }

    /// Changes the data with `change` if the result stays within the size
    /// limit; saved by [`Exchange::finish`].
    async fn change<R>(&self, change: impl FnOnce(&mut SessionData) -> R) -> Result<R, SessionError> {
        let limit = self.engine.config().max_session_data_bytes();
        self.with_loaded(|loaded| {
            let mut data = loaded.current.data().cloned().unwrap_or_default();
            let answer = change(&mut data);
            if loaded.current.data() == Some(&data) || (data.is_empty() && loaded.current.data().is_none()) {
                return Ok(answer);
            }
            let size = serde_json::to_vec(&data).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
            if size > limit {
                return Err(SessionError::TooLarge { size, limit });
            }
            match &mut loaded.current {
                Current::Stored(session) => session.data = data,
                Current::Pending(pending) => *pending = data,
                Current::Empty => loaded.current = Current::Pending(data),
            }
            loaded.dirty = true;
            Ok(answer)
        })
        .await?
    }

    /// Writes a session value; saved by [`Exchange::finish`]. For a visitor
    /// with no session yet, this is what creates one.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value)?;
        self.change(|data| {
            data.insert(key.to_owned(), value);
        })
        .await
    }

    /// Removes a session value; saved by [`Exchange::finish`].
    pub async fn remove(&self, key: &str) -> Result<Option<serde_json::Value>, SessionError> {
        self.change(|data| data.remove(key)).await
    }

    /// Removes every session value, keeping the session (and the login).
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.change(SessionData::clear).await
    }

    /// Gives the session a new id (after a privilege change, say), keeping its
    /// data and owner; the old id stops working at once. Nothing happens when
    /// there is no stored session yet.
    pub async fn cycle_id(&self) -> Result<(), AuthError> {
        let mut state = self.loaded().await;
        let Some(loaded) = state.loaded.as_mut() else { return Ok(()) };
        if let Some(error) = &loaded.failure {
            return Err(again(error).into());
        }
        let Current::Stored(session) = &loaded.current else { return Ok(()) };
        match self.engine.cycle_session(session).await? {
            Some((next, cookie)) => {
                // Unsaved changes stay marked dirty and are saved on the new id.
                let data = session.data.clone();
                loaded.current = Current::Stored(SessionRecord { data, ..next });
                state.apply(vec![cookie]);
            }
            None => {
                loaded.current = Current::Empty;
                loaded.dirty = false;
                state.apply(SetCookie::removals(CookieKind::Session, self.engine.config()));
            }
        }
        Ok(())
    }

    /// Logs `username` in after the application checked their password:
    /// a new session (always a new id) carrying the visitor's data, and a new
    /// login when `remember`. Whatever this request presented is ended first.
    pub async fn register(&self, username: &Username, remember: bool) -> Result<(), AuthError> {
        let mut state = self.loaded().await;
        let presented = state.presented(&self.client);
        let Some(loaded) = state.loaded.as_mut() else { return Ok(()) };
        if let Some(error) = &loaded.failure {
            return Err(again(error).into());
        }
        let carried = match &loaded.current {
            Current::Pending(data) => Some(data.clone()),
            Current::Stored(session) if session.user.is_none() => Some(session.data.clone()),
            Current::Stored(_) | Current::Empty => Some(SessionData::new()),
        };
        let registration =
            self.engine.register_carrying(username, remember, &presented.borrowed(), carried).await?;
        loaded.current = Current::Stored(registration.session);
        loaded.via = Some(Via::Password);
        loaded.dirty = false;
        state.apply(registration.cookies);
        Ok(())
    }

    /// Records a fresh password check on this session (the application
    /// verified the password again): method `password`, `authenticated_at`
    /// now, on the session and its login.
    pub async fn confirm_password(&self) -> Result<(), AuthError> {
        let mut state = self.loaded().await;
        let Some(loaded) = state.loaded.as_mut() else { return Ok(()) };
        if let Some(error) = &loaded.failure {
            return Err(again(error).into());
        }
        let Current::Stored(session) = &loaded.current else {
            return Err(Unauthenticated::NotLoggedIn.into());
        };
        if session.user.is_none() {
            return Err(Unauthenticated::NotLoggedIn.into());
        }
        match self.engine.confirm_password(session).await? {
            Some(updated) => {
                let data = session.data.clone();
                loaded.current = Current::Stored(SessionRecord { data, ..updated });
                Ok(())
            }
            None => Err(Unauthenticated::NotLoggedIn.into()),
        }
    }

    /// The logged-in user's session, or why not.
    async fn user_session(&self) -> Result<SessionRecord, AuthError> {
        match self.session_record().await? {
            Some(session) if session.user.is_some() => Ok(session),
            _ => Err(self.require_user().await.err().unwrap_or(Unauthenticated::NotLoggedIn.into())),
        }
    }

    /// Logs this device out: its session (with its data) and login end, both
    /// cookies are cleared. The next write starts a new anonymous session.
    pub async fn logout(&self) -> Result<(), StoreError> {
        let mut state = self.loaded().await;
        if let Some(error) = state.loaded.as_ref().and_then(|loaded| loaded.failure.as_ref()) {
            return Err(again(error));
        }
        let presented = state.presented(&self.client);
        let cleared = self.engine.logout(&presented.borrowed()).await?;
        if let Some(loaded) = state.loaded.as_mut() {
            loaded.current = Current::Empty;
            loaded.via = None;
            loaded.dirty = false;
        }
        state.apply(cleared);
        Ok(())
    }

    fn ended(&self, state: &mut State) {
        if let Some(loaded) = state.loaded.as_mut() {
            loaded.current = Current::Empty;
            loaded.via = None;
            loaded.dirty = false;
        }
        state.apply(remove_both(self.engine.config()));
    }

    /// The logged-in user's devices, with this one marked current.
    pub async fn devices(&self) -> Result<Vec<Device>, AuthError> {
        let session = self.user_session().await?;
        let username = session.username().cloned().ok_or(Unauthenticated::NotLoggedIn)?;
        Ok(self.engine.devices(&username, Some(&session)).await?)
    }

    /// Revokes one of the logged-in user's logins (remote logout). Revoking
    /// this device's own login logs this device out too. Answers whether the
    /// user had that login.
    pub async fn revoke(&self, serial: &Serial) -> Result<bool, AuthError> {
        let session = self.user_session().await?;
        let username = session.username().cloned().ok_or(Unauthenticated::NotLoggedIn)?;
        let found = self.engine.revoke(&username, serial).await?;
        if found && session.login() == Some(*serial) {
            self.ended(&mut *self.state.lock().await);
        }
        Ok(found)
    }

    /// Ends every login and session of the logged-in user, this device's
    /// included.
    pub async fn logout_everywhere(&self) -> Result<Deleted, AuthError> {
        let user = self.require_user().await?;
        let deleted = self.engine.logout_everywhere(&user.username).await?;
        self.ended(&mut *self.state.lock().await);
        Ok(deleted)
    }

    /// Ends every other login and session of the logged-in user; this
    /// device's login and session stay (after a password change, say).
    pub async fn logout_others(&self) -> Result<Deleted, AuthError> {
        let session = self.user_session().await?;
        Ok(self.engine.logout_others(&session).await?)
    }

    /// Saves changed session data (creating a visitor's session on its first
    /// write) and answers the `Set-Cookie`s for the response. On a store error
    /// while saving, the cookies are still answered alongside the error, so
    /// the adapter can send them and log.
    pub async fn finish(&self) -> (Vec<SetCookie>, Result<(), EngineError>) {
        let mut state = self.state.lock().await;
        let saved = self.save(&mut state).await;
        (state.cookies.clone(), saved)
    }

    /// The adapter's last call, after the handler: what
    /// [`store_failed`](Self::store_failed), [`was_loaded`](Self::was_loaded)
    /// and [`finish`](Self::finish) answer, under one lock. When
    /// authenticating met a store outage nothing is saved and no cookie is
    /// answered: the adapter answers 503 with the cookies untouched.
    pub async fn conclude(&self) -> Concluded {
        let mut state = self.state.lock().await;
        let asked = state.loaded.is_some();
        let store_failed = state.loaded.as_ref().is_some_and(|loaded| loaded.failure.is_some());
        if store_failed {
            return Concluded { cookies: Vec::new(), saved: Ok(()), asked, store_failed };
        }
        let saved = self.save(&mut state).await;
        Concluded { cookies: state.cookies.clone(), saved, asked, store_failed }
    }

    /// Saves changed session data, creating a visitor's session on its first
    /// write (whose cookie joins the state's).
    async fn save(&self, state: &mut State) -> Result<(), EngineError> {
        let Some(loaded) = state.loaded.as_mut() else { return Ok(()) };
        if !std::mem::take(&mut loaded.dirty) {
            return Ok(());
        }
        match &mut loaded.current {
            Current::Empty => Ok(()),
            Current::Stored(session) => {
                let mut session = session.clone();
                self.engine.save_session(&mut session).await.map(|_| ()).map_err(EngineError::from)
            }
            Current::Pending(data) => {
                let (session, cookie) = self.engine.create_anonymous(std::mem::take(data)).await?;
                loaded.current = Current::Stored(session);
                state.apply(vec![cookie]);
                Ok(())
            }
        }
    }

    /// Whether the exchange has asked the store anything yet.
    pub async fn was_loaded(&self) -> bool {
        self.state.lock().await.loaded.is_some()
    }
}

/// What the exchange came to, for the adapter to answer
/// ([`Exchange::conclude`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Concluded {
    /// The `Set-Cookie`s to send (none when `store_failed`).
    pub cookies: Vec<SetCookie>,
    /// Whether changed session data was saved; the cookies go out either way.
    pub saved: Result<(), EngineError>,
    /// Whether the request was authenticated (someone asked): the response
    /// then depends on the cookies and must not be cached.
    pub asked: bool,
    /// Whether authenticating met a store outage (see
    /// [`Exchange::store_failed`]).
    pub store_failed: bool,
}

/// Clears both cookies, host-only twins included.
fn remove_both(config: &Config) -> Vec<SetCookie> {
    SetCookie::remove_all(config)
}

/// A `Presented` that owns its strings, to cross an `.await`.
struct OwnedPresented {
    cookies: PresentedCookies,
    ip: Option<std::net::IpAddr>,
    user_agent: Option<String>,
}

impl OwnedPresented {
    fn borrowed(&self) -> Presented<'_> {
        Presented::from_cookies(&self.cookies, Client { ip: self.ip, user_agent: self.user_agent.as_deref() })
    }
}

/// What a handler may do about who is logged in: the adapters' `Auth`
/// extractor derefs to it. It has no part of the adapter's lifecycle.
pub struct AuthHandle<S>(Arc<Exchange<S>>);

/// What a handler may do with the session data, anonymous visitor or
/// logged-in user alike: the adapters' `Session` extractor derefs to it.
///
/// # What survives what
///
/// | event | the data |
/// |---|---|
/// | a request that only reads | untouched, no store write, no cookie |
/// | the first write of a visitor | creates the anonymous session and its cookie |
/// | password login ([`AuthHandle::register`]) | moves into the new session, under a new id; the anonymous record is deleted |
/// | [`SessionHandle::cycle_id`] | kept, under a new id |
/// | the idle or absolute timeout, then a cookie login | **gone**: the cookie login opens a new, empty session |
/// | logout, revoke, theft, logout everywhere | gone with the session |
///
/// A cookie login starts empty on purpose: the old session may have ended
/// because it was revoked or stolen, and the remember-me cookie proves the
/// device, not that the old session's data belongs to whoever holds it now.
/// Keep what must outlive a session (a cart, preferences) in your own tables,
/// keyed by the user.
pub struct SessionHandle<S>(Arc<Exchange<S>>);

impl<S> Clone for AuthHandle<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> Clone for SessionHandle<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> std::fmt::Debug for AuthHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHandle").finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for SessionHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle").finish_non_exhaustive()
    }
}

impl<S: Store> AuthHandle<S> {
    /// The handle on `exchange`.
    pub fn new(exchange: Arc<Exchange<S>>) -> Self {
        Self(exchange)
    }

    /// Who is logged in, how and when they proved it; `None` for a visitor.
    pub async fn user(&self) -> Result<Option<CurrentUser>, StoreError> {
        self.0.current_user().await
    }

    /// The logged-in user's name; `None` for a visitor.
    pub async fn username(&self) -> Result<Option<Username>, StoreError> {
        Ok(self.0.current_user().await?.map(|user| user.username))
    }

    /// The logged-in user, or why a route that needs one refuses the request.
    pub async fn require_user(&self) -> Result<CurrentUser, AuthError> {
        self.0.require_user().await
    }

    /// Whether the user entered their password on this session less than
    /// `max_age` ago (`false` for a visitor, or after a cookie login).
    pub async fn is_fresh(&self, max_age: Duration) -> Result<bool, StoreError> {
        let now = self.0.engine.now();
        // Read in place: no `CurrentUser` (and its username) copied to ask.
        self.0
            .with_loaded(|loaded| {
                let Current::Stored(session) = &loaded.current else { return false };
                session
                    .user
                    .as_ref()
                    .is_some_and(|user| is_fresh_at(user.method, user.authenticated_at, max_age, now))
            })
            .await
    }

    /// The user when fresh (see [`AuthHandle::is_fresh`]), else why not.
    pub async fn require_fresh(&self, max_age: Duration) -> Result<CurrentUser, AuthError> {
        self.0.require_fresh(max_age).await
    }

    /// The theft report, when this request detected a replayed cookie: every
    /// login and session of that user was just revoked. Tell them.
    pub async fn theft(&self) -> Result<Option<TheftReport>, StoreError> {
        self.0.theft().await
    }

    /// See [`Exchange::register`].
    pub async fn register(&self, username: &Username, remember: bool) -> Result<(), AuthError> {
        self.0.register(username, remember).await
    }

    /// See [`Exchange::confirm_password`].
    pub async fn confirm_password(&self) -> Result<(), AuthError> {
        self.0.confirm_password().await
    }

    /// See [`Exchange::logout`].
    pub async fn logout(&self) -> Result<(), StoreError> {
        self.0.logout().await
    }

    /// See [`Exchange::devices`].
    pub async fn devices(&self) -> Result<Vec<Device>, AuthError> {
        self.0.devices().await
    }

    /// See [`Exchange::revoke`].
    pub async fn revoke(&self, serial: &Serial) -> Result<bool, AuthError> {
        self.0.revoke(serial).await
    }

    /// See [`Exchange::logout_everywhere`].
    pub async fn logout_everywhere(&self) -> Result<Deleted, AuthError> {
        self.0.logout_everywhere().await
    }

    /// See [`Exchange::logout_others`].
    pub async fn logout_others(&self) -> Result<Deleted, AuthError> {
        self.0.logout_others().await
    }
}

impl<S: Store> SessionHandle<S> {
    /// The handle on `exchange`.
    pub fn new(exchange: Arc<Exchange<S>>) -> Self {
        Self(exchange)
    }

    /// The exchange behind the handle (the CSRF helper draws from its
    /// engine's token source).
    pub(crate) fn exchange(&self) -> &Exchange<S> {
        &self.0
    }

    /// Reads a value.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.0.get(key).await
    }

    /// The whole data (empty when there is no session).
    pub async fn data(&self) -> Result<SessionData, StoreError> {
        self.0.data().await
    }

    /// Writes a value (creating a visitor's session on its first write).
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        self.0.insert(key, value).await
    }

    /// Removes a value.
    pub async fn remove(&self, key: &str) -> Result<Option<serde_json::Value>, SessionError> {
        self.0.remove(key).await
    }

    /// Removes every value.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.0.clear().await
    }

    /// See [`Exchange::cycle_id`].
    pub async fn cycle_id(&self) -> Result<(), AuthError> {
        self.0.cycle_id().await
    }

    /// The stored record, once there is one.
    pub async fn record(&self) -> Result<Option<SessionRecord>, StoreError> {
        self.0.session_record().await
    }
}
