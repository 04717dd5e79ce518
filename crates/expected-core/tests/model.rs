//! Property tests of the protocol against a small reference model.
//!
//! Random sequences of register / present the current, previous, older or a
//! forged token / advance time / logout / revoke / clean run against the
//! engine over the memory store, and every outcome is checked against what
//! the model predicts. Among what the model implies:
//!
//! - a forged token never authenticates, and is theft;
//! - a replayed token outside the grace window is always theft, inside it
//!   always grace with the current cookie;
//! - theft deletes every login of that user and no other user's.

use std::sync::Arc;

use expected_core::time::{Duration, OffsetDateTime};
use expected_core::{
    AuthCookie, ChaChaTokens, Clock, Config, CookieKind, Expected, ManualClock, Outcome, Presented, Serial,
    Store, TokenSource, Username,
};
use expected_store_memory::MemoryStore;
use proptest::prelude::*;
use proptest::sample::Index;

const USERS: [&str; 2] = ["alice", "zoë.o'brien"];

#[derive(Debug, Clone)]
enum Op {
    Register { user: usize },
    Present { device: Index, token: Which },
    Advance { seconds: i64 },
    Logout { device: Index },
    Revoke { device: Index },
    Clean,
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Current,
    Previous,
    Older,
    Forged,
}

fn op() -> impl Strategy<Value = Op> {
    let which =
        prop_oneof![Just(Which::Current), Just(Which::Previous), Just(Which::Older), Just(Which::Forged)];
    prop_oneof![
        2 => (0..USERS.len()).prop_map(|user| Op::Register { user }),
        6 => (any::<Index>(), which).prop_map(|(device, token)| Op::Present { device, token }),
        3 => prop_oneof![0..45_i64, Just(29), Just(30), Just(31), Just(86_400 * 30)]
            .prop_map(|seconds| Op::Advance { seconds }),
        1 => any::<Index>().prop_map(|device| Op::Logout { device }),
        1 => any::<Index>().prop_map(|device| Op::Revoke { device }),
        1 => Just(Op::Clean),
    ]
}

/// What the model knows of one device.
#[derive(Debug)]
struct Device {
    user: usize,
    serial: Serial,
    /// Every auth cookie value the device was given, oldest first.
    tokens: Vec<String>,
    rotated_at: Option<OffsetDateTime>,
    last_used: OffsetDateTime,
    /// The password login that registered it: the lifetime counts from here.
    created: OffsetDateTime,
    /// Whether the store still holds its login.
    alive: bool,
}

struct World {
    engine: Expected<Arc<MemoryStore>>,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    config: Config,
    devices: Vec<Device>,
    forger: ChaChaTokens,
}

fn user(index: usize) -> Username {
    Username::new(USERS[index]).unwrap_or_else(|e| panic!("{e}"))
}

