//! The store contract: everything the engine needs from storage.
//!
//! One trait, [`Store`], covers logins and sessions because the cookie-login
//! step touches both at once (rotate the token, bind a new session, delete the
//! old one) and must do so atomically in one call.
//!
//! # Rules every implementation follows
//!
//! The `expected-conformance` crate checks each of them.
//!
//! - **Keys.** A login is keyed by `(username, serial)` and a session by
//!   `(owner, session digest)`, the owner being the username or `None` for an
//!   anonymous visitor's session: an operation given an owner that is not the
//!   record's finds nothing (an anonymous lookup never finds a user's session,
//!   nor the other way round).
//! - **Anonymous sessions** are sessions like any other: saved, touched,
//!   deleted and cleaned the same way. No user operation (`delete_user`,
//!   `delete_user_except`, `delete_login`) touches them.
//! - **No overwrite.** `create_*` never replaces an existing record; it answers
//!   [`Inserted::AlreadyExists`].
//! - **Atomic rotation.** [`Store::rotate_login`] is a compare-and-swap on the
//!   current token digest: of any number of concurrent calls expecting the same
//!   digest, exactly one answers [`Rotated::Rotated`]. A rotation ends every
//!   session the login opened (`session.user.login == Some(serial)`) and its
//!   bound one, all but the new session: one device has one live session per
//!   rotation, and a copy of an older one stops working.
//! - **Grace sessions need their login.** [`Store::create_grace_session`]
//!   creates a session, bound to the login that opens it, only while that
//!   login exists, in one atomic step: a revocation racing it leaves no
//!   session behind.
//! - **No resurrection.** Saving a session that was deleted does not bring it
//!   back.
//! - **Exact round trip.** Records read back equal to what was written
//!   (timestamps are given in microsecond precision, UTC).
//! - **Expiry.** A store may drop a record on its own once its `expires_at` has
//!   passed (a Redis TTL, say), never before. `delete_expired_*(now)` deletes
//!   exactly the records with `expires_at <= now` that are still there, and
//!   counts those (not what the backend already dropped).
//! - **Sessions per user are capped.** Every operation that creates a user's
//!   session ([`Store::create_session`], [`Store::rotate_login`],
//!   [`Store::create_grace_session`], [`Store::create_remembered`]) is given the cap (`max_sessions`,
//!   `None` for no limit) and, in the same atomic step, leaves that user with
//!   at most that many sessions: over it, it deletes the user's sessions with
//!   the earliest `expires_at` (the least recently used, sessions sliding by
//!   one idle timeout; expired ones not yet cleaned go first; ties in no
//!   particular order), never the session it creates. Sessions deleted so
//!   end alone: their logins stay. Anonymous sessions are not capped, nor
//!   counted. Creations racing each other may leave a user briefly over the
//!   cap (each counts what it sees); the next creation trims it.
//! - **Bounded work.** Ending one login ([`Store::delete_login`], a rotation
//!   ending the login's other sessions) costs what that login holds, not what
//!   the user holds: a store finds a login's sessions through an index (a SQL
//!   index on `(username, login_serial)`, a per-login set in Redis), and
//!   ending a login that does not exist costs one lookup.
//! - **Sessions end with their login.** Deleting a login, by any operation,
//!   deletes the sessions it opened (`session.user.login == Some(serial)`). Where the backend drops an expired login
//!   by itself, its sessions end at the next cleaning or the next operation on
//!   that user.
//! - **Logging out the other devices** ([`Store::delete_user_except`]) is one
//!   atomic step: a rotation of another device racing it either finds its
//!   login gone or has its new session deleted with the rest; no other device
//!   survives.
//! - **Confirming the password** ([`Store::confirm_password`]) sets the
//!   session's method and `authenticated_at` and the login's
//!   `authenticated_at` together; a rotation never changes `authenticated_at`
//!   of the login, and copies it into the new session as the engine built it.
//! - **Errors.** Failures are a [`StoreError`], never a panic. A failed call
//!   either changed nothing or, when it timed out after the backend ran it,
//!   did all of its work: retrying is always safe, and the engine's grace
//!   window absorbs a rotation that was applied but not answered. Cleaning
//!   (`delete_expired_*`) works record by record: a pass that fails part-way
//!   has deleted some expired records completely (sessions included) and
//!   leaves the rest to the next pass.
//!
//! # Round trips
//!
//! Each method is one atomic unit of work on the backend: one statement,
//! transaction or script, ideally one round trip (a SQL backend without
//! `UPDATE … RETURNING` needs a few inside its transaction). A cookie login
//! whose token is current is one [`Store::rotate_current`] that rotates: one
//! round trip on a store that implements it (PostgreSQL, Redis), two on the
//! default. [`Store::rotate_login`] follows only when the optimistic attempt
//! did not apply and the judgement still asks for a rotation (the last
//! cookie max age of a login's lifetime, a heal).
//!
//! A password login with "remember me" is one [`Store::create_remembered`]
//! (the login, its session and, when the engine caps logins per user, the
//! user's other logins read in the same step), then one
//! [`Store::delete_login`] per login the cap ends, decided by core
//! ([`protocol::logins_over_cap`](crate::protocol::logins_over_cap)): at
//! most two round trips on a store that implements it (PostgreSQL, Redis)
//! when a registration puts the user over the cap by one, as it does once
//! the cap holds; three on the default. Without "remember me" it is one
//! [`Store::create_session`].
//!
//! Why the attempt carries bounds rather than asking the store to judge: a
//! store that answered the login on a mismatch and rotated on a match would
//! decide the new expiry and the new session's `authenticated_at` itself.
//! Here core computes the two bounds ([`CurrentRotation::created_since`],
//! [`CurrentRotation::now`]) under which its plan is the rotation
//! [`protocol::rotation`](crate::protocol::rotation) would make, and the store
//! only compares and copies: any store proven by the conformance suite
//! applies exactly what core decided.

