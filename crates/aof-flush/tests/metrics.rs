//! Flush metrics: accuracy against real fsyncs, failure accounting,
//! percentiles, the throughput window, concurrency, and export.

use aof_flush::{
    FlushController, FlushControllerMetrics, FlushKind, FlushMetricsSnapshot, ManualClock, render_prometheus,
};
use aof_record::FlushStrategy;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The design's accuracy test: 1,000 appended records, one forced flush
/// (a real write + fsync), exact counters, and a recorded latency within
/// 1 ms of the latency measured around the call.
#[test]
fn metrics_accuracy_for_one_forced_flush_of_1000_records() {
    const RECORDS: u64 = 1_000;
    const RECORD_SIZE: u64 = 96;
    let mut file = tempfile::tempfile().unwrap();
    let c = FlushController::new(FlushStrategy::Async);
    let payload = [0xA5u8; RECORD_SIZE as usize];
    for _ in 0..RECORDS {
        file.write_all(&payload).unwrap();
        assert!(!c.record_append(1, RECORD_SIZE).is_now());
    }
    assert_eq!(c.pending().records, RECORDS);

    let started = Instant::now();
    c.flush_with(FlushKind::Forced, || file.sync_all()).unwrap();
    let measured = started.elapsed();

    let s = c.metrics().snapshot();
    assert_eq!(s.total_flushes, 1);
    assert_eq!(s.successful_flushes, 1);
    assert_eq!(s.failed_flushes, 0);
    assert_eq!(
        (s.forced_flushes, s.periodic_flushes, s.batched_flushes),
        (1, 0, 0)
    );
    assert_eq!(s.records_flushed, RECORDS);
    assert_eq!(s.bytes_flushed, RECORDS * RECORD_SIZE);
    assert_eq!((s.pending_records, s.pending_bytes), (0, 0));
    assert_eq!(s.average_record_size, RECORD_SIZE as f64);
    assert_eq!(s.flush_success_rate, 1.0);

    let recorded = Duration::from_nanos(s.total_flush_time_ns);
    assert!(
        recorded <= measured,
        "recorded {recorded:?} > measured {measured:?}"
    );
    assert!(
        measured - recorded < Duration::from_millis(1),
        "recorded {recorded:?}, measured {measured:?}"
    );
    assert_eq!(s.longest_flush_ns, Some(s.total_flush_time_ns));
    assert_eq!(s.shortest_flush_ns, Some(s.total_flush_time_ns));
    let avg_us = s.average_flush_latency_us;
    assert!((avg_us - recorded.as_secs_f64() * 1e6).abs() < 1e-6);
    // One sample: every percentile is that sample, to histogram precision.
    let us = recorded.as_micros() as u64;
    for p in [50.0, 90.0, 99.0, 99.9] {
        let v = c.metrics().get_flush_latency_percentile(p);
        assert!(
            v >= us && v <= us + us / 1000 + 1,
            "P{p} = {v} µs for a {us} µs flush"
        );
    }
    // Per-flush histograms keep two significant digits: within 1 %, never below.
    for v in [s.records_per_flush.p50, s.records_per_flush.max] {
        assert!((RECORDS..=RECORDS + RECORDS / 100).contains(&v), "{v}");
    }
    let bytes = RECORDS * RECORD_SIZE;
    assert!(s.bytes_per_flush.p999 >= bytes && s.bytes_per_flush.p999 <= bytes + bytes / 100);
    assert!(s.records_per_second > 0.0);
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    ok: bool,
    appended: u64,
    kind: FlushKind,
    cost_us: u64,
}

fn attempts() -> impl Strategy<Value = Vec<Attempt>> {
    let kind = prop_oneof![
        Just(FlushKind::Forced),
        Just(FlushKind::Periodic),
        Just(FlushKind::Batched)
    ];
    proptest::collection::vec(
        (any::<bool>(), 0u64..50, kind, 0u64..5_000).prop_map(|(ok, appended, kind, cost_us)| Attempt {
            ok,
            appended,
            kind,
            cost_us,
        }),
        0..60,
    )
}

