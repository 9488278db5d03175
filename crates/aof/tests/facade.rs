//! The facade on its embedded defaults: local files and the SQLite index.

use aof::{AofConfig, FlushStrategy, SQLITE_INDEX_FILE};
use std::io::BufRead;

fn config() -> AofConfig {
    AofConfig::builder()
        .segment_size(64 * 1024)
        .flush_strategy(FlushStrategy::Sync)
        .build()
        .unwrap()
}

#[test]
fn defaults_put_a_sqlite_index_in_the_log_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = aof::open(dir.path(), config()).unwrap();
        for i in 0..2000u32 {
            log.append(&i.to_be_bytes().repeat(10)).unwrap();
        }
        log.close_blocking().unwrap();
    }
    assert!(dir.path().join(SQLITE_INDEX_FILE).is_file());
    let log = aof::open(dir.path(), config()).unwrap();
    assert_eq!(log.next_id(), 2000);
    assert!(log.index().len().unwrap() > 1, "several segments expected");
    assert_eq!(
        log.read(1234).unwrap().as_deref(),
        Some(&1234u32.to_be_bytes().repeat(10)[..])
    );
}

#[cfg(feature = "mdbx")]
#[test]
fn the_mdbx_index_is_selected_by_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = AofConfig::builder()
        .segment_size(16 * 1024)
        .index_backend(aof::IndexBackend::Mdbx)
        .build()
        .unwrap();
    {
        let log = aof::open(dir.path(), config.clone()).unwrap();
        for i in 0..500u32 {
            log.append(&i.to_le_bytes().repeat(8)).unwrap();
        }
    }
    assert!(dir.path().join("index.mdbx").exists());
    assert!(!dir.path().join(SQLITE_INDEX_FILE).exists());
    let log = aof::open(dir.path(), config).unwrap();
    assert_eq!(log.next_id(), 500);
    assert!(log.index().len().unwrap() > 1);
    assert_eq!(
        log.read(321).unwrap().as_deref(),
        Some(&321u32.to_le_bytes().repeat(8)[..])
    );
}

#[cfg(not(feature = "mdbx"))]
#[test]
fn a_backend_left_out_of_the_build_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = AofConfig::builder()
        .index_backend(aof::IndexBackend::Mdbx)
        .build()
        .unwrap();
    assert!(matches!(
        aof::open(dir.path(), config),
        Err(aof::AofError::BackendNotBuilt { .. })
    ));
}

#[cfg(feature = "mdbx")]
#[test]
fn a_log_indexed_by_the_other_backend_is_named_not_reindexed() {
    let dir = tempfile::tempdir().unwrap();
    let mdbx = AofConfig::builder()
        .index_backend(aof::IndexBackend::Mdbx)
        .build()
        .unwrap();
    aof::open(dir.path(), mdbx).unwrap().append(b"x").unwrap();
    assert_eq!(
        aof::detect_index_backend(dir.path()),
        Some(aof::IndexBackend::Mdbx)
    );
    match aof::open(dir.path(), config()) {
        Err(aof::AofError::WrongIndexBackend { configured, found }) => {
            assert_eq!(
                (configured, found),
                (aof::IndexBackend::Sqlite, aof::IndexBackend::Mdbx)
            );
        }
        other => panic!("expected WrongIndexBackend, got {other:?}"),
    }
    assert!(
        !dir.path().join(SQLITE_INDEX_FILE).exists(),
        "no empty SQLite index may appear"
    );
}

const CHILD_ENV: &str = "AOF_FACADE_CHILD_DIR";

fn payload(id: u64) -> Vec<u8> {
    format!("{id}:{}", "y".repeat((id % 300) as usize)).into_bytes()
}

#[test]
#[ignore = "child process of kill_dash_nine_with_the_sqlite_index"]
fn sqlite_kill_child() {
    use std::io::Write;
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let log = aof::open(&dir, config()).unwrap();
    let mut out = std::io::stdout().lock();
    loop {
        let id = log.append(&payload(log.next_id())).unwrap();
        writeln!(out, "ACK {id}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_dash_nine_with_the_sqlite_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    for after in [3usize, 250, 800, 60] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "sqlite_kill_child", "--ignored", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < after {
            let Some(Ok(l)) = lines.next() else { break };
            if let Some(id) = l.strip_prefix("ACK ") {
                acked.push(id.parse::<u64>().unwrap());
                seen += 1;
            }
        }
        child.kill().unwrap();
        let _ = child.wait();
        acked.extend(
            lines
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").map(|i| i.parse::<u64>().unwrap())),
        );
        let log = aof::open(dir.path(), config()).unwrap();
        for id in &acked {
            assert_eq!(
                log.read(*id).unwrap().as_deref(),
                Some(&payload(*id)[..]),
                "acknowledged {id}"
            );
        }
    }
    assert!(
        acked.len() > 800,
        "the child acknowledged too little: {}",
        acked.len()
    );
}
