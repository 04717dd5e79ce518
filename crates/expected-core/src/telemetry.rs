//! What the engine tells the outside: `tracing` spans always, and counters
//! and a latency histogram on the [`metrics`](https://docs.rs/metrics) facade
//! with the feature `metrics`.
//!
//! # Traces
//!
//! Two spans, whatever the features, at DEBUG: a subscriber at INFO (the
//! usual production level) skips them for the cost of a cached check; turn
//! them on with a filter such as `expected_core=debug` (what that costs is
//! in `docs/metrics.md`).
//!
//! | span | level | target | fields |
//! |---|---|---|---|
//! | `authenticate` | DEBUG | `expected_core::engine` | `outcome` ([`Outcome::as_str`]), `user` |
//! | `store` | DEBUG | `expected_core::telemetry` | `op` ([`STORE_OPERATIONS`]), `user`, `outcome` (`ok`, or [`StoreErrorKind::as_str`](crate::StoreErrorKind::as_str)) |
//!
//! `user` is the user's [`UserTag`](crate::UserTag): 8 hex digits of a
//! digest of the username, never the name. It is set on `authenticate` when
//! the outcome is about a user (the authenticated one, the victim of a
//! theft, whose grace was refused or who was rejected), and on `store` for
//! the operations that name one. The engine's own events (a theft, a refused
//! grace, a rejected user) name the user by tag too, and the login by its
//! serial (the devices list shows it: not a secret). **No span or event
//! records a token, a session id, a digest of either, or a cookie value**;
//! `tests/traces.rs` captures every line at TRACE level through the whole
//! protocol and looks for them.
//!
//! # Metrics (feature `metrics`)
//!
//! Recorded through whatever recorder the application installed (the
//! `metrics` facade: Prometheus, StatsD, OpenTelemetry, …); none installed,
//! each costs a check. Call `describe` once after installing it for the
//! help texts and units. Every label takes one of a fixed set of values,
//! listed here: no username, serial or address ever becomes a label.
//!
//! | metric | kind | labels | what it counts |
//! |---|---|---|---|
//! | `expected_authentications_total` | counter | `outcome`: `session`, `cookie_login`, `grace`, `anonymous_session`, `anonymous`, `malformed`, `unknown_login`, `expired_login`, `theft`, `grace_refused`, `user_rejected`, `unavailable` | [`Expected::authenticate`](crate::Expected::authenticate) calls, by [`Outcome`] |
//! | `expected_thefts_total` | counter | `cause`: `stale_token`, `foreign_client` | replayed cookies detected, by [`TheftCause`](crate::TheftCause) |
//! | `expected_registrations_total` | counter | `remember`: `true`, `false` | password logins ([`Expected::register`](crate::Expected::register)) |
//! | `expected_logins_ended_total` | counter | `cause`: `logout`, `revoked`, `logout_everywhere`, `logout_others`, `theft`, `evicted`, `user_rejected`, `expired`, `replaced` | logins (devices) ended, by [`EndCause`] |
//! | `expected_cleaned_total` | counter | `record`: `login`, `session` | expired records a cleaning pass deleted |
//! | `expected_cleaning_passes_total` | counter | `result`: `ok`, `error` | [`Expected::clean`](crate::Expected::clean) calls |
//! | `expected_store_call_duration_seconds` | histogram, seconds | `operation`: [`STORE_OPERATIONS`] | each store call the engine makes, failed ones included |
//! | `expected_store_errors_total` | counter | `operation`, `kind`: `unavailable`, `corrupt`, `backend` | store calls that failed |
//!
//! The names are also the constants of this module ([`AUTHENTICATIONS`], …).
//! `docs/metrics.md` has alert examples and the measured cost.

use std::future::Future;
use std::num::NonZeroUsize;

use tracing::Instrument as _;
use tracing::field::{Empty, display};

use crate::engine::{EndCause, Outcome};
use crate::record::{Login, SessionRecord};
use crate::secret::{Serial, SessionDigest, Username};
use crate::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation, Store, StoreError,
};

