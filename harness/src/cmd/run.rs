//! `quorate run`: flags (INTERFACES.md's table, exactly), validation, the results folder, and
//! the exit code. The phases themselves live in [`crate::runner`].

use crate::backend::{self, node_ids, BackendKind, Target};
use crate::nemesis::{self, Fault};
use crate::runner::{self, RunConfig};
use crate::target::{self, garage::GarageArgs};
use crate::{judge, junit, node_stats, store};
use clap::{Args, ValueEnum};
use quorate_checker::check::Check;
use quorate_workloads::{RegisterWorkload, SetWorkload};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    Register,
    Set,
}

/// The node's presets (target-node's `--preset`).
pub const PRESETS: [&str; 5] = ["abd", "lww", "strict", "dynamo", "weak"];

#[derive(Args, Debug, Clone, Serialize)]
pub struct RunArgs {
    /// The system under test.
    #[arg(long, value_enum, default_value = "node")]
    pub target: Target,
    /// How nodes are run and faults injected.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendKind,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Node preset: abd, lww, strict, dynamo, weak (passed to every node).
    #[arg(long, default_value = "strict")]
    pub preset: String,
    /// Replicas per key (passed to every node).
    #[arg(long)]
    pub n: Option<usize>,
    /// Read quorum (passed to every node).
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum (passed to every node).
    #[arg(long)]
    pub w: Option<usize>,
    /// Read repair: off, async, blocking (passed to every node).
    #[arg(long)]
    pub read_repair: Option<String>,
    /// Write mode: lww, two-phase (passed to every node).
    #[arg(long)]
    pub write_mode: Option<String>,
    /// Sloppy quorum with hinted handoff: true/false (passed to every node).
    #[arg(long)]
    pub sloppy_quorum: Option<bool>,
    /// Fsync policy: always, never (passed to every node).
    #[arg(long)]
    pub fsync: Option<String>,
    /// Anti-entropy period in ms (passed to every node; the node's default is 1000).
    #[arg(long)]
    pub anti_entropy_interval_ms: Option<u64>,
    /// Coordinator quorum deadline in ms (passed to every node; default 1000).
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Per-replica call deadline in ms (passed to every node; default 300).
    #[arg(long)]
    pub replica_timeout_ms: Option<u64>,
    /// Virtual nodes per node (passed to every node; default 64).
    #[arg(long)]
    pub vnodes: Option<usize>,
    /// Any other node flag, passed through verbatim: `--node-arg=--handoff-interval-ms=200`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
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
    /// The quorate-node binary (default: beside this executable).
    #[arg(long, env = "QUORATE_NODE_BIN")]
    pub node_bin: Option<PathBuf>,
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
    /// `--target garage`'s flags (`--garage-consistency`, `--garage-bin`,
    /// `--garage-rpc-timeout-ms`).
    #[command(flatten)]
    #[serde(flatten)]
    pub garage: GarageArgs,
}

/// The node flags given explicitly (they mean nothing to another target).
fn node_flags_given(a: &RunArgs) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut given = |set: bool, flag: &'static str| {
        if set {
            v.push(flag)
        }
    };
    given(a.n.is_some(), "--n");
    given(a.r.is_some(), "--r");
    given(a.w.is_some(), "--w");
    given(a.read_repair.is_some(), "--read-repair");
    given(a.write_mode.is_some(), "--write-mode");
    given(a.sloppy_quorum.is_some(), "--sloppy-quorum");
    given(a.fsync.is_some(), "--fsync");
    given(
        a.anti_entropy_interval_ms.is_some(),
        "--anti-entropy-interval-ms",
    );
    given(a.request_timeout_ms.is_some(), "--request-timeout-ms");
    given(a.replica_timeout_ms.is_some(), "--replica-timeout-ms");
    given(a.vnodes.is_some(), "--vnodes");
    given(!a.node_args.is_empty(), "--node-arg");
    v
}

fn positive(name: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{name} {v}: expected a number of seconds > 0"))
    }
}

/// The flags passed to every node, in a fixed order.
pub fn node_args(a: &RunArgs) -> Vec<String> {
    let mut v = vec!["--preset".to_string(), a.preset.clone()];
    let mut push = |flag: &str, val: Option<String>| {
        if let Some(val) = val {
            v.push(format!("--{flag}"));
            v.push(val);
        }
    };
    push("n", a.n.map(|x| x.to_string()));
    push("r", a.r.map(|x| x.to_string()));
    push("w", a.w.map(|x| x.to_string()));
    push("read-repair", a.read_repair.clone());
    push("write-mode", a.write_mode.clone());
    push("sloppy-quorum", a.sloppy_quorum.map(|x| x.to_string()));
    push("fsync", a.fsync.clone());
    push(
        "anti-entropy-interval-ms",
        a.anti_entropy_interval_ms.map(|x| x.to_string()),
    );
    push(
        "request-timeout-ms",
        a.request_timeout_ms.map(|x| x.to_string()),
    );
    push(
        "replica-timeout-ms",
        a.replica_timeout_ms.map(|x| x.to_string()),
    );
    push("vnodes", a.vnodes.map(|x| x.to_string()));
    v.extend(a.node_args.iter().cloned());
    v
}

