//! Criterion benches of record encode and decode, beside memcpy.
#![allow(missing_docs)]

use aof_record::record::{RECORD_HEADER_SIZE, RecordFlags, decode_record, encode_record};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    for size in [64usize, 1024, 16 * 1024, 64 * 1024] {
        let payload = vec![0x5au8; size];
        let mut out = vec![0u8; RECORD_HEADER_SIZE + size];
        let src = vec![0xa5u8; RECORD_HEADER_SIZE + size];
        g.throughput(Throughput::Bytes((RECORD_HEADER_SIZE + size) as u64));
        g.bench_with_input(BenchmarkId::new("encode", size), &size, |b, _| {
            b.iter(|| encode_record(&mut out, 1, 2, RecordFlags::NONE, black_box(&payload)).expect("encode"))
        });
        g.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| {
                out.copy_from_slice(black_box(&src));
                black_box(out.as_ptr());
            })
        });
        encode_record(&mut out, 1, 2, RecordFlags::NONE, &payload).expect("encode");
        let encoded = out.clone();
        g.bench_with_input(BenchmarkId::new("decode", size), &size, |b, _| {
            b.iter(|| {
                decode_record(black_box(&encoded), u32::MAX)
                    .expect("decode")
                    .payload
                    .len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
