//! Operations on the file: online backup, health check, maintenance.

use crate::error::{Failure, Res};
use crate::schema::{self, SCHEMA_VERSION};
use crate::{IndexError, IndexResult, SqliteSegmentIndex};
use aof_record::SegmentStatus;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How far an online backup has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupProgress {
    /// Pages still to copy.
    pub remaining_pages: u64,
    /// Pages in the source database.
    pub total_pages: u64,
}

/// How [`SqliteSegmentIndex::backup_to`] copies.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pages_per_step: u32,
    pause: Duration,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            pages_per_step: 256,
            pause: Duration::ZERO,
        }
    }
}

impl BackupOptions {
    /// Pages copied per step, between progress reports (at least 1; default 256).
    #[must_use]
    pub fn pages_per_step(mut self, pages: u32) -> Self {
        self.pages_per_step = pages.max(1);
        self
    }

    /// Sleep between steps, to leave the disk to others (default none).
    #[must_use]
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }
}

/// Whether SQLite found the file's structure intact.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Integrity {
    /// SQLite reported `ok`.
    Ok,
    /// SQLite reported problems; its messages, at most 100.
    Damaged {
        /// SQLite's messages.
        problems: Vec<String>,
    },
}

impl Integrity {
    /// Whether SQLite reported `ok`.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }
}

/// What [`SqliteSegmentIndex::health_check`] found, as of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthReport {
    /// Result of `PRAGMA quick_check`.
    pub integrity: Integrity,
    /// The schema version in `metadata`.
    pub schema_version: u64,
    /// Bytes per page.
    pub page_size: u64,
    /// Pages in the database (including those still only in the WAL).
    pub page_count: u64,
    /// Unused pages, which maintenance's incremental vacuum returns to the file system.
    pub freelist_pages: u64,
    /// Bytes of the database file.
    pub file_bytes: u64,
    /// Bytes of the WAL file (0 when there is none).
    pub wal_bytes: u64,
    /// Page frames the WAL file holds: an upper bound on pages not yet
    /// checkpointed (a WAL reused after a checkpoint keeps its old length).
    pub wal_pages: u64,
    /// Entries in the index.
    pub segments: u64,
    /// Entries per status.
    pub segments_by_status: BTreeMap<SegmentStatus, u64>,
    /// Entries whose stored status is none of [`SegmentStatus::ALL`].
    pub unknown_status: u64,
}

/// What [`SqliteSegmentIndex::maintain`] does; [`Default`] does everything.
#[derive(Debug, Clone)]
pub struct Maintenance {
    incremental_vacuum: bool,
    analyze: bool,
    checkpoint: bool,
    integrity_check: bool,
}

impl Default for Maintenance {
    fn default() -> Self {
        Self {
            incremental_vacuum: true,
            analyze: true,
            checkpoint: true,
            integrity_check: true,
        }
    }
}

impl Maintenance {
    /// Whether to return free pages to the file system (`PRAGMA incremental_vacuum`).
    #[must_use]
    pub fn incremental_vacuum(mut self, on: bool) -> Self {
        self.incremental_vacuum = on;
        self
    }

    /// Whether to refresh the planner's statistics (`ANALYZE`).
    #[must_use]
    pub fn analyze(mut self, on: bool) -> Self {
        self.analyze = on;
        self
    }

