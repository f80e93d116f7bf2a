//! `quorate check FILE…`: check histories offline (INTERFACES.md).
//!
//! The checking itself is `quorate_checker::check`; this file parses the flags, prints (JSON
//! Lines on stdout with `--json`, a summary per file otherwise; anything else on stderr), writes
//! `--out`, and combines the files' exit codes: error (3) > invalid (1) > unknown (2) > valid (0).

use anyhow::{Context, Result};
use clap::Args;
use quorate_checker::check::{combine_exit_codes, Check, CheckOptions, FileOutcome};
use quorate_checker::import::Format;
use quorate_checker::model::ModelKind;
use quorate_checker::report::{self, RunInfo};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(after_help = "\
Exit codes: 0 valid, 1 invalid, 2 unknown (a check gave up or had nothing to judge, such as \
no completed read, or every check named by --checks was skipped), 3 error (bad flag, \
unreadable file). Over several files: error > invalid > unknown > valid. A JSONL file whose last \
line was cut off mid-write is checked up to the line before it, and says so.

--out DIR with one file writes DIR/results.json and the reports: timeline.html, latency.svg, \
rate.svg and staleness.svg (titled from a test.json beside the file, when there is one); with \
several files, one folder per file, DIR/<file name>/ (a numeric suffix when two names clash), and \
DIR/results.jsonl holding every file's object, one per line.")]
pub struct CheckArgs {
    /// History files: quorate JSONL, Jepsen EDN, Porcupine etcd or kv logs.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// How to read the files: auto|jsonl|jepsen-edn|porcupine-etcd|porcupine-kv; auto
    /// recognises each file's format from its content.
    #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = parse_format)]
    pub format: Format,

    /// The model: cas-register|register|kv|set [default: cas-register, or kv for kv histories
    /// (porcupine-kv files, or ops named get/put/append)].
    #[arg(long, value_name = "MODEL", value_parser = parse_model)]
    pub model: Option<ModelKind>,

    /// A register's starting value, as JSON (e.g. 0 or "a") [default: none, so a read of null
    /// matches it].
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub initial: Option<Value>,

    /// Comma-separated checks [default: linearizable plus every quorum check that applies]:
    /// linearizable, stale-reads, lost-writes, sessions, convergence, set. Named, a check that
    /// does not apply to the history says why it was skipped; when all are, the file is unknown.
    #[arg(long, value_name = "LIST", value_parser = parse_checks)]
    pub checks: Option<CheckList>,

    /// Checking budget per key, in seconds; a key that runs out is unknown.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub time_limit: Duration,

    /// Print one JSON object per file on stdout (JSON Lines) and nothing else.
    #[arg(long)]
    pub json: bool,

    /// Write results.json and the reports (a self-contained timeline.html, latency.svg,
    /// rate.svg, staleness.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The checks `--checks` named, in the order given.
#[derive(Debug, Clone)]
pub struct CheckList(pub Vec<Check>);

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.parse()
}

fn parse_checks(s: &str) -> Result<CheckList, String> {
    Check::parse_list(s).map(CheckList)
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| {
        format!("{s:?} is not JSON ({e}); expected a JSON value such as 0, \"a\" or null (strings need their quotes)")
    })
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x < 1e9 => Ok(Duration::from_secs_f64(x)),
        _ => Err(format!(
            "{s:?} is not a time limit; expected a positive number of seconds such as 60 or 0.5"
        )),
    }
}

