//! Larger histories (10–60 ops, up to 10 clients), where the search's pruning has room to act:
//! the lookahead over the first list entries, the twin rule for identical info ops, the
//! dominance of configurations with more optional ops, the read-only shortcut.
//!
//! Histories come from simulating a real atomic object: each op takes effect at one instant
//! between its invoke and its completion (an `info` op perhaps after its info line, or never),
//! so every such history is linearizable by construction. Half of them then get a read
//! corrupted (a value nobody saw, or one seen earlier), which may or may not break them.
//!
//! The oracle is a plain memoised depth-first search: place any op whose real-time
//! predecessors are placed, if it fits the state; remember failed (placed set, state) pairs.
//! None of the search's rules are in it. Its work is bounded; a history over the bound is
//! skipped and counted, and the test demands that few are.

use super::{agree, run, seed, show, Kind, Tally};
use quorate_checker::history::{pair, Event, EventType, History, Op, Outcome, Process};
use quorate_checker::linear::check;
use quorate_checker::verdict::Verdict;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Configurations the plain search may expand before it gives up on a history.
const BUDGET: usize = 50_000;

/// The plain search: `Some(linearizable)`, or `None` past [`BUDGET`].
pub fn plain(h: &History, kind: Kind) -> Option<bool> {
    let steps: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| o.outcome != Outcome::Fail)
        .collect();
    assert!(
        steps.len() <= 64,
        "the plain search keeps placed ops in a u64"
    );
    let required = |o: &Op| o.outcome != Outcome::Info && o.complete.is_some();
    let mut all_required = 0u64;
    // For each op, the required ops that completed before it was invoked.
    let mut before = vec![0u64; steps.len()];
    for (i, a) in steps.iter().enumerate() {
        if required(a) {
            all_required |= 1 << i;
        }
        for (j, b) in steps.iter().enumerate() {
            if required(b) && b.complete.is_some_and(|c| c < a.call) {
                before[i] |= 1 << j;
            }
        }
    }
    let mut search = Plain {
        kind,
        steps: &steps,
        before: &before,
        all_required,
        failed: HashSet::new(),
        work: 0,
    };
    search.dfs(0, &kind.initial())
}

struct Plain<'a> {
    kind: Kind,
    steps: &'a [&'a Op],
    before: &'a [u64],
    all_required: u64,
    /// (placed ops, state as JSON text) from which no linearization exists.
    failed: HashSet<(u64, String)>,
    work: usize,
}

impl Plain<'_> {
    fn dfs(&mut self, placed: u64, state: &Value) -> Option<bool> {
        if placed & self.all_required == self.all_required {
            return Some(true);
        }
        let key = (placed, state.to_string());
        if self.failed.contains(&key) {
            return Some(false);
        }
        self.work += 1;
        if self.work > BUDGET {
            return None;
        }
        for i in 0..self.steps.len() {
            if placed & (1 << i) != 0 || self.before[i] & !placed != 0 {
                continue;
            }
            if let Some(next) = run(self.kind, self.steps[i], state) {
                if self.dfs(placed | (1 << i), &next)? {
                    return Some(true);
                }
            }
        }
        self.failed.insert(key);
        Some(false)
    }
}

/// One client's op in the simulation.
struct Pending {
    process: u64,
    f: &'static str,
    input: Value,
    /// What it returned, once it took effect (`Err`: a cas that found another value).
    result: Option<Result<Value, ()>>,
}

/// The values a simulated register writes: few (so they repeat) or ever new.
#[derive(Clone, Copy)]
enum Values {
    Repeated,
    Unique,
}

/// A simulated object of `kind`, and the values it hands out.
struct Sim {
    kind: Kind,
    values: Values,
    state: Value,
    next: u64,
}

impl Sim {
    fn value(&mut self, rng: &mut ChaCha8Rng) -> Value {
        match self.values {
            Values::Repeated => json!(rng.gen_range(1..=3)),
            Values::Unique => {
                self.next += 1;
                json!(self.next)
            }
        }
    }

    /// A new op for a client.
    fn op(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, Value) {
        match (self.kind, rng.gen_range(0..10)) {
            (Kind::Register, 0..=4) => ("read", Value::Null),
            (Kind::Register, _) => ("write", self.value(rng)),
            (Kind::Cas, 0..=3) => ("read", Value::Null),
            (Kind::Cas, 4..=6) => ("write", self.value(rng)),
            (Kind::Cas, _) => {
                // Mostly expect what is there, so some cas ops succeed.
                let expected = if rng.gen_bool(0.6) {
                    self.state.clone()
                } else {
                    self.value(rng)
                };
                ("cas", json!([expected, self.value(rng)]))
            }
            (Kind::Kv, 0..=3) => ("get", Value::Null),
            (Kind::Kv, 4) => ("put", json!(["a", "b"][rng.gen_range(0..2)])),
            (Kind::Kv, _) => ("append", json!(["a", "b", "c"][rng.gen_range(0..3)])),
            (Kind::Set, 0..=4) => ("read", Value::Null),
            (Kind::Set, _) => {
                self.next += 1;
                ("add", json!(self.next))
            }
        }
    }

