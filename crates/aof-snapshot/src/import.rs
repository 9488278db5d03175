//! Import: a stream of [`SnapshotChunk`]s into a new log directory,
//! verified, then installed atomically ([`Importer`], [`import_from`]).
//!
//! # Protocol
//!
//! 1. The target must not exist or be an empty directory
//!    ([`SnapshotError::TargetNotEmpty`] otherwise). The files go to a
//!    staging directory beside it, `.<target name>.aof-import` (same file
//!    system, so the rename below is atomic); one left by a crashed import
//!    is cleared first.
//! 2. Each chunk is checked as it comes: sequence numbers contiguous from 0,
//!    the metadata first and only there, file names (no path, no unknown or
//!    duplicate name, kinds and order of a log), chunk sizes against the
//!    limit, offsets contiguous, sizes against the metadata, each file's
//!    SHA-256 when its last chunk arrives, the overall checksum on the final
//!    chunk. Each file is written and synced in staging.
//! 3. [`Importer::finish`] requires the final chunk, syncs the staging
//!    directory, checks the staged files as a log with the format's
//!    decoders (headers, footers, offset tables, each sealed segment's data
//!    CRC, the active segment's records, contiguous ids, the manifest; see
//!    `staged.rs`) and compares identity, first and last id with the
//!    metadata; then renames staging onto the target and syncs the parent
//!    directory.
//!
//! Any error removes the staging directory and leaves the target as it
//! was. A crash leaves either no log at the target (a staging directory
//! beside it, cleared by the next import) or the complete one. All I/O goes
//! through aof-core's [`FileSystem`], so the crash tests' fault model applies.
//!
//! The imported log has no index yet: open it with `rebuild_index` set
//! (the `aof` facade's `Builder::rebuild_index(true)`), which builds the
//! index from the segment files, and check it with [`Imported::check`].

use crate::chunk::{
    FileInfo, FileKind, MAX_CHUNK_SIZE, MAX_FILE_SIZE, MAX_FILES, MAX_NAME_LEN, SnapshotChunk,
    SnapshotMetadata, WIRE_VERSION, check_file_name,
};
use crate::digest::{Digest, FileHasher, snapshot_checksum};
use crate::error::{SnapshotError, SnapshotResult};
use crate::wire::{FrameReader, MAX_FRAME_LEN};
use aof_core::layout::parse_segment_file_name;
use aof_core::{Aof, FileHandle, FileSystem, LocalFileSystem, OpenMode};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    fs: Arc<dyn FileSystem>,
    max_chunk_size: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            fs: LocalFileSystem::shared(),
            max_chunk_size: MAX_CHUNK_SIZE,
        }
    }
}

impl ImportOptions {
    /// The defaults: local files, chunks up to [`MAX_CHUNK_SIZE`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The file system to write through (crash tests give a faulty one).
    #[must_use]
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Refuse chunks carrying more than `max` bytes (capped at [`MAX_CHUNK_SIZE`]).
    #[must_use]
    pub fn max_chunk_size(mut self, max: usize) -> Self {
        self.max_chunk_size = max.min(MAX_CHUNK_SIZE);
        self
    }
}

/// What an import installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The log directory.
    pub dir: PathBuf,
    /// The snapshot's metadata.
    pub metadata: SnapshotMetadata,
    /// Each file's SHA-256, in the metadata's order.
    pub file_sha256: Vec<[u8; 32]>,
    /// The snapshot's checksum.
    pub checksum: [u8; 32],
}

impl Imported {
    /// Checks that `log`, the imported log opened, is the snapshot: its
    /// identity, first id and last durable id.
    pub fn check(&self, log: &Aof) -> SnapshotResult<()> {
        check_log(&self.metadata, log)
    }
}

fn check_log(md: &SnapshotMetadata, log: &Aof) -> SnapshotResult<()> {
    let mismatch = |what, expected, actual| SnapshotError::LogMismatch {
        what,
        expected,
        actual,
    };
    if log.log_id().0 != md.log_id {
        return Err(mismatch(
            "identity (low 64 bits)",
            Some(md.log_id as u64),
            Some(log.log_id().0 as u64),
        ));
    }
    let last = log.durable_id().filter(|l| *l >= log.first_id());
    if last != md.last_id {
        return Err(mismatch("last id", md.last_id, last));
    }
    if md.last_id.is_some() && log.first_id() != md.first_id {
        return Err(mismatch("first id", Some(md.first_id), Some(log.first_id())));
    }
    Ok(())
}

