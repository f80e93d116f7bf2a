//! One row of the comparison: a configuration's runs over its seeds, added up.
//!
//! Figures are pooled over seeds (counts summed, quantiles over every sample), not averaged
//! per seed, so a seed with few reads does not weigh like one with many. `compare.json` is a
//! list of these rows; `compare.md` and `compare.html` render them.

use super::expect::Judged;
use super::matrix::Config;
use super::measure::RunMeasure;
use quorate_checker::quorum::quantile;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The share of consistent reads the "consistent after" column asks for.
pub const TARGET_P: f64 = 0.999;

/// One finished run of a configuration.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub seed: u64,
    /// The run folder, relative to the comparison's folder.
    pub dir: String,
    pub results: Value,
    /// `None` when the run folder could not be read back (the reason is in `results.error`).
    pub measure: Option<RunMeasure>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeedVerdict {
    pub seed: u64,
    /// `true`, `false`, `"unknown"` or `"error"`.
    pub valid: Value,
    pub dir: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Count {
    pub k: u64,
    pub n: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Expectation {
    pub what: String,
    pub held: bool,
    pub seen: String,
}

impl From<Judged> for Expectation {
    fn from(j: Judged) -> Self {
        Expectation {
            what: j.what,
            held: j.held,
            seen: j.seen,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub name: String,
    pub note: Option<String>,
    /// The `quorate run` flags of the configuration.
    pub args: String,
    pub runs: Vec<SeedVerdict>,
    /// Seeds whose `linearizable` check held, of those where it ran.
    pub linearizable: Count,
    pub reads: u64,
    pub stale_reads: u64,
    pub stale_read_rate: Option<f64>,
    /// Versions behind, over the stale reads.
    pub k_staleness_p50: Option<u64>,
    pub k_staleness_p99: Option<u64>,
    /// Time since the latest write after which at least 99.9% of reads were consistent (the
    /// lower edge of the first `p_consistent` bucket from which every bucket reaches it);
    /// `None` when the last bucket with reads still falls short, or there were no reads.
    pub consistent_999_ms: Option<i64>,
    pub lost_writes: u64,
    pub acknowledged_writes: u64,
    /// Seeds whose replicas converged, of those where it was observed.
    pub converged: Count,
    pub ops: u64,
    /// ok % of client ops.
    pub availability_pct: Option<f64>,
    pub fault_window_ops: u64,
    /// ok % of client ops invoked while a fault was active.
    pub fault_window_availability_pct: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Mean over seeds of client ops/s in the fault phase.
    pub throughput_ops_s: Option<f64>,
    /// `[ms, P(consistent)]` pooled over seeds: the staleness curve.
    pub p_consistent: Vec<(i64, f64)>,
    pub expect: Vec<Expectation>,
}

fn hist_quantile(h: &BTreeMap<u64, u64>, q: f64) -> Option<u64> {
    let total: u64 = h.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (k, n) in h {
        seen += n;
        if seen >= rank {
            return Some(*k);
        }
    }
    h.keys().last().copied()
}

fn pct(k: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| (k as f64 / n as f64 * 1e4).round() / 1e2)
}

fn round(x: f64, places: i32) -> f64 {
    let s = 10f64.powi(places);
    (x * s).round() / s
}

/// The first bucket edge from which every bucket with reads is at least [`TARGET_P`].
pub fn consistent_after(buckets: &BTreeMap<i64, (u64, u64)>) -> Option<i64> {
    let with_reads: Vec<(i64, f64)> = buckets
        .iter()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(e, (n, c))| (*e, *c as f64 / *n as f64))
        .collect();
    let last_bad = with_reads.iter().rposition(|(_, p)| *p < TARGET_P);
    match last_bad {
        None => with_reads.first().map(|_| 0),
        Some(i) => with_reads.get(i + 1).map(|(e, _)| *e),
    }
}

fn verdict_of(r: &Value) -> Value {
    if r.get("error").is_some() {
        Value::String("error".into())
    } else {
        r.get("valid").cloned().unwrap_or(Value::Null)
    }
}

/// Add up a configuration's finished runs.
pub fn build(cfg: &Config, runs: &[RunRecord]) -> Row {
    let ms: Vec<&RunMeasure> = runs.iter().filter_map(|r| r.measure.as_ref()).collect();
    let sum = |f: fn(&RunMeasure) -> u64| ms.iter().map(|m| f(m)).sum::<u64>();
    let mut k_hist = BTreeMap::new();
    let mut buckets: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    let mut lat: Vec<f64> = Vec::new();
    for m in &ms {
        for (k, n) in &m.k_hist {
            *k_hist.entry(*k).or_default() += n;
        }
        for (e, (n, c)) in &m.p_buckets {
            let b = buckets.entry(*e).or_default();
            b.0 += n;
            b.1 += c;
        }
        lat.extend(&m.latencies_ms);
    }
    lat.sort_by(f64::total_cmp);
    let lin: Vec<bool> = runs
        .iter()
        .filter(|r| r.results.get("error").is_none())
        .filter_map(|r| r.results["checks"]["linearizable"]["valid"].as_bool())
        .collect();
    let conv: Vec<bool> = ms.iter().filter_map(|m| m.converged).collect();
    let rates: Vec<f64> = ms.iter().filter_map(|m| m.ops_per_s).collect();
    let (reads, stale) = (sum(|m| m.reads), sum(|m| m.stale));
    let (ops, ok) = (sum(|m| m.ops), sum(|m| m.ops_ok));
    let (fops, fok) = (sum(|m| m.fault_ops), sum(|m| m.fault_ops_ok));
    let seed_runs: Vec<(u64, &Value)> = runs.iter().map(|r| (r.seed, &r.results)).collect();
    Row {
        name: cfg.name.clone(),
        note: cfg.note.clone(),
        args: cfg.argv.join(" "),
        runs: runs
            .iter()
            .map(|r| SeedVerdict {
                seed: r.seed,
                valid: verdict_of(&r.results),
                dir: r.dir.clone(),
            })
            .collect(),
        linearizable: Count {
            k: lin.iter().filter(|v| **v).count() as u64,
            n: lin.len() as u64,
        },
        reads,
        stale_reads: stale,
        stale_read_rate: (reads > 0).then(|| round(stale as f64 / reads as f64, 5)),
        k_staleness_p50: hist_quantile(&k_hist, 0.5),
        k_staleness_p99: hist_quantile(&k_hist, 0.99),
        consistent_999_ms: consistent_after(&buckets),
        lost_writes: sum(|m| m.lost),
        acknowledged_writes: sum(|m| m.acknowledged),
        converged: Count {
            k: conv.iter().filter(|v| **v).count() as u64,
            n: conv.len() as u64,
        },
        ops,
        availability_pct: pct(ok, ops),
        fault_window_ops: fops,
        fault_window_availability_pct: pct(fok, fops),
        latency_p50_ms: quantile(&lat, 0.5).map(|x| round(x, 2)),
        latency_p99_ms: quantile(&lat, 0.99).map(|x| round(x, 2)),
        throughput_ops_s: (!rates.is_empty())
            .then(|| round(rates.iter().sum::<f64>() / rates.len() as f64, 1)),
        p_consistent: buckets
            .iter()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(e, (n, c))| (*e, round(*c as f64 / *n as f64, 4)))
            .collect(),
        expect: cfg
            .expect
            .as_ref()
            .map(|e| e.judge(&seed_runs).into_iter().map(Into::into).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_after_is_the_edge_past_the_last_shortfall() {
        let b = |v: &[(i64, u64, u64)]| v.iter().map(|(e, n, c)| (*e, (*n, *c))).collect();
        assert_eq!(consistent_after(&b(&[(0, 100, 100), (5, 10, 10)])), Some(0));
        assert_eq!(
            consistent_after(&b(&[(0, 100, 90), (1, 0, 0), (2, 10, 10), (5, 3, 3)])),
            Some(2)
        );
        assert_eq!(consistent_after(&b(&[(0, 100, 100), (5, 10, 9)])), None);
        assert_eq!(consistent_after(&b(&[])), None);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let h: BTreeMap<u64, u64> = [(1, 90), (5, 9), (8, 1)].into_iter().collect();
        assert_eq!(hist_quantile(&h, 0.5), Some(1));
        assert_eq!(hist_quantile(&h, 0.99), Some(5));
        assert_eq!(hist_quantile(&h, 1.0), Some(8));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
        assert_eq!(pct(1, 3), Some(33.33));
        assert_eq!(pct(0, 0), None);
    }
}
