//! When appended bytes of the aof log are made durable, and what that costs.
//!
//! The crate has three layers, each usable alone:
//!
//! * [`FlushPolicy`]: the [`FlushStrategy`] as a pure decision. Given a
//!   [`PendingState`] (records, bytes, time since the last flush) it says
//!   [`FlushDecision::Now`] with a [`FlushKind`], or `Wait` with the time
//!   until a periodic flush is due. No I/O, no clock: test it with values.
//! * [`FlushController`]: tracks pending work from many appending threads
//!   (atomics only on the append path), asks the policy, and runs the
//!   engine's flush through [`FlushController::flush_with`], recording its
//!   outcome and latency. Time comes from a [`Clock`]: the [`SystemClock`]
//!   in production, a [`ManualClock`] in tests.
//! * [`FlushControllerMetrics`]: counters, timings, HDR histograms of
//!   latency, records and bytes per flush, and recent throughput; exported
//!   as a serde [`FlushMetricsSnapshot`] or as Prometheus text through
//!   [`render_prometheus`].
//!
//! # Example
//!
//! A batched log, driven by a clock the example controls:
//!
//! ```
//! use aof_flush::{FlushController, FlushDecision, FlushKind, ManualClock, render_prometheus};
//! use aof_record::FlushStrategy;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let clock = Arc::new(ManualClock::new());
//! let strategy = FlushStrategy::BatchedOrPeriodic { batch_size: 3, interval_ms: 50 };
//! let controller = FlushController::with_clock(strategy, clock.clone());
//!
//! // Two appends: not enough for a batch; a periodic flush is due in 50 ms.
//! controller.record_append(1, 100);
//! let decision = controller.record_append(1, 100);
//! assert_eq!(decision, FlushDecision::Wait { next_deadline: Some(Duration::from_millis(50)) });
//!
//! // The third reaches the batch size: the engine flushes.
//! let decision = controller.record_append(1, 100);
//! let kind = decision.flush_now().expect("batch size reached");
//! assert_eq!(kind, FlushKind::Batched);
//! let synced: Result<(), std::io::Error> = controller.flush_with(kind, || {
//!     clock.advance(Duration::from_micros(400)); // stands in for `file.sync_data()`
//!     Ok(())
//! });
//! synced.unwrap();
//!
//! // One more record, then 50 ms of silence: the background flusher's poll says flush.
//! controller.record_append(1, 100);
//! clock.advance(Duration::from_millis(50));
//! assert_eq!(controller.poll(), FlushDecision::Now(FlushKind::Periodic));
//!
//! let metrics = controller.metrics();
//! assert_eq!(metrics.records_flushed(), 3);
//! assert_eq!(metrics.pending_records(), 1);
//! assert_eq!(metrics.average_flush_latency_us(), 400.0);
//! let text = render_prometheus(&metrics.snapshot(), "aof_flush");
//! assert!(text.contains("aof_flush_flushes_by_kind_total{kind=\"batched\"} 1"));
//! ```
//!
//! # Driving a background flusher
//!
//! A flusher thread loops on [`FlushController::poll`]: on `Now(kind)` it
//! calls `flush_with(kind, ..)`; on `Wait { next_deadline: Some(d) }` it
//! sleeps `d` (or until woken); on `Wait { next_deadline: None }` nothing is
//! due by time, so it sleeps until an append wakes it, or at most
//! [`FlushPolicy::interval`] if it is not woken.

mod clock;
mod controller;
mod metrics;
mod policy;
mod prometheus;

pub use aof_record::config::FlushStrategy;
pub use clock::{Clock, ManualClock, SystemClock};
pub use controller::FlushController;
pub use metrics::{
    FlushControllerMetrics, FlushMetricsSnapshot, MAX_TRACKED_LATENCY_US, MAX_TRACKED_PER_FLUSH, Percentiles,
    THROUGHPUT_WINDOW,
};
pub use policy::{FlushDecision, FlushKind, FlushPolicy, PendingState};
pub use prometheus::render_prometheus;
