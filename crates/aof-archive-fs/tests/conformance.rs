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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_archives_as_a_file_that_zstd_restores() {
    use aof_archive_format::{ArchiveFormatExt, WriterOptions};
    let dir = tempfile::tempdir().unwrap();
    let archive = FilesystemArchiveStorage::new(dir.path().join("archive")).unwrap();
    let segment = dir.path().join("seg");
    let data: Vec<u8> = (0..3_500_000u32).map(|i| (i / 3 % 253) as u8).collect();
    std::fs::write(&segment, &data).unwrap();
    let key = ArchiveKey::new("segments/1.seg.zst").unwrap();
    let summary = archive
        .archive_segment(&key, &segment, dir.path(), WriterOptions::default())
        .await
        .unwrap();
    // The file is the whole object, and decompresses to the segment.
    let object = std::fs::read(archive.path_of(&key)).unwrap();
    assert_eq!(object.len() as u64, summary.compressed_size);
    assert!(decompress(&object) == data);
    let (table, _) = archive.read_seek_table(&key).await.unwrap();
    let f = table.frame_at(3_000_000).unwrap();
    assert_eq!(
        archive.read_frame(&key, &f).await.unwrap()[..],
        data[f.decompressed.start as usize..f.decompressed.end as usize]
    );
    // Archiving the same segment again is a no-op; the scratch file is gone.
    archive
        .archive_segment(&key, &segment, dir.path(), WriterOptions::default())
        .await
        .unwrap();
    let back = dir.path().join("back");
    let wrong = archive
        .restore_segment(&key, &back, Some(summary.uncompressed_checksum ^ 1))
        .await;
    assert!(wrong.is_err());
    archive
        .restore_segment(&key, &back, Some(summary.uncompressed_checksum))
        .await
        .unwrap();
    assert!(std::fs::read(&back).unwrap() == data);
}

fn decompress(object: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    aof_archive_format::restore(object, &mut out, None).unwrap();
    out
}
