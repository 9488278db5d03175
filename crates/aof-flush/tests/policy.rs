//! The flush policy, alone and driven through a controller by a manual
//! clock, against an independent model of the rule "flush exactly when the
//! batch size is reached or the interval has elapsed, whichever comes first".

use aof_flush::{FlushController, FlushDecision, FlushKind, FlushPolicy, ManualClock, PendingState};
use aof_record::FlushStrategy;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

fn strategies() -> impl Strategy<Value = FlushStrategy> {
    prop_oneof![
        Just(FlushStrategy::Sync),
        Just(FlushStrategy::Async),
        (1u64..20).prop_map(FlushStrategy::Batched),
        (1u64..40).prop_map(FlushStrategy::Periodic),
        (1u64..20, 1u64..40).prop_map(|(batch_size, interval_ms)| FlushStrategy::BatchedOrPeriodic {
            batch_size,
            interval_ms
        }),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// Append `records` records of `bytes` bytes in one call.
    Append { records: u64, bytes: u64 },
    /// Advance the clock by this many microseconds, then poll.
    Tick(u64),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (0u64..4, 0u64..300).prop_map(|(records, bytes)| Op::Append { records, bytes }),
        // Whole milliseconds land exactly on interval boundaries; odd
        // microseconds land between them.
        2 => (0u64..15).prop_map(|ms| Op::Tick(ms * 1_000)),
        2 => (0u64..15_000).prop_map(Op::Tick),
    ];
    proptest::collection::vec(op, 0..120)
}

/// The rule, restated over plain integers (microseconds).
#[derive(Debug, Default)]
struct Model {
    records: u64,
    bytes: u64,
    now_us: u64,
    last_flush_us: u64,
}

