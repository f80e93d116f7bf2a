//! The zone check: a read/write register whose written values are unique, decided in
//! O(n log n) whatever the concurrency.
//!
//! # Algorithm
//! Gibbons and Korach ("Testing Shared Memories", SIAM J. Computing 1997) showed that a
//! read/write register history whose writes write distinct values is linearizable-checkable in
//! O(n log n); this is the zone form Golab, Li and Shah give ("Analyzing consistency properties
//! for fun and profit", PODC 2011). Positions are `plan`'s entry positions (`2 × line`), so
//! every event has its own even position and no two coincide.
//!
//! **Ops.** The same reductions as `plan`, which for such a register are: a `fail` op did not
//! happen and an `info` read constrains nothing, both dropped; an `info` write that no read
//! returned is dropped (nothing can tell whether it happened, and no read needs it); an `info`
//! write that some `ok` read returned certainly happened: it stays, completing at +∞ (no
//! deadline of its own: its group's earliest read bounds it, see below). An `ok` write nobody
//! read stays. Reads of the starting value read a *virtual write* that completed at −∞ (a key
//! whose starting value is also written by some op goes to the general search, as does any
//! key with a `cas` or a value written twice).
//!
//! **Groups and zones.** Each write forms a group with the reads that returned its value. A
//! read of a value that no kept write wrote is invalid at once; so is a read that completed
//! before its write began. For a group let `f` be the earliest completion and `s` the latest
//! invoke among its ops. If `f < s` the group's zone `[f, s]` is *forward*: in any
//! linearization the write takes effect before `f` and some read after `s`, so the key holds
//! the group's value throughout, and no other write may take effect inside `(f, s)`. If
//! `s < f` the zone `[s, f]` is *backward*: the whole group can take effect at any one point
//! of it. The key is linearizable exactly when, besides the two read rules, no two forward
//! zones overlap and no backward zone lies inside a forward one (`f_F < s_B` and `f_B < s_F`).
//!
//! **Why the conditions are necessary.** In a linearization a group is a contiguous run: its
//! write, then its reads, with no other write between. Forward zones `A`, `B` with
//! `f_A < f_B < s_A`: `B`'s write is before `f_B < s_A`, before `A`'s last read, so it must
//! come before `A`'s write; then `A`'s write (before `f_A < s_B`) falls inside `B`'s run.
//! A backward zone `B` inside forward `F`: `B`'s run must end before `F`'s write (before
//! `f_F`), but `B` has an op that begins at `s_B > f_F`; or begin after `F`'s last read (after
//! `s_F`), but `B` has an op that completed at `f_B < s_F`.
//!
//! **Why they are sufficient: the order.** Give each group a key: a forward zone its `f`
//! (−∞ for the starting value's); a backward zone an odd position `p` in `[s, f]` inside no
//! forward zone, `s + 1`, or `s_F + 1` when `s` falls inside forward zone `F` (then `s_F < f`,
//! or `B` would lie inside `F`; and the next forward zone begins after `s_F + 1`, since forward
//! zones are disjoint and their ends even). Sort the groups by key, and emit each one's write
//! and then its reads by invoke. If op `a` of group `A` completed before op `b` of group `B`
//! was invoked, `A`'s key is below `B`'s: both forward, `f_A ≤ a < b ≤ s_B` and disjoint zones
//! give `f_A < f_B`; `A` backward and `B` forward, `p_A ≤ f_A ≤ a < b ≤ s_B`, and `p_A` is not
//! inside `B`'s zone, so `p_A < f_B`; `A` forward and `B` backward, `f_A ≤ a < b ≤ s_B < p_B`;
//! both backward, `p_A ≤ f_A ≤ a < b ≤ s_B < p_B`. Inside a group the write cannot follow a
//! read in real time (the second read rule) and reads go by invoke. Every read sits right
//! after its own write. So the order is a linearization, and `replay` checks it again.
//!
//! Cost: one pass to group, a sort of the forward zones, a binary search per backward zone,
//! one sort for the order: O(n log n) time and O(n) memory, both checked against the key's
//! budget every 1,024 steps as the search does.

use super::search::{mebibytes, seconds, Limits};
use crate::history::{Op, Outcome};
use crate::model::register::{Register, NO_VALUE};
use crate::model::Model;
use std::mem::size_of;

const NIL: u32 = u32::MAX;
const NEG_INF: i64 = i64::MIN;
const POS_INF: i64 = i64::MAX;

