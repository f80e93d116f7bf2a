//! One sentence a person understands, for the op that cannot be placed.
//!
//! The search proves that no linearization exists; the sentence names the simplest reason the
//! history itself shows, trying the specific patterns first and falling back to what the search
//! saw:
//! 1. the op observed a value nothing wrote;
//! 2. it observed a value first written only after it completed;
//! 3. it observed a value overwritten before it began ("read of 3 at 12.004 s returned a value
//!    overwritten by write 5, which completed at 11.950 s before the read began");
//! 4. otherwise: that no real-time-respecting order of the earlier ops leaves the key in a state
//!    the op fits, with states the search saw there.
//!
//! Patterns 1–3 are stated only when the history makes them true on their own, so a sentence
//! never claims more than the search proved. A key decided by the zone check gets, in place of
//! pattern 4, the two groups whose zones conflict ([`zone_conflict`]).

use super::zones::{Conflict, Zone};
use crate::history::{Op, Outcome};
use crate::model::register::Register;
use crate::model::Model;

/// When an op event happened: "12.004 s" from its time, else "line 41".
pub fn when(time: Option<i64>, line: usize) -> String {
    match time {
        Some(ns) => format!("{:.3} s", ns as f64 / 1e9),
        None => format!("line {}", line + 1),
    }
}

/// The sentence for op `xi` of the key whose ops are `ops`, which cannot be placed; `states`
/// are states (in words) the search saw the key in where it could have taken effect.
pub fn sentence<M: Model>(model: &M, ops: &[&Op], xi: usize, states: &[String]) -> String {
    if let Some(s) = specific(model, ops, xi) {
        return s;
    }
    let x = ops[xi];
    let at = when(x.call_time, x.call);
    let what = model.describe_op(xi);
    let seen = match states {
        [] => String::new(),
        [one] => format!(" (the key can hold {one} there)"),
        [init @ .., last] => format!(" (the key can hold {} or {last} there)", init.join(", ")),
    };
    format!(
        "{what} (op {}) at {at} cannot take effect: no order of the ops before it that respects \
         real time leaves the key in a state it fits{seen}",
        x.id
    )
}

/// The sentence for a failed op, or patterns 1–3, when the history makes one true on its own.
pub fn specific<M: Model>(model: &M, ops: &[&Op], xi: usize) -> Option<String> {
    let x = ops[xi];
    let at = when(x.call_time, x.call);
    if x.outcome == Outcome::Fail {
        return Some(format!(
            "{} of {} at {at} failed, so it did not take effect, and without it the ops before \
             it have no order that respects real time",
            x.f,
            crate::model::intern::show(&x.input)
        ));
    }
    observed_pattern(model, ops, xi, &model.describe_op(xi), &at)
}

/// Patterns 1–3, for an op that saw one value.
fn observed_pattern<M: Model>(
    model: &M,
    ops: &[&Op],
    xi: usize,
    what: &str,
    at: &str,
) -> Option<String> {
    let x = ops[xi];
    let done = x.complete?;
    if x.outcome != Outcome::Ok {
        return None;
    }
    let &[v] = model.observed(xi) else {
        return None;
    };
    let noun = x.f.as_str();
    let verb = if model.written(xi).is_some() {
        "expected"
    } else {
        "returned"
    };
    let initial = model.initial_value() == Some(v);
    let writers: Vec<usize> = (0..ops.len())
        .filter(|&j| {
            j != xi
                && matches!(ops[j].outcome, Outcome::Ok | Outcome::Info)
                && model.written(j) == Some(v)
        })
        .collect();
    if writers.is_empty() && !initial {
        return Some(format!("{what} at {at} {verb} a value that no op wrote"));
    }
    if !initial && writers.iter().all(|&w| ops[w].call > done) {
        let w = ops[writers[0]];
        return Some(format!(
            "{what} at {at} {verb} a value first written by {} at {}, after the {noun} completed",
            model.describe_op(writers[0]),
            when(w.call_time, w.call)
        ));
    }
    // Pattern 3 needs every write of the value to have certainly ended.
    let mut last_done: Option<usize> = None;
    for &w in &writers {
        if ops[w].outcome != Outcome::Ok {
            return None;
        }
        let d = ops[w].complete?;
        last_done = Some(last_done.map_or(d, |l: usize| l.max(d)));
    }
    let over = (0..ops.len())
        .filter(|&o| {
            let op = ops[o];
            op.outcome == Outcome::Ok
                && model.written(o).is_some_and(|u| u != v)
                && !matches!(last_done, Some(l) if op.call <= l)
                && op.complete.is_some_and(|c| c < x.call)
        })
        .max_by_key(|&o| ops[o].complete)?;
    let o = ops[over];
    Some(format!(
        "{what} at {at} {verb} a value overwritten by {}, which completed at {} before the {noun} began",
        model.describe_op(over),
        when(o.complete_time, o.complete.unwrap_or(o.call))
    ))
}

