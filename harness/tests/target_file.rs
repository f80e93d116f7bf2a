//! `quorate run --target-file`: stores described in a TOML file, clients through adapters
//! (docs/TARGETS.md, docs/INTERFACES.md "The adapter protocol"). Real processes: the reference
//! node through `examples/adapters/node.py`, etcd through `etcd.py` (netns partitions, root),
//! Redis with replicas through `redis.py`; clock skew checked through a time command;
//! misbehaving adapters from `tests/fixtures/adapters`;
//! target files refused with file:line before anything starts. After every run, no member and
//! no adapter process is left, Ctrl-C included.

mod common;

use common::{
    history, interrupt, quorate, results_of, run_dir, serial, stderr, stderr_tail, wait_recording,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn example(name: &str) -> PathBuf {
    repo().join("examples/targets").join(name)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/adapters")
        .join(name)
}

/// `quorate run --target-file FILE --results RESULTS ARGS…`, `quorate-node` (built beside
/// `quorate`) on PATH.
fn command(results: &Path, file: &Path, args: &[&str]) -> Command {
    let bin_dir = quorate().parent().unwrap().to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir];
    dirs.extend(std::env::split_paths(&path));
    let mut c = Command::new(quorate());
    c.arg("run")
        .arg("--target-file")
        .arg(file)
        .arg("--results")
        .arg(results)
        .args(args)
        .env("PATH", std::env::join_paths(dirs).unwrap())
        .stdin(Stdio::null());
    c
}

fn run(results: &Path, file: &Path, args: &[&str]) -> Output {
    let o = command(results, file, args).output().expect("run quorate");
    assert_nothing_left(results);
    o
}

/// The pids of every adapter a run started (its harness.log says each).
fn adapter_pids(results: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in walk(results) {
        if entry.file_name().is_some_and(|n| n == "harness.log") {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("adapter started")) {
                if let Some(p) = line.split("pid=").nth(1) {
                    let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                    pids.extend(digits.parse::<i32>().ok());
                }
            }
        }
    }
    pids
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A live (not zombie) process's command line, if it exists.
fn live_cmdline(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// No member (its command line names a folder under `results`) and no adapter the run
/// started is still running.
fn assert_nothing_left(results: &Path) {
    let needle = results.display().to_string();
    let mut left = Vec::new();
    for pid in adapter_pids(results) {
        if let Some(cmd) = live_cmdline(pid) {
            if cmd.contains(".py") {
                left.push(format!("adapter {pid}: {cmd}"));
            }
        }
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some(cmd) = live_cmdline(pid) {
            if cmd.contains(&needle) && !cmd.contains("--results") {
                left.push(format!("member {pid}: {cmd}"));
            }
        }
    }
    assert!(
        left.is_empty(),
        "left running after the run:\n{}",
        left.join("\n")
    );
}

fn results(o: &Output) -> Value {
    results_of(o)
}

/// results.json's verdict: "valid", "invalid", or what else it says.
fn verdict(r: &Value) -> String {
    match &r["valid"] {
        Value::Bool(true) => "valid".into(),
        Value::Bool(false) => "invalid".into(),
        other => other.to_string(),
    }
}

/// The node (abd) through its adapter under partitions and kills: valid in every seed tried.
#[test]
fn node_abd_through_its_adapter_is_valid_under_partition_and_kill() {
    let _g = serial();
    for seed in ["1", "2"] {
        let t = tempfile::tempdir().unwrap();
        let o = run(
            t.path(),
            &example("node.toml"),
            &[
                "--nodes",
                "3",
                "--nemesis",
                "partition,kill",
                "--time-limit",
                "6",
                "--nemesis-interval",
                "1.5",
                "--concurrency",
                "4",
                "--seed",
                seed,
            ],
        );
        let r = results(&o);
        assert_eq!(verdict(&r), "valid", "seed {seed}: {}", stderr_tail(&o, 30));
        let dir = run_dir(&o);
        let h = history(&dir);
        let ok = h.iter().filter(|e| e["type"] == "ok").count();
        assert!(ok > 100, "seed {seed}: only {ok} ok ops");
        let faults = h.iter().filter(|e| e["process"] == "nemesis").count();
        assert!(faults > 0, "seed {seed}: no fault ran");
        // One log per adapter, named by the process number it started under.
        assert!(dir.join("clients/0.log").is_file());
        assert!(dir.join("clients/final-n1.log").is_file());
    }
}

/// The node (weak) through its adapter: caught (up to 5 seeds).
#[test]
fn node_weak_through_its_adapter_is_caught() {
    let _g = serial();
    let mut seen = Vec::new();
    for seed in 1..=5 {
        let t = tempfile::tempdir().unwrap();
        let s = seed.to_string();
        let o = run(
            t.path(),
            &example("node-weak.toml"),
            &[
                "--nodes",
                "3",
                "--nemesis",
                "partition,kill",
                "--time-limit",
                "6",
                "--nemesis-interval",
                "1.5",
                "--concurrency",
                "4",
                "--seed",
                &s,
            ],
        );
        let r = results(&o);
        if verdict(&r) == "invalid" {
            return;
        }
        seen.push(format!("seed {seed}: {}", verdict(&r)));
    }
    panic!("weak was never caught: {seen:?}");
}

/// The built-in node client from a target file (`client.api = "node"`).
#[test]
fn a_target_file_can_use_the_built_in_node_api() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = run(
        t.path(),
        &example("node-api.toml"),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "kill",
            "--time-limit",
            "4",
            "--nemesis-interval",
            "1",
            "--concurrency",
            "3",
            "--seed",
            "3",
        ],
    );
    assert_eq!(verdict(&results(&o)), "valid", "{}", stderr_tail(&o, 20));
    assert!(
        !run_dir(&o).join("clients").exists(),
        "a built-in API starts no adapter"
    );
    // test.json names the target run, not --target's default.
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&o).join("test.json")).unwrap())
            .unwrap();
    assert_eq!(test["args"]["target"], "file", "{test}");
    assert!(test["args"]["target_file"].as_str().is_some(), "{test}");
}

