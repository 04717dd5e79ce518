//! `cargo xtask bench`: the benchmarks of `docs/benchmarks.md`.
//!
//! - `bench` or `bench protocol`: the criterion benchmark of the pure
//!   protocol path (`cargo bench -p expected-core`);
//! - `bench http [--adapter axum|actix] [--app demo|twin] [OPTIONS…]`:
//!   builds the adapter's demo (or, `--app twin`, axum's `bench_twin`: the
//!   tower-sessions peer's two routes on expected, session hits only) and
//!   the load generator (`examples/bench`) in release, makes sure
//!   the store servers run, and runs `expected-bench http` (its options:
//!   `--seconds N`, `--warmup N`, `--connections N`,
//!   `--stores memory,sqlite,postgres,mariadb,redis`,
//!   `--scenarios session-hit,cookie-login,anon-write`, `--no-reference`,
//!   `--reference-tasks N`, `--peer PATH|self`, `--peer-rounds N`: session
//!   hits beside another server, see `docs/benchmarks.md`);
//! - `bench memory [--logins N]`: the memory store's bytes per login with
//!   its session.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::{Result, cargo, report};

/// CI's smoke of the HTTP benchmark (`.ci/run`, `cargo xtask ci`): every
/// store and scenario, briefly.
/// Its rounds beside the demo itself (`--peer self`) check the side-by-side
/// machinery that a run beside a real peer uses.
pub(crate) const SMOKE: &[&str] =
    &["http", "--seconds", "2", "--warmup", "1", "--peer", "self", "--peer-rounds", "1"];

/// CI's smoke of the benchmark's twin of the tower-sessions peer (`--app
/// twin`): its session hits on every store, briefly, so that what the
/// side-by-side runs measure keeps serving.
pub(crate) const TWIN_SMOKE: &[&str] =
    &["http", "--app", "twin", "--seconds", "2", "--warmup", "1", "--no-reference"];

const USAGE: &str = "usage: cargo xtask bench [protocol | http [--adapter axum|actix] [--app demo|twin] [OPTIONS…] | memory [--logins N]]";

pub(crate) fn run(args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        None | Some("protocol") if args.len() <= 1 => cargo(&["bench", "-p", "expected-core"]),
        Some("http") => http(&args[1..]),
        Some("memory") => {
            let mut command =
                vec!["run", "--release", "--locked", "--quiet", "-p", "expected-bench", "--", "memory"];
            command.extend(args[1..].iter().map(String::as_str));
            cargo(&command)
        }
        _ => Err(USAGE.to_owned()),
    }
}

/// Where cargo puts the release build.
fn release_dir() -> Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => crate::fuzz::workspace_root()?.join("target"),
    };
    Ok(target.join("release"))
}

fn http(args: &[String]) -> Result {
    let mut adapter = "axum".to_owned();
    let mut app = "demo".to_owned();
    let mut passed = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--adapter" {
            adapter = args.next().ok_or("--adapter needs axum or actix")?.clone();
        } else if arg == "--app" {
            app = args.next().ok_or("--app needs demo or twin")?.clone();
        } else {
            passed.push(arg.as_str());
        }
    }
    if !matches!(adapter.as_str(), "axum" | "actix") {
        return Err(format!("--adapter {adapter}: axum or actix"));
    }
    // The twin has the peer's routes only: session hits are all it serves.
    let (example, label) = match (app.as_str(), adapter.as_str()) {
        ("demo", _) => ("demo", adapter.clone()),
        ("twin", "axum") => ("bench_twin", "axum bench_twin".to_owned()),
        ("twin", _) => return Err("--app twin: axum only".to_owned()),
        (other, _) => return Err(format!("--app {other}: demo or twin")),
    };
    if app == "twin" && !passed.contains(&"--scenarios") {
        passed.extend(["--scenarios", "session-hit"]);
    }
    let package = format!("expected-{adapter}");
    let started = Instant::now();
    // Both adapters' demos are `examples/demo`: the one built last is the
    // one benchmarked.
    let build = ["build", "--release", "--locked", "-p", "expected-bench", "-p", &package];
    cargo(&[&build[..], &["--bin", "expected-bench", "--example", example]].concat())?;
    report(&format!("xtask: release build took {:.0} s", started.elapsed().as_secs_f64()));
    crate::services(false)?;
    let release = release_dir()?;
    let demo = release.join("examples").join(example);
    let demo = demo.to_string_lossy();
    let mut command = vec!["http", "--demo", &demo, "--adapter", &label];
    command.extend(passed);
    let bench = release.join("expected-bench");
    report(&format!("$ {} {}", bench.display(), command.join(" ")));
    let started = Instant::now();
    let status = Command::new(&bench)
        .args(&command)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    report(&format!("xtask: the HTTP benchmark took {:.0} s", started.elapsed().as_secs_f64()));
    if status.success() { Ok(()) } else { Err(format!("the HTTP benchmark failed: {status}")) }
}
