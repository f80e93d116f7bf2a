//! `quorate run --test-count N` end to end: real `quorate-node` clusters, one whole run per
//! seed, the hunt stopping at the first invalid one. Needs `target/<profile>/quorate-node`
//! (`cargo build -p quorate-node`; `make test` builds it first).

mod common;
use common::{node_bin, quorate, run_dir, serial, stderr};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn hunt(results: &Path, args: &[&str]) -> Output {
    common::run(results, &[&["--check-time-limit", "20"], args].concat())
}

/// The hunt's per-seed lines on stderr: `(seed, verdict, folder)`.
fn seed_lines(o: &Output) -> Vec<(u64, String, PathBuf)> {
    stderr(o)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("quorate run: seed ")?;
            let (seed, rest) = rest.split_once(' ')?;
            let (_, rest) = rest.split_once("): ")?;
            let (verdict, folder) = rest.split_once(' ')?;
            Some((
                seed.parse().ok()?,
                verdict.to_string(),
                PathBuf::from(folder),
            ))
        })
        .collect()
}

fn json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn weak_under_partitions_stops_at_the_first_invalid_seed() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = hunt(
        t.path(),
        &[
            "--preset",
            "weak",
            "--nemesis",
            "partition",
            "--time-limit",
            "5",
            "--nemesis-interval",
            "1.5",
            "--seed",
            "1",
            "--test-count",
            "5",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "stderr:\n{err}");
    let lines = seed_lines(&o);
    assert!(!lines.is_empty() && lines.len() <= 5, "{lines:?}\n{err}");
    // Seeds one after another from --seed; every run before the catch was not invalid.
    for (i, (seed, verdict, _)) in lines.iter().enumerate() {
        assert_eq!(*seed, 1 + i as u64, "{lines:?}");
        let last = i + 1 == lines.len();
        assert_eq!(verdict == "INVALID", last, "{lines:?}");
    }
    let (seed, _, folder) = lines.last().unwrap();
    // The caught run is a whole run of its own: its folder, its seed, an invalid verdict; it is
    // the last folder on stdout and named in the hunt's closing line.
    assert_eq!(&run_dir(&o), folder);
    assert_eq!(json(folder.join("results.json"))["valid"], false);
    let test = json(folder.join("test.json"));
    assert_eq!(test["seed"], *seed);
    assert_eq!(
        test["args"]["seed"], *seed,
        "test.json's args replay the run"
    );
    assert!(
        err.contains(&format!(
            "seed {seed} is INVALID after {} runs: {}",
            lines.len(),
            folder.display()
        )),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        stdout.lines().count(),
        lines.len(),
        "one folder per run: {stdout}"
    );
}

#[test]
fn abd_without_faults_runs_every_seed_and_is_valid() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = hunt(
        t.path(),
        &[
            "--preset",
            "abd",
            "--nemesis",
            "none",
            "--time-limit",
            "2",
            "--quiet",
            "1",
            "--seed",
            "40",
            "--test-count",
            "2",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "stderr:\n{err}");
    let lines = seed_lines(&o);
    let seeds: Vec<u64> = lines.iter().map(|l| l.0).collect();
    assert_eq!(seeds, [40, 41], "{err}");
    assert!(lines.iter().all(|l| l.1 == "valid"), "{lines:?}");
    assert_ne!(lines[0].2, lines[1].2, "each run has its own folder");
    for (seed, _, folder) in &lines {
        assert_eq!(json(folder.join("test.json"))["seed"], *seed);
        assert_eq!(json(folder.join("results.json"))["valid"], true);
    }
    assert!(
        err.contains("no invalid run in 2 runs; worst verdict valid"),
        "{err}"
    );
}

