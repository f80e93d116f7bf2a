//! Merkle trees over key ranges, and the walk that finds where two replicas differ.
//!
//! A tree splits the 64-bit ring position space into `2^depth` leaves by the top bits of each
//! key's position. A leaf's hash is the wrapping sum of its entries' hashes (an entry hashes the
//! key, its version and its value), so it does not depend on insertion order; an inner node
//! hashes its two children; an empty subtree hashes to 0. Two replicas compare roots, then only
//! the children of nodes that differ, level by level, and finally the entries of the leaves that
//! differ. The hashes exchanged grow with (differences × depth), not with the number of keys:
//! 10,000 keys with one difference cost about `1 + 2·depth` hashes plus one leaf's entries.
//!
//! Everything here is pure: the anti-entropy task moves the requests and answers over HTTP.

use std::collections::BTreeMap;

use crate::ring::hash64;
use crate::version::Record;

/// Depth used by the node: 1,024 leaves, so a leaf holds about ten keys per 10,000.
pub const DEFAULT_DEPTH: u32 = 10;

/// An entry's contribution to its leaf: key, version and value, so replicas that hold the same
/// version of every key have equal trees.
pub fn entry_hash(key: &str, rec: &Record) -> u64 {
    let mut buf = Vec::with_capacity(key.len() + 64);
    buf.extend_from_slice(key.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&rec.version.ts.to_be_bytes());
    buf.extend_from_slice(rec.version.node.as_bytes());
    buf.push(0);
    buf.extend_from_slice(rec.value.to_string().as_bytes());
    hash64(&buf)
}

fn combine(l: u64, r: u64) -> u64 {
    if l == 0 && r == 0 {
        return 0;
    }
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&l.to_be_bytes());
    b[8..].copy_from_slice(&r.to_be_bytes());
    hash64(&b)
}

/// Leaf index of a ring position in a tree of `depth`.
pub fn leaf_of(depth: u32, pos: u64) -> u64 {
    if depth == 0 {
        0
    } else {
        pos >> (64 - depth)
    }
}

#[derive(Clone, Debug)]
pub struct MerkleTree {
    depth: u32,
    /// `levels[d]` holds the `2^d` hashes of level `d`; level 0 is the root.
    levels: Vec<Vec<u64>>,
}

impl MerkleTree {
    /// Builds from `(ring position, entry hash)` pairs in any order.
    pub fn build(depth: u32, entries: impl IntoIterator<Item = (u64, u64)>) -> MerkleTree {
        let mut leaves = vec![0u64; 1usize << depth];
        for (pos, h) in entries {
            let i = leaf_of(depth, pos) as usize;
            leaves[i] = leaves[i].wrapping_add(h);
        }
        let mut levels = vec![leaves];
        while levels[0].len() > 1 {
            let below = &levels[0];
            let up: Vec<u64> = below.chunks(2).map(|c| combine(c[0], c[1])).collect();
            levels.insert(0, up);
        }
        MerkleTree { depth, levels }
    }

    pub fn depth(&self) -> u32 {
        self.depth
    }

    pub fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// Hashes of nodes `indices` at `level`; out-of-range requests get `None` (a peer built
    /// with another depth, or a bad request) rather than a panic.
    pub fn hashes(&self, level: u32, indices: &[u64]) -> Option<Vec<u64>> {
        let row = self.levels.get(level as usize)?;
        indices
            .iter()
            .map(|&i| row.get(usize::try_from(i).ok()?).copied())
            .collect()
    }
}

/// The walk down two trees from the root to the leaves that differ.
#[derive(Clone, Debug)]
pub struct DiffWalk {
    depth: u32,
    level: u32,
    pending: Vec<u64>,
    leaves: Vec<u64>,
    compared: u64,
}

impl DiffWalk {
    pub fn new(depth: u32) -> DiffWalk {
        DiffWalk {
            depth,
            level: 0,
            pending: vec![0],
            leaves: Vec::new(),
            compared: 0,
        }
    }

    /// The remote hashes needed next, or `None` when the walk is over.
    pub fn request(&self) -> Option<(u32, Vec<u64>)> {
        if self.pending.is_empty() {
            None
        } else {
            Some((self.level, self.pending.clone()))
        }
    }

    /// Feeds the remote hashes for the last request. Returns false (and ends the walk) when
    /// the answer does not fit the request.
    pub fn feed(&mut self, local: &MerkleTree, remote: &[u64]) -> bool {
        let Some(mine) = local.hashes(self.level, &self.pending) else {
            self.pending.clear();
            return false;
        };
        if remote.len() != mine.len() {
            self.pending.clear();
            return false;
        }
        self.compared += mine.len() as u64;
        let differing: Vec<u64> = self
            .pending
            .iter()
            .zip(mine.iter().zip(remote))
            .filter(|(_, (a, b))| a != b)
            .map(|(&i, _)| i)
            .collect();
        if self.level == self.depth {
            self.leaves = differing;
            self.pending.clear();
        } else {
            self.pending = differing.iter().flat_map(|&i| [2 * i, 2 * i + 1]).collect();
            self.level += 1;
        }
        true
    }

    /// Leaves whose hashes differ, once the walk is over.
    pub fn differing_leaves(&self) -> &[u64] {
        &self.leaves
    }

