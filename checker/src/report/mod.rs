//! Reports of a checked history, for people: files that open in a browser with nothing else
//! installed. The harness writes them beside each run's `results.json`; `quorate check --out`
//! writes them for any history ([`write_all`]).
//!
//! - [`timeline`]: `timeline.html` — ops as bars per process over time, faults shaded, every
//!   anomaly of every check marked, opening on the first one.
//! - [`plots`]: `latency.svg`, `rate.svg`, `staleness.svg` (plotters), and the several-curve
//!   staleness plot `quorate compare` draws.
//!
//! This file holds what they share: the run's identity ([`RunInfo`], from `test.json` beside
//! the history) and fault windows.
pub mod plots;
pub mod staleness_plot;
pub mod timeline;

use crate::check::FileReport;
use crate::history::{Event, History};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The report files [`write_all`] writes, in order.
pub const FILES: [&str; 4] = ["timeline.html", "latency.svg", "rate.svg", "staleness.svg"];

/// Write every report of `report` into `dir` (which must exist); returns the paths written.
/// `run` titles the timeline (see [`RunInfo::beside`]).
pub fn write_all(report: &FileReport, run: &RunInfo, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let pages = [
        timeline::render_run(report, run),
        plots::latency_svg(report),
        plots::rate_svg(report),
        plots::staleness_of(report, &run.name),
    ];
    let mut out = Vec::new();
    for (name, text) in FILES.iter().zip(pages) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
        out.push(path);
    }
    Ok(out)
}

/// What titles a run's report: its name, configuration and seed, from the `test.json` the
/// harness writes beside `history.jsonl`; for any other history, the file's name only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInfo {
    pub name: String,
    /// "preset weak, nemesis partition,kill, 5 nodes" — empty when unknown.
    pub configuration: String,
    pub seed: Option<u64>,
}

impl RunInfo {
    /// The run of the history at `history`: `test.json` in the same folder when it is there
    /// and readable, else just the file's name. A `test.json` that is not the harness's (not
    /// JSON, no `name`) is ignored: the report is still written, titled by the file.
    pub fn beside(history: &Path) -> RunInfo {
        let file = history
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| history.display().to_string());
        let test = history
            .parent()
            .map(|d| d.join("test.json"))
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        match test {
            Some(t) if t.get("name").and_then(Value::as_str).is_some() => RunInfo::of_test(&t),
            _ => RunInfo {
                name: file,
                ..RunInfo::default()
            },
        }
    }

    /// From a `test.json` object (`name`, `seed`, `args.preset`, `args.nemesis`, `nodes`).
    pub fn of_test(t: &Value) -> RunInfo {
        let args = t.get("args").cloned().unwrap_or(Value::Null);
        let word = |v: Option<&Value>| -> Option<String> {
            match v? {
                Value::String(s) => Some(s.clone()),
                Value::Array(a) => Some(
                    a.iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                Value::Null => None,
                v => Some(v.to_string()),
            }
        };
        let mut parts = Vec::new();
        if let Some(p) = word(args.get("preset")) {
            parts.push(format!("preset {p}"));
        }
        if let Some(w) = word(args.get("workload")) {
            parts.push(format!("workload {w}"));
        }
        if let Some(n) = word(args.get("nemesis")) {
            parts.push(format!("nemesis {n}"));
        }
        let nodes = match t.get("nodes") {
            Some(Value::Array(a)) => Some(a.len().to_string()),
            other => word(other),
        };
        if let Some(n) = nodes {
            parts.push(format!("{n} nodes"));
        }
        RunInfo {
            name: t
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("run")
                .to_string(),
            configuration: parts.join(", "),
            seed: t.get("seed").and_then(Value::as_u64),
        }
    }
}

/// A fault window: a `<fault>-start` (or Jepsen's `start`) to the next matching `-stop`, or to
/// the end when it never stops. Times in the history's own units.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub f: String,
    pub start: i64,
    pub end: i64,
    pub value: Value,
    /// The stop event's value (`None`: never stopped).
    pub stop: Option<Value>,
}

/// The origin (ns) of the reports' time axes, when every event of the history has a time: 0
/// when the history's clock starts within its first minute (quorate's clock counts from the
/// start of the run, so the axis matches the times the checks' sentences give), else the
/// first event's time (a clock such as the Unix epoch).
pub fn time_origin(h: &History) -> Option<i64> {
    let all_timed = h
        .ops
        .iter()
        .all(|o| o.call_time.is_some() && (o.complete.is_none() || o.complete_time.is_some()))
        && h.other.iter().all(|e| e.time.is_some());
    if !all_timed || h.ops.is_empty() {
        return None;
    }
    let first = h
        .ops
        .iter()
        .filter_map(|o| o.call_time)
        .chain(h.other.iter().filter_map(|e| e.time))
        .min()?;
    Some(if (0..60_000_000_000).contains(&first) {
        0
    } else {
        first
    })
}

/// Fault windows by event time (ns); empty for a history without times.
pub fn fault_windows(h: &History) -> Vec<FaultWindow> {
    if time_origin(h).is_none() {
        return Vec::new();
    }
    let end = h
        .ops
        .iter()
        .filter_map(|o| o.complete_time.or(o.call_time))
        .chain(h.other.iter().filter_map(|e| e.time))
        .max()
        .unwrap_or(0);
    windows_by(&h.other, |e| e.time.unwrap_or(0), end)
}

/// Fault windows with times from `at`; `end` closes the ones never stopped.
pub fn windows_by(other: &[Event], at: impl Fn(&Event) -> i64, end: i64) -> Vec<FaultWindow> {
    let mut open: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    let mut out = Vec::new();
    for e in other {
        if let Some(kind) = e.f.strip_suffix("start") {
            open.entry(kind.trim_end_matches('-')).or_default().push(e);
        } else if let Some(kind) = e.f.strip_suffix("stop") {
            if let Some(start) = open.get_mut(kind.trim_end_matches('-')).and_then(Vec::pop) {
                out.push(FaultWindow {
                    f: start.f.clone(),
                    start: at(start),
                    end: at(e),
                    value: start.value.clone(),
                    stop: Some(e.value.clone()),
                });
            }
        }
    }
    for (_, starts) in open {
        for start in starts {
            out.push(FaultWindow {
                f: start.f.clone(),
                start: at(start),
                end,
                value: start.value.clone(),
                stop: None,
            });
        }
    }
    out.sort_by_key(|w| (w.start, w.end));
    out
}

/// Text made safe for HTML, SVG and XML: in an element's text and in a double-quoted attribute
/// (every page, plot and JUnit file quorate writes puts text only there). The one escape of
/// the project: the harness's pages and JUnit use it too.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        assert_eq!(
            super::escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
