//! `lost-writes`: an acknowledged write w is lost when the key's last read, begun after w
//! completed, returns the initial value or a write that precedes w (completed before w was
//! invoked). A write overwritten by a concurrent or later write is not lost: the last read then
//! returns that write, which does not precede w.

use super::{
    examples_json, invalid_keys, push_example, Anomalies, CheckResult, Example, Registers, Source,
};
use crate::verdict::Verdict;
use serde_json::json;
use std::collections::BTreeMap;

/// The check's result, and every lost write, at the last read that shows it.
pub fn check(regs: &Registers) -> (CheckResult, Anomalies) {
    let (mut acknowledged, mut lost) = (0u64, 0u64);
    let mut examples: Vec<Example> = Vec::new();
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut found = Anomalies::new();
    for key in &regs.keys {
        let mut bad = 0;
        let Some(last) = key.reads.iter().max_by_key(|r| (r.inv, r.id)) else {
            per_key.insert(key.key.clone(), 0);
            continue;
        };
        // When the last read's value certainly took effect (None: an info write, or a value
        // never written — stale-reads reports that one).
        let (src_done, src_name) = match last.source {
            Source::Initial => (Some(i64::MIN), "the initial value".to_string()),
            Source::Write(w) => (
                key.writes[w].cmp,
                format!("op {}'s value {}", key.writes[w].id, last.value),
            ),
            Source::Never => (None, String::new()),
        };
        for w in &key.writes {
            let Some(done) = w.cmp else { continue };
            if done >= last.inv {
                continue;
            }
            acknowledged += 1;
            if src_done.is_some_and(|s| s < w.inv) {
                lost += 1;
                bad += 1;
                let sentence = format!(
                    "lost write: write of {} (op {}) was acknowledged, yet the key's last read (op {}) returned {src_name}, written before it",
                    w.value, w.id, last.id
                );
                found.push((
                    last.id,
                    Example {
                        key: key.key.clone(),
                        ops: vec![w.id, last.id],
                        sentence: sentence.clone(),
                    },
                ));
                push_example(&mut examples, &key.key, vec![w.id, last.id], sentence);
            }
        }
        per_key.insert(key.key.clone(), bad);
    }
    let valid = if lost == 0 {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    let keys = invalid_keys(&per_key);
    let mut line = format!("{lost} lost of {acknowledged} acknowledged writes");
    line.push_str(&super::keys_invalid_line(&per_key));
    let json = json!({
        "valid": valid,
        "acknowledged": acknowledged,
        "lost": lost,
        "keys_total": per_key.len(),
        "keys": keys,
        "examples": examples_json(&examples),
    });
    (CheckResult::Done { valid, json, line }, found)
}