/// Why a register key cannot take the zone path (`Err`: the reason, for the record), or
/// `Ok`. Every write counts here, failed ones too: a prefix makes a write still pending
/// `info` (see `shortest`), and its value must be unique there as well.
pub fn applies(ops: &[&Op], model: &Register) -> Result<(), String> {
    let initial = model.initial_value();
    let mut written = vec![false; model.value_count()];
    for (i, op) in ops.iter().enumerate() {
        match op.f.as_str() {
            "read" => continue,
            "write" => {}
            other => return Err(format!("op {} is a {other}", op.id)),
        }
        let Some(v) = model.tried(i) else { continue };
        if initial == Some(v) {
            return Err(format!("op {} writes the starting value", op.id));
        }
        if std::mem::replace(&mut written[v as usize], true) {
            return Err(format!("op {} writes a value written before", op.id));
        }
    }
    Ok(())
}

/// One group's zone, by the ops that bound it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    /// The write (op number); `None`: the starting value's virtual write.
    pub write: Option<usize>,
    /// How many `ok` reads returned its value.
    pub reads: usize,
    /// The op that completed first (`f`); `None`: the virtual write, at −∞.
    pub first_done: Option<usize>,
    /// The op invoked last (`s`).
    pub last_call: usize,
}

/// Why a key is not linearizable, in the terms of the zone rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// An `ok` read of a value that no op that may have happened wrote.
    NeverWritten { read: usize },
    /// An `ok` read that completed before the write of its value was invoked.
    ReadBeforeWrite { read: usize, write: usize },
    /// Two forward zones overlap; `first`'s begins first.
    Overlap { first: Zone, second: Zone },
    /// A backward zone lies inside a forward one.
    Inside { inner: Zone, outer: Zone },
}

/// The verdict of one zone check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zoned {
    /// A linearization: op numbers in order.
    Linearizable(Vec<usize>),
    NotLinearizable(Conflict),
    /// The key's budget ran out; the reason in words.
    GaveUp(String),
}

/// What the check also counts, for the key's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `info` ops dropped: reads, and writes nobody read.
    pub dropped_info: usize,
    /// `info` writes some read returned, so they took effect.
    pub tightened_info: usize,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    write: u32,
    /// The write is `info` (in this prefix): it may never have happened unless read.
    write_info: bool,
    reads: u32,
    /// Earliest completion and its op (NIL: the virtual write).
    f: i64,
    f_op: u32,
    /// Latest invoke and its op.
    s: i64,
    s_op: u32,
}

impl Group {
    fn zone(&self) -> Zone {
        let op = |x: u32| (x != NIL).then_some(x as usize);
        Zone {
            write: op(self.write),
            reads: self.reads as usize,
            first_done: op(self.f_op),
            last_call: self.s_op as usize,
        }
    }

    fn add(&mut self, op: u32, call: i64, done: i64) {
        if done < self.f {
            self.f = done;
            self.f_op = op;
        }
        if call > self.s {
            self.s = call;
            self.s_op = op;
        }
    }
}

/// The key's budget, looked at every 1,024 steps (as the search does, so a small key is never
/// stopped by a clock read).
struct Budget<'a> {
    limits: &'a Limits,
    steps: u64,
}

impl Budget<'_> {
    fn tick(&mut self, bytes: impl Fn() -> usize) -> Result<(), String> {
        self.steps += 1;
        if self.steps & 0x3ff != 0 {
            return Ok(());
        }
        if self.limits.start.elapsed() > self.limits.time {
            return Err(format!("time limit {}", seconds(self.limits.time)));
        }
        if bytes() > self.limits.memory {
            return Err(format!("memory limit {}", mebibytes(self.limits.memory)));
        }
        Ok(())
    }
}

/// Check the prefix of the key `ops` (in invoke order; `model` compiled for them, and
/// [`applies`] true) before line position `cut` (`usize::MAX`: the whole key). In a prefix an
/// op not completed before `cut` is `info` (HISTORY.md).
pub fn check(model: &Register, ops: &[&Op], cut: usize, limits: &Limits) -> (Zoned, Counts) {
    let mut counts = Counts::default();
    match run(model, ops, cut, limits, &mut counts) {
        Ok(z) => (z, counts),
        Err(reason) => (Zoned::GaveUp(reason), counts),
    }
}

