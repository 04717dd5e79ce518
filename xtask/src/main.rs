//! Project chores: `cargo xtask <command>`.
//!
//! - `test`: make sure the test servers run (PostgreSQL, MariaDB, Redis; each
//!   started, or installed with apt-get, when missing) and the browser tests'
//!   Chromium and ChromeDriver are installed, then run every test of the
//!   workspace. This is the README's test command and what CI runs.
//! - `services`: only the first half of `test`.
//! - `lint`: `cargo fmt --check` (the fuzz targets' too), clippy with
//!   warnings denied, rustdoc with warnings denied, and cargo-deny's license,
//!   ban and source checks (installing cargo-deny from crates.io when it is
//!   missing), then `cargo package` of every published crate ([`PUBLISHED`]),
//!   each verified by building it from its tarball, after checking that
//!   every other workspace member says `publish = false`.
//! - `ci`: `lint`, `test`, a 5-second smoke of each fuzz target, then a
//!   2-second smoke of the HTTP benchmark: what `.ci/run` does.
//! - `bench [protocol]`: the protocol benchmark; `bench http [OPTIONS…]`:
//!   the demo in release on every store under the load generator of
//!   `examples/bench`; `bench memory`: the memory store's bytes per login
//!   (see `bench.rs`, and `docs/benchmarks.md` for the figures).
//! - `fuzz [--seconds N] [TARGET…]`: build the libFuzzer targets of `fuzz/`
//!   with coverage instrumentation on the stable toolchain (installing a C++
//!   compiler with apt-get when missing), run each for N seconds (default
//!   60) and print executions, coverage and crashes. A crash fails it.
//! - `soak [--cases N]`: the property-based model test with N cases
//!   (default 100 000; CI runs 256), optimized with debug assertions.
//! - `package`: only the `cargo package` step of `lint`.
//! - `capacity [--users N]`: the measurement behind `docs/operating.md`
//!   (bytes per login and session on each store, what a cleaning pass
//!   costs), optimized, after `services`.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

mod bench;
mod fuzz;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => services(true).and_then(|()| test(&args[1..])),
        Some("services") => services(true),
        Some("lint") => lint(),
        Some("ci") => lint()
            .and_then(|()| services(true))
            .and_then(|()| test(&args[1..]))
            .and_then(|()| fuzz::run(&["--seconds".to_owned(), fuzz::SMOKE_SECONDS.to_string()]))
            .and_then(|()| bench::run(&bench::SMOKE.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>()))
            .and_then(|()| bench::run(&bench::TWIN_SMOKE.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>())),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("package") => package(),
        Some("capacity") => services(true).and_then(|()| capacity(&args[1..])),
        _ => Err("usage: cargo xtask <test|services|lint|ci|bench [protocol|http|memory]|fuzz|soak|package|capacity> [options]"
            .to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            report(&format!("xtask: {message}"));
            ExitCode::FAILURE
        }
    }
}

