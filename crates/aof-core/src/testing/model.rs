//! The disk the fault-injecting file system models, and what a crash leaves
//! of it.
//!
//! Contents: each file (inode) has a live image (what reads see: the page
//! cache) and a durable one (what its last `sync` wrote). Names: a durable
//! base namespace plus an ordered log of directory operations not yet known
//! durable; `sync_dir(d)` makes every logged operation that touched `d`
//! durable (a rename between two directories needs both synced).
//!
//! A crash image is built from three kinds of choices, made by a
//! [`Chooser`]: which pending directory operations persisted, each file's
//! length and which of its dirty 4 KiB pages were written back, and where
//! the write the crash interrupted was cut.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The page-cache page: unsynced data is written back in units of it.
pub const PAGE_SIZE: u64 = 4096;

/// The disk sector: a write reaches the disk in whole sectors, so an
/// interrupted write is cut at a sector boundary of the file.
pub const SECTOR_SIZE: u64 = 512;

#[derive(Debug, Clone, Default)]
pub(super) struct FileData {
    pub(super) live: Vec<u8>,
    pub(super) durable: Vec<u8>,
}

/// A directory change not yet known durable (see
/// [`FaultyFileSystem::pending_dir_ops`](super::FaultyFileSystem::pending_dir_ops)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirOp {
    /// A file was created at `path`.
    Create {
        /// Its path.
        path: PathBuf,
    },
    /// A file was renamed from `from` to `to` (replacing `to`).
    Rename {
        /// The old path.
        from: PathBuf,
        /// The new path.
        to: PathBuf,
    },
    /// The file at `path` was removed.
    Remove {
        /// Its path.
        path: PathBuf,
    },
    /// A directory was created at `path`.
    CreateDir {
        /// Its path.
        path: PathBuf,
    },
    /// A directory was renamed from `from` to `to` (replacing an empty
    /// directory `to`), with everything in it.
    RenameDir {
        /// The old path.
        from: PathBuf,
        /// The new path.
        to: PathBuf,
    },
    /// The empty directory at `path` was removed.
    RemoveDir {
        /// Its path.
        path: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub(super) struct PendingOp {
    pub(super) op: DirOp,
    /// The file the operation names (0 for a directory).
    pub(super) inode: u64,
    /// Directories whose `sync_dir` is still needed for it to be durable.
    pub(super) unsynced: BTreeSet<PathBuf>,
}

impl PendingOp {
    pub(super) fn new(op: DirOp, inode: u64) -> Self {
        let parent = |p: &Path| p.parent().unwrap_or(Path::new("/")).to_owned();
        let unsynced = match &op {
            DirOp::Create { path }
            | DirOp::Remove { path }
            | DirOp::CreateDir { path }
            | DirOp::RemoveDir { path } => BTreeSet::from([parent(path)]),
            DirOp::Rename { from, to } | DirOp::RenameDir { from, to } => {
                BTreeSet::from([parent(from), parent(to)])
            }
        };
        Self { op, inode, unsynced }
    }

    fn paths(&self) -> Vec<&PathBuf> {
        match &self.op {
            DirOp::Create { path }
            | DirOp::Remove { path }
            | DirOp::CreateDir { path }
            | DirOp::RemoveDir { path } => vec![path],
            DirOp::Rename { from, to } | DirOp::RenameDir { from, to } => vec![from, to],
        }
    }

    fn committed(&self) -> bool {
        self.unsynced.is_empty()
    }
}

/// Names: files by path, and the directories made with `create_dir_all`.
/// A directory never made explicitly (such as `/`) always exists.
#[derive(Debug, Clone, Default)]
pub(super) struct Namespace {
    pub(super) files: BTreeMap<PathBuf, u64>,
    pub(super) dirs: BTreeSet<PathBuf>,
}

impl Namespace {
    /// Applies one directory operation, POSIX-wise: a rename moves the
    /// file, whatever name it has now, to its new name in one step.
    fn apply(&mut self, op: &PendingOp) {
        match &op.op {
            DirOp::Create { path } => {
                self.files.insert(path.clone(), op.inode);
            }
            DirOp::Rename { to, .. } => {
                self.files.retain(|_, i| *i != op.inode);
                self.files.insert(to.clone(), op.inode);
            }
            DirOp::Remove { path } => {
                if self.files.get(path) == Some(&op.inode) {
                    self.files.remove(path);
                }
            }
            DirOp::CreateDir { path } => {
                self.dirs.insert(path.clone());
            }
            DirOp::RenameDir { from, to } => {
                let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
                self.dirs.remove(to);
                self.files = std::mem::take(&mut self.files)
                    .into_iter()
                    .map(|(p, i)| (moved(&p).unwrap_or(p), i))
                    .collect();
                self.dirs = std::mem::take(&mut self.dirs)
                    .into_iter()
                    .map(|p| moved(&p).unwrap_or(p))
                    .collect();
            }
            DirOp::RemoveDir { path } => {
                self.dirs.remove(path);
            }
        }
    }
}

/// The write a crash interrupted.
#[derive(Debug, Clone)]
pub(super) struct Interrupted {
    pub(super) inode: u64,
    pub(super) offset: u64,
    pub(super) bytes: Vec<u8>,
}

impl Interrupted {
    /// File offsets where the write may have stopped: its start (nothing
    /// written), every sector boundary inside it, and its end (all written).
    pub(super) fn cuts(&self) -> Vec<u64> {
        let end = self.offset + self.bytes.len() as u64;
        let mut cuts = vec![self.offset];
        let mut b = (self.offset / SECTOR_SIZE + 1) * SECTOR_SIZE;
        while b < end {
            cuts.push(b);
            b += SECTOR_SIZE;
        }
        if end > self.offset {
            cuts.push(end);
        }
        cuts
    }

    /// `data` with the write's bytes before file offset `cut` applied.
    pub(super) fn apply(&self, data: &mut Vec<u8>, cut: u64) {
        let kept = &self.bytes[..(cut.saturating_sub(self.offset) as usize).min(self.bytes.len())];
        write_into(data, self.offset, kept);
    }
}

/// Writes `bytes` at `offset`, growing `data` with zeros as needed.
pub(super) fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let at = offset as usize;
    if data.len() < at + bytes.len() {
        data.resize(at + bytes.len(), 0);
    }
    data[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Everything a crash image is made from.
#[derive(Debug, Clone, Default)]
pub(super) struct Disk {
    pub(super) files: BTreeMap<u64, FileData>,
    pub(super) live: Namespace,
    /// Durable names before the first pending operation.
    pub(super) base: Namespace,
    pub(super) pending: Vec<PendingOp>,
    pub(super) next_inode: u64,
}

impl Disk {
    pub(super) fn log(&mut self, op: DirOp, inode: u64) {
        let op = PendingOp::new(op, inode);
        self.live.apply(&op);
        self.pending.push(op);
    }

    /// Marks every logged operation that touched `dir` as synced there, and
    /// folds into the base each durable one that commutes with every
    /// operation left before it (no path or file in common), so the log
    /// stays short even when a directory is never synced.
    pub(super) fn sync_dir(&mut self, dir: &Path) {
        let mut kept = Vec::new();
        let mut blocking_paths: BTreeSet<PathBuf> = BTreeSet::new();
        let mut blocking_inodes: BTreeSet<u64> = BTreeSet::new();
        for mut op in std::mem::take(&mut self.pending) {
            op.unsynced.remove(dir);
            let paths = op.paths();
            // A path conflicts with the same path and with any path inside
            // it or around it (a directory rename moves what it holds).
            let independent = (op.inode == 0 || !blocking_inodes.contains(&op.inode))
                && paths.iter().all(|p| {
                    !blocking_paths
                        .iter()
                        .any(|b| b.starts_with(p.as_path()) || p.starts_with(b))
                });
            if op.committed() && independent {
                self.base.apply(&op);
            } else {
                blocking_paths.extend(paths.into_iter().cloned());
                if op.inode != 0 {
                    blocking_inodes.insert(op.inode);
                }
                kept.push(op);
            }
        }
        self.pending = kept;
    }

    /// The file named `path` now, else the one it named at the last durable point.
    pub(super) fn inode_of(&self, path: &Path) -> Option<u64> {
        self.live
            .files
            .get(path)
            .or_else(|| self.base.files.get(path))
            .copied()
    }

    /// The directory operations not yet durable, oldest first.
    pub(super) fn pending_ops(&self) -> Vec<DirOp> {
        self.pending
            .iter()
            .filter(|p| !p.committed())
            .map(|p| p.op.clone())
            .collect()
    }

    /// The 4 KiB pages of file `inode` whose live content differs from
    /// the durable one (counting bytes past either end as zeros).
    pub(super) fn dirty_pages(&self, inode: u64) -> Vec<u64> {
        let Some(f) = self.files.get(&inode) else {
            return Vec::new();
        };
        let pages = (f.live.len().max(f.durable.len()) as u64).div_ceil(PAGE_SIZE);
        (0..pages)
            .filter(|p| page(&f.live, *p) != page(&f.durable, *p))
            .collect()
    }

    /// A fresh disk holding, durably, the names of `names` and for each
    /// named file the data `data` gives.
    pub(super) fn image(&self, names: Namespace, mut data: impl FnMut(u64) -> Vec<u8>) -> Disk {
        let mut img = Disk {
            next_inode: self.next_inode,
            ..Disk::default()
        };
        // A file under a directory made explicitly but lost has no name.
        let lost: BTreeSet<PathBuf> = self.live.dirs.difference(&names.dirs).cloned().collect();
        let reachable = |p: &Path| p.ancestors().skip(1).all(|a| !lost.contains(a));
        let files: BTreeMap<PathBuf, u64> = names.files.into_iter().filter(|(p, _)| reachable(p)).collect();
        let dirs: BTreeSet<PathBuf> = names.dirs.into_iter().filter(|d| reachable(d)).collect();
        for inode in files.values().collect::<BTreeSet<_>>() {
            let bytes = data(*inode);
            img.files.insert(
                *inode,
                FileData {
                    live: bytes.clone(),
                    durable: bytes,
                },
            );
        }
        img.live = Namespace { files, dirs };
        img.base = img.live.clone();
        img
    }

    /// Every name as it is now.
    pub(super) fn live_names(&self) -> Namespace {
        self.live.clone()
    }

    /// The names that survive when every pending operation not synced is
    /// lost; directories are kept (the legacy modes treat them as durable).
    pub(super) fn durable_names(&self) -> Namespace {
        let mut names = self.base.clone();
        for op in self.pending.iter().filter(|op| op.committed()) {
            names.apply(op);
        }
        names.dirs = self.live.dirs.clone();
        names
    }

    /// The names after a power loss: each pending operation not synced is
    /// kept or lost as `chooser` says; directories made but not synced in
    /// their parent may be lost with all they hold.
    pub(super) fn writeback_names(&self, chooser: &mut dyn Chooser) -> Namespace {
        let mut names = self.base.clone();
        let mut undecided = 0;
        for op in &self.pending {
            let persisted = op.committed() || {
                undecided += 1;
                chooser.dir_op(undecided - 1)
            };
            if persisted {
                names.apply(op);
            }
        }
        names
    }

    /// One file's contents after a power loss: a length between the durable
    /// and the live one (either, or when the file grew a page boundary
    /// between; a shrink commits whole or not at all, old bytes included),
    /// and for every
    /// page that differs, the live page or the durable one (zeros past the
    /// durable end), as `chooser` says. `live` is the live image to start
    /// from (the interrupted write already applied, if any).
    pub(super) fn writeback_data(&self, inode: u64, live: &[u8], chooser: &mut dyn Chooser) -> Vec<u8> {
        let durable = self.files.get(&inode).map_or(&[][..], |f| &f.durable[..]);
        if durable == live {
            return live.to_vec();
        }
        let (lo, hi) = {
            let (a, b) = (durable.len() as u64, live.len() as u64);
            (a.min(b), a.max(b))
        };
        let mut lengths = vec![lo];
        // A file that grew may keep any page boundary of its growth; one
        // that shrank (`set_len` below its durable length) has one size
        // update to commit, the old size or the new: a journaling file
        // system truncates atomically (ext4 and XFS finish an interrupted
        // truncate from their orphan list), and SQLite relies on it when it
        // truncates a checkpointed WAL (a prefix of it would replay old
        // pages over newer ones).
        if live.len() > durable.len() {
            let mut b = (lo / PAGE_SIZE + 1) * PAGE_SIZE;
            while b < hi {
                lengths.push(b);
                b += PAGE_SIZE;
            }
        }
        if hi > lo {
            lengths.push(hi);
        }
        let len = chooser.length(inode, &lengths).clamp(lo, hi);
        let mut out = Vec::with_capacity(len as usize);
        for p in 0..len.div_ceil(PAGE_SIZE) {
            let new = page(live, p);
            let old = page(durable, p);
            let keep_new = new == old || chooser.page(inode, p);
            out.extend_from_slice(if keep_new { &new } else { &old });
        }
        out.truncate(len as usize);
        if len > live.len() as u64 {
            // The file shrank and the new size did not commit: nothing of
            // the truncation did, the bytes past the new end are the old ones.
            let from = live.len();
            out[from..].copy_from_slice(&durable[from..len as usize]);
        }
        out
    }
}

/// Page `p` of `data`, zero-padded to a full page.
fn page(data: &[u8], p: u64) -> Vec<u8> {
    let start = ((p * PAGE_SIZE) as usize).min(data.len());
    let end = (((p + 1) * PAGE_SIZE) as usize).min(data.len());
    let mut out = data[start..end].to_vec();
    out.resize(PAGE_SIZE as usize, 0);
    out
}

/// The choices a crash image is built from.
pub(super) trait Chooser {
    /// Whether the `index`-th directory operation not yet durable persisted.
    fn dir_op(&mut self, index: usize) -> bool;
    /// The file's length, one of `candidates` (ascending, never empty).
    fn length(&mut self, inode: u64, candidates: &[u64]) -> u64;
    /// Whether dirty page `page` of the file was written back.
    fn page(&mut self, inode: u64, page: u64) -> bool;
    /// Where the interrupted write stopped, one of `cuts` (ascending, never empty).
    fn tear(&mut self, cuts: &[u64]) -> u64;
}

/// SplitMix64: a tiny generator whose output for a seed never changes
/// (a crate's generator may change between versions; seeds must reproduce).
#[derive(Debug, Clone)]
pub(super) struct SplitMix(u64);

impl SplitMix {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Seeded choices. Each image draws how likely a page (and, apart, a
/// directory operation) is to persist from {0, ¼, ½, ¾, 1}, so both "nothing
/// written back" and "everything written back" come up often, and mixes too.
#[derive(Debug, Clone)]
pub(super) struct Seeded {
    rng: SplitMix,
    page_quarters: u64,
    dir_quarters: u64,
}

impl Seeded {
    pub(super) fn new(seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        let page_quarters = rng.below(5);
        let dir_quarters = rng.below(5);
        Self {
            rng,
            page_quarters,
            dir_quarters,
        }
    }

    fn coin(&mut self, quarters: u64) -> bool {
        self.rng.below(4) < quarters
    }
}

impl Chooser for Seeded {
    fn dir_op(&mut self, _index: usize) -> bool {
        let q = self.dir_quarters;
        self.coin(q)
    }

    fn length(&mut self, _inode: u64, candidates: &[u64]) -> u64 {
        // The two ends are the likeliest: the size update committed or not.
        let n = candidates.len() as u64;
        match self.rng.below(4) {
            0 => candidates[0],
            1 => candidates[candidates.len() - 1],
            _ => candidates[self.rng.below(n) as usize],
        }
    }

    fn page(&mut self, _inode: u64, _page: u64) -> bool {
        let q = self.page_quarters;
        self.coin(q)
    }

    fn tear(&mut self, cuts: &[u64]) -> u64 {
        cuts[self.rng.below(cuts.len() as u64) as usize]
    }
}
