//! Repository automation, run as `cargo xtask <command>`.
//!
//! | command | what it does |
//! |---|---|
//! | `test` | installs missing system prerequisites, then runs every test of the workspace |
//! | `lint` | `cargo fmt --check` and `cargo clippy --all-targets -- -D warnings` |
//! | `ci` | `lint`, then `test`: what `.ci/run` does |
//! | `bench [--quick] [--json PATH] [--only engine\|open\|reads\|record\|archive\|snapshot\|raft]` | installs missing system prerequisites, then the main benchmark job (release build of `aof-bench`) |
//! | `compare [--quick] [--json PATH] [--sizes N,...] [--batch N]` | installs missing system prerequisites, then the MDBX-vs-SQLite index suite (`aof-compare` binary of `aof-bench`); `--json out.json` also writes the chart `out.svg` |
//! | `prereqs` | only installs the system prerequisites (and the moto S3 server's venv, `.venv-moto`) |
//! | `crash [--seeds N]` | the crash matrix (`aof-core`'s crash sweeps, then the SQLite-index sweeps of `tests/crash_sweep_sqlite.rs`) with N writeback seeds per crash point, optimised |
//! | `fuzz TARGET\|all [--time S] [-- LIBFUZZER_ARGS]` | runs cargo-fuzz targets of `fuzz/` for S seconds each (nightly; installs cargo-fuzz if missing); without a nightly toolchain, the arbitrary-bytes proptest suites instead |
//!
//! Dependency-free on purpose: it builds in a second and never waits for the
//! heavy crates it drives.

use std::env;
use std::process::{Command, ExitCode};

/// Debian packages the build or the tests need, with a file that proves each is present.
const PREREQUISITES: &[(&str, &str, &str)] = &[
    // (package, what needs it, probe: a binary name or an absolute path glob prefix)
    (
        "libclang-dev",
        "the bindgen of libmdbx's and sqlite-plugin's build scripts",
        "lib:libclang",
    ),
    (
        "sqlite3",
        "the tests that run the sqlite3 command-line tool on index files",
        "bin:sqlite3",
    ),
    (
        "python3-venv",
        "the venv of the moto S3 server that aof-archive-s3's tests start",
        "py:ensurepip",
    ),
];

/// The moto server the archive tests run, pinned; installed from PyPI into `.venv-moto`.
const MOTO: &str = "moto[server]==5.2.5";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("usage: cargo xtask <test|lint|ci|bench|compare|prereqs|fuzz> [args]");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "prereqs" => prereqs(),
        "test" => prereqs().and_then(|()| test(rest)),
        "lint" => prereqs().and_then(|()| lint()),
        "ci" => prereqs().and_then(|()| lint()).and_then(|()| test(rest)),
        "bench" => prereqs().and_then(|()| bench(rest)),
        "compare" => prereqs().and_then(|()| compare(rest)),
        "fuzz" => fuzz(rest),
        "crash" => crash(rest),
        other => Err(format!(
            "unknown command {other:?}; try test, lint, ci, bench, compare, prereqs, fuzz or crash"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn present(probe: &str) -> bool {
    if let Some(bin) = probe.strip_prefix("bin:") {
        return env::var_os("PATH")
            .map(|p| env::split_paths(&p).any(|d| d.join(bin).is_file()))
            .unwrap_or(false);
    }
    if let Some(module) = probe.strip_prefix("py:") {
        // No python3 at all: nothing to install it for (the moto tests say so).
        return !present("bin:python3")
            || Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success());
    }
    if let Some(lib) = probe.strip_prefix("lib:") {
        // Debian puts libclang under /usr/lib/llvm-N/lib and the multiarch directory.
        let dirs = [
            "/usr/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/local/lib",
        ];
        let direct = dirs.iter().any(|d| has_file_starting(d, lib));
        let llvm = std::fs::read_dir("/usr/lib")
            .map(|rd| {
                rd.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("llvm-")
                        && has_file_starting(&e.path().join("lib").to_string_lossy(), lib)
                })
            })
            .unwrap_or(false);
        return direct || llvm || env::var_os("LIBCLANG_PATH").is_some();
    }
    false
}

fn has_file_starting(dir: &str, prefix: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{prefix}.so"))
            })
        })
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn prereqs() -> Result<(), String> {
    system_packages()?;
    moto_venv()
}

/// Creates `.venv-moto` with moto's server, unless it is there. Without
/// python3 the moto tests skip, except under CI, where they fail.
fn moto_venv() -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".venv-moto");
    if venv.join("bin/moto_server").is_file() {
        return Ok(());
    }
    if !present("bin:python3") {
        eprintln!("xtask: python3 not found; the moto S3 tests will be skipped");
        return Ok(());
    }
    let mut mk = Command::new("python3");
    mk.args(["-m", "venv"]).arg(&venv);
    run(mk)?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check", MOTO]);
    run(pip)
}

