//! `quorate compare` end to end: tiny matrices of real, short runs (real `quorate-node`
//! processes), the files and rows they write, and the exit code when expectations hold, when
//! one breaks, when the matrix is bad, and when Ctrl-C stops the comparison.
//!
//! Needs `target/<profile>/quorate-node` (`cargo build -p quorate-node`; make test builds it).
//! The tests start clusters, so they run one at a time.

mod common;
use common::{node_bin, quorate, run_dir, serial, stderr};

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn compare_cmd(results: &Path, matrix: &Path) -> Command {
    let mut c = Command::new(quorate());
    c.arg("compare")
        .arg("--matrix")
        .arg(matrix)
        .arg("--results")
        .arg(results)
        .env("QUORATE_NODE_BIN", node_bin())
        .stdin(Stdio::null());
    c
}

fn compare(results: &Path, matrix: &Path) -> Output {
    compare_cmd(results, matrix).output().expect("run quorate")
}

fn json_of(dir: &Path) -> Value {
    let p = dir.join("compare.json");
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

// Short runs: 2 s of faults (none here), a 1 s quiet period.
const HEAD: &str = "time-limit = 2\nquiet = 1\ncheck-time-limit = 10\n";

#[test]
fn held_expectations_exit_0_with_every_file_and_row() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("m.toml");
    std::fs::write(
        &m,
        format!(
            "seeds = 2\n{HEAD}\n[abd]\npreset = \"abd\"\nnemesis = \"none\"\nexpect = \"valid\"\n\n\
             [weak]\nnote = \"r1 w1\"\npreset = \"weak\"\nnemesis = \"none\"\n"
        ),
    )
    .unwrap();
    let o = compare(t.path(), &m);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "stderr:\n{err}");
    let dir = run_dir(&o);
    assert!(
        dir.starts_with(t.path().join("compare")),
        "{}",
        dir.display()
    );
    for f in [
        "compare.md",
        "compare.html",
        "compare.json",
        "staleness.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    // A progress line per configuration × seed.
    for (i, what) in ["abd seed 1", "abd seed 2", "weak seed 1", "weak seed 2"]
        .iter()
        .enumerate()
    {
        let line = format!("[{}/4] {what}: ", i + 1);
        assert!(
            err.lines()
                .any(|l| l.starts_with(&line) && !l.ends_with("running")),
            "no {line:?} in:\n{err}"
        );
    }
    let j = json_of(&dir);
    let rows = j["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["abd", "weak"]);
    for r in rows {
        assert_eq!(r["runs"].as_array().unwrap().len(), 2, "{r}");
        for run in r["runs"].as_array().unwrap() {
            let d = dir.join(run["dir"].as_str().unwrap());
            assert!(d.join("results.json").is_file(), "{}", d.display());
            assert!(d.join("history.jsonl").is_file(), "{}", d.display());
        }
        assert!(r["reads"].as_u64().unwrap() > 0, "{r}");
        assert!(r["ops"].as_u64().unwrap() > 0, "{r}");
        assert!(r["availability_pct"].as_f64().is_some(), "{r}");
        assert!(r["latency_p50_ms"].as_f64().is_some(), "{r}");
        assert!(r["throughput_ops_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(!r["p_consistent"].as_array().unwrap().is_empty(), "{r}");
    }
    // abd holds in every seed; its expectation is judged and held.
    assert_eq!(rows[0]["linearizable"], serde_json::json!({"k": 2, "n": 2}));
    assert_eq!(rows[0]["expect"][0]["what"], "verdict = valid");
    assert_eq!(rows[0]["expect"][0]["held"], true);
    assert!(rows[1]["expect"].as_array().unwrap().is_empty());
    assert_eq!(j["broken"], serde_json::json!([]));
    let md = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    assert!(md.contains("| abd |") && md.contains("| weak |"), "{md}");
    assert!(md.contains("r1 w1"), "the note is shown:\n{md}");
    let html = std::fs::read_to_string(dir.join("compare.html")).unwrap();
    assert!(html.contains("data-name=\"abd\"") && html.contains("data-name=\"weak\""));
    // The staleness plot is inline: one curve per configuration.
    assert_eq!(
        html.matches("<polyline class=\"curve\"").count(),
        2,
        "{html}"
    );
}

#[test]
fn a_broken_expectation_exits_1_and_is_named() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("m.toml");
    // abd is linearizable in every seed, so "linearizable = invalid" must break.
    std::fs::write(
        &m,
        format!("{HEAD}\n[abd]\npreset = \"abd\"\nnemesis = \"none\"\nexpect = {{ linearizable = \"invalid\" }}\n"),
    )
    .unwrap();
    let o = compare(t.path(), &m);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "stderr:\n{err}");
    assert!(
        err.contains("expectation abd: linearizable = invalid broken (seed 1 valid)"),
        "stderr:\n{err}"
    );
    let j = json_of(&run_dir(&o));
    assert_eq!(j["broken"].as_array().unwrap().len(), 1);
    assert_eq!(j["rows"][0]["expect"][0]["held"], false);
}

#[test]
fn a_bad_matrix_exits_3_naming_the_file_and_what_was_expected() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[abd]\npreset = \"abd\"\nexpect = \"sometimes\"\n",
            "[abd]: `expect`: expected \"valid\" or \"invalid\"",
        ),
        (
            "[abd]\npresets = \"abd\"\n",
            "[abd]: unknown key `presets`: expected a `quorate run` flag",
        ),
        (
            "[abd]\npreset = \"abd\"\nnodes = 0\n",
            "[abd]: --nodes 0: expected 1 to 64",
        ),
        ("[abd\n", "not valid TOML"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let m = t.path().join(format!("bad{i}.toml"));
        std::fs::write(&m, text).unwrap();
        let o = compare(t.path(), &m);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{text}: stderr:\n{err}");
        assert!(
            err.contains(&format!("--matrix {}", m.display())),
            "names the file: {err}"
        );
        assert!(err.contains(want), "{want:?} not in: {err}");
    }
    let o = compare(t.path(), &t.path().join("missing.toml"));
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("missing.toml"), "{}", stderr(&o));
    // Nothing ran, so no comparison folder was made.
    assert!(!t.path().join("compare").exists());
}

