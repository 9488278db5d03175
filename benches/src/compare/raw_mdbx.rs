//! The MDBX baseline: plain libmdbx on a separate environment opened with
//! the index's settings (`MDBX_SAFE_NOSYNC`, small geometry growing by
//! 1 MiB), holding the same three tables and the same encoded rows, which
//! are read back raw from an index that wrote them. It does the index's
//! operations as plain cursor seeks and puts, without its checks, decoding,
//! transaction pool or write generations. Like the index, every read hands
//! back owned bytes (copied out of the map) rather than a view into it.
//!
//! Single-threaded lookups run inside one read transaction per round (the
//! engine's ceiling, as in `LIMITS.md`). Concurrent readers keep their read
//! transaction until the writer has committed again, then begin a new one:
//! the plain way to see every write that returned before the read began.

use super::data::{Cycle, Dataset, SPAN, TICK};
use super::measure::{Lane, Limits, Round, Sampler, concurrent, timed, until_stopped};
use super::{Baseline, Res};
use aof_index_mdbx::MdbxSegmentIndex;
use aof_record::SegmentIndex;
use libmdbx::{
    Database, DatabaseOptions, Mode, NoWriteMap, RO, ReadWriteOptions, SyncMode, TableFlags, Transaction,
    WriteFlags,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const ENTRIES: &str = "aof.entries";
const BY_STATUS: &str = "aof.by_status";
const BY_TIME: &str = "aof.by_time";
const TABLES: [&str; 3] = [ENTRIES, BY_STATUS, BY_TIME];
/// The longest `finalized_at - created_at` in the data set.
const MAX_SPAN: u64 = TICK - 1;
const STATUS_ACTIVE: u8 = 1;
const STATUS_FINALIZED: u8 = 2;

type Env = Database<NoWriteMap>;
type Bytes<'t> = Cow<'t, [u8]>;

/// The rows the index writes for each entry of a [`Dataset`], in the same
/// order: `(table, key, value)`, table an index into `aof.entries`,
/// `aof.by_status`, `aof.by_time`.
#[derive(Debug)]
pub struct Encoded {
    rows: Vec<Vec<Row>>,
}

/// `(table, key, value)`.
type Row = (usize, Vec<u8>, Vec<u8>);

impl Encoded {
    /// Lets an [`MdbxSegmentIndex`] at `scratch` write every entry of
    /// `data`, then reads its tables back raw and removes the file.
    pub fn build(data: &Dataset, scratch: &Path) -> Res<Self> {
        {
            let index = MdbxSegmentIndex::open(scratch)?;
            index.add_entries(&data.all)?;
            index.sync()?;
        }
        let by_base: HashMap<u64, usize> = data.all.iter().enumerate().map(|(i, e)| (e.base_id, i)).collect();
        let mut rows = vec![Vec::with_capacity(3); data.all.len()];
        {
            let env = open_env(scratch)?;
            let txn = env.begin_ro_txn()?;
            for (t, name) in TABLES.iter().enumerate() {
                let table = txn.open_table(Some(name))?;
                let mut cursor = txn.cursor(&table)?;
                for row in cursor.iter_start::<Vec<u8>, Vec<u8>>() {
                    let (k, v) = row?;
                    let tail: [u8; 8] = k
                        .get(k.len().saturating_sub(8)..)
                        .and_then(|b| b.try_into().ok())
                        .ok_or("short key")?;
                    let i = *by_base
                        .get(&u64::from_be_bytes(tail))
                        .ok_or("row of an unknown entry")?;
                    rows[i].push((t, k, v));
                }
            }
        }
        for p in [scratch.to_owned(), super::with_suffix(scratch, "-lck")] {
            let _ = std::fs::remove_file(p);
        }
        if rows.iter().any(|r| r.len() != 3) {
            return Err("expected three rows per entry".into());
        }
        Ok(Self { rows })
    }
}

fn open_env(path: &Path) -> Res<Env> {
    Ok(Env::open_with_options(
        path,
        DatabaseOptions {
            no_sub_dir: true,
            max_tables: Some(8),
            mode: Mode::ReadWrite(ReadWriteOptions {
                sync_mode: SyncMode::SafeNoSync,
                min_size: Some(0),
                max_size: Some(64 << 30),
                growth_step: Some(1 << 20),
                shrink_threshold: Some(4 << 20),
            }),
            ..DatabaseOptions::default()
        },
    )?)
}

fn be(bytes: &[u8], at: usize) -> Res<u64> {
    Ok(u64::from_be_bytes(
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or("short row")?,
    ))
}

/// The 8 key bytes at `at` of a row key, copied out of the map: handing
/// libmdbx a key that points into its own map makes the lookup several
/// times slower (about 2 µs instead of 0.3 µs here), and the index does not
/// do it either (it decodes the id and encodes a fresh key).
fn key_at(bytes: &[u8], at: usize) -> Res<[u8; 8]> {
    Ok(bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or("short key")?)
}

fn le(bytes: &[u8], at: usize) -> Res<u64> {
    Ok(u64::from_le_bytes(
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or("short row")?,
    ))
}

/// One floor seek: the value of the segment holding `id`, checked to hold it,
/// copied out of the map. `find_segment_for_id` returns an owned entry, so
/// the raw lookup owns its answer too, as the other raw reads here do
/// (`into_owned`); it does not decode it.
fn floor(cursor: &mut libmdbx::Cursor<'_, RO>, id: u64) -> Res<Vec<u8>> {
    let (_, v) = cursor
        .set_upperbound::<Bytes<'_>, Bytes<'_>>(&id.to_be_bytes())?
        .ok_or("raw lookup missed")?;
    // Layout v1: last_id at offset 12, little-endian.
    if le(&v, 12)? < id {
        return Err("raw lookup missed".into());
    }
    Ok(v.into_owned())
}

/// A raw libmdbx environment with the index's tables.
#[derive(Debug)]
pub struct RawMdbx {
    env: Env,
    path: PathBuf,
    /// Commits by [`RawMdbx`]'s writers so far: readers renew their
    /// transaction when it moves.
    commits: AtomicU64,
}

impl RawMdbx {
    /// Rewrites the tail of the active entry in place, in one write
    /// transaction (layout v1: `last_id` at 12, `record_count` at 20,
    /// `original_size` at 36).
    fn set_tail(&self, base: u64, k: u64) -> Res<()> {
        let txn = self.env.begin_rw_txn()?;
        let table = txn.open_table(Some(ENTRIES))?;
        let key = base.to_be_bytes();
        let mut v: Vec<u8> = txn.get(&table, key)?.ok_or("raw: no active entry")?;
        if v.len() < 44 {
            return Err("short row".into());
        }
        let last = base + k % SPAN;
        v[12..20].copy_from_slice(&last.to_le_bytes());
        v[20..28].copy_from_slice(&(last - base + 1).to_le_bytes());
        v[36..44].copy_from_slice(&(4096 + k).to_le_bytes());
        txn.put(&table, key, &v, WriteFlags::empty())?;
        txn.commit()?;
        self.commits.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn put_rows(&self, ctx: &Encoded, range: std::ops::Range<usize>) -> Res<()> {
        let txn = self.env.begin_rw_txn()?;
        let tables = [
            txn.open_table(Some(ENTRIES))?,
            txn.open_table(Some(BY_STATUS))?,
            txn.open_table(Some(BY_TIME))?,
        ];
        for rows in &ctx.rows[range] {
            for (t, k, v) in rows {
                txn.put(&tables[*t], k, v, WriteFlags::empty())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn ro(&self) -> Res<Transaction<'_, RO, NoWriteMap>> {
        Ok(self.env.begin_ro_txn()?)
    }
}

impl Baseline for RawMdbx {
    type Ctx = Encoded;
    const LABEL: &'static str = "raw libmdbx";

    fn create(path: &Path, _: &Encoded, _: &Dataset) -> Res<Self> {
        let env = open_env(path)?;
        let txn = env.begin_rw_txn()?;
        for name in TABLES {
            txn.create_table(Some(name), TableFlags::empty())?;
        }
        txn.commit()?;
        Ok(Self {
            env,
            path: path.to_owned(),
            commits: AtomicU64::new(0),
        })
    }

    fn insert_batch(&self, _: &Dataset, ctx: &Encoded, range: std::ops::Range<usize>) -> Res<()> {
        self.put_rows(ctx, range)
    }

    fn insert_one(&self, _: &Dataset, ctx: &Encoded, i: usize) -> Res<()> {
        self.put_rows(ctx, i..i + 1)
    }

    fn lookup_round(&self, ids: &[u64], offset: usize, limits: Limits) -> Res<Round> {
        let txn = self.ro()?;
        let table = txn.open_table(Some(ENTRIES))?;
        let mut cursor = txn.cursor(&table)?;
        let mut ids = Cycle::new(ids, offset);
        timed(limits, &mut || {
            black_box(floor(&mut cursor, ids.next_item())?);
            Ok(1)
        })
    }

    fn time_round(&self, windows: &[(u64, u64)], offset: usize, limits: Limits) -> Res<Round> {
        let txn = self.ro()?;
        let entries = txn.open_table(Some(ENTRIES))?;
        let by_time = txn.open_table(Some(BY_TIME))?;
        let mut cursor = txn.cursor(&by_time)?;
        let mut windows = Cycle::new(windows, offset);
        timed(limits, &mut || {
            let (start, end) = windows.next_item();
            let limit = end.saturating_add(MAX_SPAN);
            let mut out: Vec<Vec<u8>> = Vec::new();
            let mut from = [0u8; 16];
            from[..8].copy_from_slice(&start.to_be_bytes());
            // The closed rows that may overlap (end time in start..=end + max
            // span), then the open-ended ones (end time u64::MAX).
            let mut scans = vec![(from, limit)];
            if limit < u64::MAX {
                let mut open = [0u8; 16];
                open[..8].fill(0xff);
                scans.push((open, u64::MAX));
            }
            for (seek, bound) in scans {
                let mut row = cursor.set_range::<Bytes<'_>, Bytes<'_>>(&seek)?;
                while let Some((k, v)) = row {
                    if be(&k, 0)? > bound {
                        break;
                    }
                    if be(&v, 0)? <= end {
                        let e: Bytes<'_> = txn.get(&entries, key_at(&k, 8)?)?.ok_or("dangling time row")?;
                        out.push(e.into_owned());
                    }
                    row = cursor.next::<Bytes<'_>, Bytes<'_>>()?;
                }
            }
            black_box(out);
            Ok(1)
        })
    }

    fn active_round(&self, limits: Limits) -> Res<Round> {
        let txn = self.ro()?;
        let entries = txn.open_table(Some(ENTRIES))?;
        let by_status = txn.open_table(Some(BY_STATUS))?;
        let mut cursor = txn.cursor(&by_status)?;
        let mut last = [0xffu8; 9];
        last[0] = STATUS_ACTIVE;
        timed(limits, &mut || {
            let (k, ()) = cursor
                .set_upperbound::<Bytes<'_>, ()>(&last)?
                .ok_or("raw: no active segment")?;
            if k.first() != Some(&STATUS_ACTIVE) {
                return Err("raw: no active segment".into());
            }
            let e: Bytes<'_> = txn.get(&entries, key_at(&k, 1)?)?.ok_or("dangling status row")?;
            black_box(e.into_owned());
            Ok(1)
        })
    }

    fn archiving_round(&self, count: usize, limits: Limits) -> Res<Round> {
        let txn = self.ro()?;
        let entries = txn.open_table(Some(ENTRIES))?;
        let by_status = txn.open_table(Some(BY_STATUS))?;
        let mut cursor = txn.cursor(&by_status)?;
        timed(limits, &mut || {
            let mut out: Vec<Vec<u8>> = Vec::with_capacity(count);
            let mut row = cursor.set_range::<Bytes<'_>, ()>(&[STATUS_FINALIZED])?;
            while let Some((k, ())) = row {
                if k.first() != Some(&STATUS_FINALIZED) || out.len() == count {
                    break;
                }
                let e: Bytes<'_> = txn.get(&entries, key_at(&k, 1)?)?.ok_or("dangling status row")?;
                out.push(e.into_owned());
                row = cursor.next::<Bytes<'_>, ()>()?;
            }
            black_box(out);
            Ok(1)
        })
    }

    fn concurrent_round(&self, readers: usize, ids: &[u64], active: u64, duration: Duration) -> Res<Round> {
        let reader = |r: usize, gate: &Barrier, stop: &AtomicBool| -> Lane {
            gate.wait();
            let mut s = Sampler::new();
            let mut ids = Cycle::new(ids, r * 7919);
            'renew: while !stop.load(Ordering::Relaxed) {
                let seen = self.commits.load(Ordering::Acquire);
                let txn = self.ro()?;
                let table = txn.open_table(Some(ENTRIES))?;
                let mut cursor = txn.cursor(&table)?;
                while !stop.load(Ordering::Relaxed) {
                    if self.commits.load(Ordering::Acquire) != seen {
                        continue 'renew;
                    }
                    black_box(floor(&mut cursor, ids.next_item())?);
                    s.tick(1);
                }
            }
            Ok((s.units, s.samples))
        };
        let writer = |gate: &Barrier, stop: &AtomicBool| -> Lane {
            gate.wait();
            let mut k = 0u64;
            until_stopped(stop, &mut || {
                k += 1;
                self.set_tail(active, k)
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
            self.set_tail(active, k)?;
            s.begin();
            self.env.sync(true)?;
            s.tick(1);
        }
        Ok(Round::from_sampler(s))
    }

    fn settle(&self) -> Res<()> {
        self.env.sync(true)?;
        Ok(())
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}
