//! `set`: Jepsen's set-full over `add` and set `read` ops (HISTORY.md: a read returns the
//! sorted array of elements found; the final reads come after the heal and quiet period).
//!
//! Per element, against the key's last ok read (by invoke time):
//! - *ok*: acknowledged and in the final read;
//! - *lost*: acknowledged before the final read began, absent from it;
//! - *unread*: acknowledged only after the final read began and absent from it (no read could
//!   have been expected to see it: neither lost nor ok, counted apart);
//! - *unexpected*: returned by some read, never added (a failed add certainly did not happen);
//! - *recovered*: its add's outcome is unknown (`info`), present in the final read;
//! - *stale*: acknowledged and present at the end, yet missing from a read that began after the
//!   acknowledgement (counted and shown; as in Jepsen, only lost and unexpected elements make
//!   the `set` check invalid).
//!
//! The same counts judged by Garage's `set2` rule ([`Rule::ReadAfterWrite`], the check
//! `set-read-after-write`): every read must hold every element acknowledged before it began, so
//! a stale element fails it too, as with Jepsen's set-full `:linearizable? true`.
//!
//! Stable visibility of an ok element: the first read after the last read (begun after the ack)
//! that missed it; its latency is that read's invoke time minus the ack time (0 when every read
//! after the ack saw it).

use super::{
    count, examples_json, invalid_keys, ms, push_example, quantile, span, Anomalies, CheckResult,
    Example,
};
use crate::history::{History, Outcome};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Whether the set check applies: client ops are `add` and `read`, with at least one `add`.
pub fn applies(history: &History) -> Result<(), String> {
    if !history.ops.iter().any(|op| op.f == "add") {
        return Err("no add ops, so this is not a set history".into());
    }
    if let Some(op) = history
        .ops
        .iter()
        .find(|op| op.f != "add" && op.f != "read")
    {
        return Err(format!(
            "op {} is a {:?}; the set check reads histories of add and read ops",
            op.id, op.f
        ));
    }
    Ok(())
}

/// How the counts are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Jepsen's set-full: lost or unexpected elements fail the check; stale ones are counted.
    SetFull,
    /// Garage's set2 (read-after-write): stale elements fail it as well.
    ReadAfterWrite,
}

#[derive(Default)]
struct Counts {
    ok: u64,
    lost: u64,
    unexpected: u64,
    recovered: u64,
    stale: u64,
    unread: u64,
}