    /// Tree hashes compared so far.
    pub fn hashes_compared(&self) -> u64 {
        self.compared
    }
}

/// What a replica does with the entries of the differing leaves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeafRepair {
    /// Newer on the remote (or missing here): store locally.
    pub adopt: Vec<(String, Record)>,
    /// Newer here (or missing remotely): send to the remote.
    pub push: Vec<(String, Record)>,
    /// Entries compared (each counts as one hash exchanged).
    pub compared: u64,
}

/// Compares both sides' entries of the same leaves, key by key.
pub fn reconcile_leaves(
    local: &BTreeMap<String, Record>,
    remote: &BTreeMap<String, Record>,
) -> LeafRepair {
    let mut out = LeafRepair {
        compared: (local.len() + remote.len()) as u64,
        ..LeafRepair::default()
    };
    for (k, r) in remote {
        if r.supersedes(local.get(k)) {
            out.adopt.push((k.clone(), r.clone()));
        }
    }
    for (k, l) in local {
        if l.supersedes(remote.get(k)) {
            out.push.push((k.clone(), l.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::key_position;

    fn tree(depth: u32, m: &BTreeMap<String, Record>) -> MerkleTree {
        MerkleTree::build(
            depth,
            m.iter().map(|(k, r)| (key_position(k), entry_hash(k, r))),
        )
    }

    fn entries_in(
        m: &BTreeMap<String, Record>,
        depth: u32,
        leaves: &[u64],
    ) -> BTreeMap<String, Record> {
        m.iter()
            .filter(|(k, _)| leaves.contains(&leaf_of(depth, key_position(k))))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    /// Drives a whole exchange in memory; returns (repair, hashes compared).
    fn exchange(a: &BTreeMap<String, Record>, b: &BTreeMap<String, Record>) -> (LeafRepair, u64) {
        let d = DEFAULT_DEPTH;
        let (ta, tb) = (tree(d, a), tree(d, b));
        let mut walk = DiffWalk::new(d);
        let mut rounds = 0;
        while let Some((level, idx)) = walk.request() {
            rounds += 1;
            assert!(rounds <= d + 1);
            let remote = tb.hashes(level, &idx).expect("same depth");
            assert!(walk.feed(&ta, &remote));
        }
        let leaves = walk.differing_leaves().to_vec();
        let rep = reconcile_leaves(&entries_in(a, d, &leaves), &entries_in(b, d, &leaves));
        let total = walk.hashes_compared() + rep.compared;
        (rep, total)
    }

    fn keys(n: usize) -> BTreeMap<String, Record> {
        (0..n)
            .map(|i| (format!("key-{i}"), Record::at(1)))
            .collect()
    }

    #[test]
    fn equal_trees_compare_one_hash() {
        let a = keys(1000);
        let (rep, total) = exchange(&a, &a.clone());
        assert_eq!(total, 1);
        assert!(rep.adopt.is_empty() && rep.push.is_empty());
    }

    #[test]
    fn ten_thousand_keys_one_difference_under_100_hashes() {
        let a = keys(10_000);
        let mut b = a.clone();
        b.insert("key-4242".into(), Record::at(2));
        let (rep, total) = exchange(&a, &b);
        assert!(total < 100, "compared {total} hashes");
        assert_eq!(rep.adopt, vec![("key-4242".to_string(), Record::at(2))]);
        assert!(rep.push.is_empty());
    }

    #[test]
    fn missing_key_is_pushed() {
        let a = keys(10_000);
        let mut b = a.clone();
        b.remove("key-7");
        let (rep, total) = exchange(&a, &b);
        assert!(total < 100);
        assert_eq!(rep.push, vec![("key-7".to_string(), Record::at(1))]);
    }

    #[test]
    fn exchange_grows_with_differences_not_keys() {
        let small = keys(1_000);
        let big = keys(20_000);
        let bump = |m: &BTreeMap<String, Record>, n: usize| {
            let mut m = m.clone();
            for i in 0..n {
                m.insert(format!("key-{i}"), Record::at(9));
            }
            m
        };
        let (_, one_small) = exchange(&small, &bump(&small, 1));
        let (_, one_big) = exchange(&big, &bump(&big, 1));
        let (r, ten_big) = exchange(&big, &bump(&big, 10));
        assert_eq!(r.adopt.len(), 10);
        // 20x the keys costs only the extra entries of one leaf, not 20x the hashes.
        assert!(one_big < 3 * one_small + 60, "{one_small} vs {one_big}");
        assert!(ten_big > one_big);
    }

    #[test]
    fn tree_does_not_depend_on_insertion_order() {
        let a = keys(300);
        let t1 = tree(8, &a);
        let rev: Vec<_> = a
            .iter()
            .rev()
            .map(|(k, r)| (key_position(k), entry_hash(k, r)))
            .collect();
        let t2 = MerkleTree::build(8, rev);
        assert_eq!(t1.root(), t2.root());
    }

    #[test]
    fn bad_answer_ends_walk() {
        let t = tree(4, &keys(10));
        let mut w = DiffWalk::new(4);
        assert!(!w.feed(&t, &[1, 2, 3]));
        assert!(w.request().is_none());
        assert!(t.hashes(9, &[0]).is_none());
        assert!(t.hashes(1, &[5]).is_none());
    }
}
