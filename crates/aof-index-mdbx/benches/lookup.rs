//! `MdbxSegmentIndex` against raw libmdbx on the same data file.
//!
//! * `insert`: one `add_entries` batch of 10 000 entries (one write
//!   transaction, with every check) vs raw puts of the same encoded entries in
//!   one write transaction.
//! * `lookup`: `find_segment_for_id` (and `get_entry`) of random ids over
//!   100 000 segments vs raw floor seeks (`set_upperbound`) and exact-key gets
//!   on the same table: inside one long read transaction (the engine's
//!   ceiling, the baseline of the targets), and with a read transaction per
//!   lookup.
//!
//! Run: `cargo bench -p aof-index-mdbx --bench lookup`. Compare the medians
//! of one run: ratio = raw time / index time.

use aof_index_mdbx::MdbxSegmentIndex;
use aof_record::entry::SegmentEntry;
use aof_record::index::SegmentIndex;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use libmdbx::{Database, DatabaseOptions, NoWriteMap, WriteFlags};
use std::borrow::Cow;
use std::hint::black_box;
use std::path::Path;

const SEGMENTS: u64 = 100_000;
const IDS_PER_SEGMENT: u64 = 100;
const BATCH: u64 = 10_000;

fn entry(i: u64) -> SegmentEntry {
    let base = i * IDS_PER_SEGMENT;
    SegmentEntry::new_active(base, 1_700_000_000_000_000 + i * 1000, format!("{base:020}.seg"))
        .finalize(
            Some(base + IDS_PER_SEGMENT - 1),
            1 << 20,
            i,
            1_700_000_000_000_000 + i * 1000 + 999,
        )
        .expect("an active entry finalizes")
}

/// Deterministic pseudo-random ids over the whole id range (xorshift).
fn random_ids(n: usize) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % (SEGMENTS * IDS_PER_SEGMENT)
        })
        .collect()
}

fn raw_env(path: &Path) -> Database<NoWriteMap> {
    Database::open_with_options(
        path,
        DatabaseOptions {
            no_sub_dir: true,
            max_tables: Some(8),
            ..DatabaseOptions::default()
        },
    )
    .expect("raw open")
}

fn insert(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<SegmentEntry> = (0..BATCH).map(entry).collect();
    // The encoded values, read back raw from an index that holds them.
    let sample = dir.path().join("sample.mdbx");
    MdbxSegmentIndex::open(&sample)
        .unwrap()
        .add_entries(&entries)
        .unwrap();
    let values: Vec<(Vec<u8>, Vec<u8>)> = {
        let env = raw_env(&sample);
        let txn = env.begin_ro_txn().unwrap();
        let table = txn.open_table(Some("aof.entries")).unwrap();
        let mut cursor = txn.cursor(&table).unwrap();
        cursor
            .iter_start::<Vec<u8>, Vec<u8>>()
            .map(|r| r.unwrap())
            .collect()
    };
    let mut n = 0u64;
    let mut fresh = |name: &str| {
        n += 1;
        dir.path().join(format!("{name}-{n}.mdbx"))
    };
    let mut g = c.benchmark_group("insert");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    g.bench_function("raw_put_one_txn", |b| {
        b.iter_batched(
            || {
                let env = raw_env(&fresh("raw"));
                let txn = env.begin_rw_txn().unwrap();
                txn.create_table(Some("t"), Default::default()).unwrap();
                txn.commit().unwrap();
                env
            },
            |env| {
                let txn = env.begin_rw_txn().unwrap();
                let table = txn.open_table(Some("t")).unwrap();
                for (k, v) in &values {
                    txn.put(&table, k, v, WriteFlags::empty()).unwrap();
                }
                txn.commit().unwrap();
                env
            },
            BatchSize::PerIteration,
        );
    });
    g.bench_function("add_entries", |b| {
        b.iter_batched(
            || MdbxSegmentIndex::open(fresh("index")).unwrap(),
            |index| {
                index.add_entries(black_box(&entries)).unwrap();
                index
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    {
        let index = MdbxSegmentIndex::open(&path).unwrap();
        let all: Vec<SegmentEntry> = (0..SEGMENTS).map(entry).collect();
        index.add_entries(&all).unwrap();
        index.sync().unwrap();
    }
    let ids = random_ids(4096);
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    {
        let env = raw_env(&path);
        let mut i = 0usize;
        // The engine's ceiling: one read transaction and one cursor for the
        // whole run (how the 1.6M floor lookups/s of LIMITS.md are measured).
        let txn = env.begin_ro_txn().unwrap();
        let table = txn.open_table(Some("aof.entries")).unwrap();
        let mut cursor = txn.cursor(&table).unwrap();
        g.bench_function("raw_floor_one_txn", |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                let row = cursor
                    .set_upperbound::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&ids[i].to_be_bytes())
                    .unwrap();
                black_box(row.map(|(_, v)| v.len()))
            });
        });
        g.bench_function("raw_get_one_txn", |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                let key = ids[i] / IDS_PER_SEGMENT * IDS_PER_SEGMENT;
                let v: Option<Cow<'_, [u8]>> = txn.get(&table, key.to_be_bytes()).unwrap();
                black_box(v.map(|v| v.len()))
            });
        });
        drop(cursor);
        drop(txn);
        // What a lookup costs with a fresh read transaction each time.
        g.bench_function("raw_floor_txn_each", |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                let txn = env.begin_ro_txn().unwrap();
                let table = txn.open_table(Some("aof.entries")).unwrap();
                let mut cursor = txn.cursor(&table).unwrap();
                let row = cursor
                    .set_upperbound::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&ids[i].to_be_bytes())
                    .unwrap();
                black_box(row.map(|(_, v)| v.len()))
            });
        });
    }
    {
        let index = MdbxSegmentIndex::open(&path).unwrap();
        let mut i = 0usize;
        g.bench_function("find_segment_for_id", |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                black_box(index.find_segment_for_id(ids[i]).unwrap())
            });
        });
        g.bench_function("get_entry", |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                let key = ids[i] / IDS_PER_SEGMENT * IDS_PER_SEGMENT;
                black_box(index.get_entry(key).unwrap())
            });
        });
    }
    g.finish();
}