/// The set workload through an adapter: `add`, and reads given `elements`.
#[test]
fn the_set_workload_speaks_through_the_adapter() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = run(
        t.path(),
        &example("node.toml"),
        &[
            "--workload",
            "set",
            "--nodes",
            "3",
            "--nemesis",
            "kill",
            "--time-limit",
            "4",
            "--nemesis-interval",
            "1",
            "--concurrency",
            "3",
            "--seed",
            "4",
        ],
    );
    assert_eq!(verdict(&results(&o)), "valid", "{}", stderr_tail(&o, 20));
    let h = history(&run_dir(&o));
    let reads_with_elements = h
        .iter()
        .filter(|e| {
            e["f"] == "read"
                && e["type"] == "ok"
                && e["value"].as_array().is_some_and(|a| !a.is_empty())
        })
        .count();
    assert!(reads_with_elements > 0, "no set read found an element");
}

/// A misbehaving adapter's ops are `info` with the reason (the bad line quoted), the adapter
/// is started afresh under a new process number, and the run goes on to a verdict.
#[test]
fn bad_adapters_make_info_ops_with_the_reason_and_the_run_goes_on() {
    let _g = serial();
    for (mode, says) in [
        ("garbage", "adapter answered \"this is not json\": not JSON"),
        ("wrong-id", "expected id"),
        ("hang", "timeout: no answer within 800 ms; adapter killed"),
        ("exit", "adapter exited (exit status: 7) without answering"),
        ("info", "adapter's own info"),
    ] {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("bad.toml");
        std::fs::write(
            &file,
            format!(
                r#"name = "bad-{mode}"
proxied_peers = true
faults = ["kill"]
[member]
command = ["quorate-node", "--id", "{{id}}", "--listen", "{{addr.client}}", "--peers", "{{peers}}", "--data-dir", "{{data_dir}}", "--preset", "abd"]
ready = {{ http = "http://{{addr.client}}/health" }}
[client]
adapter = ["python3", "{}", "{mode}", "{{addr}}"]
"#,
                fixture("bad.py").display()
            ),
        )
        .unwrap();
        let results_dir = t.path().join("results");
        let o = run(
            &results_dir,
            &file,
            &[
                "--nodes",
                "3",
                "--nemesis",
                "none",
                "--time-limit",
                "4",
                "--concurrency",
                "2",
                "--op-timeout-ms",
                "800",
                "--seed",
                "5",
            ],
        );
        let r = results(&o);
        let dir = run_dir(&o);
        let h = history(&dir);
        let infos: Vec<&Value> = h.iter().filter(|e| e["type"] == "info").collect();
        assert!(
            infos
                .iter()
                .any(|e| e["error"].as_str().is_some_and(|m| m.contains(says))),
            "{mode}: no info op says {says:?}; infos: {:?}",
            infos.iter().take(3).collect::<Vec<_>>()
        );
        let oks = h.iter().filter(|e| e["type"] == "ok").count();
        assert!(oks > 15, "{mode}: the run did not go on ({oks} ok ops)");
        // The client continued under fresh process numbers (slot + 2, + 4, …).
        let procs: std::collections::BTreeSet<u64> = h
            .iter()
            .filter_map(|e| e["process"].as_u64())
            .filter(|p| p % 2 == 0 && *p < 1000)
            .collect();
        assert!(
            procs.len() > 1,
            "{mode}: slot 0 never changed process number: {procs:?}"
        );
        // Started afresh: one log per adapter process, named by the process number it started
        // under; the two slots' first adapters are 0.log and 1.log, so a broken adapter's
        // successor makes a third (the final reads' adapters are final-<id>.log).
        let logs = std::fs::read_dir(dir.join("clients"))
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with("final-"))
            .count();
        if mode != "info" {
            assert!(logs > 2, "{mode}: only {logs} client adapter logs");
        }
        assert!(
            verdict(&r) == "valid",
            "{mode}: the node behind the adapter is abd: {}",
            verdict(&r)
        );
    }
}

