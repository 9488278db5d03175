//! The S3 archive against s3s-fs, a real S3 server run in process.

mod common;

use aof_archive_format::{ArchiveFormatExt, WriterOptions};
use aof_record::archive::{ArchiveError, ArchiveKey, ArchiveStorage, ArchiveStorageExt};
use aof_record::conformance::archive::{SuiteOptions, run_all};
use bytes::Bytes;
use common::{S3sServer, storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_passes_the_conformance_suite() {
    let server = S3sServer::start().await;
    let archive = storage(server.config());
    run_all(
        &archive,
        &SuiteOptions {
            // Above the 6 MiB multipart threshold: two 5 MiB parts and a tail.
            large_object: (11 << 20) + 7,
            // s3s-fs checks If-None-Match before writing, not atomically with it.
            exclusive_create: false,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_prefix_keys_stay_inside_it() {
    let server = S3sServer::start().await;
    let mut config = server.config();
    config.prefix = Some("logs/a".into());
    let archive = storage(config);
    run_all(
        &archive,
        &SuiteOptions {
            large_object: (7 << 20) + 1,
            exclusive_create: false,
        },
    )
    .await;
    let key = ArchiveKey::new("x/y").unwrap();
    archive.store_bytes(&key, Bytes::from_static(b"1")).await.unwrap();
    assert!(
        server
            .root
            .path()
            .join(common::BUCKET)
            .join("logs/a/x/y")
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_auth_failed() {
    let server = S3sServer::start().await;
    let mut config = server.config();
    config.secret_key = "not-the-secret".into();
    let archive = storage(config);
    let key = ArchiveKey::new("k").unwrap();
    for r in [
        archive
            .store_bytes(&key, Bytes::from_static(b"x"))
            .await
            .map(|_| ()),
        archive.head(&key).await.map(|_| ()),
        archive.read_range(&key, 0..1).await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(ArchiveError::AuthFailed { .. })), "{r:?}");
    }
    let mut config = server.config();
    config.access_key = "AKIAUNKNOWN".into();
    let r = storage(config).head(&key).await;
    assert!(matches!(r, Err(ArchiveError::AuthFailed { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_archives_and_reads_back_by_frame() {
    let server = S3sServer::start().await;
    let archive = storage(server.config());
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("seg");
    let data: Vec<u8> = (0..(12u32 << 20) / 4)
        .flat_map(|i| (i / 64).to_le_bytes())
        .collect();
    std::fs::write(&segment, &data).unwrap();
    let key = ArchiveKey::new("segments/0.seg.zst").unwrap();
    let summary = archive
        .archive_segment(&key, &segment, dir.path(), WriterOptions::default())
        .await
        .unwrap();
    let (table, meta) = archive.read_seek_table(&key).await.unwrap();
    assert_eq!(table, summary.table);
    assert_eq!(meta.checksum, summary.compressed_checksum);
    let f = table.frame_at(7_654_321).unwrap();
    let bytes = archive.read_frame(&key, &f).await.unwrap();
    assert_eq!(
        bytes[..],
        data[f.decompressed.start as usize..f.decompressed.end as usize]
    );
    let back = dir.path().join("back");
    archive
        .restore_segment(&key, &back, Some(summary.uncompressed_checksum))
        .await
        .unwrap();
    assert!(std::fs::read(&back).unwrap() == data);
}
