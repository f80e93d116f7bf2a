//! `compare.html`: the table, the staleness plot and the expectations on one self-contained
//! page (no scripts, no fetched assets), linking to each run's folder and timeline.

use super::row::Row;
use super::table::{self, Meta, HEADERS};
use quorate_checker::report::escape as esc;

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin-bottom: 4px; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr.broken td { background: #fde8e8; }
td.held { color: #1a7f37; } td.broken { color: #b42318; font-weight: bold; }
.note { color: #555; font-size: 12px; }
.warn { background: #fff4ce; padding: 6px 10px; border: 1px solid #e6c200; }
";

/// The whole page.
pub fn render(meta: &Meta, rows: &[Row]) -> String {
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>quorate compare {}</title><style>{STYLE}</style></head><body>\n",
        esc(&meta.stamp)
    );
    s.push_str(&format!(
        "<h1>Comparison {}</h1>\n<p><code>{}</code> — seeds {}</p>\n",
        esc(&meta.stamp),
        esc(&meta.command),
        meta.seeds
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(n) = meta.test_count {
        s.push_str(&format!(
            "<p>Hunt (<code>--test-count {n}</code>): each configuration ran seeds 1 to {n} one after another and stopped at its first invalid run.</p>\n"
        ));
    }
    if let Some((done, total)) = meta.interrupted {
        s.push_str(&format!(
            "<p class=\"warn\">Interrupted: {done} of {total} runs finished; the table covers those.</p>\n"
        ));
    }
    s.push_str("<table id=\"compare\"><thead><tr>");
    for h in HEADERS {
        s.push_str(&format!("<th>{}</th>", esc(h)));
    }
    s.push_str("</tr></thead><tbody>\n");
    for r in rows {
        let broken = r.expect.iter().any(|e| !e.held);
        s.push_str(&format!(
            "<tr class=\"config{}\" data-name=\"{}\">",
            if broken { " broken" } else { "" },
            esc(&r.name)
        ));
        let cells = table::cells(r);
        for (i, c) in cells.iter().enumerate() {
            match i {
                0 => {
                    s.push_str(&format!("<td><b>{}</b>", esc(c)));
                    if let Some(n) = &r.note {
                        s.push_str(&format!("<div class=\"note\">{}</div>", esc(n)));
                    }
                    s.push_str("</td>");
                }
                // Verdicts link to each seed's timeline.
                1 => {
                    let links: Vec<String> = r
                        .runs
                        .iter()
                        .zip(c.split(", "))
                        .map(|(run, v)| {
                            format!(
                                "<a href=\"{}/timeline.html\" title=\"seed {}\">{}</a>",
                                esc(&run.dir),
                                run.seed,
                                esc(v)
                            )
                        })
                        .collect();
                    s.push_str(&format!("<td>{}</td>", links.join(", ")));
                }
                i if i == cells.len() - 1 && !r.expect.is_empty() => {
                    s.push_str(&format!(
                        "<td class=\"{}\">{}</td>",
                        if broken { "broken" } else { "held" },
                        esc(c)
                    ));
                }
                _ => s.push_str(&format!("<td>{}</td>", esc(c))),
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    s.push_str(
        "<p class=\"note\">Pooled over seeds. stale reads: stale / all reads; k-staleness: versions \
         behind, over the stale reads; 99.9% consistent after: time since the latest write after \
         which at least 99.9% of reads saw it; ok %: of client ops before the final reads (in \
         faults: of those invoked while a fault was active); latency: invoke to ok; ops/s: fault \
         phase, mean over seeds.</p>\n",
    );
    s.push_str("<h2>Staleness</h2>\n");
    s.push_str(&quorate_checker::report::plots::staleness_svg(&curves(
        rows,
    )));
    s.push_str("\n<h2>Configurations</h2>\n<ul>\n");
    for r in rows {
        s.push_str(&format!(
            "<li><b>{}</b>: <code>quorate run {}</code>",
            esc(&r.name),
            esc(&r.args)
        ));
        for e in &r.expect {
            s.push_str(&format!(
                "<br><span class=\"{}\">{} {}</span>: {}",
                if e.held { "held" } else { "broken" },
                esc(&e.what),
                if e.held { "held" } else { "BROKEN" },
                esc(&e.seen)
            ));
        }
        s.push_str("</li>\n");
    }
    s.push_str("</ul>\n</body></html>\n");
    s
}

/// Each row's pooled `p_consistent` as a plot curve.
pub fn curves(rows: &[Row]) -> Vec<(String, Vec<(f64, f64)>)> {
    rows.iter()
        .map(|r| {
            (
                r.name.clone(),
                r.p_consistent
                    .iter()
                    .map(|(ms, p)| (*ms as f64, *p))
                    .collect(),
            )
        })
        .collect()
}
