//! Group commit and the durable watermark: [`Durable`] and [`GroupCommit`].
//!
//! # Invariants
//!
//! * The watermark (`Durable::next`) only counts ids whose bytes were
//!   fdatasync'd: it is raised by the round that synced them, and lowered
//!   only by `truncate_after`, which removes ids.
//! * At most one sync round runs at a time; a caller whose ids a running
//!   round may not cover waits for it, then runs its own if still needed. So
//!   one fdatasync serves every appender that arrived before it started.
//! * Every move of the watermark wakes blocking tails (condvar) and async
//!   tails (`Notify`).

use crate::locks::lock;
use aof_record::{AofError, AofResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The durable end of the log, and the waiters on it.
#[derive(Debug)]
pub(crate) struct Durable {
    /// Ids below this are durable: the end of what readers see.
    next: AtomicU64,
    mx: Mutex<()>,
    cv: Condvar,
    notify: tokio::sync::Notify,
}

impl Durable {
    /// A watermark at `next`.
    pub(crate) fn new(next: u64) -> Self {
        Self {
            next: AtomicU64::new(next),
            mx: Mutex::new(()),
            cv: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Ids below this are durable.
    pub(crate) fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Raises the watermark to `next` (never lowers it) and wakes waiters.
    pub(crate) fn publish(&self, next: u64) {
        let before = self.next.fetch_max(next, Ordering::AcqRel);
        if before < next {
            self.wake();
        }
    }

    /// Lowers the watermark to `next` (ids at and after it were removed).
    pub(crate) fn lower(&self, next: u64) {
        self.next.fetch_min(next, Ordering::AcqRel);
    }

    /// Wakes every waiter, blocking and async.
    pub(crate) fn wake(&self) {
        drop(lock(&self.mx));
        self.cv.notify_all();
        self.notify.notify_waiters();
    }

    /// Blocks until the watermark passes `id`, `stop()` holds, or `deadline`;
    /// returns whether it passed `id`.
    pub(crate) fn wait_past(&self, id: u64, deadline: Instant, stop: impl Fn() -> bool) -> bool {
        let mut guard = lock(&self.mx);
        loop {
            if self.next() > id {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || stop() {
                return false;
            }
            guard = self
                .cv
                .wait_timeout(guard, (deadline - now).min(Duration::from_secs(3600)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The async waiters' notifier.
    pub(crate) fn notify(&self) -> &tokio::sync::Notify {
        &self.notify
    }
}

/// The longest a new round's leader waits for the previous round's callers
/// to come back (see [`GroupCommit`]).
const MAX_GATHER: Duration = Duration::from_micros(500);

/// At most one sync round in flight; others wait for its result.
///
/// A round's leader first *gathers*: when fewer callers wait for a sync than
/// asked for one during the previous round's life, it waits, at most half
/// that round's duration (and [`MAX_GATHER`]), for them to come back.
/// Without this, threads that append and sync in a loop split into two
/// alternating groups: the first caller woken by a finished round starts the
/// next one alone, and the others, back a few microseconds later, wait a
/// whole fdatasync for the round after (issue 15 measured 8 records per
/// fsync with 16 such threads). A lone caller never waits: the previous
/// round had one.
///
/// A finished round wakes only the callers it covers, and one caller queued
/// for the next round to lead it: callers that arrived while it ran wait on
/// the other of two condvars (by round parity). With every waiter on one
/// condvar, each round woke all of them, and those it did not cover went
/// back to sleep: with 64 threads on 2 cores about half of each round's
/// wake-ups were of that kind.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<RoundState>,
    /// `done[r % 2]` is signalled when round `r` ends.
    done: [Condvar; 2],
    /// Signalled when the gathering leader has its callers.
    gathered: Condvar,
}

#[derive(Debug, Default)]
struct RoundState {
    /// A round is gathering or running.
    busy: bool,
    /// The busy round has stopped gathering: callers arriving now are left
    /// for the next one.
    running: bool,
    /// The number of the busy (or last) round.
    round: u64,
    /// Callers that asked for a sync since the last round started.
    arrived: usize,
    /// Callers the running (or last) round covers.
    covering: usize,
    /// Callers that asked for a sync during the previous round's life:
    /// those it covered and those that arrived while it ran.
    demand: usize,
    /// How long the previous round took.
    last_round: Duration,
}

impl GroupCommit {
    /// Makes ids `..target` durable: returns once `durable.next() >= target`.
    /// Runs `round` (one write-out + fdatasync that publishes what it synced)
    /// when no round is in flight, else waits for the one that is.
    pub(crate) fn sync_until(
        &self,
        durable: &Durable,
        target: u64,
        poisoned: impl Fn() -> bool,
        mut round: impl FnMut() -> AofResult<()>,
    ) -> AofResult<()> {
        let mut st = lock(&self.state);
        if durable.next() < target {
            st.arrived += 1;
            if st.arrived >= st.demand {
                self.gathered.notify_one();
            }
        }
        loop {
            if durable.next() >= target {
                return Ok(());
            }
            if poisoned() {
                return Err(AofError::Poisoned);
            }
            if st.busy {
                // A gathering round covers this caller; a running one may
                // not (its records were taken before this call counted).
                let mine = if st.running { st.round + 1 } else { st.round };
                st = self.done[parity(mine)]
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.busy = true;
            st.round += 1;
            let deadline = Instant::now() + (st.last_round / 2).min(MAX_GATHER);
            while st.arrived < st.demand {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = self
                    .gathered
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            st.covering = std::mem::take(&mut st.arrived);
            st.running = true;
            drop(st);
            let started = Instant::now();
            let result = round();
            st = lock(&self.state);
            st.busy = false;
            st.running = false;
            st.last_round = started.elapsed();
            st.demand = st.covering + st.arrived;
            // Everyone this round covered (all of them, should it have
            // failed), and one caller queued for the next round, to lead it.
            self.done[parity(st.round)].notify_all();
            self.done[parity(st.round + 1)].notify_one();
            result?;
        }
    }
}

/// Which of the two `done` condvars round `round` signals.
fn parity(round: u64) -> usize {
    usize::from(round % 2 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Four threads that each append and sync in a loop share rounds: with
    /// a 2 ms round, each round covers nearly all four (about 200 rounds for
    /// 800 syncs). Without the gathering they split into alternating groups
    /// (one caller, then three): 340 rounds on the machine this was written
    /// on, against 200-210 with it.
    #[test]
    fn callers_in_a_loop_share_rounds() {
        let durable = Durable::new(0);
        let commit = GroupCommit::default();
        let appended = AtomicU64::new(0);
        let rounds = AtomicUsize::new(0);
        let (threads, each) = (4, 200);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..each {
                        let target = appended.fetch_add(1, Ordering::AcqRel) + 1;
                        commit
                            .sync_until(
                                &durable,
                                target,
                                || false,
                                || {
                                    let next = appended.load(Ordering::Acquire);
                                    std::thread::sleep(Duration::from_millis(2));
                                    rounds.fetch_add(1, Ordering::Relaxed);
                                    durable.publish(next);
                                    Ok(())
                                },
                            )
                            .unwrap();
                        assert!(durable.next() >= target);
                    }
                });
            }
        });
        let rounds = rounds.load(Ordering::Relaxed);
        assert!(
            rounds <= threads * each * 3 / 10,
            "{rounds} rounds for {} syncs",
            threads * each
        );
    }

    /// Many callers, rounds of varied length: every call returns (a lost
    /// wake-up between the two `done` condvars would leave one waiting
    /// forever), with its ids durable, and rounds are shared.
    #[test]
    fn many_callers_all_return_with_their_ids_durable() {
        let (threads, each) = (24, 150);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let durable = Durable::new(0);
            let commit = GroupCommit::default();
            let appended = AtomicU64::new(0);
            let rounds = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (durable, commit, appended, rounds) = (&durable, &commit, &appended, &rounds);
                    s.spawn(move || {
                        for i in 0..each {
                            let target = appended.fetch_add(1, Ordering::AcqRel) + 1;
                            commit
                                .sync_until(
                                    durable,
                                    target,
                                    || false,
                                    || {
                                        let next = appended.load(Ordering::Acquire);
                                        let n = rounds.fetch_add(1, Ordering::Relaxed);
                                        std::thread::sleep(Duration::from_micros(
                                            ((n + t + i) % 7 * 30) as u64,
                                        ));
                                        durable.publish(next);
                                        Ok(())
                                    },
                                )
                                .unwrap();
                            assert!(durable.next() >= target);
                        }
                    });
                }
            });
            tx.send(rounds.load(Ordering::Relaxed)).unwrap();
        });
        let rounds = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a caller never returned");
        // Shared rounds: far fewer than one per sync (a loaded machine
        // spreads the callers out, hence the margin).
        assert!(
            rounds < threads * each * 3 / 4,
            "{rounds} rounds for {} syncs",
            threads * each
        );
    }

    /// A caller that arrives while a round runs, which that round does not
    /// cover, is woken when it ends to lead the next one, even when nobody
    /// else calls again.
    #[test]
    fn a_caller_queued_behind_a_round_leads_the_next_one() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let durable = Durable::new(0);
            let commit = GroupCommit::default();
            let appended = AtomicU64::new(1);
            let (durable, commit, appended) = (&durable, &commit, &appended);
            std::thread::scope(|s| {
                let round = || {
                    let next = appended.load(Ordering::Acquire);
                    std::thread::sleep(Duration::from_millis(100));
                    durable.publish(next);
                    Ok(())
                };
                s.spawn(move || commit.sync_until(durable, 1, || false, round).unwrap());
                std::thread::sleep(Duration::from_millis(30));
                // Appended after the first round took its records.
                appended.store(2, Ordering::Release);
                commit.sync_until(durable, 2, || false, round).unwrap();
            });
            tx.send(durable.next()).unwrap();
        });
        let next = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the queued caller was never woken");
        assert_eq!(next, 2);
    }

    /// A lone caller never gathers: the demand it leaves is itself.
    #[test]
    fn a_lone_caller_leaves_a_demand_of_one() {
        let durable = Durable::new(0);
        let commit = GroupCommit::default();
        for target in 1..=3 {
            commit
                .sync_until(
                    &durable,
                    target,
                    || false,
                    || {
                        durable.publish(target);
                        Ok(())
                    },
                )
                .unwrap();
            let st = lock(&commit.state);
            assert_eq!((st.demand, st.arrived), (1, 0));
        }
        // A caller whose ids are already durable asks for nothing.
        commit
            .sync_until(&durable, 2, || false, || unreachable!())
            .unwrap();
        assert_eq!(lock(&commit.state).arrived, 0);
    }
}
