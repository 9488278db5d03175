//! Conformance suites: one per backend trait, run by every backend's tests.
//!
//! A suite is a set of `pub` functions that panic with a message naming the
//! broken rule. Capability differences are arguments, not forks. Enable the
//! `conformance` feature in a backend's `[dev-dependencies]` to use them:
//!
//! ```toml
//! aof-record = { workspace = true, features = ["conformance"] }
//! ```

pub mod archive;
pub mod index;