/// `--checks` picks what judges each run, so a hunt stops on the check named and not on
/// another: `strict` (R = W = 2, async repair) is not linearizable even without faults (README
/// claim 1), yet no read misses a completed write, so hunting `stale-reads` runs every seed.
#[test]
fn checks_pick_what_the_hunt_stops_on() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = hunt(
        t.path(),
        &[
            "--preset",
            "strict",
            "--nemesis",
            "none",
            "--time-limit",
            "2",
            "--quiet",
            "1",
            "--seed",
            "5",
            "--test-count",
            "2",
            "--checks",
            "stale-reads",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "stderr:\n{err}");
    let lines = seed_lines(&o);
    assert_eq!(
        lines.iter().map(|l| l.0).collect::<Vec<_>>(),
        [5, 6],
        "{err}"
    );
    for (_, _, folder) in &lines {
        let r = json(folder.join("results.json"));
        assert_eq!(r["valid"], true, "{r}");
        assert_eq!(r["checks"]["stale-reads"]["valid"], true, "{r}");
        assert_eq!(
            r["checks"]["linearizable"]["skipped"], "not asked for: --checks stale-reads",
            "{r}"
        );
        let mut judged: Vec<&String> = r["checks"].as_object().unwrap().keys().collect();
        judged.sort();
        assert_eq!(judged, ["linearizable", "stale-reads"], "{r}");
        assert_eq!(
            json(folder.join("test.json"))["args"]["checks"],
            "stale-reads"
        );
    }
    // A check the workload's history cannot answer, or no check at all: refused up front.
    for (list, want) in [
        ("set", "--checks \"set\": set does not judge a register history; expected some of linearizable"),
        ("stale", "--checks \"stale\": unknown check \"stale\""),
    ] {
        let o = hunt(t.path(), &["--nemesis", "none", "--checks", list]);
        assert_eq!(o.status.code(), Some(3), "--checks {list}");
        assert!(stderr(&o).contains(want), "--checks {list}: {}", stderr(&o));
    }
}

#[test]
fn a_bad_test_count_exits_3_and_names_the_flag() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    for n in ["0", "-1", "many"] {
        let flag = format!("--test-count={n}");
        let o = hunt(t.path(), &["--nemesis", "none", &flag]);
        assert_eq!(o.status.code(), Some(3), "--test-count {n}");
        let err = stderr(&o);
        assert!(err.contains("--test-count"), "--test-count {n}: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
    assert!(left.is_empty(), "a refused hunt left {left:?}");
    // A single run (the default) prints no hunt lines.
    let o = hunt(
        t.path(),
        &[
            "--nemesis",
            "none",
            "--time-limit",
            "1",
            "--quiet",
            "0",
            "--seed",
            "3",
        ],
    );
    assert!(matches!(o.status.code(), Some(0..=2)), "{}", stderr(&o));
    assert!(!stderr(&o).contains("--test-count"), "{}", stderr(&o));
    assert!(seed_lines(&o).is_empty(), "{}", stderr(&o));
}

/// Ctrl-C during the first run ends that run as a single run ends (healed, history kept and
/// judged) and the hunt with it: no second seed starts.
#[test]
fn ctrl_c_ends_the_hunt_after_the_run_it_cut_short() {
    use std::time::{Duration, Instant};
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let child = Command::new(quorate())
        .args(["run", "--preset", "abd", "--nemesis", "none"])
        .args(["--time-limit", "120", "--seed", "8", "--test-count", "3"])
        .arg("--results")
        .arg(t.path())
        .arg("--node-bin")
        .arg(node_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let history = || {
        let d = std::fs::read_dir(t.path().join("node-abd-register")).ok()?;
        let run = d.flatten().next()?.path();
        let h = std::fs::read_to_string(run.join("history.jsonl")).ok()?;
        Some(h.lines().count())
    };
    // A hang guard only: the cluster comes up in seconds.
    let guard = Instant::now() + Duration::from_secs(90);
    while history().unwrap_or(0) < 200 {
        assert!(Instant::now() < guard, "the first run never recorded ops");
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(
        o.status.code().is_some(),
        "exited by signal: {:?}",
        o.status
    );
    let lines = seed_lines(&o);
    assert_eq!(lines.len(), 1, "only the interrupted seed ran: {err}");
    assert_eq!(lines[0].0, 8);
    assert!(
        err.contains("no invalid run in 1 runs, interrupted"),
        "{err}"
    );
    let results = json(lines[0].2.join("results.json"));
    assert_eq!(results["interrupted"], true, "{results}");
    let runs = std::fs::read_dir(t.path().join("node-abd-register"))
        .unwrap()
        .count();
    assert_eq!(runs, 1, "no second run was started");
}
