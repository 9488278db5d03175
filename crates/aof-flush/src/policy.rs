//! The flush policy as a pure decision: [`FlushPolicy::decide`] maps a
//! [`PendingState`] to a [`FlushDecision`] without I/O and without reading a
//! clock, so every strategy is testable with plain values.

use aof_record::config::FlushStrategy;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Why a flush ran. Metrics count flushes by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FlushKind {
    /// Asked for explicitly: a `Sync` append, an explicit flush, a close.
    Forced,
    /// The strategy's interval elapsed with records pending.
    Periodic,
    /// The strategy's batch size was reached.
    Batched,
}

impl FlushKind {
    /// Every kind, in the order metrics report them.
    pub const ALL: [FlushKind; 3] = [FlushKind::Forced, FlushKind::Periodic, FlushKind::Batched];

    /// The lower-case name used in metric labels and serialised forms.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Forced => "forced",
            Self::Periodic => "periodic",
            Self::Batched => "batched",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Forced => 0,
            Self::Periodic => 1,
            Self::Batched => 2,
        }
    }
}

impl fmt::Display for FlushKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Work appended but not yet made durable, and how long ago the last
/// successful flush started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PendingState {
    /// Records appended since the last successful flush.
    pub records: u64,
    /// Bytes appended since the last successful flush.
    pub bytes: u64,
    /// Time since the last successful flush started (or since the
    /// controller was created, before the first flush).
    pub since_last_flush: Duration,
}

impl PendingState {
    /// Whether anything at all is pending.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.records == 0 && self.bytes == 0
    }
}

/// What the policy says to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FlushDecision {
    /// Flush now; the kind says why.
    Now(FlushKind),
    /// Do not flush yet.
    Wait {
        /// Time from now until a periodic flush becomes due, if nothing else
        /// changes; `None` when no time trigger applies (the strategy has no
        /// interval, or nothing is pending).
        next_deadline: Option<Duration>,
    },
}

impl FlushDecision {
    /// The kind of flush to run now, if the decision is to flush.
    #[must_use]
    pub const fn flush_now(&self) -> Option<FlushKind> {
        match *self {
            Self::Now(kind) => Some(kind),
            Self::Wait { .. } => None,
        }
    }

    /// Whether the decision is to flush now.
    #[must_use]
    pub const fn is_now(&self) -> bool {
        matches!(self, Self::Now(_))
    }

    /// The time until a periodic flush becomes due, for a [`FlushDecision::Wait`]
    /// with a time trigger; `None` otherwise.
    #[must_use]
    pub const fn next_deadline(&self) -> Option<Duration> {
        match *self {
            Self::Wait { next_deadline } => next_deadline,
            Self::Now(_) => None,
        }
    }
}

/// Decides when pending work must be flushed, for one [`FlushStrategy`].
///
/// The rules, for a [`PendingState`] `s`:
///
/// * nothing pending (`s.records == 0 && s.bytes == 0`): never flush, and no
///   deadline;
/// * [`FlushStrategy::Sync`] and [`FlushStrategy::Async`]: never flush from
///   here (a `Sync` engine forces a flush per append, an `Async` one only on
///   an explicit flush), no deadline;
/// * a batch size `n`: flush ([`FlushKind::Batched`]) once `s.records >= n`;
/// * an interval `i`: flush ([`FlushKind::Periodic`]) once
///   `s.since_last_flush >= i`, else wait with deadline
///   `i - s.since_last_flush`;
/// * both ([`FlushStrategy::BatchedOrPeriodic`]): whichever is reached
///   first; if both hold at once the flush is reported as `Batched`.
///
/// A batch size or interval of zero (which [`aof_record::AofConfig`]
/// rejects) degenerates to "flush whenever anything is pending".
///
/// ```
/// use aof_flush::{FlushDecision, FlushKind, FlushPolicy, PendingState};
/// use aof_record::FlushStrategy;
/// use std::time::Duration;
///
/// let policy = FlushPolicy::new(FlushStrategy::BatchedOrPeriodic { batch_size: 100, interval_ms: 10 });
/// let mut s = PendingState { records: 99, bytes: 9_900, since_last_flush: Duration::from_millis(4) };
/// assert_eq!(policy.decide(&s), FlushDecision::Wait { next_deadline: Some(Duration::from_millis(6)) });
/// s.records = 100;
/// assert_eq!(policy.decide(&s), FlushDecision::Now(FlushKind::Batched));
/// s.records = 1;
/// s.since_last_flush = Duration::from_millis(10);
/// assert_eq!(policy.decide(&s), FlushDecision::Now(FlushKind::Periodic));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlushPolicy {
    strategy: FlushStrategy,
    batch_size: Option<u64>,
    interval: Option<Duration>,
}