use std::num::NonZeroUsize;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::record::{ClientMeta, Login, PreviousToken, SessionRecord, SessionUser};
use crate::secret::{Serial, SessionDigest, TokenDigest, Username};

/// The kinds of store failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend cannot be reached or did not answer in time.
    Unavailable,
    /// The backend answered with data the store cannot read back.
    Corrupt,
    /// Any other failure of the backend.
    Backend,
}

impl StoreErrorKind {
    /// A short lowercase name: `unavailable`, `corrupt`, `backend` (the
    /// `kind` label of the `expected_store_errors_total` metric).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Corrupt => "corrupt",
            Self::Backend => "backend",
        }
    }
}

/// A store operation failed. The engine fails closed on it: nothing is
/// authenticated and nothing is changed.
#[derive(Debug, thiserror::Error)]
#[error("store {kind:?} error: {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind` with a message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    /// The backend could not be reached.
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::wrap(StoreErrorKind::Unavailable, source)
    }

    /// The backend failed.
    pub fn backend(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::wrap(StoreErrorKind::Backend, source)
    }

    /// The backend returned data that does not decode.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Corrupt, message)
    }

    /// An error of `kind` caused by `source`.
    pub fn wrap(kind: StoreErrorKind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { kind, message: source.to_string(), source: Some(Box::new(source)) }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

/// The result of a create: stores never overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Inserted {
    /// The record was created.
    Created,
    /// A record with that key exists; nothing was written.
    AlreadyExists,
}

/// The result of [`Store::create_grace_session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum GraceInserted {
    /// The session was created and bound to its login.
    Created,
    /// The login that would open the session does not exist (revoked,
    /// logged out, wiped): nothing was written.
    LoginGone,
    /// A session with that key exists: nothing was written.
    AlreadyExists,
}

