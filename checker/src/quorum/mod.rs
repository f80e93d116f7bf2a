//! The quorum checks (issue 8): what a leaderless store promises short of linearizability —
//! reads that begin after a write completed see it or something newer (`stale-reads`),
//! acknowledged writes survive (`lost-writes`), per-process session guarantees (`sessions`),
//! replicas agree after the quiet period (`convergence`) and acknowledged set elements stay
//! (`set`).
//!
//! This module owns the shared view of a register key those checks work on ([`RegisterKey`]:
//! writes and reads in time order, each read resolved to the write whose value it returned) and
//! the pieces every check's result shares (examples, quantiles, natural key order). Each check
//! lives in a file of its own and returns a [`CheckResult`].

pub mod convergence;
pub mod graph;
pub mod lost;
pub(crate) mod run;
pub mod sessions;
pub mod set;
pub mod stale;

use crate::history::{History, Op, Outcome};
use crate::verdict::Verdict;
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// Examples kept per check (the counts are always exact).
pub const MAX_EXAMPLES: usize = 10;

/// What one quorum check said about a file.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckResult {
    /// The check does not apply; the reason says why (INTERFACES.md `{"skipped": REASON}`).
    Skipped(String),
    /// The check ran: its verdict and its JSON object (INTERFACES.md fields; [`line`] says
    /// it in words).
    Done { valid: Verdict, json: Value },
}

impl CheckResult {
    pub fn to_json(&self) -> Value {
        match self {
            CheckResult::Skipped(reason) => json!({ "skipped": reason }),
            CheckResult::Done { json, .. } => json.clone(),
        }
    }

    /// `None` when skipped (a skipped check does not count toward `valid`).
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            CheckResult::Skipped(_) => None,
            CheckResult::Done { valid, .. } => Some(*valid),
        }
    }
}

/// One anomaly: the ops involved (invoke `index`es) and a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub key: String,
    pub ops: Vec<u64>,
    pub sentence: String,
}

impl Example {
    pub fn to_json(&self) -> Value {
        json!({"key": self.key, "ops": self.ops, "sentence": self.sentence})
    }
}

/// Keep at most [`MAX_EXAMPLES`] examples.
pub fn push_example(examples: &mut Vec<Example>, key: &str, ops: Vec<u64>, sentence: String) {
    if examples.len() < MAX_EXAMPLES {
        examples.push(Example {
            key: key.to_string(),
            ops,
            sentence,
        });
    }
}

pub fn examples_json(examples: &[Example]) -> Value {
    Value::Array(examples.iter().map(Example::to_json).collect())
}

/// Natural order of key names: runs of digits compare as numbers, so `k2` < `k10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z.min(d.len().saturating_sub(1))..]
}

