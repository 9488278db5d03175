//! The `aof` command-line tool, run as a built binary: every command, and
//! the error paths (exit status and a one-line message, never a panic).
#![cfg(feature = "cli")]

use aof::{AofConfig, FlushStrategy, IndexBackend};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_aof");

/// Runs `aof ARGS` with `stdin` as its standard input.
fn aof_with_input(args: &[&str], dir: &Path, stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(
            args.iter()
                .map(|a| if *a == "DIR" { dir.as_os_str() } else { a.as_ref() }),
        )
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    // The tool may exit without reading its input (an error path): a
    // broken pipe here is expected then.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Runs `aof ARGS`, where the argument `DIR` stands for `dir`.
fn aof(args: &[&str], dir: &Path) -> Output {
    aof_with_input(args, dir, b"")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit status 0, nothing on stderr.
#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "status {:?}, stderr: {}",
        out.status,
        stderr(out)
    );
}

/// Exit status `code` and exactly one line on stderr, `aof: …` containing `needle`.
#[track_caller]
fn assert_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    assert!(err.starts_with("aof: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
}

fn ids(range: std::ops::Range<u64>) -> String {
    range.map(|i| format!("{i}\n")).collect()
}

/// A log in `dir` with `n` records `record-<i>` in 4 KiB segments, appended by the tool.
fn make_log(dir: &Path, n: u64) {
    let input: String = (0..n).map(|i| format!("record-{i}\n")).collect();
    let out = aof_with_input(
        &["append", "DIR", "--segment-size", "4096"],
        dir,
        input.as_bytes(),
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), ids(0..n));
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn append_then_read_back_the_exact_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let input = b"hello\n\xff\xfe\x00 not utf-8\n\ncrlf\r\nlast line without newline";
    let out = aof_with_input(&["append", "DIR"], &dir, input);
    assert_ok(&out);
    assert_eq!(stdout(&out), "0\n1\n2\n3\n4\n");
    let expected: [&[u8]; 5] = [
        b"hello",
        b"\xff\xfe\x00 not utf-8",
        b"",
        b"crlf\r",
        b"last line without newline",
    ];
    for (id, want) in expected.iter().enumerate() {
        let out = aof(&["read", "DIR", &id.to_string()], &dir);
        assert_ok(&out);
        assert_eq!(&out.stdout[..], *want, "record {id}");
    }
    assert!(dir.join("index.sqlite").is_file());
}

#[test]
fn ids_are_printed_in_input_order_and_continue_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 3000);
    assert!(segment_files(dir).len() > 5, "the log should have rolled");
    let out = aof_with_input(&["append", "DIR"], dir, b"more\nand more\n");
    assert_ok(&out);
    assert_eq!(stdout(&out), "3000\n3001\n");
    let out = aof(&["read", "DIR", "1234"], dir);
    assert_eq!(out.stdout, b"record-1234");
}

/// With `--sync`, a printed id survives the writer being killed at once.
#[test]
fn sync_ids_are_durable_when_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut child = Command::new(BIN)
        .args(["append", "--sync"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let lines = lines_of(&mut child);
    for i in 0..3 {
        writeln!(input, "durable {i}").unwrap();
        input.flush().unwrap();
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("an id within 20 s");
        assert_eq!(line, i.to_string());
    }
    // No close, no flush at exit: SIGKILL.
    child.kill().unwrap();
    child.wait().unwrap();
    let log = aof::open(dir, AofConfig::default()).unwrap();
    assert_eq!(log.next_id(), 3);
    for i in 0..3u64 {
        assert_eq!(log.read(i).unwrap().unwrap(), format!("durable {i}").as_bytes());
    }
}

/// Lines of the child's stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn dump_prints_ranges_as_text_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = aof_with_input(&["append", "DIR"], dir, b"zero\none\ttab\n\xffbin\nthree\n");
    assert_ok(&out);

    let out = aof(&["dump", "DIR"], dir);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    for (i, (line, payload)) in lines
        .iter()
        .zip(["zero", "one\\ttab", "\\xffbin", "three"])
        .enumerate()
    {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[0], i.to_string());
        assert!(fields[1].ends_with('Z') && fields[1].len() == 27, "{line}");
        assert_eq!(fields[2], payload);
    }

    let out = aof(&["dump", "DIR", "--from", "1", "--to", "2", "--json"], dir);
    assert_ok(&out);
    let objects: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["id"], 1);
    assert_eq!(objects[0]["payload"], "one\ttab");
    assert!(objects[0]["timestamp_us"].as_u64().unwrap() > 1_600_000_000_000_000);
    assert_eq!(objects[1]["id"], 2);
    assert_eq!(objects[1]["payload_base64"], "/2Jpbg==");
    assert!(objects[1].get("payload").is_none());

    let out = aof(&["dump", "DIR", "--from", "3"], dir);
    assert_eq!(stdout(&out).lines().count(), 1);
    let out = aof(&["dump", "DIR", "--from", "10"], dir);
    assert_ok(&out);
    assert!(out.stdout.is_empty());
    assert_error(
        &aof(&["dump", "DIR", "--from", "3", "--to", "1"], dir),
        1,
        "--from 3 is after --to 1",
    );
}

