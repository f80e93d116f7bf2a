//! JUnit XML for CI: one testcase per check of a run's results (`--junit FILE`).
//!
//! Valid → a passing testcase; invalid → `<failure>`; unknown → `<error>` (the check gave up,
//! or had nothing to judge — its reason is the message — which CI should see but not confuse
//! with an anomaly); skipped → `<skipped>`.

use quorate_checker::report::escape as esc;
use serde_json::Value;
use std::fmt::Write;

/// Render the `checks` object of a results.json as a JUnit testsuite named `suite`.
pub fn render(suite: &str, results: &Value, elapsed_s: f64) -> String {
    let empty = serde_json::Map::new();
    let checks = results
        .get("checks")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut cases = String::new();
    let (mut failures, mut errors, mut skipped) = (0, 0, 0);
    for (name, check) in checks {
        let _ = write!(
            cases,
            "    <testcase classname=\"quorate.{}\" name=\"{}\">",
            esc(suite),
            esc(name)
        );
        let detail = esc(&serde_json::to_string(check).unwrap_or_default());
        if let Some(reason) = check.get("skipped") {
            skipped += 1;
            let _ = write!(
                cases,
                "<skipped message=\"{}\"/>",
                esc(reason.as_str().unwrap_or(""))
            );
        } else {
            match check.get("valid") {
                Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => {
                    failures += 1;
                    let _ = write!(
                        cases,
                        "<failure message=\"{} found an anomaly\">{detail}</failure>",
                        esc(name)
                    );
                }
                _ => {
                    errors += 1;
                    // A check with nothing to judge says why; one that ran out of budget, not.
                    let message = match check.get("reason").and_then(Value::as_str) {
                        Some(why) => format!("{name} is unknown: {why}"),
                        None => format!("{name} gave up (unknown)"),
                    };
                    let _ = write!(
                        cases,
                        "<error message=\"{}\">{detail}</error>",
                        esc(&message)
                    );
                }
            }
        }
        cases.push_str("</testcase>\n");
    }
    if let Some(err) = results.get("error").and_then(Value::as_str) {
        errors += 1;
        let _ = writeln!(
            cases,
            "    <testcase classname=\"quorate.{}\" name=\"run\"><error message=\"{}\"/></testcase>",
            esc(suite),
            esc(err)
        );
    }
    let tests = checks.len() + usize::from(results.get("error").is_some());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{elapsed_s:.3}\">\n{cases}  </testsuite>\n</testsuites>\n",
        esc(suite)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_testcase_per_check() {
        let r = json!({"checks": {
            "linearizable": {"valid": false},
            "convergence": {"valid": true},
            "stale-reads": {"skipped": "values repeat"},
            "lost-writes": {"valid": "unknown"}}});
        let x = render("run", &r, 1.0);
        assert_eq!(x.matches("<testcase").count(), 4);
        assert!(x.contains("failures=\"1\""));
        assert!(x.contains("errors=\"1\""));
        assert!(x.contains("skipped=\"1\""));
        assert!(
            x.contains("message=\"lost-writes gave up (unknown)\""),
            "{x}"
        );
    }

    #[test]
    fn an_unknown_check_with_nothing_to_judge_says_why() {
        let r = json!({"checks": {
            "lost-writes": {"valid": "unknown", "reason": "no read completed"}}});
        let x = render("run", &r, 1.0);
        assert!(
            x.contains("<error message=\"lost-writes is unknown: no read completed\">"),
            "{x}"
        );
    }
}
