//! `quorate run` end to end: real `quorate-node` processes, real faults, short seeded runs.
//!
//! The tests start real clusters, so they take a lock and run one at a time (the machine has
//! two cores and other suites run beside these). They need `target/<profile>/quorate-node`:
//! `make test` builds every binary first; otherwise run `cargo build -p quorate-node`.

mod common;
use common::{node_bin, quorate, results_of, run, run_dir, serial};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A short run with fault windows ~1 s long.
fn short(results: &Path, preset: &str, nemesis: &str, seed: u64) -> Output {
    timed(results, preset, nemesis, seed, "5", "1.5")
}

/// A run of `secs` seconds with a fault every `interval` seconds (each held 70% of it).
fn timed(
    results: &Path,
    preset: &str,
    nemesis: &str,
    seed: u64,
    secs: &str,
    interval: &str,
) -> Output {
    let seed = seed.to_string();
    run(
        results,
        &[
            "--preset",
            preset,
            "--nemesis",
            nemesis,
            "--time-limit",
            secs,
            "--nemesis-interval",
            interval,
            "--check-time-limit",
            "20",
            "--seed",
            &seed,
        ],
    )
}

/// Client invokes inside each fault window of a run's history (`<fault>-start` to the next
/// `<fault>-stop` of the same fault), in order: `(fault, invokes)`.
fn invokes_per_fault_window(run_dir: &Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut closed = Vec::new();
    for line in text.lines() {
        let ev: Value = serde_json::from_str(line).unwrap();
        let f = ev["f"].as_str().unwrap_or("");
        if ev["process"] == "nemesis" {
            if let Some(fault) = f.strip_suffix("-start") {
                open.push((fault.to_string(), 0));
            } else if let Some(fault) = f.strip_suffix("-stop") {
                if let Some(i) = open.iter().rposition(|(o, _)| o == fault) {
                    closed.push(open.remove(i));
                }
            }
        } else if ev["process"].is_u64() && ev["type"] == "invoke" {
            for w in open.iter_mut() {
                w.1 += 1;
            }
        }
    }
    assert!(open.is_empty(), "fault windows never stopped: {open:?}");
    closed
}

#[test]
fn abd_is_linearizable_under_partition_kill_pause() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    for seed in [1, 2] {
        // Windows of 2.1 s: in a 1 s window, clients held up by a paused replica's timeout
        // reached 19 invokes in one run, too close to the bound below to say anything.
        let o = timed(t.path(), "abd", "partition,kill,pause", seed, "8", "3");
        let r = results_of(&o);
        assert_eq!(
            o.status.code(),
            Some(0),
            "seed {seed}: abd should be valid; results: {r}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(r["checks"]["linearizable"]["valid"], Value::Bool(true));
        // Clients keep working through every fault (issue 4: >= 20 invokes in each window).
        let windows = invokes_per_fault_window(&run_dir(&o));
        assert!(!windows.is_empty(), "seed {seed}: no fault window recorded");
        for (fault, n) in &windows {
            assert!(
                *n >= 20,
                "seed {seed}: only {n} invokes during {fault}: {windows:?}"
            );
        }
    }
}

/// Why `results` is not "caught by the linearizable check", or `None` when it is: the check
/// invalid, with a key whose counterexample names an op and says in a sentence what went
/// wrong.
fn not_caught_by_linearizable(results: &Value) -> Option<String> {
    let lin = &results["checks"]["linearizable"];
    if lin["valid"] != false {
        return Some(format!("linearizable is {}", lin["valid"]));
    }
    let keys = lin["keys"].as_object()?;
    let bad: Vec<&Value> = keys.values().filter(|k| k["valid"] == false).collect();
    if bad.is_empty() {
        return Some(format!("linearizable invalid but no key is: {lin}"));
    }
    for k in bad {
        let ce = &k["counterexample"];
        let why = ce["explanation"].as_str().unwrap_or("");
        // A sentence: several words, not a bare code.
        if !ce["op"].is_u64() || why.split_whitespace().count() < 5 {
            return Some(format!("a counterexample without op or sentence: {k}"));
        }
    }
    None
}

