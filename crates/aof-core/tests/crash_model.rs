//! The crash model tested on its own: each crash mode loses exactly what it
//! should, every failing operation kind fails, crash points can be any
//! operation, and a sweep tells a missing fsync apart (under a power loss,
//! not under `kill -9`).

use aof_core::testing::{
    CrashMode, CrashPoints, Crashed, DirOp, FaultyFileSystem, InjectedFault, OpCounting, OpKind, Sweep,
};
use aof_core::{FileHandle, FileSystem, OpenMode};
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SEEDS: u64 = 256;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// A durable file `path` in durable directory `/d` holding `data`.
fn durable_file(fs: &FaultyFileSystem, path: &str, data: &[u8]) -> Arc<dyn FileHandle> {
    fs.create_dir_all(Path::new("/d")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let f = fs.open(&p(path), OpenMode::CreateNew).unwrap();
    f.write_all_at(data, 0).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    f
}

fn writeback(fs: &FaultyFileSystem, seed: u64) -> FaultyFileSystem {
    fs.crash_image(CrashMode::Writeback { seed })
}

fn read(fs: &FaultyFileSystem, path: &str) -> Option<Vec<u8>> {
    fs.read_file(&p(path))
}

fn every_mode() -> Vec<CrashMode> {
    let mut modes = vec![
        CrashMode::LoseUnsynced,
        CrashMode::TearLastWrite,
        CrashMode::GarbageLastWrite,
        CrashMode::ProcessKill,
    ];
    modes.extend((0..32).map(|seed| CrashMode::TornWrite { seed }));
    modes.extend((0..SEEDS).map(|seed| CrashMode::Writeback { seed }));
    modes
}

#[test]
fn synced_data_survives_every_mode() {
    let fs = FaultyFileSystem::new();
    let synced: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let f = durable_file(&fs, "/d/a", &synced);
    // Unsynced: an append, a new file, a rename of it; then a crash in a write.
    f.write_all_at(&[0xbb; 3000], 5000).unwrap();
    let g = fs.open(&p("/d/b"), OpenMode::CreateNew).unwrap();
    g.write_all_at(b"unsynced", 0).unwrap();
    fs.rename(&p("/d/b"), &p("/d/c")).unwrap();
    fs.crash_at(0);
    assert!(f.write_all_at(&[0xcc; 700], 8000).is_err());
    let mut lengths = BTreeSet::new();
    for mode in every_mode() {
        let img = fs.crash_image(mode);
        let a = read(&img, "/d/a").unwrap_or_else(|| panic!("{mode:?}: the synced file is gone"));
        assert_eq!(&a[..5000], &synced[..], "{mode:?}: synced bytes changed");
        if let CrashMode::Writeback { .. } = mode {
            lengths.insert(a.len());
        }
    }
    // Durable 5000; the torn live length 8000 (nothing of the interrupted
    // write), 8192 (cut at a sector) or 8700; a page boundary between: 8192.
    assert_eq!(lengths, BTreeSet::from([5000, 8000, 8192, 8700]));
}

#[test]
fn writeback_keeps_any_subset_of_dirty_pages() {
    let fs = FaultyFileSystem::new();
    let f = durable_file(&fs, "/d/a", &[b'o'; 3 * 4096]);
    assert!(fs.dirty_pages(&p("/d/a")).is_empty());
    f.write_all_at(&[b'n'; 3 * 4096], 0).unwrap();
    assert_eq!(fs.dirty_pages(&p("/d/a")), vec![0, 1, 2]);
    let mut seen = BTreeSet::new();
    for seed in 0..SEEDS {
        let a = read(&writeback(&fs, seed), "/d/a").unwrap();
        assert_eq!(a.len(), 3 * 4096, "seed {seed}");
        let pages: Vec<bool> = a
            .chunks(4096)
            .map(|page| match page {
                _ if page.iter().all(|b| *b == b'n') => true,
                _ if page.iter().all(|b| *b == b'o') => false,
                _ => panic!("seed {seed}: a page mixes old and new bytes"),
            })
            .collect();
        seen.insert(pages);
    }
    // All 8 subsets, so both "page 2 written back but not page 1" and the converse.
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(seen.contains(&vec![false, false, true]) && seen.contains(&vec![true, true, false]));
    assert_eq!(
        read(&fs.crash_image(CrashMode::LoseUnsynced), "/d/a").unwrap(),
        vec![b'o'; 3 * 4096]
    );
    assert_eq!(
        read(&fs.crash_image(CrashMode::ProcessKill), "/d/a").unwrap(),
        vec![b'n'; 3 * 4096]
    );
    // After a sync nothing is left to choose.
    f.sync_data().unwrap();
    for seed in 0..16 {
        assert_eq!(read(&writeback(&fs, seed), "/d/a").unwrap(), vec![b'n'; 3 * 4096]);
    }
}

#[test]
fn a_grown_file_ends_at_a_page_boundary_and_may_hold_a_hole() {
    let fs = FaultyFileSystem::new();
    let f = durable_file(&fs, "/d/a", &[b'o'; 1000]);
    f.write_all_at(&[b'n'; 9000], 1000).unwrap();
    let live = read(&fs, "/d/a").unwrap();
    let mut lengths = BTreeSet::new();
    let mut hole_then_data = false;
    for seed in 0..SEEDS {
        let a = read(&writeback(&fs, seed), "/d/a").unwrap();
        lengths.insert(a.len());
        assert_eq!(&a[..1000], &[b'o'; 1000][..], "seed {seed}");
        for (i, page) in a.chunks(4096).enumerate() {
            let new = &live[i * 4096..(i * 4096 + page.len()).min(live.len())];
            let mut old = vec![0u8; page.len()];
            if i == 0 {
                old[..1000].fill(b'o');
            }
            assert!(
                page == new || page == &old[..],
                "seed {seed}: page {i} is neither old nor new"
            );
        }
        hole_then_data |= a.len() == 10_000
            && a[4096..8192].iter().all(|b| *b == 0)
            && a[8192..].iter().all(|b| *b == b'n');
    }
    assert_eq!(lengths, BTreeSet::from([1000, 4096, 8192, 10_000]));
    assert!(hole_then_data, "no seed wrote back page 2 but not page 1");
    // By hand: exactly that image.
    let img = fs
        .crash_builder()
        .length("/d/a", 10_000)
        .page("/d/a", 0, true)
        .page("/d/a", 1, false)
        .page("/d/a", 2, true)
        .build();
    let a = read(&img, "/d/a").unwrap();
    assert_eq!(&a[..4096], &live[..4096]);
    assert!(a[4096..8192].iter().all(|b| *b == 0));
    assert_eq!(&a[8192..], &live[8192..]);
}

/// What a crash in a `len`-byte write at `offset` into a durable 2000-byte
/// file of `o`s leaves: the set of kept prefix lengths over `modes`.
fn torn_prefixes(offset: u64, len: usize, modes: &[CrashMode]) -> BTreeSet<usize> {
    let fs = FaultyFileSystem::new();
    let f = durable_file(&fs, "/d/a", &[b'o'; 2000]);
    let index = fs.ops();
    fs.crash_at(0);
    let err = f.write_all_at(&vec![b'n'; len], offset).unwrap_err();
    assert_eq!(
        err.get_ref().and_then(|e| e.downcast_ref::<Crashed>()),
        Some(&Crashed {
            index,
            kind: OpKind::Write
        })
    );
    let at = offset as usize;
    modes
        .iter()
        .map(|mode| {
            let a = read(&fs.crash_image(*mode), "/d/a").unwrap();
            assert_eq!(a.len(), 2000, "{mode:?}");
            let kept = a[at..at + len].iter().take_while(|b| **b == b'n').count();
            assert!(
                a[at + kept..at + len].iter().all(|b| *b == b'o'),
                "{mode:?}: not a prefix"
            );
            assert!(
                a[..at].iter().chain(&a[at + len..]).all(|b| *b == b'o'),
                "{mode:?}: bytes outside the write changed"
            );
            kept
        })
        .collect()
}

#[test]
fn a_torn_write_keeps_a_prefix_up_to_a_sector_boundary_of_the_file() {
    let seeded: Vec<CrashMode> = (0..64)
        .map(|seed| CrashMode::TornWrite { seed })
        .chain((0..SEEDS).map(|seed| CrashMode::Writeback { seed }))
        .collect();
    // Inside one sector: all or nothing.
    assert_eq!(torn_prefixes(200, 100, &seeded), BTreeSet::from([0, 100]));
    // Across the boundary at 512: also up to it (62 bytes).
    assert_eq!(torn_prefixes(450, 100, &seeded), BTreeSet::from([0, 62, 100]));
    // 1500 bytes at 100: cuts at 512, 1024, 1536 too.
    assert_eq!(
        torn_prefixes(100, 1500, &seeded),
        BTreeSet::from([0, 412, 924, 1436, 1500])
    );
    // TearLastWrite: the last cut at or before the middle.
    let tear = [CrashMode::TearLastWrite];
    assert_eq!(torn_prefixes(450, 100, &tear), BTreeSet::from([0]));
    assert_eq!(torn_prefixes(480, 100, &tear), BTreeSet::from([32]));
    assert_eq!(torn_prefixes(100, 1500, &tear), BTreeSet::from([412]));
    // Neither a kill nor the loss of unsynced data keeps any of it.
    let none = [CrashMode::ProcessKill, CrashMode::LoseUnsynced];
    assert_eq!(torn_prefixes(450, 100, &none), BTreeSet::from([0]));
}

#[test]
fn garbage_fills_exactly_the_interrupted_write() {
    let fs = FaultyFileSystem::new();
    let f = durable_file(&fs, "/d/a", &[b'o'; 2000]);
    fs.crash_at(0);
    assert!(f.write_all_at(&[b'n'; 300], 600).is_err());
    let a = read(&fs.crash_image(CrashMode::GarbageLastWrite), "/d/a").unwrap();
    assert!(a[..600].iter().chain(&a[900..]).all(|b| *b == b'o'));
    let g = &a[600..900];
    assert!(g.iter().any(|b| *b != b'o') && g.iter().any(|b| *b != b'n'));
}

/// The names in `/d` and the content of each.
fn names(fs: &FaultyFileSystem) -> Vec<(String, Vec<u8>)> {
    fs.list(Path::new("/d"))
        .unwrap()
        .into_iter()
        .map(|n| {
            let data = fs.read_file(&Path::new("/d").join(&n)).unwrap();
            (n, data)
        })
        .collect()
}

fn named(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    list.iter().map(|(n, d)| ((*n).to_owned(), d.to_vec())).collect()
}

#[test]
fn an_unsynced_rename_is_atomic_and_may_be_lost() {
    let fs = FaultyFileSystem::new();
    durable_file(&fs, "/d/final", b"old");
    let t = fs.open(&p("/d/tmp"), OpenMode::CreateNew).unwrap();
    t.write_all_at(b"new", 0).unwrap();
    t.sync_data().unwrap();
    fs.rename(&p("/d/tmp"), &p("/d/final")).unwrap();
    assert_eq!(
        fs.pending_dir_ops(),
        vec![
            DirOp::Create { path: p("/d/tmp") },
            DirOp::Rename {
                from: p("/d/tmp"),
                to: p("/d/final")
            }
        ]
    );
    let renamed = named(&[("final", b"new")]);
    let not_renamed = named(&[("final", b"old"), ("tmp", b"new")]);
    let neither = named(&[("final", b"old")]);
    let seen: BTreeSet<_> = (0..SEEDS).map(|seed| names(&writeback(&fs, seed))).collect();
    assert_eq!(
        seen,
        BTreeSet::from([renamed.clone(), not_renamed.clone(), neither.clone()])
    );
    // By hand: the creation persisted, the rename not.
    let img = fs.crash_builder().dir_op(0, true).dir_op(1, false).build();
    assert_eq!(names(&img), not_renamed);
    assert_eq!(names(&fs.crash_image(CrashMode::LoseUnsynced)), neither);
    assert_eq!(names(&fs.crash_image(CrashMode::ProcessKill)), renamed);
    fs.sync_dir(Path::new("/d")).unwrap();
    assert!(fs.pending_dir_ops().is_empty());
    for seed in 0..16 {
        assert_eq!(names(&writeback(&fs, seed)), renamed);
    }
}

#[test]
fn a_removed_but_unsynced_file_may_reappear() {
    let fs = FaultyFileSystem::new();
    durable_file(&fs, "/d/a", b"kept");
    fs.remove_file(&p("/d/a")).unwrap();
    assert!(!fs.exists(&p("/d/a")).unwrap());
    let back = named(&[("a", b"kept")]);
    let seen: BTreeSet<_> = (0..SEEDS).map(|seed| names(&writeback(&fs, seed))).collect();
    assert_eq!(seen, BTreeSet::from([vec![], back.clone()]));
    assert_eq!(names(&fs.crash_image(CrashMode::LoseUnsynced)), back);
    assert_eq!(names(&fs.crash_image(CrashMode::ProcessKill)), vec![]);
    fs.sync_dir(Path::new("/d")).unwrap();
    for seed in 0..16 {
        assert_eq!(names(&writeback(&fs, seed)), vec![]);
    }
}

#[test]
fn a_file_whose_creation_is_lost_has_no_name() {
    let fs = FaultyFileSystem::new();
    durable_file(&fs, "/d/a", b"a");
    let b = fs.open(&p("/d/b"), OpenMode::CreateNew).unwrap();
    b.write_all_at(b"synced data, unsynced name", 0).unwrap();
    b.sync_data().unwrap();
    let with_b = named(&[("a", b"a"), ("b", b"synced data, unsynced name")]);
    let seen: BTreeSet<_> = (0..SEEDS).map(|seed| names(&writeback(&fs, seed))).collect();
    assert_eq!(seen, BTreeSet::from([named(&[("a", b"a")]), with_b]));
    assert_eq!(
        names(&fs.crash_image(CrashMode::LoseUnsynced)),
        named(&[("a", b"a")])
    );
}

#[test]
fn a_directory_not_synced_in_its_parent_may_vanish_with_its_files() {
    let fs = FaultyFileSystem::new();
    fs.create_dir_all(Path::new("/d/e")).unwrap();
    let f = fs.open(&p("/d/e/a"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"data", 0).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(Path::new("/d/e")).unwrap();
    assert_eq!(
        fs.pending_dir_ops(),
        vec![
            DirOp::CreateDir { path: p("/d") },
            DirOp::CreateDir { path: p("/d/e") }
        ]
    );
    let seen: BTreeSet<Option<Vec<u8>>> = (0..SEEDS)
        .map(|seed| read(&writeback(&fs, seed), "/d/e/a"))
        .collect();
    assert_eq!(seen, BTreeSet::from([None, Some(b"data".to_vec())]));
    // Only the deeper directory persisted: its parent is lost, so is it.
    let img = fs.crash_builder().dir_op(0, false).dir_op(1, true).build();
    assert_eq!(read(&img, "/d/e/a"), None);
    // LoseUnsynced treats directories as durable (documented).
    assert!(read(&fs.crash_image(CrashMode::LoseUnsynced), "/d/e/a").is_some());
    fs.sync_dir(Path::new("/")).unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    for seed in 0..16 {
        assert_eq!(
            read(&writeback(&fs, seed), "/d/e/a").as_deref(),
            Some(&b"data"[..])
        );
    }
}

#[test]
fn a_rename_between_directories_needs_both_synced() {
    let fs = FaultyFileSystem::new();
    for d in ["/x", "/y"] {
        fs.create_dir_all(Path::new(d)).unwrap();
    }
    fs.sync_dir(Path::new("/")).unwrap();
    let f = fs.open(&p("/x/a"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"A", 0).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(Path::new("/x")).unwrap();
    fs.rename(&p("/x/a"), &p("/y/b")).unwrap();
    fs.sync_dir(Path::new("/y")).unwrap();
    assert_eq!(
        fs.pending_dir_ops(),
        vec![DirOp::Rename {
            from: p("/x/a"),
            to: p("/y/b")
        }]
    );
    let where_is = |img: &FaultyFileSystem| (read(img, "/x/a"), read(img, "/y/b"));
    let a = Some(b"A".to_vec());
    let seen: BTreeSet<_> = (0..SEEDS).map(|seed| where_is(&writeback(&fs, seed))).collect();
    assert_eq!(seen, BTreeSet::from([(a.clone(), None), (None, a.clone())]));
    // A durable removal of the new name behind it stays ordered after it.
    fs.remove_file(&p("/y/b")).unwrap();
    fs.sync_dir(Path::new("/y")).unwrap();
    let seen: BTreeSet<_> = (0..SEEDS).map(|seed| where_is(&writeback(&fs, seed))).collect();
    assert_eq!(seen, BTreeSet::from([(a.clone(), None), (None, None)]));
    assert_eq!(where_is(&fs.crash_image(CrashMode::LoseUnsynced)), (a, None));
    fs.sync_dir(Path::new("/x")).unwrap();
    assert!(fs.pending_dir_ops().is_empty());
    for seed in 0..16 {
        assert_eq!(where_is(&writeback(&fs, seed)), (None, None));
    }
}

#[test]
fn an_unsynced_truncation_may_be_undone() {
    let fs = FaultyFileSystem::new();
    let f = durable_file(&fs, "/d/a", &[b'o'; 10_000]);
    f.set_len(3000).unwrap();
    let seen: BTreeSet<Vec<u8>> = (0..SEEDS)
        .map(|seed| read(&writeback(&fs, seed), "/d/a").unwrap())
        .collect();
    // A shrink is one size update: committed (3000 bytes) or not (all
    // 10 000 old bytes), never a length between nor zeroed pages past the
    // new end. SQLite relies on it: a checkpointed WAL cut to a prefix of
    // its frames would replay old pages over the checkpointed database.
    assert_eq!(seen, BTreeSet::from([vec![b'o'; 3000], vec![b'o'; 10_000]]));
    assert_eq!(
        read(&fs.crash_image(CrashMode::LoseUnsynced), "/d/a")
            .unwrap()
            .len(),
        10_000
    );
    assert_eq!(
        read(&fs.crash_image(CrashMode::ProcessKill), "/d/a")
            .unwrap()
            .len(),
        3000
    );
}

/// Does one operation of `kind` on `fs` (`/d/a` exists, `f` is open on it).
fn do_op(kind: OpKind, fs: &FaultyFileSystem, f: &dyn FileHandle, n: u32) -> io::Result<()> {
    let mut buf = [0u8; 4];
    match kind {
        OpKind::CreateDir => fs.create_dir_all(&p(&format!("/e{n}"))),
        OpKind::Create => fs.open(&p(&format!("/d/new{n}")), OpenMode::CreateNew).map(drop),
        OpKind::Open => fs.open(&p("/d/a"), OpenMode::Read).map(drop),
        OpKind::Write => f.write_all_at(b"WXYZ", 0),
        OpKind::SetLen => f.set_len(2),
        OpKind::Sync => f.sync_data(),
        OpKind::Rename => fs.rename(&p("/d/a"), &p("/d/a")),
        OpKind::Remove => {
            fs.open(&p(&format!("/d/rm{n}")), OpenMode::CreateNew)?;
            fs.remove_file(&p(&format!("/d/rm{n}")))
        }
        OpKind::SyncDir => fs.sync_dir(Path::new("/d")),
        OpKind::Read => f.read_at(&mut buf, 0).map(drop),
        OpKind::Len => f.len().map(drop),
        OpKind::Exists => fs.exists(&p("/d/a")).map(drop),
        OpKind::List => fs.list(Path::new("/d")).map(drop),
        OpKind::Lock => fs.lock_exclusive(&p(&format!("/d/LOCK{n}"))).map(drop),
        other => panic!("no operation for {other}"),
    }
}

#[test]
fn every_operation_kind_can_be_made_to_fail_once_without_effect() {
    for kind in OpKind::ALL {
        let fs = FaultyFileSystem::new();
        let f = durable_file(&fs, "/d/a", b"abcdefgh");
        let before = fs.crash_image(CrashMode::ProcessKill);
        let (before_names, before_ops) = (names(&before), fs.ops());
        fs.fail_at(kind, 0);
        let err = do_op(kind, &fs, &*f, 0).expect_err(&format!("{kind} did not fail"));
        let fault = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<InjectedFault>())
            .unwrap_or_else(|| panic!("{kind}: not an injected fault: {err}"));
        // (Remove creates its victim first: one counted operation more.)
        let index = before_ops + u64::from(kind == OpKind::Remove);
        assert_eq!(*fault, InjectedFault { kind, index });
        if kind != OpKind::Remove {
            let after = fs.crash_image(CrashMode::ProcessKill);
            assert_eq!(
                names(&after),
                before_names,
                "{kind}: the failed operation had an effect"
            );
            assert_eq!(read(&fs, "/d/a").unwrap(), b"abcdefgh", "{kind}");
        }
        assert!(!fs.crashed(), "{kind}: a fault is not a crash");
        do_op(kind, &fs, &*f, 1).unwrap_or_else(|e| panic!("{kind} failed twice: {e}"));
    }
}

#[test]
fn a_fail_point_waits_for_its_index() {
    let fs = FaultyFileSystem::new();
    let f = durable_file(&fs, "/d/a", b"abcdefgh");
    let mut buf = [0u8; 8];
    // A read is not counted: it sits at the index the next counted operation gets.
    fs.fail_at(OpKind::Read, 2);
    f.read_at(&mut buf, 0).unwrap(); // at 0
    f.write_all_at(b"x", 0).unwrap(); // index 0
    f.read_at(&mut buf, 0).unwrap(); // at 1
    f.sync_data().unwrap(); // index 1
    let err = f.read_at(&mut buf, 0).unwrap_err(); // at 2
    assert!(err.get_ref().unwrap().downcast_ref::<InjectedFault>().is_some());
    f.read_at(&mut buf, 0).unwrap();
    // fail_sync_at is fail_at(Sync, n).
    fs.fail_sync_at(1);
    f.sync_data().unwrap();
    let err = f.sync_data().unwrap_err();
    assert_eq!(
        err.get_ref()
            .unwrap()
            .downcast_ref::<InjectedFault>()
            .unwrap()
            .kind,
        OpKind::Sync
    );
}

/// A recovery-like read sequence: list, exists, open, len, read, read, map.
fn recovery_reads(fs: &FaultyFileSystem) -> io::Result<Vec<u8>> {
    fs.list(Path::new("/d"))?;
    fs.exists(&p("/d/a"))?;
    let f = fs.open(&p("/d/a"), OpenMode::Read)?;
    let len = f.len()?;
    let mut head = vec![0u8; 4];
    f.read_at(&mut head, 0)?;
    f.read_at(&mut head, 4)?;
    let all = f.map()?;
    assert_eq!(all.len() as u64, len);
    Ok(all.to_vec())
}

#[test]
fn reads_are_crash_points_when_every_operation_is_counted() {
    let base = FaultyFileSystem::new();
    durable_file(&base, "/d/a", b"abcdefgh");
    // By default reads are not counted: no crash point inside them.
    let fs = base.deep_clone();
    recovery_reads(&fs).unwrap();
    assert_eq!(fs.ops(), 0);
    // Counting every operation, each is a crash point.
    let fs = base.deep_clone();
    fs.set_counting(OpCounting::All);
    fs.set_tracing(true);
    assert_eq!(recovery_reads(&fs).unwrap(), b"abcdefgh");
    let kinds: Vec<OpKind> = fs.trace().iter().map(|r| r.kind).collect();
    use OpKind::*;
    assert_eq!(kinds, vec![List, Exists, Open, Len, Read, Read, Read]);
    assert_eq!(
        fs.trace().iter().map(|r| r.index).collect::<Vec<_>>(),
        (0..7).map(Some).collect::<Vec<_>>()
    );
    for (k, kind) in kinds.iter().enumerate() {
        let fs = base.deep_clone();
        fs.set_counting(OpCounting::All);
        fs.crash_at(k as u64);
        let err = recovery_reads(&fs).unwrap_err();
        let crash = Crashed {
            index: k as u64,
            kind: *kind,
        };
        assert_eq!(err.get_ref().unwrap().downcast_ref::<Crashed>(), Some(&crash));
        assert_eq!(fs.crash_point(), Some(crash));
        assert_eq!(
            fs.op_counts().total(),
            k as u64 + 1,
            "nothing ran after the crash"
        );
        assert!(fs.list(Path::new("/d")).is_err(), "every later operation fails");
    }
}

#[test]
fn op_counts_tell_what_a_workload_did() {
    let fs = FaultyFileSystem::new();
    let f = durable_file(&fs, "/d/a", b"abc");
    let before = fs.op_counts();
    let mut buf = [0u8; 3];
    f.write_all_at(b"def", 3).unwrap();
    f.write_all_at(b"ghi", 6).unwrap();
    f.sync_all().unwrap();
    f.read_at(&mut buf, 0).unwrap();
    fs.rename(&p("/d/a"), &p("/d/b")).unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    let did = fs.op_counts().since(&before);
    assert_eq!(did.to_string(), "write=2 sync=1 rename=1 sync_dir=1 read=1");
    assert_eq!((did.get(OpKind::Write), did.mutations(), did.total()), (2, 5, 6));
    // The setup: create_dir, sync_dir, create, write, sync, sync_dir.
    assert_eq!(before.mutations(), 6);
    assert_eq!(fs.ops(), 11);
}

// ---- The sweep, and the failure it must be able to show. ----

const RECORD: usize = 1000;

fn record(i: u64) -> Vec<u8> {
    (0..RECORD).map(|j| (i as usize * 7 + j) as u8 | 1).collect()
}

/// Appends 6 records of 1000 bytes to `/d/log` and returns how many it
/// acknowledged as durable before the first error; `fsync: false`
/// acknowledges without syncing the data (the bug to catch).
fn tiny_log(fs: Arc<dyn FileSystem>, fsync: bool) -> u64 {
    let mut acked = 0;
    let _ = (|| -> io::Result<()> {
        fs.create_dir_all(Path::new("/d"))?;
        fs.sync_dir(Path::new("/"))?;
        let f = fs.open(&p("/d/log"), OpenMode::CreateNew)?;
        fs.sync_dir(Path::new("/d"))?;
        for i in 0..6u64 {
            f.write_all_at(&record(i), i * RECORD as u64)?;
            if fsync {
                f.sync_data()?;
            }
            acked = i + 1;
        }
        Ok(())
    })();
    acked
}

/// Every acknowledged record is in the image, exactly.
fn check_acked(img: &FaultyFileSystem, acked: &u64) -> Result<(), String> {
    let data = img.read_file(&p("/d/log")).unwrap_or_default();
    for i in 0..*acked {
        let at = i as usize * RECORD;
        if data.get(at..at + RECORD) != Some(&record(i)[..]) {
            return Err(format!("acknowledged record {i} lost"));
        }
    }
    Ok(())
}

fn sweep() -> Sweep {
    Sweep::new(&FaultyFileSystem::new())
        .modes([CrashMode::ProcessKill, CrashMode::LoseUnsynced])
        .writeback_seeds(0..16)
}

#[test]
fn a_sweep_passes_a_workload_that_syncs_before_acknowledging() {
    let report = sweep().run(|fs| tiny_log(fs, true), |img, acked, _| check_acked(img, acked));
    report.assert_clean();
    // create_dir, sync_dir, create, sync_dir, 6 × (write, sync).
    assert_eq!(report.points, 16);
    assert_eq!(report.ops.mutations(), 16);
    assert!(report.not_reached.is_empty());
    assert_eq!(report.images, 17 * 18, "every point and the end, under 18 modes");
}

#[test]
fn a_sweep_catches_a_missing_fsync_under_power_loss_but_not_under_kill() {
    let report = sweep().run(|fs| tiny_log(fs, false), |img, acked, _| check_acked(img, acked));
    let under = |pred: fn(CrashMode) -> bool| report.failures_where(pred).count();
    assert_eq!(
        under(|m| m == CrashMode::ProcessKill),
        0,
        "kill -9 keeps the page cache: it cannot see a missing fsync\n{report}"
    );
    assert!(
        under(|m| matches!(m, CrashMode::Writeback { .. })) > 0,
        "{report}"
    );
    assert!(under(|m| m == CrashMode::LoseUnsynced) > 0, "{report}");
    // The image after the end lost acknowledged records too.
    assert!(report.failures.iter().any(|f| f.case.crash.is_none()), "{report}");
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.message.starts_with("acknowledged record"))
    );
}