/// `expected_authentications_total{outcome}`: authentications by outcome.
pub const AUTHENTICATIONS: &str = "expected_authentications_total";
/// `expected_thefts_total{cause}`: replayed cookies detected, by cause.
pub const THEFTS: &str = "expected_thefts_total";
/// `expected_registrations_total{remember}`: password logins.
pub const REGISTRATIONS: &str = "expected_registrations_total";
/// `expected_logins_ended_total{cause}`: logins ended, by cause.
pub const LOGINS_ENDED: &str = "expected_logins_ended_total";
/// `expected_cleaned_total{record}`: expired records cleaned.
pub const CLEANED: &str = "expected_cleaned_total";
/// `expected_cleaning_passes_total{result}`: cleaning passes.
pub const CLEANING_PASSES: &str = "expected_cleaning_passes_total";
/// `expected_store_call_duration_seconds{operation}`: store call latency.
pub const STORE_CALL_DURATION: &str = "expected_store_call_duration_seconds";
/// `expected_store_errors_total{operation,kind}`: failed store calls.
pub const STORE_ERRORS: &str = "expected_store_errors_total";

/// Metric keys made of literals only are static (no allocation, no label
/// vector) in the `metrics` macros: every label value below is spelled out
/// as a literal in a `match`, not passed as a string. The metric names are
/// spelled out the same way, equal to the constants above (the tests read
/// the metrics back by the constants).
macro_rules! operations {
    ($($variant:ident => $name:literal,)*) => {
        /// The `operation` label values (and the `op` field of the `store`
        /// span): the [`Store`] methods, in the trait's order.
        pub const STORE_OPERATIONS: [&str; 18] = [$($name),*];

        /// A [`Store`] method.
        // Every method has its label, so that the list stays the trait's;
        // the engine no longer calls `create_login` (a registration is one
        // `create_remembered`, whose default calls the inner store).
        #[allow(dead_code)]
        #[derive(Debug, Clone, Copy)]
        enum Op {
            $($variant,)*
        }

        impl Op {
            fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            #[cfg(feature = "metrics")]
            fn record(self, elapsed: std::time::Duration) {
                match self {
                    $(Self::$variant => {
                        metrics::histogram!("expected_store_call_duration_seconds", "operation" => $name)
                            .record(elapsed);
                    })*
                }
            }
        }
    };
}

operations! {
    CreateLogin => "create_login",
    GetLogin => "get_login",
    RotateLogin => "rotate_login",
    RotateCurrent => "rotate_current",
    CreateRemembered => "create_remembered",
    ListLogins => "list_logins",
    DeleteLogin => "delete_login",
    DeleteUser => "delete_user",
    DeleteUserExcept => "delete_user_except",
    ConfirmPassword => "confirm_password",
    DeleteExpiredLogins => "delete_expired_logins",
    CreateSession => "create_session",
    CreateGraceSession => "create_grace_session",
    GetSession => "get_session",
    SaveSession => "save_session",
    TouchSession => "touch_session",
    DeleteSession => "delete_session",
    DeleteExpiredSessions => "delete_expired_sessions",
}

/// Registers the help text and unit of every metric above with the
/// installed recorder. Call it once, after installing one; recording works
/// without it.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    // Counters without a unit: their names end in `_total` already, and an
    // exporter's naming rules would add `_count` to a count.
    describe_counter!(AUTHENTICATIONS, "Authentications of a request, by outcome.");
    describe_counter!(THEFTS, "Replayed remember-me cookies detected, by cause.");
    describe_counter!(REGISTRATIONS, "Password logins, by whether remember me was chosen.");
    describe_counter!(LOGINS_ENDED, "Remember-me logins (devices) ended, by cause.");
    describe_counter!(CLEANED, "Expired logins and sessions deleted by cleaning.");
    describe_counter!(CLEANING_PASSES, "Cleaning passes, by result.");
    describe_histogram!(STORE_CALL_DURATION, Unit::Seconds, "Latency of the engine's store calls.");
    describe_counter!(STORE_ERRORS, "Store calls that failed, by operation and kind.");
}