#[test]
fn dump_crosses_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 1000);
    let out = aof(&["dump", "DIR", "--json"], dir);
    assert_ok(&out);
    let payloads: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["payload"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let want: Vec<String> = (0..1000).map(|i| format!("record-{i}")).collect();
    assert_eq!(payloads, want);
}

#[test]
fn tail_prints_the_last_records_and_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 500);
    let out = aof(&["tail", "DIR"], dir);
    assert_ok(&out);
    let text = stdout(&out);
    let got: Vec<&str> = text.lines().map(|l| l.rsplit('\t').next().unwrap()).collect();
    let want: Vec<String> = (490..500).map(|i| format!("record-{i}")).collect();
    assert_eq!(got, want);

    let out = aof(&["tail", "DIR", "-n", "300", "--json"], dir);
    assert_ok(&out);
    let first: serde_json::Value = serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], 200);
    assert_eq!(stdout(&out).lines().count(), 300);
}

/// `tail -f` takes no lock: it follows what another process appends.
#[test]
fn tail_follows_a_log_another_process_appends_to() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 3);
    let mut child = Command::new(BIN)
        .args(["tail", "-f", "-n", "1"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let wait = |what: &str| {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what}"));
        line.rsplit('\t').next().unwrap().to_owned()
    };
    assert_eq!(wait("the last record"), "record-2");
    // This process appends, through the library, in small segments so the
    // follower has to cross into new segment files.
    let config = AofConfig::builder()
        .segment_size(4096)
        .flush_strategy(FlushStrategy::Sync)
        .build()
        .unwrap();
    let log = aof::open(dir, config).unwrap();
    for i in 0..300 {
        log.append(format!("new-{i}").as_bytes()).unwrap();
    }
    for i in 0..300 {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("tail exited ({status}) before record {i}: {err}");
        }
        assert_eq!(wait("a new record"), format!("new-{i}"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    log.close_blocking().unwrap();
}

/// `tail -f` on an MDBX log (which its writer holds exclusively) follows
/// too, and a writer's `truncate_after` under it is said on stderr, then
/// following goes on from the first printed record the log no longer holds:
/// what the writer appended after the truncation is printed.
#[test]
fn tail_follows_an_mdbx_log_through_a_truncation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = AofConfig::builder()
        .index_backend(aof::IndexBackend::Mdbx)
        .segment_size(4096)
        .flush_strategy(FlushStrategy::Sync)
        .build()
        .unwrap();
    let log = aof::open(dir, config).unwrap();
    for i in 0..100 {
        log.append(format!("first-{i}").as_bytes()).unwrap();
    }
    let mut child = Command::new(BIN)
        .args(["tail", "-f", "-n", "100"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let wait = |what: &str| {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what}"));
        line.split('\t').map(str::to_owned).collect::<Vec<_>>()
    };
    for i in 0..100 {
        assert_eq!(wait("the records so far")[2], format!("first-{i}"));
    }
    log.truncate_after(49).unwrap();
    for i in 0..20 {
        log.append(format!("second-{i}").as_bytes()).unwrap();
    }
    for i in 0..20 {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("tail exited ({status}) before record {i}: {err}");
        }
        let line = wait("a record after the truncation");
        assert_eq!(
            (line[0].as_str(), line[2].as_str()),
            (&*(50 + i).to_string(), &*format!("second-{i}"))
        );
    }
    child.kill().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    child.wait().unwrap();
    assert!(err.contains("records from id 50 on were replaced"), "{err}");
    log.close_blocking().unwrap();
}

/// `append --compress` stores long lines compressed; every reading command
/// gives back the exact lines (the records say how they are stored), and the
/// segment holds far fewer bytes than the input.
#[test]
fn compressed_appends_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let lines: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "{i:04} GET /api/v1/items?page={i} status=200 user=alice took=12ms {}",
                "x".repeat(150)
            )
        })
        .collect();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = aof_with_input(&["append", "DIR", "--compress", "--sync"], dir, input.as_bytes());
    assert_ok(&out);
    assert_eq!(stdout(&out), ids(0..200));
    // Appending without --compress later mixes plain records in.
    assert_ok(&aof_with_input(&["append", "DIR"], dir, b"plain\n"));
    assert_eq!(aof(&["read", "DIR", "17"], dir).stdout, lines[17].as_bytes());
    assert_eq!(aof(&["read", "DIR", "200"], dir).stdout, b"plain");
    let dumped = stdout(&aof(&["dump", "DIR"], dir));
    let payloads: Vec<&str> = dumped
        .lines()
        .map(|l| l.splitn(3, '\t').nth(2).unwrap())
        .collect();
    assert_eq!(payloads.len(), 201);
    assert_eq!(
        &payloads[..200],
        &lines.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert_ok(&aof(&["verify", "DIR"], dir));
    let data = std::fs::read(&segment_files(dir)[0]).unwrap();
    let used = data.len() - data.iter().rev().take_while(|b| **b == 0).count();
    assert!(
        used * 3 < input.len() * 2,
        "{used} bytes on disk for {} of input",
        input.len()
    );
}

