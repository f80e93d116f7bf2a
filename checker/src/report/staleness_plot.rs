//! P(consistent read) curves on one plot, against the time since the latest write completed,
//! as a self-contained SVG: one run's `staleness.svg`, and every configuration's curve in
//! `quorate compare`'s plot.
//!
//! Drawn by hand (a few lines and labels), so each curve is one `<polyline class="curve">`
//! with its label as its title, which pages and tests can find. The x axis is
//! the `p_consistent` buckets' lower edges on a log(1 + ms) scale, since the buckets themselves
//! grow roughly tenfold per three steps; the y axis starts at the lowest share seen (rounded
//! down to a tenth), so 0.96 and 1.0 do not merge into one line at the top.

/// Colours for up to ten curves, then repeated (Tableau 10).
const COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

const W: f64 = 760.0;
const H: f64 = 360.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 44.0;

fn fx(ms: f64, max: f64) -> f64 {
    LEFT + (1.0 + ms).log10() / (1.0 + max).log10().max(1e-9) * (W - LEFT - RIGHT)
}

fn fy(p: f64, floor: f64) -> f64 {
    TOP + (1.0 - p) / (1.0 - floor) * (H - TOP - BOTTOM)
}

/// One curve per `(label, [(ms, p)])`; an empty curve is listed in the legend as "no reads".
pub fn staleness_svg(curves: &[(String, Vec<(f64, f64)>)]) -> String {
    let max_x = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|(x, _)| *x))
        .fold(10.0f64, f64::max);
    let min_p = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|(_, p)| *p))
        .fold(1.0f64, f64::min);
    let floor = ((min_p * 10.0).floor() / 10.0).min(0.9);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="12" role="img" aria-label="P(consistent read) by time since the latest write">"#
    );
    s.push_str(&format!(
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="#fafafa" stroke="#999"/>"##,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    ));
    // y grid: tenths from the floor to 1, plus 0.999 (the table's target) dashed.
    let mut p = floor;
    while p <= 1.0 + 1e-9 {
        let y = fy(p, floor);
        s.push_str(&format!(
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{p:.1}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        ));
        p += 0.1;
    }
    let y999 = fy(0.999, floor);
    s.push_str(&format!(
        r##"<line x1="{LEFT}" x2="{}" y1="{y999:.1}" y2="{y999:.1}" stroke="#888" stroke-dasharray="4 3"/><text x="{}" y="{:.1}" fill="#666">0.999</text>"##,
        W - RIGHT,
        W - RIGHT + 4.0,
        y999 + 4.0
    ));
    // x ticks: 0, 1, 10, 100 ms … up to the largest bucket.
    let mut t = 0.0;
    while t <= max_x {
        let x = fx(t, max_x);
        let label = if t >= 1000.0 {
            format!("{} s", t / 1000.0)
        } else {
            format!("{t} ms")
        };
        s.push_str(&format!(
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 16.0
        ));
        t = if t == 0.0 { 1.0 } else { t * 10.0 };
    }
    s.push_str(&format!(
        r#"<text x="{}" y="{}" text-anchor="middle">time since the latest write completed (log scale)</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 6.0
    ));
    s.push_str(&format!(
        r#"<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">P(consistent read)</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0
    ));
    for (i, (label, c)) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = c
            .iter()
            .map(|(x, p)| format!("{:.1},{:.1}", fx(*x, max_x), fy(*p, floor)))
            .collect();
        if !pts.is_empty() {
            s.push_str(&format!(
                r#"<polyline class="curve" fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
                pts.join(" "),
                super::escape(label)
            ));
            for pt in &pts {
                let (x, y) = pt.split_once(',').unwrap_or(("0", "0"));
                s.push_str(&format!(
                    r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#
                ));
            }
        }
        let ly = TOP + 14.0 + i as f64 * 18.0;
        let lx = W - RIGHT + 40.0;
        let text = if c.is_empty() {
            format!("{} (no reads)", super::escape(label))
        } else {
            super::escape(label)
        };
        s.push_str(&format!(
            r#"<rect x="{lx}" y="{:.1}" width="14" height="4" fill="{colour}"/><text class="legend" x="{}" y="{:.1}">{text}</text>"#,
            ly - 4.0,
            lx + 18.0,
            ly + 1.0
        ));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_polyline_per_curve_with_data_and_a_legend_for_all() {
        let svg = staleness_svg(&[
            ("weak <1>".into(), vec![(0.0, 0.95), (5.0, 1.0)]),
            ("abd".into(), vec![(0.0, 1.0)]),
            ("empty".into(), vec![]),
        ]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("weak &lt;1&gt;"));
        assert!(svg.contains("empty (no reads)"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
