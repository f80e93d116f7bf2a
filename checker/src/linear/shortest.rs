//! The counterexample of an invalid key: where the shortest non-linearizable prefix ends.
//!
//! A prefix of a history is a history in its own right (HISTORY.md): the events up to a line,
//! with every op not yet completed there counting as `info`. The prefix that ends with line
//! `L` can only turn non-linearizable at a completion that adds a constraint: an `ok`, a
//! `mismatch` (an info cas becomes a read-like op) or a `fail` (an info op becomes one that did
//! not happen). So the shortest failing prefix ends at one of those completions, and its op is
//! the counterexample's `op`.
//!
//! Finding it: the search of the whole history got as far as `failure.end`, so the prefix
//! ending before that is linearizable (a configuration of the full search, minus the pending
//! reads, linearizes it; pending ops there only gain freedom as `info`). The whole history is
//! not. Candidate completions from there on are tried in order of position by galloping (1, 2,
//! 4 … ahead) and then bisection, each try one search of a prefix, built as its own history and
//! compiled afresh. The answer is almost always the first candidate, so this usually costs two
//! searches of a prefix. Memory stays within the per-key budget: searches run one at a time.
//!
//! A key on the zone path ([`zone_counterexample`]) gets the same prefix by plain bisection of
//! the candidates, each try one zone check of a prefix.

use super::search::{self, Failure, Found, Limits};
use super::zones::{self, Zoned};
use super::{explain, Compile, Counterexample};
use crate::history::{Op, Outcome};
use crate::model::register::Register;
use crate::model::Model;
use serde_json::Value;

/// Where a prefix search failed: the op, and the states it saw there (in words).
type Seen = (usize, Vec<String>);

/// The ops still pending at line position `end` (0-based, exclusive), as they are in the
/// prefix that ends there: `info`. Only these are copied; the rest of the prefix is the
/// original ops (see [`prefix_refs`]).
fn pending_at(ops: &[&Op], end: usize) -> Vec<Op> {
    ops.iter()
        .take_while(|o| o.call < end)
        .filter(|o| !matches!(o.complete, Some(c) if c < end))
        .map(|&o| {
            let mut o = o.clone();
            o.outcome = Outcome::Info;
            o.output = Value::Null;
            o.complete = None;
            o.complete_time = None;
            o.error = None;
            o
        })
        .collect()
}

/// The ops of the prefix before `end`, in order: originals where complete, else the copies
/// from [`pending_at`]. Ops keep their positions in `ops`.
fn prefix_refs<'a>(ops: &[&'a Op], pending: &'a [Op], end: usize) -> Vec<&'a Op> {
    let mut copies = pending.iter();
    ops.iter()
        .take_while(|o| o.call < end)
        .map(|&o| match o.complete {
            Some(c) if c < end => o,
            // `pending_at` copied exactly these ops, in this order.
            _ => copies.next().unwrap_or(o),
        })
        .collect()
}

/// Search the prefix before line position `end`; on failure, also the states it saw, in
/// words (state ids belong to the prefix's own model).
fn search_cut<M: Model>(
    ops: &[&Op],
    end: usize,
    compile: Compile<'_, M>,
    limits: &Limits,
) -> (Found, Vec<String>) {
    let pending = pending_at(ops, end);
    let refs = prefix_refs(ops, &pending, end);
    let mut model = match compile(&refs) {
        Ok(m) => m,
        // The whole key compiled, so a part of it does too; a failure here is a gap in a
        // model, reported as a give-up rather than a panic.
        Err(e) => return (Found::GaveUp(e.to_string()), Vec::new()),
    };
    let plan = super::plan::Plan::new(&refs, &model);
    let found = search::search(&mut model, &plan, limits);
    let states = match &found {
        Found::NotLinearizable(f) => f.states.iter().map(|&s| model.describe_state(s)).collect(),
        _ => Vec::new(),
    };
    (found, states)
}

/// Completion positions that add a constraint, in order, each with its op.
fn constraint_ends(ops: &[&Op]) -> Vec<(usize, usize)> {
    let mut ends: Vec<(usize, usize)> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o.outcome, Outcome::Ok | Outcome::Mismatch | Outcome::Fail))
        .filter_map(|(i, o)| o.complete.map(|c| (c, i)))
        .collect();
    ends.sort_unstable();
    ends
}