#[test]
fn verify_passes_on_a_sound_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 1000);
    let out = aof(&["verify", "DIR"], dir);
    assert_ok(&out);
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
    assert!(stdout(&out).contains("1000 records"), "{}", stdout(&out));
}

#[test]
fn verify_names_the_segment_and_offset_of_a_flipped_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 1000);
    let files = segment_files(dir);
    assert!(files.len() > 3);
    // The third record of the second segment: header 64, records of 32 + 10 or 11 bytes.
    let victim = &files[1];
    let base: u64 = victim.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let len = |id: u64| 32 + format!("record-{id}").len() as u64;
    let offset = 64 + len(base) + len(base + 1);
    bytes[offset as usize + 32 + 3] ^= 0x01;
    std::fs::write(victim, &bytes).unwrap();

    let out = aof(&["verify", "DIR"], dir);
    assert_error(&out, 1, &format!("segment {base} at offset {offset}"));
    assert!(stderr(&out).contains(&victim.file_name().unwrap().to_string_lossy().into_owned()));
    // Reading that record fails the same way; its neighbours still read.
    assert_error(
        &aof(&["read", "DIR", &(base + 2).to_string()], dir),
        1,
        "checksum mismatch",
    );
    assert_eq!(
        aof(&["read", "DIR", &(base + 1).to_string()], dir).stdout,
        format!("record-{}", base + 1).as_bytes()
    );
}

