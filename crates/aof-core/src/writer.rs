//! The active segment and the write buffer: [`Writer`].
//!
//! Everything an append touches lives in one `Writer` behind one mutex (held
//! by the engine's shared state). This module knows files, not the rest of
//! the engine: it encodes records into the buffer, writes the buffer out,
//! seals a full segment with its offset table and footer, and creates the
//! next segment file. Deciding *when* to do each, and what a failure means
//! (poisoning), is the caller's.
//!
//! # Invariants
//!
//! * `seg.offsets[i]` is the offset of record `seg.base_id + i`; the records
//!   `..seg.written` are in the file, the rest are in `buf` (which belongs at
//!   `seg.written`). One exception: a sync round writes what it took out of
//!   the buffer ([`Writer::take_out`]) after releasing the writer lock,
//!   holding `seg.io` from before the release until the bytes are in the
//!   file. Whatever reads or writes the file under the writer lock
//!   (`write_out`, and so the rollover and truncation; reads of the file)
//!   takes `seg.io` first, so it finds every byte below `seg.written` there.
//! * `seg.crc` is the CRC-64/NVME of the file's bytes `0..seg.written`.
//! * A segment file is created as temp file → header written and synced →
//!   rename; then directory synced → index entry added and synced, before
//!   any record in it is reported durable (at open, before any is written;
//!   at a rollover, by the seal job, see `seal.rs`): an id in it can only be
//!   acknowledged once its directory entry is durable.

use crate::codec::{Codec, Prepared};
use crate::fs::{FileHandle, FileHandleExt, FileSystem, OpenMode};
use crate::layout::{file_name, path_in, segment_file_name, segment_temp_name};
use crate::locks::lock;
use crate::segment::{Scan, checked_record, digest_of, footer_bytes};
use aof_record::checksum::Crc64;
use aof_record::record::{RecordHeader, encoded_len, seal_record};
use aof_record::segment::{SEGMENT_HEADER_SIZE, SegmentHeader};
use aof_record::{AofConfig, AofError, AofResult, FlushStrategy, SegmentEntry, SegmentIndex};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes buffered in memory before they are written to the segment file.
pub(crate) const WRITE_BUFFER: usize = 256 * 1024;

/// Chunk size used to fill pre-allocated segment files with zeros.
const ZERO_CHUNK: usize = 1 << 20;

/// The active segment and everything appends touch, behind one mutex.
pub(crate) struct Writer {
    pub(crate) seg: ActiveSegment,
    /// Encoded records not yet written to the file; they belong at `seg.written`.
    pub(crate) buf: Vec<u8>,
    pub(crate) next_id: u64,
    pub(crate) last_ts: u64,
    /// Index (in `seg.offsets`) of the first buffered record whose checksum is
    /// not computed yet: records are sealed in one pass before the buffer is
    /// written or read (see `aof_record::record::append_record_unsealed`).
    pub(crate) unsealed_from: usize,
    /// How many times `truncate_after` removed records: a sync round that
    /// captured its range before a truncation must not publish it.
    pub(crate) truncations: u64,
    /// An empty buffer to swap in when a sync round takes `buf` out.
    pub(crate) spare: Vec<u8>,
}

/// Buffered records a sync round took out of the writer ([`Writer::take_out`])
/// to write without holding the writer lock.
pub(crate) struct TakenOut {
    file: Arc<dyn FileHandle>,
    path: PathBuf,
    at: u64,
    /// The records, sealed; handed back to the writer once written.
    pub(crate) bytes: Vec<u8>,
}

impl TakenOut {
    /// Writes the records where they belong, then starts the writeback of
    /// every full [`WRITEBACK_CHUNK`] they complete. The caller holds the
    /// segment's `io` lock, taken before it released the writer lock.
    pub(crate) fn write(&self) -> AofResult<()> {
        self.file
            .write_all_at(&self.bytes, self.at)
            .map_err(|e| AofError::io(&self.path, e))?;
        start_writeback(
            self.file.as_ref(),
            &self.path,
            self.at,
            self.at + self.bytes.len() as u64,
        )
    }
}

/// Starts the writeback of the full [`WRITEBACK_CHUNK`]s that bytes
/// `before..after` completed, so a sync (the seal's above all) waits for the
/// last chunk only.
fn start_writeback(file: &dyn FileHandle, path: &Path, before: u64, after: u64) -> AofResult<()> {
    let (from, to) = (
        before / WRITEBACK_CHUNK * WRITEBACK_CHUNK,
        after / WRITEBACK_CHUNK * WRITEBACK_CHUNK,
    );
    if to > from {
        file.start_writeback(from, to - from)
            .map_err(|e| AofError::io(path, e))?;
    }
    Ok(())
}

