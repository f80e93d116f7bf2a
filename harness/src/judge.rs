//! Judging a run: read `history.jsonl` back, pair it, check it, and shape the verdict as
//! `quorate check --json`'s object (INTERFACES.md), plus the exit code and a summary.
//!
//! The history is read back from the file rather than taken from memory, so what is judged is
//! exactly what anyone auditing the run later will read.

use crate::runner::RunOutcome;
use quorate_checker::history::{pair, Process};
use quorate_checker::import::{read_path, Format};
use quorate_checker::linear::{self, LinearOptions};
use quorate_checker::model::ModelKind;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Check `history` with `model`; write reports beside it. Never fails: a problem becomes an
/// `error` field, as `check --json` reports an unreadable file.
pub fn check(history: &Path, model: ModelKind, per_key: Duration, run_dir: &Path) -> Value {
    let _ = run_dir;
    let t0 = Instant::now();
    let file = history
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let events = match read_path(history, Format::Jsonl) {
        Ok(e) => e,
        Err(e) => return json!({"file": file, "error": e.to_string()}),
    };
    let h = match pair(&events) {
        Ok(h) => h,
        Err(e) => return json!({"file": file, "error": e.to_string()}),
    };
    let opts = LinearOptions {
        model,
        initial: None,
        time_limit: per_key,
        ..LinearOptions::default()
    };
    let mut checks = serde_json::Map::new();
    let mut valid = quorate_checker::verdict::Verdict::Valid;
    match linear::check(&h, &opts) {
        Ok(r) => {
            valid = valid.and(r.valid);
            checks.insert(
                "linearizable".into(),
                serde_json::to_value(&r).unwrap_or(Value::Null),
            );
        }
        Err(e) => return json!({"file": file, "error": e.to_string()}),
    }
    // Convergence, from the harness's own observation after the quiet period.
    let conv = h
        .other
        .iter()
        .rev()
        .find(|e| e.process == Process::Harness && e.f == "convergence");
    match conv {
        Some(e) => {
            let ok = e
                .value
                .get("converged")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let differing = e.value.get("keys_differing").cloned().unwrap_or(json!(0));
            if !ok {
                valid = valid.and(quorate_checker::verdict::Verdict::Invalid);
            }
            checks.insert(
                "convergence".into(),
                json!({"valid": ok, "keys_differing": differing}),
            );
        }
        None => {
            checks.insert(
                "convergence".into(),
                json!({"skipped": "no convergence observation in the history (run interrupted?)"}),
            );
        }
    }
    json!({
        "file": file,
        "valid": valid,
        "ops": h.ops.len(),
        "elapsed_ms": t0.elapsed().as_secs_f64() * 1000.0,
        "checks": checks,
    })
}

/// 0 valid, 1 invalid, 2 unknown, 3 error (INTERFACES.md).
pub fn exit_code(results: &Value) -> u8 {
    if results.get("error").is_some() {
        return 3;
    }
    match results.get("valid") {
        Some(Value::Bool(true)) => 0,
        Some(Value::Bool(false)) => 1,
        _ => 2,
    }
}

/// The end-of-run summary for stderr.
pub fn summary(results: &Value, outcome: Option<&RunOutcome>) -> String {
    let mut s = String::new();
    if let Some(o) = outcome {
        s.push_str(&format!(
            "ops {} (ok {}, fail {}, info {}) at {:.0} ops/s; {} faults{}\n",
            o.invokes,
            o.ok,
            o.fail,
            o.info,
            o.rate,
            o.faults,
            if o.interrupted { "; interrupted" } else { "" }
        ));
    }
    if let Some(checks) = results.get("checks").and_then(Value::as_object) {
        for (name, c) in checks {
            let v = match c.get("valid") {
                Some(Value::Bool(true)) => "valid".to_string(),
                Some(Value::Bool(false)) => "INVALID".to_string(),
                Some(v) => v.as_str().unwrap_or("unknown").to_string(),
                None => format!(
                    "skipped ({})",
                    c.get("skipped").and_then(Value::as_str).unwrap_or("")
                ),
            };
            s.push_str(&format!("  {name}: {v}\n"));
        }
    }
    let verdict = match results.get("valid") {
        Some(Value::Bool(true)) => "valid",
        Some(Value::Bool(false)) => "INVALID",
        _ if results.get("error").is_some() => "error",
        _ => "unknown",
    };
    s.push_str(&format!("verdict: {verdict}"));
    s
}