    /// Take effect now.
    fn apply(&mut self, f: &str, input: &Value) -> Result<Value, ()> {
        match f {
            "read" | "get" => Ok(self.state.clone()),
            "write" | "put" => {
                self.state = input.clone();
                Ok(input.clone())
            }
            "cas" if self.state == input[0] => {
                self.state = input[1].clone();
                Ok(input.clone())
            }
            "cas" => Err(()),
            "append" => {
                let s = format!(
                    "{}{}",
                    self.state.as_str().unwrap_or_default(),
                    input.as_str().unwrap_or_default()
                );
                self.state = json!(s);
                Ok(input.clone())
            }
            "add" => {
                let mut elems: Vec<u64> = self
                    .state
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect();
                elems.extend(input.as_u64());
                elems.sort_unstable();
                self.state = json!(elems);
                Ok(input.clone())
            }
            other => unreachable!("the simulation makes no {other} ops"),
        }
    }

    /// A read's result made wrong, perhaps: another value, or the state with a piece missing
    /// or added.
    fn corrupt(&mut self, rng: &mut ChaCha8Rng, read: &Value) -> Value {
        match self.kind {
            Kind::Cas | Kind::Register if rng.gen_bool(0.2) => Value::Null,
            Kind::Cas | Kind::Register => match self.values {
                Values::Repeated => self.value(rng),
                // An earlier value (stale) or one written later.
                Values::Unique => json!(rng.gen_range(1..=self.next + 2)),
            },
            Kind::Kv => {
                let mut s = read.as_str().unwrap_or_default().to_string();
                if !s.is_empty() && rng.gen_bool(0.5) {
                    s.pop();
                } else {
                    s.push(['a', 'b', 'c'][rng.gen_range(0..3)]);
                }
                json!(s)
            }
            Kind::Set => {
                let mut elems: Vec<u64> = read
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect();
                if !elems.is_empty() && rng.gen_bool(0.6) {
                    elems.remove(rng.gen_range(0..elems.len()));
                } else {
                    elems.push(self.next + 1);
                }
                json!(elems)
            }
        }
    }
}

