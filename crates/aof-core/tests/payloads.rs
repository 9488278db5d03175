//! Per-record compression and encryption through the engine: round trips,
//! tampering, swapping, key rotation, nonces across truncation, and what
//! reaches the disk.

use aof_core::testing::FileIndex;
use aof_core::{Aof, AofOptions, EncryptionKey, FileSystem, KeyRing, LocalFileSystem};
use aof_record::payload::{NONCE_SIZE, PayloadError};
use aof_record::record::{RECORD_HEADER_SIZE, decode_record, seal_record};
use aof_record::segment::SEGMENT_HEADER_SIZE;
use aof_record::{AofConfig, AofError, FORMAT_MAX_RECORD_SIZE, FlushStrategy};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

fn config(compress: bool, encrypt: bool) -> AofConfig {
    AofConfig::builder()
        .flush_strategy(FlushStrategy::Sync)
        .segment_size(64 * 1024)
        .pre_allocate_enabled(false)
        .enable_compression(compress)
        .enable_encryption(encrypt)
        .compression_min_size(32)
        .build()
        .unwrap()
}

fn ring(current: u32, older: &[u32]) -> Arc<KeyRing> {
    let key = |id: u32| EncryptionKey::new(id, [id as u8; 32]);
    let mut r = KeyRing::new(key(current));
    for id in older {
        r = r.with_key(key(*id)).unwrap();
    }
    Arc::new(r)
}

fn open(dir: &Path, config: AofConfig, keys: Option<Arc<KeyRing>>) -> Result<Aof, AofError> {
    let fs: Arc<dyn FileSystem> = LocalFileSystem::shared();
    let index = FileIndex::open(fs.clone(), dir.join("index.json")).unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs;
    options.keys = keys;
    Aof::open_with(dir, options, Arc::new(index))
}

/// Every record in the (unsealed) segment files of `dir`: `(file, offset, length)`.
fn records_on_disk(dir: &Path) -> Vec<(std::path::PathBuf, usize, usize)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let mut at = SEGMENT_HEADER_SIZE;
        while let Ok(rec) = decode_record(&bytes[at..], FORMAT_MAX_RECORD_SIZE) {
            out.push((f.clone(), at, rec.encoded_len()));
            at += rec.encoded_len();
        }
    }
    out
}

fn log_line(i: usize) -> Vec<u8> {
    format!(
        "2026-12-04T11:00:{:02}Z INFO request id={i} path=/api/v1/items status=200 took=12ms user=alice",
        i % 60
    )
    .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_payload_reads_back_exactly(
        compress in any::<bool>(),
        encrypt in any::<bool>(),
        payloads in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                (0usize..2000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
            ],
            1..40,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let keys = Some(ring(1, &[]));
        {
            let log = open(dir.path(), config(compress, encrypt), keys.clone()).unwrap();
            for (i, p) in payloads.iter().enumerate() {
                prop_assert_eq!(log.append(p).unwrap(), i as u64);
            }
            for (i, p) in payloads.iter().enumerate() {
                let got = log.read(i as u64).unwrap();
                prop_assert_eq!(got.as_deref(), Some(&p[..]));
            }
            log.close_blocking().unwrap();
        }
        // Reopened without compression or encryption enabled: the records
        // say how they are stored (the key is still needed to decrypt).
        let log = open(dir.path(), config(false, false), keys).unwrap();
        let back: Vec<Vec<u8>> = log.reader(0).unwrap().map(|r| r.unwrap().payload.to_vec()).collect();
        prop_assert_eq!(back, payloads);
    }
}

