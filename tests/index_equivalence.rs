//! The three index backends against each other: the in-memory reference,
//! `MdbxSegmentIndex` and `SqliteSegmentIndex` run the same random operation
//! sequences and must give identical results at every step (values equal,
//! errors equal by variant and segment), including after the persistent ones
//! are dropped and reopened from their files. After every step MDBX's own
//! `verify` checks that its secondary tables agree with its entries.

use aof_index_mdbx::MdbxSegmentIndex;
use aof_index_sqlite::SqliteSegmentIndex;
use aof_record::entry::{SegmentEntry, SegmentStatus};
use aof_record::index::{IndexError, IndexResult, MemorySegmentIndex, SegmentIndex};
use proptest::prelude::*;
use proptest::sample::Index;
use std::path::Path;

#[derive(Debug, Clone)]
enum Target {
    /// The n-th entry the reference holds (or a missing id if it is empty).
    Existing(Index),
    /// Any id, usually missing.
    Raw(u64),
}

/// An id to query: near an edge of an entry the reference holds, or any.
#[derive(Debug, Clone)]
enum Probe {
    /// `base_id` (false) or `last_id` (true) of the n-th entry, plus -1, 0 or 1.
    Edge(Index, bool, i8),
    /// Any id.
    Raw(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Add(SegmentEntry),
    AddMany(Vec<SegmentEntry>),
    /// Replace the target with `seed`'s fields (its ids moved to the target's base).
    Update(Target, SegmentEntry),
    Remove(Target),
    Status(Target, SegmentStatus),
    Tail(Target, Option<u64>, u64),
    Get(Target),
    FindId(Probe),
    FindTime(u64, u64),
    All,
    Before(Probe),
    MaxLast,
    Active,
    LatestFinalized,
    Archiving(usize),
    Len,
    Reopen,
}

#[derive(Debug, PartialEq)]
enum Value {
    Unit,
    One(Option<SegmentEntry>),
    Many(Vec<SegmentEntry>),
    Id(Option<u64>),
    Count(usize),
}

/// An error, by variant and the fields that identify the segment.
fn error_key(e: &IndexError) -> String {
    match e {
        IndexError::AlreadyExists { base_id } => format!("AlreadyExists({base_id})"),
        IndexError::NotFound { base_id } => format!("NotFound({base_id})"),
        IndexError::Overlap {
            base_id,
            other_base_id,
        } => format!("Overlap({base_id}, {other_base_id})"),
        IndexError::InvalidEntry(_) => "InvalidEntry".into(),
        IndexError::Transition(t) => format!("Transition({}, {} -> {})", t.base_id, t.from, t.to),
        other => format!("unexpected {other:?}"),
    }
}

fn status() -> impl Strategy<Value = SegmentStatus> {
    proptest::sample::select(SegmentStatus::ALL.to_vec())
}

/// Entries in a small id and time space, so that clashes are common; one in
/// ten breaks the record-count invariant.
fn entry() -> impl Strategy<Value = SegmentEntry> {
    (
        (
            0u64..300,
            0u64..25,
            status(),
            0u64..1000,
            proptest::option::of(0u64..1200),
        ),
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(0u64..5),
            any::<u64>(),
            proptest::option::of("[a-z/]{0,12}"),
            proptest::option::of("[a-z/]{0,12}"),
            0u8..10,
        ),
    )
        .prop_map(
            |((base, count, status, created, fin), (cs, sum, size, path, key, bad))| SegmentEntry {
                base_id: base,
                last_id: if count == 0 { base } else { base + count - 1 },
                record_count: if bad == 0 { count + 1 } else { count },
                status,
                created_at: created,
                finalized_at: fin,
                archived_at: sum,
                uncompressed_checksum: cs,
                compressed_checksum: sum,
                original_size: size,
                compressed_size: cs,
                local_path: path,
                archive_key: key,
            },
        )
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => any::<Index>().prop_map(Target::Existing),
        1 => (0u64..330).prop_map(Target::Raw),
    ]
}

fn probe() -> impl Strategy<Value = Probe> {
    prop_oneof![
        3 => (any::<Index>(), any::<bool>(), -1i8..=1).prop_map(|(i, last, d)| Probe::Edge(i, last, d)),
        1 => (0u64..340).prop_map(Probe::Raw),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => entry().prop_map(Op::Add),
        2 => proptest::collection::vec(entry(), 0..6).prop_map(Op::AddMany),
        3 => (target(), entry()).prop_map(|(t, e)| Op::Update(t, e)),
        2 => target().prop_map(Op::Remove),
        3 => (target(), status()).prop_map(|(t, s)| Op::Status(t, s)),
        3 => (target(), proptest::option::of(0u64..340), any::<u64>()).prop_map(|(t, l, s)| Op::Tail(t, l, s)),
        1 => target().prop_map(Op::Get),
        3 => probe().prop_map(Op::FindId),
        2 => (0u64..1300, 0u64..1300).prop_map(|(a, b)| Op::FindTime(a, b)),
        1 => Just(Op::All),
        2 => probe().prop_map(Op::Before),
        1 => Just(Op::MaxLast),
        1 => Just(Op::Active),
        1 => Just(Op::LatestFinalized),
        1 => (0usize..5).prop_map(Op::Archiving),
        1 => Just(Op::Len),
        1 => Just(Op::Reopen),
    ]
}