proptest! {
    /// A failed flush counts as failed, never as successful, and moves no
    /// records, bytes, timings or histograms; a successful one the reverse.
    #[test]
    fn failed_flushes_count_as_failed_and_never_as_successful(attempts in attempts()) {
        let clock = Arc::new(ManualClock::new());
        let c = FlushController::with_clock(FlushStrategy::Async, clock.clone());
        let (mut ok, mut failed, mut flushed, mut pending, mut time_us) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut by_kind = BTreeMap::<&str, u64>::new();
        for a in &attempts {
            c.record_append(a.appended, a.appended * 10);
            pending += a.appended;
            let r = c.flush_with(a.kind, || {
                clock.advance(Duration::from_micros(a.cost_us));
                if a.ok { Ok(()) } else { Err(a.cost_us) }
            });
            prop_assert_eq!(r.is_ok(), a.ok);
            *by_kind.entry(a.kind.as_str()).or_default() += 1;
            if a.ok {
                ok += 1;
                flushed += pending;
                pending = 0;
                time_us += a.cost_us;
            } else {
                failed += 1;
            }
        }
        let s = c.metrics().snapshot();
        prop_assert_eq!(s.successful_flushes, ok);
        prop_assert_eq!(s.failed_flushes, failed);
        prop_assert_eq!(s.total_flushes, ok + failed);
        prop_assert_eq!(s.forced_flushes, by_kind.get("forced").copied().unwrap_or(0));
        prop_assert_eq!(s.periodic_flushes, by_kind.get("periodic").copied().unwrap_or(0));
        prop_assert_eq!(s.batched_flushes, by_kind.get("batched").copied().unwrap_or(0));
        prop_assert_eq!(s.records_flushed, flushed);
        prop_assert_eq!(s.bytes_flushed, flushed * 10);
        prop_assert_eq!(s.pending_records, pending);
        prop_assert_eq!(s.total_flush_time_ns, time_us * 1_000);
        let rate = if ok + failed == 0 { 1.0 } else { ok as f64 / (ok + failed) as f64 };
        prop_assert_eq!(s.flush_success_rate, rate);
        if ok == 0 {
            prop_assert_eq!(s.longest_flush_ns, None);
            prop_assert_eq!(s.flush_latency_us.max, 0);
            prop_assert_eq!(s.records_per_second, 0.0);
        }
    }

    /// Percentiles never decrease as p grows, lie within the recorded
    /// range, and P100 is the maximum.
    #[test]
    fn percentiles_are_monotonic_in_p(
        latencies_us in proptest::collection::vec(prop_oneof![0u64..3_000, 0u64..100_000_000], 1..300),
        mut ps in proptest::collection::vec(0.0f64..=100.0, 2..20),
    ) {
        let m = FlushControllerMetrics::with_clock(Arc::new(ManualClock::new()));
        for &us in &latencies_us {
            m.record_flush(FlushKind::Forced, 1, 1, Duration::from_micros(us), true);
        }
        ps.extend([50.0, 90.0, 95.0, 99.0, 99.9, 100.0]);
        ps.sort_by(f64::total_cmp);
        let values: Vec<u64> = ps.iter().map(|&p| m.get_flush_latency_percentile(p)).collect();
        for w in values.windows(2) {
            prop_assert!(w[0] <= w[1], "{:?} at {:?}", values, ps);
        }
        let min = *latencies_us.iter().min().unwrap();
        let max = *latencies_us.iter().max().unwrap();
        prop_assert!(values[0] >= min);
        // Histogram values are the top of their bucket: within 0.1 %.
        prop_assert!(*values.last().unwrap() <= max + max / 1000 + 1);
        prop_assert!(*values.last().unwrap() >= max);
        let snap = m.snapshot().flush_latency_us;
        let listed = [snap.p50, snap.p90, snap.p95, snap.p99, snap.p999, snap.max];
        prop_assert!(listed.windows(2).all(|w| w[0] <= w[1]), "{:?}", snap);
    }
}

