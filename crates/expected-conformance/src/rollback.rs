//! Cases for a store that rolls back: a backup restored, or a failover to a
//! replica that missed the last writes.
//!
//! A store opts in by implementing [`RollbackHarness`] on its harness (take a
//! snapshot of everything a store holds, put it back later) and calling
//! [`rollback_tests!`](crate::rollback_tests) once. Every case runs the
//! engine with [token keys](expected_core::keys), lets devices rotate after
//! the snapshot, restores it and checks the promise of `docs/protocol.md`
//! §13: every rotation lost within the bound heals (no theft, every device
//! logs in), a cookie replayed from before the snapshot, or from the lost
//! window once healed, is still theft, a token stepped ahead without the
//! key is theft, and more lost rotations than the bound are theft too.
//!
//! A store that keeps its data in one place a test can copy (a schema, a key
//! prefix, a file) implements the harness in a few lines; the snapshot need
//! not be a real backup, only a faithful copy of the records.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use expected_core::keys::{KeyId, TokenKey, TokenKeys};
use expected_core::time::Duration;
use expected_core::{
    AuthCookie, Config, Expected, GraceRefusal, Hooks, Outcome, RollbackHealed, Store, TheftReport,
};

use crate::support::{Jar, clock, config_with, engine, outcome_of, register, user, visit};
use crate::{Harness, Unreachable};

/// A harness whose stores can be copied and put back.
#[async_trait]
pub trait RollbackHarness: Harness {
    /// What a snapshot holds.
    type Snapshot: Send + Sync + 'static;

    /// A copy of everything `store` holds now.
    async fn snapshot(&self, store: &Self::Store) -> Result<Self::Snapshot, Unreachable>;

    /// Puts `snapshot` back into `store`: every record written since is
    /// gone, every record deleted since is back, as after restoring a backup.
    async fn restore(&self, store: &Self::Store, snapshot: &Self::Snapshot) -> Result<(), Unreachable>;
}

/// Expands to one `#[test]` per rollback case, each calling [`run`] with a
/// fresh `$harness` (a [`RollbackHarness`]).
#[macro_export]
macro_rules! rollback_tests {
    ($harness:expr) => {
        $crate::__rollback_cases! { @list tests $harness }
    };
}

/// The one list of rollback cases.
#[doc(hidden)]
#[macro_export]
macro_rules! __rollback_cases {
    (@list $mode:ident $($args:tt)*) => {
        $crate::__rollback_cases! { @ $mode [$($args)*]
            rollback_heals_every_lost_rotation,
            rollback_replay_from_before_the_snapshot_is_theft,
            rollback_replay_from_the_lost_window_is_theft_once_healed,
            rollback_token_stepped_ahead_without_the_key_is_theft,
            rollback_concurrent_requests_heal_once,
            rollback_beyond_the_bound_is_theft,
            rollback_login_created_after_the_snapshot_is_unknown,
        }
    };
    (@tests [$harness:expr] $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::rollback::run($harness, stringify!($case), $crate::rollback::$case);
            }
        )*
    };
    (@names [] $($case:ident),* $(,)?) => {
        &[$(stringify!($case)),*]
    };
}

/// The names of every rollback case, in order.
pub const ROLLBACK_CASES: &[&str] = __rollback_cases! { @list names };

/// Runs one rollback case against a fresh store of `harness`, then cleans up.
///
/// # Panics
///
/// When the case fails, or when the backend is unreachable and [`ci`](crate::ci) is set.
pub fn run<H, F, Fut>(harness: H, name: &str, case: F)
where
    H: RollbackHarness,
    F: FnOnce(Arc<H>, Arc<H::Store>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let harness = Arc::new(harness);
    let shared = Arc::clone(&harness);
    crate::run(Shared(harness), name, move |store| case(shared, store));
}

/// A harness shared between [`crate::run`] and the case.
struct Shared<H>(Arc<H>);

#[async_trait]
impl<H: Harness> Harness for Shared<H> {
    type Store = H::Store;
    async fn store(&self) -> Result<H::Store, Unreachable> {
        self.0.store().await
    }
    async fn cleanup(&self, store: &H::Store) {
        self.0.cleanup(store).await;
    }
}

