//! Objects written by `SeekableWriter` restore exactly, frame by frame and whole.

use aof_archive_format::{
    Footer, FormatError, SeekTable, SeekableWriter, WriterOptions, decode_frame, restore,
};
use aof_record::checksum::crc64_nvme;
use proptest::prelude::*;
use std::io::Write;

fn write(data: &[u8], opts: WriterOptions, piece: usize) -> (Vec<u8>, aof_archive_format::ObjectSummary) {
    let mut w = SeekableWriter::new(Vec::new(), opts).unwrap();
    for c in data.chunks(piece.max(1)) {
        w.write_all(c).unwrap();
    }
    w.finish().unwrap()
}

fn table_of(object: &[u8]) -> SeekTable {
    let n = Footer::decode(object).unwrap().table_len();
    SeekTable::decode(&object[object.len() - n..], Some(object.len() as u64)).unwrap()
}

fn check(data: &[u8], opts: WriterOptions, piece: usize) {
    let (object, s) = write(data, opts, piece);
    assert_eq!(s.compressed_size, object.len() as u64);
    assert_eq!(s.compressed_checksum, crc64_nvme(&object));
    assert_eq!(s.uncompressed_size, data.len() as u64);
    assert_eq!(s.uncompressed_checksum, crc64_nvme(data));
    assert_eq!(zstd::decode_all(&object[..]).unwrap(), data);
    let table = table_of(&object);
    assert_eq!(table, s.table);
    assert_eq!(table.frames() as usize, data.len().div_ceil(opts.frame_size));
    for i in 0..table.frames() {
        let f = table.frame(i).unwrap();
        let bytes = decode_frame(
            &object[f.compressed.start as usize..f.compressed.end as usize],
            &f,
        )
        .unwrap();
        assert_eq!(
            bytes,
            &data[f.decompressed.start as usize..f.decompressed.end as usize]
        );
    }
    let mut out = Vec::new();
    assert_eq!(
        restore(&object[..], &mut out, Some(crc64_nvme(data))).unwrap(),
        (data.len() as u64, crc64_nvme(data))
    );
    assert_eq!(out, data);
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31) % 97 + (i >> 9) % 7) as u8).collect()
}

#[test]
fn frame_boundaries_and_workers() {
    for workers in [1, 2, 3] {
        for len in [0, 1, 4095, 4096, 4097, 3 * 4096, 10 * 4096 + 5] {
            let opts = WriterOptions {
                level: 3,
                frame_size: 4096,
                workers,
            };
            check(&sample(len), opts, 1000);
        }
    }
}

#[test]
fn the_default_options_make_one_mib_frames() {
    let data = sample(2 * (1 << 20) + 10);
    let (object, s) = write(&data, WriterOptions::default(), 1 << 16);
    assert_eq!(s.table.frames(), 3);
    assert_eq!(s.table.entries()[0].decompressed_size, 1 << 20);
    assert_eq!(zstd::decode_all(&object[..]).unwrap(), data);
}

#[test]
fn bad_options_are_refused() {
    for opts in [
        WriterOptions {
            frame_size: 0,
            ..Default::default()
        },
        WriterOptions {
            workers: 0,
            ..Default::default()
        },
        WriterOptions {
            frame_size: (64 << 20) + 1,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            SeekableWriter::new(Vec::new(), opts),
            Err(FormatError::Compress { .. })
        ));
    }
}

#[test]
fn damaged_frames_give_typed_errors() {
    let data = sample(20_000);
    let opts = WriterOptions {
        frame_size: 4096,
        ..Default::default()
    };
    let (object, s) = write(&data, opts, 20_000);
    let f = s.table.frame(2).unwrap();
    let bytes = &object[f.compressed.start as usize..f.compressed.end as usize];
    // Wrong length given.
    assert!(matches!(
        decode_frame(&bytes[1..], &f),
        Err(FormatError::FrameBytes { index: 2, .. })
    ));
    // A flipped content checksum disagrees with the table.
    let mut b = bytes.to_vec();
    *b.last_mut().unwrap() ^= 1;
    assert!(matches!(
        decode_frame(&b, &f),
        Err(FormatError::FrameChecksum { index: 2, .. })
    ));
    // A flipped byte in the middle fails zstd's checks.
    let mut b = bytes.to_vec();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    assert!(matches!(
        decode_frame(&b, &f),
        Err(FormatError::Decompress { .. } | FormatError::FrameLength { .. })
    ));
    // A table that lies about the decompressed size.
    let mut lying = f.clone();
    lying.decompressed.end -= 1;
    assert!(matches!(
        decode_frame(bytes, &lying),
        Err(FormatError::FrameLength { .. })
    ));
    // A restore that does not match the recorded checksum.
    let mut out = Vec::new();
    assert!(restore(&object[..], &mut out, Some(1)).is_err());
    // A truncated object does not restore silently.
    assert!(restore(&object[..f.compressed.end as usize - 3], &mut Vec::new(), None).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..20_000), frame in 1usize..5000, workers in 1usize..4, piece in 1usize..7000) {
        check(&data, WriterOptions { level: 1, frame_size: frame, workers }, piece);
    }

    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), claimed in 0u64..100_000) {
        let f = aof_archive_format::FrameLocation { index: 0, compressed: 0..bytes.len() as u64, decompressed: 0..claimed, checksum: None };
        let _ = decode_frame(&bytes, &f);
    }
}
