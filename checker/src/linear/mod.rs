//! The linearizability check: per key, in parallel, the zone check or a memoised depth-first
//! search.
//!
//! Linearizability is compositional (Herlihy & Wing's locality, "P-compositionality"): a
//! history is linearizable iff each key's sub-history is. So [`check`] splits the history by
//! key and judges keys independently, in parallel (rayon), each with its own time and memory
//! budget: a key that runs out is `unknown` and the others still get verdicts.
//!
//! Each key takes one of two paths ([`Path`], recorded in its result): a read/write register
//! key whose written values are unique (no `cas`, no value written twice, the starting value
//! never written) goes to [`zones`], exact and O(n log n) at any concurrency; every other key
//! (cas, repeated values, the kv and set models) to the general [`search`].
//!
//! - [`zones`]: the zone check (algorithm note there).
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
pub mod zones;

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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LinearOptions {
    pub model: ModelKind,
    /// A register's starting value (`None`: no value, so a read of `null` matches it).
    pub initial: Option<Value>,
    /// Checking budget per key.
    pub time_limit: Duration,
    /// Memory budget per key for the search's cache (or the zone check's tables), in bytes.
    pub memory_limit: usize,
    /// Counters [`check`] keeps up to date as keys are decided, for a progress display.
    pub progress: Option<Arc<Progress>>,
}

/// How far a [`check`] has got, updated as each key is done (read it from another thread).
#[derive(Debug, Default)]
pub struct Progress {
    /// Keys to check (set when the check starts).
    pub keys: AtomicUsize,
    /// Keys with a verdict or given up on so far.
    pub done: AtomicUsize,
    /// Of those, the ones `unknown`.
    pub unknown: AtomicUsize,
}

impl Progress {
    /// (keys done, keys in all, unknown so far).
    pub fn snapshot(&self) -> (usize, usize, usize) {
        (
            self.done.load(Ordering::Relaxed),
            self.keys.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
        )
    }
}

/// Which algorithm decided a key (`"path"` in its JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// [`zones`]: a read/write register with unique values.
    Zones,
    /// [`search`]: everything else.
    Search,
}

impl Default for LinearOptions {
    fn default() -> Self {
        LinearOptions {
            model: ModelKind::CasRegister,
            initial: None,
            time_limit: Duration::from_secs(60),
            memory_limit: 512 << 20,
            progress: None,
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
    /// Which algorithm decided it.
    pub path: Path,
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
    if let Some(p) = &opts.progress {
        p.keys.fetch_add(keys.len(), Ordering::Relaxed);
    }
    let one = |(k, ops): &(&str, Vec<&Op>)| {
        let r = check_key(ops, opts);
        if let Some(p) = &opts.progress {
            if matches!(&r, Ok(r) if r.valid == Verdict::Unknown) {
                p.unknown.fetch_add(1, Ordering::Relaxed);
            }
            p.done.fetch_add(1, Ordering::Relaxed);
        }
        r.map(|r| (k.to_string(), r))
    };
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

/// Check one key's ops (in invoke order) against `opts.model`, on the path that fits it.
pub fn check_key(ops: &[&Op], opts: &LinearOptions) -> Result<KeyResult, ModelError> {
    check_key_on(ops, opts, None)
}

/// [`check_key`] on the path given (`None`: the one that fits). Forcing [`Path::Zones`] on a
/// key it does not apply to is an error naming why; [`Path::Search`] fits every key (the
/// cross-checks run both).
pub fn check_key_on(
    ops: &[&Op],
    opts: &LinearOptions,
    path: Option<Path>,
) -> Result<KeyResult, ModelError> {
    let initial = opts.initial.as_ref();
    let allow_cas = match opts.model {
        ModelKind::Register => false,
        ModelKind::CasRegister => true,
        ModelKind::Kv => return judge(ops, opts, path, &|o| Kv::compile(o, initial)),
        ModelKind::Set => return judge(ops, opts, path, &|o| Set::compile(o, initial)),
    };
    let compile = |o: &[&Op]| Register::compile_with(o, initial, allow_cas);
    if path == Some(Path::Search) {
        return judge(ops, opts, path, &compile);
    }
    let model = compile(ops)?;
    match zones::applies(ops, &model) {
        Ok(()) => zone_judge(ops, &model, &limits(opts)),
        Err(_) if path.is_none() => search_judge(ops, opts, model, &compile),
        Err(why) => Err(not_zones(ops, opts.model, &why)),
    }
}

/// The error for a key forced onto the zone path that does not fit it.
fn not_zones(ops: &[&Op], model: ModelKind, why: &str) -> ModelError {
    ModelError {
        op: ops.first().map_or(0, |o| o.id),
        line: ops.first().map_or(0, |o| o.call + 1),
        message: format!(
            "the zone check does not apply to this key: {why}; expected a {model} key of reads \
             and writes whose written values are unique"
        ),
    }
}

fn limits(opts: &LinearOptions) -> Limits {
    Limits {
        start: Instant::now(),
        time: opts.time_limit,
        memory: opts.memory_limit,
    }
}

/// Compiles a model for some ops of one key.
pub(crate) type Compile<'a, M> = &'a dyn Fn(&[&Op]) -> Result<M, ModelError>;

fn judge<M: Model>(
    ops: &[&Op],
    opts: &LinearOptions,
    path: Option<Path>,
    compile: Compile<'_, M>,
) -> Result<KeyResult, ModelError> {
    if path == Some(Path::Zones) {
        return Err(not_zones(ops, opts.model, "only register keys can take it"));
    }
    search_judge(ops, opts, compile(ops)?, compile)
}

/// A key on the search path, `model` compiled for its ops.
fn search_judge<M: Model>(
    ops: &[&Op],
    opts: &LinearOptions,
    mut model: M,
    compile: Compile<'_, M>,
) -> Result<KeyResult, ModelError> {
    let limits = limits(opts);
    let plan = Plan::new(ops, &model);
    let mut result = KeyResult {
        valid: Verdict::Valid,
        ops: ops.len(),
        path: Path::Search,
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

/// A key on the zone path: its verdict, the linearization replayed before it is called valid,
/// or the counterexample of its shortest failing prefix.
fn zone_judge(ops: &[&Op], model: &Register, limits: &Limits) -> Result<KeyResult, ModelError> {
    let (zoned, counts) = zones::check(model, ops, usize::MAX, limits);
    let mut result = KeyResult {
        valid: Verdict::Valid,
        ops: ops.len(),
        path: Path::Zones,
        counterexample: None,
        reason: None,
        linearization: None,
        info_dropped: counts.dropped_info,
        info_tightened: counts.tightened_info,
    };
    match zoned {
        zones::Zoned::Linearizable(order) => {
            // The same second look as the search's: a wrong zone rule must not become a
            // verdict. The register model steps without memo tables, so a copy is as fresh.
            replay::replay(&mut model.clone(), ops, &order)?;
            result.linearization = Some(order.iter().map(|&i| ops[i].id).collect());
        }
        zones::Zoned::GaveUp(reason) => {
            result.valid = Verdict::Unknown;
            result.reason = Some(reason);
        }
        zones::Zoned::NotLinearizable(_) => {
            result.valid = Verdict::Invalid;
            result.counterexample = Some(shortest::zone_counterexample(ops, model, limits));
        }
    }
    Ok(result)
}