/// Run `quorate check`; returns the exit code.
pub fn main(args: CheckArgs) -> u8 {
    let opts = CheckOptions {
        format: args.format,
        model: args.model,
        initial: args.initial.clone(),
        checks: args.checks.clone().map(|c| c.0).unwrap_or_default(),
        time_limit: args.time_limit,
        ..CheckOptions::default()
    };
    let out_dirs = args.out.as_ref().map(|dir| out_dirs(dir, &args.files));
    let mut codes = Vec::with_capacity(args.files.len());
    let mut objects = Vec::with_capacity(args.files.len());
    let stdout = std::io::stdout();
    for (i, path) in args.files.iter().enumerate() {
        // Keys decided so far, on a terminal only, once the check has run for a while.
        let watch = (!args.json && std::io::stderr().is_terminal()).then(KeyProgress::start);
        let opts = CheckOptions {
            progress: watch.as_ref().map(|w| w.counters.clone()),
            ..opts.clone()
        };
        let outcome = FileOutcome::of(path, &opts);
        drop(watch);
        let object = outcome.to_json();
        let mut code = outcome.exit_code();
        let printed = {
            let mut w = stdout.lock();
            if args.json {
                writeln!(w, "{object}")
            } else {
                write!(w, "{}", outcome.summary())
            }
            .and_then(|()| w.flush())
        };
        if let Err(e) = printed {
            eprintln!("quorate check: cannot write to stdout: {e}");
            return 3;
        }
        if let Some(dirs) = &out_dirs {
            match write_out(&dirs[i], &outcome, &object) {
                Ok(html) => {
                    if let Some(html) = html {
                        eprintln!(
                            "quorate check: report {} (latency.svg, rate.svg, staleness.svg beside it)",
                            html.display()
                        );
                    }
                }
                Err(e) => {
                    eprintln!("quorate check: {e:#}");
                    code = 3;
                }
            }
        }
        codes.push(code);
        objects.push(object);
    }
    if let (Some(dir), true) = (&args.out, args.files.len() > 1) {
        if let Err(e) = write_jsonl(&dir.join("results.jsonl"), &objects) {
            eprintln!("quorate check: {e:#}");
            codes.push(3);
        }
    }
    combine_exit_codes(codes)
}

/// Where each file's results go: DIR itself for one file; DIR/<file name>/ for several, with
/// `-2`, `-3` … when two files share a name.
fn out_dirs(dir: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    if files.len() == 1 {
        return vec![dir.to_path_buf()];
    }
    let mut taken = BTreeSet::new();
    files
        .iter()
        .map(|f| {
            let base = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty() && n != "." && n != "..")
                .unwrap_or_else(|| "history".into());
            let mut name = base.clone();
            let mut n = 1;
            while !taken.insert(name.clone()) {
                n += 1;
                name = format!("{base}-{n}");
            }
            dir.join(name)
        })
        .collect()
}

/// Write `results.json` and, for a checked file, the reports; returns the timeline's path.
fn write_out(dir: &Path, outcome: &FileOutcome, object: &Value) -> Result<Option<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let results = dir.join("results.json");
    let mut text = serde_json::to_string_pretty(object)?;
    text.push('\n');
    std::fs::write(&results, text)
        .with_context(|| format!("cannot write {}", results.display()))?;
    let FileOutcome::Checked(report) = outcome else {
        return Ok(None);
    };
    let run = RunInfo::beside(Path::new(&report.file));
    let written = report::write_all(report, &run, dir)?;
    Ok(written.into_iter().next())
}

fn write_jsonl(path: &Path, objects: &[Value]) -> Result<()> {
    let mut text = String::new();
    for o in objects {
        text.push_str(&o.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The progress line of a long check: "linearizable: 12 of 186 keys decided, 0 unknown so
/// far", drawn on stderr from [`PROGRESS_AFTER`] on (a quick check prints nothing) and cleared
/// when the file is done. Its thread only reads the checker's counters.
struct KeyProgress {
    counters: Arc<quorate_checker::linear::Progress>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long a check runs before its progress is shown.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

impl KeyProgress {
    fn start() -> KeyProgress {
        let counters = Arc::new(quorate_checker::linear::Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counters.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let begun = Instant::now();
            let mut bar: Option<indicatif::ProgressBar> = None;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if begun.elapsed() < PROGRESS_AFTER {
                    continue;
                }
                let (done, keys, unknown) = c.snapshot();
                let b = bar.get_or_insert_with(|| {
                    let b = indicatif::ProgressBar::with_draw_target(
                        None,
                        indicatif::ProgressDrawTarget::stderr_with_hz(4),
                    );
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {msg}")
                            .expect("static template"),
                    );
                    b
                });
                b.set_message(if keys == 0 {
                    "reading the history and any quorum checks, then linearizable".to_string()
                } else {
                    format!("linearizable: {done} of {keys} keys decided, {unknown} unknown so far")
                });
                b.tick();
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        });
        KeyProgress {
            counters,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for KeyProgress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
