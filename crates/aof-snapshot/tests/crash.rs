//! A crash at every I/O operation of an import, under every crash mode of
//! aof-core's fault model (process kill, lost unsynced data, a torn last
//! write, power loss with reordered writeback and directory operations
//! persisted in any subset): after reopening, the target holds either no
//! log or the complete one, every record equal to the source's.

mod common;

use aof_core::testing::{FaultyFileSystem, Sweep};
use aof_core::{Aof, AofOptions, FileSystem};
use aof_record::MemorySegmentIndex;
use aof_snapshot::ImportOptions;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const PARENT: &str = "/t";
const TARGET: &str = "/t/log";

#[test]
fn an_import_crashed_anywhere_leaves_no_log_or_the_complete_log() {
    let dir = tempfile::tempdir().unwrap();
    let n = 400;
    let source = common::filled(&dir.path().join("src"), n, 16 * 1024);
    let bytes = common::encode(&common::chunks(&source, 4 * 1024));
    let expected: Vec<Vec<u8>> = (0..n)
        .map(|i| source.read(i).unwrap().unwrap().to_vec())
        .collect();

    let (absent, complete) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let base = FaultyFileSystem::new();
    base.create_dir_all(Path::new(PARENT)).unwrap();
    base.sync_dir(Path::new("/")).unwrap();

    let report = Sweep::new(&base).run(
        |fs: Arc<dyn FileSystem>| {
            let options = ImportOptions::new().file_system(fs);
            aof_snapshot::import_from(&bytes[..], TARGET, &options, &mut |_, _| {}).is_ok()
        },
        |img, finished, case| {
            let target = Path::new(TARGET);
            let present = img.exists(target).map_err(|e| e.to_string())?
                && !img.list(target).map_err(|e| e.to_string())?.is_empty();
            if !present {
                if *finished && case.crash.is_none() {
                    return Err("the import succeeded but left no log".into());
                }
                absent.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let mut options = AofOptions::new(common::config(16 * 1024));
            options.fs = Arc::new(img.clone());
            options.rebuild_index = true;
            let log = Aof::open_with(target, options, Arc::new(MemorySegmentIndex::new()))
                .map_err(|e| format!("the installed log does not open: {e}"))?;
            if log.first_id() != 0 || log.durable_id() != Some(n - 1) {
                return Err(format!(
                    "a partial log: first {} durable {:?}",
                    log.first_id(),
                    log.durable_id()
                ));
            }
            for (id, want) in expected.iter().enumerate() {
                let got = log.read(id as u64).map_err(|e| e.to_string())?;
                if got.as_deref() != Some(&want[..]) {
                    return Err(format!("record {id} differs"));
                }
            }
            complete.fetch_add(1, Ordering::Relaxed);
            Ok(())
        },
    );
    let (absent, complete) = (absent.into_inner(), complete.into_inner());
    eprintln!(
        "{} crash points, {} images ({absent} without a log, {complete} with the complete log), {} failures",
        report.points,
        report.images,
        report.failures.len()
    );
    assert!(report.points > 40, "{} crash points", report.points);
    assert!(absent > 0 && complete > 0, "both outcomes are reached");
    report.assert_clean();
}
