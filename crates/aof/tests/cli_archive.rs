//! The `aof` tool with an archive: `append --archive … --archive-threshold`,
//! `aof archive`, and `read` / `dump` / `tail` / `stat` / `verify` reading
//! archived records, end to end with a `file://` archive.
#![cfg(feature = "cli")]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_aof");

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn local_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
        .count()
}

#[test]
fn archived_records_are_read_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let d = dir.to_str().unwrap();
    let url = format!("file://{}", tmp.path().join("archive").display());
    let n = 2000u64;
    let input: String = (0..n).map(|i| format!("record-{i}\n")).collect();
    let out = run(
        &[
            "append",
            d,
            "--segment-size",
            "4096",
            "--archive",
            &url,
            "--archive-threshold",
            "2",
        ],
        input.as_bytes(),
    );
    assert_eq!(ok(&out).lines().count() as u64, n);
    // Whatever the background archiver left, `aof archive` archives now.
    let out = ok(&run(&["archive", d, "--archive", &url], b""));
    assert!(out.starts_with("archived "), "{out}");
    assert_eq!(local_segments(&dir), 1, "only the active segment stays local");

    let stat: serde_json::Value =
        serde_json::from_str(&ok(&run(&["stat", d, "--archive", &url, "--json"], b""))).unwrap();
    let segments = stat["segments"].as_array().unwrap();
    assert!(segments.len() > 10);
    for s in &segments[..segments.len() - 1] {
        assert_eq!(s["status"], "ArchivedRemote", "{s}");
        assert!(s["compressed_size"].as_u64().unwrap() > 0);
        let ratio = s["compression_ratio"].as_f64().unwrap();
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    }

    assert_eq!(ok(&run(&["read", d, "--archive", &url, "5"], b"")), "record-5");
    // Without the archive, an archived record is a clear error, not a panic.
    let out = run(&["read", d, "5"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("archive"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dump = ok(&run(&["dump", d, "--archive", &url, "--json"], b""));
    let ids: Vec<u64> = dump
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, (0..n).collect::<Vec<_>>());
    let tail = ok(&run(&["tail", d, "--archive", &url, "-n", "2"], b""));
    assert_eq!(tail.lines().count(), 2);
    assert!(tail.contains("record-1999"), "{tail}");
    let verify = ok(&run(&["verify", d, "--archive", &url], b""));
    assert!(verify.starts_with("ok: "), "{verify}");
    // An orphan of this log in the archive: `repair --archive` deletes it.
    let stat_id = stat["segments"][0]["archive_key"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let orphan = tmp
        .path()
        .join("archive")
        .join(&stat_id)
        .join("00000000000000999999.seg.zst");
    std::fs::write(&orphan, b"orphan").unwrap();
    let repaired = ok(&run(&["repair", d, "--archive", &url], b""));
    assert!(repaired.contains("removed 1 archive objects"), "{repaired}");
    assert!(!orphan.exists());
    // Reading wrote nothing to the log directory's cache (a read-only open).
    let cache = dir.join(aof::engine::layout::ARCHIVE_CACHE_DIR);
    assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().count() == 0);
}

/// The read-only commands on a log with an MDBX index see its archived
/// segments: the view reads the index (from a private copy of its file),
/// not only the segment files left in the directory.
#[test]
fn archived_records_of_an_mdbx_log_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let d = dir.to_str().unwrap();
    let url = format!("file://{}", tmp.path().join("archive").display());
    let n = 600u64;
    let input: String = (0..n).map(|i| format!("record-{i}\n")).collect();
    ok(&run(&["append", d, "--segment-size", "4096"], input.as_bytes()));
    ok(&run(&["archive", d, "--archive", &url], b""));
    let out = ok(&run(&["index", "migrate", d, "--to", "mdbx"], b""));
    assert!(out.contains("to mdbx"), "{out}");
    assert_eq!(local_segments(&dir), 1, "only the active segment stays local");

    let stat: serde_json::Value =
        serde_json::from_str(&ok(&run(&["stat", d, "--archive", &url, "--json"], b""))).unwrap();
    assert_eq!(stat["index"]["backend"], "mdbx");
    let segments = stat["segments"].as_array().unwrap();
    assert!(segments.len() > 3, "{stat}");
    assert_eq!(segments[0]["status"], "ArchivedRemote", "{}", segments[0]);
    assert_eq!(ok(&run(&["read", d, "--archive", &url, "5"], b"")), "record-5");
    let dump = ok(&run(&["dump", d, "--archive", &url], b""));
    assert_eq!(dump.lines().count() as u64, n);
    assert!(dump.lines().next().unwrap().ends_with("record-0"), "{dump}");
}

#[test]
fn an_archive_threshold_without_an_archive_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("log");
    let out = run(
        &["append", d.to_str().unwrap(), "--archive-threshold", "2"],
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no archive storage"));
    assert!(!d.exists(), "nothing was created");
    ok(&run(&["append", d.to_str().unwrap()], b"x\n"));
    let out = run(&["read", d.to_str().unwrap(), "--archive", "ftp://x/y", "0"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scheme"));
}

#[test]
fn tail_follow_prints_archived_records_then_new_ones() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let d = dir.to_str().unwrap();
    let url = format!("file://{}", tmp.path().join("archive").display());
    let input: String = (0..600).map(|i| format!("record-{i}\n")).collect();
    ok(&run(&["append", d, "--segment-size", "4096"], input.as_bytes()));
    ok(&run(&["archive", d, "--archive", &url], b""));
    // The last 300 records reach back into archived segments.
    let mut child = Command::new(BIN)
        .args(["tail", d, "--archive", &url, "-n", "300", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let wait = std::time::Duration::from_secs(30);
    for i in 300..600 {
        assert!(
            rx.recv_timeout(wait).unwrap().ends_with(&format!("record-{i}")),
            "line {i}"
        );
    }
    ok(&run(&["append", d], b"fresh\n"));
    assert!(rx.recv_timeout(wait).unwrap().ends_with("fresh"));
    child.kill().unwrap();
    let _ = child.wait();
}
