//! The quorum checks: each anomaly kind on a hand-written history with exact counts, and every
//! quorum check holding on every linearizable history (seeded random histories).

use quorate_checker::check::{check_events, Check, CheckOptions};
use quorate_checker::history::{Event, EventType, Process};
use quorate_checker::import::Format;
use quorate_checker::verdict::Verdict;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// One client op: process, f, key, input, how it ended (None: never completed), output,
/// invoke and completion times in ms.
#[derive(Clone)]
struct O {
    p: u64,
    f: &'static str,
    key: String,
    input: Value,
    end: Option<EventType>,
    output: Value,
    inv: i64,
    cmp: i64,
}

fn w(p: u64, key: &str, v: i64, inv: i64, cmp: i64) -> O {
    O {
        p,
        f: "write",
        key: key.into(),
        input: json!(v),
        end: Some(EventType::Ok),
        output: json!(v),
        inv,
        cmp,
    }
}

fn r(p: u64, key: &str, v: Value, inv: i64, cmp: i64) -> O {
    O {
        p,
        f: "read",
        key: key.into(),
        input: Value::Null,
        end: Some(EventType::Ok),
        output: v,
        inv,
        cmp,
    }
}

/// Events in time order (invokes after completions at equal times); returns them and each op's
/// id (its invoke's index).
fn events(ops: &[O], extra: Vec<(i64, Event)>) -> (Vec<Event>, Vec<u64>) {
    // (time ns, 0 completion / 1 invoke, op, event)
    let mut evs: Vec<(i64, u8, usize, Event)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        let inv = Event::new(
            Process::Client(o.p),
            EventType::Invoke,
            o.f,
            o.input.clone(),
        )
        .with_key(o.key.clone());
        evs.push((o.inv * 1_000_000, 1, i, inv));
        if let Some(end) = o.end {
            let v = if end == EventType::Ok {
                o.output.clone()
            } else {
                o.input.clone()
            };
            let done = Event::new(Process::Client(o.p), end, o.f, v).with_key(o.key.clone());
            evs.push((o.cmp * 1_000_000, 0, i, done));
        }
    }
    for (t, e) in extra {
        evs.push((t * 1_000_000, 2, usize::MAX, e));
    }
    evs.sort_by_key(|e| (e.0, e.1, e.2));
    let mut ids = vec![0; ops.len()];
    let out = evs
        .into_iter()
        .enumerate()
        .map(|(n, (t, kind, i, mut e))| {
            e.index = Some(n as u64);
            e.time = Some(t);
            if kind == 1 {
                ids[i] = n as u64;
            }
            e
        })
        .collect();
    (out, ids)
}

fn check(ops: &[O], checks: &[Check]) -> (Value, Vec<u64>) {
    check_with(ops, vec![], checks)
}

fn check_with(ops: &[O], extra: Vec<(i64, Event)>, checks: &[Check]) -> (Value, Vec<u64>) {
    let (evs, ids) = events(ops, extra);
    let opts = CheckOptions {
        checks: checks.to_vec(),
        ..CheckOptions::default()
    };
    let report = check_events("h.jsonl", &evs, Format::Jsonl, &opts).expect("checks");
    (report.to_json(), ids)
}

#[test]
fn stale_read_two_versions_behind_with_its_gap() {
    let ops = [
        w(0, "k", 1, 0, 10),
        w(0, "k", 2, 20, 30),
        w(0, "k", 3, 40, 50),
        r(1, "k", json!(1), 60, 70),
    ];
    let (j, ids) = check(&ops, &[]);
    let s = &j["checks"]["stale-reads"];
    assert_eq!(s["valid"], json!(false), "{s}");
    assert_eq!(s["reads"], json!(1));
    assert_eq!(s["stale"], json!(1));
    assert_eq!(s["k_staleness"]["max"], json!(2));
    assert_eq!(s["k_staleness"]["histogram"], json!([[2, 1]]));
    assert_eq!(s["t_visibility_ms"]["max"], json!(30.0));
    assert_eq!(s["examples"][0]["ops"], json!([ids[3], ids[1]]));
    // In the precedence graph: one cycle (the read, and writes 2 and 3 that supersede 1).
    assert_eq!(s["cycles"], json!(1));
    assert_eq!(s["examples"][1]["ops"], json!([ids[3], ids[1]]));
    // 10 ms after w3 completed the read saw an older value: P(consistent) in the 10 ms bucket 0.
    assert_eq!(s["p_consistent"], json!([[10, 0.0]]));
    // The linearizability sentence names the anomaly.
    let cx = &j["checks"]["linearizable"]["keys"]["k"]["counterexample"];
    assert_eq!(cx["op"], json!(ids[3]), "{cx}");
    let e = cx["explanation"].as_str().unwrap();
    assert!(
        e.starts_with("stale read: read of 1 at 0.060 s returned a value overwritten"),
        "{e}"
    );
    assert_eq!(j["valid"], json!(false));
}

