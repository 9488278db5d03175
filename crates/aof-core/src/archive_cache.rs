//! Reading archived segments, and the local cache of what was fetched of
//! them: [`Remote`] (the archive storage, the runtime its calls run on, the
//! cache directory) and [`ArchivedSegment`] (one segment's seek table and
//! fetched frames).
//!
//! # Invariants
//!
//! * A record of an archived segment is read from fetched frames only. A
//!   frame is fetched by one ranged read, decompressed with its zstd
//!   content checksum checked, and written at its place in the segment's
//!   sparse cache file (`archive-cache/<segment>`); the record's own CRC and
//!   id are then checked as for a local segment.
//! * A frame is fetched once: concurrent readers of a frame wait for the
//!   fetch in flight. A failed fetch is that reader's typed error and leaves
//!   nothing behind; the log is not poisoned.
//! * A cache file is dropped only while no reader pins its segment and no
//!   fetch writes to it.
//! * The cache is only a cache: recovery drops it when the log opens, so
//!   nothing in it is trusted across a restart. A segment fully fetched is
//!   checked against its CRC-64/NVME before it is reported whole.
//! * Archive calls run on the log's own runtime, never inside a caller's: a
//!   blocking caller waits on a channel for the result.

use crate::fs::{FileHandle, FileHandleExt, FileSystem, OpenMode};
use crate::locks::lock;
use crate::metrics::ArchiveMetrics;
use crate::segment::checked_record;
use aof_archive_format::{ArchiveFormatExt, Footer, SeekTable, SegmentArchiveError, decode_frame};
use aof_record::archive::{ArchiveKey, ArchiveStorage};
use aof_record::checksum::Crc64;
use aof_record::segment::{SEGMENT_FOOTER_SIZE, SEGMENT_HEADER_SIZE, SegmentFooter};
use aof_record::{
    AofError, AofResult, FORMAT_MAX_RECORD_SIZE, RECORD_HEADER_SIZE, RecordHeader, SegmentEntry,
};
use bytes::Bytes;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Bytes read from an object's end on its first use: the seek table and,
/// for log-like data (1 MiB frames compressing 4× or more), the whole last
/// frame, in one ranged read.
const TAIL_READ: u64 = 256 << 10;

/// The archive as the engine uses it: the storage, the runtime its async
/// calls run on, and where fetched data is kept.
pub(crate) struct Remote {
    pub(crate) storage: Arc<dyn ArchiveStorage>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The file system and directory fetched data is written to.
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// A read-only open keeps its cache in a private temporary directory.
    _private: Option<tempfile::TempDir>,
    /// Most bytes of fetched data kept.
    pub(crate) budget: u64,
    pub(crate) metrics: Arc<ArchiveMetrics>,
    tick: AtomicU64,
    /// Held for one segment's whole archival: the background archiver and
    /// `archive_now` never archive the same segment at once.
    pub(crate) upload_lock: Mutex<()>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("storage", &self.storage)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Never blocks, so dropping the log inside a caller's runtime is safe.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Remote {
    /// The archive `storage`, its fetched data kept in `dir` on `fs`, or (for
    /// `dir = None`, a read-only open, which writes nothing to the log) in
    /// a private temporary directory.
    pub(crate) fn new(
        storage: Arc<dyn ArchiveStorage>,
        fs: Arc<dyn FileSystem>,
        dir: Option<PathBuf>,
        budget: u64,
        metrics: Arc<ArchiveMetrics>,
    ) -> AofResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aof-archive")
            .enable_all()
            .build()
            .map_err(|e| AofError::io("aof-archive runtime", e))?;
        let (fs, dir, private) = match dir {
            Some(d) => (fs, d, None),
            None => {
                let t = tempfile::tempdir().map_err(|e| AofError::io(std::env::temp_dir(), e))?;
                (crate::fs::LocalFileSystem::shared(), t.path().to_owned(), Some(t))
            }
        };
        fs.create_dir_all(&dir).map_err(|e| AofError::io(&dir, e))?;
        Ok(Self {
            storage,
            runtime: Some(runtime),
            fs,
            dir,
            _private: private,
            budget,
            metrics,
            tick: AtomicU64::new(0),
            upload_lock: Mutex::new(()),
        })
    }

    /// Runs `fut` on the archive runtime and waits for it on this thread
    /// (which may be inside a caller's runtime: nothing is `block_on`'d).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> AofResult<T> {
        let rt = self.runtime.as_ref().ok_or(AofError::Closed)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| AofError::Closed)
    }

    /// Starts `fut` on the archive runtime without waiting for it.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        if let Some(rt) = &self.runtime {
            rt.spawn(fut);
        }
    }

    fn cache_path(&self, base_id: u64) -> PathBuf {
        self.dir.join(crate::layout::segment_file_name(base_id))
    }
}

