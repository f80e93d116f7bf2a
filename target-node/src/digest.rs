//! `GET /digest`: a hash per key range this node replicates, for the harness's convergence
//! check, plus one hash over everything it holds.
//!
//! Ranges are the ring's segments between consecutive virtual-node points; every node that
//! replicates a range reports it with the same `start`, `end` and `replicas`, so the harness
//! can line them up: a range has converged when all its replicas report the same `hash`.
//! A range's hash is the wrapping sum of its entries' hashes (key, version, value), so it does
//! not depend on the order keys were written; an empty range hashes to 0.

use serde_json::{json, Value};

use crate::merkle::entry_hash;
use crate::node::Node;
use crate::ring::key_position;

pub fn digest(node: &Node) -> Value {
    let mut sums = vec![0u64; node.ranges.len()];
    let mut counts = vec![0u64; node.ranges.len()];
    let mut overall = 0u64;
    let mut total = 0u64;
    node.storage.scan(|k, r| {
        let h = entry_hash(k, r);
        let i = node.ring.range_index(key_position(k));
        sums[i] = sums[i].wrapping_add(h);
        counts[i] += 1;
        overall = overall.wrapping_add(h);
        total += 1;
    });
    let ranges: Vec<Value> = node
        .ranges
        .iter()
        .enumerate()
        .filter(|(_, r)| r.replicas.contains(&node.me))
        .map(|(i, r)| {
            json!({
                "start": r.start,
                "end": r.end,
                "replicas": r.replicas.iter().map(|&x| node.id_of(x)).collect::<Vec<_>>(),
                "hash": format!("{:016x}", sums[i]),
                "keys": counts[i],
            })
        })
        .collect();
    json!({
        "node": node.cfg.id,
        "overall": format!("{overall:016x}"),
        "keys": total,
        "hints_pending": node.storage.hints().len(),
        "ranges": ranges,
    })
}
