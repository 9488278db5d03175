//! Repairs that turn fuzzer bytes into files whose checksums pass.
//!
//! Random bytes almost never carry a correct CRC-64, so a fuzzer that only
//! mutates stops at the first checksum and never reaches the code behind
//! it. Each target therefore reads a few mode bits from its input and, when
//! asked, rewrites the checksums (and the fields they guard) of the bytes
//! it was given before handing them to the decoder. The decoder still sees
//! every other byte as the fuzzer made it: sizes, ids, offsets, lengths.
//!
//! Shared by the cargo-fuzz targets and by the proptest suites that run the
//! same checks where no nightly toolchain is available.

use aof_record::checksum::crc64_nvme;
use aof_record::record::{RECORD_FORMAT_VERSION, RecordFlags, seal_record};
use aof_record::segment::{SEGMENT_FOOTER_MAGIC, SEGMENT_FORMAT_VERSION};
use aof_record::{RECORD_HEADER_SIZE, SEGMENT_FOOTER_SIZE, SEGMENT_HEADER_SIZE, SegmentHeader};

/// The fixed-size prefix of knobs a target reads before its payload bytes:
/// missing bytes read as zero, so every input is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knobs<const N: usize>(pub [u8; N]);

impl<const N: usize> Knobs<N> {
    /// Splits `data` into `N` knob bytes (zero-padded) and the rest.
    #[must_use]
    pub fn split(data: &[u8]) -> (Self, &[u8]) {
        let mut k = [0u8; N];
        let n = data.len().min(N);
        k[..n].copy_from_slice(&data[..n]);
        (Self(k), &data[n..])
    }

    /// Knob byte `i`.
    #[must_use]
    pub fn byte(&self, i: usize) -> u8 {
        self.0[i]
    }

    /// Whether bit `bit` of knob byte `i` is set.
    #[must_use]
    pub fn bit(&self, i: usize, bit: u8) -> bool {
        self.0[i] & (1 << bit) != 0
    }

    /// Knob bytes `i..i + 4` as a little-endian u32.
    #[must_use]
    pub fn u32_at(&self, i: usize) -> u32 {
        u32::from_le_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]])
    }
}

/// A base id chosen by a knob byte: 0, a small id, an id close to
/// `u64::MAX` (where `base + count` overflows), or the id stored at bytes
/// 16..24 of `file` (what a valid seed's header says).
#[must_use]
pub fn base_id(knob: u8, file: &[u8]) -> u64 {
    let low = u64::from(knob >> 2);
    match knob & 3 {
        0 => 0,
        1 => low,
        2 => u64::MAX - (low % 16),
        _ => file
            .get(16..24)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
    }
}

/// Makes `file` start with a valid segment header for `base_id`, keeping
/// its creation time; pads `file` to a header's length first.
pub fn fix_segment_header(file: &mut Vec<u8>, base_id: u64) {
    if file.len() < SEGMENT_HEADER_SIZE {
        file.resize(SEGMENT_HEADER_SIZE, 0);
    }
    let created_at_us = u64::from_le_bytes(file[24..32].try_into().unwrap_or([0; 8]));
    file[..SEGMENT_HEADER_SIZE].copy_from_slice(
        &SegmentHeader {
            base_id,
            created_at_us,
        }
        .encode(),
    );
}

/// Rewrites the checksum field of a segment header in place (bytes 56..64),
/// leaving every other byte, magic and version included, as it is.
pub fn fix_segment_header_checksum(header: &mut [u8]) {
    if header.len() >= SEGMENT_HEADER_SIZE {
        let crc = crc64_nvme(&header[..56]);
        header[56..64].copy_from_slice(&crc.to_le_bytes());
    }
}

/// How [`reseal_records`] treats each record it walks over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reseal {
    /// Give record `i` the id `base + i`.
    pub renumber: Option<u64>,
    /// Set the version byte, clear unknown flags and the reserved bytes.
    pub normalize: bool,
}

