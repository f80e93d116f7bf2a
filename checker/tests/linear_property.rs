//! Property test: the search and the zone check agree with oracles that share no code with
//! them.
//!
//! Small histories (2–8 ops): concurrent cas-register, kv and set histories with `info` ops,
//! `mismatch` fails and plain fails, drawn from a seeded ChaCha stream. The oracle enumerates
//! every subset of info ops and every order of the chosen ops that respects real time, and
//! runs them on its own model. Larger histories (up to 60 ops, see `large`) are compared with
//! a plain memoised search without any of the search's pruning. For invalid
//! histories the counterexample is checked too: the history cut after the failing op's
//! completion is not linearizable, the cut just before it is, and `prefix` is a legal order.
//! Every register history is judged on both paths, the search and (when its values are unique
//! and it has no cas) the zone check, and each must match the oracle, counterexample included.

use quorate_checker::history::{pair, Event, EventType, History, Op, Outcome, Process};
use quorate_checker::linear::{check, check_key_on, KeyResult, LinearOptions, Path};
use quorate_checker::model::ModelKind;
use quorate_checker::verdict::Verdict;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

#[path = "linear_property/large.rs"]
mod large;

/// A random history of `n` ops over up to `procs` concurrent clients.
fn random_history(rng: &mut ChaCha8Rng, n: usize, procs: u64, values: u64) -> Vec<Event> {
    let value = |rng: &mut ChaCha8Rng| json!(rng.gen_range(1..=values));
    let mut events = Vec::new();
    // Per live client: its process number and the op it has outstanding.
    let mut pending: Vec<Option<(u64, String, Value)>> = vec![None; procs as usize];
    let mut process: Vec<u64> = (0..procs).collect();
    let mut next_process = procs;
    let mut started = 0;
    // The value of the latest write invoked, so that reads often return a plausible value
    // and the share of valid histories stays useful.
    let mut latest = Value::Null;
    while started < n || pending.iter().any(Option::is_some) {
        let c = rng.gen_range(0..procs as usize);
        let p = Process::Client(process[c]);
        match pending[c].take() {
            None if started < n => {
                started += 1;
                let (f, input) = match rng.gen_range(0..3) {
                    0 => ("read", Value::Null),
                    1 => {
                        latest = value(rng);
                        ("write", latest.clone())
                    }
                    _ => {
                        let expected = if rng.gen_bool(0.2) {
                            Value::Null
                        } else {
                            value(rng)
                        };
                        ("cas", json!([expected, value(rng)]))
                    }
                };
                events.push(Event::new(p, EventType::Invoke, f, input.clone()));
                pending[c] = Some((process[c], f.to_string(), input));
            }
            None => {}
            Some((_, f, input)) => {
                let roll = rng.gen_range(0..100);
                let ev = if roll < 12 {
                    process[c] = next_process;
                    next_process += 1;
                    Event::new(p, EventType::Info, f, input).with_error("timeout")
                } else if roll < 17 {
                    Event::new(p, EventType::Fail, f, input).with_error("503")
                } else if f == "cas" && roll < 40 {
                    Event::new(p, EventType::Fail, f, input).with_error("mismatch")
                } else if f == "read" {
                    let out = match rng.gen_range(0..10) {
                        0 => Value::Null,
                        1..=5 => latest.clone(),
                        _ => value(rng),
                    };
                    Event::new(p, EventType::Ok, f, out)
                } else {
                    Event::new(p, EventType::Ok, f, input)
                };
                events.push(ev);
            }
        }
    }
    events
}

/// What the clients of a generated history do: the op each one starts, and what an `ok` read
/// (`read` or `get`) returns.
trait Workload {
    fn invoke(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, Value);
    fn read(&mut self, rng: &mut ChaCha8Rng) -> Value;
}

