//! Judging a run: read `history.jsonl` back, pair it, check it, and shape the verdict as
//! `quorate check --json`'s object (INTERFACES.md), plus the exit code and a summary.
//!
//! The history is read back from the file rather than taken from memory, so what is judged is
//! exactly what anyone auditing the run later will read.

use crate::runner::RunOutcome;
use quorate_checker::check::{check_history, combine_exit_codes, Check, CheckOptions};
use quorate_checker::import::{read_history, Format};
use quorate_checker::model::ModelKind;
use quorate_checker::report::{self, RunInfo};
use quorate_checker::summary;
use quorate_checker::verdict::Verdict;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Check `history` with `model` and the checks named (`quorate check --checks`; empty: every
/// one that applies), by the checker's own `check_history` on the file read as `quorate check`
/// reads it, so a run's results.json is exactly what `quorate check --json` would print; write
/// the reports beside it (`timeline.html`, `latency.svg`, `rate.svg`, `staleness.svg`, titled
/// from `test.json`; the timeline's path goes in `report`, an extension field). Never fails: a
/// problem becomes an `error` field, as `check --json` reports an unreadable file; a report
/// that cannot be written is a warning.
///
/// When `checks` leaves out `linearizable`, the result says so as a skipped check, with the
/// reason: the set workload's, or `--checks` not naming it; convergence left out of `checks`
/// gets no entry. Convergence is the
/// checker's verdict on the harness's observation; `unmeasured` says why the run's target
/// could not be observed ([`crate::targets::convergence_unmeasured`]), and the `convergence`
/// entry is then skipped with exactly that reason; a run with no observation says it stopped
/// before one was taken.
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
    let (paired, format) = match read_history(history, Format::Jsonl) {
        Ok(h) => h,
        Err(e) => return json!({"file": file, "error": e.to_string()}),
    };
    let opts = CheckOptions {
        format,
        model: Some(model),
        checks: checks.to_vec(),
        time_limit: per_key,
        ..CheckOptions::default()
    };
    let report = match check_history(&file, paired, format, &opts) {
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
    if !checks.is_empty() && !checks.contains(&Check::Linearizable) {
        out["checks"]["linearizable"] = if model == ModelKind::Set {
            json!({"skipped": "a set read is not a snapshot (many \
            element reads at different instants, or a listing page by page), so the set as a \
            whole is not claimed linearizable; the set check (Jepsen's set-full) judges it"})
        } else {
            json!({"skipped": format!("not asked for: --checks {}", names(checks))})
        };
    }
    // A target that cannot be observed outranks the checker's generic "no observation in the
    // history"; with no entry at all (the default checks leave convergence out of a history
    // without an observation), the run stopped before the observation was taken. Checks named
    // without convergence leave it out.
    let convergence_asked = checks.is_empty() || checks.contains(&Check::Convergence);
    if convergence_asked {
        if let Some(why) = unmeasured {
            out["checks"]["convergence"] = json!({ "skipped": why });
        } else if out["checks"].get("convergence").is_none() {
            out["checks"]["convergence"] =
                json!({"skipped": "no convergence observation in the history (run interrupted?)"});
        }
    }
    out["elapsed_ms"] = json!(t0.elapsed().as_secs_f64() * 1000.0);
    out
}

/// "stale-reads,lost-writes".
fn names(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(",")
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

/// The end-of-run summary for stderr: what the run did, each check in the checker's own words
/// ([`summary::checks`], the lines `quorate check` prints), the report, and the verdict.
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
    s.push_str(&summary::checks(results));
    if let Some(report) = results.get("report").and_then(Value::as_str) {
        s.push_str(&format!(
            "report: {report} (latency.svg, rate.svg, staleness.svg beside it)\n"
        ));
    }
    // An error means no verdict, whatever the checks said about what was recorded.
    let verdict = match results.get("valid") {
        _ if results.get("error").is_some() => "none (error)".to_string(),
        Some(v) => summary::word(v).to_string(),
        None => "unknown".to_string(),
    };
    let why = match results.get("reason").and_then(Value::as_str) {
        Some(r) if results.get("error").is_none() => format!(" ({r})"),
        _ => String::new(),
    };
    s.push_str(&format!("verdict: {verdict}{why}"));
    s
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
    fn a_run_is_judged_as_check_reads_it_cut_off_tail_and_all() {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join("history.jsonl");
        // The harness was killed while writing the read's completion.
        let cut = r#"{"process":1,"type":"ok","f":"read","key":"k1","va"#;
        let text = NO_OBSERVATION
            .rsplit_once("{\"process\":1,\"type\":\"ok\"")
            .unwrap()
            .0;
        std::fs::write(&h, format!("{text}{cut}")).unwrap();
        let r = check_with(
            &h,
            ModelKind::CasRegister,
            &[],
            Duration::from_secs(5),
            dir.path(),
            None,
        );
        assert_eq!(
            r["truncated"],
            json!({"line": 4, "bytes": cut.len()}),
            "{r}"
        );
        // What is left is a write and a read that never completed: nothing to judge.
        assert_eq!(r["valid"], json!("unknown"), "{r}");
        assert_eq!(
            r["checks"]["stale-reads"]["reason"],
            json!("no read completed")
        );
        let s = summary(&r, None);
        assert!(s.contains("  truncated: line 4 was cut off"), "{s}");
        assert!(
            s.contains("  lost-writes: unknown (no read completed)"),
            "{s}"
        );
        assert!(s.ends_with("verdict: unknown"), "{s}");
        assert_eq!(exit_code(&r), 2);
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
            s.contains("  stale-reads: INVALID — 2 stale of 10 reads, k ≤ 3, t-visibility max 12.5 ms; 1 of 2 keys invalid: k1\n"),
            "{s}"
        );
        assert!(s.contains("  set: skipped (no add ops)\n"), "{s}");
        assert!(s.contains("report: /r/run/timeline.html"), "{s}");
        assert!(s.ends_with("verdict: INVALID"), "{s}");
    }
}
