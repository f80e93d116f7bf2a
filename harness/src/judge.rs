//! Judging a run: read `history.jsonl` back, pair it, check it, and shape the verdict as
//! `quorate check --json`'s object (INTERFACES.md), plus the exit code and a summary.
//!
//! The history is read back from the file rather than taken from memory, so what is judged is
//! exactly what anyone auditing the run later will read.

use crate::runner::RunOutcome;
use quorate_checker::check::{check_events, combine_exit_codes, Check, CheckOptions};
use quorate_checker::history::Process;
use quorate_checker::import::{read_path, Format};
use quorate_checker::model::ModelKind;
use quorate_checker::report::timeline;
use quorate_checker::verdict::Verdict;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Check `history` with `model` (the checker's own `check_events`, so a run's results.json is
/// exactly what `quorate check --json` would print), add the convergence verdict from the
/// harness's observation, and write `timeline.html` beside it. Never fails: a problem becomes
/// an `error` field, as `check --json` reports an unreadable file.
pub fn check(history: &Path, model: ModelKind, per_key: Duration, run_dir: &Path) -> Value {
    check_with(history, model, &[], per_key, run_dir)
}

/// [`check`] with the checks named (`quorate check --checks`; empty: every one that applies).
/// When `checks` leaves out `linearizable`, the result says so as a skipped check, with the
/// reason the set workload has (the only caller that leaves it out).
pub fn check_with(
    history: &Path,
    model: ModelKind,
    checks: &[Check],
    per_key: Duration,
    run_dir: &Path,
) -> Value {
    let t0 = Instant::now();
    let file = history
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let events = match read_path(history, Format::Jsonl) {
        Ok(e) => e,
        Err(e) => return json!({"file": file, "error": e.to_string()}),
    };
    let opts = CheckOptions {
        format: Format::Jsonl,
        model: Some(model),
        checks: checks.to_vec(),
        time_limit: per_key,
        ..CheckOptions::default()
    };
    let report = match check_events(&file, &events, Format::Jsonl, &opts) {
        Ok(r) => r,
        Err(e) => return json!({"file": file, "error": e.to_string()}),
    };
    let html = run_dir.join("timeline.html");
    if let Err(e) = std::fs::write(&html, timeline::render(&report)) {
        tracing::warn!("{}: {e}", html.display());
    }
    let mut out = report.to_json();
    let mut valid = report.valid;
    if !checks.is_empty() && !checks.contains(&Check::Linearizable) {
        out["checks"]["linearizable"] = json!({"skipped": "a set read is many element reads at \
            different instants, not a snapshot, so the set as a whole is not claimed \
            linearizable; the set check (Jepsen's set-full) judges it"});
    }
    // Convergence, from the harness's own observation after the quiet period, unless the
    // checker already judged it.
    let has_conv = out["checks"].get("convergence").is_some();
    let conv = report
        .history
        .other
        .iter()
        .rev()
        .find(|e| e.process == Process::Harness && e.f == "convergence");
    if !has_conv {
        let entry = match conv {
            Some(e) => {
                let ok = e
                    .value
                    .get("converged")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !ok {
                    valid = valid.and(Verdict::Invalid);
                }
                // INTERFACES.md's shape: {"valid", "keys_differing", "keys"}.
                json!({
                    "valid": ok,
                    "keys_differing": e.value.get("keys_differing").cloned().unwrap_or(json!(0)),
                    "keys": e.value.get("keys").cloned().unwrap_or(json!([])),
                })
            }
            None => {
                json!({"skipped": "no convergence observation in the history (run interrupted?)"})
            }
        };
        out["checks"]["convergence"] = entry;
        out["valid"] = serde_json::to_value(valid).unwrap_or(Value::Null);
    }
    out["elapsed_ms"] = json!(t0.elapsed().as_secs_f64() * 1000.0);
    out
}

/// 0 valid, 1 invalid, 2 unknown, 3 error (INTERFACES.md), by the checker's own rule: the
/// verdict's [`Verdict::exit_code`], and an error outranks it ([`combine_exit_codes`]).
pub fn exit_code(results: &Value) -> u8 {
    let verdict = match results.get("valid") {
        Some(Value::Bool(true)) => Verdict::Valid,
        Some(Value::Bool(false)) => Verdict::Invalid,
        _ => Verdict::Unknown,
    };
    let error = results.get("error").is_some().then_some(3);
    combine_exit_codes(std::iter::once(verdict.exit_code()).chain(error))
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
    // An error means no verdict, whatever the checks said about what was recorded.
    let verdict = match results.get("valid") {
        _ if results.get("error").is_some() => "none (error)",
        Some(Value::Bool(true)) => "valid",
        Some(Value::Bool(false)) => "INVALID",
        _ => "unknown",
    };
    s.push_str(&format!("verdict: {verdict}"));
    s
}