/// The client loop the kv, set and unique-value register generators share: `n` ops over up
/// to `procs` concurrent clients, each op ending `info` (12%, its process retired), `fail`
/// (5%) or `ok`.
fn clients(rng: &mut ChaCha8Rng, n: usize, procs: u64, w: &mut impl Workload) -> Vec<Event> {
    let mut events = Vec::new();
    let mut pending: Vec<Option<(String, Value)>> = vec![None; procs as usize];
    let mut process: Vec<u64> = (0..procs).collect();
    let mut next_process = procs;
    let mut started = 0;
    while started < n || pending.iter().any(Option::is_some) {
        let c = rng.gen_range(0..procs as usize);
        let p = Process::Client(process[c]);
        match pending[c].take() {
            None if started < n => {
                started += 1;
                let (f, input) = w.invoke(rng);
                events.push(Event::new(p, EventType::Invoke, f, input.clone()));
                pending[c] = Some((f.to_string(), input));
            }
            None => {}
            Some((f, input)) => {
                let roll = rng.gen_range(0..100);
                let ev = if roll < 12 {
                    process[c] = next_process;
                    next_process += 1;
                    Event::new(p, EventType::Info, f, input).with_error("timeout")
                } else if roll < 17 {
                    Event::new(p, EventType::Fail, f, input).with_error("503")
                } else if f == "read" || f == "get" {
                    Event::new(p, EventType::Ok, f, w.read(rng))
                } else {
                    Event::new(p, EventType::Ok, f, input)
                };
                events.push(ev);
            }
        }
    }
    events
}

/// Reads and writes of ever new values (the zone check's keys): reads return the latest value
/// invoked, `null`, an older value, or one written later or never.
struct UniqueRegister {
    next_value: u64,
}

impl Workload for UniqueRegister {
    fn invoke(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, Value) {
        if rng.gen_bool(0.5) {
            ("read", Value::Null)
        } else {
            self.next_value += 1;
            ("write", json!(self.next_value))
        }
    }

    fn read(&mut self, rng: &mut ChaCha8Rng) -> Value {
        match rng.gen_range(0..10) {
            0 => Value::Null,
            1..=5 if self.next_value > 0 => json!(self.next_value),
            _ => json!(rng.gen_range(1..=self.next_value + 1)),
        }
    }
}

/// Porcupine's kv model: appends of "a"/"b", puts, and gets that often return what a
/// sequential run applying ops at their invokes would hold.
struct KvStrings {
    truth: String,
}

impl Workload for KvStrings {
    fn invoke(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, Value) {
        let piece = if rng.gen_bool(0.5) { "a" } else { "b" };
        match rng.gen_range(0..10) {
            0..=3 => ("get", Value::Null),
            4 => {
                self.truth = piece.to_string();
                ("put", json!(piece))
            }
            _ => {
                self.truth.push_str(piece);
                ("append", json!(piece))
            }
        }
    }

    fn read(&mut self, rng: &mut ChaCha8Rng) -> Value {
        let out = match rng.gen_range(0..10) {
            0..=5 => self.truth.clone(),
            6 => String::new(),
            _ => ["a", "ab", "ba", "b", "aab", "bb"][rng.gen_range(0..6)].to_string(),
        };
        json!(out)
    }
}

/// Adds of unique elements; reads return the sorted elements a sequential run would hold, or
/// that with one element dropped or added.
struct UniqueSet {
    truth: Vec<u64>,
    next_element: u64,
}

impl Workload for UniqueSet {
    fn invoke(&mut self, rng: &mut ChaCha8Rng) -> (&'static str, Value) {
        if rng.gen_bool(0.5) {
            ("read", Value::Null)
        } else {
            self.truth.push(self.next_element);
            self.next_element += 1;
            ("add", json!(self.next_element - 1))
        }
    }

    fn read(&mut self, rng: &mut ChaCha8Rng) -> Value {
        let mut out = self.truth.clone();
        match rng.gen_range(0..10) {
            0..=5 => {}
            6..=7 if !out.is_empty() => {
                out.remove(rng.gen_range(0..out.len()));
            }
            _ => out.push(self.next_element + 5),
        }
        json!(out)
    }
}

/// The oracle's view of one op.
struct Step<'a> {
    op: &'a Op,
    optional: bool,
}

/// Which model the oracles run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Cas,
    /// read/write only: with unique values, the zone check's keys.
    Register,
    Kv,
    Set,
}

