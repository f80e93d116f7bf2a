//! `timeline.html`: one checked history drawn as ops over time, in one self-contained file.
//!
//! Each op is a bar on its process's row, from invoke to completion (to the end of the
//! history for an `info` op that never completed), coloured by outcome. The x axis is time
//! when every event has one, else line order. Nemesis faults are shaded windows (a
//! `<fault>-start` to its `-stop`), harness observations thin marks. For an invalid key the
//! counterexample is drawn: the linearization of the prefix numbered in order, the op that
//! cannot be placed in red, the sentence above. A selector switches keys (invalid keys first).
//!
//! Size is bounded so a million-op history still gives a page a browser opens: at most
//! [`MAX_OPS_PER_KEY`] ops per key (for an invalid key, the ones around the op that cannot be
//! placed) and [`MAX_OPS_TOTAL`] in all; the page says what it left out.
//!
//! The page itself (HTML, CSS and the script) is `timeline.html` beside this file, compiled in
//! with `include_str!`; this file computes the data. No external assets: the data is embedded
//! as JSON (with `<` escaped, so no value can close the script), and the script draws it with
//! SVG, setting text with `textContent` only.

use crate::check::FileReport;
use crate::history::{Event, Op, Outcome};
use crate::linear::KeyResult;
use crate::verdict::Verdict;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Most ops drawn for one key.
pub const MAX_OPS_PER_KEY: usize = 1000;
/// Most ops drawn in all; keys past the budget are listed with their verdict only.
pub const MAX_OPS_TOTAL: usize = 50_000;

/// Where events sit on the x axis.
#[derive(Clone, Copy, PartialEq)]
enum Axis {
    /// Milliseconds since the first event.
    Time { t0: i64 },
    /// Line positions (0-based).
    Line,
}

