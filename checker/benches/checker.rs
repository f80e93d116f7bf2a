//! `make bench-checker`: the checker's speed on Porcupine's data, on a generated
//! 1,000,000-op register history, and on issue 20's high-concurrency register histories
//! (`zones/cases.rs`, Porcupine beside them), parsing included, with peak memory.
//!
//! Each case runs in a child process of this same binary (`--case NAME`), so the peak resident
//! set (`VmHWM` from `/proc/self/status`) is that case's alone. The parent prints a table and,
//! with `--write FILE`, rewrites the checker section of BENCHMARKS.md (between
//! `<!-- bench:checker:begin -->` and `<!-- bench:checker:end -->`).
//!
//! `--file PATH [--model M]` checks one file and prints every key's verdict (for diagnosis).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "zones/cases.rs"]
mod zones;

use quorate_checker::history::History;
use quorate_checker::import::{read_history, Format};
use quorate_checker::linear::{check, LinearOptions, LinearResult};
use quorate_checker::model::ModelKind;
use quorate_checker::quorum;
use quorate_checker::verdict::Verdict;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One benchmark case: name, what it does, its target.
struct Case {
    name: &'static str,
    what: &'static str,
    target: &'static str,
    target_ms: f64,
    target_mb: Option<f64>,
}

const CASES: &[Case] = &[
    Case {
        name: "etcd-all",
        what: "the 102 etcd files together (cas-register)",
        target: "≤ 30 ms (Porcupine: 0.30 s, parsing excluded)",
        target_ms: 30.0,
        target_mb: None,
    },
    Case {
        name: "etcd-002",
        what: "jepsen/etcd_002.log alone",
        target: "≤ 10 ms (Porcupine: 108 ms)",
        target_ms: 10.0,
        target_mb: None,
    },
    Case {
        name: "c50-ok",
        what: "kv/c50-ok.txt (kv)",
        target: "≤ 10 ms (Porcupine: 92 ms)",
        target_ms: 10.0,
        target_mb: None,
    },
    Case {
        name: "c50-bad",
        what: "kv/c50-bad.txt: a verdict for all 10 keys, a counterexample for every invalid key",
        target: "≤ 1 s and ≤ 500 MB (Porcupine: out of memory at 24 GB)",
        target_ms: 1000.0,
        target_mb: Some(500.0),
    },
    Case {
        name: "gen-1m",
        what: "generated register history: 1,000,000 ops, 100 keys × 10,000 used one after \
               another, 10 clients, unique values, 5% info (JSONL read + linearizability check + \
               quorum checks)",
        target: "≤ 10 s and ≤ 2 GB",
        target_ms: 10_000.0,
        target_mb: Some(2048.0),
    },
    Case {
        name: "abd-100",
        what: "recorded run: `quorate run --nodes 5 --preset abd --concurrency 100 --nemesis none \
               --time-limit 8`, linearizable alone",
        target: "every key decided, ≤ 1 s and ≤ 300 MB",
        target_ms: 1000.0,
        target_mb: Some(300.0),
    },
    Case {
        name: "abd-100-all",
        what: "the same file, the default check set",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "porcupine-abd-100",
        what: "the same file, Porcupine",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "abd-100-faults",
        what: "recorded run: the same with `--nemesis partition,kill --time-limit 15`, \
               linearizable alone",
        target: "every key decided, ≤ 1 s and ≤ 300 MB",
        target_ms: 1000.0,
        target_mb: Some(300.0),
    },
    Case {
        name: "abd-100-faults-all",
        what: "the same file, the default check set",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "porcupine-abd-100-faults",
        what: "the same file, Porcupine",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "sweep-c10",
        what: "generated: 100,000 ops on 10 keys, 10 concurrent clients, unique values, 5% info; \
               linearizable alone",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "porcupine-sweep-c10",
        what: "the same file, Porcupine",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "sweep-c100",
        what: "the same with 100 clients",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "porcupine-sweep-c100",
        what: "the same file, Porcupine",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "sweep-c1000",
        what: "the same with 1,000 clients",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "porcupine-sweep-c1000",
        what: "the same file, Porcupine",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "sweep-c10000",
        what: "the same with 10,000 clients",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "porcupine-sweep-c10000",
        what: "the same file, Porcupine",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "gen-1m-c1000",
        what: "generated: 1,000,000 ops on 10 keys, 1,000 concurrent clients, unique values, 5% \
               info; linearizable alone",
        target: "≤ 5 s and ≤ 1 GB",
        target_ms: 5000.0,
        target_mb: Some(1024.0),
    },
    Case {
        name: "gen-1m-c1000-all",
        what: "the same file, the default check set",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
    Case {
        name: "porcupine-gen-1m-c1000",
        what: "the same file, Porcupine",
        target: "—",
        target_ms: f64::INFINITY,
        target_mb: None,
    },
];

/// Read and pair a file the way `quorate check` does (`import::read_history`).
fn load(path: &Path) -> Res<History> {
    Ok(read_history(path, Format::Auto)?.0)
}

fn opts(model: ModelKind) -> LinearOptions {
    LinearOptions {
        model,
        time_limit: Duration::from_secs(60),
        ..LinearOptions::default()
    }
}

/// Read + pair + check one file.
/// Wall ns spent reading + pairing and checking, over every `run_file` call.
static READ_NS: AtomicU64 = AtomicU64::new(0);
static CHECK_NS: AtomicU64 = AtomicU64::new(0);

fn run_file(path: &Path, model: ModelKind) -> Res<LinearResult> {
    let t = Instant::now();
    let h = load(path)?;
    let read = t.elapsed();
    let r = check(&h, &opts(model))?;
    READ_NS.fetch_add(read.as_nanos() as u64, Ordering::Relaxed);
    CHECK_NS.fetch_add((t.elapsed() - read).as_nanos() as u64, Ordering::Relaxed);
    Ok(r)
}

/// "reading 40% of wall": how the files' time splits, for the note.
fn read_share() -> String {
    let (r, c) = (
        READ_NS.load(Ordering::Relaxed) as f64,
        CHECK_NS.load(Ordering::Relaxed) as f64,
    );
    format!(
        "reading+pairing {:.0}% of wall, checking {:.0}%",
        100.0 * r / (r + c),
        100.0 * c / (r + c)
    )
}

/// Peak resident set of this process, in MB (10^6 bytes).
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

/// CPU time used so far by all live threads of this process, in ms (from each thread's
/// `/proc/self/task/*/schedstat`, whose first field is ns on a CPU). The machine is shared,
/// so CPU time says what the checker costs when wall time includes waiting for a core.
fn cpu_ms() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let ns: u64 = tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn summary(r: &LinearResult) -> String {
    let split = if READ_NS.load(Ordering::Relaxed) > 0 {
        format!("; {}", read_share())
    } else {
        String::new()
    };
    let count = |v: Verdict| r.keys.values().filter(|k| k.valid == v).count();
    let cx = r
        .keys
        .values()
        .filter(|k| k.counterexample.is_some())
        .count();
    format!(
        "{} keys: {} valid, {} invalid ({} counterexamples), {} unknown{split}",
        r.keys.len(),
        count(Verdict::Valid),
        count(Verdict::Invalid),
        cx,
        count(Verdict::Unknown)
    )
}

/// Run one case in this process; prints `ms\tcpu_ms\tpeak_mb\tnote`.
fn run_case(name: &str) -> Res<()> {
    if let Some((ms, cpu, mb, note)) = zones::run(name)? {
        println!(
            "{ms:.3}\t{cpu:.3}\t{:.1}\t{note}",
            mb.unwrap_or_else(peak_mb)
        );
        return Ok(());
    }
    let dir = common::porcupine_data_dir()?;
    let timed = |reps: usize, f: &dyn Fn() -> Res<String>| -> Res<(f64, f64, String)> {
        let mut times = Vec::new();
        let mut note = String::new();
        // One untimed run first: it starts rayon's threads and warms the page cache.
        if reps > 1 {
            f()?;
        }
        let cpu0 = cpu_ms();
        for _ in 0..reps {
            let t = Instant::now();
            note = f()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok((median(times), (cpu_ms() - cpu0) / reps as f64, note))
    };
    let (ms, cpu, note) = match name {
        "etcd-all" => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("jepsen"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            files.sort();
            timed(21, &|| {
                let (mut valid, mut invalid, mut other) = (0, 0, 0);
                for f in &files {
                    match run_file(f, ModelKind::CasRegister)?.valid {
                        Verdict::Valid => valid += 1,
                        Verdict::Invalid => invalid += 1,
                        Verdict::Unknown => other += 1,
                    }
                }
                Ok(format!(
                    "{} files: {valid} valid, {invalid} invalid, {other} unknown; {}",
                    files.len(),
                    read_share()
                ))
            })?
        }
        "etcd-002" => timed(51, &|| {
            Ok(summary(&run_file(
                &dir.join("jepsen/etcd_002.log"),
                ModelKind::CasRegister,
            )?))
        })?,
        "c50-ok" => timed(21, &|| {
            Ok(summary(&run_file(
                &dir.join("kv/c50-ok.txt"),
                ModelKind::Kv,
            )?))
        })?,
        "c50-bad" => timed(5, &|| {
            Ok(summary(&run_file(
                &dir.join("kv/c50-bad.txt"),
                ModelKind::Kv,
            )?))
        })?,
        "gen-1m" => {
            let tmp =
                std::env::temp_dir().join(format!("quorate-bench-{}.jsonl", std::process::id()));
            let ops = generate(&tmp, 100, 10_000, 10, 0.05, 7)?;
            let r = timed(1, &|| {
                let (t, c) = (Instant::now(), cpu_ms());
                let h = read_history(&tmp, Format::Jsonl)?.0;
                let (read_ms, read_cpu) = (t.elapsed().as_secs_f64() * 1e3, cpu_ms() - c);
                let (t, c) = (Instant::now(), cpu_ms());
                let r = check(&h, &opts(ModelKind::CasRegister))?;
                let (check_ms, check_cpu) = (t.elapsed().as_secs_f64() * 1e3, cpu_ms() - c);
                let (t, c) = (Instant::now(), cpu_ms());
                let quorum = quorum_checks(&h)?;
                let (q_ms, q_cpu) = (t.elapsed().as_secs_f64() * 1e3, cpu_ms() - c);
                Ok(format!(
                    "{}; read+pair {:.2} s wall / {:.2} s CPU, check {:.2} s wall / {:.2} s CPU; \
                     quorum checks (stale-reads, lost-writes, sessions: {quorum}) {:.2} s wall / \
                     {:.2} s CPU = {:.0}% of read+check wall (target ≤ 50%)",
                    summary(&r),
                    read_ms / 1e3,
                    read_cpu / 1e3,
                    check_ms / 1e3,
                    check_cpu / 1e3,
                    q_ms / 1e3,
                    q_cpu / 1e3,
                    100.0 * q_ms / (read_ms + check_ms)
                ))
            });
            let _ = std::fs::remove_file(&tmp);
            let (ms, cpu, note) = r?;
            (ms, cpu, format!("{ops} ops; {note}"))
        }
        other => return Err(format!("unknown case {other:?}").into()),
    };
    println!("{ms:.3}\t{cpu:.3}\t{:.1}\t{note}", peak_mb());
    Ok(())
}

/// The register quorum checks on `h`, as `quorate check` runs them: their verdicts.
fn quorum_checks(h: &History) -> Res<String> {
    let regs = quorum::registers(h, None)?;
    let verdicts = [
        quorum::stale::check(&regs).0,
        quorum::lost::check(&regs).0,
        quorum::sessions::check(&regs).0,
    ]
    .iter()
    .map(|r| match r.verdict() {
        Some(Verdict::Valid) => "valid",
        Some(Verdict::Invalid) => "invalid",
        Some(Verdict::Unknown) => "unknown",
        None => "skipped",
    })
    .collect::<Vec<_>>()
    .join("/");
    Ok(verdicts)
}

/// Write a linearizable register history: `keys` keys used one after another, `per_key` ops
/// each, `clients` clients on the live key, unique written values, a share `info` of ops
/// ending `info` (half of those having taken effect). Returns the number of ops.
fn generate(
    path: &Path,
    keys: usize,
    per_key: usize,
    clients: usize,
    info: f64,
    seed: u64,
) -> Res<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Phase {
        Idle,
        Called,
        Applied,
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut line: u64 = 0;
    let mut next_value: u64 = 1;
    let mut next_process = clients as u64;
    let mut ops = 0;
    for k in 0..keys {
        let key = format!("k{k}");
        let mut value: Option<u64> = None;
        let mut process: Vec<u64> = (0..clients as u64).collect();
        let mut phase = vec![Phase::Idle; clients];
        let mut is_write = vec![false; clients];
        let mut arg = vec![0u64; clients];
        let mut result: Vec<Option<u64>> = vec![None; clients];
        let mut started = 0;
        let mut busy = 0;
        while started < per_key || busy > 0 {
            let c = rng.gen_range(0..clients);
            let p = process[c];
            let t = line * 1000;
            match phase[c] {
                Phase::Idle if started < per_key => {
                    started += 1;
                    busy += 1;
                    is_write[c] = rng.gen_bool(0.5);
                    if is_write[c] {
                        arg[c] = next_value;
                        next_value += 1;
                        writeln!(
                            out,
                            r#"{{"index":{line},"time":{t},"process":{p},"type":"invoke","f":"write","key":"{key}","value":{}}}"#,
                            arg[c]
                        )?;
                    } else {
                        writeln!(
                            out,
                            r#"{{"index":{line},"time":{t},"process":{p},"type":"invoke","f":"read","key":"{key}","value":null}}"#
                        )?;
                    }
                    phase[c] = Phase::Called;
                    line += 1;
                }
                Phase::Idle => {}
                Phase::Called => {
                    // The op's linearization point, or (for some info ops) a crash before it.
                    if rng.gen_bool(info / 2.0) {
                        let f = if is_write[c] { "write" } else { "read" };
                        let v = if is_write[c] {
                            arg[c].to_string()
                        } else {
                            "null".into()
                        };
                        writeln!(
                            out,
                            r#"{{"index":{line},"time":{t},"process":{p},"type":"info","f":"{f}","key":"{key}","value":{v},"error":"timeout"}}"#
                        )?;
                        line += 1;
                        phase[c] = Phase::Idle;
                        busy -= 1;
                        ops += 1;
                        process[c] = next_process;
                        next_process += 1;
                        continue;
                    }
                    if is_write[c] {
                        value = Some(arg[c]);
                    } else {
                        result[c] = value;
                    }
                    phase[c] = Phase::Applied;
                }
                Phase::Applied => {
                    let f = if is_write[c] { "write" } else { "read" };
                    let v = match (is_write[c], result[c]) {
                        (true, _) => arg[c].to_string(),
                        (false, Some(v)) => v.to_string(),
                        (false, None) => "null".into(),
                    };
                    if rng.gen_bool(info / (2.0 - info)) {
                        writeln!(
                            out,
                            r#"{{"index":{line},"time":{t},"process":{p},"type":"info","f":"{f}","key":"{key}","value":{v},"error":"timeout"}}"#
                        )?;
                        process[c] = next_process;
                        next_process += 1;
                    } else {
                        writeln!(
                            out,
                            r#"{{"index":{line},"time":{t},"process":{p},"type":"ok","f":"{f}","key":"{key}","value":{v}}}"#
                        )?;
                    }
                    line += 1;
                    phase[c] = Phase::Idle;
                    busy -= 1;
                    ops += 1;
                }
            }
        }
    }
    out.flush()?;
    Ok(ops)
}

/// Run every case in a child process and collect `(case, ms, mb, note)`.
/// One measured case: the case, median wall ms, mean CPU ms, peak MB, note.
type Row = (&'static Case, f64, f64, f64, String);

fn run_all() -> Res<Vec<Row>> {
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for case in CASES {
        eprintln!("bench-checker: {} …", case.name);
        let out = Command::new(&exe).args(["--case", case.name]).output()?;
        if !out.status.success() {
            // A case that could not run is a row that says why, not a missing row.
            let err = String::from_utf8_lossy(&out.stderr);
            let why = err.lines().last().unwrap_or("no message").to_string();
            eprintln!("  not run: {why}");
            rows.push((
                case,
                f64::NAN,
                f64::NAN,
                f64::NAN,
                format!("**not run**: {why}"),
            ));
            continue;
        }
        let text = String::from_utf8(out.stdout)?;
        let mut parts = text.trim().splitn(4, '\t');
        let ms: f64 = parts.next().unwrap_or("nan").parse()?;
        let cpu: f64 = parts.next().unwrap_or("nan").parse()?;
        let mb: f64 = parts.next().unwrap_or("nan").parse()?;
        let note = parts.next().unwrap_or("").to_string();
        eprintln!("  {ms:.2} ms wall, {cpu:.2} ms CPU, {mb:.1} MB peak: {note}");
        rows.push((case, ms, cpu, mb, note));
    }
    Ok(rows)
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        s,
        "Measured by `make bench-checker` (`cargo bench -p quorate-checker --bench checker`, \
         release build) on {cores} cores. Times include reading and parsing the files; each \
         case runs in its own process; time is the median of several runs (one for gen-1m, \
         generation not timed); peak memory is the process's VmHWM.\n"
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let _ = writeln!(
        s,
        "Wall time counts against the target; CPU time (all threads) is shown beside it \
         because the machine is shared (1-minute load average {load} at the end of the run), \
         and wall time then includes waiting for a core.\n"
    );
    let show = |ms: f64| {
        if ms.is_nan() {
            "—".to_string()
        } else if ms >= 1000.0 {
            format!("{:.2} s", ms / 1000.0)
        } else {
            format!("{ms:.1} ms")
        }
    };
    let _ = writeln!(
        s,
        "| case | wall | CPU | peak RSS | target | met | result |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
    for (case, ms, cpu, mb, note) in rows {
        let met = if case.target_ms.is_infinite() && case.target_mb.is_none() {
            "—"
        } else if *ms <= case.target_ms && !matches!(case.target_mb, Some(t) if *mb > t) {
            "yes"
        } else {
            "**no**"
        };
        let mb = if mb.is_nan() {
            "—".to_string()
        } else {
            format!("{mb:.0} MB")
        };
        let _ = writeln!(
            s,
            "| {} — {} | {} | {} | {mb} | {} | {met} | {} |",
            case.name,
            case.what,
            show(*ms),
            show(*cpu),
            case.target,
            note
        );
    }
    s
}

fn write_section(file: &Path, body: &str) -> Res<()> {
    let text = std::fs::read_to_string(file)?;
    let (begin, end) = ("<!-- bench:checker:begin -->", "<!-- bench:checker:end -->");
    let (Some(b), Some(e)) = (text.find(begin), text.find(end)) else {
        return Err(format!("{}: markers {begin} / {end} not found", file.display()).into());
    };
    let new = format!("{}{begin}\n{body}{}", &text[..b], &text[e..]);
    std::fs::write(file, new)?;
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(case) = arg("--case") {
        return run_case(&case);
    }
    if let Some(file) = arg("--generate") {
        let ops = generate(Path::new(&file), 100, 10_000, 10, 0.05, 7)?;
        println!("{ops} ops written to {file}");
        return Ok(());
    }
    if let Some(file) = arg("--file") {
        let model: ModelKind = arg("--model")
            .unwrap_or_else(|| "cas-register".into())
            .parse()?;
        let t = Instant::now();
        let h = load(Path::new(&file))?;
        let read = t.elapsed().as_secs_f64() * 1e3;
        let mut o = opts(model);
        if let Some(t) = arg("--time-limit") {
            o.time_limit = Duration::from_secs_f64(t.parse()?);
        }
        let r = check(&h, &o)?;
        let total = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "read {read:.3} ms, total {total:.3} ms, {:.1} MB peak",
            peak_mb()
        );
        for (k, kr) in &r.keys {
            println!(
                "{k:?}: {:?} ops={} {:?} {:?}",
                kr.valid, kr.ops, kr.reason, kr.counterexample
            );
        }
        return Ok(());
    }
    let rows = run_all()?;
    let body = table(&rows);
    print!("{body}");
    if let Some(file) = arg("--write") {
        write_section(Path::new(&file), &body)?;
        eprintln!("bench-checker: wrote {file}");
    }
    Ok(())
}
