//! Fuzz target `segment_footer`: see [`aof_fuzz::decoders::segment_footer`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aof_fuzz::decoders::segment_footer(data));
