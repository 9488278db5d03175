//! The one measuring loop of both harnesses: samples, rounds, medians,
//! percentiles, and ratios against a baseline measured in the same run.
//!
//! A [`Round`] is one stretch of work by one side (the subject, or its
//! baseline): units of work, the seconds they took, and the latency of every
//! call where calls are timed. [`alternate`] runs rounds of the two sides in
//! turn, and which side goes first alternates too, so drift in the machine's
//! speed hits both alike. The reported rate of a side is its median round;
//! the ratio is the median of the per-round ratios; percentiles come from
//! every sample of every measured round.
//!
//! Ways to make a round: [`timed`] (a call in a loop, each call timed),
//! [`batch`] (`n` operations in one call, timed as a whole, `n` from
//! [`calibrate`]), [`threads`] and [`concurrent`] (threads started together),
//! or by hand with a [`Sampler`].
//!
//! `AOF_BENCH_DEBUG=1` (or `AOF_COMPARE_DEBUG=1`) prints every round's rates
//! on standard error.

use crate::Res;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many rounds, and how long each, for calibrated measurements ([`paired`]).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Measured rounds per side.
    pub rounds: usize,
    /// Least wall time of one round.
    pub round_time: Duration,
}

impl Budget {
    /// The full run.
    #[must_use]
    pub const fn full() -> Self {
        Self {
            rounds: 9,
            round_time: Duration::from_millis(150),
        }
    }

    /// `--quick`: fewer, shorter rounds.
    #[must_use]
    pub const fn quick() -> Self {
        Self {
            rounds: 5,
            round_time: Duration::from_millis(40),
        }
    }
}

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
        let ns = nanos(now.duration_since(self.prev));
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

/// `d` in whole nanoseconds, saturating (at 584 years).
#[must_use]
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The outcome of one round of one side.
#[derive(Debug, Default)]
pub struct Round {
    /// Units of work.
    pub units: u64,
    /// Seconds the round took (busy time for single-threaded rounds, wall
    /// time for concurrent ones).
    pub secs: f64,
    /// Per-call latencies, ns (empty where calls are not timed one by one).
    pub samples: Vec<u64>,
    /// The writer of a concurrent round: units and per-call latencies.
    pub writer: Option<Work>,
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

    /// `units` of work in `elapsed`, calls not timed one by one.
    #[must_use]
    pub fn whole(units: u64, elapsed: Duration) -> Self {
        Self {
            units,
            secs: elapsed.as_secs_f64(),
            ..Self::default()
        }
    }

    /// Units per second.
    #[must_use]
    pub fn rate(&self) -> f64 {
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

/// One call of `op(n)`, which performs `n` operations, timed as a whole.
pub fn batch(n: u64, op: &mut dyn FnMut(u64) -> Res<()>) -> Res<Round> {
    let t = Instant::now();
    op(n)?;
    Ok(Round::whole(n, t.elapsed()))
}

/// Runs `op(n)` (which performs `n` operations) until one call takes at
/// least `round_time`, and returns that `n`.
pub fn calibrate(round_time: Duration, op: &mut dyn FnMut(u64) -> Res<()>) -> Res<u64> {
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        op(n)?;
        let el = t.elapsed();
        if el >= round_time || n >= 1 << 40 {
            return Ok(n);
        }
        let scale = if el.is_zero() {
            100.0
        } else {
            round_time.as_secs_f64() / el.as_secs_f64() * 1.2
        };
        n = ((n as f64) * scale.clamp(1.5, 100.0)).ceil() as u64;
    }
}

/// Rates and latencies of one side over all measured rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Side {
    /// Median units per second.
    pub rate: f64,
    /// Median latency of a call, µs; `None` where calls were not timed.
    pub p50_us: Option<f64>,
    /// 99th percentile latency of a call, µs; `None` where calls were not timed.
    pub p99_us: Option<f64>,
}

/// Subject and baseline, measured in alternating rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pair {
    /// The subject.
    pub subject: Side,
    /// Its baseline.
    pub baseline: Side,
    /// Median of the per-round subject / baseline rates.
    pub ratio: f64,
    /// Smallest and largest per-round ratio: how much the machine drifted.
    pub ratio_range: (f64, f64),
    /// The writer thread of a concurrent workload: subject, baseline, ratio
    /// and ratio range.
    pub writer: Option<(Side, Side, f64, (f64, f64))>,
}

