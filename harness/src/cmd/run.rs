//! `quorate run`: flags (INTERFACES.md's table, exactly), validation, the results folder, and
//! the exit code. The phases themselves live in [`crate::runner`].

use crate::backend::{self, node_ids, BackendKind};
use crate::nemesis::{self, Fault};
use crate::runner::{self, RunConfig};
use crate::targets::{self, Common, Spec, TargetArgs, TargetKind};
use crate::{judge, junit, store};
use clap::{Args, ValueEnum};
use quorate_checker::check::Check;
use quorate_workloads::{RegisterWorkload, SetWorkload};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    Register,
    Set,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct RunArgs {
    /// The system under test.
    #[arg(long, value_enum, default_value = "node")]
    pub target: TargetKind,
    /// How nodes are run and faults injected.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendKind,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Each target's own flags (`--preset`, `--n`, … for the node; `--garage-*` for Garage).
    #[command(flatten)]
    #[serde(flatten)]
    pub target_args: TargetArgs,
    /// What clients do.
    #[arg(long, value_enum, default_value = "register")]
    pub workload: Workload,
    /// Register op mix: read,write[,cas] (reads may be left out: `--ops write`).
    #[arg(long, default_value = "read,write")]
    pub ops: String,
    /// Logical client processes.
    #[arg(long, default_value_t = 10)]
    pub concurrency: u64,
    /// Ops per second over all clients (default: unlimited).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Register keys (sets, for `--workload set`) rotate after this many ops.
    #[arg(long, default_value_t = 200)]
    pub ops_per_key: u64,
    /// Length of the fault phase, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub time_limit: f64,
    /// Checking budget per key, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub check_time_limit: f64,
    /// Faults: partition,kill,pause,stale-restore,clock-skew,slow,flaky, or none.
    #[arg(long, default_value = "partition,kill")]
    pub nemesis: String,
    /// `slow`: delay per forwarded chunk on the slowed links, in ms.
    #[arg(long, default_value_t = 50)]
    pub slow_delay_ms: u64,
    /// `slow`: jitter of that delay (uniform within ± this), redrawn every 10 ms, in ms.
    #[arg(long, default_value_t = 25)]
    pub slow_jitter_ms: u64,
    /// `flaky`: chance that a flaky link's connections are reset, per link every 100 ms.
    #[arg(long, default_value_t = 0.2)]
    pub flaky_reset_probability: f64,
    /// Seconds between fault starts (each lasts about as long).
    #[arg(long, default_value_t = 5.0)]
    pub nemesis_interval: f64,
    /// The seed of the workload and the fault schedule (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Root of the results store.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// The run's folder name (default `<target>-<preset>-<workload>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Write JUnit XML here, one testcase per check.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Clients dial nodes directly, bypassing the fault proxy (benchmarks; client links then
    /// cannot be faulted).
    #[arg(long)]
    pub direct_clients: bool,
    /// Client op timeout in ms (a timeout is recorded as info).
    #[arg(long, default_value_t = 2500)]
    pub op_timeout_ms: u64,
    /// Quiet period after healing, in seconds (default: 3 anti-entropy intervals + 2 s;
    /// 5 s for --target garage).
    #[arg(long)]
    pub quiet: Option<f64>,
}

fn positive(name: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{name} {v}: expected a number of seconds > 0"))
    }
}

/// Check every flag and build the run's configuration. Errors name the flag.
pub fn validate(a: &RunArgs, seed: u64) -> Result<(RunConfig, Vec<Fault>), String> {
    targets::refuse_foreign_flags(a.target, &a.target_args)?;
    let faults = nemesis::parse_list(&a.nemesis)?;
    if a.backend == BackendKind::Netns {
        backend::netns::preflight().map_err(|e| e.to_string())?;
    }
    if !(1..=64).contains(&a.nodes) {
        return Err(format!("--nodes {}: expected 1 to 64", a.nodes));
    }
    if a.concurrency == 0 || a.concurrency > 1000 {
        return Err(format!(
            "--concurrency {}: expected 1 to 1000",
            a.concurrency
        ));
    }
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(format!("--rate {r}: expected ops per second > 0"));
        }
    }
    let time_limit = positive("--time-limit", a.time_limit)?;
    positive("--check-time-limit", a.check_time_limit)?;
    let interval = positive("--nemesis-interval", a.nemesis_interval)?;
    let p = a.flaky_reset_probability;
    if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
        return Err(format!(
            "--flaky-reset-probability {p}: expected a probability from 0 to 1"
        ));
    }
    let link_faults = nemesis::LinkFaults {
        delay: Duration::from_millis(a.slow_delay_ms),
        jitter: Duration::from_millis(a.slow_jitter_ms),
        reset_probability: p,
    };
    if let Some(name) = &a.name {
        store::validate_name(name)?;
    }
    let workload = RegisterWorkload::new(&a.ops, a.ops_per_key, a.concurrency, seed)
        .map_err(|e| e.to_string())?;
    if a.workload == Workload::Set && a.ops != "read,write" {
        return Err(format!(
            "--ops {:?} applies to --workload register; the set workload's ops are add and read",
            a.ops
        ));
    }
    let set = match a.workload {
        Workload::Register => None,
        Workload::Set => {
            Some(SetWorkload::new(a.ops_per_key, a.concurrency, seed).map_err(|e| e.to_string())?)
        }
    };
    targets::check(a.target, a.backend, &faults, &workload.ops)?;
    let common = Common {
        nodes: a.nodes,
        faults: &faults,
        seed,
    };
    let target = Spec::new(a.target, &a.target_args, common)?;
    let quiet = match a.quiet {
        Some(q) if q >= 0.0 && q.is_finite() => Some(Duration::from_secs_f64(q)),
        Some(q) => return Err(format!("--quiet {q}: expected seconds >= 0")),
        None => None,
    };
    if a.op_timeout_ms == 0 {
        return Err("--op-timeout-ms 0: expected a timeout > 0".into());
    }
    Ok((
        RunConfig {
            nodes: node_ids(a.nodes),
            workload,
            set,
            link_faults,
            time_limit,
            interval,
            quiet,
            op_timeout: Duration::from_millis(a.op_timeout_ms),
            rate: a.rate,
            direct_clients: a.direct_clients,
            seed,
            backend: a.backend,
            target,
        },
        faults,
    ))
}