/// The keys every case derives with: `conformance` current.
pub fn test_keys() -> TokenKeys {
    let key = |id: &str, byte: u8| {
        let id = KeyId::new(id).unwrap_or_else(|error| panic!("key id: {error}"));
        TokenKey::new(id, &[byte; 32]).unwrap_or_else(|error| panic!("key: {error}"))
    };
    TokenKeys::new(key("conformance", 0x5a), Vec::new()).unwrap_or_else(|error| panic!("keys: {error}"))
}

fn keyed(steps: u16) -> Config {
    config_with(|builder| builder.token_keys(Some(test_keys())).rollback_steps(steps))
}

/// Hooks that record thefts and heals: what a rollback test counts. Every
/// other hook does nothing but a refused grace, which panics (no rollback
/// test expects one).
#[derive(Clone, Default)]
pub struct Heard(Arc<Mutex<(Vec<TheftReport>, Vec<RollbackHealed>)>>);

impl Heard {
    /// Every theft reported so far.
    pub fn thefts(&self) -> Vec<TheftReport> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0.clone()
    }
    /// Every heal reported so far.
    pub fn heals(&self) -> Vec<RollbackHealed> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).1.clone()
    }
}

#[async_trait]
impl Hooks for Heard {
    async fn on_theft(&self, report: &TheftReport) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0.push(report.clone());
    }
    async fn on_rollback_healed(&self, event: &RollbackHealed) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).1.push(event.clone());
    }
    async fn on_grace_refused(&self, refusal: &GraceRefusal) {
        panic!("no grace is refused in the rollback tests: {refusal:?}");
    }
}

/// An engine with the test keys over `store`, its clock and its hooks.
fn keyed_engine<S: Store>(
    store: &Arc<S>,
    steps: u16,
) -> (expected_core::ManualClock, Heard, Expected<Arc<S>>) {
    let clock = clock();
    let heard = Heard::default();
    let engine = engine(store.clone(), &clock, keyed(steps)).with_hooks(heard.clone());
    (clock, heard, engine)
}

/// `n` cookie logins of the device holding `jar`, a second apart, each
/// asserted to be a plain one.
async fn rotate_times<S: Store>(
    engine: &Expected<S>,
    clock: &expected_core::ManualClock,
    jar: &mut Jar,
    n: usize,
) {
    for i in 0..n {
        clock.advance(Duration::seconds(1));
        let mut device = jar.without_session();
        assert_outcome!(
            visit(engine, &mut device).await.outcome,
            Outcome::CookieLogin(_),
            "cookie login {i}"
        );
        *jar = device;
    }
}

async fn snapshot<H: RollbackHarness>(harness: &H, store: &H::Store) -> H::Snapshot {
    harness.snapshot(store).await.unwrap_or_else(|Unreachable(why)| panic!("snapshot: {why}"))
}

async fn restore<H: RollbackHarness>(harness: &H, store: &H::Store, snapshot: &H::Snapshot) {
    harness.restore(store, snapshot).await.unwrap_or_else(|Unreachable(why)| panic!("restore: {why}"));
}

/// Four devices of two users lose 0, 1, 3 and 5 rotations to a restore: each
/// logs in with the cookie it holds, nothing is revoked, each heal is
/// reported with its count, and the next cookie login of each is plain.
pub async fn rollback_heals_every_lost_rotation<H: RollbackHarness>(harness: Arc<H>, store: Arc<H::Store>) {
    let (clock, heard, engine) = keyed_engine(&store, 8);
    let (alice, bob) = (user("alice"), user("bob"));
    let mut devices = Vec::new();
    for (name, lost) in [(&alice, 0), (&alice, 1), (&alice, 3), (&bob, 5)] {
        let (mut jar, _) = register(&engine, name, true).await;
        rotate_times(&engine, &clock, &mut jar, 2).await;
        devices.push((jar, lost));
    }
    let taken = snapshot(&*harness, &store).await;
    for (jar, lost) in &mut devices {
        rotate_times(&engine, &clock, jar, *lost).await;
    }
    restore(&*harness, &store, &taken).await;
    clock.advance(Duration::minutes(5));
    for (i, (jar, _)) in devices.iter_mut().enumerate() {
        let result = visit(&engine, jar).await;
        assert!(
            result.outcome.authenticated().is_some(),
            "device {i}: a store that lost rotations logs the device in, got {:?}",
            result.outcome
        );
    }
    assert!(heard.thefts().is_empty(), "no theft after a rollback: {:?}", heard.thefts());
    let mut steps: Vec<(String, u16)> =
        heard.heals().iter().map(|heal| (heal.username.to_string(), heal.steps)).collect();
    steps.sort();
    assert_eq!(
        steps,
        vec![("alice".to_owned(), 1), ("alice".to_owned(), 3), ("bob".to_owned(), 5)],
        "each login that lost rotations heals once, reporting how many it lost"
    );
    assert_eq!(store.list_logins(&alice).await.expect("list_logins").len(), 3, "alice keeps her devices");
    for (i, (jar, _)) in devices.iter_mut().enumerate() {
        clock.advance(Duration::seconds(1));
        let mut device = jar.without_session();
        assert_outcome!(
            visit(&engine, &mut device).await.outcome,
            Outcome::CookieLogin(_),
            "device {i}: the healed login rotates plainly"
        );
    }
    assert_eq!(heard.heals().len(), 3, "healed logins need no second heal");
}

