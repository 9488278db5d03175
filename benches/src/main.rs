//! `aof-bench`: the main benchmark job, run by `cargo xtask bench`.
//!
//! ```text
//! aof-bench [--quick] [--json PATH] [--only engine|open|reads|record|archive]
//! ```
//!
//! Prints a table of every workload beside its same-run baseline; with
//! `--json PATH` also writes `{"results": [...]}`. Scratch files go to
//! `$AOF_BENCH_DIR` (default `target/bench-scratch`), on the disk under test.

use aof_bench::engine::EngineBudget;
use aof_bench::{Budget, engine, progress, reads, record, table, write_json};
use std::path::PathBuf;
use std::process::ExitCode;

mod archive;

fn main() -> ExitCode {
    let mut quick = false;
    let mut json: Option<PathBuf> = None;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" | "--only" => match args.next() {
                Some(v) if a == "--json" => json = Some(v.into()),
                Some(v) => only = Some(v),
                None => {
                    eprintln!("aof-bench: {a} needs a value");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!(
                    "usage: aof-bench [--quick] [--json PATH] [--only engine|open|reads|record|archive]"
                );
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
    let run_engine = only.as_deref().is_none_or(|o| o == "engine");
    let run_reads = only.as_deref().is_none_or(|o| o == "reads");
    let run_record = only.as_deref().is_none_or(|o| o == "record");
    let run_archive = only.as_deref().is_none_or(|o| o == "archive");
    let budget = if quick { Budget::quick() } else { Budget::full() };
    let engine_budget = if quick {
        EngineBudget::quick()
    } else {
        EngineBudget::full()
    };
    let scratch = std::env::var_os("AOF_BENCH_DIR")
        .map_or_else(|| PathBuf::from("target/bench-scratch"), PathBuf::from);
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        eprintln!("aof-bench: cannot create {}: {e}", scratch.display());
        return ExitCode::FAILURE;
    }
    let mut cases = 0;
    if run_engine {
        cases += engine::cases(engine_budget);
    }
    if run_record {
        cases += record::SIZES.len() as u64 * 3 + 2;
    }
    if run_reads {
        cases += reads::CASES;
    }
    if run_archive {
        cases += archive::CASES;
    }
    let pb = progress(cases);
    let mut step = |name: &str| {
        pb.set_message(name.to_owned());
        pb.inc(1);
    };
    let mut engine_results = if run_engine {
        engine::run(&scratch, engine_budget, &mut step)
    } else {
        Vec::new()
    };
    if only.as_deref() == Some("open") {
        engine_results = engine::open_after_crash(&scratch.join("crash"), engine_budget.segments);
    }
    let read_results = if run_reads {
        reads::run(&scratch, budget, &mut step)
    } else {
        Vec::new()
    };
    let mut record_results = if run_record {
        record::run(budget, &mut step)
    } else {
        Vec::new()
    };
    let archive_results = if run_archive {
        archive::run(&scratch, quick, &mut step)
    } else {
        Vec::new()
    };
    pb.finish_and_clear();
    if run_engine || only.as_deref() == Some("open") {
        println!("Engine on embedded defaults (local files, SQLite index), 64 MiB segments, pre-allocated;");
        println!(
            "baselines on the same disk in the same run: one write() per record of the same bytes (Async,"
        );
        println!(
            "Batched), write+fdatasync per record on a pre-allocated file (Sync). open_after_crash: p50 = open"
        );
        println!(
            "time in µs, records/s = opens/s, baseline = rebuilding the index by scanning every segment.\n"
        );
        print!("{}", table(&engine_results));
        println!();
    }
    if run_reads {
        println!(
            "Reads: random read by id on a hot log (1M records of 64 B) beside the same random walk over an"
        );
        println!(
            "in-memory array; a reader's sequential scan of 256 MiB (4 KiB records) beside memcpy of the same"
        );
        println!("bytes; append (Sync) to tail wake-up latency.\n");
        print!("{}", table(&read_results));
        println!();
    }
    if run_record {
        record_results.sort_by_key(|r| r.workload.starts_with("baseline"));
        println!(
            "Record format: encode = header + payload copy + CRC-64/NVME into a reused 1 MiB (cache-resident)"
        );
        println!(
            "buffer, beside memcpy of the same bytes into the same kind of buffer; *_streaming rows use a 256 MiB"
        );
        println!("buffer, so both sides write to memory. Decode = full validation + CRC.\n");
        print!("{}", table(&record_results));
    }
    if run_archive {
        println!(
            "\nArchive: compress + store a 64 MiB log-like segment (zstd level 3, 1 MiB frames) to the filesystem"
        );
        println!(
            "archive and to s3s-fs over HTTP, beside zstd alone on the same bytes in alternating rounds (MB/s of"
        );
        println!(
            "segment). Reads: one frame by one ranged read (size = bytes fetched) beside fetching and decompressing"
        );
        println!("the whole object (size = object bytes); ratio = frame reads per whole read.\n");
        print!("{}", table(&archive_results));
    }
    if let Some(path) = json {
        let all: Vec<_> = engine_results
            .into_iter()
            .chain(read_results)
            .chain(record_results)
            .chain(archive_results)
            .collect();
        if let Err(e) = write_json(&path, &all) {
            eprintln!("aof-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("aof-bench: wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
