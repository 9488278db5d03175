//! Async 64 B appends only, for profiling the write path:
//! `cargo build --release -p aof-bench --example append64 && perf record -g target/release/examples/append64`.
//!
//! Optional arguments: payload size (default 64) and a strategy
//! (`async`, the default, or `batched1000`). The timing ends once every
//! record is durable.
#![allow(missing_docs)]
use aof_bench::{Res, scratch};

fn main() -> Res<()> {
    let dir = std::path::Path::new("target/bench-scratch/append64");
    scratch::remove_dir(dir)?;
    let size: usize = match std::env::args().nth(1) {
        None => 64,
        Some(a) => a.parse().map_err(|e| format!("payload size {a:?}: {e}"))?,
    };
    let strategy = match std::env::args().nth(2).as_deref() {
        None | Some("async") => aof::FlushStrategy::Async,
        Some("batched1000") => aof::FlushStrategy::Batched(1000),
        Some(other) => return Err(format!("unknown strategy {other:?}; use async or batched1000").into()),
    };
    let config = aof::AofConfig::builder().flush_strategy(strategy).build()?;
    let log = aof::open(dir, config)?;
    let p = vec![0x42u8; size];
    let n = (1_280_000_000 / (size as u64 + 32)).min(20_000_000);
    let t = std::time::Instant::now();
    for _ in 0..n {
        log.append(&p)?;
    }
    log.flush_blocking()?;
    let el = t.elapsed();
    println!(
        "{strategy:?} {size} B append: {:.0} ns, {:.2}M/s, {:.0} MB/s",
        el.as_nanos() as f64 / n as f64,
        n as f64 / el.as_secs_f64() / 1e6,
        n as f64 * size as f64 / el.as_secs_f64() / 1e6
    );
    log.close_blocking()?;
    scratch::remove_dir(dir)?;
    Ok(())
}