#[test]
fn throughput_covers_the_recent_window_not_the_whole_run() {
    let clock = Arc::new(ManualClock::new());
    let m = FlushControllerMetrics::with_clock(clock.clone());
    assert_eq!(m.current_records_per_second(), 0.0);

    clock.set(Duration::from_millis(500));
    m.record_flush(FlushKind::Batched, 1_000, 64_000, Duration::from_millis(1), true);
    clock.set(Duration::from_secs(2));
    // Two seconds since creation, all inside the window.
    assert!((m.current_records_per_second() - 500.0).abs() < 1e-9);
    assert!((m.current_bytes_per_second() - 32_000.0).abs() < 1e-9);

    clock.set(Duration::from_millis(20_500));
    m.record_flush(FlushKind::Batched, 450, 900, Duration::from_millis(1), true);
    clock.set(Duration::from_secs(21));
    // Window: the slots from 12 s to now (21 s) — 9 s — holding only the
    // second flush. Since-start averaging would give 1450 / 21.
    let rate = m.current_records_per_second();
    assert!((rate - 50.0).abs() < 1e-9, "{rate}");
    assert!((m.current_bytes_per_second() - 100.0).abs() < 1e-9);

    // Failed flushes move no data.
    m.record_flush(FlushKind::Forced, 10_000, 10_000, Duration::from_millis(1), false);
    assert!((m.current_records_per_second() - 50.0).abs() < 1e-9);

    // Flushing stops: the rate drains to zero.
    clock.set(Duration::from_secs(60));
    assert_eq!(m.current_records_per_second(), 0.0);
    assert_eq!(m.current_bytes_per_second(), 0.0);
    assert_eq!(m.records_flushed(), 1_450);
}

#[test]
fn concurrent_appends_and_flushes_account_for_every_record() {
    const THREADS: u64 = 4;
    const APPENDS: u64 = 20_000;
    let c = Arc::new(FlushController::new(FlushStrategy::Batched(64)));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flusher = {
        let (c, done) = (Arc::clone(&c), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut attempts = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                if let Some(kind) = c.poll().flush_now() {
                    attempts += 1;
                    // Every third flush fails: its records must stay pending.
                    let fail = attempts.is_multiple_of(3);
                    let _ = c.flush_with(kind, || if fail { Err(()) } else { Ok(()) });
                } else {
                    std::thread::yield_now();
                }
            }
        })
    };
    let appenders: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for i in 0..APPENDS {
                    let records = 1 + (i + t) % 3;
                    if let Some(kind) = c.record_append(records, records * 100).flush_now()
                        && i % 50 == 0
                    {
                        // Some appenders flush themselves, concurrently with the flusher.
                        c.flush_with(kind, || Ok::<(), ()>(())).unwrap();
                    }
                }
            })
        })
        .collect();
    for a in appenders {
        a.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    flusher.join().unwrap();

    let total_records: u64 = (0..THREADS)
        .map(|t| (0..APPENDS).map(|i| 1 + (i + t) % 3).sum::<u64>())
        .sum();
    let m = c.metrics();
    assert_eq!(m.records_flushed() + m.pending_records(), total_records);
    assert_eq!(m.bytes_flushed() + m.pending_bytes(), total_records * 100);
    c.flush_with(FlushKind::Forced, || Ok::<(), ()>(())).unwrap();
    let s = m.snapshot();
    assert_eq!(s.records_flushed, total_records);
    assert_eq!(s.pending_records, 0);
    assert_eq!(s.total_flushes, s.successful_flushes + s.failed_flushes);
    assert_eq!(
        s.total_flushes,
        s.forced_flushes + s.periodic_flushes + s.batched_flushes
    );
}

