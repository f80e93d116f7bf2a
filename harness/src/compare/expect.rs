//! Expectations: what a configuration should show over its seeds (INTERFACES.md).
//!
//! `"valid"` holds when every seed is valid (for that check, or overall) — a seed that is
//! unknown, skipped the check or ended in an error does not count as valid, since nothing
//! showed the property. `"invalid"` holds when at least one seed is invalid: one anomaly is
//! enough to refute a guarantee.

use serde_json::Value;
use std::collections::BTreeMap;

/// The checks an expectation may name (`quorate check --checks`).
pub const CHECKS: [&str; 7] = [
    "linearizable",
    "stale-reads",
    "lost-writes",
    "sessions",
    "convergence",
    "set",
    "set-read-after-write",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Valid,
    Invalid,
}

impl Want {
    fn parse(v: &toml::Value) -> Result<Want, String> {
        match v.as_str() {
            Some("valid") => Ok(Want::Valid),
            Some("invalid") => Ok(Want::Invalid),
            _ => Err(format!("expected \"valid\" or \"invalid\", found {v}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Want::Valid => "valid",
            Want::Invalid => "invalid",
        }
    }
}

/// `expect = "valid"` (the whole verdict) or `expect = { check = "valid", … }`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Whole(Want),
    Checks(BTreeMap<String, Want>),
}

/// One expectation, judged over a configuration's finished seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// `verdict = valid`, `stale-reads = invalid`.
    pub what: String,
    pub held: bool,
    /// Per seed what was seen, e.g. `seed 1 valid, seed 2 INVALID`.
    pub seen: String,
}

impl Expect {
    pub fn from_toml(v: &toml::Value) -> Result<Expect, String> {
        match v {
            toml::Value::String(_) => Want::parse(v)
                .map(Expect::Whole)
                .map_err(|e| format!("`expect`: {e}")),
            toml::Value::Table(t) => {
                let mut m = BTreeMap::new();
                for (check, want) in t {
                    if !CHECKS.contains(&check.as_str()) {
                        return Err(format!(
                            "`expect`: unknown check {check:?}; expected one of {}",
                            CHECKS.join(", ")
                        ));
                    }
                    let w = Want::parse(want).map_err(|e| format!("`expect.{check}`: {e}"))?;
                    m.insert(check.clone(), w);
                }
                if m.is_empty() {
                    return Err("`expect`: an empty table; expected check = \"valid\"|\"invalid\"".into());
                }
                Ok(Expect::Checks(m))
            }
            _ => Err(format!(
                "`expect`: expected \"valid\", \"invalid\" or a table of check = \"valid\"|\"invalid\", found {}",
                v.type_str()
            )),
        }
    }

    /// Judge over `(seed, results.json)` of every finished run of the configuration.
    pub fn judge(&self, runs: &[(u64, &Value)]) -> Vec<Judged> {
        match self {
            Expect::Whole(w) => vec![judge_one("verdict", *w, runs, |r| r.get("valid"))],
            Expect::Checks(m) => m
                .iter()
                .map(|(check, w)| {
                    judge_one(check, *w, runs, |r| {
                        r.get("checks")
                            .and_then(|c| c.get(check.as_str()))
                            .map(|c| c.get("valid").unwrap_or(&Value::Null))
                    })
                })
                .collect(),
        }
    }
}

/// What a seed showed for one check: `valid`, `INVALID`, `unknown`, `skipped` or `error`.
fn seen(r: &Value, v: Option<&Value>) -> &'static str {
    if r.get("error").is_some() {
        return "error";
    }
    match v {
        Some(Value::Bool(true)) => "valid",
        Some(Value::Bool(false)) => "INVALID",
        Some(Value::String(_)) => "unknown",
        Some(_) | None => "skipped",
    }
}

fn judge_one<'a>(
    name: &str,
    want: Want,
    runs: &[(u64, &'a Value)],
    pick: impl Fn(&'a Value) -> Option<&'a Value>,
) -> Judged {
    let seen: Vec<(u64, &str)> = runs.iter().map(|(s, r)| (*s, seen(r, pick(r)))).collect();
    let held = match want {
        Want::Valid => !seen.is_empty() && seen.iter().all(|(_, v)| *v == "valid"),
        Want::Invalid => seen.iter().any(|(_, v)| *v == "INVALID"),
    };
    let seen = if seen.is_empty() {
        "no finished run".to_string()
    } else {
        seen.iter()
            .map(|(s, v)| format!("seed {s} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Judged {
        what: format!("{name} = {}", want.as_str()),
        held,
        seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(valid: Value, stale: Value) -> Value {
        json!({"valid": valid, "checks": {"stale-reads": {"valid": stale}, "convergence": {"skipped": "x"}}})
    }

    #[test]
    fn valid_needs_every_seed_invalid_needs_one() {
        let a = run(json!(false), json!(true));
        let b = run(json!(false), json!(false));
        let runs = [(1, &a), (2, &b)];
        let whole = Expect::Whole(Want::Invalid).judge(&runs);
        assert!(whole[0].held);
        let e: toml::Value = toml::from_str::<toml::Table>(
            "e = { \"stale-reads\" = \"valid\", convergence = \"valid\" }",
        )
        .unwrap()["e"]
            .clone();
        let j = Expect::from_toml(&e).unwrap().judge(&runs);
        // BTreeMap order: convergence first.
        assert_eq!(j[0].what, "convergence = valid");
        assert!(!j[0].held, "a skipped check is not shown valid");
        assert_eq!(j[1].what, "stale-reads = valid");
        assert!(!j[1].held);
        assert_eq!(j[1].seen, "seed 1 valid, seed 2 INVALID");
        let only_a = [(1, &a)];
        assert!(Expect::from_toml(&e).unwrap().judge(&only_a)[1].held);
        assert!(!Expect::Whole(Want::Valid).judge(&[])[0].held);
    }

    #[test]
    fn errors_and_unknowns_never_count_as_valid() {
        let e = json!({"valid": true, "error": "nemesis failed"});
        let u = json!({"valid": "unknown"});
        assert!(!Expect::Whole(Want::Valid).judge(&[(1, &e)])[0].held);
        assert!(!Expect::Whole(Want::Valid).judge(&[(1, &u)])[0].held);
        assert!(!Expect::Whole(Want::Invalid).judge(&[(1, &u)])[0].held);
    }

    #[test]
    fn bad_expectations_are_named() {
        let t: toml::Table =
            toml::from_str("a = \"sure\"\nb = { lin = \"valid\" }\nc = 3").unwrap();
        assert!(Expect::from_toml(&t["a"])
            .unwrap_err()
            .contains("\"valid\" or \"invalid\""));
        assert!(Expect::from_toml(&t["b"])
            .unwrap_err()
            .contains("unknown check \"lin\""));
        assert!(Expect::from_toml(&t["c"])
            .unwrap_err()
            .contains("found integer"));
    }
}
