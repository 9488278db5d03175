//! Record encode and decode throughput beside a plain `memcpy` of the same bytes.
//!
//! Every encode and decode result is checked: an error fails the run.

use crate::Res;
use crate::measure::{Budget, Pair, paired};
use crate::progress::Progress;
use crate::results::BenchResult;
use aof_record::record::{
    RECORD_HEADER_SIZE, RecordFlags, append_record_unsealed, decode_record, encode_record, seal_record,
};
use std::hint::black_box;

/// Output area that stays in the CPU cache (L2 here is 1 MiB).
const CACHED: usize = 1 << 20;
/// Output area far larger than the caches: every write goes to memory.
const STREAMING: usize = 256 << 20;
/// Records per batch in the engine's two-phase form.
const BATCH: usize = 256;

/// The payload sizes of the record table.
pub const SIZES: [usize; 4] = [64, 1024, 16 * 1024, 64 * 1024];

/// Sizes that also get a `*_streaming` row.
fn streams(size: usize) -> bool {
    size >= 16 * 1024
}

/// Cases [`run`] reports progress for.
#[must_use]
pub fn cases() -> u64 {
    SIZES.iter().map(|&s| if streams(s) { 4 } else { 3 }).sum()
}

/// A reusable output area: records are written round-robin into a buffer
/// (small enough to stay in the CPU cache, or far too big to), so the
/// figure is the encoder's cost or the memory system's, as chosen.
struct Ring {
    buf: Vec<u8>,
    slots: usize,
    slot_len: usize,
    next: u64,
}

impl Ring {
    fn new(record_len: usize, bytes: usize) -> Self {
        let slots = bytes / record_len.max(1);
        let slots = slots.max(2);
        // A non-zero fill touches every page now, so no round pays for page faults.
        Self {
            buf: vec![0xa5u8; slots * record_len],
            slots,
            slot_len: record_len,
            next: 0,
        }
    }

    /// The next slot, and the sequence number of the write into it.
    fn next_slot(&mut self) -> (u64, &mut [u8]) {
        let i = self.next;
        self.next += 1;
        let at = (i as usize % self.slots) * self.slot_len;
        (i, &mut self.buf[at..at + self.slot_len])
    }

    /// `n` encodes of `payload`, one per slot.
    fn encode(&mut self, payload: &[u8], n: u64) -> Res<()> {
        for _ in 0..n {
            let (id, slot) = self.next_slot();
            black_box(encode_record(
                slot,
                id,
                1_700_000_000_000_000,
                RecordFlags::NONE,
                black_box(payload),
            )?);
        }
        Ok(())
    }

    /// `n` copies of `source`, one per slot.
    fn copy(&mut self, source: &[u8], n: u64) -> Res<()> {
        for _ in 0..n {
            let (_, slot) = self.next_slot();
            slot.copy_from_slice(black_box(source));
            black_box(slot.as_ptr());
        }
        Ok(())
    }
}

/// A line of the table: rate and bytes per second (header + payload), and
/// the ratio to its baseline.
fn line(workload: &str, size: usize, p: &Pair) -> BenchResult {
    let rate = p.subject.rate;
    BenchResult::new(workload, size, rate, rate * (RECORD_HEADER_SIZE + size) as f64)
        .baseline(p.baseline.rate, p.ratio)
}

/// A baseline's own line.
fn baseline_line(workload: &str, size: usize, p: &Pair) -> BenchResult {
    let rate = p.baseline.rate;
    BenchResult::new(workload, size, rate, rate * (RECORD_HEADER_SIZE + size) as f64)
}

/// The encoder's targets: 20M records/s at 64 B, half of memcpy from 16 KiB.
fn encode_target(r: BenchResult, size: usize, p: &Pair) -> BenchResult {
    if size == 64 {
        r.target("≥ 20M records/s", p.subject.rate >= 20e6)
    } else if size >= 16 * 1024 {
        r.target("≥ 0.5 × memcpy", p.ratio >= 0.5)
    } else {
        r
    }
}

/// Encode (copy + CRC-64/NVME) against a memcpy of the same bytes; then
/// decode (validate + CRC) against a memcpy.
pub fn run(budget: Budget, progress: &Progress) -> Res<Vec<BenchResult>> {
    let mut out = Vec::new();
    for size in SIZES {
        progress.case(&format!("record: encode {size} B"));
        let payload: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let record_len = RECORD_HEADER_SIZE + size;
        let source: Vec<u8> = (0..record_len).map(|i| i as u8).collect();

        let mut ring = Ring::new(record_len, CACHED);
        let mut base_ring = Ring::new(record_len, CACHED);
        let p = paired(budget, &mut |n| ring.encode(&payload, n), &mut |n| {
            base_ring.copy(&source, n)
        })?;
        out.push(encode_target(line("record_encode", size, &p), size, &p));
        out.push(baseline_line("baseline_memcpy", size, &p));

        // The engine's form: a batch of records copied into a reused buffer,
        // then sealed (checksummed) in one pass.
        progress.case(&format!("record: encode {size} B, batch of {BATCH}"));
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH * record_len);
        let mut copy_buf: Vec<u8> = vec![0u8; BATCH * record_len];
        let mut bid = 0u64;
        let mut encode_batch = |n: u64| -> Res<()> {
            let mut left = n;
            while left > 0 {
                let k = left.min(BATCH as u64) as usize;
                buf.clear();
                for _ in 0..k {
                    append_record_unsealed(&mut buf, bid, 1, RecordFlags::NONE, black_box(&payload))?;
                    bid += 1;
                }
                for rec in buf.chunks_exact_mut(record_len) {
                    seal_record(rec);
                }
                black_box(buf.as_ptr());
                left -= k as u64;
            }
            Ok(())
        };
        let mut memcpy_batch = |n: u64| -> Res<()> {
            let mut left = n;
            while left > 0 {
                let k = left.min(BATCH as u64) as usize;
                for slot in copy_buf.chunks_exact_mut(record_len).take(k) {
                    slot.copy_from_slice(black_box(&source));
                }
                black_box(copy_buf.as_ptr());
                left -= k as u64;
            }
            Ok(())
        };
        let p = paired(budget, &mut encode_batch, &mut memcpy_batch)?;
        out.push(encode_target(line("record_encode_batch", size, &p), size, &p));

        if streams(size) {
            progress.case(&format!("record: encode {size} B, streaming"));
            let mut ring = Ring::new(record_len, STREAMING);
            let mut base_ring = Ring::new(record_len, STREAMING);
            let p = paired(budget, &mut |n| ring.encode(&payload, n), &mut |n| {
                base_ring.copy(&source, n)
            })?;
            out.push(line("record_encode_streaming", size, &p).target("≥ 0.5 × memcpy", p.ratio >= 0.5));
            out.push(baseline_line("baseline_memcpy_streaming", size, &p));
        }

        progress.case(&format!("record: decode {size} B"));
        let mut encoded = vec![0u8; record_len];
        encode_record(&mut encoded, 1, 2, RecordFlags::NONE, &payload)?;
        let mut copy_ring = Ring::new(record_len, CACHED);
        let mut decode = |n: u64| -> Res<()> {
            for _ in 0..n {
                black_box(decode_record(black_box(&encoded), u32::MAX)?.payload.len());
            }
            Ok(())
        };
        let p = paired(budget, &mut decode, &mut |n| copy_ring.copy(&encoded, n))?;
        out.push(line("record_decode", size, &p));
    }
    Ok(out)
}
