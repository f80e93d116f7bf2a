//! `timeline.html`: one checked history drawn as ops over time, in one self-contained file.
//!
//! The page is titled with the run (name, configuration, seed, verdict; see
//! [`super::RunInfo`]) and opens on the first anomaly, zoomed to the ops around it: those
//! concurrent with the op the anomaly shows at and the ops it names. Each op is a bar on its
//! process's row, from invoke to completion (to the end of the history for an `info` op that
//! never completed), coloured by outcome and labelled with what it did (`w 17`, `r → 12`). An
//! overview strip above shows the whole run: op rate and outcomes, fault windows, and every
//! anomaly of every check as a mark that zooms there when clicked. The x axis is time when
//! every event has one (ms from [`super::time_origin`], ticks in round ms or s), else line
//! order.
//!
//! Size is bounded so a million-op history still gives a page a browser opens. Keys with an
//! anomaly (any check) are drawn in full while [`MAX_FAILING_OPS`] lasts (past it, the
//! [`MAX_OPS_PER_KEY`] ops around the key's first anomaly); keys without one are sampled
//! evenly (every k-th key, each up to [`MAX_OPS_PER_KEY`] ops) within [`MAX_VALID_OPS`]; at
//! most [`MAX_MARKS`] anomalies are marked. The page says what it left out.
//!
//! The page itself (HTML, CSS and the script) is `timeline.html` beside this file, compiled in
//! with `include_str!`; this file computes the data. No external assets: the data is embedded
//! as JSON (with `<` escaped, so no value can close the script), and the script draws it with
//! SVG, setting text with `textContent` only.

use super::{windows_by, RunInfo};
use crate::check::{Check, FileReport};
use crate::history::{Op, Outcome};
use crate::quorum::{natural_cmp, CheckResult};
use crate::verdict::Verdict;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

/// Most ops drawn for a key when it cannot be drawn in full.
pub const MAX_OPS_PER_KEY: usize = 1000;
/// Most ops of keys with an anomaly drawn in full, in all.
pub const MAX_FAILING_OPS: usize = 150_000;
/// Most ops of keys without an anomaly drawn, in all (the sample).
pub const MAX_VALID_OPS: usize = 20_000;
/// Most anomalies marked.
pub const MAX_MARKS: usize = 20_000;
/// Client process numbers from this one up are the harness's final reads (one process per
/// key, after the quiet period); the page draws them on one row, "final reads".
pub const FINAL_READS_FROM: u64 = 1_000_000_000;
/// Bins of the overview's op-rate strip.
const OVERVIEW_BINS: usize = 300;

/// Where events sit on the x axis.
#[derive(Clone, Copy, PartialEq)]
enum Axis {
    /// Milliseconds since `t0` ([`super::time_origin`]).
    Time { t0: i64 },
    /// Line positions (0-based).
    Line,
}

impl Axis {
    fn at(self, time: Option<i64>, line: usize) -> f64 {
        match self {
            Axis::Time { t0 } => (time.unwrap_or(t0).saturating_sub(t0)) as f64 / 1e6,
            Axis::Line => line as f64,
        }
    }
    fn call(self, o: &Op) -> f64 {
        self.at(o.call_time, o.call)
    }
    fn complete(self, o: &Op) -> Option<f64> {
        o.complete.map(|c| self.at(o.complete_time, c))
    }
}

/// Render the report of a checked file titled by the file alone.
pub fn render(report: &FileReport) -> String {
    render_run(
        report,
        &RunInfo {
            name: report.file.clone(),
            ..RunInfo::default()
        },
    )
}

