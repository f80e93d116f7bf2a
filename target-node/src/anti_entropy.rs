//! Anti-entropy: Merkle-tree exchanges with each peer, so keys nobody reads converge too.
//!
//! Every interval this node walks, with each peer it shares key ranges with, a Merkle tree over
//! exactly the keys both of them replicate (the ranges whose preference list holds both). Both
//! sides build that tree from the same ring, so equal data gives equal roots and an exchange
//! costs one hash. Otherwise the walk (`merkle::DiffWalk`) descends only into differing
//! children, then the two sides swap the entries of the differing leaves and each newer version
//! moves to the side that lacks it: adopted here, pushed there. Versions only ever move
//! forward (`Record::supersedes`), so anti-entropy can spread an incomplete write but never
//! undo a newer one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::merkle::{entry_hash, leaf_of, reconcile_leaves, DiffWalk, MerkleTree, DEFAULT_DEPTH};
use crate::node::Node;
use crate::replica::{CallError, LeavesReq, MerkleReq};
use crate::ring::key_position;
use crate::stats::Stats;
use crate::version::Record;

/// How long a responder reuses the tree it built for a peer's level-0 request.
const TREE_REUSE: Duration = Duration::from_secs(5);

fn shares(node: &Node, replicas: &[usize], peer: usize) -> bool {
    replicas.contains(&node.me) && replicas.contains(&peer)
}

/// The tree over the keys this node and `peer` both replicate.
pub fn shared_tree(node: &Node, peer: usize) -> MerkleTree {
    let mut entries = Vec::new();
    node.storage.scan(|k, r| {
        let pos = key_position(k);
        if shares(node, node.replicas_at(pos), peer) {
            entries.push((pos, entry_hash(k, r)));
        }
    });
    MerkleTree::build(DEFAULT_DEPTH, entries)
}

/// A responder's tree for `peer`: rebuilt at level 0 (a new exchange), reused deeper so one
/// exchange sees one snapshot.
pub fn tree_for_request(node: &Node, peer: usize, level: u32) -> Arc<MerkleTree> {
    let mut cache = node.merkle_cache.lock().unwrap_or_else(|e| e.into_inner());
    if level > 0 {
        if let Some((at, t)) = cache.get(&peer) {
            if at.elapsed() < TREE_REUSE {
                return t.clone();
            }
        }
    }
    let t = Arc::new(shared_tree(node, peer));
    cache.insert(peer, (Instant::now(), t.clone()));
    t
}

/// This node's entries in `leaves` of the tree shared with `peer`.
pub fn leaf_entries(node: &Node, peer: usize, leaves: &[u64]) -> BTreeMap<String, Record> {
    let wanted: BTreeSet<u64> = leaves.iter().copied().collect();
    let mut out = BTreeMap::new();
    node.storage.scan(|k, r| {
        let pos = key_position(k);
        if wanted.contains(&leaf_of(DEFAULT_DEPTH, pos))
            && shares(node, node.replicas_at(pos), peer)
        {
            out.insert(k.to_string(), r.clone());
        }
    });
    out
}

/// Peers this node shares at least one range with.
pub fn partners(node: &Node) -> Vec<usize> {
    let mut set = BTreeSet::new();
    for r in &node.ranges {
        if r.replicas.contains(&node.me) {
            set.extend(r.replicas.iter().copied().filter(|&i| i != node.me));
        }
    }
    set.into_iter().collect()
}

/// The background loop.
pub async fn run(node: Arc<Node>) {
    let every = Duration::from_millis(node.cfg.anti_entropy_interval_ms);
    let peers = partners(&node);
    loop {
        tokio::time::sleep(every).await;
        for &peer in &peers {
            if let Err(e) = exchange(&node, peer).await {
                tracing::debug!(peer = node.id_of(peer), "anti-entropy exchange failed: {e}");
            }
        }
    }
}

/// One exchange with one peer; returns the number of keys repaired.
pub async fn exchange(node: &Arc<Node>, peer: usize) -> Result<u64, CallError> {
    Stats::inc(&node.stats.anti_entropy_rounds);
    let tree = shared_tree(node, peer);
    let mut walk = DiffWalk::new(tree.depth());
    let me = node.cfg.id.clone();
    while let Some((level, indices)) = walk.request() {
        let req = MerkleReq {
            peer: me.clone(),
            level,
            indices,
        };
        let Some(remote) = node.replicas.merkle(peer, &req).await? else {
            return Err(CallError::Failed(
                "peer's tree does not match the request".into(),
            ));
        };
        if !walk.feed(&tree, &remote) {
            return Err(CallError::Failed(
                "peer answered with the wrong number of hashes".into(),
            ));
        }
    }
    Stats::add(&node.stats.hashes_exchanged, walk.hashes_compared());
    let leaves = walk.differing_leaves().to_vec();
    if leaves.is_empty() {
        return Ok(0);
    }
    let remote: BTreeMap<String, Record> = node
        .replicas
        .leaves(
            peer,
            &LeavesReq {
                peer: me,
                leaves: leaves.clone(),
            },
        )
        .await?
        .into_iter()
        .collect();
    let local = leaf_entries(node, peer, &leaves);
    let rep = reconcile_leaves(&local, &remote);
    Stats::add(&node.stats.hashes_exchanged, rep.compared);
    let mut repaired = 0;
    for (k, r) in rep.adopt {
        if node.storage.put(&k, r).await.is_ok() {
            repaired += 1;
        }
    }
    for (k, r) in rep.push {
        if node.replicas.put(peer, &k, &r).await.is_ok() {
            repaired += 1;
        }
    }
    Stats::add(&node.stats.keys_repaired, repaired);
    if repaired > 0 {
        tracing::info!(
            peer = node.id_of(peer),
            repaired,
            "anti-entropy repaired keys"
        );
    }
    Ok(repaired)
}