/// A token rotation, applied by [`Store::rotate_login`] only if the login's
/// current token digest is still `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Whose login.
    pub username: Username,
    /// Which login.
    pub serial: Serial,
    /// The digest the login must hold for the rotation to happen.
    pub expected: TokenDigest,
    /// The new current token digest.
    pub token: TokenDigest,
    /// What becomes the login's `previous`: the presented token. Its digest
    /// equals `expected` for a plain rotation; after the store lost
    /// rotations it is the digest of a token ahead of `expected`
    /// ([`Judgement::Ahead`](crate::protocol::Judgement::Ahead)), and the
    /// rotation heals the login. Stores write it as given either way.
    pub previous: PreviousToken,
    /// The new session to create and bind to the login (its `user` is
    /// `username`, with `login` this serial, method
    /// [`Remembered`](crate::AuthMethod::Remembered) and the login's
    /// `authenticated_at`). Every other session of the login is deleted: the
    /// one it was bound to and every one it opened.
    pub session: SessionRecord,
    /// New `last_used_at`.
    pub last_used_at: OffsetDateTime,
    /// New `expires_at`.
    pub expires_at: OffsetDateTime,
    /// The client that used the login.
    pub client: ClientMeta,
    /// The most sessions the user may hold once the new session exists
    /// (`None`: no limit), as for [`Store::create_session`]: the rotation
    /// deletes the user's sessions that expire first beyond it, after the
    /// login's own, never the new one.
    pub max_sessions: Option<NonZeroUsize>,
}

impl Rotation {
    /// The new session's owner, which must be the login's user: a store
    /// files the session under that user's keys or rows, where one naming
    /// somebody else (or nobody) would read back as corrupt, or be counted
    /// against and deleted with the wrong logins. Stores call this before
    /// writing anything; the engine never plans otherwise.
    ///
    /// # Errors
    /// A [`StoreErrorKind::Backend`] error when the session is anonymous or
    /// another user's.
    pub fn session_owner(&self) -> Result<&SessionUser, StoreError> {
        owned_by(&self.session, &self.username, "a rotation's new session must belong to the login's user")
    }
}

/// [`Store::rotate_current`]'s default, in steps on any store: [`Store::get_login`],
/// then [`Store::rotate_login`] when the rotation applies (re-reading the login if that
/// lost a race). For a store that does it in one step on some backends only, to call
/// on the others.
pub async fn rotate_current_in_steps<S: Store + ?Sized>(
    store: &S,
    attempt: &CurrentRotation,
) -> Result<CurrentRotated, StoreError> {
    let rotation = &attempt.rotation;
    let login = store.get_login(&rotation.username, &rotation.serial).await?;
    let Some(login) = login else { return Ok(CurrentRotated::NotApplied(None)) };
    if !attempt.applies_to(&login) {
        return Ok(CurrentRotated::NotApplied(Some(login)));
    }
    match store.rotate_login(&attempt.for_login(&login)).await? {
        Rotated::Rotated => Ok(CurrentRotated::Rotated { authenticated_at: login.authenticated_at }),
        Rotated::SessionExists => Ok(CurrentRotated::SessionExists),
        // Another rotation or a delete came in between: what it left.
        Rotated::NotCurrent | Rotated::NotFound => {
            Ok(CurrentRotated::NotApplied(store.get_login(&rotation.username, &rotation.serial).await?))
        }
    }
}

