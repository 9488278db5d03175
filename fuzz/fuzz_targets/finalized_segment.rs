//! Fuzz target `finalized_segment`: see [`aof_fuzz::log::finalized_segment`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aof_fuzz::log::finalized_segment(data));
