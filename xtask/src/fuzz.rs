//! `cargo xtask fuzz`: coverage-guided fuzzing with libFuzzer on the stable
//! toolchain.
//!
//! The targets live in `fuzz/`, a crate of its own workspace that links
//! `libfuzzer-sys` (libFuzzer's C++ runtime, compiled from the crate's
//! sources). cargo-fuzz would pass `-Z` flags that only a nightly compiler
//! takes; the instrumentation itself needs none: SanitizerCoverage is an LLVM
//! pass that stable `rustc` runs with `-C passes=sancov-module` and the
//! `-C llvm-args` below, as cargo-fuzz does with `--sanitizer none`. No
//! AddressSanitizer (that one is `-Z sanitizer`), which the crates'
//! `forbid(unsafe_code)` makes less of a loss: a panic, an overflow or a
//! failed assertion is the crash.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Result, apt_install, report};

/// The targets, in the order they run.
pub(crate) const TARGETS: &[&str] = &["cookie_values", "cookie_headers", "engine_ops"];

/// Seconds per target of CI's smoke (`.ci/run`, `cargo xtask ci`).
pub(crate) const SMOKE_SECONDS: u64 = 5;

/// Seconds per target without `--seconds`.
const DEFAULT_SECONDS: u64 = 60;

/// SanitizerCoverage as libFuzzer wants it: 8-bit edge counters, the table
/// of instrumented PCs, comparison tracing (so that magic values such as the
/// cookie version are found), plus the checks of a debug build.
const RUSTFLAGS: &[&str] = &[
    "--cfg",
    "fuzzing",
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// What one run came to, from libFuzzer's output.
#[derive(Debug, Default)]
struct Figures {
    executions: u64,
    per_second: u64,
    /// Edges instrumented in the binary (libFuzzer's 8-bit counters).
    instrumented: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    crashed: bool,
}

pub(crate) fn run(args: &[String]) -> Result {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a number")?;
                seconds = value.parse().map_err(|_| format!("--seconds {value}: not a number"))?;
            }
            name if TARGETS.contains(&name) => targets.push(name),
            other => {
                return Err(format!(
                    "usage: cargo xtask fuzz [--seconds N] [TARGET…]; `{other}` is not one of {TARGETS:?}"
                ));
            }
        }
    }
    if targets.is_empty() {
        targets.extend(TARGETS);
    }
    let root = workspace_root()?;
    let fuzz = root.join("fuzz");
    ensure_cxx()?;
    let bin_dir = build(&fuzz)?;
    let mut results = Vec::new();
    for target in &targets {
        results.push((*target, fuzz_one(&fuzz, &bin_dir, target, seconds)?));
    }
    report(&format!("xtask: fuzzed {seconds} s per target"));
    report("  target           executions    exec/s   coverage (of edges)  features  corpus  crashes");
    for (target, f) in &results {
        report(&format!(
            "  {target:<15} {:>11} {:>9} {:>10} {:>9} {:>9} {:>7} {:>8}",
            f.executions,
            f.per_second,
            f.coverage,
            format!("({})", f.instrumented),
            f.features,
            f.corpus,
            u8::from(f.crashed)
        ));
    }
    let crashed: Vec<&str> = results.iter().filter(|(_, f)| f.crashed).map(|(t, _)| *t).collect();
    // The plain closing line CI reads.
    report(&format!("fuzz: {} passed, {} failed", results.len() - crashed.len(), crashed.len()));
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!("crashes in {crashed:?}: inputs under fuzz/target/artifacts/"))
    }
}

pub(crate) fn workspace_root() -> Result<PathBuf> {
    // xtask runs from the workspace (its manifest is `xtask/Cargo.toml`).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let root = manifest.and_then(|dir| dir.parent().map(Path::to_path_buf));
    root.or_else(|| std::env::current_dir().ok()).ok_or_else(|| "cannot find the workspace root".to_owned())
}

/// libfuzzer-sys compiles libFuzzer: it needs a C++ compiler. Installed with
/// apt-get when missing; a machine without one fails, CI or not.
fn ensure_cxx() -> Result {
    let found = ["c++", "g++", "clang++"].iter().any(|cxx| {
        Command::new(cxx).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
    });
    if found {
        return Ok(());
    }
    report("xtask: no C++ compiler (libFuzzer is C++); installing g++");
    apt_install(&["g++"])
}

fn host_triple() -> Result<String> {
    let output =
        Command::new("rustc").arg("-vV").output().map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

/// Builds every target, optimized and instrumented, and answers where the
/// binaries are. `--target` keeps the flags off build scripts and proc
/// macros, which run on the host.
fn build(fuzz: &Path) -> Result<PathBuf> {
    let host = host_triple()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = fuzz.join("Cargo.toml");
    let manifest = manifest.to_string_lossy();
    let args = ["build", "--release", "--locked", "--manifest-path", &manifest, "--target", &host, "--bins"];
    report(&format!("$ RUSTFLAGS='{}' cargo {}", RUSTFLAGS.join(" "), args.join(" ")));
    let status = Command::new(cargo)
        .args(args)
        .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\u{1f}"))
        .env_remove("RUSTFLAGS")
        .env("CARGO_TARGET_DIR", fuzz.join("target"))
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("building the fuzz targets failed: {status}"));
    }
    Ok(fuzz.join("target").join(host).join("release"))
}

/// Runs one target for `seconds` over its seeds (`fuzz/seeds/TARGET`, read
/// only) and its working corpus (`fuzz/target/corpus/TARGET`, where new
/// inputs go), crashes under `fuzz/target/artifacts/TARGET/`.
fn fuzz_one(fuzz: &Path, bin_dir: &Path, target: &str, seconds: u64) -> Result<Figures> {
    let work = fuzz.join("target");
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    let seeds = fuzz.join("seeds").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut command = Command::new(bin_dir.join(target));
    command
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus);
    if seeds.is_dir() {
        command.arg(&seeds);
    }
    report(&format!("xtask: fuzzing {target} for {seconds} s"));
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {target}: {e}"))?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    let log_file = work.join(format!("{target}.log"));
    std::fs::write(&log_file, &log).map_err(|e| format!("cannot write {}: {e}", log_file.display()))?;
    let mut figures = parse(&log);
    figures.crashed = !output.status.success();
    if figures.crashed {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        report(&format!("xtask: {target} CRASHED ({}); its log ends:\n{}", output.status, tail.join("\n")));
    }
    Ok(figures)
}

/// Reads libFuzzer's progress lines (`#N … cov: C ft: F corp: K/…`) and its
/// final statistics (`stat::number_of_executed_units: N`, …).
fn parse(log: &str) -> Figures {
    let mut figures = Figures::default();
    let after = |line: &str, key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?;
        let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    for line in log.lines() {
        if line.starts_with('#') && line.contains("cov: ") {
            figures.coverage = after(line, "cov:").unwrap_or(figures.coverage);
            figures.features = after(line, "ft:").unwrap_or(figures.features);
            figures.corpus = after(line, "corp:").unwrap_or(figures.corpus);
        }
        // `INFO: Loaded 1 modules   (980 inline 8-bit counters): …`
        if line.contains("inline 8-bit counters") {
            figures.instrumented = after(line, "(").unwrap_or(figures.instrumented);
        }
        if let Some(n) = after(line, "stat::number_of_executed_units:") {
            figures.executions = n;
        }
        if let Some(n) = after(line, "stat::average_exec_per_sec:") {
            figures.per_second = n;
        }
    }
    figures
}