#[test]
fn compression_shrinks_log_lines_and_never_stores_larger() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(true, false), None).unwrap();
    let lines: Vec<Vec<u8>> = (0..200).map(|i| log_line(i).repeat(4)).collect();
    for l in &lines {
        log.append(l).unwrap();
    }
    // Random bytes do not compress: stored as they are.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    log.append(&noise).unwrap();
    let on_disk: usize = records_on_disk(dir.path()).iter().map(|r| r.2).sum();
    let raw: usize =
        lines.iter().map(|l| l.len() + RECORD_HEADER_SIZE).sum::<usize>() + noise.len() + RECORD_HEADER_SIZE;
    assert!(on_disk * 2 < raw, "stored {on_disk} bytes for {raw}");
    let last = records_on_disk(dir.path()).pop().unwrap();
    assert_eq!(
        last.2,
        noise.len() + RECORD_HEADER_SIZE,
        "incompressible: stored plain"
    );
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(log.read(i as u64).unwrap().as_deref(), Some(&l[..]));
    }
    assert_eq!(log.read(200).unwrap().as_deref(), Some(&noise[..]));
}

#[test]
fn encryption_needs_a_key_ring() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        open(dir.path(), config(false, true), None),
        Err(AofError::EncryptionWithoutKeys)
    ));
}

#[test]
fn no_plaintext_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(true, true), Some(ring(1, &[]))).unwrap();
    for i in 0..50 {
        log.append(&log_line(i)).unwrap();
    }
    log.close_blocking().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in [&b"alice"[..], b"/api/v1/items", b"status="] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
}

/// Rewrites `len` bytes at `at` in `file` with `f` applied, then reseals
/// the record's checksum, as someone with write access to the files could.
fn tamper(file: &Path, at: usize, len: usize, f: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(file).unwrap();
    f(&mut bytes[at..at + len]);
    seal_record(&mut bytes[at..at + len]);
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn tampering_with_any_byte_of_an_encrypted_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Some(ring(1, &[]));
    let log = open(dir.path(), config(false, true), keys.clone()).unwrap();
    log.append(b"first").unwrap();
    log.append(b"attack at dawn").unwrap();
    log.close_blocking().unwrap();
    let (file, at, len) = records_on_disk(dir.path())[1].clone();
    let original = std::fs::read(&file).unwrap();
    // Byte 0..4 is the checksum (resealed anyway); every other byte of the
    // header and payload is covered by the AEAD or its associated data.
    for i in 4..len {
        std::fs::write(&file, &original).unwrap();
        tamper(&file, at, len, |r| r[i] ^= 0x01);
        let log = open(dir.path(), config(false, true), keys.clone());
        let result = log.and_then(|l| l.read(1));
        assert!(
            !matches!(&result, Ok(Some(p)) if &p[..] == b"attack at dawn"),
            "byte {i} changed and the record still read as written"
        );
        assert!(!matches!(&result, Ok(Some(_))), "byte {i}: {result:?}");
    }
    // Untouched, it reads.
    std::fs::write(&file, &original).unwrap();
    let log = open(dir.path(), config(false, true), keys).unwrap();
    assert_eq!(log.read(1).unwrap().as_deref(), Some(&b"attack at dawn"[..]));
}

#[test]
fn swapping_two_encrypted_records_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Some(ring(1, &[]));
    let log = open(dir.path(), config(false, true), keys.clone()).unwrap();
    log.append(b"pay alice 10").unwrap();
    log.append(b"pay bob 9000").unwrap();
    log.close_blocking().unwrap();
    let recs = records_on_disk(dir.path());
    let ((file, a, len), (_, b, len_b)) = (recs[0].clone(), recs[1].clone());
    assert_eq!(len, len_b);
    let mut bytes = std::fs::read(&file).unwrap();
    // Swap the payloads, keep each header (so ids stay in order), reseal.
    let pa = bytes[a + RECORD_HEADER_SIZE..a + len].to_vec();
    let pb = bytes[b + RECORD_HEADER_SIZE..b + len].to_vec();
    bytes[a + RECORD_HEADER_SIZE..a + len].copy_from_slice(&pb);
    bytes[b + RECORD_HEADER_SIZE..b + len].copy_from_slice(&pa);
    seal_record(&mut bytes[a..a + len]);
    seal_record(&mut bytes[b..b + len]);
    std::fs::write(&file, bytes).unwrap();
    let log = open(dir.path(), config(false, true), keys).unwrap();
    for id in [0, 1] {
        match log.read(id) {
            Err(AofError::Payload {
                id: got,
                source: PayloadError::Authentication { key_id: 1 },
            }) => assert_eq!(got, id),
            other => panic!("record {id}: {other:?}"),
        }
    }
}