/// Render the report of a checked file, titled with its run, as a complete HTML page.
pub fn render_run(report: &FileReport, run: &RunInfo) -> String {
    let data = data(report, run);
    // `<` only occurs inside JSON strings, where \u003c means the same; escaping it means no
    // value (a key named "</script>") can end the script element early.
    let json = data.to_string().replace('<', "\\u003c");
    let title = super::escape(&format!("{} — {}", run.name, verdict_word(report.valid)));
    // Split first, so that a title holding "{{DATA}}" cannot pull the data into it.
    let (head, tail) = TEMPLATE
        .split_once("{{DATA}}")
        .expect("the template has a {{DATA}} slot");
    let mut page = String::with_capacity(json.len() + TEMPLATE.len() + title.len());
    page.push_str(&head.replace("{{TITLE}}", &title));
    page.push_str(&json);
    page.push_str(tail);
    page
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid",
        Verdict::Invalid => "INVALID",
        Verdict::Unknown => "unknown",
    }
}

/// Each check's verdict and its counts in a line, as the terminal summary gives them.
fn checks(report: &FileReport) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(lin) = &report.linearizable {
        let invalid = lin
            .keys
            .values()
            .filter(|r| r.valid == Verdict::Invalid)
            .count();
        let unknown = lin
            .keys
            .values()
            .filter(|r| r.valid == Verdict::Unknown)
            .count();
        let mut line = format!("{invalid} of {} keys invalid", lin.keys.len());
        if unknown > 0 {
            line.push_str(&format!(", {unknown} unknown"));
        }
        out.push(json!({"name": "linearizable", "valid": lin.valid, "line": line}));
    }
    for (check, r) in &report.quorum {
        match r {
            CheckResult::Skipped(why) => {
                out.push(json!({"name": check.name(), "valid": null, "line": why}))
            }
            CheckResult::Done { valid, json } => {
                let line = crate::quorum::line(check.name(), json).unwrap_or_default();
                out.push(json!({"name": check.name(), "valid": valid, "line": line}))
            }
        }
    }
    out
}