/// Records what authenticating a request came to: on its span, and in the
/// metrics.
pub(crate) fn authenticated(outcome: &Outcome, span: &tracing::Span) {
    if !span.is_disabled() {
        span.record("outcome", outcome.as_str());
        if let Some(user) = outcome.subject() {
            span.record("user", display(user.tag()));
        }
    }
    #[cfg(feature = "metrics")]
    {
        use crate::protocol::TheftCause;
        macro_rules! outcome {
            ($value:literal) => {
                metrics::counter!("expected_authentications_total", "outcome" => $value)
            };
        }
        let counter = match outcome {
            Outcome::Session(_) => outcome!("session"),
            Outcome::CookieLogin(_) => outcome!("cookie_login"),
            Outcome::Grace(_) => outcome!("grace"),
            Outcome::AnonymousSession(_) => outcome!("anonymous_session"),
            Outcome::Anonymous => outcome!("anonymous"),
            Outcome::Malformed(..) => outcome!("malformed"),
            Outcome::UnknownLogin => outcome!("unknown_login"),
            Outcome::ExpiredLogin => outcome!("expired_login"),
            Outcome::Theft(_) => outcome!("theft"),
            Outcome::GraceRefused(_) => outcome!("grace_refused"),
            Outcome::UserRejected(_) => outcome!("user_rejected"),
            Outcome::Unavailable(_) => outcome!("unavailable"),
        };
        counter.increment(1);
        if let Outcome::Theft(report) = outcome {
            let counter = match report.cause {
                TheftCause::StaleToken => {
                    metrics::counter!("expected_thefts_total", "cause" => "stale_token")
                }
                TheftCause::ForeignClient => {
                    metrics::counter!("expected_thefts_total", "cause" => "foreign_client")
                }
            };
            counter.increment(1);
        }
    }
}