#[test]
fn read_of_a_value_never_written() {
    let ops = [
        w(0, "k", 1, 0, 10),
        r(1, "k", json!(99), 20, 30),
        r(2, "k", json!(1), 40, 50),
        r(3, "k2", json!(98), 0, 5),
    ];
    let (j, ids) = check(&ops, &[Check::StaleReads]);
    let s = &j["checks"]["stale-reads"];
    assert_eq!(
        [
            &s["never_written"],
            &s["stale"],
            &s["future_reads"],
            &s["cycles"]
        ],
        [&json!(2), &json!(0), &json!(0), &json!(0)],
        "{s}"
    );
    assert_eq!(s["valid"], json!(false));
    assert_eq!(s["keys"], json!(["k", "k2"]));
    let ex = s["examples"].as_array().unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0]["ops"], json!([ids[1]]));
    assert_eq!(
        ex[0]["sentence"],
        format!(
            "read of a value never written: read (op {}) returned 99",
            ids[1]
        )
    );
    assert_eq!(ex[1]["ops"], json!([ids[3]]));
    assert!(
        j["checks"].get("linearizable").is_none(),
        "--checks selects"
    );
}

/// A cycle of four ops, none of them a stale read's two: read 2 (concurrent with write 2)
/// completed before write 3 began, write 3 completed before read 1 began, read 1 returned 1,
/// which write 2 supersedes, and write 2 is what read 2 returned.
#[test]
fn cycle_through_four_ops_with_its_ops_in_order() {
    let ops = [
        w(0, "k", 1, 0, 10),
        w(1, "k", 2, 20, 100),
        r(2, "k", json!(2), 30, 40),
        w(3, "k", 3, 50, 60),
        r(4, "k", json!(1), 70, 80),
        // A second key: a read of a value written only later, a two-op cycle.
        r(5, "k2", json!(7), 0, 10),
        w(6, "k2", 7, 20, 30),
    ];
    let (j, ids) = check(&ops, &[Check::StaleReads]);
    let s = &j["checks"]["stale-reads"];
    assert_eq!(
        [
            &s["stale"],
            &s["future_reads"],
            &s["never_written"],
            &s["cycles"]
        ],
        [&json!(1), &json!(1), &json!(0), &json!(2)],
        "{s}"
    );
    let cycles: Vec<&Value> = s["examples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sentence"].as_str().unwrap().starts_with("cycle of"))
        .collect();
    assert_eq!(cycles.len(), 2);
    assert_eq!(cycles[0]["key"], "k");
    assert_eq!(cycles[0]["ops"], json!([ids[2], ids[3], ids[4], ids[1]]));
    assert_eq!(cycles[1]["key"], "k2");
    assert_eq!(cycles[1]["ops"], json!([ids[5], ids[6]]));
    let sentence = cycles[0]["sentence"].as_str().unwrap();
    for part in [
        "cycle of 4 ops in the precedence graph",
        &format!(
            "read of 2 (op {}) completed before the write of 3 (op {}) began",
            ids[2], ids[3]
        ),
        &format!(
            "read of 1 (op {}) returned a value the write of 2 (op {}) supersedes",
            ids[4], ids[1]
        ),
        &format!(
            "write of 2 (op {}) wrote what the read of 2 (op {}) returned",
            ids[1], ids[2]
        ),
    ] {
        assert!(sentence.contains(part), "{part:?} in {sentence}");
    }
}

