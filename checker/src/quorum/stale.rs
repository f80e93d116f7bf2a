//! `stale-reads`: the quorum promise "a read that begins after a write completed sees it or
//! something newer", measured as Bailis et al. do (PBS, VLDB 2012).
//!
//! For a read r that returned write w's value (or the initial value), the *superseding* writes
//! are the ok writes invoked after w completed and completed before r was invoked; r is stale
//! when there is one. Its k-staleness is the longest chain of superseding writes, each completed
//! before the next was invoked (versions behind); its t-visibility gap is r's invoke time minus
//! the earliest completion among them. An `info` write may or may not have happened: reading its
//! value is no anomaly, and it never supersedes.
//!
//! The check is built on the key's precedence graph ([`super::graph`]: write→write, write→read
//! and read→write edges from real time, reads-from and superseding writes): its cycles are the
//! anomalies, each reported with its ops (a stale read is the two-op cycle "the read precedes
//! the superseding write, which completed before the read began"; a read of a value whose only
//! write began after the read completed is another), and reads of values never written have no
//! write to come from. The counts and distributions (k, t) come from a sweep over the same
//! relations rather than from paths in the graph: with the key's ok writes sorted by invoke
//! time, the earliest-completing write invoked after time t is a suffix minimum; the greedy
//! chain "earliest completion, then the earliest completion invoked after it, …" is a longest
//! chain of non-overlapping intervals, and binary lifting over that step counts a chain of any
//! length in O(log n). A property test holds the two to each other: a key has a cycle exactly
//! when the sweep finds a stale read or a read of a later write.

use super::{
    examples_json, graph, invalid_keys, ms, push_example, quantile, span, Anomalies, CheckResult,
    Example, RegisterKey, Registers, Source,
};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Bucket lower edges (ms) of `p_consistent`.
pub const P_BUCKETS_MS: [i64; 14] = [
    0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000,
];

/// The totals over a history.
#[derive(Debug, Clone, Default)]
pub struct StaleStats {
    pub reads: u64,
    pub stale: u64,
    pub never_written: u64,
    pub future: u64,
    /// Cycles of the precedence graph (strongly connected components with two ops or more).
    pub cycles: u64,
    /// k of each stale read.
    pub ks: Vec<u64>,
    /// t-visibility gap of each stale read (ns, or lines when untimed).
    pub gaps: Vec<i64>,
    /// Per `P_BUCKETS_MS` bucket: (reads, consistent reads).
    pub p: [(u64, u64); P_BUCKETS_MS.len()],
    pub per_key: BTreeMap<String, usize>,
    /// Keys with no ok read: nothing to judge there (counted and named, never a verdict).
    pub unjudged: Vec<String>,
    /// Up to [`super::MAX_EXAMPLES`] reads (stale, never written, written only later).
    pub examples: Vec<Example>,
    /// Up to [`super::MAX_EXAMPLES`] cycles.
    pub cycle_examples: Vec<Example>,
    /// Every anomaly, at its read.
    pub anomalies: Anomalies,
}

/// The superseding-write structure of one key: ok writes sorted by invoke time.
struct Chains {
    inv: Vec<i64>,
    cmp: Vec<i64>,
    id: Vec<u64>,
    /// `suffix[i]`: the write among positions `i..` with the earliest completion.
    suffix: Vec<u32>,
    /// `up[l][j]`: the write reached from `j` by 2^l greedy steps (`u32::MAX`: none).
    up: Vec<Vec<u32>>,
}

const NONE: u32 = u32::MAX;

impl Chains {
    fn new(key: &RegisterKey) -> Chains {
        let mut ok: Vec<(i64, i64, u64)> = key
            .writes
            .iter()
            .filter_map(|w| w.cmp.map(|c| (w.inv, c, w.id)))
            .collect();
        ok.sort_unstable();
        let inv: Vec<i64> = ok.iter().map(|w| w.0).collect();
        let cmp: Vec<i64> = ok.iter().map(|w| w.1).collect();
        let id: Vec<u64> = ok.iter().map(|w| w.2).collect();
        let n = ok.len();
        let mut suffix = vec![NONE; n];
        for i in (0..n).rev() {
            suffix[i] = if i + 1 < n && cmp[suffix[i + 1] as usize] < cmp[i] {
                suffix[i + 1]
            } else {
                i as u32
            };
        }
        let mut c = Chains {
            inv,
            cmp,
            id,
            suffix,
            up: Vec::new(),
        };
        let step: Vec<u32> = (0..n).map(|j| c.first_after(c.cmp[j])).collect();
        let mut up = vec![step];
        while (1usize << up.len()) < n.max(1) {
            let prev = up.last().expect("one level");
            let next: Vec<u32> = (0..n)
                .map(|j| match prev[j] {
                    NONE => NONE,
                    m => prev[m as usize],
                })
                .collect();
            up.push(next);
        }
        c.up = up;
        c
    }

