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
//! No external assets: the data is embedded as JSON (with `<` escaped, so no value can close
//! the script), and the script draws it with SVG, setting text with `textContent` only.

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

/// The page: CSS, a header, the SVG area, a tooltip, the data and the script that draws it.
const TEMPLATE: &str = r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:16px;margin:0 0 4px}
.meta{color:#555;margin-bottom:8px}
.verdict-true{color:#1a7f37}.verdict-false{color:#c62828}.verdict-unknown{color:#9a6700}
#controls{margin:8px 0}#controls label{margin-right:14px}
#explain{margin:6px 0;padding:6px 8px;background:#fff4f4;border-left:3px solid #c62828;display:none}
#note{color:#666;margin:4px 0}
#scroll{overflow-x:auto;border:1px solid #ddd}
svg text{font-size:11px}
.bar{stroke:#0003;stroke-width:1}
.ok{fill:#7cc47f}.fail{fill:#bdbdbd}.mismatch{fill:#f0a35e}.info{fill:#f2d64b;fill-opacity:.6}
.lin{stroke:#1565c0;stroke-width:2}.bad{fill:#e53935;stroke:#7f0000;stroke-width:3}
.fault{fill:#9575cd;fill-opacity:.13}.faultlabel{fill:#5e35b1}
.mark{stroke:#00897b;stroke-dasharray:2 2}
.grid{stroke:#eee}
#tip{position:fixed;pointer-events:none;background:#fff;border:1px solid #999;padding:6px 8px;
 box-shadow:0 2px 6px #0003;white-space:pre;font:12px ui-monospace,monospace;display:none;max-width:60em}
.legend span{display:inline-block;width:12px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
</style></head>
<body>
<h1 id="title"></h1>
<div class="meta" id="meta"></div>
<div id="controls">
 <label>key <select id="key"></select></label>
 <label>zoom <input id="zoom" type="range" min="1" max="40" value="1"></label>
 <span class="legend"><span class="ok"></span>ok<span class="mismatch"></span>cas mismatch
 <span class="fail"></span>fail<span class="info"></span>info (unknown)
 <span class="bad"></span>cannot be placed<span style="border:2px solid #1565c0;height:6px"></span>linearized prefix (numbered)
 <span class="fault"></span>fault</span>
</div>
<div id="explain"></div>
<div id="note"></div>
<div id="scroll"><svg id="svg" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div id="tip"></div>
<script type="application/json" id="data">{{DATA}}</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const $ = id => document.getElementById(id);
const vname = v => v === true ? "valid" : v === false ? "INVALID" : v === "unknown" ? "unknown" : "not checked";
const vcls = v => "verdict-" + String(v);
const unit = D.axis === "time" ? "ms" : "line";
const show = v => v === undefined || v === null ? "null" : JSON.stringify(v);

$("title").textContent = D.file;
const meta = $("meta");
const vs = document.createElement("b");
vs.textContent = vname(D.valid); vs.className = vcls(D.valid);
meta.append(vs, ` — ${D.ops} ops, ${D.keys.length} key(s), model ${D.model}, format ${D.format}; x axis: ` +
  (D.axis === "time" ? "time (ms since the first event)" : "line order (the history has no times)"));

const sel = $("key");
D.keys.forEach((k, i) => {
  const o = document.createElement("option");
  o.value = i;
  o.textContent = (k.key === "" ? "(the history)" : k.key) + " — " + vname(k.valid) + ` (${k.ops} ops)`;
  sel.append(o);
});
sel.onchange = draw; $("zoom").oninput = draw;

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [a, v] of Object.entries(attrs)) e.setAttribute(a, v);
  if (parent) parent.append(e);
  return e;
}

function tip(ev, lines) {
  const t = $("tip");
  t.textContent = lines.join("\n");
  t.style.display = "block";
  t.style.left = Math.min(ev.clientX + 12, innerWidth - t.offsetWidth - 8) + "px";
  t.style.top = (ev.clientY + 12) + "px";
}
function untip() { $("tip").style.display = "none"; }

function draw() {
  const k = D.keys[+sel.value];
  const svg = $("svg");
  svg.replaceChildren();
  const ex = $("explain");
  if (k.counterexample) {
    ex.style.display = "block";
    ex.textContent = `op ${k.counterexample.op} cannot be placed: ${k.counterexample.explanation}` +
      ` (linearized prefix: ${k.counterexample.prefix.length} ops, numbered on their bars)`;
  } else if (k.reason) {
    ex.style.display = "block"; ex.textContent = "unknown: " + k.reason;
  } else ex.style.display = "none";
  const notes = [];
  if (k.drawn < k.ops) notes.push(k.drawn === 0
    ? `This key's ${k.ops} ops are not drawn: the page draws at most ${D.max_total} ops in all.`
    : `Drawn: ops ${k.first_drawn + 1}–${k.first_drawn + k.drawn} of this key's ${k.ops} (at most ${D.max_per_key} per key` +
      (k.counterexample ? ", around the op that cannot be placed)." : ")."));
  $("note").textContent = notes.join(" ");
  if (k.list.length === 0) return;

  const procs = [...new Set(k.list.map(o => o.p))].sort((a, b) => a - b);
  const row = new Map(procs.map((p, i) => [p, i]));
  let lo = Infinity, hi = -Infinity;
  for (const o of k.list) { lo = Math.min(lo, o.s); hi = Math.max(hi, o.e === null ? D.end : o.e); }
  if (!(hi > lo)) hi = lo + 1;
  const pad = (hi - lo) * 0.02;
  lo = Math.max(0, lo - pad); hi += pad;
  const left = 70, top = 24, rh = 20;
  const width = Math.max(900, $("scroll").clientWidth - 4) * +$("zoom").value;
  const height = top + procs.length * rh + 24;
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  const X = x => left + (x - lo) / (hi - lo) * (width - left - 10);

  // Fault windows behind everything.
  for (const f of D.faults) {
    if (f.e < lo || f.s > hi) continue;
    const r = el("rect", {x: X(Math.max(f.s, lo)), y: 0, width: Math.max(2, X(Math.min(f.e, hi)) - X(Math.max(f.s, lo))),
      height, class: "fault"}, svg);
    r.onmousemove = ev => tip(ev, [`fault ${f.f}`, `from ${f.s.toFixed(3)} to ${f.e.toFixed(3)} ${unit}`,
      `value: ${show(f.value)}`]);
    r.onmouseleave = untip;
    el("text", {x: X(Math.max(f.s, lo)) + 2, y: 10, class: "faultlabel"}, svg).textContent = f.f;
  }
  for (const m of D.marks) {
    if (m.x < lo || m.x > hi) continue;
    const l = el("line", {x1: X(m.x), x2: X(m.x), y1: 0, y2: height, class: "mark"}, svg);
    l.onmousemove = ev => tip(ev, [`${m.who}: ${m.f}`, show(m.value)]);
    l.onmouseleave = untip;
  }
  // Axis ticks.
  for (let i = 0; i <= 10; i++) {
    const x = lo + (hi - lo) * i / 10;
    el("line", {x1: X(x), x2: X(x), y1: top - 4, y2: height - 20, class: "grid"}, svg);
    el("text", {x: X(x), y: height - 6, "text-anchor": "middle"}, svg).textContent =
      (D.axis === "time" ? x.toFixed(1) : Math.round(x)) + (i === 10 ? " " + unit : "");
  }
  procs.forEach((p, i) => {
    el("text", {x: 4, y: top + i * rh + 14}, svg).textContent = "process " + p;
  });
  for (const o of k.list) {
    const y = top + row.get(o.p) * rh + 3;
    const x1 = X(o.s), x2 = X(o.e === null ? hi : o.e);
    let cls = "bar " + o.outcome + (o.lin ? " lin" : "") + (o.bad ? " bad" : "");
    const r = el("rect", {x: x1, y, width: Math.max(3, x2 - x1), height: rh - 6, rx: 2, class: cls}, svg);
    const label = `${o.f} ${o.outcome === "ok" && o.f !== "write" ? show(o.in) + "→" + show(o.out) : show(o.in)}`;
    if (x2 - x1 > 40) el("text", {x: x1 + 3, y: y + rh - 10, "pointer-events": "none"}, svg).textContent =
      (o.lin ? "#" + o.lin + " " : "") + label;
    else if (o.lin) el("text", {x: x1, y: y - 1, "pointer-events": "none"}, svg).textContent = "#" + o.lin;
    r.onmousemove = ev => tip(ev, [
      `op ${o.id} · process ${o.p} · ${o.f}` + (o.bad ? " · CANNOT BE PLACED" : ""),
      `input:  ${show(o.in)}`,
      `output: ${o.outcome === "ok" ? show(o.out) : "—"}`,
      `outcome: ${o.outcome}` + (o.err ? ` (${o.err})` : ""),
      `from ${o.s.toFixed(3)} to ${o.e === null ? "the end (never completed)" : o.e.toFixed(3)} ${unit}`,
    ].concat(o.node ? [`node: ${o.node}`] : [], o.lin ? [`linearized ${o.lin} of ${k.counterexample.prefix.length}`] : []));
    r.onmouseleave = untip;
  }
}
draw();
</script>
</body></html>
"##;

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
