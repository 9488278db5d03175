//! openraft's own storage test suite, run on aof: every test gets a fresh
//! store (an aof log and a state machine) in a new temporary directory.

use aof_raft::openraft::StorageError;
use aof_raft::openraft::testing::{StoreBuilder, Suite};
use aof_raft::{AofLogStore, KvConfig, KvStateMachine};
use tempfile::TempDir;

struct AofBuilder;

impl StoreBuilder<KvConfig, AofLogStore<KvConfig>, KvStateMachine, TempDir> for AofBuilder {
    async fn build(&self) -> Result<(TempDir, AofLogStore<KvConfig>, KvStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = AofLogStore::open(dir.path().join("raft")).expect("open log store");
        let sm = KvStateMachine::open(dir.path().join("sm")).expect("open state machine");
        Ok((dir, store, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(AofBuilder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
