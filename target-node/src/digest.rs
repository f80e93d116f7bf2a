//! `GET /digest`: a hash per key range this node replicates, for the harness's convergence
//! check, plus one hash over everything it holds.
//!
//! Ranges are the ring's segments between consecutive virtual-node points; every node that
//! replicates a range reports it with the same `start`, `end` and `replicas`, so the harness
//! can line them up: a range has converged when all its replicas report the same `hash`.
//! A range's hash is the wrapping sum of its entries' hashes (key, version, value), so it does
//! not depend on the order keys were written; an empty range hashes to 0.
//!
//! `GET /digest/keys?start=S&end=E` lists the keys of one of those ranges with each key's
//! entry hash, so the harness can name the keys whose replicas differ, not only the ranges.

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

/// `GET /digest/keys?start=S&end=E`: the keys this node holds in the range `(S, E)` exactly as
/// `/digest` names it, each with its entry hash (the same hash the range sums), sorted by key.
/// An error names the query and what was expected.
pub fn range_keys(node: &Node, query: Option<&str>) -> Result<Value, String> {
    let mut start = None;
    let mut end = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let parsed = v
            .parse::<u64>()
            .map_err(|_| format!("{k}={v:?}: expected an unsigned integer"));
        match k {
            "start" => start = Some(parsed?),
            "end" => end = Some(parsed?),
            other => {
                return Err(format!(
                    "unknown parameter {other:?}; expected start and end"
                ))
            }
        }
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err("expected ?start=S&end=E, a range as GET /digest lists it".into());
    };
    let Some(i) = node
        .ranges
        .iter()
        .position(|r| r.start == start && r.end == end)
    else {
        return Err(format!(
            "no ring range starts at {start} and ends at {end}; take them from GET /digest"
        ));
    };
    let mut keys = Vec::new();
    node.storage.scan(|k, r| {
        if node.ring.range_index(key_position(k)) == i {
            keys.push(json!({"key": k, "hash": format!("{:016x}", entry_hash(k, r))}));
        }
    });
    keys.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    Ok(json!({"node": node.cfg.id, "start": start, "end": end, "keys": keys}))
}
