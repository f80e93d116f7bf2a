//! The node's consistent-hash ring, recomputed here so the nemesis can aim at a key's home
//! nodes without asking a node.
//!
//! It must match `target-node/src/ring.rs` exactly: node ids sorted, `vnodes` points per node
//! at the first 8 bytes (big-endian) of SHA-256(`"{id}#{v}"`), a key at SHA-256(key), its
//! preference list the first `n` distinct nodes walking clockwise from the first point at or
//! after the key. The harness never imports the node's crate (the node knows nothing of its
//! tester, and the harness treats it as a black box), so the rule is restated rather than
//! shared; `tests/ring_agreement.rs` pins that both pick the same nodes (the node crate is a
//! dev-dependency only).

use crate::targets::Placement;
use sha2::{Digest, Sha256};

fn hash64(bytes: &[u8]) -> u64 {
    let d = Sha256::digest(bytes);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

#[derive(Debug, Clone)]
pub struct Ring {
    nodes: Vec<String>,
    points: Vec<(u64, usize)>,
    n: usize,
}

impl Ring {
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

    /// The key's N home nodes, first (coordinator-preferred) first.
    pub fn home_nodes(&self, key: &str) -> Vec<String> {
        let mut out: Vec<usize> = Vec::new();
        if self.points.is_empty() {
            return Vec::new();
        }
        let pos = hash64(key.as_bytes());
        let start = self.points.partition_point(|&(p, _)| p < pos);
        for i in 0..self.points.len() {
            let (_, node) = self.points[(start + i) % self.points.len()];
            if !out.contains(&node) {
                out.push(node);
                if out.len() == self.n.min(self.nodes.len()) {
                    break;
                }
            }
        }
        out.into_iter().map(|i| self.nodes[i].clone()).collect()
    }
}

impl Placement for Ring {
    fn home_nodes(&self, key: &str) -> Option<Vec<String>> {
        Some(Ring::home_nodes(self, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_distinct_home_nodes() {
        let ids: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let r = Ring::new(&ids, 64, 3);
        for k in 0..200 {
            let h = r.home_nodes(&format!("k{k}"));
            assert_eq!(h.len(), 3);
            let mut d = h.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
    }
}
