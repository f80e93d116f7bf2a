//! `--nemesis power-loss` on Garage 2.5 (3 members, `consistent` mode: quorums 2 of 3), one
//! member's power cut at a time, on the local backend. What quorate found (docs/targets/
//! garage.md, "Power loss"):
//! - with Garage's default fsync settings (`metadata_fsync` and `data_fsync` off: its LMDB
//!   database is never fsynced), a member's cut drops the metadata it acknowledged since the
//!   set-up, and two cuts one after the other (the second of a member that took writes while
//!   the first was down) lose acknowledged writes: `lost-writes` INVALID, caught within 5 seeds;
//! - with both on (`--garage-fsync`), no acknowledged write is lost and read-after-write holds
//!   (`lost-writes` and `stale-reads` valid) in every seed tried.
//!
//! - without the checkpoint after set-up (`--power-loss-from-start`), the first member cut
//!   never starts again: Garage wrote its `node_key` without an fsync and panics on the empty
//!   file — a finding recorded on `power-loss-stop` and in results.json, not a run error.
//!
//! After each run: no garage process, lazyfs server, fusermount3 or mount left.
//!
//! Needs `garage` on PATH or `QUORATE_GARAGE_BIN`, as harness/tests/garage.rs does (never
//! skipped), and /dev/fuse with fusermount3 (root).

mod common;
use common::{quorate, results_of, run_dir, serial, stderr_tail};

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(results: &Path, seed: u64, fsync: bool) -> Output {
    run_with(results, seed, fsync, &[])
}

fn run_with(results: &Path, seed: u64, fsync: bool, extra: &[&str]) -> Output {
    let seed = seed.to_string();
    let mut args = vec![
        "run",
        "--target",
        "garage",
        "--nodes",
        "3",
        "--nemesis",
        "power-loss",
        "--time-limit",
        "10",
        "--nemesis-interval",
        "3",
        "--ops-per-key",
        "60",
        "--concurrency",
        "6",
        "--check-time-limit",
        "20",
        "--seed",
        &seed,
    ];
    if fsync {
        args.push("--garage-fsync");
    }
    args.extend(extra);
    let o = Command::new(quorate())
        .args(&args)
        .arg("--results")
        .arg(results)
        .stdin(Stdio::null())
        .output()
        .expect("run quorate");
    common::assert_no_process_or_mount(results);
    o
}

/// Every cut's event, checked: one member, what it dropped named.
fn cuts(o: &Output) -> Vec<Value> {
    let starts: Vec<Value> = common::history(&run_dir(o))
        .into_iter()
        .filter(|e| e["f"] == "power-loss-start")
        .map(|e| e["value"].clone())
        .collect();
    assert!(!starts.is_empty(), "no power cut: {}", stderr_tail(o, 10));
    for v in &starts {
        assert!(v.get("error").is_none(), "{v}");
        assert_eq!(v["nodes"].as_array().unwrap().len(), 1, "{v}");
        assert!(
            v["key"].is_null(),
            "Garage's placement is not known here: {v}"
        );
    }
    starts
}

#[test]
fn with_its_fsyncs_on_garage_loses_no_acknowledged_write_to_a_power_cut() {
    let _g = serial();
    for seed in [1, 2] {
        let t = tempfile::tempdir().unwrap();
        let o = run(t.path(), seed, true);
        let r = results_of(&o);
        cuts(&o);
        for check in ["lost-writes", "stale-reads"] {
            assert_eq!(
                r["checks"][check]["valid"],
                true,
                "seed {seed}: {check}: {}",
                stderr_tail(&o, 12)
            );
        }
    }
}

#[test]
fn with_its_default_fsync_settings_garage_loses_acknowledged_writes_to_power_cuts() {
    let _g = serial();
    let mut seen = Vec::new();
    for seed in 1..=5 {
        let t = tempfile::tempdir().unwrap();
        let o = run(t.path(), seed, false);
        let r = results_of(&o);
        let starts = cuts(&o);
        let dropped: u64 = starts
            .iter()
            .map(|v| {
                v["dropped"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|d| d["bytes"].as_u64().unwrap())
                    .sum::<u64>()
            })
            .sum();
        let lost = r["checks"]["lost-writes"]["lost"].as_u64().unwrap_or(0);
        seen.push(format!(
            "seed {seed}: {lost} lost, {dropped} unsynced bytes dropped"
        ));
        if r["checks"]["lost-writes"]["valid"] == false {
            assert!(dropped > 0, "{seen:?}");
            return;
        }
    }
    panic!("no acknowledged write lost in 5 seeds: {seen:?}");
}

#[test]
fn a_member_cut_soon_after_its_first_start_never_starts_again_and_that_is_a_finding() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = run_with(t.path(), 1, true, &["--power-loss-from-start"]);
    // A verdict on what the clients saw, not exit 3.
    let r = results_of(&o);
    let starts = cuts(&o);
    let cut = starts[0]["nodes"][0].as_str().unwrap().to_string();
    let why = r["run"]["not_restarted"][&cut].as_str().unwrap_or_else(|| {
        panic!(
            "{cut} is not listed as not restarted: {}",
            stderr_tail(&o, 12)
        )
    });
    assert!(why.contains("before it would answer GET /health"), "{why}");
    let log =
        std::fs::read_to_string(run_dir(&o).join("nodes").join(format!("{cut}.log"))).unwrap();
    assert!(
        log.contains("Corrupt node_key file"),
        "{cut}'s log does not say why"
    );
    let stop = common::history(&run_dir(&o))
        .into_iter()
        .find(|e| e["f"] == "power-loss-stop")
        .unwrap();
    assert!(stop["value"]["not_restarted"][&cut].is_string(), "{stop}");
    assert!(
        stop.get("error").is_none(),
        "a finding, not an error: {stop}"
    );
    assert!(common::stderr(&o).contains("would not start again"));
    // No fault after the finding.
    assert_eq!(starts.len(), 1);
}