/// An [`AofError`] for a failure reading the archived segment `segment`:
/// the storage's own error when it is one, else the format's.
pub(crate) fn archive_error(segment: u64, e: SegmentArchiveError) -> AofError {
    match e {
        SegmentArchiveError::Archive(a) => AofError::Archive(a),
        other => AofError::ArchivedSegment {
            segment,
            source: Box::new(other),
        },
    }
}

fn mismatch(segment: u64, what: &'static str, expected: u64, actual: u64) -> AofError {
    AofError::SegmentMismatch {
        segment,
        what,
        expected,
        actual,
    }
}

/// A cache file: the file system it is on, its path, its handle.
type CacheFile = (Arc<dyn FileSystem>, PathBuf, Arc<dyn FileHandle>);

/// What has been fetched of one archived segment.
#[derive(Default)]
struct Fetched {
    table: Option<Arc<SeekTable>>,
    table_in_flight: bool,
    footer: Option<SegmentFooter>,
    /// The cache file, once created, with the file system it is on.
    file: Option<CacheFile>,
    present: Vec<bool>,
    in_flight: Vec<bool>,
    /// Fetches writing to the file: it is not dropped meanwhile.
    writers: usize,
    /// Segment bytes fetched.
    bytes: u64,
    /// Every frame fetched and the whole checked against the segment's checksum.
    whole: bool,
}

/// One archived segment: where its object is, what the index says of it,
/// and what of it has been fetched.
pub(crate) struct ArchivedSegment {
    pub(crate) base_id: u64,
    pub(crate) key: ArchiveKey,
    pub(crate) original_size: u64,
    pub(crate) compressed_size: u64,
    pub(crate) compressed_checksum: u64,
    pub(crate) uncompressed_checksum: Option<u64>,
    /// The slot's pins: readers positioned in the segment.
    pub(crate) pins: Arc<AtomicUsize>,
    last_used: AtomicU64,
    last_read: AtomicU64,
    state: Mutex<Fetched>,
    cv: Condvar,
}