/// The median of `xs` (NaN if it is empty).
#[must_use]
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The `q` quantile of sorted nanosecond samples, in µs; `None` if there are none.
#[must_use]
pub fn percentile_us(sorted: &[u64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let i = (last as f64 * q).round() as usize;
    Some(sorted[i.min(last)] as f64 / 1e3)
}

fn min_max(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Rates and samples of one side, gathered round by round.
#[derive(Debug, Default)]
struct Tally {
    rates: Vec<f64>,
    samples: Vec<u64>,
}

impl Tally {
    fn add(&mut self, rate: f64, samples: &[u64]) {
        self.rates.push(rate);
        self.samples.extend_from_slice(samples);
    }

    fn side(mut self) -> Side {
        self.samples.sort_unstable();
        Side {
            rate: median(&mut self.rates),
            p50_us: percentile_us(&self.samples, 0.50),
            p99_us: percentile_us(&self.samples, 0.99),
        }
    }
}

fn debug() -> bool {
    std::env::var_os("AOF_BENCH_DEBUG").is_some() || std::env::var_os("AOF_COMPARE_DEBUG").is_some()
}

/// Runs `rounds` rounds of one side with no baseline (at least one).
pub fn repeat(rounds: usize, side: &mut dyn FnMut() -> Res<Round>) -> Res<Side> {
    let mut tally = Tally::default();
    for r in 0..rounds.max(1) {
        let round = side()?;
        if debug() {
            eprintln!(
                "round {r}: {:.0}/s ({} units, {:.4} s)",
                round.rate(),
                round.units,
                round.secs
            );
        }
        tally.add(round.rate(), &round.samples);
    }
    Ok(tally.side())
}

/// Runs `rounds` rounds of each side (at least one), alternating, after
/// `warmup` unrecorded rounds of each.
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
    let (mut s_tally, mut b_tally, mut ratios) = (Tally::default(), Tally::default(), Vec::new());
    let (mut sw_tally, mut bw_tally, mut w_ratios) = (Tally::default(), Tally::default(), Vec::new());
    for r in 0..rounds.max(1) {
        let (s, b) = if r % 2 == 0 {
            let s = subject()?;
            (s, baseline()?)
        } else {
            let b = baseline()?;
            (subject()?, b)
        };
        if debug() {
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
        s_tally.add(s.rate(), &s.samples);
        b_tally.add(b.rate(), &b.samples);
        ratios.push(s.rate() / b.rate());
        if let (Some(w), Some(v)) = (s.writer_rate(), b.writer_rate()) {
            sw_tally.add(w, s.writer.as_ref().map_or(&[], |(_, x)| x));
            bw_tally.add(v, b.writer.as_ref().map_or(&[], |(_, x)| x));
            w_ratios.push(w / v.max(1e-12));
        }
    }
    let writer = (!w_ratios.is_empty()).then(|| {
        let range = min_max(&w_ratios);
        (sw_tally.side(), bw_tally.side(), median(&mut w_ratios), range)
    });
    Ok(Pair {
        subject: s_tally.side(),
        baseline: b_tally.side(),
        ratio_range: min_max(&ratios),
        ratio: median(&mut ratios),
        writer,
    })
}

/// Subject and baseline, each a call performing `n` operations: `n` is
/// calibrated per side so that one call takes `budget.round_time`, then
/// [`alternate`] runs `budget.rounds` rounds of one call each.
pub fn paired(
    budget: Budget,
    subject: &mut dyn FnMut(u64) -> Res<()>,
    baseline: &mut dyn FnMut(u64) -> Res<()>,
) -> Res<Pair> {
    let ns = calibrate(budget.round_time, subject)?;
    let nb = calibrate(budget.round_time, baseline)?;
    alternate(budget.rounds, 0, &mut || batch(ns, subject), &mut || {
        batch(nb, baseline)
    })
}

/// What one thread of a concurrent round did: units and per-call latencies (ns).
pub type Work = (u64, Vec<u64>);

/// How one thread of a concurrent round ended.
pub type Lane = Res<Work>;

/// The body of thread `i` of [`threads`]: it sets itself up, waits at the
/// gate, then works until the stop flag is set. It must pass the gate
/// before it returns, even with an error, or the other threads wait forever.
pub type LaneFn<'a> = dyn Fn(usize, &Barrier, &AtomicBool) -> Lane + Sync + 'a;

/// Runs `count` threads together for `duration`. Each thread gets its
/// number, the start gate and the stop flag (see [`LaneFn`]). The clock
/// starts when every thread has passed the gate and stops when every thread
/// has returned and `finish` (e.g. a final flush) has run. Returns the
/// elapsed time and every thread's lane, in thread order.
pub fn threads(
    count: usize,
    duration: Duration,
    lane: &LaneFn<'_>,
    finish: &mut dyn FnMut() -> Res<()>,
) -> Res<(Duration, Vec<Work>)> {
    let stop = AtomicBool::new(false);
    let gate = Barrier::new(count + 1);
    let results: Mutex<Vec<(usize, Lane)>> = Mutex::new(Vec::with_capacity(count));
    let start = std::thread::scope(|s| {
        for i in 0..count {
            let (stop, gate, results) = (&stop, &gate, &results);
            s.spawn(move || {
                let out = lane(i, gate, stop);
                results
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((i, out));
            });
        }
        gate.wait();
        let start = Instant::now();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        start
    });
    finish()?;
    let elapsed = start.elapsed();
    let mut lanes = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    lanes.sort_by_key(|(i, _)| *i);
    let lanes = lanes.into_iter().map(|(_, lane)| lane).collect::<Res<Vec<_>>>()?;
    Ok((elapsed, lanes))
}

/// `readers` reader threads and one writer thread, run together for
/// `duration` (see [`threads`]). The round's units and samples are the
/// readers'; the writer's go to [`Round::writer`].
pub fn concurrent(
    readers: usize,
    duration: Duration,
    reader: &(dyn Fn(usize, &Barrier, &AtomicBool) -> Lane + Sync),
    writer: &(dyn Fn(&Barrier, &AtomicBool) -> Lane + Sync),
) -> Res<Round> {
    let lane = |i: usize, gate: &Barrier, stop: &AtomicBool| {
        if i < readers {
            reader(i, gate, stop)
        } else {
            writer(gate, stop)
        }
    };
    let (elapsed, mut lanes) = threads(readers + 1, duration, &lane, &mut || Ok(()))?;
    let writer_lane = lanes.pop().ok_or("the writer thread reported nothing")?;
    let mut round = Round {
        secs: elapsed.as_secs_f64(),
        writer: Some(writer_lane),
        ..Round::default()
    };
    for (units, samples) in lanes {
        round.units += units;
        round.samples.extend(samples);
    }
    Ok(round)
}

/// Runs `op` until `stop` is set, timing every call: the body of a reader
/// or writer thread.
pub fn until_stopped(stop: &AtomicBool, op: &mut dyn FnMut() -> Res<()>) -> Lane {
    let mut s = Sampler::new();
    while !stop.load(Ordering::Relaxed) {
        op()?;
        s.tick(1);
    }
    Ok((s.units, s.samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
        let sorted: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_us(&sorted, 0.5), Some(51.0));
        assert_eq!(percentile_us(&sorted, 0.99), Some(99.0));
        assert_eq!(percentile_us(&[], 0.5), None);
    }

    #[test]
    fn alternate_reports_medians_and_the_median_ratio() {
        let mut s = [10.0, 30.0, 20.0].into_iter();
        let mut b = [5.0, 10.0, 20.0].into_iter();
        let round = |rate: f64| Round {
            units: rate as u64,
            secs: 1.0,
            samples: vec![rate as u64 * 1000],
            writer: None,
        };
        let pair = alternate(3, 0, &mut || Ok(round(s.next().ok_or("no more")?)), &mut || {
            Ok(round(b.next().ok_or("no more")?))
        })
        .unwrap();
        assert_eq!(pair.subject.rate, 20.0);
        assert_eq!(pair.baseline.rate, 10.0);
        // Per-round ratios 2, 3, 1.
        assert_eq!(pair.ratio, 2.0);
        assert_eq!(pair.ratio_range, (1.0, 3.0));
        assert_eq!(pair.subject.p50_us, Some(20.0));
        assert!(pair.writer.is_none());
    }

    #[test]
    fn an_error_in_either_side_fails_the_measurement() {
        let ok = || Ok(Round::whole(1, Duration::from_millis(1)));
        let err = alternate(3, 0, &mut ok.clone(), &mut || Err("baseline broke".into()));
        assert_eq!(err.unwrap_err().to_string(), "baseline broke");
        let err = paired(Budget::quick(), &mut |_| Err("read failed".into()), &mut |_| {
            Ok(())
        });
        assert_eq!(err.unwrap_err().to_string(), "read failed");
        let err = threads(
            2,
            Duration::from_millis(1),
            &|i, gate, _| {
                gate.wait();
                if i == 1 {
                    Err("thread 1 broke".into())
                } else {
                    Ok((1, Vec::new()))
                }
            },
            &mut || Ok(()),
        );
        assert_eq!(err.unwrap_err().to_string(), "thread 1 broke");
    }

    #[test]
    fn concurrent_keeps_the_writer_apart() {
        let round = concurrent(
            2,
            Duration::from_millis(5),
            &|_, gate, _| {
                gate.wait();
                Ok((10, vec![1000; 10]))
            },
            &|gate, _| {
                gate.wait();
                Ok((3, vec![2000; 3]))
            },
        )
        .unwrap();
        assert_eq!(round.units, 20);
        assert_eq!(round.samples.len(), 20);
        assert_eq!(round.writer.as_ref().map(|w| w.0), Some(3));
        assert!(round.secs >= 0.005);
    }
}
