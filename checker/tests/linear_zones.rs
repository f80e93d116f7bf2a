//! The zone check (`linear::zones`) on hand-written histories: every edge its algorithm note
//! names (reads of values nobody wrote, reads before their write, `info` writes read and
//! unread, `info` reads and fails dropped, unread `ok` writes, the starting value's virtual
//! write, overlapping and nested zones, prefixes, the budget), its sentences, and the path
//! each key takes.

#[path = "common/lines.rs"]
mod lines;

use lines::history;
use quorate_checker::history::{pair, Event, EventType, Op, Process};
use quorate_checker::linear::search::Limits;
use quorate_checker::linear::zones::{applies, check, Conflict, Counts, Zoned};
use quorate_checker::linear::{self, check_key_on, KeyResult, LinearOptions, LinearResult, Path};
use quorate_checker::model::register::Register;
use quorate_checker::model::ModelKind;
use quorate_checker::verdict::Verdict;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CAS: ModelKind = ModelKind::CasRegister;

fn run(model: ModelKind, initial: Option<Value>, text: &str) -> LinearResult {
    let opts = LinearOptions {
        model,
        initial,
        ..LinearOptions::default()
    };
    linear::check(&history(text), &opts).expect("ops fit the model")
}

fn key(r: &LinearResult) -> &KeyResult {
    r.keys.values().next().expect("one key")
}

/// The invalid key's counterexample: its op, prefix and sentence.
fn golden(k: &KeyResult, op: u64, prefix: &[u64], sentence: &str) {
    assert_eq!(k.valid, Verdict::Invalid);
    let cx = k.counterexample.as_ref().expect("counterexample");
    assert_eq!((cx.op, cx.prefix.as_slice()), (op, prefix));
    assert_eq!(cx.explanation, sentence);
}

fn limits() -> Limits {
    Limits {
        start: Instant::now(),
        time: Duration::from_secs(60),
        memory: 512 << 20,
    }
}

/// The zone verdict of `text` (register model, starting value `initial`), and its counts.
fn zoned(text: &str, initial: Option<Value>) -> (Zoned, Counts) {
    let h = history(text);
    let refs: Vec<&Op> = h.ops.iter().collect();
    let model = Register::compile_with(&refs, initial.as_ref(), false).expect("compiles");
    applies(&refs, &model).expect("the zone check applies");
    check(&model, &refs, usize::MAX, &limits())
}

