//! What the search must place: one key's ops reduced to intervals, with `info` ops tamed.
//!
//! An op's interval is given in "entry positions": `2 × line` for its invoke and its
//! completion, so every event of the file has its own even slot and an odd slot is free just
//! before it (used below). An op whose completion line comes before another's invoke line
//! precedes it in real time (HISTORY.md: order is line order).
//!
//! Reductions, each of which keeps the verdict:
//! - A `fail` did not happen: dropped.
//! - An `info` op that cannot change the state (a read) constrains nothing: dropped.
//! - Otherwise an `info` op is *optional*: it may take effect at any point after its invoke, or
//!   never, so it has no deadline and the search may leave it out.
//! - With unique written values (the value `v` an info op installs is written by no other op
//!   and is not the starting value):
//!   - if some `ok` op observed `v`, the info op certainly took effect, before the first
//!     observer completed: it becomes *required*, with its deadline just before that
//!     observer's completion (the free odd slot);
//!   - if nothing observed `v` (no read, no cas expecting it, not even an info cas) and no
//!     `mismatch` op (which a stray value could satisfy) can come after it, dropping it loses
//!     no linearization: take one that places it and remove it; no op between it and the next
//!     write saw `v`, so every op still sees what it saw.
//!
//! Values that repeat (etcd's 0–4) get none of the unique-value reductions, and stay correct.

use crate::history::{Op, Outcome};
use crate::model::intern::FastMap;
use crate::model::Model;

/// One op the search must (or may) place.
#[derive(Debug, Clone, Copy)]
pub struct Task {
    /// Position of the op in the key's op list (the model's op number).
    pub op: usize,
    /// Entry position of the invoke.
    pub call: u64,
    /// Entry position by which it must have taken effect; `None`: optional, no deadline.
    pub ret: Option<u64>,
}

/// A key's ops reduced for the search, in invoke order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub tasks: Vec<Task>,
    /// Info ops dropped because nothing could tell whether they happened.
    pub dropped_info: usize,
    /// Info ops made required because an op observed what they wrote.
    pub tightened_info: usize,
}

impl Plan {
    /// Reduce `ops` (one key's, in invoke order) for `model`.
    pub fn new<M: Model>(ops: &[&Op], model: &M) -> Plan {
        // How many ops (that may have happened) install each value, and the earliest
        // completion among ok ops that observed it.
        let mut writers: FastMap<u32, u32> = FastMap::default();
        let mut first_seen: FastMap<u32, usize> = FastMap::default();
        let mut last_mismatch: Option<usize> = None;
        let mut needed_by_info: FastMap<u32, ()> = FastMap::default();
        for (i, op) in ops.iter().enumerate() {
            if matches!(op.outcome, Outcome::Ok | Outcome::Info) {
                if let Some(v) = model.written(i) {
                    *writers.entry(v).or_default() += 1;
                }
            }
            if let (Outcome::Ok, Some(done)) = (op.outcome, op.complete) {
                for &v in model.observed(i) {
                    let e = first_seen.entry(v).or_insert(done);
                    *e = (*e).min(done);
                }
            }
            // An info cas needs its expected value too, if it takes effect: a write of that
            // value must not be dropped.
            if op.outcome == Outcome::Info {
                for &v in model.observed(i) {
                    needed_by_info.insert(v, ());
                }
            }
            if model.observes_absence(i) {
                if let Some(done) = op.complete {
                    last_mismatch = Some(last_mismatch.map_or(done, |m| m.max(done)));
                }
            }
        }
        let initial = model.initial_value();
        let mut plan = Plan::default();
        for (i, op) in ops.iter().enumerate() {
            let call = 2 * op.call as u64;
            let ret = match (op.outcome, op.complete) {
                (Outcome::Fail, _) => continue,
                (Outcome::Ok | Outcome::Mismatch, Some(done)) => Some(2 * done as u64),
                (Outcome::Ok | Outcome::Mismatch, None) => None,
                (Outcome::Info, _) => {
                    if model.is_read_only(i) {
                        plan.dropped_info += 1;
                        continue;
                    }
                    let unique = model
                        .written(i)
                        .filter(|v| writers.get(v) == Some(&1) && initial != Some(*v));
                    match unique {
                        Some(v) => match first_seen.get(&v) {
                            Some(&seen) if seen > op.call => {
                                plan.tightened_info += 1;
                                Some(2 * seen as u64 - 1)
                            }
                            // Observed before it began: impossible, left for the search to
                            // find and explain.
                            Some(_) => None,
                            None if !matches!(last_mismatch, Some(m) if m > op.call)
                                && !needed_by_info.contains_key(&v) =>
                            {
                                plan.dropped_info += 1;
                                continue;
                            }
                            None => None,
                        },
                        None => None,
                    }
                }
            };
            plan.tasks.push(Task { op: i, call, ret });
        }
        plan
    }
}
