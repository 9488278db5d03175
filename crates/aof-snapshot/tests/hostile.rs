//! Hostile and broken input: each case gets its typed error and leaves the
//! target untouched (absent, or as it was) with no staging directory left.

mod common;

use aof_snapshot::wire::{FRAME_HEADER_LEN, FrameReader};
use aof_snapshot::{
    FileKind, ImportOptions, Importer, NameProblem, SnapshotChunk, SnapshotError, SnapshotResult,
};
use bytes::Bytes;
use common::{chunks, encode, filled};
use std::path::Path;

/// A small log's chunks: MANIFEST, a few sealed segments, the active one.
fn sample() -> (tempfile::TempDir, Vec<SnapshotChunk>) {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(&dir.path().join("src"), 200, 16 * 1024);
    let c = chunks(&log, 4096);
    (dir, c)
}

fn import_chunks(dir: &Path, chunks: Vec<SnapshotChunk>, options: &ImportOptions) -> SnapshotResult<()> {
    let target = dir.join("target");
    let result = (|| {
        let mut imp = Importer::new(&target, options)?;
        for c in chunks {
            imp.push(c)?;
        }
        imp.finish().map(drop)
    })();
    assert_untouched(dir);
    result
}

fn assert_untouched(dir: &Path) {
    assert!(!dir.join("target").exists(), "the target appeared");
    assert!(!dir.join(".target.aof-import").exists(), "staging left behind");
}

fn file_chunk_index(chunks: &[SnapshotChunk], n: usize) -> usize {
    chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.file_chunk.is_some())
        .nth(n)
        .unwrap()
        .0
}

macro_rules! refused {
    ($mutate:expr, $pattern:pat) => {{
        let (dir, mut c) = sample();
        #[allow(clippy::redundant_closure_call)]
        ($mutate)(&mut c);
        let err = import_chunks(dir.path(), c, &ImportOptions::new()).unwrap_err();
        assert!(matches!(err, $pattern), "{err:?}");
        // One line, for the CLI.
        assert!(!err.to_string().contains('\n'), "{err}");
    }};
}

#[test]
fn the_unmodified_sample_imports() {
    let (dir, c) = sample();
    let target = dir.path().join("target");
    let mut imp = Importer::new(&target, &ImportOptions::new()).unwrap();
    for chunk in c {
        imp.push(chunk).unwrap();
    }
    imp.finish().unwrap();
    assert!(target.join("MANIFEST").exists());
    assert!(!dir.path().join(".target.aof-import").exists());
}

fn rename_file(c: &mut [SnapshotChunk], to: &str) {
    let md = c[0].metadata.as_mut().unwrap();
    let old = md.files[1].name.clone();
    md.files[1].name = to.to_owned();
    for ch in c.iter_mut() {
        if let Some(f) = &mut ch.file_chunk
            && f.file_name == old
        {
            f.file_name = to.to_owned();
        }
    }
}

#[test]
fn bad_file_names_are_refused() {
    refused!(
        |c: &mut Vec<SnapshotChunk>| rename_file(c, "../../etc/x.seg"),
        SnapshotError::InvalidFileName {
            problem: NameProblem::Traversal,
            ..
        }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| rename_file(c, "/tmp/00000000000000000000.seg"),
        SnapshotError::InvalidFileName {
            problem: NameProblem::Absolute,
            ..
        }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| rename_file(c, "index.sqlite"),
        SnapshotError::InvalidFileName {
            problem: NameProblem::Unknown,
            ..
        }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let md = c[0].metadata.as_mut().unwrap();
            let dup = md.files[1].clone();
            md.files.insert(2, dup);
        },
        SnapshotError::DuplicateFile { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let md = c[0].metadata.as_mut().unwrap();
            md.files[0].kind = FileKind::Segment;
        },
        SnapshotError::InvalidFileName {
            problem: NameProblem::Unknown,
            ..
        }
    );
}

#[test]
fn sizes_beyond_or_short_of_the_metadata_are_refused() {
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let i = file_chunk_index(c, 1);
            let f = c[i].file_chunk.as_mut().unwrap();
            let mut d = f.data.to_vec();
            d.extend_from_slice(&[0; 100]);
            f.data = Bytes::from(d);
        },
        SnapshotError::Size { .. } | SnapshotError::Offset { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            // The metadata says the first segment is longer than its data.
            let md = c[0].metadata.as_mut().unwrap();
            md.files[1].size += 1;
            md.total_size += 1;
        },
        SnapshotError::Size { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            c[0].metadata.as_mut().unwrap().total_size += 1;
        },
        SnapshotError::InvalidMetadata { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let i = file_chunk_index(c, 2);
            c[i].file_chunk.as_mut().unwrap().offset += 1;
        },
        SnapshotError::Offset { .. }
    );
}

