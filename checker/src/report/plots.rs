//! The SVG plots of a checked history: `latency.svg` (each op's latency over time) and
//! `rate.svg` (throughput by op and outcome over time), drawn with plotters, and
//! `staleness.svg` (P(consistent read) against the time since a write completed), drawn by
//! [`staleness_svg`] — which draws any number of staleness curves on one plot, and is what
//! `quorate compare` uses for the curves of all configurations.
//!
//! Times are the history's own, drawn in seconds from [`super::time_origin`]. A history
//! without times (line order only) has no latencies or rates: those plots then say so instead
//! of inventing an axis. Every plot is a complete SVG document as a `String`; drawing into a
//! string cannot fail for want of a file, so an error from plotters (a bug) becomes a plot that
//! names it rather than a panic.

use super::{fault_windows, time_origin, FaultWindow};
use crate::check::{Check, FileReport};
use crate::history::{Op, Outcome};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// Plot size in pixels.
const SIZE: (u32, u32) = (900, 420);
/// Most points drawn per op type in `latency.svg`; past it every k-th op is drawn (the caption
/// says so).
pub const MAX_LATENCY_POINTS: usize = 8_000;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Series colours, picked to stay apart for the few series a plot has.
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
const FAULT: RGBColor = RGBColor(149, 117, 205);
/// The minor grid: there, but quieter than the data.
const LIGHT: RGBColor = RGBColor(243, 243, 243);

/// Every plot's frame: its caption, margins and label areas (`y_area` pixels for the y labels).
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    y_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(y_area);
    b
}

/// Every plot's legend, boxed, at `at`.
fn legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    at: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    Ok(())
}

/// Draw with `f` into an SVG string; an error becomes an SVG that says what went wrong.
fn svg(f: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> String {
    let mut buf = String::new();
    let outcome = {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.into())
            .and_then(|()| f(&root))
            .and_then(|()| root.present().map_err(|e| e.into()))
    };
    match outcome {
        Ok(()) => buf,
        Err(e) => message_svg(&format!("this plot could not be drawn: {e}")),
    }
}

/// A plot-sized SVG holding one line of text.
fn message_svg(text: &str) -> String {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (SIZE.0, 60)).into_drawing_area();
        // Drawing text into a string: nothing here can fail but a plotters bug, and then the
        // empty SVG is still a valid file.
        let _ = root.fill(&WHITE);
        let _ = root.draw(&Text::new(
            text.to_string(),
            (10, 25),
            ("sans-serif", 15).into_font(),
        ));
        let _ = root.present();
    }
    buf
}

pub use super::staleness_plot::staleness_svg;

fn round_label(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}

/// The `p_consistent` points of a `stale-reads` check's JSON object (`[[ms, p], …]`); empty
/// when the check was skipped or has none.
pub fn p_consistent_points(stale_reads: &Value) -> Vec<(f64, f64)> {
    stale_reads
        .get("p_consistent")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// `staleness.svg` of one checked history: its `stale-reads` curve labelled `label` (the run's
/// name), or a note saying why there is none.
pub fn staleness_of(report: &FileReport, label: &str) -> String {
    match report.quorum.get(&Check::StaleReads) {
        Some(r) => {
            let pts = p_consistent_points(&r.to_json());
            if pts.is_empty() {
                message_svg("no P(consistent read) samples: the history has no times, or no read began after a write completed")
            } else {
                staleness_svg(&[(label.to_string(), pts)])
            }
        }
        None => message_svg("the stale-reads check did not run on this history"),
    }
}

/// The history's ops with times, drawn in seconds from the time origin.
struct Timed<'a> {
    t0: i64,
    end_s: f64,
    ops: Vec<&'a Op>,
    faults: Vec<FaultWindow>,
}

fn timed(report: &FileReport) -> Option<Timed<'_>> {
    let t0 = time_origin(&report.history)?;
    let faults = fault_windows(&report.history);
    let end = report
        .history
        .ops
        .iter()
        .filter_map(|o| o.complete_time.or(o.call_time))
        .chain(report.history.other.iter().filter_map(|e| e.time))
        .max()
        .unwrap_or(t0);
    Some(Timed {
        t0,
        end_s: secs(end - t0).max(1e-3),
        ops: report.history.ops.iter().collect(),
        faults,
    })
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// Shade each fault window across the plot, labelled with its fault.
fn shade<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    t: &Timed<'_>,
    y: (f64, f64),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut first = true;
    for w in &t.faults {
        let (s, e) = (secs(w.start - t.t0), secs(w.end - t.t0));
        let drawn = chart.draw_series(std::iter::once(Rectangle::new(
            [(s, y.0), (e.max(s + t.end_s / 500.0), y.1)],
            FAULT.mix(0.15).filled(),
        )))?;
        if first {
            drawn.label("fault window").legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], FAULT.mix(0.3).filled())
            });
            first = false;
        }
    }
    Ok(())
}

