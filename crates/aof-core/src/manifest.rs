//! The log's manifest file: its identity and its persisted recovery point
//! (the format is `aof_record::manifest`).
//!
//! # The recovery point
//!
//! As Kafka's recovery-point checkpoint: every id below it was durable when
//! it was written. Recovery treats damage *before* it as corruption (those
//! records were acknowledged) and damage *after* it as an unsynced tail that
//! a power loss tore — holes included — and cuts it. It is written:
//!
//! * when a segment is sealed (its records are durable then),
//! * after a group-commit round, at most once per checkpoint interval
//!   ([`crate::AofOptions::checkpoint_interval`], default 1 s),
//! * at the end of recovery and on close,
//! * *lowered* before `truncate_after` removes records, so it never names
//!   ids the log no longer holds.
//!
//! It may lag the durable watermark (by at most the interval): records
//! acknowledged after the last checkpoint are still kept by recovery when
//! they are intact; only damage among them is cut rather than reported.
//! Each write is one slot of 64 bytes and one fdatasync of a small file.

use crate::fs::{FileHandle, FileHandleExt, FileSystem, NoFile, OpenMode};
use crate::layout::{MANIFEST_FILE, MANIFEST_TEMP_FILE, path_in};
use crate::locks::lock;
use aof_record::manifest::{LogId, MANIFEST_SLOT_SIZE, MANIFEST_SLOT_STRIDE, ManifestSlot};
use aof_record::{AofError, AofResult};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The open manifest of a log.
pub(crate) struct Manifest {
    path: PathBuf,
    file: Arc<dyn FileHandle>,
    state: Mutex<State>,
}

struct State {
    current: ManifestSlot,
    written_at: Instant,
}

/// What opening found.
pub(crate) struct Opened {
    pub(crate) manifest: Manifest,
    /// The recovery point, when the manifest existed before this open (a log
    /// written before manifests existed has none: recovery is conservative).
    pub(crate) recovery_next: Option<u64>,
}

impl Manifest {
    /// Opens the manifest of the log in `dir`, creating it (temp file →
    /// sync → rename → sync directory) when there is none, with identity
    /// `known` (the index's, when it has one) or a new random one.
    pub(crate) fn open_or_create(
        fs: &dyn FileSystem,
        dir: &Path,
        now_us: u64,
        known: Option<LogId>,
    ) -> AofResult<Opened> {
        let path = path_in(dir, MANIFEST_FILE);
        if fs.exists(&path).map_err(|e| AofError::io(&path, e))? {
            let file = fs
                .open(&path, OpenMode::ReadWrite)
                .map_err(|e| AofError::io(&path, e))?;
            let current = Self::read_current(&path, file.as_ref())?;
            return Ok(Opened {
                recovery_next: Some(current.recovery_next),
                manifest: Self::with(path, file, current),
            });
        }
        let current = ManifestSlot::new(known.unwrap_or_else(|| new_log_id(now_us)), now_us);
        let tmp = path_in(dir, MANIFEST_TEMP_FILE);
        if fs.exists(&tmp).map_err(|e| AofError::io(&tmp, e))? {
            fs.remove_file(&tmp).map_err(|e| AofError::io(&tmp, e))?;
        }
        let file = fs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| AofError::io(&tmp, e))?;
        file.write_all_at(&current.encode(), current.offset())
            .and_then(|()| file.sync_all())
            .map_err(|e| AofError::io(&tmp, e))?;
        fs.rename(&tmp, &path).map_err(|e| AofError::io(&path, e))?;
        fs.sync_dir(dir).map_err(|e| AofError::io(dir, e))?;
        Ok(Opened {
            manifest: Self::with(path, file, current),
            recovery_next: None,
        })
    }

    /// Reads the manifest of the log in `dir` without creating or changing
    /// anything; a log without one gets a detached manifest with an unknown
    /// recovery point. The result refuses to be written.
    pub(crate) fn inspect(fs: &dyn FileSystem, dir: &Path) -> AofResult<Opened> {
        let path = path_in(dir, MANIFEST_FILE);
        if !fs.exists(&path).map_err(|e| AofError::io(&path, e))? {
            return Ok(Opened {
                manifest: Self::with(path, Arc::new(NoFile), ManifestSlot::new(LogId(0), 0)),
                recovery_next: None,
            });
        }
        let file = fs
            .open(&path, OpenMode::Read)
            .map_err(|e| AofError::io(&path, e))?;
        let current = Self::read_current(&path, file.as_ref())?;
        Ok(Opened {
            recovery_next: Some(current.recovery_next),
            manifest: Self::with(path, Arc::new(NoFile), current),
        })
    }

    fn read_current(path: &Path, file: &dyn FileHandle) -> AofResult<ManifestSlot> {
        let len = file.len().map_err(|e| AofError::io(path, e))?;
        // Two slots at most: never read more than the format's size.
        let want = len.min(MANIFEST_SLOT_STRIDE + MANIFEST_SLOT_SIZE as u64) as usize;
        let bytes = file.read_vec_at(want, 0).map_err(|e| AofError::io(path, e))?;
        ManifestSlot::current(&bytes).map_err(|source| AofError::InvalidManifest {
            path: path.to_owned(),
            source,
        })
    }

    fn with(path: PathBuf, file: Arc<dyn FileHandle>, current: ManifestSlot) -> Self {
        Self {
            path,
            file,
            state: Mutex::new(State {
                current,
                written_at: Instant::now(),
            }),
        }
    }

    /// The log's identity.
    pub(crate) fn log_id(&self) -> LogId {
        lock(&self.state).current.log_id
    }

    /// The persisted recovery point.
    pub(crate) fn recovery_next(&self) -> u64 {
        lock(&self.state).current.recovery_next
    }

    /// Persists `next` as the recovery point (raising or lowering it).
    pub(crate) fn set_recovery_point(&self, next: u64) -> AofResult<()> {
        let mut st = lock(&self.state);
        if st.current.recovery_next == next {
            return Ok(());
        }
        let slot = st.current.next(next);
        self.file
            .write_all_at(&slot.encode(), slot.offset())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| AofError::io(&self.path, e))?;
        st.current = slot;
        st.written_at = Instant::now();
        Ok(())
    }

    /// Raises the recovery point to `next` if the last write is older than
    /// `interval`.
    pub(crate) fn checkpoint_if_due(&self, next: u64, interval: Duration) -> AofResult<()> {
        {
            let st = lock(&self.state);
            if st.current.recovery_next >= next || st.written_at.elapsed() < interval {
                return Ok(());
            }
        }
        self.set_recovery_point(next)
    }
}

/// A random identity for a new log: from the OS's random source, or, where
/// that fails, from the time and process (unique enough to tell logs apart).
fn new_log_id(now_us: u64) -> LogId {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&now_us.to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    LogId(u128::from_le_bytes(bytes))
}
