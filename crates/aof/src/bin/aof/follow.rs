//! `aof tail [-f]`: reads the segment files directly, without the writer
//! lock, so that it can follow a log another process is appending to.
//!
//! The engine's own reader (`Aof::reader`, `Aof::tail`) needs the log open,
//! which takes the writer lock: a tail through it could only ever see its
//! own appends. This follower instead reads what the writer has written to
//! the segment files, record by record:
//!
//! * a record is shown once its bytes are in the file and its checksum holds
//!   (a record being written fails the checksum or is cut short, and is
//!   looked at again on the next poll);
//! * zeros (pre-allocated space) or a record not yet complete mean "wait";
//! * a segment is done when its footer is in place and says its data ends
//!   exactly where the follower is; the next segment file is named by the
//!   next id.

use crate::layout;
use crate::output::write_record;
use anyhow::{Context, bail};
use aof::AofError;
use aof::engine::layout::{parse_segment_file_name, segment_file_name};
use aof::format::RECORD_HEADER_SIZE;
use aof::format::checksum::crc64_nvme;
use aof::format::record::{RecordHeader, decode_record, is_zeroed_header};
use aof::format::segment::{SEGMENT_FOOTER_MAGIC, SEGMENT_FOOTER_SIZE, SEGMENT_HEADER_SIZE, SegmentHeader};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bytes read ahead from a segment file.
const READ_AHEAD: usize = 1 << 20;

/// How often a follower looks for new records.
const POLL: Duration = Duration::from_millis(50);

/// Record size cap for decoding: the format's own limit, since the follower
/// does not know the writer's configuration (every record is still
/// checksum-verified).
const MAX_RECORD: u32 = u32::MAX - RECORD_HEADER_SIZE as u32;

/// A record read by the follower.
struct Rec {
    id: u64,
    timestamp_us: u64,
    payload: Vec<u8>,
}

/// Reads a log's segment files in id order, as they grow.
struct Follower {
    dir: PathBuf,
    /// The segment being read.
    base: u64,
    file: File,
    /// Where the next record starts in `file`.
    offset: u64,
    /// The id the next record must have.
    next_id: u64,
    /// Bytes of `file` from `window_at` on, read ahead.
    window: Vec<u8>,
    window_at: u64,
}

