//! Backpressure: appends held back while too many finalized segments wait
//! for archival, so an archive outage fills the local disk only up to
//! `archive_backpressure_segments` / `archive_backpressure_bytes`.
//!
//! The decision is a pure function of the pending counts ([`over`]); the
//! engine waits on the archiver's progress (up to
//! [`crate::AofOptions::backpressure_wait`]) and otherwise refuses the
//! append with a typed error. Appends resume by themselves as soon as the
//! archiver catches up; nothing already appended is affected.

use crate::locks::lock;
use crate::shared::Shared;
use aof_record::{AofConfig, AofError, AofResult};
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Whether `pending` (segments, bytes) waiting for archival holds appends back.
pub(crate) fn over(config: &AofConfig, pending: (u64, u64)) -> bool {
    pending.0 >= config.archive_backpressure_segments() || pending.1 >= config.archive_backpressure_bytes()
}

impl Shared {
    /// Lets an append through, or holds it back: `wait` false fails at once
    /// with [`AofError::WouldBlock`]; true waits up to the configured time,
    /// then fails with [`AofError::Backpressure`].
    pub(crate) fn admit(&self, wait: bool) -> AofResult<()> {
        if !self.archiving {
            return Ok(());
        }
        let pending = self.cache.local();
        if !over(&self.config, pending) {
            return Ok(());
        }
        self.counters
            .archive
            .backpressure_events
            .fetch_add(1, Ordering::Relaxed);
        if !wait {
            return Err(AofError::WouldBlock {
                pending_segments: pending.0,
                pending_bytes: pending.1,
            });
        }
        let deadline = Instant::now() + self.backpressure_wait;
        let mut gen_guard = lock(&self.archived_gen);
        loop {
            let pending = self.cache.local();
            if !over(&self.config, pending) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.is_closed() {
                return Err(AofError::Backpressure {
                    pending_segments: pending.0,
                    pending_bytes: pending.1,
                });
            }
            gen_guard = self
                .archived_cv
                .wait_timeout(gen_guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_hold_appends_back_at_either_bound() {
        let c = AofConfig::builder()
            .segment_size(4096)
            .archive_threshold(1)
            .archive_backpressure_segments(3)
            .archive_backpressure_bytes(10_000)
            .build()
            .unwrap();
        assert!(!over(&c, (2, 9_999)));
        assert!(over(&c, (3, 0)));
        assert!(over(&c, (0, 10_000)));
    }
}
