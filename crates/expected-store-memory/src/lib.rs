//! An in-process, thread-safe [`Store`] for `expected`: for tests, examples
//! and single-process applications. Nothing survives a restart.
//!
//! It passes the whole `expected-conformance` suite, like every store.
//!
//! ```
//! use expected_core::{Config, Expected, Presented, Username};
//! use expected_store_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Expected::new(MemoryStore::new(), Config::default());
//! let alice = Username::new("alice")?;
//! let registration = engine.register(&alice, true, &Presented::default()).await?;
//! assert_eq!(engine.devices(&alice, Some(&registration.session)).await?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! # Round trips
//!
//! Every operation takes the one lock once: each is atomic, including
//! [`Store::rotate_login`] and [`Store::delete_user`].

//!
//! # Footprint
//!
//! Records are kept in a compact private form (the `compact` module): each
//! user's logins and sessions sit in two short vectors under the user's
//! entry, so the username is held once, not in every record; user agents
//! are interned and shared by every login that sent the same one; times
//! take 12 bytes; empty session data takes nothing. A remembered login with
//! its session costs a few hundred bytes (`docs/benchmarks.md`, "The memory
//! store's bytes per login"). Finding a record scans its user's vectors,
//! which the session cap per user (64 by default) keeps short.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod compact;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use expected_core::protocol::apply_rotation;
use expected_core::record::AuthMethod;
use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation,
};
use expected_core::time::OffsetDateTime;
use expected_core::{
    Login, Serial, SessionDigest, SessionRecord, Store, StoreError, StoreErrorKind, Username,
};

use crate::compact::{Stamp, StoredAnonymous, StoredLogin, StoredSession, UserAgents};

/// Up to this many records a user's vector grows one slot at a time: most
/// users hold one to a few logins and sessions, and `Vec`'s first growth
/// would reserve four slots (over 700 bytes of logins) for the first one.
/// Beyond it, the vector doubles as usual so that inserting stays amortized
/// O(1) for a user without a session cap.
const EXACT_CAPACITY_UP_TO: usize = 8;

/// Appends `record`, growing `records` by one slot while it is short.
fn push<T>(records: &mut Vec<T>, record: T) {
    if records.len() < EXACT_CAPACITY_UP_TO {
        records.reserve_exact(1);
    }
    records.push(record);
}

/// Gives back the room that removals left, without shrinking a vector that
/// is about to grow again (a rotation removes one session and adds one).
fn tidy<T>(records: &mut Vec<T>) {
    let len = records.len();
    if len <= EXACT_CAPACITY_UP_TO {
        if records.capacity() > len {
            records.shrink_to_fit();
        }
    } else if records.capacity() > 4 * len {
        records.shrink_to(2 * len);
    }
}

/// One user's records: everything an operation on one user touches.
#[derive(Debug, Default, Clone)]
struct User {
    logins: Vec<StoredLogin>,
    sessions: Vec<StoredSession>,
}

impl User {
    fn is_empty(&self) -> bool {
        self.logins.is_empty() && self.sessions.is_empty()
    }

    fn tidy(&mut self) {
        tidy(&mut self.logins);
        tidy(&mut self.sessions);
    }

    fn login(&self, serial: &Serial) -> Option<&StoredLogin> {
        self.logins.iter().find(|login| login.serial == *serial)
    }

    fn login_mut(&mut self, serial: &Serial) -> Option<&mut StoredLogin> {
        self.logins.iter_mut().find(|login| login.serial == *serial)
    }

    fn session(&self, digest: &SessionDigest) -> Option<&StoredSession> {
        self.sessions.iter().find(|session| session.digest == *digest)
    }

    fn session_mut(&mut self, digest: &SessionDigest) -> Option<&mut StoredSession> {
        self.sessions.iter_mut().find(|session| session.digest == *digest)
    }

    fn remove_session(&mut self, digest: &SessionDigest) -> bool {
        let before = self.sessions.len();
        self.sessions.retain(|session| session.digest != *digest);
        self.sessions.len() != before
    }

    /// Removes a login and every session it opened, the latter even when the
    /// login is already gone.
    fn remove_login(&mut self, serial: &Serial) -> bool {
        let Some(index) = self.logins.iter().position(|login| login.serial == *serial) else {
            self.sessions.retain(|session| session.login != Some(*serial));
            return false;
        };
        let login = self.logins.swap_remove(index);
        self.sessions
            .retain(|session| session.login != Some(*serial) && Some(session.digest) != login.session);
        true
    }

