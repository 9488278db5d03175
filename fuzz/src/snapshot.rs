//! The `snapshot_stream` harness: arbitrary bytes as a snapshot stream,
//! decoded frame by frame and imported into a log directory on the
//! in-memory `FaultyFileSystem`.
//!
//! Input: `[mode][bytes...]`. Mode bit 0 clear: the bytes are the stream.
//! Set: the bytes are payloads `[u32 LE length][payload]...`, each wrapped
//! here in a valid frame (magic, version, flags, length, CRC), so that
//! mutations reach the bincode decoder and the importer's checks behind the
//! frame CRC.
//!
//! Checks: no panic; a failed import leaves no log at the target and no
//! staging directory; a successful one leaves a log that opens (index
//! rebuilt), matches its metadata (`Imported::check`) and reads every id it
//! holds.
//!
//! Self-contained (no `crate::` paths): `crates/aof-snapshot/tests/arbitrary_snapshots.rs`
//! includes this file to run the same checks on stable.

use aof_core::testing::FaultyFileSystem;
use aof_core::{Aof, AofOptions, FileSystem};
use aof_record::checksum::Crc64;
use aof_record::{AofConfig, FlushStrategy, MemorySegmentIndex};
use aof_snapshot::wire::{FRAME_MAGIC, FrameReader, FrameWriter};
use aof_snapshot::{ExportOptions, ImportOptions};
use std::path::Path;
use std::sync::Arc;

const TARGET: &str = "/s/log";
const STAGING: &str = "/s/.log.aof-import";

/// Wraps each `[u32 LE length][payload]` of `input` in a valid frame; a
/// length past the end takes what is left.
#[must_use]
pub fn frames_of(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while input.len() >= 4 {
        let len = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
        let payload = &input[4..4 + len.min(input.len() - 4)];
        input = &input[4 + payload.len()..];
        let mut head = Vec::with_capacity(20);
        head.extend_from_slice(&FRAME_MAGIC);
        head.extend_from_slice(&aof_snapshot::WIRE_VERSION.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let mut crc = Crc64::new();
        crc.update(&head);
        crc.update(payload);
        head.extend_from_slice(&crc.finish().to_le_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(payload);
    }
    out
}

/// The inverse of [`frames_of`] for a valid stream: its payloads, each
/// behind its length.
#[must_use]
pub fn payloads_of(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 20 <= stream.len() {
        let len =
            u32::from_le_bytes([stream[at + 8], stream[at + 9], stream[at + 10], stream[at + 11]]) as usize;
        let end = (at + 20 + len).min(stream.len());
        out.extend_from_slice(&((end - at - 20) as u32).to_le_bytes());
        out.extend_from_slice(&stream[at + 20..end]);
        at = end;
    }
    out
}

/// A valid snapshot stream of a small log (three segments of a few
/// records), taken on the in-memory file system.
#[must_use]
pub fn valid_stream(records: u64, chunk_size: usize) -> Vec<u8> {
    let fs = FaultyFileSystem::new();
    let mut options = AofOptions::new(
        AofConfig::builder()
            .segment_size(4096)
            .flush_strategy(FlushStrategy::Sync)
            .pre_allocate_enabled(false)
            .build()
            .expect("config"),
    );
    options.fs = Arc::new(fs);
    let log = Aof::open_with("/src", options, Arc::new(MemorySegmentIndex::new())).expect("open");
    for i in 0..records {
        log.append(format!("record {i} {}", "x".repeat((i % 7) as usize * 100)).as_bytes())
            .expect("append");
    }
    let mut w = FrameWriter::new(Vec::new());
    let options = ExportOptions::new().chunk_size(chunk_size).expect("chunk size");
    for c in aof_snapshot::export(&log, options).expect("export") {
        w.write_chunk(&c.expect("chunk")).expect("frame");
    }
    w.finish().expect("finish")
}

/// Seeds: a valid stream raw (mode 0) and as payloads (mode 1), and an
/// empty log's.
#[must_use]
pub fn seeds() -> Vec<Vec<u8>> {
    let stream = valid_stream(12, 1024);
    let empty = valid_stream(0, 1024);
    let with = |mode: u8, bytes: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(bytes);
        v
    };
    vec![
        with(0, &stream),
        with(1, &payloads_of(&stream)),
        with(1, &payloads_of(&empty)),
    ]
}

/// Runs the checks on one input (see the module documentation).
pub fn snapshot_stream(data: &[u8]) {
    let (mode, rest) = data.split_first().map_or((0, &[][..]), |(m, r)| (*m, r));
    let bytes = if mode & 1 == 1 {
        frames_of(rest)
    } else {
        rest.to_vec()
    };
    let mut frames = FrameReader::new(&bytes[..]);
    while let Ok(Some(_)) = frames.next_chunk() {}

    let fs = FaultyFileSystem::new();
    let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let options = ImportOptions::new().file_system(dyn_fs.clone());
    let result = aof_snapshot::import_from(&bytes[..], TARGET, &options, &mut |_, _| {});
    assert!(
        !fs.exists(Path::new(STAGING)).expect("exists"),
        "the staging directory was left behind ({result:?})"
    );
    let imported = match result {
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
            let target = Path::new(TARGET);
            assert!(
                !fs.exists(target).expect("exists") || fs.list(target).expect("list").is_empty(),
                "a failed import installed files: {e}"
            );
            return;
        }
        Ok(imported) => imported,
    };
    let mut options = AofOptions::new(AofConfig::default());
    options.fs = dyn_fs;
    options.rebuild_index = true;
    let log = Aof::open_with(TARGET, options, Arc::new(MemorySegmentIndex::new()))
        .unwrap_or_else(|e| panic!("an imported log does not open: {e}"));
    imported
        .check(&log)
        .unwrap_or_else(|e| panic!("an imported log is not its snapshot: {e}"));
    if let Some(last) = imported.metadata.last_id {
        for id in imported.metadata.first_id..=last.min(imported.metadata.first_id + 10_000) {
            assert!(
                log.read(id).expect("read").is_some(),
                "record {id} of an imported log is missing"
            );
        }
    }
}