fn system_packages() -> Result<(), String> {
    let missing: Vec<&(&str, &str, &str)> = PREREQUISITES
        .iter()
        .filter(|(_, _, probe)| !present(probe))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(p, _, _)| *p).collect();
    for (pkg, why, _) in &missing {
        eprintln!("xtask: missing {pkg} (needed by {why})");
    }
    if !is_root() {
        return Err(format!(
            "install the missing packages, then run again:\n    sudo apt-get update && sudo apt-get install -y {}",
            names.join(" ")
        ));
    }
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&names);
    run(install)
}

fn test(extra: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-features"]).args(extra);
    run(cmd)
}

fn lint() -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)
}

fn bench(extra: &[String]) -> Result<(), String> {
    run_bench_binary("aof-bench", extra)
}

fn compare(extra: &[String]) -> Result<(), String> {
    run_bench_binary("aof-compare", extra)
}

/// Builds (cargo's progress lines on standard error) and runs a binary of
/// `aof-bench` in release mode; the binary announces each case on standard error.
fn run_bench_binary(bin: &str, extra: &[String]) -> Result<(), String> {
    eprintln!(
        "xtask: building {bin} in release mode (the first build compiles SQLite and libmdbx: minutes), then running it"
    );
    let mut build = cargo();
    build.args(["build", "--release", "--package", "aof-bench", "--bin", bin]);
    run(build)?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "aof-bench",
        "--bin",
        bin,
        "--",
    ])
    .args(extra);
    run(cmd)
}

/// The cargo-fuzz targets of `fuzz/`, in the order `fuzz all` runs them.
const FUZZ_TARGETS: &[&str] = &[
    "record_decode",
    "segment_header",
    "segment_footer",
    "active_segment_recovery",
    "finalized_segment",
    "directory_open",
    "snapshot_stream",
];

/// The proptest suites that run the fuzz targets' checks on stable: the
/// fallback of `fuzz` where no nightly toolchain is installed.
const FUZZ_FALLBACK_TESTS: &[&str] = &[
    "arbitrary_bytes",
    "arbitrary_segments",
    "arbitrary_directories",
    "arbitrary_snapshots",
];

/// What one fuzz target's run did.
struct FuzzRun {
    target: &'static str,
    execs: Option<u64>,
    seconds: f64,
    ok: bool,
}

