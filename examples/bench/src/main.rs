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
    let tag = format!("expected_bench_{}", std::process::id());
    let work = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let machine = table::Machine::now(&args.adapter, args.connections, args.seconds, args.warmup);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &kind in &args.stores {
        progress(&format!("expected-bench: {kind}"));
        let mut row = Row::new(kind);
        if let Err(error) = bench_store(&args, &demo, &work, &tag, &mut row).await {
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
    demo: &std::path::Path,
    work: &std::path::Path,
    tag: &str,
    row: &mut Row,
) -> Result {
    let mut backend = Backend::open(row.store, work, tag).await?;
    let result = bench_backend(args, demo, work, &mut backend, row).await;
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
            Ok((before, prepared)) => prepared.run().await.map(|run| (before, run)),
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
