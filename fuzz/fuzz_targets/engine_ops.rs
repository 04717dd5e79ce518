//! The engine over the memory store, driven by an arbitrary sequence of
//! operations: register (carrying a visitor's or a device's cookies),
//! present the current, previous, an older, a forged, another user's or a
//! mangled token (with or without the session cookie), race several requests
//! with one cookie under an arbitrary interleaving, move a `ManualClock`
//! (backwards too), log out, revoke, log out everywhere or the other devices,
//! confirm the password, cycle a session id, clean, and anonymous visitors'
//! writes. After every step the protocol's invariants are checked:
//!
//! - a forged, mangled or another user's token never authenticates (the
//!   current token under a mangled key id is still that token: with token
//!   keys, a setting of its own, the key id only serves healing);
//! - a device's own current token is never taken for a theft;
//! - a step concerning one user never changes another user's logins, a
//!   theft included, and a theft leaves the victim no login;
//! - no session outlives its login: a stored session naming a login has that
//!   login in the store;
//! - of concurrent requests with one cookie at most one rotates, and every
//!   one that authenticates hands out the same new token.

#![no_main]

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration as StdDuration;

use arbitrary::Arbitrary;
use async_trait::async_trait;
use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation,
};
use expected_core::time::{Duration, OffsetDateTime};
use expected_core::{
    AuthCookie, Authentication, ChaChaTokens, Config, CookieKind, Expected, KeyId, Login, ManualClock,
    Outcome, Presented, Serial, SessionCookie, SessionData, SessionDigest, SessionRecord, Store, StoreError,
    TokenKey, TokenKeys, TokenSource as _, Username,
};
use expected_store_memory::MemoryStore;
use libfuzzer_sys::fuzz_target;

const USERS: [&str; 3] = ["alice", "bob", "zoë.o'brien"];

