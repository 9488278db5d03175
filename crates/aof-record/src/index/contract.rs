//! The checks of the [`SegmentIndex`](super::SegmentIndex) contract, written
//! once for every backend.
//!
//! A backend runs the check of an operation inside its own write transaction,
//! after looking up the stored entries the check names and before it changes
//! anything; if the check fails, the backend changes nothing and returns its
//! error. The functions are pure: they see only their arguments, so the
//! answer cannot race a write, and each one decides which error a call gets,
//! in the same order for every backend:
//!
//! | operation | errors, first match wins |
//! |---|---|
//! | add | `InvalidEntry`, `AlreadyExists`, `Overlap` |
//! | update | `InvalidEntry`, `NotFound`, `Transition`, `Overlap` |
//! | status | `NotFound`, `Transition` |
//! | tail | `NotFound`, `Transition` (not active), `Overlap` |
//! | set log identity | `IdentityAlreadySet` |
//!
//! "Neighbours" are the stored entries with the next smaller (`prev`) and
//! next greater (`next`) base id. An entry passed as a neighbour that has the
//! entry's own base id is ignored, so a backend may pass what its range
//! query finds without filtering it.

use super::{IndexError, IndexResult};
use crate::entry::{SegmentEntry, SegmentStatus, TransitionError};
use crate::manifest::LogId;

/// Checks that `entry` may be added: it is valid, no stored entry has its
/// base id (`exists`), and it shares no id with its would-be neighbours.
pub fn check_add(
    entry: &SegmentEntry,
    exists: bool,
    prev: Option<&SegmentEntry>,
    next: Option<&SegmentEntry>,
) -> IndexResult<()> {
    entry.validate()?;
    if exists {
        return Err(IndexError::AlreadyExists {
            base_id: entry.base_id,
        });
    }
    check_neighbours(entry, prev, next)
}

/// Checks that `entry` may replace `current`, the stored entry with its base
/// id (`None` if there is none): it is valid, it exists, the status move is
/// legal and it shares no id with its neighbours.
pub fn check_update(
    entry: &SegmentEntry,
    current: Option<&SegmentEntry>,
    prev: Option<&SegmentEntry>,
    next: Option<&SegmentEntry>,
) -> IndexResult<()> {
    entry.validate()?;
    let current = found(entry.base_id, current)?;
    check_transition(entry.base_id, current.status, entry.status)?;
    check_neighbours(entry, prev, next)
}

/// The entry `current` (the stored entry with base id `base_id`, if any)
/// becomes when its status is set to `status`; `None` if that changes
/// nothing. Fails if there is no such entry or the move is illegal.
pub fn status_update(
    base_id: u64,
    current: Option<&SegmentEntry>,
    status: SegmentStatus,
) -> IndexResult<Option<SegmentEntry>> {
    let current = found(base_id, current)?;
    check_transition(base_id, current.status, status)?;
    Ok((current.status != status).then(|| SegmentEntry {
        status,
        ..current.clone()
    }))
}

/// The entry `current` (the stored entry with base id `base_id`, if any)
/// becomes when its tail is set (see [`SegmentEntry::set_tail`]). Fails if
/// there is no such entry, it is not active, or its new last id reaches
/// `next`, the stored entry after it.
pub fn tail_update(
    base_id: u64,
    current: Option<&SegmentEntry>,
    last_id: Option<u64>,
    size: u64,
    next: Option<&SegmentEntry>,
) -> IndexResult<SegmentEntry> {
    let mut updated = found(base_id, current)?.clone();
    updated.set_tail(last_id, size)?;
    check_neighbours(&updated, None, next)?;
    Ok(updated)
}

/// Whether `requested` must be written as the log identity, given the
/// stored one, `current`: `true` if none is stored, `false` if it is stored
/// already; `IdentityAlreadySet` if another one is.
pub fn identity_update(current: Option<LogId>, requested: LogId) -> IndexResult<bool> {
    match current {
        None => Ok(true),
        Some(c) if c == requested => Ok(false),
        Some(current) => Err(IndexError::IdentityAlreadySet { current, requested }),
    }
}

/// Checks that `entry` shares no id with its neighbours `prev` and `next`.
/// An empty entry occupies its `base_id` only.
pub fn check_neighbours(
    entry: &SegmentEntry,
    prev: Option<&SegmentEntry>,
    next: Option<&SegmentEntry>,
) -> IndexResult<()> {
    if let Some(p) = prev
        && p.base_id != entry.base_id
        && p.last_id >= entry.base_id
    {
        return Err(IndexError::Overlap {
            base_id: entry.base_id,
            other_base_id: p.base_id,
        });
    }
    if let Some(n) = next
        && n.base_id != entry.base_id
        && entry.last_id >= n.base_id
    {
        return Err(IndexError::Overlap {
            base_id: entry.base_id,
            other_base_id: n.base_id,
        });
    }
    Ok(())
}

