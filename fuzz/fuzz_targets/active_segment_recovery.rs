//! Fuzz target `active_segment_recovery`: see [`aof_fuzz::log::active_segment`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aof_fuzz::log::active_segment(data));
