//! The `set` model: `add` of an element, `read` returning the sorted array of elements.
//!
//! The state is an interned sorted list of element ids. `add` builds a new list, so each
//! (state, element) step is memoised like kv's appends; a read compares one interned id.

use super::intern::{show, FastMap, Interner};
use super::{error, Model, ModelError, StateId};
use crate::history::{Op, Outcome};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum SetOp {
    Nop,
    /// The interned state the read saw, and its elements (for `observed`).
    Read(StateId, Vec<u32>),
    Add(u32),
}

/// A grow-only set.
#[derive(Debug, Clone)]
pub struct Set {
    elements: Interner,
    states: Vec<Vec<u32>>,
    state_ids: FastMap<Vec<u32>, StateId>,
    ops: Vec<SetOp>,
    added: FastMap<(StateId, u32), StateId>,
    /// For each element, the ops that add it.
    adders: FastMap<u32, Vec<usize>>,
    initial: StateId,
}

impl Set {
    fn intern_state(&mut self, mut elems: Vec<u32>) -> StateId {
        elems.sort_unstable();
        elems.dedup();
        if let Some(&id) = self.state_ids.get(&elems) {
            return id;
        }
        let id = self.states.len() as StateId;
        self.states.push(elems.clone());
        self.state_ids.insert(elems, id);
        id
    }

    fn elements_of(&mut self, op: &Op, v: &Value, what: &str) -> Result<Vec<u32>, ModelError> {
        match v {
            Value::Array(a) => Ok(a.iter().map(|e| self.elements.intern(e)).collect()),
            Value::Null => Ok(Vec::new()),
            other => Err(error(
                op,
                format!("set {what} {}; expected an array of elements", show(other)),
            )),
        }
    }
}

impl Model for Set {
    fn compile(ops: &[&Op], initial: Option<&Value>) -> Result<Self, ModelError> {
        let mut set = Set {
            elements: Interner::new(),
            states: Vec::new(),
            state_ids: FastMap::default(),
            ops: Vec::with_capacity(ops.len()),
            added: FastMap::default(),
            adders: FastMap::default(),
            initial: 0,
        };
        let init = match (ops.first(), initial) {
            (Some(op), Some(v)) => set.elements_of(op, v, "initial value")?,
            _ => Vec::new(),
        };
        set.initial = set.intern_state(init);
        for op in ops {
            let c = match (op.f.as_str(), op.outcome) {
                ("read" | "add", Outcome::Fail | Outcome::Mismatch) => SetOp::Nop,
                ("read", Outcome::Info) => SetOp::Nop,
                ("read", _) => {
                    let mut elems = set.elements_of(op, &op.output, "read of")?;
                    let id = set.intern_state(elems.clone());
                    elems.sort_unstable();
                    elems.dedup();
                    SetOp::Read(id, elems)
                }
                ("add", _) => {
                    if op.input.is_null() {
                        return Err(error(op, "add of null; expected an element"));
                    }
                    let e = set.elements.intern(&op.input);
                    set.adders.entry(e).or_default().push(set.ops.len());
                    SetOp::Add(e)
                }
                (other, _) => {
                    return Err(error(
                        op,
                        format!("op {other:?} does not fit the set model; expected add or read"),
                    ))
                }
            };
            set.ops.push(c);
        }
        Ok(set)
    }

    fn init(&mut self) -> StateId {
        self.initial
    }

    #[inline]
    fn step(&mut self, state: StateId, op: usize) -> Option<StateId> {
        match &self.ops[op] {
            SetOp::Nop => Some(state),
            SetOp::Read(v, _) => (*v == state).then_some(state),
            &SetOp::Add(e) => {
                if let Some(&next) = self.added.get(&(state, e)) {
                    return Some(next);
                }
                let mut elems = self.states[state as usize].clone();
                elems.push(e);
                let next = self.intern_state(elems);
                self.added.insert((state, e), next);
                Some(next)
            }
        }
    }

    /// The set only grows: a read of `R` can still be placed only if the state is a subset of
    /// `R` and every element of `R` not yet in it has an add still to come.
    fn viable<F: Fn(usize) -> bool>(&self, state: StateId, op: usize, available: F) -> bool {
        let SetOp::Read(_, want) = &self.ops[op] else {
            return true;
        };
        let have = &self.states[state as usize];
        let mut h = have.iter().peekable();
        for &w in want {
            if h.peek().is_some_and(|&&x| x < w) {
                return false; // the state holds an element the read lacks
            }
            if h.next_if(|&&x| x == w).is_none()
                && !self
                    .adders
                    .get(&w)
                    .is_some_and(|a| a.iter().any(|&o| available(o)))
            {
                return false;
            }
        }
        h.next().is_none()
    }

    fn describe_op(&self, op: usize) -> String {
        match &self.ops[op] {
            SetOp::Nop => "failed op".to_string(),
            SetOp::Read(v, _) => format!("read of {}", self.describe_state(*v)),
            SetOp::Add(e) => format!("add {}", show(self.elements.value(*e))),
        }
    }

    fn describe_state(&self, state: StateId) -> String {
        let elems: Vec<String> = self.states[state as usize]
            .iter()
            .map(|&e| show(self.elements.value(e)))
            .collect();
        format!("[{}]", elems.join(","))
    }

    fn is_read_only(&self, op: usize) -> bool {
        !matches!(self.ops[op], SetOp::Add(_))
    }

    fn written(&self, op: usize) -> Option<u32> {
        // An element the set starts with is not named by its add alone.
        match self.ops[op] {
            SetOp::Add(e) if !self.states[self.initial as usize].contains(&e) => Some(e),
            _ => None,
        }
    }

    fn observed(&self, op: usize) -> &[u32] {
        match &self.ops[op] {
            SetOp::Read(_, elems) => elems,
            _ => &[],
        }
    }

    fn observes_absence(&self, op: usize) -> bool {
        // A read that lacks an element observes its absence, but removing an add nobody saw
        // only removes an element no read contains, so dropping it never breaks a read.
        let _ = op;
        false
    }

    fn bytes(&self) -> usize {
        let elems: usize = self.states.iter().map(|s| s.capacity() * 4 * 2 + 64).sum();
        elems + self.added.capacity() * 16
    }

    fn same_effect(&self, a: usize, b: usize) -> bool {
        self.ops[a] == self.ops[b]
    }

    fn initial_value(&self) -> Option<u32> {
        None
    }
}
