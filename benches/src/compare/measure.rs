//! Paired rounds with per-operation latency samples.
//!
//! A round runs one side (the backend or its raw baseline) for a while and
//! records the latency of every call. Rounds of the two sides alternate, and
//! which side goes first alternates too, so drift in the machine's speed hits
//! both alike. The reported rate is the median round; the ratio is the median
//! of the per-round ratios; percentiles come from every sample of every
//! measured round.

use super::Res;
use crate::median;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long one round of one side may run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop after this much time…
    pub time: Duration,
    /// …or after this many calls, whichever comes first.
    pub max_calls: u64,
}

impl Limits {
    /// Time-bound only.
    #[must_use]
    pub const fn time(time: Duration) -> Self {
        Self {
            time,
            max_calls: u64::MAX,
        }
    }
}

/// Per-call latencies of one thread.
#[derive(Debug)]
pub struct Sampler {
    prev: Instant,
    /// Units of work done (entries, lookups, …).
    pub units: u64,
    /// Latency of every call, in ns.
    pub samples: Vec<u64>,
    /// Sum of the samples, in ns.
    pub busy_ns: u64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    /// A sampler whose first call starts now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            prev: Instant::now(),
            units: 0,
            samples: Vec::with_capacity(1 << 12),
            busy_ns: 0,
        }
    }

    /// The next call starts now (time since the last tick is not counted).
    pub fn begin(&mut self) {
        self.prev = Instant::now();
    }

    /// A call that did `units` of work ended now; the next one starts now.
    pub fn tick(&mut self, units: u64) -> Instant {
        let now = Instant::now();
        let ns = u64::try_from(now.duration_since(self.prev).as_nanos()).unwrap_or(u64::MAX);
        self.samples.push(ns);
        self.busy_ns += ns;
        self.units += units;
        self.prev = now;
        now
    }

    /// Calls made so far.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.samples.len() as u64
    }
}

/// The outcome of one round of one side.
#[derive(Debug, Default)]
pub struct Round {
    /// Units of work.
    pub units: u64,
    /// Seconds the round took (busy time for single-threaded rounds, wall
    /// time for concurrent ones).
    pub secs: f64,
    /// Per-call latencies, ns.
    pub samples: Vec<u64>,
    /// The writer of a concurrent round: units and per-call latencies.
    pub writer: Option<(u64, Vec<u64>)>,
}

impl Round {
    /// A single-threaded round from its sampler.
    #[must_use]
    pub fn from_sampler(s: Sampler) -> Self {
        Self {
            units: s.units,
            secs: s.busy_ns as f64 / 1e9,
            samples: s.samples,
            writer: None,
        }
    }

    fn rate(&self) -> f64 {
        self.units as f64 / self.secs.max(1e-12)
    }

    fn writer_rate(&self) -> Option<f64> {
        self.writer
            .as_ref()
            .map(|(units, _)| *units as f64 / self.secs.max(1e-12))
    }
}

/// Runs `op` (which returns the units of work it did) until `limits` run out.
pub fn timed(limits: Limits, op: &mut dyn FnMut() -> Res<u64>) -> Res<Round> {
    let mut s = Sampler::new();
    let start = Instant::now();
    s.begin();
    loop {
        let units = op()?;
        let now = s.tick(units);
        if s.calls() >= limits.max_calls || now.duration_since(start) >= limits.time {
            return Ok(Round::from_sampler(s));
        }
    }
}

/// Rates and latencies of one side over all measured rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Side {
    /// Median units per second.
    pub rate: f64,
    /// Median latency of a call, µs.
    pub p50_us: f64,
    /// 99th percentile latency of a call, µs.
    pub p99_us: f64,
}

/// Subject and baseline, measured in alternating rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pair {
    /// The backend.
    pub subject: Side,
    /// Its raw baseline.
    pub baseline: Side,
    /// Median of the per-round subject / baseline rates.
    pub ratio: f64,
    /// Smallest and largest per-round ratio: how much the machine drifted.
    pub ratio_range: (f64, f64),
    /// The writer thread of a concurrent workload, with its ratio and range.
    pub writer: Option<(Side, Side, f64, (f64, f64))>,
}

/// The `q` quantile of sorted nanosecond samples, in µs.
#[must_use]
pub fn percentile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e3
}

