//! Export: a live log to a stream of [`SnapshotChunk`]s, as a blocking
//! iterator ([`Exporter`]).
//!
//! The export takes a [`SnapshotView`] of the log (finalized segments
//! pinned, the active segment up to its durable end), then reads each file
//! once, in place, one chunk at a time: a finalized segment through its
//! memory map (zero-copy), the active one by reads of its file, while a
//! helper thread computes the SHA-256. Memory is a few chunks. The log's
//! `MANIFEST` is not copied: the snapshot carries a new one with the same
//! identity and the snapshot's end as its recovery point, so the
//! receiver's recovery treats every record as acknowledged.

use crate::chunk::{
    DEFAULT_CHUNK_SIZE, FileChunk, FileInfo, FileKind, MAX_CHUNK_SIZE, SnapshotChunk, SnapshotMetadata,
    WIRE_VERSION,
};
use crate::digest::{FileHasher, snapshot_checksum};
use crate::error::{SnapshotError, SnapshotResult};
use aof_core::layout::MANIFEST_FILE;
use aof_core::{Aof, SegmentBytes, SnapshotView};
use aof_record::SegmentStatus;
use aof_record::manifest::{LogId, ManifestSlot};
use bytes::Bytes;

/// How to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    chunk_size: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ExportOptions {
    /// The defaults: chunks of [`DEFAULT_CHUNK_SIZE`] bytes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of file data per chunk, 1 to [`MAX_CHUNK_SIZE`].
    pub fn chunk_size(mut self, size: usize) -> SnapshotResult<Self> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(SnapshotError::InvalidChunkSize {
                size,
                max: MAX_CHUNK_SIZE,
            });
        }
        self.chunk_size = size;
        Ok(self)
    }
}

/// One file's source.
#[derive(Debug)]
enum Source {
    Memory(Bytes),
    Segment(usize),
}

#[derive(Debug)]
enum State {
    Metadata,
    File {
        index: usize,
        offset: u64,
        open: Option<Opened>,
    },
    Final,
    Done,
}

#[derive(Debug)]
enum Opened {
    Memory(Bytes),
    Segment(SegmentBytes),
}

/// The chunks of a snapshot of a log, in order: a blocking iterator of
/// `Result`s. An error is the last item (never a silent end); after it, or
/// after the final chunk, the iterator is done.
#[derive(Debug)]
pub struct Exporter {
    view: SnapshotView,
    metadata: SnapshotMetadata,
    sources: Vec<Source>,
    chunk_size: usize,
    state: State,
    sequence: u64,
    digests: Vec<[u8; 32]>,
    hasher: FileHasher,
}

/// Starts an export of `log` (opened writable or read-only) at its current
/// durable end. Fails with [`SnapshotError::ArchivedSegment`] when the log
/// holds a segment only in the archive.
pub fn export(log: &Aof, options: ExportOptions) -> SnapshotResult<Exporter> {
    Exporter::new(log, options)
}

impl Exporter {
    fn new(log: &Aof, options: ExportOptions) -> SnapshotResult<Self> {
        let view = log.snapshot_view()?;
        // Archived segments (their only copy in the archive, or a cached one
        // under archive-cache/) are below every local one: the view does not
        // ship them, and a snapshot without them would not be the log.
        // Shipping them by reference or by content is not built yet.
        if let Some(e) = log
            .index()
            .get_all_segments()
            .map_err(aof_record::AofError::from)?
            .iter()
            .find(|e| {
                matches!(
                    e.status,
                    SegmentStatus::ArchivedRemote | SegmentStatus::ArchivedCached
                ) && e.base_id < view.next_id()
            })
        {
            return Err(SnapshotError::ArchivedSegment { segment: e.base_id });
        }
        let created_at_us = now_us();
        let log_id = view.log_id();
        let manifest = Bytes::copy_from_slice(
            &ManifestSlot::new(LogId(log_id.0), created_at_us)
                .next(view.next_id())
                .encode(),
        );
        let mut files = vec![FileInfo {
            name: MANIFEST_FILE.to_owned(),
            kind: FileKind::Manifest,
            size: manifest.len() as u64,
        }];
        let mut sources = vec![Source::Memory(manifest)];
        for (i, seg) in view.segments().iter().enumerate() {
            files.push(FileInfo {
                name: seg.file_name(),
                kind: if seg.is_sealed() {
                    FileKind::Segment
                } else {
                    FileKind::ActiveSegment
                },
                size: seg.len(),
            });
            sources.push(Source::Segment(i));
        }
        let last_id = view.next_id().checked_sub(1).filter(|l| *l >= view.first_id());
        let metadata = SnapshotMetadata {
            version: WIRE_VERSION,
            snapshot_id: random_id(created_at_us),
            created_at_us,
            log_id: log_id.0,
            first_id: view.first_id(),
            last_id,
            total_size: files.iter().map(|f| f.size).sum(),
            files,
        };
        Ok(Self {
            view,
            metadata,
            sources,
            chunk_size: options.chunk_size,
            state: State::Metadata,
            sequence: 0,
            digests: Vec::new(),
            hasher: FileHasher::start()?,
        })
    }