#[test]
fn stat_shows_segments_ids_and_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 1000);
    let n = segment_files(dir).len();
    let out = aof(&["stat", "DIR"], dir);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("first 0, last 999, next 1000"), "{text}");
    assert!(
        text.contains(&format!("segments  {n} ({} Finalized, 1 Active)", n - 1))
            || text.contains(&format!("segments  {n} (1 Active, {} Finalized)", n - 1)),
        "{text}"
    );
    assert!(text.contains("sqlite"), "{text}");

    let out = aof(&["stat", "DIR", "--json"], dir);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["next_id"], 1000);
    assert_eq!(v["first_id"], 0);
    assert_eq!(v["durable_id"], 999);
    assert_eq!(v["index"]["backend"], "sqlite");
    let segs = v["segments"].as_array().unwrap();
    assert_eq!(segs.len(), n);
    assert_eq!(segs[0]["base_id"], 0);
    assert_eq!(segs[n - 1]["status"], "Active");
    assert_eq!(segs[n - 1]["last_id"], 999);
    let total: u64 = segs.iter().map(|s| s["records"].as_u64().unwrap()).sum();
    assert_eq!(total, 1000);
    assert!(v["metrics"]["engine"].is_object() && v["metrics"]["flush"].is_object());
}

#[test]
fn index_migrates_both_ways_and_the_log_reopens_on_the_new_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 800);
    let identity = log_identity_of_sqlite_index(dir);

    let out = aof(&["index", "migrate", "DIR", "--to", "mdbx"], dir);
    assert_ok(&out);
    assert!(stdout(&out).contains("from sqlite to mdbx"), "{}", stdout(&out));
    {
        use aof::format::SegmentIndex;
        let index = aof::index_mdbx::MdbxSegmentIndex::open(dir.join("index.mdbx")).unwrap();
        assert_eq!(
            index.log_identity().unwrap(),
            Some(identity),
            "migration lost the log identity"
        );
    }
    assert!(dir.join("index.mdbx").is_file());
    assert!(!dir.join("index.sqlite").exists());
    assert!(dir.join("index.sqlite.bak").is_file());
    assert_error(
        &aof(&["index", "migrate", "DIR", "--to", "mdbx"], dir),
        1,
        "already uses the mdbx index",
    );

    // The tool and the library open it on MDBX now, and it keeps working.
    let v: serde_json::Value = serde_json::from_str(&stdout(&aof(&["stat", "DIR", "--json"], dir))).unwrap();
    assert_eq!(v["index"]["backend"], "mdbx");
    assert_eq!(v["next_id"], 800);
    assert_ok(&aof_with_input(
        &["append", "DIR", "--segment-size", "4096"],
        dir,
        b"after mdbx\n",
    ));
    {
        let config = AofConfig::builder()
            .index_backend(IndexBackend::Mdbx)
            .build()
            .unwrap();
        let log = aof::open(dir, config).unwrap();
        assert_eq!(log.read(800).unwrap().unwrap(), &b"after mdbx"[..]);
        assert_eq!(log.read(77).unwrap().unwrap(), &b"record-77"[..]);
    }
    assert_ok(&aof(&["verify", "DIR"], dir));

    let out = aof(&["index", "migrate", "DIR", "--to", "sqlite"], dir);
    assert_ok(&out);
    assert!(dir.join("index.sqlite").is_file());
    assert!(!dir.join("index.mdbx").exists());
    assert!(dir.join("index.mdbx.bak").is_file());
    let log = aof::open(dir, AofConfig::default()).unwrap();
    assert_eq!(log.next_id(), 801);
    assert_eq!(log.read(800).unwrap().unwrap(), &b"after mdbx"[..]);
    drop(log);
    assert_ok(&aof(&["verify", "DIR"], dir));
    assert_eq!(
        log_identity_of_sqlite_index(dir),
        identity,
        "migration back lost it"
    );
}

/// The log identity in the SQLite index of the log in `dir`; gives the
/// index one first if it has none.
fn log_identity_of_sqlite_index(dir: &Path) -> aof::format::LogId {
    use aof::format::SegmentIndex;
    let index = aof::index_sqlite::SqliteSegmentIndex::open(dir.join("index.sqlite")).unwrap();
    match index.log_identity().unwrap() {
        Some(id) => id,
        None => {
            let id = aof::format::LogId(0x5eed_0000_0000_0000_0000_0000_0000_1d1d);
            index.set_log_identity(id).unwrap();
            index.sync().unwrap();
            id
        }
    }
}

