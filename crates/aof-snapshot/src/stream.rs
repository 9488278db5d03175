//! The export as an async [`Stream`] (tokio): [`ExportStream`].

use crate::chunk::SnapshotChunk;
use crate::error::SnapshotResult;
use crate::export::Exporter;
use futures_core::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Chunks buffered between the reading thread and the stream's consumer.
const IN_FLIGHT: usize = 2;

/// An export as a `Stream` of `Result<SnapshotChunk>`: the reading runs on
/// tokio's blocking pool, at most two chunks ahead of the consumer (memory
/// is a few chunks). Dropping the stream stops the export.
#[derive(Debug)]
pub struct ExportStream {
    rx: mpsc::Receiver<SnapshotResult<SnapshotChunk>>,
}

impl ExportStream {
    /// Streams `exporter`'s chunks. Call it inside a tokio runtime.
    #[must_use]
    pub fn new(exporter: Exporter) -> Self {
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        tokio::task::spawn_blocking(move || {
            for item in exporter {
                if tx.blocking_send(item).is_err() {
                    break; // the consumer went away
                }
            }
        });
        Self { rx }
    }
}

impl Exporter {
    /// This export as an async [`Stream`]; call it inside a tokio runtime.
    #[must_use]
    pub fn into_stream(self) -> ExportStream {
        ExportStream::new(self)
    }
}

impl Stream for ExportStream {
    type Item = SnapshotResult<SnapshotChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
