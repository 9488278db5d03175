//! The filesystem archive against the shared suite, and its own guarantees.

use aof_archive_fs::FilesystemArchiveStorage;
use aof_record::archive::{ArchiveError, ArchiveKey, ArchiveStorage, ArchiveStorageExt};
use aof_record::conformance::archive::{SuiteOptions, run_all};
use bytes::Bytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_archive_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let archive = FilesystemArchiveStorage::new(dir.path().join("archive")).unwrap();
    run_all(&archive, &SuiteOptions::default()).await;
}

#[tokio::test]
async fn objects_are_plain_files_and_staging_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let archive = FilesystemArchiveStorage::new(dir.path()).unwrap();
    let key = ArchiveKey::new("a/b/c.seg.zst").unwrap();
    archive
        .store_bytes(&key, Bytes::from_static(b"xyz"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("a/b/c.seg.zst")).unwrap(), b"xyz");
    // A crash mid-store leaves a temporary file; reopening removes it and it is never listed.
    std::fs::write(dir.path().join("#staging/store-leftover"), b"partial").unwrap();
    assert_eq!(archive.list(None).await.unwrap().len(), 1);
    let archive = FilesystemArchiveStorage::new(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join("#staging")).unwrap().count(), 0);
    assert_eq!(archive.list(None).await.unwrap().len(), 1);
    // No temporary file stays behind after stores, good or refused.
    let _ = archive.store_bytes(&key, Bytes::from_static(b"other")).await;
    assert_eq!(std::fs::read_dir(dir.path().join("#staging")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_key_used_as_a_directory_is_an_io_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let archive = FilesystemArchiveStorage::new(dir.path()).unwrap();
    archive
        .store_bytes(&ArchiveKey::new("a").unwrap(), Bytes::from_static(b"1"))
        .await
        .unwrap();
    let under = ArchiveKey::new("a/b").unwrap();
    assert!(matches!(
        archive.store_bytes(&under, Bytes::from_static(b"2")).await,
        Err(ArchiveError::Io { .. })
    ));
    assert!(matches!(
        archive.head(&under).await,
        Err(ArchiveError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_file_changed_under_the_archive_is_seen_by_head() {
    let dir = tempfile::tempdir().unwrap();
    let archive = FilesystemArchiveStorage::new(dir.path()).unwrap();
    let key = ArchiveKey::new("x").unwrap();
    let meta = archive
        .store_bytes(&key, Bytes::from_static(b"abcdef"))
        .await
        .unwrap();
    std::fs::write(dir.path().join("x"), b"abcdeF").unwrap();
    let now = archive.head(&key).await.unwrap();
    assert_eq!(now.size, meta.size);
    assert_ne!(now.checksum, meta.checksum);
}
