//! The single writer: a thread that owns the read-write connection.
//!
//! Callers send commands over a channel and wait on their own reply channel.
//! The thread takes whatever is queued (up to `max_batch` commands) and runs
//! it as ONE `BEGIN IMMEDIATE` transaction: group commit. Each command runs
//! inside its own SAVEPOINT, so a command that fails (a duplicate, an
//! overlap, …) is rolled back alone and the others in the group still
//! commit. Replies go out only after the COMMIT, so a caller never sees a
//! change acknowledged that a reader could not see yet.
//!
//! The writer checkpoints the WAL itself, after the replies of the batch
//! that filled it have gone out: SQLite's automatic checkpoint would run
//! inside the COMMIT (copying every page of a bulk load into the database
//! file and fsyncing both files) while the callers wait for an answer it
//! does not change. The policy is SQLite's own (a PASSIVE checkpoint once the
//! WAL holds [`AUTO_CHECKPOINT_FRAMES`] frames), only later on the same
//! thread, before the next batch begins: the WAL stays as short, and what
//! a commit or [`sync`](aof_record::SegmentIndex::sync) makes durable is
//! unchanged.
//!
//! Every check the contract demands (duplicates, overlaps, record counts,
//! lifecycle moves, existence) runs inside that write transaction, against
//! the rows as they are at that moment: no check can race a write.

use crate::encoding::ord;
use crate::error::{Failure, Res, SqliteIndexError};
use crate::identity;
use crate::sql::{self, INSERT_MANY, ROWS_PER_INSERT, decode, execute_entry, insert_many};
use aof_record::index::contract;
use aof_record::{IndexError, LogId, SegmentEntry, SegmentStatus};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

/// A change to the index.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Add(Vec<SegmentEntry>),
    Update(SegmentEntry),
    Remove(u64),
    Status(u64, SegmentStatus),
    Tail {
        base_id: u64,
        last_id: Option<u64>,
        size: u64,
    },
    SetLogId(LogId),
}

type Reply = Sender<Res<Option<SegmentEntry>>>;

/// Work the writer thread runs outside any batch, with the connection to
/// itself (or the poisoning error instead); answers the I/O error it met, if any.
type Exclusive = Box<dyn FnOnce(Result<&mut Connection, Failure>) -> Option<IoError> + Send>;

/// SQLite's code of an I/O error, extended code (`SQLITE_IOERR_FSYNC`, …) included.
type IoError = rusqlite::ffi::Error;

enum Command {
    Write(WriteOp, Reply),
    Exclusive(Exclusive),
}

/// Handle to the writer thread; dropping it lets the thread finish what is
/// queued, close the connection and exit.
pub(crate) struct Writer {
    tx: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// What the writer thread has done, counted as it goes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    commands: AtomicU64,
    failed_transactions: AtomicU64,
}

/// A snapshot of the writer's counters: how well group commit is grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WriterStats {
    /// Write transactions run (each one a group of queued mutations).
    pub transactions: u64,
    /// Mutations run, refused ones included.
    pub commands: u64,
    /// Transactions that could not begin or commit; every mutation in them failed.
    pub failed_transactions: u64,
}

