//! The [`ArchiveStorage`] conformance suite: every backend's tests run it.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use aof_record::archive::MemoryArchive;
//! use aof_record::conformance::archive::{run_all, SuiteOptions};
//! run_all(&MemoryArchive::new(), &SuiteOptions::default()).await;
//! # });
//! ```

use crate::archive::{
    ArchiveError, ArchiveKey, ArchiveStorage, ArchiveStorageExt, ListedObject, ObjectMeta, ObjectSource,
};
use crate::checksum::crc64_nvme;
use bytes::Bytes;
use std::io::Read;

/// What the suite may assume of a backend: differences are arguments, not forks.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Size of the "large" objects: set it above the backend's multipart
    /// threshold so that path is exercised.
    pub large_object: usize,
    /// Whether racing stores of different bytes under one key are
    /// guaranteed to leave exactly one winner (an atomic create).
    pub exclusive_create: bool,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self {
            large_object: (9 << 20) + 7,
            exclusive_create: true,
        }
    }
}

fn key(s: &str) -> ArchiveKey {
    ArchiveKey::new(s).expect("suite keys are valid")
}

/// Deterministic bytes that do not compress to nothing.
#[must_use]
pub fn pattern(len: usize, seed: u32) -> Bytes {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Runs every test against one archive, which must start empty. The tests
/// use keys under `conformance/`.
pub async fn run_all(archive: &dyn ArchiveStorage, options: &SuiteOptions) {
    store_and_read(archive).await;
    ranges(archive).await;
    missing_objects(archive).await;
    identical_store_is_a_no_op(archive).await;
    different_store_is_refused(archive).await;
    bad_sources_leave_nothing(archive, options).await;
    delete_is_idempotent(archive).await;
    empty_and_large_objects(archive, options).await;
    nested_keys_are_distinct(archive).await;
    list_by_prefix(archive).await;
    concurrent_operations(archive).await;
    if options.exclusive_create {
        racing_creates_have_one_winner(archive).await;
    }
}

/// An object stored comes back byte for byte, with its size and checksum.
pub async fn store_and_read(archive: &dyn ArchiveStorage) {
    let k = key("conformance/basic/one.seg.zst");
    let data = Bytes::from_static(b"segment bytes \x00\x01\xff");
    let meta = archive.store_bytes(&k, data.clone()).await.unwrap();
    let expected = ObjectMeta {
        size: data.len() as u64,
        checksum: crc64_nvme(&data),
    };
    assert_eq!(meta, expected);
    assert_eq!(archive.head(&k).await.unwrap(), expected);
    assert!(archive.exists(&k).await.unwrap());
    assert_eq!(archive.read_all(&k).await.unwrap(), data);
}

/// Ranged reads return exactly the bytes asked for, and refuse ranges
/// outside the object.
pub async fn ranges(archive: &dyn ArchiveStorage) {
    let k = key("conformance/range/x");
    let data = pattern(100_000, 1);
    archive.store_bytes(&k, data.clone()).await.unwrap();
    let size = data.len() as u64;
    for (start, end) in [
        (0, 0),
        (0, 1),
        (0, size),
        (1, 2),
        (4_096, 70_000),
        (size - 1, size),
        (size, size),
    ] {
        let got = archive.read_range(&k, start..end).await.unwrap();
        assert!(
            got == data.slice(start as usize..end as usize),
            "range {start}..{end}: {} bytes back",
            got.len()
        );
    }
    for (start, end) in [(0, size + 1), (size + 1, size + 2), (10, 5), (size - 5, u64::MAX)] {
        match archive.read_range(&k, start..end).await {
            Err(ArchiveError::InvalidRange {
                key,
                start: s,
                end: e,
                ..
            }) => {
                assert_eq!((key, s, e), (k.clone(), start, end));
            }
            r => panic!(
                "range {start}..{end} of {size} bytes gave {:?}",
                r.map(|b| b.len())
            ),
        }
    }
}

/// A missing object is `NotFound` on every read and absent on exists.
pub async fn missing_objects(archive: &dyn ArchiveStorage) {
    let k = key("conformance/missing/none");
    assert!(!archive.exists(&k).await.unwrap());
    match archive.head(&k).await {
        Err(ArchiveError::NotFound { key }) => assert_eq!(key, k),
        r => panic!("head of a missing object gave {r:?}"),
    }
    match archive.read_all(&k).await {
        Err(ArchiveError::NotFound { key }) => assert_eq!(key, k),
        r => panic!("read of a missing object gave {:?}", r.map(|b| b.len())),
    }
    match archive.read_range(&k, 0..1).await {
        Err(ArchiveError::NotFound { key }) => assert_eq!(key, k),
        r => panic!("ranged read of a missing object gave {:?}", r.map(|b| b.len())),
    }
}

/// Storing the identical bytes again succeeds and changes nothing: a retry
/// after a lost acknowledgement is harmless.
pub async fn identical_store_is_a_no_op(archive: &dyn ArchiveStorage) {
    let k = key("conformance/again/x");
    let data = pattern(5_000, 2);
    let first = archive.store_bytes(&k, data.clone()).await.unwrap();
    let second = archive.store_bytes(&k, data.clone()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(archive.read_all(&k).await.unwrap(), data);
}

/// Storing different bytes under a used key is `AlreadyExists`; the first
/// object stays.
pub async fn different_store_is_refused(archive: &dyn ArchiveStorage) {
    let k = key("conformance/overwrite/x");
    let first = Bytes::from_static(b"first version, longer");
    archive.store_bytes(&k, first.clone()).await.unwrap();
    for other in [&b"second"[..], b"first version, LONGER", b""] {
        match archive.store_bytes(&k, Bytes::copy_from_slice(other)).await {
            Err(ArchiveError::AlreadyExists { key }) => assert_eq!(key, k),
            r => panic!("storing different bytes over an object gave {r:?}"),
        }
    }
    assert_eq!(archive.read_all(&k).await.unwrap(), first);
}

/// A reader that yields `data` and then fails or keeps going.
struct Source(std::io::Cursor<Bytes>);

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// Sources that are shorter or longer than declared, or whose checksum is
/// wrong, are refused with a typed error and leave no object, small or
/// above the multipart threshold.
pub async fn bad_sources_leave_nothing(archive: &dyn ArchiveStorage, options: &SuiteOptions) {
    for size in [1_000, options.large_object] {
        let data = pattern(size, 3);
        let len = data.len() as u64;
        let k = key(&format!("conformance/bad/{size}"));
        let short = ObjectSource::from_reader(Source(std::io::Cursor::new(data.slice(..size - 1))), len);
        assert!(
            matches!(
                archive.store(&k, short).await,
                Err(ArchiveError::SourceLength { expected, actual, .. }) if expected == len && actual == len - 1
            ),
            "a short source of {size} bytes was not refused"
        );
        let long = ObjectSource::from_reader(Source(std::io::Cursor::new(data.clone())), len - 1);
        assert!(
            matches!(
                archive.store(&k, long).await,
                Err(ArchiveError::SourceLength { expected, .. }) if expected == len - 1
            ),
            "a long source of {size} bytes was not refused"
        );
        let right = crc64_nvme(&data);
        let lying = ObjectSource::from_reader(Source(std::io::Cursor::new(data.clone())), len)
            .with_checksum(right ^ 1);
        match archive.store(&k, lying).await {
            Err(ArchiveError::ChecksumMismatch { expected, actual, .. }) => {
                assert_eq!((expected, actual), (right ^ 1, right));
            }
            r => panic!("a source of {size} bytes with a wrong checksum gave {r:?}"),
        }
        assert!(
            !archive.exists(&k).await.unwrap(),
            "a refused store left an object"
        );
        // The key is still free for the right bytes.
        let good =
            ObjectSource::from_reader(Source(std::io::Cursor::new(data.clone())), len).with_checksum(right);
        assert_eq!(
            archive.store(&k, good).await.unwrap(),
            ObjectMeta {
                size: len,
                checksum: right
            }
        );
        archive.delete(&k).await.unwrap();
    }
}

/// Delete removes; deleting again, or deleting what never was, succeeds;
/// the key may then hold different bytes.
pub async fn delete_is_idempotent(archive: &dyn ArchiveStorage) {
    let k = key("conformance/delete/x");
    archive.store_bytes(&k, Bytes::from_static(b"x")).await.unwrap();
    archive.delete(&k).await.unwrap();
    assert!(!archive.exists(&k).await.unwrap());
    assert!(matches!(
        archive.read_all(&k).await,
        Err(ArchiveError::NotFound { .. })
    ));
    archive.delete(&k).await.unwrap();
    archive.delete(&key("conformance/delete/never")).await.unwrap();
    archive.store_bytes(&k, Bytes::from_static(b"y")).await.unwrap();
    assert_eq!(archive.read_all(&k).await.unwrap(), Bytes::from_static(b"y"));
}

/// Empty objects and objects above the multipart threshold round-trip,
/// whole and by range.
pub async fn empty_and_large_objects(archive: &dyn ArchiveStorage, options: &SuiteOptions) {
    let empty = key("conformance/size/empty");
    let meta = archive.store_bytes(&empty, Bytes::new()).await.unwrap();
    assert_eq!(
        meta,
        ObjectMeta {
            size: 0,
            checksum: crc64_nvme(b"")
        }
    );
    assert!(archive.exists(&empty).await.unwrap());
    assert_eq!(archive.head(&empty).await.unwrap(), meta);
    assert!(archive.read_all(&empty).await.unwrap().is_empty());
    assert!(archive.read_range(&empty, 0..0).await.unwrap().is_empty());

    let large = key("conformance/size/large");
    let data = pattern(options.large_object, 4);
    let source = ObjectSource::from_reader(Source(std::io::Cursor::new(data.clone())), data.len() as u64);
    let meta = archive.store(&large, source).await.unwrap();
    assert_eq!(
        meta,
        ObjectMeta {
            size: data.len() as u64,
            checksum: crc64_nvme(&data)
        }
    );
    assert_eq!(archive.head(&large).await.unwrap(), meta);
    let back = archive.read_all(&large).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "large object changed on the way through");
    let mid = data.len() as u64 / 2;
    assert!(
        archive
            .read_range(&large, mid - 3..mid + 1_000_000)
            .await
            .unwrap()
            == data.slice(mid as usize - 3..mid as usize + 1_000_000)
    );
}

/// `a`, `a.b` and `a2/b/c` are different objects.
pub async fn nested_keys_are_distinct(archive: &dyn ArchiveStorage) {
    let keys = [
        "conformance/nest/a",
        "conformance/nest/a.b",
        "conformance/nest2/a/b/c",
    ];
    for (i, k) in keys.iter().enumerate() {
        archive
            .store_bytes(&key(k), Bytes::from(vec![i as u8; i + 1]))
            .await
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            archive.read_all(&key(k)).await.unwrap(),
            Bytes::from(vec![i as u8; i + 1]),
            "{k}"
        );
    }
    archive.delete(&key(keys[0])).await.unwrap();
    assert!(archive.exists(&key(keys[1])).await.unwrap());
}

