//! The byte layouts of keys and values: see the crate docs for the tables.
//!
//! Decoding never panics: a value that is too short, too long, of an unknown
//! layout or with bytes that do not form a valid entry is
//! [`IndexError::CorruptEntry`], naming the field that gave it away.

use crate::error::BACKEND;
use aof_record::entry::{SegmentEntry, SegmentStatus};
use aof_record::index::IndexError;

/// Version of the environment's layout (tables, keys and entry encoding)
/// written by this code, and the newest it opens.
pub const FORMAT_VERSION: u64 = 1;

/// The main table: entries by base id.
pub(crate) const ENTRIES: &str = "aof.entries";
/// The status table: status byte and base id, empty values.
pub(crate) const BY_STATUS: &str = "aof.by_status";
/// The time table: end time and base id, `created_at` values.
pub(crate) const BY_TIME: &str = "aof.by_time";
/// The metadata table: format marker, version, `max_span` and the log identity.
pub(crate) const META: &str = "aof.meta";
/// Every table, in the order [`Tables`](crate::env::Tables) holds them.
pub(crate) const TABLES: [&str; 4] = [ENTRIES, BY_STATUS, BY_TIME, META];

/// `aof.meta` key of the format marker, [`FORMAT_MAGIC`].
pub(crate) const META_FORMAT: &[u8] = b"format";
/// `aof.meta` key of the format version, u64 big-endian.
pub(crate) const META_VERSION: &[u8] = b"version";
/// `aof.meta` key of `max_span`, u64 big-endian.
pub(crate) const META_MAX_SPAN: &[u8] = b"max_span";
/// `aof.meta` key of the log identity, u128 big-endian; absent until set.
pub(crate) const META_LOG_ID: &[u8] = b"log_id";
/// The marker that tells an aof index from another MDBX environment.
pub(crate) const FORMAT_MAGIC: &[u8] = b"aof-segment-index";

/// Version of the entry value layout written by this code.
pub(crate) const ENTRY_LAYOUT: u8 = 1;

/// Bytes of the fixed part of an entry value.
pub(crate) const HEADER_LEN: usize = 92;

const HAS_FINALIZED_AT: u8 = 1 << 0;
const HAS_ARCHIVED_AT: u8 = 1 << 1;
const HAS_UNCOMPRESSED_CHECKSUM: u8 = 1 << 2;
const HAS_COMPRESSED_CHECKSUM: u8 = 1 << 3;
const HAS_COMPRESSED_SIZE: u8 = 1 << 4;
const HAS_LOCAL_PATH: u8 = 1 << 5;
const HAS_ARCHIVE_KEY: u8 = 1 << 6;
const KNOWN_FLAGS: u8 = (1 << 7) - 1;

/// The key of an entry: its base id, big-endian, so that key order is id order.
pub(crate) const fn id_key(base_id: u64) -> [u8; 8] {
    base_id.to_be_bytes()
}

