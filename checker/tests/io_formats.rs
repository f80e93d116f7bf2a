//! Every format's reader on small fixture files (tests/fixtures/): what it reads, and that a
//! malformed line stops the read with the file, the line and what was expected.

use anyhow::Result;
use quorate_checker::history::{jsonl, pair, EventType, Outcome, Process};
use quorate_checker::import::{read_path, read_path_as, Format};
use serde_json::json;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Read a malformed fixture; the error must name the file, the line and an expectation.
fn error_of(name: &str, format: Format, line: usize) -> String {
    let err = read_path(&fixture(name), format)
        .expect_err(name)
        .to_string();
    assert!(err.contains(name), "names the file: {err}");
    assert!(
        err.contains(&format!("line {line}:")) || err.contains(&format!("line {line},")),
        "names line {line}: {err}"
    );
    assert!(err.contains("expected"), "says what was expected: {err}");
    err
}

#[test]
fn jsonl_reads_every_field_and_keeps_unknown_ones() -> Result<()> {
    let (events, format) = read_path_as(&fixture("register.jsonl"), Format::Auto)?;
    assert_eq!(format, Format::Jsonl);
    assert_eq!(events.len(), 9);
    assert_eq!(events[0].node.as_deref(), Some("n1"));
    assert_eq!(events[2].version, Some(json!([17, "n1"])));
    assert_eq!(events[3].process, Process::Nemesis);
    assert_eq!(events[4].extra.get("trace"), Some(&json!("abc")));
    assert_eq!(events[8].process, Process::Harness);
    let h = pair(&events)?;
    assert_eq!(h.ops.len(), 3);
    assert_eq!(h.other.len(), 3);
    assert_eq!(h.ops[2].outcome, Outcome::Mismatch);
    Ok(())
}

#[test]
fn jsonl_round_trips_byte_for_byte() -> Result<()> {
    let text = std::fs::read_to_string(fixture("register.jsonl"))?;
    let events = jsonl::read(&text)?;
    let mut out = Vec::new();
    jsonl::write_events(&mut out, &events)?;
    assert_eq!(String::from_utf8(out)?, text);
    Ok(())
}

#[test]
fn jsonl_assigns_missing_indices_and_passes_blank_lines() -> Result<()> {
    let events = read_path(&fixture("no-index.jsonl"), Format::Jsonl)?;
    let idx: Vec<_> = events.iter().map(|e| e.index).collect();
    assert_eq!(idx, [Some(0), Some(1), Some(2)]);
    assert!(events.iter().all(|e| e.time.is_none()));
    let h = pair(&events)?;
    assert_eq!(h.ops[0].outcome, Outcome::Info);
    // The read is never completed: it counts as info too.
    assert_eq!(h.ops[1].outcome, Outcome::Info);
    Ok(())
}

#[test]
fn jsonl_errors_name_file_line_and_expectation() {
    let e = error_of("bad-line.jsonl", Format::Auto, 3);
    assert!(e.contains("unknown variant `done`"), "{e}");
    let e = error_of("bad-time.jsonl", Format::Jsonl, 2);
    assert!(e.contains("never decrease"), "{e}");
    // Not JSON at all, with the format forced.
    let e = error_of("etcd.log", Format::Jsonl, 1);
    assert!(e.contains("INFO"), "{e}");
}

#[test]
fn jepsen_edn_vector_with_nemesis_fail_and_info() -> Result<()> {
    let (events, format) = read_path_as(&fixture("knossos.edn"), Format::Auto)?;
    assert_eq!(format, Format::JepsenEdn);
    assert_eq!(events.len(), 10);
    assert!(events.iter().all(|e| e.key.is_none()));
    assert_eq!(events[4].process, Process::Nemesis);
    assert_eq!(events[4].value, json!("n1 isolated"));
    assert_eq!(events[9].error.as_deref(), Some("timeout"));
    let h = pair(&events)?;
    let outcomes: Vec<_> = h.ops.iter().map(|o| o.outcome).collect();
    // A Jepsen :fail without a mismatch error is "did not happen".
    assert_eq!(
        outcomes,
        [Outcome::Ok, Outcome::Ok, Outcome::Fail, Outcome::Info]
    );
    Ok(())
}

#[test]
fn jepsen_edn_independent_keys_split_into_key_and_value() -> Result<()> {
    let events = read_path(&fixture("independent.edn"), Format::Auto)?;
    let keys: Vec<_> = events.iter().map(|e| e.key_str()).collect();
    assert_eq!(keys, ["0", "1", "0", "1", "0", "0"]);
    assert_eq!(events[1].value, json!(null));
    assert_eq!(events[4].value, json!([5, 6]));
    assert_eq!(events[5].time, Some(400));
    assert_eq!(events[5].node.as_deref(), Some("n2"));
    assert_eq!(events[5].extra.get("latency"), Some(&json!(100)));
    let h = pair(&events)?;
    assert_eq!(h.by_key().len(), 2);
    Ok(())
}

