//! [`MdbxIndexOptions`]: how an index opens its environment.

use libmdbx::{Mode, ReadWriteOptions, SyncMode};

/// How [`MdbxSegmentIndex::open_with`](crate::MdbxSegmentIndex::open_with) opens the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MdbxIndexOptions {
    /// Fsync on every commit (`MDBX_SYNC_DURABLE`) instead of only in
    /// [`SegmentIndex::sync`](aof_record::index::SegmentIndex::sync) (`MDBX_SAFE_NOSYNC`, the default).
    pub durable_commits: bool,
    /// Largest size the data file may grow to, in bytes (default 64 GiB;
    /// only address space is reserved up front).
    pub max_size: usize,
}

impl Default for MdbxIndexOptions {
    fn default() -> Self {
        Self {
            durable_commits: false,
            max_size: 64 << 30,
        }
    }
}

impl MdbxIndexOptions {
    /// Sets [`MdbxIndexOptions::durable_commits`].
    #[must_use]
    pub const fn durable_commits(mut self, yes: bool) -> Self {
        self.durable_commits = yes;
        self
    }

    /// Sets [`MdbxIndexOptions::max_size`].
    #[must_use]
    pub const fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// The libmdbx open mode these options ask for.
    pub(crate) fn mode(&self) -> Mode {
        let sync_mode = if self.durable_commits {
            SyncMode::Durable
        } else {
            SyncMode::SafeNoSync
        };
        Mode::ReadWrite(ReadWriteOptions {
            sync_mode,
            max_size: Some(isize::try_from(self.max_size).unwrap_or(isize::MAX)),
            // Start small and grow by 1 MiB: an index is a few MiB at most.
            min_size: Some(0),
            growth_step: Some(1 << 20),
            shrink_threshold: Some(4 << 20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_builders() {
        let o = MdbxIndexOptions::default()
            .durable_commits(true)
            .max_size(1 << 20);
        assert!(o.durable_commits);
        assert_eq!(o.max_size, 1 << 20);
    }
}