/// Bytes of a segment written between two writeback starts (see
/// [`FileHandle::start_writeback`]): large enough to cost one syscall per
/// many records, small enough that a seal's sync finds little left to write.
const WRITEBACK_CHUNK: u64 = 4 << 20;

/// The segment appends go to.
pub(crate) struct ActiveSegment {
    pub(crate) base_id: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn FileHandle>,
    /// Bytes of header and records written to the file.
    pub(crate) written: u64,
    /// Offset of each record, in id order.
    pub(crate) offsets: Vec<u32>,
    /// CRC-64/NVME of the file's bytes `0..written`.
    pub(crate) crc: Crc64,
    pub(crate) created_at: u64,
    pub(crate) prealloc_asked: bool,
    /// A live map of the pre-allocated file, for reads without a syscall.
    pub(crate) map: Option<Bytes>,
    /// No file behind it yet: the next segment of a read-only view, until
    /// the writer creates it (see `refresh.rs`).
    pub(crate) absent: bool,
    /// Held while bytes below `written` may not be in the file yet (see the
    /// module's invariants).
    pub(crate) io: Arc<Mutex<()>>,
}

impl ActiveSegment {
    /// An empty active segment at `base_id` with no file behind it, for a
    /// read-only log whose next segment does not exist yet: every write to
    /// it fails.
    pub(crate) fn placeholder(base_id: u64, path: PathBuf, created_at: u64) -> Self {
        let header = SegmentHeader {
            base_id,
            created_at_us: created_at,
        }
        .encode();
        Self {
            base_id,
            path,
            file: Arc::new(crate::fs::NoFile),
            written: SEGMENT_HEADER_SIZE as u64,
            offsets: Vec::new(),
            crc: digest_of(&header),
            created_at,
            prealloc_asked: false,
            map: None,
            absent: true,
            io: Arc::default(),
        }
    }

    /// Bytes of header and records, written or still `buffered`.
    pub(crate) fn data_len(&self, buffered: usize) -> u64 {
        self.written + buffered as u64
    }

    /// The last id the segment holds, when it holds any, given the next id.
    pub(crate) fn last_id(&self, next_id: u64) -> Option<u64> {
        next_id.checked_sub(1).filter(|l| *l >= self.base_id)
    }
}

impl Writer {
    /// A writer appending to `seg` from `next_id`, the records already in
    /// the file (`sealed` of them) being sealed.
    pub(crate) fn new(seg: ActiveSegment, next_id: u64, last_ts: u64, sealed: usize) -> Self {
        Self {
            seg,
            buf: Vec::with_capacity(WRITE_BUFFER + 4096),
            next_id,
            last_ts,
            unsealed_from: sealed,
            truncations: 0,
            spare: Vec::new(),
        }
    }

    /// Whether a record of `payload_len` bytes must go to a new segment.
    pub(crate) fn must_roll(&self, payload_len: usize, segment_size: u64) -> bool {
        let len = encoded_len(payload_len) as u64;
        self.seg.data_len(self.buf.len()) + len > segment_size && !self.seg.offsets.is_empty()
    }

    /// Encodes one record at the end of the buffer (checksum deferred to
    /// [`Writer::seal_buffered`]), with timestamp `max(ts, last)`.
    pub(crate) fn push(&mut self, payload: &Prepared<'_>, ts: u64, codec: &Codec) -> AofResult<()> {
        let ts = ts.max(self.last_ts);
        let offset = self.seg.data_len(self.buf.len());
        let id = self.next_id;
        // The last id is u64::MAX - 1: the next id must exist.
        let next = id.checked_add(1).ok_or(AofError::OutOfRange {
            id,
            first: self.seg.base_id,
            next: id,
        })?;
        codec
            .encode(&mut self.buf, id, ts, payload)
            .map_err(|source| AofError::Corruption {
                segment: self.seg.base_id,
                offset,
                source,
            })?;
        // offset < segment_size <= u32::MAX, checked by the configuration.
        self.seg.offsets.push(offset as u32);
        self.next_id = next;
        self.last_ts = ts;
        Ok(())
    }