#[test]
fn ctrl_c_keeps_what_finished_and_writes_its_table() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("m.toml");
    std::fs::write(
        &m,
        format!(
            "{HEAD}\n[first]\npreset = \"strict\"\nnemesis = \"none\"\n\n\
             [second]\npreset = \"strict\"\nnemesis = \"none\"\ntime-limit = 60\n"
        ),
    )
    .unwrap();
    let mut child = compare_cmd(t.path(), &m)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    // Wait for the second run to start (bounded by the stream's end).
    for l in lines.by_ref() {
        let l = l.unwrap();
        seen.push_str(&l);
        seen.push('\n');
        if l.starts_with("[2/2] second seed 1: running") {
            break;
        }
    }
    assert!(seen.contains("[2/2] second seed 1: running"), "{seen}");
    // Let the second run's cluster come up, then interrupt compare alone (not its group):
    // compare must pass the signal on.
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(40),
        "Ctrl-C took {:?}",
        t0.elapsed()
    );
    let rest = rest.join("\n");
    assert_eq!(status.code(), Some(3), "stderr:\n{seen}{rest}");
    assert!(rest.contains("second seed 1: interrupted"), "{rest}");
    assert!(rest.contains("interrupted after 1 of 2 runs"), "{rest}");
    let dirs: Vec<PathBuf> = std::fs::read_dir(t.path().join("compare"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    let j = json_of(&dirs[0]);
    assert_eq!(
        j["interrupted"],
        serde_json::json!({"finished": 1, "total": 2})
    );
    let names: Vec<&str> = j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first"], "only the finished run is in the table");
    // The interrupted run's folder is kept.
    assert!(dirs[0].join("second").is_dir());
    let md = std::fs::read_to_string(dirs[0].join("compare.md")).unwrap();
    assert!(md.contains("Interrupted"), "{md}");
}

#[test]
fn test_count_hunts_each_configuration_to_its_first_invalid_seed() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("m.toml");
    // weak (R = W = 1) under partitions is caught within a few seeds (hunt_cli's weak test);
    // abd never is, so it runs every seed.
    std::fs::write(
        &m,
        "time-limit = 4\nquiet = 1\ncheck-time-limit = 10\nnemesis = \"partition\"\n\
         nemesis-interval = 1.5\n\n[weak]\npreset = \"weak\"\n\n[abd]\npreset = \"abd\"\n",
    )
    .unwrap();
    let o = compare_cmd(t.path(), &m)
        .args(["--test-count", "4"])
        .output()
        .expect("run quorate");
    let err = stderr(&o);
    // No expectation set: the exit code says only that nothing went wrong.
    assert_eq!(o.status.code(), Some(0), "stderr:\n{err}");
    let j = json_of(&run_dir(&o));
    assert_eq!(j["test_count"], 4, "{j}");
    let rows = j["rows"].as_array().unwrap();
    let runs = |i: usize| -> Vec<(u64, Value)> {
        rows[i]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["seed"].as_u64().unwrap(), r["valid"].clone()))
            .collect()
    };
    // Seeds in order from 1; a row stops at its first invalid run, which is its last.
    for i in 0..2 {
        let r = runs(i);
        for (k, (seed, valid)) in r.iter().enumerate() {
            assert_eq!(*seed, k as u64 + 1, "{r:?}");
            if *valid == Value::Bool(false) {
                assert_eq!(k + 1, r.len(), "runs after the catch: {r:?}");
            }
        }
    }
    let weak = runs(0);
    assert_eq!(
        weak.last().unwrap().1,
        Value::Bool(false),
        "weak not caught in 4 seeds: {weak:?}\n{err}"
    );
    let seed = weak.last().unwrap().0;
    assert!(
        err.contains(&format!(
            "weak: caught at seed {seed} after {} runs",
            weak.len()
        )),
        "{err}"
    );
    let abd = runs(1);
    assert_eq!(abd.len(), 4, "{abd:?}");
    assert!(abd.iter().all(|(_, v)| *v == Value::Bool(true)), "{abd:?}");
    assert!(err.contains("abd: no invalid run in 4 seeds"), "{err}");
    let md = std::fs::read_to_string(run_dir(&o).join("compare.md")).unwrap();
    assert!(md.contains("Hunt (`--test-count 4`)"), "{md}");
    // --seeds and --test-count together: refused by clap, naming both.
    let o = compare_cmd(t.path(), &m)
        .args(["--test-count", "2", "--seeds", "2"])
        .output()
        .expect("run quorate");
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        err.contains("--test-count") && err.contains("--seeds"),
        "{err}"
    );
}