/// Receives a snapshot chunk by chunk into a staging directory; see the
/// module documentation for the checks and the installation.
#[derive(Debug)]
pub struct Importer {
    fs: Arc<dyn FileSystem>,
    target: PathBuf,
    parent: PathBuf,
    staging: PathBuf,
    max_chunk_size: usize,
    next_sequence: u64,
    metadata: Option<SnapshotMetadata>,
    current: usize,
    offset: u64,
    hasher: FileHasher,
    file: Option<Arc<dyn FileHandle>>,
    digests: Vec<[u8; 32]>,
    checksum: Option<[u8; 32]>,
    received: u64,
    failed: bool,
    done: bool,
}

impl Importer {
    /// Prepares an import into `target`, which must not exist or be an
    /// empty directory.
    pub fn new(target: impl AsRef<Path>, options: &ImportOptions) -> SnapshotResult<Self> {
        let target = target.as_ref().to_owned();
        let fs = options.fs.clone();
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| SnapshotError::io(&target, std::io::ErrorKind::InvalidInput.into()))?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if fs.exists(&target).map_err(|e| SnapshotError::io(&target, e))?
            && !fs
                .list(&target)
                .map_err(|e| SnapshotError::io(&target, e))?
                .is_empty()
        {
            return Err(SnapshotError::TargetNotEmpty { path: target });
        }
        let staging = parent.join(format!(".{name}.aof-import"));
        if fs.exists(&staging).map_err(|e| SnapshotError::io(&staging, e))? {
            // Left by an import that crashed before its rename: never a log.
            clear_dir(fs.as_ref(), &staging)?;
        }
        fs.create_dir_all(&staging)
            .map_err(|e| SnapshotError::io(&staging, e))?;
        Ok(Self {
            fs,
            target,
            parent,
            staging,
            max_chunk_size: options.max_chunk_size,
            next_sequence: 0,
            metadata: None,
            current: 0,
            offset: 0,
            hasher: FileHasher::start()?,
            file: None,
            digests: Vec::new(),
            checksum: None,
            received: 0,
            failed: false,
            done: false,
        })
    }

    /// The staging directory.
    #[must_use]
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// File bytes received so far.
    #[must_use]
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// The metadata, once the first chunk arrived.
    #[must_use]
    pub fn metadata(&self) -> Option<&SnapshotMetadata> {
        self.metadata.as_ref()
    }

    /// Whether the final chunk arrived.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.checksum.is_some()
    }

    /// Takes the next chunk. On error the import is abandoned (staging removed).
    pub fn push(&mut self, chunk: SnapshotChunk) -> SnapshotResult<()> {
        if self.failed {
            return Err(SnapshotError::MalformedChunk {
                sequence: chunk.sequence,
                what: "it comes after the import failed",
            });
        }
        let result = self.push_inner(chunk);
        if result.is_err() {
            self.abort();
        }
        result
    }

    fn push_inner(&mut self, chunk: SnapshotChunk) -> SnapshotResult<()> {
        if self.checksum.is_some() {
            return Err(SnapshotError::DataAfterFinal);
        }
        let sequence = chunk.sequence;
        if sequence != self.next_sequence {
            return Err(SnapshotError::Sequence {
                expected: self.next_sequence,
                found: sequence,
            });
        }
        self.next_sequence += 1;
        let malformed = |what| SnapshotError::MalformedChunk { sequence, what };
        let Some(md) = &self.metadata else {
            let md = chunk.metadata.ok_or(SnapshotError::MissingMetadata)?;
            if chunk.file_chunk.is_some() || chunk.is_final || chunk.checksum.is_some() {
                return Err(malformed("the metadata chunk carries more than the metadata"));
            }
            check_metadata(&md)?;
            self.metadata = Some(md);
            return Ok(());
        };
        if chunk.metadata.is_some() {
            return Err(SnapshotError::UnexpectedMetadata { sequence });
        }
        if chunk.is_final {
            if chunk.file_chunk.is_some() {
                return Err(malformed("the final chunk carries file data"));
            }
            if let Some(info) = md.files.get(self.current) {
                return Err(SnapshotError::Size {
                    name: info.name.clone(),
                    expected: info.size,
                    actual: self.offset,
                });
            }
            let stated = chunk
                .checksum
                .ok_or(malformed("the final chunk carries no checksum"))?;
            let actual = snapshot_checksum(md, &self.digests)?;
            if stated != actual {
                return Err(SnapshotError::Checksum {
                    expected: Digest(stated),
                    actual: Digest(actual),
                });
            }
            self.checksum = Some(stated);
            return Ok(());
        }
        if chunk.checksum.is_some() {
            return Err(malformed("a chunk other than the final one carries the checksum"));
        }
        let fc = chunk
            .file_chunk
            .ok_or(malformed("neither file data nor the final chunk"))?;
        let Some(info) = md.files.get(self.current) else {
            return Err(SnapshotError::UnexpectedFile {
                expected: String::new(),
                found: cut(&fc.file_name),
            });
        };
        if fc.file_name != info.name {
            return Err(SnapshotError::UnexpectedFile {
                expected: info.name.clone(),
                found: cut(&fc.file_name),
            });
        }
        let len = fc.data.len() as u64;
        if fc.data.len() > self.max_chunk_size {
            return Err(SnapshotError::ChunkTooLarge {
                name: info.name.clone(),
                len,
                max: self.max_chunk_size as u64,
            });
        }
        if fc.offset != self.offset {
            return Err(SnapshotError::Offset {
                name: info.name.clone(),
                expected: self.offset,
                found: fc.offset,
            });
        }
        let end = self.offset + len;
        if end > info.size || (fc.is_last_chunk && end < info.size) {
            return Err(SnapshotError::Size {
                name: info.name.clone(),
                expected: info.size,
                actual: end,
            });
        }
        if !fc.is_last_chunk && (end == info.size && len > 0 || fc.sha256.is_some()) {
            return Err(malformed("a file's data ends without its last-chunk flag"));
        }
        let path = self.staging.join(&info.name);
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let f = self
                    .fs
                    .open(&path, OpenMode::CreateNew)
                    .map_err(|e| SnapshotError::io(&path, e))?;
                self.file = Some(f.clone());
                f
            }
        };
        // Hashed on the helper thread while this one writes.
        self.hasher.update(fc.data.clone())?;
        file.write_all_at(&fc.data, self.offset)
            .map_err(|e| SnapshotError::io(&path, e))?;
        self.offset = end;
        self.received += len;
        if fc.is_last_chunk {
            let actual = self.hasher.finish()?;
            let stated = fc.sha256.unwrap_or([0; 32]);
            if fc.sha256 != Some(actual) {
                return Err(SnapshotError::FileChecksum {
                    name: info.name.clone(),
                    expected: Digest(stated),
                    actual: Digest(actual),
                });
            }
            file.sync_all().map_err(|e| SnapshotError::io(&path, e))?;
            self.digests.push(actual);
            self.current += 1;
            self.offset = 0;
            self.file = None;
        }
        Ok(())
    }

    /// Installs the received snapshot at the target: see the module
    /// documentation. Fails with [`SnapshotError::MissingFinalChunk`]
    /// unless the final chunk arrived.
    pub fn finish(mut self) -> SnapshotResult<Imported> {
        let result = self.finish_inner();
        if result.is_err() {
            self.abort();
        }
        result
    }

    fn finish_inner(&mut self) -> SnapshotResult<Imported> {
        if self.failed {
            return Err(SnapshotError::MissingFinalChunk {
                chunks: self.next_sequence,
            });
        }
        let (Some(checksum), Some(metadata)) = (self.checksum, self.metadata.clone()) else {
            return Err(SnapshotError::MissingFinalChunk {
                chunks: self.next_sequence,
            });
        };
        let fs = self.fs.as_ref();
        fs.sync_dir(&self.staging)
            .map_err(|e| SnapshotError::io(&self.staging, e))?;
        self.verify_staged(&metadata)?;
        fs.rename(&self.staging, &self.target)
            .map_err(|e| SnapshotError::io(&self.target, e))?;
        self.done = true;
        fs.sync_dir(&self.parent)
            .map_err(|e| SnapshotError::io(&self.parent, e))?;
        Ok(Imported {
            dir: self.target.clone(),
            metadata,
            file_sha256: std::mem::take(&mut self.digests),
            checksum,
        })
    }

    /// Checks the staged files as a log (see `staged.rs`).
    fn verify_staged(&self, metadata: &SnapshotMetadata) -> SnapshotResult<()> {
        crate::staged::check_staged(self.fs.as_ref(), &self.staging, metadata)
    }

    /// Removes the staging directory and what it holds (best effort: a
    /// leftover is cleared by the next import to the same target).
    fn abort(&mut self) {
        self.failed = true;
        self.file = None;
        if self.done {
            return;
        }
        self.done = true;
        // A failed clean-up does not change the outcome (the import is
        // already failing, the target untouched); the next import to the
        // same target clears what is left.
        let _ = clear_dir(self.fs.as_ref(), &self.staging);
    }
}