#[test]
fn jepsen_edn_errors_name_line_column_and_expectation() {
    let e = error_of("bad.edn", Format::Auto, 3);
    assert!(e.contains("column 2") && e.contains("pairs"), "{e}");
}

#[test]
fn porcupine_etcd_outcomes() -> Result<()> {
    let (events, format) = read_path_as(&fixture("etcd.log"), Format::Auto)?;
    assert_eq!(format, Format::PorcupineEtcd);
    let h = pair(&events)?;
    let got: Vec<_> = h
        .ops
        .iter()
        .map(|o| (o.f.as_str(), o.outcome, o.input.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("read", Outcome::Ok, json!(null)),
            ("write", Outcome::Ok, json!(2)),
            ("cas", Outcome::Ok, json!([2, 4])),
            ("cas", Outcome::Mismatch, json!([2, 1])),
            ("read", Outcome::Info, json!(null)),
            ("write", Outcome::Info, json!(3)),
        ]
    );
    assert_eq!(events[11].kind, EventType::Info);
    assert_eq!(events[11].error.as_deref(), Some("timed-out"));
    Ok(())
}

#[test]
fn porcupine_etcd_errors_name_line_and_expectation() {
    let e = error_of("bad-etcd.log", Format::Auto, 3);
    assert!(e.contains("[2"), "{e}");
}

#[test]
fn porcupine_kv_reads_keys_and_strings() -> Result<()> {
    let (events, format) = read_path_as(&fixture("kv.txt"), Format::Auto)?;
    assert_eq!(format, Format::PorcupineKv);
    let h = pair(&events)?;
    assert_eq!(h.by_key().keys().copied().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(h.ops[1].output, json!("x"));
    Ok(())
}

#[test]
fn porcupine_kv_rejects_ops_the_kv_model_lacks() {
    let e = error_of("bad-kv.txt", Format::Auto, 3);
    assert!(e.contains(":incr"), "{e}");
}

#[test]
fn unreadable_and_unrecognisable_files() {
    let missing = fixture("no-such-file.jsonl");
    let e = read_path(&missing, Format::Auto).unwrap_err().to_string();
    assert!(e.contains("no-such-file.jsonl"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.txt");
    std::fs::write(&odd, "\n\nhello world\n").unwrap();
    let e = read_path(&odd, Format::Auto).unwrap_err().to_string();
    assert!(
        e.contains("odd.txt") && e.contains("line 3") && e.contains("--format"),
        "{e}"
    );
    let bin = dir.path().join("bin.jsonl");
    std::fs::write(&bin, b"{\"process\":0}\n\xff\xfe").unwrap();
    let e = read_path(&bin, Format::Auto).unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("UTF-8"), "{e}");
}

#[test]
fn pairing_owned_events_gives_the_same_ops_as_pairing_borrowed_ones() -> Result<()> {
    use quorate_checker::history::pair_owned;
    for name in [
        "register.jsonl",
        "knossos.edn",
        "etcd.log",
        "kv.txt",
        "no-index.jsonl",
    ] {
        let events = read_path(&fixture(name), Format::Auto)?;
        let borrowed = pair(&events)?;
        let owned = pair_owned(events.clone())?;
        assert_eq!(borrowed.ops, owned.ops, "{name}");
        assert_eq!(borrowed.other, owned.other, "{name}");
        assert_eq!(borrowed.events, owned.events, "{name}");
    }
    Ok(())
}

#[test]
fn reading_straight_into_ops_matches_reading_then_pairing() -> Result<()> {
    use quorate_checker::import::read_history;
    for name in [
        "register.jsonl",
        "no-index.jsonl",
        "knossos.edn",
        "independent.edn",
        "etcd.log",
        "kv.txt",
    ] {
        let events = read_path(&fixture(name), Format::Auto)?;
        let want = pair(&events)?;
        let (got, _) = read_history(&fixture(name), Format::Auto)?;
        assert_eq!(got.ops, want.ops, "{name}");
        assert_eq!(got.other, want.other, "{name}");
        assert_eq!(got.events, want.events, "{name}");
    }
    Ok(())
}

#[test]
fn pairing_errors_name_the_file_and_its_real_line() -> Result<()> {
    use quorate_checker::import::read_history;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("orphan.jsonl");
    // The blank line makes the orphan completion line 3, though it is the second event.
    std::fs::write(
        &path,
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n\n\
         {\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":null}\n",
    )?;
    let e = read_history(&path, Format::Auto).unwrap_err().to_string();
    assert!(e.contains("orphan.jsonl: line 3:"), "{e}");
    assert!(e.contains("expected an invoke by process 1"), "{e}");
    Ok(())
}