impl Kind {
    fn initial(self) -> Value {
        match self {
            Kind::Cas | Kind::Register => Value::Null,
            Kind::Kv => json!(""),
            Kind::Set => json!([]),
        }
    }

    fn opts(self) -> LinearOptions {
        LinearOptions {
            model: match self {
                Kind::Cas => ModelKind::CasRegister,
                Kind::Register => ModelKind::Register,
                Kind::Kv => ModelKind::Kv,
                Kind::Set => ModelKind::Set,
            },
            ..LinearOptions::default()
        }
    }
}

/// Does some subset of optional ops and some real-time-respecting order of them and all
/// required ops run on `kind`'s object, from its starting value? Tries every order: for
/// histories of a few ops only.
fn brute_force(h: &History, kind: Kind) -> bool {
    let steps: Vec<Step> = h
        .ops
        .iter()
        .filter(|o| o.outcome != Outcome::Fail)
        .map(|op| Step {
            op,
            optional: op.outcome == Outcome::Info,
        })
        .collect();
    let mut placed = vec![false; steps.len()];
    dfs(kind, &steps, &mut placed, &kind.initial())
}

fn precedes(a: &Op, b: &Op) -> bool {
    a.outcome != Outcome::Info && a.complete.is_some_and(|c| c < b.call)
}

/// The next state if `op` can run on `state`.
fn run(kind: Kind, op: &Op, state: &Value) -> Option<Value> {
    match kind {
        Kind::Kv => return run_kv(op, state),
        Kind::Set => return run_set(op, state),
        Kind::Cas | Kind::Register => {}
    }
    let pair = |v: &Value| (v[0].clone(), v[1].clone());
    match (op.f.as_str(), op.outcome) {
        ("read", Outcome::Ok) => (op.output == *state).then(|| state.clone()),
        ("read", _) => Some(state.clone()),
        ("write", _) => Some(op.input.clone()),
        ("cas", Outcome::Mismatch) => (pair(&op.input).0 != *state).then(|| state.clone()),
        ("cas", _) => {
            let (e, n) = pair(&op.input);
            (e == *state).then_some(n)
        }
        _ => None,
    }
}

/// The kv store's next string if `op` can run on `state`.
fn run_kv(op: &Op, state: &Value) -> Option<Value> {
    let s = state.as_str()?;
    match (op.f.as_str(), op.outcome) {
        ("get", Outcome::Ok) => (op.output == *state).then(|| state.clone()),
        ("get", _) => Some(state.clone()),
        ("put", _) => Some(op.input.clone()),
        ("append", _) => Some(json!(format!("{s}{}", op.input.as_str()?))),
        _ => None,
    }
}

/// The set's next sorted elements if `op` can run on `state`.
fn run_set(op: &Op, state: &Value) -> Option<Value> {
    let mut elems: Vec<u64> = state.as_array()?.iter().filter_map(Value::as_u64).collect();
    match (op.f.as_str(), op.outcome) {
        ("read", Outcome::Ok) => (op.output == *state).then(|| state.clone()),
        ("read", _) => Some(state.clone()),
        ("add", _) => {
            elems.push(op.input.as_u64()?);
            elems.sort_unstable();
            elems.dedup();
            Some(json!(elems))
        }
        _ => None,
    }
}

