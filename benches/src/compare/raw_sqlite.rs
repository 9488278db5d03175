//! The SQLite baseline: plain rusqlite on the index's schema and file
//! settings (WAL, `synchronous = NORMAL`, the same cache and mmap sizes),
//! running the SQL the backend runs (imported from
//! [`aof_index_sqlite::sql`]), without its writer thread, reader pool, checks
//! or decoding. Created without `auto_vacuum`, as plain SQLite would be.

use super::data::{Dataset, SPAN};
use super::measure::{Lane, Limits, Round, Sampler, concurrent, timed, until_stopped};
use super::{Baseline, Res};
use aof_index_sqlite::encoding::{bits, ord};
use aof_index_sqlite::sql::{self, BY_TIME, FIND_ID, FOR_ARCHIVING, INSERT, LATEST_WITH_STATUS};
use aof_record::{SegmentEntry, SegmentStatus};
use rusqlite::{Connection, OptionalExtension, params};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The tail update of the benchmark's writer: only the columns it changes
/// (the index rewrites the whole row).
const TAIL: &str =
    "UPDATE segments SET last_id = ?2, record_count = ?3, original_size = ?4 WHERE base_id = ?1";

/// The 13 columns an entry query reads, undecoded.
type RawRow = (
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

/// A raw SQLite database with the index's schema.
#[derive(Debug)]
pub struct RawSqlite {
    conn: Connection,
    path: PathBuf,
}

fn connect(path: &Path) -> Res<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY; \
         PRAGMA mmap_size = 268435456;",
    )?;
    Ok(conn)
}

fn insert_row(stmt: &mut rusqlite::CachedStatement<'_>, e: &SegmentEntry) -> Res<()> {
    sql::execute_entry(stmt, e)?;
    Ok(())
}

fn set_tail(conn: &Connection, base: u64, k: u64) -> Res<()> {
    let last = base + k % SPAN;
    let n = conn.prepare_cached(TAIL)?.execute(params![
        ord(base),
        ord(last),
        bits(last - base + 1),
        bits(4096 + k)
    ])?;
    if n == 1 {
        Ok(())
    } else {
        Err("raw tail update found no row".into())
    }
}

fn find(conn: &Connection, id: u64) -> Res<Option<RawRow>> {
    Ok(conn
        .prepare_cached(FIND_ID)?
        .query_row([ord(id)], raw_row)
        .optional()?)
}

impl Baseline for RawSqlite {
    type Ctx = ();
    const LABEL: &'static str = "raw rusqlite";

    fn create(path: &Path, (): &(), _: &Dataset) -> Res<Self> {
        let conn = connect(path)?;
        // The schema the index has: every migration from an empty file.
        conn.execute_batch(&sql::MIGRATIONS.concat())?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    fn insert_batch(&self, data: &Dataset, (): &(), range: std::ops::Range<usize>) -> Res<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for e in &data.all[range] {
                insert_row(&mut stmt, e)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn insert_one(&self, data: &Dataset, (): &(), i: usize) -> Res<()> {
        insert_row(&mut self.conn.prepare_cached(INSERT)?, &data.all[i])
    }

    fn lookup_round(&self, ids: &[u64], offset: usize, limits: Limits) -> Res<Round> {
        let mut ids = super::data::Cycle::new(ids, offset);
        timed(limits, &mut || {
            black_box(find(&self.conn, ids.next_item())?.ok_or("raw lookup missed")?);
            Ok(1)
        })
    }

    fn time_round(&self, windows: &[(u64, u64)], offset: usize, limits: Limits) -> Res<Round> {
        let mut windows = super::data::Cycle::new(windows, offset);
        timed(limits, &mut || {
            let (start, end) = windows.next_item();
            let rows: Vec<RawRow> = self
                .conn
                .prepare_cached(BY_TIME)?
                .query_map([ord(start), ord(end)], raw_row)?
                .collect::<Result<_, _>>()?;
            black_box(rows);
            Ok(1)
        })
    }

    fn active_round(&self, limits: Limits) -> Res<Round> {
        timed(limits, &mut || {
            let row = self
                .conn
                .prepare_cached(LATEST_WITH_STATUS)?
                .query_row([SegmentStatus::Active.as_str()], raw_row)
                .optional()?;
            black_box(row.ok_or("raw: no active segment")?);
            Ok(1)
        })
    }

    fn archiving_round(&self, count: usize, limits: Limits) -> Res<Round> {
        timed(limits, &mut || {
            let rows: Vec<RawRow> = self
                .conn
                .prepare_cached(FOR_ARCHIVING)?
                .query_map([count as i64], raw_row)?
                .collect::<Result<_, _>>()?;
            black_box(rows);
            Ok(1)
        })
    }

    fn concurrent_round(&self, readers: usize, ids: &[u64], active: u64, duration: Duration) -> Res<Round> {
        let path = &self.path;
        // Connections are opened and statements prepared before the start.
        let reader = |r: usize, gate: &Barrier, stop: &AtomicBool| -> Lane {
            let conn = (|| -> Res<Connection> {
                let c = connect(path)?;
                find(&c, ids[0])?;
                Ok(c)
            })();
            gate.wait();
            let conn = conn?;
            let mut ids = super::data::Cycle::new(ids, r * 7919);
            until_stopped(stop, &mut || {
                black_box(find(&conn, ids.next_item())?.ok_or("raw lookup missed")?);
                Ok(())
            })
        };
        let writer = |gate: &Barrier, stop: &AtomicBool| -> Lane {
            let conn = (|| -> Res<Connection> {
                let c = connect(path)?;
                c.prepare_cached(TAIL)?;
                Ok(c)
            })();
            gate.wait();
            let conn = conn?;
            let mut k = 0u64;
            until_stopped(stop, &mut || {
                k += 1;
                set_tail(&conn, active, k)
            })
        };
        concurrent(readers, duration, &reader, &writer)
    }

    fn sync_round(&self, active: u64, limits: Limits) -> Res<Round> {
        let mut s = Sampler::new();
        let start = std::time::Instant::now();
        let mut k = 0u64;
        while s.calls() < limits.max_calls && start.elapsed() < limits.time {
            k += 1;
            set_tail(&self.conn, active, k)?;
            s.begin();
            self.conn
                .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
            s.tick(1);
        }
        Ok(Round::from_sampler(s))
    }

    fn settle(&self) -> Res<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.path.clone(), super::with_suffix(&self.path, "-wal")]
    }
}