/// A crash between the two renames leaves both index files; commands refuse
/// the directory until the migration is run again, which finishes it.
#[test]
fn an_interrupted_migration_is_refused_then_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 300);
    assert_ok(&aof(&["index", "migrate", "DIR", "--to", "mdbx"], dir));
    // Back to the state just before the commit rename.
    std::fs::rename(dir.join("index.sqlite.bak"), dir.join("index.sqlite")).unwrap();
    assert_error(&aof(&["stat", "DIR"], dir), 1, "both index.sqlite and index.mdbx");
    let out = aof(&["index", "migrate", "DIR", "--to", "mdbx"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dir.join("index.sqlite").exists());
    assert_eq!(aof(&["read", "DIR", "299"], dir).stdout, b"record-299");
}

/// SQLite: online, while this process holds the log open. MDBX opens its
/// environment exclusively, so its backup needs the log closed, and says so.
#[test]
fn index_backup_copies_the_index_consistently() {
    for backend in [IndexBackend::Sqlite, IndexBackend::Mdbx] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let copy = tmp.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        let config = AofConfig::builder()
            .segment_size(4096)
            .index_backend(backend)
            .build()
            .unwrap();
        let log = aof::open(&dir, config.clone()).unwrap();
        for i in 0..500 {
            log.append(format!("r{i}").as_bytes()).unwrap();
        }
        let segments = log.index().len().unwrap();
        let backup = || aof(&["index", "backup", "DIR", copy.to_str().unwrap()], &dir);
        let log = if backend == IndexBackend::Mdbx {
            assert_error(&backup(), 1, "holds its MDBX index exclusively");
            log.close_blocking().unwrap();
            None
        } else {
            Some(log)
        };
        let out = backup();
        assert_ok(&out);
        assert!(
            stdout(&out).contains(&format!("{segments} segment entries")),
            "{}",
            stdout(&out)
        );
        let name = if backend == IndexBackend::Mdbx {
            "index.mdbx"
        } else {
            "index.sqlite"
        };
        assert!(copy.join(name).is_file());
        assert_error(
            &aof(
                &["index", "backup", "DIR", copy.join(name).to_str().unwrap()],
                &dir,
            ),
            1,
            "already exists",
        );
        // The copy with the finalized segment files is a log that opens and reads.
        if let Some(log) = log {
            log.close_blocking().unwrap();
        }
        for f in segment_files(&dir) {
            std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
        }
        let out = aof(&["read", "DIR", "10"], &copy);
        assert_ok(&out);
        assert_eq!(out.stdout, b"r10");
    }
}

#[test]
fn a_directory_that_is_not_a_log_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
    for args in [
        &["read", "DIR", "0"][..],
        &["dump", "DIR"],
        &["tail", "DIR"],
        &["verify", "DIR"],
        &["stat", "DIR"],
        &["index", "migrate", "DIR", "--to", "mdbx"],
        &["index", "backup", "DIR", "/tmp/never-written"],
    ] {
        assert_error(
            &aof(args, tmp.path()),
            1,
            "is not an aof log: no segment files or index",
        );
    }
    // append does not take over a directory that holds other things.
    assert_error(
        &aof_with_input(&["append", "DIR"], tmp.path(), b"x\n"),
        1,
        "is not an aof log",
    );
    assert!(!tmp.path().join("index.sqlite").exists());
    // A file is not a log directory either.
    assert_error(
        &aof(&["stat", "DIR"], &tmp.path().join("notes.txt")),
        1,
        "is not a directory",
    );
}

#[test]
fn a_missing_directory_is_refused_except_by_append() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    for args in [
        &["read", "DIR", "0"][..],
        &["dump", "DIR"],
        &["tail", "-f", "DIR"],
        &["stat", "DIR"],
        &["verify", "DIR"],
    ] {
        assert_error(&aof(args, &missing), 1, "does not exist");
    }
    assert!(!missing.exists(), "nothing may create it");
}

