//! `quorate compare`: run each configuration × seed, one at a time, and write the table
//! (INTERFACES.md "quorate compare").
//!
//! Each run is a child `quorate run` process (this same executable), not a call into the
//! runner: a child keeps one run's crash, logging setup and signal handling from touching the
//! next, and Ctrl-C needs no second shutdown path — the child already stops cleanly on SIGINT
//! and keeps what it recorded. Compare only watches a flag: on SIGINT/SIGTERM it passes the
//! signal on to the running child, starts nothing new, and writes the table of what finished.
//! A child gets SIGTERM if compare itself dies (`PR_SET_PDEATHSIG`), so no run outlives it.

use crate::compare::matrix::{self, Config, Matrix};
use crate::compare::measure;
use crate::compare::row::{self, RunRecord};
use crate::compare::table::{self, Meta};
use crate::{compare, store};
use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(after_help = "\
Each configuration runs once per seed (1..=K), one run at a time, as a child `quorate run`; \
with --test-count N each configuration hunts instead: seeds 1..=N until its first invalid run; \
runs land in <results>/compare/<yyyymmddThhmmssZ>/<configuration>/, beside compare.md, \
compare.html, compare.json and staleness.svg. Flags after `--` go to every run.

Exit codes: 0 every expectation held (configurations without one never change it), 1 an \
expectation broke (each is named), 3 error: a bad matrix or flag, a run that ended in an \
error, or Ctrl-C (the table of the finished runs is still written).")]
pub struct CompareArgs {
    /// Presets to compare (comma list), each a configuration.
    #[arg(
        long,
        value_name = "LIST",
        required_unless_present = "matrix",
        conflicts_with = "matrix"
    )]
    pub presets: Option<String>,
    /// Faults for every preset's runs, as `quorate run --nemesis`; several sets separated by
    /// `;` make one configuration per preset and set.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "partition,kill",
        conflicts_with = "matrix"
    )]
    pub nemesis: String,
    /// A TOML file: one table per configuration (run flags, optional `expect`, `note`).
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// Seeds per configuration (1..=K) [default: the matrix's `seeds`, else 1].
    #[arg(long, value_name = "K")]
    pub seeds: Option<u64>,
    /// Hunt per configuration, as `quorate run --test-count`: seeds 1..=N one after another,
    /// each configuration stopping at its first invalid run (its other seeds are not run).
    #[arg(long, value_name = "N", conflicts_with = "seeds")]
    pub test_count: Option<u64>,
    /// Each run's fault phase, in seconds [default: the matrix's, else run's].
    #[arg(long, value_name = "SECS")]
    pub time_limit: Option<f64>,
    /// Root of the results store.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// `quorate run` flags for every run (after `--`).
    #[arg(last = true, value_name = "RUN FLAGS")]
    pub run_args: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_flag() -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &act) }.with_context(|| format!("install the {sig} handler"))?;
    }
    Ok(())
}

pub fn main(args: CompareArgs) -> u8 {
    match compare(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quorate compare: error: {e:#}");
            3
        }
    }
}

fn load(args: &CompareArgs) -> Result<Matrix, String> {
    if let Some(k) = args.seeds {
        if k == 0 {
            return Err("--seeds 0: expected at least 1".into());
        }
    }
    if args.test_count == Some(0) {
        return Err("--test-count 0: expected a number of runs >= 1".into());
    }
    // A hunt's seeds are 1..=N, as --seeds N's; which of them run depends on the verdicts.
    let seeds = args.test_count.or(args.seeds);
    match (&args.matrix, &args.presets) {
        (Some(file), _) => matrix::from_file(file, seeds, args.time_limit, &args.run_args),
        (None, Some(presets)) => matrix::from_presets(
            presets,
            &args.nemesis,
            args.time_limit,
            &args.run_args,
            seeds.unwrap_or(1),
        ),
        (None, None) => Err("expected --presets LIST or --matrix FILE".into()),
    }
}

/// The outcome of one child run.
enum Outcome {
    Finished(Box<RunRecord>),
    /// Stopped by Ctrl-C: kept on disk, left out of the table.
    Interrupted(Option<String>),
}