#[derive(Debug, Arbitrary)]
struct Input {
    seed: u8,
    config: Settings,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Settings {
    Default,
    NoGrace,
    /// Everything short, so that time steps cross every limit.
    Short,
    /// At most two logins per user.
    Capped,
    /// Token keys (the keyed auth cookie, tokens derived under a key, and
    /// healing of rotations a store lost), with a fallback key.
    Keyed,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Op {
    Register { user: u8, remember: bool, carry: Carry },
    Present { device: u8, token: Which, session: bool },
    Race { device: u8, width: u8, schedule: u32, session: bool },
    Advance(Step),
    Logout { device: u8 },
    Revoke { device: u8 },
    LogoutEverywhere { user: u8 },
    LogoutOthers { device: u8 },
    Confirm { device: u8 },
    Cycle { device: u8 },
    Visit { visitor: u8, value: u8 },
    Clean,
}

/// What a registration presents: nothing, a visitor's session, or a
/// device's cookies (a new password login on that device).
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Carry {
    Nothing,
    Visitor(u8),
    Device(u8),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Which {
    Current,
    Previous,
    Older(u8),
    /// The device's serial with a token never issued.
    Forged,
    /// The device's serial and current token under another username.
    OtherUser(u8),
    /// The current value with one character changed.
    Mangled(u16, u8),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Step {
    Seconds(u8),
    /// Just around the grace period's end.
    GraceEdge(i8),
    Minutes(u16),
    Days(u8),
    /// A clock stepping back (another server, NTP).
    Back(u8),
}

fn settings(choice: Settings) -> Config {
    let base = Config::builder().secure(false);
    let built = match choice {
        Settings::Default => base.build(),
        Settings::NoGrace => base.grace_period(StdDuration::ZERO).build(),
        Settings::Short => base
            .grace_period(StdDuration::from_secs(5))
            .session_idle_timeout(StdDuration::from_secs(600))
            .session_absolute_timeout(StdDuration::from_secs(1800))
            .cookie_max_age(StdDuration::from_secs(3600))
            .login_lifetime(StdDuration::from_secs(7200))
            .build(),
        Settings::Capped => base.max_logins_per_user(NonZeroUsize::new(2)).build(),
        Settings::Keyed => base.token_keys(Some(keys())).build(),
    };
    built.unwrap_or_else(|error| panic!("the fuzz configurations are valid: {error}"))
}

/// A current key and the one it replaced.
fn keys() -> TokenKeys {
    let key = |id: &str, byte: u8| {
        let id = KeyId::new(id).unwrap_or_else(|error| panic!("a valid key id: {error}"));
        TokenKey::new(id, &[byte; 32]).unwrap_or_else(|error| panic!("a valid key: {error}"))
    };
    TokenKeys::new(key("k2", 2), vec![key("k1", 1)]).unwrap_or_else(|error| panic!("valid keys: {error}"))
}

fuzz_target!(|input: Input| {
    let mut world = World::new(input.seed, settings(input.config));
    for op in input.ops.into_iter().take(64) {
        block_on(world.step(op));
    }
});

// ------------------------------------------------------------ the world

/// One browser: its user, and every cookie it was given.
#[derive(Debug)]
struct Device {
    user: usize,
    /// Every auth cookie value it was handed, oldest first.
    tokens: Vec<String>,
    session: Option<String>,
}

#[derive(Debug, Default)]
struct Visitor {
    session: Option<String>,
    data: SessionData,
}

struct World {
    engine: Expected<Arc<Pausing<MemoryStore>>>,
    store: Arc<Pausing<MemoryStore>>,
    clock: ManualClock,
    config: Config,
    devices: Vec<Device>,
    visitors: Vec<Visitor>,
    /// Every session cookie handed out, to check the store against.
    sessions: Vec<String>,
    forger: ChaChaTokens,
}

fn user(index: usize) -> Username {
    Username::new(USERS[index % USERS.len()]).unwrap_or_else(|e| panic!("{e}"))
}

fn pick(index: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| usize::from(index) % len)
}

/// The value a response sets for `kind`, if it sets one (not a removal).
fn set_value(result: &Authentication, kind: CookieKind) -> Option<String> {
    result.cookies.iter().find(|c| c.kind() == kind && !c.is_removal()).map(|c| c.value().to_owned())
}

fn removes(result: &Authentication, kind: CookieKind) -> bool {
    result.cookies.iter().any(|c| c.kind() == kind && c.is_removal())
}

type Snapshot = BTreeMap<usize, Vec<Login>>;

impl World {
    fn new(seed: u8, config: Config) -> Self {
        let store = Arc::new(Pausing::new(MemoryStore::new()));
        let start = OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let clock = ManualClock::new(start); // 2030-01-01
        let engine = Expected::new(store.clone(), config.clone())
            .with_clock(clock.clone())
            .with_tokens(ChaChaTokens::from_seed([seed; 32]));
        Self {
            engine,
            store,
            clock,
            config,
            devices: Vec::new(),
            visitors: (0..3).map(|_| Visitor::default()).collect(),
            sessions: Vec::new(),
            forger: ChaChaTokens::from_seed([!seed; 32]),
        }
    }

    fn inner(&self) -> &MemoryStore {
        &self.store.inner
    }

    async fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::new();
        for u in 0..USERS.len() {
            let mut logins = self.inner().list_logins(&user(u)).await.unwrap_or_else(|e| panic!("{e}"));
            logins.sort_by_key(|login| login.serial);
            snapshot.insert(u, logins);
        }
        snapshot
    }

    fn presented<'a>(&self, device: &'a Device, auth: Option<&'a str>, session: bool) -> Presented<'a> {
        Presented {
            auth: auth.into(),
            session: if session { device.session.as_deref() } else { None }.into(),
            ..Presented::default()
        }
    }

    fn remember_session(&mut self, result: &Authentication, device: usize) {
        if let Some(value) = set_value(result, CookieKind::Session) {
            self.sessions.push(value.clone());
            self.devices[device].session = Some(value);
        } else if removes(result, CookieKind::Session) {
            self.devices[device].session = None;
        }
    }

    /// Runs one step and checks the invariants after it.
    async fn step(&mut self, op: Op) {
        let before = self.snapshot().await;
        let concerned = self.step_unchecked(op).await;
        let after = self.snapshot().await;
        if let Some(concerned) = concerned {
            for u in 0..USERS.len() {
                if !concerned.contains(&u) {
                    assert_eq!(
                        before[&u], after[&u],
                        "{op:?} changed the logins of {}, not concerned",
                        USERS[u]
                    );
                }
            }
        }
        self.check_sessions().await;
    }

    /// Runs one step; answers the users it may change (`None`: any).
    async fn step_unchecked(&mut self, op: Op) -> Option<Vec<usize>> {
        match op {
            Op::Register { user: u, remember, carry } => {
                self.register(usize::from(u) % USERS.len(), remember, carry).await
            }
            Op::Present { device, token, session } => {
                let i = pick(device, self.devices.len())?;
                self.present(i, token, session).await;
                Some(vec![self.devices[i].user])
            }
            Op::Race { device, width, schedule, session } => {
                let i = pick(device, self.devices.len())?;
                self.race(i, usize::from(width % 3) + 2, schedule, session).await;
                Some(vec![self.devices[i].user])
            }
            Op::Advance(step) => {
                self.clock.advance(match step {
                    Step::Seconds(s) => Duration::seconds(s.into()),
                    Step::GraceEdge(d) => {
                        Duration::try_from(self.config.grace_period()).unwrap_or(Duration::ZERO)
                            + Duration::milliseconds(i64::from(d) * 10)
                    }
                    Step::Minutes(m) => Duration::minutes(m.into()),
                    Step::Days(d) => Duration::days(d.into()),
                    Step::Back(s) => -Duration::seconds(s.into()),
                });
                Some(Vec::new())
            }
            Op::Logout { device } => {
                let i = pick(device, self.devices.len())?;
                let d = &self.devices[i];
                let presented = self.presented(d, d.tokens.last().map(String::as_str), true);
                let cleared = self.engine.logout(&presented).await.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(cleared.len(), 2, "logout clears both cookies");
                let d = &mut self.devices[i];
                d.session = None;
                d.tokens.clear();
                Some(vec![d.user])
            }
            Op::Revoke { device } => {
                let i = pick(device, self.devices.len())?;
                let d = &self.devices[i];
                if let Some(cookie) = d.tokens.first().and_then(|value| AuthCookie::parse(value).ok()) {
                    let had =
                        self.inner().get_login(&user(d.user), &cookie.serial).await.ok().flatten().is_some();
                    let found = self.engine.revoke(&user(d.user), &cookie.serial).await;
                    assert_eq!(found.ok(), Some(had), "revoke finds exactly the stored login");
                    let gone = self.inner().get_login(&user(d.user), &cookie.serial).await;
                    assert!(matches!(gone, Ok(None)), "a revoked login is gone");
                }
                Some(vec![d.user])
            }
            Op::LogoutEverywhere { user: u } => {
                let u = usize::from(u) % USERS.len();
                self.engine.logout_everywhere(&user(u)).await.unwrap_or_else(|e| panic!("{e}"));
                let left = self.inner().list_logins(&user(u)).await.unwrap_or_else(|e| panic!("{e}"));
                assert!(left.is_empty(), "log out everywhere leaves no login");
                Some(vec![u])
            }
            Op::LogoutOthers { device } => {
                let i = pick(device, self.devices.len())?;
                let session = self.live_session(i).await?;
                let u = self.devices[i].user;
                self.engine.logout_others(&session).await.unwrap_or_else(|e| panic!("{e}"));
                let left = self.inner().list_logins(&user(u)).await.unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    left.iter().all(|login| Some(login.serial) == session.login()),
                    "only this device's login stays"
                );
                Some(vec![u])
            }
            Op::Confirm { device } => {
                let i = pick(device, self.devices.len())?;
                let session = self.live_session(i).await?;
                self.engine.confirm_password(&session).await.unwrap_or_else(|e| panic!("{e}"));
                Some(vec![self.devices[i].user])
            }
            Op::Cycle { device } => {
                let i = pick(device, self.devices.len())?;
                let session = self.live_session(i).await?;
                if let Some((_, cookie)) =
                    self.engine.cycle_session(&session).await.unwrap_or_else(|e| panic!("{e}"))
                {
                    self.sessions.push(cookie.value().to_owned());
                    self.devices[i].session = Some(cookie.value().to_owned());
                }
                Some(vec![self.devices[i].user])
            }
            Op::Visit { visitor, value } => {
                self.visit(usize::from(visitor) % self.visitors.len(), value).await;
                Some(Vec::new())
            }
            Op::Clean => {
                self.engine.clean().await.unwrap_or_else(|e| panic!("{e}"));
                let now = self.engine.now();
                for logins in self.snapshot().await.values() {
                    assert!(
                        logins.iter().all(|login| login.expires_at > now),
                        "clean leaves no expired login"
                    );
                }
                None
            }
        }
    }

    /// The device's session as the engine sees it, if it is live.
    async fn live_session(&mut self, i: usize) -> Option<SessionRecord> {
        let d = &self.devices[i];
        let presented = self.presented(d, None, true);
        presented.session.iter().next()?;
        let result = self.engine.authenticate(&presented).await;
        self.remember_session(&result, i);
        result.outcome.into_authenticated().map(|auth| auth.into_session())
    }

    async fn register(&mut self, u: usize, remember: bool, carry: Carry) -> Option<Vec<usize>> {
        let mut concerned = vec![u];
        let (presented, carried, from_device) = match carry {
            Carry::Nothing => (Presented::default(), None, None),
            Carry::Visitor(v) => {
                let v = usize::from(v) % self.visitors.len();
                let visitor = &self.visitors[v];
                let live = match &visitor.session {
                    Some(value) => self.anonymous_live(value).await,
                    None => false,
                };
                let data = live.then(|| visitor.data.clone());
                (Presented { session: visitor.session.as_deref().into(), ..Presented::default() }, data, None)
            }
            Carry::Device(d) => {
                let i = pick(d, self.devices.len())?;
                let device = &self.devices[i];
                concerned.push(device.user);
                (self.presented(device, device.tokens.last().map(String::as_str), true), None, Some(i))
            }
        };
        let registration = self
            .engine
            .register(&user(u), remember, &presented)
            .await
            .unwrap_or_else(|e| panic!("register: {e}"));
        if let Some(data) = carried {
            assert_eq!(registration.session.data, data, "a visitor's data moves into the login's session");
        }
        if let Carry::Visitor(v) = carry {
            let visitor = &mut self.visitors[usize::from(v) % 3];
            visitor.session = None;
            visitor.data = SessionData::new();
        }
        if let Some(i) = from_device {
            // That device's login ended: it is now this new login's browser.
            self.devices[i].tokens.clear();
            self.devices[i].session = None;
        }
        let value = |kind| {
            registration
                .cookies
                .iter()
                .find(|c| c.kind() == kind && !c.is_removal())
                .map(|c| c.value().to_owned())
        };
        let session = value(CookieKind::Session);
        assert!(session.is_some(), "a registration opens a session");
        self.sessions.extend(session.clone());
        let auth = value(CookieKind::Auth);
        assert_eq!(auth.is_some(), remember, "an auth cookie exactly when remembered");
        self.devices.push(Device { user: u, tokens: auth.into_iter().collect(), session });
        Some(concerned)
    }

    async fn anonymous_live(&self, value: &str) -> bool {
        let Ok(cookie) = SessionCookie::parse(value) else { return false };
        let stored = self.inner().get_session(None, &cookie.id.digest()).await.ok().flatten();
        stored.is_some_and(|session| session.is_live(self.engine.now()))
    }

    async fn visit(&mut self, v: usize, value: u8) {
        let presented =
            Presented { session: self.visitors[v].session.as_deref().into(), ..Presented::default() };
        let result = self.engine.authenticate(&presented).await;
        match result.outcome {
            Outcome::AnonymousSession(mut session) => {
                assert_eq!(session.data, self.visitors[v].data, "a visitor reads what it wrote");
                session.data.insert("v".to_owned(), value.into());
                if self.engine.save_session(&mut session).await.unwrap_or_else(|e| panic!("{e}")) {
                    self.visitors[v].data = session.data;
                }
            }
            Outcome::Anonymous => {
                let mut data = SessionData::new();
                data.insert("v".to_owned(), value.into());
                let (_, cookie) =
                    self.engine.create_anonymous(data.clone()).await.unwrap_or_else(|e| panic!("{e}"));
                self.visitors[v] = Visitor { session: Some(cookie.value().to_owned()), data };
            }
            other => panic!("a visitor with no auth cookie is anonymous: {other:?}"),
        }
    }

    async fn present(&mut self, i: usize, which: Which, with_session: bool) {
        let d = &self.devices[i];
        let Some(first) = d.tokens.first().and_then(|value| AuthCookie::parse(value).ok()) else {
            return;
        };
        let n = d.tokens.len();
        let value = match which {
            Which::Current => d.tokens.last().cloned(),
            Which::Previous => n.checked_sub(2).map(|k| d.tokens[k].clone()),
            Which::Older(k) => d.tokens.get(usize::from(k) % n).cloned(),
            Which::Forged => Some(AuthCookie { token: self.forger.token(), ..first.clone() }.encode()),
            Which::OtherUser(k) => {
                let other = (d.user + 1 + usize::from(k) % (USERS.len() - 1)) % USERS.len();
                let current = d.tokens.last().and_then(|value| AuthCookie::parse(value).ok());
                current.map(|cookie| AuthCookie { username: user(other), ..cookie }.encode())
            }
            Which::Mangled(at, by) => d.tokens.last().map(|value| mangle(value, at, by)),
        };
        let Some(value) = value else { return };
        let presented = self.presented(d, Some(&value), with_session);
        let result = self.engine.authenticate(&presented).await;
        let u = d.user;
        // The same token under another key id is the current token still:
        // the key id only names which key derived it, for healing, and a
        // current token needs none (docs/protocol.md, 13.4). A mangled key id
        // then authenticates, as the genuine cookie would.
        let current = d.tokens.last().is_some_and(|last| *last == value || same_token(last, &value));
        let session_hit = matches!(result.outcome, Outcome::Session(_));
        if !session_hit {
            match which {
                Which::Forged | Which::OtherUser(_) => {
                    assert!(
                        result.outcome.authenticated().is_none(),
                        "{which:?} authenticated: {:?}",
                        result.outcome
                    )
                }
                Which::Mangled(..) if !current => {
                    assert!(
                        result.outcome.authenticated().is_none(),
                        "a mangled token authenticated: {value:?} for {:?}: {:?}",
                        d.tokens.last(),
                        result.outcome
                    )
                }
                _ => {}
            }
        }
        if current {
            assert!(!result.outcome.theft_detected(), "a device's own current token is never a theft");
        }
        if let Outcome::Theft(report) = &result.outcome {
            assert_eq!(report.username, user(u), "the theft is the cookie's user's");
            let left = self.inner().list_logins(&user(u)).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(left.is_empty(), "a theft leaves the victim no login");
        }
        self.follow(i, &result, current);
    }

    /// Updates a device's cookies from a response to its current token.
    fn follow(&mut self, i: usize, result: &Authentication, current: bool) {
        if current {
            if let Some(next) = set_value(result, CookieKind::Auth) {
                if matches!(result.outcome, Outcome::CookieLogin(_)) {
                    assert_ne!(self.devices[i].tokens.last(), Some(&next), "the token rotates");
                }
                if self.devices[i].tokens.last() != Some(&next) {
                    self.devices[i].tokens.push(next);
                }
            } else if removes(result, CookieKind::Auth) {
                self.devices[i].tokens.clear();
            }
            self.remember_session(result, i);
        }
    }

    /// `width` requests with the device's current cookie at once, polled in
    /// the order `schedule` picks.
    async fn race(&mut self, i: usize, width: usize, schedule: u32, with_session: bool) {
        let d = &self.devices[i];
        let Some(value) = d.tokens.last().cloned() else { return };
        let results = {
            let presented = self.presented(d, Some(&value), with_session);
            let futures: Vec<_> = (0..width).map(|_| self.engine.authenticate(&presented)).collect();
            self.store.pausing.store(true, Ordering::SeqCst);
            let results = join_all(futures, schedule).await;
            self.store.pausing.store(false, Ordering::SeqCst);
            results
        };
        let rotations = results.iter().filter(|r| matches!(r.outcome, Outcome::CookieLogin(_))).count();
        assert!(rotations <= 1, "{rotations} requests rotated one cookie");
        let handed: Vec<String> = results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::CookieLogin(_) | Outcome::Grace(_)))
            .filter_map(|r| set_value(r, CookieKind::Auth))
            .collect();
        assert!(
            handed.windows(2).all(|pair| pair[0] == pair[1]),
            "concurrent requests converge on one token"
        );
        let grace = !self.config.grace_period().is_zero();
        for result in &results {
            if grace {
                assert!(
                    !result.outcome.theft_detected(),
                    "a race of the current cookie is no theft: {:?}",
                    result.outcome
                );
            }
        }
        if let Some(result) = results.iter().find(|r| matches!(r.outcome, Outcome::CookieLogin(_))) {
            self.follow(i, result, true);
        } else if let Some(result) = results.first() {
            self.follow(i, result, true);
        }
        for result in &results {
            self.sessions.extend(set_value(result, CookieKind::Session));
        }
    }

    /// No session outlives its login: every stored session that names a
    /// login has that login.
    async fn check_sessions(&self) {
        for value in &self.sessions {
            let Ok(cookie) = SessionCookie::parse(value) else {
                panic!("the engine wrote a bad session cookie")
            };
            let stored = self.inner().get_session(cookie.username.as_ref(), &cookie.id.digest()).await;
            let Some(session) = stored.unwrap_or_else(|e| panic!("{e}")) else { continue };
            if let (Some(owner), Some(serial)) = (session.username(), session.login()) {
                let login = self.inner().get_login(owner, &serial).await.unwrap_or_else(|e| panic!("{e}"));
                assert!(login.is_some(), "a session outlived its login");
            }
        }
    }
}

