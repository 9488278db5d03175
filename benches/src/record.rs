//! Record encode and decode throughput beside a plain `memcpy` of the same bytes.

use crate::{BenchResult, Budget, paired};
use aof_record::record::{
    RECORD_HEADER_SIZE, RecordFlags, append_record_unsealed, decode_record, encode_record, seal_record,
};
use std::hint::black_box;

/// Output area that stays in the CPU cache (L2 here is 1 MiB).
const CACHED: usize = 1 << 20;
/// Output area far larger than the caches: every write goes to memory.
const STREAMING: usize = 256 << 20;

/// The payload sizes of the record table.
pub const SIZES: [usize; 4] = [64, 1024, 16 * 1024, 64 * 1024];

/// A reusable output area: records are written round-robin into a buffer
/// small enough to stay in the CPU cache, so the figure is the encoder's cost
/// and not the memory system's.
struct Ring {
    buf: Vec<u8>,
    slots: usize,
    slot_len: usize,
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
        }
    }

    fn slot(&mut self, i: u64) -> &mut [u8] {
        let at = (i as usize % self.slots) * self.slot_len;
        &mut self.buf[at..at + self.slot_len]
    }
}

/// Encode (copy + CRC-64/NVME) against a memcpy of the same bytes; then
/// decode (validate + CRC) against a memcpy.
#[must_use]
pub fn run(budget: Budget, on_case: &mut dyn FnMut(&str)) -> Vec<BenchResult> {
    let mut out = Vec::new();
    for size in SIZES {
        on_case(&format!("record encode {size} B"));
        let payload: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let record_len = RECORD_HEADER_SIZE + size;
        let source: Vec<u8> = (0..record_len).map(|i| i as u8).collect();

        let mut ring = Ring::new(record_len, CACHED);
        let mut base_ring = Ring::new(record_len, CACHED);
        let mut next_id = 0u64;
        let mut encode = |n: u64| {
            for _ in 0..n {
                let slot = ring.slot(next_id);
                let w = encode_record(
                    slot,
                    next_id,
                    1_700_000_000_000_000,
                    RecordFlags::NONE,
                    black_box(&payload),
                );
                black_box(w.ok());
                next_id += 1;
            }
        };
        let mut bi = 0u64;
        let mut memcpy = |n: u64| {
            for _ in 0..n {
                base_ring.slot(bi).copy_from_slice(black_box(&source));
                black_box(base_ring.slot(bi).as_ptr());
                bi += 1;
            }
        };
        let p = paired(budget, &mut encode, &mut memcpy);
        let target = if size == 64 {
            Some(("≥ 20M records/s".to_owned(), p.subject >= 20e6))
        } else if size >= 16 * 1024 {
            Some(("≥ 0.5 × memcpy".to_owned(), p.ratio >= 0.5))
        } else {
            None
        };
        out.push(result(
            "record_encode",
            size,
            p.subject,
            Some((p.baseline, p.ratio)),
            target,
        ));
        out.push(result("baseline_memcpy", size, p.baseline, None, None));

        // The engine's form: a batch of records copied into a reused buffer,
        // then sealed (checksummed) in one pass.
        on_case(&format!("record encode {size} B, batch of 256"));
        let batch = 256usize;
        let mut buf: Vec<u8> = Vec::with_capacity(batch * record_len);
        let mut copy_buf: Vec<u8> = vec![0u8; batch * record_len];
        let mut bid = 0u64;
        let mut encode_batch = |n: u64| {
            let mut left = n;
            while left > 0 {
                let k = left.min(batch as u64) as usize;
                buf.clear();
                for _ in 0..k {
                    let _ = append_record_unsealed(&mut buf, bid, 1, RecordFlags::NONE, black_box(&payload));
                    bid += 1;
                }
                for rec in buf.chunks_exact_mut(record_len) {
                    seal_record(rec);
                }
                black_box(buf.as_ptr());
                left -= k as u64;
            }
        };
        let mut memcpy_batch = |n: u64| {
            let mut left = n;
            while left > 0 {
                let k = left.min(batch as u64) as usize;
                for slot in copy_buf.chunks_exact_mut(record_len).take(k) {
                    slot.copy_from_slice(black_box(&source));
                }
                black_box(copy_buf.as_ptr());
                left -= k as u64;
            }
        };
        let p = paired(budget, &mut encode_batch, &mut memcpy_batch);
        let target = if size == 64 {
            Some(("≥ 20M records/s".to_owned(), p.subject >= 20e6))
        } else if size >= 16 * 1024 {
            Some(("≥ 0.5 × memcpy".to_owned(), p.ratio >= 0.5))
        } else {
            None
        };
        out.push(result(
            "record_encode_batch",
            size,
            p.subject,
            Some((p.baseline, p.ratio)),
            target,
        ));

        if size >= 16 * 1024 {
            on_case(&format!("record encode {size} B, streaming"));
            let mut ring = Ring::new(record_len, STREAMING);
            let mut base_ring = Ring::new(record_len, STREAMING);
            let (mut i, mut j) = (0u64, 0u64);
            let mut encode = |n: u64| {
                for _ in 0..n {
                    let w = encode_record(ring.slot(i), i, 1, RecordFlags::NONE, black_box(&payload));
                    black_box(w.ok());
                    i += 1;
                }
            };
            let mut memcpy = |n: u64| {
                for _ in 0..n {
                    base_ring.slot(j).copy_from_slice(black_box(&source));
                    black_box(base_ring.slot(j).as_ptr());
                    j += 1;
                }
            };
            let p = paired(budget, &mut encode, &mut memcpy);
            let target = Some(("≥ 0.5 × memcpy".to_owned(), p.ratio >= 0.5));
            out.push(result(
                "record_encode_streaming",
                size,
                p.subject,
                Some((p.baseline, p.ratio)),
                target,
            ));
            out.push(result("baseline_memcpy_streaming", size, p.baseline, None, None));
        }

        on_case(&format!("record decode {size} B"));
        let mut encoded = vec![0u8; record_len];
        let _ = encode_record(&mut encoded, 1, 2, RecordFlags::NONE, &payload);
        let mut copy_ring = Ring::new(record_len, CACHED);
        let mut ci = 0u64;
        let mut decode = |n: u64| {
            for _ in 0..n {
                let r = decode_record(black_box(&encoded), u32::MAX);
                black_box(r.ok().map(|r| r.payload.len()));
            }
        };
        let mut memcpy2 = |n: u64| {
            for _ in 0..n {
                copy_ring.slot(ci).copy_from_slice(black_box(&encoded));
                black_box(copy_ring.slot(ci).as_ptr());
                ci += 1;
            }
        };
        let p = paired(budget, &mut decode, &mut memcpy2);
        out.push(result(
            "record_decode",
            size,
            p.subject,
            Some((p.baseline, p.ratio)),
            None,
        ));
    }
    out
}

fn result(
    workload: &str,
    size: usize,
    rate: f64,
    baseline: Option<(f64, f64)>,
    target: Option<(String, bool)>,
) -> BenchResult {
    BenchResult {
        workload: workload.to_owned(),
        strategy: None,
        record_size: size,
        appenders: 1,
        records_per_sec: rate,
        bytes_per_sec: rate * (RECORD_HEADER_SIZE + size) as f64,
        p50_us: None,
        p99_us: None,
        baseline_records_per_sec: baseline.map(|b| b.0),
        ratio_to_baseline: baseline.map(|b| b.1),
        target_met: target.as_ref().map(|t| t.1),
        target: target.map(|t| t.0),
    }
}
