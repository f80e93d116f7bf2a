//! What one finished run measured, read back from its folder: the checks' figures from
//! `results.json`, and from `history.jsonl` what only the history holds — latencies,
//! availability, and availability within fault windows.
//!
//! The history is read with the checker's own reader, so a comparison sees exactly the events
//! the checker judged. Only client ops invoked before the harness's `convergence` observation
//! count toward availability and latency: after it come the final reads, which the harness
//! makes after healing and which measure nothing about the faults. A target that is not
//! observed for convergence (garage) has no such line, so the final reads' own process
//! numbers ([`crate::workload::FINAL_READ_PROCESSES`] and up) mark them as well.

use quorate_checker::history::{EventType, Process};
use quorate_checker::import::{read_path, Format};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One run's figures. Counts, not ratios, so seeds add up exactly.
#[derive(Debug, Clone, Default)]
pub struct RunMeasure {
    pub reads: u64,
    pub stale: u64,
    /// k (versions behind) → how many stale reads.
    pub k_hist: BTreeMap<u64, u64>,
    /// `p_consistent` bucket lower edge (ms) → (reads, consistent reads).
    pub p_buckets: BTreeMap<i64, (u64, u64)>,
    pub acknowledged: u64,
    pub lost: u64,
    /// `Some(converged)` when the convergence check ran.
    pub converged: Option<bool>,
    /// Client ops of the run (before the final reads) and how many completed ok.
    pub ops: u64,
    pub ops_ok: u64,
    /// The same for ops invoked while a fault was active.
    pub fault_ops: u64,
    pub fault_ops_ok: u64,
    /// Invoke-to-ok latency of every ok op, in ms.
    pub latencies_ms: Vec<f64>,
    /// Client ops per second during the fault phase (the runner's own figure).
    pub ops_per_s: Option<f64>,
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Read a run folder. Errors name the file.
pub fn measure(run_dir: &Path, results: &Value) -> Result<RunMeasure, String> {
    let mut m = RunMeasure::default();
    let checks = &results["checks"];
    let stale = &checks["stale-reads"];
    m.reads = u(&stale["reads"]);
    m.stale = u(&stale["stale"]) + u(&stale["never_written"]) + u(&stale["future_reads"]);
    for pair in stale["k_staleness"]["histogram"]
        .as_array()
        .into_iter()
        .flatten()
    {
        *m.k_hist.entry(u(&pair[0])).or_default() += u(&pair[1]);
    }
    let ps = stale["p_consistent"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ns = stale["p_consistent_reads"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (p, n) in ps.iter().zip(&ns) {
        let edge = p[0].as_i64().unwrap_or(0);
        let reads = u(&n[1]);
        // p is rounded to 4 places; reads × p rounds back to the exact count.
        let consistent = (p[1].as_f64().unwrap_or(0.0) * reads as f64).round() as u64;
        let e = m.p_buckets.entry(edge).or_default();
        e.0 += reads;
        e.1 += consistent.min(reads);
    }
    m.acknowledged = u(&checks["lost-writes"]["acknowledged"]);
    m.lost = u(&checks["lost-writes"]["lost"]);
    m.converged = checks["convergence"]["valid"].as_bool();
    m.ops_per_s = results["run"]["ops_per_s"].as_f64();
    ops_from_history(&run_dir.join("history.jsonl"), &mut m)?;
    Ok(m)
}

/// Availability, fault-window availability and latency from the history's events.
fn ops_from_history(path: &Path, m: &mut RunMeasure) -> Result<(), String> {
    let events = read_path(path, Format::Jsonl).map_err(|e| e.to_string())?;
    // Active faults by kind: a kind's start adds one, its stop takes one away;
    // `partition-stop` heals every link, so it clears the kind.
    let mut active: BTreeMap<String, u64> = BTreeMap::new();
    // process → (invoke time ns, invoked during a fault)
    let mut open: BTreeMap<u64, (Option<i64>, bool)> = BTreeMap::new();
    let mut final_phase = false;
    for e in &events {
        match e.process {
            Process::Nemesis => {
                if let Some(kind) = e.f.strip_suffix("-start") {
                    *active.entry(kind.to_string()).or_default() += 1;
                } else if let Some(kind) = e.f.strip_suffix("-stop") {
                    let n = active.entry(kind.to_string()).or_default();
                    *n = if kind == "partition" {
                        0
                    } else {
                        n.saturating_sub(1)
                    };
                }
            }
            Process::Harness => {
                if e.f == "convergence" {
                    final_phase = true;
                }
            }
            Process::Client(p) if p >= crate::workload::FINAL_READ_PROCESSES => {
                final_phase = true;
            }
            Process::Client(p) => match e.kind {
                EventType::Invoke => {
                    if final_phase {
                        continue;
                    }
                    let in_fault = active.values().any(|n| *n > 0);
                    m.ops += 1;
                    if in_fault {
                        m.fault_ops += 1;
                    }
                    open.insert(p, (e.time, in_fault));
                }
                kind => {
                    let Some((t0, in_fault)) = open.remove(&p) else {
                        continue;
                    };
                    if kind == EventType::Ok {
                        m.ops_ok += 1;
                        if in_fault {
                            m.fault_ops_ok += 1;
                        }
                        if let (Some(a), Some(b)) = (t0, e.time) {
                            m.latencies_ms.push((b - a) as f64 / 1e6);
                        }
                    }
                }
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fault_windows_and_final_reads() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            r#"{"process":0,"type":"invoke","f":"write","key":"k0","value":1,"time":0}"#,
            r#"{"process":0,"type":"ok","f":"write","key":"k0","value":1,"time":2000000}"#,
            r#"{"process":"nemesis","type":"info","f":"partition-start","value":{"kind":"one","drop":[]},"time":3000000}"#,
            r#"{"process":1,"type":"invoke","f":"write","key":"k0","value":2,"time":4000000}"#,
            r#"{"process":0,"type":"invoke","f":"read","key":"k0","value":null,"time":4000000}"#,
            r#"{"process":1,"type":"info","f":"write","key":"k0","value":2,"time":8000000,"error":"timeout"}"#,
            r#"{"process":0,"type":"ok","f":"read","key":"k0","value":1,"time":9000000}"#,
            r#"{"process":"nemesis","type":"info","f":"partition-stop","value":null,"time":10000000}"#,
            r#"{"process":2,"type":"invoke","f":"read","key":"k0","value":null,"time":11000000}"#,
            r#"{"process":2,"type":"ok","f":"read","key":"k0","value":1,"time":12000000}"#,
            r#"{"process":"harness","type":"info","f":"convergence","value":{"converged":true},"time":13000000}"#,
            r#"{"process":1000000000,"type":"invoke","f":"read","key":"k0","value":null,"time":14000000}"#,
            r#"{"process":1000000000,"type":"ok","f":"read","key":"k0","value":1,"time":15000000}"#,
        ];
        std::fs::write(dir.path().join("history.jsonl"), lines.join("\n")).unwrap();
        let results = json!({"checks": {
            "stale-reads": {"reads": 3, "stale": 1, "k_staleness": {"histogram": [[1, 1]]},
                            "p_consistent": [[0, 0.5], [5, 1.0]], "p_consistent_reads": [[0, 2], [5, 1]]},
            "lost-writes": {"acknowledged": 1, "lost": 0},
            "convergence": {"valid": true}},
            "run": {"ops_per_s": 12.5}});
        let m = measure(dir.path(), &results).unwrap();
        assert_eq!((m.ops, m.ops_ok), (4, 3));
        assert_eq!((m.fault_ops, m.fault_ops_ok), (2, 1));
        assert_eq!(m.latencies_ms, vec![2.0, 5.0, 1.0]);
        assert_eq!(m.p_buckets[&0], (2, 1));
        assert_eq!(m.k_hist[&1], 1);
        assert_eq!(m.converged, Some(true));
        assert_eq!(m.ops_per_s, Some(12.5));
        // A garage run records no convergence observation: its final reads are still left out.
        let garage: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.contains("convergence"))
            .collect();
        std::fs::write(dir.path().join("history.jsonl"), garage.join("\n")).unwrap();
        let m = measure(dir.path(), &results).unwrap();
        assert_eq!((m.ops, m.ops_ok), (4, 3));
        assert_eq!(m.latencies_ms, vec![2.0, 5.0, 1.0]);
    }

    #[test]
    fn a_missing_history_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = measure(dir.path(), &json!({})).unwrap_err();
        assert!(e.contains("history.jsonl"), "{e}");
    }
}