/// A stand-in for recovery: keep the leading whole valid records of
/// `/d/log`, cut the rest, sync. Returns how many it kept.
fn recover(fs: &dyn FileSystem) -> io::Result<u64> {
    let f = fs.open(&p("/d/log"), OpenMode::ReadWrite)?;
    let data = f.map()?;
    let valid = data
        .chunks(RECORD)
        .enumerate()
        .take_while(|(i, chunk)| *chunk == &record(*i as u64)[..])
        .count();
    f.set_len((valid * RECORD) as u64)?;
    f.sync_data()?;
    Ok(valid as u64)
}

#[test]
fn a_crash_during_recovery_then_recovery_again_keeps_every_acknowledged_record() {
    // A power loss in the middle of the workload...
    let fs = FaultyFileSystem::new();
    fs.crash_at(9);
    let acked = tiny_log(Arc::new(fs.clone()), true);
    assert_eq!(acked, 2);
    let mut recoveries = 0;
    for seed in 0..8 {
        let crashed = fs.crash_image(CrashMode::Writeback { seed });
        // ...then a crash at every operation of recovery, reads included,
        // and a second recovery on each image.
        let report = Sweep::new(&crashed)
            .counting(OpCounting::All)
            .modes([CrashMode::LoseUnsynced, CrashMode::ProcessKill])
            .writeback_seeds(0..8)
            .run(
                |fs| recover(&*fs).ok(),
                |img, _, _| {
                    let again = img.deep_clone();
                    let kept = recover(&again).map_err(|e| e.to_string())?;
                    check_acked(&again, &acked)?;
                    (kept >= acked)
                        .then_some(())
                        .ok_or(format!("kept {kept} < {acked}"))
                },
            );
        report.assert_clean();
        // open, read (map), set_len, sync: all crash points.
        assert_eq!(report.points, 4, "{report}");
        recoveries += report.images;
    }
    assert_eq!(recoveries, 8 * 5 * 10);
}

