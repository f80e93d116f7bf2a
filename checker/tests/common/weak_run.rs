//! A run of a weak (R = W = 1) three-replica register store, simulated: the history such a
//! run records, for the report tests (an invalid run with stale reads, fault windows, `info`
//! ops and the harness's final reads) without starting a cluster. Seeded; no wall clock.
//!
//! Each write lands on one replica at its completion and reaches the others at once, except
//! during the partition window, when it takes hundreds of ms (so the keys written outside the
//! window are valid, those inside mostly not); each read asks one replica for the
//! newest write that has reached it. Clients rotate keys every `ops_per_key` ops, as the
//! harness's register workload does; after a quiet second, one final read per key (process
//! 1,000,000,000 + key number) sees every write.

#![allow(dead_code)] // each test binary uses part of it

use quorate_checker::history::{Event, EventType, Process};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const MS: i64 = 1_000_000;
const REPLICAS: usize = 3;

struct Written {
    value: i64,
    /// When it reached each replica (ns); `i64::MAX`: never.
    arrives: [i64; REPLICAS],
    /// Order among the key's writes (completion time).
    ts: i64,
}

/// The events of a simulated weak run: `ops` client ops by 10 clients, then the final reads.
/// The partition window covers the middle third of the run.
pub fn events(seed: u64, ops: usize, ops_per_key: usize) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clients = 10u64;
    // Each client's next invoke; ops are made in invoke order, so a read sees every write
    // invoked before it that has reached its replica.
    let mut next: Vec<i64> = (0..clients).map(|_| rng.gen_range(0..3 * MS)).collect();
    // (time, order, event)
    let mut out: Vec<(i64, u64, Event)> = Vec::new();
    let mut order = 0u64;
    let mut push = |out: &mut Vec<(i64, u64, Event)>, t: i64, e: Event| {
        order += 1;
        out.push((t, order, e));
    };
    let mut keys: Vec<Vec<Written>> = Vec::new();
    let mut next_value = 0i64;
    // The run lasts about ops × 1.5 ms / clients × 10; the partition is its middle third.
    let span = (ops as i64) * 2 * MS;
    let (part_start, part_stop) = (span / 3, 2 * span / 3);
    for i in 0..ops {
        let key = i / ops_per_key;
        if keys.len() <= key {
            keys.push(Vec::new());
        }
        let c = (0..clients as usize).min_by_key(|&c| next[c]).unwrap();
        let inv = next[c];
        let d = rng.gen_range(MS / 2..12 * MS);
        let cmp = inv + d;
        next[c] = cmp + rng.gen_range(0..3 * MS);
        let node = rng.gen_range(0..REPLICAS);
        let partitioned = (part_start..part_stop).contains(&inv);
        let name = format!("k{key}");
        let mk = |kind: EventType, f: &str, v: Value| {
            let mut e = Event::new(Process::Client(c as u64), kind, f, v).with_key(name.clone());
            e.node = Some(format!("n{}", node + 1));
            e
        };
        if rng.gen_bool(0.5) {
            next_value += 1;
            let v = next_value;
            let info = partitioned && rng.gen_bool(0.08);
            let mut arrives = [i64::MAX; REPLICAS];
            let applied = !info || rng.gen_bool(0.5);
            if applied {
                for (r, a) in arrives.iter_mut().enumerate() {
                    *a = if r == node {
                        cmp
                    } else if partitioned {
                        cmp + rng.gen_range(100 * MS..900 * MS)
                    } else {
                        // Healthy links: every replica has it by the time the write returns.
                        cmp
                    };
                }
                keys[key].push(Written {
                    value: v,
                    arrives,
                    ts: cmp,
                });
            }
            push(&mut out, inv, mk(EventType::Invoke, "write", json!(v)));
            if info {
                // A timeout: the client gives up, and its process number retires with it.
                let e = mk(EventType::Info, "write", json!(v)).with_error("timeout");
                push(&mut out, inv + 500 * MS, e);
                next[c] = inv + 500 * MS;
            } else {
                push(&mut out, cmp, mk(EventType::Ok, "write", json!(v)));
            }
        } else {
            let at = inv + d / 2;
            let seen = keys[key]
                .iter()
                .filter(|w| w.arrives[node] <= at)
                .max_by_key(|w| w.ts)
                .map_or(Value::Null, |w| json!(w.value));
            push(&mut out, inv, mk(EventType::Invoke, "read", Value::Null));
            push(&mut out, cmp, mk(EventType::Ok, "read", seen));
        }
    }
    let nemesis = |f: &str, v: Value| Event::new(Process::Nemesis, EventType::Info, f, v);
    push(
        &mut out,
        part_start,
        nemesis(
            "partition-start",
            json!({"kind": "one", "drop": [["n1", "n2"], ["n2", "n1"], ["n1", "n3"], ["n3", "n1"]]}),
        ),
    );
    push(&mut out, part_stop, nemesis("partition-stop", Value::Null));
    let end = next.iter().copied().max().unwrap_or(0) + 1000 * MS;
    push(
        &mut out,
        end,
        Event::new(
            Process::Harness,
            EventType::Info,
            "convergence",
            json!({"converged": true, "keys_differing": 0}),
        ),
    );
    for (k, writes) in keys.iter().enumerate() {
        let p = Process::Client(1_000_000_000 + k as u64);
        let latest = writes
            .iter()
            .max_by_key(|w| w.ts)
            .map_or(Value::Null, |w| json!(w.value));
        let t = end + (k as i64 + 1) * MS;
        let name = format!("k{k}");
        push(
            &mut out,
            t,
            Event::new(p, EventType::Invoke, "read", Value::Null).with_key(name.clone()),
        );
        push(
            &mut out,
            t + MS / 2,
            Event::new(p, EventType::Ok, "read", latest).with_key(name),
        );
    }
    out.sort_by_key(|e| (e.0, e.1));
    out.into_iter()
        .enumerate()
        .map(|(i, (t, _, mut e))| {
            e.index = Some(i as u64);
            e.time = Some(t);
            e
        })
        .collect()
}

/// The `test.json` the harness would write beside it.
pub fn test_json(seed: u64) -> Value {
    json!({
        "name": "weak-sim",
        "seed": seed,
        "args": {"preset": "weak", "nemesis": ["partition"], "workload": "register"},
        "nodes": ["n1", "n2", "n3"],
    })
}

/// Write the run's `history.jsonl` and `test.json` into `dir`; returns the history's path.
pub fn write(
    dir: &std::path::Path,
    seed: u64,
    ops: usize,
    ops_per_key: usize,
) -> std::path::PathBuf {
    let mut text = String::new();
    for e in events(seed, ops, ops_per_key) {
        text.push_str(&serde_json::to_string(&e).expect("an event serialises"));
        text.push('\n');
    }
    let history = dir.join("history.jsonl");
    std::fs::write(&history, text).expect("write history.jsonl");
    std::fs::write(
        dir.join("test.json"),
        serde_json::to_vec_pretty(&test_json(seed)).expect("json"),
    )
    .expect("write test.json");
    history
}