fn run(
    model: &Register,
    ops: &[&Op],
    cut: usize,
    limits: &Limits,
    counts: &mut Counts,
) -> Result<Zoned, String> {
    let mut budget = Budget { limits, steps: 0 };
    let nvals = model.value_count();
    let slot = |v: u32| if v == NO_VALUE { nvals } else { v as usize };
    let mut group_of = vec![NIL; nvals + 1];
    let blank = Group {
        write: NIL,
        write_info: false,
        reads: 0,
        f: POS_INF,
        f_op: NIL,
        s: NEG_INF,
        s_op: NIL,
    };
    // Group 0: the starting value, whose virtual write completed at −∞.
    let mut groups = vec![Group {
        f: NEG_INF,
        ..blank
    }];
    group_of[slot(model.initial_value().unwrap_or(NO_VALUE))] = 0;
    // (op, group, is a write).
    let mut kept: Vec<(u32, u32, bool)> = Vec::with_capacity(ops.len());
    let pos = |line: usize| 2 * line as i64;
    for (i, op) in ops.iter().enumerate() {
        if op.call >= cut {
            break;
        }
        budget.tick(|| kept.capacity() * 12 + groups.capacity() * size_of::<Group>())?;
        let done = op.complete.filter(|&c| c < cut);
        let outcome = if done.is_some() {
            op.outcome
        } else {
            Outcome::Info
        };
        let is_write = op.f == "write";
        let v = match (outcome, is_write) {
            (Outcome::Fail | Outcome::Mismatch, _) => continue,
            (_, true) => model.tried(i),
            (Outcome::Ok, false) => model.read_value(i),
            (Outcome::Info, false) => {
                counts.dropped_info += 1;
                continue;
            }
        };
        // `applies` let only reads and writes through, and both have a value here.
        let v = v.ok_or_else(|| format!("checker bug: op {} has no value to group by", op.id))?;
        let g = match group_of[slot(v)] {
            NIL => {
                groups.push(blank);
                group_of[slot(v)] = groups.len() as u32 - 1;
                groups.len() - 1
            }
            g => g as usize,
        };
        let finish = match (outcome, done) {
            (Outcome::Ok, Some(c)) => pos(c),
            _ => POS_INF,
        };
        let group = &mut groups[g];
        if is_write {
            group.write = i as u32;
            group.write_info = finish == POS_INF;
        } else {
            group.reads += 1;
        }
        group.add(i as u32, pos(op.call), finish);
        kept.push((i as u32, g as u32, is_write));
    }
    let bytes = kept.capacity() * 12 + groups.capacity() * size_of::<Group>() + nvals * 4;
    drop(group_of);
    // Per group: its key in the order, or NIL-like `None` when the group is dropped.
    let mut key: Vec<Option<i64>> = vec![None; groups.len()];
    let mut forward: Vec<(i64, u32)> = Vec::new();
    let mut backward: Vec<u32> = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        budget.tick(|| bytes)?;
        let virtual_write = g == 0;
        if group.reads == 0 {
            if virtual_write {
                continue;
            }
            if group.write_info {
                // Nobody read it and it may never have happened.
                counts.dropped_info += 1;
                continue;
            }
        } else if !virtual_write {
            if group.write == NIL {
                return Ok(Zoned::NotLinearizable(Conflict::NeverWritten {
                    read: group.f_op as usize,
                }));
            }
            let w = group.write as usize;
            if group.write_info {
                counts.tightened_info += 1;
            }
            // `f` is a read's completion whenever it is below the write's invoke.
            if group.f < pos(ops[w].call) {
                return Ok(Zoned::NotLinearizable(Conflict::ReadBeforeWrite {
                    read: group.f_op as usize,
                    write: w,
                }));
            }
        }
        if group.f < group.s {
            forward.push((group.f, g as u32));
            key[g] = Some(group.f);
        } else {
            backward.push(g as u32);
        }
    }
    forward.sort_unstable();
    for pair in forward.windows(2) {
        let (a, b) = (&groups[pair[0].1 as usize], &groups[pair[1].1 as usize]);
        budget.tick(|| bytes)?;
        if a.s > b.f {
            return Ok(Zoned::NotLinearizable(Conflict::Overlap {
                first: a.zone(),
                second: b.zone(),
            }));
        }
    }
    for &g in &backward {
        budget.tick(|| bytes)?;
        let b = &groups[g as usize];
        // The forward zone that begins last before `s_B`: the only one that can hold it.
        let at = forward.partition_point(|&(f, _)| f < b.s);
        let p = match at.checked_sub(1).map(|k| &groups[forward[k].1 as usize]) {
            Some(outer) if outer.s > b.f => {
                return Ok(Zoned::NotLinearizable(Conflict::Inside {
                    inner: b.zone(),
                    outer: outer.zone(),
                }))
            }
            Some(outer) if outer.s > b.s => outer.s + 1,
            _ => b.s + 1,
        };
        key[g as usize] = Some(p);
    }
    // (group key, group, read after write, invoke, op): the order of the note above.
    let mut order: Vec<(i64, u32, bool, usize, u32)> = Vec::with_capacity(kept.len());
    for &(op, g, is_write) in &kept {
        budget.tick(|| bytes + order.capacity() * 32)?;
        if let Some(k) = key[g as usize] {
            order.push((k, g, !is_write, ops[op as usize].call, op));
        }
    }
    order.sort_unstable();
    Ok(Zoned::Linearizable(
        order.into_iter().map(|(.., op)| op as usize).collect(),
    ))
}
