//! Failures of the server: stopped mid-upload, briefly overloaded, stalled.

mod common;

use aof_record::archive::{ArchiveError, ArchiveKey, ArchiveStorage, ArchiveStorageExt, ObjectSource};
use bytes::Bytes;
use common::{BUCKET, S3sServer, storage};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A source that counts the bytes read from it.
struct Counting {
    left: u64,
    read: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        buf[..n]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i * 7) as u8);
        self.left -= n as u64;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        // Slow enough that the server can be stopped half way.
        std::thread::sleep(Duration::from_millis(2));
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_mid_upload_gives_a_typed_error_and_no_object() {
    let server = S3sServer::start().await;
    let archive = storage(server.config());
    let key = ArchiveKey::new("big/object").unwrap();
    let len = 40u64 << 20;
    let read = Arc::new(AtomicU64::new(0));
    let source = ObjectSource::from_reader(
        Counting {
            left: len,
            read: read.clone(),
        },
        len,
    );
    let upload = {
        let (archive, key) = (archive.clone(), key.clone());
        tokio::spawn(async move { archive.store(&key, source).await })
    };
    while read.load(Ordering::SeqCst) < 16 << 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop().await;
    let started = Instant::now();
    let r = upload.await.unwrap();
    assert!(
        matches!(
            r,
            Err(ArchiveError::Unavailable { .. } | ArchiveError::TimedOut { .. })
        ),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(read.load(Ordering::SeqCst) < len, "the upload should stop early");
    assert!(
        !server.root.path().join(BUCKET).join("big/object").exists(),
        "a partial object is visible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multipart_upload_is_aborted() {
    let server = S3sServer::start().await;
    let archive = storage(server.config());
    let key = ArchiveKey::new("big/bad").unwrap();
    let data = Bytes::from(vec![3u8; 12 << 20]);
    // The source lies about its checksum: refused before completion, and the upload aborted.
    let src = ObjectSource::from_bytes(data.clone()).with_checksum(1);
    assert!(matches!(
        archive.store(&key, src).await,
        Err(ArchiveError::ChecksumMismatch { .. })
    ));
    assert!(!archive.exists(&key).await.unwrap());
    // No upload is left open on the server.
    let leftovers: Vec<_> = walk(server.root.path())
        .into_iter()
        .filter(|p| p.contains("upload"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "multipart upload left behind: {leftovers:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_503_is_retried() {
    let server = S3sServer::start_failing(2).await;
    let archive = storage(server.config());
    let key = ArchiveKey::new("k").unwrap();
    archive
        .store_bytes(&key, Bytes::from_static(b"after two 503s"))
        .await
        .unwrap();
    assert_eq!(&archive.read_all(&key).await.unwrap()[..], b"after two 503s");

    // More failures than retries: Unavailable.
    let server = S3sServer::start_failing(10).await;
    let archive = storage(server.config());
    let r = archive.head(&key).await;
    assert!(matches!(r, Err(ArchiveError::Unavailable { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_hits_the_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut config = common::config(&endpoint);
    config.request_timeout = Duration::from_millis(500);
    config.max_retries = 1;
    let archive = storage(config);
    let started = Instant::now();
    let r = archive.head(&ArchiveKey::new("k").unwrap()).await;
    assert!(matches!(r, Err(ArchiveError::TimedOut { .. })), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    holder.abort();
}

/// Sends every request through reqwest, flipping one byte of each
/// non-empty PUT body after object_store computed its checksum: bytes
/// damaged on the way to the server.
#[derive(Debug)]
struct Corrupting;

#[derive(Debug)]
struct CorruptingService(object_store::client::HttpClient);

impl object_store::client::HttpConnector for Corrupting {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let inner = object_store::client::ReqwestConnector {}.connect(options)?;
        Ok(object_store::client::HttpClient::new(CorruptingService(inner)))
    }
}

#[async_trait::async_trait]
impl object_store::client::HttpService for CorruptingService {
    async fn call(
        &self,
        req: object_store::client::HttpRequest,
    ) -> Result<object_store::client::HttpResponse, object_store::client::HttpError> {
        use http_body_util::BodyExt;
        let (parts, body) = req.into_parts();
        // Not `is_empty()`: object_store 0.14.2 inverts it for multi-chunk payloads.
        let body = if parts.method == hyper::Method::PUT && body.content_length() > 0 {
            let mut bytes = body.collect().await?.to_bytes().to_vec();
            bytes[0] ^= 0x01;
            object_store::client::HttpRequestBody::from(bytes)
        } else {
            body
        };
        self.0.execute(hyper::Request::from_parts(parts, body)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_damaged_in_transit_are_refused_by_the_server() {
    let server = S3sServer::start().await;
    // Unsigned payload: the CRC-64/NVME header alone must catch the damage.
    // s3s-fs 0.14.1 checks it on PutObject (after writing the file, which it
    // keeps; real S3 stores nothing), not on UploadPart.
    let mut config = server.config();
    config.sign_payload = false;
    let archive = aof_archive_s3::S3ArchiveStorage::with_http_connector(config, Corrupting).unwrap();
    let key = ArchiveKey::new("damaged/single").unwrap();
    let r = archive.store_bytes(&key, Bytes::from(vec![5u8; 1000])).await;
    assert!(matches!(r, Err(ArchiveError::ChecksumMismatch { .. })), "{r:?}");
    // Signed payload (the default for http:// endpoints): the server refuses
    // on the signature's SHA-256 (s3s answers 500, retried, then
    // Unavailable), single put or multipart part, and no object appears.
    let archive = aof_archive_s3::S3ArchiveStorage::with_http_connector(server.config(), Corrupting).unwrap();
    for (name, len) in [
        ("damaged/signed-single", 1000),
        ("damaged/signed-multipart", 7 << 20),
    ] {
        let key = ArchiveKey::new(name).unwrap();
        let r = archive.store_bytes(&key, Bytes::from(vec![6u8; len])).await;
        assert!(
            matches!(
                r,
                Err(ArchiveError::ChecksumMismatch { .. } | ArchiveError::Unavailable { .. })
            ),
            "{name}: {r:?}"
        );
        assert!(
            !storage(server.config()).exists(&key).await.unwrap(),
            "{name} is visible"
        );
    }
}
