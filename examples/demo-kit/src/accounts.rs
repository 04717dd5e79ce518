//! The demo's user accounts: three seeded users, Argon2id password hashes,
//! and the guard in front of them ([`Passwords`]): a bounded pool of hashing
//! threads, and throttling per client IP and per username.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use expected_core::Username;
use rand_core::{OsRng, TryRngCore};

/// The seeded users and their passwords, shown on the login page (it is a
/// demo). The third has a non-ASCII letter, a dot and a quote in it, which
/// every page must escape.
pub const DEMO_USERS: [(&str, &str); 3] =
    [("alice", "alice-secret"), ("bob", "bob-secret"), ("zoë.o'brien", "zoë-secret")];

/// Longest password looked at, in bytes; longer ones fail without hashing
/// them (Argon2 takes any length, but there is no point in hashing a
/// megabyte).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why the accounts could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The OS random source failed (no salt).
    #[error("no salt from the OS random source: {0}")]
    Random(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A seeded username is not a valid username.
    #[error("invalid username {0:?}")]
    Username(String),
}

struct Account {
    username: Username,
    hash: PasswordHash,
}

/// The demo's accounts, with passwords hashed at startup.
///
/// [`verify`](Self::verify) takes the same time whether or not the user
/// exists: an unknown user is checked against a dummy hash made with the same
/// parameters, and Argon2 compares outputs in constant time. It is CPU-bound
/// (tens of milliseconds): call it off the async workers
/// (`tokio::task::spawn_blocking`).
pub struct Accounts {
    users: Vec<Account>,
    dummy: PasswordHash,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|account| account.username.as_str()).collect();
        f.debug_struct("Accounts").field("users", &names).finish_non_exhaustive()
    }
}

fn hash(argon2: &Argon2<'_>, password: &str) -> Result<PasswordHash, AccountsError> {
    let mut salt = [0u8; 16];
    OsRng.try_fill_bytes(&mut salt).map_err(|error| AccountsError::Random(error.to_string()))?;
    argon2
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|error| AccountsError::Hash(error.to_string()))
}

impl Accounts {
    /// [`DEMO_USERS`], hashed with Argon2id and OWASP's parameters (19 MiB,
    /// 2 passes, 1 lane).
    pub fn seeded() -> Result<Self, AccountsError> {
        Self::new(&DEMO_USERS, Params::default())
    }

    /// `users` (name, password), hashed with Argon2id and `params`.
    pub fn new(users: &[(&str, &str)], params: Params) -> Result<Self, AccountsError> {
        let argon2 = Argon2::from(params);
        let users = users
            .iter()
            .map(|(name, password)| {
                let username =
                    Username::new(*name).map_err(|_| AccountsError::Username((*name).to_owned()))?;
                Ok(Account { username, hash: hash(&argon2, password)? })
            })
            .collect::<Result<Vec<_>, AccountsError>>()?;
        let dummy = hash(&argon2, "no such user: the dummy password")?;
        Ok(Self { users, dummy })
    }

    /// The user `username` if `password` is theirs.
    pub fn verify(&self, username: &str, password: &str) -> Option<Username> {
        let account = self.users.iter().find(|account| account.username.as_str() == username);
        let hash = account.map_or(&self.dummy, |account| &account.hash);
        // Over-long passwords are refused after the same work as any other.
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        let candidate = if too_long { "" } else { password };
        let matches = Argon2::default().verify_password(candidate.as_bytes(), hash).is_ok();
        account.filter(|_| matches && !too_long).map(|account| account.username.clone())
    }

    /// The usernames, in seeding order.
    pub fn usernames(&self) -> impl Iterator<Item = &Username> {
        self.users.iter().map(|account| &account.username)
    }
}

/// How many failed password attempts count, and for how long: past
/// `per_ip` failures from one client IP, or `per_username` for one username,
/// within `window`, attempts are refused (429 `too_many_attempts`, with
/// `Retry-After`) without hashing anything, until the oldest failure is
/// `window` old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures allowed per client IP (an IPv6 address counts by its /64,
    /// what one host is usually given).
    pub per_ip: usize,
    /// Failures allowed per username, whoever tries it.
    pub per_username: usize,
    /// How long a failure counts.
    pub window: Duration,
}

