//! The checked-in archive object of format version 1, read forever.
//!
//! `tests/fixtures/v1-object.seg.zst` is `tests/fixtures/v1-segment.bin`
//! written with level 3 and 1,000-byte frames (three frames). Regenerate it
//! only for a new format version: `AOF_WRITE_FIXTURE=1 cargo test -p
//! aof-archive-format --test fixture`.

use aof_archive_format::{Footer, SeekTable, SeekableWriter, WriterOptions, decode_frame, restore};
use aof_record::checksum::crc64_nvme;
use std::io::Write;
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

const OPTIONS: WriterOptions = WriterOptions {
    level: 3,
    frame_size: 1000,
    workers: 1,
};

#[test]
fn the_v1_fixture_object_reads_back() {
    let segment = std::fs::read(fixture("v1-segment.bin")).unwrap();
    if std::env::var_os("AOF_WRITE_FIXTURE").is_some() {
        let mut w = SeekableWriter::new(Vec::new(), OPTIONS).unwrap();
        w.write_all(&segment).unwrap();
        std::fs::write(fixture("v1-object.seg.zst"), w.finish().unwrap().0).unwrap();
    }
    let object = std::fs::read(fixture("v1-object.seg.zst")).unwrap();

    // The seek table, byte by byte as docs/format.md gives it.
    let footer = Footer::decode(&object).unwrap();
    assert_eq!((footer.frames, footer.checksums), (3, true));
    let table_len = footer.table_len();
    assert_eq!(table_len, 8 + 3 * 12 + 9);
    let table_bytes = &object[object.len() - table_len..];
    assert_eq!(&table_bytes[..4], &[0x5E, 0x2A, 0x4D, 0x18]);
    assert_eq!(&table_bytes[4..8], &((3 * 12 + 9) as u32).to_le_bytes());
    assert_eq!(&object[object.len() - 5..], &[0x80, 0xB1, 0xEA, 0x92, 0x8F]);
    let table = SeekTable::decode(table_bytes, Some(object.len() as u64)).unwrap();
    let sizes: Vec<u32> = table.entries().iter().map(|e| e.decompressed_size).collect();
    assert_eq!(sizes, [1000, 1000, 500]);

    // Every frame alone, and the frame that holds byte 1,234.
    for i in 0..table.frames() {
        let f = table.frame(i).unwrap();
        let bytes = decode_frame(
            &object[f.compressed.start as usize..f.compressed.end as usize],
            &f,
        )
        .unwrap();
        assert_eq!(
            bytes,
            &segment[f.decompressed.start as usize..f.decompressed.end as usize]
        );
        // Each frame starts with the zstd magic number.
        assert_eq!(
            &object[f.compressed.start as usize..][..4],
            &[0x28, 0xB5, 0x2F, 0xFD]
        );
    }
    assert_eq!(table.frame_at(1234).unwrap().index, 1);

    // The whole object restores to the segment, by this crate and by the zstd CLI.
    let mut out = Vec::new();
    restore(&object[..], &mut out, Some(crc64_nvme(&segment))).unwrap();
    assert_eq!(out, segment);
    match std::process::Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .arg(fixture("v1-object.seg.zst"))
        .output()
    {
        Ok(o) => {
            assert!(
                o.status.success(),
                "zstd -d failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(o.stdout, segment, "zstd -d did not restore the segment");
        }
        Err(e) => eprintln!("SKIPPED the zstd CLI check: {e}"),
    }
}
