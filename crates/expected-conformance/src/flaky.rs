//! A store wrapper whose backend can be switched off, to test failing closed.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use expected_core::store::{Deleted, Inserted, Rotated, Rotation, StoreErrorKind};
use expected_core::time::OffsetDateTime;
use expected_core::{Login, Serial, Session, SessionDigest, Store, StoreError, Username};

/// Wraps a store; while [`Flaky::set_down`] is on, every call fails with an
/// [`Unavailable`](StoreErrorKind::Unavailable) error without reaching it.
#[derive(Debug)]
pub struct Flaky<S> {
    inner: S,
    down: AtomicBool,
}

impl<S> Flaky<S> {
    /// Wraps `inner`, up.
    pub fn new(inner: S) -> Self {
        Self { inner, down: AtomicBool::new(false) }
    }

    /// Takes the backend down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::new(StoreErrorKind::Unavailable, "backend is down (Flaky)"));
        }
        Ok(())
    }
}

#[async_trait]
impl<S: Store> Store for Flaky<S> {
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError> {
        self.check()?;
        self.inner.create_login(login).await
    }
    async fn get_login(&self, username: &Username, serial: &Serial) -> Result<Option<Login>, StoreError> {
        self.check()?;
        self.inner.get_login(username, serial).await
    }
    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        self.check()?;
        self.inner.rotate_login(rotation).await
    }
    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        self.check()?;
        self.inner.list_logins(username).await
    }
    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_login(username, serial).await
    }
    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        self.check()?;
        self.inner.delete_user(username).await
    }
    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.delete_expired_logins(now).await
    }
    async fn create_session(&self, session: &Session) -> Result<Inserted, StoreError> {
        self.check()?;
        self.inner.create_session(session).await
    }
    async fn get_session(
        &self,
        username: &Username,
        digest: &SessionDigest,
    ) -> Result<Option<Session>, StoreError> {
        self.check()?;
        self.inner.get_session(username, digest).await
    }
    async fn save_session(&self, session: &Session) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.save_session(session).await
    }
    async fn touch_session(
        &self,
        username: &Username,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.touch_session(username, digest, expires_at).await
    }
    async fn delete_session(&self, username: &Username, digest: &SessionDigest) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_session(username, digest).await
    }
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.delete_expired_sessions(now).await
    }
}