/// The model a run's history is checked against.
fn model(cfg: &RunConfig) -> quorate_checker::model::ModelKind {
    match &cfg.set {
        Some(set) => set.model(),
        None => cfg.workload.model(),
    }
}

/// The checks a run asks for (empty: the checker's default, every one that applies). A set
/// read is many element reads at different instants, not a snapshot, so the set as a whole
/// is not something the store claims to be linearizable: the set workload gets Jepsen's
/// set-full (`set`) and `convergence`, and `linearizable` is reported skipped with that reason.
fn checks(cfg: &RunConfig) -> &'static [Check] {
    match cfg.set {
        Some(_) => &[Check::Set, Check::Convergence],
        None => &[],
    }
}

/// Logs: everything at info and above to `<run>/harness.log` (every nemesis action, its
/// targets and its outcome among them), warn and above to stderr as well.
fn install_logging(run_dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;
    let path = run_dir.join("harness.log");
    let file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let to_file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .with_filter(LevelFilter::INFO);
    let to_stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(LevelFilter::WARN);
    // A second run in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(to_file)
        .with(to_stderr)
        .try_init();
    Ok(())
}

pub fn main(args: RunArgs) -> u8 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quorate run: error: {e:#}");
            3
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    use anyhow::Context;
    let seed = args.seed.unwrap_or_else(rand::random);
    let (mut cfg, faults) = match validate(&args, seed) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("quorate run: {e}");
            return Ok(3);
        }
    };
    // Before anything starts: a program that is missing or a configuration the store refuses
    // would only fail later, member by member, after waiting for health checks that cannot
    // pass.
    if let Err(e) = cfg.target.prepare(&cfg.nodes) {
        eprintln!("quorate run: {e}");
        return Ok(3);
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let workload = match args.workload {
            Workload::Register => "register",
            Workload::Set => "set",
        };
        format!("{}-{workload}", cfg.target.run_name())
    });
    let versions = cfg.target.versions();
    eprintln!("quorate run: seed {seed}");
    let run_dir = store::create_run_dir(&args.results, &name)
        .with_context(|| format!("create a run folder under {}", args.results.display()))?;
    install_logging(&run_dir)?;
    tracing::info!("run {name}: seed {seed}, folder {}", run_dir.display());
    let started = store::now_stamp();
    let test = json!({
        "name": name,
        "started": started,
        "seed": seed,
        "args": args,
        "node_args": args.target_args.node.node_args(),
        "nodes": cfg.nodes,
        "model": model(&cfg).to_string(),
        "quiet_ms": cfg.quiet().as_millis() as u64,
        "versions": versions,
    });
    let test_path = run_dir.join("test.json");
    std::fs::write(&test_path, serde_json::to_vec_pretty(&test)?)
        .with_context(|| format!("write {}", test_path.display()))?;
    let _ = store::update_latest(&args.results, &run_dir);

    let t0 = Instant::now();
    let outcome = runner::run(&cfg, &faults, &run_dir);
    let (interrupted, run_error) = match &outcome {
        Ok(o) => (o.interrupted, None),
        Err(e) => (false, Some(format!("{e:#}"))),
    };
    // Even a failed run keeps what it recorded: check whatever history there is.
    let history = run_dir.join("history.jsonl");
    let budget = if interrupted {
        // Ctrl-C must end the run within 30 s: a short checking budget per key.
        Duration::from_secs(2)
    } else {
        Duration::from_secs_f64(args.check_time_limit)
    };
    let mut results = if history.exists() {
        judge::check_with(
            &history,
            model(&cfg),
            checks(&cfg),
            budget,
            &run_dir,
            targets::convergence_unmeasured(cfg.target.kind()).as_deref(),
        )
    } else {
        json!({"file": "history.jsonl", "error": "no history recorded"})
    };
    if let Some(e) = &run_error {
        results["error"] = json!(e);
    }
    if interrupted {
        results["interrupted"] = json!(true);
    }
    // An extension beside check's fields: what the run itself measured.
    if let Ok(o) = &outcome {
        results["run"] = json!({
            "invokes": o.invokes, "ok": o.ok, "fail": o.fail, "info": o.info,
            "ops_per_s": (o.rate * 10.0).round() / 10.0, "faults": o.faults,
            "converged": o.converged, "interrupted": o.interrupted,
            "node_stats": o.node_stats,
            "repairs": o.repairs,
        });
    }
    let results_path = run_dir.join("results.json");
    std::fs::write(&results_path, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("write {}", results_path.display()))?;
    if let Some(j) = &args.junit {
        std::fs::write(
            j,
            junit::render(&name, &results, t0.elapsed().as_secs_f64()),
        )
        .with_context(|| format!("write --junit {}", j.display()))?;
    }
    let code = judge::exit_code(&results);
    eprintln!("{}", judge::summary(&results, outcome.as_ref().ok()));
    if let Some(s) = results["run"]["repairs"]["sentence"].as_str() {
        eprintln!("{s}");
    }
    if let Some(e) = run_error {
        eprintln!("quorate run: error: {e}");
    }
    println!("{}", run_dir.display());
    Ok(code)
}
