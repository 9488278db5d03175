//! The operations the fault-injecting file system counts, the errors it
//! injects, and the tallies tests read back.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// One kind of file-system operation: each call of a [`FileSystem`] or
/// [`FileHandle`] method is one operation of one kind.
///
/// [`FileSystem`]: crate::fs::FileSystem
/// [`FileHandle`]: crate::fs::FileHandle
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// `create_dir_all`.
    CreateDir,
    /// `open` with [`OpenMode::CreateNew`](crate::fs::OpenMode::CreateNew).
    Create,
    /// `open` of an existing file.
    Open,
    /// `write_all_at`.
    Write,
    /// `set_len`.
    SetLen,
    /// `sync_data` or `sync_all`.
    Sync,
    /// `rename`.
    Rename,
    /// `remove_file`.
    Remove,
    /// `sync_dir`.
    SyncDir,
    /// `read_at`, `map` or `map_live`.
    Read,
    /// `len`.
    Len,
    /// `exists`.
    Exists,
    /// `list`.
    List,
    /// `lock_exclusive`.
    Lock,
}

impl OpKind {
    /// Every kind, in order.
    pub const ALL: [OpKind; 14] = [
        OpKind::CreateDir,
        OpKind::Create,
        OpKind::Open,
        OpKind::Write,
        OpKind::SetLen,
        OpKind::Sync,
        OpKind::Rename,
        OpKind::Remove,
        OpKind::SyncDir,
        OpKind::Read,
        OpKind::Len,
        OpKind::Exists,
        OpKind::List,
        OpKind::Lock,
    ];

    /// Whether the operation changes the disk (live or durable image).
    #[must_use]
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            OpKind::CreateDir
                | OpKind::Create
                | OpKind::Write
                | OpKind::SetLen
                | OpKind::Sync
                | OpKind::Rename
                | OpKind::Remove
                | OpKind::SyncDir
        )
    }

    /// A short lowercase name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OpKind::CreateDir => "create_dir",
            OpKind::Create => "create",
            OpKind::Open => "open",
            OpKind::Write => "write",
            OpKind::SetLen => "set_len",
            OpKind::Sync => "sync",
            OpKind::Rename => "rename",
            OpKind::Remove => "remove",
            OpKind::SyncDir => "sync_dir",
            OpKind::Read => "read",
            OpKind::Len => "len",
            OpKind::Exists => "exists",
            OpKind::List => "list",
            OpKind::Lock => "lock",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which operations get an index, and so can be a crash point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OpCounting {
    /// Only mutations ([`OpKind::is_mutation`]): the numbering crash sweeps
    /// of a write path want, and the default.
    #[default]
    Mutations,
    /// Every operation, reads, opens and directory listings included: for
    /// crashing inside open and recovery, which mostly read.
    All,
}

impl OpCounting {
    /// Whether an operation of `kind` gets an index.
    #[must_use]
    pub fn counts(self, kind: OpKind) -> bool {
        match self {
            OpCounting::Mutations => kind.is_mutation(),
            OpCounting::All => true,
        }
    }
}

/// The error of every operation at and after the crash point (the payload
/// of an [`std::io::Error`] of kind `Other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the file system crashed at operation {index} ({kind})")]
pub struct Crashed {
    /// The crash point's operation index, counted since the file system
    /// was made (or deep-cloned), as [`OpRecord::index`] is.
    pub index: u64,
    /// The kind of the operation the crash interrupted.
    pub kind: OpKind,
}

/// The error of an operation made to fail (the payload of an
/// [`std::io::Error`] of kind `Other`); the file system goes on working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("injected {kind} failure at operation {index}")]
pub struct InjectedFault {
    /// The failed operation's kind.
    pub kind: OpKind,
    /// Its position: its index if counted, else the index the next counted
    /// operation gets.
    pub index: u64,
}

/// How many operations of each kind a file system performed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpCounts {
    counts: BTreeMap<OpKind, u64>,
}

impl OpCounts {
    pub(super) fn add(&mut self, kind: OpKind) {
        *self.counts.entry(kind).or_default() += 1;
    }

    /// Operations of `kind`.
    #[must_use]
    pub fn get(&self, kind: OpKind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Operations of every kind.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Mutating operations: the crash points under [`OpCounting::Mutations`].
    #[must_use]
    pub fn mutations(&self) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| k.is_mutation())
            .map(|(_, n)| n)
            .sum()
    }

    /// The operations done since `earlier` (a tally of the same file system).
    #[must_use]
    pub fn since(&self, earlier: &OpCounts) -> OpCounts {
        let counts = self
            .counts
            .iter()
            .map(|(k, n)| (*k, n.saturating_sub(earlier.get(*k))))
            .filter(|(_, n)| *n > 0)
            .collect();
        OpCounts { counts }
    }

    /// `(kind, count)` for every kind done at least once, in [`OpKind`] order.
    pub fn iter(&self) -> impl Iterator<Item = (OpKind, u64)> + '_ {
        self.counts.iter().map(|(k, n)| (*k, *n))
    }
}

impl fmt::Display for OpCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (kind, n) in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{kind}={n}")?;
        }
        Ok(())
    }
}

/// One traced operation (see [`FaultyFileSystem::set_tracing`]).
///
/// [`FaultyFileSystem::set_tracing`]: super::FaultyFileSystem::set_tracing
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// Its index when counted, since the file system was made (or
    /// deep-cloned): on a fresh copy that ran the same operations,
    /// `crash_at(index)` crashes exactly there.
    pub index: Option<u64>,
    /// Its kind.
    pub kind: OpKind,
    /// The path it worked on (a renamed file's old path; a handle's path
    /// when it was opened).
    pub path: PathBuf,
}