/// The demos' limits: 20 failures per IP and 5 per username in 15 minutes.
/// A user who mistypes a few times is not bothered; someone guessing one
/// user's password gets 5 tries a quarter of an hour, and one address
/// rotating through usernames 20.
pub const LIMITS: Limits = Limits { per_ip: 20, per_username: 5, window: Duration::from_secs(15 * 60) };

/// Most keys one throttle table keeps before it forgets the stalest (so that
/// a flood of made-up usernames cannot grow it without bound).
const MAX_KEYS: usize = 10_000;

/// Longest username kept as a throttle key, in bytes (longer ones are no
/// username anyway, and count together by their first bytes).
const MAX_KEY_BYTES: usize = expected_core::secret::MAX_USERNAME_BYTES + 1;

/// Why a password was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Too many failures from this IP or for this username: try again once
    /// `retry_after` has passed.
    #[error("too many failed password attempts; retry after {retry_after:?}")]
    Throttled {
        /// Until the oldest failure that counts is out of the window.
        retry_after: Duration,
    },
    /// Every hashing thread is busy and the queue is full: try again in a
    /// second.
    #[error("the password checks are all busy")]
    Busy,
}

impl Refused {
    /// The `Retry-After` value, in whole seconds (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Self::Throttled { retry_after } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
            Self::Busy => 1,
        }
    }
}

/// The failures of one key (an IP or a username), oldest first.
type Failures = VecDeque<Instant>;

/// Failed attempts per client IP and per username, each forgotten once it is
/// [`Limits::window`] old. Times are passed in, so tests need no clock.
#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    ips: HashMap<IpKey, Failures>,
    usernames: HashMap<String, Failures>,
}

/// An IPv4 address, an IPv6 /64, or no address at all (one shared bucket).
type IpKey = Option<IpAddr>;

fn ip_key(ip: Option<IpAddr>) -> IpKey {
    ip.map(|ip| match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
    })
}

fn username_key(username: &str) -> String {
    let mut end = username.len().min(MAX_KEY_BYTES);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    username[..end].to_owned()
}

/// Drops the failures of `failures` that are `window` old at `now`.
fn forget(failures: &mut Failures, window: Duration, now: Instant) {
    while failures.front().is_some_and(|&at| now.saturating_duration_since(at) >= window) {
        failures.pop_front();
    }
}

/// How long until `failures` is under `limit` again, if it is not now.
fn wait(failures: Option<&mut Failures>, limit: usize, window: Duration, now: Instant) -> Option<Duration> {
    let failures = failures?;
    let limit = limit.max(1);
    forget(failures, window, now);
    if failures.len() < limit {
        return None;
    }
    let oldest = failures.get(failures.len() - limit).copied()?;
    Some(window.saturating_sub(now.saturating_duration_since(oldest)))
}

/// Records a failure of `key` at `now`, forgetting stale keys when the table
/// is full.
fn record<K: std::hash::Hash + Eq + Clone>(
    table: &mut HashMap<K, Failures>,
    key: &K,
    window: Duration,
    now: Instant,
) {
    if !table.contains_key(key) && table.len() >= MAX_KEYS {
        table.retain(|_, failures| {
            forget(failures, window, now);
            !failures.is_empty()
        });
        if table.len() >= MAX_KEYS {
            // Still full of live keys: forget the one whose last failure is
            // the oldest.
            let stalest =
                table.iter().min_by_key(|(_, failures)| failures.back().copied()).map(|(k, _)| k.clone());
            if let Some(stalest) = stalest {
                table.remove(&stalest);
            }
        }
    }
    table.entry(key.clone()).or_default().push_back(now);
}

/// Takes back one failure recorded at `at` (an attempt that succeeded).
fn unrecord<K: std::hash::Hash + Eq>(table: &mut HashMap<K, Failures>, key: &K, at: Instant) {
    if let Some(failures) = table.get_mut(key) {
        if let Some(index) = failures.iter().rposition(|&when| when == at) {
            failures.remove(index);
        }
        if failures.is_empty() {
            table.remove(key);
        }
    }
}