/// An adapter that never answers: exit 3 with its stderr, never a verdict.
#[test]
fn an_adapter_that_never_answers_ends_the_run_with_exit_3_and_its_stderr() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("silent.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "silent"
[member]
command = ["quorate-node", "--id", "{{id}}", "--listen", "{{addr.client}}", "--peers", "{{peers}}", "--data-dir", "{{data_dir}}"]
ready = {{ tcp = "client" }}
[client]
adapter = ["{}"]
"#,
            fixture("silent.py").display()
        ),
    )
    .unwrap();
    let results_dir = t.path().join("results");
    let o = run(
        &results_dir,
        &file,
        &[
            "--nodes",
            "3",
            "--nemesis",
            "none",
            "--time-limit",
            "2",
            "--concurrency",
            "2",
            "--op-timeout-ms",
            "500",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr_tail(&o, 10));
    let e = stderr(&o);
    assert!(e.contains("no adapter ever answered"), "{e}");
    assert!(
        e.contains("silent.py: cannot reach the store"),
        "the adapter's stderr: {e}"
    );
    assert!(e.contains("verdict: none (error)"), "{e}");
    assert!(
        !e.contains("verdict: valid") && !e.contains("verdict: INVALID"),
        "{e}"
    );
}

/// Refused before anything starts, naming the file, the line and what was expected.
#[test]
fn bad_target_files_are_refused_with_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let good_member = r#"[member]
command = ["quorate-node", "--id", "{id}", "--listen", "{addr.client}", "--peers", "{peers}", "--data-dir", "{data_dir}"]
ready = { tcp = "client" }
"#;
    let cases: [(&str, String, &[&str], &str); 6] = [
        (
            "unknown-key",
            format!("name = \"x\"\ncolour = \"blue\"\n{good_member}[client]\napi = \"node\"\n"),
            &[],
            ":2: unknown field `colour`, expected one of",
        ),
        (
            "bad-placeholder",
            "name = \"x\"\n[member]\ncommand = [\"quorate-node\", \"--id\", \"{idd}\"]\nready = { tcp = \"client\" }\n[client]\napi = \"node\"\n".into(),
            &[],
            ":3: member.command \"{idd}\": unknown placeholder {idd}; expected one of",
        ),
        (
            "missing-command",
            format!("name = \"x\"\n{good_member}[client]\nadapter = [\"no-such-adapter-program\", \"{{addr}}\"]\n"),
            &[],
            ":6: client.adapter: program \"no-such-adapter-program\" not found",
        ),
        (
            "unsupported-fault",
            format!("name = \"x\"\nproxied_peers = true\nfaults = [\"kill\"]\n{good_member}[client]\napi = \"node\"\n"),
            &["--nemesis", "partition,kill"],
            ":3: --nemesis partition: this store cannot take it (faults = [kill] here)",
        ),
        (
            "clock-skew-for-go",
            format!("name = \"x\"\nfaults = [\"kill\",\n  \"clock-skew\"]\n{good_member}[client]\napi = \"node\"\n"),
            &["--nemesis", "kill"],
            ":3: faults: clock-skew needs libc_clock = true",
        ),
        (
            "s3-api-without-credentials",
            format!("name = \"x\"\n{good_member}[client]\napi = \"s3\"\n"),
            &[],
            ":6: client.api \"s3\": expected a [client.s3] table with bucket, access_key",
        ),
    ];
    for (name, text, args, says) in cases {
        let file = t.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let results_dir = t.path().join(format!("results-{name}"));
        let mut argv = vec!["--nodes", "3", "--nemesis", "none"];
        if !args.is_empty() {
            argv.truncate(2);
            argv.extend_from_slice(args);
        }
        let o = run(&results_dir, &file, &argv);
        assert_eq!(o.status.code(), Some(3), "{name}");
        let e = stderr(&o);
        let want = format!("{}{says}", file.display());
        assert!(e.contains(&want), "{name}: expected {want:?} in:\n{e}");
        assert!(
            !results_dir.exists(),
            "{name}: something started: {}",
            results_dir.display()
        );
    }
}