/// Reading commands open the log read-only: they work beside a writer in
/// another process and see its durable records, on either index backend
/// (MDBX, which a writer opens exclusively, is not touched: the view
/// rebuilds its entries from the segment files). Writing ones are refused.
#[test]
fn reads_work_beside_a_writer_and_writes_are_refused() {
    reads_beside_a_writer(aof::IndexBackend::Sqlite);
}

#[test]
fn reads_work_beside_a_writer_on_an_mdbx_log_too() {
    reads_beside_a_writer(aof::IndexBackend::Mdbx);
}

fn reads_beside_a_writer(backend: aof::IndexBackend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = AofConfig::builder().index_backend(backend).build().unwrap();
    let log = aof::open(dir, config).unwrap();
    log.append(b"held").unwrap();
    for args in [
        &["read", "DIR", "0"][..],
        &["dump", "DIR"],
        &["verify", "DIR"],
        &["stat", "DIR"],
    ] {
        let out = aof(args, dir);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(aof(&["read", "DIR", "0"], dir).stdout, b"held");
    let other = if backend == aof::IndexBackend::Mdbx {
        "sqlite"
    } else {
        "mdbx"
    };
    for args in [
        &["index", "migrate", "DIR", "--to", other][..],
        &["repair", "DIR"],
    ] {
        assert_error(&aof(args, dir), 1, "is locked by another writer");
    }
    assert_error(
        &aof_with_input(&["append", "DIR"], dir, b"x\n"),
        1,
        "is locked by another writer",
    );
    // tail reads without the lock.
    let out = aof(&["tail", "DIR"], dir);
    assert_ok(&out);
    assert!(stdout(&out).ends_with("\theld\n"));
    drop(log);
    assert_ok(&aof(&["read", "DIR", "0"], dir));
}

#[test]
fn bad_ids_and_bad_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_ok(&aof_with_input(&["append", "DIR"], dir, b"a\nb\n"));
    assert_error(&aof(&["read", "DIR", "2"], dir), 1, "no record 2");
    assert_error(
        &aof(&["read", "DIR", "18446744073709551615"], dir),
        1,
        "ids 0..=1",
    );
    // Usage errors are clap's: exit status 2.
    for args in [
        &["read", "DIR", "x"][..],
        &["read", "DIR"],
        &["frobnicate"],
        &["index", "migrate", "DIR", "--to", "lmdb"],
    ] {
        let out = aof(args, dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
    let empty = tempfile::tempdir().unwrap();
    assert_error(
        &aof(&["read", "DIR", "0"], empty.path()),
        1,
        "the directory is empty",
    );
}

#[test]
fn a_record_too_large_is_refused_after_the_lines_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut input = b"small\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend(b"\nnot reached\n");
    let out = aof_with_input(&["append", "DIR", "--segment-size", "4096"], dir, &input);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "0\n");
    let err = stderr(&out);
    assert!(
        err.starts_with("aof: line 2: record of 5000 bytes exceeds max_record_size"),
        "{err}"
    );
    assert_eq!(aof(&["read", "DIR", "0"], dir).stdout, b"small");
}

#[test]
fn a_closed_stdout_ends_dump_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 2000);
    let mut child = Command::new(BIN)
        .args(["dump"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("0\t"));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

/// Damage in the active segment, with valid records after it, is found when
/// the log is opened: every command that opens it names segment and offset.
#[test]
fn corruption_in_the_active_segment_is_named_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = aof_with_input(&["append", "DIR"], dir, b"first\nsecond\nthird\n");
    assert_ok(&out);
    let file = &segment_files(dir)[0];
    let mut bytes = std::fs::read(file).unwrap();
    // Second record: after the header (64) and the first record (32 + 5).
    bytes[64 + 37 + 32] ^= 0x40;
    std::fs::write(file, &bytes).unwrap();
    for args in [&["verify", "DIR"][..], &["read", "DIR", "0"], &["stat", "DIR"]] {
        assert_error(&aof(args, dir), 1, "corrupt record in segment 0 at offset 101");
    }
}