/// The sentence for a zone conflict (see `zones`): which rule the two groups break, with the
/// four events that make it so.
pub fn zone_conflict(model: &Register, ops: &[&Op], conflict: &Conflict) -> String {
    let op = |i: usize| format!("{} (op {})", model.describe_op(i), ops[i].id);
    let began = |i: usize| format!("{} began at {}", op(i), when(ops[i].call_time, ops[i].call));
    let done = |i: usize| {
        let o = ops[i];
        format!(
            "{} completed at {}",
            op(i),
            when(o.complete_time, o.complete.unwrap_or(o.call))
        )
    };
    let name = |z: &Zone| match z.write {
        Some(w) => model.describe_op(w),
        None => "the starting value".to_string(),
    };
    // "write 18 and its reads must all come", or "write 18 must come" when nobody read it.
    let must = |z: &Zone| match z.reads {
        0 => format!("{} must come", name(z)),
        _ => format!("{} and its reads must all come", name(z)),
    };
    match *conflict {
        Conflict::NeverWritten { read } => format!(
            "{} at {} returned a value that no op wrote",
            op(read),
            when(ops[read].call_time, ops[read].call)
        ),
        Conflict::ReadBeforeWrite { read, write } => format!(
            "{}, before {}: it returned a value written only after it",
            done(read),
            began(write)
        ),
        Conflict::Overlap { first, second } => {
            // `second` is never the starting value: its zone begins at −∞, so it is first.
            let Some(second_done) = second.first_done else {
                return format!(
                    "the zones of {} and {} overlap",
                    name(&first),
                    name(&second)
                );
            };
            match first.first_done {
                None => format!(
                    "{} before {}, and cannot: {}, after {}",
                    must(&first),
                    name(&second),
                    began(first.last_call),
                    done(second_done)
                ),
                Some(first_done) => format!(
                    "{} before {} or all after its reads, and neither fits: {}, after {}, and \
                     {}, after {}",
                    must(&first),
                    name(&second),
                    began(first.last_call),
                    done(second_done),
                    began(second.last_call),
                    done(first_done)
                ),
            }
        }
        Conflict::Inside { inner, outer } => {
            let Some(inner_done) = inner.first_done else {
                return format!(
                    "the zone of {} lies inside that of {}",
                    name(&inner),
                    name(&outer)
                );
            };
            match outer.first_done {
                None => format!(
                    "{} after the reads of the starting value, and cannot: {}, before {}",
                    must(&inner),
                    done(inner_done),
                    began(outer.last_call)
                ),
                Some(outer_done) => format!(
                    "{} before {} or all after its reads, and neither fits: {}, after {}, and \
                     {}, before {}",
                    must(&inner),
                    name(&outer),
                    began(inner.last_call),
                    done(outer_done),
                    done(inner_done),
                    began(outer.last_call)
                ),
            }
        }
    }
}
