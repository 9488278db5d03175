//! The background flusher must sleep when it has nothing it can do.
//!
//! This test reads the CPU time of threads named `aof-flusher` from
//! `/proc/self/task`, so it lives in its own test binary: in a shared one,
//! other tests' flushers start, work and exit between the two samples.

use aof_core::testing::{FaultyFileSystem, FileIndex, OpKind};
use aof_core::{Aof, AofOptions, FileSystem};
use aof_record::{AofConfig, FlushStrategy};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open_faulty(fs: &FaultyFileSystem, config: AofConfig) -> Aof {
    let fs_dyn: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let index = FileIndex::open(fs_dyn.clone(), Path::new("/log/index.json")).unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs_dyn;
    Aof::open_with("/log", options, Arc::new(index)).unwrap()
}

/// CPU ticks (user + system) of each of this process's threads named `name`,
/// by thread id.
fn thread_ticks(name: &str) -> HashMap<String, u64> {
    let mut ticks = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        // The thread may exit between the listing and this read.
        let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let tid = task.file_name().unwrap().to_string_lossy().into_owned();
        ticks.insert(tid, field(11) + field(12));
    }
    ticks
}

/// Ticks the threads named `name` used during `window`. A thread that exits
/// in the window is not counted; one that starts in it counts from zero.
fn ticks_used(name: &str, window: Duration) -> u64 {
    let before = thread_ticks(name);
    std::thread::sleep(window);
    thread_ticks(name)
        .iter()
        .map(|(tid, &after)| after.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

fn config(strategy: FlushStrategy) -> AofConfig {
    AofConfig::builder()
        .segment_size(1 << 20)
        .flush_strategy(strategy)
        .pre_allocate_enabled(false)
        .build()
        .unwrap()
}

fn assert_idle(log: &Aof, what: &str) {
    let used = ticks_used("aof-flusher", Duration::from_millis(400));
    // 400 ms of spinning is ~40 ticks; idling (or 1 ms timer wake-ups) is ~0.
    assert!(used <= 8, "{what}: the flusher used {used} ticks in 400 ms");
    assert!(log.next_id() > 0);
}

/// Finding 6: once the log was poisoned, the background flusher spun at
/// 100 % CPU (and flooded the log); so it did under Periodic after
/// `truncate_after` dropped unflushed records.
#[test]
fn the_flusher_idles_when_poisoned_and_after_a_truncation() {
    let fs = FaultyFileSystem::new();
    let log = open_faulty(&fs, config(FlushStrategy::Batched(2)));
    fs.fail_at(OpKind::Sync, 0);
    log.append(b"a").unwrap();
    log.append(b"b").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log.is_poisoned() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(log.is_poisoned());
    assert_idle(&log, "poisoned");
    drop(log);

    let fs = FaultyFileSystem::new();
    let log = open_faulty(&fs, config(FlushStrategy::Periodic(50)));
    log.append(b"keep").unwrap();
    log.flush_blocking().unwrap();
    for _ in 0..10 {
        log.append(b"drop").unwrap();
    }
    log.truncate_after(0).unwrap();
    assert_idle(&log, "after truncate_after");
}
