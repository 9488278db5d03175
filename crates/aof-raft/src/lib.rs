//! aof as [openraft]'s log storage.
//!
//! [`AofLogStore`] implements openraft's `RaftLogStorage` (feature
//! `storage-v2`) on an aof log: each Raft entry is one aof record; `append`
//! reports the entries flushed only once they are durable, and all appends
//! in flight share one fsync; `truncate` and `purge` map to the log's
//! `truncate_after` and `truncate_before`. The vote, the committed log id
//! and the purge marker live in a small checksummed file beside the log,
//! replaced atomically.
//!
//! [`KvStateMachine`] is a small key-value state machine for [`KvConfig`].
//! Its snapshots travel as `aof-snapshot` chunks: the pairs are written to a
//! fresh aof log (one bincode record each), exported as framed chunks
//! (CRC-64 per frame, SHA-256 per file and overall), and on the receiver
//! imported (verified, staged, installed by one rename) and read back. The
//! latest snapshot is kept durably in the state machine's directory.
//!
//! [`Router`] is an in-process network for clusters in one process
//! (the example, crash tests, benchmarks).
//!
//! # Example
//!
//! ```
//! use aof_raft::{AofLogStore, KvConfig};
//! use openraft::storage::RaftLogStorage;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = AofLogStore::<KvConfig>::open(dir.path()).unwrap();
//! store.save_vote(&openraft::Vote::new(1, 7)).await.unwrap();
//! drop(store);
//!
//! // The vote survives a restart.
//! let mut store = AofLogStore::<KvConfig>::open(dir.path()).unwrap();
//! assert_eq!(store.read_vote().await.unwrap(), Some(openraft::Vote::new(1, 7)));
//! assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
//! # });
//! ```

mod codec;
mod error;
mod kv;
mod log_store;
mod meta;
mod router;
mod snapshot_log;

pub use codec::MAX_DECODE_BYTES;
pub use error::RaftStoreError;
pub use kv::{KvConfig, KvRequest, KvResponse, KvSnapshotBuilder, KvStateMachine, SNAPSHOT_FILE};
pub use log_store::{AofLogReader, AofLogStore, LOG_DIR};
pub use meta::META_FILE;
pub use openraft;
pub use router::{Connection, Router};
