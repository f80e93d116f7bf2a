//! Verdicts need evidence: per check, the keys that were judged decide, the keys with nothing
//! to judge are counted and named, and a check that judged no key at all is `unknown` with its
//! reason, never `valid`; a file whose every requested check was skipped is `unknown`.

use quorate_checker::check::{check_history, Check, CheckOptions};
use quorate_checker::import::{history_from_bytes, Format};
use serde_json::{json, Value};

/// A JSONL history from short lines "PROCESS TYPE F KEY VALUE" (VALUE as JSON), in line order,
/// 10 ms apart.
fn history(lines: &[&str]) -> String {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let p: Vec<&str> = l.splitn(5, ' ').collect();
        let value: Value = serde_json::from_str(p[4]).expect("a JSON value");
        let ev = json!({"index": i, "time": i as i64 * 10_000_000, "process": p[0].parse::<u64>().unwrap(),
            "type": p[1], "f": p[2], "key": p[3], "value": value});
        out.push_str(&format!("{ev}\n"));
    }
    out
}

/// Check a history (`checks` empty: the default) and give its JSON object and summary.
fn check(text: &str, checks: &[Check]) -> (Value, String) {
    let (h, format) = history_from_bytes(text.as_bytes(), Format::Jsonl).expect("reads");
    let opts = CheckOptions {
        checks: checks.to_vec(),
        ..CheckOptions::default()
    };
    let report = check_history("h.jsonl", h, format, &opts).expect("checks");
    (report.to_json(), report.summary())
}

#[test]
fn lost_writes_counts_the_keys_whose_writes_no_read_followed() {
    let text = history(&[
        // k1: written, then read: judged (and nothing lost).
        "0 invoke write k1 1",
        "0 ok write k1 1",
        "1 invoke read k1 null",
        "1 ok read k1 1",
        // k10: written, never read.
        "0 invoke write k10 2",
        "0 ok write k10 2",
        // k2: its only read began before the write completed (a final read that came too soon).
        "1 invoke read k2 null",
        "0 invoke write k2 3",
        "0 ok write k2 3",
        "1 ok read k2 null",
    ]);
    let (j, s) = check(&text, &[]);
    let lost = &j["checks"]["lost-writes"];
    assert_eq!(lost["valid"], json!(true), "the judged key decides: {lost}");
    assert_eq!(lost["acknowledged"], json!(1));
    assert_eq!(lost["unread"], json!(2), "{lost}");
    assert_eq!(lost["keys_total"], json!(3));
    assert_eq!(lost["keys_unjudged"], json!(2));
    assert_eq!(lost["unjudged_keys"], json!(["k2", "k10"]), "natural order");
    assert!(lost.get("reason").is_none(), "{lost}");
    assert!(
        s.contains("  lost-writes: valid — 0 lost of 1 acknowledged writes, 2 acknowledged writes never read afterwards; 2 of 3 keys not judged (no acknowledged write was read afterwards): k2 k10\n"),
        "{s}"
    );
    // k10 has no read at all: stale-reads and sessions count it; k2's read is judged there.
    for name in ["stale-reads", "sessions"] {
        let c = &j["checks"][name];
        assert_eq!(c["valid"], json!(true), "{name}: {c}");
        assert_eq!(c["keys_unjudged"], json!(1), "{name}: {c}");
        assert_eq!(c["unjudged_keys"], json!(["k10"]), "{name}: {c}");
    }
    assert!(s.contains("; 1 of 3 keys not judged (no read): k10"), "{s}");
    assert_eq!(j["valid"], json!(true));
}

#[test]
fn a_lost_write_on_a_judged_key_is_invalid_beside_unjudged_keys() {
    let text = history(&[
        "0 invoke write k1 1",
        "0 ok write k1 1",
        "1 invoke read k1 null",
        "1 ok read k1 null",
        "0 invoke write k2 2",
        "0 ok write k2 2",
    ]);
    let (j, _) = check(&text, &[Check::LostWrites]);
    let lost = &j["checks"]["lost-writes"];
    assert_eq!(lost["valid"], json!(false), "{lost}");
    assert_eq!(lost["lost"], json!(1));
    assert_eq!(lost["keys"], json!(["k1"]));
    assert_eq!(lost["unjudged_keys"], json!(["k2"]));
    assert_eq!(j["valid"], json!(false));
}

#[test]
fn every_key_judged_adds_no_fields() {
    let text = history(&[
        "0 invoke write k1 1",
        "0 ok write k1 1",
        "1 invoke read k1 null",
        "1 ok read k1 1",
    ]);
    let (j, _) = check(&text, &[]);
    for name in ["stale-reads", "lost-writes", "sessions", "linearizable"] {
        let c = j["checks"][name].as_object().unwrap();
        for field in ["reason", "keys_unjudged", "unjudged_keys", "unread"] {
            assert!(!c.contains_key(field), "{name} has {field}: {c:?}");
        }
    }
    assert_eq!(j["valid"], json!(true));
}