impl WriterStats {
    /// Mean mutations per transaction (0 before the first).
    #[must_use]
    pub fn mean_batch(&self) -> f64 {
        if self.transactions == 0 {
            0.0
        } else {
            self.commands as f64 / self.transactions as f64
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("running", &self.thread.as_ref().is_some_and(|t| !t.is_finished()))
            .finish()
    }
}

impl Writer {
    pub(crate) fn spawn(conn: Connection, max_batch: usize) -> Result<Self, SqliteIndexError> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("aof-index-sqlite-writer".into())
            .spawn(move || run(conn, &rx, max_batch.max(1), &thread_counters))
            .map_err(SqliteIndexError::Spawn)?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            failed_transactions: self.counters.failed_transactions.load(Ordering::Relaxed),
        }
    }

    fn send(&self, cmd: Command) -> Res<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(cmd).ok())
            .ok_or(Failure::Backend(SqliteIndexError::WriterStopped))
    }

    /// Queues a change and waits until the transaction carrying it commits.
    pub(crate) fn write(&self, op: WriteOp) -> Res<Option<SegmentEntry>> {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Write(op, reply))?;
        answer
            .recv()
            .unwrap_or(Err(Failure::Backend(SqliteIndexError::WriterStopped)))
    }

    /// Runs `f` on the writer connection once every change queued before it
    /// has committed, outside any transaction, and waits for its result.
    pub(crate) fn exclusive<T, F>(&self, f: F) -> Res<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Res<T> + Send + 'static,
    {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Exclusive(Box::new(move |conn| {
            let result = conn.and_then(f);
            let io = result.as_ref().err().and_then(io_failure);
            // The caller may have gone; nothing to do about it then.
            let _ = reply.send(result);
            io
        })))?;
        answer
            .recv()
            .unwrap_or(Err(Failure::Backend(SqliteIndexError::WriterStopped)))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // A panic in the thread was already reported to its callers as
            // `WriterStopped`; there is nothing more to do with it here.
            let _ = thread.join();
        }
    }
}

/// The SQLite error inside `f` if it is an I/O error (`SQLITE_IOERR_*`):
/// after one, what is on disk is unknown (a failed fsync may have dropped
/// pages the kernel then reports clean), so the writer stops writing.
fn io_failure(f: &Failure) -> Option<IoError> {
    match f {
        Failure::Backend(SqliteIndexError::Sqlite(e)) => io_code(e),
        Failure::Backend(SqliteIndexError::Transaction { source }) => io_code(source),
        _ => None,
    }
}

fn io_code(e: &rusqlite::Error) -> Option<IoError> {
    match e {
        rusqlite::Error::SqliteFailure(code, _) if code.code == ErrorCode::SystemIoFailure => Some(*code),
        _ => None,
    }
}

fn poison_from(code: IoError) -> Arc<rusqlite::Error> {
    Arc::new(rusqlite::Error::SqliteFailure(code, None))
}

fn poisoned(source: &Arc<rusqlite::Error>) -> Failure {
    Failure::Backend(SqliteIndexError::Poisoned {
        source: Arc::clone(source),
    })
}

/// WAL frames after which the writer checkpoints: SQLite's default for its
/// automatic checkpoint (`SQLITE_DEFAULT_WAL_AUTOCHECKPOINT`).
pub(crate) const AUTO_CHECKPOINT_FRAMES: i32 = 1000;

