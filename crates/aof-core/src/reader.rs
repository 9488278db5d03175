//! Reading the log in order: [`Reader`] and [`Tail`].
//!
//! # Visibility
//!
//! Readers and tails see a record once it is **durable**: ids below
//! [`crate::Aof::durable_id`]` + 1`. Under [`FlushStrategy::Sync`](aof_record::FlushStrategy)
//! that is as soon as `append` returns; under the other strategies, after
//! the flush that covers it. A consumer therefore never sees a record that a
//! crash could take back. ([`crate::Aof::read`] by id sees every appended record.)
//!
//! # Pinning
//!
//! A reader positioned in a finalized segment pins it: the segment cache
//! never closes it and retention never deletes its file until the reader
//! moves on or is dropped.
//!
//! # Archived segments
//!
//! A reader crosses archived segments like local ones: their records are
//! fetched frame by frame ([`crate::archive_cache`]), and reading in order
//! fetches the next frame ahead. A failed fetch is this reader's error; a
//! later call retries it.

use crate::cache::SegmentSlot;
use crate::locks::lock;
use crate::metrics::Counters;
use crate::shared::{SegmentView, Shared};
use aof_record::{AofError, AofResult};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One record as read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its id.
    pub id: u64,
    /// When it was appended, µs since the Unix epoch.
    pub timestamp_us: u64,
    /// The payload, checksum-verified.
    pub payload: Bytes,
}

/// A pin on a finalized segment, released on drop.
#[derive(Debug)]
struct Pin {
    inner: Arc<Shared>,
    slot: Arc<SegmentSlot>,
    seg: SegmentView,
}

impl Drop for Pin {
    fn drop(&mut self) {
        if self.slot.unpin() {
            self.inner.reap_doomed();
        }
    }
}

/// Counts an open reader; released on drop.
#[derive(Debug)]
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads records in id order, across segment boundaries, up to the durable
/// end of the log; then returns `None`. Created by [`crate::Aof::reader`].
#[derive(Debug)]
pub struct Reader {
    inner: Arc<Shared>,
    next: u64,
    pin: Option<Pin>,
    _slot: Slot,
}

impl Reader {
    pub(crate) fn new(inner: Arc<Shared>, from_id: u64) -> AofResult<Self> {
        let limit = inner.max_readers;
        if inner.readers.fetch_add(1, Ordering::AcqRel) >= limit {
            inner.readers.fetch_sub(1, Ordering::AcqRel);
            return Err(AofError::ReaderLimitExceeded { limit });
        }
        let slot = Slot(inner.clone());
        Ok(Self {
            next: from_id,
            inner,
            pin: None,
            _slot: slot,
        })
    }

    /// The id the next call will read.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next record if one is visible now.
    pub fn try_next(&mut self) -> AofResult<Option<Record>> {
        let first = self.inner.first_id.load(Ordering::Acquire);
        // A reader positioned in a segment keeps reading it even if
        // retention removed it meanwhile (the pin keeps its file).
        let in_pin = self.pin.as_ref().is_some_and(|p| {
            p.slot.base_id <= self.next
                && self.next <= p.slot.last_id
                && !p.slot.replaced.load(Ordering::Acquire)
        });
        if !in_pin {
            self.pin = None;
            if self.next < first {
                // Expired or truncated away before we got there: skip ahead.
                self.next = first;
            }
        }
        let id = self.next;
        if id >= self.inner.durable.next() {
            return Ok(None);
        }
        if !in_pin {
            self.pin = self.pin_for(id)?;
        }
        let record = match &self.pin {
            Some(p) => match self.inner.read_in(&p.seg, id)? {
                Some((h, stored)) => {
                    if let (SegmentView::Archived(a), Some(remote)) = (&p.seg, &self.inner.remote) {
                        // Reading in order: fetch the next frame ahead, and
                        // near the end, the next segment's head.
                        a.prefetch_after(remote, a.last_read_offset());
                        if id == p.slot.last_id.saturating_sub(p.slot.record_count / 8)
                            && let Some(next) = self.inner.cache.find(p.slot.last_id + 1)
                            && let Some(n) = &next.archived
                        {
                            n.prefetch_head(remote);
                        }
                    }
                    Record {
                        id,
                        timestamp_us: h.timestamp_us,
                        payload: self.decode(&h, stored)?,
                    }
                }
                None => return Err(missing(id)),
            },
            None => {
                let mut w = lock(&self.inner.writer);
                if id < w.seg.base_id || id >= w.next_id {
                    // A rollover or truncation moved under us; look again next call.
                    drop(w);
                    return if self.inner.cache.find(id).is_some() {
                        self.try_next()
                    } else {
                        Ok(None)
                    };
                }
                let (h, stored) = w.read(id)?;
                drop(w);
                Record {
                    id,
                    timestamp_us: h.timestamp_us,
                    payload: self.decode(&h, stored)?,
                }
            }
        };
        self.next = id + 1;
        Counters::add(&self.inner.counters.reads, 1);
        Ok(Some(record))
    }