    /// The ok write invoked after `t` that completes first.
    fn first_after(&self, t: i64) -> u32 {
        let i = self.inv.partition_point(|&x| x <= t);
        self.suffix.get(i).copied().unwrap_or(NONE)
    }

    /// The longest chain of writes invoked after `after` and completed before `before`:
    /// (its length, its first write).
    fn chain(&self, after: i64, before: i64) -> (u64, u32) {
        let first = self.first_after(after);
        if first == NONE || self.cmp[first as usize] >= before {
            return (0, first);
        }
        let (mut cur, mut k) = (first, 1u64);
        for l in (0..self.up.len()).rev() {
            let nx = self.up[l][cur as usize];
            if nx != NONE && self.cmp[nx as usize] < before {
                cur = nx;
                k += 1 << l;
            }
        }
        (k, first)
    }

    /// The ok write that completed last before `t`: its (invoke, completion).
    fn latest_before(&self, by_cmp: &[(i64, i64)], t: i64) -> Option<(i64, i64)> {
        let i = by_cmp.partition_point(|&(c, _)| c < t);
        (i > 0).then(|| (by_cmp[i - 1].1, by_cmp[i - 1].0))
    }
}

/// Run the check over every key.
pub fn stats(regs: &Registers) -> StaleStats {
    // The graphs in parallel (each key's is its own), the sweep and the tallies in key order.
    let cycles: Vec<Vec<graph::Cycle>> = regs.keys.par_iter().map(graph::cycles).collect();
    let mut s = StaleStats::default();
    for (key, cycles) in regs.keys.iter().zip(cycles) {
        one_key(key, regs.timed, cycles, &mut s);
    }
    s
}

fn one_key(key: &RegisterKey, timed: bool, cycles: Vec<graph::Cycle>, s: &mut StaleStats) {
    let chains = Chains::new(key);
    let mut by_cmp: Vec<(i64, i64)> = chains
        .cmp
        .iter()
        .zip(&chains.inv)
        .map(|(&c, &i)| (c, i))
        .collect();
    by_cmp.sort_unstable();
    let mut bad = 0usize;
    if key.reads.is_empty() {
        s.unjudged.push(key.key.clone());
    }
    for r in &key.reads {
        s.reads += 1;
        // When the read's source certainly took effect; None for an info write.
        let done = match r.source {
            Source::Initial => Some(i64::MIN),
            Source::Write(w) => {
                let w = &key.writes[w];
                if w.inv > r.cmp {
                    s.future += 1;
                    bad += 1;
                    let sentence = format!(
                        "read of a value written only later: read (op {}) returned {}, first written by op {}, which began after the read completed (a cycle in the precedence graph)",
                        r.id, r.value, w.id
                    );
                    found(s, key, r.id, vec![r.id, w.id], sentence);
                    continue;
                }
                w.cmp
            }
            Source::Never => {
                s.never_written += 1;
                bad += 1;
                let sentence = format!(
                    "read of a value never written: read (op {}) returned {}",
                    r.id, r.value
                );
                found(s, key, r.id, vec![r.id], sentence);
                continue;
            }
        };
        let Some(done) = done else {
            continue; // an info write's value: no anomaly, no distribution sample
        };
        if timed {
            if let Some((linv, lcmp)) = chains.latest_before(&by_cmp, r.inv) {
                let since = r.inv - lcmp;
                let b = P_BUCKETS_MS.partition_point(|&e| e * 1_000_000 <= since) - 1;
                s.p[b].0 += 1;
                if linv <= done {
                    s.p[b].1 += 1;
                }
            }
        }
        let (k, first) = chains.chain(done, r.inv);
        if k == 0 {
            continue;
        }
        let first = first as usize;
        let gap = r.inv - chains.cmp[first];
        s.stale += 1;
        bad += 1;
        s.ks.push(k);
        s.gaps.push(gap);
        let what = match r.source {
            Source::Write(w) => format!("op {}'s value {}", key.writes[w].id, r.value),
            _ => "the initial value".into(),
        };
        let sentence = format!(
            "stale read: read (op {}) began {} after write op {} completed, yet returned {what}, {k} version{} behind",
            r.id,
            span(gap, timed),
            chains.id[first],
            if k == 1 { "" } else { "s" }
        );
        found(s, key, r.id, vec![r.id, chains.id[first]], sentence);
    }
    for c in cycles {
        s.cycles += 1;
        bad += 1;
        let at = c.ops[0];
        push_example(
            &mut s.cycle_examples,
            &key.key,
            c.ops.clone(),
            c.sentence.clone(),
        );
        s.anomalies.push((
            at,
            Example {
                key: key.key.clone(),
                ops: c.ops,
                sentence: c.sentence,
            },
        ));
    }
    s.per_key.insert(key.key.clone(), bad);
}

