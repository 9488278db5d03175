//! Fuzz target `directory_open`: see [`aof_fuzz::directory::directory_open`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aof_fuzz::directory::directory_open(data));
