//! The [`ArchiveStorage`] conformance suite.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use aof_record::archive::MemoryArchive;
//! aof_record::conformance::archive::run_all(&MemoryArchive::new()).await;
//! # });
//! ```

use crate::archive::{ArchiveError, ArchiveKey, ArchiveStorage};
use bytes::Bytes;

fn key(s: &str) -> ArchiveKey {
    ArchiveKey::new(s).expect("suite keys are valid")
}

/// Runs every test against one archive, which must start empty. The tests
/// use keys under `conformance/`.
pub async fn run_all(archive: &dyn ArchiveStorage) {
    store_and_retrieve(archive).await;
    missing_objects(archive).await;
    overwrite_replaces(archive).await;
    delete_is_idempotent(archive).await;
    empty_and_large_objects(archive).await;
    nested_keys_are_distinct(archive).await;
    concurrent_operations(archive).await;
}

/// An object stored comes back byte for byte.
pub async fn store_and_retrieve(archive: &dyn ArchiveStorage) {
    let k = key("conformance/basic/one.seg.zst");
    let data = Bytes::from_static(b"segment bytes \x00\x01\xff");
    archive.store(&k, data.clone()).await.unwrap();
    assert!(archive.exists(&k).await.unwrap());
    assert_eq!(archive.retrieve(&k).await.unwrap(), data);
}

/// A missing object is `NotFound` on retrieve and absent on exists.
pub async fn missing_objects(archive: &dyn ArchiveStorage) {
    let k = key("conformance/missing/none");
    assert!(!archive.exists(&k).await.unwrap());
    match archive.retrieve(&k).await {
        Err(ArchiveError::NotFound { key }) => assert_eq!(key, k),
        r => panic!("retrieve of a missing object gave {:?}", r.map(|b| b.len())),
    }
}

/// Storing under an existing key replaces the object.
pub async fn overwrite_replaces(archive: &dyn ArchiveStorage) {
    let k = key("conformance/overwrite/x");
    archive
        .store(&k, Bytes::from_static(b"first version, longer"))
        .await
        .unwrap();
    archive.store(&k, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(archive.retrieve(&k).await.unwrap(), Bytes::from_static(b"second"));
}

/// Delete removes; deleting again, or deleting what never was, succeeds.
pub async fn delete_is_idempotent(archive: &dyn ArchiveStorage) {
    let k = key("conformance/delete/x");
    archive.store(&k, Bytes::from_static(b"x")).await.unwrap();
    archive.delete(&k).await.unwrap();
    assert!(!archive.exists(&k).await.unwrap());
    assert!(matches!(
        archive.retrieve(&k).await,
        Err(ArchiveError::NotFound { .. })
    ));
    archive.delete(&k).await.unwrap();
    archive.delete(&key("conformance/delete/never")).await.unwrap();
}

/// Empty objects and multi-megabyte objects round-trip.
pub async fn empty_and_large_objects(archive: &dyn ArchiveStorage) {
    let empty = key("conformance/size/empty");
    archive.store(&empty, Bytes::new()).await.unwrap();
    assert!(archive.exists(&empty).await.unwrap());
    assert!(archive.retrieve(&empty).await.unwrap().is_empty());
    let large = key("conformance/size/large");
    let data: Vec<u8> = (0..(9u32 << 20) + 7)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let data = Bytes::from(data);
    archive.store(&large, data.clone()).await.unwrap();
    let back = archive.retrieve(&large).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "large object changed on the way through");
}

/// `a`, `a/b` and `a.b` are different objects.
pub async fn nested_keys_are_distinct(archive: &dyn ArchiveStorage) {
    let keys = [
        "conformance/nest/a",
        "conformance/nest/a.b",
        "conformance/nest2/a/b/c",
    ];
    for (i, k) in keys.iter().enumerate() {
        archive
            .store(&key(k), Bytes::from(vec![i as u8; i + 1]))
            .await
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            archive.retrieve(&key(k)).await.unwrap(),
            Bytes::from(vec![i as u8; i + 1]),
            "{k}"
        );
    }
    archive.delete(&key(keys[0])).await.unwrap();
    assert!(archive.exists(&key(keys[1])).await.unwrap());
}

/// Many operations in flight at once each see their own object.
pub async fn concurrent_operations(archive: &dyn ArchiveStorage) {
    let ops = (0..32u8).map(|i| async move {
        let k = key(&format!("conformance/concurrent/{i}"));
        let data = Bytes::from(vec![i; 1024 * usize::from(i + 1)]);
        archive.store(&k, data.clone()).await.unwrap();
        assert_eq!(archive.retrieve(&k).await.unwrap(), data);
    });
    futures_join_all(ops).await;
}

/// Polls every future to completion concurrently on the current task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl IntoIterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