#[test]
fn info_writes_never_supersede_and_may_be_read() {
    let mut info = w(0, "k", 2, 20, 30);
    info.end = Some(EventType::Info);
    let ops = [
        w(1, "k", 1, 0, 10),
        info,
        r(2, "k", json!(1), 40, 50),
        r(3, "k", json!(2), 60, 70),
    ];
    let (j, _) = check(&ops, &[]);
    for c in ["stale-reads", "lost-writes", "sessions"] {
        assert_eq!(
            j["checks"][c]["valid"],
            json!(true),
            "{c}: {}",
            j["checks"][c]
        );
    }
}

#[test]
fn lost_write_and_a_concurrent_overwrite_that_is_not() {
    let lost = [
        w(0, "k", 1, 0, 10),
        w(0, "k", 2, 20, 30),
        r(1, "k", json!(1), 40, 50),
    ];
    let (j, ids) = check(&lost, &[]);
    let l = &j["checks"]["lost-writes"];
    assert_eq!(l["acknowledged"], json!(2), "{l}");
    assert_eq!(l["lost"], json!(1));
    assert_eq!(l["examples"][0]["ops"], json!([ids[1], ids[2]]));
    assert_eq!(j["checks"]["stale-reads"]["stale"], json!(1));

    let overwritten = [
        w(0, "k", 1, 0, 30),
        w(1, "k", 2, 10, 20),
        r(2, "k", json!(1), 40, 50),
    ];
    let (j, _) = check(&overwritten, &[]);
    assert_eq!(j["checks"]["lost-writes"]["lost"], json!(0));
    assert_eq!(j["checks"]["stale-reads"]["stale"], json!(0));
    assert_eq!(j["valid"], json!(true), "{j}");
}

#[test]
fn monotonic_reads_violation() {
    let ops = [
        w(0, "k", 1, 0, 10),
        w(7, "k", 2, 20, 30),
        r(5, "k", json!(2), 25, 35),
        r(5, "k", json!(1), 40, 50),
    ];
    let (j, ids) = check(&ops, &[]);
    let s = &j["checks"]["sessions"];
    assert_eq!(s["monotonic_reads"], json!(1), "{s}");
    assert_eq!(s["read_your_writes"], json!(0));
    assert_eq!(s["monotonic_writes"], json!(0));
    assert_eq!(s["examples"][0]["ops"], json!([ids[2], ids[3]]));
}

#[test]
fn read_your_writes_violation() {
    let ops = [
        w(1, "k", 1, 0, 10),
        w(1, "k", 2, 20, 30),
        r(1, "k", json!(1), 40, 50),
    ];
    let (j, _) = check(&ops, &[Check::Sessions]);
    let s = &j["checks"]["sessions"];
    assert_eq!(s["read_your_writes"], json!(1), "{s}");
    assert_eq!(s["monotonic_reads"], json!(0));
    assert_eq!(s["monotonic_writes"], json!(0));
    assert_eq!(s["valid"], json!(false));
}

#[test]
fn monotonic_writes_violation() {
    let ops = [
        w(1, "k", 1, 0, 10),
        w(1, "k", 2, 20, 30),
        r(2, "k", json!(2), 35, 40),
        r(3, "k", json!(1), 45, 50),
    ];
    let (j, _) = check(&ops, &[Check::Sessions]);
    let s = &j["checks"]["sessions"];
    assert_eq!(s["monotonic_writes"], json!(1), "{s}");
    assert_eq!(s["monotonic_reads"], json!(0));
    assert_eq!(s["read_your_writes"], json!(0));
}

fn add(p: u64, v: i64, end: Option<EventType>, inv: i64, cmp: i64) -> O {
    O {
        p,
        f: "add",
        key: "s".into(),
        input: json!(v),
        end,
        output: json!(v),
        inv,
        cmp,
    }
}

