//! Three in-process Raft nodes on aof logs: writes through the leader, the
//! leader stopped, a new one elected, writes go on; a fourth, empty node
//! joins and catches up by snapshot (the leader has purged its log), and the
//! stopped node restarts from its directory and catches up too. Exits 0
//! only if every node ends with the same state.
//!
//! `cargo run -p aof-raft --example cluster`

use aof_raft::openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use aof_raft::{AofLogStore, KvConfig, KvRequest, KvStateMachine};
type Router = aof_raft::Router<KvConfig>;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

type Nid = u64;
type Error = Box<dyn std::error::Error + Send + Sync>;

struct Cluster {
    root: PathBuf,
    router: Router,
    config: Arc<Config>,
    state_machines: BTreeMap<Nid, KvStateMachine>,
    stores: BTreeMap<Nid, AofLogStore<KvConfig>>,
}

impl Cluster {
    /// Starts node `id` on its directory (new or left by an earlier run).
    async fn start(&mut self, id: Nid) -> Result<Raft<KvConfig>, Error> {
        let dir = node_dir(&self.root, id);
        let store = AofLogStore::<KvConfig>::open(dir.join("raft"))?;
        let sm = KvStateMachine::open(dir.join("sm"))?;
        self.state_machines.insert(id, sm.clone());
        self.stores.insert(id, store.clone());
        let raft = Raft::new(id, self.config.clone(), self.router.clone(), store, sm).await?;
        self.router.add(id, raft.clone());
        Ok(raft)
    }

    async fn stop(&mut self, id: Nid) -> Result<(), Error> {
        let raft = self.router.remove(id).ok_or("no such node")?;
        raft.shutdown().await?;
        self.state_machines.remove(&id);
        self.stores.remove(&id);
        Ok(())
    }

    fn raft(&self, id: Nid) -> Result<Raft<KvConfig>, Error> {
        Ok(self.router.get(id)?)
    }

    /// Waits until a running node sees a leader other than `not`, and returns it.
    async fn leader(&self, not: Option<Nid>) -> Result<Nid, Error> {
        for _ in 0..200 {
            let nodes: Vec<Raft<KvConfig>> = self.router.nodes().into_values().collect();
            for raft in nodes {
                let m = raft.metrics().borrow().clone();
                if m.state == ServerState::Leader && Some(m.id) != not {
                    return Ok(m.id);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("no leader elected within 10 s".into())
    }
}

fn node_dir(root: &Path, id: Nid) -> PathBuf {
    root.join(format!("node-{id}"))
}

async fn write(raft: &Raft<KvConfig>, from: u64, to: u64) -> Result<(), Error> {
    for i in from..to {
        raft.client_write(KvRequest::Set {
            key: format!("key-{i:04}"),
            value: format!("value {i}"),
        })
        .await?;
    }
    Ok(())
}

/// Runs the scenario; `Err` (or exit code 1) if any step or the final comparison fails.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn main() -> Result<(), Error> {
    let root = tempfile::tempdir()?;
    let config = Config {
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(100),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Config::default()
    };
    let mut cluster = Cluster {
        root: root.path().to_owned(),
        router: Router::default(),
        config: Arc::new(config.validate()?),
        state_machines: BTreeMap::new(),
        stores: BTreeMap::new(),
    };

    for id in 1..=3 {
        cluster.start(id).await?;
    }
    let members: BTreeMap<Nid, BasicNode> = (1..=3).map(|id| (id, BasicNode::default())).collect();
    cluster.raft(1)?.initialize(members).await?;
    let first = cluster.leader(None).await?;
    println!("three nodes on aof logs; node {first} is the leader");

    write(&cluster.raft(first)?, 0, 150).await?;
    println!("150 writes through node {first}");

    cluster.stop(first).await?;
    println!("node {first} stopped");
    let second = cluster.leader(Some(first)).await?;
    println!("node {second} elected leader");
    write(&cluster.raft(second)?, 150, 300).await?;
    println!("150 more writes through node {second}");

    let leader = cluster.raft(second)?;
    leader.trigger().snapshot().await?;
    leader
        .trigger()
        .purge_log(leader.metrics().borrow().last_applied.map_or(0, |l| l.index))
        .await?;
    let m = leader
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.is_some() && m.purged == m.snapshot,
            "log purged up to the snapshot",
        )
        .await?;
    println!(
        "node {second} took a snapshot at {:?} and purged its log up to it",
        m.snapshot.map(|l| l.index)
    );

    cluster.start(4).await?;
    leader.add_learner(4, BasicNode::default(), true).await?;
    let purged_at = m.purged.map(|l| l.index);
    let new = cluster
        .raft(4)?
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |n| n.snapshot.is_some() && n.last_applied.is_some(),
            "a snapshot installed",
        )
        .await?;
    // It can only have caught up by the leader's snapshot: the entries
    // before it are gone from the leader's log.
    let by_snapshot = new.snapshot.map(|l| l.index) >= purged_at;
    println!(
        "empty node 4 joined as a learner: snapshot {:?}, log purged up to {:?}, applied up to {:?}",
        new.snapshot.map(|l| l.index),
        new.purged.map(|l| l.index),
        new.last_applied.map(|l| l.index)
    );

    cluster.start(first).await?;
    println!("node {first} restarted from its directory");
    // Concurrent writes: the leader's appends in flight share fsyncs.
    let fsyncs = |cluster: &Cluster| -> BTreeMap<Nid, (u64, u64)> {
        let stores = cluster.stores.iter();
        stores
            .map(|(&id, s)| {
                let m = s.aof().flush_metrics();
                (id, (m.records_flushed(), m.successful_flushes()))
            })
            .collect()
    };
    let before = fsyncs(&cluster);
    let writers: Vec<_> = (0..20u64)
        .map(|w| {
            let leader = leader.clone();
            tokio::spawn(async move { write(&leader, 300 + w * 5, 305 + w * 5).await })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    println!("100 more writes through node {second} from 20 concurrent clients");
    // openraft 0.9 awaits each append's flush callback before its next log
    // command, so the leader (one append per client write) cannot share an
    // fsync; followers get entries in batches, one fsync per batch.
    for (id, (records, syncs)) in fsyncs(&cluster) {
        let (records_before, syncs_before) = before.get(&id).copied().unwrap_or_default();
        let role = if id == second { "leader" } else { "follower" };
        println!(
            "  node {id} ({role}): {} entries in {} fsyncs",
            records - records_before,
            syncs - syncs_before
        );
    }

    let last = leader.metrics().borrow().last_log_index;
    let running: BTreeSet<Nid> = cluster.router.nodes().into_keys().collect();
    for &id in &running {
        cluster
            .raft(id)?
            .wait(Some(Duration::from_secs(20)))
            .applied_index(last, "every entry applied")
            .await?;
    }
    let states: BTreeMap<Nid, BTreeMap<String, String>> = cluster
        .state_machines
        .iter()
        .map(|(id, sm)| (*id, sm.data()))
        .collect();
    let reference = &states[&second];
    let same = states.values().all(|s| s == reference);
    for (id, s) in &states {
        println!("node {id}: {} keys, applied up to {last:?}", s.len());
    }
    for id in running {
        cluster.stop(id).await?;
    }
    if same && reference.len() == 400 && by_snapshot {
        println!("every node ends with the same state");
        Ok(())
    } else {
        println!(
            "FAILED: same state {same}, {} keys, node 4 caught up by snapshot {by_snapshot}",
            reference.len()
        );
        std::process::exit(1);
    }
}
