//! `--only raft`: replicated writes through a three-node in-process Raft
//! cluster (aof-raft's `Router`, `KvStateMachine`) with each node's log on
//! aof (`AofLogStore`: every entry durable before it is reported flushed,
//! appends in flight sharing an fsync), beside the same cluster code with
//! the log in memory ([`MemLogStore`]), in one run.
//!
//! `N` clients each write `Set` requests through the leader, one at a time,
//! for a fixed time; reported: committed writes/s, commit latency p50/p99
//! (`client_write` until it returns: replicated to a majority, applied on
//! the leader) and the ratio aof/in-memory; the aof rows also give the
//! leader's fsyncs per entry.

use crate::raft_mem_store::MemLogStore;
use aof_bench::{BenchResult, Res};
use aof_raft::openraft::storage::RaftLogStorage;
use aof_raft::openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use aof_raft::{AofLogStore, KvConfig, KvRequest, KvStateMachine, Router};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Client counts measured.
const CLIENTS: [usize; 2] = [1, 32];
/// Cases reported, for the progress bar.
pub const CASES: u64 = 3 * CLIENTS.len() as u64;
/// Bytes of each request's value.
const VALUE: usize = 64;

/// One side's figures.
struct Measured {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    /// The leader's fsyncs per entry, for a store that fsyncs.
    fsyncs_per_entry: Option<f64>,
}

/// Runs the table.
pub fn run(scratch: &Path, quick: bool, case: &mut dyn FnMut(&str)) -> Res<Vec<BenchResult>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let duration = Duration::from_millis(if quick { 1_000 } else { 3_000 });
    let mut results = Vec::new();
    for clients in CLIENTS {
        case(&format!("raft: in-memory log, {clients} clients"));
        let memory = rt.block_on(measure(clients, duration, scratch, |_| {
            Ok((MemLogStore::<KvConfig>::default(), None))
        }))?;
        let size = VALUE + 16;
        // Every committed log id durable (the default), then written at
        // most once a second (`set_committed_interval`).
        for (name, interval) in [
            ("raft_write_aof", Duration::ZERO),
            ("raft_write_aof_committed_1s", Duration::from_secs(1)),
        ] {
            case(&format!("raft: aof log ({name}), {clients} clients"));
            let dir = tempfile::tempdir_in(scratch)?;
            let aof = rt.block_on(measure(clients, duration, scratch, |id| {
                let store = AofLogStore::<KvConfig>::open(dir.path().join(format!("node-{id}")))?;
                store.set_committed_interval(interval);
                Ok((store.clone(), Some(store)))
            }))?;
            results.push(
                BenchResult::new(name, size, aof.rate, aof.rate * size as f64)
                    .strategy(format!(
                        "{:.2} fsync/entry",
                        aof.fsyncs_per_entry.ok_or("no flush metrics")?
                    ))
                    .appenders(clients)
                    .latency(Some(aof.p50_us), Some(aof.p99_us))
                    .baseline(memory.rate, aof.rate / memory.rate),
            );
        }
        results.push(
            BenchResult::new(
                "baseline_raft_write_in_memory",
                size,
                memory.rate,
                memory.rate * size as f64,
            )
            .appenders(clients)
            .latency(Some(memory.p50_us), Some(memory.p99_us)),
        );
    }
    Ok(results)
}

/// A three-node cluster whose node `id`'s log is `make_store(id)` (and, for
/// aof, the store whose flush metrics count); `clients` clients write for
/// `duration`.
async fn measure<S>(
    clients: usize,
    duration: Duration,
    scratch: &Path,
    mut make_store: impl FnMut(u64) -> Res<(S, Option<AofLogStore<KvConfig>>)>,
) -> Res<Measured>
where
    S: RaftLogStorage<KvConfig>,
{
    let sm_root = tempfile::tempdir_in(scratch)?;
    let router = Router::<KvConfig>::default();
    let config = Arc::new(
        Config {
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            snapshot_policy: SnapshotPolicy::Never,
            ..Config::default()
        }
        .validate()?,
    );
    let mut aof_stores = BTreeMap::new();
    for id in 1..=3u64 {
        let (store, aof) = make_store(id)?;
        if let Some(aof) = aof {
            aof_stores.insert(id, aof);
        }
        let sm = KvStateMachine::open(sm_root.path().join(format!("sm-{id}")))?;
        let raft = Raft::new(id, config.clone(), router.clone(), store, sm).await?;
        router.add(id, raft);
    }
    let members: BTreeMap<u64, BasicNode> = (1..=3).map(|id| (id, BasicNode::default())).collect();
    router.get(1)?.initialize(members).await?;
    let (leader_id, leader) = leader(&router).await?;
    // Warm up: the first writes create segments and index rows.
    for i in 0..50 {
        leader.client_write(request(u64::MAX, i)).await?;
    }
    let before = aof_stores.get(&leader_id).map(|s| {
        (
            s.aof().flush_metrics().successful_flushes(),
            s.aof().flush_metrics().records_flushed(),
        )
    });
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients as u64)
        .map(|c| {
            let leader = leader.clone();
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new(3)?;
                let mut i = 0;
                while start.elapsed() < duration {
                    let t = Instant::now();
                    leader.client_write(request(c, i)).await?;
                    hist.record(t.elapsed().as_micros() as u64)?;
                    i += 1;
                }
                Ok::<_, aof_bench::BoxError>(hist)
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new(3)?;
    for t in tasks {
        hist.add(t.await??)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let fsyncs_per_entry = match (before, aof_stores.get(&leader_id)) {
        (Some((flushes, records)), Some(s)) => {
            let m = s.aof().flush_metrics();
            let entries = m.records_flushed() - records;
            Some((m.successful_flushes() - flushes) as f64 / entries.max(1) as f64)
        }
        _ => None,
    };
    for (_, raft) in router.nodes() {
        raft.shutdown().await?;
    }
    Ok(Measured {
        rate: hist.len() as f64 / elapsed,
        p50_us: hist.value_at_quantile(0.5) as f64,
        p99_us: hist.value_at_quantile(0.99) as f64,
        fsyncs_per_entry,
    })
}

fn request(client: u64, i: u64) -> KvRequest {
    KvRequest::Set {
        key: format!("c{client}-{i}"),
        value: "v".repeat(VALUE),
    }
}

async fn leader(router: &Router<KvConfig>) -> Res<(u64, Raft<KvConfig>)> {
    for _ in 0..200 {
        for (id, raft) in router.nodes() {
            if raft.metrics().borrow().state == ServerState::Leader {
                return Ok((id, raft));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("no leader elected within 10 s".into())
}
