//! Runs that must not end in a verdict they cannot stand behind, and the convergence
//! observation naming keys: real `quorate-node` processes (sometimes behind a wrapper script
//! that misbehaves on purpose), short seeded runs, one at a time.
//!
//! Needs `target/<profile>/quorate-node` (`cargo test --workspace` builds it).

mod common;
use common::{history, node_bin, run_dir, serial, stderr};

use quorate_checker::history::Process;
use quorate_checker::import::{read_history, Format};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::run_with as run;

/// A `--node-bin` shell script: `--check-config` goes to the real node; otherwise `body` runs
/// with `$REAL` (the real node) and `$MARKS` (a folder of its own) set.
fn wrapper(dir: &Path, body: &str) -> PathBuf {
    let marks = dir.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let path = dir.join("node-wrapper.sh");
    let script = format!(
        "#!/bin/sh\nREAL='{}'\nMARKS='{}'\nfor a in \"$@\"; do [ \"$a\" = --check-config ] && exec \"$REAL\" \"$@\"; done\n{body}\n",
        node_bin().display(),
        marks.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The kill fault's restart fails for real (the wrapper refuses to start a node twice): the
/// run ends with exit 3, the failure is on the `kill-stop` event and on stderr, and no verdict
/// is printed.
#[test]
fn a_fault_that_cannot_be_healed_ends_the_run_with_exit_3() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let bin = wrapper(
        t.path(),
        r#"id=""; prev=""
for a in "$@"; do [ "$prev" = --id ] && id="$a"; prev="$a"; done
if [ -e "$MARKS/$id" ]; then echo "wrapper: refusing to start $id a second time" >&2; exit 7; fi
touch "$MARKS/$id"
exec "$REAL" "$@""#,
    );
    let o = run(
        &t.path().join("results"),
        &bin,
        &[
            "--nodes",
            "3",
            "--preset",
            "abd",
            "--nemesis",
            "kill",
            "--time-limit",
            "6",
            "--nemesis-interval",
            "1.5",
            "--seed",
            "1",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "stderr:\n{err}");
    assert!(
        err.contains("kill-stop") && err.contains("restart n"),
        "stderr should name the failed restart:\n{err}"
    );
    assert!(err.contains("verdict: none (error)"), "{err}");
    assert!(!err.contains("verdict: valid"), "{err}");
    let dir = run_dir(&o);
    let failed: Vec<Value> = history(&dir)
        .into_iter()
        .filter(|e| e["process"] == "nemesis" && e.get("error").is_some())
        .collect();
    assert_eq!(failed.len(), 1, "one failed nemesis event: {failed:?}");
    assert_eq!(failed[0]["f"], "kill-stop");
    let why = failed[0]["error"].as_str().unwrap();
    assert!(why.contains("restart n") && why.contains("exited"), "{why}");
    // It restarted nobody, and says so.
    assert_eq!(failed[0]["value"]["nodes"], serde_json::json!([]));
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert!(
        results["error"].as_str().unwrap().contains("kill"),
        "{results}"
    );
    let log = std::fs::read_to_string(dir.join("harness.log")).unwrap();
    assert!(
        log.contains("kill-start") && log.contains("kill-stop"),
        "{log}"
    );
}

/// Flags the node refuses stop the run before anything starts, in the node's own words.
#[test]
fn node_flags_are_checked_before_anything_starts() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let results = t.path().join("results");
    let o = run(&results, &node_bin(), &["--r", "5", "--n", "3"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("--r 5 is greater than --n 3"), "{err}");
    assert!(!err.contains("verdict"), "{err}");
    assert!(
        !results.exists(),
        "no run folder for a run that never started"
    );
}

/// A cluster that never comes up (every node exits at once) is exit 3, reported as soon as
/// the nodes exit, never a verdict over zero ops.
#[test]
fn a_cluster_that_never_comes_up_is_exit_3() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let bin = wrapper(t.path(), "echo 'wrapper: not today' >&2; exit 1");
    let o = run(
        &t.path().join("results"),
        &bin,
        &["--nodes", "3", "--time-limit", "2", "--nemesis", "none"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("exited") && err.contains("not today"), "{err}");
    assert!(!err.contains("verdict: valid"), "{err}");
}

fn convergence_run(results: &Path, ae_ms: &str, seed: u64) -> Output {
    let seed = seed.to_string();
    run(
        results,
        &node_bin(),
        &[
            "--nodes",
            "3",
            "--preset",
            "strict",
            "--ops",
            "write",
            "--nemesis",
            "partition",
            "--anti-entropy-interval-ms",
            ae_ms,
            "--time-limit",
            "4",
            "--nemesis-interval",
            "1.5",
            "--seed",
            &seed,
        ],
    )
}

/// Keys written during a partition and never read again stay different without anti-entropy:
/// the `convergence` observation (taken before the final reads, which would repair them) is
/// invalid and names keys that were written during a partition.
#[test]
fn convergence_names_the_keys_anti_entropy_left_behind() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let mut tried = Vec::new();
    for seed in 1..=5 {
        let o = convergence_run(t.path(), "0", seed);
        let dir = run_dir(&o);
        let results: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        let conv = &results["checks"]["convergence"];
        if conv["valid"] != false {
            tried.push(format!("seed {seed}: exit {:?}, {conv}", o.status.code()));
            continue;
        }
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let keys: Vec<String> = conv["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert!(!keys.is_empty());
        assert_eq!(conv["keys_differing"], keys.len());
        // Keys written while a partition was on: a write counts when it was open at any
        // time from a partition-start to its stop, or ended at most 300 ms (the node's
        // replica deadline, how long a write's last copy may trail its answer) before the
        // start — the copy it had not yet delivered is the one the cut can swallow.
        // The checker's own reading of the history: invokes paired with their completions (a
        // write never answered is open to the end), and the nemesis and harness events.
        let (hist, _) = read_history(&dir.join("history.jsonl"), Format::Jsonl).unwrap();
        let mut windows = Vec::new();
        for e in hist.other.iter().filter(|e| e.process == Process::Nemesis) {
            let at = e.time.unwrap();
            match e.f.as_str() {
                "partition-start" => windows.push((at, i64::MAX)),
                "partition-stop" => windows.last_mut().unwrap().1 = at,
                _ => {}
            }
        }
        let trail = 300_000_000;
        let during: BTreeSet<&str> = hist
            .ops
            .iter()
            .filter(|op| op.f == "write")
            .filter(|op| {
                let began = op.call_time.unwrap();
                let ended = op.complete_time.unwrap_or(i64::MAX);
                windows
                    .iter()
                    .any(|&(start, stop)| began <= stop && ended.saturating_add(trail) >= start)
            })
            .map(|op| op.key.as_str())
            .collect();
        assert!(
            keys.iter().all(|k| during.contains(k.as_str())),
            "every key named was written during a partition: named {keys:?}, written {during:?}"
        );
        // The observation itself says on which nodes they differ.
        let obs = hist
            .other
            .iter()
            .find(|e| e.process == Process::Harness && e.f == "convergence")
            .unwrap();
        for k in &keys {
            assert!(obs.value["detail"]["by_key"][k].is_object(), "{obs:?}");
        }
        // Natural order: k2 before k10.
        let mut sorted = keys.clone();
        sorted.sort_by_key(|k| k[1..].parse::<u64>().unwrap());
        assert_eq!(keys, sorted);
        // The same runs with anti-entropy on converge.
        let o = convergence_run(t.path(), "200", seed);
        let dir = run_dir(&o);
        let results: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(
            results["checks"]["convergence"]["valid"], true,
            "seed {seed} with anti-entropy: {}",
            results["checks"]["convergence"]
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        return;
    }
    panic!(
        "no seed left a key unconverged with anti-entropy off:\n{}",
        tried.join("\n")
    );
}