#[test]
fn append_creates_an_mdbx_log_on_request_and_keeps_an_existing_logs_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    assert_ok(&aof_with_input(
        &["append", "DIR", "--index", "mdbx"],
        &dir,
        b"on mdbx\n",
    ));
    assert!(dir.join("index.mdbx").is_file() && !dir.join("index.sqlite").exists());
    // No --index: the log's own backend.
    let out = aof_with_input(&["append", "DIR"], &dir, b"again\n");
    assert_ok(&out);
    assert_eq!(stdout(&out), "1\n");
    assert_error(
        &aof_with_input(&["append", "DIR", "--index", "sqlite"], &dir, b"x\n"),
        1,
        "uses the mdbx index, not sqlite",
    );
    assert_eq!(aof(&["read", "DIR", "1"], &dir).stdout, b"again");
}

/// Every file of `dir` (recursively) with its bytes.
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Bytes after the last record, beyond the recovery point, look like a torn
/// write. `verify` reports it and changes nothing (nor do read, dump, stat
/// and tail); `aof repair --dry-run` says what it would do, `aof repair`
/// does it (the bytes saved beside the segment), and then the log verifies.
#[test]
fn verify_reports_a_torn_tail_and_repair_cuts_it() {
    torn_tail_reported_then_repaired("sqlite");
}

#[test]
fn verify_reports_a_torn_tail_and_repair_cuts_it_on_an_mdbx_log() {
    torn_tail_reported_then_repaired("mdbx");
}

fn torn_tail_reported_then_repaired(backend: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_ok(&aof_with_input(
        &["append", "DIR", "--index", backend],
        dir,
        b"a\nb\nc\n",
    ));
    let file = &segment_files(dir)[0];
    let mut bytes = std::fs::read(file).unwrap();
    let end = 64 + 33 * 3;
    assert!(
        bytes[end..].iter().all(|b| *b == 0),
        "pre-allocated space after the records"
    );
    bytes[end..end + 20].fill(0x5a);
    std::fs::write(file, &bytes).unwrap();
    let before = tree(dir);
    let out = aof(&["verify", "DIR"], dir);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("aof: verification failed: the log needs repair"),
        "{err}"
    );
    assert!(
        err.contains(&format!("cut a torn tail of 20 bytes at offset {end}")),
        "{err}"
    );
    for args in [
        &["read", "DIR", "1"][..],
        &["dump", "DIR"],
        &["stat", "DIR"],
        &["stat", "DIR", "--json"],
        &["tail", "DIR", "-n", "2"],
        &["repair", "DIR", "--dry-run"],
    ] {
        let out = aof(args, dir);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(tree(dir) == before, "{args:?} changed the log directory");
    }
    let dry = stdout(&aof(&["repair", "DIR", "--dry-run"], dir));
    assert!(dry.contains("would cut a torn tail"), "{dry}");
    let out = aof(&["repair", "DIR"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("repaired"), "{}", stdout(&out));
    assert!(stderr(&out).contains("cut a torn tail"), "{}", stderr(&out));
    assert!(
        dir.join(format!(
            "{}.torn-{end}",
            file.file_name().unwrap().to_str().unwrap()
        ))
        .is_file()
    );
    // What is left verifies, and every record is still there.
    assert_ok(&aof(&["verify", "DIR"], dir));
    assert_eq!(stdout(&aof(&["repair", "DIR"], dir)), "nothing to repair\n");
    assert_eq!(
        aof(&["dump", "DIR"], dir)
            .stdout
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        3
    );
}

/// A bad last record that was durable is corruption, not a torn tail: the
/// error names segment and offset, and nothing is cut.
#[test]
fn a_damaged_durable_record_is_reported_not_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_ok(&aof_with_input(&["append", "DIR"], dir, b"a\nb\nc\n"));
    let file = &segment_files(dir)[0];
    let mut bytes = std::fs::read(file).unwrap();
    bytes[64 + 33 * 2 + 32] ^= 0x01;
    std::fs::write(file, &bytes).unwrap();
    let out = aof(&["verify", "DIR"], dir);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("corrupt record in segment 0 at offset 130"), "{err}");
    assert_eq!(std::fs::read(file).unwrap(), bytes, "nothing cut");
    assert!(segment_files(dir).len() == 1);
}

