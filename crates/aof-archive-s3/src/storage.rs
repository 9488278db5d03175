//! [`S3ArchiveStorage`]: the [`ArchiveStorage`] over `object_store`'s S3 client.

use crate::config::{S3Config, S3ConfigError};
use crate::errors::map_error;
use aof_record::archive::{
    ArchiveError, ArchiveKey, ArchiveResult, ArchiveStorage, ListedObject, ObjectMeta, ObjectSource,
    ObjectStream, SourceReader, check_range,
};
use aof_record::checksum::Crc64;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use std::ops::Range;
use std::sync::Arc;

/// The user metadata entry (`x-amz-meta-crc64nvme`) that records an
/// object's CRC-64/NVME as 16 hex digits, so `head` is one request.
pub const CHECKSUM_METADATA: &str = "crc64nvme";

/// An archive in an S3-compatible bucket.
///
/// - Objects up to `multipart_threshold` go up in one `PutObject` with
///   `If-None-Match: *`: two writers never overwrite each other. Larger ones
///   go up as a multipart upload of `part_size` parts, `max_concurrent_parts`
///   at once, after a `HeadObject` finds the key free (object_store 0.14 does
///   not expose a conditional `CompleteMultipartUpload`, so a race between two
///   writers of one large key is decided by the last to complete; archive
///   keys name one segment, written by one archiver).
/// - Every request that carries bytes carries their CRC-64/NVME
///   (`x-amz-checksum-crc64nvme`, object_store's `Checksum::CRC64NVME`), and
///   the server refuses bytes that do not match. The whole object's CRC is
///   kept in the object's metadata ([`CHECKSUM_METADATA`]) when the source
///   declares it or is small enough to read first.
/// - A failed multipart upload is aborted, so no partial object and no
///   orphaned parts stay (a crash of this process may leave parts: give the
///   bucket a lifecycle rule that aborts incomplete uploads).
/// - Requests are retried with exponential backoff and bounded by timeouts,
///   as configured in [`S3Config`].
#[derive(Debug, Clone)]
pub struct S3ArchiveStorage {
    store: Arc<AmazonS3>,
    prefix: Option<ArchiveKey>,
    config: Arc<S3Config>,
}

impl S3ArchiveStorage {
    /// A client for the bucket `config` names. Makes no request.
    ///
    /// TLS is rustls with ring; if the process has no default rustls
    /// crypto provider yet, ring's is installed as the default.
    pub fn new(config: S3Config) -> Result<Self, S3ConfigError> {
        Self::build(config, None)
    }

    /// As [`S3ArchiveStorage::new`], with requests sent through `connector`
    /// (a proxy, a custom TLS setup, or a fault-injecting test transport).
    pub fn with_http_connector(
        config: S3Config,
        connector: impl object_store::client::HttpConnector,
    ) -> Result<Self, S3ConfigError> {
        Self::build(config, Some(Box::new(connector)))
    }

