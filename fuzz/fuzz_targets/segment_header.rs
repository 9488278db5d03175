//! Fuzz target `segment_header`: see [`aof_fuzz::decoders::segment_header`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aof_fuzz::decoders::segment_header(data));