thread_local! {
    /// Frames in the WAL after the last commit on this thread's connection,
    /// as the WAL hook reported them. Only the writer thread commits on its
    /// connection, so only its copy is ever set.
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

/// The writer connection's WAL hook: SQLite calls it after each commit, on
/// the committing thread, with the number of frames in the WAL. Installing
/// it replaces SQLite's automatic checkpoint.
fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::os::raw::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// Checkpoints the WAL if the last commit left it holding at least
/// [`AUTO_CHECKPOINT_FRAMES`] frames; answers the I/O error it met, if any.
/// A checkpoint that fails otherwise (or stops short at a reader's
/// snapshot) is tried again after the next commit, as SQLite's would be.
fn checkpoint_if_due(conn: &Connection) -> Option<IoError> {
    if WAL_FRAMES.get() < AUTO_CHECKPOINT_FRAMES {
        return None;
    }
    WAL_FRAMES.set(0);
    crate::ops::checkpoint(conn, crate::ops::CheckpointMode::Passive)
        .err()
        .as_ref()
        .and_then(io_failure)
}

fn run(mut conn: Connection, rx: &Receiver<Command>, max_batch: usize, counters: &Counters) {
    conn.wal_hook(Some(note_wal_frames));
    let mut held: Option<Command> = None;
    let mut batch: Vec<(WriteOp, Reply)> = Vec::new();
    let mut poison: Option<Arc<rusqlite::Error>> = None;
    loop {
        let first = match held.take() {
            Some(cmd) => cmd,
            None => match rx.recv() {
                Ok(cmd) => cmd,
                Err(_) => break,
            },
        };
        match first {
            Command::Exclusive(f) => match &poison {
                Some(p) => {
                    f(Err(poisoned(p)));
                }
                None => poison = f(Ok(&mut conn)).map(poison_from),
            },
            Command::Write(op, reply) => {
                batch.push((op, reply));
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(Command::Write(op, reply)) => batch.push((op, reply)),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                match &poison {
                    Some(p) => {
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(poisoned(p)));
                        }
                    }
                    None => {
                        poison = run_batch(&mut conn, &mut batch, counters)
                            .or_else(|| checkpoint_if_due(&conn).map(poison_from));
                    }
                }
            }
        }
    }
    if poison.is_some() {
        // Leave the WAL as it is on disk for the next open to recover from,
        // rather than copying pages of unknown state into the database.
        let _ = conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
    } else {
        // Copy the WAL into the database and empty it, even if a reader
        // connection still open elsewhere keeps SQLite from removing it on
        // close. Nothing to report to: a failure leaves the WAL for the next open.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    // Dropping the connection closes it; when it is the last one open, SQLite
    // checkpoints the WAL into the database and removes it.
    drop(conn);
}

/// Runs `batch` as one transaction and answers every command in it;
/// returns the I/O error that poisons the writer, if one happened.
fn run_batch(
    conn: &mut Connection,
    batch: &mut Vec<(WriteOp, Reply)>,
    counters: &Counters,
) -> Option<Arc<rusqlite::Error>> {
    counters.transactions.fetch_add(1, Ordering::Relaxed);
    counters.commands.fetch_add(batch.len() as u64, Ordering::Relaxed);
    match apply_batch(conn, batch) {
        Ok(results) => {
            let io = results.iter().find_map(|r| r.as_ref().err().and_then(io_failure));
            for ((_, reply), result) in batch.drain(..).zip(results) {
                let _ = reply.send(result);
            }
            io.map(poison_from)
        }
        Err(e) => {
            counters.failed_transactions.fetch_add(1, Ordering::Relaxed);
            let e = Arc::new(e);
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(Failure::Backend(SqliteIndexError::Transaction {
                    source: Arc::clone(&e),
                })));
            }
            io_code(&e).is_some().then_some(e)
        }
    }
}

/// The per-command results, or the error that sank the whole transaction.
fn apply_batch(
    conn: &mut Connection,
    batch: &[(WriteOp, Reply)],
) -> rusqlite::Result<Vec<Res<Option<SegmentEntry>>>> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    if let [(op, _)] = batch {
        // Alone in the transaction: the transaction itself is the savepoint.
        let result = apply(&tx, op);
        if result.is_err() {
            tx.rollback()?;
            return Ok(vec![result]);
        }
        results.push(result);
    } else {
        for (op, _) in batch {
            let sp = tx.savepoint()?;
            let result = apply(&sp, op);
            if result.is_ok() {
                sp.commit()?;
            } else {
                // Dropping rolls back to the savepoint and releases it.
                drop(sp);
                if tx.is_autocommit() {
                    // SQLite rolled the whole transaction back (after an I/O
                    // error, a full disk, …): the commands before this one are
                    // gone, and the ones after would each commit on their
                    // own. Fail the whole group instead.
                    return Err(match result {
                        Err(Failure::Backend(SqliteIndexError::Sqlite(e))) => e,
                        _ => rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                            Some("SQLite rolled back the write transaction".into()),
                        ),
                    });
                }
            }
            results.push(result);
        }
    }
    tx.commit()?;
    Ok(results)
}

