//! Operations: invoke lines paired with their completions (HISTORY.md, Semantics).
//!
//! Every checker works on [`Op`]s, never on raw lines. Pairing is where the format's rules
//! live: one outstanding op per process; a completion matches its process's pending invoke with
//! the same `f` and key; an invoke never completed, or followed by another invoke of the same
//! process, is `info`; a `fail` with `error: "mismatch"` is an observation, not a non-event.

use super::event::{Event, EventType, Process};
use super::HistoryError;
use serde_json::Value;
use std::collections::BTreeMap;

/// How an op ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It happened; `Op::output` is its result.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// A `cas` whose expected value did not match: it did not write, but the register did not
    /// hold `expected` at some instant between invoke and completion.
    Mismatch,
    /// Unknown: it may take effect at any time after its invoke, or never.
    Info,
}

/// One client operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// The op's number: the `index` of its invoke line.
    pub id: u64,
    pub process: u64,
    pub f: String,
    /// `""` when the history has no keys.
    pub key: String,
    /// The invoke's value.
    pub input: Value,
    /// The `ok` completion's value; `Null` for other outcomes.
    pub output: Value,
    pub outcome: Outcome,
    /// Position (0-based line number among all events) of the invoke.
    pub call: usize,
    /// Position of the completion line, if any (an `info` op may have one or none).
    pub complete: Option<usize>,
    pub call_time: Option<i64>,
    pub complete_time: Option<i64>,
    /// The node the client talked to, from the completion (else the invoke).
    pub node: Option<String>,
    /// The version the store reported, from the completion.
    pub version: Option<Value>,
    /// The completion's error, if any.
    pub error: Option<String>,
}

impl Op {
    /// The position by which this op certainly took effect, if it did: the completion line for
    /// `ok`, `fail` and `mismatch`; `None` (the end of time) for `info`.
    pub fn ret(&self) -> Option<usize> {
        match self.outcome {
            Outcome::Info => None,
            _ => self.complete,
        }
    }
}

/// A history split into client ops (in invoke order) and the other events (nemesis and
/// harness lines, unchanged).
#[derive(Debug, Clone, Default)]
pub struct History {
    pub ops: Vec<Op>,
    pub other: Vec<Event>,
    /// How many events the file held.
    pub events: usize,
    /// The file's last line was cut off and left out (JSONL only; see `jsonl::read_each`).
    pub truncated: Option<super::jsonl::Truncated>,
}

impl History {
    /// Ops grouped by key, in a fixed (sorted) key order.
    pub fn by_key(&self) -> BTreeMap<&str, Vec<&Op>> {
        let mut m: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
        for op in &self.ops {
            m.entry(op.key.as_str()).or_default().push(op);
        }
        m
    }
}

/// Pair the events of a history into ops. `events` must be in line order; an event's `index`,
/// when absent, is its position. Errors name the line (1-based position) and what was expected.
pub fn pair(events: &[Event]) -> Result<History, HistoryError> {
    pair_iter(events.len(), events.iter().cloned())
}

/// [`pair`], consuming the events: their strings and values move into the ops instead of being
/// copied (what `quorate check` does with a file it has just read).
pub fn pair_owned(events: Vec<Event>) -> Result<History, HistoryError> {
    pair_iter(events.len(), events.into_iter())
}

fn pair_iter(len: usize, events: impl Iterator<Item = Event>) -> Result<History, HistoryError> {
    let mut pairer = Pairer::with_capacity(len);
    for ev in events {
        pairer.push(ev)?;
    }
    Ok(pairer.finish())
}

/// Pairing one event at a time, so a reader can feed events as it parses them and a big
/// history never exists twice in memory (as events and as ops).
#[derive(Debug, Default)]
pub struct Pairer {
    ops: Vec<Op>,
    other: Vec<Event>,
    /// process -> position in `ops` of its outstanding op
    pending: BTreeMap<u64, usize>,
    /// Events pushed so far (the next event's position).
    pos: usize,
}

impl Pairer {
    pub fn new() -> Pairer {
        Pairer::default()
    }

    /// A pairer for about `events` events.
    pub fn with_capacity(events: usize) -> Pairer {
        Pairer {
            // About half the events are invokes.
            ops: Vec::with_capacity(events / 2 + 1),
            ..Pairer::default()
        }
    }

    /// The history paired so far.
    pub fn finish(self) -> History {
        History {
            ops: self.ops,
            other: self.other,
            events: self.pos,
            truncated: None,
        }
    }

    /// Pair the next event (in line order). Errors name the event's position (1-based) as its
    /// line, and what was expected.
    pub fn push(&mut self, ev: Event) -> Result<(), HistoryError> {
        let line = self.pos + 1;
        self.push_line(ev, line)
    }

    /// [`Pairer::push`] for a reader that knows the event's line in its file (blank lines and
    /// comments make it differ from the event's position), so errors name the right line.
    pub fn push_line(&mut self, ev: Event, line: usize) -> Result<(), HistoryError> {
        let pos = self.pos;
        self.pos += 1;
        let (ops, other, pending) = (&mut self.ops, &mut self.other, &mut self.pending);
        let p = match ev.process {
            Process::Client(p) => p,
            Process::Nemesis | Process::Harness => {
                other.push(ev);
                return Ok(());
            }
        };
        match ev.kind {
            EventType::Invoke => {
                // A second invoke before completion: keep the earlier op as info.
                pending.remove(&p);
                pending.insert(p, ops.len());
                ops.push(Op {
                    id: ev.index.unwrap_or(pos as u64),
                    process: p,
                    f: ev.f,
                    key: ev.key.unwrap_or_default(),
                    input: ev.value,
                    output: Value::Null,
                    outcome: Outcome::Info,
                    call: pos,
                    complete: None,
                    call_time: ev.time,
                    complete_time: None,
                    node: ev.node,
                    version: None,
                    error: None,
                });
            }
            kind => {
                let Some(i) = pending.remove(&p) else {
                    return Err(HistoryError::Semantics {
                        line,
                        message: format!(
                            "{kind} of {:?} by process {p} has no outstanding invoke; expected an invoke by process {p} before it",
                            ev.f
                        ),
                    });
                };
                let op = &mut ops[i];
                if op.f != ev.f || op.key != ev.key_str() {
                    return Err(HistoryError::Semantics {
                        line,
                        message: format!(
                            "{kind} of {:?} on key {:?} by process {p} does not match its invoke (line {}) of {:?} on key {:?}; expected the same f and key",
                            ev.f,
                            ev.key_str(),
                            op.call + 1,
                            op.f,
                            op.key
                        ),
                    });
                }
                op.complete = Some(pos);
                op.complete_time = ev.time;
                if ev.node.is_some() {
                    op.node = ev.node;
                }
                op.version = ev.version;
                op.outcome = match kind {
                    EventType::Ok => {
                        op.output = ev.value;
                        Outcome::Ok
                    }
                    EventType::Fail if ev.error.as_deref() == Some("mismatch") => Outcome::Mismatch,
                    EventType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                op.error = ev.error;
            }
        }
        Ok(())
    }
}
