//! Random reads by id only, for profiling the read path:
//! `cargo build --release -p aof-bench --example randread && perf record -g target/release/examples/randread`.
#![allow(missing_docs)]
use aof_bench::Res;
use aof_bench::reads::hot_log;
use std::hint::black_box;

fn main() -> Res<()> {
    let dir = std::path::Path::new("target/bench-scratch/randread");
    // The random-read case's log: 1M records of 64 B, every page read once.
    let log = hot_log(dir)?;
    let active_base = log
        .index()
        .get_active_segment()?
        .ok_or("the log has no active segment")?
        .base_id;
    let t = std::time::Instant::now();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let iters = 5_000_000u64;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = x % active_base;
        let payload = log
            .read(id)?
            .ok_or_else(|| format!("record {id} reads as absent"))?;
        black_box(payload[0]);
    }
    println!(
        "finalized-only random read: {:.0} ns",
        t.elapsed().as_nanos() as f64 / iters as f64
    );
    log.close_blocking()?;
    aof_bench::scratch::remove_dir(dir)?;
    Ok(())
}
