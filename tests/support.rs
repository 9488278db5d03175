//! Helpers shared by the workspace's cross-crate tests.

use std::path::PathBuf;

/// Path of a file under `tests/fixtures/`.
#[must_use]
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}
