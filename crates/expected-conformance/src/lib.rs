//! The conformance suite every `expected` store runs: ours (memory, SQL,
//! Redis) and yours.
//!
//! Implement [`Harness`] to hand out fresh stores, then call [`tests!`] once
//! in an integration test file. It expands to one `#[test]` per case, so a
//! failure names the property that broke:
//!
//! ```no_run
//! // tests/conformance.rs of a store crate
//! use expected_conformance::{Harness, Unreachable};
//! # use expected_store_memory::MemoryStore;
//!
//! #[derive(Default)]
//! struct MyHarness;
//!
//! #[async_trait::async_trait]
//! impl Harness for MyHarness {
//!     type Store = MemoryStore;
//!     async fn store(&self) -> Result<MemoryStore, Unreachable> {
//!         Ok(MemoryStore::new())
//!     }
//! }
//!
//! expected_conformance::tests!(MyHarness);
//! ```
//!
//! Each case gets its own store from [`Harness::store`]: stores for a
//! database should create a schema or key prefix per call and drop it in
//! [`Harness::cleanup`]. Cases run on a multi-threaded tokio runtime so the
//! concurrency cases really race.
//!
//! # What it checks
//!
//! [`cases`] holds one function per property, each in [`CASES`]; every
//! assertion names the rule it checks, so a failure reads as the broken rule.
//!
//! - **Logins**: exact round trips (previous token, IPv6 client, non-ASCII
//!   user agent, `authenticated_at` to the microsecond), no overwrite, keys
//!   `(username, serial)` (unknown and foreign users, unicode and dotted
//!   usernames, many logins per user), the rotation's compare-and-swap (stale
//!   token, unknown login, occupied session digest) storing its new session
//!   exactly as given, ending every other session of the login and never
//!   changing the login's `authenticated_at`, grace sessions created and
//!   bound only while their login exists, deletion ending every session the
//!   login opened, `delete_user` and `delete_expired_logins` reporting
//!   exactly the serials and keys they deleted, cleaning exactly at the
//!   cutoff.
//! - **The session cap** (`max_sessions`): every operation that creates a
//!   user's session (`create_session`, `rotate_login`, `create_grace_session`)
//!   leaves that user with at most the cap, deleting the sessions that expire
//!   first, never the new one, never one too many (a rotation counts after
//!   ending the login's own), nothing when refused, and never another user's
//!   or an anonymous session.
//! - **Sessions**, a user's and an anonymous visitor's (`user: None`): exact
//!   round trips (nested data, method and `authenticated_at` to the
//!   microsecond), keys `(owner, digest)` never mixing users' and anonymous
//!   sessions in either direction (the same digest included), save, touch and
//!   delete, no resurrection, cleaning exactly at the cutoff with exact counts
//!   across users and anonymous sessions, and no user operation ever touching
//!   an anonymous session.
//! - **Confirming the password** (`confirm_password`): the session becomes
//!   `Password` and it and its login get the new `authenticated_at`, nothing
//!   else changes; `false` for an unknown, foreign or anonymous session.
//! - **Logging out the other devices** (`delete_user_except`): exactly the
//!   kept session and login stay (the kept login's other sessions go), exact
//!   counts and serials, with or without a kept login.
//! - **Concurrency**: 50 racing rotations of one login with exactly one
//!   winner, racing deletes and creates, revocations racing rotations and
//!   grace sessions, and `delete_user_except` racing rotations of another
//!   device: no session of a revoked login survives.
//! - **Engine flows** run over the store (`engine_*`): register and session
//!   hits, cookie login (a `Remembered` session carrying the login's
//!   `authenticated_at`, made `Password` by `confirm_password`), grace (bound
//!   to the rotating client: a polling thief with both cookies caught at the
//!   victim's next cookie login, the same browser on another network refused
//!   without revoking, a fallback session ended by the next rotation), theft
//!   wiping every login and session of that user and of no other, logout
//!   (ending the session's data), remote logout, logout everywhere, logout of
//!   the other devices, the login cap, the session cap (least recently used
//!   first; cycling at the cap keeps the user logged in), anonymous visitors (their data carried
//!   into a password login under a new id; anonymous-form cookies never
//!   authenticating a user's session), session cycling, the absolute session
//!   timeout and the login lifetime, cleaning, and failing closed on an outage
//!   ([`Flaky`]).
//!
//! - **Rollback** (opt-in, [`rollback_tests!`]): a store that implements
//!   [`RollbackHarness`] (snapshot and restore) is rolled back under the
//!   engine with token keys: every lost rotation within the bound heals,
//!   concurrent requests heal once, cookies from before the snapshot or from
//!   the lost window once healed are theft, tokens stepped ahead without the
//!   key are theft, and so are more lost rotations than the bound.
//!
//! # Stability promise
//!
//! Within a minor version (0.x.y → 0.x.z) cases are only added when they check
//! a rule already written in the `Store` docs; a store that passed keeps
//! passing unless it broke such a rule. Case names never change within a minor
//! version. A change to the contract itself comes with a minor version bump and
//! a changelog entry naming the affected cases.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[macro_use]
mod support;
pub mod admin;
pub mod cases;
pub mod cost;
mod flaky;
pub mod rollback;

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
pub use flaky::{Flaky, Operation};
pub use rollback::RollbackHarness;

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;