fn apply(conn: &Connection, op: &WriteOp) -> Res<Option<SegmentEntry>> {
    match op {
        WriteOp::Add(entries) => add_entries(conn, entries).map(|()| None),
        WriteOp::Update(entry) => update_entry(conn, entry).map(|()| None),
        WriteOp::Remove(base_id) => remove_entry(conn, *base_id),
        WriteOp::Status(base_id, status) => update_status(conn, *base_id, *status).map(|()| None),
        WriteOp::Tail {
            base_id,
            last_id,
            size,
        } => update_tail(conn, *base_id, *last_id, *size).map(|()| None),
        WriteOp::SetLogId(id) => identity::set(conn, *id).map(|()| None),
    }
}

/// The entry with this base id.
pub(crate) fn get(conn: &Connection, base_id: u64) -> Res<Option<SegmentEntry>> {
    one(conn, sql::GET, ord(base_id))
}

/// The first row of a one-parameter entry query.
pub(crate) fn one(conn: &Connection, query: &str, param: i64) -> Res<Option<SegmentEntry>> {
    let mut stmt = conn.prepare_cached(query)?;
    let mut rows = stmt.query([param])?;
    match rows.next()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

fn insert(conn: &Connection, e: &SegmentEntry) -> Res<()> {
    let mut stmt = conn.prepare_cached(sql::INSERT)?;
    execute_entry(&mut stmt, e).map_err(|err| insert_error(err, e))?;
    Ok(())
}

/// A primary-key clash (which the checks before an insert rule out) is
/// still reported by meaning.
fn insert_error(err: rusqlite::Error, e: &SegmentEntry) -> Failure {
    if err.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
        IndexError::AlreadyExists { base_id: e.base_id }.into()
    } else {
        err.into()
    }
}

fn rewrite(conn: &Connection, e: &SegmentEntry) -> Res<()> {
    let mut stmt = conn.prepare_cached(sql::UPDATE)?;
    execute_entry(&mut stmt, e)?;
    Ok(())
}

/// Adds one entry with every check of the contract.
fn add_one(conn: &Connection, e: &SegmentEntry) -> Res<()> {
    let prev = one(conn, sql::PREV, ord(e.base_id))?;
    let next = one(conn, sql::NEXT, ord(e.base_id))?;
    contract::check_add(e, exists(conn, e.base_id)?, prev.as_ref(), next.as_ref())?;
    insert(conn, e)
}

fn exists(conn: &Connection, base_id: u64) -> Res<bool> {
    let mut stmt = conn.prepare_cached(sql::EXISTS)?;
    Ok(stmt.exists([ord(base_id)])?)
}

/// Adds a batch. When the batch is valid, does not clash with itself and no
/// stored entry lies in or reaches into its id span, two queries check it
/// all and the rows go in in base-id order; otherwise each entry is checked
/// and added in turn, which reports exactly the first failing entry.
fn add_entries(conn: &Connection, entries: &[SegmentEntry]) -> Res<()> {
    if entries.is_empty() {
        return Ok(());
    }
    if let Some(sorted) = clear_batch(conn, entries)? {
        let mut chunks = sorted.chunks_exact(ROWS_PER_INSERT);
        if chunks.len() > 0 {
            let mut many = conn.prepare_cached(&INSERT_MANY)?;
            for chunk in &mut chunks {
                insert_many(&mut many, chunk).map_err(|err| insert_error(err, chunk[0]))?;
            }
        }
        let mut one = conn.prepare_cached(sql::INSERT)?;
        for e in chunks.remainder() {
            execute_entry(&mut one, e).map_err(|err| insert_error(err, e))?;
        }
        return Ok(());
    }
    for e in entries {
        add_one(conn, e)?;
    }
    Ok(())
}