fn conflict(text: &str) -> Conflict {
    match zoned(text, None).0 {
        Zoned::NotLinearizable(c) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn order(text: &str) -> Vec<usize> {
    match zoned(text, None).0 {
        Zoned::Linearizable(o) => o,
        other => panic!("expected a linearization, got {other:?}"),
    }
}

#[test]
fn a_read_of_a_value_nobody_wrote_is_invalid_at_once() {
    let c = conflict("0 invoke write 1\n0 ok write 1\n1 invoke read null\n1 ok read 7");
    assert_eq!(c, Conflict::NeverWritten { read: 1 });
    // A failed write did not happen, so its value was never written either.
    let c = conflict("0 invoke write 1\n0 fail write 1\n1 invoke read null\n1 ok read 1");
    assert_eq!(c, Conflict::NeverWritten { read: 1 });
}

#[test]
fn a_read_that_completed_before_its_write_began_is_invalid() {
    let c = conflict("1 invoke read null\n1 ok read 5\n0 invoke write 5\n0 ok write 5");
    assert_eq!(c, Conflict::ReadBeforeWrite { read: 0, write: 1 });
    // Also when the write is info: it can take effect late, never early.
    let c = conflict("1 invoke read null\n1 ok read 5\n0 invoke write 5\n0 info write 5");
    assert_eq!(c, Conflict::ReadBeforeWrite { read: 0, write: 1 });
}

#[test]
fn an_info_write_that_was_read_completes_at_infinity() {
    // The info write is read long after its info line and after another write: it took
    // effect late, after write 2.
    let text = "0 invoke write 1
                0 info write 1
                1 invoke write 2
                1 ok write 2
                2 invoke read null
                2 ok read 1";
    let (z, counts) = zoned(text, None);
    assert_eq!(z, Zoned::Linearizable(vec![1, 0, 2]));
    assert_eq!(counts.tightened_info, 1);
    assert_eq!(counts.dropped_info, 0);
}

#[test]
fn unread_info_writes_info_reads_and_fails_are_dropped() {
    let text = "0 invoke write 1
                0 ok write 1
                1 invoke write 2
                1 info write 2
                2 invoke read null
                2 info read null
                3 invoke write 3
                3 fail write 3
                4 invoke read null
                4 ok read 1";
    let (z, counts) = zoned(text, None);
    // Neither write 2 nor write 3 is in the order, nor the info read.
    assert_eq!(z, Zoned::Linearizable(vec![0, 4]));
    assert_eq!(counts.dropped_info, 2);
}

#[test]
fn an_unread_ok_write_is_a_backward_zone_of_its_own() {
    // Write 2 completed inside write 1's forward zone (from write 1's completion to the
    // read of 1's invoke): the stale read.
    let c = conflict(
        "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n1 ok write 2\n2 invoke read null\n2 ok read 1",
    );
    let Conflict::Inside { inner, outer } = c else {
        panic!("expected a backward zone inside a forward one: {c:?}");
    };
    assert_eq!((inner.write, inner.reads), (Some(1), 0));
    assert_eq!((outer.write, outer.reads, outer.last_call), (Some(0), 1, 2));
    // Overlapping the read, write 2 may come after it.
    assert_eq!(
        order("0 invoke write 1\n0 ok write 1\n2 invoke read null\n1 invoke write 2\n1 ok write 2\n2 ok read 1"),
        vec![0, 1, 2]
    );
}

#[test]
fn reads_of_the_starting_value_read_a_write_at_minus_infinity() {
    assert_eq!(
        order("0 invoke read null\n0 ok read null\n1 invoke write 1\n1 ok write 1"),
        vec![0, 1]
    );
    let c = conflict("1 invoke write 1\n1 ok write 1\n0 invoke read null\n0 ok read null");
    let Conflict::Inside { inner, outer } = c else {
        panic!("expected write 1 inside the starting value's zone: {c:?}");
    };
    assert_eq!(
        (inner.write, outer.write, outer.first_done),
        (Some(0), None, None)
    );
    // With a starting value, a read of it is fine and a read of null is not.
    let read0 = "0 invoke read null\n0 ok read 0\n1 invoke write 1\n1 ok write 1";
    assert!(matches!(
        zoned(read0, Some(json!(0))).0,
        Zoned::Linearizable(_)
    ));
    let c = match zoned("0 invoke read null\n0 ok read null", Some(json!(0))).0 {
        Zoned::NotLinearizable(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(c, Conflict::NeverWritten { read: 0 });
}

#[test]
fn keys_the_zones_do_not_fit_are_named() {
    let why = |text: &str, initial: Option<Value>| {
        let h = history(text);
        let refs: Vec<&Op> = h.ops.iter().collect();
        let model = Register::compile_with(&refs, initial.as_ref(), true).expect("compiles");
        applies(&refs, &model).expect_err("the search's key")
    };
    let twice = "0 invoke write 1\n0 ok write 1\n1 invoke write 1\n1 fail write 1";
    assert_eq!(why(twice, None), "op 2 writes a value written before");
    let cas = "0 invoke cas [null,1]\n0 ok cas [null,1]";
    assert_eq!(why(cas, None), "op 0 is a cas");
    let start = "0 invoke write 0\n0 ok write 0";
    assert_eq!(why(start, Some(json!(0))), "op 0 writes the starting value");
}

#[test]
fn two_forward_zones_that_overlap_conflict() {
    // Both reads come after both writes completed: whichever value came second was
    // overwritten before the other's read.
    let c = conflict(
        "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n1 ok write 2
         2 invoke read null\n3 invoke read null\n2 ok read 1\n3 ok read 2",
    );
    let Conflict::Overlap { first, second } = c else {
        panic!("expected overlapping forward zones: {c:?}");
    };
    assert_eq!((first.write, first.first_done), (Some(0), Some(0)));
    assert_eq!((second.write, second.last_call), (Some(1), 3));
    // Concurrent reads, one per value, ordered by the zones: valid.
    let ok = "0 invoke write 1\n2 invoke read null\n0 ok write 1\n1 invoke write 2
              3 invoke read null\n2 ok read 1\n1 ok write 2\n3 ok read 2";
    assert_eq!(order(ok), vec![0, 1, 2, 3]);
}

#[test]
fn a_prefix_makes_pending_ops_info() {
    let text = "0 invoke write 1\n0 ok write 1\n1 invoke write 2\n2 invoke read null
                2 ok read 2\n1 ok write 2";
    let h = history(text);
    let refs: Vec<&Op> = h.ops.iter().collect();
    let model = Register::compile_with(&refs, None, false).expect("compiles");
    // Cut before write 2's completion: it is info, and read, so it stays.
    let (z, counts) = check(&model, &refs, 5, &limits());
    assert_eq!(z, Zoned::Linearizable(vec![0, 1, 2]));
    assert_eq!(counts.tightened_info, 1);
    // Cut before the read's completion: nothing read write 2, so it is dropped.
    let (z, counts) = check(&model, &refs, 4, &limits());
    assert_eq!(z, Zoned::Linearizable(vec![0]));
    assert_eq!(counts.dropped_info, 2);
}

#[test]
fn the_budget_is_looked_at_every_1024_steps() {
    let mut text = String::new();
    for i in 0..600 {
        text += &format!("0 invoke write {i}\n0 ok write {i}\n0 invoke read null\n0 ok read {i}\n");
    }
    let h = history(&text);
    let refs: Vec<&Op> = h.ops.iter().collect();
    let model = Register::compile_with(&refs, None, false).expect("compiles");
    let none = Limits {
        time: Duration::ZERO,
        ..limits()
    };
    assert_eq!(
        check(&model, &refs, usize::MAX, &none).0,
        Zoned::GaveUp("time limit 0 s".to_string())
    );
    // Under 1,024 steps nothing looks at the clock.
    assert!(matches!(
        check(&model, &refs[..4], usize::MAX, &none).0,
        Zoned::Linearizable(_)
    ));
}

/// Two concurrent writes, then one read of each value: whichever write came second was
/// overwritten before the other's read, yet neither read saw a write that ended before its
/// own value's write began. No pattern of `explain` fits; the zone check names the two groups.
#[test]
fn golden_zone_conflict_names_both_groups() {
    let text = "0 invoke write 1
                1 invoke write 2
                0 ok write 1
                1 ok write 2
                2 invoke read null
                3 invoke read null
                2 ok read 1
                3 ok read 2";
    let r = run(CAS, None, text);
    let k = key(&r);
    assert_eq!(k.path, Path::Zones);
    golden(
        k,
        5,
        &[1, 0, 4],
        "write 1 and its reads must all come before write 2 or all after its reads, and neither \
         fits: read of 1 (op 4) began at 0.004 s, after write 2 (op 1) completed at 0.003 s, \
         and read of 2 (op 5) began at 0.005 s, after write 1 (op 0) completed at 0.002 s",
    );
    // The search agrees on the verdict and the op, in its own words.
    let h = history(text);
    let ops: Vec<&_> = h.ops.iter().collect();
    let opts = LinearOptions::default();
    let searched = check_key_on(&ops, &opts, Some(Path::Search)).expect("fits");
    assert_eq!(searched.path, Path::Search);
    assert_eq!(searched.valid, Verdict::Invalid);
    assert_eq!(searched.counterexample.map(|c| c.op), Some(5));
}

/// A write that completed before a read of the starting value began: the starting value's
/// zone runs from −∞ to that read's invoke, and the write lies inside it.
#[test]
fn golden_zone_conflict_with_the_starting_value() {
    let r = run(
        CAS,
        Some(json!(0)),
        "0 invoke read null
         1 invoke write 1
         1 ok write 1
         2 invoke read null
         0 ok read 0
         2 ok read 0",
    );
    golden(
        key(&r),
        3,
        &[0, 1],
        "read of 0 at 0.003 s returned a value overwritten by write 1, which completed at \
         0.002 s before the read began",
    );
}

/// The planner's choice per key: the zone check for read/write keys with unique values, the
/// search for cas, repeated values and the other models; forcing the zones on a key they do
/// not fit is an error that says why.
#[test]
fn each_key_records_its_path() {
    let r = run(
        CAS,
        None,
        "key=plain 0 invoke write 1
         key=plain 0 ok write 1
         key=cas 1 invoke cas [null,1]
         key=cas 1 ok cas [null,1]
         key=again 2 invoke write 1
         key=again 2 ok write 1
         key=again 2 invoke write 1
         key=again 2 ok write 1",
    );
    assert_eq!(r.keys["plain"].path, Path::Zones);
    assert_eq!(r.keys["cas"].path, Path::Search);
    assert_eq!(r.keys["again"].path, Path::Search);
    let json = serde_json::to_value(&r.keys["plain"]).expect("serialises");
    assert_eq!(json["path"], json!("zones"));
    let kv = run(ModelKind::Kv, None, "0 invoke put \"a\"\n0 ok put \"a\"");
    assert_eq!(key(&kv).path, Path::Search);
    let h = history("0 invoke write 1\n0 ok write 1\n1 invoke write 1\n1 ok write 1");
    let ops: Vec<&_> = h.ops.iter().collect();
    let err = check_key_on(&ops, &LinearOptions::default(), Some(Path::Zones))
        .expect_err("repeated values do not fit the zones");
    assert!(
        err.message
            .contains("zone check does not apply to this key: op 2 writes a value written before"),
        "{err}"
    );
}

/// The counters a progress display reads: every key counted once, the unknown ones apart.
#[test]
fn progress_counts_keys_done_and_unknown() {
    let mut h = String::new();
    for i in 0..600 {
        h += &format!("key=big 0 invoke write {i}\nkey=big 0 ok write {i}\n");
        h += &format!("key=big 0 invoke read null\nkey=big 0 ok read {i}\n");
    }
    h += "key=a 1 invoke read null\nkey=a 1 ok read null\n";
    h += "key=b 2 invoke read null\nkey=b 2 ok read 3\n";
    let progress = std::sync::Arc::new(quorate_checker::linear::Progress::default());
    let opts = LinearOptions {
        time_limit: std::time::Duration::ZERO,
        progress: Some(progress.clone()),
        ..LinearOptions::default()
    };
    let r = linear::check(&history(&h), &opts).expect("fits");
    assert_eq!(r.keys["big"].reason.as_deref(), Some("time limit 0 s"));
    // (done, keys, unknown)
    assert_eq!(progress.snapshot(), (3, 3, 1));
}

/// A simulated atomic register at high concurrency: `clients` clients, `ops` ops on each of
/// `keys` keys used one after another, every op taking effect at one instant between its
/// invoke and its completion, unique values. Linearizable by construction.
fn concurrent(seed: u64, keys: usize, ops: usize, clients: usize) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut events = Vec::new();
    let mut next_value = 0u64;
    for k in 0..keys {
        let key = format!("k{k}");
        let mut state = Value::Null;
        // Per client: (f, value, applied result).
        let mut open: Vec<Option<(&str, Value, Option<Value>)>> = vec![None; clients];
        let (mut started, mut busy) = (0, 0);
        while started < ops || busy > 0 {
            let c = rng.gen_range(0..clients);
            let p = Process::Client(c as u64);
            match open[c].take() {
                None if started < ops => {
                    started += 1;
                    busy += 1;
                    let (f, v) = if rng.gen_bool(0.5) {
                        next_value += 1;
                        ("write", json!(next_value))
                    } else {
                        ("read", Value::Null)
                    };
                    events.push(Event::new(p, EventType::Invoke, f, v.clone()).with_key(&key));
                    open[c] = Some((f, v, None));
                }
                None => {}
                Some((f, v, None)) => {
                    // Its instant.
                    let out = if f == "write" {
                        state = v.clone();
                        v.clone()
                    } else {
                        state.clone()
                    };
                    open[c] = Some((f, v, Some(out)));
                }
                Some((f, _, Some(out))) => {
                    busy -= 1;
                    events.push(Event::new(p, EventType::Ok, f, out).with_key(&key));
                }
            }
        }
    }
    for (i, e) in events.iter_mut().enumerate() {
        e.index = Some(i as u64);
    }
    events
}

/// Issue 20's case: 1,000 clients × 100 ops on 10 keys is decided on every key, and with one
/// read made stale (it returns a value overwritten by a write that completed before the read
/// began) exactly that key is invalid, its shortest failing prefix ending at that read.
#[test]
fn a_stale_read_among_1000_concurrent_clients_is_found() {
    let mut events = concurrent(20, 10, 10_000, 1000);
    let h = pair(&events).expect("pairs");
    let r = linear::check(&h, &LinearOptions::default()).expect("fits");
    assert_eq!(r.keys.len(), 10);
    assert!(r
        .keys
        .values()
        .all(|k| k.valid == Verdict::Valid && k.path == Path::Zones));
    // Make a late read on k3 return the value of a write that an ok write certainly followed
    // before the read began.
    let ops: Vec<&Op> = h.ops.iter().filter(|o| o.key == "k3").collect();
    let done = |o: &Op| o.complete.expect("every op completes");
    let writes: Vec<&Op> = ops.iter().copied().filter(|o| o.f == "write").collect();
    let (read, old) = ops
        .iter()
        .rev()
        .filter(|o| o.f == "read")
        .find_map(|r| {
            writes.iter().find_map(|a| {
                let overwritten = writes.iter().any(|b| b.call > done(a) && done(b) < r.call);
                (overwritten && done(a) < r.call).then_some((*r, *a))
            })
        })
        .expect("a read late enough to be stale");
    let at = done(read);
    events[at].value = old.input.clone();
    let h = pair(&events).expect("pairs");
    let r = linear::check(&h, &LinearOptions::default()).expect("fits");
    for (k, key) in &r.keys {
        let want = if k == "k3" {
            Verdict::Invalid
        } else {
            Verdict::Valid
        };
        assert_eq!(key.valid, want, "key {k}");
    }
    let cx = r.keys["k3"]
        .counterexample
        .as_ref()
        .expect("counterexample");
    assert_eq!(cx.op, read.id, "{}", cx.explanation);
    assert!(cx.explanation.contains("overwritten"), "{}", cx.explanation);
}
