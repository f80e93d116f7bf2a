//! The `register` (read/write) and `cas-register` (read/write/cas) models.
//!
//! One file for both because cas-register is register plus one op; `allow_cas` is the only
//! difference. The state is the interned value the register holds, [`NO_VALUE`] before any
//! write (unless `--initial` says otherwise), so a step is an integer compare.
//!
//! A `cas` that completed `fail` with `error: "mismatch"` (HISTORY.md) did not write, but saw
//! the register *not* holding `expected` at some instant of its interval: it is a read-like op
//! that steps iff the state differs from `expected`. A `mismatch` on any other op says nothing
//! we can use and is treated as a plain fail (it did not happen).

use super::intern::{show, Interner};
use super::{error, Model, ModelError, StateId};
use crate::history::{Op, Outcome};
use serde_json::Value;

/// The state of a register that holds no value.
pub const NO_VALUE: StateId = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegOp {
    /// Never stepped: a `fail` op.
    Nop,
    Read(StateId),
    /// A read whose value is unknown (an `info` read).
    ReadAny,
    Write(u32),
    Cas(StateId, u32),
    /// A cas that saw its expected value absent.
    Mismatch(StateId),
}

/// A read/write (and optionally cas) register.
#[derive(Debug, Clone)]
pub struct Register {
    values: Interner,
    ops: Vec<RegOp>,
    /// `observed` answers, one slot per op (empty or one value).
    seen: Vec<[u32; 1]>,
    /// For each value id, the ops that install it (write, or cas's new value).
    writers: Vec<Vec<usize>>,
    /// For each op, the value a write tried to write, even one that failed ([`NO_VALUE`] for
    /// other ops): a prefix of the history makes a write still pending `info`.
    tried: Vec<StateId>,
    initial: StateId,
}

impl Register {
    /// Compile for `register` (`allow_cas` false) or `cas-register` (true).
    pub fn compile_with(
        ops: &[&Op],
        initial: Option<&Value>,
        allow_cas: bool,
    ) -> Result<Register, ModelError> {
        let mut values = Interner::new();
        let initial = match initial {
            None | Some(Value::Null) => NO_VALUE,
            Some(v) => values.intern(v),
        };
        let mut compiled = Vec::with_capacity(ops.len());
        let mut seen = Vec::with_capacity(ops.len());
        let mut writers: Vec<Vec<usize>> = Vec::new();
        let mut tried = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let c = compile_op(op, &mut values, allow_cas)?;
            tried.push(match c {
                RegOp::Write(v) => v,
                // A failed write compiles to nothing; its value still counts for `tried`.
                _ if op.f == "write" => values.intern(&op.input),
                _ => NO_VALUE,
            });
            if let RegOp::Write(v) | RegOp::Cas(_, v) = c {
                if writers.len() <= v as usize {
                    writers.resize(v as usize + 1, Vec::new());
                }
                writers[v as usize].push(i);
            }
            seen.push(match c {
                RegOp::Read(v) | RegOp::Cas(v, _) => [v],
                _ => [NO_VALUE],
            });
            compiled.push(c);
        }
        Ok(Register {
            values,
            ops: compiled,
            seen,
            writers,
            tried,
            initial,
        })
    }

    fn show(&self, v: StateId) -> String {
        if v == NO_VALUE {
            "no value".to_string()
        } else {
            show(self.values.value(v))
        }
    }

    fn show_value(&self, v: StateId) -> String {
        if v == NO_VALUE {
            "null".to_string()
        } else {
            show(self.values.value(v))
        }
    }
}

fn value_or_none(values: &mut Interner, v: &Value) -> StateId {
    if v.is_null() {
        NO_VALUE
    } else {
        values.intern(v)
    }
}