/// After a restore, the cookie a device held before the snapshot (two
/// rotations old by then) is theft, whether or not the current device has
/// healed yet.
pub async fn rollback_replay_from_before_the_snapshot_is_theft<H: RollbackHarness>(
    harness: Arc<H>,
    store: Arc<H::Store>,
) {
    let (clock, heard, engine) = keyed_engine(&store, 8);
    let alice = user("alice");
    let (mut jar, _) = register(&engine, &alice, true).await;
    let stolen = jar.without_session();
    rotate_times(&engine, &clock, &mut jar, 2).await;
    let taken = snapshot(&*harness, &store).await;
    rotate_times(&engine, &clock, &mut jar, 2).await;
    restore(&*harness, &store, &taken).await;
    clock.advance(Duration::minutes(1));
    let mut thief = stolen.clone();
    assert_outcome!(
        visit(&engine, &mut thief).await.outcome,
        Outcome::Theft(_),
        "a cookie from before the snapshot is behind the restored store: theft"
    );
    assert_eq!(heard.thefts().len(), 1, "one theft report");
    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty(), "the theft revokes alice");
    assert_outcome!(
        outcome_of(&engine, &jar.without_session()).await,
        Outcome::UnknownLogin,
        "the revoked device does not heal"
    );
    assert!(heard.heals().is_empty(), "nothing heals a revoked login");
}

/// A device that lost three rotations heals; the cookies it held in the
/// lost window (now behind the healed store) are theft.
pub async fn rollback_replay_from_the_lost_window_is_theft_once_healed<H: RollbackHarness>(
    harness: Arc<H>,
    store: Arc<H::Store>,
) {
    let (clock, heard, engine) = keyed_engine(&store, 8);
    let alice = user("alice");
    let (mut jar, _) = register(&engine, &alice, true).await;
    let taken = snapshot(&*harness, &store).await;
    rotate_times(&engine, &clock, &mut jar, 1).await;
    let lost_window = jar.without_session();
    rotate_times(&engine, &clock, &mut jar, 2).await;
    restore(&*harness, &store, &taken).await;
    clock.advance(Duration::minutes(1));
    assert_outcome!(visit(&engine, &mut jar).await.outcome, Outcome::CookieLogin(_), "the device heals");
    assert_eq!(heard.heals().iter().map(|heal| heal.steps).collect::<Vec<_>>(), vec![3]);
    clock.advance(Duration::minutes(1));
    let mut replay = lost_window.clone();
    assert_outcome!(
        visit(&engine, &mut replay).await.outcome,
        Outcome::Theft(_),
        "a cookie from the lost window, behind the healed store, is theft"
    );
}

