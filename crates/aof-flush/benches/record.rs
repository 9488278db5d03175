//! Placeholder; replaced by the recording benchmarks.
fn main() {}