/// Listing returns exactly the objects below a prefix, in key order, with
/// their sizes; `x/ab` is not below `x/a`.
pub async fn list_by_prefix(archive: &dyn ArchiveStorage) {
    let names = [
        "conformance/list/a/1",
        "conformance/list/a/2/deep",
        "conformance/list/ab",
        "conformance/list/b/1",
    ];
    for (i, n) in names.iter().enumerate() {
        archive
            .store_bytes(&key(n), Bytes::from(vec![7u8; i * 10]))
            .await
            .unwrap();
    }
    let under_a = archive.list(Some(&key("conformance/list/a"))).await.unwrap();
    assert_eq!(
        under_a,
        vec![
            ListedObject {
                key: key(names[0]),
                size: 0
            },
            ListedObject {
                key: key(names[1]),
                size: 10
            },
        ]
    );
    let all = archive.list(Some(&key("conformance/list"))).await.unwrap();
    assert_eq!(all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), names);
    assert!(
        archive
            .list(Some(&key("conformance/list/none")))
            .await
            .unwrap()
            .is_empty()
    );
    let everything = archive.list(None).await.unwrap();
    for n in names {
        assert!(
            everything.iter().any(|o| o.key.as_str() == n),
            "{n} missing from list(None)"
        );
    }
    for n in names {
        archive.delete(&key(n)).await.unwrap();
    }
    assert!(
        archive
            .list(Some(&key("conformance/list")))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Many operations in flight at once each see their own object.
pub async fn concurrent_operations(archive: &dyn ArchiveStorage) {
    let ops = (0..32u8).map(|i| async move {
        let k = key(&format!("conformance/concurrent/{i}"));
        let data = pattern(1024 * usize::from(i + 1), u32::from(i));
        archive.store_bytes(&k, data.clone()).await.unwrap();
        assert_eq!(archive.read_all(&k).await.unwrap(), data);
        assert_eq!(archive.read_range(&k, 10..20).await.unwrap(), data.slice(10..20));
    });
    join_all(ops).await;
}

/// Stores of different bytes racing for one key: exactly one succeeds, the
/// others are `AlreadyExists`, and the object holds the winner's bytes.
pub async fn racing_creates_have_one_winner(archive: &dyn ArchiveStorage) {
    let k = key("conformance/race/x");
    let results = std::sync::Mutex::new(Vec::new());
    let ops = (0..8u32).map(|i| {
        let (k, results) = (&k, &results);
        async move {
            let data = pattern(4096, i);
            let r = archive.store_bytes(k, data.clone()).await;
            results.lock().unwrap().push((data, r));
        }
    });
    join_all(ops).await;
    let results = results.into_inner().unwrap();
    let winners: Vec<&Bytes> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(d, _)| d)
        .collect();
    assert_eq!(winners.len(), 1, "racing creates: {} winners", winners.len());
    for (_, r) in &results {
        assert!(
            matches!(r, Ok(_) | Err(ArchiveError::AlreadyExists { .. })),
            "{r:?}"
        );
    }
    assert_eq!(&archive.read_all(&k).await.unwrap(), winners[0]);
}

/// Polls every future to completion concurrently on the current task.
async fn join_all<F: std::future::Future<Output = ()>>(futs: impl IntoIterator<Item = F>) {
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
