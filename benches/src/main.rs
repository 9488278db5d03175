//! `aof-bench`: the main benchmark job, run by `cargo xtask bench`.
//!
//! ```text
//! aof-bench [--quick] [--json PATH] [--only engine|open|reads|payloads|record|archive|snapshot|raft]
//! ```
//!
//! Prints a table of every workload beside its same-run baseline; with
//! `--json PATH` also writes `{"results": [...]}`. Scratch files go to
//! `$AOF_BENCH_DIR` (default `target/bench-scratch`), on the disk under test.
//! Each case is announced on standard error as it starts;
//! `AOF_BENCH_DEBUG=1` also prints every round's rates. Any error (a failed
//! append, read, flush or file operation) fails the run with exit status 1.

use aof_bench::engine::EngineBudget;
use aof_bench::measure::Budget;
use aof_bench::progress::Progress;
mod archival;
mod archive;
mod raft;
mod raft_mem_store;
mod snapshot;

use aof_bench::{BenchResult, Res, engine, payloads, reads, record, table, write_results};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
                    "usage: aof-bench [--quick] [--json PATH] [--only engine|open|reads|payloads|record|archive|snapshot|raft]"
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
    let run_open = only.as_deref() == Some("open");
    let run_reads = only.as_deref().is_none_or(|o| o == "reads");
    let run_payloads = only.as_deref().is_none_or(|o| o == "payloads");
    let run_record = only.as_deref().is_none_or(|o| o == "record");
    let run_archive = only.as_deref().is_none_or(|o| o == "archive");
    let run_snapshot = only.as_deref().is_none_or(|o| o == "snapshot");
    let run_raft = only.as_deref().is_none_or(|o| o == "raft");
    if !(run_engine
        || run_open
        || run_reads
        || run_payloads
        || run_record
        || run_archive
        || run_snapshot
        || run_raft)
    {
        eprintln!("aof-bench: --only wants engine, open, reads, payloads, record, archive, snapshot or raft");
        return ExitCode::from(2);
    }
    let budget = if quick { Budget::quick() } else { Budget::full() };
    let engine_budget = if quick {
        EngineBudget::quick()
    } else {
        EngineBudget::full()
    };
    let scratch = std::env::var_os("AOF_BENCH_DIR")
        .map_or_else(|| PathBuf::from("target/bench-scratch"), PathBuf::from);
    let jobs = Jobs {
        engine: run_engine,
        open: run_open,
        reads: run_reads,
        payloads: run_payloads,
        record: run_record,
        archive: run_archive,
        snapshot: run_snapshot,
        raft: run_raft,
        quick,
    };
    match run(&jobs, &scratch, budget, engine_budget, json.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aof-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which tables to run.
struct Jobs {
    engine: bool,
    open: bool,
    reads: bool,
    payloads: bool,
    record: bool,
    archive: bool,
    snapshot: bool,
    raft: bool,
    quick: bool,
}

fn run(
    jobs: &Jobs,
    scratch: &Path,
    budget: Budget,
    engine_budget: EngineBudget,
    json: Option<&Path>,
) -> Res<()> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let mut cases = 0;
    if jobs.engine {
        cases += engine::cases();
    }
    if jobs.open {
        cases += 1;
    }
    if jobs.record {
        cases += record::cases();
    }
    if jobs.reads {
        cases += reads::CASES;
    }
    if jobs.payloads {
        cases += payloads::CASES;
    }
    if jobs.archive {
        cases += archive::CASES + archival::CASES;
    }
    if jobs.snapshot {
        cases += snapshot::CASES;
    }
    if jobs.raft {
        cases += raft::CASES;
    }
    let progress = Progress::new("aof-bench", cases);
    let measured = measure_all(jobs, scratch, budget, engine_budget, &progress);
    progress.finish();
    let (
        engine_results,
        read_results,
        payload_results,
        mut record_results,
        archive_results,
        snapshot_results,
        raft_results,
    ) = measured?;
    if jobs.engine || jobs.open {
        println!(
            "Engine on embedded defaults (local files, SQLite index), 64 MiB segments, pre-allocated (zero-filled under Sync, reserved with fallocate otherwise);"
        );
        println!(
            "baselines on the same disk in the same run, in alternating rounds: one write() per record of the"
        );
        println!(
            "same bytes, rolling over to a new file every 64 MiB, then an fdatasync per file (Async, Batched), write+fdatasync per record on a pre-allocated file"
        );
        println!(
            "(Sync); every round ends when its records are durable. open_after_crash: a power-loss image from the fault model, median of 5 opens; p50 = open time in µs,"
        );
        println!("records/s = opens/s, baseline = rebuilding the index by scanning every segment.\n");
        print!("{}", table(&engine_results));
        println!();
    }
    if jobs.reads {
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
    if jobs.payloads {
        println!(
            "Payloads: a log storing payloads compressed (zstd 3), encrypted (XChaCha20-Poly1305) or both, beside"
        );
        println!(
            "the same log storing them plain, in alternating rounds (Async appends; reads by id, every payload"
        );
        println!(
            "checked); log-like records. compression_stored_fraction: stored/raw bytes on 20k log lines of 100-300 B.\n"
        );
        print!("{}", table(&payload_results));
        println!();
    }
    if jobs.record {
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
    if jobs.archive {
        println!(
            "\nArchive: compress + store a 64 MiB log-like segment (zstd level 3, 1 MiB frames) to the filesystem"
        );
        println!(
            "archive and to s3s-fs over HTTP, beside zstd alone on the same bytes in alternating rounds (MB/s of"
        );
        println!(
            "segment). Reads: one frame by one ranged read (size = bytes fetched) beside fetching and decompressing"
        );
        println!("the whole object (size = object bytes); ratio = frame reads per whole read.");
        println!(
            "Engine: Async appends of 1 KiB records into 8 MiB segments archiving to s3s-fs (threshold 2) beside"
        );
        println!(
            "archival off, alternating rounds; a cold read by id of a random record of an archived 64 MiB segment"
        );
        println!(
            "just after open (size = bytes fetched per read) beside fetching and decompressing the whole segment.\n"
        );
        print!("{}", table(&archive_results));
    }
    if jobs.snapshot {
        println!(
            "\nSnapshot: export of a log of 4 KiB records in 32 MiB segments (read in place, SHA-256, framed into"
        );
        println!(
            "a sink) beside a raw sequential read of its segment files and SHA-256 alone on as many bytes; import of"
        );
        println!(
            "the stream from memory (fsync per file, staged log verified, rename) beside a raw write + fsync of"
        );
        println!(
            "the same bytes and SHA-256 alone. MB/s of file bytes; ratio against the slower baseline.\n"
        );
        print!("{}", table(&snapshot_results));
    }
    if jobs.raft {
        println!(
            "\nRaft: a three-node in-process cluster (openraft 0.9), N clients writing one Set at a time through the"
        );
        println!(
            "leader for a fixed time; each node's log on aof (durable before reported flushed; strategy column ="
        );
        println!(
            "the leader's fsyncs per entry) beside the same cluster with the log in memory. p50/p99 = commit latency.\n"
        );
        print!("{}", table(&raft_results));
    }
    if let Some(path) = json {
        let all: Vec<_> = engine_results
            .into_iter()
            .chain(read_results)
            .chain(payload_results)
            .chain(record_results)
            .chain(archive_results)
            .chain(snapshot_results)
            .chain(raft_results)
            .collect();
        write_results(path, &all).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("aof-bench: wrote {}", path.display());
    }
    Ok(())
}

type Tables = (
    Vec<BenchResult>,
    Vec<BenchResult>,
    Vec<BenchResult>,
    Vec<BenchResult>,
    Vec<BenchResult>,
    Vec<BenchResult>,
    Vec<BenchResult>,
);

fn measure_all(
    jobs: &Jobs,
    scratch: &Path,
    budget: Budget,
    engine_budget: EngineBudget,
    progress: &Progress,
) -> Res<Tables> {
    let mut engine_results = Vec::new();
    if jobs.engine {
        engine_results = engine::run(scratch, engine_budget, progress)?;
    }
    if jobs.open {
        progress.case(&format!(
            "engine: open after crash, {} segments",
            engine_budget.segments
        ));
        engine_results = aof_bench::crash_open::run(&scratch.join("crash"), engine_budget.segments)?;
    }
    let read_results = if jobs.reads {
        reads::run(scratch, budget, progress)?
    } else {
        Vec::new()
    };
    let payload_results = if jobs.payloads {
        payloads::run(scratch, budget, progress)?
    } else {
        Vec::new()
    };
    let record_results = if jobs.record {
        record::run(budget, progress)?
    } else {
        Vec::new()
    };
    let archive_results = if jobs.archive {
        let mut results = archive::run(scratch, jobs.quick, &mut |name| {
            progress.case(&format!("archive: {name}"))
        });
        results.extend(archival::run(scratch, jobs.quick, &mut |name| {
            progress.case(&format!("archive: {name}"))
        }));
        results
    } else {
        Vec::new()
    };
    let snapshot_results = if jobs.snapshot {
        snapshot::run(scratch, jobs.quick, &mut |name| {
            progress.case(&format!("snapshot: {name}"))
        })
    } else {
        Vec::new()
    };
    let raft_results = if jobs.raft {
        raft::run(scratch, jobs.quick, &mut |name| progress.case(name))?
    } else {
        Vec::new()
    };
    Ok((
        engine_results,
        read_results,
        payload_results,
        record_results,
        archive_results,
        snapshot_results,
        raft_results,
    ))
}
