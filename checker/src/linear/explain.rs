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
//! never claims more than the search proved.

use crate::history::{Op, Outcome};
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
    let x = ops[xi];
    let at = when(x.call_time, x.call);
    if x.outcome == Outcome::Fail {
        return format!(
            "{} of {} at {at} failed, so it did not take effect, and without it the ops before \
             it have no order that respects real time",
            x.f,
            crate::model::intern::show(&x.input)
        );
    }
    let what = model.describe_op(xi);
    if let Some(s) = observed_pattern(model, ops, xi, &what, &at) {
        return s;
    }
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