impl World {
    fn new(seed: u8) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = ManualClock::starting_now();
        let config = Config::builder()
            .secure(false)
            .max_logins_per_user(None)
            .max_sessions_per_user(None)
            // Short enough for a random run to cross it with its 30-day steps.
            .login_lifetime(std::time::Duration::from_secs(120 * 86_400))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let engine = Expected::new(store.clone(), config.clone())
            .with_clock(clock.clone())
            .with_tokens(ChaChaTokens::from_seed([seed; 32]));
        Self {
            engine,
            store,
            clock,
            config,
            devices: Vec::new(),
            forger: ChaChaTokens::from_seed([!seed; 32]),
        }
    }

    fn max_age(&self) -> Duration {
        Duration::try_from(self.config.cookie_max_age()).unwrap_or(Duration::MAX)
    }

    fn grace(&self) -> Duration {
        Duration::try_from(self.config.grace_period()).unwrap_or(Duration::ZERO)
    }

    fn now(&self) -> OffsetDateTime {
        self.engine.now()
    }

    fn lifetime(&self) -> Duration {
        Duration::try_from(self.config.login_lifetime()).unwrap_or(Duration::MAX)
    }

    /// Unused past the max age, or past its lifetime however used.
    fn expired(&self, device: &Device) -> bool {
        device.last_used + self.max_age() <= self.now() || device.created + self.lifetime() <= self.now()
    }

    async fn step(&mut self, op: Op) {
        match op {
            Op::Register { user: u } => {
                let registration = self.engine.register(&user(u), true, &Presented::default()).await;
                let registration = registration.unwrap_or_else(|e| panic!("register: {e}"));
                let auth = registration.cookies.iter().find(|c| c.kind() == CookieKind::Auth);
                let auth = auth.map(|c| c.value().to_owned()).unwrap_or_else(|| panic!("auth cookie"));
                let serial = registration.serial.unwrap_or_else(|| panic!("serial"));
                let now = self.now();
                self.devices.push(Device {
                    user: u,
                    serial,
                    tokens: vec![auth],
                    rotated_at: None,
                    last_used: now,
                    created: now,
                    alive: true,
                });
            }
            Op::Advance { seconds } => self.clock.advance(Duration::seconds(seconds)),
            Op::Present { device, token } => self.present(device, token).await,
            Op::Logout { device } => {
                if self.devices.is_empty() {
                    return;
                }
                let i = device.index(self.devices.len());
                let current = self.devices[i].tokens.last().cloned();
                let cleared = self
                    .engine
                    .logout(&Presented { auth: current.as_deref().into(), ..Presented::default() })
                    .await;
                assert_eq!(cleared.map(|c| c.len()).unwrap_or_default(), 2);
                // The current token proves the login unless it had expired
                // (then it is deleted anyway).
                self.devices[i].alive = false;
            }
            Op::Revoke { device } => {
                if self.devices.is_empty() {
                    return;
                }
                let i = device.index(self.devices.len());
                let d = &self.devices[i];
                let found =
                    self.engine.revoke(&user(d.user), &d.serial).await.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(found, d.alive, "revoke finds exactly the live logins");
                self.devices[i].alive = false;
            }
            Op::Clean => {
                let cleaned = self.engine.clean().await.unwrap_or_else(|e| panic!("{e}"));
                let mut expected = 0;
                for i in 0..self.devices.len() {
                    if self.devices[i].alive && self.expired(&self.devices[i]) {
                        self.devices[i].alive = false;
                        expected += 1;
                    }
                }
                assert_eq!(cleaned.logins, expected, "clean deletes exactly the expired logins");
            }
        }
        self.check_store().await;
    }

    async fn present(&mut self, device: Index, which: Which) {
        if self.devices.is_empty() {
            return;
        }
        let i = device.index(self.devices.len());
        let tokens = &self.devices[i].tokens;
        let value = match which {
            Which::Current => tokens.last().cloned(),
            Which::Previous => tokens.len().checked_sub(2).map(|k| tokens[k].clone()),
            Which::Older => tokens.len().checked_sub(3).map(|k| tokens[k].clone()),
            Which::Forged => {
                let real = AuthCookie::parse(&tokens[0]).unwrap_or_else(|e| panic!("{e}"));
                Some(AuthCookie { token: self.forger.token(), ..real }.encode())
            }
        };
        let Some(value) = value else { return };
        let result = self
            .engine
            .authenticate(&Presented { auth: value.as_str().into(), ..Presented::default() })
            .await;
        let now = self.now();
        let d = &self.devices[i];
        let current = d.tokens.last().cloned();
        let is_current = Some(&value) == current.as_ref();
        let previous = d.tokens.len() >= 2 && value == d.tokens[d.tokens.len() - 2];
        let in_grace = d.rotated_at.is_some_and(|at| now - at < self.grace());
        let outcome = &result.outcome;

        if !d.alive {
            assert!(matches!(outcome, Outcome::UnknownLogin), "dead login: {outcome:?}");
        } else if self.expired(d) {
            assert!(matches!(outcome, Outcome::ExpiredLogin), "expired login: {outcome:?}");
            self.devices[i].alive = false;
        } else if is_current {
            assert!(matches!(outcome, Outcome::CookieLogin(_)), "current token: {outcome:?}");
            let next = result.cookies.iter().find(|c| c.kind() == CookieKind::Auth && !c.is_removal());
            let next = next.map(|c| c.value().to_owned()).unwrap_or_else(|| panic!("rotated cookie"));
            assert_ne!(Some(&next), current.as_ref(), "the token rotates");
            let d = &mut self.devices[i];
            d.tokens.push(next);
            d.rotated_at = Some(now);
            d.last_used = now;
        } else if previous && in_grace {
            assert!(matches!(outcome, Outcome::Grace(_)), "previous token in grace: {outcome:?}");
            let handed =
                result.cookies.iter().find(|c| c.kind() == CookieKind::Auth).map(|c| c.value().to_owned());
            assert_eq!(handed, current, "grace hands back the current token");
        } else {
            // Forged, older, or previous after the window.
            assert!(matches!(outcome, Outcome::Theft(_)), "{which:?} token must be theft: {outcome:?}");
            assert!(outcome.authenticated().is_none());
            let victim = d.user;
            for other in &mut self.devices {
                if other.user == victim {
                    other.alive = false;
                }
            }
        }
        if matches!(which, Which::Forged) {
            assert!(outcome.authenticated().is_none(), "a forged token never authenticates");
        }
    }

    /// The store holds exactly the logins the model says are alive, for every
    /// user: nothing of one user is touched by another's theft.
    async fn check_store(&self) {
        for (u, _) in USERS.iter().enumerate() {
            let mut stored: Vec<Serial> = self
                .store
                .list_logins(&user(u))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|l| l.serial)
                .collect();
            let mut alive: Vec<Serial> =
                self.devices.iter().filter(|d| d.user == u && d.alive).map(|d| d.serial).collect();
            stored.sort();
            alive.sort();
            assert_eq!(stored, alive, "logins of {}", USERS[u]);
        }
        let _ = self.clock.now();
    }
}

/// How many random sequences to run: `PROPTEST_CASES`, 256 by default (CI);
/// `cargo xtask soak` runs 10 000.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.trim().parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_engine_follows_the_model(seed in any::<u8>(), ops in proptest::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build();
        let runtime = runtime.unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(async {
            let mut world = World::new(seed);
            for op in ops {
                world.step(op).await;
            }
        });
    }
}
