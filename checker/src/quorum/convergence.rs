//! `convergence`: the harness's `convergence` observation (HISTORY.md: `"process": "harness"`,
//! `f: "convergence"`, taken after the quiet period and before the final reads) as a check.
//! A history without the observation (any offline history) skips it.

use super::CheckResult;
use crate::history::{History, Process};
use crate::verdict::Verdict;
use serde_json::{json, Value};

/// The check, or `None` when the history holds no observation.
pub fn check(history: &History) -> Option<CheckResult> {
    let ev = history
        .other
        .iter()
        .rev()
        .find(|e| e.process == Process::Harness && e.f == "convergence")?;
    let v = &ev.value;
    let Some(converged) = v.get("converged").and_then(Value::as_bool) else {
        return Some(CheckResult::Skipped(format!(
            "the convergence observation (line index {}) has no boolean \"converged\"; expected {{\"converged\": bool, \"keys_differing\": N}}",
            ev.index.map_or("?".into(), |i| i.to_string())
        )));
    };
    let keys: Vec<String> = v
        .get("keys")
        .and_then(Value::as_array)
        .map(|a| {
            let mut k: Vec<String> = a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect();
            super::sort_natural(&mut k);
            k
        })
        .unwrap_or_default();
    let differing = v
        .get("keys_differing")
        .and_then(Value::as_u64)
        .unwrap_or(keys.len() as u64);
    let valid = if converged {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    let mut json = json!({"valid": valid, "keys_differing": differing, "keys": keys});
    if let Some(d) = v.get("detail") {
        json["detail"] = d.clone();
    }
    Some(CheckResult::Done { valid, json })
}

/// The check in words, from its JSON: "replicas converged", or "3 keys differ between
/// replicas: k2 k7 k9".
pub fn line(j: &Value) -> String {
    let differing = j["keys_differing"].as_u64().unwrap_or(0);
    let keys = super::names(j, "keys");
    if j["valid"] == Value::Bool(true) {
        "replicas converged".to_string()
    } else if keys.is_empty() {
        format!("{differing} keys differ between replicas")
    } else {
        format!(
            "{differing} keys differ between replicas: {}",
            super::key_list(&keys)
        )
    }
}