/// A backend that could not be reached: the case is skipped loudly, or fails
/// when the `CI` environment variable is set.
#[derive(Debug, Clone)]
pub struct Unreachable(pub String);

impl<E: std::fmt::Display> From<E> for Unreachable {
    fn from(error: E) -> Self {
        Self(error.to_string())
    }
}

/// Hands out fresh stores to the cases.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The store under test.
    type Store: expected_core::Store;

    /// A fresh, empty store sharing no data with any other call (cleaning
    /// cases count exactly what they delete).
    async fn store(&self) -> Result<Self::Store, Unreachable>;

    /// Called after every case, even a failed one: drop the schema, delete
    /// the keys.
    async fn cleanup(&self, store: &Self::Store) {
        let _ = store;
    }
}

/// Whether the `CI` environment variable asks for unreachable backends to
/// fail rather than skip.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "0" && value != "false")
}

/// Runs one case against a fresh store of `harness`, then cleans up. Used by
/// [`tests!`]; call it directly to run a case by hand.
///
/// # Panics
///
/// When the case fails, or when the backend is unreachable and [`ci`] is set.
pub fn run<H, F, Fut>(harness: H, name: &str, case: F)
where
    H: Harness,
    F: FnOnce(Arc<H::Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("cannot start a tokio runtime: {error}"));
    runtime.block_on(async move {
        let store = match harness.store().await {
            Ok(store) => Arc::new(store),
            Err(Unreachable(why)) => {
                if ci() {
                    panic!("{name}: backend unreachable and CI is set, so this is a failure: {why}");
                }
                // Straight to the process's stderr, past the test harness's
                // capture: a skip must be seen.
                let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED {name}: backend unreachable: {why}\n");
                return;
            }
        };
        let outcome = tokio::spawn(case(store.clone())).await;
        harness.cleanup(&store).await;
        if let Err(error) = outcome {
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("{name}: case did not finish: {error}"),
            }
        }
    });
}

/// Expands to one `#[test]` per conformance case, each calling [`run`] with a
/// fresh `$harness` (an expression evaluated once per test).
#[macro_export]
macro_rules! tests {
    ($harness:expr) => {
        $crate::__cases! { @list tests $harness }
    };
}

