//! The S3 archive against moto, a second, independent S3 implementation.

mod common;

use aof_archive_format::{ArchiveFormatExt, WriterOptions};
use aof_record::archive::ArchiveKey;
use aof_record::conformance::archive::{SuiteOptions, run_all};
use common::{Moto, storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_passes_the_conformance_suite() {
    let Some(moto) = Moto::start().await else { return };
    let archive = storage(moto.config());
    run_all(
        &archive,
        &SuiteOptions {
            large_object: (11 << 20) + 7,
            exclusive_create: true,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_archives_and_reads_back_by_frame_on_moto() {
    let Some(moto) = Moto::start().await else { return };
    let mut config = moto.config();
    config.prefix = Some("p".into());
    let archive = storage(config);
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("seg");
    let data: Vec<u8> = (0..(9u32 << 20) / 4)
        .flat_map(|i| (i / 100).to_le_bytes())
        .collect();
    std::fs::write(&segment, &data).unwrap();
    let key = ArchiveKey::new("segments/0.seg.zst").unwrap();
    let summary = archive
        .archive_segment(&key, &segment, dir.path(), WriterOptions::default())
        .await
        .unwrap();
    let (table, _) = archive.read_seek_table(&key).await.unwrap();
    let f = table.frame_at(5_000_000).unwrap();
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