#[test]
fn set_elements_ok_lost_unexpected_recovered_stale() {
    let ops = [
        add(0, 1, Some(EventType::Ok), 0, 10),
        add(1, 2, Some(EventType::Ok), 0, 10),
        add(2, 3, Some(EventType::Info), 0, 10),
        add(3, 4, Some(EventType::Fail), 0, 10),
        add(4, 5, Some(EventType::Ok), 0, 10),
        r(5, "s", json!([1]), 20, 30),
        r(6, "s", json!([1, 2, 3, 9]), 40, 50),
        // Acknowledged after the final read began: that read owed it nothing (not lost).
        add(7, 6, Some(EventType::Ok), 35, 45),
    ];
    let (j, ids) = check(&ops, &[]);
    let s = &j["checks"]["set"];
    assert_eq!(s["ok"], json!(2), "{s}");
    assert_eq!(s["lost"], json!(1));
    assert_eq!(s["unread"], json!(1));
    assert_eq!(s["unexpected"], json!(1));
    assert_eq!(s["recovered"], json!(1));
    assert_eq!(s["stale"], json!(1));
    assert_eq!(s["valid"], json!(false));
    assert_eq!(s["stable_latency_ms"]["max"], json!(30.0));
    assert_eq!(j["model"], json!("set"));
    assert!(j["checks"].get("stale-reads").is_none(), "{j}");
    let lost = s["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["sentence"].as_str().unwrap().starts_with("lost"))
        .unwrap();
    assert_eq!(lost["ops"], json!([ids[4], ids[6]]));
    // Every anomalous element reaches the report, at the read that shows it.
    let (evs, _) = events(&ops, vec![]);
    let report =
        check_events("h.jsonl", &evs, Format::Jsonl, &CheckOptions::default()).expect("checks");
    let mut at: Vec<(u64, &str)> = report
        .anomalies
        .iter()
        .filter(|a| a.check == Check::Set)
        .map(|a| (a.at, a.example.sentence.split(':').next().unwrap()))
        .collect();
    at.sort();
    assert_eq!(
        at,
        [(ids[5], "stale"), (ids[6], "lost"), (ids[6], "unexpected")]
    );
}

/// Garage's set2 rule (`set-read-after-write`, asked for by name): the same counts as `set`,
/// and a stale element alone fails it, where set-full only counts it.
#[test]
fn set_read_after_write_fails_on_a_stale_element_that_set_full_only_counts() {
    let ops = [
        add(0, 1, Some(EventType::Ok), 0, 10),
        add(1, 2, Some(EventType::Ok), 0, 10),
        // Began after both adds were acknowledged, yet lacks 2; the final read has both.
        r(2, "s", json!([1]), 20, 30),
        r(3, "s", json!([1, 2]), 40, 50),
    ];
    let (j, ids) = check(&ops, &[Check::Set, Check::SetReadAfterWrite]);
    let full = &j["checks"]["set"];
    let raw = &j["checks"]["set-read-after-write"];
    assert_eq!(
        (full["valid"].clone(), full["stale"].clone()),
        (json!(true), json!(1)),
        "{j}"
    );
    assert_eq!(
        (raw["valid"].clone(), raw["stale"].clone()),
        (json!(false), json!(1)),
        "{j}"
    );
    assert_eq!(raw["keys"], json!(["s"]), "{raw}");
    assert_eq!(raw["examples"][0]["ops"], json!([ids[1], ids[2]]), "{raw}");
    assert_eq!(j["valid"], json!(false));
    // Not among the defaults: a set history's default verdict stays set-full's.
    let (j, _) = check(&ops, &[]);
    assert!(j["checks"].get("set-read-after-write").is_none(), "{j}");
    assert_eq!(j["checks"]["set"]["valid"], json!(true));
    // Without the stale read, both hold.
    let (j, _) = check(
        &[ops[0].clone(), ops[1].clone(), ops[3].clone()],
        &[Check::SetReadAfterWrite],
    );
    assert_eq!(
        j["checks"]["set-read-after-write"]["valid"],
        json!(true),
        "{j}"
    );
    // Asked for on a register history: skipped with the reason.
    let (j, _) = check(&[w(0, "k", 1, 0, 10)], &[Check::SetReadAfterWrite]);
    assert_eq!(
        j["checks"]["set-read-after-write"]["skipped"],
        json!("no add ops, so this is not a set history"),
        "{j}"
    );
}

#[test]
fn convergence_from_the_harness_observation() {
    let ops = [w(0, "k2", 1, 0, 10), r(1, "k2", json!(1), 20, 30)];
    let obs = Event::new(
        Process::Harness,
        EventType::Info,
        "convergence",
        json!({"converged": false, "keys_differing": 2, "keys": ["k10", "k2"]}),
    );
    let (j, _) = check_with(&ops, vec![(40, obs)], &[]);
    assert_eq!(
        j["checks"]["convergence"],
        json!({"valid": false, "keys_differing": 2, "keys": ["k2", "k10"]})
    );
    assert_eq!(j["valid"], json!(false));
    // Without the observation the check is left out by default.
    let (j, _) = check(&ops, &[]);
    assert!(j["checks"].get("convergence").is_none());
    assert_eq!(j["valid"], json!(true));
}

#[test]
fn repeated_values_skip_the_register_checks_with_a_reason() {
    let ops = [
        w(0, "k", 1, 0, 10),
        w(0, "k", 1, 20, 30),
        r(1, "k", json!(1), 40, 50),
    ];
    let (j, _) = check(&ops, &[]);
    let reason = j["checks"]["stale-reads"]["skipped"].as_str().unwrap();
    assert!(
        reason.starts_with("values repeat, so reads cannot name their writes"),
        "{reason}"
    );
    assert_eq!(j["valid"], json!(true));
}

#[test]
fn no_client_ops_is_unknown_never_valid() {
    let obs = Event::new(Process::Nemesis, EventType::Info, "kill-start", json!(null));
    let (j, _) = check_with(&[], vec![(0, obs)], &[]);
    assert_eq!(j["valid"], json!("unknown"));
    assert_eq!(j["reason"], json!("no client ops"));
}

#[test]
fn summary_leads_with_invalid_key_count_in_natural_order() {
    let mut ops = Vec::new();
    for (n, key) in ["k10", "k2", "k1"].iter().enumerate() {
        let base = n as i64 * 100;
        ops.push(w(0, key, 1, base, base + 10));
        ops.push(w(0, key, 2, base + 20, base + 30));
        let seen = if *key == "k1" { 2 } else { 1 };
        ops.push(r(1, key, json!(seen), base + 40, base + 50));
    }
    let (evs, _) = events(&ops, vec![]);
    let report = check_events("h.jsonl", &evs, Format::Jsonl, &CheckOptions::default()).unwrap();
    assert_eq!(report.valid, Verdict::Invalid);
    let s = report.summary();
    assert!(
        s.contains("linearizable: INVALID — 2 of 3 keys invalid"),
        "{s}"
    );
    assert!(
        s.contains("stale-reads: INVALID — 2 stale of 3 reads, k ≤ 1"),
        "{s}"
    );
    assert!(s.contains("2 of 3 keys invalid: k2 k10"), "{s}");
    let (k2, k10) = (
        s.find("key \"k2\"").unwrap(),
        s.find("key \"k10\"").unwrap(),
    );
    assert!(k2 < k10, "{s}");
}

/// A random linearizable register history: each op takes effect at a distinct instant inside
/// its interval; reads return the value of the last write before their instant; some writes
/// end `info` (half of them took effect, half never did) and their process is retired.
fn linearizable_history(seed: u64) -> Vec<O> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keys = ["k1", "k2"];
    let n = rng.gen_range(5..60);
    let mut points: Vec<i64> = (0..n).map(|i| i * 10 + rng.gen_range(0..5)).collect();
    points.sort_unstable();
    let mut ops = Vec::new();
    let mut value = 0i64;
    let mut state = std::collections::BTreeMap::<&str, Value>::new();
    // process -> busy until (ms); retired processes are removed
    let mut free: Vec<(u64, i64)> = Vec::new();
    let mut next_p = 0u64;
    for t in points {
        let key = keys[rng.gen_range(0..keys.len())];
        let inv = t - rng.gen_range(0..40);
        let cmp = t + rng.gen_range(1..40);
        let p = match free.iter().position(|&(_, busy)| busy < inv) {
            Some(i) => free.remove(i).0,
            None => {
                next_p += 1;
                next_p
            }
        };
        if rng.gen_bool(0.5) {
            value += 1;
            let mut op = w(p, key, value, inv, cmp);
            let info = rng.gen_bool(0.15);
            let happened = !info || rng.gen_bool(0.5);
            if happened {
                state.insert(key, json!(value));
            }
            if info {
                op.end = if rng.gen_bool(0.5) {
                    Some(EventType::Info)
                } else {
                    None
                };
                ops.push(op);
                continue; // the process is retired
            }
            ops.push(op);
        } else {
            let seen = state.get(key).cloned().unwrap_or(Value::Null);
            ops.push(r(p, key, seen, inv, cmp));
        }
        free.push((p, cmp));
    }
    // Final reads of every key after everything else, as a run's: without a read after the
    // writes, lost-writes has nothing to judge and is unknown, not valid.
    let end = ops.iter().map(|o| o.cmp).max().unwrap_or(0) + 10;
    for (i, key) in keys.iter().enumerate() {
        let seen = state.get(key).cloned().unwrap_or(Value::Null);
        ops.push(r(next_p + 1 + i as u64, key, seen, end, end + 5));
    }
    ops
}