/// Progress goes to stderr, like cargo's own.
pub(crate) fn report(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub(crate) fn run(program: &str, args: &[&str]) -> Result {
    report(&format!("$ {program} {}", args.join(" ")));
    let status =
        Command::new(program).args(args).status().map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{program} {} failed: {status}", args.join(" "))) }
}

pub(crate) fn cargo(args: &[&str]) -> Result {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(&cargo, args)
}

/// A command's only option, `FLAG N` (a count), or `default` without it.
fn count_option(args: &[String], command: &str, flag: &str, default: u32) -> Result<u32> {
    match args {
        [] => Ok(default),
        [given, n] if given == flag => n.parse().map_err(|_| format!("{flag} {n}: not a number")),
        _ => Err(format!("usage: cargo xtask {command} [{flag} N]")),
    }
}

/// The model test's case count in a soak (CI runs its default, 256).
const SOAK_CASES: u32 = 100_000;

/// Runs the property-based model test of `expected-core` with many cases
/// (`PROPTEST_CASES`, which `tests/model.rs` reads), optimized but with
/// debug assertions and overflow checks on, and reports how long the run
/// took.
fn soak(args: &[String]) -> Result {
    let cases = count_option(args, "soak", "--cases", SOAK_CASES)?;
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let checked = [
        ("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true"),
        ("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true"),
    ];
    let args = ["test", "--release", "--locked", "-p", "expected-core", "--test", "model"];
    let cargo_test = |extra: &[&str], cases: u32| {
        let mut command = Command::new(&cargo_bin);
        command.args(args).args(extra).envs(checked).env("PROPTEST_CASES", cases.to_string());
        command.status().map_err(|e| format!("cannot run cargo test: {e}"))
    };
    // Built first, so that the time reported is the run's alone.
    let built = cargo_test(&["--no-run"], cases)?;
    if !built.success() {
        return Err(format!("building the model test failed: {built}"));
    }
    report(&format!("$ PROPTEST_CASES={cases} cargo {} (debug assertions, overflow checks)", args.join(" ")));
    let started = Instant::now();
    let status = cargo_test(&[], cases)?;
    if !status.success() {
        return Err(format!("the soak failed: {status}"));
    }
    report(&format!(
        "xtask: soak passed: {cases} model sequences in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Users registered per store by `capacity` unless `--users` says otherwise.
const CAPACITY_USERS: u32 = 10_000;

/// Runs the ignored measurement `capacity` of `expected-demo-kit`
/// (`examples/demo-kit/tests/capacity.rs`), optimized: N users' logins and
/// sessions on every store, their size, and one cleaning pass over N expired
/// logins. Its figures are the ones `docs/operating.md` quotes.
fn capacity(args: &[String]) -> Result {
    let users = count_option(args, "capacity", "--users", CAPACITY_USERS)?;
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let args = [
        "test",
        "--release",
        "--locked",
        "-p",
        "expected-demo-kit",
        "--test",
        "capacity",
        "--",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    report(&format!("$ CAPACITY_USERS={users} cargo {}", args.join(" ")));
    let status = Command::new(cargo_bin)
        .args(args)
        .env("CAPACITY_USERS", users.to_string())
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("the capacity measurement failed: {status}")) }
}

fn test(extra: &[String]) -> Result {
    let mut args = vec!["test", "--workspace", "--all-features", "--no-fail-fast"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}

fn lint() -> Result {
    cargo(&["fmt", "--all", "--check"])?;
    // The fuzz targets are a workspace of their own (docs/fuzzing.md).
    cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    report("$ RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --all-features --no-deps");
    let status = Command::new(cargo_bin)
        .args(["doc", "--workspace", "--all-features", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()
        .map_err(|e| format!("cannot run cargo doc: {e}"))?;
    if !status.success() {
        return Err(format!("cargo doc failed: {status}"));
    }
    deny()?;
    package()
}

/// The crates published to crates.io, in no particular order (`cargo
/// package` orders them). Every other workspace member has `publish = false`.
const PUBLISHED: &[&str] = &[
    "expected-core",
    "expected-store-memory",
    "expected-store-sqlx",
    "expected-store-redis",
    "expected-conformance",
    "expected-axum",
    "expected-actix",
];

/// The workspace members' directories (the `members` globs of the root
/// manifest: `crates/*`, `examples/*`, `xtask`).
fn members() -> Result<Vec<std::path::PathBuf>> {
    // This crate's own directory is `xtask/` of the workspace.
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = xtask.parent().ok_or("xtask has no parent directory")?;
    let mut members = vec![xtask.to_path_buf()];
    for parent in ["crates", "examples"].map(|name| root.join(name)) {
        let parent = parent.as_path();
        let entries =
            std::fs::read_dir(parent).map_err(|e| format!("cannot list {}: {e}", parent.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("cannot list {}: {e}", parent.display()))?.path();
            if path.join("Cargo.toml").is_file() {
                members.push(path);
            }
        }
    }
    members.sort();
    Ok(members)
}

/// `name = "…"` of a manifest's `[package]`.
fn package_name(manifest: &str) -> Option<&str> {
    manifest.lines().find_map(|line| {
        let value = line.strip_prefix("name")?.trim_start().strip_prefix('=')?.trim();
        value.strip_prefix('"')?.strip_suffix('"')
    })
}

/// `cargo package` of every [`PUBLISHED`] crate, together, so that the
/// crates that depend on each other are verified against one another
/// through cargo's local overlay registry (no crate needs to be on
/// crates.io yet). Verifying builds each crate from its tarball (default
/// features): an include list that leaves out a file the build needs fails
/// here. Default features only: with `--all-features` the verification
/// builds every SQL backend, the Redis cluster client and both command-line
/// tools once more (5 minutes instead of under one with the dependencies
/// built), while clippy and the tests already build all of them from the
/// same sources, and the files the sources read (`schema/*.sql`) are read
/// whatever the features. Before that, every workspace member is checked to be either in
/// [`PUBLISHED`] or marked `publish = false`, so a new crate cannot slip
/// through unchecked.
fn package() -> Result {
    let mut unlisted = Vec::new();
    for member in members()? {
        let path = member.join("Cargo.toml");
        let manifest =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let name = package_name(&manifest).ok_or_else(|| format!("{}: no package name", path.display()))?;
        let unpublished = manifest.lines().any(|line| line.replace(' ', "") == "publish=false");
        match (PUBLISHED.contains(&name), unpublished) {
            (true, true) => return Err(format!("{name} is in PUBLISHED but says publish = false")),
            (false, false) => unlisted.push(name.to_owned()),
            _ => {}
        }
    }
    if !unlisted.is_empty() {
        return Err(format!(
            "{} neither published (xtask's PUBLISHED) nor `publish = false`",
            unlisted.join(", ")
        ));
    }
    let mut args = vec!["package", "--locked", "--allow-dirty"];
    for name in PUBLISHED {
        args.extend(["-p", name]);
    }
    let started = Instant::now();
    cargo(&args)?;
    report(&format!(
        "xtask: {} crates packaged and verified in {:.0} s",
        PUBLISHED.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// cargo-deny's checks that need no network beyond the registry already
/// fetched: licenses, bans and sources (advisories would need the advisory
/// database from GitHub, out of reach here).
///
/// `--offline` needs every crate of the graph in the local registry, the
/// crates of other platforms (windows-sys, …) included, which a build on this
/// machine never downloads: `cargo fetch` (no `--target`) fetches them all
/// first, so this works from an empty `CARGO_HOME`.
fn deny() -> Result {
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // Asked through cargo, which also finds subcommands in `$CARGO_HOME/bin`
    // when that is not on `PATH`.
    let installed =
        Command::new(&cargo_bin).args(["deny", "--version"]).output().is_ok_and(|o| o.status.success());
    if !installed {
        cargo(&["install", "cargo-deny", "--locked", "--quiet"])?;
    }
    cargo(&["fetch", "--locked"])?;
    cargo(&["deny", "--offline", "check", "--hide-inclusion-graph", "licenses", "bans", "sources"])
}

/// A server the tests need, and how to bring it up on a Debian machine.
struct Service {
    name: &'static str,
    port: u16,
    /// The binary whose absence means the package must be installed.
    binary: &'static str,
    package: &'static str,
    start: &'static str,
}

const SERVICES: &[Service] = &[
    Service {
        name: "PostgreSQL",
        port: 5432,
        binary: "/usr/bin/pg_ctlcluster",
        package: "postgresql",
        start: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -n1) main start",
    },
    Service {
        name: "MariaDB",
        port: 3306,
        binary: "/usr/sbin/mariadbd",
        package: "mariadb-server",
        start: "mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null; \
                start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    },
    Service {
        name: "Redis",
        port: 6379,
        binary: "/usr/bin/redis-server",
        package: "redis-server",
        start: "mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 \
                --port 6379 --save '' --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    },
];

/// Programs the tests run, as (binary, Debian package): the demos' browser
/// tests drive headless Chromium through ChromeDriver.
const TOOLS: &[(&str, &str)] =
    &[("/usr/bin/chromium", "chromium"), ("/usr/bin/chromedriver", "chromium-driver")];

fn reachable(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}

pub(crate) fn apt_install(packages: &[&str]) -> Result {
    // No prompt may wait for an answer: CI has no standard input.
    let mut args =
        vec!["DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "--no-install-recommends"];
    args.extend(packages);
    run("env", &["DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-qq"])?;
    run("env", &args)
}

/// Installs the [`TOOLS`] that are missing (`with_tools`: the browser tests
/// need them, the benchmark does not), starts (installing first if needed)
/// every test server that is not reachable, and waits until each answers.
/// The tests themselves read the servers' URLs from the environment; this
/// only serves the defaults on loopback.
pub(crate) fn services(with_tools: bool) -> Result {
    if std::env::var_os("EXPECTED_SKIP_SERVICES").is_some() {
        report("xtask: EXPECTED_SKIP_SERVICES set; not touching the test servers");
        return Ok(());
    }
    let mut missing: Vec<&str> = SERVICES
        .iter()
        .filter(|s| !reachable(s.port) && !Path::new(s.binary).exists())
        .map(|s| s.package)
        .collect();
    let tools = TOOLS.iter().filter(|(binary, _)| with_tools && !Path::new(binary).exists());
    missing.extend(tools.map(|(_, package)| *package));
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    for service in SERVICES {
        if reachable(service.port) {
            report(&format!("xtask: {} is up on 127.0.0.1:{}", service.name, service.port));
            continue;
        }
        report(&format!("xtask: {} is down; starting it", service.name));
        run("sh", &["-c", service.start])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reachable(service.port) {
            if Instant::now() > deadline {
                return Err(format!("{} did not come up on port {}", service.name, service.port));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        report(&format!("xtask: {} is up", service.name));
    }
    Ok(())
}
