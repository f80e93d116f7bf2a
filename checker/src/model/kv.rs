//! Porcupine's kv model, for one key: `get`, `put` and `append` of strings, from `""`.
//!
//! The state is an interned string. `append` builds a new string, which allocates, so each
//! (state, append) step is computed once and memoised: the search retries the same step many
//! times, and after the first it is a hash lookup.
//!
//! States no get can ever read are one state, [`GARBAGE`]: a string that is no prefix of any
//! value a get returned stays so under appends (a prefix of `s + a` would make `s` one too),
//! so from it every get fails, every append leaves it garbage, and only a put leaves it. Two
//! garbage strings therefore have the same future, and merging them is what stops concurrent
//! appends that a later put overwrites from multiplying states by their orders.

use super::intern::{show, FastMap, Interner};
use super::{error, Model, ModelError, StateId};
use crate::history::{Op, Outcome};
use serde_json::Value;

/// Every string no get read a prefix of (see the module note).
pub const GARBAGE: StateId = u32::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KvOp {
    Nop,
    Get(StateId),
    GetAny,
    Put(StateId),
    /// The interned suffix (not a state until appended).
    Append(u32),
}

/// One key of a string key-value store.
#[derive(Debug, Clone)]
pub struct Kv {
    /// States and appended suffixes share one interner of strings.
    strings: Interner,
    ops: Vec<KvOp>,
    appended: FastMap<(StateId, u32), StateId>,
    /// For each get, the puts whose string starts the string it read: the only ops that can
    /// bring the key back to it once the state is no prefix of it.
    resets: Vec<Vec<usize>>,
    /// The values gets returned, sorted: a string is live iff it is a prefix of one.
    reads: Vec<String>,
    /// For each put, the state it leaves: its string, or [`GARBAGE`].
    put_target: Vec<StateId>,
    initial: StateId,
}

/// Whether `s` is a prefix of one of the sorted `reads`.
fn live(reads: &[String], s: &str) -> bool {
    let i = reads.partition_point(|r| r.as_str() < s);
    reads.get(i).is_some_and(|r| r.starts_with(s))
}

fn string<'a>(op: &Op, v: &'a Value, what: &str) -> Result<&'a str, ModelError> {
    v.as_str().ok_or_else(|| {
        error(
            op,
            format!("{} with {} {}; expected a string", op.f, what, show(v)),
        )
    })
}

