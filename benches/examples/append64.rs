//! Async 64 B appends only, for profiling the write path:
//! `cargo build --release -p aof-bench --example append64 && perf record -g target/release/examples/append64`.
#![allow(missing_docs)]
fn main() {
    let dir = std::path::Path::new("target/bench-scratch/append64");
    let _ = std::fs::remove_dir_all(dir);
    let config = aof::AofConfig::builder()
        .flush_strategy(aof::FlushStrategy::Async)
        .build()
        .unwrap();
    let log = aof::Aof::open(dir, config).unwrap();
    let p = [0x42u8; 64];
    let n = 20_000_000u64;
    let t = std::time::Instant::now();
    for _ in 0..n {
        log.append(&p).unwrap();
    }
    let el = t.elapsed();
    println!(
        "async 64 B append: {:.0} ns, {:.2}M/s",
        el.as_nanos() as f64 / n as f64,
        n as f64 / el.as_secs_f64() / 1e6
    );
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
}
