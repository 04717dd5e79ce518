//! What the telemetry costs per request: [`Expected::authenticate`] over the
//! memory store (type-erased, as the adapters hold it), on its two hot paths,
//! a session hit and a cookie login (one rotation per iteration), with
//!
//! - `quiet`: no `tracing` subscriber and no metrics recorder;
//! - `fmt_info`: a `tracing_subscriber::fmt` subscriber at INFO writing to a
//!   sink (the demos' logging: the DEBUG spans are off);
//! - `fmt_debug`: the same at DEBUG: the `authenticate` and `store` spans on;
//! - `prometheus` (feature `metrics` only): a real Prometheus recorder
//!   installed globally, no subscriber.
//!
//! Run it with and without the feature and compare:
//!
//! ```text
//! cargo bench -p expected-core --bench engine
//! cargo bench -p expected-core --bench engine --features metrics
//! ```
//!
//! The figures are in `docs/benchmarks.md` and `docs/metrics.md`.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_main};
use expected_core::{
    ChaChaTokens, Client, Config, CookieKind, DynStore, Expected, Outcome, Presented, Username,
};
use expected_store_memory::MemoryStore;
use tokio::runtime::Runtime;

struct Fixture {
    runtime: Runtime,
    engine: Expected<DynStore>,
    /// A live session cookie (no remember-me).
    session: String,
    /// The current auth cookie of a remembered login, replaced on each
    /// cookie login.
    auth: RefCell<String>,
}

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn client() -> Client<'static> {
    Client { ip: "203.0.113.9".parse().ok(), user_agent: Some(USER_AGENT) }
}

impl Fixture {
    fn new() -> Self {
        let runtime =
            tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("runtime: {e}"));
        let engine = Expected::new(MemoryStore::new(), Config::default())
            .with_tokens(ChaChaTokens::from_seed([5; 32]))
            .into_dyn();
        let value = |cookies: &[expected_core::SetCookie], kind| {
            cookies
                .iter()
                .find(|cookie| cookie.kind() == kind)
                .map(|cookie| cookie.value().to_owned())
                .unwrap_or_else(|| panic!("no {kind:?} cookie"))
        };
        let presented = Presented { client: client(), ..Presented::default() };
        let (session, auth) = runtime.block_on(async {
            let alice = Username::new("alice@example.com").unwrap_or_else(|e| panic!("{e}"));
            let bob = Username::new("bob@example.com").unwrap_or_else(|e| panic!("{e}"));
            let visit = engine.register(&alice, false, &presented).await.unwrap_or_else(|e| panic!("{e}"));
            let device = engine.register(&bob, true, &presented).await.unwrap_or_else(|e| panic!("{e}"));
            (value(&visit.cookies, CookieKind::Session), value(&device.cookies, CookieKind::Auth))
        });
        Self { runtime, engine, session, auth: RefCell::new(auth) }
    }

    fn session_hit(&self) {
        let presented =
            Presented { session: self.session.as_str().into(), client: client(), ..Presented::default() };
        let result = self.runtime.block_on(self.engine.authenticate(black_box(&presented)));
        assert!(matches!(result.outcome, Outcome::Session(_)), "{:?}", result.outcome);
    }

    fn cookie_login(&self) {
        let auth = self.auth.borrow().clone();
        let presented = Presented { auth: auth.as_str().into(), client: client(), ..Presented::default() };
        let result = self.runtime.block_on(self.engine.authenticate(black_box(&presented)));
        assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
        let next = result.cookies.iter().find(|cookie| cookie.kind() == CookieKind::Auth);
        *self.auth.borrow_mut() = next.map(|cookie| cookie.value().to_owned()).unwrap_or_default();
    }
}

/// `EXPECTED_BENCH_LOOP=PATH/VARIANT:N` (say `cookie_login/prometheus:10000`)
/// runs that path N times in that variant, no criterion, and exits: under
/// `valgrind --tool=cachegrind --cache-sim=no`, the instruction counts of
/// N and of 0 iterations give the instructions per request, which a busy
/// machine does not blur.
fn instruction_loop(spec: &str) {
    let parsed = spec.split_once(':').and_then(|(name, n)| Some((name.split_once('/')?, n.parse().ok()?)));
    let Some(((path, variant), iterations)) = parsed else {
        panic!("EXPECTED_BENCH_LOOP={spec}: expected PATH/VARIANT:N");
    };
    let level = match variant {
        "fmt_info" => Some(tracing::Level::INFO),
        "fmt_debug" => Some(tracing::Level::DEBUG),
        _ => None,
    };
    let _subscriber = level.map(|level| tracing::subscriber::set_default(sink_subscriber(level)));
    #[cfg(feature = "metrics")]
    if variant == "prometheus" {
        let _handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|e| panic!("cannot install the recorder: {e}"));
    }
    let fixture = Fixture::new();
    let run: fn(&Fixture) = match path {
        "session_hit" => Fixture::session_hit,
        "cookie_login" => Fixture::cookie_login,
        other => panic!("no path {other}"),
    };
    for _ in 0..iterations {
        run(&fixture);
    }
}

/// A `fmt` subscriber at `level` that writes to a sink.
fn sink_subscriber(level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::sink).finish()
}

fn paths(c: &mut Criterion, variant: &str) {
    let fixture = Fixture::new();
    c.bench_function(&format!("session_hit/{variant}"), |b| b.iter(|| fixture.session_hit()));
    c.bench_function(&format!("cookie_login/{variant}"), |b| b.iter(|| fixture.cookie_login()));
}

fn benches() {
    if let Ok(spec) = std::env::var("EXPECTED_BENCH_LOOP") {
        return instruction_loop(&spec);
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(40)
        .configure_from_args();
    paths(&mut criterion, "quiet");
    for (level, variant) in [(tracing::Level::INFO, "fmt_info"), (tracing::Level::DEBUG, "fmt_debug")] {
        let _default = tracing::subscriber::set_default(sink_subscriber(level));
        paths(&mut criterion, variant);
    }
    #[cfg(feature = "metrics")]
    {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|e| panic!("cannot install the recorder: {e}"));
        expected_core::telemetry::describe();
        // The upkeep a server runs (it drains the histograms' samples).
        let upkeep = handle.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                upkeep.run_upkeep();
            }
        });
        paths(&mut criterion, "prometheus");
        // What was recorded, so the run shows the recorder was in use.
        let rendered = handle.render();
        let rotations = rendered
            .lines()
            .find(|line| line.starts_with("expected_authentications_total{outcome=\"cookie_login\"}"));
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("recorded: {rotations:?}\n"));
    }
    criterion.final_summary();
}

criterion_main!(benches);
