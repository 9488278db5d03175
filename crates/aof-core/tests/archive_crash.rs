//! Crash sweeps over every archival step (issue 12): a log appending and
//! archiving (compress, upload, head check, index commit, local file
//! removal, retention deleting archived objects) is crashed at every
//! mutating file operation under the adversarial crash model, and, on the
//! archive side, killed at every archive operation (failing it before, or
//! after, the archive acted). Every image must reopen without help, keep
//! every durable record readable (local or archived), keep the index in
//! step with the local files, and leave no orphan: once reopened, swept and
//! archived, the log's objects are exactly its archived segments'.

use aof_core::layout::archive_key;
use aof_core::testing::{CrashMode, CrashPoints, FaultyFileSystem, FileIndex, Sweep};
use aof_core::{Aof, AofError, AofOptions, FileSystem, TimeSource, entries_from_files};
use aof_record::archive::{
    ArchiveError, ArchiveKey, ArchiveResult, ArchiveStorage, ArchiveStorageExt, ListedObject, MemoryArchive,
    ObjectMeta, ObjectSource, ObjectStream,
};
use aof_record::{AofConfig, FlushStrategy};
use bytes::Bytes;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const DIR: &str = "/log";

#[derive(Debug, Default)]
struct StepClock(AtomicU64);

impl TimeSource for StepClock {
    fn now_us(&self) -> u64 {
        1_700_000_000_000_000 + self.0.fetch_add(7, Ordering::Relaxed)
    }
}

/// How an injected archive failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// The operation fails before the archive acts (a refused upload).
    Before,
    /// The archive acts, then the answer is lost (a process killed while
    /// the server commits the upload).
    After,
}

/// A [`MemoryArchive`] that dies at its `fail_at`-th operation: that one
/// and every later one fail.
#[derive(Debug)]
struct FaultyArchive {
    inner: Arc<MemoryArchive>,
    fail_at: Option<u64>,
    kill: Kill,
    ops: AtomicU64,
}

impl FaultyArchive {
    fn new(inner: Arc<MemoryArchive>, fail_at: Option<u64>, kill: Kill) -> Self {
        Self {
            inner,
            fail_at,
            kill,
            ops: AtomicU64::new(0),
        }
    }

    /// Whether this operation fails, and whether it acts first.
    fn step(&self) -> (bool, bool) {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let dead = self.fail_at.is_some_and(|f| n >= f);
        let acts = !dead || (self.kill == Kill::After && self.fail_at == Some(n));
        (dead, acts)
    }
}

fn killed(key: &ArchiveKey) -> ArchiveError {
    ArchiveError::Unavailable {
        key: key.clone(),
        source: "archive killed".into(),
    }
}

