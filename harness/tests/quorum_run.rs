//! Runs judged by the quorum checks (issue 8): how, and how much, a leaderless store falls
//! short — stale reads with their k- and t-distributions, lost writes, the set workload's
//! set-full, and the `slow` / `flaky` faults. Real `quorate-node` clusters, short seeded runs.
//!
//! Like `run_cli.rs`, the tests take a lock and run one at a time, and need
//! `target/<profile>/quorate-node` (`cargo build -p quorate-node`; `make test` builds it).

mod common;
use common::{results_of, run_dir, serial, stderr};

use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// A run of `quorate run` with `args` after the common ones; a short quiet period (the checks
/// here do not need three anti-entropy rounds).
fn run(results: &Path, seed: u64, args: &[&str]) -> Output {
    let seed = seed.to_string();
    common::run(
        results,
        &[&["--seed", seed.as_str(), "--check-time-limit", "20"], args].concat(),
    )
}

fn history(o: &Output) -> Vec<Value> {
    common::history(&run_dir(o))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a count, got {v}"))
}

/// A register run: 5 s of faults every 1.5 s, 2 s quiet.
fn register(results: &Path, preset: &str, nemesis: &str, seed: u64) -> Output {
    let args = [
        "--preset",
        preset,
        "--nemesis",
        nemesis,
        "--time-limit",
        "5",
        "--nemesis-interval",
        "1.5",
        "--quiet",
        "2",
    ];
    run(results, seed, &args)
}

/// Why a weak run's stale-reads result does not show stale reads with plausible k- and
/// t-distributions, or `None` when it does.
fn stale_reads_not_shown(stale: &Value) -> Option<String> {
    let n = u(&stale["stale"]);
    if n == 0 {
        return Some(format!("no stale read among {} reads", stale["reads"]));
    }
    assert!(u(&stale["reads"]) >= n, "{stale}");
    assert_eq!(stale["valid"], false, "stale reads make the check invalid");
    // k: the histogram counts every stale read, each at least one version behind.
    let k = &stale["k_staleness"];
    let hist = k["histogram"].as_array().expect("k histogram");
    let counted: u64 = hist.iter().map(|b| u(&b[1])).sum();
    assert_eq!(counted, n, "the k histogram counts every stale read: {k}");
    assert!(hist.iter().all(|b| u(&b[0]) >= 1), "k >= 1: {k}");
    assert!(u(&k["p50"]) >= 1 && u(&k["p50"]) <= u(&k["max"]), "{k}");
    // t: the gaps are times, ordered, and a stale read began after its superseding write.
    let t = &stale["t_visibility_ms"];
    let (p50, max) = (t["p50"].as_f64(), t["max"].as_f64());
    let (Some(p50), Some(max)) = (p50, max) else {
        panic!("t_visibility_ms without times: {t}");
    };
    assert!(0.0 <= p50 && p50 <= max, "{t}");
    // P(consistent read): shares in [0, 1] over increasing time buckets, not all 1.
    let p = stale["p_consistent"].as_array().expect("p_consistent");
    assert!(!p.is_empty(), "{stale}");
    let edges: Vec<f64> = p.iter().map(|e| e[0].as_f64().unwrap()).collect();
    assert!(edges.windows(2).all(|w| w[0] < w[1]), "{p:?}");
    assert!(p
        .iter()
        .all(|e| (0.0..=1.0).contains(&e[1].as_f64().unwrap())));
    assert!(p.iter().any(|e| e[1].as_f64().unwrap() < 1.0), "{p:?}");
    None
}

