//! The search's memory: which (set of linearized ops, model state) configurations it has
//! already explored.
//!
//! The set is a [`Bitset`] over the key's ops with an incrementally maintained Zobrist hash
//! (one random word per op, XORed in and out as ops are linearized and undone), so hashing a
//! configuration costs one multiply, not a pass over the bits.
//!
//! Optional ops (`info`) are kept apart from required ones. A configuration that has placed a
//! superset of another's optional ops, with the same required ops and state, can do nothing the
//! other cannot (optional ops constrain nothing; placing one only uses it up), so it is
//! *dominated*: [`Cache::insert`] reports it as seen. This is what keeps pending `info` ops
//! from multiplying configurations: only the required set and the state are hashed, and the
//! optional sets under one hash are compared by subset.
//!
//! A stored set is compressed to the words between the first word that is not all ones and the
//! last word that is not all zeros: the search linearizes ops roughly in history order, so a
//! set is almost always "everything before op k, plus a few after", a handful of words even for
//! a key of 10,000 ops. Sets are stored exactly (never only their hash), so a hash collision
//! costs a compare, never a wrong verdict. The cache counts its own bytes, so the search can
//! stop at a memory bound instead of being killed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fixed-size set of op numbers with a running Zobrist hash.
#[derive(Debug, Clone)]
pub struct Bitset {
    words: Vec<u64>,
    keys: Vec<u64>,
    hash: u64,
    /// Every word before `lo` is all ones.
    lo: usize,
    /// Every word from `hi` on is zero.
    hi: usize,
}

/// splitmix64: a fixed, seeded stream of well-mixed words for the Zobrist keys.
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Bitset {
    pub fn new(n: usize) -> Bitset {
        let mut seed = 0x5eed_u64;
        Bitset {
            words: vec![0; n.div_ceil(64).max(1)],
            keys: (0..n).map(|_| splitmix(&mut seed)).collect(),
            hash: 0,
            lo: 0,
            hi: 0,
        }
    }

    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    #[inline]
    pub fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
        self.hash ^= self.keys[i];
        self.hi = self.hi.max(i / 64 + 1);
    }

    #[inline]
    pub fn remove(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] &= !(1 << (i % 64));
        self.hash ^= self.keys[i];
        self.lo = self.lo.min(w);
    }

    /// The hash of this set together with a model state.
    #[inline]
    pub fn hash_with(&self, state: u32) -> u64 {
        self.hash ^ (u64::from(state) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The words worth storing (see the module note) and where they start.
    #[inline]
    fn window(&mut self) -> (usize, &[u64]) {
        while self.lo < self.words.len() && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
        while self.hi > self.lo && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
        let hi = self.hi.max(self.lo);
        (self.lo, &self.words[self.lo..hi])
    }
}

/// A hasher that passes a `u64` key through: the keys are already Zobrist-random.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The ops a configuration has placed: required and optional ones in separate bitsets.
#[derive(Debug, Clone)]
pub struct Placed {
    req: Bitset,
    opt: Bitset,
    /// For each task: its index in `req` or `opt`, and which.
    slot: Vec<(u32, bool)>,
}

impl Placed {
    /// `optional[t]` says whether task `t` is optional.
    pub fn new(optional: &[bool]) -> Placed {
        let mut slot = Vec::with_capacity(optional.len());
        let (mut r, mut o) = (0u32, 0u32);
        for &is_opt in optional {
            if is_opt {
                slot.push((o, true));
                o += 1;
            } else {
                slot.push((r, false));
                r += 1;
            }
        }
        Placed {
            req: Bitset::new(r as usize),
            opt: Bitset::new(o as usize),
            slot,
        }
    }

    #[inline]
    pub fn contains(&self, t: usize) -> bool {
        let (i, opt) = self.slot[t];
        if opt {
            self.opt.contains(i as usize)
        } else {
            self.req.contains(i as usize)
        }
    }

    #[inline]
    pub fn insert(&mut self, t: usize) {
        let (i, opt) = self.slot[t];
        if opt {
            self.opt.insert(i as usize)
        } else {
            self.req.insert(i as usize)
        }
    }

    #[inline]
    pub fn remove(&mut self, t: usize) {
        let (i, opt) = self.slot[t];
        if opt {
            self.opt.remove(i as usize)
        } else {
            self.req.remove(i as usize)
        }
    }
}

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: u32,
    lo: u32,
    len: u32,
    next: u32,
    off: usize,
}

/// The set of configurations seen, stored exactly.
#[derive(Default)]
pub struct Cache {
    heads: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    slots: Vec<Slot>,
    arena: Vec<u64>,
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    /// Record (`placed`, `state`); `false` if it, or a configuration dominating it, was
    /// already there.
    pub fn insert(&mut self, placed: &mut Placed, state: u32) -> bool {
        let h = placed.req.hash_with(state);
        let (lo, words) = placed.req.window();
        let opt: &[u64] = if placed.opt.keys.is_empty() {
            &[]
        } else {
            &placed.opt.words
        };
        let head = self.heads.get(&h).copied().unwrap_or(NONE);
        let mut at = head;
        let n = words.len();
        while at != NONE {
            let s = self.slots[at as usize];
            if s.state == state
                && s.lo as usize == lo
                && s.len as usize == n
                && &self.arena[s.off..s.off + n] == words
                && self.arena[s.off + n..s.off + n + opt.len()]
                    .iter()
                    .zip(opt)
                    .all(|(seen, now)| seen & !now == 0)
            {
                return false;
            }
            at = s.next;
        }
        let slot = Slot {
            state,
            lo: lo as u32,
            len: words.len() as u32,
            next: head,
            off: self.arena.len(),
        };
        self.arena.extend_from_slice(words);
        self.arena.extend_from_slice(opt);
        self.heads.insert(h, self.slots.len() as u32);
        self.slots.push(slot);
        true
    }

    /// Bytes held, counting the vectors' and the map's capacity (what the allocator gave).
    pub fn bytes(&self) -> usize {
        self.arena.capacity() * 8
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.heads.capacity() * (8 + 4 + 1)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_set_and_state_is_seen_once() {
        let mut optional = vec![false; 200];
        optional[199] = true;
        optional[198] = true;
        let mut b = Placed::new(&optional);
        let mut c = Cache::new();
        for i in 0..130 {
            b.insert(i);
        }
        b.insert(150);
        assert!(c.insert(&mut b, 7));
        assert!(!c.insert(&mut b, 7));
        assert!(c.insert(&mut b, 8));
        b.remove(3);
        assert!(c.insert(&mut b, 7));
        b.insert(3);
        assert!(!c.insert(&mut b, 7));
        b.remove(150);
        assert!(c.insert(&mut b, 7));
        assert!(b.contains(3) && !b.contains(150));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn more_optional_ops_placed_is_dominated() {
        let optional = [false, true, true];
        let mut b = Placed::new(&optional);
        let mut c = Cache::new();
        b.insert(0);
        b.insert(1);
        assert!(c.insert(&mut b, 1));
        b.insert(2);
        assert!(
            !c.insert(&mut b, 1),
            "a superset of optional ops is dominated"
        );
        b.remove(1);
        assert!(
            c.insert(&mut b, 1),
            "{{0, 2}} is not a superset of {{0, 1}}"
        );
        b.remove(2);
        assert!(c.insert(&mut b, 1), "fewer optional ops is new");
    }
}
