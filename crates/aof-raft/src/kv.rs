//! A small key-value state machine ([`KvStateMachine`]) for the Raft type
//! configuration [`KvConfig`], with snapshots carried as aof-snapshot chunks
//! (see `snapshot_log`) and the latest one kept durably in the state
//! machine's directory.

use crate::codec::{self, MAX_DECODE_BYTES};
use crate::error::RaftStoreError;
use crate::meta::{load_framed, store_framed};
use crate::snapshot_log;
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The file holding the latest snapshot, in the state machine's directory.
pub const SNAPSHOT_FILE: &str = "kv-snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"AOFKVSN1";
/// Where a received snapshot's log is imported and read (then removed).
const INSTALL_DIR: &str = ".install";

/// A write to the key-value state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KvRequest {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// What a [`KvRequest`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResponse {
    /// The key's value before the request, if it had one.
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The Raft types of the key-value example: [`KvRequest`] in, [`KvResponse`]
    /// out, `u64` node ids, `BasicNode`s, snapshots as bytes.
    pub KvConfig: D = KvRequest, R = KvResponse
);

type Nid = u64;
type Meta = SnapshotMeta<Nid, BasicNode>;

/// A snapshot as stored and sent: its metadata and its data, the framed
/// aof-snapshot chunks of a log holding one record per pair.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct KvState {
    last_applied: Option<LogId<Nid>>,
    membership: StoredMembership<Nid, BasicNode>,
    data: BTreeMap<String, String>,
    current: Option<StoredSnapshot>,
    /// Snapshots built by this process, for unique snapshot ids.
    built: u64,
}

/// A key-value state machine (`BTreeMap<String, String>`): the applied
/// state lives in memory, the latest snapshot on disk, so after a restart
/// the state is the snapshot's and openraft re-applies the committed
/// entries after it.
#[derive(Clone, Debug)]
pub struct KvStateMachine {
    dir: PathBuf,
    state: Arc<Mutex<KvState>>,
}

/// Builds snapshots of a [`KvStateMachine`].
#[derive(Debug)]
pub struct KvSnapshotBuilder {
    sm: KvStateMachine,
}

fn lock(m: &Mutex<KvState>) -> MutexGuard<'_, KvState> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KvStateMachine {
    /// Opens (creating if needed) the state machine in `dir`, starting from
    /// the snapshot stored there, if any.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, RaftStoreError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| RaftStoreError::io(&dir, e))?;
        let mut state = KvState::default();
        if let Some(body) = load_framed(
            aof_core::LocalFileSystem::shared().as_ref(),
            &dir.join(SNAPSHOT_FILE),
            SNAPSHOT_MAGIC,
            MAX_DECODE_BYTES as u64 + 4096,
        )? {
            let stored: StoredSnapshot = codec::decode(&body).map_err(RaftStoreError::BadSnapshot)?;
            state.data = snapshot_log::decode(&stored.data, &dir.join(INSTALL_DIR))?;
            state.last_applied = stored.meta.last_log_id;
            state.membership = stored.meta.last_membership.clone();
            state.current = Some(stored);
        }
        Ok(Self {
            dir,
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// The value of `key` in the applied state.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<String> {
        lock(&self.state).data.get(key).cloned()
    }

    /// A copy of the whole applied state.
    #[must_use]
    pub fn data(&self) -> BTreeMap<String, String> {
        lock(&self.state).data.clone()
    }

    /// The last log id applied.
    #[must_use]
    pub fn last_applied(&self) -> Option<LogId<Nid>> {
        lock(&self.state).last_applied
    }

    fn keep(&self, stored: &StoredSnapshot) -> Result<(), RaftStoreError> {
        store_framed(
            aof_core::LocalFileSystem::shared().as_ref(),
            &self.dir,
            SNAPSHOT_FILE,
            SNAPSHOT_MAGIC,
            &codec::encode(stored)?,
        )
    }
}

impl RaftSnapshotBuilder<KvConfig> for KvSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<KvConfig>, StorageError<Nid>> {
        let (pairs, meta, work) = {
            let mut state = lock(&self.sm.state);
            state.built += 1;
            let snapshot_id = match state.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, state.built),
                None => format!("none-{}", state.built),
            };
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
                snapshot_id,
            };
            let work = self.sm.dir.join(format!(".build-{}", state.built));
            (state.data.clone(), meta, work)
        };
        let data = snapshot_log::encode(&pairs, &work)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        let stored = StoredSnapshot { meta, data };
        self.sm
            .keep(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), AnyError::new(&e)))?;
        lock(&self.sm.state).current = Some(stored.clone());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<KvConfig> for KvStateMachine {
    type SnapshotBuilder = KvSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<Nid>>, StoredMembership<Nid, BasicNode>), StorageError<Nid>> {
        let state = lock(&self.state);
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<KvResponse>, StorageError<Nid>>
    where
        I: IntoIterator<Item = openraft::Entry<KvConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = lock(&self.state);
        let mut out = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => KvResponse::default(),
                EntryPayload::Normal(KvRequest::Set { key, value }) => KvResponse {
                    previous: state.data.insert(key, value),
                },
                EntryPayload::Normal(KvRequest::Delete { key }) => KvResponse {
                    previous: state.data.remove(&key),
                },
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m);
                    KvResponse::default()
                }
            };
            out.push(response);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        KvSnapshotBuilder { sm: self.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<Nid>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<Nid>> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let data = snapshot_log::decode(&stored.data, &self.dir.join(INSTALL_DIR))
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        self.keep(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        let mut state = lock(&self.state);
        state.data = data;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.current = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<KvConfig>>, StorageError<Nid>> {
        Ok(lock(&self.state).current.clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