/// Same seeds, same nemesis: `abd` has no stale read and no lost write in any seed tried,
/// while `weak` (N=3, R=W=1) shows stale reads with their distributions within 5 seeds.
#[test]
fn abd_has_no_stale_reads_or_lost_writes_where_weak_has_them() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let mut tried = Vec::new();
    for seed in 1..=5 {
        let abd = results_of(&register(t.path(), "abd", "partition", seed));
        let (stale, lost) = (&abd["checks"]["stale-reads"], &abd["checks"]["lost-writes"]);
        assert_eq!(
            (u(&stale["stale"]), stale["valid"].clone()),
            (0, Value::Bool(true)),
            "seed {seed}: abd read stale: {stale}"
        );
        assert!(u(&stale["reads"]) > 0, "seed {seed}: no reads judged");
        assert_eq!(
            (u(&lost["lost"]), lost["valid"].clone()),
            (0, Value::Bool(true)),
            "seed {seed}: abd lost writes: {lost}"
        );
        assert!(u(&lost["acknowledged"]) > 0, "seed {seed}: {lost}");

        let weak = results_of(&register(t.path(), "weak", "partition", seed));
        match stale_reads_not_shown(&weak["checks"]["stale-reads"]) {
            None => return,
            Some(why) => tried.push(format!("seed {seed}: {why}")),
        }
    }
    panic!(
        "weak never showed stale reads in 5 seeds:\n{}",
        tried.join("\n")
    );
}

/// `strict` (R + W > N): a read that begins after a write completed sees it or newer — 0 stale
/// reads in every seed, without faults and with `slow` links into a home node of the busy key —
/// while the linearizability check finds what R + W > N does not promise (a quorum read is not
/// linearizable without a blocking write-back).
#[test]
fn strict_keeps_the_quorum_promise_without_faults_and_under_slow() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    for nemesis in ["none", "slow"] {
        // The promise (no stale read) must hold in every seed run; the anomaly
        // (non-linearizable) need show in only one of up to 5, as for any weak configuration:
        // seeds 1 and 2 always run, 3 to 5 only while nothing was caught.
        let mut caught = Vec::new();
        for seed in 1..=5u64 {
            if seed > 2 && !caught.is_empty() {
                break;
            }
            let o = register(t.path(), "strict", nemesis, seed);
            let r = results_of(&o);
            let stale = &r["checks"]["stale-reads"];
            assert_eq!(
                (stale["valid"].clone(), u(&stale["stale"])),
                (Value::Bool(true), 0),
                "strict + {nemesis}, seed {seed}: stale reads: {stale}"
            );
            assert!(u(&stale["reads"]) > 0, "{stale}");
            // Not linearizable all the same: a quorum read without a blocking write-back can
            // return a value that a later read, from the other replicas, does not see yet.
            let lin = &r["checks"]["linearizable"]["valid"];
            // (`unknown`, the search out of budget on a loaded machine, is not a catch.)
            if lin == false {
                caught.push(seed);
            }
            if nemesis == "slow" {
                assert_slow_events(&history(&o));
            }
        }
        assert!(
            !caught.is_empty(),
            "strict + {nemesis}: linearizable in all of seeds 1-5; a quorum read without a \
             blocking write-back should have been caught in one"
        );
    }
}

/// `slow-start` / `-stop` as HISTORY.md gives them: the links into one node, delay, jitter.
fn assert_slow_events(h: &[Value]) {
    let starts: Vec<&Value> = h.iter().filter(|e| e["f"] == "slow-start").collect();
    let stops = h.iter().filter(|e| e["f"] == "slow-stop").count();
    assert!(!starts.is_empty(), "no slow-start in the history");
    assert_eq!(starts.len(), stops, "every slow window stops");
    for s in starts {
        assert_eq!(s["process"], "nemesis");
        assert!(s.get("error").is_none(), "{s}");
        let v = &s["value"];
        assert_eq!((u(&v["delay_ms"]), u(&v["jitter_ms"])), (50, 25), "{v}");
        let links = v["links"].as_array().unwrap();
        assert_eq!(links.len(), 4, "every other node's link into one node: {v}");
        assert!(links.iter().all(|l| l[1] == v["node"] && l[0] != v["node"]));
    }
}