/// [`Store::create_remembered`]'s default, in steps on any store:
/// [`Store::create_login`] of the login unbound, [`Store::create_grace_session`] (which
/// creates the session and binds the login in one step; the login is deleted again when
/// that fails), then [`Store::list_logins`] when asked. For a store that does it in one
/// step on some backends only, to call on the others.
pub async fn create_remembered_in_steps<S: Store + ?Sized>(
    store: &S,
    login: &Login,
    session: &SessionRecord,
    max_sessions: Option<NonZeroUsize>,
    list_logins: bool,
) -> Result<Remembered, StoreError> {
    remembered_owner(login, session)?;
    // The login goes in unbound, and the session's creation binds it in
    // the same step (`create_grace_session`), so that undoing the login
    // when the session's digest is taken ends nothing but what it
    // opened: `delete_login` of a login already bound to that digest
    // would end the session that holds it, someone else's.
    let unbound = Login { session: None, ..login.clone() };
    if store.create_login(&unbound).await? == Inserted::AlreadyExists {
        return Ok(Remembered::LoginExists);
    }
    match store.create_grace_session(session, max_sessions).await {
        Ok(GraceInserted::Created) => {}
        // No login without its session.
        Ok(GraceInserted::AlreadyExists) => {
            store.delete_login(&login.username, &login.serial).await?;
            return Ok(Remembered::SessionExists);
        }
        Ok(GraceInserted::LoginGone) => {
            return Err(StoreError::new(
                StoreErrorKind::Backend,
                "the new login was deleted before its session was created",
            ));
        }
        Err(error) => {
            store.delete_login(&login.username, &login.serial).await?;
            return Err(error);
        }
    }
    if !list_logins {
        return Ok(Remembered::Created { others: None });
    }
    match store.list_logins(&login.username).await {
        Ok(mut logins) => {
            logins.retain(|other| other.serial != login.serial);
            Ok(Remembered::Created { others: Some(logins) })
        }
        // The login is made: failing the registration now would leave
        // it behind unused. The cap waits for the next one.
        Err(error) => {
            tracing::warn!(%error, user = %login.username.tag(), "could not list logins for the per-user cap");
            Ok(Remembered::Created { others: None })
        }
    }
}

/// The precondition of [`Store::create_remembered`], checked: `session` is
/// `login`'s user's (answered, for the store to file it under) and the two
/// name each other (the session opened by `login`, the login bound to the
/// session). Stores call this before writing anything; the engine never
/// asks otherwise.
///
/// # Errors
/// A [`StoreErrorKind::Backend`] error when the session is anonymous or
/// another user's, or either does not name the other.
pub fn remembered_owner<'a>(
    login: &Login,
    session: &'a SessionRecord,
) -> Result<&'a SessionUser, StoreError> {
    let owner =
        owned_by(session, &login.username, "a remembered login's session must belong to the login's user")?;
    if owner.login != Some(login.serial) || login.session != Some(session.digest) {
        return Err(StoreError::new(
            StoreErrorKind::Backend,
            "a remembered login and its session must name each other",
        ));
    }
    Ok(owner)
}

/// `session`'s owner when it is `username`, else a backend error saying
/// `what` was refused.
fn owned_by<'a>(
    session: &'a SessionRecord,
    username: &Username,
    what: &'static str,
) -> Result<&'a SessionUser, StoreError> {
    match &session.user {
        Some(owner) if owner.username == *username => Ok(owner),
        _ => Err(StoreError::new(StoreErrorKind::Backend, what)),
    }
}

/// The result of [`Store::rotate_login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Rotated {
    /// This call rotated the token, bound the new session and deleted every
    /// other session of the login.
    Rotated,
    /// The login exists but its token is no longer `expected`: someone else
    /// rotated first. Nothing was written.
    NotCurrent,
    /// No such login. Nothing was written.
    NotFound,
    /// A session with the new session's digest exists. Nothing was written.
    SessionExists,
}

/// An optimistic cookie login, applied by [`Store::rotate_current`]: the
/// rotation of a login whose current token is the one the cookie presented,
/// planned before the login is read, so that the common case (the presented
/// token is current) is one round trip.
///
/// The engine plans it ([`protocol::current_rotation`](crate::protocol::current_rotation))
/// with every value a rotation needs but one it cannot know without the
/// login: the `authenticated_at` of the new session, which the store copies
/// from the login it rotates. The conditions under which the plan is the
/// rotation the engine would have planned after reading the login are
/// computed in core and only checked by the store ([`CurrentRotation::applies_to`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRotation {
    /// The rotation. `expected` is the presented token's digest (so is
    /// `previous.digest`); `expires_at` is `now + cookie max age`; the new
    /// session's `user.authenticated_at` is a placeholder the store replaces
    /// with the login's `authenticated_at`.
    pub rotation: Rotation,
    /// The request's time: the rotation applies only to a login that is live
    /// then (`now < login.expires_at`).
    pub now: OffsetDateTime,
    /// The rotation applies only to a login with `created_at >=
    /// created_since`: one whose lifetime cap does not bind, so that its new
    /// expiry `min(now + max age, created_at + lifetime)` is
    /// `rotation.expires_at`.
    pub created_since: OffsetDateTime,
}