fn min_max(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn side(rates: &mut [f64], samples: &mut [u64]) -> Side {
    samples.sort_unstable();
    Side {
        rate: median(rates),
        p50_us: percentile_us(samples, 0.50),
        p99_us: percentile_us(samples, 0.99),
    }
}

/// Runs `rounds` rounds of each side, alternating, after `warmup` unrecorded
/// rounds of each.
pub fn alternate(
    rounds: usize,
    warmup: usize,
    subject: &mut dyn FnMut() -> Res<Round>,
    baseline: &mut dyn FnMut() -> Res<Round>,
) -> Res<Pair> {
    for _ in 0..warmup {
        subject()?;
        baseline()?;
    }
    let (mut sr, mut br, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ss, mut bs) = (Vec::new(), Vec::new());
    let (mut swr, mut bwr, mut wratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sws, mut bws) = (Vec::new(), Vec::new());
    for r in 0..rounds.max(1) {
        let (s, b) = if r % 2 == 0 {
            let s = subject()?;
            (s, baseline()?)
        } else {
            let b = baseline()?;
            (subject()?, b)
        };
        if std::env::var_os("AOF_COMPARE_DEBUG").is_some() {
            eprintln!(
                "round {r}: subject {:.0}/s ({} units, {:.4} s), baseline {:.0}/s ({} units, {:.4} s)",
                s.rate(),
                s.units,
                s.secs,
                b.rate(),
                b.units,
                b.secs
            );
        }
        sr.push(s.rate());
        br.push(b.rate());
        ratio.push(s.rate() / b.rate());
        if let (Some(w), Some(v)) = (s.writer_rate(), b.writer_rate()) {
            swr.push(w);
            bwr.push(v);
            wratio.push(w / v.max(1e-12));
        }
        ss.extend_from_slice(&s.samples);
        bs.extend_from_slice(&b.samples);
        if let Some((_, w)) = &s.writer {
            sws.extend_from_slice(w);
        }
        if let Some((_, w)) = &b.writer {
            bws.extend_from_slice(w);
        }
    }
    let writer = (!swr.is_empty()).then(|| {
        let range = min_max(&wratio);
        (
            side(&mut swr, &mut sws),
            side(&mut bwr, &mut bws),
            median(&mut wratio),
            range,
        )
    });
    let ratio_range = min_max(&ratio);
    Ok(Pair {
        subject: side(&mut sr, &mut ss),
        baseline: side(&mut br, &mut bs),
        ratio: median(&mut ratio),
        ratio_range,
        writer,
    })
}

/// What a reader or writer thread of a concurrent round did.
pub type Lane = Res<(u64, Vec<u64>)>;

/// `readers` reader threads and one writer thread, run together for
/// `duration`. Each thread gets its number (readers only), the start gate
/// and the stop flag: it sets itself up (opens connections, …), waits at the
/// gate, then works until the flag is set and returns its units and
/// per-call latencies. The clock starts when every thread has passed the gate.
pub fn concurrent(
    readers: usize,
    duration: Duration,
    reader: &(dyn Fn(usize, &Barrier, &AtomicBool) -> Lane + Sync),
    writer: &(dyn Fn(&Barrier, &AtomicBool) -> Lane + Sync),
) -> Res<Round> {
    let stop = AtomicBool::new(false);
    let gate = Barrier::new(readers + 2);
    let results: Mutex<Vec<(bool, Lane)>> = Mutex::new(Vec::new());
    let elapsed = std::thread::scope(|s| {
        for r in 0..readers {
            let (stop, gate, results) = (&stop, &gate, &results);
            s.spawn(move || {
                let out = reader(r, gate, stop);
                results
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((false, out));
            });
        }
        {
            let (stop, gate, results) = (&stop, &gate, &results);
            s.spawn(move || {
                let out = writer(gate, stop);
                results
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((true, out));
            });
        }
        gate.wait();
        let start = Instant::now();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        start.elapsed()
    });
    let secs = elapsed.as_secs_f64();
    let mut round = Round {
        secs,
        ..Round::default()
    };
    let mut writer_lane = (0, Vec::new());
    for (is_writer, lane) in results.into_inner().unwrap_or_else(PoisonError::into_inner) {
        let (units, samples) = lane?;
        if is_writer {
            writer_lane = (units, samples);
        } else {
            round.units += units;
            round.samples.extend(samples);
        }
    }
    round.writer = Some(writer_lane);
    Ok(round)
}

/// Runs `op` until `stop` is set: the body of a reader or writer thread.
pub fn until_stopped(stop: &AtomicBool, op: &mut dyn FnMut() -> Res<()>) -> Lane {
    let mut s = Sampler::new();
    while !stop.load(Ordering::Relaxed) {
        op()?;
        s.tick(1);
    }
    Ok((s.units, s.samples))
}