#[test]
fn a_check_that_judged_no_key_is_unknown_with_its_reason() {
    // Reads but no acknowledged write: stale-reads and sessions judge the reads; lost-writes
    // has nothing to judge.
    let reads_only = history(&[
        "0 invoke write k1 1",
        "0 info write k1 1",
        "1 invoke read k1 null",
        "1 ok read k1 null",
    ]);
    let (j, s) = check(&reads_only, &[]);
    assert_eq!(j["checks"]["stale-reads"]["valid"], json!(true));
    let lost = &j["checks"]["lost-writes"];
    assert_eq!(lost["valid"], json!("unknown"), "{lost}");
    assert_eq!(lost["reason"], json!("no write was acknowledged"));
    assert_eq!(j["valid"], json!("unknown"));
    assert!(
        s.contains("  lost-writes: unknown (no write was acknowledged) — 0 lost of 0"),
        "{s}"
    );
    // Every read began before the writes completed.
    let early = history(&[
        "1 invoke read k1 null",
        "1 ok read k1 null",
        "0 invoke write k1 1",
        "0 ok write k1 1",
    ]);
    let (j, _) = check(&early, &[Check::LostWrites]);
    let lost = &j["checks"]["lost-writes"];
    assert_eq!(
        lost["reason"],
        json!("no read began after an acknowledged write completed"),
        "{lost}"
    );
    assert_eq!(lost["unread"], json!(1));
    assert_eq!(j["valid"], json!("unknown"));
}

#[test]
fn all_info_ops_leave_every_check_unknown() {
    let text = history(&[
        "0 invoke write k1 1",
        "1 invoke read k2 null",
        "0 info write k1 1",
        "1 info read k2 null",
    ]);
    let (j, _) = check(&text, &[]);
    assert_eq!(j["valid"], json!("unknown"));
    for (name, why) in [
        ("linearizable", "no op completed ok"),
        ("stale-reads", "no read completed"),
        ("lost-writes", "no read completed"),
        ("sessions", "no read completed"),
    ] {
        let c = &j["checks"][name];
        assert_eq!(c["valid"], json!("unknown"), "{name}: {c}");
        assert_eq!(c["reason"], json!(why), "{name}: {c}");
        assert_eq!(c["keys_unjudged"], json!(2), "{name}: {c}");
    }
}

#[test]
fn linearizable_names_keys_with_no_completed_op_and_judges_the_rest() {
    let text = history(&[
        "0 invoke write k1 1",
        "0 ok write k1 1",
        "1 invoke write k2 2",
        "1 info write k2 2",
    ]);
    let (j, s) = check(&text, &[Check::Linearizable]);
    let lin = &j["checks"]["linearizable"];
    assert_eq!(lin["valid"], json!(true), "{lin}");
    assert_eq!(lin["keys_unjudged"], json!(1));
    assert_eq!(lin["unjudged_keys"], json!(["k2"]));
    assert!(lin.get("reason").is_none());
    assert!(
        s.contains("  linearizable: valid — 0 of 2 keys invalid; 1 of 2 keys not judged (no op completed ok): k2\n"),
        "{s}"
    );
}

#[test]
fn sets_without_a_read_are_unjudged_and_no_read_at_all_is_unknown() {
    let text = history(&[
        "0 invoke add s1 1",
        "0 ok add s1 1",
        "1 invoke read s1 null",
        "1 ok read s1 [1]",
        "0 invoke add s2 2",
        "0 ok add s2 2",
    ]);
    let (j, s) = check(&text, &[Check::Set]);
    let set = &j["checks"]["set"];
    assert_eq!(set["valid"], json!(true), "{set}");
    assert_eq!(set["unjudged_keys"], json!(["s2"]));
    assert!(s.contains("; 1 of 2 sets not judged (no read)"), "{s}");
    let adds_only = history(&["0 invoke add s1 1", "0 ok add s1 1"]);
    let (j, _) = check(&adds_only, &[Check::Set]);
    assert_eq!(j["checks"]["set"]["valid"], json!("unknown"));
    assert_eq!(j["checks"]["set"]["reason"], json!("no read completed"));
    assert_eq!(j["valid"], json!("unknown"));
}

#[test]
fn every_requested_check_skipped_is_unknown_but_a_default_skip_is_not() {
    let repeated = history(&[
        "0 invoke write k1 1",
        "0 ok write k1 1",
        "0 invoke write k1 1",
        "0 ok write k1 1",
        "1 invoke read k1 null",
        "1 ok read k1 1",
    ]);
    let (j, s) = check(&repeated, &[Check::StaleReads, Check::Sessions]);
    assert!(j["checks"]["stale-reads"]["skipped"].is_string(), "{j}");
    assert_eq!(j["valid"], json!("unknown"));
    assert_eq!(
        j["reason"],
        json!("every check asked for was skipped (stale-reads, sessions)")
    );
    assert!(s.contains("(every check asked for was skipped"), "{s}");
    // By default linearizable judges it; the register checks' skip changes nothing.
    let (j, _) = check(&repeated, &[]);
    assert!(j["checks"]["stale-reads"]["skipped"].is_string(), "{j}");
    assert_eq!(j["valid"], json!(true));
    assert!(j.get("reason").is_none());
    // One requested check skipped beside one that judged: the judged one decides.
    let (j, _) = check(&repeated, &[Check::StaleReads, Check::Linearizable]);
    assert_eq!(j["valid"], json!(true));
}