/// Run seeds until one is caught by the linearizable check; Err holds why each seed was not.
fn caught(preset: &str, nemesis: &str) -> Result<u64, Vec<String>> {
    let t = tempfile::tempdir().unwrap();
    let mut tried = Vec::new();
    for seed in 1..=5 {
        let o = short(t.path(), preset, nemesis, seed);
        let why = match o.status.code() {
            Some(1) => match not_caught_by_linearizable(&results_of(&o)) {
                None => return Ok(seed),
                Some(why) => why,
            },
            code => format!(
                "exit {code:?}: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
        };
        tried.push(format!("seed {seed}: {why}"));
    }
    Err(tried)
}

#[test]
fn weak_is_caught_under_partitions() {
    let _g = serial();
    if let Err(tried) = caught("weak", "partition") {
        panic!(
            "weak + partition never found invalid:\n{}",
            tried.join("\n")
        );
    }
}

#[test]
fn lww_loses_updates_under_clock_skew() {
    let _g = serial();
    if let Err(tried) = caught("lww", "clock-skew") {
        panic!(
            "lww + clock-skew never found invalid:\n{}",
            tried.join("\n")
        );
    }
}

/// Jepsen's clock faults reach real nodes (their admin clock offset) and ABD, which orders by
/// quorum-read timestamps of its own, not by wall clocks, stays linearizable through them.
#[test]
fn abd_is_linearizable_under_bumps_strobes_and_resets() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = run(
        t.path(),
        &[
            "--preset",
            "abd",
            "--nemesis",
            "partition,clock-skew",
            "--clock-mode",
            "bump,strobe,reset",
            "--time-limit",
            "6",
            "--nemesis-interval",
            "1.5",
            "--check-time-limit",
            "20",
            "--seed",
            "4",
        ],
    );
    let r = results_of(&o);
    assert_eq!(o.status.code(), Some(0), "abd should be valid: {r}");
    let text = std::fs::read_to_string(run_dir(&o).join("history.jsonl")).unwrap();
    let modes: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["f"] == "clock-skew-start")
        .map(|e| e["value"]["mode"].as_str().unwrap().to_string())
        .collect();
    assert!(
        modes.iter().any(|m| m == "bump" || m == "strobe"),
        "no bump or strobe applied: {modes:?}"
    );
}

/// Stale restore breaks ABD's own assumption (replicas never forget what they acknowledged):
/// even the `abd` preset must be caught, with a read that returned an overwritten value.
#[test]
fn abd_is_caught_under_stale_restore() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let mut tried = Vec::new();
    for seed in 1..=5 {
        let o = short(t.path(), "abd", "stale-restore", seed);
        if o.status.code() != Some(1) {
            tried.push(format!("seed {seed}: exit {:?}", o.status.code()));
            continue;
        }
        let r = results_of(&o);
        if let Some(why) = not_caught_by_linearizable(&r) {
            panic!("seed {seed}: exit 1 but not by the linearizable check: {why}");
        }
        let keys = r["checks"]["linearizable"]["keys"].as_object().unwrap();
        let bad: Vec<&Value> = keys.values().filter(|k| k["valid"] == false).collect();
        assert!(
            !bad.is_empty(),
            "seed {seed}: exit 1 but no invalid key: {r}"
        );
        for k in bad {
            let why = k["counterexample"]["explanation"].as_str().unwrap_or("");
            assert!(
                why.contains("read of") || why.contains("stale read"),
                "seed {seed}: the anomaly should be a stale read, got: {why}"
            );
        }
        return;
    }
    panic!(
        "abd + stale-restore never found invalid:\n{}",
        tried.join("\n")
    );
}

