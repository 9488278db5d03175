//! Fuzz harnesses for every decoder of bytes read from disk, and the
//! engine's handling of arbitrary segment files.
//!
//! The targets in `fuzz_targets/` are one line each: they call a function
//! of [`decoders`], [`log`] or [`directory`], which reads a few knob bytes from the input,
//! builds the bytes to decode (see [`seal`] for the checksum repairs that
//! let mutations reach past the CRCs) and checks the contract. The
//! proptest suites in `crates/aof-record/tests/arbitrary_bytes.rs` and
//! `crates/aof-core/tests/arbitrary_segments.rs` include these same files,
//! so the checks run on stable too.
//!
//! Run: `cargo xtask fuzz TARGET --time SECONDS` (or `all`).

pub mod decoders;
pub mod directory;
pub mod known;
pub mod log;
pub mod seal;
pub mod seeds;
pub mod snapshot;