impl CurrentRotation {
    /// Whether the rotation applies to `login`: it is the login named
    /// (username and serial), its current token digest is
    /// `rotation.expected`, it is live at `now` and created at or after
    /// `created_since`. A store checks exactly this, in the same atomic step
    /// as the write.
    pub fn applies_to(&self, login: &Login) -> bool {
        login.username == self.rotation.username
            && login.serial == self.rotation.serial
            && login.token == self.rotation.expected
            && login.is_live(self.now)
            && login.created_at >= self.created_since
    }

    /// The rotation as it applies to `login`: the new session carries the
    /// login's `authenticated_at`.
    pub fn for_login(&self, login: &Login) -> Rotation {
        self.with_authenticated_at(login.authenticated_at)
    }

    /// The rotation with the new session's `authenticated_at` set to `at`.
    pub fn with_authenticated_at(&self, at: OffsetDateTime) -> Rotation {
        let mut rotation = self.rotation.clone();
        if let Some(user) = rotation.session.user.as_mut() {
            user.authenticated_at = at;
        }
        rotation
    }
}

/// The result of [`Store::rotate_current`].
// Answered once per cookie login and matched at once: a box around the
// login would only add an allocation and an indirection to the contract.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum CurrentRotated {
    /// The rotation applied, as [`Rotated::Rotated`]; the new session
    /// carries `authenticated_at`, the login's.
    Rotated {
        /// The login's `authenticated_at`, now the new session's too.
        authenticated_at: OffsetDateTime,
    },
    /// The rotation does not apply ([`CurrentRotation::applies_to`] is
    /// false, or no such login): nothing was written. Carries the login as
    /// the store holds it (`None`: no such login), read in the same step or
    /// after it, for the engine to judge without another read.
    NotApplied(Option<Login>),
    /// The rotation applies but a session with the new session's digest
    /// exists: nothing was written.
    SessionExists,
}

/// The result of [`Store::create_remembered`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Remembered {
    /// The login and its session were created (the user's sessions capped
    /// as [`Store::create_session`] caps them).
    Created {
        /// The user's other logins (every one but the new), as the store
        /// held them when it created the login: `Some` when asked
        /// (`list_logins`). `None` when not asked, or when a store that
        /// reads them in a separate step (the default) could not: the login
        /// is made all the same, and the per-user login cap is enforced at
        /// the next registration.
        others: Option<Vec<Login>>,
    },
    /// A login with that `(username, serial)` exists. Nothing was written.
    LoginExists,
    /// A session with that `(owner, digest)` exists. Nothing was written.
    SessionExists,
}

/// What [`Store::delete_user`] or [`Store::delete_user_except`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Logins removed (the length of `serials`).
    pub logins: u64,
    /// Sessions removed.
    pub sessions: u64,
    /// The serials of the logins removed, in no particular order.
    pub serials: Vec<Serial>,
}

impl Deleted {
    /// What removing `serials` and `sessions` sessions came to.
    pub fn new(serials: Vec<Serial>, sessions: u64) -> Self {
        Self { logins: serials.len() as u64, sessions, serials }
    }
}

/// How many live sessions a store holds: what an operator's `sessions count`
/// shows. Not part of the [`Store`] trait (the engine never needs it); each
/// shipped store has an inherent `count_sessions(now)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionCount {
    /// Logged-in users' sessions.
    pub users: u64,
    /// Anonymous visitors' sessions.
    pub anonymous: u64,
}

/// An expired login that cleaning deleted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpiredLogin {
    /// Whose login it was.
    pub username: Username,
    /// Which login.
    pub serial: Serial,
}

/// What [`Store::delete_user_except`] keeps: this device's session and the
/// login that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// The session to keep (the user's own).
    pub session: SessionDigest,
    /// The login to keep: the one that opened `session` (`session.user.login`),
    /// or `None` when it came from none. The engine never passes another.
    pub login: Option<Serial>,
}