#[test]
fn bad_flags_exit_3_and_name_the_flag() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (&["--nodes", "0"][..], "--nodes"),
        (&["--nemesis", "frob"][..], "--nemesis"),
        (&["--preset", "nope"][..], "--preset"),
        (&["--ops", "read,frob"][..], "--ops"),
        (&["--n", "7"][..], "--n"),
        (&["--time-limit", "0"][..], "--time-limit"),
        (&["--no-such-flag"][..], "--no-such-flag"),
        (
            &["--garage-rpc-timeout-ms", "1000"][..],
            "--garage-rpc-timeout-ms",
        ),
        (
            &["--nodes", "1", "--n", "1", "--nemesis", "kill,partition"][..],
            "--nemesis partition with --nodes 1",
        ),
        (
            &["--nodes", "1", "--n", "1", "--nemesis", "flaky"][..],
            "--nemesis flaky with --nodes 1",
        ),
    ] {
        let o = run(t.path(), args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(flag),
            "{args:?}: stderr should name {flag}: {err}"
        );
    }
    // Refused before anything starts: no run folder, no node.
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
    assert!(left.is_empty(), "a refused run left {left:?}");
    let o = Command::new(quorate())
        .args(["run", "--node-bin", "/nonexistent/quorate-node"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
}

/// The node's own default N (3, from its `--check-config`, not restated here) beyond a smaller
/// cluster is refused in the same words as an explicit `--n`, before anything starts.
#[test]
fn a_default_n_beyond_the_cluster_is_refused_like_an_explicit_one() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = run(t.path(), &["--nodes", "2", "--nemesis", "none"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--n 3 is larger than --nodes 2: a key cannot have more replicas"),
        "{err}"
    );
    assert!(!t.path().join("latest").exists(), "nothing was started");
    // A cluster the default fits is accepted by the same probe.
    let o = run(
        t.path(),
        &[
            "--nodes",
            "2",
            "--n",
            "2",
            "--r",
            "1",
            "--w",
            "1",
            "--nemesis",
            "none",
            "--time-limit",
            "1",
            "--quiet",
            "0",
        ],
    );
    assert!(
        matches!(o.status.code(), Some(0..=2)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn store_layout_latest_and_junit() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let junit = t.path().join("junit.xml");
    let args = [
        "--nemesis",
        "none",
        "--time-limit",
        "1",
        "--quiet",
        "0.5",
        "--seed",
        "9",
        "--name",
        "layout",
        "--junit",
        junit.to_str().unwrap(),
    ];
    let a = run(t.path(), &args);
    let b = run(t.path(), &args);
    for o in [&a, &b] {
        assert!(
            matches!(o.status.code(), Some(0..=2)),
            "stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (da, db) = (run_dir(&a), run_dir(&b));
    assert_ne!(da, db, "two runs never share a folder");
    for d in [&da, &db] {
        assert_eq!(d.parent().unwrap(), t.path().join("layout"));
        let stamp = d.file_name().unwrap().to_string_lossy().to_string();
        assert!(stamp.len() >= 16 && stamp.as_bytes()[8] == b'T' && stamp[..16].ends_with('Z'));
        for f in [
            "history.jsonl",
            "test.json",
            "results.json",
            "timeline.html",
            "nodes/n1.log",
            "nodes/n5.log",
        ] {
            assert!(d.join(f).is_file(), "{} missing", d.join(f).display());
        }
    }
    let test: Value =
        serde_json::from_slice(&std::fs::read(db.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["seed"], 9);
    assert_eq!(test["args"]["nemesis"], "none");
    assert!(test["versions"]["quorate"].is_string());
    let link = std::fs::read_link(t.path().join("latest")).unwrap();
    assert!(link.is_relative());
    assert_eq!(
        t.path().join(link).canonicalize().unwrap(),
        db.canonicalize().unwrap()
    );
    let r = results_of(&b);
    assert!(r["ops"].as_u64().unwrap() > 0);
    assert!(r["checks"]["linearizable"].is_object());
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("<testcase") && x.contains("name=\"linearizable\""));
    // Every history line has index and time, in order.
    let hist = std::fs::read_to_string(db.join("history.jsonl")).unwrap();
    let mut last_t = 0;
    for (i, line) in hist.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["index"], i as u64);
        let tm = v["time"].as_i64().unwrap();
        assert!(tm >= last_t);
        last_t = tm;
    }
}

/// Children (by /proc) of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the ")" of the command name: state, ppid, …
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = rest.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == pid {
            out.push(p);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            !rest.starts_with('Z')
        }
        Err(_) => false,
    }
}

#[test]
fn sigint_stops_within_30s_and_leaves_no_process() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let mut child = Command::new(quorate())
        .args([
            "run",
            "--nemesis",
            "partition,kill,pause",
            "--nemesis-interval",
            "1",
        ])
        .args(["--time-limit", "120", "--seed", "3", "--results"])
        .arg(t.path())
        .arg("--node-bin")
        .arg(node_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the cluster is up and clients are recording.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut nodes = Vec::new();
    while Instant::now() < deadline {
        nodes = children(pid);
        let lines = std::fs::read_dir(t.path().join("node-strict-register"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_to_string(e.path().join("history.jsonl")).ok())
            .map(|h| h.lines().count())
            .unwrap_or(0);
        if nodes.len() >= 5 && lines > 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        nodes.len() >= 5,
        "cluster did not come up: children {nodes:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let nodes_now: Vec<u32> = children(pid);
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.code().is_some(), "exited by signal: {status:?}");
    for p in nodes.iter().chain(nodes_now.iter()) {
        assert!(!alive(*p), "process {p} outlived the run");
    }
    // What was recorded is kept and judged.
    let mut out = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let dir = PathBuf::from(out.lines().last().unwrap().trim());
    assert!(dir.join("history.jsonl").is_file());
    assert!(dir.join("results.json").is_file());
}
