//! The log's background threads: the flusher (Batched / Periodic
//! strategies), the syncer (the fsync rounds of async durable appends), the
//! sealer of full segments (`seal.rs`), the pre-allocator of the next
//! segment file, TTL retention, and the archiver
//! (its work is in [`crate::archiver`]). Each sleeps on [`Shared::wake_cv`]
//! (the syncer on its own `sync_cv`) and stops when
//! [`crate::shared::Wake::stop`] is set.

use crate::locks::lock;
use crate::shared::Shared;
use crate::writer::{Prepare, prepare_file};
use aof_flush::{FlushDecision, FlushKind};
use aof_record::{AofError, AofResult, FlushStrategy};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Starts the threads `shared`'s configuration needs.
pub(crate) fn start(shared: &Arc<Shared>) -> AofResult<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    if matches!(
        shared.config.flush_strategy(),
        FlushStrategy::Batched(_) | FlushStrategy::Periodic(_) | FlushStrategy::BatchedOrPeriodic { .. }
    ) {
        let s = shared.clone();
        threads.push(spawn("aof-flusher", move || flusher_loop(&s))?);
    }
    {
        let s = shared.clone();
        threads.push(spawn("aof-syncer", move || syncer_loop(&s))?);
    }
    if !shared.read_only {
        let s = shared.clone();
        threads.push(spawn("aof-sealer", move || s.sealer_loop())?);
    }
    if shared.config.pre_allocate_enabled() {
        let s = shared.clone();
        threads.push(spawn("aof-preallocator", move || preallocator_loop(&s))?);
    }
    if let Some(ttl) = shared.config.ttl_seconds() {
        let s = shared.clone();
        threads.push(spawn("aof-retention", move || retention_loop(&s, ttl))?);
    }
    if shared.archiving {
        let s = shared.clone();
        threads.push(spawn("aof-archiver", move || crate::archiver::archiver_loop(&s))?);
    }
    Ok(threads)
}

/// Stops every background thread and waits for them.
pub(crate) fn stop(shared: &Shared, threads: &mut Vec<JoinHandle<()>>) {
    {
        let mut w = lock(&shared.wake);
        w.stop = true;
        shared.wake_cv.notify_all();
        shared.sync_cv.notify_all();
    }
    shared.stop_sealer();
    shared.durable.wake();
    for t in threads.drain(..) {
        let _ = t.join();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> AofResult<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| AofError::io(name, e))
}

fn flusher_loop(shared: &Shared) {
    let mut wake = lock(&shared.wake);
    loop {
        if wake.stop {
            return;
        }
        wake.flush_requested = false;
        // Cleared before the policy is polled below: a request made after
        // this is either seen by that poll or wakes the wait after it.
        shared.flush_asked.store(false, Ordering::Release);
        drop(wake);
        if shared.is_poisoned() {
            // Nothing can be flushed until the log is reopened (finding 6:
            // this loop spun at 100 % CPU, logging the same error).
            let mut wake = lock(&shared.wake);
            while !wake.stop {
                wake = shared.wake_cv.wait(wake).unwrap_or_else(PoisonError::into_inner);
            }
            return;
        }
        let timeout = match shared.flush.poll() {
            FlushDecision::Now(kind) => {
                // Appends are counted by the controller after they raise
                // `appended_next`: what the mark holds is below `next`.
                let mark = shared.flush.appended_mark();
                let next = shared.appended_next.load(Ordering::Acquire);
                match next.checked_sub(1) {
                    Some(last) if shared.durable.next() <= last => {
                        if let Err(e) = shared.sync_through(last, kind, None) {
                            log::error!("background flush failed: {e}");
                        }
                    }
                    // Everything appended is durable, or was truncated away
                    // before it was flushed: nothing is pending (finding 6:
                    // the policy kept asking, and this loop spun).
                    _ => shared.flush.discard_pending_through(mark),
                }
                Duration::ZERO
            }
            // Nothing pending: the next periodic deadline is at most one interval away.
            FlushDecision::Wait { next_deadline } => next_deadline
                .or(shared.flush.policy().interval())
                .unwrap_or(Duration::from_millis(100)),
            _ => Duration::from_millis(1),
        };
        wake = lock(&shared.wake);
        if !timeout.is_zero() && !wake.flush_requested && !wake.stop {
            wake = shared
                .wake_cv
                .wait_timeout(wake, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Runs a sync round whenever an async durable append asks for one: tasks
/// wait on the durable watermark without a thread each, and one fdatasync
/// covers every record appended before it starts (requests that arrive
/// during a round are served by the next one).
fn syncer_loop(shared: &Shared) {
    let mut wake = lock(&shared.wake);
    loop {
        if wake.stop {
            return;
        }
        if !wake.sync_requested {
            wake = shared.sync_cv.wait(wake).unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        wake.sync_requested = false;
        drop(wake);
        let next = shared.appended_next.load(Ordering::Acquire);
        if let Some(last) = next.checked_sub(1)
            && shared.durable.next() <= last
            && !shared.is_poisoned()
            && let Err(e) = shared.sync_through(last, FlushKind::Forced, None)
        {
            log::error!("sync for durable appends failed: {e}");
        }
        if shared.is_poisoned() {
            // Waiters see the poisoning instead of waiting forever.
            shared.durable.wake();
        }
        wake = lock(&shared.wake);
    }
}

/// Wakes every `ttl / 4` (between 50 ms and 60 s) and removes expired segments.
fn retention_loop(shared: &Shared, ttl_seconds: u64) {
    let period = Duration::from_millis((ttl_seconds * 250).clamp(50, 60_000));
    let mut wake = lock(&shared.wake);
    loop {
        if wake.stop {
            return;
        }
        drop(wake);
        if let Err(e) = shared.expire(ttl_seconds) {
            log::warn!("retention in {}: {e}", shared.dir.display());
        }
        wake = lock(&shared.wake);
        if !wake.stop {
            wake = shared
                .wake_cv
                .wait_timeout(wake, period)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn preallocator_loop(shared: &Shared) {
    let mut wake = lock(&shared.wake);
    loop {
        if wake.stop {
            return;
        }
        if wake.prealloc_requested && wake.prepared.is_none() {
            wake.prealloc_requested = false;
            let path = wake.next_prealloc_path(&shared.dir);
            drop(wake);
            let prepare = Prepare::for_config(&shared.config);
            let ready = match prepare_file(shared.fs.as_ref(), &path, shared.config.segment_size(), prepare) {
                Ok(()) => Some(path),
                Err(e) => {
                    log::warn!("pre-allocating {}: {e}", path.display());
                    let _ = shared.fs.remove_file(&path);
                    None
                }
            };
            wake = lock(&shared.wake);
            wake.prepared = ready;
            continue;
        }
        wake = shared.wake_cv.wait(wake).unwrap_or_else(PoisonError::into_inner);
    }
}