#[test]
fn concurrent_record_flush_counts_exactly() {
    const THREADS: u64 = 4;
    const FLUSHES: u64 = 5_000;
    let m = Arc::new(FlushControllerMetrics::new());
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..FLUSHES {
                    let ok = (i + t) % 10 != 0;
                    m.record_flush(FlushKind::Batched, t + 1, 10, Duration::from_micros(i % 100), ok);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = m.snapshot();
    assert_eq!(s.total_flushes, THREADS * FLUSHES);
    assert_eq!(s.failed_flushes, THREADS * FLUSHES / 10);
    assert_eq!(s.successful_flushes, THREADS * FLUSHES * 9 / 10);
    let records: u64 = (0..THREADS).map(|t| (t + 1) * FLUSHES * 9 / 10).sum();
    assert_eq!(s.records_flushed, records);
    assert_eq!(s.longest_flush_ns, Some(99_000));
    assert_eq!(s.shortest_flush_ns, Some(0));
    assert_eq!(s.records_per_flush.max, THREADS);
    assert_eq!(s.flush_latency_us.max, 99);
}

fn sample_snapshot() -> FlushMetricsSnapshot {
    let clock = Arc::new(ManualClock::new());
    let c = FlushController::with_clock(FlushStrategy::Batched(10), clock.clone());
    for (kind, records, us, ok) in [
        (FlushKind::Batched, 10, 300, true),
        (FlushKind::Periodic, 3, 1_200, true),
        (FlushKind::Forced, 2, 50, false),
        (FlushKind::Forced, 5, 80, true),
    ] {
        c.record_append(records, records * 128);
        let _ = c.flush_with(kind, || {
            clock.advance(Duration::from_micros(us));
            if ok { Ok(()) } else { Err(()) }
        });
    }
    c.record_append(7, 700);
    c.metrics().snapshot()
}

#[test]
fn snapshot_agrees_with_accessors_and_round_trips_through_json() {
    let s = sample_snapshot();
    assert_eq!(
        (s.total_flushes, s.successful_flushes, s.failed_flushes),
        (4, 3, 1)
    );
    assert_eq!(
        (s.forced_flushes, s.periodic_flushes, s.batched_flushes),
        (2, 1, 1)
    );
    // The failed flush's 2 records were covered by the next, forced one.
    assert_eq!(s.records_flushed, 20);
    assert_eq!(s.bytes_flushed, 20 * 128);
    assert_eq!((s.pending_records, s.pending_bytes), (7, 700));
    assert_eq!(s.total_flush_time_ns, 1_580_000);
    assert_eq!(s.longest_flush_ns, Some(1_200_000));
    assert_eq!(s.shortest_flush_ns, Some(80_000));
    assert!((s.average_flush_latency_us - 1_580.0 / 3.0).abs() < 1e-9);
    assert_eq!(s.flush_success_rate, 0.75);
    assert_eq!(s.records_per_flush.max, 10);
    assert_eq!(s.records_per_flush.p50, 7);
    assert_eq!(s.average_record_size, 128.0);

    let json = serde_json::to_string(&s).unwrap();
    let mut back: FlushMetricsSnapshot = serde_json::from_str(&json).unwrap();
    // serde_json's default float parsing may differ in the last bit.
    for (b, a) in [
        (&mut back.average_flush_latency_us, s.average_flush_latency_us),
        (&mut back.flush_success_rate, s.flush_success_rate),
        (&mut back.records_per_second, s.records_per_second),
        (&mut back.bytes_per_second, s.bytes_per_second),
        (&mut back.average_record_size, s.average_record_size),
    ] {
        assert!((*b - a).abs() <= a.abs() * 1e-12, "{b} vs {a}");
        *b = a;
    }
    assert_eq!(back, s);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["flush_latency_us"]["max"], 1_200);
}