impl fmt::Debug for ArchivedSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchivedSegment")
            .field("base_id", &self.base_id)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ArchivedSegment {
    /// The archived segment of an `ArchivedRemote` or `ArchivedCached`
    /// index entry; a [`AofError::SegmentMismatch`] if the entry lacks its
    /// archive key or compressed size.
    pub(crate) fn for_entry(entry: &SegmentEntry, pins: Arc<AtomicUsize>) -> AofResult<Self> {
        let key = entry
            .archive_key
            .as_deref()
            .ok_or(mismatch(entry.base_id, "archive key of an archived entry", 1, 0))
            .and_then(|k| ArchiveKey::new(k).map_err(AofError::Archive))?;
        let compressed_size = entry.compressed_size.ok_or(mismatch(
            entry.base_id,
            "compressed size of an archived entry",
            1,
            0,
        ))?;
        Ok(Self {
            base_id: entry.base_id,
            key,
            original_size: entry.original_size,
            compressed_size,
            compressed_checksum: entry.compressed_checksum.unwrap_or(0),
            uncompressed_checksum: entry.uncompressed_checksum,
            pins,
            last_used: AtomicU64::new(0),
            last_read: AtomicU64::new(0),
            state: Mutex::new(Fetched::default()),
            cv: Condvar::new(),
        })
    }

    fn wait<'a>(&self, g: std::sync::MutexGuard<'a, Fetched>) -> std::sync::MutexGuard<'a, Fetched> {
        self.cv.wait(g).unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes of segment fetched and kept.
    pub(crate) fn cached_bytes(&self) -> u64 {
        lock(&self.state).bytes
    }

    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// The seek table, fetched once (two small ranged reads) and checked
    /// against the index's sizes.
    fn table(&self, remote: &Remote) -> AofResult<Arc<SeekTable>> {
        let mut st = lock(&self.state);
        loop {
            if let Some(t) = &st.table {
                return Ok(t.clone());
            }
            if !st.table_in_flight {
                break;
            }
            st = self.wait(st);
        }
        st.table_in_flight = true;
        drop(st);
        let fetched = self.fetch_tail(remote);
        let mut st = lock(&self.state);
        st.table_in_flight = false;
        let result = match fetched {
            Ok((table, last)) => {
                st.present = vec![false; table.frames() as usize];
                st.in_flight = vec![false; table.frames() as usize];
                if let Some((i, len)) = last {
                    st.present[i as usize] = true;
                    st.bytes += len;
                }
                let table = Arc::new(table);
                st.table = Some(table.clone());
                Ok(table)
            }
            Err(e) => Err(e),
        };
        self.cv.notify_all();
        result
    }

    /// One ranged read of the object's last [`TAIL_READ`] bytes: the seek
    /// table (checked against the index's sizes) and, when it fits, the
    /// last frame, which holds the segment's footer and offset table; that
    /// frame is stored in the cache file. Returns the table and the stored
    /// frame's index and length.
    fn fetch_tail(&self, remote: &Remote) -> AofResult<(SeekTable, Option<(u32, u64)>)> {
        let size = self.compressed_size;
        let from = size.saturating_sub(TAIL_READ);
        let format = |source| {
            archive_error(
                self.base_id,
                SegmentArchiveError::Format {
                    key: self.key.clone(),
                    source,
                },
            )
        };
        let started = Instant::now();
        let (storage, key) = (remote.storage.clone(), self.key.clone());
        let tail = remote
            .run(async move { storage.read_range(&key, from..size).await })?
            .map_err(AofError::Archive)?;
        remote.metrics.record_fetch(started.elapsed(), size - from);
        let footer = Footer::decode(&tail).map_err(format)?;
        let table_len = footer.table_len() as u64;
        if table_len > size {
            return Err(mismatch(self.base_id, "archive object size", table_len, size));
        }
        let table_bytes = if table_len <= tail.len() as u64 {
            tail.slice(tail.len() - table_len as usize..)
        } else {
            // A table larger than the tail read (thousands of frames).
            let (storage, key) = (remote.storage.clone(), self.key.clone());
            remote
                .run(async move { storage.read_range(&key, size - table_len..size).await })?
                .map_err(AofError::Archive)?
        };
        let table = SeekTable::decode(&table_bytes, Some(size)).map_err(format)?;
        if table.decompressed_size() != self.original_size {
            return Err(mismatch(
                self.base_id,
                "archived segment size",
                self.original_size,
                table.decompressed_size(),
            ));
        }
        let Some(last) = table.frames().checked_sub(1) else {
            return Ok((table, None));
        };
        let loc = table.frame(last).map_err(format)?;
        if loc.compressed.start < from {
            return Ok((table, None));
        }
        let at = (loc.compressed.start - from) as usize;
        let end = (loc.compressed.end - from) as usize;
        let bytes = decode_frame(tail.get(at..end).unwrap_or(&[]), &loc).map_err(format)?;
        let file = self.file(remote)?;
        file.write_all_at(&bytes, loc.decompressed.start)
            .map_err(|e| AofError::io(remote.cache_path(self.base_id), e))?;
        Ok((table, Some((last, bytes.len() as u64))))
    }

    /// The cache file (created on first use).
    fn file(&self, remote: &Remote) -> AofResult<Arc<dyn FileHandle>> {
        let mut st = lock(&self.state);
        if let Some((_, _, f)) = &st.file {
            return Ok(f.clone());
        }
        let path = remote.cache_path(self.base_id);
        let fs = remote.fs.clone();
        match fs.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AofError::io(&path, e)),
        }
        let f = fs
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| AofError::io(&path, e))?;
        st.file = Some((fs, path, f.clone()));
        Ok(f)
    }

    /// Makes frame `i` present: fetches it unless it is, or waits for the
    /// fetch in flight. Returns whether this call fetched it.
    fn frame(&self, remote: &Remote, table: &SeekTable, i: u32) -> AofResult<bool> {
        let idx = i as usize;
        let mut st = lock(&self.state);
        loop {
            if st.present.get(idx).copied().unwrap_or(false) {
                return Ok(false);
            }
            if !st.in_flight.get(idx).copied().unwrap_or(false) {
                break;
            }
            st = self.wait(st);
        }
        if idx >= st.in_flight.len() {
            return Err(mismatch(
                self.base_id,
                "frame index",
                u64::from(table.frames()),
                u64::from(i),
            ));
        }
        st.in_flight[idx] = true;
        st.writers += 1;
        drop(st);
        let result = self.fetch_frame(remote, table, i);
        let mut st = lock(&self.state);
        st.in_flight[idx] = false;
        st.writers -= 1;
        if let Ok(len) = result {
            st.present[idx] = true;
            st.bytes += len;
        }
        self.cv.notify_all();
        result.map(|_| true)
    }

    /// Fetches, checks and stores frame `i`; returns its segment bytes.
    fn fetch_frame(&self, remote: &Remote, table: &SeekTable, i: u32) -> AofResult<u64> {
        let loc = table.frame(i).map_err(|e| {
            archive_error(
                self.base_id,
                SegmentArchiveError::Format {
                    key: self.key.clone(),
                    source: e,
                },
            )
        })?;
        let file = self.file(remote)?;
        let storage = remote.storage.clone();
        let key = self.key.clone();
        let at = loc.decompressed.start;
        let compressed = loc.compressed.end - loc.compressed.start;
        let start = Instant::now();
        let bytes = remote
            .run(async move { storage.read_frame(&key, &loc).await })?
            .map_err(|e| archive_error(self.base_id, e))?;
        remote.metrics.record_fetch(start.elapsed(), compressed);
        file.write_all_at(&bytes, at)
            .map_err(|e| AofError::io(remote.cache_path(self.base_id), e))?;
        Ok(bytes.len() as u64)
    }

    /// Segment bytes `range`, fetching the frames that hold them.
    fn bytes(&self, remote: &Remote, range: Range<u64>) -> AofResult<Vec<u8>> {
        let table = self.table(remote)?;
        if range.start >= range.end || range.end > self.original_size {
            return Err(mismatch(
                self.base_id,
                "byte range end",
                self.original_size,
                range.end,
            ));
        }
        let first = table.frame_at(range.start);
        let last = table.frame_at(range.end - 1);
        let (first, last) = match (first, last) {
            (Ok(f), Ok(l)) => (f.index, l.index),
            (Err(e), _) | (_, Err(e)) => {
                return Err(archive_error(
                    self.base_id,
                    SegmentArchiveError::Format {
                        key: self.key.clone(),
                        source: e,
                    },
                ));
            }
        };
        let mut fetched = false;
        for i in first..=last {
            fetched |= self.frame(remote, &table, i)?;
        }
        let counter = if fetched {
            &remote.metrics.cache_misses
        } else {
            &remote.metrics.cache_hits
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let file = self.file(remote)?;
        // The range lies within the segment's size, which the index gives.
        file.read_vec_at((range.end - range.start) as usize, range.start)
            .map_err(|e| AofError::io(remote.cache_path(self.base_id), e))
    }

    /// The segment's footer, from its last frame, checked against the index.
    fn footer(&self, remote: &Remote) -> AofResult<SegmentFooter> {
        if let Some(f) = lock(&self.state).footer {
            return Ok(f);
        }
        let size = self.original_size;
        if size < (SEGMENT_HEADER_SIZE + SEGMENT_FOOTER_SIZE) as u64 {
            return Err(mismatch(self.base_id, "archived segment size", size, 0));
        }
        let raw = self.bytes(remote, size - SEGMENT_FOOTER_SIZE as u64..size)?;
        let footer = SegmentFooter::decode_fields(&raw).map_err(|source| AofError::InvalidFooter {
            segment: self.base_id,
            source,
        })?;
        if footer.base_id != self.base_id {
            return Err(mismatch(
                self.base_id,
                "base id in the segment footer",
                self.base_id,
                footer.base_id,
            ));
        }
        if footer
            .record_count
            .checked_mul(4)
            .and_then(|t| t.checked_add(footer.data_end))
            != Some(size - SEGMENT_FOOTER_SIZE as u64)
        {
            return Err(mismatch(
                self.base_id,
                "archived segment size",
                size,
                footer.file_len(),
            ));
        }
        lock(&self.state).footer = Some(footer);
        Ok(footer)
    }

    /// Record `id` (checksum-verified), `None` if the segment does not hold
    /// it. Fetches the footer's frame, the offset table's entry's, and the
    /// record's, whichever are not fetched yet.
    pub(crate) fn read(&self, remote: &Remote, id: u64) -> AofResult<Option<(RecordHeader, Bytes)>> {
        self.last_used
            .store(remote.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let footer = self.footer(remote)?;
        let Some(index) = id.checked_sub(self.base_id).filter(|i| *i < footer.record_count) else {
            return Ok(None);
        };
        let at = footer.data_end + index * 4;
        let (start, end) = if index + 1 < footer.record_count {
            let b = self.bytes(remote, at..at + 8)?;
            (
                u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]])),
            )
        } else {
            let b = self.bytes(remote, at..at + 4)?;
            (
                u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                footer.data_end,
            )
        };
        let max = u64::from(FORMAT_MAX_RECORD_SIZE) + RECORD_HEADER_SIZE as u64;
        if start < SEGMENT_HEADER_SIZE as u64
            || end > footer.data_end
            || end < start + RECORD_HEADER_SIZE as u64
            || end - start > max
        {
            return Err(mismatch(self.base_id, "offset table entry", start, end));
        }
        let data = Bytes::from(self.bytes(remote, start..end)?);
        self.last_read.store(start, Ordering::Relaxed);
        let rec = checked_record(&data, id, self.base_id, start)?;
        let len = rec.payload.len();
        let header = rec.header;
        Ok(Some((
            header,
            data.slice(RECORD_HEADER_SIZE..RECORD_HEADER_SIZE + len),
        )))
    }

    /// Starts fetching the frame after the one holding record `id`, if it
    /// is not fetched (a sequential reader's read-ahead). Never waits.
    pub(crate) fn prefetch_after(self: &Arc<Self>, remote: &Remote, offset_hint: u64) {
        let (table, next) = {
            let st = lock(&self.state);
            let Some(table) = st.table.clone() else { return };
            let Ok(cur) = table.frame_at(offset_hint) else {
                return;
            };
            let next = cur.index + 1;
            let i = next as usize;
            if i >= st.present.len() || st.present[i] || st.in_flight[i] {
                return;
            }
            (table, next)
        };
        let Ok(file) = self.file(remote) else { return };
        let Ok(loc) = table.frame(next) else { return };
        {
            let mut st = lock(&self.state);
            let i = next as usize;
            if st.present[i] || st.in_flight[i] {
                return;
            }
            st.in_flight[i] = true;
            st.writers += 1;
        }
        let seg = self.clone();
        let storage = remote.storage.clone();
        let metrics = remote.metrics.clone();
        remote.spawn(async move {
            let start = Instant::now();
            let compressed = loc.compressed.end - loc.compressed.start;
            let at = loc.decompressed.start;
            let fetched = storage.read_frame(&seg.key, &loc).await;
            let stored = match fetched {
                Ok(bytes) => {
                    metrics.record_fetch(start.elapsed(), compressed);
                    let len = bytes.len() as u64;
                    tokio::task::spawn_blocking(move || file.write_all_at(&bytes, at).map(|()| len))
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
                Err(e) => {
                    log::debug!("prefetching a frame of segment {}: {e}", seg.base_id);
                    None
                }
            };
            let mut st = lock(&seg.state);
            st.in_flight[next as usize] = false;
            st.writers -= 1;
            if let Some(len) = stored {
                st.present[next as usize] = true;
                st.bytes += len;
            }
            seg.cv.notify_all();
        });
    }

    /// Fetches this segment's seek table, footer and first records in the
    /// background (a sequential reader nearing the end of the segment
    /// before it), unless something of it was fetched already.
    pub(crate) fn prefetch_head(self: &Arc<Self>, remote: &Arc<Remote>) {
        {
            let st = lock(&self.state);
            if st.table.is_some() || st.table_in_flight {
                return;
            }
        }
        let (seg, remote) = (self.clone(), remote.clone());
        let spawned = std::thread::Builder::new()
            .name("aof-prefetch".into())
            .spawn(move || {
                let first = SEGMENT_HEADER_SIZE as u64;
                if let Err(e) = seg
                    .footer(&remote)
                    .and_then(|_| seg.bytes(&remote, first..first + 1))
                {
                    log::debug!("prefetching segment {}: {e}", seg.base_id);
                }
            });
        if let Err(e) = spawned {
            log::debug!("prefetching segment {}: {e}", self.base_id);
        }
    }

    /// Where the last record read from this segment starts (a hint for
    /// [`ArchivedSegment::prefetch_after`]).
    pub(crate) fn last_read_offset(&self) -> u64 {
        self.last_read.load(Ordering::Relaxed)
    }

    /// Whether every frame is fetched and the whole was checked; checks it
    /// (a pass over the cache file) the first time every frame is present.
    /// `Ok(true)` once, when it becomes whole.
    pub(crate) fn became_whole(&self) -> AofResult<bool> {
        let mut st = lock(&self.state);
        if st.whole || st.present.is_empty() || !st.present.iter().all(|p| *p) {
            return Ok(false);
        }
        let Some((_, path, file)) = st.file.clone() else {
            return Ok(false);
        };
        let mut crc = Crc64::new();
        let mut at = 0;
        while at < self.original_size {
            let n = (self.original_size - at).min(1 << 20);
            let chunk = file
                .read_vec_at(n as usize, at)
                .map_err(|e| AofError::io(&path, e))?;
            crc.update(&chunk);
            at += n;
        }
        let actual = crc.finish();
        if let Some(expected) = self.uncompressed_checksum
            && expected != actual
        {
            drop(st);
            self.drop_local();
            return Err(mismatch(
                self.base_id,
                "checksum of the restored segment",
                expected,
                actual,
            ));
        }
        st.whole = true;
        Ok(true)
    }

    /// Fetches every frame not fetched yet and checks the whole; returns the
    /// cache file's path.
    pub(crate) fn fetch_whole(&self, remote: &Remote) -> AofResult<PathBuf> {
        let table = self.table(remote)?;
        for i in 0..table.frames() {
            self.frame(remote, &table, i)?;
        }
        self.became_whole()?;
        let st = lock(&self.state);
        match &st.file {
            Some((_, p, _)) if st.whole => Ok(p.clone()),
            _ => Err(mismatch(
                self.base_id,
                "frames fetched",
                u64::from(table.frames()),
                0,
            )),
        }
    }

    /// Drops the fetched data (the cache file) unless a reader pins the
    /// segment or a fetch writes to it; returns the bytes dropped and
    /// whether the segment was whole.
    pub(crate) fn drop_local(&self) -> Option<(u64, bool)> {
        let mut st = lock(&self.state);
        if self.pins.load(Ordering::Acquire) > 0 || st.writers > 0 {
            return None;
        }
        let dropped = (st.bytes, st.whole);
        if let Some((fs, path, _)) = st.file.take()
            && let Err(e) = fs.remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("removing cached archive data {}: {e}", path.display());
        }
        st.present.iter_mut().for_each(|p| *p = false);
        st.bytes = 0;
        st.whole = false;
        Some(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aof_record::archive::MemoryArchive;

    #[test]
    fn cache_files_live_in_the_cache_directory() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote::new(
            Arc::new(MemoryArchive::new()),
            crate::fs::LocalFileSystem::shared(),
            Some(dir.path().join("archive-cache")),
            1 << 20,
            Arc::default(),
        )
        .unwrap();
        assert_eq!(
            remote.cache_path(3).parent(),
            Some(dir.path().join("archive-cache").as_path())
        );
        assert_eq!(remote.run(async { 2 + 2 }).unwrap(), 4);
    }
}
