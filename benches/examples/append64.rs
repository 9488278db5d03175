//! Async 64 B appends only, for profiling the write path:
//! `cargo build --release -p aof-bench --example append64 && perf record -g target/release/examples/append64`.
#![allow(missing_docs)]
fn main() {
    let dir = std::path::Path::new("target/bench-scratch/append64");
    let _ = std::fs::remove_dir_all(dir);
    let strategy = match std::env::args().nth(2).as_deref() {
        Some("batched1000") => aof::FlushStrategy::Batched(1000),
        _ => aof::FlushStrategy::Async,
    };
    let config = aof::AofConfig::builder()
        .flush_strategy(strategy)
        .build()
        .unwrap();
    let log = aof::open(dir, config).unwrap();
    // Optional arguments: payload size (default 64) and a strategy (async | batched1000).
    let size: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let p = vec![0x42u8; size];
    let n = (1_280_000_000 / (size as u64 + 32)).min(20_000_000);
    let t = std::time::Instant::now();
    for _ in 0..n {
        log.append(&p).unwrap();
    }
    let el = t.elapsed();
    println!(
        "{strategy:?} {size} B append: {:.0} ns, {:.2}M/s, {:.0} MB/s",
        el.as_nanos() as f64 / n as f64,
        n as f64 / el.as_secs_f64() / 1e6,
        n as f64 * size as f64 / el.as_secs_f64() / 1e6
    );
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
}