fn dfs(kind: Kind, steps: &[Step], placed: &mut [bool], state: &Value) -> bool {
    if steps
        .iter()
        .zip(placed.iter())
        .all(|(s, &p)| p || s.optional)
    {
        return true;
    }
    for i in 0..steps.len() {
        if placed[i] {
            continue;
        }
        // Every required op that precedes it in real time must be placed already.
        let ready = steps
            .iter()
            .zip(placed.iter())
            .all(|(s, &p)| p || !precedes(s.op, steps[i].op));
        if !ready {
            continue;
        }
        if let Some(next) = run(kind, steps[i].op, state) {
            placed[i] = true;
            let ok = dfs(kind, steps, placed, &next);
            placed[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

/// Is `order` (op ids) a legal sequential run that respects real time among its ops? Info ops
/// run as invoked (a cas writes if it matches).
fn legal_order(h: &History, kind: Kind, order: &[u64]) -> bool {
    let ops: Vec<&Op> = order
        .iter()
        .filter_map(|id| h.ops.iter().find(|o| o.id == *id))
        .collect();
    if ops.len() != order.len() {
        return false;
    }
    let mut state = kind.initial();
    for (i, op) in ops.iter().enumerate() {
        if ops[i + 1..].iter().any(|later| precedes(later, op)) {
            return false;
        }
        match run(kind, op, &state) {
            Some(next) => state = next,
            None => return false,
        }
    }
    true
}

/// Values repeat (3 of them): the search gets none of the unique-value reductions.
#[test]
fn search_agrees_with_brute_force_on_repeated_values() {
    small(Kind::Cas, 0x9e37_79b9_7f4a_7c15, 3, (0.55, 0.85));
}

/// Values mostly unique (30 of them): info writes get dropped and tightened.
#[test]
fn search_agrees_with_brute_force_on_mostly_unique_values() {
    small(Kind::Cas, 0x2545_f491_4f6c_dd1d, 30, (0.65, 0.90));
}

/// Read/write histories with unique values: the zone check and the search both judge each.
#[test]
fn zones_and_search_agree_with_brute_force_on_unique_register_values() {
    small(Kind::Register, 0x6a09_e667_f3bc_c908, 0, (0.45, 0.85));
}

/// kv histories: appends build strings, so states multiply by orders; puts reset them.
#[test]
fn kv_search_agrees_with_brute_force() {
    small(Kind::Kv, 0x1234_5678_9abc_def0, 0, (0.30, 0.60));
}

/// Set histories: unique elements, so info adds get dropped and tightened.
#[test]
fn set_search_agrees_with_brute_force() {
    small(Kind::Set, 0x0fed_cba9_8765_4321, 0, (0.35, 0.65));
}

/// The seed of a property test: QUORATE_PROPTEST_SEED replays another stream (the default is
/// fixed, so runs repeat).
fn seed(default_seed: u64) -> u64 {
    std::env::var("QUORATE_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed)
}

/// Check 2000 random histories of 2–8 ops of `kind` (`values`: how many register values)
/// against brute force; the share of non-linearizable ones must fall in `share`.
fn small(kind: Kind, default_seed: u64, values: u64, share: (f64, f64)) {
    let seed = seed(default_seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally::default();
    for round in 0..2000 {
        let n = rng.gen_range(2..=8);
        let procs = rng.gen_range(2..=4);
        let events = match kind {
            Kind::Kv => clients(
                &mut rng,
                n,
                procs,
                &mut KvStrings {
                    truth: String::new(),
                },
            ),
            Kind::Set => clients(
                &mut rng,
                n,
                procs,
                &mut UniqueSet {
                    truth: Vec::new(),
                    next_element: 1,
                },
            ),
            Kind::Cas => random_history(&mut rng, n, procs, values),
            Kind::Register => clients(&mut rng, n, procs, &mut UniqueRegister { next_value: 0 }),
        };
        let oracle = |h: &History| Some(brute_force(h, kind));
        agree(
            kind,
            &events,
            &oracle,
            &format!("seed {seed} round {round}"),
            &mut tally,
        );
    }
    if kind == Kind::Register {
        assert_eq!(
            tally.zones, tally.total,
            "every unique-value register history must take the zone path too"
        );
    }
    tally.assert_share(seed, share);
}

/// How many histories a property test judged, and how many were not linearizable.
#[derive(Debug, Default)]
struct Tally {
    total: usize,
    invalid: usize,
    /// Histories the oracle gave up on (over its work bound): not compared.
    skipped: usize,
    /// Of the compared ones, those the zone check judged too.
    zones: usize,
}

impl Tally {
    /// The share of invalid histories must lie in `share`: both verdicts must be common, or
    /// the comparison tests little. Fails when the generator drifts to one side.
    fn assert_share(&self, seed: u64, (lo, hi): (f64, f64)) {
        eprintln!(
            "seed {seed}: {} of {} histories not linearizable ({} skipped, {} also on the zone \
             path)",
            self.invalid, self.total, self.skipped, self.zones
        );
        assert!(self.total > 0, "no history was compared");
        let share = self.invalid as f64 / self.total as f64;
        assert!(
            (lo..=hi).contains(&share),
            "{} of {} histories are not linearizable ({:.0}%); the test needs {:.0}% to {:.0}%",
            self.invalid,
            self.total,
            share * 100.0,
            lo * 100.0,
            hi * 100.0
        );
    }
}

/// Check one history against `oracle` (`None`: it gave up): the verdict, and for an invalid
/// one its counterexample: the history cut after the failing op's completion is not
/// linearizable, the cut just before it is, and `prefix` is a legal order of the ops before.
/// A register history is judged on each path too: the search, and the zone check when it
/// applies (its values unique, no cas).
fn agree(
    kind: Kind,
    events: &[Event],
    oracle: &dyn Fn(&History) -> Option<bool>,
    what: &str,
    tally: &mut Tally,
) {
    let h = pair(events).expect("generated histories pair");
    let Some(want) = oracle(&h) else {
        tally.skipped += 1;
        return;
    };
    let got = check(&h, &kind.opts()).expect("generated ops fit the model");
    judged(kind, events, oracle, want, &got.keys[""], what);
    tally.total += 1;
    if !want {
        tally.invalid += 1;
    }
    if !matches!(kind, Kind::Cas | Kind::Register) {
        return;
    }
    let ops: Vec<&Op> = h.ops.iter().collect();
    for path in [Path::Search, Path::Zones] {
        let what = format!("{what}, on the {path:?} path");
        match check_key_on(&ops, &kind.opts(), Some(path)) {
            Ok(key) => {
                assert_eq!(key.path, path, "{what}");
                judged(kind, events, oracle, want, &key, &what);
                if path == Path::Zones {
                    tally.zones += 1;
                }
            }
            Err(e) if path == Path::Zones && e.message.contains("does not apply") => {}
            Err(e) => panic!("{what}: {e}\n{}", show(events)),
        }
    }
}

/// One key's result against the oracle's verdict `want`, with its counterexample's cuts.
fn judged(
    kind: Kind,
    events: &[Event],
    oracle: &dyn Fn(&History) -> Option<bool>,
    want: bool,
    key: &KeyResult,
    what: &str,
) {
    let h = pair(events).expect("generated histories pair");
    assert_eq!(
        key.valid,
        if want {
            Verdict::Valid
        } else {
            Verdict::Invalid
        },
        "{what}: verdict differs from the oracle on\n{}",
        show(events)
    );
    if want {
        return;
    }
    let cx = key
        .counterexample
        .as_ref()
        .expect("invalid key has a counterexample");
    let x = h
        .ops
        .iter()
        .find(|o| o.id == cx.op)
        .expect("counterexample op exists");
    let end = x.complete.expect("the failing op completed");
    let cut = |len: usize| pair(&events[..len]).expect("a cut pairs");
    assert_ne!(
        oracle(&cut(end + 1)),
        Some(true),
        "{what}: the cut after op {} is linearizable\n{}",
        cx.op,
        show(events)
    );
    assert_ne!(
        oracle(&cut(end)),
        Some(false),
        "{what}: the cut before op {}'s completion is not linearizable, so a shorter prefix \
         fails\n{}",
        cx.op,
        show(events)
    );
    // The prefix linearizes the history cut before the failing op's completion, where ops
    // still pending are info.
    let before = cut(end);
    assert!(
        legal_order(&before, kind, &cx.prefix),
        "{what}: prefix {:?} is not a legal order\n{}",
        cx.prefix,
        show(events)
    );
    for op in before
        .ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Ok | Outcome::Mismatch))
    {
        assert!(
            cx.prefix.contains(&op.id),
            "{what}: prefix {:?} lacks op {}, completed before the failing op",
            cx.prefix,
            op.id
        );
    }
}

fn show(events: &[Event]) -> String {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "{i}: {} {} {} {}{}",
                e.process,
                e.kind,
                e.f,
                e.value,
                e.error
                    .as_ref()
                    .map_or(String::new(), |x| format!(" ({x})"))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