    /// Whether to copy the WAL into the database and truncate it
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`).
    #[must_use]
    pub fn checkpoint(mut self, on: bool) -> Self {
        self.checkpoint = on;
        self
    }

    /// Whether to run the full `PRAGMA integrity_check` (reads every page).
    #[must_use]
    pub fn integrity_check(mut self, on: bool) -> Self {
        self.integrity_check = on;
        self
    }
}

/// The outcome of a WAL checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// Whether readers or writers kept it from finishing within the busy timeout.
    pub busy: bool,
    /// Frames in the WAL.
    pub wal_frames: u64,
    /// Frames written back into the database file.
    pub checkpointed_frames: u64,
}

/// What [`SqliteSegmentIndex::maintain`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Pages returned to the file system by the incremental vacuum.
    pub pages_freed: u64,
    /// Whether `ANALYZE` ran.
    pub analyzed: bool,
    /// The checkpoint's outcome, if one ran.
    pub checkpoint: Option<Checkpoint>,
    /// The integrity check's outcome, if one ran.
    pub integrity: Option<Integrity>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum CheckpointMode {
    /// Copies what it can without waiting for readers or writers (the mode
    /// of SQLite's own automatic checkpoint).
    Passive,
    Full,
    Truncate,
}

/// Runs a WAL checkpoint on the writer connection (outside any transaction).
pub(crate) fn checkpoint(conn: &Connection, mode: CheckpointMode) -> Res<Checkpoint> {
    let sql = match mode {
        CheckpointMode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        CheckpointMode::Full => "PRAGMA wal_checkpoint(FULL)",
        CheckpointMode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    let (busy, log, done): (i64, i64, i64) =
        conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(Checkpoint {
        busy: busy != 0,
        // -1 when the database is not in WAL mode.
        wal_frames: u64::try_from(log).unwrap_or(0),
        checkpointed_frames: u64::try_from(done).unwrap_or(0),
    })
}

/// What `sync` runs on the writer (outside any transaction): a FULL
/// checkpoint, or — if readers on older snapshots keep it from finishing
/// within the busy timeout — a commit with `synchronous = FULL` (it counts
/// such syncs in `metadata`), whose WAL fsync covers every commit before it.
pub(crate) fn make_durable(conn: &mut Connection) -> Res<()> {
    if !checkpoint(conn, CheckpointMode::Full)?.busy {
        return Ok(());
    }
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    let commit = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // A write that changes nothing is skipped by SQLite, so count.
        tx.execute(
            "INSERT INTO metadata (key, value) VALUES (?1, '1') \
             ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [schema::FULL_SYNC_KEY],
        )?;
        tx.commit()
    })();
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))?;
    Ok(commit?)
}

fn pragma_u64(conn: &Connection, name: &str) -> Res<u64> {
    let v: i64 = conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
    Ok(u64::try_from(v).unwrap_or(0))
}

fn integrity(conn: &Connection, pragma: &str) -> Res<Integrity> {
    let mut stmt = conn.prepare(pragma)?;
    let problems = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(match problems.as_slice() {
        [ok] if ok == "ok" => Integrity::Ok,
        _ => Integrity::Damaged { problems },
    })
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn io(path: &Path, source: std::io::Error) -> Failure {
    IndexError::Io {
        path: path.to_owned(),
        source,
    }
    .into()
}

/// Flushes a finished file and the directory entry that names it.
fn sync_file_and_dir(path: &Path) -> Res<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(dir, e))?;
    }
    Ok(())
}

impl SqliteSegmentIndex {
    /// Copies the whole index, as of one moment, to a new file at `dest`,
    /// with the SQLite online backup API while the index stays in use:
    /// readers and the writer carry on. Calls `progress` after every step.
    ///
    /// Fails with `IndexError::Io` (kind `AlreadyExists`) if `dest` exists;
    /// removes `dest` again if the copy fails. The copy is fsynced (file
    /// and directory) before this returns, and opens with [`Self::open`].
    ///
    /// A step that finds the source changed since the previous one starts
    /// over (that is how SQLite keeps the copy consistent); when steps keep
    /// restarting under heavy writes, the rest is copied in one step, which
    /// holds a read snapshot but does not block the writer.
    pub fn backup_to(
        &self,
        dest: impl AsRef<Path>,
        options: &BackupOptions,
        mut progress: impl FnMut(BackupProgress),
    ) -> IndexResult<BackupProgress> {
        let dest = dest.as_ref();
        // Claims the name atomically: an existing file is never overwritten.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|e| io(dest, e))?;
        let result = self.backup_into(dest, options, &mut progress);
        if result.is_err() {
            // The half-written copy is ours; a failure to remove it changes nothing.
            let _ = std::fs::remove_file(dest);
        }
        Ok(result?)
    }

    fn backup_into(
        &self,
        dest: &Path,
        options: &BackupOptions,
        progress: &mut dyn FnMut(BackupProgress),
    ) -> Res<BackupProgress> {
        // A connection of its own, so a long backup does not hold a pool slot.
        let src = self.options.connect(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        self.options.tune(&src)?;
        let mut dst = Connection::open_with_flags(
            dest,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        dst.busy_timeout(self.options.busy_timeout)?;
        let last = {
            let backup = Backup::new(&src, &mut dst)?;
            let per_step = i32::try_from(options.pages_per_step).unwrap_or(i32::MAX);
            let mut step = per_step;
            let mut steps = 0u64;
            let mut busy_since: Option<Instant> = None;
            loop {
                let result = backup.step(step)?;
                steps += 1;
                let p = backup.progress();
                let now = BackupProgress {
                    remaining_pages: u64::try_from(p.remaining).unwrap_or(0),
                    total_pages: u64::try_from(p.pagecount).unwrap_or(0),
                };
                progress(now);
                match result {
                    StepResult::Done => break now,
                    StepResult::More => busy_since = None,
                    // Busy, Locked (and any answer a later rusqlite adds):
                    // wait, up to the busy timeout, like every other caller.
                    _ => {
                        let since = *busy_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > self.options.busy_timeout {
                            return Err(rusqlite::Error::SqliteFailure(
                                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                                Some("online backup: database stayed locked past the busy timeout".into()),
                            )
                            .into());
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                // Twice the steps an undisturbed copy needs: the source keeps
                // changing under us, so finish in one step.
                let needed = now.total_pages / u64::from(options.pages_per_step) + 1;
                if steps > 2 * needed + 2 {
                    step = -1;
                }
                if !options.pause.is_zero() {
                    std::thread::sleep(options.pause);
                }
            }
        };
        dst.close().map_err(|(_, e)| Failure::from(e))?;
        drop(src);
        sync_file_and_dir(dest)?;
        Ok(last)
    }

    /// Reports integrity (`PRAGMA quick_check`), sizes, WAL pages and
    /// segment counts, all read from one snapshot on a reader connection.
    pub fn health_check(&self) -> IndexResult<HealthReport> {
        let mut conn = self.readers.get().map_err(Failure::from)?;
        let report = (|| -> Res<HealthReport> {
            let tx = conn.transaction()?;
            let integrity = integrity(&tx, "PRAGMA quick_check(100)")?;
            let version: String = tx.query_row(
                "SELECT value FROM metadata WHERE key = ?1",
                [schema::VERSION_KEY],
                |r| r.get(0),
            )?;
            let page_size = pragma_u64(&tx, "page_size")?;
            let page_count = pragma_u64(&tx, "page_count")?;
            let freelist_pages = pragma_u64(&tx, "freelist_count")?;
            let mut segments = 0;
            let mut segments_by_status = BTreeMap::new();
            let mut unknown_status = 0;
            {
                let mut stmt = tx.prepare("SELECT status, count(*) FROM segments GROUP BY status")?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let n = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
                    segments += n;
                    let status = match row.get_ref(0)? {
                        rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
                            .ok()
                            .and_then(|s| s.parse::<SegmentStatus>().ok()),
                        _ => None,
                    };
                    match status {
                        Some(s) => *segments_by_status.entry(s).or_insert(0) += n,
                        None => unknown_status += n,
                    }
                }
            }
            tx.commit()?;
            let wal_bytes = file_len(&schema::wal_path(&self.path));
            Ok(HealthReport {
                integrity,
                schema_version: version.trim().parse().unwrap_or(SCHEMA_VERSION),
                page_size,
                page_count,
                freelist_pages,
                file_bytes: file_len(&self.path),
                wal_bytes,
                wal_pages: wal_bytes.saturating_sub(32) / (page_size + 24).max(1),
                segments,
                segments_by_status,
                unknown_status,
            })
        })()?;
        Ok(report)
    }

    /// Runs the chosen maintenance: incremental vacuum, `ANALYZE` and a
    /// `TRUNCATE` checkpoint on the writer (between two write
    /// transactions; queries carry on meanwhile), then the integrity check
    /// on a reader.
    pub fn maintain(&self, what: &Maintenance) -> IndexResult<MaintenanceReport> {
        let todo = what.clone();
        let mut report = self.writer.exclusive(move |conn| {
            let mut report = MaintenanceReport::default();
            if todo.incremental_vacuum {
                let before = pragma_u64(conn, "freelist_count")?;
                // Frees one page per row stepped: step to the end.
                let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
                drop(rows);
                drop(stmt);
                report.pages_freed = before.saturating_sub(pragma_u64(conn, "freelist_count")?);
            }
            if todo.analyze {
                conn.execute_batch("ANALYZE")?;
                report.analyzed = true;
            }
            if todo.checkpoint {
                report.checkpoint = Some(checkpoint(conn, CheckpointMode::Truncate)?);
            }
            Ok(report)
        })?;
        if what.integrity_check {
            report.integrity = Some(self.read(|conn| integrity(conn, "PRAGMA integrity_check(100)"))?);
        }
        Ok(report)
    }
}
