//! Issue 20's cases for `make bench-checker`: register histories at high concurrency, which
//! the zone check decides, with Porcupine on the same files beside them.
//!
//! - `abd-100` and `abd-100-faults`: histories of real runs (100 clients on a 5-node `abd`
//!   cluster, without faults and under partition and kill), recorded by
//!   `checker/bench/prepare.sh` into the bench cache (`QUORATE_BENCH_CACHE`);
//! - `sweep-cN`: generated, linearizable by construction, 100,000 ops on 10 keys (one after
//!   another) with N = 10, 100, 1,000 and 10,000 concurrent clients, unique values, 5% info;
//! - `gen-1m-c1000`: the same generator, 1,000,000 ops with 1,000 clients.
//!
//! Each file is timed twice in its own process: `linearizable` alone (what the budgets are
//! for) and the default check set (`…-all`). Porcupine (`porcupine-…`) runs under `prlimit
//! --as` so an out-of-memory case ends cleanly, with a time-out; either is recorded as such.

use super::{cpu_ms, generate, summary, Res};
use quorate_checker::check::{check_file, CheckOptions};
use quorate_checker::import::{read_history, Format};
use quorate_checker::linear::{check, LinearOptions, Path as LinearPath};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Porcupine's time-out per file, in seconds (`PORCUPINE_TIMEOUT`, default 60).
fn porcupine_timeout() -> f64 {
    std::env::var("PORCUPINE_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0)
}

/// Porcupine's address-space cap, in GB (`PORCUPINE_MEM_GB`, default 4: the machine is
/// shared).
fn porcupine_cap_gb() -> f64 {
    std::env::var("PORCUPINE_MEM_GB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0)
}

/// The bench cache `prepare.sh` filled, if it ran.
fn cache() -> Option<PathBuf> {
    std::env::var_os("QUORATE_BENCH_CACHE").map(PathBuf::from)
}

/// The history file of a case (`abd-100`, `sweep-c1000`, …), generated into the cache (or the
/// temp dir) on first use; `Err` says why there is none.
pub fn history(name: &str) -> Res<PathBuf> {
    let dir = cache().unwrap_or_else(std::env::temp_dir);
    if name.starts_with("abd-100") {
        let path = dir.join(format!("{name}.jsonl"));
        if !path.is_file() {
            return Err(format!(
                "{} not recorded: run checker/bench/prepare.sh (make bench-checker does)",
                path.display()
            )
            .into());
        }
        return Ok(path);
    }
    let (keys, per_key, clients) = match name {
        "sweep-c10" => (10, 10_000, 10),
        "sweep-c100" => (10, 10_000, 100),
        "sweep-c1000" => (10, 10_000, 1000),
        "sweep-c10000" => (10, 10_000, 10_000),
        "gen-1m-c1000" => (10, 100_000, 1000),
        other => return Err(format!("no history for case {other:?}").into()),
    };
    let path = dir.join(format!("quorate-bench-{name}.jsonl"));
    if !path.is_file() {
        let tmp = path.with_extension("partial");
        generate(&tmp, keys, per_key, clients, 0.05, 20)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// A case's figures: wall ms, CPU ms, peak MB (`None`: this process's), note.
pub type Figures = (f64, f64, Option<f64>, String);

/// Run case `name` in this process (`None`: not one of these cases).
pub fn run(name: &str) -> Res<Option<Figures>> {
    if let Some(file) = name.strip_prefix("porcupine-") {
        return porcupine(file).map(Some);
    }
    let (file, all) = match name.strip_suffix("-all") {
        Some(f) => (f, true),
        None => (name, false),
    };
    if !(file.starts_with("abd-100") || file.starts_with("sweep-") || file == "gen-1m-c1000") {
        return Ok(None);
    }
    let path = history(file)?;
    let (t, c) = (Instant::now(), cpu_ms());
    let note = if all {
        let report = check_file(&path, &CheckOptions::default())?;
        let lin = report
            .linearizable
            .as_ref()
            .map_or("no linearizable result".to_string(), summary);
        let checks: Vec<String> = report
            .quorum
            .iter()
            .map(|(c, r)| format!("{}: {}", c.name(), verdict(r.verdict())))
            .collect();
        format!(
            "{} ops; {lin}; {}; verdict {}",
            report.ops(),
            checks.join(", "),
            verdict(Some(report.valid))
        )
    } else {
        let h = read_history(&path, Format::Jsonl)?.0;
        let opts = LinearOptions {
            time_limit: Duration::from_secs(300),
            ..LinearOptions::default()
        };
        let r = check(&h, &opts)?;
        let zones = r
            .keys
            .values()
            .filter(|k| k.path == LinearPath::Zones)
            .count();
        format!(
            "{} ops; {}; {zones} keys on the zone path",
            h.ops.len(),
            summary(&r)
        )
    };
    Ok(Some((
        t.elapsed().as_secs_f64() * 1e3,
        cpu_ms() - c,
        None,
        note,
    )))
}

fn verdict(v: Option<quorate_checker::verdict::Verdict>) -> &'static str {
    use quorate_checker::verdict::Verdict;
    match v {
        Some(Verdict::Valid) => "valid",
        Some(Verdict::Invalid) => "invalid",
        Some(Verdict::Unknown) => "unknown",
        None => "skipped",
    }
}

/// Porcupine on `file`'s history: its verdict, or how it ended (time-out, out of memory).
/// Wall time is measured here, around the capped child; CPU is not known (`NaN`), and the
/// peak memory is the one Porcupine's process reports (in the note).
fn porcupine(file: &str) -> Res<Figures> {
    let path = history(file)?;
    let Some(exe) = cache()
        .map(|c| c.join("porcupine-check"))
        .filter(|p| p.is_file())
    else {
        return Err("porcupine-check not built: run checker/bench/prepare.sh (needs Go)".into());
    };
    let (secs, gb) = (porcupine_timeout(), porcupine_cap_gb());
    let cap = (gb * 1e9) as u64;
    let t = Instant::now();
    // The outer time-out is a backstop for a Porcupine that does not stop at its own.
    let out = Command::new("timeout")
        .args(["--signal=KILL", &format!("{}", secs * 2.0 + 30.0)])
        .args(["prlimit", &format!("--as={cap}"), "--"])
        .arg(&exe)
        .arg(&path)
        .arg(format!("{secs}"))
        .output()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let answer = serde_json::from_str::<serde_json::Value>(stdout.trim()).ok();
    let peak = answer.as_ref().and_then(|v| v["peak_mb"].as_f64());
    let note = match answer {
        Some(v) => match v["result"].as_str() {
            Some("unknown") => format!("time-out after {secs} s ({} ops)", v["ops"]),
            Some(r) => format!(
                "{} ({} ops)",
                if r == "ok" { "valid" } else { "invalid" },
                v["ops"]
            ),
            None => format!("unreadable answer: {}", stdout.trim()),
        },
        None if stderr.contains("out of memory") || stderr.contains("cannot allocate") => {
            format!("out of memory (address space capped at {gb} GB)")
        }
        None if out.status.code().is_none() || out.status.code() == Some(137) => {
            format!("killed ({}) without an answer", out.status)
        }
        None => format!(
            "failed ({}): {}",
            out.status,
            stderr.lines().next().unwrap_or("")
        ),
    };
    Ok((
        ms,
        f64::NAN,
        Some(peak.unwrap_or(f64::NAN)),
        format!("Porcupine: {note}"),
    ))
}