/// A stale restore under the set workload: acknowledged adds go missing from reads (stale) or
/// for good (lost), caught within 5 seeds; and every run records the nodes' `/stats` and
/// names the repair mechanisms whose counters moved.
#[test]
fn stale_restore_with_the_set_workload_is_caught_and_repairs_are_named() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let mut tried = Vec::new();
    for seed in 1..=5 {
        let args = [
            "--preset",
            "abd",
            "--workload",
            "set",
            "--nemesis",
            "stale-restore",
            "--time-limit",
            "6",
            "--nemesis-interval",
            "2",
            "--quiet",
            "3.5",
        ];
        let o = run(t.path(), seed, &args);
        let r = results_of(&o);
        assert_repairs_named(&r, &stderr(&o));
        let set = &r["checks"]["set"];
        let (stale, lost) = (u(&set["stale"]), u(&set["lost"]));
        if stale + lost == 0 {
            tried.push(format!("seed {seed}: {set}"));
            continue;
        }
        let examples = set["examples"].to_string();
        assert!(
            examples.contains("stale: add of") || examples.contains("lost: add of"),
            "seed {seed}: the examples name the add: {examples}"
        );
        return;
    }
    panic!(
        "stale-restore never hid an acknowledged add:\n{}",
        tried.join("\n")
    );
}

/// `run.node_stats` holds every node's counters; `run.repairs` sums them and its sentence
/// (also on stderr) names exactly the mechanisms whose counters moved.
fn assert_repairs_named(r: &Value, stderr: &str) {
    let stats = r["run"]["node_stats"].as_object().expect("run.node_stats");
    assert_eq!(stats.len(), 5, "{stats:?}");
    for (node, s) in stats {
        assert!(s["read_repairs"].is_u64(), "{node}: {s}");
    }
    let rep = &r["run"]["repairs"];
    let sentence = rep["sentence"].as_str().expect("a sentence");
    assert!(stderr.contains(sentence), "the summary gives it: {stderr}");
    let named = rep["mechanisms"].as_array().unwrap();
    for (counter, name) in [
        ("read_repairs", "read repair"),
        ("keys_repaired", "anti-entropy"),
        ("hints_delivered", "hinted handoff"),
    ] {
        let total: u64 = stats.values().map(|s| u(&s[counter])).sum();
        assert_eq!(u(&rep[counter]), total, "{rep}");
        let is_named = named.iter().any(|n| n == name);
        assert_eq!(is_named, total > 0, "{name}: {rep}");
        assert_eq!(sentence.contains(name), total > 0, "{sentence}");
    }
}

/// The set workload on `abd` without faults: every acknowledged add is in the final read
/// (set valid, ok = acknowledged adds, none lost, stale or unexpected), and the history is
/// HISTORY.md's set shape.
#[test]
fn set_workload_on_abd_keeps_every_acknowledged_add() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let args = [
        "--preset",
        "abd",
        "--workload",
        "set",
        "--nemesis",
        "none",
        "--time-limit",
        "3",
        "--quiet",
        "1",
    ];
    let o = run(t.path(), 1, &args);
    let r = results_of(&o);
    assert_eq!(o.status.code(), Some(0), "{r}");
    let set = &r["checks"]["set"];
    let h = history(&o);
    let acked = h
        .iter()
        .filter(|e| e["f"] == "add" && e["type"] == "ok")
        .count() as u64;
    assert!(acked > 0, "no add acknowledged");
    assert_eq!(set["valid"], true, "{set}");
    assert_eq!(u(&set["ok"]), acked, "{set}");
    for field in ["lost", "unexpected", "stale"] {
        assert_eq!(u(&set[field]), 0, "{field}: {set}");
    }
    assert!(
        r["checks"]["linearizable"]["skipped"].is_string(),
        "{}",
        r["checks"]
    );
    // Shape: adds of unique numbers; ok reads are sorted arrays; keys are set names.
    let mut elements = std::collections::BTreeSet::new();
    for e in h.iter().filter(|e| e["process"].is_u64()) {
        assert!(e["key"].as_str().unwrap().starts_with("set"), "{e}");
        if e["f"] == "add" && e["type"] == "invoke" {
            assert!(elements.insert(u(&e["value"])), "added twice: {e}");
        }
        if e["f"] == "read" && e["type"] == "ok" {
            let v: Vec<u64> = e["value"].as_array().unwrap().iter().map(u).collect();
            assert!(v.windows(2).all(|w| w[0] < w[1]), "unsorted read: {e}");
        }
    }
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&o).join("test.json")).unwrap())
            .unwrap();
    assert_eq!(test["model"], "set");
}

