//! What ending logins costs a store when one user holds many sessions: the
//! measurement behind the bounded-work rule of the store contract and the
//! figures of `docs/benchmarks.md`.
//!
//! Not a case: it asserts only that each operation did what it answered.
//! Run it on a fresh store (it leaves nothing behind), on a machine as quiet
//! as you can get, and compare ratios rather than absolute figures.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use expected_core::{Serial, Store, TokenSource as _, Username};
use futures_util::stream::{self, StreamExt as _};

use crate::support::{fresh_login, insert_login, insert_session, now, plain_session, tokens, user};

/// How many revocations of a serial that does not exist one round times.
const MISSING_PER_ROUND: usize = 50;

/// How many sessions [`seed`] creates at once.
const SEEDING_CONCURRENCY: usize = 16;

/// How many of the user's sessions are opened by a login, each its bound
/// one: the logins revoked one by one.
const LOGINS: usize = 20;

/// The medians of one [`revoke_cost`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeCost {
    /// How many sessions the user held when each round started.
    pub sessions: usize,
    /// How long creating them took, per session (one `create_session` each,
    /// 16 at a time).
    pub create: Duration,
    /// `delete_login` of a serial the user does not have.
    pub missing_serial: Duration,
    /// `delete_login` of one of the user's logins (its one session with it).
    pub one_login: Duration,
    /// `delete_user` of the whole user.
    pub whole_user: Duration,
}

impl fmt::Display for RevokeCost {
    /// One Markdown table row: sessions, then the four medians in µs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
        write!(
            f,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            self.sessions,
            micros(self.create),
            micros(self.missing_serial),
            micros(self.one_login),
            micros(self.whole_user)
        )
    }
}

/// The header of [`RevokeCost`]'s table rows.
pub const HEADER: &str = "| sessions of the user | create_session (µs) | delete_login, missing serial (µs) | \
                          delete_login, one login (µs) | delete_user (µs) |\n|---:|---:|---:|---:|---:|";

/// Gives `name` `sessions` sessions without a cap: 20 (at most
/// `sessions`) logins each with its bound session, the rest opened by no
/// login (password logins without "remember me"), 16 at a time. Answers
/// the logins' serials and how long the creates took.
pub async fn seed<S: Store>(store: &S, name: &Username, sessions: usize) -> (Vec<Serial>, Duration) {
    let now = now();
    let logins = LOGINS.min(sessions);
    let mut serials = Vec::with_capacity(logins);
    let started = Instant::now();
    for _ in 0..logins {
        let fresh = fresh_login(name, now);
        insert_login(store, &fresh.login).await;
        insert_session(store, &fresh.session).await;
        serials.push(fresh.login.serial);
    }
    // Sixteen at a time: a SQL server commits each create on its own.
    stream::iter(logins..sessions)
        .for_each_concurrent(SEEDING_CONCURRENCY, |_| async {
            insert_session(store, &plain_session(name, now)).await;
        })
        .await;
    (serials, started.elapsed())
}

/// Measures, over `rounds` rounds each on a user freshly given `sessions`
/// sessions ([`seed`]) and then `settled` (a SQL database gathers its
/// planner's statistics and vacuums there, say): revoking a serial the user does not
/// have (50 times a round), revoking each of the user's 20 logins, then
/// deleting the user. Answers the medians.
///
/// # Panics
///
/// When the store fails or answers what it did not do.
pub async fn revoke_cost<S, F, Fut>(store: &S, sessions: usize, rounds: usize, settled: F) -> RevokeCost
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    // A user of its own per size, so that what one measurement left (dead
    // rows a database has not vacuumed yet) does not weigh on the next.
    let name = user(&format!("many-sessions-{sessions}"));
    let (mut create, mut missing, mut one, mut whole) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let (serials, took) = seed(store, &name, sessions).await;
        settled().await;
        create.push(took / u32::try_from(sessions.max(1)).unwrap_or(u32::MAX));
        for _ in 0..MISSING_PER_ROUND {
            let serial = tokens().serial();
            let started = Instant::now();
            let found = store.delete_login(&name, &serial).await.expect("delete_login");
            missing.push(started.elapsed());
            assert!(!found, "a serial the user does not have is not found");
        }
        // The last login stays for delete_user to count.
        for serial in &serials[..serials.len().saturating_sub(1)] {
            let started = Instant::now();
            let found = store.delete_login(&name, serial).await.expect("delete_login");
            one.push(started.elapsed());
            assert!(found, "the user's login is found");
        }
        let left = sessions - serials.len().saturating_sub(1);
        let started = Instant::now();
        let deleted = store.delete_user(&name).await.expect("delete_user");
        whole.push(started.elapsed());
        assert_eq!(deleted.sessions, left as u64, "delete_user deletes every session left");
    }
    RevokeCost {
        sessions,
        create: median(create),
        missing_serial: median(missing),
        one_login: median(one),
        whole_user: median(whole),
    }
}

/// The median of `samples` (zero for none).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