#[test]
fn a_chunk_above_the_limit_is_refused() {
    let (dir, c) = sample();
    let err = import_chunks(dir.path(), c, &ImportOptions::new().max_chunk_size(1024)).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::ChunkTooLarge {
                len: 4096,
                max: 1024,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn sequence_gaps_repeats_and_reorderings_are_refused() {
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            c.remove(3);
        },
        SnapshotError::Sequence {
            expected: 3,
            found: 4
        }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let dup = c[3].clone();
            c.insert(4, dup);
        },
        SnapshotError::Sequence {
            expected: 4,
            found: 3
        }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| c.swap(3, 4),
        SnapshotError::Sequence {
            expected: 3,
            found: 4
        }
    );
    // Renumbered after a swap: the sequence is fine, the files' data is not.
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let (a, b) = (file_chunk_index(c, 1), file_chunk_index(c, 2));
            c.swap(a, b);
            c[a].sequence = a as u64;
            c[b].sequence = b as u64;
        },
        SnapshotError::Offset { .. } | SnapshotError::UnexpectedFile { .. }
    );
}

#[test]
fn metadata_out_of_place_is_refused() {
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let md = c[0].metadata.clone();
            c[2].metadata = md;
        },
        SnapshotError::UnexpectedMetadata { sequence: 2 }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| c[0].metadata = None,
        SnapshotError::MissingMetadata
    );
}

#[test]
fn a_missing_final_chunk_or_data_after_it_is_refused() {
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            c.pop();
        },
        SnapshotError::MissingFinalChunk { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            // The stream stops after some files: the final chunk comes early.
            let i = file_chunk_index(c, 2);
            let mut fin = c.last().unwrap().clone();
            c.truncate(i);
            fin.sequence = i as u64;
            c.push(fin);
        },
        SnapshotError::Size { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let mut extra = c[1].clone();
            extra.sequence = c.len() as u64;
            c.push(extra);
        },
        SnapshotError::DataAfterFinal
    );
}

#[test]
fn an_unknown_version_is_refused() {
    refused!(
        |c: &mut Vec<SnapshotChunk>| c[0].metadata.as_mut().unwrap().version = 2,
        SnapshotError::UnsupportedVersion { version: 2, .. }
    );
    // In the frame header.
    let (dir, c) = sample();
    let mut bytes = encode(&c);
    bytes[4] = 9;
    let err = aof_snapshot::import_from(
        &bytes[..],
        dir.path().join("target"),
        &ImportOptions::new(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, SnapshotError::UnsupportedVersion { version: 9, .. }),
        "{err:?}"
    );
    assert_untouched(dir.path());
}

#[test]
fn checksum_mismatches_are_refused() {
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            let i = file_chunk_index(c, 3);
            let f = c[i].file_chunk.as_mut().unwrap();
            let mut d = f.data.to_vec();
            d[100] ^= 1;
            f.data = Bytes::from(d);
        },
        SnapshotError::FileChecksum { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            c.last_mut().unwrap().checksum.as_mut().unwrap()[0] ^= 1;
        },
        SnapshotError::Checksum { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            // Metadata changed without touching any file: only the overall
            // checksum binds it.
            c[0].metadata.as_mut().unwrap().snapshot_id ^= 1;
        },
        SnapshotError::Checksum { .. }
    );
    refused!(
        |c: &mut Vec<SnapshotChunk>| {
            c[0].metadata.as_mut().unwrap().last_id = Some(10);
        },
        SnapshotError::Checksum { .. }
    );
    // A flipped bit in the byte stream: the frame's CRC.
    let (dir, c) = sample();
    let mut bytes = encode(&c);
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    let err = aof_snapshot::import_from(
        &bytes[..],
        dir.path().join("target"),
        &ImportOptions::new(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::FrameChecksum { .. }
                | SnapshotError::BadMagic { .. }
                | SnapshotError::FrameTooLarge { .. }
        ),
        "{err:?}"
    );
    assert_untouched(dir.path());
}

