//! `lost-writes`: an acknowledged write w is lost when the key's last read, begun after w
//! completed, returns the initial value or a write that precedes w (completed before w was
//! invoked). A write overwritten by a concurrent or later write is not lost: the last read then
//! returns that write, which does not precede w.
//!
//! Only a read can show a write survived: an acknowledged write no read began after (the key
//! was never read, or its last read began before the write completed — final reads that did
//! not answer) is *unread*, counted apart and never "not lost". A key none of whose
//! acknowledged writes was read afterwards is not judged; it is counted and named, and a
//! history with no judged key at all is `unknown`, never "0 lost".

use super::{
    count, examples_json, invalid_keys, push_example, Anomalies, CheckResult, Example, Registers,
    Source,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The check's result, and every lost write, at the last read that shows it.
pub fn check(regs: &Registers) -> (CheckResult, Anomalies) {
    let (mut acknowledged, mut lost, mut unread) = (0u64, 0u64, 0u64);
    let (mut reads, mut ok_writes) = (0usize, 0usize);
    let mut examples: Vec<Example> = Vec::new();
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut unjudged: Vec<String> = Vec::new();
    let mut found = Anomalies::new();
    for key in &regs.keys {
        let mut bad = 0;
        reads += key.reads.len();
        let done: Vec<&super::Write> = key.writes.iter().filter(|w| w.cmp.is_some()).collect();
        ok_writes += done.len();
        let Some(last) = key.reads.iter().max_by_key(|r| (r.inv, r.id)) else {
            unread += done.len() as u64;
            unjudged.push(key.key.clone());
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
        let mut judged = false;
        for w in done {
            let Some(completed) = w.cmp else { continue };
            if completed >= last.inv {
                unread += 1;
                continue;
            }
            judged = true;
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
        if !judged {
            unjudged.push(key.key.clone());
        }
        per_key.insert(key.key.clone(), bad);
    }
    let why_none = if reads == 0 {
        "no read completed"
    } else if ok_writes == 0 {
        "no write was acknowledged"
    } else {
        "no read began after an acknowledged write completed"
    };
    let judged = per_key.len() - unjudged.len();
    let (valid, reason) = super::judged_verdict(lost, judged, why_none);
    let keys = invalid_keys(&per_key);
    let mut json = json!({
        "valid": valid,
        "acknowledged": acknowledged,
        "lost": lost,
        "keys_total": per_key.len(),
        "keys": keys,
        "examples": examples_json(&examples),
    });
    if unread > 0 {
        json["unread"] = json!(unread);
    }
    super::note_unjudged(&mut json, reason.as_deref(), unjudged);
    (CheckResult::Done { valid, json }, found)
}

/// The check in words, from its JSON: "1 lost of 300 acknowledged writes, 4 acknowledged writes
/// never read afterwards; 1 of 2 keys invalid: k1".
pub fn line(j: &Value) -> String {
    let mut line = format!(
        "{} lost of {} acknowledged writes",
        count(j, "lost"),
        count(j, "acknowledged")
    );
    let unread = count(j, "unread");
    if unread > 0 {
        line.push_str(&format!(
            ", {unread} acknowledged write{} never read afterwards",
            if unread == 1 { "" } else { "s" }
        ));
    }
    line.push_str(&super::keys_tail(
        j,
        "no acknowledged write was read afterwards",
    ));
    line
}