/// Median of `xs` (sorted in place).
fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Index and raw lookups measured in alternating rounds, so that the load of
/// a shared machine hits both alike; prints the medians and their ratios, for
/// a hot working set (1024 distinct ids, a few hundred pages: the recent
/// segments an engine mostly asks for) and a wide one (ids spread over all
/// 100 000 segments: every lookup misses the TLB on this VM).
fn interleaved(_: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    let copy = dir.path().join("copy.mdbx");
    let built = MdbxSegmentIndex::open(&path).unwrap();
    let all: Vec<SegmentEntry> = (0..SEGMENTS).map(entry).collect();
    built.add_entries(&all).unwrap();
    // The index holds its file exclusively: each side reads its own compacted
    // copy, so both walk B-trees of the same shape.
    let index_copy = dir.path().join("index-copy.mdbx");
    built.copy_to(&copy).unwrap();
    built.copy_to(&index_copy).unwrap();
    drop(built);
    let index = MdbxSegmentIndex::open(&index_copy).unwrap();
    let env = raw_env(&copy);
    let hot: Vec<u64> = random_ids(1024).into_iter().cycle().take(20_000).collect();
    for (label, ids) in [("hot", hot), ("wide", random_ids(20_000))] {
        measure_interleaved(label, &ids, &env, &index);
    }
}

fn measure_interleaved(label: &str, ids: &[u64], env: &Database<NoWriteMap>, index: &MdbxSegmentIndex) {
    const ROUNDS: usize = 21;
    let (mut one_txn, mut txn_each, mut find) = (Vec::new(), Vec::new(), Vec::new());
    let mut cursor_each = Vec::new();
    let per_op = |start: std::time::Instant| start.elapsed().as_nanos() as f64 / ids.len() as f64;
    for _ in 0..ROUNDS {
        let start = std::time::Instant::now();
        {
            let txn = env.begin_ro_txn().unwrap();
            let table = txn.open_table(Some("aof.entries")).unwrap();
            let mut cursor = txn.cursor(&table).unwrap();
            for id in ids {
                let row = cursor
                    .set_upperbound::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&id.to_be_bytes())
                    .unwrap();
                black_box(row.map(|(_, v)| v.len()));
            }
        }
        one_txn.push(per_op(start));
        let start = std::time::Instant::now();
        {
            let txn = env.begin_ro_txn().unwrap();
            let table = txn.open_table(Some("aof.entries")).unwrap();
            for id in ids {
                let mut cursor = txn.cursor(&table).unwrap();
                let row = cursor
                    .set_upperbound::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&id.to_be_bytes())
                    .unwrap();
                black_box(row.map(|(_, v)| v.len()));
            }
        }
        cursor_each.push(per_op(start));
        let start = std::time::Instant::now();
        for id in ids {
            let txn = env.begin_ro_txn().unwrap();
            let table = txn.open_table(Some("aof.entries")).unwrap();
            let mut cursor = txn.cursor(&table).unwrap();
            let row = cursor
                .set_upperbound::<Cow<'_, [u8]>, Cow<'_, [u8]>>(&id.to_be_bytes())
                .unwrap();
            black_box(row.map(|(_, v)| v.len()));
        }
        txn_each.push(per_op(start));
        let start = std::time::Instant::now();
        for id in ids {
            black_box(index.find_segment_for_id(*id).unwrap());
        }
        find.push(per_op(start));
    }
    let (one_txn, txn_each, find) = (median(&mut one_txn), median(&mut txn_each), median(&mut find));
    let cursor_each = median(&mut cursor_each);
    let rate = |ns: f64| 1e3 / ns;
    println!(
        "interleaved medians, {label} working set, {ROUNDS} rounds of {} lookups:",
        ids.len()
    );
    println!(
        "  raw floor, one read txn:     {one_txn:8.0} ns  {:.2} M/s",
        rate(one_txn)
    );
    println!(
        "  raw floor, one txn, cursor each: {cursor_each:5.0} ns  {:.2} M/s",
        rate(cursor_each)
    );
    println!(
        "  raw floor, read txn each:    {txn_each:8.0} ns  {:.2} M/s",
        rate(txn_each)
    );
    println!(
        "  find_segment_for_id:         {find:8.0} ns  {:.2} M/s",
        rate(find)
    );
    println!(
        "  ratio find / raw one txn: {:.2}; find / raw txn each: {:.2}",
        one_txn / find,
        txn_each / find
    );
}

criterion_group!(benches, interleaved, lookup, insert);
criterion_main!(benches);
