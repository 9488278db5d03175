//! From `object_store` errors to [`ArchiveError`].

use aof_record::archive::{ArchiveError, ArchiveKey};
use object_store::client::{HttpError, HttpErrorKind};
use std::error::Error as _;

/// The S3 error code (`<Code>BadDigest</Code>`) of a failed request.
///
/// object_store 0.14 keeps the response body only inside its error's
/// message, so the code — a protocol field, not prose — is taken from there.
fn s3_code(e: &object_store::Error) -> Option<String> {
    let text = e.to_string();
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_owned())
}

/// The transport error under `e`, if any.
fn http_kind(e: &object_store::Error) -> Option<HttpErrorKind> {
    let mut at: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(err) = at {
        if let Some(h) = err.downcast_ref::<HttpError>() {
            return Some(h.kind());
        }
        at = err.source();
    }
    None
}

/// Maps an `object_store` error on `key` to the archive's typed errors.
pub(crate) fn map_error(key: &ArchiveKey, e: object_store::Error) -> ArchiveError {
    let key = key.clone();
    match e {
        object_store::Error::NotFound { .. } => ArchiveError::NotFound { key },
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            ArchiveError::AlreadyExists { key }
        }
        // S3 answers 403 both for a bad signature and for a missing grant.
        object_store::Error::Unauthenticated { .. } => ArchiveError::AuthFailed { key },
        object_store::Error::PermissionDenied { .. } => match s3_code(&e).as_deref() {
            Some("AccessDenied" | "AllAccessDisabled") => ArchiveError::PermissionDenied { key },
            _ => ArchiveError::AuthFailed { key },
        },
        e => match (s3_code(&e).as_deref(), http_kind(&e)) {
            (
                Some(
                    "BadDigest"
                    | "InvalidDigest"
                    | "XAmzContentChecksumMismatch"
                    | "XAmzContentSHA256Mismatch",
                ),
                _,
            ) => ArchiveError::ChecksumMismatch {
                key,
                expected: 0,
                actual: 0,
            },
            (Some("InvalidAccessKeyId" | "SignatureDoesNotMatch"), _) => ArchiveError::AuthFailed { key },
            (Some("NoSuchKey"), _) => ArchiveError::NotFound { key },
            (_, Some(HttpErrorKind::Timeout)) => ArchiveError::TimedOut {
                key,
                source: Box::new(e),
            },
            (_, Some(_)) => ArchiveError::Unavailable {
                key,
                source: Box::new(e),
            },
            (Some(code), None)
                if code.starts_with("Service") || code == "SlowDown" || code == "InternalError" =>
            {
                ArchiveError::Unavailable {
                    key,
                    source: Box::new(e),
                }
            }
            _ if is_server_error(&e) => ArchiveError::Unavailable {
                key,
                source: Box::new(e),
            },
            _ => ArchiveError::Backend {
                backend: "s3",
                key,
                source: Box::new(e),
            },
        },
    }
}

/// Whether the request ended on a 5xx answer (after retries) whose body
/// carried no S3 code. object_store 0.14 keeps its `RetryError` (and so the
/// status) private, so the status is read from its message: the one place
/// this crate reads error text, kept to this last-resort classification.
fn is_server_error(e: &object_store::Error) -> bool {
    let text = e.to_string();
    ["500 ", "502 ", "503 ", "504 "]
        .iter()
        .any(|s| text.contains(&format!("status code: {s}")))
}
