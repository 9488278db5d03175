//! Fuzz target `record_decode`: see [`aof_fuzz::decoders::record`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aof_fuzz::decoders::record(data));