/// `flaky` resets connections on the links of a minority of nodes; `abd` stays linearizable
/// (a reset is a failure, and failures are what quorums absorb), and the events carry the
/// links, the probability and how many resets were made.
#[test]
fn abd_holds_under_flaky_links() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    for seed in [1, 2] {
        let o = register(t.path(), "abd", "flaky", seed);
        let r = results_of(&o);
        assert_eq!(
            r["checks"]["linearizable"]["valid"], true,
            "seed {seed}: {r}"
        );
        assert_eq!(r["checks"]["stale-reads"]["stale"], 0, "seed {seed}");
        // Ops completed, through the faults: a verdict over nothing would hold too.
        assert!(u(&r["run"]["ok"]) > 100, "seed {seed}: {}", r["run"]);
        assert!(
            u(&r["checks"]["stale-reads"]["reads"]) > 0,
            "seed {seed}: {r}"
        );
        let h = history(&o);
        let stops: Vec<&Value> = h.iter().filter(|e| e["f"] == "flaky-stop").collect();
        assert!(!stops.is_empty(), "seed {seed}: no flaky window");
        for s in stops {
            let v = &s["value"];
            assert_eq!(v["reset_probability"], 0.2, "{v}");
            assert!(!v["links"].as_array().unwrap().is_empty(), "{v}");
            // About 10 rolls of 8 or more links at 0.2 each in a window: 0 means no fault.
            assert!(
                u(&v["resets"]) > 0,
                "seed {seed}: a flaky window reset nothing: {v}"
            );
        }
    }
}

/// Link faults on `--backend netns` go through the link proxies inside the namespaces: a short
/// run under `slow` and `flaky` applies and heals every window (no fault error, a verdict
/// rather than exit 3). Bad link-fault flags are refused naming the flag. The netns part needs
/// root, as the netns backend's own tests do (`QUORATE_SKIP_NETNS=1` skips it).
#[test]
fn netns_runs_link_faults_and_bad_probabilities_are_named() {
    let t = tempfile::tempdir().unwrap();
    if std::env::var("QUORATE_SKIP_NETNS").as_deref() != Ok("1") {
        let o = run(
            t.path(),
            1,
            &[
                "--backend",
                "netns",
                "--nodes",
                "3",
                "--nemesis",
                "slow,flaky",
                "--time-limit",
                "8",
                "--nemesis-interval",
                "2",
            ],
        );
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "{}",
            stderr(&o)
        );
        let h = history(&o);
        let nemesis: Vec<&Value> = h.iter().filter(|e| e["process"] == "nemesis").collect();
        assert!(
            nemesis
                .iter()
                .any(|e| e["f"] == "slow-start" || e["f"] == "flaky-start"),
            "no link fault window: {nemesis:?}"
        );
        for e in &nemesis {
            assert!(e.get("error").is_none(), "a link fault failed: {e}");
        }
        for e in nemesis.iter().filter(|e| e["f"] == "slow-start") {
            // The node's placement is known: the links into one home node are slowed.
            assert!(e["value"]["node"].is_string(), "{e}");
        }
    }
    let o = run(
        t.path(),
        1,
        &["--nemesis", "flaky", "--flaky-reset-probability", "2"],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("--flaky-reset-probability 2"),
        "{}",
        stderr(&o)
    );
    let o = run(
        t.path(),
        1,
        &["--workload", "set", "--ops", "read,write,cas"],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--ops"), "{}", stderr(&o));
    let o = run(t.path(), 1, &["--nemesis", "sluggish"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("slow, flaky"), "{}", stderr(&o));
}