impl Model for Kv {
    fn compile(ops: &[&Op], initial: Option<&Value>) -> Result<Self, ModelError> {
        let mut strings = Interner::new();
        let initial = match initial {
            Some(Value::String(s)) => strings.intern_str(s),
            _ => strings.intern_str(""),
        };
        let mut compiled = Vec::with_capacity(ops.len());
        for op in ops {
            let done = op.outcome == Outcome::Ok;
            let c = match (op.f.as_str(), op.outcome) {
                (_, Outcome::Fail | Outcome::Mismatch) => KvOp::Nop,
                ("get", Outcome::Info) => KvOp::GetAny,
                ("get", _) => {
                    // Porcupine's logs print a missing key's get as nil: the empty string.
                    let s = if op.output.is_null() {
                        ""
                    } else {
                        string(op, &op.output, "output")?
                    };
                    KvOp::Get(strings.intern_str(s))
                }
                ("put", _) => KvOp::Put(strings.intern_str(string(op, &op.input, "value")?)),
                ("append", _) => KvOp::Append(strings.intern_str(string(op, &op.input, "value")?)),
                (other, _) => {
                    return Err(error(
                        op,
                        format!(
                            "op {other:?} does not fit the kv model; expected get, put or append"
                        ),
                    ))
                }
            };
            let _ = done;
            compiled.push(c);
        }
        let puts: Vec<(usize, u32)> = compiled
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                KvOp::Put(v) => Some((i, *v)),
                _ => None,
            })
            .collect();
        let text = |id: u32| strings.value(id).as_str().unwrap_or_default();
        let mut reads: Vec<String> = compiled
            .iter()
            .filter_map(|c| match c {
                KvOp::Get(t) => Some(text(*t).to_string()),
                _ => None,
            })
            .collect();
        reads.sort_unstable();
        reads.dedup();
        let resets = compiled
            .iter()
            .map(|c| match c {
                KvOp::Get(t) => puts
                    .iter()
                    .filter(|&&(_, p)| text(*t).starts_with(text(p)))
                    .map(|&(i, _)| i)
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        let put_target = compiled
            .iter()
            .map(|c| match c {
                KvOp::Put(v) if !live(&reads, text(*v)) => GARBAGE,
                KvOp::Put(v) => *v,
                _ => GARBAGE,
            })
            .collect();
        Ok(Kv {
            strings,
            ops: compiled,
            appended: FastMap::default(),
            resets,
            reads,
            put_target,
            initial,
        })
    }

    fn init(&mut self) -> StateId {
        self.initial
    }

    #[inline]
    fn step(&mut self, state: StateId, op: usize) -> Option<StateId> {
        match self.ops[op] {
            KvOp::Nop | KvOp::GetAny => Some(state),
            KvOp::Get(v) => (v == state).then_some(state),
            KvOp::Put(_) => Some(self.put_target[op]),
            KvOp::Append(_) if state == GARBAGE => Some(GARBAGE),
            KvOp::Append(suffix) => {
                if let Some(&next) = self.appended.get(&(state, suffix)) {
                    return Some(next);
                }
                let joined = match (self.strings.value(state), self.strings.value(suffix)) {
                    (Value::String(a), Value::String(b)) => format!("{a}{b}"),
                    // Every id here was interned from a string by `compile`.
                    _ => unreachable!("kv states are strings"),
                };
                let next = if live(&self.reads, &joined) {
                    self.strings.intern_str(&joined)
                } else {
                    GARBAGE
                };
                self.appended.insert((state, suffix), next);
                Some(next)
            }
        }
    }

    /// Appends only extend the string, so a get of `t` can still be placed only if the state
    /// is a prefix of `t`, or a put that starts `t` is still to come.
    fn viable<F: Fn(usize) -> bool>(&self, state: StateId, op: usize, available: F) -> bool {
        let KvOp::Get(t) = self.ops[op] else {
            return true;
        };
        let text = |id: u32| self.strings.value(id).as_str().unwrap_or_default();
        t == state
            || (state != GARBAGE && text(t).starts_with(text(state)))
            || self.resets[op].iter().any(|&p| available(p))
    }

    fn describe_op(&self, op: usize) -> String {
        let s = |id: u32| show(self.strings.value(id));
        match self.ops[op] {
            KvOp::Nop => "failed op".to_string(),
            KvOp::Get(v) => format!("get of {}", s(v)),
            KvOp::GetAny => "get".to_string(),
            KvOp::Put(v) => format!("put {}", s(v)),
            KvOp::Append(v) => format!("append {}", s(v)),
        }
    }

    fn describe_state(&self, state: StateId) -> String {
        if state == GARBAGE {
            return "a string no get read".to_string();
        }
        show(self.strings.value(state))
    }

    fn is_read_only(&self, op: usize) -> bool {
        matches!(self.ops[op], KvOp::Nop | KvOp::Get(_) | KvOp::GetAny)
    }

    /// Appends build on what is there, so no kv op names its state by itself: the info
    /// pruning that needs unique written values does not apply.
    fn written(&self, _op: usize) -> Option<u32> {
        None
    }

    fn observed(&self, _op: usize) -> &[u32] {
        &[]
    }

    fn observes_absence(&self, _op: usize) -> bool {
        false
    }

    fn bytes(&self) -> usize {
        self.strings.bytes() + self.appended.capacity() * 16
    }

    fn same_effect(&self, a: usize, b: usize) -> bool {
        self.ops[a] == self.ops[b]
    }

    fn initial_value(&self) -> Option<u32> {
        Some(self.initial)
    }
}