/// A thief who holds the current cookie but not the key cannot step ahead:
/// a token derived under another key, a random token, and the right token
/// under a key id the server does not have are all theft.
pub async fn rollback_token_stepped_ahead_without_the_key_is_theft<H: RollbackHarness>(
    harness: Arc<H>,
    store: Arc<H::Store>,
) {
    let (clock, heard, engine) = keyed_engine(&store, 8);
    let guessed = TokenKey::new(KeyId::new("conformance").expect("id"), &[0x11; 32]).expect("key");
    for (i, name) in ["guessed-key", "random-token", "unknown-key-id"].into_iter().enumerate() {
        let who = user(name);
        let (mut jar, _) = register(&engine, &who, true).await;
        rotate_times(&engine, &clock, &mut jar, 1).await;
        let real = jar.auth_cookie();
        let login = store.get_login(&who, &real.serial).await.expect("get_login").expect("the login exists");
        let forged = match i {
            0 => AuthCookie { token: guessed.successor(&real.serial, &login.token), ..real.clone() },
            1 => AuthCookie {
                token: expected_core::TokenSource::token(&crate::support::tokens()),
                ..real.clone()
            },
            _ => {
                // The true successor, under a key id the server lacks.
                let next = test_keys().current().successor(&real.serial, &login.token);
                AuthCookie { token: next, key: Some(KeyId::new("elsewhere").expect("id")), ..real.clone() }
            }
        };
        let mut thief = Jar { session: None, auth: Some(forged.encode()) };
        assert_outcome!(visit(&engine, &mut thief).await.outcome, Outcome::Theft(_), "{name}: theft");
    }
    assert_eq!(heard.thefts().len(), 3, "three thefts");
    assert!(heard.heals().is_empty(), "nothing healed");
    let _ = harness;
}

/// Eight concurrent requests present the same cookie, three rotations ahead
/// of a restored store: all are authenticated, one heals, none is theft.
pub async fn rollback_concurrent_requests_heal_once<H: RollbackHarness>(
    harness: Arc<H>,
    store: Arc<H::Store>,
) {
    let (clock, heard, engine) = keyed_engine(&store, 8);
    let engine = Arc::new(engine);
    let alice = user("alice");
    let (mut jar, _) = register(&engine, &alice, true).await;
    let taken = snapshot(&*harness, &store).await;
    rotate_times(&engine, &clock, &mut jar, 3).await;
    restore(&*harness, &store, &taken).await;
    clock.advance(Duration::minutes(1));
    let device = jar.without_session();
    let mut racing = Vec::new();
    for _ in 0..8 {
        let (engine, device) = (Arc::clone(&engine), device.clone());
        racing.push(tokio::spawn(async move { outcome_of(&engine, &device).await }));
    }
    for (i, handle) in racing.into_iter().enumerate() {
        let outcome = handle.await.expect("request task");
        assert_outcome!(outcome, Outcome::CookieLogin(_) | Outcome::Grace(_), "request {i}");
    }
    assert!(heard.thefts().is_empty(), "no theft: {:?}", heard.thefts());
    assert_eq!(heard.heals().len(), 1, "one heal; the others converge through grace");
}

/// With a bound of two, a login that lost three rotations is taken for
/// theft: the documented limit.
pub async fn rollback_beyond_the_bound_is_theft<H: RollbackHarness>(harness: Arc<H>, store: Arc<H::Store>) {
    let (clock, heard, engine) = keyed_engine(&store, 2);
    let (alice, bob) = (user("alice"), user("bob"));
    let (mut within, _) = register(&engine, &alice, true).await;
    let (mut beyond, _) = register(&engine, &bob, true).await;
    let taken = snapshot(&*harness, &store).await;
    rotate_times(&engine, &clock, &mut within, 2).await;
    rotate_times(&engine, &clock, &mut beyond, 3).await;
    restore(&*harness, &store, &taken).await;
    clock.advance(Duration::minutes(1));
    assert_outcome!(visit(&engine, &mut within).await.outcome, Outcome::CookieLogin(_), "two lost heal");
    assert_outcome!(visit(&engine, &mut beyond).await.outcome, Outcome::Theft(_), "three lost are theft");
    assert_eq!(heard.heals().len(), 1);
}

/// A login registered after the snapshot does not exist once it is
/// restored: its cookie is unknown (cleared, nothing revoked), not theft.
pub async fn rollback_login_created_after_the_snapshot_is_unknown<H: RollbackHarness>(
    harness: Arc<H>,
    store: Arc<H::Store>,
) {
    let (clock, heard, engine) = keyed_engine(&store, 8);
    let alice = user("alice");
    let (mut kept, _) = register(&engine, &alice, true).await;
    let taken = snapshot(&*harness, &store).await;
    let (late, _) = register(&engine, &alice, true).await;
    restore(&*harness, &store, &taken).await;
    clock.advance(Duration::minutes(1));
    assert_outcome!(
        outcome_of(&engine, &late.without_session()).await,
        Outcome::UnknownLogin,
        "a login the store never had is unknown"
    );
    assert!(heard.thefts().is_empty(), "not theft");
    assert!(visit(&engine, &mut kept).await.outcome.authenticated().is_some(), "the older device is fine");
}
