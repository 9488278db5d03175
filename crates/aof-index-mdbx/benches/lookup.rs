//! `MdbxSegmentIndex` against raw libmdbx on the same data file.
//!
//! * `insert`: one `add_entries` batch of 10 000 entries (one write
//!   transaction, with every check) vs raw puts of the same encoded entries in
//!   one write transaction.
//! * `lookup`: `find_segment_for_id` of random ids over 100 000 segments vs a
//!   raw read transaction + floor seek (`set_upperbound`) on the same table,
//!   and a raw exact-key `get`. Each raw lookup opens its own read transaction,
//!   as `find_segment_for_id` does.
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
        g.bench_function("raw_floor", |b| {
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
        g.bench_function("raw_get", |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                let key = ids[i] / IDS_PER_SEGMENT * IDS_PER_SEGMENT;
                let txn = env.begin_ro_txn().unwrap();
                let table = txn.open_table(Some("aof.entries")).unwrap();
                let v: Option<Cow<'_, [u8]>> = txn.get(&table, key.to_be_bytes()).unwrap();
                black_box(v.map(|v| v.len()))
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

criterion_group!(benches, lookup, insert);
criterion_main!(benches);