    /// Inserts `session` and deletes the sessions that expire first beyond
    /// `max`, never `session` itself.
    fn insert_capped(&mut self, session: StoredSession, max: Option<NonZeroUsize>) {
        let digest = session.digest;
        push(&mut self.sessions, session);
        let Some(max) = max else { return };
        let excess = self.sessions.len().saturating_sub(max.get());
        if excess == 0 {
            return;
        }
        let mut oldest: Vec<((i64, u32), SessionDigest)> = self
            .sessions
            .iter()
            .filter(|other| other.digest != digest)
            .map(|other| (other.expires_at.instant(), other.digest))
            .collect();
        oldest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
        let doomed: Vec<SessionDigest> = oldest.into_iter().take(excess).map(|(_, digest)| digest).collect();
        self.sessions.retain(|other| !doomed.contains(&other.digest));
    }

    /// [`Store::rotate_login`] on this user's records (`username`'s).
    fn rotate(
        &mut self,
        username: &Username,
        rotation: &Rotation,
        agents: &mut UserAgents,
    ) -> Result<Rotated, StoreError> {
        let Some(index) = self.logins.iter().position(|login| login.serial == rotation.serial) else {
            return Ok(Rotated::NotFound);
        };
        if self.logins[index].token != rotation.expected {
            return Ok(Rotated::NotCurrent);
        }
        if self.session(&rotation.session.digest).is_some() {
            return Ok(Rotated::SessionExists);
        }
        let Some(owner) = rotation.session.user.as_ref() else {
            return Err(StoreError::new(StoreErrorKind::Backend, "a rotation's session must be its user's"));
        };
        // The whole record through core's `apply_rotation`, so that this
        // store writes what every other store writes.
        let mut login = self.logins[index].get(username)?;
        let old = login.session;
        apply_rotation(&mut login, rotation);
        self.logins[index] = StoredLogin::new(&login, agents);
        if let Some(old) = old {
            self.remove_session(&old);
        }
        // Every other session this login opened goes too (a grace session, a
        // cycled one, a copy a thief keeps alive).
        self.sessions.retain(|session| session.login != Some(rotation.serial));
        self.insert_capped(StoredSession::new(&rotation.session, owner), rotation.max_sessions);
        Ok(Rotated::Rotated)
    }
}

/// Everything the store holds: users' records, anonymous visitors'
/// sessions apart (no user operation reaches them), and the interned user
/// agents the logins share.
#[derive(Debug, Default)]
struct Records {
    users: HashMap<Username, User>,
    anonymous: HashMap<SessionDigest, StoredAnonymous>,
    user_agents: UserAgents,
}

/// A copy of everything a [`MemoryStore`] held at one moment
/// ([`MemoryStore::snapshot`]), to put back with [`MemoryStore::restore`].
#[derive(Debug, Clone)]
pub struct MemorySnapshot {
    users: HashMap<Username, User>,
    anonymous: HashMap<SessionDigest, StoredAnonymous>,
}