#[async_trait::async_trait]
impl ArchiveStorage for FaultyArchive {
    async fn store(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta> {
        let (dead, acts) = self.step();
        let r = if acts {
            Some(self.inner.store(key, source).await)
        } else {
            None
        };
        if dead {
            Err(killed(key))
        } else {
            r.unwrap_or_else(|| Err(killed(key)))
        }
    }
    async fn read_range(&self, key: &ArchiveKey, range: Range<u64>) -> ArchiveResult<Bytes> {
        if self.step().0 {
            return Err(killed(key));
        }
        self.inner.read_range(key, range).await
    }
    async fn read(&self, key: &ArchiveKey) -> ArchiveResult<ObjectStream> {
        if self.step().0 {
            return Err(killed(key));
        }
        self.inner.read(key).await
    }
    async fn head(&self, key: &ArchiveKey) -> ArchiveResult<ObjectMeta> {
        if self.step().0 {
            return Err(killed(key));
        }
        self.inner.head(key).await
    }
    async fn delete(&self, key: &ArchiveKey) -> ArchiveResult<()> {
        let (dead, acts) = self.step();
        if acts {
            self.inner.delete(key).await?;
        }
        if dead { Err(killed(key)) } else { Ok(()) }
    }
    async fn list(&self, prefix: Option<&ArchiveKey>) -> ArchiveResult<Vec<ListedObject>> {
        if self.step().0 {
            return Err(ArchiveError::Unavailable {
                key: ArchiveKey::new("list").unwrap(),
                source: "archive killed".into(),
            });
        }
        self.inner.list(prefix).await
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A copy of `archive` (each check gets its own, since it repairs it).
fn copy(archive: &MemoryArchive) -> Arc<MemoryArchive> {
    let out = Arc::new(MemoryArchive::new());
    block_on(async {
        for o in archive.list(None).await.unwrap() {
            let bytes = archive.read_all(&o.key).await.unwrap();
            out.store_bytes(&o.key, bytes).await.unwrap();
        }
    });
    out
}

fn open(fs: Arc<dyn FileSystem>, archive: Arc<dyn ArchiveStorage>) -> Result<Aof, AofError> {
    let index = FileIndex::open(fs.clone(), Path::new(DIR).join("index.json"))?;
    // Archival is driven by the workload (`archive_now`), so that every run
    // does the same operations in the same order: no archiver thread.
    let config = AofConfig::builder()
        .segment_size(4096)
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs;
    options.time = Arc::new(StepClock::default());
    options.archive = Some(archive);
    options.archive_cache_bytes = 8 * 1024;
    Aof::open_with(DIR, options, Arc::new(index))
}

fn payload(i: u64) -> Vec<u8> {
    let len = ((i * 7919) % 501) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

#[derive(Debug)]
struct Outcome {
    archive: Arc<MemoryArchive>,
    /// Ids below this may be gone (`truncate_before`).
    first: u64,
    attempted: u64,
    durable: u64,
}

const RECORDS: u64 = 72;
/// `truncate_before` this id: whole archived segments go.
const CUT: u64 = 40;

/// Appends (Sync), archives every finalized segment after every 12 records,
/// reads an archived record, and drops the first archived segments.
fn workload(fs: Arc<dyn FileSystem>, fail_at: Option<u64>, kill: Kill) -> Outcome {
    let archive = Arc::new(MemoryArchive::new());
    let mut out = Outcome {
        archive: archive.clone(),
        first: 0,
        attempted: 0,
        durable: 0,
    };
    let faulty = Arc::new(FaultyArchive::new(archive, fail_at, kill));
    let Ok(log) = open(fs, faulty) else { return out };
    for i in 0..RECORDS {
        out.attempted = i + 1;
        if log.append(&payload(i)).is_err() {
            return out;
        }
        out.durable = i + 1;
        if i % 12 == 11 {
            // An archive failure is not the log's: appends go on.
            let _ = log.archive_now(&mut |_, _| {});
            let _ = log.read(1);
        }
    }
    let cut = CUT;
    out.first = cut;
    let _ = log.truncate_before(cut);
    let _ = log.close_blocking();
    out
}

/// Reopens the image with a healthy copy of the archive and checks it.
fn check(img: &FaultyFileSystem, out: &Outcome) -> Result<(), String> {
    let archive = copy(&out.archive);
    let fs: Arc<dyn FileSystem> = Arc::new(img.clone());
    let log = open(fs, archive.clone()).map_err(|e| format!("reopen needs a human: {e}"))?;
    let next = log.next_id();
    if next < out.durable || next > out.attempted {
        return Err(format!(
            "next {next}, durable {}, attempted {}",
            out.durable, out.attempted
        ));
    }
    for id in log.first_id().max(out.first)..next {
        let got = log.read(id).map_err(|e| format!("read {id}: {e}"))?;
        if got.as_deref() != Some(&payload(id)[..]) {
            return Err(format!("record {id} differs"));
        }
    }
    // The index's local entries are what the files say.
    let rebuilt = entries_from_files(img, Path::new(DIR)).map_err(|e| format!("rebuild: {e}"))?;
    let indexed: Vec<_> = log
        .index()
        .get_all_segments()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| !e.status.is_archived())
        .collect();
    if indexed != rebuilt {
        return Err(format!(
            "local index entries differ from the files: {indexed:?} vs {rebuilt:?}"
        ));
    }
    // Nothing orphaned: swept and fully archived, the log's objects are
    // exactly its archived segments', each as the index says.
    log.sweep_archive().map_err(|e| format!("sweep: {e}"))?;
    log.archive_now(&mut |_, _| {})
        .map_err(|e| format!("archive: {e}"))?;
    let entries = log.index().get_all_segments().map_err(|e| e.to_string())?;
    let expected: BTreeSet<String> = entries
        .iter()
        .filter(|e| e.status.is_archived())
        .map(|e| archive_key(log.log_id(), e.base_id))
        .collect();
    let objects: BTreeSet<String> = block_on(archive.list(None))
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|o| o.key.as_str().to_owned())
        .collect();
    if objects != expected {
        return Err(format!("archive holds {objects:?}, the index names {expected:?}"));
    }
    for e in entries.iter().filter(|e| e.status.is_archived()) {
        let key = ArchiveKey::new(e.archive_key.clone().unwrap_or_default()).map_err(|e| e.to_string())?;
        let meta = block_on(archive.head(&key)).map_err(|e| e.to_string())?;
        if (Some(meta.size), Some(meta.checksum)) != (e.compressed_size, e.compressed_checksum) {
            return Err(format!("object {key} is not what the index says"));
        }
    }
    for id in log.first_id().max(out.first)..next {
        if log
            .read(id)
            .map_err(|e| format!("read {id} after archiving: {e}"))?
            .as_deref()
            != Some(&payload(id)[..])
        {
            return Err(format!("record {id} differs after archiving"));
        }
    }
    log.close_blocking().map_err(|e| format!("close: {e}"))
}

/// A crash at every mutating file operation of appending and archiving.
#[test]
fn local_crash_at_every_archival_step() {
    let report = Sweep::new(&FaultyFileSystem::new())
        .points(CrashPoints::Every)
        .modes([
            CrashMode::ProcessKill,
            CrashMode::LoseUnsynced,
            CrashMode::TearLastWrite,
        ])
        .writeback_seeds(0..2)
        .run(
            |fs| workload(fs, None, Kill::Before),
            |img, out, _| check(img, out),
        );
    report.print_summary("local crashes");
    assert!(report.points > 100, "{report}");
    report.assert_clean();
}

/// The archive killed at each of its operations, before or after acting,
/// then the local machine crashed too (the image after the workload).
#[test]
fn archive_killed_at_every_operation() {
    // Count the archive operations of a clean run.
    let fs = FaultyFileSystem::new();
    let archive = Arc::new(MemoryArchive::new());
    let counter = Arc::new(FaultyArchive::new(archive, None, Kill::Before));
    {
        let log = open(Arc::new(fs.clone()), counter.clone()).unwrap();
        for i in 0..RECORDS {
            log.append(&payload(i)).unwrap();
            if i % 12 == 11 {
                log.archive_now(&mut |_, _| {}).unwrap();
                log.read(1).unwrap();
            }
        }
        assert!(log.truncate_before(CUT).unwrap() > 0);
        log.close_blocking().unwrap();
    }
    let total = counter.ops.load(Ordering::SeqCst);
    assert!(total > 12, "{total} archive operations");
    let mut images = 0;
    for kill in [Kill::Before, Kill::After] {
        for k in 0..=total {
            let report = Sweep::new(&FaultyFileSystem::new())
                .points(CrashPoints::Sample { seed: k, count: 0 })
                .modes([CrashMode::ProcessKill, CrashMode::LoseUnsynced])
                .writeback_seeds(0..0)
                .run(|fs| workload(fs, Some(k), kill), |img, out, _| check(img, out));
            images += report.images;
            if !report.failures.is_empty() || !report.workload_panics.is_empty() {
                panic!("archive killed at op {k} ({kill:?}): {report}");
            }
        }
    }
    println!("archive killed at each of {total} operations, before and after acting: {images} images, clean");
}
