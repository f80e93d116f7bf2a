//! The harness restates the node's ring rule (`harness/src/targets/node/ring.rs`) so the
//! nemesis can aim at a key's home nodes without asking a node. A restated rule can drift; this
//! pins it to the node's own ring, for the cluster shapes runs use.

use quorate::targets::node::ring::Ring as HarnessRing;
use quorate_node::ring::Ring as NodeRing;

#[test]
fn harness_ring_picks_the_nodes_the_node_does() {
    for (nodes, vnodes, n) in [(5, 64, 3), (3, 64, 3), (7, 16, 3), (5, 8, 5), (4, 64, 1)] {
        let ids: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
        let ours = HarnessRing::new(&ids, vnodes, n);
        let theirs = NodeRing::new(&ids, vnodes, n);
        for k in 0..2_000 {
            let key = format!("k{k}");
            let want: Vec<String> = theirs
                .preference_list(&key)
                .into_iter()
                .map(|i| theirs.node_id(i).to_string())
                .collect();
            assert_eq!(
                ours.home_nodes(&key),
                want,
                "key {key} on {nodes} nodes, {vnodes} vnodes, n={n}"
            );
        }
    }
}