impl Drop for Importer {
    fn drop(&mut self) {
        if !self.done {
            self.abort();
        }
    }
}

/// Removes every file in `dir`, then `dir`.
fn clear_dir(fs: &dyn FileSystem, dir: &Path) -> SnapshotResult<()> {
    for name in fs.list(dir).map_err(|e| SnapshotError::io(dir, e))? {
        let p = dir.join(&name);
        fs.remove_file(&p).map_err(|e| SnapshotError::io(&p, e))?;
    }
    fs.remove_dir(dir).map_err(|e| SnapshotError::io(dir, e))
}

/// A name from the stream, cut to the limit for an error message.
fn cut(name: &str) -> String {
    name.chars().take(MAX_NAME_LEN).collect()
}

/// Checks the metadata before any file is written.
fn check_metadata(md: &SnapshotMetadata) -> SnapshotResult<()> {
    if md.version != WIRE_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            version: md.version,
            supported: WIRE_VERSION,
        });
    }
    if md.files.len() > MAX_FILES {
        return Err(SnapshotError::LimitExceeded {
            what: "the file count",
            value: md.files.len() as u64,
            max: MAX_FILES as u64,
        });
    }
    let mut names = HashSet::new();
    let mut total = 0u64;
    let mut manifests = 0;
    let mut last_base: Option<u64> = None;
    let mut active_seen = false;
    for FileInfo { name, kind, size } in &md.files {
        check_file_name(name, *kind).map_err(|problem| SnapshotError::InvalidFileName {
            name: cut(name),
            problem,
        })?;
        if !names.insert(name.as_str()) {
            return Err(SnapshotError::DuplicateFile { name: name.clone() });
        }
        if *size > MAX_FILE_SIZE {
            return Err(SnapshotError::LimitExceeded {
                what: "a file's size",
                value: *size,
                max: MAX_FILE_SIZE,
            });
        }
        total = total.checked_add(*size).ok_or(SnapshotError::InvalidMetadata {
            what: "the total size overflows",
        })?;
        match kind {
            FileKind::Manifest => manifests += 1,
            FileKind::Segment | FileKind::ActiveSegment => {
                if active_seen {
                    return Err(SnapshotError::InvalidMetadata {
                        what: "a segment follows the active segment",
                    });
                }
                active_seen = *kind == FileKind::ActiveSegment;
                let base = parse_segment_file_name(name).unwrap_or(0);
                if last_base.is_some_and(|b| b >= base) {
                    return Err(SnapshotError::InvalidMetadata {
                        what: "segments are not in id order",
                    });
                }
                last_base = Some(base);
            }
        }
    }
    if manifests != 1 {
        return Err(SnapshotError::InvalidMetadata {
            what: "a snapshot holds exactly one MANIFEST",
        });
    }
    if total != md.total_size {
        return Err(SnapshotError::InvalidMetadata {
            what: "the total size is not the sum of the files' sizes",
        });
    }
    if md.last_id.is_some_and(|l| l < md.first_id) {
        return Err(SnapshotError::InvalidMetadata {
            what: "the last id is below the first",
        });
    }
    Ok(())
}

/// Imports the frames read from `input` into `target` (see [`Importer`]),
/// refusing frames above [`MAX_FRAME_LEN`]; `progress` gets the file bytes
/// received so far and the total, after each chunk.
pub fn import_from(
    input: impl Read,
    target: impl AsRef<Path>,
    options: &ImportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> SnapshotResult<Imported> {
    let mut importer = Importer::new(target, options)?;
    let mut frames = FrameReader::with_limit(input, MAX_FRAME_LEN);
    loop {
        let Some(chunk) = frames.next_chunk()? else { break };
        importer.push(chunk)?;
        let total = importer.metadata().map_or(0, |m| m.total_size);
        progress(importer.bytes_received(), total);
    }
    importer.finish()
}