fn compile_op(op: &Op, values: &mut Interner, allow_cas: bool) -> Result<RegOp, ModelError> {
    let ops = if allow_cas {
        "read, write or cas"
    } else {
        "read or write"
    };
    let outcome = match (op.outcome, op.f.as_str()) {
        (Outcome::Mismatch, "cas") => Outcome::Mismatch,
        (Outcome::Mismatch, _) => Outcome::Fail,
        (o, _) => o,
    };
    match op.f.as_str() {
        "read" => Ok(match outcome {
            Outcome::Ok => RegOp::Read(value_or_none(values, &op.output)),
            Outcome::Info => RegOp::ReadAny,
            _ => RegOp::Nop,
        }),
        "write" => {
            if op.input.is_null() {
                return Err(error(op, "write of null; expected a value to write"));
            }
            if outcome == Outcome::Ok && !op.output.is_null() && op.output != op.input {
                return Err(error(
                    op,
                    format!(
                        "write of {} completed with value {}; expected the value written",
                        show(&op.input),
                        show(&op.output)
                    ),
                ));
            }
            let v = values.intern(&op.input);
            Ok(match outcome {
                Outcome::Fail => RegOp::Nop,
                _ => RegOp::Write(v),
            })
        }
        "cas" if allow_cas => {
            let pair = match &op.input {
                Value::Array(a) if a.len() == 2 && !a[1].is_null() => a,
                other => {
                    return Err(error(
                        op,
                        format!(
                            "cas with value {}; expected [expected, new] with new not null",
                            show(other)
                        ),
                    ))
                }
            };
            let expected = value_or_none(values, &pair[0]);
            let new = values.intern(&pair[1]);
            Ok(match outcome {
                Outcome::Fail => RegOp::Nop,
                Outcome::Mismatch => RegOp::Mismatch(expected),
                _ => RegOp::Cas(expected, new),
            })
        }
        other => Err(error(
            op,
            format!("op {other:?} does not fit the model; expected {ops}"),
        )),
    }
}

impl Model for Register {
    fn compile(ops: &[&Op], initial: Option<&Value>) -> Result<Self, ModelError> {
        Register::compile_with(ops, initial, true)
    }

    fn init(&mut self) -> StateId {
        self.initial
    }

    #[inline]
    fn step(&mut self, state: StateId, op: usize) -> Option<StateId> {
        match self.ops[op] {
            RegOp::Nop | RegOp::ReadAny => Some(state),
            RegOp::Read(v) => (v == state).then_some(state),
            RegOp::Write(v) => Some(v),
            RegOp::Cas(e, n) => (e == state).then_some(n),
            RegOp::Mismatch(e) => (e != state).then_some(state),
        }
    }

    /// A read (or cas) of `v` can still be placed only if the register holds `v` now or an
    /// op that writes `v` is still to come.
    fn viable<F: Fn(usize) -> bool>(&self, state: StateId, op: usize, available: F) -> bool {
        let v = match self.ops[op] {
            RegOp::Read(v) | RegOp::Cas(v, _) => v,
            _ => return true,
        };
        state == v
            || self
                .writers
                .get(v as usize)
                .is_some_and(|ws| ws.iter().any(|&w| w != op && available(w)))
    }

    fn describe_op(&self, op: usize) -> String {
        match self.ops[op] {
            RegOp::Nop => "failed op".to_string(),
            RegOp::Read(v) => format!("read of {}", self.show_value(v)),
            RegOp::ReadAny => "read".to_string(),
            RegOp::Write(v) => format!("write {}", self.show_value(v)),
            RegOp::Cas(e, n) => {
                format!("cas from {} to {}", self.show_value(e), self.show_value(n))
            }
            RegOp::Mismatch(e) => format!("cas expecting {} (mismatch)", self.show_value(e)),
        }
    }

    fn describe_state(&self, state: StateId) -> String {
        self.show(state)
    }

    fn is_read_only(&self, op: usize) -> bool {
        matches!(
            self.ops[op],
            RegOp::Nop | RegOp::Read(_) | RegOp::ReadAny | RegOp::Mismatch(_)
        )
    }

    fn written(&self, op: usize) -> Option<u32> {
        match self.ops[op] {
            RegOp::Write(v) | RegOp::Cas(_, v) => Some(v),
            _ => None,
        }
    }

    fn observed(&self, op: usize) -> &[u32] {
        match self.ops[op] {
            RegOp::Read(v) | RegOp::Cas(v, _) if v != NO_VALUE => &self.seen[op],
            _ => &[],
        }
    }

    fn observes_absence(&self, op: usize) -> bool {
        matches!(self.ops[op], RegOp::Mismatch(_))
    }

    fn same_effect(&self, a: usize, b: usize) -> bool {
        self.ops[a] == self.ops[b]
    }

    fn initial_value(&self) -> Option<u32> {
        (self.initial != NO_VALUE).then_some(self.initial)
    }
}

impl Register {
    /// The value an `ok` read returned ([`NO_VALUE`] for `null`); `None` for any other op.
    /// The zone check (`linear::zones`) groups reads by it, `null` included, which
    /// [`Model::observed`] leaves out.
    pub fn read_value(&self, op: usize) -> Option<StateId> {
        match self.ops[op] {
            RegOp::Read(v) => Some(v),
            _ => None,
        }
    }

    /// The value write `op` tried to write, whatever its outcome; `None` if it is no write.
    pub fn tried(&self, op: usize) -> Option<u32> {
        let v = self.tried[op];
        (v != NO_VALUE).then_some(v)
    }

    /// How many distinct values were interned: value ids are `0..value_count()`.
    pub fn value_count(&self) -> usize {
        self.values.len()
    }
}
