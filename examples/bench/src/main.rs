//! The benchmarks of `docs/benchmarks.md` that need more than criterion:
//!
//! - `expected-bench http --demo PATH`: starts the demo binary at `PATH` on
//!   each store in turn and drives it with this crate's load generator
//!   (`cargo xtask bench http` builds both in release and runs this);
//! - `expected-bench memory`: the memory store's resident bytes per login
//!   with its session (`cargo xtask bench memory`).
//!
//! Traffic goes to loopback addresses only, for a bounded time.

#![forbid(unsafe_code)]

mod cpu;
mod demo;
mod http;
mod load;
mod memory;
mod reference;
mod stats;
mod stores;
mod table;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::demo::Demo;
use crate::load::{Load, Scenario};
use crate::stores::{Backend, StoreKind};
use crate::table::{Measured, Row};

/// Errors carry their context as text.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
/// A result with an [`Error`].
pub(crate) type Result<T = (), E = Error> = std::result::Result<T, E>;

#[derive(Debug, Parser)]
#[command(name = "expected-bench", about = "The expected demos under load, and the memory store's footprint")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Drives the demo over HTTP on each store and prints a table.
    Http(HttpArgs),
    /// Prints the memory store's resident bytes per login with its session.
    Memory {
        /// Registrations to make.
        #[arg(long, default_value_t = memory::DEFAULT_LOGINS)]
        logins: usize,
    },
}

#[derive(Debug, clap::Args)]
struct HttpArgs {
    /// The demo binary (a release build of an adapter's `demo` example).
    #[arg(long)]
    demo: PathBuf,
    /// The adapter it is built on, for the report.
    #[arg(long, default_value = "axum")]
    adapter: String,
    /// Measured seconds per scenario (and for each raw reference).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent connections, each with its own cookie jar.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// The stores, in order.
    #[arg(long, value_delimiter = ',', default_values_t = StoreKind::ALL)]
    stores: Vec<StoreKind>,
    /// The scenarios, in order.
    #[arg(long, value_delimiter = ',', default_values_t = Scenario::ALL)]
    scenarios: Vec<Scenario>,
    /// Skips the raw references.
    #[arg(long)]
    no_reference: bool,
    /// Concurrent loops of the SQL stores' raw reference (default one: a
    /// single connection's rate).
    #[arg(long, default_value_t = 1)]
    reference_tasks: usize,
    /// A server to measure session hits beside, on each store, in rounds
    /// alternating with the demo's: a binary started as the demo is
    /// (`EXPECTED_ADDR`, `EXPECTED_STORE`; a SQLite store gets a file of
    /// its own), which answers the demo's `POST /api/login` with a 2xx and
    /// a cookie, then `GET /api/me` with that cookie with 200 and
    /// `"via":"session"` in its body. `self` is the demo again: the two
    /// sides then differ by the machine's noise alone.
    #[arg(long)]
    peer: Option<PathBuf>,
    /// Alternating rounds beside the peer.
    #[arg(long, default_value_t = 3)]
    peer_rounds: usize,
}

/// The peer of `--peer`, resolved.
struct Peer {
    binary: PathBuf,
    /// The demo itself (`--peer self`).
    is_self: bool,
    /// For the report.
    name: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: the load generator takes at most one core of the
    // machine it shares with the demo and the store servers.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start a runtime: {error}")),
    };
    let result = match cli.command {
        Bench::Http(args) => runtime.block_on(http_bench(args)),
        Bench::Memory { logins } => runtime.block_on(memory_bench(logins)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "expected-bench: {message}");
    ExitCode::FAILURE
}

/// Progress, on stderr.
pub(crate) fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Results, on stdout.
fn print(text: &str) -> Result {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).map_err(|e| format!("stdout: {e}"))?;
    stdout.flush().map_err(|e| format!("stdout: {e}"))?;
    Ok(())
}

