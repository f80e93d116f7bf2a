//! The linearizability check: per key, in parallel, a memoised depth-first search.
//!
//! Linearizability is compositional (Herlihy & Wing's locality, "P-compositionality"): a
//! history is linearizable iff each key's sub-history is. So [`check`] splits the history by
//! key and judges keys independently, in parallel (rayon), each with its own time and memory
//! budget: a key that runs out is `unknown` and the others still get verdicts.
//!
//! - [`plan`]: one key's ops as intervals; `info` ops made optional, dropped or tightened.
//! - [`search`]: the memoised depth-first search (algorithm note there), which also finds
//!   where the shortest non-linearizable prefix ends.
//! - [`cache`]: the configurations seen (bitsets with Zobrist hashes, stored exactly).
//! - [`explain`]: the counterexample's sentence.
//!
//! For every invalid key, the [`Counterexample`] comes from the same search plus one search of
//! the prefix before the failing op (for its linearization): memory stays bounded by the
//! per-key cache budget whatever the number of invalid keys.

pub mod cache;
pub mod explain;
pub mod plan;
pub mod search;

use crate::history::{History, Op};
use crate::model::kv::Kv;
use crate::model::register::Register;
use crate::model::set::Set;
use crate::model::{Model, ModelKind};
use crate::verdict::Verdict;
use plan::Plan;
use rayon::prelude::*;
use search::{Found, Limits};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LinearOptions {
    pub model: ModelKind,
    /// A register's starting value (`None`: no value, so a read of `null` matches it).
    pub initial: Option<Value>,
    /// Checking budget per key.
    pub time_limit: Duration,
    /// Memory budget per key for the search's cache, in bytes.
    pub memory_limit: usize,
}

impl Default for LinearOptions {
    fn default() -> Self {
        LinearOptions {
            model: ModelKind::CasRegister,
            initial: None,
            time_limit: Duration::from_secs(60),
            memory_limit: 512 << 20,
        }
    }
}

