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
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use expected_core::protocol::apply_rotation;
use expected_core::store::{Deleted, Inserted, Rotated, Rotation};
use expected_core::time::OffsetDateTime;
use expected_core::{Login, Serial, Session, SessionDigest, Store, StoreError, Username};

/// One user's records: everything an operation on one user touches.
#[derive(Debug, Default)]
struct User {
    logins: HashMap<Serial, Login>,
    sessions: HashMap<SessionDigest, Session>,
}

impl User {
    fn is_empty(&self) -> bool {
        self.logins.is_empty() && self.sessions.is_empty()
    }

    /// Removes a login and every session it opened, the latter even when the
    /// login is already gone.
    fn remove_login(&mut self, serial: &Serial) -> bool {
        let login = self.logins.remove(serial);
        if let Some(bound) = login.as_ref().and_then(|login| login.session) {
            self.sessions.remove(&bound);
        }
        self.sessions.retain(|_, session| session.login != Some(*serial));
        login.is_some()
    }
}

/// The in-memory store. Clone it through an `Arc` to share it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<Username, User>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn users(&self) -> MutexGuard<'_, HashMap<Username, User>> {
        // Every operation leaves the map consistent before it can panic, so a
        // poisoned lock still guards valid data.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a user's records and drops the user once empty.
    fn with_user<T>(&self, username: &Username, f: impl FnOnce(&mut User) -> T) -> T {
        let mut users = self.users();
        let user = users.entry(username.clone()).or_default();
        let result = f(user);
        if user.is_empty() {
            users.remove(username);
        }
        result
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
        Ok(self.users().get(username).and_then(|user| user.logins.get(serial)).cloned())
    }

    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        Ok(self.with_user(&rotation.username, |user| {
            let Some(login) = user.logins.get_mut(&rotation.serial) else { return Rotated::NotFound };
            if login.token != rotation.expected {
                return Rotated::NotCurrent;
            }
            if user.sessions.contains_key(&rotation.session.digest) {
                return Rotated::SessionExists;
            }
            let old = login.session;
            apply_rotation(login, rotation);
            if let Some(old) = old {
                user.sessions.remove(&old);
            }
            user.sessions.insert(rotation.session.digest, rotation.session.clone());
            Rotated::Rotated
        }))
    }

    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        Ok(self.users().get(username).map(|user| user.logins.values().cloned().collect()).unwrap_or_default())
    }

    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        Ok(self.with_user(username, |user| user.remove_login(serial)))
    }

    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        let removed = self.users().remove(username).unwrap_or_default();
        Ok(Deleted { logins: removed.logins.len() as u64, sessions: removed.sessions.len() as u64 })
    }

    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut users = self.users();
        let mut count = 0;
        for user in users.values_mut() {
            let expired: Vec<Serial> = user
                .logins
                .values()
                .filter(|login| login.expires_at <= now)
                .map(|login| login.serial)
                .collect();
            for serial in &expired {
                user.remove_login(serial);
            }
            count += expired.len() as u64;
        }
        users.retain(|_, user| !user.is_empty());
        Ok(count)
    }

    async fn create_session(&self, session: &Session) -> Result<Inserted, StoreError> {
        Ok(self.with_user(&session.username, |user| {
            if user.sessions.contains_key(&session.digest) {
                return Inserted::AlreadyExists;
            }
            user.sessions.insert(session.digest, session.clone());
            Inserted::Created
        }))
    }

    async fn get_session(
        &self,
        username: &Username,
        digest: &SessionDigest,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self.users().get(username).and_then(|user| user.sessions.get(digest)).cloned())
    }

    async fn save_session(&self, session: &Session) -> Result<bool, StoreError> {
        Ok(self.with_user(&session.username, |user| match user.sessions.get_mut(&session.digest) {
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
        username: &Username,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self.with_user(username, |user| match user.sessions.get_mut(digest) {
            Some(stored) => {
                stored.expires_at = expires_at;
                true
            }
            None => false,
        }))
    }

    async fn delete_session(&self, username: &Username, digest: &SessionDigest) -> Result<bool, StoreError> {
        Ok(self.with_user(username, |user| user.sessions.remove(digest).is_some()))
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut users = self.users();
        let mut count = 0;
        for user in users.values_mut() {
            let before = user.sessions.len();
            user.sessions.retain(|_, session| session.expires_at > now);
            count += (before - user.sessions.len()) as u64;
        }
        users.retain(|_, user| !user.is_empty());
        Ok(count)
    }
}
