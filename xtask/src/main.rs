//! Repository automation, run as `cargo xtask <command>`.
//!
//! | command | what it does |
//! |---|---|
//! | `test` | installs missing system prerequisites, then runs every test of the workspace |
//! | `lint` | `cargo fmt --check` and `cargo clippy --all-targets -- -D warnings` |
//! | `ci` | `lint`, then `test`: what `.ci/run` does |
//! | `bench [--quick] [--json PATH] [--only engine\|open\|reads\|record]` | installs missing system prerequisites, then the main benchmark job (release build of `aof-bench`) |
//! | `compare [--quick] [--json PATH] [--sizes N,...] [--batch N]` | installs missing system prerequisites, then the MDBX-vs-SQLite index suite (`aof-compare` binary of `aof-bench`); `--json out.json` also writes the chart `out.svg` |
//! | `prereqs` | only installs the system prerequisites |
//!
//! Dependency-free on purpose: it builds in a second and never waits for the
//! heavy crates it drives.

use std::env;
use std::process::{Command, ExitCode};

/// Debian packages the build or the tests need, with a file that proves each is present.
const PREREQUISITES: &[(&str, &str, &str)] = &[
    // (package, what needs it, probe: a binary name or an absolute path glob prefix)
    ("libclang-dev", "libmdbx's build script (bindgen)", "lib:libclang"),
    (
        "sqlite3",
        "the tests that run the sqlite3 command-line tool on index files",
        "bin:sqlite3",
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("usage: cargo xtask <test|lint|ci|bench|compare|prereqs> [args]");
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
        other => Err(format!(
            "unknown command {other:?}; try test, lint, ci, bench, compare or prereqs"
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