/// Prints the last `lines` records of the log in `dir`; with `follow`, then
/// waits for new ones and prints them as they come, until killed or stdout closes.
pub fn tail(dir: &Path, lines: u64, follow: bool, json: bool) -> anyhow::Result<()> {
    layout::existing(dir)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut follower = loop {
        match Follower::start(dir, lines)? {
            Some(f) => break f,
            None if follow => std::thread::sleep(POLL),
            None => return Ok(()),
        }
    };
    loop {
        while let Some(r) = follower.next_record()? {
            write_record(&mut out, json, r.id, r.timestamp_us, &r.payload)?;
        }
        out.flush()?;
        if !follow {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// Prints records from id `from` on as they are appended (`tail -f` after
/// the records before `from` were printed some other way: read from the
/// archive), until killed or stdout closes.
pub fn follow_from(dir: &Path, from: u64, json: bool) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    let mut follower = loop {
        let bases = segment_files(dir)?;
        if !bases.is_empty() {
            break Follower::start_at(dir, &bases, from)?;
        }
        std::thread::sleep(POLL);
    };
    loop {
        while let Some(r) = follower.next_record()? {
            write_record(&mut out, json, r.id, r.timestamp_us, &r.payload)?;
        }
        out.flush()?;
        std::thread::sleep(POLL);
    }
}

/// Segment files in `dir`, by base id.
fn segment_files(dir: &Path) -> anyhow::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| AofError::io(dir, e))? {
        let entry = entry.map_err(|e| AofError::io(dir, e))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Follower {
    /// A follower positioned so that the last `lines` records come next;
    /// `None` while the log has no segment file yet.
    fn start(dir: &Path, lines: u64) -> anyhow::Result<Option<Self>> {
        let bases = segment_files(dir)?;
        let (Some(&first), Some(&last)) = (bases.first(), bases.last()) else {
            return Ok(None);
        };
        // Where the log ends now: count the last segment's records.
        let mut counter = Self::open(dir, last)?;
        while counter.next_record()?.is_some() {}
        let start = counter.next_id.saturating_sub(lines).max(first);
        Self::start_at(dir, &bases, start).map(Some)
    }

    /// A follower positioned at id `start` (or the first local record after
    /// it), in the local segment files `bases`.
    fn start_at(dir: &Path, bases: &[u64], start: u64) -> anyhow::Result<Self> {
        let first = bases.first().copied().unwrap_or(start);
        let base = bases
            .iter()
            .rev()
            .find(|b| **b <= start)
            .copied()
            .unwrap_or(first);
        let mut follower = Self::open(dir, base)?;
        while follower.next_id < start {
            if follower.next_record()?.is_none() {
                break;
            }
        }
        Ok(follower)
    }

    /// A follower at the first record of segment `base`.
    fn open(dir: &Path, base: u64) -> anyhow::Result<Self> {
        let path = dir.join(segment_file_name(base));
        let file = File::open(&path).map_err(|e| AofError::io(&path, e))?;
        let mut head = [0u8; SEGMENT_HEADER_SIZE];
        let n = read_at_most(&file, &mut head, 0).map_err(|e| AofError::io(&path, e))?;
        let header = SegmentHeader::decode(&head[..n]).map_err(|source| AofError::InvalidSegmentFile {
            path: path.clone(),
            source,
        })?;
        if header.base_id != base {
            return Err(AofError::SegmentMismatch {
                segment: base,
                what: "base id in the segment header",
                expected: base,
                actual: header.base_id,
            }
            .into());
        }
        Ok(Self {
            dir: dir.to_owned(),
            base,
            file,
            offset: SEGMENT_HEADER_SIZE as u64,
            next_id: base,
            window: Vec::new(),
            window_at: 0,
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(segment_file_name(self.base))
    }

    /// The next record if it is in the files now, moving on to the next
    /// segment when this one is sealed and read to its end.
    fn next_record(&mut self) -> anyhow::Result<Option<Rec>> {
        loop {
            if let Some(rec) = self.record_here()? {
                return Ok(Some(rec));
            }
            match self.sealed_end()? {
                Some(end) if end == self.offset => {
                    let next = self.dir.join(segment_file_name(self.next_id));
                    if !next.exists() {
                        return Ok(None);
                    }
                    *self = Self::open(&self.dir, self.next_id)?;
                }
                Some(end) => {
                    // A sealed segment whose records stop short of its data end.
                    let mut rest = vec![0u8; usize::try_from(end.saturating_sub(self.offset)).unwrap_or(0)];
                    let n = read_at_most(&self.file, &mut rest, self.offset)
                        .map_err(|e| AofError::io(self.path(), e))?;
                    let source = match decode_record(&rest[..n], MAX_RECORD) {
                        Err(e) => e,
                        // A whole record is there now: the read-ahead window
                        // was taken before it was complete. Read it afresh.
                        Ok(_) => continue,
                    };
                    bail!(AofError::Corruption {
                        segment: self.base,
                        offset: self.offset,
                        source,
                    });
                }
                None => return Ok(None),
            }
        }
    }

    /// The record at `offset`, if one is there, complete and valid.
    fn record_here(&mut self) -> anyhow::Result<Option<Rec>> {
        let found = self.decode_here();
        if !matches!(found, Ok(Some(_))) {
            // The file may grow under the window: read it afresh next time.
            self.window.clear();
        }
        found
    }

    fn decode_here(&mut self) -> anyhow::Result<Option<Rec>> {
        let path = self.path();
        let head = self
            .bytes_at_offset(RECORD_HEADER_SIZE)
            .map_err(|e| AofError::io(&path, e))?;
        if head.len() < RECORD_HEADER_SIZE || is_zeroed_header(head) {
            return Ok(None);
        }
        let Ok(header) = RecordHeader::parse(head, MAX_RECORD) else {
            return Ok(None);
        };
        let len = usize::try_from(header.record_len()).context("record too large for memory")?;
        if len > READ_AHEAD {
            // Check the claim before allocating for it.
            let file_len = self.file.metadata().map_err(|e| AofError::io(&path, e))?.len();
            if self.offset + len as u64 > file_len {
                return Ok(None);
            }
        }
        let (base, next_id) = (self.base, self.next_id);
        let bytes = self.bytes_at_offset(len).map_err(|e| AofError::io(&path, e))?;
        let Ok(rec) = decode_record(bytes, MAX_RECORD) else {
            return Ok(None);
        };
        if rec.header.id != next_id {
            return Err(AofError::SegmentMismatch {
                segment: base,
                what: "record id",
                expected: next_id,
                actual: rec.header.id,
            }
            .into());
        }
        let out = Rec {
            id: rec.header.id,
            timestamp_us: rec.header.timestamp_us,
            payload: rec.payload.to_vec(),
        };
        self.offset += len as u64;
        self.next_id += 1;
        Ok(Some(out))
    }

    /// Up to `len` bytes of the file from `offset` (fewer where it ends),
    /// through a read-ahead window.
    fn bytes_at_offset(&mut self, len: usize) -> io::Result<&[u8]> {
        let start = self
            .offset
            .checked_sub(self.window_at)
            .and_then(|s| usize::try_from(s).ok());
        if start.is_none_or(|s| s + len > self.window.len()) {
            self.window.resize(len.max(READ_AHEAD), 0);
            let n = read_at_most(&self.file, &mut self.window, self.offset)?;
            self.window.truncate(n);
            self.window_at = self.offset;
        }
        let s = usize::try_from(self.offset - self.window_at).unwrap_or(usize::MAX);
        let s = s.min(self.window.len());
        let end = s.saturating_add(len).min(self.window.len());
        Ok(&self.window[s..end])
    }

    /// Where the segment's record data ends, if its footer is in place.
    fn sealed_end(&self) -> anyhow::Result<Option<u64>> {
        let io_err = |e| AofError::io(self.path(), e);
        let len = self.file.metadata().map_err(io_err)?.len();
        let Some(at) = len.checked_sub(SEGMENT_FOOTER_SIZE as u64) else {
            return Ok(None);
        };
        let mut raw = [0u8; SEGMENT_FOOTER_SIZE];
        if read_at_most(&self.file, &mut raw, at).map_err(io_err)? < SEGMENT_FOOTER_SIZE {
            return Ok(None);
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[i..i + 8]);
            u64::from_le_bytes(b)
        };
        // The footer's layout: see `aof_record::segment::SegmentFooter`.
        if raw[..8] != SEGMENT_FOOTER_MAGIC || crc64_nvme(&raw[..56]) != u64_at(56) || u64_at(16) != self.base
        {
            return Ok(None);
        }
        Ok(Some(u64_at(32)))
    }
}