    fn build(
        config: S3Config,
        connector: Option<Box<dyn object_store::client::HttpConnector>>,
    ) -> Result<Self, S3ConfigError> {
        if config.part_size < 5 << 20 {
            return Err(S3ConfigError::Field {
                field: "part_size",
                problem: "is under S3's minimum of 5 MiB",
            });
        }
        if config.max_concurrent_parts == 0 {
            return Err(S3ConfigError::Field {
                field: "max_concurrent_parts",
                problem: "is 0",
            });
        }
        let prefix = match &config.prefix {
            None => None,
            Some(p) => Some(ArchiveKey::new(p.clone()).map_err(|_| S3ConfigError::Field {
                field: "prefix",
                problem: "is not a valid archive key ([A-Za-z0-9._-] parts separated by '/')",
            })?),
        };
        // Another library may have installed a provider already: that one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientOptions::new()
            .with_timeout(config.request_timeout)
            .with_connect_timeout(config.connect_timeout)
            .with_allow_http(config.allow_http);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: config.retry_backoff,
                max_backoff: std::time::Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
        };
        let mut builder = AmazonS3Builder::new()
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key)
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_allow_http(config.allow_http)
            .with_checksum_algorithm(Checksum::CRC64NVME)
            .with_unsigned_payload(!config.sign_payload)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(connector) = connector {
            builder = builder.with_http_connector(BoxedConnector(connector));
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(S3ConfigError::Client)?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            config: Arc::new(config),
        })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    fn path(&self, key: &ArchiveKey) -> Path {
        match &self.prefix {
            Some(p) => Path::from(format!("{p}/{key}")),
            None => Path::from(key.as_str()),
        }
    }

    /// The key of an object listed at `path`, if it is a valid key below the prefix.
    fn key_of(&self, path: &Path) -> Option<ArchiveKey> {
        let s = path.as_ref();
        let rel = match &self.prefix {
            Some(p) => s.strip_prefix(p.as_str())?.strip_prefix('/')?,
            None => s,
        };
        ArchiveKey::new(rel).ok()
    }

    /// The object's size and the checksum recorded in its metadata, if any.
    async fn head_recorded(&self, key: &ArchiveKey) -> ArchiveResult<(u64, Option<u64>)> {
        let r = self
            .store
            .get_opts(&self.path(key), GetOptions::new().with_head(true))
            .await
            .map_err(|e| map_error(key, e))?;
        let recorded = r
            .attributes
            .get(&Attribute::Metadata(CHECKSUM_METADATA.into()))
            .and_then(|v| u64::from_str_radix(v.as_ref(), 16).ok());
        Ok((r.meta.size, recorded))
    }

    /// Whether an existing object equals `meta`: `Ok(meta)` if so, else `AlreadyExists`.
    async fn compare_existing(&self, key: &ArchiveKey, meta: ObjectMeta) -> ArchiveResult<ObjectMeta> {
        if self.head(key).await? == meta {
            Ok(meta)
        } else {
            Err(ArchiveError::AlreadyExists { key: key.clone() })
        }
    }

    async fn next_chunk(reader: SourceReader, max: usize) -> ArchiveResult<(SourceReader, Option<Bytes>)> {
        tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let chunk = reader.next_chunk(max)?;
            Ok((reader, chunk))
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    async fn store_single(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta> {
        let mut reader = source.into_checked(key);
        let mut parts = Vec::new();
        loop {
            let (r, chunk) = Self::next_chunk(reader, 1 << 20).await?;
            reader = r;
            match chunk {
                Some(c) => parts.push(c),
                None => break,
            }
        }
        let meta = reader.meta().expect("the source was read to its end");
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(CHECKSUM_METADATA.into()),
            format!("{:016x}", meta.checksum).into(),
        );
        let opts = PutOptions {
            mode: PutMode::Create,
            attributes,
            ..PutOptions::default()
        };
        let payload: PutPayload = parts.into_iter().collect();
        match self.store.put_opts(&self.path(key), payload, opts).await {
            Ok(_) => Ok(meta),
            Err(object_store::Error::AlreadyExists { .. }) => self.compare_existing(key, meta).await,
            Err(e) => Err(map_error(key, e)),
        }
    }

    async fn store_multipart(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta> {
        match self.head_recorded(key).await {
            Ok((size, recorded)) => {
                // The key is taken: the same bytes make this a no-op.
                let meta = match source.expected_checksum() {
                    Some(checksum) => ObjectMeta {
                        size: source.len(),
                        checksum,
                    },
                    None => {
                        let mut reader = source.into_checked(key);
                        loop {
                            let (r, chunk) = Self::next_chunk(reader, 8 << 20).await?;
                            reader = r;
                            if chunk.is_none() {
                                break;
                            }
                        }
                        reader.meta().expect("the source was read to its end")
                    }
                };
                let existing = match recorded {
                    Some(c) => ObjectMeta { size, checksum: c },
                    None => self.head(key).await?,
                };
                return if existing == meta {
                    Ok(meta)
                } else {
                    Err(ArchiveError::AlreadyExists { key: key.clone() })
                };
            }
            Err(ArchiveError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut attributes = Attributes::new();
        if let Some(c) = source.expected_checksum() {
            attributes.insert(
                Attribute::Metadata(CHECKSUM_METADATA.into()),
                format!("{c:016x}").into(),
            );
        }
        let opts = object_store::PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let path = self.path(key);
        let upload = self
            .store
            .put_multipart_opts(&path, opts)
            .await
            .map_err(|e| map_error(key, e))?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, self.config.part_size);
        let reader = source.into_checked(key);
        let result: ArchiveResult<SourceReader> = async {
            let mut reader = reader;
            loop {
                let (r, chunk) = Self::next_chunk(reader, self.config.part_size).await?;
                reader = r;
                let Some(chunk) = chunk else { break };
                upload
                    .wait_for_capacity(self.config.max_concurrent_parts)
                    .await
                    .map_err(|e| map_error(key, e))?;
                upload.put(chunk);
            }
            Ok(reader)
        }
        .await;
        let reader = match result {
            Ok(r) => r,
            Err(e) => {
                // Best effort: the error that stopped the upload is the one to report.
                let _ = upload.abort().await;
                return Err(e);
            }
        };
        let meta = reader.meta().expect("the source was read to its end");
        upload.finish().await.map_err(|e| map_error(key, e))?;
        Ok(meta)
    }
}

/// A boxed connector, since the builder takes one by value.
#[derive(Debug)]
struct BoxedConnector(Box<dyn object_store::client::HttpConnector>);

impl object_store::client::HttpConnector for BoxedConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<object_store::client::HttpClient> {
        self.0.connect(options)
    }
}

#[async_trait]
impl ArchiveStorage for S3ArchiveStorage {
    async fn store(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta> {
        if source.len() > self.config.multipart_threshold as u64 {
            self.store_multipart(key, source).await
        } else {
            self.store_single(key, source).await
        }
    }

    async fn read_range(&self, key: &ArchiveKey, range: Range<u64>) -> ArchiveResult<Bytes> {
        if range.start >= range.end {
            // No bytes to fetch (or a reversed range): the size decides.
            let (size, _) = self.head_recorded(key).await?;
            check_range(key, &range, size)?;
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        match self.store.get_range(&self.path(key), range.clone()).await {
            Ok(b) if b.len() as u64 == want => Ok(b),
            Ok(_) | Err(object_store::Error::Generic { .. }) => {
                // Past the end (S3 clips the range or answers 416): report it
                // against the real size, or the real error if there is one.
                let (size, _) = self.head_recorded(key).await?;
                check_range(key, &range, size)?;
                match self.store.get_range(&self.path(key), range.clone()).await {
                    Ok(b) if b.len() as u64 == want => Ok(b),
                    Ok(b) => Err(ArchiveError::Backend {
                        backend: "s3",
                        key: key.clone(),
                        source: format!("asked for {want} bytes, got {}", b.len()).into(),
                    }),
                    Err(e) => Err(map_error(key, e)),
                }
            }
            Err(e) => Err(map_error(key, e)),
        }
    }

    async fn read(&self, key: &ArchiveKey) -> ArchiveResult<ObjectStream> {
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| map_error(key, e))?;
        let key = key.clone();
        Ok(Box::pin(r.into_stream().map_err(move |e| map_error(&key, e))))
    }

    async fn head(&self, key: &ArchiveKey) -> ArchiveResult<ObjectMeta> {
        let (size, recorded) = self.head_recorded(key).await?;
        if let Some(checksum) = recorded {
            return Ok(ObjectMeta { size, checksum });
        }
        // No recorded checksum (a multipart upload of an undeclared source,
        // or an object written by another tool): compute it from the bytes.
        let mut stream = self.read(key).await?;
        let mut crc = Crc64::new();
        let mut seen = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            crc.update(&chunk);
            seen += chunk.len() as u64;
        }
        Ok(ObjectMeta {
            size: seen,
            checksum: crc.finish(),
        })
    }

    async fn delete(&self, key: &ArchiveKey) -> ArchiveResult<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_error(key, e)),
        }
    }

    async fn list(&self, prefix: Option<&ArchiveKey>) -> ArchiveResult<Vec<ListedObject>> {
        let at = match (prefix, &self.prefix) {
            (Some(p), _) => Some(self.path(p)),
            (None, Some(own)) => Some(Path::from(own.as_str())),
            (None, None) => None,
        };
        let err_key = prefix
            .cloned()
            .or_else(|| self.prefix.clone())
            .unwrap_or_else(|| ArchiveKey::new("-").expect("a valid key"));
        let mut out: Vec<ListedObject> = self
            .store
            .list(at.as_ref())
            .map_err(|e| map_error(&err_key, e))
            .try_filter_map(|m| {
                let listed = self
                    .key_of(&m.location)
                    .map(|key| ListedObject { key, size: m.size });
                async move { Ok(listed) }
            })
            .try_collect()
            .await?;
        out.sort();
        Ok(out)
    }
}
