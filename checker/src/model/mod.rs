//! Sequential specifications (models) the linearizability search checks against.
//!
//! A model sees the ops of one key once, up front ([`Model::compile`]): it validates them
//! (an op that does not fit is a [`ModelError`] naming the op and what was expected) and turns
//! every JSON value into a small integer, so the search's hot loop only ever moves `u32`s.
//! States are interned too: a [`StateId`] names a state, and two equal states always have the
//! same id, which is what lets the search's cache compare states by one integer compare.
//!
//! - [`register`]: `register` (read/write) and `cas-register` (read/write/cas, with
//!   HISTORY.md's `mismatch` fail): one file, because cas-register is register plus one op.
//! - [`kv`]: Porcupine's kv model: get/put/append of strings, from the empty string.
//! - [`set`]: add/read of a set, reads returning sorted arrays.
//! - [`intern`]: JSON values to small integers.
//!
//! A new model is one new file implementing [`Model`], plus one arm in `linear::check`.

pub mod intern;
pub mod kv;
pub mod register;
pub mod set;

use crate::history::Op;
pub use crate::linear::ModelError;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// An interned model state: equal states have equal ids.
pub type StateId = u32;

/// The sequential specification of one key's object.
///
/// Op numbers (`op: usize`) are positions in the slice given to [`Model::compile`].
pub trait Model: Sized + Send {
    /// Validate and compile the ops of one key (in invoke order). Ops whose outcome is
    /// `Fail` are still validated but never stepped. `initial` is the user's starting value,
    /// if any.
    fn compile(ops: &[&Op], initial: Option<&Value>) -> Result<Self, ModelError>;

    /// The state before any op.
    fn init(&mut self) -> StateId;

    /// Apply op `op` in state `state`: the next state, or `None` if the op's observed outcome
    /// is impossible in that state. Called in the hot loop: models memoise anything that
    /// allocates.
    fn step(&mut self, state: StateId, op: usize) -> Option<StateId>;

    /// The op in words, for sentences: "read of 3", "write 5", "cas from 1 to 2".
    fn describe_op(&self, op: usize) -> String;

    /// A state in words: "3", "no value", "\"x 1 y\"".
    fn describe_state(&self, state: StateId) -> String;

    /// Whether an `info` form of this op can be dropped outright because it cannot change the
    /// state (a read): an unknown read constrains nothing.
    fn is_read_only(&self, op: usize) -> bool;

    /// The interned value this op installs, when the model's values can be told apart by
    /// what was written (register writes, cas's new value, a set's added element).
    fn written(&self, op: usize) -> Option<u32>;

    /// The interned values this op, completed `ok`, saw present (a register read's value, a
    /// cas's expected value, a set read's elements).
    fn observed(&self, op: usize) -> &[u32];

    /// Whether this op observes the *absence* of a value (a `mismatch` cas). Such ops can be
    /// satisfied by a write nobody reads, so they stop info writes from being dropped.
    fn observes_absence(&self, op: usize) -> bool;

    /// The interned starting value, if it counts as a write for uniqueness.
    fn initial_value(&self) -> Option<u32>;

    /// Whether op `op` could still be placed after some future steps from `state`, when the
    /// ops for which `available` is true are the ones not yet placed. Must never answer
    /// `false` wrongly (it prunes the search); `true` is always safe.
    fn viable<F: Fn(usize) -> bool>(&self, state: StateId, op: usize, available: F) -> bool {
        let _ = (state, op, available);
        true
    }

    /// Bytes the model's memo tables hold (counted against the search's memory bound).
    fn bytes(&self) -> usize {
        0
    }

    /// Whether ops `a` and `b` step identically in every state (same kind, same values). The
    /// search uses it to try only one of several identical pending `info` ops.
    fn same_effect(&self, a: usize, b: usize) -> bool;
}

/// The models `--model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// read/write.
    Register,
    /// read/write/cas, with HISTORY.md's `mismatch` fail (the default).
    CasRegister,
    /// Porcupine's kv: get/put/append of strings, from the empty string.
    Kv,
    /// add/read of a set.
    Set,
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "register" => Ok(ModelKind::Register),
            "cas-register" => Ok(ModelKind::CasRegister),
            "kv" => Ok(ModelKind::Kv),
            "set" => Ok(ModelKind::Set),
            other => Err(format!(
                "unknown model {other:?}; expected cas-register, register, kv or set"
            )),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Set => "set",
        })
    }
}

/// A [`ModelError`] for `op`.
pub(crate) fn error(op: &Op, message: impl Into<String>) -> ModelError {
    ModelError {
        op: op.id,
        line: op.call + 1,
        message: message.into(),
    }
}