#[test]
fn every_quorum_check_holds_on_every_linearizable_history() {
    for seed in 0..300 {
        let ops = linearizable_history(seed);
        let (j, _) = check(&ops, &[]);
        assert_eq!(
            j["checks"]["linearizable"]["valid"],
            json!(true),
            "seed {seed}: the generator made a non-linearizable history: {j}"
        );
        for c in ["stale-reads", "lost-writes", "sessions"] {
            assert_eq!(
                j["checks"][c]["valid"],
                json!(true),
                "seed {seed} {c}: {}",
                j["checks"][c]
            );
        }
        assert_eq!(j["valid"], json!(true), "seed {seed}");
    }
}

/// A random register history of one key, not linearizable in general: reads return any value
/// some write of the key writes (earlier or later), the initial value, or now and then a value
/// never written; some writes end `info`.
fn random_history(seed: u64) -> Vec<O> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.gen_range(2..30);
    let writes = rng.gen_range(1..=n);
    let mut ops = Vec::new();
    for i in 0..n {
        let inv = rng.gen_range(0..200);
        let cmp = inv + rng.gen_range(1..60);
        let p = i as u64;
        if i < writes {
            let mut op = w(p, "k", i as i64 + 1, inv, cmp);
            if rng.gen_bool(0.15) {
                op.end = Some(EventType::Info);
            }
            ops.push(op);
        } else {
            let v = match rng.gen_range(0..10) {
                0 => Value::Null,
                1 => json!(1000),
                _ => json!(rng.gen_range(1..=writes) as i64),
            };
            ops.push(r(p, "k", v, inv, cmp));
        }
    }
    ops
}

/// The precedence graph and the sweep agree: a key's graph has a cycle exactly when the sweep
/// finds a stale read or a read of a value written only later.
#[test]
fn graph_cycles_exactly_when_the_sweep_finds_stale_or_future_reads() {
    let mut with_cycles = 0;
    for seed in 0..2000 {
        let ops = random_history(seed);
        let (j, _) = check(&ops, &[Check::StaleReads]);
        let s = &j["checks"]["stale-reads"];
        let sweep = s["stale"].as_u64().unwrap() + s["future_reads"].as_u64().unwrap();
        let cycles = s["cycles"].as_u64().unwrap();
        assert_eq!(cycles > 0, sweep > 0, "seed {seed}: {s}");
        with_cycles += (cycles > 0) as u32;
    }
    // The generator makes both kinds of history.
    assert!(
        (200..1800).contains(&with_cycles),
        "{with_cycles} of 2000 with cycles"
    );
}
