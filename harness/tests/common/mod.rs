//! Scaffolding shared by the harness's end-to-end tests: where the binaries are, one lock so a
//! test binary starts one cluster at a time, and reading what a finished `quorate run` left.
//! Each test file takes what it needs (`mod common;`), so some items go unused in some files.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Held for the whole of a test that starts a cluster: the machine has two cores and other
/// suites run beside these. A test that panicked while holding it does not poison the rest.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn quorate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quorate"))
}

/// The `quorate-node` built beside `quorate` (`make test` builds it first).
pub fn node_bin() -> PathBuf {
    let p = quorate().parent().unwrap().join("quorate-node");
    assert!(
        p.is_file(),
        "{} is missing: build it first with `cargo build -p quorate-node` (make test does)",
        p.display()
    );
    p
}

/// `quorate run --results RESULTS --node-bin NODE_BIN ARGS…` to its end, no standard input.
pub fn run_with(results: &Path, node_bin: &Path, args: &[&str]) -> Output {
    Command::new(quorate())
        .arg("run")
        .arg("--results")
        .arg(results)
        .arg("--node-bin")
        .arg(node_bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run quorate")
}

/// [`run_with`] the `quorate-node` built beside `quorate`.
pub fn run(results: &Path, args: &[&str]) -> Output {
    run_with(results, &node_bin(), args)
}

/// The run's folder (or a comparison's): the last line `quorate` printed on stdout.
pub fn run_dir(o: &Output) -> PathBuf {
    let out = String::from_utf8_lossy(&o.stdout);
    PathBuf::from(out.lines().last().unwrap_or("").trim())
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last `n` lines of stderr, for assertion messages.
pub fn stderr_tail(o: &Output, n: usize) -> String {
    let e = stderr(o);
    let lines: Vec<&str> = e.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// results.json of a run that ended with a verdict (exit 0, 1 or 2, never 3).
pub fn results_of(o: &Output) -> Value {
    assert!(
        matches!(o.status.code(), Some(0..=2)),
        "the run should end with a verdict, got exit {:?}; stderr:\n{}",
        o.status.code(),
        stderr_tail(o, 30)
    );
    let dir = run_dir(o);
    let text = std::fs::read_to_string(dir.join("results.json"))
        .unwrap_or_else(|e| panic!("{}/results.json: {e}", dir.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every line of a run folder's history.jsonl.
pub fn history(dir: &Path) -> Vec<Value> {
    let p = dir.join("history.jsonl");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Wait (bounded, 120 s) until a started `quorate run` has recorded 2000 bytes of history under
/// `results/latest`, so its cluster is up and its clients are recording; the run ending first
/// fails the test.
pub fn wait_recording(child: &mut Child, results: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let history = results.join("latest").join("history.jsonl");
    while std::fs::metadata(&history).map(|m| m.len()).unwrap_or(0) < 2000 {
        assert!(Instant::now() < deadline, "no ops recorded within 120 s");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Ctrl-C a started `quorate run`: SIGINT, then it must end within 30 s and not with exit 3
/// (its stderr's last `tail` lines in the failure). Its output, for what a test checks next.
pub fn interrupt(child: Child, tail: usize) -> Output {
    let mut child = child;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still running 30 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    assert_ne!(o.status.code(), Some(3), "{}", stderr_tail(&o, tail));
    o
}

/// No process whose command line names the results folder (members, lazyfs servers,
/// fusermount3) and no lazyfs mount under it, once a run has ended.
pub fn assert_no_process_or_mount(results: &Path) {
    let needle = results.display().to_string();
    // fusermount3 unmounts a moment after its server exits: allow it a bounded while.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut left = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let zombie = std::fs::read_to_string(entry.path().join("stat"))
                .is_ok_and(|s| s.contains(") Z "));
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && !cmdline.contains("quorate run") && !zombie {
                left.push(cmdline);
            }
        }
        let mounts: Vec<_> = quorate::lazyfs::mount::listed()
            .into_iter()
            .filter(|m| m.mountpoint.starts_with(results))
            .collect();
        if left.is_empty() && mounts.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: processes {left:?}, mounts {mounts:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
