//! `sessions`: the session guarantees of Terry et al., per process number (a client gets a new
//! number after an `info`, HISTORY.md, so a session ends there) and per key.
//!
//! "Older" is real-time precedence: write a is older than write b when a completed before b was
//! invoked; the initial value is older than every write.
//! - monotonic reads: a read returns a value older than one an earlier read of the session
//!   returned;
//! - read-your-writes: a read returns a value older than one of the session's own earlier
//!   writes;
//! - monotonic writes: a read (by anyone) returns a session's write after a read that completed
//!   before it began returned a later write of the same session — the writes became visible out
//!   of session order.

use super::{
    count, examples_json, invalid_keys, push_example, Anomalies, CheckResult, Example, Registers,
    Source,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
struct Counts {
    mr: u64,
    ryw: u64,
    mw: u64,
}

/// The check's result, and every violation, at the read that shows it (a monotonic-reads one
/// named "new value then old value" for the linearizability sentence).
pub fn check(regs: &Registers) -> (CheckResult, Anomalies) {
    let mut c = Counts::default();
    let mut examples: Vec<Example> = Vec::new();
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut found = Anomalies::new();
    for key in &regs.keys {
        let before = c.mr + c.ryw + c.mw;
        // Session order: each process's reads and ok writes by invoke time.
        enum Step {
            Read(usize),
            Write(usize),
        }
        let mut sessions: BTreeMap<u64, Vec<(i64, Step)>> = BTreeMap::new();
        for (i, r) in key.reads.iter().enumerate() {
            sessions
                .entry(r.process)
                .or_default()
                .push((r.inv, Step::Read(i)));
        }
        for (i, w) in key.writes.iter().enumerate() {
            if w.cmp.is_some() {
                sessions
                    .entry(w.process)
                    .or_default()
                    .push((w.inv, Step::Write(i)));
            }
        }
        // A source's (invoke, completion); None for a value never written.
        let src = |s: Source| -> Option<(i64, Option<i64>)> {
            match s {
                Source::Initial => Some((i64::MIN, Some(i64::MIN))),
                Source::Write(w) => Some((key.writes[w].inv, key.writes[w].cmp)),
                Source::Never => None,
            }
        };
        for (_, mut steps) in sessions {
            steps.sort_by_key(|s| s.0);
            // The newest invoke among earlier reads' values, and among own writes, with its op.
            let mut seen: Option<(i64, u64)> = None;
            let mut own: Option<(i64, u64)> = None;
            for (_, step) in steps {
                match step {
                    Step::Write(w) => {
                        let w = &key.writes[w];
                        if !matches!(own, Some((i, _)) if w.inv <= i) {
                            own = Some((w.inv, w.id));
                        }
                    }
                    Step::Read(r) => {
                        let r = &key.reads[r];
                        let Some((inv, cmp)) = src(r.source) else {
                            continue;
                        };
                        let older = |than: i64| cmp.is_some_and(|c| c < than);
                        if let Some((t, by)) = seen {
                            if older(t) {
                                c.mr += 1;
                                let sentence = format!("new value then old value (monotonic reads): read (op {}) of process {} returned {}, older than what its earlier read (op {by}) returned", r.id, r.process, r.value);
                                found.push((
                                    r.id,
                                    Example {
                                        key: key.key.clone(),
                                        ops: vec![by, r.id],
                                        sentence,
                                    },
                                ));
                                push_example(&mut examples, &key.key, vec![by, r.id], format!("monotonic reads: read (op {}) returned {}, older than what the same process's earlier read (op {by}) returned", r.id, r.value));
                            }
                        }
                        if let Some((t, w)) = own {
                            if older(t) {
                                c.ryw += 1;
                                let sentence = format!("read-your-writes: read (op {}) returned {}, older than the same process's earlier write (op {w})", r.id, r.value);
                                found.push((
                                    r.id,
                                    Example {
                                        key: key.key.clone(),
                                        ops: vec![w, r.id],
                                        sentence: sentence.clone(),
                                    },
                                ));
                                push_example(&mut examples, &key.key, vec![w, r.id], sentence);
                            }
                        }
                        if inv > i64::MIN && !matches!(seen, Some((t, _)) if inv <= t) {
                            seen = Some((inv, r.id));
                        }
                    }
                }
            }
        }
        monotonic_writes(key, &mut c, &mut examples, &mut found);
        per_key.insert(key.key.clone(), (c.mr + c.ryw + c.mw - before) as usize);
    }
    // Every guarantee is about what a read returned: a key with no ok read has nothing to judge.
    let unjudged: Vec<String> = regs
        .keys
        .iter()
        .filter(|k| k.reads.is_empty())
        .map(|k| k.key.clone())
        .collect();
    let judged = per_key.len() - unjudged.len();
    let (valid, reason) = super::judged_verdict(c.mr + c.ryw + c.mw, judged, "no read completed");
    let keys = invalid_keys(&per_key);
    let mut json = json!({
        "valid": valid,
        "monotonic_reads": c.mr,
        "read_your_writes": c.ryw,
        "monotonic_writes": c.mw,
        "keys_total": per_key.len(),
        "keys": keys,
        "examples": examples_json(&examples),
    });
    super::note_unjudged(&mut json, reason.as_deref(), unjudged);
    (CheckResult::Done { valid, json }, found)
}

/// The check in words, from its JSON: "0 monotonic-reads, 1 read-your-writes, 0
/// monotonic-writes violations; 1 of 3 keys invalid: k2".
pub fn line(j: &Value) -> String {
    let mut line = format!(
        "{} monotonic-reads, {} read-your-writes, {} monotonic-writes violations",
        count(j, "monotonic_reads"),
        count(j, "read_your_writes"),
        count(j, "monotonic_writes")
    );
    line.push_str(&super::keys_tail(j, "no read"));
    line
}

/// A sweep over read invocations and completions in time order, keeping per writing process
/// the latest of its writes (in session order) that some completed read has returned.
fn monotonic_writes(
    key: &super::RegisterKey,
    c: &mut Counts,
    examples: &mut Vec<Example>,
    found: &mut Anomalies,
) {
    // Session position of each ok write: (process, seq).
    let mut seq: HashMap<usize, (u64, usize)> = HashMap::new();
    let mut next: HashMap<u64, usize> = HashMap::new();
    let mut order: Vec<usize> = (0..key.writes.len())
        .filter(|&w| key.writes[w].cmp.is_some())
        .collect();
    order.sort_by_key(|&w| key.writes[w].inv);
    for w in order {
        let p = key.writes[w].process;
        let n = next.entry(p).or_default();
        seq.insert(w, (p, *n));
        *n += 1;
    }
    // (time, 0 = invoke / 1 = completion, read index): invokes first at equal times, so only a
    // read completed strictly before counts.
    let mut events: Vec<(i64, u8, usize)> = Vec::new();
    for (i, r) in key.reads.iter().enumerate() {
        if let Source::Write(w) = r.source {
            if seq.contains_key(&w) {
                events.push((r.inv, 0, i));
                events.push((r.cmp, 1, i));
            }
        }
    }
    events.sort_unstable();
    // process -> (latest seq seen, the read that saw it)
    let mut latest: HashMap<u64, (usize, u64)> = HashMap::new();
    for (_, kind, i) in events {
        let r = &key.reads[i];
        let Source::Write(w) = r.source else { continue };
        let (p, s) = seq[&w];
        if kind == 0 {
            if let Some(&(ls, by)) = latest.get(&p) {
                if ls > s {
                    c.mw += 1;
                    let sentence = format!("monotonic writes: read (op {}) returned process {p}'s write {} after read (op {by}) had returned a later write of that process", r.id, r.value);
                    found.push((
                        r.id,
                        Example {
                            key: key.key.clone(),
                            ops: vec![by, r.id],
                            sentence: sentence.clone(),
                        },
                    ));
                    push_example(examples, &key.key, vec![by, r.id], sentence);
                }
            }
        } else if !matches!(latest.get(&p), Some(&(ls, _)) if s <= ls) {
            latest.insert(p, (s, r.id));
        }
    }
}
