//! The consistent-hash ring with virtual nodes.
//!
//! Positions hash node *ids* (never addresses): the harness gives every node its own proxy
//! addresses for its peers, and all nodes must still agree on who owns a key. Each node owns
//! `vnodes` points; a key's preference list is the first N distinct nodes met walking clockwise
//! from the key's hash, and the distinct nodes after those are the sloppy-quorum fallbacks.

use sha2::{Digest, Sha256};

/// 64-bit position of a string on the ring (first 8 bytes of SHA-256).
pub fn hash64(bytes: &[u8]) -> u64 {
    let d = Sha256::digest(bytes);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// Where a key sits on the ring; also its place in the Merkle trees.
pub fn key_position(key: &str) -> u64 {
    hash64(key.as_bytes())
}

/// A range of the ring `(start, end]` (wrapping when `start >= end`) and the nodes that own it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
    /// The range's preference list (N node indices).
    pub replicas: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Ring {
    nodes: Vec<String>,
    /// Sorted `(position, node index)`.
    points: Vec<(u64, usize)>,
    n: usize,
}

impl Ring {
    /// `nodes` in any order (they are sorted so every node builds the same ring); `n` ≤ nodes.
    pub fn new(nodes: &[String], vnodes: usize, n: usize) -> Ring {
        let mut nodes = nodes.to_vec();
        nodes.sort();
        nodes.dedup();
        let mut points = Vec::with_capacity(nodes.len() * vnodes);
        for (i, id) in nodes.iter().enumerate() {
            for v in 0..vnodes {
                points.push((hash64(format!("{id}#{v}").as_bytes()), i));
            }
        }
        points.sort();
        Ring { nodes, points, n }
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    pub fn node_id(&self, idx: usize) -> &str {
        &self.nodes[idx]
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == id)
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// Every node, distinct, in walk order from `pos`: the first N are the preference list,
    /// the rest the fallbacks a sloppy quorum may use.
    pub fn walk(&self, pos: u64) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.nodes.len());
        if self.points.is_empty() {
            return out;
        }
        // The first point at or after `pos` owns it (a key at a point belongs to that point).
        let start = self.points.partition_point(|&(p, _)| p < pos);
        for i in 0..self.points.len() {
            let (_, node) = self.points[(start + i) % self.points.len()];
            if !out.contains(&node) {
                out.push(node);
                if out.len() == self.nodes.len() {
                    break;
                }
            }
        }
        out
    }

    /// The key's N home nodes.
    pub fn preference_list(&self, key: &str) -> Vec<usize> {
        let mut w = self.walk(key_position(key));
        w.truncate(self.n);
        w
    }

    /// Every range between consecutive points, with its preference list.
    pub fn ranges(&self) -> Vec<Range> {
        let len = self.points.len();
        (0..len)
            .map(|i| {
                let end = self.points[i].0;
                let start = self.points[(i + len - 1) % len].0;
                let mut reps = self.walk(end);
                reps.truncate(self.n);
                Range {
                    start,
                    end,
                    replicas: reps,
                }
            })
            .collect()
    }

    /// Index into `ranges()` of the range holding `pos`.
    pub fn range_index(&self, pos: u64) -> usize {
        let i = self.points.partition_point(|&(p, _)| p < pos);
        i % self.points.len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn preference_list_is_n_distinct_nodes() {
        let r = Ring::new(&ids(5), 64, 3);
        for k in 0..500 {
            let p = r.preference_list(&format!("k{k}"));
            assert_eq!(p.len(), 3);
            let mut d = p.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
    }

    #[test]
    fn every_node_builds_the_same_ring_whatever_the_order() {
        let a = Ring::new(&ids(5), 16, 3);
        let mut rev = ids(5);
        rev.reverse();
        let b = Ring::new(&rev, 16, 3);
        for k in 0..100 {
            let key = format!("key-{k}");
            let pa: Vec<_> = a
                .preference_list(&key)
                .iter()
                .map(|&i| a.node_id(i).to_string())
                .collect();
            let pb: Vec<_> = b
                .preference_list(&key)
                .iter()
                .map(|&i| b.node_id(i).to_string())
                .collect();
            assert_eq!(pa, pb);
        }
    }

    #[test]
    fn load_spreads_over_nodes() {
        let r = Ring::new(&ids(5), 64, 1);
        let mut counts = [0usize; 5];
        for k in 0..5000 {
            counts[r.preference_list(&format!("k{k}"))[0]] += 1;
        }
        for c in counts {
            assert!(c > 500, "uneven ring: {counts:?}");
        }
    }

    #[test]
    fn walk_lists_fallbacks_after_home_nodes() {
        let r = Ring::new(&ids(5), 8, 3);
        let w = r.walk(key_position("x"));
        assert_eq!(w.len(), 5);
        assert_eq!(&w[..3], &r.preference_list("x")[..]);
    }

    #[test]
    fn ranges_agree_with_preference_lists() {
        let r = Ring::new(&ids(4), 8, 2);
        let ranges = r.ranges();
        assert_eq!(ranges.len(), 32);
        for k in 0..200 {
            let key = format!("k{k}");
            let idx = r.range_index(key_position(&key));
            assert_eq!(ranges[idx].replicas, r.preference_list(&key));
        }
    }
}