/// The counterexample of an invalid key on the zone path: the same shortest failing prefix,
/// found by bisecting the candidate completions with the zone check of each prefix, which
/// takes a cut itself (no copies, no recompiling): O(n log² n) in all. Prefixes fail
/// monotonically (a linearization of a longer prefix is one of a shorter, its pending ops
/// `info`), and the whole key fails, so the last candidate's prefix does.
pub fn zone_counterexample(ops: &[&Op], model: &Register, limits: &Limits) -> Counterexample {
    let ends = constraint_ends(ops);
    let conflict_at = |cut: usize| match zones::check(model, ops, cut, limits).0 {
        Zoned::NotLinearizable(c) => Some(c),
        _ => None,
    };
    // The smallest candidate whose prefix fails: every candidate before `good` passes, the
    // one at `hi` fails.
    let mut found = ends
        .len()
        .checked_sub(1)
        .and_then(|last| conflict_at(ends[last].0 + 1).map(|c| (last, c)));
    if let Some((mut hi, mut conflict)) = found {
        let mut good = 0;
        while good < hi {
            let mid = good + (hi - good) / 2;
            match zones::check(model, ops, ends[mid].0 + 1, limits).0 {
                Zoned::NotLinearizable(c) => {
                    hi = mid;
                    conflict = c;
                }
                Zoned::Linearizable(_) => good = mid + 1,
                // Out of budget: the prefix through `hi` still fails, if not the shortest.
                Zoned::GaveUp(_) => break,
            }
        }
        found = Some((hi, conflict));
    }
    let (x, end, conflict) = match found {
        Some((i, c)) => (ends[i].1, ends[i].0, Some(c)),
        // Unreachable for a key the zone check called invalid; named rather than trusted.
        None => (0, usize::MAX, conflict_at(usize::MAX)),
    };
    let prefix = match zones::check(model, ops, end, limits).0 {
        Zoned::Linearizable(order) => order.iter().map(|&i| ops[i].id).collect(),
        _ => Vec::new(),
    };
    let explanation = explain::specific(model, ops, x).unwrap_or_else(|| match &conflict {
        Some(c) => explain::zone_conflict(model, ops, c),
        None => format!("op {} cannot be placed", ops[x].id),
    });
    Counterexample {
        op: ops[x].id,
        prefix,
        explanation,
        states: Vec::new(),
    }
}

/// Find the shortest failing prefix of the invalid key `ops` and build its counterexample.
pub fn counterexample<M: Model>(
    ops: &[&Op],
    compile: Compile<'_, M>,
    failure: Failure,
    limits: &Limits,
) -> Counterexample {
    let ends = constraint_ends(ops);
    // `failure.end` is an entry position (2 × line, or just below for a tightened deadline).
    let lo = ends.partition_point(|&(c, _)| 2 * (c as u64) < failure.end);
    // Some(true): the prefix through candidate `i` is not linearizable; None: gave up.
    // The op it failed at, and the states seen there.
    let bad = |i: usize| -> Option<(bool, Option<Seen>)> {
        match search_cut(ops, ends[i].0 + 1, compile, limits) {
            (Found::Linearizable(_), _) => Some((false, None)),
            (Found::NotLinearizable(f), states) => Some((true, Some((f.op, states)))),
            (Found::GaveUp(_), _) => None,
        }
    };
    let mut found: Option<(usize, Option<Seen>)> = None;
    let last = ends.len().saturating_sub(1);
    let mut good: Option<usize> = None; // the largest candidate known linearizable
    let mut step = 1;
    let mut i = lo.min(last);
    // Gallop: lo, lo+1, lo+3, lo+7 … until one fails. (No candidates cannot happen for an
    // invalid key, which has a required op; it falls through to the search's own answer.)
    while !ends.is_empty() {
        match bad(i) {
            Some((true, f)) => {
                found = Some((i, f));
                break;
            }
            Some((false, _)) if i < last => {
                good = Some(i);
                i = (i + step).min(last);
                step *= 2;
            }
            _ => break,
        }
    }
    // Bisect between the last good candidate and the first bad one.
    if let (Some((mut hi, mut hi_failure)), Some(mut g)) = (found.clone(), good) {
        while hi > g + 1 {
            let mid = g + (hi - g) / 2;
            match bad(mid) {
                Some((true, f)) => {
                    hi = mid;
                    hi_failure = f;
                }
                Some((false, _)) => g = mid,
                None => break,
            }
        }
        found = Some((hi, hi_failure));
    }
    let model = compile(ops).ok();
    let (x, states, end) = match found {
        Some((i, f)) => {
            let (line, x) = ends[i];
            let states = f.filter(|f| f.0 == x).map(|f| f.1).unwrap_or_default();
            (x, states, line)
        }
        // A limit was reached: the whole search's furthest point still names an op that
        // cannot be placed, if not the earliest one.
        None => {
            let states = match &model {
                Some(m) => failure
                    .states
                    .iter()
                    .map(|&s| m.describe_state(s))
                    .collect(),
                None => Vec::new(),
            };
            let end = ops[failure.op].complete.unwrap_or(usize::MAX);
            (failure.op, states, end)
        }
    };
    let prefix = match search_cut(ops, end, compile, limits).0 {
        Found::Linearizable(order) => order.iter().map(|&i| ops[i].id).collect(),
        _ => Vec::new(),
    };
    let explanation = match &model {
        Some(m) => explain::sentence(m, ops, x, &states),
        None => format!("op {} cannot be placed", ops[x].id),
    };
    Counterexample {
        op: ops[x].id,
        prefix,
        explanation,
        states,
    }
}