/// The stored entry, or `NotFound`.
fn found(base_id: u64, current: Option<&SegmentEntry>) -> IndexResult<&SegmentEntry> {
    current.ok_or(IndexError::NotFound { base_id })
}

/// `Transition` unless [`SegmentStatus::can_become`] allows the move.
fn check_transition(base_id: u64, from: SegmentStatus, to: SegmentStatus) -> Result<(), TransitionError> {
    if from.can_become(to) {
        Ok(())
    } else {
        Err(TransitionError { base_id, from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::index::{active, finalized};

    #[test]
    fn add_reports_the_first_failure_in_order() {
        let mut invalid = finalized(10, 19, 0, 1);
        invalid.record_count = 3;
        let clash = finalized(5, 12, 0, 1);
        assert!(matches!(
            check_add(&invalid, true, Some(&clash), None),
            Err(IndexError::InvalidEntry(_))
        ));
        assert!(matches!(
            check_add(&finalized(10, 19, 0, 1), true, Some(&clash), None),
            Err(IndexError::AlreadyExists { base_id: 10 })
        ));
        assert!(matches!(
            check_add(&finalized(10, 19, 0, 1), false, Some(&clash), None),
            Err(IndexError::Overlap {
                base_id: 10,
                other_base_id: 5
            })
        ));
        check_add(
            &finalized(13, 19, 0, 1),
            false,
            Some(&clash),
            Some(&finalized(20, 29, 0, 1)),
        )
        .unwrap();
    }

    #[test]
    fn neighbours_with_the_same_base_id_are_ignored() {
        let e = finalized(10, 19, 0, 1);
        check_neighbours(&e, Some(&e), Some(&e)).unwrap();
        assert!(matches!(
            check_neighbours(&e, None, Some(&finalized(19, 25, 0, 1))),
            Err(IndexError::Overlap {
                base_id: 10,
                other_base_id: 19
            })
        ));
        // An empty entry holds its base id only.
        check_neighbours(
            &active(10, None, 0),
            Some(&finalized(0, 9, 0, 1)),
            Some(&finalized(11, 12, 0, 1)),
        )
        .unwrap();
    }

    #[test]
    fn update_needs_the_entry_and_a_legal_move() {
        let stored = finalized(0, 9, 0, 1);
        assert!(matches!(
            check_update(&stored, None, None, None),
            Err(IndexError::NotFound { base_id: 0 })
        ));
        match check_update(&active(0, Some(9), 0), Some(&stored), None, None) {
            Err(IndexError::Transition(t)) => {
                assert_eq!((t.from, t.to), (SegmentStatus::Finalized, SegmentStatus::Active));
            }
            r => panic!("Finalized -> Active gave {r:?}"),
        }
        check_update(&stored, Some(&stored), None, None).unwrap();
    }

    #[test]
    fn status_update_says_whether_anything_changes() {
        let stored = finalized(0, 9, 0, 1);
        assert_eq!(
            status_update(0, Some(&stored), SegmentStatus::Finalized).unwrap(),
            None
        );
        let moved = status_update(0, Some(&stored), SegmentStatus::ArchivedRemote)
            .unwrap()
            .unwrap();
        assert_eq!(moved.status, SegmentStatus::ArchivedRemote);
        assert_eq!(
            SegmentEntry {
                status: SegmentStatus::Finalized,
                ..moved
            },
            stored
        );
        assert!(matches!(
            status_update(0, Some(&stored), SegmentStatus::Active),
            Err(IndexError::Transition(_))
        ));
        assert!(matches!(
            status_update(7, None, SegmentStatus::Active),
            Err(IndexError::NotFound { base_id: 7 })
        ));
    }

    #[test]
    fn tail_update_moves_an_active_tail_up_to_the_next_entry() {
        let stored = active(10, None, 0);
        let next = finalized(20, 29, 0, 1);
        let grown = tail_update(10, Some(&stored), Some(19), 640, Some(&next)).unwrap();
        assert_eq!(
            (grown.last_id, grown.record_count, grown.original_size),
            (19, 10, 640)
        );
        assert!(matches!(
            tail_update(10, Some(&stored), Some(20), 640, Some(&next)),
            Err(IndexError::Overlap {
                base_id: 10,
                other_base_id: 20
            })
        ));
        assert!(matches!(
            tail_update(20, Some(&next), Some(30), 1, None),
            Err(IndexError::Transition(_))
        ));
        assert!(matches!(
            tail_update(10, None, Some(11), 1, None),
            Err(IndexError::NotFound { base_id: 10 })
        ));
    }
}