/// `latency.svg`: each completed op's latency (ms, log scale) at its invoke time, one colour
/// per op type, fault windows shaded.
pub fn latency_svg(report: &FileReport) -> String {
    let Some(t) = timed(report) else {
        return message_svg("no latencies: this history has no times (line order only)");
    };
    let mut by_f: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for o in &t.ops {
        if let (Some(c), Some(i)) = (o.complete_time, o.call_time) {
            let ms = ((c - i) as f64 / 1e6).max(0.001);
            by_f.entry(o.f.as_str())
                .or_default()
                .push((secs(i - t.t0), ms));
        }
    }
    let total: usize = by_f.values().map(Vec::len).sum();
    let stride = total
        .div_ceil(MAX_LATENCY_POINTS * by_f.len().max(1))
        .max(1);
    let max_ms = by_f.values().flatten().map(|p| p.1).fold(1.0f64, f64::max);
    let min_ms = by_f
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(max_ms, f64::min)
        .min(0.1);
    let caption = if stride > 1 {
        format!("latency of each op (every {stride}th of {total} drawn)")
    } else {
        format!("latency of each op ({total} completed ops)")
    };
    svg(|root| {
        let mut chart = frame(root, &caption, 64)
            .build_cartesian_2d(0f64..t.end_s, (min_ms..max_ms * 1.5).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("latency (ms, log scale)")
            .y_label_formatter(&|y| round_label(*y))
            .light_line_style(LIGHT)
            .draw()?;
        shade(&mut chart, &t, (min_ms, max_ms * 1.5))?;
        for (i, (f, pts)) in by_f.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(
                    pts.iter()
                        .step_by(stride)
                        .map(|&p| Circle::new(p, 1, colour.mix(0.6).filled())),
                )?
                .label(*f)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// A round bin width (s) giving about 100 bins over `end` seconds.
fn bin_width(end: f64) -> f64 {
    let raw = (end / 100.0).max(1e-3);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&w| w >= raw)
        .unwrap_or(10.0 * p)
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Mismatch => "mismatch",
        Outcome::Info => "info",
    }
}

/// `rate.svg`: ops per second by op type and outcome, in round time bins (by completion time;
/// an op that never completed counts at its invoke), fault windows shaded.
pub fn rate_svg(report: &FileReport) -> String {
    let Some(t) = timed(report) else {
        return message_svg("no rates: this history has no times (line order only)");
    };
    let w = bin_width(t.end_s);
    let bins = (t.end_s / w).ceil().max(1.0) as usize;
    let mut series: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for o in &t.ops {
        let Some(at) = o.complete_time.or(o.call_time) else {
            continue;
        };
        let b = ((secs(at - t.t0) / w) as usize).min(bins - 1);
        series
            .entry(format!("{} {}", o.f, outcome_name(o.outcome)))
            .or_insert_with(|| vec![0; bins])[b] += 1;
    }
    let max_rate = series
        .values()
        .flatten()
        .map(|&n| n as f64 / w)
        .fold(1.0f64, f64::max);
    svg(|root| {
        let caption = format!("throughput by op and outcome ({} s bins)", round_label(w));
        let mut chart =
            frame(root, &caption, 64).build_cartesian_2d(0f64..t.end_s, 0f64..max_rate * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("ops/s")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(LIGHT)
            .draw()?;
        shade(&mut chart, &t, (0.0, max_rate * 1.1))?;
        for (i, (name, counts)) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts = counts
                .iter()
                .enumerate()
                .map(|(b, &n)| ((b as f64 + 0.5) * w, n as f64 / w));
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_round() {
        assert_eq!(bin_width(15.0), 0.2);
        assert_eq!(bin_width(100.0), 1.0);
        assert_eq!(bin_width(0.05), 0.001);
    }
}