/// The one list of cases, and what is made of it: the tests and [`CASES`].
#[doc(hidden)]
#[macro_export]
macro_rules! __cases {
    (@list $mode:ident $($args:tt)*) => {
        $crate::__cases! { @ $mode [$($args)*]
            login_round_trips_exactly,
            create_login_never_overwrites,
            get_login_needs_owner_and_serial,
            tricky_usernames_stay_apart,
            many_logins_per_user,
            rotate_swaps_token_and_binds_session,
            rotate_refuses_stale_token,
            rotate_unknown_login,
            rotate_refuses_existing_session,
            rotate_refuses_a_session_of_another_user,
            rotate_current_rotates_a_current_token,
            rotate_current_takes_nanosecond_times,
            rotate_current_leaves_what_does_not_apply,
            rotate_current_refuses_existing_session,
            concurrent_current_rotations_have_one_winner,
            create_remembered_creates_login_and_session,
            create_remembered_refuses_taken_serial_or_session,
            create_remembered_refuses_a_session_it_does_not_open,
            create_remembered_caps_sessions_per_user,
            delete_login_ends_its_sessions,
            delete_login_ends_sessions_of_a_gone_login,
            delete_login_unknown,
            delete_user_removes_only_that_user,
            expired_logins_cleaned_at_cutoff,
            expired_logins_take_their_sessions,
            session_round_trips_with_data,
            create_session_never_overwrites,
            get_session_needs_owner,
            save_session_updates_data_and_expiry,
            touch_session_changes_only_expiry,
            save_session_never_resurrects,
            delete_session_removes_one,
            expired_sessions_cleaned_at_cutoff,
            concurrent_rotations_have_one_winner,
            concurrent_deletes_have_one_winner,
            concurrent_creates_have_one_winner,
            concurrent_revocation_and_rotation_leave_nothing,
            rotate_ends_every_session_of_the_login,
            grace_session_needs_its_login,
            concurrent_revocation_and_grace_session_leave_nothing,
            create_session_caps_sessions_per_user,
            rotate_caps_sessions_per_user,
            grace_session_caps_sessions_per_user,
            anonymous_session_round_trips,
            anonymous_and_user_sessions_never_mix,
            anonymous_session_save_touch_delete,
            anonymous_sessions_cleaned_at_cutoff,
            user_operations_never_touch_anonymous_sessions,
            session_user_round_trips_at_microseconds,
            login_authenticated_at_survives_rotations,
            rotation_stores_session_exactly,
            confirm_password_updates_session_and_login_only,
            confirm_password_refuses_unknown_foreign_or_anonymous,
            delete_user_except_keeps_exactly_that_session_and_login,
            delete_user_except_keeps_a_session_without_login,
            concurrent_logout_others_and_rotation_leave_no_other_device,
            expired_logins_report_exactly_their_keys,
            engine_register_and_session_hit,
            engine_cookie_login_rotates_and_cycles_session,
            engine_grace_converges_on_successor,
            engine_concurrent_cookie_logins_converge,
            engine_theft_revokes_that_user_only,
            engine_theft_after_grace_window,
            engine_polling_thief_is_caught_at_the_next_rotation,
            engine_grace_from_another_network_is_refused_without_revoking,
            engine_grace_fallback_session_ends_at_the_next_rotation,
            engine_foreign_username_never_authenticates,
            engine_expired_login_is_deleted,
            engine_logout_ends_this_device_only,
            engine_remote_logout_ends_session_at_once,
            engine_logout_everywhere,
            engine_login_cap_evicts_least_recently_used,
            engine_session_cap_evicts_least_recently_used,
            engine_cleaning_removes_only_expired,
            engine_store_outage_fails_closed,
            engine_register_carries_anonymous_data,
            engine_logout_ends_session_data,
            engine_cookie_login_is_remembered_until_password_confirmed,
            engine_absolute_timeout_ends_active_session,
            engine_login_lifetime_ends_a_login_used_daily,
            engine_logout_others_keeps_this_device,
            engine_anonymous_cookie_never_authenticates_user_session,
            engine_cycle_session_keeps_owner_data_and_creation,
        }
    };
    (@tests [$harness:expr] $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::run($harness, stringify!($case), $crate::cases::$case);
            }
        )*
    };
    (@names [] $($case:ident),* $(,)?) => {
        &[$(stringify!($case)),*]
    };
}

/// The names of every case, in order.
pub const CASES: &[&str] = __cases! { @list names };

/// This crate's README, compiled as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