fn compare(args: CompareArgs) -> anyhow::Result<u8> {
    let m = match load(&args).and_then(|m| {
        m.configs.iter().try_for_each(matrix::probe)?;
        Ok(m)
    }) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("quorate compare: {e}");
            return Ok(3);
        }
    };
    let exe = std::env::current_exe().context("find the quorate executable")?;
    install_signal_flag()?;
    let dir = store::create_run_dir(&args.results, "compare").with_context(|| {
        format!(
            "create a comparison folder under {}",
            args.results.display()
        )
    })?;
    let stamp = dir
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let total = m.configs.len() * m.seeds.len();
    let hunt = args.test_count.is_some();
    eprintln!(
        "quorate compare: {} configurations × {} seeds = {}{total} runs into {}",
        m.configs.len(),
        m.seeds.len(),
        if hunt { "at most " } else { "" },
        dir.display()
    );
    let mut records: Vec<Vec<RunRecord>> = vec![Vec::new(); m.configs.len()];
    let mut errors = Vec::new();
    let mut done = 0;
    let mut stopped = false;
    'outer: for (ci, cfg) in m.configs.iter().enumerate() {
        let mut caught = false;
        for &seed in &m.seeds {
            if STOP.load(Ordering::SeqCst) {
                stopped = true;
                break 'outer;
            }
            let t0 = Instant::now();
            let at = format!("[{}/{total}] {} seed {seed}", done + 1, cfg.name);
            eprintln!("{at}: running");
            match run_one(&exe, &dir, cfg, seed)? {
                Outcome::Finished(rec) => {
                    done += 1;
                    let line = verdict_line(&rec.results);
                    eprintln!(
                        "{at}: {line} in {:.0} s — {}",
                        t0.elapsed().as_secs_f64(),
                        if rec.dir.is_empty() {
                            "no run folder"
                        } else {
                            &rec.dir
                        }
                    );
                    if rec.results.get("error").is_some() {
                        errors.push(format!("{} seed {seed}: {line}", cfg.name));
                    }
                    caught = rec.results["valid"] == Value::Bool(false)
                        && rec.results.get("error").is_none();
                    records[ci].push(*rec);
                    if hunt && caught {
                        eprintln!(
                            "{}: caught at seed {seed} after {} runs; its other seeds are not run",
                            cfg.name,
                            records[ci].len()
                        );
                        break;
                    }
                }
                Outcome::Interrupted(d) => {
                    eprintln!(
                        "{at}: interrupted; kept in {} but left out of the table",
                        d.as_deref().unwrap_or("(no folder)")
                    );
                    stopped = true;
                    break 'outer;
                }
            }
        }
        if hunt && !caught {
            eprintln!(
                "{}: no invalid run in {} seeds",
                cfg.name,
                records[ci].len()
            );
        }
    }
    let interrupted = STOP.load(Ordering::SeqCst) || stopped;
    let rows: Vec<row::Row> = m
        .configs
        .iter()
        .zip(&records)
        .filter(|(_, r)| !r.is_empty())
        .map(|(c, r)| row::build(c, r))
        .collect();
    let meta = Meta {
        stamp,
        command,
        seeds: m.seeds.clone(),
        test_count: args.test_count,
        interrupted: interrupted.then_some((done, total)),
    };
    compare::write_all(&dir, &meta, &rows)?;
    eprint!("\n{}", table::markdown_table(&rows));
    let broken = table::broken(&rows);
    for b in &broken {
        eprintln!("quorate compare: expectation {b}");
    }
    for e in &errors {
        eprintln!("quorate compare: run error: {e}");
    }
    if interrupted {
        eprintln!(
            "quorate compare: interrupted after {done} of {total} runs; the table covers those"
        );
    }
    println!("{}", dir.display());
    Ok(if interrupted || !errors.is_empty() {
        3
    } else if !broken.is_empty() {
        1
    } else {
        0
    })
}

/// `valid`, `INVALID (linearizable, stale-reads)`, `unknown` or `error: …`.
fn verdict_line(r: &Value) -> String {
    if let Some(e) = r.get("error") {
        return format!("error: {}", e.as_str().unwrap_or("?"));
    }
    let failed: Vec<&str> = r["checks"]
        .as_object()
        .map(|c| {
            c.iter()
                .filter(|(_, v)| v["valid"] == Value::Bool(false))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    match &r["valid"] {
        Value::Bool(true) => "valid".into(),
        Value::Bool(false) => format!("INVALID ({})", failed.join(", ")),
        _ => "unknown".into(),
    }
}

/// Run one configuration with one seed as a child `quorate run`, waiting for it while watching
/// the stop flag.
fn run_one(exe: &Path, dir: &Path, cfg: &Config, seed: u64) -> anyhow::Result<Outcome> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    let log_path = logs.join(format!("{}-seed{seed}.log", cfg.name));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("create {}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .args(&cfg.argv)
        .args(["--seed", &seed.to_string(), "--name", &cfg.name])
        .arg("--results")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: between fork and exec only prctl, which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {} run", exe.display()))?;
    let mut forwarded = false;
    let status = loop {
        if let Some(s) = child.try_wait().context("wait for the run")? {
            break s;
        }
        if STOP.load(Ordering::SeqCst) && !forwarded {
            // A terminal's Ctrl-C reached the child too; a signal sent to compare alone did not.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    // The last line on a run's stdout is its folder (INTERFACES.md).
    let run_dir = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.join("test.json").exists());
    let rel = run_dir.as_ref().map(|p| {
        p.strip_prefix(dir)
            .unwrap_or(p)
            .to_string_lossy()
            .to_string()
    });
    let results = run_dir
        .as_ref()
        .and_then(|p| std::fs::read(p.join("results.json")).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let was_stopped = STOP.load(Ordering::SeqCst)
        || results
            .as_ref()
            .is_some_and(|r| r["interrupted"] == Value::Bool(true));
    if was_stopped {
        return Ok(Outcome::Interrupted(rel));
    }
    let (results, measure) = match (results, &run_dir) {
        (Some(r), Some(p)) => match measure::measure(p, &r) {
            Ok(m) => (r, Some(m)),
            Err(e) => {
                let mut r = r;
                r["error"] = json!(format!("reading the run back: {e}"));
                (r, None)
            }
        },
        _ => {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            (
                json!({"error": format!("quorate run exited with {status} and no results ({last}); see {}", log_path.display())}),
                None,
            )
        }
    };
    Ok(Outcome::Finished(Box::new(RunRecord {
        seed,
        dir: rel.unwrap_or_default(),
        results,
        measure,
    })))
}