/// Issue 10's reproduction, command for command: 50 records appended with
/// `--sync`, then one more appended with a smaller `--segment-size`. The
/// second open cut all 50 as a "torn tail" and gave the new record id 0.
#[test]
fn a_later_smaller_segment_size_never_cuts_durable_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut big = Vec::new();
    for i in 0..50 {
        big.extend_from_slice(format!("big{i:03}-").as_bytes());
        big.extend(std::iter::repeat_n(b'x', 100_000));
        big.push(b'\n');
    }
    let out = aof_with_input(&["append", "DIR", "--sync"], &dir, &big);
    assert_ok(&out);
    assert_eq!(stdout(&out).lines().count(), 50);
    let out = aof_with_input(&["append", "DIR", "--segment-size", "65536"], &dir, b"small\n");
    assert_ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        "50",
        "the new record must follow the 50 durable ones"
    );
    for id in [0u64, 10, 49] {
        let out = aof(&["read", "DIR", &id.to_string()], &dir);
        assert_ok(&out);
        assert!(stdout(&out).starts_with(&format!("big{id:03}-xxx")));
    }
    let out = aof(&["read", "DIR", "50"], &dir);
    assert_ok(&out);
    assert_eq!(stdout(&out), "small");
}

#[test]
fn snapshot_export_piped_into_import_copies_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, 300);
    let target = tmp.path().join("copy");
    // export DIR - | import - TARGET, through a real pipe between the two.
    let mut export = Command::new(BIN)
        .args([
            "snapshot".as_ref(),
            "export".as_ref(),
            dir.as_os_str(),
            "-".as_ref(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let import = Command::new(BIN)
        .args([
            "snapshot".as_ref(),
            "import".as_ref(),
            "-".as_ref(),
            target.as_os_str(),
        ])
        .stdin(Stdio::from(export.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let export = export.wait_with_output().unwrap();
    assert_ok(&export);
    assert_ok(&import);
    assert!(
        stdout(&import).starts_with("imported ids 0..=299: "),
        "{}",
        stdout(&import)
    );
    let original = aof(&["dump", "DIR", "--json"], &dir);
    let copy = aof(&["dump", "DIR", "--json"], &target);
    assert_ok(&copy);
    assert_eq!(stdout(&copy), stdout(&original));
    assert_eq!(stdout(&copy).lines().count(), 300);
    // The copy verifies and takes appends after the snapshot's end.
    assert_ok(&aof(&["verify", "DIR"], &target));
    let out = aof_with_input(&["append", "DIR"], &target, b"next\n");
    assert_ok(&out);
    assert_eq!(stdout(&out), "300\n");
}

#[test]
fn snapshot_import_of_a_corrupted_stream_is_one_line_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, 50);
    let file = tmp.path().join("snap");
    let out = Command::new(BIN)
        .args([
            "snapshot".as_ref(),
            "export".as_ref(),
            dir.as_os_str(),
            file.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        stdout(&out).starts_with("exported ids 0..=49: "),
        "{}",
        stdout(&out)
    );
    // Exporting over an existing file is refused.
    let again = Command::new(BIN)
        .args([
            "snapshot".as_ref(),
            "export".as_ref(),
            dir.as_os_str(),
            file.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_error(&again, 1, "exists");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let target = tmp.path().join("copy");
    let out = Command::new(BIN)
        .args([
            "snapshot".as_ref(),
            "import".as_ref(),
            file.as_os_str(),
            target.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_error(&out, 1, "snapshot");
    assert!(!target.exists());
    assert!(!tmp.path().join(".copy.aof-import").exists());
    // Into a directory that holds a log: refused, the log untouched.
    let before = stdout(&aof(&["dump", "DIR"], &dir));
    std::fs::write(&file, std::fs::read(&file).unwrap()).unwrap();
    let out = Command::new(BIN)
        .args([
            "snapshot".as_ref(),
            "import".as_ref(),
            file.as_os_str(),
            dir.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_error(&out, 1, "not empty");
    assert_eq!(stdout(&aof(&["dump", "DIR"], &dir)), before);
}