/// Why a key is not linearizable (INTERFACES.md): the op that cannot be placed, ending the
/// shortest non-linearizable prefix; one linearization of the completed ops before it; a
/// sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counterexample {
    /// The op that cannot be placed (`Op::id`).
    pub op: u64,
    /// One linearization (`Op::id`s, in order) of the ops before `op`'s completion: every op
    /// that completed before it, plus the pending ops that must have taken effect for them.
    pub prefix: Vec<u64>,
    pub explanation: String,
    /// What the key could hold when `op` could take effect (model states in words, at most
    /// four), for reports. Not part of the JSON contract.
    #[serde(skip)]
    pub states: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyResult {
    pub valid: Verdict,
    /// Client invokes on this key.
    pub ops: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
    /// Why the verdict is unknown (e.g. "time limit 10 s").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a valid key: one linearization of its ops (`Op::id`s, in order; `info` ops that
    /// need not take effect are left out), for reports. Not part of the JSON contract.
    #[serde(skip)]
    pub linearization: Option<Vec<u64>>,
    /// `info` ops the search dropped (nothing could tell whether they happened) and made
    /// required (an op saw what they wrote). Not part of the JSON contract.
    #[serde(skip)]
    pub info_dropped: usize,
    #[serde(skip)]
    pub info_tightened: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinearResult {
    pub valid: Verdict,
    pub keys: BTreeMap<String, KeyResult>,
}

/// An op that does not fit the model (a `cas` under `register`, a `write` of `null` …).
/// A malformed history is an error; a violation is a verdict.
#[derive(Debug, Clone, thiserror::Error)]
#[error("op {op} (line {line}): {message}")]
pub struct ModelError {
    pub op: u64,
    pub line: usize,
    pub message: String,
}

/// Check every key of `history` against `opts.model`.
///
/// An op that does not fit the model is an `Err` naming the op (the first such op in key
/// order); a violation is a verdict.
pub fn check(history: &History, opts: &LinearOptions) -> Result<LinearResult, ModelError> {
    let keys: Vec<(&str, Vec<&Op>)> = history.by_key().into_iter().collect();
    let results: Vec<Result<(String, KeyResult), ModelError>> = keys
        .par_iter()
        .map(|(k, ops)| check_key(ops, opts).map(|r| (k.to_string(), r)))
        .collect();
    let mut out = BTreeMap::new();
    let mut valid = Verdict::Valid;
    for r in results {
        let (k, r) = r?;
        valid = valid.and(r.valid);
        out.insert(k, r);
    }
    Ok(LinearResult { valid, keys: out })
}

/// Check one key's ops (in invoke order) against `opts.model`.
pub fn check_key(ops: &[&Op], opts: &LinearOptions) -> Result<KeyResult, ModelError> {
    let initial = opts.initial.as_ref();
    match opts.model {
        ModelKind::Register => judge(Register::compile_with(ops, initial, false)?, ops, opts),
        ModelKind::CasRegister => judge(Register::compile_with(ops, initial, true)?, ops, opts),
        ModelKind::Kv => judge(Kv::compile(ops, initial)?, ops, opts),
        ModelKind::Set => judge(Set::compile(ops, initial)?, ops, opts),
    }
}

fn judge<M: Model>(
    mut model: M,
    ops: &[&Op],
    opts: &LinearOptions,
) -> Result<KeyResult, ModelError> {
    let limits = Limits {
        start: Instant::now(),
        time: opts.time_limit,
        memory: opts.memory_limit,
    };
    let plan = Plan::new(ops, &model);
    let mut result = KeyResult {
        valid: Verdict::Valid,
        ops: ops.len(),
        counterexample: None,
        reason: None,
        linearization: None,
        info_dropped: plan.dropped_info,
        info_tightened: plan.tightened_info,
    };
    match search::search(&mut model, &plan, &limits) {
        Found::Linearizable(order) => {
            result.linearization = Some(order.iter().map(|&i| ops[i].id).collect());
        }
        Found::GaveUp(reason) => {
            result.valid = Verdict::Unknown;
            result.reason = Some(reason);
        }
        Found::NotLinearizable(failure) => {
            result.valid = Verdict::Invalid;
            result.counterexample = Some(counterexample(&mut model, ops, &plan, failure, &limits));
        }
    }
    Ok(result)
}

/// The counterexample of an invalid key: find the first deadline `d` such that the history
/// cut after it is not linearizable (the cut before it is: the search got that far), then one
/// linearization of the cut before `d`.
///
/// The search's pruning (see `search`) may stop it short of the furthest configuration, so
/// its `failure.end` is only a lower bound: the cut before it is linearizable (a real
/// configuration got there). Deadlines from there on are tried, the first one directly (it is
/// almost always the answer), the rest by bisection; each try is a search of a prefix.
fn counterexample<M: Model>(
    model: &mut M,
    ops: &[&Op],
    plan: &Plan,
    failure: search::Failure,
    limits: &Limits,
) -> Counterexample {
    let mut deadlines: Vec<(u64, usize)> = plan
        .tasks
        .iter()
        .filter_map(|t| t.ret.map(|r| (r, t.op)))
        .collect();
    deadlines.sort_unstable();
    let lo = deadlines.partition_point(|&(r, _)| r < failure.end);
    // None: a search gave up; Some(f): the cut after deadline i is not linearizable.
    let bad = |i: usize, model: &mut M| -> Option<Option<search::Failure>> {
        match search::search(model, &plan.prefix(deadlines[i].0 + 1), limits) {
            Found::Linearizable(_) => Some(None),
            Found::NotLinearizable(f) => Some(Some(f)),
            Found::GaveUp(_) => None,
        }
    };
    let mut found: Option<(usize, search::Failure)> = None;
    if lo < deadlines.len() {
        match bad(lo, model) {
            Some(Some(f)) => found = Some((lo, f)),
            Some(None) => {
                // Invariant: the cut after `good` is linearizable, the one after `hi` is not.
                let (mut good, mut hi) = (lo, deadlines.len() - 1);
                let mut hi_failure = None;
                while hi > good + 1 {
                    let mid = good + (hi - good) / 2;
                    match bad(mid, model) {
                        Some(Some(f)) => {
                            hi = mid;
                            hi_failure = Some(f);
                        }
                        Some(None) => good = mid,
                        None => break,
                    }
                }
                if hi == good + 1 {
                    let f = match hi_failure {
                        Some(f) => Some(f),
                        None => bad(hi, model).flatten(),
                    };
                    found = f.map(|f| (hi, f));
                }
            }
            None => {}
        }
    }
    let (end, failing, states) = match found {
        Some((i, f)) => {
            let (end, op) = deadlines[i];
            let states = if f.op == op { f.states } else { Vec::new() };
            (end, op, states)
        }
        // A limit was reached: the search's own furthest point is still a true failing op
        // for the whole history, if not the earliest.
        None => (failure.end, failure.op, failure.states.clone()),
    };
    let mut before = plan.prefix(end);
    before.tasks.retain(|t| t.op != failing);
    let prefix = match search::search(model, &before, limits) {
        Found::Linearizable(order) => order.iter().map(|&i| ops[i].id).collect(),
        _ => Vec::new(),
    };
    let failure = search::Failure {
        op: failing,
        end,
        states,
    };
    Counterexample {
        op: ops[failing].id,
        prefix,
        explanation: explain::sentence(model, ops, &failure),
        states: failure
            .states
            .iter()
            .map(|&s| model.describe_state(s))
            .collect(),
    }
}