fn resolve(reference: &MemorySegmentIndex, t: &Target) -> u64 {
    match t {
        Target::Raw(id) => *id,
        Target::Existing(i) => {
            let all = reference.get_all_segments().unwrap();
            if all.is_empty() {
                1_000_000
            } else {
                all[i.index(all.len())].base_id
            }
        }
    }
}

fn probe_id(reference: &MemorySegmentIndex, p: &Probe) -> u64 {
    match p {
        Probe::Raw(id) => *id,
        Probe::Edge(i, last, delta) => {
            let all = reference.get_all_segments().unwrap();
            if all.is_empty() {
                return 0;
            }
            let e = &all[i.index(all.len())];
            let id = if *last { e.last_id } else { e.base_id };
            id.saturating_add_signed(i64::from(*delta))
        }
    }
}

/// Runs `op`; `base` is its resolved target or probe id.
fn apply(index: &dyn SegmentIndex, op: &Op, base: u64) -> IndexResult<Value> {
    let unit = |r: IndexResult<()>| r.map(|()| Value::Unit);
    match op {
        Op::Add(e) => unit(index.add_entry(e)),
        Op::AddMany(es) => unit(index.add_entries(es)),
        Op::Update(_, seed) => {
            let mut e = seed.clone();
            let span = seed.last_id - seed.base_id;
            e.base_id = base;
            e.last_id = base.saturating_add(span);
            unit(index.update_entry(&e))
        }
        Op::Remove(_) => index.remove_entry(base).map(Value::One),
        Op::Status(_, s) => unit(index.update_segment_status(base, *s)),
        Op::Tail(_, last, size) => unit(index.update_segment_tail(base, *last, *size)),
        Op::Get(_) => index.get_entry(base).map(Value::One),
        Op::FindId(_) => index.find_segment_for_id(base).map(Value::One),
        Op::FindTime(a, b) => index.find_segments_for_timestamp(*a, *b).map(Value::Many),
        Op::All => index.get_all_segments().map(Value::Many),
        Op::Before(_) => index.get_segments_before(base).map(Value::Many),
        Op::MaxLast => index.get_max_last_id().map(Value::Id),
        Op::Active => index.get_active_segment().map(Value::One),
        Op::LatestFinalized => index.get_latest_finalized_segment().map(Value::One),
        Op::Archiving(n) => index.get_segments_for_archiving(*n).map(Value::Many),
        Op::Len => index.len().map(Value::Count),
        Op::Reopen => unit(index.sync()),
    }
}

/// An open persistent backend.
enum Handle {
    Mdbx(MdbxSegmentIndex),
    Sqlite(SqliteSegmentIndex),
}

/// A persistent backend under test: how to open it, and the open handle.
struct Persistent {
    name: &'static str,
    open: fn(&Path) -> Handle,
    path: std::path::PathBuf,
    handle: Option<Handle>,
}

impl Persistent {
    fn new(name: &'static str, open: fn(&Path) -> Handle, path: std::path::PathBuf) -> Self {
        let handle = Some(open(&path));
        Self {
            name,
            open,
            path,
            handle,
        }
    }

    fn reopen(&mut self) {
        drop(self.handle.take());
        self.handle = Some((self.open)(&self.path));
    }

    fn index(&self) -> &dyn SegmentIndex {
        match self.handle.as_ref().expect("open") {
            Handle::Mdbx(i) => i,
            Handle::Sqlite(i) => i,
        }
    }

    /// The backend's own consistency check, where it has one: MDBX's
    /// secondary tables must agree with its entries; returns the entry count.
    fn verify(&self) -> Option<usize> {
        match self.handle.as_ref().expect("open") {
            Handle::Mdbx(i) => Some(i.verify().expect("mdbx verify")),
            Handle::Sqlite(_) => None,
        }
    }
}

fn open_mdbx(p: &Path) -> Handle {
    Handle::Mdbx(MdbxSegmentIndex::open(p).expect("open mdbx"))
}

fn open_sqlite(p: &Path) -> Handle {
    Handle::Sqlite(SqliteSegmentIndex::open(p).expect("open sqlite"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn all_backends_agree(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let reference = MemorySegmentIndex::new();
        let mut backends = [
            Persistent::new("mdbx", open_mdbx, dir.path().join("index.mdbx")),
            Persistent::new("sqlite", open_sqlite, dir.path().join("index.sqlite")),
        ];
        for (step, op) in ops.iter().enumerate() {
            let target = match op {
                Op::Update(t, _) | Op::Remove(t) | Op::Status(t, _) | Op::Tail(t, ..) | Op::Get(t) => {
                    resolve(&reference, t)
                }
                Op::FindId(p) | Op::Before(p) => probe_id(&reference, p),
                _ => 0,
            };
            let want = apply(&reference, op, target).map_err(|e| error_key(&e));
            for b in &mut backends {
                if matches!(op, Op::Reopen) {
                    b.reopen();
                }
                let got = apply(b.index(), op, target).map_err(|e| error_key(&e));
                prop_assert_eq!(&got, &want, "{} at step {}: {:?} (target {})", b.name, step, op, target);
                if let Some(n) = b.verify() {
                    prop_assert_eq!(n, reference.len().unwrap(), "{} verify at step {}", b.name, step);
                }
            }
        }
        let want = reference.get_all_segments().unwrap();
        for b in &mut backends {
            b.reopen();
            prop_assert_eq!(&b.index().get_all_segments().unwrap(), &want, "{} after the last reopen", b.name);
        }
    }
}