#[test]
fn keys_rotate_and_a_missing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), config(true, true), Some(ring(1, &[]))).unwrap();
        log.append(b"under key one").unwrap();
        log.close_blocking().unwrap();
    }
    {
        // Key 2 is current now; key 1 stays for reading.
        let log = open(dir.path(), config(true, true), Some(ring(2, &[1]))).unwrap();
        log.append(b"under key two").unwrap();
        assert_eq!(log.read(0).unwrap().as_deref(), Some(&b"under key one"[..]));
        assert_eq!(log.read(1).unwrap().as_deref(), Some(&b"under key two"[..]));
        log.close_blocking().unwrap();
    }
    let key_ids: Vec<u32> = records_on_disk(dir.path())
        .iter()
        .map(|(f, at, _)| {
            let b = std::fs::read(f).unwrap();
            u32::from_le_bytes(
                b[at + RECORD_HEADER_SIZE..at + RECORD_HEADER_SIZE + 4]
                    .try_into()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(key_ids, [1, 2]);
    // Key 1 retired: its record is a typed error naming it; the other reads.
    let log = open(dir.path(), config(false, false), Some(ring(2, &[]))).unwrap();
    assert!(matches!(
        log.read(0),
        Err(AofError::Payload {
            id: 0,
            source: PayloadError::UnknownKey { key_id: 1 }
        })
    ));
    assert_eq!(log.read(1).unwrap().as_deref(), Some(&b"under key two"[..]));
    let mut reader = log.reader(0).unwrap();
    let err = reader.next().unwrap().unwrap_err();
    assert!(err.to_string().contains("key 1"), "{err}");
    // The reader steps past the record it cannot decrypt.
    assert_eq!(&reader.next().unwrap().unwrap().payload[..], b"under key two");
    assert!(reader.next().is_none());
    drop(reader);
    drop(log);
    // No keys at all.
    let log = open(dir.path(), config(false, false), None).unwrap();
    assert!(matches!(
        log.read(1),
        Err(AofError::Payload {
            source: PayloadError::NoKeys { key_id: 2 },
            ..
        })
    ));
}

#[test]
fn truncate_after_then_re_append_never_reuses_a_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Some(ring(1, &[]));
    let nonces = |dir: &Path| -> Vec<Vec<u8>> {
        records_on_disk(dir)
            .iter()
            .map(|(f, at, _)| {
                let b = std::fs::read(f).unwrap();
                let start = at + RECORD_HEADER_SIZE + 4;
                b[start..start + NONCE_SIZE].to_vec()
            })
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    for round in 0..3 {
        let log = open(dir.path(), config(false, true), keys.clone()).unwrap();
        for _ in 0..20 {
            log.append(b"the same payload").unwrap();
        }
        for n in nonces(dir.path()).into_iter().skip(5) {
            assert!(seen.insert(n), "round {round}: a nonce was used twice");
        }
        // Ids 5.. are cut and will be written again, by this open and the next.
        log.truncate_after(4).unwrap();
        for _ in 0..15 {
            log.append(b"the same payload").unwrap();
        }
        for n in nonces(dir.path()).into_iter().skip(5) {
            assert!(
                seen.insert(n),
                "round {round}: a nonce was used twice after truncate_after"
            );
        }
        log.truncate_after(4).unwrap();
        log.close_blocking().unwrap();
    }
}