impl Throttle {
    /// An empty throttle with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits, ips: HashMap::new(), usernames: HashMap::new() }
    }

    /// Starts an attempt at `now`: refused while the IP or the username is
    /// over its limit, else counted as a failure until
    /// [`succeeded`](Self::succeeded) says otherwise. Counting it before the
    /// hash, not after, keeps parallel attempts from slipping past the limit
    /// while the first ones are still being hashed.
    pub fn begin(&mut self, ip: Option<IpAddr>, username: &str, now: Instant) -> Result<(), Refused> {
        let Limits { per_ip, per_username, window } = self.limits;
        let (ip, username) = (ip_key(ip), username_key(username));
        let by_ip = wait(self.ips.get_mut(&ip), per_ip, window, now);
        let by_name = wait(self.usernames.get_mut(&username), per_username, window, now);
        if let Some(retry_after) = by_ip.max(by_name) {
            return Err(Refused::Throttled { retry_after });
        }
        record(&mut self.ips, &ip, window, now);
        record(&mut self.usernames, &username, window, now);
        Ok(())
    }

    /// The attempt begun at `at` found the right password: it is no
    /// failure, and the username's earlier failures are forgiven (the IP's
    /// stay: one right password must not reset a guessing address).
    pub fn succeeded(&mut self, ip: Option<IpAddr>, username: &str, at: Instant) {
        unrecord(&mut self.ips, &ip_key(ip), at);
        self.usernames.remove(&username_key(username));
    }

    /// The attempt begun at `at` never ran (the pool was busy): no failure.
    pub fn abandoned(&mut self, ip: Option<IpAddr>, username: &str, at: Instant) {
        unrecord(&mut self.ips, &ip_key(ip), at);
        unrecord(&mut self.usernames, &username_key(username), at);
    }
}

/// A job for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run Argon2, fed by a bounded queue: however
/// many logins arrive at once, at most `threads` hashes run (each takes
/// 19 MiB and tens of milliseconds), and at most `queue` wait; more are
/// refused ([`Refused::Busy`]) rather than piled up. The async workers never
/// hash.
struct HashPool {
    jobs: SyncSender<Job>,
}

impl HashPool {
    fn new(threads: usize, queue: usize) -> Self {
        let (jobs, queued) = std::sync::mpsc::sync_channel::<Job>(queue);
        let queued = Arc::new(Mutex::new(queued));
        for i in 0..threads.max(1) {
            let queued = queued.clone();
            // A thread that cannot be spawned leaves fewer to serve; with
            // none at all, every check answers Busy once the queue is full.
            let _ =
                std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || Self::work(&queued));
        }
        Self { jobs }
    }

    /// A thread's loop: the next job, until the pool is dropped.
    fn work(queued: &Mutex<Receiver<Job>>) {
        loop {
            let job = queued.lock().unwrap_or_else(PoisonError::into_inner).recv();
            let Ok(job) = job else { return };
            // Argon2 does not panic on our hashes; if it ever did, the thread
            // must keep serving (the waiting request sees its answer dropped).
            let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
        }
    }

    /// Runs `task` on a hashing thread and waits for it without blocking the
    /// async worker.
    async fn run<T: Send + 'static>(&self, task: impl FnOnce() -> T + Send + 'static) -> Result<T, Refused> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(task());
        });
        match self.jobs.try_send(job) {
            Ok(()) => answered.await.map_err(|_| Refused::Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Refused::Busy),
        }
    }
}

/// The accounts behind the guards: throttling (see [`Limits`]), then Argon2
/// on a bounded pool of threads.
pub struct Passwords {
    accounts: Arc<Accounts>,
    throttle: Mutex<Throttle>,
    pool: HashPool,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").field("accounts", &self.accounts).finish_non_exhaustive()
    }
}

