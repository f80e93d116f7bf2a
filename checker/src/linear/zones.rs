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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{pair, Event, EventType, Process};
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};

    /// One event a line, `process type f value` (`info` lines get a timeout error).
    fn ops(text: &str) -> Vec<Op> {
        let events: Vec<Event> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, line)| {
                let w: Vec<&str> = line.split_whitespace().collect();
                let kind = match w[1] {
                    "invoke" => EventType::Invoke,
                    "ok" => EventType::Ok,
                    "fail" => EventType::Fail,
                    _ => EventType::Info,
                };
                let value: Value = serde_json::from_str(w[3]).expect("JSON value");
                let p = Process::Client(w[0].parse().expect("process"));
                let mut ev = Event::new(p, kind, w[2], value);
                ev.index = Some(i as u64);
                if kind == EventType::Info {
                    ev = ev.with_error("timeout");
                }
                ev
            })
            .collect();
        pair(&events).expect("pairs").ops
    }

    fn limits() -> Limits {
        Limits {
            start: Instant::now(),
            time: Duration::from_secs(60),
            memory: 512 << 20,
        }
    }

    /// The zone verdict of `text` (register model, starting value `initial`), and its counts.
    fn zoned(text: &str, initial: Option<Value>) -> (Zoned, Counts) {
        let ops = ops(text);
        let refs: Vec<&Op> = ops.iter().collect();
        let model = Register::compile_with(&refs, initial.as_ref(), false).expect("compiles");
        applies(&refs, &model).expect("the zone check applies");
        check(&model, &refs, usize::MAX, &limits())
    }

    fn conflict(text: &str) -> Conflict {
        match zoned(text, None).0 {
            Zoned::NotLinearizable(c) => c,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    fn order(text: &str) -> Vec<usize> {
        match zoned(text, None).0 {
            Zoned::Linearizable(o) => o,
            other => panic!("expected a linearization, got {other:?}"),
        }
    }

    #[test]
    fn a_read_of_a_value_nobody_wrote_is_invalid_at_once() {
        let c = conflict("0 invoke write 1\n0 ok write 1\n1 invoke read null\n1 ok read 7");
        assert_eq!(c, Conflict::NeverWritten { read: 1 });
        // A failed write did not happen, so its value was never written either.
        let c = conflict("0 invoke write 1\n0 fail write 1\n1 invoke read null\n1 ok read 1");
        assert_eq!(c, Conflict::NeverWritten { read: 1 });
    }

    #[test]
    fn a_read_that_completed_before_its_write_began_is_invalid() {
        let c = conflict("1 invoke read null\n1 ok read 5\n0 invoke write 5\n0 ok write 5");
        assert_eq!(c, Conflict::ReadBeforeWrite { read: 0, write: 1 });
        // Also when the write is info: it can take effect late, never early.
        let c = conflict("1 invoke read null\n1 ok read 5\n0 invoke write 5\n0 info write 5");
        assert_eq!(c, Conflict::ReadBeforeWrite { read: 0, write: 1 });
    }

    #[test]
    fn an_info_write_that_was_read_completes_at_infinity() {
        // The info write is read long after its info line and after another write: it took
        // effect late, after write 2.
        let text = "0 invoke write 1
                    0 info write 1
                    1 invoke write 2
                    1 ok write 2
                    2 invoke read null
                    2 ok read 1";
        let (z, counts) = zoned(text, None);
        assert_eq!(z, Zoned::Linearizable(vec![1, 0, 2]));
        assert_eq!(counts.tightened_info, 1);
        assert_eq!(counts.dropped_info, 0);
    }

    #[test]
    fn unread_info_writes_info_reads_and_fails_are_dropped() {
        let text = "0 invoke write 1
                    0 ok write 1
                    1 invoke write 2
                    1 info write 2
                    2 invoke read null
                    2 info read null
                    3 invoke write 3
                    3 fail write 3
                    4 invoke read null
                    4 ok read 1";
        let (z, counts) = zoned(text, None);
        // Neither write 2 nor write 3 is in the order, nor the info read.
        assert_eq!(z, Zoned::Linearizable(vec![0, 4]));
        assert_eq!(counts.dropped_info, 2);
    }

    #[test]
    fn an_unread_ok_write_is_a_backward_zone_of_its_own() {
        // Write 2 completed inside write 1's forward zone (from write 1's completion to the
        // read of 1's invoke): the stale read.
        let c = conflict(
            "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n1 ok write 2\n2 invoke read null\n2 ok read 1",
        );
        let Conflict::Inside { inner, outer } = c else {
            panic!("expected a backward zone inside a forward one: {c:?}");
        };
        assert_eq!((inner.write, inner.reads), (Some(1), 0));
        assert_eq!((outer.write, outer.reads, outer.last_call), (Some(0), 1, 2));
        // Overlapping the read, write 2 may come after it.
        assert_eq!(
            order("0 invoke write 1\n0 ok write 1\n2 invoke read null\n1 invoke write 2\n1 ok write 2\n2 ok read 1"),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn reads_of_the_starting_value_read_a_write_at_minus_infinity() {
        assert_eq!(
            order("0 invoke read null\n0 ok read null\n1 invoke write 1\n1 ok write 1"),
            vec![0, 1]
        );
        let c = conflict("1 invoke write 1\n1 ok write 1\n0 invoke read null\n0 ok read null");
        let Conflict::Inside { inner, outer } = c else {
            panic!("expected write 1 inside the starting value's zone: {c:?}");
        };
        assert_eq!(
            (inner.write, outer.write, outer.first_done),
            (Some(0), None, None)
        );
        // With a starting value, a read of it is fine and a read of null is not.
        let read0 = "0 invoke read null\n0 ok read 0\n1 invoke write 1\n1 ok write 1";
        assert!(matches!(
            zoned(read0, Some(json!(0))).0,
            Zoned::Linearizable(_)
        ));
        let c = match zoned("0 invoke read null\n0 ok read null", Some(json!(0))).0 {
            Zoned::NotLinearizable(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c, Conflict::NeverWritten { read: 0 });
    }

    #[test]
    fn keys_the_zones_do_not_fit_are_named() {
        let why = |text: &str, initial: Option<Value>| {
            let ops = ops(text);
            let refs: Vec<&Op> = ops.iter().collect();
            let model = Register::compile_with(&refs, initial.as_ref(), true).expect("compiles");
            applies(&refs, &model).expect_err("the search's key")
        };
        let twice = "0 invoke write 1\n0 ok write 1\n1 invoke write 1\n1 fail write 1";
        assert_eq!(why(twice, None), "op 2 writes a value written before");
        let cas = "0 invoke cas [null,1]\n0 ok cas [null,1]";
        assert_eq!(why(cas, None), "op 0 is a cas");
        let start = "0 invoke write 0\n0 ok write 0";
        assert_eq!(why(start, Some(json!(0))), "op 0 writes the starting value");
    }

    #[test]
    fn two_forward_zones_that_overlap_conflict() {
        // Both reads come after both writes completed: whichever value came second was
        // overwritten before the other's read.
        let c = conflict(
            "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n1 ok write 2
             2 invoke read null\n3 invoke read null\n2 ok read 1\n3 ok read 2",
        );
        let Conflict::Overlap { first, second } = c else {
            panic!("expected overlapping forward zones: {c:?}");
        };
        assert_eq!((first.write, first.first_done), (Some(0), Some(0)));
        assert_eq!((second.write, second.last_call), (Some(1), 3));
        // Concurrent reads, one per value, ordered by the zones: valid.
        let ok = "0 invoke write 1\n2 invoke read null\n0 ok write 1\n1 invoke write 2
                  3 invoke read null\n2 ok read 1\n1 ok write 2\n3 ok read 2";
        assert_eq!(order(ok), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_prefix_makes_pending_ops_info() {
        let text = "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n2 invoke read null
                    2 ok read 2\n1 ok write 2";
        let ops = ops(text);
        let refs: Vec<&Op> = ops.iter().collect();
        let model = Register::compile_with(&refs, None, false).expect("compiles");
        // Cut before write 2's completion: it is info, and read, so it stays.
        let (z, counts) = check(&model, &refs, 5, &limits());
        assert_eq!(z, Zoned::Linearizable(vec![0, 1, 2]));
        assert_eq!(counts.tightened_info, 1);
        // Cut before the read's completion: nothing read write 2, so it is dropped.
        let (z, counts) = check(&model, &refs, 4, &limits());
        assert_eq!(z, Zoned::Linearizable(vec![0]));
        assert_eq!(counts.dropped_info, 2);
    }

    #[test]
    fn the_budget_is_looked_at_every_1024_steps() {
        let mut text = String::new();
        for i in 0..600 {
            text +=
                &format!("0 invoke write {i}\n0 ok write {i}\n0 invoke read null\n0 ok read {i}\n");
        }
        let ops = ops(&text);
        let refs: Vec<&Op> = ops.iter().collect();
        let model = Register::compile_with(&refs, None, false).expect("compiles");
        let none = Limits {
            time: Duration::ZERO,
            ..limits()
        };
        assert_eq!(
            check(&model, &refs, usize::MAX, &none).0,
            Zoned::GaveUp("time limit 0 s".to_string())
        );
        // Under 1,024 steps nothing looks at the clock.
        assert!(matches!(
            check(&model, &refs[..4], usize::MAX, &none).0,
            Zoned::Linearizable(_)
        ));
    }
}