/// `cargo xtask crash [--seeds N]`: the crash matrix of `aof-core`'s
/// `tests/crash_sweep.rs` with N reordered-writeback seeds per crash point
/// (CI runs 4), then of `tests/crash_sweep_sqlite.rs` (the SQLite index on
/// the faulty file system; N/2 seeds, CI 2), optimised, printing a row per
/// workload.
fn crash(args: &[String]) -> Result<(), String> {
    let mut seeds = "32".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seeds" => seeds = it.next().ok_or("--seeds wants a number")?.clone(),
            other => return Err(format!("crash: unknown argument {other:?}; use --seeds N")),
        }
    }
    seeds
        .parse::<u64>()
        .map_err(|_| format!("--seeds wants a number, not {seeds:?}"))?;
    eprintln!("xtask: crash matrix, {seeds} writeback seeds per crash point");
    println!("| workload | crash points | images | failures | workload panics | points not reached |");
    println!("|---|---|---|---|---|---|");
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "-p",
        "aof-core",
        "--features",
        "fault-injection",
        "--test",
        "crash_sweep",
        "--",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("AOF_CRASH_SEEDS", &seeds);
    run(cmd)?;
    // The same workloads with the real SQLite index, its files on the
    // fault-injecting file system through a SQLite VFS (half the seeds:
    // each image reopens a SQLite database).
    let mut sqlite = cargo();
    sqlite
        .args([
            "test",
            "--release",
            "-p",
            "aof-tests",
            "--test",
            "crash_sweep_sqlite",
            "--",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("AOF_CRASH_SEEDS", &seeds);
    run(sqlite)
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask fuzz TARGET|all [--time SECONDS] [-- LIBFUZZER_ARGS]";
    let (ours, libfuzzer) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut which = None;
    let mut time = 60u64;
    let mut it = ours.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                time = it
                    .next()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| format!("--time needs a number of seconds; {usage}"))?;
            }
            t if which.is_none() && !t.starts_with('-') => which = Some(t.to_owned()),
            other => return Err(format!("unexpected argument {other:?}; {usage}")),
        }
    }
    let which = which.ok_or(usage)?;
    let targets: Vec<&'static str> = if which == "all" {
        FUZZ_TARGETS.to_vec()
    } else {
        let t = FUZZ_TARGETS.iter().find(|t| **t == which).ok_or_else(|| {
            format!(
                "unknown fuzz target {which:?}; targets: all, {}",
                FUZZ_TARGETS.join(", ")
            )
        })?;
        vec![*t]
    };
    if !nightly_available() {
        eprintln!(
            "xtask: no nightly toolchain (`rustup run nightly cargo --version` failed), which cargo-fuzz \
             needs; running the arbitrary-bytes proptest suites instead"
        );
        return fuzz_fallback();
    }
    ensure_cargo_fuzz()?;
    let root = repo_root()?;
    let fuzz_dir = root.join("fuzz");
    // Nightly, sanitizer-instrumented builds get their own target directory,
    // so they never invalidate the stable workspace build.
    let target_dir = env::var_os("AOF_FUZZ_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| fuzz_dir.join("target"));
    let started = std::time::Instant::now();
    let mut build = nightly_cargo();
    build
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(["fuzz", "build"]);
    if let [one] = targets.as_slice() {
        build.arg(one);
    }
    run(build)?;
    eprintln!("xtask: fuzz build took {:.0} s", started.elapsed().as_secs_f64());
    let mut runs = Vec::new();
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
        let mut cmd = nightly_cargo();
        cmd.current_dir(&root)
            .env("CARGO_TARGET_DIR", &target_dir)
            .args(["fuzz", "run", target])
            .arg(&corpus)
            .arg(fuzz_dir.join("seeds").join(target))
            .arg("--")
            .arg(format!("-max_total_time={time}"))
            .args(["-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .args(libfuzzer);
        runs.push(fuzz_one(target, cmd)?);
    }
    eprintln!("xtask: fuzz summary");
    eprintln!(
        "  {:<26} {:>12} {:>8} {:>10}  result",
        "target", "execs", "seconds", "execs/s"
    );
    for r in &runs {
        let execs = r.execs.map_or("?".to_owned(), |e| e.to_string());
        let rate = r.execs.map_or("?".to_owned(), |e| {
            format!("{:.0}", e as f64 / r.seconds.max(1e-3))
        });
        let result = if r.ok {
            "ok"
        } else {
            "FAILED (see fuzz/artifacts/)"
        };
        eprintln!(
            "  {:<26} {execs:>12} {:>8.0} {rate:>10}  {result}",
            r.target, r.seconds
        );
    }
    let failed: Vec<&str> = runs.iter().filter(|r| !r.ok).map(|r| r.target).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz targets failed: {}", failed.join(", ")))
    }
}

/// Runs one target, passing its output through and picking out the number
/// of inputs executed (libFuzzer's `stat::number_of_executed_units`).
fn fuzz_one(target: &'static str, mut cmd: Command) -> Result<FuzzRun, String> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: running {cmd:?}");
    let started = std::time::Instant::now();
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let mut execs = None;
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                execs = n.trim().parse().ok();
            } else if let Some(rest) = line.strip_prefix('#')
                && let Some(n) = rest.split_whitespace().next()
                && execs.is_none()
                && line.contains("DONE")
            {
                execs = n.parse().ok();
            }
            eprintln!("{line}");
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for {cmd:?}: {e}"))?;
    Ok(FuzzRun {
        target,
        execs,
        seconds: started.elapsed().as_secs_f64(),
        ok: status.success(),
    })
}

/// `cargo` of the nightly toolchain, through rustup.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"]);
    cmd
}

fn nightly_available() -> bool {
    nightly_cargo()
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs cargo-fuzz from crates.io if `cargo fuzz` does not run.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz is not installed; installing it");
    let started = std::time::Instant::now();
    let mut install = cargo();
    // Built in a temporary directory, not in the workspace's target.
    install
        .env_remove("CARGO_TARGET_DIR")
        .args(["install", "cargo-fuzz", "--locked"]);
    run(install)?;
    eprintln!(
        "xtask: cargo-fuzz installed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn fuzz_fallback() -> Result<(), String> {
    // The features of `cargo xtask test`, so that CI reuses its test build.
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-features"]);
    for test in FUZZ_FALLBACK_TESTS {
        cmd.args(["--test", test]);
    }
    run(cmd)
}

/// The workspace root: the parent of this crate's directory.
fn repo_root() -> Result<std::path::PathBuf, String> {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| "the xtask crate has no parent directory".to_owned())
}
