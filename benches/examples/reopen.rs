//! Reopen timing of a log with many segments, for profiling recovery:
//! `cargo run --release -p aof-bench --example reopen -- build` once, then
//! `perf record -g target/release/examples/reopen`.
#![allow(missing_docs)]
use aof_bench::{Res, scratch};
use std::time::Instant;

fn main() -> Res<()> {
    let dir = std::path::Path::new("target/bench-scratch/reopen");
    let config = aof::AofConfig::builder()
        .segment_size(64 * 1024)
        .flush_strategy(aof::FlushStrategy::Async)
        .pre_allocate_enabled(false)
        .build()?;
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("build") => {
            scratch::remove_dir(dir)?;
            let log = aof::open(dir, config.clone())?;
            let p = vec![7u8; 4000];
            let batch = vec![p.as_slice(); 64];
            while log.performance_metrics().segments_finalized() < 10_000 {
                log.append_batch(&batch)?;
            }
            log.close_blocking()?;
        }
        Some(other) => return Err(format!("unknown argument {other:?}; the only one is `build`").into()),
    }
    for _ in 0..20 {
        let t = Instant::now();
        let log = aof::open(dir, config.clone())?;
        let open = t.elapsed();
        let t = Instant::now();
        log.close_blocking()?;
        println!("open {:?}, close {:?}", open, t.elapsed());
    }
    Ok(())
}
