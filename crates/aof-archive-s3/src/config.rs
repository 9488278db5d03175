//! [`S3Config`]: where the bucket is and how to talk to it.

use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// Where an S3-compatible archive lives, and how hard to try.
///
/// `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Endpoint URL (`http://127.0.0.1:9000`); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Region (`us-east-1`).
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (`archive/log-a`), no leading or trailing `/`.
    pub prefix: Option<String>,
    /// Whether plain `http://` endpoints are allowed.
    pub allow_http: bool,
    /// Objects larger than this go up as multipart uploads.
    pub multipart_threshold: usize,
    /// Bytes per part of a multipart upload (S3: 5 MiB..=5 GiB).
    pub part_size: usize,
    /// Parts in flight at once per upload; memory is about `part_size` times this.
    pub max_concurrent_parts: usize,
    /// Limit on one request, from connecting to the last byte of the answer.
    pub request_timeout: Duration,
    /// Limit on connecting.
    pub connect_timeout: Duration,
    /// Retries of a failed idempotent request (5xx, connection errors, timeouts).
    pub max_retries: usize,
    /// First delay between retries; it doubles, up to 15 s.
    pub retry_backoff: Duration,
    /// Total time after which a request is no longer retried.
    pub retry_timeout: Duration,
    /// Whether SigV4 also signs each body's SHA-256. By default only for
    /// `http://` endpoints: over HTTPS the body's CRC-64/NVME (always sent)
    /// lets the server refuse damaged bytes and TLS protects them, so
    /// SHA-256 over every archived byte would only cost CPU (AWS's own SDKs
    /// send `UNSIGNED-PAYLOAD` over HTTPS for the same reason). Over plain
    /// HTTP the signature is the only protection, and some servers (s3s-fs
    /// 0.14) do not check the checksum of a multipart part.
    pub sign_payload: bool,
}

impl S3Config {
    /// A configuration with the defaults below for everything but the
    /// credentials and the bucket: multipart above 16 MiB in 8 MiB parts, 4
    /// at once; 30 s per request, 5 s to connect; 5 retries from 100 ms
    /// within 3 minutes.
    #[must_use]
    pub fn new(
        endpoint: Option<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
        region: impl Into<String>,
        bucket: impl Into<String>,
    ) -> Self {
        let endpoint_is_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        Self {
            allow_http: endpoint_is_http,
            endpoint,
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: region.into(),
            bucket: bucket.into(),
            prefix: None,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            max_concurrent_parts: 4,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 5,
            retry_backoff: Duration::from_millis(100),
            retry_timeout: Duration::from_secs(180),
            sign_payload: endpoint_is_http,
        }
    }

    /// From the variables AWS's own tools read: `AWS_ENDPOINT_URL` (optional),
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (else
    /// `AWS_DEFAULT_REGION`, else `us-east-1`), `AWS_ALLOW_HTTP` (`true` to
    /// allow `http://`); the bucket from `AOF_ARCHIVE_BUCKET` and the prefix
    /// from `AOF_ARCHIVE_PREFIX` (optional).
    pub fn from_env() -> Result<Self, S3ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`S3Config::from_env`], reading variables through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, S3ConfigError> {
        let need = |name: &'static str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or(S3ConfigError::Missing { var: name })
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let mut config = Self::new(
            var("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()),
            need("AWS_ACCESS_KEY_ID")?,
            need("AWS_SECRET_ACCESS_KEY")?,
            region,
            need("AOF_ARCHIVE_BUCKET")?,
        );
        config.prefix = var("AOF_ARCHIVE_PREFIX").filter(|v| !v.is_empty());
        if let Some(v) = var("AWS_ALLOW_HTTP") {
            config.allow_http = match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" | "" => false,
                _ => {
                    return Err(S3ConfigError::Invalid {
                        var: "AWS_ALLOW_HTTP",
                        value: v,
                    });
                }
            };
        }
        Ok(config)
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("max_concurrent_parts", &self.max_concurrent_parts)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("retry_timeout", &self.retry_timeout)
            .field("sign_payload", &self.sign_payload)
            .finish()
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum S3ConfigError {
    /// A required environment variable is unset or empty.
    #[error("environment variable {var} is not set")]
    Missing {
        /// The variable.
        var: &'static str,
    },
    /// A variable holds a value that means nothing.
    #[error("environment variable {var} has the invalid value {value:?}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// A field is out of range (`part_size` under 5 MiB, a prefix that is not a key, …).
    #[error("S3 configuration: {field} {problem}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// object_store refused the configuration.
    #[error("S3 client: {0}")]
    Client(#[source] object_store::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_secret_never_shows_in_debug() {
        let c = S3Config::new(None, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", "eu-west-1", "b");
        let shown = format!("{c:?}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("AKIDEXAMPLE"));
    }

    #[test]
    fn the_environment_is_read_as_aws_tools_read_it() {
        let env: HashMap<&str, &str> = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "ak"),
            ("AWS_SECRET_ACCESS_KEY", "sk"),
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AOF_ARCHIVE_BUCKET", "logs"),
            ("AOF_ARCHIVE_PREFIX", "a/b"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into();
        let c = S3Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            (c.region.as_str(), c.bucket.as_str(), c.prefix.as_deref()),
            ("eu-central-1", "logs", Some("a/b"))
        );
        assert!(c.allow_http);
        let missing = S3Config::from_lookup(|k| {
            (k != "AWS_SECRET_ACCESS_KEY")
                .then(|| env.get(k).map(|v| (*v).to_owned()))
                .flatten()
        });
        assert!(matches!(
            missing,
            Err(S3ConfigError::Missing {
                var: "AWS_SECRET_ACCESS_KEY"
            })
        ));
        let bad = S3Config::from_lookup(|k| {
            if k == "AWS_ALLOW_HTTP" {
                Some("maybe".into())
            } else {
                env.get(k).map(|v| (*v).to_owned())
            }
        });
        assert!(matches!(
            bad,
            Err(S3ConfigError::Invalid {
                var: "AWS_ALLOW_HTTP",
                ..
            })
        ));
        let aws = S3Config::from_lookup(|k| {
            if k == "AWS_ENDPOINT_URL" || k == "AWS_ALLOW_HTTP" {
                None
            } else {
                env.get(k).map(|v| (*v).to_owned())
            }
        })
        .unwrap();
        assert_eq!(aws.endpoint, None);
        assert!(!aws.allow_http);
    }
}