/// Render the report of a checked file as a complete HTML page.
pub fn render(report: &FileReport) -> String {
    let data = data(report);
    // `<` only occurs inside JSON strings, where \u003c means the same; escaping it means no
    // value (a key named "</script>") can end the script element early.
    let json = data.to_string().replace('<', "\\u003c");
    let title = escape_html(&format!("quorate timeline: {}", report.file));
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

/// The page titled with its run (the rework that uses `run` follows).
pub fn render_run(report: &FileReport, _run: &super::RunInfo) -> String {
    render(report)
}

/// The JSON the page's script draws.
fn data(report: &FileReport) -> Value {
    let h = &report.history;
    let all_timed = h
        .ops
        .iter()
        .all(|o| o.call_time.is_some() && (o.complete.is_none() || o.complete_time.is_some()))
        && h.other.iter().all(|e| e.time.is_some());
    let axis = if all_timed && !h.ops.is_empty() {
        let t0 = h
            .ops
            .iter()
            .filter_map(|o| o.call_time)
            .chain(h.other.iter().filter_map(|e| e.time))
            .min()
            .unwrap_or(0);
        Axis::Time { t0 }
    } else {
        Axis::Line
    };
    let x_of_time = |t: i64, t0: i64| (t.saturating_sub(t0)) as f64 / 1e6;
    let x_call = |o: &Op| match axis {
        Axis::Time { t0 } => x_of_time(o.call_time.unwrap_or(t0), t0),
        Axis::Line => o.call as f64,
    };
    let x_complete = |o: &Op| match axis {
        Axis::Time { t0 } => o.complete_time.map(|t| x_of_time(t, t0)),
        Axis::Line => o.complete.map(|c| c as f64),
    };
    let x_event = |e: &Event| match axis {
        Axis::Time { t0 } => x_of_time(e.time.unwrap_or(t0), t0),
        Axis::Line => e.index.unwrap_or(0) as f64,
    };
    let x_end = h
        .ops
        .iter()
        .map(|o| x_complete(o).unwrap_or_else(|| x_call(o)))
        .chain(h.other.iter().map(x_event))
        .fold(0.0f64, f64::max)
        .max(1.0);

    let by_key = h.by_key();
    let results: BTreeMap<&str, &KeyResult> = report
        .linearizable
        .as_ref()
        .map(|l| l.keys.iter().map(|(k, r)| (k.as_str(), r)).collect())
        .unwrap_or_default();
    // Invalid keys first, then unknown, then valid; by name within each.
    let mut order: Vec<&str> = by_key.keys().copied().collect();
    let rank = |k: &str| match results.get(k).map(|r| r.valid) {
        Some(Verdict::Invalid) => 0,
        Some(Verdict::Unknown) => 1,
        _ => 2,
    };
    order.sort_by_key(|k| rank(k));

    let mut budget = MAX_OPS_TOTAL;
    let mut keys = Vec::with_capacity(order.len());
    for key in order {
        let ops = &by_key[key];
        let result = results.get(key).copied();
        let cx = result.and_then(|r| r.counterexample.as_ref());
        let room = budget.min(MAX_OPS_PER_KEY);
        let (lo, hi) = window(ops, cx.map(|c| c.op), room);
        budget -= hi - lo;
        let prefix_pos: HashMap<u64, usize> = cx
            .map(|c| {
                c.prefix
                    .iter()
                    .enumerate()
                    .map(|(i, &id)| (id, i + 1))
                    .collect()
            })
            .unwrap_or_default();
        let drawn: Vec<Value> = ops[lo..hi]
            .iter()
            .map(|o| {
                json!({
                    "id": o.id,
                    "p": o.process,
                    "f": o.f,
                    "in": o.input,
                    "out": o.output,
                    "outcome": outcome_name(o.outcome),
                    "s": x_call(o),
                    "e": x_complete(o),
                    "err": o.error,
                    "node": o.node,
                    "lin": prefix_pos.get(&o.id),
                    "bad": cx.is_some_and(|c| c.op == o.id),
                })
            })
            .collect();
        keys.push(json!({
            "key": key,
            "valid": result.map(|r| r.valid),
            "ops": ops.len(),
            "drawn": drawn.len(),
            "first_drawn": lo,
            "counterexample": cx,
            "reason": result.and_then(|r| r.reason.as_ref()),
            "list": drawn,
        }));
    }

    json!({
        "file": report.file,
        "valid": report.valid,
        "model": report.model.to_string(),
        "format": report.format.name(),
        "ops": h.ops.len(),
        "axis": if matches!(axis, Axis::Time { .. }) { "time" } else { "line" },
        "end": x_end,
        "max_per_key": MAX_OPS_PER_KEY,
        "max_total": MAX_OPS_TOTAL,
        "faults": faults(&h.other, x_event, x_end),
        "marks": h.other.iter().filter(|e| !e.f.ends_with("start") && !e.f.ends_with("stop")).map(|e| json!({
            "x": x_event(e), "who": e.process.to_string(), "f": e.f, "value": e.value,
        })).collect::<Vec<_>>(),
        "keys": keys,
    })
}

/// The ops `[lo, hi)` of a key to draw, at most `room`: around the op that cannot be placed
/// when there is one (mostly before it, where the prefix is), else from the start.
fn window(ops: &[&Op], bad: Option<u64>, room: usize) -> (usize, usize) {
    if ops.len() <= room {
        return (0, ops.len());
    }
    let centre = bad
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

/// Fault windows: each `<fault>-start` (or Jepsen's `start`) to the next matching `-stop`
/// (`stop`), or to the end of the history when it never stops.
fn faults(other: &[Event], x: impl Fn(&Event) -> f64, end: f64) -> Vec<Value> {
    let mut open: BTreeMap<&str, Vec<(f64, &Event)>> = BTreeMap::new();
    let mut out = Vec::new();
    for e in other {
        if let Some(kind) = e.f.strip_suffix("start") {
            open.entry(kind.trim_end_matches('-'))
                .or_default()
                .push((x(e), e));
        } else if let Some(kind) = e.f.strip_suffix("stop") {
            if let Some((s, start)) = open.get_mut(kind.trim_end_matches('-')).and_then(Vec::pop) {
                out.push(
                    json!({"f": start.f, "s": s, "e": x(e), "value": start.value, "stop": e.value}),
                );
            }
        }
    }
    for (_, starts) in open {
        for (s, start) in starts {
            out.push(json!({"f": start.f, "s": s, "e": end, "value": start.value, "stop": null}));
        }
    }
    out
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page (`timeline.html` beside this file): CSS, a header, the SVG area, a tooltip, and the
/// script that draws the data put in its `{{DATA}}` slot; `{{TITLE}}` is the page title.
const TEMPLATE: &str = include_str!("timeline.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_the_bad_op_and_stays_in_bounds() {
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

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape_html("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