    /// Computes the checksums of every buffered record not yet sealed.
    pub(crate) fn seal_buffered(&mut self) {
        let n = self.seg.offsets.len();
        let buf_end = self.seg.written + self.buf.len() as u64;
        for i in self.unsealed_from..n {
            let start = (u64::from(self.seg.offsets[i]) - self.seg.written) as usize;
            let end =
                (self.seg.offsets.get(i + 1).map_or(buf_end, |o| u64::from(*o)) - self.seg.written) as usize;
            seal_record(&mut self.buf[start..end]);
        }
        self.unsealed_from = n;
    }

    /// Writes the buffered records to the segment file, after any a sync
    /// round is still writing (see the module's invariants). On failure what
    /// is on disk is unknown: the caller poisons the log.
    pub(crate) fn write_out(&mut self) -> AofResult<()> {
        let io = self.seg.io.clone();
        let _io = lock(&io);
        if self.buf.is_empty() {
            return Ok(());
        }
        self.seal_buffered();
        self.seg
            .file
            .write_all_at(&self.buf, self.seg.written)
            .map_err(|e| AofError::io(&self.seg.path, e))?;
        self.seg.crc.update(&self.buf);
        let before = self.seg.written;
        self.seg.written += self.buf.len() as u64;
        self.buf.clear();
        start_writeback(self.seg.file.as_ref(), &self.seg.path, before, self.seg.written)
    }

    /// Takes the buffered records out, sealed, for a sync round to write
    /// without the writer lock: `seg.written` and `seg.crc` count them at
    /// once. The caller holds `seg.io` from before it releases the writer
    /// lock until [`TakenOut::write`] returns, then hands the bytes back
    /// ([`Writer::recycle`]).
    pub(crate) fn take_out(&mut self) -> Option<TakenOut> {
        if self.buf.is_empty() {
            return None;
        }
        self.seal_buffered();
        self.seg.crc.update(&self.buf);
        let at = self.seg.written;
        self.seg.written += self.buf.len() as u64;
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        next.reserve(WRITE_BUFFER + 4096);
        let bytes = std::mem::replace(&mut self.buf, next);
        Some(TakenOut {
            file: self.seg.file.clone(),
            path: self.seg.path.clone(),
            at,
            bytes,
        })
    }

    /// Keeps the buffer of a written [`TakenOut`] for the next one.
    pub(crate) fn recycle(&mut self, bytes: Vec<u8>) {
        if bytes.capacity() > self.spare.capacity() {
            self.spare = bytes;
        }
    }

    /// Completes the active segment in the file, unsynced: its records
    /// written out, then its offset table and footer, the file cut to its
    /// end. Returns the index entry that finalizes it. Making it durable
    /// (one `sync_all`) and committing the entry is the seal job's work (see
    /// `seal.rs`), off the append path.
    pub(crate) fn write_footer(&mut self) -> AofResult<SegmentEntry> {
        self.write_out()?;
        let seg = &self.seg;
        let sealed = footer_bytes(seg.base_id, &seg.offsets, seg.written, seg.crc.finish());
        seg.file
            .write_all_at(&sealed, seg.written)
            .and_then(|()| seg.file.set_len(seg.written + sealed.len() as u64))
            .map_err(|e| AofError::io(&seg.path, e))?;
        let mut whole = seg.crc.clone();
        whole.update(&sealed);
        let last_id = seg.last_id(self.next_id);
        let finalized_at = if last_id.is_some() {
            self.last_ts
        } else {
            seg.created_at
        };
        SegmentEntry::new_active(seg.base_id, seg.created_at, file_name(&seg.path))
            .finalize(
                last_id,
                seg.written + sealed.len() as u64,
                whole.finish(),
                finalized_at,
            )
            .map_err(AofError::from)
    }

    /// Starts appending to `seg`, a new segment beginning at `next_id`.
    pub(crate) fn start(&mut self, seg: ActiveSegment) {
        self.last_ts = self.last_ts.max(seg.created_at);
        self.unsealed_from = 0;
        self.seg = seg;
    }

