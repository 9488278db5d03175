//! The checks behind the engine targets: a log whose active or finalized
//! segment holds arbitrary bytes, opened through the public API on the
//! in-memory file system of `aof_core::testing`.
//!
//! Shared by the cargo-fuzz targets and by the proptest suites that run the
//! same checks where no nightly toolchain is available.

use crate::known::Avoid;
use crate::seal::{Knobs, Reseal, base_id, fix_footer, fix_segment_header, reseal_records};
use aof_core::layout::segment_file_name;
use aof_core::testing::FaultyFileSystem;
use aof_core::{Aof, AofOptions, FileSystem, OpenMode, TimeSource};
use aof_record::{
    AofConfig, AofError, FlushStrategy, MemorySegmentIndex, SEGMENT_HEADER_SIZE, SegmentEntry, SegmentFooter,
    SegmentIndex,
};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The log directory on the in-memory file system.
pub const DIR: &str = "/log";

/// Most records a check reads one by one, so that an input claiming
/// billions of records costs no more than a small one.
pub const READ_LIMIT: u64 = 2048;

/// A wall clock that advances 1 µs per reading, so runs are reproducible.
#[derive(Debug, Default)]
struct StepClock(AtomicU64);

impl TimeSource for StepClock {
    fn now_us(&self) -> u64 {
        1_700_000_000_000_000 + self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// A `max_record_size` chosen by a knob byte: the configuration's default,
/// a tiny one (so valid records become too large), or a power of two.
fn max_record_size(knob: u8) -> Option<u32> {
    match knob {
        0 => None,
        1..=127 => Some(u32::from(knob)),
        _ => Some(1 << (knob % 24)),
    }
}

fn config(max: Option<u32>, segment_knob: u8) -> AofConfig {
    let builder = AofConfig::builder()
        .segment_size(4096 << (segment_knob % 8))
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false);
    let builder = match max {
        Some(m) => builder.max_record_size(m),
        None => builder,
    };
    // A maximum the segment size cannot hold is refused; fall back to the default.
    builder.clone().build().unwrap_or_else(|_| {
        AofConfig::builder()
            .segment_size(4096 << (segment_knob % 8))
            .flush_strategy(FlushStrategy::Sync)
            .pre_allocate_enabled(false)
            .build()
            .expect("the default configuration is valid")
    })
}

/// Writes `data` as the file `name` of the log directory, synced.
fn put_file(fs: &FaultyFileSystem, name: &str, data: &[u8]) {
    let path = Path::new(DIR).join(name);
    let f = fs.open(&path, OpenMode::CreateNew).expect("create in memory");
    f.write_all_at(data, 0).expect("write in memory");
    f.sync_all().expect("sync in memory");
    fs.sync_dir(Path::new(DIR)).expect("sync dir in memory");
}

fn options(fs: &FaultyFileSystem, config: &AofConfig, rebuild: bool) -> AofOptions {
    let mut options = AofOptions::new(config.clone());
    options.fs = Arc::new(fs.clone());
    options.time = Arc::new(StepClock::default());
    options.rebuild_index = rebuild;
    options
}

/// Every record of an open log, read by id and through a reader, which must
/// agree. Returns the payloads of `first_id..` (at most [`READ_LIMIT`]);
/// `None` for a record whose stored payload does not decode (flags set on
/// bytes that are no compressed or encrypted payload): a typed error, the
/// same by id and through the reader, which steps past it.
fn read_back(log: &Aof) -> Vec<Option<Vec<u8>>> {
    let first = log.first_id();
    let next = log.next_id();
    assert!(first <= next, "first id {first} after next id {next}");
    let end = next.min(first.saturating_add(READ_LIMIT));
    let mut by_id = Vec::new();
    for id in first..end {
        match log.read(id) {
            Ok(Some(p)) => by_id.push(Some(p.to_vec())),
            Err(AofError::Payload { id: at, .. }) if at == id => by_id.push(None),
            other => panic!("record {id} of {first}..{next} after a clean open: {other:?}"),
        }
    }
    if next == end {
        assert_eq!(
            log.read(next).ok().flatten(),
            None,
            "a record at the next id {next}"
        );
    }
    let reader = log.reader(first).expect("one reader");
    let mut via_reader = Vec::new();
    for (i, r) in reader.take(by_id.len()).enumerate() {
        let id = first + i as u64;
        match r {
            Ok(r) => {
                assert_eq!(r.id, id, "reader skipped or repeated an id");
                via_reader.push(Some(r.payload.to_vec()));
            }
            Err(AofError::Payload { id: at, .. }) if at == id => via_reader.push(None),
            Err(e) => panic!("reader at {id}: {e}"),
        }
    }
    assert_eq!(via_reader, by_id, "reader and read by id disagree");
    by_id
}

/// Arbitrary bytes as the active segment of a log, which is then opened,
/// read back, appended to, closed and reopened.
///
/// Input: `[mode][base][max][segment size][file bytes...]`. Mode bits:
/// 0 write a valid segment header for `base` over the first 64 bytes (else
/// the bytes are the whole file, header included), 1 reseal the records'
/// checksums, 2 renumber them from `base`, 3 normalise their version,
/// flags and reserved bytes, 4 leave the segment out of the index (so
/// open either refuses the directory or, with bit 5, rebuilds the index
/// from the files), 6 append a record after opening, 7 close and reopen.
///
/// Checks: opening returns a typed error or a log; a log that opened reads
/// every record it reports by id and through a reader alike, verifies,
/// takes an append at its next id, and after a clean close reopens with the
/// same records.
pub fn active_segment(data: &[u8]) {
    let _opened = active_segment_avoiding(data, Avoid::from_env());
}

/// [`active_segment`], steering around the known findings in `avoid`.
/// Returns whether the log opened.
pub fn active_segment_avoiding(data: &[u8], avoid: Avoid) -> bool {
    let (k, bytes) = Knobs::<4>::split(data);
    let mut file = bytes.to_vec();
    let base = avoid.base_id(base_id(k.byte(1), &file));
    if k.bit(0, 0) {
        fix_segment_header(&mut file, base);
    }
    if k.bit(0, 1) && file.len() > SEGMENT_HEADER_SIZE {
        reseal_records(
            &mut file[SEGMENT_HEADER_SIZE..],
            Reseal {
                renumber: k.bit(0, 2).then_some(base),
                normalize: k.bit(0, 3),
            },
        );
    }
    if avoid.empty_finalized_loop && SegmentFooter::decode(&file).is_ok_and(|f| f.record_count == 0) {
        return false;
    }
    let fs = FaultyFileSystem::new();
    let name = segment_file_name(base);
    put_file(&fs, &name, &file);
    let index = Arc::new(MemorySegmentIndex::new());
    if !k.bit(0, 4) {
        let created = file
            .get(24..32)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        index
            .add_entry(&SegmentEntry::new_active(base, created, name))
            .expect("a fresh memory index takes an entry");
    }
    let config = config(max_record_size(k.byte(2)), k.byte(3));
    let open = |rebuild| Aof::open_with(DIR, options(&fs, &config, rebuild), index.clone());
    let log = match open(k.bit(0, 5)) {
        Ok(log) => log,
        Err(e) => {
            let _ = e.to_string();
            return false;
        }
    };
    let mut records = read_back(&log);
    let complete = log.next_id() - log.first_id() <= READ_LIMIT;
    if let Err(e) = log.verify(&mut |_, _| {}) {
        panic!("a log that opened cleanly fails verify: {e}");
    }
    if k.bit(0, 6) {
        let next = log.next_id();
        if let Ok(id) = log.append(b"appended by the fuzzer") {
            assert_eq!(id, next, "an append after recovery got a wrong id");
            records.push(Some(b"appended by the fuzzer".to_vec()));
        }
    }
    let first = log.first_id();
    let closed = log.close_blocking();
    if k.bit(0, 7) && closed.is_ok() {
        let again = open(false).unwrap_or_else(|e| panic!("a cleanly closed log does not reopen: {e}"));
        assert_eq!(again.first_id(), first, "reopen moved the first id");
        let reread = read_back(&again);
        if complete {
            assert_eq!(reread, records, "reopen changed the records");
        }
        let _ = again.close_blocking();
    }
    true
}

/// Arbitrary bytes as a finalized segment (the index says so), followed by
/// an active segment the open creates; then every id in and around the
/// segment is read, the log verified and, on request, truncated.
///
/// Input: `[mode][base][max][count][file bytes...]`. Mode bits: 0 write a
/// valid segment header for `base`, 1 reseal the records' checksums up to
/// the footer's data end, 2 renumber them from `base`, 3 normalise them,
/// 4 make the footer consistent (lengths, table and footer checksums), 5
/// also fix its data checksum, 6 `truncate_after` an id in the segment, 7
/// `truncate_before` one. `count`: if even, the index entry claims the
/// footer's record count; if odd, `count / 2`.
///
/// Checks: open and every read, reader, verify and truncation return a
/// typed error or a value, never panic; when `verify` passes, every id it
/// vouched for reads back.
pub fn finalized_segment(data: &[u8]) {
    let _opened = finalized_segment_avoiding(data, Avoid::from_env());
}

/// [`finalized_segment`], steering around the known findings in `avoid`.
/// Returns whether the log opened.
pub fn finalized_segment_avoiding(data: &[u8], avoid: Avoid) -> bool {
    let (k, bytes) = Knobs::<4>::split(data);
    let mut file = bytes.to_vec();
    let base = avoid.base_id(base_id(k.byte(1), &file));
    if k.bit(0, 0) {
        fix_segment_header(&mut file, base);
    }
    if k.bit(0, 4) {
        fix_footer(&mut file, false);
    }
    if k.bit(0, 1) {
        let data_end = SegmentFooter::decode(&file).map_or(file.len(), |f| f.data_end as usize);
        if let Some(region) = file.get_mut(SEGMENT_HEADER_SIZE..data_end) {
            reseal_records(
                region,
                Reseal {
                    renumber: k.bit(0, 2).then_some(base),
                    normalize: k.bit(0, 3),
                },
            );
        }
    }
    if k.bit(0, 4) {
        fix_footer(&mut file, k.bit(0, 5));
    }
    let footer_count = SegmentFooter::decode(&file).map_or(0, |f| f.record_count);
    let claimed = if k.byte(3) & 1 == 0 {
        footer_count
    } else {
        u64::from(k.byte(3) >> 1)
    };
    // An entry's ids must fit in u64: clamp the count at the last id.
    let mut count = claimed.min((u64::MAX - base).saturating_add(1));
    if avoid.empty_finalized_loop {
        count = count.max(1);
    }
    let fs = FaultyFileSystem::new();
    let name = segment_file_name(base);
    put_file(&fs, &name, &file);
    let created = file
        .get(24..32)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    let last = count.checked_sub(1).map(|c| base + c);
    let entry = SegmentEntry::new_active(base, created, name)
        .finalize(
            last,
            file.len() as u64,
            aof_record::checksum::crc64_nvme(&file),
            created,
        )
        .expect("an active entry finalizes");
    let index = Arc::new(MemorySegmentIndex::new());
    index
        .add_entry(&entry)
        .expect("a fresh memory index takes an entry");
    let config = config(max_record_size(k.byte(2)), 0);
    let log = match Aof::open_with(DIR, options(&fs, &config, false), index) {
        Ok(log) => log,
        Err(e) => {
            let _ = e.to_string();
            return false;
        }
    };
    let span = count.min(READ_LIMIT);
    let mut readable = Vec::new();
    let mut undecodable = Vec::new();
    for id in base.saturating_sub(1)..=base.saturating_add(span) {
        match log.read(id) {
            Ok(Some(p)) => readable.push((id, p.len())),
            Ok(None) => {}
            Err(AofError::Payload { id: at, .. }) if at == id => undecodable.push(id),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    if let Ok(reader) = log.reader(base) {
        for r in reader.take(span as usize + 1) {
            if r.is_err() {
                break;
            }
        }
    }
    if log.verify(&mut |_, _| {}).is_ok() {
        let first = log.first_id();
        let end = log.next_id().min(base.saturating_add(span));
        for id in first..end {
            assert!(
                readable.iter().any(|(r, _)| *r == id) || undecodable.contains(&id),
                "verify passed but record {id} of {first}..{} does not read",
                log.next_id()
            );
        }
    }
    let pick = base.saturating_add(u64::from(k.byte(3)) % count.saturating_add(1));
    let truncate = !avoid.offset_table_unchecked || offset_table_is_sane(&file);
    if k.bit(0, 6) && truncate {
        let _ = log.truncate_after(pick).map_err(|e| e.to_string());
        let _ = log.read(pick);
        let _ = log.verify(&mut |_, _| {});
    }
    if k.bit(0, 7) && truncate {
        let _ = log.truncate_before(pick).map_err(|e| e.to_string());
        let _ = log.read(pick);
    }
    let _ = log.close_blocking();
    true
}

/// Whether the offset table of the finalized segment `file` (if its footer
/// decodes) starts after the header, increases, and stays inside the data.
fn offset_table_is_sane(file: &[u8]) -> bool {
    let Ok(f) = SegmentFooter::decode(file) else {
        return true;
    };
    let mut last = None;
    (0..f.record_count).all(|i| {
        let Some(o) = f.offset_of(file, i) else {
            return false;
        };
        let ok = o >= SEGMENT_HEADER_SIZE as u64 && o < f.data_end && last.is_none_or(|l| o > l);
        last = Some(o);
        ok
    })
}