/// Parses the exposition text strictly enough to catch malformed output:
/// every sample belongs to a family declared (HELP + TYPE) before it, each
/// series appears once, and every value parses as a number.
fn parse_exposition(text: &str, prefix: &str) -> BTreeMap<String, f64> {
    let mut declared = BTreeMap::<String, String>::new();
    let mut helped = BTreeSet::<String>::new();
    let mut samples = BTreeMap::new();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.is_empty());
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
            assert!(declared.insert(name.to_string(), kind.to_string()).is_none());
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with(prefix), "{line}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            let family = ["_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| declared.get(*f).is_some_and(|k| k == "summary"))
                })
                .unwrap_or(name);
            assert!(declared.contains_key(family), "sample before its family: {line}");
            if let Some(labels) = series.strip_prefix(name)
                && !labels.is_empty()
            {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                let inner = &labels[1..labels.len() - 1];
                let (k, v) = inner.split_once('=').unwrap();
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                assert!(v.starts_with('"') && v.ends_with('"') && v.len() >= 2, "{line}");
            }
            let v: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(
                samples.insert(series.to_string(), v).is_none(),
                "series twice: {line}"
            );
        }
    }
    samples
}

#[test]
fn prometheus_text_is_well_formed_and_carries_the_snapshot() {
    let s = sample_snapshot();
    let text = render_prometheus(&s, "aof_flush");
    let samples = parse_exposition(&text, "aof_flush_");
    let get = |k: &str| *samples.get(k).unwrap_or_else(|| panic!("missing {k} in\n{text}"));
    assert_eq!(get("aof_flush_flushes_total{outcome=\"success\"}"), 3.0);
    assert_eq!(get("aof_flush_flushes_total{outcome=\"failure\"}"), 1.0);
    assert_eq!(get("aof_flush_flushes_by_kind_total{kind=\"forced\"}"), 2.0);
    assert_eq!(get("aof_flush_flushes_by_kind_total{kind=\"periodic\"}"), 1.0);
    assert_eq!(get("aof_flush_flushes_by_kind_total{kind=\"batched\"}"), 1.0);
    assert_eq!(get("aof_flush_records_flushed_total"), 20.0);
    assert_eq!(get("aof_flush_bytes_flushed_total"), 2_560.0);
    assert_eq!(get("aof_flush_pending_records"), 7.0);
    assert_eq!(get("aof_flush_pending_bytes"), 700.0);
    assert_eq!(get("aof_flush_flush_duration_seconds_count"), 3.0);
    assert!((get("aof_flush_flush_duration_seconds_sum") - 0.00158).abs() < 1e-12);
    assert!((get("aof_flush_flush_duration_seconds{quantile=\"0.999\"}") - 0.0012).abs() < 2e-6);
    assert!((get("aof_flush_flush_duration_longest_seconds") - 0.0012).abs() < 1e-12);
    assert!((get("aof_flush_flush_duration_shortest_seconds") - 0.00008).abs() < 1e-12);
    assert_eq!(get("aof_flush_records_per_flush{quantile=\"0.5\"}"), 7.0);
    // Decimal microseconds render as the same decimal seconds.
    assert!(
        text.contains("aof_flush_flush_duration_seconds{quantile=\"0.5\"} 0.0003\n"),
        "{text}"
    );
    assert_eq!(get("aof_flush_records_per_flush_sum"), 20.0);
    assert_eq!(get("aof_flush_bytes_per_flush_count"), 3.0);
    assert_eq!(get("aof_flush_flush_success_ratio"), 0.75);
    assert_eq!(get("aof_flush_average_record_size_bytes"), 128.0);
    assert!(get("aof_flush_records_per_second") > 0.0);

    // No flush yet: no longest/shortest gauges, still well formed.
    let empty = render_prometheus(&FlushMetricsSnapshot::default(), "x");
    let samples = parse_exposition(&empty, "x_");
    assert!(!samples.keys().any(|k| k.contains("longest")));
    // A prefix with characters Prometheus forbids is sanitised.
    let odd = render_prometheus(&s, "my-log.0");
    parse_exposition(&odd, "my_log_0_");
}