    /// Reads record `id` of the active segment: its header and stored
    /// payload. The caller checks `seg.base_id <= id < next_id`.
    pub(crate) fn read(&mut self, id: u64) -> AofResult<(RecordHeader, Bytes)> {
        self.seal_buffered();
        let index = (id - self.seg.base_id) as usize;
        let offset = u64::from(self.seg.offsets[index]);
        let end = self
            .seg
            .offsets
            .get(index + 1)
            .map_or(self.seg.data_len(self.buf.len()), |o| u64::from(*o));
        let len = (end - offset) as usize;
        let io = self.seg.io.clone();
        // Bytes below `written` a sync round is still writing are there
        // once it lets go.
        let _io = (offset < self.seg.written).then(|| lock(&io));
        let from_file;
        let region: &[u8] = match &self.seg.map {
            Some(map) if end <= self.seg.written && end <= map.len() as u64 => {
                &map[offset as usize..end as usize]
            }
            _ if offset >= self.seg.written => {
                let at = (offset - self.seg.written) as usize;
                &self.buf[at..at + len]
            }
            _ => {
                let mut v = vec![0u8; len];
                self.seg
                    .file
                    .read_exact_at(&mut v, offset)
                    .map_err(|e| AofError::io(&self.seg.path, e))?;
                from_file = v;
                &from_file
            }
        };
        let rec = checked_record(region, id, self.seg.base_id, offset)?;
        // Copied out, never sliced: the active file can still shrink
        // (truncate_after), and a slice of its map must not outlive that.
        Ok((rec.header, Bytes::copy_from_slice(rec.payload)))
    }
}

/// The active segment recovered by a scan of its file `data`.
pub(crate) fn recovered_segment(
    base_id: u64,
    path: PathBuf,
    file: Arc<dyn FileHandle>,
    data: &[u8],
    scan: Scan,
    created_at: u64,
    segment_size: u64,
) -> Writer {
    let next_id = base_id + scan.offsets.len() as u64;
    // Every scanned record is already in the file, checksum and all.
    let sealed = scan.offsets.len();
    let end = usize::try_from(scan.data_end)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let last_ts = scan.last_timestamp.unwrap_or(created_at).max(created_at);
    let seg = ActiveSegment {
        base_id,
        path,
        written: scan.data_end,
        offsets: scan.offsets,
        crc: digest_of(&data[..end]),
        created_at,
        prealloc_asked: false,
        map: live_map(file.as_ref(), segment_size),
        file,
        absent: false,
        io: Arc::default(),
    };
    Writer::new(seg, next_id, last_ts, sealed)
}

/// How a new segment file is made ready for records before its first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prepare {
    /// Nothing: the file grows as records are written to it.
    Grow,
    /// Zeros written over the whole segment size: on this kind of disk an
    /// fdatasync of a written file is about twice as fast as of a growing
    /// or fallocated one, since it has no block allocation to journal. It
    /// pays only where callers wait on fdatasyncs (Sync): elsewhere it
    /// doubles the bytes written (a 64-byte Batched(1000) log spent a
    /// quarter of its CPU writing zeros).
    Zeros,
    /// The whole segment size reserved without writing (`fallocate`): a
    /// full disk shows while preparing, not in an append.
    Reserve,
}

impl Prepare {
    /// How files are prepared ahead of rollover under `config`.
    pub(crate) fn for_config(config: &AofConfig) -> Self {
        if !config.pre_allocate_enabled() {
            Self::Grow
        } else if config.flush_strategy() == FlushStrategy::Sync {
            Self::Zeros
        } else {
            Self::Reserve
        }
    }

    /// Applies this preparation to `file` for a segment of `size` bytes.
    fn apply(self, file: &dyn FileHandle, size: u64) -> std::io::Result<()> {
        match self {
            Self::Grow => Ok(()),
            Self::Zeros => fill_zeros(file, size),
            Self::Reserve => file.allocate(size),
        }
    }
}

/// Where a new segment file comes from.
#[derive(Debug)]
pub(crate) enum NewFile {
    /// A prepared (see [`Prepare`]), synced temp file.
    Prepared(PathBuf),
    /// A new file, prepared here.
    Create(Prepare),
}

/// Creates the active segment `base_id` (see the module's invariants):
/// its file (header synced, renamed into place, the directory synced) and
/// its index entry (committed).
pub(crate) fn create_active(
    fs: &dyn FileSystem,
    dir: &Path,
    index: &dyn SegmentIndex,
    base_id: u64,
    created_at: u64,
    source: NewFile,
    segment_size: u64,
) -> AofResult<ActiveSegment> {
    let (seg, entry) = create_active_file(fs, dir, base_id, created_at, source, segment_size)?;
    fs.sync_dir(dir).map_err(|e| AofError::io(dir, e))?;
    index.add_entry(&entry)?;
    index.sync()?;
    Ok(seg)
}