/// Sort key names naturally.
pub fn sort_natural(keys: &mut [String]) {
    keys.sort_by(|a, b| natural_cmp(a, b));
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Nanoseconds as milliseconds, rounded to microseconds.
pub fn ms(ns: i64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

/// Where a read's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The initial value (`null`, or `--initial`).
    Initial,
    /// The write at this index of [`RegisterKey::writes`].
    Write(usize),
    /// A value no write (ok or info) of the key wrote.
    Never,
}

/// A write of a register key. Times are nanoseconds when the history has them, else line
/// positions (then no millisecond figure is given).
#[derive(Debug, Clone)]
pub struct Write {
    pub id: u64,
    pub process: u64,
    pub inv: i64,
    /// `None` for an `info` write (it may take effect at any time after its invoke, or never).
    pub cmp: Option<i64>,
    pub value: Value,
}

/// An ok read of a register key.
#[derive(Debug, Clone)]
pub struct Read {
    pub id: u64,
    pub process: u64,
    pub inv: i64,
    pub cmp: i64,
    pub source: Source,
    pub value: Value,
}

/// A register key's writes (ok and info; failed writes certainly did not happen) and ok reads,
/// each in invoke order.
#[derive(Debug, Clone, Default)]
pub struct RegisterKey {
    pub key: String,
    pub writes: Vec<Write>,
    pub reads: Vec<Read>,
}

/// A register history resolved for the quorum checks, or why it cannot be.
#[derive(Debug, Clone)]
pub struct Registers {
    pub keys: Vec<RegisterKey>,
    /// Times are nanoseconds (else line positions).
    pub timed: bool,
}

/// Whether the register checks apply: client ops are reads and writes (a history with `cas`
/// or kv ops is left to linearizability) and no two writes of a key write the same value.
pub fn registers(history: &History, initial: Option<&Value>) -> Result<Registers, String> {
    if history.ops.is_empty() {
        return Err("no client ops".into());
    }
    if let Some(op) = history
        .ops
        .iter()
        .find(|op| op.f != "read" && op.f != "write")
    {
        return Err(format!(
            "op {} is a {:?}; the register checks read histories of read and write ops",
            op.id, op.f
        ));
    }
    let timed = history
        .ops
        .iter()
        .all(|op| op.call_time.is_some() && (op.complete.is_none() || op.complete_time.is_some()));
    let at = |op: &Op| -> (i64, Option<i64>) {
        if timed {
            (op.call_time.unwrap_or(0), op.complete_time)
        } else {
            (op.call as i64, op.complete.map(|c| c as i64))
        }
    };
    let initial = initial.cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    for (key, ops) in history.by_key() {
        let mut k = RegisterKey {
            key: key.to_string(),
            ..RegisterKey::default()
        };
        let mut by_value: HashMap<String, usize> = HashMap::new();
        for op in ops.iter().filter(|op| op.f == "write") {
            let (inv, cmp) = at(op);
            let cmp = match op.outcome {
                Outcome::Ok => cmp,
                Outcome::Info => None,
                Outcome::Fail | Outcome::Mismatch => continue,
            };
            if op.input == initial {
                return Err(format!(
                    "values repeat, so reads cannot name their writes (op {} writes the initial value {})",
                    op.id, op.input
                ));
            }
            if by_value
                .insert(op.input.to_string(), k.writes.len())
                .is_some()
            {
                return Err(format!(
                    "values repeat, so reads cannot name their writes ({} is written twice on key {key:?})",
                    op.input
                ));
            }
            k.writes.push(Write {
                id: op.id,
                process: op.process,
                inv,
                cmp: if op.outcome == Outcome::Ok { cmp } else { None },
                value: op.input.clone(),
            });
        }
        for op in ops.iter().filter(|op| op.f == "read") {
            if op.outcome != Outcome::Ok {
                continue;
            }
            let (inv, cmp) = at(op);
            let source = if op.output == initial {
                Source::Initial
            } else {
                by_value
                    .get(&op.output.to_string())
                    .map_or(Source::Never, |&w| Source::Write(w))
            };
            k.reads.push(Read {
                id: op.id,
                process: op.process,
                inv,
                cmp: cmp.unwrap_or(inv),
                source,
                value: op.output.clone(),
            });
        }
        out.push(k);
    }
    Ok(Registers { keys: out, timed })
}

/// A figure as "12.000 ms" when timed, else "N lines".
pub fn span(ns: i64, timed: bool) -> String {
    if timed {
        format!("{} ms", ms(ns))
    } else {
        format!("{ns} lines")
    }
}

/// Counts per key name, naturally sorted, as a JSON array of the keys with a nonzero count.
pub fn invalid_keys(per_key: &BTreeMap<String, usize>) -> Vec<String> {
    let mut keys: Vec<String> = per_key
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, _)| k.clone())
        .collect();
    sort_natural(&mut keys);
    keys
}