async fn memory_bench(logins: usize) -> Result {
    progress(&format!("expected-bench: registering {logins} remembered logins on a memory store"));
    let figures = memory::run(logins).await?;
    print(&figures.report())
}

async fn http_bench(args: HttpArgs) -> Result {
    if args.connections == 0 || args.seconds == 0 {
        return Err("--connections and --seconds must be more than zero".into());
    }
    let demo = std::fs::canonicalize(&args.demo).map_err(|e| format!("{}: {e}", args.demo.display()))?;
    let peer = match &args.peer {
        None => None,
        Some(_) if args.peer_rounds == 0 => return Err("--peer-rounds must be more than zero".into()),
        Some(path) if path.as_os_str() == "self" => {
            Some(Peer { binary: demo.clone(), is_self: true, name: "self: the demo again".to_owned() })
        }
        Some(path) => {
            let binary = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(Peer { name: binary.display().to_string(), binary, is_self: false })
        }
    };
    let tag = format!("expected_bench_{}", std::process::id());
    let work = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let machine = table::Machine::now(&args.adapter, args.connections, args.seconds, args.warmup);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &kind in &args.stores {
        progress(&format!("expected-bench: {kind}"));
        let mut row = Row::new(kind);
        if let Err(error) = bench_store(&args, (&demo, peer.as_ref()), &work, &tag, &mut row).await {
            failures.push(format!("{kind}: {error}"));
        }
        failures.extend(row.failures.iter().map(|failure| format!("{kind}: {failure}")));
        rows.push(row);
    }
    let passed = rows.iter().map(Row::passed).sum::<usize>();
    print(&table::render(&machine.finished(), &rows))?;
    // The plain closing line CI reads.
    print(&format!("bench: {passed} passed, {} failed\n", failures.len()))?;
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
    } else {
        Err(format!("{} failed (logs in {}):\n  {}", failures.len(), work.display(), failures.join("\n  "))
            .into())
    }
}

/// Every scenario and the reference on one store, its backend closed
/// whatever happened.
async fn bench_store(
    args: &HttpArgs,
    (demo, peer): (&std::path::Path, Option<&Peer>),
    work: &std::path::Path,
    tag: &str,
    row: &mut Row,
) -> Result {
    let mut backend = Backend::open(row.store, work, tag).await?;
    let mut result = bench_backend(args, demo, work, &mut backend, row).await;
    if let (Ok(()), Some(peer)) = (&result, peer) {
        result = beside_peer(args, demo, peer, work, &backend, row).await;
    }
    let closed = backend.close().await;
    result.and(closed)
}

async fn bench_backend(
    args: &HttpArgs,
    demo: &std::path::Path,
    work: &std::path::Path,
    backend: &mut Backend,
    row: &mut Row,
) -> Result {
    let warmup = Duration::from_secs(args.warmup);
    let measure = Duration::from_secs(args.seconds);
    for &scenario in &args.scenarios {
        progress(&format!("expected-bench: {} / {scenario}", backend.kind));
        let log = work.join(format!("demo-{}-{scenario}.log", backend.kind));
        let running = Demo::start(demo, &backend.url, &log).await?;
        let load = Load { addr: running.addr, connections: args.connections, warmup, measure };
        // The counter starts once the set-up (password logins) is done.
        let before = async {
            let prepared = load::prepare(scenario, load).await?;
            Ok::<_, Error>((backend.count().await?, prepared))
        };
        let run = match before.await {
            Ok((before, prepared)) => prepared.run(running.pid()).await.map(|run| (before, run)),
            Err(error) => Err(error),
        };
        let tail = running.log_tail();
        let stopped = running.stop().await;
        let (before, run) = run.map_err(|e| format!("{scenario}: {e}; the demo's {tail}"))?;
        stopped?;
        backend.settle().await?;
        let after = backend.count().await?;
        row.add(scenario, Measured::new(run, before, after));
    }
    if !args.no_reference {
        progress(&format!("expected-bench: {} / raw reference", backend.kind));
        let before = backend.count().await?;
        let run = reference::run(
            backend.kind,
            &backend.url,
            (args.connections, args.reference_tasks.max(1)),
            warmup,
            measure,
        )
        .await?;
        backend.settle().await?;
        let after = backend.count().await?;
        if let Some(run) = run {
            row.reference = Some(Measured::new(run, before, after));
        }
    }
    Ok(())
}

