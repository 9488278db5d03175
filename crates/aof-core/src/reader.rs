//! Reading the log in order: [`Reader`] and [`Tail`].
//!
//! # Visibility
//!
//! Readers and tails see a record once it is **durable**: ids below
//! [`Aof::durable_id`]` + 1`. Under [`FlushStrategy::Sync`](aof_record::FlushStrategy)
//! that is as soon as `append` returns; under the other strategies, after
//! the flush that covers it. A consumer therefore never sees a record that a
//! crash could take back. ([`Aof::read`] by id sees every appended record.)
//!
//! # Pinning
//!
//! A reader positioned in a finalized segment pins it: the segment cache
//! never closes it and retention never deletes its file until the reader
//! moves on or is dropped.

use crate::engine::{Aof, Inner, SegmentSlot, lock, read_active};
use crate::segment::FinalizedSegment;
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
    inner: Arc<Inner>,
    slot: Arc<SegmentSlot>,
    seg: Arc<FinalizedSegment>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        if self.slot.pins.fetch_sub(1, Ordering::AcqRel) == 1 && self.slot.doomed.load(Ordering::Acquire) {
            self.inner.reap_doomed();
        }
    }
}

/// Counts an open reader; released on drop.
#[derive(Debug)]
struct Slot(Arc<Inner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads records in id order, across segment boundaries, up to the durable
/// end of the log; then returns `None`. Created by [`Aof::reader`].
#[derive(Debug)]
pub struct Reader {
    inner: Arc<Inner>,
    next: u64,
    pin: Option<Pin>,
    _slot: Slot,
}

impl Reader {
    pub(crate) fn new(inner: Arc<Inner>, from_id: u64) -> AofResult<Self> {
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
        if id >= self.inner.durable_next.load(Ordering::Acquire) {
            return Ok(None);
        }
        if !in_pin {
            self.pin = self.pin_for(id)?;
        }
        let record = match &self.pin {
            Some(p) => match p.seg.read(id)? {
                Some((h, payload)) => Record {
                    id,
                    timestamp_us: h.timestamp_us,
                    payload,
                },
                None => return Err(missing(id)),
            },
            None => {
                let mut w = lock(&self.inner.writer);
                if id < w.seg.base_id || id >= w.next_id {
                    // A rollover or truncation moved under us; look again next call.
                    drop(w);
                    return if self.inner.finalized_slot(id).is_some() {
                        self.try_next()
                    } else {
                        Ok(None)
                    };
                }
                let (timestamp_us, payload) = read_active(&mut w, id, self.inner.config.max_record_size())?;
                Record {
                    id,
                    timestamp_us,
                    payload,
                }
            }
        };
        self.next = id + 1;
        crate::metrics::Counters::add(&self.inner.counters.reads, 1);
        Ok(Some(record))
    }

    /// Pins the finalized segment holding `id`, if any.
    fn pin_for(&self, id: u64) -> AofResult<Option<Pin>> {
        let slot = {
            let segs = self
                .inner
                .segments
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let found = segs
                .range(..=id)
                .next_back()
                .map(|(_, s)| s)
                .filter(|s| s.record_count > 0 && id <= s.last_id)
                .cloned();
            // Pinned under the map's read lock, so retention (which takes the
            // write lock to remove a slot) cannot slip in between.
            if let Some(s) = &found {
                s.pins.fetch_add(1, Ordering::AcqRel);
            }
            found
        };
        let Some(slot) = slot else { return Ok(None) };
        let seg = {
            let mut guard = PinGuard {
                inner: &self.inner,
                slot: &slot,
                armed: true,
            };
            let seg = self.inner.open_segment(&slot)?;
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
    inner: &'a Arc<Inner>,
    slot: &'a Arc<SegmentSlot>,
    armed: bool,
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        if self.armed
            && self.slot.pins.fetch_sub(1, Ordering::AcqRel) == 1
            && self.slot.doomed.load(Ordering::Acquire)
        {
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

/// Like [`Reader`], but at the end waits for new durable records.
/// Created by [`Aof::tail`].
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
            let guard = lock(&inner.durable_mx);
            if inner.durable_next.load(Ordering::Acquire) > self.reader.next {
                continue;
            }
            let now = Instant::now();
            if now >= deadline || inner.is_closed() {
                return Ok(None);
            }
            let _ = inner
                .durable_cv
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// The next record, waiting as long as it takes for one to become durable.
    /// Fails with [`AofError::Closed`] once the log is closed.
    pub async fn next(&mut self) -> AofResult<Record> {
        loop {
            let inner = self.reader.inner.clone();
            let notified = inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.reader.try_next()? {
                return Ok(r);
            }
            if inner.is_closed() {
                return Err(AofError::Closed);
            }
            notified.await;
        }
    }
}

/// What [`Aof::verify`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: u64,
    /// Records checked.
    pub records: u64,
    /// Bytes of segment files checked.
    pub bytes: u64,
}

impl Aof {
    /// The lowest id still kept (raised by retention and `truncate_before`).
    #[must_use]
    pub fn first_id(&self) -> u64 {
        self.inner.first_id.load(Ordering::Acquire)
    }

    /// A reader of the records from `from_id` (or the first kept id, if
    /// later) to the durable end. Fails with [`AofError::ReaderLimitExceeded`]
    /// beyond [`crate::AofOptions::max_readers`].
    pub fn reader(&self, from_id: u64) -> AofResult<Reader> {
        Reader::new(self.inner.clone(), from_id)
    }

    /// A tail from `from_id`: a reader that, at the end, waits for new
    /// durable records.
    pub fn tail(&self, from_id: u64) -> AofResult<Tail> {
        Ok(Tail {
            reader: Reader::new(self.inner.clone(), from_id)?,
        })
    }

    /// Verifies every segment: each finalized one fully (data checksum, every
    /// record, the offset table, and its index entry's count, last id, size
    /// and checksum), then the active one's records. Returns the first
    /// problem as a typed error naming segment and offset. `progress` gets
    /// (segments done, segments total).
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> AofResult<VerifyReport> {
        let inner = &self.inner;
        let slots: Vec<Arc<SegmentSlot>> = inner
            .segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let total = slots.len() as u64 + 1;
        let mut report = VerifyReport::default();
        for (i, slot) in slots.iter().enumerate() {
            let seg = FinalizedSegment::open(
                inner.fs.as_ref(),
                &slot.path,
                slot.base_id,
                inner.config.max_record_size(),
            )?;
            let count = seg.verify()?;
            let Some(entry) = inner.index.get_entry(slot.base_id)? else {
                return Err(AofError::Index(aof_record::IndexError::NotFound {
                    base_id: slot.base_id,
                }));
            };
            {
                let checks = [
                    ("record count", entry.record_count, count),
                    ("file size", entry.original_size, seg.bytes().len() as u64),
                    (
                        "file checksum",
                        entry.uncompressed_checksum.unwrap_or(0),
                        aof_record::checksum::crc64_nvme(seg.bytes()),
                    ),
                ];
                for (what, expected, actual) in checks {
                    if expected != actual {
                        return Err(AofError::SegmentMismatch {
                            segment: slot.base_id,
                            what,
                            expected,
                            actual,
                        });
                    }
                }
            }
            report.segments += 1;
            report.records += count;
            report.bytes += seg.bytes().len() as u64;
            progress(i as u64 + 1, total);
        }
        // The active segment: every record written so far, re-read and checked.
        let mut w = lock(&inner.writer);
        for id in w.seg.base_id..w.next_id {
            read_active(&mut w, id, inner.config.max_record_size())?;
        }
        report.segments += 1;
        report.records += w.next_id - w.seg.base_id;
        report.bytes += w.seg.data_len(w.buf.len());
        progress(total, total);
        Ok(report)
    }
}
