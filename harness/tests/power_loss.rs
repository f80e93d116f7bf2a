//! `--nemesis power-loss` on the node, end to end: members' data directories are lazyfs
//! mounts, a cut drops what was not fsynced. With `--fsync always` nothing acknowledged is
//! lost in any seed tried; with `--fsync never`, a majority of a key's replicas losing power
//! loses acknowledged writes (caught within 5 seeds). After every run, Ctrl-C included: no
//! lazyfs mount, no member, no lazyfs server or fusermount3 left.
//!
//! Needs /dev/fuse and fusermount3 (fuse3, from scripts/install-deps.sh), as root.

mod common;

use common::{history, interrupt, results_of, run, serial, stderr_tail};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// No process whose command line names the results folder (members, lazyfs servers,
/// fusermount3), no lazyfs mount under it, no namespace of a dead harness.
fn assert_nothing_left(results: &Path) {
    common::assert_no_process_or_mount(results);
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if let Some(rest) = name.strip_prefix("qrt") {
                let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
                assert!(
                    Path::new("/proc").join(&pid).exists(),
                    "namespace {name} of a dead harness left behind"
                );
            }
        }
    }
}

fn args<'a>(preset: &'a str, fsync: &'a str, scope: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "--preset",
        preset,
        "--fsync",
        fsync,
        "--nemesis",
        "power-loss",
        "--power-loss-scope",
        scope,
        "--time-limit",
        "8",
        "--nemesis-interval",
        "2",
        "--concurrency",
        "8",
        "--check-time-limit",
        "20",
        "--seed",
        seed,
    ]
}

/// The power-loss events of a run: each start's nodes, and that every cut said what it dropped.
fn cuts(dir: &Path) -> Vec<Value> {
    let starts: Vec<Value> = history(dir)
        .into_iter()
        .filter(|e| e["f"] == "power-loss-start")
        .map(|e| e["value"].clone())
        .collect();
    for v in &starts {
        assert!(v.get("error").is_none(), "{v}");
        for n in v["nodes"].as_array().unwrap() {
            let d = &v["dropped"][n.as_str().unwrap()];
            assert!(d["bytes"].is_u64() && d["metadata_ops"].is_u64(), "{v}");
        }
    }
    starts
}

#[test]
fn fsync_always_loses_nothing_when_a_majority_of_a_keys_replicas_lose_power() {
    let _g = serial();
    for seed in ["1", "2"] {
        let t = tempfile::tempdir().unwrap();
        let o = run(t.path(), &args("abd", "always", "majority", seed));
        let r = results_of(&o);
        assert_eq!(
            o.status.code(),
            Some(0),
            "seed {seed}: abd with --fsync always must stay valid: {}",
            stderr_tail(&o, 20)
        );
        assert_eq!(r["checks"]["lost-writes"]["lost"], 0, "seed {seed}");
        let starts = cuts(&common::run_dir(&o));
        assert!(!starts.is_empty(), "seed {seed}: no power cut happened");
        for v in &starts {
            // A majority of the key's 3 replicas, the key named.
            assert_eq!(v["nodes"].as_array().unwrap().len(), 2, "{v}");
            assert!(v["key"].is_string(), "{v}");
            assert_eq!(v["scope"], "majority");
        }
        assert_nothing_left(t.path());
    }
}

#[test]
fn fsync_never_loses_acknowledged_writes_when_a_majority_of_a_keys_replicas_lose_power() {
    let _g = serial();
    let mut seen = Vec::new();
    for seed in 1..=5u64 {
        let t = tempfile::tempdir().unwrap();
        let s = seed.to_string();
        let o = run(t.path(), &args("strict", "never", "majority", &s));
        let r = results_of(&o);
        let dropped: u64 = cuts(&common::run_dir(&o))
            .iter()
            .flat_map(|v| {
                v["dropped"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|d| d["bytes"].as_u64().unwrap())
                    .collect::<Vec<_>>()
            })
            .sum();
        assert_nothing_left(t.path());
        let lost = r["checks"]["lost-writes"]["lost"].as_u64().unwrap_or(0);
        seen.push(format!(
            "seed {seed}: {lost} lost, {dropped} unsynced bytes dropped"
        ));
        if r["checks"]["lost-writes"]["valid"] == false {
            assert!(lost > 0 && dropped > 0, "{seen:?}");
            return;
        }
    }
    panic!("--fsync never lost no acknowledged write in 5 seeds: {seen:?}");
}

#[test]
fn power_loss_of_one_member_on_the_netns_backend() {
    let _g = serial();
    if std::env::var("QUORATE_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!("netns power-loss test skipped: QUORATE_SKIP_NETNS=1");
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the netns backend needs root; run as root or set QUORATE_SKIP_NETNS=1"
    );
    let t = tempfile::tempdir().unwrap();
    let mut a = args("abd", "always", "one", "3");
    a.extend(["--backend", "netns", "--nodes", "3"]);
    let o = run(t.path(), &a);
    assert_eq!(o.status.code(), Some(0), "{}", stderr_tail(&o, 20));
    let starts = cuts(&common::run_dir(&o));
    assert!(!starts.is_empty());
    for v in &starts {
        assert_eq!(v["nodes"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["scope"], "one");
    }
    assert_nothing_left(t.path());
}

#[test]
fn ctrl_c_unmounts_every_data_directory() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::quorate())
        .arg("run")
        .arg("--results")
        .arg(t.path())
        .arg("--node-bin")
        .arg(common::node_bin())
        .args([
            "--nemesis",
            "power-loss",
            "--time-limit",
            "60",
            "--nemesis-interval",
            "1",
            "--seed",
            "4",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the first cut has happened (bounded), so a remount has been done too.
    let deadline = Instant::now() + Duration::from_secs(120);
    let h = t.path().join("latest").join("history.jsonl");
    while !std::fs::read_to_string(&h)
        .unwrap_or_default()
        .contains("power-loss-stop")
    {
        assert!(Instant::now() < deadline, "no power cut within 120 s");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mounted = quorate::lazyfs::mount::listed()
        .into_iter()
        .filter(|m| m.mountpoint.starts_with(t.path()))
        .count();
    assert_eq!(mounted, 5, "every member's data directory is mounted");
    interrupt(child, 8);
    assert_nothing_left(t.path());
}

#[test]
fn power_loss_scope_without_power_loss_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let o = run(
        t.path(),
        &[
            "--nemesis",
            "kill",
            "--power-loss-scope",
            "majority",
            "--time-limit",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(
        common::stderr(&o).contains("--power-loss-scope: only with power-loss in --nemesis"),
        "{}",
        common::stderr(&o)
    );
}