/// A password confirmation, applied by [`Store::confirm_password`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// Whose session.
    pub username: Username,
    /// Which session: its method becomes
    /// [`Password`](crate::AuthMethod::Password) and its `authenticated_at`
    /// becomes `at`.
    pub session: SessionDigest,
    /// The session's own login (`session.user.login`), whose
    /// `authenticated_at` becomes `at` too. The engine never passes another.
    pub login: Option<Serial>,
    /// When the password was checked.
    pub at: OffsetDateTime,
}

/// Storage for logins and sessions.
///
/// See the [module docs](self) for the rules every implementation follows.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a login; never overwrites one with the same `(username, serial)`.
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError>;

    /// Reads a login.
    async fn get_login(&self, username: &Username, serial: &Serial) -> Result<Option<Login>, StoreError>;

    /// The compare-and-swap rotation, in one atomic step: the new token, the
    /// new session created and bound, and every other session of the login
    /// (its bound one and every one with `session.user.login ==
    /// Some(serial)`) deleted.
    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError>;

    /// The optimistic cookie login: [`Store::rotate_login`] of
    /// `attempt.rotation`, in one atomic step, if and only if
    /// [`CurrentRotation::applies_to`] holds for the login as stored, the new
    /// session taking the login's `authenticated_at`
    /// ([`CurrentRotation::for_login`]). Otherwise it writes nothing and
    /// answers the login as stored ([`CurrentRotated::NotApplied`]), and the
    /// engine judges it as it would a [`Store::get_login`] (grace, theft,
    /// expiry, heal, a lifetime cap that binds), then calls
    /// [`Store::rotate_login`] if a rotation is still due.
    ///
    /// Of any number of concurrent calls (or [`Store::rotate_login`]s)
    /// expecting the same digest, exactly one rotates. A store that can do
    /// this in one round trip (one statement, one script) makes a cookie
    /// login one round trip. The default does what the engine did before:
    /// [`Store::get_login`], then [`Store::rotate_login`] when the rotation
    /// applies (re-reading the login if that lost a race): correct on any
    /// store, in two round trips.
    async fn rotate_current(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        rotate_current_in_steps(self, attempt).await
    }

    /// A password login with "remember me": creates `login` and its
    /// `session` (the session `login.session` names, opened by it:
    /// `session.user.login == Some(login.serial)`) together, in one atomic
    /// step, capping the user's sessions at `max_sessions` as
    /// [`Store::create_session`] does. Either both are created or, when the
    /// serial ([`Remembered::LoginExists`]) or the session's digest
    /// ([`Remembered::SessionExists`]) is taken, neither: nothing is written.
    /// With `list_logins`, it also answers the user's other logins as the
    /// same step saw them, so that the engine decides what the per-user
    /// login cap ends (ending it with [`Store::delete_login`]) without
    /// another read.
    ///
    /// A store that can do this in one round trip (one statement, one
    /// script) makes a password login with "remember me" one round trip
    /// under the cap, two when the new login puts the user over it. The
    /// default does what the engine did before, in two or three round trips
    /// correct on any store: [`Store::create_login`] (of the login not yet
    /// bound to its session), [`Store::create_grace_session`] (which creates
    /// the session and binds the login to it in one step; the login exists
    /// alone for that long, and is deleted again when that fails), then
    /// [`Store::list_logins`] when asked. Before 0.2 the engine called
    /// [`Store::create_session`] there, whose undo of a login already bound
    /// to a taken digest deleted the session holding it.
    async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        create_remembered_in_steps(self, login, session, max_sessions, list_logins).await
    }

    /// All of a user's logins, in no particular order.
    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError>;

    /// Deletes a login, the session it is bound to (`login.session`) and every
    /// session opened by it (`session.user.login == Some(serial)`), the latter even
    /// when the login itself is already gone. Answers whether the login
    /// existed.
    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError>;

    /// Deletes every login and every session of a user, atomically, and
    /// answers what it deleted (the serials included). Anonymous sessions are
    /// untouched.
    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError>;

    /// Deletes every login and session of a user except `keep.session` and
    /// `keep.login`, atomically ("log out the other devices"): a session of
    /// the kept login other than `keep.session` is deleted too. Answers what
    /// it deleted.
    async fn delete_user_except(&self, username: &Username, keep: &Keep) -> Result<Deleted, StoreError>;

    /// Marks a user's session as freshly authenticated by password
    /// ([`Confirmation`]): the session's method and `authenticated_at`, and
    /// its login's `authenticated_at`, in one atomic step. Answers `false`,
    /// writing nothing, when that user has no such session.
    async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError>;

    /// Deletes the logins with `expires_at <= now`, with the sessions they
    /// opened (as [`Store::delete_login`] does), and answers which logins it
    /// deleted. A session kept alive by steady use never outlives the login
    /// that opened it.
    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<Vec<ExpiredLogin>, StoreError>;

    /// Creates a session, anonymous or a user's; never overwrites one with the
    /// same key. For a user's session, in the same atomic step, deletes the
    /// user's sessions with the earliest `expires_at` beyond `max_sessions`
    /// (the new one included in the count, never deleted; `None`: no limit).
    /// A refused create deletes nothing. An anonymous session ignores
    /// `max_sessions`.
    async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError>;

    /// Creates the session a grace request opens when the winning rotation's
    /// session is gone, and binds it to the login it names
    /// (`session.user.login`: the login's `session` becomes its digest), only
    /// if that login still exists, in one atomic step: a revocation racing it
    /// either ends the session with its login or finds it never created.
    /// Nothing else of the login changes. Never overwrites a session with the
    /// same key ([`GraceInserted::AlreadyExists`], writing nothing). A session
    /// that names no login answers [`GraceInserted::LoginGone`]. Caps the
    /// user's sessions at `max_sessions` as [`Store::create_session`] does.
    async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError>;

    /// Reads a session: `owner` is its user's name, or `None` for an
    /// anonymous session.
    async fn get_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Replaces the data and `expires_at` of an existing session (found by its
    /// owner and digest). Answers `false`, writing nothing, when the session
    /// does not exist.
    async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError>;

    /// Pushes out the `expires_at` of an existing session, leaving its data
    /// alone (a concurrent save must not be undone by a touch). Answers
    /// `false`, writing nothing, when the session does not exist.
    async fn touch_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Deletes a session. Answers whether it existed.
    async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError>;

    /// Deletes the sessions with `expires_at <= now` and answers how many.
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

#[async_trait]
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError> {
        (**self).create_login(login).await
    }
    async fn get_login(&self, username: &Username, serial: &Serial) -> Result<Option<Login>, StoreError> {
        (**self).get_login(username, serial).await
    }
    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        (**self).rotate_login(rotation).await
    }
    async fn rotate_current(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        (**self).rotate_current(attempt).await
    }
    async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        (**self).create_remembered(login, session, max_sessions, list_logins).await
    }
    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        (**self).list_logins(username).await
    }
    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        (**self).delete_login(username, serial).await
    }
    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        (**self).delete_user(username).await
    }
    async fn delete_user_except(&self, username: &Username, keep: &Keep) -> Result<Deleted, StoreError> {
        (**self).delete_user_except(username, keep).await
    }
    async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        (**self).confirm_password(confirmation).await
    }
    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<Vec<ExpiredLogin>, StoreError> {
        (**self).delete_expired_logins(now).await
    }
    async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError> {
        (**self).create_session(session, max_sessions).await
    }
    async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        (**self).create_grace_session(session, max_sessions).await
    }
    async fn get_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        (**self).get_session(owner, digest).await
    }
    async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError> {
        (**self).save_session(session).await
    }
    async fn touch_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        (**self).touch_session(owner, digest, expires_at).await
    }
    async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        (**self).delete_session(owner, digest).await
    }
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        (**self).delete_expired_sessions(now).await
    }
}
