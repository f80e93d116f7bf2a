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
use quorate_checker::report::{self, RunInfo};
use quorate_checker::verdict::Verdict;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Check `history` with `model` (the checker's own `check_events`, so a run's results.json is
/// exactly what `quorate check --json` would print), add the convergence verdict from the
/// harness's observation, and write the reports beside it (`timeline.html`, `latency.svg`,
/// `rate.svg`, `staleness.svg`, titled from `test.json`; the timeline's path goes in `report`,
/// an extension field). Never fails: a problem becomes an `error` field, as `check --json`
/// reports an unreadable file; a report that cannot be written is a warning.
pub fn check(history: &Path, model: ModelKind, per_key: Duration, run_dir: &Path) -> Value {
    check_with(history, model, &[], per_key, run_dir, None)
}

/// [`check`] with the checks named (`quorate check --checks`; empty: every one that applies).
/// When `checks` leaves out `linearizable`, the result says so as a skipped check, with the
/// reason the set workload has (the only caller that leaves it out). `unmeasured`: why the
/// run's target could not be observed for convergence
/// ([`crate::targets::convergence_unmeasured`]); the `convergence` entry is then skipped with
/// exactly that reason.
pub fn check_with(
    history: &Path,
    model: ModelKind,
    checks: &[Check],
    per_key: Duration,
    run_dir: &Path,
    unmeasured: Option<&str>,
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
    let written = report::write_all(&report, &RunInfo::beside(history), run_dir);
    let mut out = report.to_json();
    match written {
        Ok(paths) => {
            if let Some(html) = paths.first() {
                out["report"] = json!(html.display().to_string());
            }
        }
        Err(e) => tracing::warn!("reports: {e}"),
    }
    let mut valid = report.valid;
    if !checks.is_empty() && !checks.contains(&Check::Linearizable) {
        out["checks"]["linearizable"] = json!({"skipped": "a set read is not a snapshot (many \
            element reads at different instants, or a listing page by page), so the set as a \
            whole is not claimed linearizable; the set check (Jepsen's set-full) judges it"});
    }
    // Convergence, from the harness's own observation after the quiet period, unless the
    // checker already judged it — or the target cannot be observed, which outranks the
    // checker's generic "no observation in the history".
    if let Some(why) = unmeasured {
        out["checks"]["convergence"] = json!({ "skipped": why });
    }
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
            let counts = counts(name, c);
            if counts.is_empty() {
                s.push_str(&format!("  {name}: {v}\n"));
            } else {
                s.push_str(&format!("  {name}: {v} — {counts}\n"));
            }
        }
    }
    if let Some(report) = results.get("report").and_then(Value::as_str) {
        s.push_str(&format!(
            "report: {report} (latency.svg, rate.svg, staleness.svg beside it)\n"
        ));
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

/// A check's counts in words, from its JSON object: `linearizable` as "k of n keys invalid",
/// any other check as its top-level counts ("stale 12, reads 4000, …", underscores as spaces)
/// and the maxima of its distributions. Works on any results.json, so it needs no checker
/// state.
fn counts(name: &str, c: &Value) -> String {
    if name == "linearizable" {
        let Some(keys) = c.get("keys").and_then(Value::as_object) else {
            return String::new();
        };
        let invalid = keys
            .values()
            .filter(|k| k.get("valid") == Some(&Value::Bool(false)))
            .count();
        let unknown = keys
            .values()
            .filter(|k| k.get("valid").and_then(Value::as_str) == Some("unknown"))
            .count();
        let mut out = format!("{invalid} of {} keys invalid", keys.len());
        if unknown > 0 {
            out.push_str(&format!(", {unknown} unknown"));
        }
        return out;
    }
    let Some(obj) = c.as_object() else {
        return String::new();
    };
    let mut parts: Vec<String> = obj
        .iter()
        .filter(|(k, v)| v.is_number() && k.as_str() != "keys_total")
        .map(|(k, v)| format!("{} {v}", k.replace('_', " ")))
        .collect();
    for (field, what) in [("k_staleness", "k max"), ("t_visibility_ms", "t max ms")] {
        if let Some(max) = obj
            .get(field)
            .and_then(|d| d.get("max"))
            .filter(|m| m.is_number())
        {
            parts.push(format!("{what} {max}"));
        }
    }
    if let Some(n) = obj
        .get("keys")
        .and_then(Value::as_array)
        .filter(|k| !k.is_empty())
    {
        // "with anomalies", not "invalid": the set check lists keys with stale elements,
        // which it counts without failing.
        parts.push(format!(
            "{} of {} keys with anomalies",
            n.len(),
            obj.get("keys_total").unwrap_or(&Value::Null)
        ));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short register history with no convergence observation (as a garage run's is).
    const NO_OBSERVATION: &str = r#"{"process":0,"type":"invoke","f":"write","key":"k1","value":1,"time":1}
{"process":0,"type":"ok","f":"write","key":"k1","value":1,"time":2}
{"process":1,"type":"invoke","f":"read","key":"k1","value":null,"time":3}
{"process":1,"type":"ok","f":"read","key":"k1","value":1,"time":4}
"#;

    #[test]
    fn convergence_says_why_it_was_not_measured() {
        use crate::targets::TargetKind as Kind;
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join("history.jsonl");
        std::fs::write(&h, NO_OBSERVATION).unwrap();
        let t = Duration::from_secs(5);
        let why = crate::targets::convergence_unmeasured(Kind::Garage).unwrap();
        assert!(why.starts_with("--target garage exposes no per-replica digest"));
        assert!(why.ends_with("so convergence was not measured"), "{why}");
        // Every check that applies (register workload), and the set workload's explicit list.
        for checks in [&[][..], &[Check::Set, Check::Convergence][..]] {
            let r = check_with(
                &h,
                ModelKind::CasRegister,
                checks,
                t,
                dir.path(),
                Some(&why),
            );
            assert_eq!(
                r["checks"]["convergence"]["skipped"],
                json!(why),
                "{checks:?}"
            );
        }
        let r = check_with(&h, ModelKind::CasRegister, &[], t, dir.path(), Some(&why));
        assert_eq!(
            r["valid"], true,
            "skipped convergence changes no verdict: {r}"
        );
        // The node is observed: missing observation there means the run stopped before it.
        assert_eq!(crate::targets::convergence_unmeasured(Kind::Node), None);
        let r = check_with(&h, ModelKind::CasRegister, &[], t, dir.path(), None);
        assert!(r["checks"]["convergence"]["skipped"]
            .as_str()
            .unwrap()
            .contains("interrupted"));
    }

    #[test]
    fn summary_gives_each_checks_counts_and_the_report() {
        let results = json!({
            "valid": false,
            "report": "/r/run/timeline.html",
            "checks": {
                "linearizable": {"valid": false, "keys": {"k1": {"valid": false}, "k2": {"valid": true}}},
                "stale-reads": {"valid": false, "reads": 10, "stale": 2, "never_written": 0,
                    "k_staleness": {"max": 3}, "t_visibility_ms": {"max": 12.5},
                    "keys_total": 2, "keys": ["k1"]},
                "set": {"skipped": "no add ops"},
            }
        });
        let s = summary(&results, None);
        assert!(
            s.contains("  linearizable: INVALID — 1 of 2 keys invalid\n"),
            "{s}"
        );
        assert!(
            s.contains("  stale-reads: INVALID — reads 10, stale 2, never written 0, k max 3, t max ms 12.5, 1 of 2 keys with anomalies\n"),
            "{s}"
        );
        assert!(s.contains("  set: skipped (no add ops)\n"), "{s}");
        assert!(s.contains("report: /r/run/timeline.html"), "{s}");
        assert!(s.ends_with("verdict: INVALID"), "{s}");
    }
}
