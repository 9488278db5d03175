//! Cost of recording: nanoseconds per `record_flush`, per `record_append` and
//! per `flush_with` around an empty flush, on one thread and on two threads
//! recording into the same metrics at once. A single uncontended atomic
//! `fetch_add` (and two threads contending on one) and one read of the
//! system clock are measured in the same run as baselines.
//!
//! For the two-thread cases the reported time is per operation per thread:
//! each thread runs `iters` operations while the other does the same, and
//! the slower thread's elapsed time is reported.

use aof_flush::{Clock, FlushController, FlushControllerMetrics, FlushKind, SystemClock};
use aof_record::FlushStrategy;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Runs `op(i)` `iters` times on each of `threads` threads started together;
/// returns the longest thread's elapsed time.
fn concurrent<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        op(i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}

/// As [`concurrent`], but each thread first gets its own state from `init`.
fn concurrent_with<'a, S, I, F>(threads: usize, iters: u64, init: I, op: F) -> Duration
where
    S: 'a,
    I: Fn() -> &'a S + Sync,
    F: Fn(&S, u64) + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let state = init();
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        op(state, i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}

fn latency(i: u64) -> Duration {
    // Vary the value so histogram buckets are not always the same one.
    Duration::from_nanos(50_000 + (i % 1024) * 997)
}

fn bench_record_flush(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_flush");
    for threads in [1usize, 2] {
        let counter = AtomicU64::new(0);
        g.bench_with_input(
            BenchmarkId::new("baseline_atomic_add", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    concurrent(t, iters, |i| {
                        counter.fetch_add(black_box(i), Ordering::AcqRel);
                    })
                })
            },
        );
        if threads > 1 {
            // The same work with no shared metrics: what the machine allows
            // two threads at once, so the shared case can be read as a ratio.
            let separate: Vec<FlushControllerMetrics> =
                (0..threads).map(|_| FlushControllerMetrics::new()).collect();
            let next = AtomicU64::new(0);
            g.bench_with_input(
                BenchmarkId::new("baseline_unshared_metrics", threads),
                &threads,
                |b, &t| {
                    b.iter_custom(|iters| {
                        next.store(0, Ordering::Relaxed);
                        concurrent_with(
                            t,
                            iters,
                            || &separate[next.fetch_add(1, Ordering::Relaxed) as usize],
                            |m, i| {
                                m.record_flush(
                                    FlushKind::Batched,
                                    black_box(1 + i % 100),
                                    black_box(4096 + i % 8192),
                                    latency(i),
                                    true,
                                );
                            },
                        )
                    })
                },
            );
        }
        let metrics = FlushControllerMetrics::new();
        g.bench_with_input(BenchmarkId::new("record_flush", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                concurrent(t, iters, |i| {
                    metrics.record_flush(
                        FlushKind::Batched,
                        black_box(1 + i % 100),
                        black_box(4096 + i % 8192),
                        latency(i),
                        true,
                    );
                })
            })
        });
    }
    g.finish();
}

fn bench_record_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_append");
    g.bench_function("baseline_system_clock_now", |b| {
        b.iter(|| black_box(SystemClock.now()))
    });
    for (name, strategy) in [
        // No interval: the append path reads no clock.
        ("batched", FlushStrategy::Batched(u64::MAX)),
        // An interval: one clock read per append.
        (
            "batched_or_periodic",
            FlushStrategy::BatchedOrPeriodic {
                batch_size: u64::MAX,
                interval_ms: 3_600_000,
            },
        ),
    ] {
        for threads in [1usize, 2] {
            let controller = FlushController::new(strategy);
            g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &t| {
                b.iter_custom(|iters| {
                    concurrent(t, iters, |i| {
                        black_box(controller.record_append(1, black_box(100 + i % 64)));
                    })
                })
            });
        }
    }
    g.finish();
}

fn bench_flush_with(c: &mut Criterion) {
    let mut g = c.benchmark_group("flush_with_empty_flush");
    for threads in [1usize, 2] {
        let controller = Arc::new(FlushController::new(FlushStrategy::Async));
        g.bench_with_input(BenchmarkId::from_parameter(threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                concurrent(t, iters, |_| {
                    controller.record_append(1, 100);
                    let r: Result<(), ()> = controller.flush_with(FlushKind::Forced, || Ok(()));
                    black_box(r).ok();
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench_record_flush, bench_record_append, bench_flush_with
}
criterion_main!(benches);