/// Ctrl-C (SIGINT to `quorate run`): every member and adapter gone, the history kept.
#[test]
fn ctrl_c_stops_every_member_and_adapter() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let mut child = command(
        t.path(),
        &example("node.toml"),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "kill",
            "--time-limit",
            "60",
            "--nemesis-interval",
            "2",
            "--concurrency",
            "3",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Until clients are recording, so the cluster is fully up.
    wait_recording(&mut child, t.path());
    assert!(!adapter_pids(t.path()).is_empty(), "no adapter started");
    interrupt(child, 8);
    assert_nothing_left(t.path());
}

/// Redis with replicas through its adapter, under partitions and kills: quorate finds what
/// asynchronous replication does — replica reads that are stale (not linearizable) — and,
/// once replicas have resynchronised (quiet_s outlasts Redis's 5 s diskless-sync delay), no
/// acknowledged write lost: the primary fsyncs every write (appendfsync always).
#[test]
fn redis_replicas_through_the_adapter_serve_stale_reads() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let o = run(
        t.path(),
        &example("redis.toml"),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "6",
            "--nemesis-interval",
            "1.5",
            "--concurrency",
            "4",
            "--seed",
            "1",
        ],
    );
    let r = results(&o);
    assert_eq!(verdict(&r), "invalid", "{}", stderr_tail(&o, 20));
    let checks = &r["checks"];
    let summary = stderr_tail(&o, 12);
    assert_eq!(
        checks["linearizable"]["valid"],
        Value::Bool(false),
        "{summary}"
    );
    assert_eq!(
        checks["stale-reads"]["valid"],
        Value::Bool(false),
        "{summary}"
    );
    assert!(
        checks["stale-reads"]["stale"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_eq!(
        checks["lost-writes"]["valid"],
        Value::Bool(true),
        "{summary}"
    );
}

/// etcd through its adapter (netns partitions need root): valid under partition,kill.
#[test]
fn etcd_through_its_adapter_is_valid_under_partition_and_kill() {
    if std::env::var_os("QUORATE_SKIP_NETNS").is_some() {
        eprintln!("skipped: QUORATE_SKIP_NETNS");
        return;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "etcd partitions need --backend netns, so root"
    );
    let _g = serial();
    for seed in ["1", "2"] {
        let t = tempfile::tempdir().unwrap();
        let o = run(
            t.path(),
            &example("etcd.toml"),
            &[
                "--backend",
                "netns",
                "--nodes",
                "3",
                "--nemesis",
                "partition,kill",
                "--time-limit",
                "8",
                "--nemesis-interval",
                "2",
                "--concurrency",
                "4",
                "--seed",
                seed,
            ],
        );
        let r = results(&o);
        assert_eq!(verdict(&r), "valid", "seed {seed}: {}", stderr_tail(&o, 30));
    }
}

/// Clock skew on a libc program through libfaketime, checked on the first skew through the
/// file's time command: the node (lww) reports its own clock moved; a time command that
/// reads another clock (the harness's own `date`) shows the skew did not take effect, and
/// the run ends with exit 3 instead of a verdict.
#[test]
fn clock_skew_is_checked_through_the_time_command() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let args = [
        "--nodes",
        "3",
        "--nemesis",
        "clock-skew",
        "--time-limit",
        "4",
        "--nemesis-interval",
        "1",
        "--concurrency",
        "2",
        "--seed",
        "1",
        "--quiet",
        "1",
    ];
    let o = run(t.path(), &example("node-lww-clock.toml"), &args);
    results(&o);
    let log = std::fs::read_to_string(run_dir(&o).join("harness.log")).unwrap();
    assert!(
        log.contains("own clock is"),
        "no clock check in harness.log"
    );

    let text = std::fs::read_to_string(example("node-lww-clock.toml"))
        .unwrap()
        .replace(
            "{target_dir}/../adapters/",
            &format!("{}/examples/adapters/", repo().display()),
        )
        .replace(
            r#"time_command = ["python3", "#,
            r#"time_command = ["date", "+%s.%N"]
unused = ["#,
        );
    let text = text.replace("\nunused = [", "\n# [");
    let file = t.path().join("wrong-clock.toml");
    std::fs::write(&file, text).unwrap();
    let o = run(&t.path().join("r2"), &file, &args);
    assert_eq!(o.status.code(), Some(3), "{}", stderr_tail(&o, 10));
    assert!(
        stderr(&o).contains("did not take effect"),
        "{}",
        stderr_tail(&o, 10)
    );
}

/// The set-up command runs once every member is ready, with the cluster's addresses; one that
/// fails ends the run with exit 3 and its output.
#[test]
fn the_setup_command_runs_once_and_a_failing_one_is_an_error() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let file = |name: &str, setup: &str| {
        let p = t.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                r#"name = "{name}"
[member]
command = ["quorate-node", "--id", "{{id}}", "--listen", "{{addr.client}}", "--peers", "{{peers}}", "--data-dir", "{{data_dir}}"]
ready = {{ http = "http://{{addr.client}}/health" }}
[setup]
command = ["sh", "-c", "{setup}"]
timeout_ms = 10000
[client]
api = "node"
"#
            ),
        )
        .unwrap();
        p
    };
    let args = [
        "--nodes",
        "3",
        "--nemesis",
        "none",
        "--time-limit",
        "2",
        "--concurrency",
        "2",
    ];
    let ok = file("setup-ok", "echo {members.client} > {run_dir}/members");
    let o = run(&t.path().join("r1"), &ok, &args);
    results(&o);
    let members = std::fs::read_to_string(run_dir(&o).join("members")).unwrap();
    assert_eq!(members.trim().split(',').count(), 3, "{members}");
    let bad = file("setup-bad", "echo no cluster for you; exit 4");
    let o = run(&t.path().join("r2"), &bad, &args);
    assert_eq!(o.status.code(), Some(3), "{}", stderr_tail(&o, 10));
    let e = stderr(&o);
    assert!(
        e.contains("setup.command exited with exit status: 4"),
        "{e}"
    );
    assert!(e.contains("no cluster for you"), "{e}");
}

