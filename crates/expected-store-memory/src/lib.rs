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

#![deny(missing_docs)]
#![forbid(unsafe_code)]

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
use expected_core::{Login, Serial, SessionDigest, SessionRecord, Store, StoreError, Username};

/// One user's records: everything an operation on one user touches.
#[derive(Debug, Default, Clone)]
struct User {
    logins: HashMap<Serial, Login>,
    sessions: HashMap<SessionDigest, SessionRecord>,
}

impl User {
    fn is_empty(&self) -> bool {
        self.logins.is_empty() && self.sessions.is_empty()
    }

    /// The compare-and-swap rotation ([`Store::rotate_login`]).
    fn rotate(&mut self, rotation: &Rotation) -> Rotated {
        let Some(login) = self.logins.get_mut(&rotation.serial) else { return Rotated::NotFound };
        if login.token != rotation.expected {
            return Rotated::NotCurrent;
        }
        if self.sessions.contains_key(&rotation.session.digest) {
            return Rotated::SessionExists;
        }
        let old = login.session;
        apply_rotation(login, rotation);
        if let Some(old) = old {
            self.sessions.remove(&old);
        }
        // Every other session this login opened goes too (a grace session, a
        // cycled one, a copy a thief keeps alive).
        self.sessions.retain(|_, session| session.login() != Some(rotation.serial));
        self.insert_capped(&rotation.session, rotation.max_sessions);
        Rotated::Rotated
    }

    /// Removes a login and every session it opened, the latter even when the
    /// login is already gone.
    fn remove_login(&mut self, serial: &Serial) -> bool {
        let login = self.logins.remove(serial);
        if let Some(bound) = login.as_ref().and_then(|login| login.session) {
            self.sessions.remove(&bound);
        }
        self.sessions.retain(|_, session| session.login() != Some(*serial));
        login.is_some()
    }

    /// Inserts `session` and deletes the sessions that expire first beyond
    /// `max`, never `session` itself.
    fn insert_capped(&mut self, session: &SessionRecord, max: Option<NonZeroUsize>) {
        self.sessions.insert(session.digest, session.clone());
        let Some(max) = max else { return };
        let excess = self.sessions.len().saturating_sub(max.get());
        if excess == 0 {
            return;
        }
        let mut oldest: Vec<(OffsetDateTime, SessionDigest)> = self
            .sessions
            .values()
            .filter(|other| other.digest != session.digest)
            .map(|other| (other.expires_at, other.digest))
            .collect();
        oldest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
        for (_, digest) in oldest.into_iter().take(excess) {
            self.sessions.remove(&digest);
        }
    }
}

/// Everything the store holds: users' records, and anonymous visitors'
/// sessions apart (no user operation reaches them).
#[derive(Debug, Default, Clone)]
struct Records {
    users: HashMap<Username, User>,
    anonymous: HashMap<SessionDigest, SessionRecord>,
}

