//! Fuzz target `snapshot_stream`: see [`aof_fuzz::snapshot::snapshot_stream`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aof_fuzz::snapshot::snapshot_stream(data));