    /// The snapshot's metadata (also the first chunk's).
    #[must_use]
    pub fn metadata(&self) -> &SnapshotMetadata {
        &self.metadata
    }

    fn chunk(&mut self, metadata: Option<SnapshotMetadata>, file_chunk: Option<FileChunk>) -> SnapshotChunk {
        let sequence = self.sequence;
        self.sequence += 1;
        SnapshotChunk {
            sequence,
            metadata,
            file_chunk,
            is_final: false,
            checksum: None,
        }
    }

    fn step(&mut self) -> SnapshotResult<Option<SnapshotChunk>> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Metadata => {
                self.state = self.start_file(0);
                let metadata = self.metadata.clone();
                Ok(Some(self.chunk(Some(metadata), None)))
            }
            State::File { index, offset, open } => {
                let info = &self.metadata.files[index];
                let (name, size) = (info.name.clone(), info.size);
                let open = match open {
                    Some(o) => o,
                    None => match &self.sources[index] {
                        Source::Memory(b) => Opened::Memory(b.clone()),
                        Source::Segment(i) => Opened::Segment(self.view.segments()[*i].open(&self.view)?),
                    },
                };
                let len = (size - offset).min(self.chunk_size as u64) as usize;
                let data = match &open {
                    Opened::Memory(b) => b.slice(offset as usize..offset as usize + len),
                    Opened::Segment(s) => s.read(offset, len)?,
                };
                self.hasher.update(data.clone())?;
                let end = offset + len as u64;
                let is_last_chunk = end == size;
                let sha256 = if is_last_chunk {
                    let digest = self.hasher.finish()?;
                    self.digests.push(digest);
                    self.state = self.start_file(index + 1);
                    Some(digest)
                } else {
                    self.state = State::File {
                        index,
                        offset: end,
                        open: Some(open),
                    };
                    None
                };
                let file_chunk = FileChunk {
                    file_name: name,
                    offset,
                    data,
                    is_last_chunk,
                    sha256,
                };
                Ok(Some(self.chunk(None, Some(file_chunk))))
            }
            State::Final => {
                // Everything was read: only now is it known that no
                // truncation changed bytes under the export.
                if !self.view.is_intact() {
                    return Err(SnapshotError::Invalidated);
                }
                let checksum = snapshot_checksum(&self.metadata, &self.digests)?;
                let mut chunk = self.chunk(None, None);
                chunk.is_final = true;
                chunk.checksum = Some(checksum);
                Ok(Some(chunk))
            }
            State::Done => Ok(None),
        }
    }

    fn start_file(&self, index: usize) -> State {
        if index < self.metadata.files.len() {
            State::File {
                index,
                offset: 0,
                open: None,
            }
        } else {
            State::Final
        }
    }
}

impl Iterator for Exporter {
    type Item = SnapshotResult<SnapshotChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            // A truncation under the export explains whatever the reads met.
            Err(_) if !self.view.is_intact() => Some(Err(SnapshotError::Invalidated)),
            other => other.transpose(),
        }
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A snapshot identifier: random, unique enough without a random source
/// crate (the time, the process, a counter, through SHA-256).
fn random_id(now_us: u64) -> u128 {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(now_us.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}
