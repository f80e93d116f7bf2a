//! The set workload: each client slot draws `add`s of unique elements and set `read`s, on
//! rotating sets.
//!
//! HISTORY.md pins its shape: an `add` stores its element under a key of its own
//! ([`element_key`], `s/<element>`), and a set `read` is the sorted list of elements found by
//! reading every element key added to that set so far. The history names the set
//! (`set0`, `set1`, …) as the op's `key`, so the checker's `set` check sees one grow-only set
//! per key.
//!
//! Sets rotate like register keys (client slot `c`'s `j`-th op goes to set
//! `j * concurrency / ops_per_set`), so a set gets about `ops_per_set` ops in total and a read
//! of it costs at most that many element reads — a read of every element ever added would
//! grow without bound over a long run. Elements are unique across the run: slot `c`'s `a`-th
//! add is `c * 1_000_000_000 + a + 1`, as register writes are.
//!
//! Reads are a tenth of the ops: each costs one element read per element of its set, so more
//! would crowd out the adds the check is about, and fewer would leave too few reads inside a
//! fault window to see an element go missing.

use crate::register::WorkloadError;
use quorate_checker::model::ModelKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The share of ops that are set reads.
pub const READ_SHARE: f64 = 0.1;

/// What a set op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetOpKind {
    Add,
    Read,
}

impl SetOpKind {
    /// The op's `f` in the history.
    pub fn name(self) -> &'static str {
        match self {
            SetOpKind::Add => "add",
            SetOpKind::Read => "read",
        }
    }
}

/// What a client should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOp {
    pub f: SetOpKind,
    /// The set's index; its name in the history is [`set_name`].
    pub set: u64,
    /// The element an `add` adds (`None` for a read).
    pub element: Option<u64>,
}

/// The history key of set `index`.
pub fn set_name(index: u64) -> String {
    format!("set{index}")
}

/// The store key an element lives under.
pub fn element_key(element: u64) -> String {
    format!("s/{element}")
}

/// The key prefix of set `index` in a store whose set reads list keys instead of reading each
/// element's key (an S3 store's ListObjectsV2): `s/set<index>/`. Its elements live under
/// [`listed_element_key`], so listing the prefix finds exactly that set's elements.
pub fn set_prefix(index: u64) -> String {
    format!("s/{}/", set_name(index))
}

/// The key of `element` of set `index` in a store whose set reads list ([`set_prefix`]).
pub fn listed_element_key(index: u64, element: u64) -> String {
    format!("{}{element}", set_prefix(index))
}

/// The element a listed key holds: what follows `prefix`, as a number when it is one (what
/// [`listed_element_key`] wrote). Anything else is returned as the key itself (a string), so
/// the set check counts it as unexpected rather than a reader hiding it.
pub fn listed_element(prefix: &str, key: &str) -> serde_json::Value {
    match key.strip_prefix(prefix).map(str::parse::<u64>) {
        Some(Ok(e)) => serde_json::Value::from(e),
        _ => serde_json::Value::from(key),
    }
}

/// The whole workload's settings.
#[derive(Debug, Clone)]
pub struct SetWorkload {
    pub ops_per_set: u64,
    pub concurrency: u64,
    pub seed: u64,
}

impl SetWorkload {
    /// Check the settings (`ops_per_set` comes from `--ops-per-key`).
    pub fn new(
        ops_per_set: u64,
        concurrency: u64,
        seed: u64,
    ) -> Result<SetWorkload, WorkloadError> {
        if ops_per_set == 0 {
            return Err(WorkloadError::BadOpsPerKey);
        }
        Ok(SetWorkload {
            ops_per_set,
            concurrency: concurrency.max(1),
            seed,
        })
    }

    /// The model its histories are checked against.
    pub fn model(&self) -> ModelKind {
        ModelKind::Set
    }

