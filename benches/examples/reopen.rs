//! Reopen timing of a log with many segments, for profiling recovery:
//! `cargo run --release -p aof-bench --example reopen -- build` once, then
//! `perf record -g target/release/examples/reopen`.
#![allow(missing_docs)]
use std::time::Instant;
fn main() {
    let dir = std::path::Path::new("target/bench-scratch/reopen");
    let config = aof::AofConfig::builder()
        .segment_size(64 * 1024)
        .flush_strategy(aof::FlushStrategy::Async)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    if std::env::args().nth(1).as_deref() == Some("build") {
        let _ = std::fs::remove_dir_all(dir);
        let log = aof::open(dir, config.clone()).unwrap();
        let p = vec![7u8; 4000];
        let batch = vec![p.as_slice(); 64];
        while log.performance_metrics().segments_finalized() < 10_000 {
            log.append_batch(&batch).unwrap();
        }
        log.close_blocking().unwrap();
    }
    for _ in 0..20 {
        let t = Instant::now();
        let log = aof::open(dir, config.clone()).unwrap();
        let open = t.elapsed();
        let t = Instant::now();
        drop(log);
        println!("open {:?}, close {:?}", open, t.elapsed());
    }
}