/// A password login happened.
pub(crate) fn registered(remember: bool) {
    #[cfg(feature = "metrics")]
    {
        let counter = if remember {
            metrics::counter!("expected_registrations_total", "remember" => "true")
        } else {
            metrics::counter!("expected_registrations_total", "remember" => "false")
        };
        counter.increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = remember;
}

/// `count` logins ended for `cause`.
pub(crate) fn logins_ended(cause: EndCause, count: usize) {
    #[cfg(feature = "metrics")]
    {
        macro_rules! cause {
            ($value:literal) => {
                metrics::counter!("expected_logins_ended_total", "cause" => $value)
            };
        }
        let counter = match cause {
            EndCause::Logout => cause!("logout"),
            EndCause::Revoked => cause!("revoked"),
            EndCause::LogoutEverywhere => cause!("logout_everywhere"),
            EndCause::LogoutOthers => cause!("logout_others"),
            EndCause::Theft => cause!("theft"),
            EndCause::Evicted => cause!("evicted"),
            EndCause::UserRejected => cause!("user_rejected"),
            EndCause::Expired => cause!("expired"),
            EndCause::Replaced => cause!("replaced"),
        };
        counter.increment(count as u64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (cause, count);
}

/// A cleaning pass ended: what it deleted, or that it failed (after deleting
/// `logins`, when the sessions failed).
pub(crate) fn cleaned(logins: u64, sessions: u64, ok: bool) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("expected_cleaned_total", "record" => "login").increment(logins);
        metrics::counter!("expected_cleaned_total", "record" => "session").increment(sessions);
        let passes = if ok {
            metrics::counter!("expected_cleaning_passes_total", "result" => "ok")
        } else {
            metrics::counter!("expected_cleaning_passes_total", "result" => "error")
        };
        passes.increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (logins, sessions, ok);
}

/// One store call: in a `store` span, timed into the latency histogram.
async fn call<T>(
    op: Op,
    user: Option<&Username>,
    future: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let span = tracing::debug_span!("store", op = op.name(), user = Empty, outcome = Empty);
    if let Some(user) = user.filter(|_| !span.is_disabled()) {
        span.record("user", display(user.tag()));
    }
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    let result = future.instrument(span.clone()).await;
    #[cfg(feature = "metrics")]
    {
        op.record(started.elapsed());
        if let Err(error) = &result {
            // Rare: the labels may be built at run time.
            metrics::counter!(STORE_ERRORS, "operation" => op.name(), "kind" => error.kind().as_str())
                .increment(1);
        }
    }
    if !span.is_disabled() {
        span.record("outcome", result.as_ref().map_or_else(|error| error.kind().as_str(), |_| "ok"));
    }
    result
}

/// The engine's store, each call traced (and timed, with `metrics`). Not a
/// [`Store`] itself: inherent methods of the same names, so that the engine
/// reads as if it called the store, without boxing each call once more.
pub(crate) struct Instrumented<S>(S);

impl<S> Instrumented<S> {
    pub(crate) fn new(store: S) -> Self {
        Self(store)
    }

    pub(crate) fn inner(&self) -> &S {
        &self.0
    }

    pub(crate) fn into_inner(self) -> S {
        self.0
    }
}

impl<S: Store> Instrumented<S> {
    pub(crate) async fn get_login(
        &self,
        username: &Username,
        serial: &Serial,
    ) -> Result<Option<Login>, StoreError> {
        call(Op::GetLogin, Some(username), self.0.get_login(username, serial)).await
    }

    pub(crate) async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        call(Op::RotateLogin, Some(&rotation.username), self.0.rotate_login(rotation)).await
    }

    pub(crate) async fn rotate_current(
        &self,
        attempt: &CurrentRotation,
    ) -> Result<CurrentRotated, StoreError> {
        call(Op::RotateCurrent, Some(&attempt.rotation.username), self.0.rotate_current(attempt)).await
    }

    pub(crate) async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        let future = self.0.create_remembered(login, session, max_sessions, list_logins);
        call(Op::CreateRemembered, Some(&login.username), future).await
    }

    pub(crate) async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        call(Op::ListLogins, Some(username), self.0.list_logins(username)).await
    }

    pub(crate) async fn delete_login(
        &self,
        username: &Username,
        serial: &Serial,
    ) -> Result<bool, StoreError> {
        call(Op::DeleteLogin, Some(username), self.0.delete_login(username, serial)).await
    }

    pub(crate) async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        call(Op::DeleteUser, Some(username), self.0.delete_user(username)).await
    }

    pub(crate) async fn delete_user_except(
        &self,
        username: &Username,
        keep: &Keep,
    ) -> Result<Deleted, StoreError> {
        call(Op::DeleteUserExcept, Some(username), self.0.delete_user_except(username, keep)).await
    }

    pub(crate) async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        call(Op::ConfirmPassword, Some(&confirmation.username), self.0.confirm_password(confirmation)).await
    }

    pub(crate) async fn delete_expired_logins(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<Vec<ExpiredLogin>, StoreError> {
        call(Op::DeleteExpiredLogins, None, self.0.delete_expired_logins(now)).await
    }

    pub(crate) async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError> {
        call(Op::CreateSession, session.username(), self.0.create_session(session, max_sessions)).await
    }

    pub(crate) async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        call(Op::CreateGraceSession, session.username(), self.0.create_grace_session(session, max_sessions))
            .await
    }

    pub(crate) async fn get_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        call(Op::GetSession, owner, self.0.get_session(owner, digest)).await
    }

    pub(crate) async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError> {
        call(Op::SaveSession, session.username(), self.0.save_session(session)).await
    }

    pub(crate) async fn touch_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        call(Op::TouchSession, owner, self.0.touch_session(owner, digest, expires_at)).await
    }

    pub(crate) async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        call(Op::DeleteSession, owner, self.0.delete_session(owner, digest)).await
    }

    pub(crate) async fn delete_expired_sessions(&self, now: time::OffsetDateTime) -> Result<u64, StoreError> {
        call(Op::DeleteExpiredSessions, None, self.0.delete_expired_sessions(now)).await
    }
}
