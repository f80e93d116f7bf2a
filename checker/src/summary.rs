//! The summary for people: each check's verdict with its counts in words, then the keys that
//! are not linearizable, each with its reason.
//!
//! It reads INTERFACES.md's per-file JSON object, not the typed report, so that `quorate check`
//! (a fresh [`FileReport`](crate::check::FileReport)) and `quorate run` (a results.json the
//! harness has extended with its own entries, such as a skipped `linearizable` for the set
//! workload) print the same words for the same results.

use crate::quorum;
use serde_json::Value;
use std::fmt::Write as _;

/// A verdict as a word: `valid`, `INVALID` (loud, it is what one looks for) or `unknown`.
pub fn word(valid: &Value) -> &'static str {
    match valid {
        Value::Bool(true) => "valid",
        Value::Bool(false) => "INVALID",
        _ => "unknown",
    }
}

/// One line per check of the object's `checks`, in their order, each "  NAME: VERDICT —
/// COUNTS"; a skipped check says why, an unknown one its reason; `linearizable` is followed by
/// each key that is not valid, in natural order (k2 before k10). First, when the file's last
/// line was cut off (`truncated`), where.
pub fn checks(object: &Value) -> String {
    let mut out = String::new();
    if let Some(cut) = object.get("truncated") {
        let _ = writeln!(
            out,
            "  truncated: line {} was cut off ({} bytes, no newline at the end): checked up to the line before it",
            cut["line"], cut["bytes"]
        );
    }
    let Some(checks) = object.get("checks").and_then(Value::as_object) else {
        return out;
    };
    for (name, c) in checks {
        if let Some(why) = c.get("skipped") {
            let why = why.as_str().map_or_else(|| why.to_string(), str::to_string);
            let _ = writeln!(out, "  {name}: skipped ({why})");
            continue;
        }
        let mut verdict = word(&c["valid"]).to_string();
        if let Some(reason) = c.get("reason").and_then(Value::as_str) {
            let _ = write!(verdict, " ({reason})");
        }
        if name == "linearizable" {
            linearizable(&mut out, &verdict, c);
            continue;
        }
        match quorum::line(name, c) {
            Some(line) => {
                let _ = writeln!(out, "  {name}: {verdict} — {line}");
            }
            None => {
                let _ = writeln!(out, "  {name}: {verdict}");
            }
        }
    }
    out
}

/// The linearizable check: "k of n keys invalid" over several keys, the keys with no completed
/// op to judge, then a line per key that is not valid.
fn linearizable(out: &mut String, verdict: &str, c: &Value) {
    let empty = serde_json::Map::new();
    let keys = c.get("keys").and_then(Value::as_object).unwrap_or(&empty);
    let mut bad: Vec<&String> = keys
        .iter()
        .filter(|(_, k)| k["valid"] != Value::Bool(true))
        .map(|(name, _)| name)
        .collect();
    bad.sort_by(|a, b| quorum::natural_cmp(a, b));
    let invalid = keys
        .values()
        .filter(|k| k["valid"] == Value::Bool(false))
        .count();
    let unknown = bad.len() - invalid;
    let _ = write!(out, "  linearizable: {verdict}");
    if keys.len() > 1 {
        let _ = write!(out, " — {invalid} of {} keys invalid", keys.len());
        if unknown > 0 {
            let _ = write!(out, ", {unknown} unknown");
        }
    }
    out.push_str(&quorum::keys_phrase(
        &quorum::names(c, "unjudged_keys"),
        keys.len() as u64,
        "not judged (no op completed ok)",
    ));
    out.push('\n');
    for key in bad {
        let k = &keys[key];
        let name = if key.is_empty() {
            "the history".to_string()
        } else {
            format!("key {key:?}")
        };
        let cx = &k["counterexample"];
        let _ = match (&k["valid"], cx.is_object()) {
            (Value::Bool(false), true) => writeln!(
                out,
                "    {name}: not linearizable at op {}: {}",
                cx["op"],
                cx["explanation"].as_str().unwrap_or_default()
            ),
            (Value::Bool(false), false) => writeln!(out, "    {name}: not linearizable"),
            _ => writeln!(
                out,
                "    {name}: unknown ({})",
                k["reason"].as_str().unwrap_or("the search gave up")
            ),
        };
    }
}
