//! The comparison table as text: the cells of each row (shared by `compare.md` and
//! `compare.html`), `compare.md` itself, and `compare.json`.
//!
//! Every cell shows a measured figure or says why there is none (`–` when nothing was
//! measured, `not reached` when reads never became 99.9% consistent within the buckets seen).

use super::row::Row;
use serde_json::{json, Value};

/// Column headers, in order.
pub const HEADERS: [&str; 12] = [
    "configuration",
    "verdict per seed",
    "linearizable",
    "stale reads",
    "k-staleness p50/p99",
    "99.9% consistent after",
    "lost writes",
    "converged",
    "ok % (in faults)",
    "latency p50/p99",
    "ops/s",
    "expectation",
];

/// What a comparison is, for the page titles and `compare.json`.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The comparison's folder name (`yyyymmddThhmmssZ`).
    pub stamp: String,
    /// The command line that made it.
    pub command: String,
    pub seeds: Vec<u64>,
    /// `--test-count N`: each configuration hunted over `seeds`, stopping at its first invalid
    /// run, so a row's runs may be fewer.
    pub test_count: Option<u64>,
    /// Set when Ctrl-C stopped the comparison early: how many runs finished of how many.
    pub interrupted: Option<(usize, usize)>,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "–".into())
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A row's cells, plain text, in [`HEADERS`] order.
pub fn cells(r: &Row) -> Vec<String> {
    let verdicts = r
        .runs
        .iter()
        .map(|s| match &s.valid {
            Value::Bool(true) => "valid".to_string(),
            Value::Bool(false) => "INVALID".to_string(),
            Value::String(x) => x.clone(),
            _ => "–".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let stale = match r.stale_read_rate {
        Some(rate) => format!("{:.2}% ({}/{})", rate * 100.0, r.stale_reads, r.reads),
        None => "– (no reads)".into(),
    };
    let k = match (r.k_staleness_p50, r.k_staleness_p99) {
        (Some(a), Some(b)) => format!("{a} / {b}"),
        _ => "–".into(),
    };
    let after = match r.consistent_999_ms {
        Some(t) => format!("{t} ms"),
        None if r.p_consistent.is_empty() => "–".into(),
        None => "not reached".into(),
    };
    let lost = if r.acknowledged_writes == 0 {
        "–".into()
    } else {
        format!("{} of {}", r.lost_writes, r.acknowledged_writes)
    };
    let frac = |c: &super::row::Count| {
        if c.n == 0 {
            "–".to_string()
        } else {
            format!("{}/{}", c.k, c.n)
        }
    };
    let avail = match r.availability_pct {
        Some(a) => format!(
            "{a:.1} ({})",
            r.fault_window_availability_pct
                .map(|f| format!("{f:.1}"))
                .unwrap_or_else(|| "no fault".into())
        ),
        None => "–".into(),
    };
    let lat = match (r.latency_p50_ms, r.latency_p99_ms) {
        (Some(a), Some(b)) => format!("{} / {} ms", ms(a), ms(b)),
        _ => "–".into(),
    };
    let expect = if r.expect.is_empty() {
        "–".to_string()
    } else {
        r.expect
            .iter()
            .map(|e| format!("{} {}", e.what, if e.held { "✓" } else { "✗ BROKEN" }))
            .collect::<Vec<_>>()
            .join("; ")
    };
    vec![
        r.name.clone(),
        verdicts,
        frac(&r.linearizable),
        stale,
        k,
        after,
        lost,
        frac(&r.converged),
        avail,
        lat,
        opt(r.throughput_ops_s.map(|t| format!("{t:.0}"))),
        expect,
    ]
}

/// Expectations that did not hold, one line each: `strict: stale-reads = valid (seed 1 …)`.
pub fn broken(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| {
            r.expect
                .iter()
                .filter(|e| !e.held)
                .map(move |e| format!("{}: {} broken ({})", r.name, e.what, e.seen))
        })
        .collect()
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The table alone, as Markdown (what the README quotes).
pub fn markdown_table(rows: &[Row]) -> String {
    let mut s = format!("| {} |\n", HEADERS.join(" | "));
    s.push_str(&format!("|{}\n", " --- |".repeat(HEADERS.len())));
    for r in rows {
        let c: Vec<String> = cells(r).iter().map(|c| md_escape(c)).collect();
        s.push_str(&format!("| {} |\n", c.join(" | ")));
    }
    s
}

/// `compare.md`: a heading, the table, what each configuration ran, the expectations.
pub fn markdown(meta: &Meta, rows: &[Row]) -> String {
    let mut s = format!("# Comparison {}\n\n`{}`\n\n", meta.stamp, meta.command);
    if let Some((done, total)) = meta.interrupted {
        s.push_str(&format!(
            "**Interrupted**: {done} of {total} runs finished; the table covers those.\n\n"
        ));
    }
    if let Some(n) = meta.test_count {
        s.push_str(&format!(
            "Hunt (`--test-count {n}`): each configuration ran seeds 1 to {n} one after another \
             and stopped at its first invalid run.\n\n"
        ));
    }
    s.push_str(&markdown_table(rows));
    s.push_str(
        "\nPooled over seeds. stale reads: stale / all reads; k-staleness: versions behind, over \
         the stale reads; 99.9% consistent after: time since the latest write after which at \
         least 99.9% of reads saw it; ok %: of client ops before the final reads (in faults: \
         of those invoked while a fault was active); latency: invoke to ok; ops/s: fault phase, \
         mean over seeds. The staleness curves are in compare.html and staleness.svg.\n\n",
    );
    s.push_str("## Configurations\n\n");
    for r in rows {
        s.push_str(&format!("- **{}**: `quorate run {}`", r.name, r.args));
        if let Some(n) = &r.note {
            s.push_str(&format!(" — {n}"));
        }
        s.push('\n');
        for run in &r.runs {
            s.push_str(&format!("  - seed {}: `{}`\n", run.seed, run.dir));
        }
    }
    let b = broken(rows);
    let any = rows.iter().any(|r| !r.expect.is_empty());
    if any {
        s.push_str("\n## Expectations\n\n");
        if b.is_empty() {
            s.push_str("Every expectation held.\n");
        }
        for r in rows {
            for e in &r.expect {
                s.push_str(&format!(
                    "- {} **{}**: {} — {}\n",
                    if e.held { "held" } else { "BROKEN" },
                    r.name,
                    e.what,
                    e.seen
                ));
            }
        }
    }
    s
}

/// `compare.json`: the rows, and what made them.
pub fn json(meta: &Meta, rows: &[Row]) -> Value {
    json!({
        "stamp": meta.stamp,
        "command": meta.command,
        "seeds": meta.seeds,
        "test_count": meta.test_count,
        "interrupted": meta.interrupted.map(|(d, t)| json!({"finished": d, "total": t})),
        "rows": rows,
        "broken": broken(rows),
    })
}