impl FlushPolicy {
    /// The policy of `strategy`.
    #[must_use]
    pub fn new(strategy: FlushStrategy) -> Self {
        Self {
            strategy,
            batch_size: strategy.batch_size(),
            interval: strategy.interval_ms().map(Duration::from_millis),
        }
    }

    /// The strategy this policy applies.
    #[must_use]
    pub fn strategy(&self) -> FlushStrategy {
        self.strategy
    }

    /// Pending records that trigger a batched flush, if the strategy has a batch size.
    #[must_use]
    pub fn batch_size(&self) -> Option<u64> {
        self.batch_size
    }

    /// Time since the last flush that triggers a periodic flush, if the
    /// strategy has an interval. A background flusher that is told
    /// `Wait { next_deadline: None }` under such a strategy should sleep no
    /// longer than this unless appends wake it.
    #[must_use]
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Whether [`FlushPolicy::decide`] ever reads
    /// [`PendingState::since_last_flush`]; when not, callers may skip reading
    /// the clock.
    #[must_use]
    pub fn uses_time(&self) -> bool {
        self.interval.is_some()
    }

    /// Whether to flush now, and why; or how long until a flush is due.
    #[must_use]
    pub fn decide(&self, state: &PendingState) -> FlushDecision {
        if state.is_empty() {
            return FlushDecision::Wait { next_deadline: None };
        }
        if let Some(n) = self.batch_size
            && state.records >= n
        {
            return FlushDecision::Now(FlushKind::Batched);
        }
        match self.interval {
            Some(interval) if state.since_last_flush >= interval => FlushDecision::Now(FlushKind::Periodic),
            Some(interval) => FlushDecision::Wait {
                next_deadline: Some(interval - state.since_last_flush),
            },
            None => FlushDecision::Wait { next_deadline: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(records: u64, bytes: u64, ms: u64) -> PendingState {
        PendingState {
            records,
            bytes,
            since_last_flush: Duration::from_millis(ms),
        }
    }

    #[test]
    fn sync_and_async_never_flush_from_the_policy() {
        for strategy in [FlushStrategy::Sync, FlushStrategy::Async] {
            let p = FlushPolicy::new(strategy);
            for s in [
                state(0, 0, 0),
                state(1, 1, 0),
                state(u64::MAX, u64::MAX, u64::MAX),
            ] {
                assert_eq!(
                    p.decide(&s),
                    FlushDecision::Wait { next_deadline: None },
                    "{strategy:?}"
                );
            }
            assert!(!p.uses_time());
        }
    }

    #[test]
    fn nothing_pending_never_flushes() {
        let p = FlushPolicy::new(FlushStrategy::BatchedOrPeriodic {
            batch_size: 1,
            interval_ms: 1,
        });
        assert_eq!(
            p.decide(&state(0, 0, 1_000_000)),
            FlushDecision::Wait { next_deadline: None }
        );
        // Bytes without records (e.g. padding) still count as pending work.
        assert_eq!(
            p.decide(&state(0, 10, 1)),
            FlushDecision::Now(FlushKind::Periodic)
        );
    }

    #[test]
    fn batch_takes_precedence_when_both_hold() {
        let p = FlushPolicy::new(FlushStrategy::BatchedOrPeriodic {
            batch_size: 3,
            interval_ms: 5,
        });
        assert_eq!(p.decide(&state(3, 0, 5)), FlushDecision::Now(FlushKind::Batched));
        assert_eq!(p.decide(&state(2, 0, 5)), FlushDecision::Now(FlushKind::Periodic));
        assert_eq!(
            p.decide(&state(2, 0, 4)),
            FlushDecision::Wait {
                next_deadline: Some(Duration::from_millis(1))
            }
        );
    }

    #[test]
    fn decision_helpers() {
        let now = FlushDecision::Now(FlushKind::Forced);
        assert!(now.is_now());
        assert_eq!(now.flush_now(), Some(FlushKind::Forced));
        assert_eq!(now.next_deadline(), None);
        let wait = FlushDecision::Wait {
            next_deadline: Some(Duration::from_secs(1)),
        };
        assert!(!wait.is_now());
        assert_eq!(wait.flush_now(), None);
        assert_eq!(wait.next_deadline(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn kind_names_round_trip_through_serde() {
        for kind in FlushKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<FlushKind>(&json).unwrap(), kind);
            assert_eq!(FlushKind::ALL[kind.index()], kind);
        }
    }
}