/// Walks the records of `region` from its start as the engine's scan does
/// (stopping at a zero header or where a record's `size` runs past the
/// end) and rewrites each one's checksum so it passes. Returns the offset,
/// within `region`, of each record walked.
pub fn reseal_records(region: &mut [u8], how: Reseal) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0usize;
    while let Some(head) = region.get(at..at + RECORD_HEADER_SIZE) {
        if head.iter().all(|b| *b == 0) {
            break;
        }
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let Some(end) = at
            .checked_add(RECORD_HEADER_SIZE)
            .and_then(|e| e.checked_add(size))
            .filter(|e| *e <= region.len())
        else {
            break;
        };
        let record = &mut region[at..end];
        if let Some(base) = how.renumber {
            let id = base.wrapping_add(offsets.len() as u64);
            record[8..16].copy_from_slice(&id.to_le_bytes());
        }
        if how.normalize {
            record[24] = RECORD_FORMAT_VERSION;
            record[25] &= RecordFlags::KNOWN.bits();
            record[26..32].fill(0);
        }
        seal_record(record);
        offsets.push(at);
        at = end;
    }
    offsets
}

/// Makes the footer at the end of `file` (if `file` is long enough to hold
/// one) consistent: magic, version, length and reserved fields; a data end
/// and record count that add up to the file's length (kept as claimed when
/// they do); and the table, footer and, with `data_crc`, data checksums.
/// The offset table itself, and the base id, stay as the fuzzer made them.
pub fn fix_footer(file: &mut [u8], data_crc: bool) {
    let len = file.len();
    let Some(at) = len.checked_sub(SEGMENT_FOOTER_SIZE) else {
        return;
    };
    let u64_at = |f: &[u8], i: usize| u64::from_le_bytes(f[at + i..at + i + 8].try_into().unwrap_or([0; 8]));
    let mut data_end = u64_at(file, 32);
    let mut count = u64_at(file, 24);
    let claimed = count
        .checked_mul(4)
        .and_then(|t| t.checked_add(data_end))
        .and_then(|t| t.checked_add(SEGMENT_FOOTER_SIZE as u64));
    if claimed != Some(len as u64) {
        // Keep the claimed data end if it fits, and fill the rest with whole
        // table entries; any bytes left over go to the data.
        let room = at as u64;
        let end = data_end.min(room);
        count = (room - end) / 4;
        data_end = room - count * 4;
    }
    let table_start = data_end as usize;
    let table_crc = crc64_nvme(&file[table_start..at]);
    let data = if data_crc {
        crc64_nvme(&file[..table_start])
    } else {
        u64_at(file, 40)
    };
    let f = &mut file[at..];
    f[0..8].copy_from_slice(&SEGMENT_FOOTER_MAGIC);
    f[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    f[10..12].copy_from_slice(&(SEGMENT_FOOTER_SIZE as u16).to_le_bytes());
    f[12..16].fill(0);
    f[24..32].copy_from_slice(&count.to_le_bytes());
    f[32..40].copy_from_slice(&data_end.to_le_bytes());
    f[40..48].copy_from_slice(&data.to_le_bytes());
    f[48..56].copy_from_slice(&table_crc.to_le_bytes());
    let crc = crc64_nvme(&f[..56]);
    f[56..64].copy_from_slice(&crc.to_le_bytes());
}

/// Appends an offset table listing `offsets` and a valid footer to `file`,
/// whose data (header and records) ends at its current length: the bytes
/// the engine writes when it seals a segment.
pub fn seal_segment(file: &mut Vec<u8>, base_id: u64, offsets: &[u32]) {
    let data_end = file.len() as u64;
    let data_crc = crc64_nvme(file);
    let mut table = Vec::with_capacity(offsets.len() * 4);
    for o in offsets {
        table.extend_from_slice(&o.to_le_bytes());
    }
    let footer = aof_record::SegmentFooter {
        base_id,
        record_count: offsets.len() as u64,
        data_end,
        data_crc,
        table_crc: crc64_nvme(&table),
    };
    file.extend_from_slice(&table);
    file.extend_from_slice(&footer.encode());
}
