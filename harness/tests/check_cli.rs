//! `quorate check` as a user runs it: exit codes, the `--json` lines, `--out`, bad flags,
//! unreadable files, several files, and the golden JSON of the bundled invalid example.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example(name: &str) -> String {
    root()
        .join("examples/histories")
        .join(name)
        .display()
        .to_string()
}

fn quorate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .arg("check")
        .args(args)
        .output()
        .expect("quorate runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

/// Every stdout line of a `--json` run, parsed; fails if any line is not JSON.
fn json_lines(out: &Output) -> Result<Vec<Value>> {
    String::from_utf8(out.stdout.clone())?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l:?}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn valid_history_exits_0_with_a_summary() {
    let out = quorate(&[&example("register-ok.jsonl")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("register-ok.jsonl: valid"), "{text}");
    assert!(text.contains("7 ops, 2 keys"), "{text}");
}

#[test]
fn invalid_history_exits_1_and_explains_each_invalid_key() {
    let out = quorate(&[&example("register-bad.jsonl")]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("register-bad.jsonl: INVALID"), "{text}");
    assert!(
        text.contains("key \"k1\": not linearizable at op 5:"),
        "{text}"
    );
    assert!(
        !text.contains("key \"k2\""),
        "valid keys are not listed: {text}"
    );
}

/// The golden object: everything but `elapsed_ms`, which is only checked to be a number.
#[test]
fn json_of_the_invalid_example_matches_the_golden_file() -> Result<()> {
    let path = example("register-bad.jsonl");
    let out = quorate(&["--json", &path]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let mut lines = json_lines(&out)?;
    assert_eq!(lines.len(), 1);
    let got = lines.remove(0);
    assert!(got["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    let mut got = got;
    got.as_object_mut().unwrap().remove("elapsed_ms");
    got["file"] = json!("register-bad.jsonl");
    let golden_path = root().join("harness/tests/golden/register-bad.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&golden_path)?)?;
    assert_eq!(got, golden, "got:\n{}", serde_json::to_string_pretty(&got)?);
    // The key order is INTERFACES.md's.
    let keys: Vec<_> = lines_keys(&String::from_utf8(out.stdout)?);
    assert_eq!(
        keys,
        [
            "file",
            "valid",
            "ops",
            "elapsed_ms",
            "checks",
            "format",
            "model"
        ]
    );
    Ok(())
}

#[test]
fn checks_flag_selects_the_quorum_checks() -> Result<()> {
    let out = quorate(&[
        "--json",
        "--checks",
        "stale-reads",
        &example("register-bad.jsonl"),
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let got = json_lines(&out)?.remove(0);
    let checks = got["checks"].as_object().unwrap();
    assert_eq!(checks.keys().collect::<Vec<_>>(), ["stale-reads"]);
    assert_eq!(checks["stale-reads"]["stale"], json!(1));
    assert_eq!(checks["stale-reads"]["k_staleness"]["max"], json!(1));
    // The terminal summary gives each check's verdict with its counts.
    let out = quorate(&[&example("register-bad.jsonl")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  linearizable: INVALID — 1 of 2 keys invalid"),
        "{text}"
    );
    assert!(
        text.contains("  stale-reads: INVALID — 1 stale of 2 reads"),
        "{text}"
    );
    assert!(
        text.contains("  lost-writes: INVALID — 1 lost of 3 acknowledged writes"),
        "{text}"
    );
    assert!(
        text.contains("  sessions: valid — 0 monotonic-reads"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_history_without_client_ops_is_unknown() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("empty.jsonl");
    std::fs::write(
        &path,
        "{\"index\":0,\"time\":0,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"kill-start\",\"value\":null}\n",
    )?;
    let out = quorate(&["--json", path.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let got = json_lines(&out)?.remove(0);
    assert_eq!(got["valid"], json!("unknown"));
    assert_eq!(got["reason"], json!("no client ops"));
    let out = quorate(&[path.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown — 0 ops"));
    Ok(())
}

/// The top-level keys of a JSON object line, in the order written.
fn lines_keys(line: &str) -> Vec<String> {
    let v: serde_json::Map<String, Value> = serde_json::from_str(line.trim()).unwrap();
    v.keys().cloned().collect()
}

#[test]
fn bad_flags_exit_3_and_say_why() {
    let h = example("register-ok.jsonl");
    for (args, says) in [
        (vec!["--model", "bogus", &h], "unknown model"),
        (vec!["--format", "csv", &h], "unknown format"),
        (vec!["--checks", "nope", &h], "unknown check"),
        (vec!["--initial", "abc", &h], "not JSON"),
        (vec!["--time-limit", "0", &h], "positive number of seconds"),
        (vec!["--no-such-flag", &h], "--no-such-flag"),
        (vec![], "FILE"),
    ] {
        let out = quorate(&args);
        assert_eq!(code(&out), 3, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_says_the_default_model() {
    let out = quorate(&["--help"]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kv for kv histories"), "{text}");
    assert!(text.contains("Exit codes"), "{text}");
}

#[test]
fn unreadable_file_gives_an_error_object_and_the_others_are_still_checked() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(
        &broken,
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n{\"process\":0,\"type\":\n",
    )?;
    let missing = dir.path().join("missing.jsonl");
    let ok = example("register-ok.jsonl");
    let out = quorate(&[
        "--json",
        broken.to_str().unwrap(),
        &ok,
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 3);
    let lines = json_lines(&out)?;
    assert_eq!(lines.len(), 3);
    let err = lines[0].as_object().unwrap();
    assert_eq!(err.len(), 2, "only file and error: {err:?}");
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains("broken.jsonl") && msg.contains("line 2") && msg.contains("expected"),
        "{msg}"
    );
    assert_eq!(lines[1]["valid"], json!(true));
    assert!(lines[2]["error"]
        .as_str()
        .unwrap()
        .contains("missing.jsonl"));
    Ok(())
}

#[test]
fn several_files_combine_invalid_over_valid() -> Result<()> {
    let out = quorate(&[
        "--json",
        &example("register-ok.jsonl"),
        &example("register-bad.jsonl"),
    ]);
    assert_eq!(code(&out), 1);
    let lines = json_lines(&out)?;
    assert_eq!(
        lines.iter().map(|l| l["valid"].clone()).collect::<Vec<_>>(),
        [json!(true), json!(false)]
    );
    Ok(())
}

#[test]
fn a_model_that_does_not_fit_is_an_error() -> Result<()> {
    // The examples hold a cas, which the plain register model does not know.
    let out = quorate(&[
        "--json",
        "--model",
        "register",
        &example("register-ok.jsonl"),
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let lines = json_lines(&out)?;
    assert!(lines[0]["error"].as_str().unwrap().contains("register"));
    Ok(())
}

#[test]
fn out_dir_holds_results_and_a_timeline() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("report");
    let out = quorate(&[
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
        &example("register-bad.jsonl"),
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let printed = json_lines(&out)?.remove(0);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json"))?)?;
    assert_eq!(saved, printed);
    let html = std::fs::read_to_string(out_dir.join("timeline.html"))?;
    assert!(html.contains("<svg") && html.contains("register-bad.jsonl"));
    assert!(
        stderr(&out).contains("timeline.html"),
        "says where the report is"
    );
    for plot in ["latency.svg", "rate.svg", "staleness.svg"] {
        let svg = std::fs::read_to_string(out_dir.join(plot))?;
        assert!(svg.starts_with("<svg"), "{plot} is an SVG");
    }
    Ok(())
}

#[test]
fn out_dir_with_several_files_has_a_folder_each() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("many");
    let missing = dir.path().join("missing.jsonl");
    let out = quorate(&[
        "--out",
        out_dir.to_str().unwrap(),
        &example("register-ok.jsonl"),
        &example("register-bad.jsonl"),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 3);
    for name in ["register-ok.jsonl", "register-bad.jsonl"] {
        assert!(out_dir.join(name).join("results.json").is_file(), "{name}");
        assert!(out_dir.join(name).join("timeline.html").is_file(), "{name}");
    }
    let err: Value = serde_json::from_str(&std::fs::read_to_string(
        out_dir.join("missing.jsonl/results.json"),
    )?)?;
    assert!(err["error"].is_string());
    assert!(!out_dir.join("missing.jsonl/timeline.html").exists());
    let all = std::fs::read_to_string(out_dir.join("results.jsonl"))?;
    assert_eq!(all.lines().count(), 3);
    Ok(())
}

/// The checker's one Porcupine-data helper, shared by path (a missing data set is an error).
#[path = "../../checker/tests/common/mod.rs"]
mod common;

fn porcupine(name: &str) -> Result<String> {
    Ok(common::porcupine_data_dir()?
        .join(name)
        .display()
        .to_string())
}

#[test]
fn porcupine_files_get_their_verdicts_and_kv_its_model() -> Result<()> {
    let (etcd, kv) = (
        porcupine("jepsen/etcd_000.log")?,
        porcupine("kv/c01-ok.txt")?,
    );
    let out = quorate(&["--json", &etcd, &kv]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let lines = json_lines(&out)?;
    assert_eq!(lines[0]["valid"], json!(false));
    assert_eq!(lines[0]["ops"], 85);
    assert_eq!(lines[0]["model"], "cas-register");
    assert!(
        lines[0]["checks"]["linearizable"]["keys"][""]["counterexample"]["explanation"].is_string()
    );
    assert_eq!(lines[1]["valid"], json!(true));
    assert_eq!(lines[1]["model"], "kv");
    assert_eq!(lines[1]["format"], "porcupine-kv");
    Ok(())
}

/// A checker fixture (`checker/tests/fixtures/`).
fn fixture(name: &str) -> String {
    root()
        .join("checker/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Checks that judged nothing are never `valid`: exit 2, and the reason on the terminal and in
/// the JSON.
#[test]
fn a_history_of_info_ops_only_is_unknown_and_says_why() -> Result<()> {
    let path = fixture("all-info.jsonl");
    let out = quorate(&[&path]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("all-info.jsonl: unknown"), "{text}");
    for line in [
        "  linearizable: unknown (no op completed ok)",
        "  stale-reads: unknown (no read completed) — 0 stale of 0 reads; 2 of 2 keys not judged (no read): k1 k2",
        "  lost-writes: unknown (no read completed) — 0 lost of 0 acknowledged writes",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    let out = quorate(&["--json", &path]);
    assert_eq!(code(&out), 2);
    let got = json_lines(&out)?.remove(0);
    assert_eq!(got["valid"], json!("unknown"));
    assert_eq!(
        got["checks"]["lost-writes"]["reason"],
        json!("no read completed")
    );
    assert_eq!(got["checks"]["stale-reads"]["keys_unjudged"], json!(2));
    assert_eq!(
        got["checks"]["stale-reads"]["unjudged_keys"],
        json!(["k1", "k2"])
    );
    Ok(())
}

#[test]
fn a_write_only_history_is_unknown_and_counts_the_unread_writes() -> Result<()> {
    let path = fixture("write-only.jsonl");
    let out = quorate(&[&path]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  lost-writes: unknown (no read completed) — 0 lost of 0 acknowledged writes, 3 acknowledged writes never read afterwards"),
        "{text}"
    );
    assert!(
        text.contains("  stale-reads: unknown (no read completed)"),
        "{text}"
    );
    let got = json_lines(&quorate(&["--json", &path]))?.remove(0);
    assert_eq!(got["valid"], json!("unknown"));
    assert_eq!(got["checks"]["lost-writes"]["unread"], json!(3));
    assert_eq!(got["checks"]["linearizable"]["valid"], json!(true));
    Ok(())
}

#[test]
fn the_only_check_asked_for_skipped_is_unknown_and_says_why() -> Result<()> {
    let path = fixture("repeated-values.jsonl");
    let out = quorate(&["--checks", "stale-reads", &path]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("repeated-values.jsonl: unknown — 4 ops, 1 key"),
        "{text}"
    );
    assert!(
        text.contains("(every check asked for was skipped (stale-reads))"),
        "{text}"
    );
    assert!(
        text.contains("  stale-reads: skipped (values repeat"),
        "{text}"
    );
    let got = json_lines(&quorate(&["--json", "--checks", "stale-reads", &path]))?.remove(0);
    assert_eq!(got["valid"], json!("unknown"));
    assert_eq!(
        got["reason"],
        json!("every check asked for was skipped (stale-reads)")
    );
    // By default linearizable judges the same file: valid, as before.
    let out = quorate(&[&path]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

#[test]
fn a_cut_off_last_line_is_checked_up_to_and_named() -> Result<()> {
    let path = fixture("cut-off.jsonl");
    let out = quorate(&[&path]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("truncated: line 6 was cut off (59 bytes, no newline at the end)"),
        "{text}"
    );
    let got = json_lines(&quorate(&["--json", &path]))?.remove(0);
    assert_eq!(got["truncated"], json!({"line": 6, "bytes": 59}));
    assert_eq!(got["ops"], json!(3));
    // The same bad line ending in a newline is not a cut: the file is refused.
    let dir = tempfile::tempdir()?;
    let ended = dir.path().join("ended.jsonl");
    let mut bytes = std::fs::read(&path)?;
    bytes.push(b'\n');
    std::fs::write(&ended, bytes)?;
    let out = quorate(&["--json", ended.to_str().unwrap()]);
    assert_eq!(code(&out), 3);
    let err = json_lines(&out)?.remove(0);
    let msg = err["error"].as_str().unwrap();
    assert!(msg.contains("ended.jsonl: line 6:"), "{msg}");
    Ok(())
}