/// Record an anomalous read: in the full list, and as an example while there is room.
fn found(s: &mut StaleStats, key: &RegisterKey, at: u64, ops: Vec<u64>, sentence: String) {
    push_example(&mut s.examples, &key.key, ops.clone(), sentence.clone());
    s.anomalies.push((
        at,
        Example {
            key: key.key.clone(),
            ops,
            sentence,
        },
    ));
}

/// The check's result (INTERFACES.md fields, plus `never_written`, `future_reads`, `cycles`,
/// `p_consistent_reads` and `keys`), and every anomaly. `examples` holds up to
/// [`super::MAX_EXAMPLES`] anomalous reads, then up to as many cycles.
///
/// `p_consistent` is P(consistent read) as a function of the time since a write completed:
/// each timed read whose value's write is known (or the initial value) and that began after
/// some ok write completed is one sample, at `t` = its invoke time minus the completion time of
/// the ok write that completed last before it; it is *consistent* when it saw that write or a
/// newer one (that write does not supersede the value read). Samples fall in buckets whose lower
/// edges are `P_BUCKETS_MS`; each entry is `[lower edge in ms, share consistent]`, for the
/// buckets with samples (`p_consistent_reads` gives the sample counts).
pub fn check(regs: &Registers) -> (CheckResult, Anomalies) {
    let mut s = stats(regs);
    let mut ks = s.ks.clone();
    ks.sort_unstable();
    let mut gaps = s.gaps.clone();
    gaps.sort_unstable();
    let mut hist: BTreeMap<u64, u64> = BTreeMap::new();
    for &k in &ks {
        *hist.entry(k).or_default() += 1;
    }
    let histogram: Vec<Value> = hist.iter().map(|(k, n)| json!([k, n])).collect();
    let t = |q: f64| -> Value {
        match quantile(&gaps, q) {
            Some(g) if regs.timed => json!(ms(g)),
            _ => Value::Null,
        }
    };
    let mut p_consistent = Vec::new();
    let mut p_reads = Vec::new();
    for (i, &(n, c)) in s.p.iter().enumerate() {
        if n > 0 {
            let p = (c as f64 / n as f64 * 1e4).round() / 1e4;
            p_consistent.push(json!([P_BUCKETS_MS[i], p]));
            p_reads.push(json!([P_BUCKETS_MS[i], n]));
        }
    }
    let anomalies = s.stale + s.never_written + s.future + s.cycles;
    let judged = s.per_key.len() - s.unjudged.len();
    let (valid, reason) = super::judged_verdict(anomalies, judged, "no read completed");
    let keys = invalid_keys(&s.per_key);
    let mut json = json!({
        "valid": valid,
        "reads": s.reads,
        "stale": s.stale,
        "never_written": s.never_written,
        "future_reads": s.future,
        "cycles": s.cycles,
        "k_staleness": {
            "p50": quantile(&ks, 0.5),
            "p99": quantile(&ks, 0.99),
            "max": ks.last(),
            "histogram": histogram,
        },
        "t_visibility_ms": {"p50": t(0.5), "p99": t(0.99), "max": t(1.0)},
        "p_consistent": p_consistent,
        "p_consistent_reads": p_reads,
        "keys_total": s.per_key.len(),
        "keys": keys,
        "examples": examples_json(&[std::mem::take(&mut s.examples), std::mem::take(&mut s.cycle_examples)].concat()),
    });
    super::note_unjudged(
        &mut json,
        reason.as_deref(),
        std::mem::take(&mut s.unjudged),
    );
    (CheckResult::Done { valid, json }, s.anomalies)
}

/// The check in words, from its JSON: "2 stale of 40 reads, k ≤ 1, t-visibility max 20 ms;
/// 1 of 2 keys invalid: k1".
pub fn line(j: &Value) -> String {
    let n = |f: &str| super::count(j, f);
    let mut line = format!("{} stale of {} reads", n("stale"), n("reads"));
    if let Some(max) = j["k_staleness"]["max"].as_u64() {
        line.push_str(&format!(", k ≤ {max}"));
        if let Some(t) = j["t_visibility_ms"]["max"].as_f64() {
            line.push_str(&format!(", t-visibility max {t} ms"));
        }
    }
    if n("never_written") > 0 {
        line.push_str(&format!(", {} of values never written", n("never_written")));
    }
    if n("future_reads") > 0 {
        line.push_str(&format!(
            ", {} of values written only later",
            n("future_reads")
        ));
    }
    let cycles = n("cycles");
    if cycles > 0 {
        line.push_str(&format!(
            ", {cycles} cycle{} in the precedence graph",
            if cycles == 1 { "" } else { "s" }
        ));
    }
    line.push_str(&super::keys_tail(j, "no read"));
    line
}