/// The file of a new active segment `base_id`: its header written and
/// synced before the rename that names it, so a file under a segment's name
/// always has a valid header. The rename is not made durable here (no
/// directory sync) and the returned index entry is not committed: the
/// caller does both before any record of it is reported durable.
pub(crate) fn create_active_file(
    fs: &dyn FileSystem,
    dir: &Path,
    base_id: u64,
    created_at: u64,
    source: NewFile,
    segment_size: u64,
) -> AofResult<(ActiveSegment, SegmentEntry)> {
    let name = segment_file_name(base_id);
    let path = path_in(dir, &name);
    let (tmp, file) = match source {
        NewFile::Prepared(p) => {
            let f = fs
                .open(&p, OpenMode::ReadWrite)
                .map_err(|e| AofError::io(&p, e))?;
            (p, f)
        }
        NewFile::Create(prepare) => {
            let p = path_in(dir, &segment_temp_name(base_id));
            let f = fs
                .open(&p, OpenMode::CreateNew)
                .map_err(|e| AofError::io(&p, e))?;
            prepare
                .apply(f.as_ref(), segment_size)
                .map_err(|e| AofError::io(&p, e))?;
            (p, f)
        }
    };
    let header = SegmentHeader {
        base_id,
        created_at_us: created_at,
    }
    .encode();
    file.write_all_at(&header, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| AofError::io(&tmp, e))?;
    fs.rename(&tmp, &path).map_err(|e| AofError::io(&path, e))?;
    let mut entry = SegmentEntry::new_active(base_id, created_at, name);
    entry.set_tail(None, SEGMENT_HEADER_SIZE as u64)?;
    let map = live_map(file.as_ref(), segment_size);
    let seg = ActiveSegment {
        base_id,
        path,
        file,
        written: SEGMENT_HEADER_SIZE as u64,
        offsets: Vec::new(),
        crc: digest_of(&header),
        created_at,
        prealloc_asked: false,
        map,
        absent: false,
        io: Arc::default(),
    };
    Ok((seg, entry))
}

/// Creates `path`, prepared as `prepare` says for a segment of `size`
/// bytes, synced.
pub(crate) fn prepare_file(fs: &dyn FileSystem, path: &Path, size: u64, prepare: Prepare) -> AofResult<()> {
    let file = fs
        .open(path, OpenMode::CreateNew)
        .map_err(|e| AofError::io(path, e))?;
    prepare
        .apply(file.as_ref(), size)
        .and_then(|()| file.sync_all())
        .map_err(|e| AofError::io(path, e))
}

/// Writes `size` zero bytes from the start of `file`.
fn fill_zeros(file: &dyn FileHandle, size: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK.min(usize::try_from(size).unwrap_or(ZERO_CHUNK))];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// A live map of an active segment file that is pre-allocated to the full
/// segment size (so every offset a record can have is inside the file).
fn live_map(file: &dyn FileHandle, segment_size: u64) -> Option<Bytes> {
    let len = file.len().ok()?;
    if len < segment_size {
        return None;
    }
    file.map_live(segment_size).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::LocalFileSystem;
    use std::os::unix::fs::MetadataExt;

    fn prepared(strategy: FlushStrategy) -> (Prepare, std::fs::Metadata) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prealloc-0.tmp");
        let config = AofConfig::builder().flush_strategy(strategy).build().unwrap();
        let prepare = Prepare::for_config(&config);
        prepare_file(&LocalFileSystem, &path, 1 << 20, prepare).unwrap();
        (prepare, std::fs::metadata(&path).unwrap())
    }

    /// Only Sync, whose callers wait on every fdatasync, writes zeros; the
    /// other strategies reserve the space (not a sparse file: a full disk
    /// must show while preparing, not in an append).
    #[test]
    fn prepared_files_are_full_size_and_reserved() {
        for strategy in [
            FlushStrategy::Sync,
            FlushStrategy::Batched(1000),
            FlushStrategy::Async,
        ] {
            let (prepare, meta) = prepared(strategy);
            let expected = if strategy == FlushStrategy::Sync {
                Prepare::Zeros
            } else {
                Prepare::Reserve
            };
            assert_eq!(prepare, expected, "{strategy:?}");
            assert_eq!(meta.len(), 1 << 20, "{strategy:?}");
            assert!(
                meta.blocks() * 512 >= 1 << 20,
                "{strategy:?}: {} blocks",
                meta.blocks()
            );
        }
        let config = AofConfig::builder().pre_allocate_enabled(false).build().unwrap();
        assert_eq!(Prepare::for_config(&config), Prepare::Grow);
    }
}
