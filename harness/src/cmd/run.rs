//! `quorate run`: flags (INTERFACES.md's table, exactly), the results folder, and the exit
//! code. Validation and the machine's probe are [`crate::plan`]'s; the phases
//! [`crate::runner`]'s.

use crate::backend::BackendKind;
use crate::plan::RunPlan;
use crate::targets::{self, TargetArgs, TargetKind};
use crate::workload::WorkloadKind;
use crate::{judge, junit, runner, store};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone, Serialize)]
pub struct RunArgs {
    /// The system under test.
    #[arg(long, value_enum, default_value = "node")]
    pub target: TargetKind,
    /// How nodes are run and faults injected.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendKind,
    /// `--backend ssh`: the hosts file (one member per host; see INTERFACES.md).
    #[arg(long)]
    pub hosts: Option<PathBuf>,
    /// `--backend ssh`: leave each member's folder on its host after the run.
    #[arg(long)]
    pub keep_remote: bool,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Each target's own flags (`--preset`, `--n`, … for the node; `--garage-*` for Garage).
    #[command(flatten)]
    #[serde(flatten)]
    pub target_args: TargetArgs,
    /// What clients do.
    #[arg(long, value_enum, default_value = "register")]
    pub workload: WorkloadKind,
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
    /// The checks that judge the run (and so its verdict and exit code), a comma list as
    /// `quorate check --checks`: for registers linearizable, stale-reads, lost-writes,
    /// sessions, convergence; for sets set, set-read-after-write, convergence [default: the
    /// workload's: every register check that applies; set and convergence].
    #[arg(long, value_name = "LIST")]
    pub checks: Option<String>,
    /// Faults: partition,kill,pause,stale-restore,clock-skew,slow,flaky,power-loss,reconfigure,
    /// or none.
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
    /// `clock-skew`: how each window moves clocks, a comma list of skew (offsets seconds
    /// apart, the default), bump (Jepsen's ±2^2..2^18 ms, held until a reset), strobe (jumping
    /// to and from an offset every few ms, bounded), reset (back to true time); each window
    /// draws one.
    #[arg(long)]
    pub clock_mode: Option<String>,
    /// `clock-skew`: magnitudes, MIN..MAX ms: the ladder's spacing for skew (default
    /// 2000..5000), each offset's size for bump and strobe (default 4..262144).
    #[arg(long)]
    pub clock_skew_ms: Option<String>,
    /// `power-loss`: whom each cut takes down: one (a member, drawn) or majority (a majority
    /// of the busy key's replicas at once, as a rack losing power; of the members when the
    /// target's placement is unknown). Default one.
    #[arg(long, value_enum)]
    pub power_loss_scope: Option<crate::nemesis::power_loss::Scope>,
    /// `power-loss`: skip the checkpoint after set-up, so a cut may also drop what members
    /// wrote while the cluster was set up (a power cut soon after a first boot).
    #[arg(long)]
    pub power_loss_from_start: bool,
    /// `partition`: the kinds drawn, a comma list of one, halves, majorities-ring, bridge,
    /// one-way, home-nodes (the default: all six) and Jepsen's minority-third and majority.
    #[arg(long)]
    pub partition_kinds: Option<String>,
    /// `reconfigure`: how many members each window keeps as storage members, the others made
    /// gateways (default 3, as Garage's `reconfigure-subset 3`).
    #[arg(long)]
    pub reconfigure_keep: Option<usize>,
    /// Seconds between fault starts (each lasts about as long).
    #[arg(long, default_value_t = 5.0)]
    pub nemesis_interval: f64,
    /// The seed of the workload and the fault schedule (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Hunt for a rare anomaly: run up to N whole runs, one after another, with seeds
    /// `--seed`, `--seed`+1, … (wrapping at 2^64), stopping at the first invalid run or error;
    /// each seed's verdict is printed and the exit code is the worst of the runs.
    #[arg(long, default_value_t = 1)]
    pub test_count: u64,
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
    let seed = args.seed.unwrap_or_else(rand::random);
    if args.test_count <= 1 {
        // Today's single run, exactly: no hunt, no extra output. (0 is refused by the run's
        // own plan validation, before anything starts.)
        return once_or_error(&args, seed).code;
    }
    super::hunt::main(&args, seed)
}

/// What one whole run ended with: its exit code, its folder (none when it was refused before
/// one was made), and whether Ctrl-C cut it short.
pub(crate) struct Once {
    pub code: u8,
    pub dir: Option<PathBuf>,
    pub interrupted: bool,
}

/// One run with `seed`; a harness failure is printed and becomes exit 3.
pub(crate) fn once_or_error(args: &RunArgs, seed: u64) -> Once {
    run(args, seed).unwrap_or_else(|e| {
        eprintln!("quorate run: error: {e:#}");
        Once {
            code: 3,
            dir: None,
            interrupted: false,
        }
    })
}

fn refused(e: impl std::fmt::Display) -> anyhow::Result<Once> {
    eprintln!("quorate run: {e}");
    Ok(Once {
        code: 3,
        dir: None,
        interrupted: false,
    })
}

fn run(args: &RunArgs, seed: u64) -> anyhow::Result<Once> {
    use anyhow::Context;
    let mut cfg = match RunPlan::validate(args, seed) {
        Ok(x) => x,
        Err(e) => return refused(e),
    };
    // Before anything starts: a program that is missing or a configuration the store refuses
    // would only fail later, member by member, after waiting for health checks that cannot
    // pass.
    if let Err(e) = cfg.probe() {
        return refused(e);
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", cfg.target.run_name(), cfg.workload.name()));
    let versions = cfg.target.versions();
    eprintln!("quorate run: seed {seed}");
    let run_dir = store::create_run_dir(&args.results, &name)
        .with_context(|| format!("create a run folder under {}", args.results.display()))?;
    install_logging(&run_dir)?;
    tracing::info!("run {name}: seed {seed}, folder {}", run_dir.display());
    let started = store::now_stamp();
    let mut test = json!({
        "name": name,
        "started": started,
        "seed": seed,
        "args": args,
        "node_args": args.target_args.node.node_args(),
        "nodes": cfg.nodes,
        "model": cfg.workload.model().to_string(),
        "quiet_ms": cfg.quiet().as_millis() as u64,
        "versions": versions,
    });
    // `--target-file` chooses the target whatever `--target` says: test.json names the one run.
    test["args"]["target"] = json!(cfg.target.kind().name());
    let test_path = run_dir.join("test.json");
    std::fs::write(&test_path, serde_json::to_vec_pretty(&test)?)
        .with_context(|| format!("write {}", test_path.display()))?;
    let _ = store::update_latest(&args.results, &run_dir);

    let t0 = Instant::now();
    let outcome = runner::run(&cfg, &run_dir);
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
        cfg.check_time_limit
    };
    let mut results = if history.exists() {
        judge::check_with(
            &history,
            cfg.workload.model(),
            &cfg.checks,
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
        if !o.not_restarted.is_empty() {
            results["run"]["not_restarted"] = json!(o.not_restarted);
        }
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
    if let Some(lost) = results["run"]["not_restarted"].as_object() {
        let names: Vec<&str> = lost.keys().map(String::as_str).collect();
        eprintln!(
            "power-loss: {} would not start again on what survived the cut (a finding; why: power-loss-stop's \"not_restarted\" in history.jsonl)",
            names.join(", ")
        );
    }
    if let Some(e) = run_error {
        eprintln!("quorate run: error: {e}");
    }
    println!("{}", run_dir.display());
    Ok(Once {
        code,
        dir: Some(run_dir),
        interrupted,
    })
}