/// Reads a key of the main table.
pub(crate) fn decode_id_key(key: &[u8]) -> Result<u64, IndexError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| IndexError::CorruptEntry {
        base_id: 0,
        field: "base_id key",
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// The byte that stands for a status in the entry value and the status
/// table; `None` for a status this format version has no byte for.
const fn status_byte(status: SegmentStatus) -> Option<u8> {
    match status {
        SegmentStatus::Active => Some(1),
        SegmentStatus::Finalized => Some(2),
        SegmentStatus::ArchivedCached => Some(3),
        SegmentStatus::ArchivedRemote => Some(4),
        _ => None,
    }
}

/// [`status_byte`], or an error naming the status this format cannot store.
fn status_code(status: SegmentStatus) -> Result<u8, IndexError> {
    status_byte(status).ok_or_else(|| IndexError::Backend {
        backend: BACKEND,
        source: format!("status {status} has no code in format version {}", FORMAT_VERSION).into(),
    })
}

/// The status a byte of [`status_byte`] stands for; `None` for any other byte.
const fn status_from_byte(byte: u8) -> Option<SegmentStatus> {
    match byte {
        1 => Some(SegmentStatus::Active),
        2 => Some(SegmentStatus::Finalized),
        3 => Some(SegmentStatus::ArchivedCached),
        4 => Some(SegmentStatus::ArchivedRemote),
        _ => None,
    }
}

/// The key of the status table: status byte, then the base id big-endian.
pub(crate) fn status_key(status: SegmentStatus, base_id: u64) -> Result<[u8; 9], IndexError> {
    let mut key = [0; 9];
    key[0] = status_code(status)?;
    key[1..].copy_from_slice(&base_id.to_be_bytes());
    Ok(key)
}

/// Reads a key of the status table; `None` if it belongs to another status.
pub(crate) fn decode_status_key(key: &[u8], status: SegmentStatus) -> Result<Option<u64>, IndexError> {
    let corrupt = || IndexError::CorruptEntry {
        base_id: 0,
        field: "status table key",
    };
    let (&first, rest) = key.split_first().ok_or_else(corrupt)?;
    if Some(first) != status_byte(status) {
        return Ok(None);
    }
    let bytes: [u8; 8] = rest.try_into().map_err(|_| corrupt())?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// Where an entry ends in time: `finalized_at`, or `u64::MAX` while open-ended
/// (which is also how [`SegmentEntry::overlaps_time`] reads it).
pub(crate) fn end_time(entry: &SegmentEntry) -> u64 {
    entry.finalized_at.unwrap_or(u64::MAX)
}

/// The key of the time table: end time big-endian, then the base id big-endian.
pub(crate) fn time_key(entry: &SegmentEntry) -> [u8; 16] {
    time_key_parts(end_time(entry), entry.base_id)
}

/// The key of the time table from its parts.
pub(crate) fn time_key_parts(end: u64, base_id: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&end.to_be_bytes());
    key[8..].copy_from_slice(&base_id.to_be_bytes());
    key
}

/// Reads a key of the time table and its value (`created_at`, big-endian):
/// `(end, base_id, created_at)`.
pub(crate) fn decode_time_row(key: &[u8], value: &[u8]) -> Result<(u64, u64, u64), IndexError> {
    let corrupt = |field| IndexError::CorruptEntry { base_id: 0, field };
    let key: [u8; 16] = key.try_into().map_err(|_| corrupt("time table key"))?;
    let (end, base) = key.split_at(8);
    let base_id = u64::from_be_bytes(base.try_into().map_err(|_| corrupt("time table key"))?);
    let end = u64::from_be_bytes(end.try_into().map_err(|_| corrupt("time table key"))?);
    let created: [u8; 8] = value.try_into().map_err(|_| IndexError::CorruptEntry {
        base_id,
        field: "time table created_at",
    })?;
    Ok((end, base_id, u64::from_be_bytes(created)))
}

/// Encodes an entry value (layout 1, described in the crate docs).
///
/// Fails only for a string field longer than `u32::MAX` bytes.
pub(crate) fn encode_entry(e: &SegmentEntry, out: &mut Vec<u8>) -> Result<(), IndexError> {
    let local = e.local_path.as_deref().unwrap_or("");
    let archive = e.archive_key.as_deref().unwrap_or("");
    let mut flags = 0;
    for (present, bit) in [
        (e.finalized_at.is_some(), HAS_FINALIZED_AT),
        (e.archived_at.is_some(), HAS_ARCHIVED_AT),
        (e.uncompressed_checksum.is_some(), HAS_UNCOMPRESSED_CHECKSUM),
        (e.compressed_checksum.is_some(), HAS_COMPRESSED_CHECKSUM),
        (e.compressed_size.is_some(), HAS_COMPRESSED_SIZE),
        (e.local_path.is_some(), HAS_LOCAL_PATH),
        (e.archive_key.is_some(), HAS_ARCHIVE_KEY),
    ] {
        if present {
            flags |= bit;
        }
    }
    out.clear();
    out.reserve(HEADER_LEN + local.len() + archive.len());
    out.extend_from_slice(&[ENTRY_LAYOUT, status_code(e.status)?, flags, 0]);
    for v in [
        e.base_id,
        e.last_id,
        e.record_count,
        e.created_at,
        e.original_size,
        e.finalized_at.unwrap_or(0),
        e.archived_at.unwrap_or(0),
        e.uncompressed_checksum.unwrap_or(0),
        e.compressed_checksum.unwrap_or(0),
        e.compressed_size.unwrap_or(0),
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for s in [local, archive] {
        let len = u32::try_from(s.len()).map_err(|_| IndexError::Backend {
            backend: BACKEND,
            source: format!("segment {}: a string field is longer than 4 GiB", e.base_id).into(),
        })?;
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(local.as_bytes());
    out.extend_from_slice(archive.as_bytes());
    Ok(())
}

/// The fields of the fixed part after its first four bytes, by offset: the
/// one a value too short to hold the fixed part is cut in is named.
const FIXED_FIELDS: [(usize, &str); 12] = [
    (4, "base_id"),
    (12, "last_id"),
    (20, "record_count"),
    (28, "created_at"),
    (36, "original_size"),
    (44, "finalized_at"),
    (52, "archived_at"),
    (60, "uncompressed_checksum"),
    (68, "compressed_checksum"),
    (76, "compressed_size"),
    (84, "local_path"),
    (88, "archive_key"),
];

/// The little-endian `u64` at `at` of the fixed part.
#[inline(always)]
fn le_u64(fixed: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&fixed[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The little-endian `u32` at `at` of the fixed part.
#[inline(always)]
fn le_u32(fixed: &[u8; HEADER_LEN], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&fixed[at..at + 4]);
    u32::from_le_bytes(a)
}

/// A string field: `Some(None)` if absent (then it has no bytes),
/// `Some(Some(..))` if present and UTF-8, `None` if corrupt.
#[inline(always)]
fn string_field(present: bool, bytes: &[u8]) -> Option<Option<String>> {
    if present {
        match std::str::from_utf8(bytes) {
            Ok(s) => Some(Some(String::from(s))),
            Err(_) => None,
        }
    } else {
        bytes.is_empty().then_some(None)
    }
}

/// Decodes the entry value stored under `key_base_id`.
///
/// Lookups spend a good part of their time here, so the fixed part is read
/// at fixed offsets of one bounds-checked array, and each string field is
/// checked and copied once.
#[inline]
pub(crate) fn decode_entry(key_base_id: u64, bytes: &[u8]) -> Result<SegmentEntry, IndexError> {
    decode_entry_with(key_base_id, bytes, |entry| entry)
}

/// [`decode_entry`], handing the entry to `sink` rather than returning it:
/// a lookup stores it straight where its answer goes, instead of moving the
/// whole entry through each layer's `Result`.
#[inline(always)]
pub(crate) fn decode_entry_with<T>(
    key_base_id: u64,
    bytes: &[u8],
    sink: impl FnOnce(SegmentEntry) -> T,
) -> Result<T, IndexError> {
    let corrupt = |field| IndexError::CorruptEntry {
        base_id: key_base_id,
        field,
    };
    let Some(&[layout, status, flags, reserved]) = bytes.first_chunk::<4>() else {
        return Err(corrupt("header"));
    };
    if layout != ENTRY_LAYOUT {
        return Err(corrupt("layout version"));
    }
    let status = status_from_byte(status).ok_or_else(|| corrupt("status"))?;
    if flags & !KNOWN_FLAGS != 0 || reserved != 0 {
        return Err(corrupt("presence flags"));
    }
    let Some((fixed, strings)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        let len = bytes.len();
        let cut = FIXED_FIELDS.iter().rev().find(|(at, _)| *at <= len);
        return Err(corrupt(cut.map_or("header", |(_, name)| *name)));
    };
    let opt = |bit: u8, at: usize| (flags & bit != 0).then(|| le_u64(fixed, at));
    let base_id = le_u64(fixed, 4);
    if base_id != key_base_id {
        return Err(corrupt("base_id"));
    }
    let local_len = usize::try_from(le_u32(fixed, 84)).map_err(|_| corrupt("local_path"))?;
    let archive_len = usize::try_from(le_u32(fixed, 88)).map_err(|_| corrupt("archive_key"))?;
    let Some((local, archive)) = strings
        .split_at_checked(local_len)
        .filter(|(_, rest)| rest.len() == archive_len)
    else {
        return Err(corrupt("string lengths"));
    };
    let entry = SegmentEntry {
        base_id,
        last_id: le_u64(fixed, 12),
        record_count: le_u64(fixed, 20),
        status,
        created_at: le_u64(fixed, 28),
        finalized_at: opt(HAS_FINALIZED_AT, 44),
        archived_at: opt(HAS_ARCHIVED_AT, 52),
        uncompressed_checksum: opt(HAS_UNCOMPRESSED_CHECKSUM, 60),
        compressed_checksum: opt(HAS_COMPRESSED_CHECKSUM, 68),
        original_size: le_u64(fixed, 36),
        compressed_size: opt(HAS_COMPRESSED_SIZE, 76),
        local_path: string_field(flags & HAS_LOCAL_PATH != 0, local).ok_or_else(|| corrupt("local_path"))?,
        archive_key: string_field(flags & HAS_ARCHIVE_KEY != 0, archive)
            .ok_or_else(|| corrupt("archive_key"))?,
    };
    entry.validate().map_err(|_| corrupt("record_count"))?;
    Ok(sink(entry))
}

/// Reads a big-endian `u64` from the metadata table.
pub(crate) fn decode_meta_u64(bytes: &[u8]) -> Option<u64> {
    let a: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_entry() -> impl Strategy<Value = SegmentEntry> {
        (
            any::<u64>(),
            0u64..1_000_000,
            0usize..4,
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(".{0,40}"),
            proptest::option::of(".{0,40}"),
        )
            .prop_map(|(base, len, st, created, fin, arch, uc, cc, size, cs, lp, ak)| {
                let len = len.min(u64::MAX - base);
                SegmentEntry {
                    base_id: base,
                    last_id: if len == 0 { base } else { base + len - 1 },
                    record_count: len,
                    status: SegmentStatus::ALL[st],
                    created_at: created,
                    finalized_at: fin,
                    archived_at: arch,
                    uncompressed_checksum: uc,
                    compressed_checksum: cc,
                    original_size: size,
                    compressed_size: cs,
                    local_path: lp,
                    archive_key: ak,
                }
            })
    }

    proptest! {
        #[test]
        fn entries_round_trip(e in arb_entry()) {
            let mut buf = Vec::new();
            encode_entry(&e, &mut buf).unwrap();
            prop_assert_eq!(decode_entry(e.base_id, &buf).unwrap(), e);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), key in any::<u64>()) {
            let _ = decode_entry(key, &bytes);
            let _ = decode_time_row(&bytes, &bytes);
            let _ = decode_status_key(&bytes, SegmentStatus::Active);
            let _ = decode_id_key(&bytes);
        }

        #[test]
        fn truncated_or_flipped_values_are_corrupt_not_panics(e in arb_entry(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            encode_entry(&e, &mut buf).unwrap();
            let n = cut.index(buf.len());
            prop_assert!(
                matches!(decode_entry(e.base_id, &buf[..n]), Err(IndexError::CorruptEntry { .. })),
                "a value cut to {} of {} bytes decoded", n, buf.len()
            );
            let i = flip.index(buf.len());
            buf[i] ^= 1 << bit;
            // A flipped bit may still decode (to a different entry); it must not panic.
            let _ = decode_entry(e.base_id, &buf);
        }
    }

    #[test]
    fn the_layout_is_fixed() {
        let e = SegmentEntry::new_active(0x0102, 7, "ab");
        let mut buf = Vec::new();
        encode_entry(&e, &mut buf).unwrap();
        assert_eq!(buf.len(), HEADER_LEN + 2);
        assert_eq!(&buf[..4], &[1, 1, HAS_LOCAL_PATH, 0]);
        assert_eq!(&buf[4..12], &0x0102u64.to_le_bytes());
        assert_eq!(&buf[28..36], &7u64.to_le_bytes(), "created_at");
        assert_eq!(&buf[84..92], &[2, 0, 0, 0, 0, 0, 0, 0], "string lengths");
        assert_eq!(&buf[92..], b"ab");
        let mut other = buf.clone();
        other[0] = 2;
        assert!(matches!(
            decode_entry(0x0102, &other),
            Err(IndexError::CorruptEntry {
                field: "layout version",
                ..
            })
        ));
        assert!(matches!(
            decode_entry(0x0103, &buf),
            Err(IndexError::CorruptEntry { field: "base_id", .. })
        ));
        assert!(matches!(
            decode_entry(0x0102, &buf[..HEADER_LEN]),
            Err(IndexError::CorruptEntry { .. })
        ));
    }

    #[test]
    fn status_bytes_round_trip() {
        for status in SegmentStatus::ALL {
            if let Some(byte) = status_byte(status) {
                assert_eq!(status_from_byte(byte), Some(status));
            }
        }
        for byte in [0, 5, 0xff] {
            assert_eq!(status_from_byte(byte), None);
        }
    }

    #[test]
    fn keys_sort_like_ids() {
        let ids = [0u64, 1, 255, 256, u64::MAX - 1, u64::MAX];
        for w in ids.windows(2) {
            assert!(id_key(w[0]) < id_key(w[1]));
            let key = |id| status_key(SegmentStatus::Finalized, id).unwrap();
            assert!(key(w[0]) < key(w[1]));
        }
        let active9 = status_key(SegmentStatus::Active, 9).unwrap();
        assert!(
            status_key(SegmentStatus::Active, u64::MAX).unwrap()
                < status_key(SegmentStatus::Finalized, 0).unwrap()
        );
        assert_eq!(
            decode_status_key(&active9, SegmentStatus::Active).unwrap(),
            Some(9)
        );
        assert_eq!(
            decode_status_key(&active9, SegmentStatus::Finalized).unwrap(),
            None
        );
    }
}