/// The in-memory store. Clone it through an `Arc` to share it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<Records>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // Every operation leaves the map consistent before it can panic, so a
        // poisoned lock still guards valid data.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a user's records, a new user's if there is none, keeps
    /// the user only while they hold a record, and gives back the room
    /// removals left.
    fn with_user<T>(&self, username: &Username, f: impl FnOnce(&mut User, &mut UserAgents) -> T) -> T {
        let mut records = self.records();
        let Records { users, user_agents, .. } = &mut *records;
        let Some(user) = users.get_mut(username) else {
            // Built apart and inserted only if it holds something, so that
            // an operation on an unknown user copies no username.
            let mut user = User::default();
            let result = f(&mut user, user_agents);
            if !user.is_empty() {
                user.tidy();
                users.insert(username.clone(), user);
            }
            return result;
        };
        let result = f(user, user_agents);
        if user.is_empty() {
            users.remove(username);
        } else {
            user.tidy();
        }
        result
    }

    /// How many records it holds: (logins, sessions), anonymous included.
    pub fn len(&self) -> (usize, usize) {
        let records = self.records();
        let logins = records.users.values().map(|user| user.logins.len()).sum();
        let sessions =
            records.users.values().map(|user| user.sessions.len()).sum::<usize>() + records.anonymous.len();
        (logins, sessions)
    }

    /// Whether it holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// A copy of every record, taken atomically: a backup.
    pub fn snapshot(&self) -> MemorySnapshot {
        let records = self.records();
        MemorySnapshot { users: records.users.clone(), anonymous: records.anonymous.clone() }
    }

    /// Puts a [`snapshot`](Self::snapshot) back, dropping everything written
    /// since: what restoring a backup, or failing over to a replica that
    /// missed the last writes, does to a store. The engine heals the logins
    /// whose rotations were lost (with token keys; `docs/protocol.md` §13).
    pub fn restore(&self, snapshot: &MemorySnapshot) {
        let mut records = self.records();
        records.users = snapshot.users.clone();
        records.anonymous = snapshot.anonymous.clone();
        // The restored logins' agents are shared from now on, and those only
        // the dropped records named are let go.
        let mut agents = UserAgents::default();
        for login in records.users.values().flat_map(|user| &user.logins) {
            if let Some(agent) = login.user_agent() {
                agents.adopt(agent);
            }
        }
        agents.sweep();
        records.user_agents = agents;
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError> {
        Ok(self.with_user(&login.username, |user, agents| {
            if user.login(&login.serial).is_some() {
                return Inserted::AlreadyExists;
            }
            push(&mut user.logins, StoredLogin::new(login, agents));
            Inserted::Created
        }))
    }

    async fn get_login(&self, username: &Username, serial: &Serial) -> Result<Option<Login>, StoreError> {
        let records = self.records();
        let login = records.users.get(username).and_then(|user| user.login(serial));
        login.map(|login| login.get(username)).transpose()
    }

    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        rotation.session_owner()?;
        self.with_user(&rotation.username, |user, agents| user.rotate(&rotation.username, rotation, agents))
    }

    async fn rotate_current(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        let rotation = &attempt.rotation;
        rotation.session_owner()?;
        let username = &rotation.username;
        self.with_user(username, |user, agents| {
            // The check and the rotation under one lock: atomic like any
            // rotation.
            let Some(login) = user.login(&rotation.serial).map(|login| login.get(username)).transpose()?
            else {
                return Ok(CurrentRotated::NotApplied(None));
            };
            if !attempt.applies_to(&login) {
                return Ok(CurrentRotated::NotApplied(Some(login)));
            }
            let authenticated_at = login.authenticated_at;
            Ok(match user.rotate(username, &attempt.for_login(&login), agents)? {
                Rotated::Rotated => CurrentRotated::Rotated { authenticated_at },
                Rotated::SessionExists => CurrentRotated::SessionExists,
                Rotated::NotCurrent | Rotated::NotFound => CurrentRotated::NotApplied(
                    user.login(&rotation.serial).map(|login| login.get(username)).transpose()?,
                ),
            })
        })
    }

    async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        let owner = expected_core::store::remembered_owner(login, session)?;
        let username = &login.username;
        // Both checks, both writes and the read under one lock: atomic.
        self.with_user(username, |user, agents| {
            if user.login(&login.serial).is_some() {
                return Ok(Remembered::LoginExists);
            }
            if user.session(&session.digest).is_some() {
                return Ok(Remembered::SessionExists);
            }
            let others = if list_logins {
                Some(user.logins.iter().map(|other| other.get(username)).collect::<Result<Vec<_>, _>>()?)
            } else {
                None
            };
            push(&mut user.logins, StoredLogin::new(login, agents));
            user.insert_capped(StoredSession::new(session, owner), max_sessions);
            Ok(Remembered::Created { others })
        })
    }

    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        let records = self.records();
        let Some(user) = records.users.get(username) else { return Ok(Vec::new()) };
        user.logins.iter().map(|login| login.get(username)).collect()
    }

    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        Ok(self.with_user(username, |user, _| user.remove_login(serial)))
    }

    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        let removed = self.records().users.remove(username).unwrap_or_default();
        let serials = removed.logins.iter().map(|login| login.serial).collect();
        Ok(Deleted::new(serials, removed.sessions.len() as u64))
    }

    async fn delete_user_except(&self, username: &Username, keep: &Keep) -> Result<Deleted, StoreError> {
        Ok(self.with_user(username, |user, _| {
            let serials: Vec<Serial> = user
                .logins
                .iter()
                .map(|login| login.serial)
                .filter(|serial| Some(*serial) != keep.login)
                .collect();
            user.logins.retain(|login| Some(login.serial) == keep.login);
            let before = user.sessions.len();
            user.sessions.retain(|session| session.digest == keep.session);
            Deleted::new(serials, (before - user.sessions.len()) as u64)
        }))
    }

    async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        Ok(self.with_user(&confirmation.username, |user, _| {
            let at = Stamp::new(confirmation.at);
            let Some(session) = user.session_mut(&confirmation.session) else { return false };
            session.method = AuthMethod::Password;
            session.authenticated_at = at;
            if let Some(login) = confirmation.login.and_then(|serial| user.login_mut(&serial)) {
                login.authenticated_at = at;
            }
            true
        }))
    }

    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<Vec<ExpiredLogin>, StoreError> {
        let now = Stamp::new(now);
        let mut records = self.records();
        let mut deleted = Vec::new();
        for (username, user) in &mut records.users {
            let expired: Vec<Serial> = user
                .logins
                .iter()
                .filter(|login| login.expires_at.is_reached(now))
                .map(|login| login.serial)
                .collect();
            for serial in expired {
                user.remove_login(&serial);
                deleted.push(ExpiredLogin { username: username.clone(), serial });
            }
            user.tidy();
        }
        records.users.retain(|_, user| !user.is_empty());
        // A cleaning pass is where the user agents of the logins just
        // deleted go too.
        records.user_agents.sweep();
        Ok(deleted)
    }

    async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError> {
        let Some(owner) = session.user.as_ref() else {
            let mut records = self.records();
            if records.anonymous.contains_key(&session.digest) {
                return Ok(Inserted::AlreadyExists);
            }
            records.anonymous.insert(session.digest, StoredAnonymous::new(session));
            return Ok(Inserted::Created);
        };
        Ok(self.with_user(&owner.username, |user, _| {
            if user.session(&session.digest).is_some() {
                return Inserted::AlreadyExists;
            }
            user.insert_capped(StoredSession::new(session, owner), max_sessions);
            Inserted::Created
        }))
    }

    async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        let Some(owner) = session.user.as_ref() else { return Ok(GraceInserted::LoginGone) };
        let Some(serial) = owner.login else { return Ok(GraceInserted::LoginGone) };
        Ok(self.with_user(&owner.username, |user, _| {
            if user.login(&serial).is_none() {
                return GraceInserted::LoginGone;
            }
            if user.session(&session.digest).is_some() {
                return GraceInserted::AlreadyExists;
            }
            if let Some(login) = user.login_mut(&serial) {
                login.session = Some(session.digest);
            }
            user.insert_capped(StoredSession::new(session, owner), max_sessions);
            GraceInserted::Created
        }))
    }

    async fn get_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let records = self.records();
        match owner {
            Some(username) => records
                .users
                .get(username)
                .and_then(|user| user.session(digest))
                .map(|session| session.get(username))
                .transpose(),
            None => records.anonymous.get(digest).map(|session| session.get(*digest)).transpose(),
        }
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError> {
        Ok(match session.username() {
            Some(username) => self.with_user(username, |user, _| match user.session_mut(&session.digest) {
                Some(stored) => {
                    stored.save(session);
                    true
                }
                None => false,
            }),
            None => match self.records().anonymous.get_mut(&session.digest) {
                Some(stored) => {
                    stored.save(session);
                    true
                }
                None => false,
            },
        })
    }

    async fn touch_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let expires_at = Stamp::new(expires_at);
        Ok(match owner {
            Some(username) => self.with_user(username, |user, _| match user.session_mut(digest) {
                Some(stored) => {
                    stored.expires_at = expires_at;
                    true
                }
                None => false,
            }),
            None => match self.records().anonymous.get_mut(digest) {
                Some(stored) => {
                    stored.expires_at = expires_at;
                    true
                }
                None => false,
            },
        })
    }

    async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        Ok(match owner {
            Some(username) => self.with_user(username, |user, _| user.remove_session(digest)),
            None => self.records().anonymous.remove(digest).is_some(),
        })
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = Stamp::new(now);
        let mut records = self.records();
        let mut count = 0;
        for user in records.users.values_mut() {
            let before = user.sessions.len();
            user.sessions.retain(|session| !session.expires_at.is_reached(now));
            count += (before - user.sessions.len()) as u64;
            user.tidy();
        }
        records.users.retain(|_, user| !user.is_empty());
        let before = records.anonymous.len();
        records.anonymous.retain(|_, session| !session.expires_at.is_reached(now));
        count += (before - records.anonymous.len()) as u64;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use expected_core::record::{ClientMeta, PreviousToken, SessionUser};
    use expected_core::secret::SealedSuccessor;
    use expected_core::time::Duration;
    use expected_core::{SessionData, TokenDigest};

    use super::*;

    type Result = std::result::Result<(), Box<dyn std::error::Error>>;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(365 * 60) + Duration::seconds(seconds)
    }

    fn login(username: &Username, serial: u8, agent: &str) -> Login {
        Login {
            username: username.clone(),
            serial: Serial::from_bytes([serial; 16]),
            token: TokenDigest::from_bytes([0; 32]),
            previous: None,
            session: None,
            created_at: at(0),
            last_used_at: at(0),
            expires_at: at(3600),
            client: ClientMeta::new(None, Some(agent)),
            authenticated_at: at(0),
        }
    }

    /// The rotation of `login` from token `n` to `n + 1`, from `agent`.
    fn rotation(login: &Login, n: u32, agent: &str) -> Rotation {
        let digest = |n: u32| {
            let mut bytes = [0; 32];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            bytes
        };
        let session = SessionRecord {
            digest: SessionDigest::from_bytes(digest(n + 1)),
            user: Some(SessionUser {
                username: login.username.clone(),
                login: Some(login.serial),
                method: AuthMethod::Remembered,
                authenticated_at: login.authenticated_at,
            }),
            data: SessionData::new(),
            created_at: at(1),
            expires_at: at(1800),
        };
        Rotation {
            username: login.username.clone(),
            serial: login.serial,
            expected: TokenDigest::from_bytes(digest(n)),
            token: TokenDigest::from_bytes(digest(n + 1)),
            previous: PreviousToken {
                digest: TokenDigest::from_bytes(digest(n)),
                rotated_at: at(1),
                sealed: SealedSuccessor::from_bytes([0; 64]),
            },
            session,
            last_used_at: at(1),
            expires_at: at(3600),
            client: ClientMeta::new(None, Some(agent)),
            max_sessions: None,
        }
    }

    fn interned(store: &MemoryStore) -> usize {
        store.records().user_agents.len()
    }

    #[tokio::test]
    async fn logins_share_one_copy_of_a_user_agent() -> Result {
        let store = MemoryStore::new();
        for i in 0..3 {
            let username = Username::new(format!("user {i}"))?;
            assert_eq!(store.create_login(&login(&username, 1, "Mozilla/5.0")).await?, Inserted::Created);
        }
        let records = store.records();
        let agents: Vec<&Arc<str>> = records
            .users
            .values()
            .flat_map(|user| &user.logins)
            .filter_map(StoredLogin::user_agent)
            .collect();
        assert_eq!(agents.len(), 3);
        assert!(agents.iter().all(|agent| Arc::ptr_eq(agent, agents[0])));
        assert_eq!(records.user_agents.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_client_sending_new_user_agents_cannot_grow_the_interner() -> Result {
        let store = MemoryStore::new();
        let alice = Username::new("alice")?;
        let mut current = login(&alice, 1, "agent 0");
        current.token = TokenDigest::from_bytes([0; 32]);
        assert_eq!(store.create_login(&current).await?, Inserted::Created);
        // Every rotation records the agent of its request and lets the
        // previous one go.
        for n in 0..20_000 {
            let rotated = store.rotate_login(&rotation(&current, n, &format!("agent {}", n + 1))).await?;
            assert_eq!(rotated, Rotated::Rotated);
            assert!(interned(&store) <= compact::MIN_SWEEP + 1, "{} agents after {n}", interned(&store));
        }
        let stored = store.get_login(&alice, &current.serial).await?.ok_or("the login is gone")?;
        assert_eq!(stored.client.user_agent.as_deref(), Some("agent 20000"));
        Ok(())
    }

    #[tokio::test]
    async fn user_agents_go_when_their_logins_do() -> Result {
        let store = MemoryStore::new();
        for i in 0..1_000 {
            let username = Username::new(format!("user {i}"))?;
            assert_eq!(
                store.create_login(&login(&username, 1, &format!("agent {i}"))).await?,
                Inserted::Created
            );
        }
        assert!(interned(&store) >= 1_000, "every login's agent is interned");
        for i in 0..1_000 {
            let username = Username::new(format!("user {i}"))?;
            if i % 2 == 0 {
                store.delete_user(&username).await?;
            } else {
                assert!(store.delete_login(&username, &Serial::from_bytes([1; 16])).await?);
            }
        }
        // The next cleaning pass lets them go.
        assert!(store.delete_expired_logins(at(0)).await?.is_empty());
        assert_eq!(interned(&store), 0);
        assert!(store.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_restore_shares_the_restored_agents_and_drops_the_others() -> Result {
        let store = MemoryStore::new();
        let alice = Username::new("alice")?;
        assert_eq!(store.create_login(&login(&alice, 1, "kept")).await?, Inserted::Created);
        let snapshot = store.snapshot();
        assert_eq!(store.create_login(&login(&alice, 2, "dropped")).await?, Inserted::Created);
        store.restore(&snapshot);
        drop(snapshot);
        assert_eq!(interned(&store), 1);
        let bob = Username::new("bob")?;
        assert_eq!(store.create_login(&login(&bob, 1, "kept")).await?, Inserted::Created);
        assert_eq!(interned(&store), 1, "the restored agent is shared, not interned twice");
        Ok(())
    }
}

/// This crate's README, compiled as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
