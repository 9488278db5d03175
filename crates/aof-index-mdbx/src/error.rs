//! Mapping libmdbx's errors into [`IndexError`].
//!
//! Failures with a meaning the engine acts on (`NotAnIndex`, `CorruptEntry`,
//! …) are the shared [`IndexError`] variants; everything else libmdbx
//! reports is `IndexError::Backend { backend: "mdbx", source }`, whose
//! source callers can `downcast_ref::<libmdbx::Error>()`.

use aof_record::index::IndexError;
use std::path::Path;

/// The name this backend reports in [`IndexError::Backend`].
pub const BACKEND: &str = "mdbx";

/// A libmdbx failure as an [`IndexError::Backend`].
pub(crate) fn mdbx(e: libmdbx::Error) -> IndexError {
    IndexError::Backend {
        backend: BACKEND,
        source: Box::new(e),
    }
}

/// Maps an error from opening an environment: what says "this is not an MDBX
/// file" becomes [`IndexError::NotAnIndex`].
pub(crate) fn open_error(path: &Path, e: libmdbx::Error) -> IndexError {
    match e {
        libmdbx::Error::Invalid
        | libmdbx::Error::NoData
        | libmdbx::Error::VersionMismatch
        | libmdbx::Error::Corrupted => IndexError::NotAnIndex {
            path: path.to_owned(),
            reason: "not an MDBX environment",
        },
        libmdbx::Error::Incompatible => IndexError::NotAnIndex {
            path: path.to_owned(),
            reason: "an MDBX environment with tables of another layout",
        },
        e => mdbx(e),
    }
}