/// Run the set check (call [`applies`] first) judged by `rule`: its result, and every
/// anomalous element at the read that shows it.
pub fn check(history: &History, rule: Rule) -> Result<(CheckResult, Anomalies), String> {
    let timed = history
        .ops
        .iter()
        .all(|op| op.call_time.is_some() && (op.complete.is_none() || op.complete_time.is_some()));
    let mut c = Counts::default();
    let mut examples: Vec<Example> = Vec::new();
    let mut found = Anomalies::new();
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut latencies: Vec<i64> = Vec::new();
    // Sets with no ok read: nothing shows what they held (counted and named, never a verdict).
    let mut unjudged: Vec<String> = Vec::new();
    for (key, ops) in history.by_key() {
        let before = c.lost + c.unexpected + c.stale;
        let at = |t: Option<i64>, pos: usize| if timed { t.unwrap_or(0) } else { pos as i64 };
        // element -> (add op id, outcome, ack time)
        let mut adds: HashMap<String, (u64, Outcome, Option<i64>, Value)> = HashMap::new();
        let mut reads: Vec<(i64, u64, HashSet<String>)> = Vec::new();
        for op in &ops {
            if op.f == "add" {
                let ack = op.complete.map(|c| at(op.complete_time, c));
                let prev = adds.insert(
                    op.input.to_string(),
                    (op.id, op.outcome, ack, op.input.clone()),
                );
                if let Some(prev) = prev {
                    return Err(format!(
                        "element {} is added twice on key {key:?} (ops {} and {}); the set check needs unique elements",
                        op.input, prev.0, op.id
                    ));
                }
            } else if op.outcome == Outcome::Ok {
                let Some(elems) = op.output.as_array() else {
                    return Err(format!(
                        "read op {} on key {key:?} returned {}; expected the array of elements found",
                        op.id, op.output
                    ));
                };
                let set = elems.iter().map(Value::to_string).collect();
                reads.push((at(op.call_time, op.call), op.id, set));
            }
        }
        reads.sort_by_key(|r| (r.0, r.1));
        let Some(last) = reads.last() else {
            unjudged.push(key.to_string());
            per_key.insert(key.to_string(), 0);
            continue;
        };
        // Unexpected: read, never attempted (or only failed).
        let mut unexpected: BTreeMap<&String, u64> = BTreeMap::new();
        for (_, id, set) in &reads {
            for e in set {
                let known = adds.get(e).is_some_and(|a| a.1 != Outcome::Fail);
                if !known {
                    unexpected.entry(e).or_insert(*id);
                }
            }
        }
        for (e, id) in &unexpected {
            c.unexpected += 1;
            note(
                &mut examples,
                &mut found,
                key,
                vec![*id],
                format!("unexpected: read (op {id}) returned {e}, which no add wrote"),
            );
        }
        let mut elems: Vec<&String> = adds.keys().collect();
        elems.sort();
        for e in elems {
            let (add, outcome, ack, _) = &adds[e];
            let present = last.2.contains(e);
            match outcome {
                Outcome::Info if present => c.recovered += 1,
                Outcome::Ok => {
                    let ack = ack.unwrap_or(i64::MIN);
                    if !present && ack >= last.0 {
                        // Acknowledged after the final read began: that read owed it nothing.
                        c.unread += 1;
                        continue;
                    }
                    if !present {
                        c.lost += 1;
                        note(&mut examples, &mut found, key, vec![*add, last.1], format!("lost: add of {e} (op {add}) was acknowledged, yet the final read (op {}) lacks it", last.1));
                        continue;
                    }
                    c.ok += 1;
                    let after = reads.partition_point(|r| r.0 <= ack);
                    let missed = reads[after..].iter().rposition(|r| !r.2.contains(e));
                    match missed {
                        None => latencies.push(0),
                        Some(m) => {
                            c.stale += 1;
                            let miss = &reads[after + m];
                            let stable = &reads[after + m + 1];
                            latencies.push(stable.0 - ack);
                            note(&mut examples, &mut found, key, vec![*add, miss.1], format!("stale: add of {e} (op {add}) was acknowledged, yet read (op {}) began {} later and lacked it; it was present by the end", miss.1, span(miss.0 - ack, timed)));
                        }
                    }
                }
                _ => {}
            }
        }
        per_key.insert(
            key.to_string(),
            (c.lost + c.unexpected + c.stale - before) as usize,
        );
    }
    latencies.sort_unstable();
    let lat = |q: f64| -> Value {
        match quantile(&latencies, q) {
            Some(l) if timed => json!(ms(l)),
            _ => Value::Null,
        }
    };
    // As Jepsen's set-full: stale elements are counted and shown, lost or unexpected ones fail;
    // read-after-write fails on stale ones too. A key is listed when it has any of the three.
    let judged = per_key.len() - unjudged.len();
    let failing = match rule {
        Rule::SetFull => c.lost + c.unexpected,
        Rule::ReadAfterWrite => c.lost + c.unexpected + c.stale,
    };
    let (valid, reason) = super::judged_verdict(failing, judged, "no read completed");
    let keys = invalid_keys(&per_key);
    let mut json = json!({
        "valid": valid,
        "ok": c.ok,
        "lost": c.lost,
        "unexpected": c.unexpected,
        "recovered": c.recovered,
        "stale": c.stale,
        "unread": c.unread,
        "stable_latency_ms": {"p50": lat(0.5), "p99": lat(0.99), "max": lat(1.0)},
        "keys_total": per_key.len(),
        "keys": keys,
        "examples": examples_json(&examples),
    });
    super::note_unjudged(&mut json, reason.as_deref(), unjudged);
    Ok((CheckResult::Done { valid, json }, found))
}

/// The check in words, from its JSON: "40 ok, 0 lost, 0 unexpected, 2 recovered, 1 stale
/// elements".
pub fn line(j: &Value) -> String {
    let n = |f: &str| count(j, f);
    let mut line = format!(
        "{} ok, {} lost, {} unexpected, {} recovered, {} stale elements",
        n("ok"),
        n("lost"),
        n("unexpected"),
        n("recovered"),
        n("stale")
    );
    let unjudged = n("keys_unjudged");
    if unjudged > 0 {
        line.push_str(&format!(
            "; {unjudged} of {} sets not judged (no read)",
            n("keys_total")
        ));
    }
    line
}

/// An anomalous element: an example while there is room, and in the full list at its last op
/// (the read that shows it).
fn note(
    examples: &mut Vec<Example>,
    found: &mut Anomalies,
    key: &str,
    ops: Vec<u64>,
    sentence: String,
) {
    let at = ops.last().copied().unwrap_or(0);
    push_example(examples, key, ops.clone(), sentence.clone());
    found.push((
        at,
        Example {
            key: key.to_string(),
            ops,
            sentence,
        },
    ));
}