/// Check every flag and build the run's configuration. Errors name the flag.
pub fn validate(a: &RunArgs, seed: u64) -> Result<(RunConfig, Vec<Fault>), String> {
    if a.target == Target::Etcd {
        return Err("--target etcd: not available yet; expected --target node or garage".into());
    }
    if a.target != Target::Node {
        if let Some(flag) = node_flags_given(a).first() {
            return Err(format!(
                "{flag}: a quorate-node flag, but --target is not node; Garage's quorums come \
                 from --garage-consistency"
            ));
        }
    }
    if a.target != Target::Garage && a.garage.garage_rpc_timeout_ms.is_some() {
        return Err(
            "--garage-rpc-timeout-ms: a --target garage flag; the node's deadlines are \
             --request-timeout-ms and --replica-timeout-ms"
                .into(),
        );
    }
    let faults = nemesis::parse_list(&a.nemesis)?;
    if a.backend == BackendKind::Netns {
        backend::netns::preflight().map_err(|e| e.to_string())?;
    }
    if !PRESETS.contains(&a.preset.as_str()) {
        return Err(format!(
            "--preset {:?}: expected one of {}",
            a.preset,
            PRESETS.join(", ")
        ));
    }
    if !(1..=64).contains(&a.nodes) {
        return Err(format!("--nodes {}: expected 1 to 64", a.nodes));
    }
    nemesis::partition::check_links(&faults, a.nodes)?;
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
    let n = a.n.unwrap_or(3);
    if n > a.nodes {
        return Err(format!(
            "--n {n} is larger than --nodes {}: a key cannot have more replicas than the cluster has nodes",
            a.nodes
        ));
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
    target::check(a.target, a.backend, &faults, &workload.ops)?;
    let target = match a.target {
        Target::Garage => target::Spec::Garage(target::garage::config(
            &a.garage,
            a.nodes,
            faults.contains(&Fault::ClockSkew),
            seed,
        )?),
        _ => target::Spec::Node,
    };
    let ae_ms = a.anti_entropy_interval_ms.unwrap_or(1000);
    let quiet = match a.quiet {
        Some(q) if q >= 0.0 && q.is_finite() => Duration::from_secs_f64(q),
        Some(q) => return Err(format!("--quiet {q}: expected seconds >= 0")),
        // Garage repairs on read and has no anti-entropy period to outlast here.
        None if a.target == Target::Garage => Duration::from_secs(5),
        // Outlast three anti-entropy rounds, plus slack for a busy machine.
        None => Duration::from_millis(3 * ae_ms + 2000),
    };
    if a.op_timeout_ms == 0 {
        return Err("--op-timeout-ms 0: expected a timeout > 0".into());
    }
    Ok((
        RunConfig {
            nodes: node_ids(a.nodes),
            node_args: node_args(a),
            ring_n: n,
            vnodes: a.vnodes.unwrap_or(64),
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

fn node_version(bin: &Path) -> Value {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| json!(String::from_utf8_lossy(&o.stdout).trim().to_string()))
        .unwrap_or(Value::Null)
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
    let (cfg, faults) = match validate(&args, seed) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("quorate run: {e}");
            return Ok(3);
        }
    };
    let node_bin = match &cfg.target {
        // Another target's program is its launch's business; this path is only recorded.
        target::Spec::Garage(g) => g.bin.clone(),
        target::Spec::Node => match backend::find_node_bin(args.node_bin.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("quorate run: {e}");
                return Ok(3);
            }
        },
    };
    // Before anything starts: a configuration the node refuses would only fail later, node by
    // node, after waiting for health checks that cannot pass.
    if cfg.target.kind() == Target::Node {
        if let Err(e) = backend::check_node_config(&node_bin, &cfg.nodes, &cfg.node_args) {
            eprintln!("quorate run: {e}");
            return Ok(3);
        }
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let target = match &cfg.target {
            target::Spec::Garage(g) => format!("garage-{}", g.consistency.name()),
            target::Spec::Node => format!("node-{}", args.preset),
        };
        let workload = match args.workload {
            Workload::Register => "register",
            Workload::Set => "set",
        };
        format!("{target}-{workload}")
    });
    let versions = match &cfg.target {
        target::Spec::Garage(g) => json!({
            "quorate": env!("CARGO_PKG_VERSION"),
            "garage": g.version,
        }),
        target::Spec::Node => json!({
            "quorate": env!("CARGO_PKG_VERSION"),
            "quorate-node": node_version(&node_bin),
        }),
    };
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
        "node_args": cfg.node_args,
        "nodes": cfg.nodes,
        "model": model(&cfg).to_string(),
        "quiet_ms": cfg.quiet.as_millis() as u64,
        "versions": versions,
    });
    let test_path = run_dir.join("test.json");
    std::fs::write(&test_path, serde_json::to_vec_pretty(&test)?)
        .with_context(|| format!("write {}", test_path.display()))?;
    let _ = store::update_latest(&args.results, &run_dir);

    let t0 = Instant::now();
    let outcome = runner::run(&cfg, &faults, &node_bin, &run_dir);
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
            target::convergence_unmeasured(cfg.target.kind()).as_deref(),
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
            "repairs": match target::repairs_unmeasured(cfg.target.kind()) {
                None => node_stats::repairs(&o.node_stats),
                Some(why) => json!({"skipped": why, "sentence": format!("repairs: not measured: {why}")}),
            },
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