impl Passwords {
    /// `accounts` behind [`LIMITS`], hashed by up to 4 threads (fewer on a
    /// smaller machine), 32 more checks queued per thread.
    pub fn new(accounts: Arc<Accounts>) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(4);
        Self::with_limits(accounts, LIMITS, threads, 32 * threads)
    }

    /// `accounts` behind `limits`, hashed by `threads` threads with `queue`
    /// more checks waiting at most.
    pub fn with_limits(accounts: Arc<Accounts>, limits: Limits, threads: usize, queue: usize) -> Self {
        Self { accounts, throttle: Mutex::new(Throttle::new(limits)), pool: HashPool::new(threads, queue) }
    }

    /// The accounts.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        // The table stays consistent whatever a panicking holder did.
        self.throttle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user `username` if `password` is theirs, checked for a client at
    /// `ip`, or why it was not checked. A throttled attempt is refused before
    /// any hashing, even with the right password (or the answer would tell
    /// a guesser they found it).
    pub async fn check(
        &self,
        ip: Option<IpAddr>,
        username: &str,
        password: &str,
    ) -> Result<Option<Username>, Refused> {
        let at = Instant::now();
        self.throttle().begin(ip, username, at)?;
        let (accounts, name, typed) = (self.accounts.clone(), username.to_owned(), password.to_owned());
        match self.pool.run(move || accounts.verify(&name, &typed)).await {
            Ok(Some(user)) => {
                self.throttle().succeeded(ip, username, at);
                Ok(Some(user))
            }
            Ok(None) => Ok(None),
            Err(refused) => {
                self.throttle().abandoned(ip, username, at);
                Err(refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Result<Accounts, AccountsError> {
        let params = Params::new(256, 1, 1, None).map_err(|error| AccountsError::Hash(error.to_string()))?;
        Accounts::new(&DEMO_USERS, params)
    }

    #[test]
    fn each_user_has_their_password_only() -> Result<(), AccountsError> {
        let accounts = cheap()?;
        for (name, password) in DEMO_USERS {
            assert_eq!(accounts.verify(name, password).map(|u| u.to_string()).as_deref(), Some(name));
            assert_eq!(accounts.verify(name, "wrong"), None);
        }
        assert_eq!(accounts.verify("alice", "bob-secret"), None);
        assert_eq!(accounts.verify("mallory", "alice-secret"), None);
        assert_eq!(accounts.verify("", ""), None);
        assert_eq!(accounts.verify("alice", &"a".repeat(MAX_PASSWORD_BYTES + 1)), None);
        assert_eq!(accounts.usernames().count(), 3);
        Ok(())
    }

    /// An unknown user is verified against a dummy hash with exactly the
    /// parameters of the real ones, so it costs the same Argon2 work: who
    /// exists cannot be told by timing.
    #[test]
    fn unknown_users_cost_the_same_hash() -> Result<(), AccountsError> {
        let accounts = cheap()?;
        let parameters = |hash: &PasswordHash| {
            let text = hash.to_string();
            text.rsplitn(3, '$').nth(2).map(str::to_owned).unwrap_or_default()
        };
        let dummy = parameters(&accounts.dummy);
        assert!(dummy.starts_with("$argon2id$v=19$m=256,t=1,p=1"), "{dummy}");
        for account in &accounts.users {
            assert_eq!(parameters(&account.hash), dummy);
        }
        Ok(())
    }

    const TEST_LIMITS: Limits = Limits { per_ip: 4, per_username: 2, window: Duration::from_secs(60) };

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn throttles_per_username_and_forgives_after_the_window() {
        let mut throttle = Throttle::new(TEST_LIMITS);
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(throttle.begin(ip(1), "alice", at(0)), Ok(()));
        assert_eq!(throttle.begin(ip(2), "alice", at(10)), Ok(()), "from another address");
        assert_eq!(
            throttle.begin(ip(3), "alice", at(20)),
            Err(Refused::Throttled { retry_after: Duration::from_secs(40) }),
            "two failures for alice: wait until the first is a minute old"
        );
        assert_eq!(throttle.begin(ip(3), "bob", at(20)), Ok(()), "other users are not affected");
        assert_eq!(throttle.begin(ip(3), "alice", at(60)), Ok(()), "the first failure has aged out");
        let refused = throttle.begin(ip(3), "alice", at(61));
        assert_eq!(refused.map_err(Refused::retry_after_secs), Err(9));
    }

    #[test]
    fn throttles_an_address_whatever_usernames_it_tries() {
        let mut throttle = Throttle::new(TEST_LIMITS);
        let now = Instant::now();
        for name in ["a", "b", "c", "d"] {
            assert_eq!(throttle.begin(ip(9), name, now), Ok(()), "{name}");
        }
        assert!(
            matches!(throttle.begin(ip(9), "e", now), Err(Refused::Throttled { .. })),
            "a fifth username"
        );
        assert_eq!(throttle.begin(ip(8), "e", now), Ok(()), "another address is not");
        // IPv6: one /64 is one host.
        let v6 = |text: &str| text.parse::<IpAddr>().ok();
        for name in ["a", "b", "c", "d"] {
            let address = v6(&format!("2001:db8::{name}1"));
            assert!(address.is_some());
            assert_eq!(throttle.begin(address, name, now), Ok(()));
        }
        assert!(throttle.begin(v6("2001:db8::ffff"), "t", now).is_err(), "the same /64");
        assert_eq!(throttle.begin(v6("2001:db8:0:1::1"), "t", now), Ok(()), "the next /64");
    }

    #[test]
    fn a_right_password_forgives_the_username_not_the_address() {
        let mut throttle = Throttle::new(TEST_LIMITS);
        let now = Instant::now();
        assert_eq!(throttle.begin(ip(1), "alice", now), Ok(()));
        let right = now + Duration::from_secs(1);
        assert_eq!(throttle.begin(ip(1), "alice", right), Ok(()));
        throttle.succeeded(ip(1), "alice", right);
        assert_eq!(throttle.begin(ip(1), "alice", right), Ok(()), "alice's failures are forgiven");
        assert_eq!(throttle.begin(ip(1), "x", right), Ok(()));
        assert_eq!(throttle.begin(ip(1), "y", right), Ok(()));
        assert!(throttle.begin(ip(1), "z", right).is_err(), "the address keeps its earlier failure");
        throttle.abandoned(ip(1), "y", right);
        assert_eq!(throttle.begin(ip(1), "z", right), Ok(()), "an attempt that never ran does not count");
    }

    #[test]
    fn the_tables_stay_bounded() {
        let mut throttle = Throttle::new(Limits { per_ip: usize::MAX, ..TEST_LIMITS });
        let now = Instant::now();
        for i in 0..MAX_KEYS + 50 {
            assert_eq!(throttle.begin(ip(1), &format!("user{i}"), now), Ok(()));
        }
        assert!(throttle.usernames.len() <= MAX_KEYS, "{}", throttle.usernames.len());
        let long = "é".repeat(300);
        assert_eq!(username_key(&long).len(), 256, "cut at a character boundary");
    }

    #[test]
    fn checks_run_on_the_pool_and_are_throttled() -> Result<(), Box<dyn std::error::Error>> {
        let passwords = Passwords::with_limits(Arc::new(cheap()?), TEST_LIMITS, 2, 4);
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        runtime.block_on(async {
            let user = passwords.check(ip(1), "alice", "alice-secret").await;
            assert_eq!(user.map(|u| u.map(|u| u.to_string())), Ok(Some("alice".to_owned())));
            assert_eq!(passwords.check(ip(1), "alice", "wrong").await, Ok(None));
            assert_eq!(passwords.check(ip(1), "alice", "wrong").await, Ok(None));
            let refused = passwords.check(ip(1), "alice", "alice-secret").await;
            assert!(
                matches!(refused, Err(Refused::Throttled { .. })),
                "even the right password: {refused:?}"
            );
        });
        Ok(())
    }

    /// However many checks arrive at once, no more than the pool's threads
    /// hash at a time, and past the queue they are refused, not piled up.
    #[test]
    fn the_pool_bounds_what_runs_and_what_waits() -> Result<(), Box<dyn std::error::Error>> {
        use std::sync::atomic::{AtomicUsize, Ordering};

        let pool = Arc::new(HashPool::new(2, 16));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
        let answers = runtime.block_on(async {
            let tasks: Vec<_> = (0..12)
                .map(|i| {
                    let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                    tokio::spawn(async move {
                        pool.run(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                            i
                        })
                        .await
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.map_err(|e| e.to_string()));
            }
            answers
        });
        assert_eq!(answers.iter().filter(|answer| matches!(answer, Ok(Ok(_)))).count(), 12, "{answers:?}");
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "at most two hashes at once: {}",
            most.load(Ordering::SeqCst)
        );

        // A queue with no thread to empty it: its one place taken, the next
        // check is refused at once; with the threads gone, every check is.
        let (jobs, queued) = std::sync::mpsc::sync_channel::<Job>(1);
        let full = HashPool { jobs };
        full.jobs.try_send(Box::new(|| {}))?;
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        assert_eq!(runtime.block_on(full.run(|| 2)), Err(Refused::Busy));
        drop(queued);
        assert_eq!(runtime.block_on(full.run(|| 3)), Err(Refused::Busy));
        Ok(())
    }

    #[test]
    fn hashes_are_salted_argon2id() -> Result<(), AccountsError> {
        let accounts = cheap()?;
        let [a, b] = [&accounts.users[0].hash, &accounts.users[1].hash].map(ToString::to_string);
        assert!(a.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{a}");
        assert_ne!(a.split('$').nth(4), b.split('$').nth(4), "distinct salts");
        Ok(())
    }
}