    /// The generator for client slot `slot`.
    pub fn client(&self, slot: u64) -> SetClient {
        // A stream apart from the register workload's for the same slot and seed.
        let stream = self.seed
            ^ 0x7365_745f_776b_6c64
            ^ (slot.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        SetClient {
            rng: ChaCha8Rng::seed_from_u64(stream),
            slot,
            n: 0,
            adds: 0,
            ops_per_set: self.ops_per_set,
            concurrency: self.concurrency,
        }
    }
}

/// One client slot's generator.
#[derive(Debug, Clone)]
pub struct SetClient {
    rng: ChaCha8Rng,
    slot: u64,
    n: u64,
    adds: u64,
    ops_per_set: u64,
    concurrency: u64,
}

impl SetClient {
    /// The set index the next op goes to.
    pub fn set_index(&self) -> u64 {
        self.n * self.concurrency / self.ops_per_set
    }

    /// The next op.
    pub fn next_op(&mut self) -> SetOp {
        self.next_op_on(None)
    }

    /// The next op, on set `pin` instead of the rotation's set when one is given (a fault
    /// holding clients on one set). Kinds and elements drawn are the same either way.
    pub fn next_op_on(&mut self, pin: Option<u64>) -> SetOp {
        let set = pin.unwrap_or_else(|| self.set_index());
        self.n += 1;
        if self.rng.gen_bool(READ_SHARE) {
            SetOp {
                f: SetOpKind::Read,
                set,
                element: None,
            }
        } else {
            self.adds += 1;
            SetOp {
                f: SetOpKind::Add,
                set,
                element: Some(self.slot * 1_000_000_000 + self.adds),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ops(w: &SetWorkload, slot: u64, k: usize) -> Vec<SetOp> {
        let mut c = w.client(slot);
        (0..k).map(|_| c.next_op()).collect()
    }

    #[test]
    fn same_seed_same_ops_and_another_seed_differs() {
        let w = SetWorkload::new(200, 10, 42).unwrap();
        assert_eq!(ops(&w, 3, 100), ops(&w, 3, 100));
        let other = SetWorkload::new(200, 10, 43).unwrap();
        assert_ne!(ops(&w, 3, 100), ops(&other, 3, 100));
    }

    #[test]
    fn elements_are_unique_across_slots_and_reads_are_about_a_tenth() {
        let w = SetWorkload::new(200, 4, 1).unwrap();
        let mut seen = BTreeSet::new();
        let mut reads = 0;
        for slot in 0..4 {
            for op in ops(&w, slot, 1000) {
                match op.f {
                    SetOpKind::Add => assert!(seen.insert(op.element.unwrap())),
                    SetOpKind::Read => {
                        assert_eq!(op.element, None);
                        reads += 1;
                    }
                }
            }
        }
        // 4000 draws at p = 0.1: far outside these bounds only by a broken generator.
        assert!((300..500).contains(&reads), "{reads} reads of 4000");
    }

    #[test]
    fn sets_rotate_after_ops_per_set_and_a_pin_holds_the_set_only() {
        let w = SetWorkload::new(100, 10, 1).unwrap();
        let sets: Vec<u64> = ops(&w, 0, 20).iter().map(|o| o.set).collect();
        assert_eq!((sets[0], sets[9], sets[10]), (0, 0, 1));
        let mut pinned = w.client(0);
        let held: Vec<SetOp> = (0..20).map(|_| pinned.next_op_on(Some(7))).collect();
        let free = ops(&w, 0, 20);
        for (h, f) in held.iter().zip(&free) {
            assert_eq!((h.set, h.f, h.element), (7, f.f, f.element));
        }
    }

    #[test]
    fn names_and_bad_settings() {
        assert_eq!(set_name(3), "set3");
        assert_eq!(element_key(1_000_000_002), "s/1000000002");
        assert_eq!(set_prefix(3), "s/set3/");
        assert_eq!(listed_element_key(3, 1_000_000_002), "s/set3/1000000002");
        let p = set_prefix(3);
        assert_eq!(listed_element(&p, "s/set3/1000000002"), 1_000_000_002u64);
        // Not what an add wrote: the key itself, for the check to call unexpected.
        assert_eq!(listed_element(&p, "s/set3/x"), "s/set3/x");
        assert_eq!(listed_element(&p, "s/set31/7"), "s/set31/7");
        assert_eq!(
            SetWorkload::new(0, 1, 0).unwrap_err(),
            WorkloadError::BadOpsPerKey
        );
        assert_eq!(SetWorkload::new(5, 1, 0).unwrap().model(), ModelKind::Set);
    }
}