/// The batch in base-id order if it can go in without per-entry checks.
fn clear_batch<'a>(conn: &Connection, entries: &'a [SegmentEntry]) -> Res<Option<Vec<&'a SegmentEntry>>> {
    if entries.iter().any(|e| e.validate().is_err()) {
        return Ok(None);
    }
    let mut sorted: Vec<&SegmentEntry> = entries.iter().collect();
    if !sorted.is_sorted_by_key(|e| e.base_id) {
        sorted.sort_unstable_by_key(|e| e.base_id);
    }
    // Sorted by base id, each entry must end before the next begins (this
    // also catches duplicates, as last_id >= base_id).
    if sorted.windows(2).any(|w| w[1].base_id <= w[0].last_id) {
        return Ok(None);
    }
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return Ok(None);
    };
    let (lo, hi) = (first.base_id, last.last_id);
    let mut inside = conn.prepare_cached(sql::ANY_BETWEEN)?;
    if inside.exists([ord(lo), ord(hi)])? {
        return Ok(None);
    }
    // Stored entries do not overlap, so only the one just below `lo` can reach it.
    let mut below = conn.prepare_cached(sql::LAST_ID_BELOW)?;
    let reach: Option<i64> = below.query_row([ord(lo)], |r| r.get(0)).optional()?;
    if reach.is_some_and(|l| l >= ord(lo)) {
        return Ok(None);
    }
    Ok(Some(sorted))
}

fn update_entry(conn: &Connection, e: &SegmentEntry) -> Res<()> {
    let current = get(conn, e.base_id)?;
    let prev = one(conn, sql::PREV, ord(e.base_id))?;
    let next = one(conn, sql::NEXT, ord(e.base_id))?;
    contract::check_update(e, current.as_ref(), prev.as_ref(), next.as_ref())?;
    rewrite(conn, e)
}

fn remove_entry(conn: &Connection, base_id: u64) -> Res<Option<SegmentEntry>> {
    let Some(entry) = get(conn, base_id)? else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(sql::DELETE)?;
    stmt.execute([ord(base_id)])?;
    Ok(Some(entry))
}

fn update_status(conn: &Connection, base_id: u64, status: SegmentStatus) -> Res<()> {
    let current = get(conn, base_id)?;
    if contract::status_update(base_id, current.as_ref(), status)?.is_some() {
        let mut stmt = conn.prepare_cached(sql::SET_STATUS)?;
        stmt.execute(rusqlite::params![ord(base_id), status.as_str()])?;
    }
    Ok(())
}