/// "; 3 of 20 keys invalid: k2 k5 k10", or nothing when no key is invalid; then, when some
/// keys had nothing to judge, "; 2 of 20 keys not judged (WHY): k4 k9". The tail of a check's
/// line, read from its JSON (`keys`, `keys_total`, `unjudged_keys`).
pub fn keys_tail(j: &Value, why_unjudged: &str) -> String {
    let total = count(j, "keys_total");
    let invalid = keys_phrase(&names(j, "keys"), total, "invalid");
    let unjudged = format!("not judged ({why_unjudged})");
    invalid + &keys_phrase(&names(j, "unjudged_keys"), total, &unjudged)
}

/// "; 3 of 20 keys WHAT: k2 k5 k10", or nothing when `keys` is empty.
pub fn keys_phrase(keys: &[String], total: u64, what: &str) -> String {
    if keys.is_empty() {
        return String::new();
    }
    format!(
        "; {} of {total} keys {what}: {}",
        keys.len(),
        key_list(keys)
    )
}

/// A check's one-line summary for people ("12 stale of 4000 reads, k ≤ 3; …"), read from its
/// JSON object, so that a results.json read back from disk prints as the fresh report does.
/// `None` for a check this version does not know.
pub fn line(check: &str, j: &Value) -> Option<String> {
    Some(match check {
        "stale-reads" => stale::line(j),
        "lost-writes" => lost::line(j),
        "sessions" => sessions::line(j),
        "convergence" => convergence::line(j),
        "set" | "set-read-after-write" => set::line(j),
        _ => return None,
    })
}

/// A list of key names in a check's JSON (empty when absent).
pub fn names(j: &Value, field: &str) -> Vec<String> {
    j[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A count field of a check's JSON (0 when absent).
pub fn count(j: &Value, field: &str) -> u64 {
    j[field].as_u64().unwrap_or(0)
}

/// A check's verdict from the keys it judged: invalid when it found anomalies, valid when it
/// judged some key and found none, and unknown with `why_none` when it judged no key at all
/// (an all-`info` or write-only history proves nothing, so it is never `valid`).
pub fn judged_verdict(anomalies: u64, judged: usize, why_none: &str) -> (Verdict, Option<String>) {
    if anomalies > 0 {
        (Verdict::Invalid, None)
    } else if judged == 0 {
        (Verdict::Unknown, Some(why_none.to_string()))
    } else {
        (Verdict::Valid, None)
    }
}

/// Say in a check's JSON what it could not judge: `reason` when its verdict is unknown for want
/// of evidence, and, when some keys had nothing to judge, their count (`keys_unjudged`) and
/// names in natural order (`unjudged_keys`). Both are left out when there is nothing to say,
/// so a history every key of which was judged keeps its object as before.
pub fn note_unjudged(json: &mut Value, reason: Option<&str>, mut unjudged: Vec<String>) {
    if let Some(why) = reason {
        json["reason"] = json!(why);
    }
    if !unjudged.is_empty() {
        sort_natural(&mut unjudged);
        json["keys_unjudged"] = json!(unjudged.len());
        json["unjudged_keys"] = json!(unjudged);
    }
}

/// Every anomaly a check found, each with the op it shows at (the read that returned the wrong
/// value), for the linearizability sentence and the report's marks. Unlike the examples in
/// the check's JSON, this list is not cut short.
pub type Anomalies = Vec<(u64, Example)>;

/// Up to 20 naturally sorted key names, then how many more.
pub fn key_list(keys: &[String]) -> String {
    let mut out = keys.iter().take(20).cloned().collect::<Vec<_>>().join(" ");
    if keys.len() > 20 {
        out.push_str(&format!(" … and {} more", keys.len() - 20));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_k2_before_k10() {
        let mut keys: Vec<String> = ["k10", "k2", "k1", "a", "k02x", "k139"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_natural(&mut keys);
        assert_eq!(keys, ["a", "k1", "k2", "k02x", "k10", "k139"]);
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(quantile(&v, 0.5), Some(5));
        assert_eq!(quantile(&v, 0.99), Some(10));
        assert_eq!(quantile::<i64>(&[], 0.5), None);
    }
}
