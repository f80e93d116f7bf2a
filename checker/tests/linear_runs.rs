//! Both paths on the histories of real `quorate run`s under faults: every key is judged by the
//! zone check and by the search, and they must agree on every verdict and, for an invalid key,
//! on the op that ends its shortest failing prefix (that op is defined by the history alone).
//!
//! The fixtures in `fixtures/runs/` were recorded with the harness (5 local `quorate-node`s,
//! `--nemesis partition,kill --time-limit 4 --nemesis-interval 1.5 --concurrency 20 --rate 250
//! --ops-per-key 100`): `weak` (R = W = 1, seed 7), which loses linearizability during the
//! partition, and `abd` (seed 8), which keeps it. Recorded rather than run here: a checker test
//! starts no cluster, and the recorded interleaving is what makes the comparison repeatable.

use quorate_checker::history::Op;
use quorate_checker::import::{read_history, Format};
use quorate_checker::linear::{check_key_on, KeyResult, LinearOptions, Path};
use quorate_checker::verdict::Verdict;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/runs")
        .join(name)
}

/// Judge every key of the fixture on both paths; the verdicts per key, after asserting that
/// the paths agree.
fn both_paths(name: &str) -> Vec<(String, Verdict)> {
    let (history, _) = read_history(&fixture(name), Format::Auto).expect("the fixture reads");
    let opts = LinearOptions::default();
    let mut verdicts = Vec::new();
    for (key, ops) in history.by_key() {
        let ops: Vec<&Op> = ops.into_iter().collect();
        let run = |path| -> KeyResult {
            check_key_on(&ops, &opts, Some(path))
                .unwrap_or_else(|e| panic!("{name} key {key} on the {path:?} path: {e}"))
        };
        let (zones, search) = (run(Path::Zones), run(Path::Search));
        assert_ne!(
            search.valid,
            Verdict::Unknown,
            "{name} key {key}: the search gave up ({:?}), so nothing is compared",
            search.reason
        );
        assert_eq!(
            zones.valid, search.valid,
            "{name} key {key}: the zone check and the search disagree"
        );
        let op = |r: &KeyResult| r.counterexample.as_ref().map(|c| c.op);
        assert_eq!(
            op(&zones),
            op(&search),
            "{name} key {key}: the paths end the shortest failing prefix at different ops"
        );
        if let Some(cx) = &zones.counterexample {
            assert!(!cx.explanation.is_empty(), "{name} key {key}: no sentence");
        }
        verdicts.push((key.to_string(), zones.valid));
    }
    verdicts
}

#[test]
fn weak_under_partition_and_kill_both_paths_agree() {
    let verdicts = both_paths("weak-partition-kill.jsonl");
    let invalid = verdicts
        .iter()
        .filter(|(_, v)| *v == Verdict::Invalid)
        .count();
    assert_eq!(verdicts.len(), 10, "{verdicts:?}");
    // As the run itself reported: the partition broke 6 of its 10 keys.
    assert_eq!(invalid, 6, "{verdicts:?}");
}

#[test]
fn abd_under_partition_and_kill_both_paths_agree() {
    let verdicts = both_paths("abd-partition-kill.jsonl");
    assert_eq!(verdicts.len(), 10, "{verdicts:?}");
    assert!(
        verdicts.iter().all(|(_, v)| *v == Verdict::Valid),
        "{verdicts:?}"
    );
}