impl Model {
    fn expected(&self, strategy: FlushStrategy) -> FlushDecision {
        if self.records == 0 && self.bytes == 0 {
            return FlushDecision::Wait { next_deadline: None };
        }
        let elapsed = self.now_us - self.last_flush_us;
        let batch_reached = strategy.batch_size().is_some_and(|n| self.records >= n);
        let interval_us = strategy.interval_ms().map(|ms| ms * 1_000);
        if batch_reached {
            FlushDecision::Now(FlushKind::Batched)
        } else if interval_us.is_some_and(|i| elapsed >= i) {
            FlushDecision::Now(FlushKind::Periodic)
        } else {
            FlushDecision::Wait {
                next_deadline: interval_us.map(|i| Duration::from_micros(i - elapsed)),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// For every strategy and every sequence of appends and clock ticks, the
    /// controller says "flush" exactly when the model does, with the same
    /// kind and deadline; flushing when told resets the model.
    #[test]
    fn flushes_exactly_when_batch_or_interval_is_reached(
        strategy in strategies(),
        ops in ops(),
        flush_cost_us in 0u64..3_000,
    ) {
        let clock = Arc::new(ManualClock::new());
        let c = FlushController::with_clock(strategy, clock.clone());
        let mut model = Model::default();
        let mut flushes = 0u64;
        let mut flushed_records = 0u64;
        for op in ops {
            let decision = match op {
                Op::Append { records, bytes } => {
                    model.records += records;
                    model.bytes += bytes;
                    c.record_append(records, bytes)
                }
                Op::Tick(us) => {
                    clock.advance(Duration::from_micros(us));
                    model.now_us += us;
                    c.poll()
                }
            };
            let expected = model.expected(strategy);
            prop_assert_eq!(decision, expected, "model {:?}", model);
            if matches!(strategy, FlushStrategy::Sync | FlushStrategy::Async) {
                prop_assert!(!decision.is_now());
            }
            if let Some(d) = decision.next_deadline() {
                // The deadline is exact: a nanosecond before it nothing is
                // due, at it a periodic flush is.
                let policy = c.policy();
                let mut s = c.pending();
                s.since_last_flush += d - Duration::from_nanos(1);
                prop_assert!(!policy.decide(&s).is_now());
                s.since_last_flush += Duration::from_nanos(1);
                prop_assert_eq!(policy.decide(&s), FlushDecision::Now(FlushKind::Periodic));
            }
            if let FlushDecision::Now(kind) = decision {
                let r: Result<(), ()> = c.flush_with(kind, || {
                    clock.advance(Duration::from_micros(flush_cost_us));
                    Ok(())
                });
                prop_assert!(r.is_ok());
                flushes += 1;
                flushed_records += model.records;
                model.records = 0;
                model.bytes = 0;
                model.last_flush_us = model.now_us;
                model.now_us += flush_cost_us;
                prop_assert_eq!(c.poll(), model.expected(strategy));
            }
        }
        let m = c.metrics();
        prop_assert_eq!(m.successful_flushes(), flushes);
        prop_assert_eq!(m.records_flushed(), flushed_records);
        prop_assert_eq!(m.pending_records(), model.records);
        prop_assert_eq!(m.pending_bytes(), model.bytes);
    }

    /// One record every `gap_us`: the first flush comes at append number
    /// `min(batch_size, ceil(interval / gap))`, of the kind that got there first.
    #[test]
    fn whichever_limit_comes_first_triggers(
        batch_size in 1u64..50,
        interval_ms in 1u64..50,
        gap_us in 1u64..5_000,
    ) {
        let strategy = FlushStrategy::BatchedOrPeriodic { batch_size, interval_ms };
        let clock = Arc::new(ManualClock::new());
        let c = FlushController::with_clock(strategy, clock.clone());
        let appends_to_interval = (interval_ms * 1_000).div_ceil(gap_us);
        let (expected_at, expected_kind) = if batch_size <= appends_to_interval {
            (batch_size, FlushKind::Batched)
        } else {
            (appends_to_interval, FlushKind::Periodic)
        };
        for i in 1..=expected_at {
            clock.advance(Duration::from_micros(gap_us));
            let d = c.record_append(1, 10);
            if i < expected_at {
                prop_assert!(!d.is_now(), "append {} of {}: {:?}", i, expected_at, d);
            } else {
                prop_assert_eq!(d, FlushDecision::Now(expected_kind));
            }
        }
    }

    /// The pure policy on arbitrary states: "now" implies a limit is
    /// reached, a reached limit implies "now", and nothing pending never flushes.
    #[test]
    fn policy_decides_from_limits_only(
        strategy in strategies(),
        records in prop_oneof![0u64..30, any::<u64>()],
        bytes in prop_oneof![0u64..2, any::<u64>()],
        since_us in prop_oneof![0u64..60_000, any::<u64>()],
    ) {
        let p = FlushPolicy::new(strategy);
        prop_assert_eq!(p.strategy(), strategy);
        let s = PendingState { records, bytes, since_last_flush: Duration::from_micros(since_us) };
        let empty = records == 0 && bytes == 0;
        let batch = strategy.batch_size().is_some_and(|n| records >= n);
        let time = strategy
            .interval_ms()
            .is_some_and(|ms| Duration::from_micros(since_us) >= Duration::from_millis(ms));
        match p.decide(&s) {
            FlushDecision::Now(FlushKind::Batched) => prop_assert!(!empty && batch),
            FlushDecision::Now(FlushKind::Periodic) => prop_assert!(!empty && time && !batch),
            FlushDecision::Wait { next_deadline } => {
                prop_assert!(empty || !(batch || time));
                prop_assert_eq!(next_deadline.is_some(), !empty && strategy.interval_ms().is_some());
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

#[test]
fn sync_appends_never_ask_for_a_flush_but_pending_still_counts() {
    let c = FlushController::new(FlushStrategy::Sync);
    for _ in 0..1_000 {
        assert_eq!(
            c.record_append(1, 64),
            FlushDecision::Wait { next_deadline: None }
        );
    }
    assert_eq!(c.pending().records, 1_000);
    assert_eq!(c.pending().bytes, 64_000);
    assert_eq!(c.poll(), FlushDecision::Wait { next_deadline: None });
}