#[test]
fn stream_level_damage_is_refused() {
    let (dir, c) = sample();
    let bytes = encode(&c);
    let import = |b: &[u8]| {
        let r = aof_snapshot::import_from(
            b,
            dir.path().join("target"),
            &ImportOptions::new(),
            &mut |_, _| {},
        );
        assert_untouched(dir.path());
        r.unwrap_err()
    };
    // Cut inside a frame, and at a frame boundary before the final chunk.
    assert!(matches!(
        import(&bytes[..bytes.len() - 5]),
        SnapshotError::Truncated { .. }
    ));
    let mut frames = FrameReader::new(&bytes[..]);
    let mut boundary = 0;
    for _ in 0..3 {
        frames.next_chunk().unwrap().unwrap();
        boundary = frames.offset();
    }
    assert!(matches!(
        import(&bytes[..boundary as usize]),
        SnapshotError::MissingFinalChunk { chunks: 3 }
    ));
    // Not a snapshot at all.
    assert!(matches!(
        import(b"hello, this is not a snapshot stream"),
        SnapshotError::BadMagic { .. }
    ));
    // A length above the limit is refused before anything is allocated.
    let mut big = bytes.clone();
    big[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(import(&big), SnapshotError::FrameTooLarge { .. }));
    // Unknown flags.
    let mut flags = bytes.clone();
    flags[6] = 1;
    assert!(matches!(
        import(&flags),
        SnapshotError::UnknownFlags { flags: 1, .. }
    ));
    // Garbage after the final chunk.
    let mut tail = bytes.clone();
    tail.extend_from_slice(&bytes[..FRAME_HEADER_LEN]);
    assert!(matches!(import(&tail), SnapshotError::Truncated { .. }));
}

#[test]
fn a_target_that_is_not_empty_is_left_alone() {
    let (dir, c) = sample();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("precious"), b"keep me").unwrap();
    let err = aof_snapshot::import_from(&encode(&c)[..], &target, &ImportOptions::new(), &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, SnapshotError::TargetNotEmpty { .. }), "{err:?}");
    assert_eq!(std::fs::read(target.join("precious")).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    assert!(!dir.path().join(".target.aof-import").exists());
    // An empty directory is a fine target.
    std::fs::remove_file(target.join("precious")).unwrap();
    aof_snapshot::import_from(&encode(&c)[..], &target, &ImportOptions::new(), &mut |_, _| {}).unwrap();
    assert!(target.join("MANIFEST").exists());
}

#[test]
fn a_stale_staging_directory_is_cleared() {
    let (dir, c) = sample();
    let staging = dir.path().join(".target.aof-import");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("00000000000000000000.seg"), b"half a segment").unwrap();
    let target = dir.path().join("target");
    aof_snapshot::import_from(&encode(&c)[..], &target, &ImportOptions::new(), &mut |_, _| {}).unwrap();
    assert!(!staging.exists());
    let log = common::open(&target, 16 * 1024, true);
    assert_eq!(log.durable_id(), Some(199));
}

#[test]
fn a_bad_segment_with_matching_digests_is_caught_by_the_staged_open() {
    // A sender that hashes what it sends (so every SHA-256 matches) but
    // sends a segment whose data CRC is broken: the check of the staged
    // log refuses it, and nothing is installed.
    let (dir, mut c) = sample();
    let i = file_chunk_index(&c, 1);
    let f = c[i].file_chunk.as_mut().unwrap();
    let mut d = f.data.to_vec();
    d[200] ^= 0xff;
    f.data = Bytes::from(d);
    // Recompute the digests as a consistent (but wrong) sender would.
    let md = c[0].metadata.clone().unwrap();
    let mut digests = Vec::new();
    let mut per_file: Vec<Vec<u8>> = vec![Vec::new(); md.files.len()];
    for ch in &c {
        if let Some(f) = &ch.file_chunk {
            let k = md.files.iter().position(|x| x.name == f.file_name).unwrap();
            per_file[k].extend_from_slice(&f.data);
        }
    }
    for data in &per_file {
        use sha2::Digest as _;
        digests.push(<[u8; 32]>::from(sha2::Sha256::digest(data)));
    }
    for ch in &mut c {
        if let Some(f) = &mut ch.file_chunk
            && f.is_last_chunk
        {
            let k = md.files.iter().position(|x| x.name == f.file_name).unwrap();
            f.sha256 = Some(digests[k]);
        }
    }
    c.last_mut().unwrap().checksum = Some(aof_snapshot::snapshot_checksum(&md, &digests).unwrap());
    let err = import_chunks(dir.path(), c, &ImportOptions::new()).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::StagedLog {
                what: "the segment's data checksum does not match",
                ..
            }
        ),
        "{err:?}"
    );
}