#[test]
fn a_sweep_reports_panics_and_samples_seeded_points() {
    let report = sweep().points(CrashPoints::Sample { seed: 7, count: 5 }).run(
        |fs| tiny_log(fs, true),
        |_, acked, _| {
            assert!(*acked > 100, "checker says no");
            Ok(())
        },
    );
    assert_eq!(report.points, 5);
    assert_eq!(report.failures.len() as u64, report.images);
    assert!(report.failures[0].message.contains("checker says no"), "{report}");
    assert!(report.workload_panics.is_empty());
    let panicking = sweep().run(
        |fs| {
            let acked = tiny_log(fs, true);
            assert_eq!(acked, 6, "crashed");
        },
        |_, _, _| Ok(()),
    );
    // Every crash point makes the workload panic; the run without a crash does not.
    assert_eq!(panicking.workload_panics.len(), 16, "{panicking}");
    assert!(
        panicking
            .workload_panics
            .iter()
            .all(|(c, m)| c.is_some() && m.contains("crashed"))
    );
    assert_eq!(panicking.images, 18);
    // Every operation counted: reads become crash points too.
    let reads = |fs: Arc<dyn FileSystem>| {
        let _ = tiny_log(fs.clone(), true);
        fs.open(&p("/d/log"), OpenMode::Read)
            .and_then(|f| f.len())
            .unwrap_or(0)
    };
    let counted = sweep().counting(OpCounting::All).run(reads, |_, _, _| Ok(()));
    assert_eq!(counted.points, 16 + 2, "the open and the len are crash points");
    let kinds: BTreeSet<OpKind> = counted.ops.iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&OpKind::Open) && kinds.contains(&OpKind::Len));
}