    /// The original bytes of record `header.id`. A payload that does not
    /// decode (no key for it, or crafted bytes that pass the checksum) is
    /// that record's error: the reader moves past it, so a caller that
    /// lacks one old key can still read on.
    fn decode(&mut self, header: &aof_record::record::RecordHeader, stored: Bytes) -> AofResult<Bytes> {
        let decoded = self.inner.codec.decode(header, stored);
        if decoded.is_err() {
            self.next = header.id + 1;
        }
        decoded
    }

    /// Pins the finalized segment holding `id`, if any.
    fn pin_for(&self, id: u64) -> AofResult<Option<Pin>> {
        let slot = self.inner.cache.find_pinned(id);
        let Some(slot) = slot else { return Ok(None) };
        let seg = {
            let mut guard = PinGuard {
                inner: &self.inner,
                slot: &slot,
                armed: true,
            };
            let seg = self.inner.view(&slot)?;
            guard.armed = false;
            seg
        };
        Ok(Some(Pin {
            inner: self.inner.clone(),
            slot,
            seg,
        }))
    }
}

/// Releases a pin taken before the segment could be opened, if opening fails.
struct PinGuard<'a> {
    inner: &'a Arc<Shared>,
    slot: &'a Arc<SegmentSlot>,
    armed: bool,
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        if self.armed && self.slot.unpin() {
            self.inner.reap_doomed();
        }
    }
}

fn missing(id: u64) -> AofError {
    AofError::SegmentMismatch {
        segment: id,
        what: "record listed by the index but absent from its segment",
        expected: id,
        actual: u64::MAX,
    }
}

impl Iterator for Reader {
    type Item = AofResult<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        self.try_next().transpose()
    }
}

/// How often a tail on a read-only view looks at the files for new records.
const READ_ONLY_POLL: Duration = Duration::from_millis(20);

/// Like [`Reader`], but at the end waits for new durable records.
/// Created by [`crate::Aof::tail`].
///
/// On a read-only view ([`crate::Aof::open_read_only`]) the records come
/// from another process: at the end, the tail calls [`crate::Aof::refresh`]
/// every 20 ms until there are new ones.
#[derive(Debug)]
pub struct Tail {
    reader: Reader,
}

impl Tail {
    /// The id the next call will read.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.reader.position()
    }

    /// The next record, waiting up to `timeout` for one to become durable;
    /// `Ok(None)` if none did (or the log was closed).
    pub fn next_timeout(&mut self, timeout: Duration) -> AofResult<Option<Record>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.reader.try_next()? {
                return Ok(Some(r));
            }
            let inner = &self.reader.inner;
            if inner.read_only {
                if inner.refresh()? > 0 {
                    continue;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(READ_ONLY_POLL.min(deadline - now));
                continue;
            }
            if !inner
                .durable
                .wait_past(self.reader.next, deadline, || inner.is_closed())
            {
                return Ok(None);
            }
        }
    }

    /// The next record, waiting as long as it takes for one to become durable.
    /// Fails with [`AofError::Closed`] once the log is closed.
    pub async fn next(&mut self) -> AofResult<Record> {
        loop {
            let inner = self.reader.inner.clone();
            let notified = inner.durable.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.reader.try_next()? {
                return Ok(r);
            }
            if inner.is_closed() {
                return Err(AofError::Closed);
            }
            if inner.read_only {
                if inner.refresh()? == 0 {
                    tokio::time::sleep(READ_ONLY_POLL).await;
                }
                continue;
            }
            notified.await;
        }
    }
}

impl Reader {
    /// A tail: at the end, it waits for new durable records.
    pub(crate) fn into_tail(self) -> Tail {
        Tail { reader: self }
    }
}