/// An S3 store from a file: Garage 2.x started and laid out by `examples/targets/garage.toml`
/// and its set-up, clients on the built-in S3 client (`api = "s3"`) with the key the set-up
/// imported. Consistent mode reads its writes and loses none under kills (as `--target
/// garage`), and killed members rejoin (their restart bootstraps from the set-up's peer list).
#[test]
fn an_s3_store_from_a_file_through_the_built_in_s3_client() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let mut c = command(
        t.path(),
        &example("garage.toml"),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "kill",
            "--time-limit",
            "6",
            "--nemesis-interval",
            "2",
            "--checks",
            "stale-reads,lost-writes",
            "--seed",
            "1",
        ],
    );
    // The file's members run `garage` from PATH; QUORATE_GARAGE_BIN (install-deps) names one
    // elsewhere.
    if let Some(bin) = std::env::var_os("QUORATE_GARAGE_BIN") {
        let dir = PathBuf::from(bin).parent().unwrap().to_path_buf();
        let path = c
            .get_envs()
            .find(|(k, _)| *k == "PATH")
            .and_then(|(_, v)| v.map(|v| v.to_os_string()))
            .unwrap_or_default();
        let mut dirs = vec![dir];
        dirs.extend(std::env::split_paths(&path));
        c.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    let o = c.output().expect("run quorate");
    assert_nothing_left(t.path());
    let r = results(&o);
    assert_eq!(verdict(&r), "valid", "{}", stderr_tail(&o, 20));
    let stale = &r["checks"]["stale-reads"];
    assert!(stale["reads"].as_u64().unwrap() > 100, "{stale}");
    assert!(
        stale.get("keys_unjudged").is_none(),
        "every key read: {stale}"
    );
    assert_eq!(r["checks"]["lost-writes"]["valid"], true, "{r}");
    assert_eq!(r["run"]["faults"], 2, "{}", r["run"]);
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&o).join("test.json")).unwrap())
            .unwrap();
    assert!(
        test["versions"]["store"]
            .as_str()
            .is_some_and(|v| v.starts_with("garage")),
        "{test}"
    );
    assert!(
        std::fs::read_to_string(run_dir(&o).join("setup.log"))
            .unwrap()
            .contains("3 members laid out"),
        "the set-up's own output is kept"
    );
}
