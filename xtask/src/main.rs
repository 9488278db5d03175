//! Repository automation, run as `cargo xtask <command>`.
//!
//! | command | what it does |
//! |---|---|
//! | `test` | installs missing system prerequisites, then runs every test of the workspace |
//! | `lint` | `cargo fmt --check` and `cargo clippy --all-targets -- -D warnings` |
//! | `ci` | `lint`, then `test`: what `.ci/run` does |
//! | `bench [--quick] [--json PATH]` | the main benchmark job (release build of `aof-bench`) |
//! | `compare [--quick] [--json PATH] [--sizes N,...] [--batch N]` | the MDBX-vs-SQLite index suite (`aof-compare` binary of `aof-bench`); `--json out.json` also writes the chart `out.svg` |
//! | `prereqs` | only installs the system prerequisites (and the moto S3 server's venv, `.venv-moto`) |
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
        eprintln!("usage: cargo xtask <test|lint|ci|bench|compare|prereqs> [args]");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "prereqs" => prereqs(),
        "test" => prereqs().and_then(|()| test(rest)),
        "lint" => prereqs().and_then(|()| lint()),
        "ci" => prereqs().and_then(|()| lint()).and_then(|()| test(rest)),
        "bench" => bench(rest),
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
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "aof-bench",
        "--bin",
        "aof-bench",
        "--",
    ])
    .args(extra);
    run(cmd)
}

fn compare(extra: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "aof-bench",
        "--bin",
        "aof-compare",
        "--",
    ])
    .args(extra);
    run(cmd)
}
