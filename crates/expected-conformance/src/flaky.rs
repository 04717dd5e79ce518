//! A store wrapper whose backend can be switched off, to test failing closed,
//! and that counts the calls of each operation, to test what reaches a store.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation, StoreErrorKind,
};
use expected_core::time::OffsetDateTime;
use expected_core::{Login, Serial, SessionDigest, SessionRecord, Store, StoreError, Username};

/// The operations of the [`Store`] trait, to count their calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
#[non_exhaustive]
pub enum Operation {
    CreateLogin,
    GetLogin,
    RotateLogin,
    RotateCurrent,
    CreateRemembered,
    ListLogins,
    DeleteLogin,
    DeleteUser,
    DeleteUserExcept,
    ConfirmPassword,
    DeleteExpiredLogins,
    CreateSession,
    CreateGraceSession,
    GetSession,
    SaveSession,
    TouchSession,
    DeleteSession,
    DeleteExpiredSessions,
}

/// How many [`Operation`]s there are.
const OPERATIONS: usize = Operation::ALL.len();

impl Operation {
    /// Every operation, in the order of the [`Store`] trait.
    pub const ALL: [Operation; 18] = [
        Self::CreateLogin,
        Self::GetLogin,
        Self::RotateLogin,
        Self::RotateCurrent,
        Self::CreateRemembered,
        Self::ListLogins,
        Self::DeleteLogin,
        Self::DeleteUser,
        Self::DeleteUserExcept,
        Self::ConfirmPassword,
        Self::DeleteExpiredLogins,
        Self::CreateSession,
        Self::CreateGraceSession,
        Self::GetSession,
        Self::SaveSession,
        Self::TouchSession,
        Self::DeleteSession,
        Self::DeleteExpiredSessions,
    ];
}

/// Wraps a store; while [`Flaky::set_down`] is on, every call fails with an
/// [`Unavailable`](StoreErrorKind::Unavailable) error without reaching it.
/// Every call is counted, up or down ([`Flaky::calls`]).
#[derive(Debug)]
pub struct Flaky<S> {
    inner: S,
    down: AtomicBool,
    calls: [AtomicUsize; OPERATIONS],
}

impl<S> Flaky<S> {
    /// Wraps `inner`, up.
    pub fn new(inner: S) -> Self {
        Self { inner, down: AtomicBool::new(false), calls: Default::default() }
    }

    /// Takes the backend down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many times `operation` was called so far.
    pub fn calls(&self, operation: Operation) -> usize {
        self.calls[operation as usize].load(Ordering::SeqCst)
    }

    /// How many calls reached the wrapper so far, every operation together.
    pub fn total_calls(&self) -> usize {
        Operation::ALL.iter().map(|operation| self.calls(*operation)).sum()
    }

    fn check(&self, operation: Operation) -> Result<(), StoreError> {
        self.calls[operation as usize].fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::new(StoreErrorKind::Unavailable, "backend is down (Flaky)"));
        }
        Ok(())
    }
}

#[async_trait]
impl<S: Store> Store for Flaky<S> {
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError> {
        self.check(Operation::CreateLogin)?;
        self.inner.create_login(login).await
    }
    async fn get_login(&self, username: &Username, serial: &Serial) -> Result<Option<Login>, StoreError> {
        self.check(Operation::GetLogin)?;
        self.inner.get_login(username, serial).await
    }
    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        self.check(Operation::RotateLogin)?;
        self.inner.rotate_login(rotation).await
    }
    async fn rotate_current(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        self.check(Operation::RotateCurrent)?;
        self.inner.rotate_current(attempt).await
    }
    async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        self.check(Operation::CreateRemembered)?;
        self.inner.create_remembered(login, session, max_sessions, list_logins).await
    }
    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        self.check(Operation::ListLogins)?;
        self.inner.list_logins(username).await
    }
    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        self.check(Operation::DeleteLogin)?;
        self.inner.delete_login(username, serial).await
    }
    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        self.check(Operation::DeleteUser)?;
        self.inner.delete_user(username).await
    }
    async fn delete_user_except(&self, username: &Username, keep: &Keep) -> Result<Deleted, StoreError> {
        self.check(Operation::DeleteUserExcept)?;
        self.inner.delete_user_except(username, keep).await
    }
    async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        self.check(Operation::ConfirmPassword)?;
        self.inner.confirm_password(confirmation).await
    }
    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<Vec<ExpiredLogin>, StoreError> {
        self.check(Operation::DeleteExpiredLogins)?;
        self.inner.delete_expired_logins(now).await
    }
    async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError> {
        self.check(Operation::CreateSession)?;
        self.inner.create_session(session, max_sessions).await
    }
    async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        self.check(Operation::CreateGraceSession)?;
        self.inner.create_grace_session(session, max_sessions).await
    }
    async fn get_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.check(Operation::GetSession)?;
        self.inner.get_session(owner, digest).await
    }
    async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError> {
        self.check(Operation::SaveSession)?;
        self.inner.save_session(session).await
    }
    async fn touch_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.check(Operation::TouchSession)?;
        self.inner.touch_session(owner, digest, expires_at).await
    }
    async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        self.check(Operation::DeleteSession)?;
        self.inner.delete_session(owner, digest).await
    }
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.check(Operation::DeleteExpiredSessions)?;
        self.inner.delete_expired_sessions(now).await
    }
}
