//! The linearizability check: per key, in parallel, a memoised depth-first search.
//!
//! Linearizability is compositional (Herlihy & Wing's locality, "P-compositionality"): a
//! history is linearizable iff each key's sub-history is. So [`check`] splits the history by
//! key and judges keys independently, in parallel (rayon), each with its own time and memory
//! budget: a key that runs out is `unknown` and the others still get verdicts.
//!
//! - [`plan`]: one key's ops as intervals; `info` ops made optional, dropped or tightened.
//! - [`search`]: the memoised depth-first search (algorithm note there), which also says how
//!   far into the history it got.
//! - [`cache`]: the configurations seen (bitsets with Zobrist hashes, stored exactly).
//! - [`replay`]: a valid verdict's linearization, run again through a fresh model and the
//!   real-time order before the key is called valid.
//! - [`shortest`]: the shortest failing prefix, for the counterexample.
//! - [`explain`]: the counterexample's sentence.
//!
//! For every invalid key, the [`Counterexample`] comes from a few more searches of prefixes of
//! that key, one at a time and under the same budget: memory stays bounded by the per-key
//! cache budget whatever the number of invalid keys, and the key's time limit covers them.

pub mod cache;
pub mod explain;
pub mod plan;
pub mod replay;
pub mod search;
pub mod shortest;

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
/// A malformed history is an error; a violation is a verdict. Also a checker bug found by
/// [`replay`] (a linearization that does not replay; the message starts "checker bug"),
/// which must not become a verdict either.
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
    let one = |(k, ops): &(&str, Vec<&Op>)| check_key(ops, opts).map(|r| (k.to_string(), r));
    // One key gains nothing from the pool, and handing it to a worker and back costs more
    // than checking a small history.
    let results: Vec<Result<(String, KeyResult), ModelError>> = if keys.len() == 1 {
        keys.iter().map(one).collect()
    } else {
        keys.par_iter().map(one).collect()
    };
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
        ModelKind::Register => judge(ops, opts, &|o| Register::compile_with(o, initial, false)),
        ModelKind::CasRegister => judge(ops, opts, &|o| Register::compile_with(o, initial, true)),
        ModelKind::Kv => judge(ops, opts, &|o| Kv::compile(o, initial)),
        ModelKind::Set => judge(ops, opts, &|o| Set::compile(o, initial)),
    }
}

/// Compiles a model for some ops of one key.
pub(crate) type Compile<'a, M> = &'a dyn Fn(&[&Op]) -> Result<M, ModelError>;

fn judge<M: Model>(
    ops: &[&Op],
    opts: &LinearOptions,
    compile: Compile<'_, M>,
) -> Result<KeyResult, ModelError> {
    let mut model = compile(ops)?;
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
            // A second, plain look before saying valid: a pruning bug must not become a verdict.
            replay::replay(&mut compile(ops)?, ops, &order)?;
            result.linearization = Some(order.iter().map(|&i| ops[i].id).collect());
        }
        Found::GaveUp(reason) => {
            result.valid = Verdict::Unknown;
            result.reason = Some(reason);
        }
        Found::NotLinearizable(failure) => {
            result.valid = Verdict::Invalid;
            result.counterexample = Some(shortest::counterexample(ops, compile, failure, &limits));
        }
    }
    Ok(result)
}
