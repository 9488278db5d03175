//! Runs the `cluster` example (three nodes, a leader change, a node that
//! joins by snapshot, a restarted node) as a test: it exits non-zero, and
//! so fails this test, unless every node ends with the same state.

#[path = "../examples/cluster.rs"]
mod cluster;

#[test]
fn the_cluster_example_ends_with_every_node_in_the_same_state() {
    cluster::main().expect("the cluster example");
}
