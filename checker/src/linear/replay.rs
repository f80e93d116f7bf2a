//! The second look at a valid verdict: the search's linearization, replayed.
//!
//! The search prunes hard (see `search`), and a pruning rule that is wrong would make it
//! report a linearization that is none. So before a key is called valid, its linearization is
//! run again, plainly, through a freshly compiled model and against the history's real-time
//! order: every op steps, every op that completed (`ok` or `mismatch`) is there exactly once,
//! no `fail` op is, and no op comes after one that was invoked after it completed. This costs
//! one pass over the key. A replay that fails is a bug in the checker, reported as an error,
//! never as a verdict.

use super::ModelError;
use crate::history::{Op, Outcome};
use crate::model::Model;

/// Replay `order` (positions in `ops`, the key's ops in invoke order) on `model`, freshly
/// compiled for `ops`. `Err` names the first op where the linearization goes wrong.
pub fn replay<M: Model>(model: &mut M, ops: &[&Op], order: &[usize]) -> Result<(), ModelError> {
    let bug = |i: usize, what: String| ModelError {
        op: ops.get(i).map_or(u64::MAX, |o| o.id),
        line: ops.get(i).map_or(0, |o| o.call + 1),
        message: format!(
            "checker bug: the search's linearization does not replay: {what}; \
             no verdict can be given (please report this history)"
        ),
    };
    let mut placed = vec![false; ops.len()];
    let mut state = model.init();
    // The latest invoke among the ops placed so far: an op that completed before it cannot
    // come after that op.
    let mut latest_call: Option<(usize, usize)> = None;
    for &i in order {
        let op = ops
            .get(i)
            .ok_or_else(|| bug(i, format!("it names op number {i} of {}", ops.len())))?;
        if std::mem::replace(&mut placed[i], true) {
            return Err(bug(i, "it places the op twice".to_string()));
        }
        if op.outcome == Outcome::Fail {
            return Err(bug(i, "it places an op that failed".to_string()));
        }
        if let (Some(done), Some((call, j))) = (op.ret(), latest_call) {
            if done < call {
                return Err(bug(
                    i,
                    format!(
                        "it places the op after op {}, which was invoked after it completed",
                        ops[j].id
                    ),
                ));
            }
        }
        if latest_call.is_none_or(|(call, _)| op.call > call) {
            latest_call = Some((op.call, i));
        }
        state = model.step(state, i).ok_or_else(|| {
            bug(
                i,
                format!(
                    "{} does not fit state {}",
                    model.describe_op(i),
                    model.describe_state(state)
                ),
            )
        })?;
    }
    if let Some(i) = (0..ops.len()).find(|&i| {
        !placed[i]
            && matches!(ops[i].outcome, Outcome::Ok | Outcome::Mismatch)
            && ops[i].ret().is_some()
    }) {
        return Err(bug(i, "it leaves out an op that completed".to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{pair, Event, EventType, Process};
    use crate::model::register::Register;
    use serde_json::{json, Value};

    /// p0 writes 1, then p1 reads 1, then p0 writes 2 (all sequential), and p2 fails a write.
    fn history() -> Vec<Op> {
        let c = Process::Client;
        let events = vec![
            Event::new(c(0), EventType::Invoke, "write", json!(1)),
            Event::new(c(0), EventType::Ok, "write", json!(1)),
            Event::new(c(1), EventType::Invoke, "read", Value::Null),
            Event::new(c(1), EventType::Ok, "read", json!(1)),
            Event::new(c(0), EventType::Invoke, "write", json!(2)),
            Event::new(c(2), EventType::Invoke, "write", json!(3)),
            Event::new(c(0), EventType::Ok, "write", json!(2)),
            Event::new(c(2), EventType::Fail, "write", json!(3)),
        ];
        pair(&events).expect("pairs").ops
    }

    fn run(order: &[usize]) -> Result<(), ModelError> {
        let ops = history();
        let refs: Vec<&Op> = ops.iter().collect();
        let mut model = Register::compile_with(&refs, None, true).expect("compiles");
        replay(&mut model, &refs, order)
    }

    #[test]
    fn the_true_linearization_replays() {
        run(&[0, 1, 2]).expect("write 1, read 1, write 2 is a linearization");
    }

    #[test]
    fn a_tampered_linearization_is_caught() {
        let cases: [(&[usize], &str); 6] = [
            // The read moved before the write it saw: the model refuses it.
            (&[1, 0, 2], "read of 1 does not fit state no value"),
            // Write 2 moved before the read, which completed before write 2 was invoked.
            (&[0, 2, 1], "invoked after it completed"),
            (&[0, 1], "leaves out an op that completed"),
            (&[0, 1, 1, 2], "places the op twice"),
            (&[0, 1, 2, 3], "places an op that failed"),
            (&[0, 1, 9], "names op number 9"),
        ];
        for (order, want) in cases {
            let err = run(order).expect_err("a tampered order must not replay");
            let text = err.to_string();
            assert!(text.contains("checker bug"), "{order:?}: {text}");
            assert!(text.contains(want), "{order:?}: {text} lacks {want:?}");
        }
    }
}