/// A copy of everything a [`MemoryStore`] held at one moment
/// ([`MemoryStore::snapshot`]), to put back with [`MemoryStore::restore`].
#[derive(Debug, Clone)]
pub struct MemorySnapshot(Records);

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

    /// Runs `f` on a user's records and drops the user once empty.
    fn with_user<T>(&self, username: &Username, f: impl FnOnce(&mut User) -> T) -> T {
        let mut records = self.records();
        let user = records.users.entry(username.clone()).or_default();
        let result = f(user);
        if user.is_empty() {
            records.users.remove(username);
        }
        result
    }

    /// Runs `f` on the sessions of `owner` (a user's, or the anonymous ones).
    fn with_sessions<T>(
        &self,
        owner: Option<&Username>,
        f: impl FnOnce(&mut HashMap<SessionDigest, SessionRecord>) -> T,
    ) -> T {
        match owner {
            Some(username) => self.with_user(username, |user| f(&mut user.sessions)),
            None => f(&mut self.records().anonymous),
        }
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
        MemorySnapshot(self.records().clone())
    }

    /// Puts a [`snapshot`](Self::snapshot) back, dropping everything written
    /// since: what restoring a backup, or failing over to a replica that
    /// missed the last writes, does to a store. The engine heals the logins
    /// whose rotations were lost (with token keys; `docs/protocol.md` §13).
    pub fn restore(&self, snapshot: &MemorySnapshot) {
        *self.records() = snapshot.0.clone();
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError> {
        Ok(self.with_user(&login.username, |user| {
            if user.logins.contains_key(&login.serial) {
                return Inserted::AlreadyExists;
            }
            user.logins.insert(login.serial, login.clone());
            Inserted::Created
        }))
    }

    async fn get_login(&self, username: &Username, serial: &Serial) -> Result<Option<Login>, StoreError> {
        Ok(self.records().users.get(username).and_then(|user| user.logins.get(serial)).cloned())
    }

    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        Ok(self.with_user(&rotation.username, |user| user.rotate(rotation)))
    }

    async fn rotate_current(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        let rotation = &attempt.rotation;
        Ok(self.with_user(&rotation.username, |user| {
            // The check and the rotation under one lock: atomic like any
            // rotation.
            let Some(login) = user.logins.get(&rotation.serial) else {
                return CurrentRotated::NotApplied(None);
            };
            if !attempt.applies_to(login) {
                return CurrentRotated::NotApplied(Some(login.clone()));
            }
            let authenticated_at = login.authenticated_at;
            match user.rotate(&attempt.for_login(login)) {
                Rotated::Rotated => CurrentRotated::Rotated { authenticated_at },
                Rotated::SessionExists => CurrentRotated::SessionExists,
                Rotated::NotCurrent | Rotated::NotFound => {
                    CurrentRotated::NotApplied(user.logins.get(&rotation.serial).cloned())
                }
            }
        }))
    }

    async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        if session.username() != Some(&login.username) {
            return Err(StoreError::new(
                expected_core::StoreErrorKind::Backend,
                "a remembered login's session must belong to the login's user",
            ));
        }
        // Both checks, both writes and the read under one lock: atomic.
        Ok(self.with_user(&login.username, |user| {
            if user.logins.contains_key(&login.serial) {
                return Remembered::LoginExists;
            }
            if user.sessions.contains_key(&session.digest) {
                return Remembered::SessionExists;
            }
            let others = list_logins.then(|| user.logins.values().cloned().collect());
            user.logins.insert(login.serial, login.clone());
            user.insert_capped(session, max_sessions);
            Remembered::Created { others }
        }))
    }

    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        let records = self.records();
        Ok(records
            .users
            .get(username)
            .map(|user| user.logins.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        Ok(self.with_user(username, |user| user.remove_login(serial)))
    }

    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        let removed = self.records().users.remove(username).unwrap_or_default();
        Ok(Deleted::new(removed.logins.into_keys().collect(), removed.sessions.len() as u64))
    }

    async fn delete_user_except(&self, username: &Username, keep: &Keep) -> Result<Deleted, StoreError> {
        Ok(self.with_user(username, |user| {
            let serials: Vec<Serial> =
                user.logins.keys().filter(|serial| Some(**serial) != keep.login).copied().collect();
            for serial in &serials {
                user.logins.remove(serial);
            }
            let before = user.sessions.len();
            user.sessions.retain(|digest, _| *digest == keep.session);
            Deleted::new(serials, (before - user.sessions.len()) as u64)
        }))
    }

    async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        Ok(self.with_user(&confirmation.username, |user| {
            let Some(session) = user.sessions.get_mut(&confirmation.session) else { return false };
            let Some(owner) = session.user.as_mut() else { return false };
            owner.method = AuthMethod::Password;
            owner.authenticated_at = confirmation.at;
            if let Some(login) = confirmation.login.and_then(|serial| user.logins.get_mut(&serial)) {
                login.authenticated_at = confirmation.at;
            }
            true
        }))
    }

    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<Vec<ExpiredLogin>, StoreError> {
        let mut records = self.records();
        let mut deleted = Vec::new();
        for (username, user) in &mut records.users {
            let expired: Vec<Serial> = user
                .logins
                .values()
                .filter(|login| login.expires_at <= now)
                .map(|login| login.serial)
                .collect();
            for serial in expired {
                user.remove_login(&serial);
                deleted.push(ExpiredLogin { username: username.clone(), serial });
            }
        }
        records.users.retain(|_, user| !user.is_empty());
        Ok(deleted)
    }

    async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError> {
        let Some(username) = session.username() else {
            let mut records = self.records();
            if records.anonymous.contains_key(&session.digest) {
                return Ok(Inserted::AlreadyExists);
            }
            records.anonymous.insert(session.digest, session.clone());
            return Ok(Inserted::Created);
        };
        Ok(self.with_user(username, |user| {
            if user.sessions.contains_key(&session.digest) {
                return Inserted::AlreadyExists;
            }
            user.insert_capped(session, max_sessions);
            Inserted::Created
        }))
    }

    async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        let (Some(username), Some(serial)) = (session.username(), session.login()) else {
            return Ok(GraceInserted::LoginGone);
        };
        Ok(self.with_user(username, |user| {
            let Some(login) = user.logins.get_mut(&serial) else { return GraceInserted::LoginGone };
            if user.sessions.contains_key(&session.digest) {
                return GraceInserted::AlreadyExists;
            }
            login.session = Some(session.digest);
            user.insert_capped(session, max_sessions);
            GraceInserted::Created
        }))
    }

    async fn get_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let records = self.records();
        Ok(match owner {
            Some(username) => records.users.get(username).and_then(|user| user.sessions.get(digest)).cloned(),
            None => records.anonymous.get(digest).cloned(),
        })
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError> {
        Ok(self.with_sessions(session.username(), |sessions| match sessions.get_mut(&session.digest) {
            Some(stored) => {
                stored.data = session.data.clone();
                stored.expires_at = session.expires_at;
                true
            }
            None => false,
        }))
    }

    async fn touch_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self.with_sessions(owner, |sessions| match sessions.get_mut(digest) {
            Some(stored) => {
                stored.expires_at = expires_at;
                true
            }
            None => false,
        }))
    }

    async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        Ok(self.with_sessions(owner, |sessions| sessions.remove(digest).is_some()))
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut records = self.records();
        let mut count = 0;
        for user in records.users.values_mut() {
            let before = user.sessions.len();
            user.sessions.retain(|_, session| session.expires_at > now);
            count += (before - user.sessions.len()) as u64;
        }
        records.users.retain(|_, user| !user.is_empty());
        let before = records.anonymous.len();
        records.anonymous.retain(|_, session| session.expires_at > now);
        count += (before - records.anonymous.len()) as u64;
        Ok(count)
    }
}

/// This crate's README, compiled as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