/// The JSON the page's script draws.
fn data(report: &FileReport, run: &RunInfo) -> Value {
    let h = &report.history;
    let axis = match super::time_origin(h) {
        Some(t0) => Axis::Time { t0 },
        None => Axis::Line,
    };
    let x_event = |e: &crate::history::Event| match axis {
        Axis::Time { t0 } => (e.time.unwrap_or(t0) - t0) as f64 / 1e6,
        Axis::Line => e.index.unwrap_or(0) as f64,
    };
    let x_end = h
        .ops
        .iter()
        .map(|o| axis.complete(o).unwrap_or_else(|| axis.call(o)))
        .chain(h.other.iter().map(x_event))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let by_id: HashMap<u64, &Op> = h.ops.iter().map(|o| (o.id, o)).collect();

    // Anomalies in time order of the op each shows at; a linearizability counterexample names
    // only its op (its prefix is numbered on the bars instead).
    let mut anomalies: Vec<(f64, Value)> = report
        .anomalies
        .iter()
        .map(|a| {
            let x = by_id.get(&a.at).map_or(0.0, |o| axis.call(o));
            let lin = a.check == Check::Linearizable;
            let ops = if lin {
                vec![a.at]
            } else {
                a.example.ops.clone()
            };
            let mut v = json!({
                "check": a.check.name(), "key": a.example.key, "at": a.at, "ops": ops,
                "sentence": a.example.sentence, "x": x,
            });
            if lin {
                v["prefix"] = json!(a.example.ops[..a.example.ops.len().saturating_sub(1)]);
            }
            (x, v)
        })
        .collect();
    // Replicas that still differ after the quiet period: one anomaly at the observation, on
    // the first differing key (no op shows it).
    if let Some(CheckResult::Done {
        valid: Verdict::Invalid,
        json: conv,
    }) = report.quorum.get(&Check::Convergence)
    {
        let line = crate::quorum::convergence::line(conv);
        let at = h
            .other
            .iter()
            .rev()
            .find(|e| e.process == crate::history::Process::Harness && e.f == "convergence");
        let key = conv["keys"][0].as_str().unwrap_or_default();
        let x = at.map_or(x_end, x_event);
        anomalies.push((
            x,
            json!({"check": "convergence", "key": key, "at": null, "ops": [],
                   "sentence": format!("after the quiet period, {line}"), "x": x}),
        ));
    }
    anomalies.sort_by(|a, b| a.0.total_cmp(&b.0));
    let anomalies_total = anomalies.len();
    let marked_keys: Vec<String> = anomalies
        .iter()
        .filter_map(|a| a.1["key"].as_str().map(str::to_string))
        .collect();
    let failing: BTreeSet<&str> = report
        .anomalies
        .iter()
        .map(|a| a.example.key.as_str())
        .chain(marked_keys.iter().map(String::as_str))
        .chain(report.linearizable.iter().flat_map(|l| {
            l.keys
                .iter()
                .filter(|(_, r)| r.valid != Verdict::Valid)
                .map(|(k, _)| k.as_str())
        }))
        .collect();
    let first_anomaly: HashMap<String, u64> = {
        let mut m = HashMap::new();
        for (_, a) in &anomalies {
            if let (Some(k), Some(at)) = (a["key"].as_str(), a["at"].as_u64()) {
                m.entry(k.to_string()).or_insert(at);
            }
        }
        m
    };
    let marks: Vec<Value> = if anomalies.len() <= MAX_MARKS {
        anomalies.into_iter().map(|a| a.1).collect()
    } else {
        // Evenly over time, always keeping the first.
        let step = anomalies.len() as f64 / MAX_MARKS as f64;
        (0..MAX_MARKS)
            .map(|i| anomalies[(i as f64 * step) as usize].1.clone())
            .collect()
    };

    // Keys: failing first (natural order), then the valid sample.
    let by_key = h.by_key();
    let mut failing_keys: Vec<&str> = by_key
        .keys()
        .copied()
        .filter(|k| failing.contains(k))
        .collect();
    failing_keys.sort_by(|a, b| natural_cmp(a, b));
    let mut valid_keys: Vec<&str> = by_key
        .keys()
        .copied()
        .filter(|k| !failing.contains(k))
        .collect();
    valid_keys.sort_by(|a, b| natural_cmp(a, b));

    let mut keys = Vec::new();
    let op_json = |o: &Op| -> Value {
        json!([
            o.id,
            o.process,
            o.f,
            o.input,
            o.output,
            outcome_name(o.outcome),
            axis.call(o),
            axis.complete(o),
            o.node,
            o.version,
            o.error
        ])
    };
    let mut budget = MAX_FAILING_OPS;
    for key in &failing_keys {
        let ops = &by_key[key];
        let (lo, hi) = if ops.len() <= budget {
            (0, ops.len())
        } else {
            window(ops, first_anomaly.get(*key).copied(), MAX_OPS_PER_KEY)
        };
        budget = budget.saturating_sub(hi - lo);
        keys.push(json!({
            "key": key, "failing": true, "ops": ops.len(), "first_drawn": lo, "drawn": hi - lo,
            "list": ops[lo..hi].iter().map(|o| op_json(o)).collect::<Vec<_>>(),
        }));
    }
    // The sample: every k-th valid key, k chosen so the sample fits the budget.
    let valid_ops: usize = valid_keys
        .iter()
        .map(|k| by_key[k].len().min(MAX_OPS_PER_KEY))
        .sum();
    let stride = valid_ops.div_ceil(MAX_VALID_OPS).max(1);
    let mut valid_drawn = 0;
    for key in valid_keys.iter().step_by(stride) {
        let ops = &by_key[key];
        let (lo, hi) = window(ops, None, MAX_OPS_PER_KEY);
        valid_drawn += 1;
        keys.push(json!({
            "key": key, "failing": false, "ops": ops.len(), "first_drawn": lo, "drawn": hi - lo,
            "list": ops[lo..hi].iter().map(|o| op_json(o)).collect::<Vec<_>>(),
        }));
    }

    // The overview strip: ops completed per bin, by outcome (ok, fail, info).
    let bin = x_end / OVERVIEW_BINS as f64;
    let mut bins = vec![[0u32; 3]; OVERVIEW_BINS];
    for o in &h.ops {
        let x = axis.complete(o).unwrap_or_else(|| axis.call(o));
        let b = ((x / bin) as usize).min(OVERVIEW_BINS - 1);
        bins[b][match o.outcome {
            Outcome::Ok => 0,
            Outcome::Fail | Outcome::Mismatch => 1,
            Outcome::Info => 2,
        }] += 1;
    }

    let faults: Vec<Value> = {
        let end_at = match axis {
            Axis::Time { t0 } => (x_end * 1e6) as i64 + t0,
            Axis::Line => x_end as i64,
        };
        let at = |e: &crate::history::Event| match axis {
            Axis::Time { .. } => e.time.unwrap_or(0),
            Axis::Line => e.index.unwrap_or(0) as i64,
        };
        windows_by(&h.other, at, end_at)
            .into_iter()
            .map(|w| {
                let x = |t: i64| match axis {
                    Axis::Time { t0 } => (t - t0) as f64 / 1e6,
                    Axis::Line => t as f64,
                };
                json!({"f": w.f, "s": x(w.start), "e": x(w.end), "value": w.value, "stop": w.stop})
            })
            .collect()
    };

    json!({
        "run": {"name": run.name, "configuration": run.configuration, "seed": run.seed},
        "file": report.file,
        "valid": report.valid,
        "model": report.model.to_string(),
        "format": report.format.name(),
        "ops": h.ops.len(),
        "axis": if matches!(axis, Axis::Time { .. }) { "time" } else { "line" },
        "end": x_end,
        "checks": checks(report),
        "faults": faults,
        "marks": h.other.iter().filter(|e| !e.f.ends_with("start") && !e.f.ends_with("stop")).map(|e| json!({
            "x": x_event(e), "who": e.process.to_string(), "f": e.f, "value": e.value,
        })).collect::<Vec<_>>(),
        "overview": {"bin": bin, "counts": bins},
        "anomalies": marks,
        "anomalies_total": anomalies_total,
        "keys": keys,
        "keys_total": by_key.len(),
        "keys_failing": failing_keys.len(),
        "valid_keys_total": valid_keys.len(),
        "valid_keys_drawn": valid_drawn,
        "limits": {"per_key": MAX_OPS_PER_KEY, "failing_ops": MAX_FAILING_OPS,
                    "valid_ops": MAX_VALID_OPS, "marks": MAX_MARKS},
        "final_reads_from": FINAL_READS_FROM,
    })
}