/// A simulated history of `n` ops over `procs` clients; with `corrupt`, each read's result is
/// made wrong with probability `corrupt`.
fn simulated(
    rng: &mut ChaCha8Rng,
    kind: Kind,
    values: Values,
    n: usize,
    procs: u64,
    corrupt: f64,
) -> Vec<Event> {
    let mut sim = Sim {
        kind,
        values,
        state: kind.initial(),
        next: 0,
    };
    let mut events = Vec::new();
    let mut clients: Vec<Option<Pending>> = (0..procs).map(|_| None).collect();
    let mut process: Vec<u64> = (0..procs).collect();
    let mut next_process = procs;
    // Info ops that have not taken effect yet and still may.
    let mut ghosts: Vec<(&'static str, Value)> = Vec::new();
    let mut started = 0;
    while started < n || clients.iter().any(Option::is_some) {
        // A ghost takes effect now, or is forgotten (it never happened).
        if !ghosts.is_empty() && rng.gen_bool(0.1) {
            let (f, input) = ghosts.swap_remove(rng.gen_range(0..ghosts.len()));
            if rng.gen_bool(0.7) {
                let _ = sim.apply(f, &input);
            }
        }
        let c = rng.gen_range(0..procs as usize);
        let p = Process::Client(process[c]);
        match clients[c].take() {
            None if started < n => {
                started += 1;
                let (f, input) = sim.op(rng);
                events.push(Event::new(p, EventType::Invoke, f, input.clone()));
                clients[c] = Some(Pending {
                    process: process[c],
                    f,
                    input,
                    result: None,
                });
            }
            None => {}
            Some(mut op) => {
                let roll = rng.gen_range(0..100);
                if op.result.is_none() {
                    if roll < 4 {
                        // Failed: it never takes effect.
                        events
                            .push(Event::new(p, EventType::Fail, op.f, op.input).with_error("503"));
                    } else if roll < 10 {
                        // Timed out before taking effect: it may still, later.
                        ghosts.push((op.f, op.input.clone()));
                        events.push(
                            Event::new(p, EventType::Info, op.f, op.input).with_error("timeout"),
                        );
                        process[c] = next_process;
                        next_process += 1;
                    } else {
                        if roll < 60 {
                            op.result = Some(sim.apply(op.f, &op.input));
                        }
                        clients[c] = Some(op);
                    }
                    continue;
                }
                debug_assert_eq!(op.process, process[c]);
                let ev = match op.result.take() {
                    _ if roll < 5 => {
                        process[c] = next_process;
                        next_process += 1;
                        Event::new(p, EventType::Info, op.f, op.input).with_error("timeout")
                    }
                    Some(Err(())) => {
                        Event::new(p, EventType::Fail, op.f, op.input).with_error("mismatch")
                    }
                    Some(Ok(out)) if matches!(op.f, "read" | "get") => {
                        let out = if rng.gen_bool(corrupt) {
                            sim.corrupt(rng, &out)
                        } else {
                            out
                        };
                        Event::new(p, EventType::Ok, op.f, out)
                    }
                    Some(Ok(out)) => Event::new(p, EventType::Ok, op.f, out),
                    None => unreachable!("checked above"),
                };
                events.push(ev);
            }
        }
    }
    events
}

/// Compare the search with the plain search on `rounds` simulated histories of `kind`.
fn compare(kind: Kind, values: Values, default_seed: u64, rounds: usize, share: (f64, f64)) {
    let seed = seed(default_seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally::default();
    for round in 0..rounds {
        let n = rng.gen_range(10..=60);
        let procs = rng.gen_range(2..=10);
        // Some histories are left as simulated: linearizable by construction.
        let corrupt = if rng.gen_bool(0.4) {
            0.0
        } else {
            rng.gen_range(0.05..0.25)
        };
        let events = simulated(&mut rng, kind, values, n, procs, corrupt);
        let what = format!("seed {seed} round {round} ({n} ops, {procs} clients)");
        if corrupt == 0.0 {
            let h = pair(&events).expect("simulated histories pair");
            let got = check(&h, &kind.opts()).expect("simulated ops fit the model");
            assert_eq!(
                got.keys[""].valid,
                Verdict::Valid,
                "{what}: a simulated atomic history is linearizable\n{}",
                show(&events)
            );
        }
        agree(kind, &events, &|h| plain(h, kind), &what, &mut tally);
    }
    assert!(
        tally.skipped * 10 <= rounds,
        "the plain search gave up on {} of {rounds} histories; at most 10% may be skipped",
        tally.skipped
    );
    if matches!((kind, values), (Kind::Register, Values::Unique)) {
        assert_eq!(
            tally.zones, tally.total,
            "every unique-value register history must take the zone path too"
        );
    }
    tally.assert_share(seed, share);
}

#[test]
fn register_with_repeated_values_agrees_with_a_plain_search() {
    compare(
        Kind::Cas,
        Values::Repeated,
        0x51_ed_27_0b_31_5a_f3_01,
        300,
        (0.2, 0.6),
    );
}

#[test]
fn register_with_unique_values_agrees_with_a_plain_search() {
    compare(
        Kind::Cas,
        Values::Unique,
        0x3c6e_f372_fe94_f82b,
        300,
        (0.2, 0.6),
    );
}

/// Read/write only, unique values: the zone check's keys, judged on both paths.
#[test]
fn register_zones_and_search_agree_with_a_plain_search() {
    compare(
        Kind::Register,
        Values::Unique,
        0xbb67_ae85_84ca_a73b,
        300,
        (0.2, 0.6),
    );
}

#[test]
fn kv_agrees_with_a_plain_search() {
    compare(
        Kind::Kv,
        Values::Repeated,
        0xa54f_f53a_5f1d_36f1,
        300,
        (0.2, 0.6),
    );
}

#[test]
fn set_agrees_with_a_plain_search() {
    compare(
        Kind::Set,
        Values::Unique,
        0x510e_527f_ade6_82d1,
        300,
        (0.2, 0.6),
    );
}

/// Over 64 pending identical info writes (more than the search compares as twins) among
/// reads. Simulated, so linearizable, and the search must say so; in the last round the final
/// read returns `null` after an earlier read saw a value, which no order explains (no op
/// writes `null`). The plain search cannot follow here (2^n subsets), so the verdicts are
/// known by construction.
#[test]
fn many_identical_info_writes_beyond_the_twin_window() {
    let mut rng = ChaCha8Rng::seed_from_u64(seed(0x9b05_688c_2b3e_6c1f));
    for round in 0..5 {
        let mut events = Vec::new();
        // 160 clients each invoke a write of 1 or 2 (80 of each) that times out; some take
        // effect at once, the first one always.
        let mut state = Value::Null;
        for p in 0..160u64 {
            let v = json!(1 + p % 2);
            let writer = Process::Client(p);
            events.push(Event::new(writer, EventType::Invoke, "write", v.clone()));
            events.push(
                Event::new(writer, EventType::Info, "write", v.clone()).with_error("timeout"),
            );
            if p == 0 || rng.gen_bool(0.3) {
                state = v;
            }
            // A reader sees what is there now.
            if p % 8 == 7 {
                let seen = if round == 4 && p == 159 {
                    Value::Null
                } else {
                    state.clone()
                };
                let reader = Process::Client(1000 + p);
                events.push(Event::new(reader, EventType::Invoke, "read", Value::Null));
                events.push(Event::new(reader, EventType::Ok, "read", seen));
            }
        }
        let h = pair(&events).expect("pairs");
        let got = check(&h, &Kind::Cas.opts()).expect("fits the model");
        let want = if round == 4 {
            Verdict::Invalid
        } else {
            Verdict::Valid
        };
        assert_eq!(got.keys[""].valid, want, "round {round}\n{}", show(&events));
    }
}
