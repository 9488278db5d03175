//! SqliteSegmentIndex against raw rusqlite on the same schema, same file
//! settings (WAL, synchronous = NORMAL), measured in the same run:
//!
//! * batched insert: `add_entries` of 20 000 entries (checks, writer thread
//!   and all) vs. one transaction of prepared INSERTs;
//! * point lookup: `find_segment_for_id` (pooled reader, decode into a
//!   `SegmentEntry`) vs. the same "largest base_id <= x" SELECT on one
//!   connection, reading the same 13 columns; and `get_entry` vs. a primary
//!   key SELECT.
//!
//! `cargo bench -p aof-index-sqlite`; compare the throughput lines of each
//! group (the target is ≥ 0.7 × raw).

use aof_index_sqlite::encoding::ord;
use aof_index_sqlite::sql;
use aof_index_sqlite::{SegmentIndex, SqliteSegmentIndex};
use aof_record::SegmentEntry;
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use rusqlite::Connection;
use std::hint::black_box;
use std::path::Path;

const INSERT_N: u64 = 20_000;
const TABLE_N: u64 = 100_000;
const LOOKUPS: u64 = 1_000;
const SPAN: u64 = 1_000;

fn entry(i: u64) -> SegmentEntry {
    let base = i * SPAN;
    SegmentEntry::new_active(base, 1_700_000_000_000_000 + i, format!("{base:020}.seg"))
        .finalize(
            Some(base + SPAN - 1),
            1 << 26,
            base ^ 0x5555,
            1_700_000_000_000_000 + i + 1,
        )
        .expect("finalizes")
}

fn raw_open(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY; \
         PRAGMA mmap_size = 268435456;",
    )
    .unwrap();
    conn
}

fn raw_insert(conn: &mut Connection, entries: &[SegmentEntry]) {
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx.prepare_cached(sql::INSERT).unwrap();
        for e in entries {
            sql::execute_entry(&mut stmt, e).unwrap();
        }
    }
    tx.commit().unwrap();
}

type RawRow = (
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
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

/// A fixed pseudo-random sequence of ids inside the table.
fn ids() -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..LOOKUPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % (TABLE_N * SPAN)
        })
        .collect()
}

