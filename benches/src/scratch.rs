//! Scratch files and directories of the benchmarks. A file that is already
//! gone counts as removed; every other failure is an error, so a full disk
//! or a permission problem fails the run instead of skewing it.

use std::io::ErrorKind;
use std::path::Path;

/// Removes `dir` and everything in it, if it exists.
pub fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes the file `path`, if it exists.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes `dir` if it exists and creates it empty.
pub fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    remove_dir(dir)?;
    std::fs::create_dir_all(dir)
}

/// The length of the file `path`, 0 if it does not exist.
pub fn file_len(path: &Path) -> std::io::Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_count_as_removed_and_empty() {
        let dir = std::env::temp_dir().join(format!("aof-bench-scratch-{}", std::process::id()));
        fresh_dir(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(file_len(&f).unwrap(), 3);
        remove_file(&f).unwrap();
        remove_file(&f).unwrap();
        assert_eq!(file_len(&f).unwrap(), 0);
        fresh_dir(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        remove_dir(&dir).unwrap();
        remove_dir(&dir).unwrap();
        assert!(!dir.exists());
    }
}
