//! `aof-bench`: the main benchmark job, run by `cargo xtask bench`.
//!
//! ```text
//! aof-bench [--quick] [--json PATH]
//! ```
//!
//! Prints a table of every workload beside its same-run baseline; with
//! `--json PATH` also writes `{"results": [...]}`.

use aof_bench::{Budget, progress, record, table, write_json};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut quick = false;
    let mut json: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => match args.next() {
                Some(p) => json = Some(p.into()),
                None => {
                    eprintln!("aof-bench: --json needs a path");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: aof-bench [--quick] [--json PATH]");
                return ExitCode::SUCCESS;
            }
            // `cargo bench` passes --bench to every target; ignore it.
            "--bench" => {}
            other => {
                eprintln!("aof-bench: unknown argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let budget = if quick { Budget::quick() } else { Budget::full() };
    let cases = record::SIZES.len() as u64 * 2 + 2;
    let pb = progress(cases);
    let mut results = record::run(budget, &mut |name| {
        pb.set_message(name.to_owned());
        pb.inc(1);
    });
    pb.finish_and_clear();
    results.sort_by_key(|r| r.workload.starts_with("baseline"));
    println!(
        "Record format (encode = copy + CRC-64/NVME into a reused buffer; baseline = memcpy of the same bytes)\n"
    );
    print!("{}", table(&results));
    if let Some(path) = json {
        if let Err(e) = write_json(&path, &results) {
            eprintln!("aof-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("aof-bench: wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