/// `value` with the byte at `at` replaced (staying UTF-8).
/// Whether two auth cookie values carry the same user, serial and token,
/// whatever key ids they name.
fn same_token(a: &str, b: &str) -> bool {
    match (AuthCookie::parse(a), AuthCookie::parse(b)) {
        (Ok(a), Ok(b)) => a.username == b.username && a.serial == b.serial && a.token == b.token,
        _ => false,
    }
}

fn mangle(value: &str, at: u16, by: u8) -> String {
    let mut bytes = value.as_bytes().to_vec();
    if bytes.is_empty() {
        return value.to_owned();
    }
    let k = usize::from(at) % bytes.len();
    bytes[k] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."[usize::from(by) % 65];
    String::from_utf8(bytes).unwrap_or_else(|_| value.to_owned())
}

// ------------------------------------------------- interleaving machinery

/// A store whose every call first yields once while `pausing` is on, so that
/// concurrent requests polled by [`join_all`] interleave between store calls.
struct Pausing<S> {
    inner: S,
    pausing: AtomicBool,
}

impl<S> Pausing<S> {
    fn new(inner: S) -> Self {
        Self { inner, pausing: AtomicBool::new(false) }
    }

    async fn pause(&self) {
        if self.pausing.load(Ordering::SeqCst) {
            YieldOnce(false).await;
        }
    }
}

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[async_trait]
impl<S: Store> Store for Pausing<S> {
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError> {
        self.pause().await;
        self.inner.create_login(login).await
    }
    async fn get_login(&self, username: &Username, serial: &Serial) -> Result<Option<Login>, StoreError> {
        self.pause().await;
        self.inner.get_login(username, serial).await
    }
    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        self.pause().await;
        self.inner.rotate_login(rotation).await
    }
    async fn rotate_current(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        self.pause().await;
        self.inner.rotate_current(attempt).await
    }
    async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        self.pause().await;
        self.inner.create_remembered(login, session, max_sessions, list_logins).await
    }
    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        self.pause().await;
        self.inner.list_logins(username).await
    }
    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        self.pause().await;
        self.inner.delete_login(username, serial).await
    }
    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        self.pause().await;
        self.inner.delete_user(username).await
    }
    async fn delete_user_except(&self, username: &Username, keep: &Keep) -> Result<Deleted, StoreError> {
        self.pause().await;
        self.inner.delete_user_except(username, keep).await
    }
    async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        self.pause().await;
        self.inner.confirm_password(confirmation).await
    }
    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<Vec<ExpiredLogin>, StoreError> {
        self.pause().await;
        self.inner.delete_expired_logins(now).await
    }
    async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError> {
        self.pause().await;
        self.inner.create_session(session, max_sessions).await
    }
    async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        self.pause().await;
        self.inner.create_grace_session(session, max_sessions).await
    }
    async fn get_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.pause().await;
        self.inner.get_session(owner, digest).await
    }
    async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError> {
        self.pause().await;
        self.inner.save_session(session).await
    }
    async fn touch_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.pause().await;
        self.inner.touch_session(owner, digest, expires_at).await
    }
    async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        self.pause().await;
        self.inner.delete_session(owner, digest).await
    }
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.pause().await;
        self.inner.delete_expired_sessions(now).await
    }
}

/// Polls every future to completion, each turn the one `schedule` picks
/// among those still pending (its bits, two at a time).
async fn join_all<F: Future>(futures: Vec<F>, mut schedule: u32) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut turns = 0_u32;
    std::future::poll_fn(|cx| {
        let pending: Vec<usize> = (0..futures.len()).filter(|&k| results[k].is_none()).collect();
        if pending.is_empty() {
            return Poll::Ready(());
        }
        let k = pending[(schedule & 3) as usize % pending.len()];
        schedule = schedule.rotate_right(2) ^ turns;
        turns = turns.wrapping_add(1);
        if let Poll::Ready(output) = futures[k].as_mut().poll(cx) {
            results[k] = Some(output);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    results.into_iter().map(|r| r.unwrap_or_else(|| panic!("every future completed"))).collect()
}

/// Runs a future that never waits on anything outside this process (the
/// memory store, [`YieldOnce`]) on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a step did not finish in a million polls: a livelock");
}
