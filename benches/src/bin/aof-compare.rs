//! `aof-compare`: the MDBX-vs-SQLite suite of the segment index, run by
//! `cargo xtask compare`.
//!
//! ```text
//! aof-compare [--quick] [--json PATH] [--sizes 10000,50000,100000] [--batch N]
//! ```
//!
//! Prints a table of every workload beside its same-run raw baseline and the
//! figures issue 3 claims, then SQLite / MDBX per workload. With
//! `--json out.json` it also writes `out.json` and the chart `out.svg`.
//! Database files go to `$AOF_COMPARE_DIR` (default
//! `target/compare-scratch` of the workspace, on the disk under test) and
//! are removed afterwards. Each case is announced on standard error as it
//! starts; `AOF_COMPARE_DEBUG=1` also prints every round's rates. Any error
//! fails the run with exit status 1.

use aof_bench::compare::{self, CompareConfig};
use aof_bench::{Res, scratch};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: aof-compare [--quick] [--json PATH] [--sizes N,N,...] [--batch N]\n\
    --batch N: insert_batched adds N entries per call (default: the whole index in one call)";

fn main() -> ExitCode {
    let mut quick = false;
    let mut json: Option<PathBuf> = None;
    let mut sizes: Option<Vec<u64>> = None;
    let mut batch: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" | "--sizes" | "--batch" => {
                let Some(v) = args.next() else {
                    eprintln!("aof-compare: {a} needs a value\n{USAGE}");
                    return ExitCode::from(2);
                };
                if a == "--json" {
                    json = Some(v.into());
                } else if a == "--batch" {
                    match v.parse() {
                        Ok(n) if n > 0 => batch = Some(n),
                        _ => {
                            eprintln!("aof-compare: --batch wants a positive number");
                            return ExitCode::from(2);
                        }
                    }
                } else {
                    match v.split(',').map(str::parse).collect::<Result<Vec<u64>, _>>() {
                        Ok(s) if !s.is_empty() && s.iter().all(|&n| n > 0) => sizes = Some(s),
                        _ => {
                            eprintln!("aof-compare: --sizes wants positive numbers separated by commas");
                            return ExitCode::from(2);
                        }
                    }
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("aof-compare: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let root = std::env::var_os("AOF_COMPARE_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/compare-scratch")),
        PathBuf::from,
    );
    let scratch = root.join(format!("run-{}", std::process::id()));
    let mut config = if quick {
        CompareConfig::quick(scratch.clone())
    } else {
        CompareConfig::full(scratch.clone())
    };
    if let Some(s) = sizes {
        config.sizes = s;
    }
    config.batch = batch;
    let started = std::time::Instant::now();
    let results = compare::run(&config);
    let cleaned = clean_up(&scratch, &root);
    let results = match (results, cleaned) {
        (Ok(r), Ok(())) => r,
        (Err(e), _) | (Ok(_), Err(e)) => {
            eprintln!("aof-compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", compare::table(&results));
    println!("SQLite / MDBX (backends, and raw engines) per workload:\n");
    println!("{}", compare::versus_table(&results));
    println!("took {:.0} s", started.elapsed().as_secs_f64());
    if let Some(path) = json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            eprintln!("aof-compare: cannot create {}: {e}", parent.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = compare::write_json(&path, &results) {
            eprintln!("aof-compare: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        match compare::write_svg(&path, &results) {
            Ok(svg) => println!("wrote {} and {}", path.display(), svg.display()),
            Err(e) => {
                eprintln!(
                    "aof-compare: cannot write the chart next to {}: {e}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Removes this run's scratch directory, then `root` if no other run is
/// using it (it is not empty then, which is not an error).
fn clean_up(run_dir: &Path, root: &Path) -> Res<()> {
    scratch::remove_dir(run_dir).map_err(|e| format!("cannot remove {}: {e}", run_dir.display()))?;
    match std::fs::remove_dir(root) {
        Err(e) if e.kind() != ErrorKind::NotFound && e.kind() != ErrorKind::DirectoryNotEmpty => {
            Err(format!("cannot remove {}: {e}", root.display()).into())
        }
        _ => Ok(()),
    }
}