/// The ops `[lo, hi)` of a key to draw, at most `room`: around the op `at` when given (mostly
/// before it, where what it contradicts is), else from the start.
fn window(ops: &[&Op], at: Option<u64>, room: usize) -> (usize, usize) {
    if ops.len() <= room {
        return (0, ops.len());
    }
    let centre = at
        .and_then(|id| ops.iter().position(|o| o.id == id))
        .unwrap_or(0);
    let lo = centre.saturating_sub(room * 3 / 4);
    let hi = (lo + room).min(ops.len());
    (hi - room.min(hi), hi)
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Mismatch => "mismatch",
        Outcome::Info => "info",
    }
}

/// The page (`timeline.html` beside this file): CSS, a header, the overview strip, the SVG
/// area, the anomaly list, a tooltip, and the script that draws the data put in its `{{DATA}}`
/// slot; `{{TITLE}}` is the page title.
const TEMPLATE: &str = include_str!("timeline.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_the_op_and_stays_in_bounds() {
        let ops: Vec<Op> = (0..10)
            .map(|i| Op {
                id: i,
                process: 0,
                f: "read".into(),
                key: String::new(),
                input: Value::Null,
                output: Value::Null,
                outcome: Outcome::Ok,
                call: i as usize,
                complete: Some(i as usize),
                call_time: None,
                complete_time: None,
                node: None,
                version: None,
                error: None,
            })
            .collect();
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(window(&refs, None, 20), (0, 10));
        assert_eq!(window(&refs, None, 4), (0, 4));
        let (lo, hi) = window(&refs, Some(9), 4);
        assert_eq!((lo, hi), (6, 10));
        let (lo, hi) = window(&refs, Some(5), 4);
        assert!(lo <= 5 && 5 < hi && hi - lo == 4);
        let (lo, hi) = window(&refs, Some(3), 0);
        assert_eq!(lo, hi);
    }
}