fn update_tail(conn: &Connection, base_id: u64, last_id: Option<u64>, size: u64) -> Res<()> {
    let current = get(conn, base_id)?;
    let next = one(conn, sql::NEXT, ord(base_id))?;
    let updated = contract::tail_update(base_id, current.as_ref(), last_id, size, next.as_ref())?;
    rewrite(conn, &updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SegmentIndex, SqliteSegmentIndex};
    use aof_record::conformance::index::finalized;

    /// Writes queued while the writer is busy go into ONE transaction, and a
    /// refused one in the middle is rolled back alone.
    #[test]
    fn queued_writes_commit_together_and_a_refused_one_alone_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteSegmentIndex::open(dir.path().join("index.db")).unwrap();
        index.add_entry(&finalized(0, 9, 0, 1)).unwrap();
        let before = index.writer_stats();
        let (entered_tx, entered_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let blocker = s.spawn(|| {
                index.writer.exclusive(move |_| {
                    entered_tx.send(()).unwrap();
                    gate_rx.recv().unwrap();
                    Ok(())
                })
            });
            // The writer thread is now parked inside the closure.
            entered_rx.recv().unwrap();
            let answers: Vec<_> = (1..=10u64)
                .map(|i| {
                    // Number 5 duplicates the stored segment 0.
                    let e = if i == 5 {
                        finalized(0, 9, 0, 1)
                    } else {
                        finalized(i * 10, i * 10 + 9, 0, 1)
                    };
                    let (reply, answer) = mpsc::channel();
                    index
                        .writer
                        .send(Command::Write(WriteOp::Add(vec![e]), reply))
                        .unwrap();
                    answer
                })
                .collect();
            gate_tx.send(()).unwrap();
            blocker.join().unwrap().unwrap();
            for (i, answer) in (1..=10u64).zip(answers) {
                match (i, answer.recv().unwrap()) {
                    (5, Err(Failure::Index(IndexError::AlreadyExists { base_id: 0 }))) => {}
                    (5, r) => panic!("duplicate gave {r:?}"),
                    (_, r) => assert!(r.is_ok(), "write {i} gave {r:?}"),
                }
            }
        });
        let after = index.writer_stats();
        assert_eq!(
            after.transactions - before.transactions,
            1,
            "{before:?} -> {after:?}"
        );
        assert_eq!(after.commands - before.commands, 10);
        assert_eq!(after.failed_transactions, 0);
        let bases: Vec<u64> = index
            .get_all_segments()
            .unwrap()
            .iter()
            .map(|e| e.base_id)
            .collect();
        assert_eq!(
            bases,
            (0..=10).filter(|i| *i != 5).map(|i| i * 10).collect::<Vec<_>>()
        );
    }

    /// A row failing inside a bulk insert (here by a trigger: the checks
    /// before a bulk insert rule out every failure the schema could raise)
    /// leaves nothing of its batch behind, alone in its transaction or
    /// grouped with others, though the bulk statement keeps earlier rows.
    #[test]
    fn a_bulk_insert_failing_midway_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteSegmentIndex::open(dir.path().join("index.db")).unwrap();
        let poisoned = 70 * 10;
        index
            .writer
            .exclusive(move |conn| {
                conn.execute_batch(&format!(
                    "CREATE TEMP TRIGGER fail_one BEFORE INSERT ON main.segments \
                     WHEN new.base_id = {} BEGIN SELECT RAISE(FAIL, 'injected'); END",
                    ord(poisoned)
                ))?;
                Ok(())
            })
            .unwrap();
        let batch: Vec<SegmentEntry> = (0..100u64).map(|i| finalized(i * 10, i * 10 + 9, 0, 1)).collect();
        assert!(index.add_entries(&batch).is_err());
        assert_eq!(index.len().unwrap(), 0, "a failed batch left rows");
        // Grouped with another mutation (its own savepoint), the same.
        let (entered_tx, entered_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let blocker = s.spawn(|| {
                index.writer.exclusive(move |_| {
                    entered_tx.send(()).unwrap();
                    gate_rx.recv().unwrap();
                    Ok(())
                })
            });
            entered_rx.recv().unwrap();
            let send = |op| {
                let (reply, answer) = mpsc::channel();
                index.writer.send(Command::Write(op, reply)).unwrap();
                answer
            };
            let bulk = send(WriteOp::Add(batch.clone()));
            let other = send(WriteOp::Add(vec![finalized(5000, 5009, 0, 1)]));
            gate_tx.send(()).unwrap();
            blocker.join().unwrap().unwrap();
            assert!(bulk.recv().unwrap().is_err());
            other.recv().unwrap().unwrap();
        });
        let stats = index.writer_stats();
        assert_eq!(stats.failed_transactions, 0, "{stats:?}");
        let bases: Vec<u64> = index
            .get_all_segments()
            .unwrap()
            .iter()
            .map(|e| e.base_id)
            .collect();
        assert_eq!(bases, vec![5000]);
    }

    /// A commit that leaves the WAL at the checkpoint threshold is
    /// checkpointed by the writer before its next command (the database
    /// file grows to hold the pages); a smaller one leaves its pages in the
    /// WAL, as SQLite's own automatic checkpoint would.
    #[test]
    fn the_writer_checkpoints_a_full_wal_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let index = SqliteSegmentIndex::open(&path).unwrap();
        let db_len = |index: &SqliteSegmentIndex| {
            // Runs on the writer after whatever it does once the batch
            // before it is answered.
            index.writer.exclusive(|_| Ok(())).unwrap();
            std::fs::metadata(&path).unwrap().len()
        };
        let empty = db_len(&index);
        let small: Vec<SegmentEntry> = (0..100u64)
            .map(|i| finalized(i * 10, i * 10 + 9, i, i + 1))
            .collect();
        index.add_entries(&small).unwrap();
        assert_eq!(db_len(&index), empty, "a small commit was checkpointed");
        // Rows of over 100 bytes in the table alone: far more pages than
        // AUTO_CHECKPOINT_FRAMES.
        let n = 100 * u64::try_from(AUTO_CHECKPOINT_FRAMES).unwrap();
        let big: Vec<SegmentEntry> = (1000..1000 + n)
            .map(|i| finalized(i * 10, i * 10 + 9, i, i + 1))
            .collect();
        index.add_entries(&big).unwrap();
        let after = db_len(&index);
        assert!(
            after > empty + n * 100,
            "the WAL was not checkpointed: {empty} -> {after} bytes"
        );
        assert_eq!(index.len().unwrap(), usize::try_from(n).unwrap() + 100);
    }

    /// With a batch limit, a long queue is split into several transactions.
    #[test]
    fn max_batch_bounds_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteSegmentIndex::open_with(
            dir.path().join("index.db"),
            &crate::SqliteIndexOptions::default().max_batch(4),
        )
        .unwrap();
        let (entered_tx, entered_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let blocker = s.spawn(|| {
                index.writer.exclusive(move |_| {
                    entered_tx.send(()).unwrap();
                    gate_rx.recv().unwrap();
                    Ok(())
                })
            });
            entered_rx.recv().unwrap();
            let answers: Vec<_> = (0..10u64)
                .map(|i| {
                    let (reply, answer) = mpsc::channel();
                    let op = WriteOp::Add(vec![finalized(i * 10, i * 10 + 9, 0, 1)]);
                    index.writer.send(Command::Write(op, reply)).unwrap();
                    answer
                })
                .collect();
            gate_tx.send(()).unwrap();
            blocker.join().unwrap().unwrap();
            for answer in answers {
                answer.recv().unwrap().unwrap();
            }
        });
        let stats = index.writer_stats();
        assert_eq!((stats.transactions, stats.commands), (3, 10), "{stats:?}");
        assert_eq!(index.len().unwrap(), 10);
    }

    /// After an I/O error on the writer (here injected through the path a
    /// failing checkpoint takes), writes and `sync` fail until reopen;
    /// queries still work, and a reopened index writes again.
    #[test]
    fn an_io_error_poisons_the_writer_until_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let index = SqliteSegmentIndex::open(&path).unwrap();
        index.add_entry(&finalized(0, 9, 0, 1)).unwrap();
        let fsync = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC);
        let injected = index
            .writer
            .exclusive(move |_| -> Res<()> { Err(rusqlite::Error::SqliteFailure(fsync, None).into()) });
        assert!(matches!(
            injected,
            Err(Failure::Backend(SqliteIndexError::Sqlite(_)))
        ));
        let is_poisoned = |r: Result<(), IndexError>| match r {
            Err(IndexError::Backend { source, .. }) => match source.downcast_ref::<SqliteIndexError>() {
                Some(SqliteIndexError::Poisoned { source }) => {
                    assert_eq!(source.sqlite_error_code(), Some(ErrorCode::SystemIoFailure));
                    true
                }
                _ => false,
            },
            _ => false,
        };
        assert!(is_poisoned(index.add_entry(&finalized(10, 19, 0, 1))));
        assert!(is_poisoned(
            index.update_segment_status(0, SegmentStatus::ArchivedRemote)
        ));
        assert!(is_poisoned(index.sync()));
        assert_eq!(index.get_all_segments().unwrap(), vec![finalized(0, 9, 0, 1)]);
        drop(index);
        let index = SqliteSegmentIndex::open(&path).unwrap();
        index.add_entry(&finalized(10, 19, 0, 1)).unwrap();
        index.sync().unwrap();
        assert_eq!(index.len().unwrap(), 2);
    }
}
