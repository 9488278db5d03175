//! Real S3 servers for the tests: s3s-fs in process, moto as a child process.

#![allow(dead_code)]

use aof_archive_s3::{S3ArchiveStorage, S3Config};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub const ACCESS_KEY: &str = "AKIAAOFTESTKEY";
pub const SECRET_KEY: &str = "aof-test-secret-key-0123456789";
pub const BUCKET: &str = "aof-archive";

/// An s3s-fs server on 127.0.0.1, serving a temporary directory, with
/// SigV4 checked against one key pair.
pub struct S3sServer {
    pub endpoint: String,
    pub root: tempfile::TempDir,
    accept: tokio::task::JoinHandle<()>,
    conns: std::sync::Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl S3sServer {
    pub async fn start() -> Self {
        Self::start_failing(0).await
    }

    /// As `start`, but the first `fail_first` requests are answered `503 Slow Down`.
    pub async fn start_failing(fail_first: usize) -> Self {
        let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let service = {
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let conns = std::sync::Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let conns2 = conns.clone();
        let accept = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (service, failures) = (service.clone(), failures.clone());
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let fail = failures
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let service = service.clone();
                    async move {
                        if fail {
                            let mut r = hyper::Response::new(s3s::Body::from(bytes::Bytes::from_static(
                                b"<Error><Code>SlowDown</Code></Error>",
                            )));
                            *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                            Ok::<_, s3s::HttpError>(r)
                        } else {
                            hyper::service::Service::call(&service, req).await
                        }
                    }
                });
                let conn = http.serve_connection(TokioIo::new(socket), svc).into_owned();
                conns2.lock().await.spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Self {
            endpoint,
            root,
            accept,
            conns,
        }
    }

    /// Stops the server at once: no more connections, open ones dropped.
    pub async fn stop(&self) {
        self.accept.abort();
        self.conns.lock().await.abort_all();
    }

    pub fn config(&self) -> S3Config {
        config(&self.endpoint)
    }
}

impl Drop for S3sServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A configuration for a test server: small parts so multipart is cheap to
/// exercise, short timeouts and retries so failures come fast.
pub fn config(endpoint: &str) -> S3Config {
    let mut c = S3Config::new(
        Some(endpoint.to_owned()),
        ACCESS_KEY,
        SECRET_KEY,
        "us-east-1",
        BUCKET,
    );
    c.multipart_threshold = 6 << 20;
    c.part_size = 5 << 20;
    c.max_concurrent_parts = 2;
    c.request_timeout = Duration::from_secs(20);
    c.connect_timeout = Duration::from_secs(2);
    c.max_retries = 2;
    c.retry_backoff = Duration::from_millis(20);
    c.retry_timeout = Duration::from_secs(20);
    c
}

pub fn storage(config: S3Config) -> S3ArchiveStorage {
    S3ArchiveStorage::new(config).unwrap()
}

/// A moto S3 server started as a child process, killed when dropped.
pub struct Moto {
    pub endpoint: String,
    child: std::process::Child,
}

impl Moto {
    /// Starts moto from `.venv-moto` (made by `cargo xtask prereqs`), or
    /// `$AOF_MOTO_SERVER`, or `moto_server` on the PATH. `None`, with the
    /// reason printed, where it cannot run; under `CI=true` that is a failure.
    pub async fn start() -> Option<Self> {
        let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-moto/bin/moto_server");
        let program = std::env::var_os("AOF_MOTO_SERVER")
            .map(std::path::PathBuf::from)
            .or_else(|| venv.is_file().then_some(venv))
            .unwrap_or_else(|| "moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let why =
                    format!("cannot start {program:?} ({e}); run `cargo xtask prereqs` to make .venv-moto");
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "moto is required in CI: {why}"
                );
                eprintln!("SKIPPED: {why}");
                return None;
            }
        };
        let moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.put(format!("{}/{BUCKET}", moto.endpoint)).send().await
                && r.status().is_success()
            {
                return Some(moto);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn config(&self) -> S3Config {
        config(&self.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