/// A configuration may be a target file (`target-file` is run's flag like any other): its
/// runs go through the file's store, side by side with a built-in target's.
#[test]
fn a_target_file_is_a_configuration_like_any_other() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("m.toml");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/targets/node-api.toml");
    std::fs::write(
        &m,
        format!(
            "{HEAD}nodes = 3\n\n[file-abd]\ntarget-file = {:?}\nnemesis = \"kill\"\n\
             nemesis-interval = 1\nexpect = \"valid\"\n\n[node-abd]\npreset = \"abd\"\n\
             nemesis = \"kill\"\nnemesis-interval = 1\nexpect = \"valid\"\n",
            file.canonicalize().unwrap()
        ),
    )
    .unwrap();
    // The file's member command is `quorate-node`, found on PATH.
    let bin_dir = node_bin().parent().unwrap().to_path_buf();
    let mut path = vec![bin_dir];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let o = compare_cmd(t.path(), &m)
        .env("PATH", std::env::join_paths(path).unwrap())
        .output()
        .expect("run quorate");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "stderr:\n{err}");
    let dir = run_dir(&o);
    let j = json_of(&dir);
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows[0]["name"], "file-abd");
    for r in rows {
        assert_eq!(r["expect"][0]["held"], true, "{r}");
        assert!(r["reads"].as_u64().unwrap() > 0, "{r}");
    }
    let run = dir.join(rows[0]["runs"][0]["dir"].as_str().unwrap());
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["args"]["target"], "file", "{test}");
    assert_eq!(
        test["versions"]["store"].as_str().map(|s| s.is_empty()),
        Some(false),
        "{test}"
    );
}