fn batched_insert(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<SegmentEntry> = (0..INSERT_N).map(entry).collect();
    let mut group = c.benchmark_group("batched_insert");
    group.throughput(Throughput::Elements(INSERT_N));
    group.sample_size(20);
    let mut n = 0u64;
    group.bench_function("raw_rusqlite", |b| {
        b.iter_batched(
            || {
                n += 1;
                let path = dir.path().join(format!("raw-{n}.db"));
                let conn = raw_open(&path);
                conn.execute_batch(&sql::MIGRATIONS.concat()).unwrap();
                conn
            },
            |mut conn| {
                raw_insert(&mut conn, &entries);
                conn
            },
            BatchSize::PerIteration,
        );
    });
    // The index creates its file with auto_vacuum = INCREMENTAL (so that
    // maintenance can return free pages); the same raw inserts on such a file
    // show what that costs.
    group.bench_function("raw_rusqlite_auto_vacuum", |b| {
        b.iter_batched(
            || {
                n += 1;
                let path = dir.path().join(format!("raw-{n}.db"));
                let conn = Connection::open(&path).unwrap();
                conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL").unwrap();
                drop(conn);
                let conn = raw_open(&path);
                conn.execute_batch(&sql::MIGRATIONS.concat()).unwrap();
                conn
            },
            |mut conn| {
                raw_insert(&mut conn, &entries);
                conn
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("sqlite_segment_index", |b| {
        b.iter_batched(
            || {
                n += 1;
                SqliteSegmentIndex::open(dir.path().join(format!("index-{n}.db"))).unwrap()
            },
            |index| {
                index.add_entries(&entries).unwrap();
                index
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn point_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<SegmentEntry> = (0..TABLE_N).map(entry).collect();
    let mut raw = raw_open(&dir.path().join("raw.db"));
    raw.execute_batch(&sql::MIGRATIONS.concat()).unwrap();
    raw_insert(&mut raw, &entries);
    // Both read from the database file, not from a WAL.
    raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let index = SqliteSegmentIndex::open(dir.path().join("index.db")).unwrap();
    index.add_entries(&entries).unwrap();
    index
        .maintain(
            &aof_index_sqlite::Maintenance::default()
                .analyze(false)
                .integrity_check(false),
        )
        .unwrap();
    let ids = ids();

    let mut group = c.benchmark_group("find_segment_for_id");
    group.throughput(Throughput::Elements(LOOKUPS));
    group.bench_function("raw_rusqlite", |b| {
        b.iter(|| {
            for &id in &ids {
                let mut stmt = raw.prepare_cached(sql::FIND_ID).unwrap();
                black_box(stmt.query_row([ord(id)], raw_row).unwrap());
            }
        });
    });
    group.bench_function("sqlite_segment_index", |b| {
        b.iter(|| {
            for &id in &ids {
                black_box(index.find_segment_for_id(id).unwrap().unwrap());
            }
        });
    });
    group.finish();

    let bases: Vec<u64> = ids.iter().map(|id| id / SPAN * SPAN).collect();
    let mut group = c.benchmark_group("get_entry");
    group.throughput(Throughput::Elements(LOOKUPS));
    group.bench_function("raw_rusqlite", |b| {
        b.iter(|| {
            for &base in &bases {
                let mut stmt = raw.prepare_cached(sql::GET).unwrap();
                black_box(stmt.query_row([ord(base)], raw_row).unwrap());
            }
        });
    });
    group.bench_function("sqlite_segment_index", |b| {
        b.iter(|| {
            for &base in &bases {
                black_box(index.get_entry(base).unwrap().unwrap());
            }
        });
    });
    group.finish();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Raw and index runs alternate round by round, so a change in the load
/// other work puts on the machine hits both alike; prints the medians of
/// entries/s and of the per-round ratio.
fn interleaved_ratios() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<SegmentEntry> = (0..INSERT_N).map(entry).collect();
    let (mut raw, mut raw_av, mut ours, mut ratio, mut ratio_av) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut ours_nv, mut ratio_nv) = (vec![], vec![]);
    let no_vacuum = aof_index_sqlite::SqliteIndexOptions::default().auto_vacuum(false);
    for round in 0..25 {
        let path = dir.path().join(format!("raw-{round}.db"));
        let mut conn = raw_open(&path);
        conn.execute_batch(&sql::MIGRATIONS.concat()).unwrap();
        let t = Instant::now();
        raw_insert(&mut conn, &entries);
        let r = INSERT_N as f64 / t.elapsed().as_secs_f64();
        let path = dir.path().join(format!("raw-av-{round}.db"));
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
            .unwrap();
        let mut conn = raw_open(&path);
        conn.execute_batch(&sql::MIGRATIONS.concat()).unwrap();
        let t = Instant::now();
        raw_insert(&mut conn, &entries);
        let rv = INSERT_N as f64 / t.elapsed().as_secs_f64();
        let index = SqliteSegmentIndex::open(dir.path().join(format!("index-{round}.db"))).unwrap();
        let t = Instant::now();
        index.add_entries(&entries).unwrap();
        let o = INSERT_N as f64 / t.elapsed().as_secs_f64();
        let index =
            SqliteSegmentIndex::open_with(dir.path().join(format!("index-nv-{round}.db")), &no_vacuum)
                .unwrap();
        let t = Instant::now();
        index.add_entries(&entries).unwrap();
        let onv = INSERT_N as f64 / t.elapsed().as_secs_f64();
        ours_nv.push(onv);
        ratio_nv.push(onv / r);
        raw.push(r);
        raw_av.push(rv);
        ours.push(o);
        ratio.push(o / r);
        ratio_av.push(o / rv);
    }
    println!(
        "interleaved batched insert of {INSERT_N}: raw {:.0}/s, raw+auto_vacuum {:.0}/s, index {:.0}/s, \
         index without auto_vacuum {:.0}/s; index/raw {:.2}, index/(raw+auto_vacuum) {:.2}, \
         (index without auto_vacuum)/raw {:.2}",
        median(&mut raw),
        median(&mut raw_av),
        median(&mut ours),
        median(&mut ours_nv),
        median(&mut ratio),
        median(&mut ratio_av),
        median(&mut ratio_nv)
    );

    let mut conn = raw_open(&dir.path().join("raw.db"));
    conn.execute_batch(&sql::MIGRATIONS.concat()).unwrap();
    let table: Vec<SegmentEntry> = (0..TABLE_N).map(entry).collect();
    raw_insert(&mut conn, &table);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let index = SqliteSegmentIndex::open(dir.path().join("index.db")).unwrap();
    index.add_entries(&table).unwrap();
    index
        .maintain(
            &aof_index_sqlite::Maintenance::default()
                .analyze(false)
                .integrity_check(false),
        )
        .unwrap();
    let ids = ids();
    let (mut raw, mut ours, mut ratio) = (vec![], vec![], vec![]);
    for _ in 0..31 {
        let t = Instant::now();
        for &id in &ids {
            let mut stmt = conn.prepare_cached(sql::FIND_ID).unwrap();
            black_box(stmt.query_row([ord(id)], raw_row).unwrap());
        }
        let r = LOOKUPS as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for &id in &ids {
            black_box(index.find_segment_for_id(id).unwrap().unwrap());
        }
        let o = LOOKUPS as f64 / t.elapsed().as_secs_f64();
        raw.push(r);
        ours.push(o);
        ratio.push(o / r);
    }
    println!(
        "interleaved find_segment_for_id over {TABLE_N}: raw {:.0}/s, index {:.0}/s; index/raw {:.2}",
        median(&mut raw),
        median(&mut ours),
        median(&mut ratio)
    );
}

criterion_group!(benches, batched_insert, point_lookup);

fn main() {
    // `cargo bench -p aof-index-sqlite -- ratios` runs only this part; a
    // filter naming a criterion group skips it.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if filters.is_empty() || filters.iter().any(|f| "ratios".contains(f.as_str())) {
        interleaved_ratios();
    }
    if filters.iter().all(|f| f != "ratios") {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