/// Session hits on the demo and on `peer`, both running on the store of
/// `backend`, in `args.peer_rounds` alternating rounds of the same load.
async fn beside_peer(
    args: &HttpArgs,
    demo: &std::path::Path,
    peer: &Peer,
    work: &std::path::Path,
    backend: &Backend,
    row: &mut Row,
) -> Result {
    progress(&format!("expected-bench: {} / session-hit beside the peer", backend.kind));
    let kind = backend.kind;
    // Its own SQLite file, so that neither side waits on the other's lock.
    let peer_store = match kind {
        StoreKind::Sqlite => format!("sqlite:{}", work.join("peer.db").display()),
        _ => backend.url.clone(),
    };
    let ours = Demo::start(demo, &backend.url, &work.join(format!("beside-{kind}-ours.log"))).await?;
    let peer_log = work.join(format!("beside-{kind}-peer.log"));
    let theirs = if peer.is_self {
        Demo::start(&peer.binary, &peer_store, &peer_log).await
    } else {
        Demo::start_peer(&peer.binary, &peer_store, &peer_log).await
    };
    let theirs = match theirs {
        Ok(theirs) => theirs,
        Err(error) => {
            ours.stop().await?;
            return Err(error);
        }
    };
    let warmup = Duration::from_secs(args.warmup);
    let measure = Duration::from_secs(args.seconds);
    let mut beside = table::Beside { peer: peer.name.clone(), ..table::Beside::default() };
    let mut failure = None;
    'rounds: for round in 1..=args.peer_rounds {
        for (target, server) in [(load::Target::Demo, &ours), (load::Target::Peer, &theirs)] {
            let load = Load { addr: server.addr, connections: args.connections, warmup, measure };
            let run = match load::prepare_for(target, Scenario::SessionHit, load).await {
                Ok(prepared) => prepared.run(server.pid()).await,
                Err(error) => Err(error),
            };
            let side = if target == load::Target::Demo { "ours" } else { "the peer" };
            match run {
                Ok(run) if run.errors == 0 && run.thefts == 0 && run.measured > 0 => {
                    let rate = run.per_second();
                    let cpu = run.server_micros_per_request();
                    let cpu_text =
                        cpu.map_or_else(String::new, |cpu| format!(", {cpu:.1} µs of CPU per hit"));
                    progress(&format!("  round {round}, {side}: {rate:.0} req/s{cpu_text}"));
                    if target == load::Target::Demo {
                        beside.ours.push(rate);
                        beside.ours_cpu.push(cpu);
                    } else {
                        beside.theirs.push(rate);
                        beside.theirs_cpu.push(cpu);
                    }
                }
                Ok(run) => {
                    failure = Some(format!(
                        "beside the peer, round {round}, {side}: {} errors, {} measured; first: {}",
                        run.errors,
                        run.measured,
                        run.first_error.as_deref().unwrap_or("none")
                    ));
                    break 'rounds;
                }
                Err(error) => {
                    failure = Some(format!("beside the peer, round {round}, {side}: {error}"));
                    break 'rounds;
                }
            }
        }
    }
    let tails = (ours.log_tail(), theirs.log_tail());
    let stopped = (ours.stop().await, theirs.stop().await);
    if let Some(failure) = failure {
        row.failures.push(format!("{failure}; the demo's {}; the peer's {}", tails.0, tails.1));
    }
    row.beside = Some(beside);
    stopped.0.and(stopped.1)
}
