//! The phases of a run: start the cluster → clients and nemesis together for the time limit →
//! heal → quiet period → convergence observation → final reads of every key (every set, for
//! the set workload) → the nodes' `/stats` → stop.
//!
//! A run that cannot stand behind a verdict ends in an error (exit 3) instead: a fault that
//! could not be applied or healed (the nemesis stops at once, see [`crate::nemesis`]), or a
//! fault phase in which no client op was recorded.
//!
//! Shutdown is the part that must never fail: SIGINT/SIGTERM only flip a stop flag that every
//! loop watches; the nemesis heals on its way out; the cluster is shut down explicitly at the
//! end and again by `Drop` if anything panics or returns early. After a stop request the quiet
//! period and final reads are skipped so Ctrl-C ends the run well within 30 s.

use crate::backend::local::LocalCluster;
use crate::backend::netns::NetnsCluster;
use crate::backend::{BackendKind, Cluster, ClusterSpec};
use crate::client::{self, SlotConfig, Target};
use crate::convergence;
use crate::nemesis::{Ctx, Fault, LinkFaults, Nemesis};
use crate::node_stats;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::ring::Ring;
use crate::set_client::{self, SetRegistry};
use crate::target;
use anyhow::Context;
use quorate_workloads::{OpKind, OpSpec, RegisterWorkload, SetWorkload};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the run needs, validated (see `cmd::run::validate`).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub nodes: Vec<String>,
    pub node_args: Vec<String>,
    pub ring_n: usize,
    pub vnodes: usize,
    pub workload: RegisterWorkload,
    /// `--workload set`: clients run this instead of the register workload (whose
    /// `concurrency` still sizes the client slots).
    pub set: Option<SetWorkload>,
    /// Delay, jitter and reset probability of the `slow` and `flaky` faults.
    pub link_faults: LinkFaults,
    pub time_limit: Duration,
    pub interval: Duration,
    pub quiet: Duration,
    pub op_timeout: Duration,
    pub rate: Option<f64>,
    pub direct_clients: bool,
    pub seed: u64,
    pub backend: BackendKind,
    /// The system under test (`--target`).
    pub target: target::Spec,
}

#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub interrupted: bool,
    pub invokes: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub faults: usize,
    /// Client ops per second during the fault phase.
    pub rate: f64,
    pub converged: Option<bool>,
    /// Each node's `GET /stats` at the end of the run (see [`node_stats`]).
    pub node_stats: BTreeMap<String, Value>,
}

/// Run all phases on a fresh tokio runtime. History goes to `<run_dir>/history.jsonl`.
pub fn run(
    cfg: &RunConfig,
    faults: &[Fault],
    node_bin: &Path,
    run_dir: &Path,
) -> anyhow::Result<RunOutcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let res = rt.block_on(phases(cfg, faults, node_bin, run_dir));
    // Anything still running (a stuck op) is dropped here, not waited for.
    rt.shutdown_timeout(Duration::from_secs(2));
    res
}

async fn phases(
    cfg: &RunConfig,
    faults: &[Fault],
    node_bin: &Path,
    run_dir: &Path,
) -> anyhow::Result<RunOutcome> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    spawn_signal_handler(stop_tx.clone())?;

    let history = run_dir.join("history.jsonl");
    let rec = Arc::new(
        Recorder::create(&history).with_context(|| format!("create {}", history.display()))?,
    );
    let spec = ClusterSpec {
        nodes: cfg.nodes.clone(),
        node_bin: node_bin.to_path_buf(),
        node_args: cfg.node_args.clone(),
        run_dir: run_dir.to_path_buf(),
        direct_clients: cfg.direct_clients,
        link_faults: faults.iter().any(|f| f.needs_link_faults()),
    };
    // Declared before the cluster, so it is dropped after it (its `Drop` cleans up after
    // members that are gone).
    let target = target::build(&cfg.target, run_dir);
    let launch = target.launch(&spec);
    // Both backends clean up in `Drop` too, so an early return or a panic leaves nothing.
    let cluster: Arc<dyn Cluster> = match cfg.backend {
        BackendKind::Local => Arc::new(LocalCluster::start_with(spec, launch).await?),
        BackendKind::Netns => Arc::new(NetnsCluster::start_with(spec, launch).await?),
    };
    let result = match configure(target.as_ref(), cluster.as_ref(), stop_rx.clone()).await {
        Ok(()) => drive(cfg, faults, &cluster, target.as_ref(), &rec, stop_rx).await,
        Err(e) => Err(e),
    };
    let stopped = heal_and_shut_down(cluster.clone()).await;
    rec.sync();
    if let Some(e) = rec.error() {
        anyhow::bail!("writing {}: {e}", history.display());
    }
    crate::nemesis::keep_both(result, stopped)
}

/// Heal and stop the cluster off the async workers (kill + wait are blocking). A heal that
/// fails is the run's error (exit 3), not dropped: the cluster is shut down all the same.
async fn heal_and_shut_down(cluster: Arc<dyn Cluster>) -> anyhow::Result<()> {
    let healed = tokio::task::spawn_blocking(move || {
        let healed = cluster.heal();
        cluster.shutdown();
        healed
    })
    .await
    .context("healing and stopping the cluster")?;
    healed.map_err(|e| {
        tracing::error!("healing the cluster before stopping it: {e}");
        anyhow::anyhow!("healing the cluster before stopping it: {e}")
    })
}

/// The target's set-up after every member is up (joining, layout, credentials), cut short by
/// a stop request so Ctrl-C stays prompt.
async fn configure(
    target: &dyn target::Target,
    cluster: &dyn Cluster,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    tokio::select! {
        r = target.configure(cluster) => r,
        _ = stop.changed() => anyhow::bail!("interrupted while setting up the {} cluster", target.name()),
    }
}

fn spawn_signal_handler(stop: Arc<watch::Sender<bool>>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("\nquorate run: interrupted; healing, stopping nodes, keeping the history");
        let _ = stop.send(true);
    });
    Ok(())
}

async fn drive(
    cfg: &RunConfig,
    faults: &[Fault],
    cluster: &Arc<dyn Cluster>,
    sut: &dyn target::Target,
    rec: &Arc<Recorder>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<RunOutcome> {
    let api = sut.api();
    let targets: Vec<Target> = cluster
        .nodes()
        .iter()
        .map(|n| Target {
            node: n.clone(),
            addr: cluster.client_addr(n),
            api: api.clone(),
        })
        .collect();
    let busy = Arc::new(AtomicU64::new(0));
    let pin = client::KeyPin::new();
    let (clients_tx, clients_rx) = watch::channel(false);
    let pace = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.workload.concurrency as f64 / r));
    let slot_cfg = SlotConfig {
        targets: targets.clone(),
        concurrency: cfg.workload.concurrency,
        timeout: cfg.op_timeout,
        pace,
        // A bound, far above what any run reaches, so no client loop is unbounded.
        max_ops: (cfg.time_limit.as_secs_f64() * 100_000.0) as u64 + 1000,
        busy: busy.clone(),
        pin: pin.clone(),
    };
    let phase_start = Instant::now();
    let mut slots = tokio::task::JoinSet::new();
    let registry = SetRegistry::default();
    for slot in 0..cfg.workload.concurrency {
        let (sc, rec, http, rx) = (
            slot_cfg.clone(),
            rec.clone(),
            client::http_client(),
            clients_rx.clone(),
        );
        match &cfg.set {
            Some(set) => {
                let gen = set.client(slot);
                slots.spawn(set_client::run_slot(
                    slot,
                    gen,
                    sc,
                    registry.clone(),
                    rec,
                    http,
                    rx,
                ));
            }
            None => {
                slots.spawn(client::run_slot(
                    slot,
                    cfg.workload.client(slot),
                    sc,
                    rec,
                    http,
                    rx,
                ));
            }
        }
    }
    let nemesis = Nemesis {
        faults: faults.to_vec(),
        interval: cfg.interval,
        seed: cfg.seed,
        ctx: Ctx {
            cluster: cluster.clone(),
            rec: rec.clone(),
            ring: sut
                .places_keys_by_ring()
                .then(|| Ring::new(cluster.nodes(), cfg.vnodes, cfg.ring_n)),
            busy_key: busy.clone(),
            pin: pin.clone(),
            http: client::http_client(),
            link_faults: cfg.link_faults,
            clock: sut.clock(),
        },
    };
    let deadline = phase_start + cfg.time_limit;
    let nem = tokio::spawn(nemesis.run(deadline.into(), stop.clone()));

    let progress = Progress::new(cfg.time_limit);
    let mut stop_w = stop.clone();
    // Fault phase: until the deadline, a stop request, or the nemesis ending early (a fault
    // that failed), refreshing the progress line.
    loop {
        if *stop_w.borrow() || Instant::now() >= deadline || nem.is_finished() {
            break;
        }
        progress.update(phase_start.elapsed(), &rec.counts, "faults");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop_w.changed() => {}
        }
    }
    // The nemesis heals on its way out; clients keep working until it has.
    let nem_result = nem
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the nemesis task failed: {e}")));
    let phase_elapsed = phase_start.elapsed();
    let _ = clients_tx.send(true);
    while slots.join_next().await.is_some() {}
    progress.finish();
    let faults_started = match nem_result {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("nemesis: {e:#}");
            return Err(e.context("the nemesis failed, so no verdict is given"));
        }
    };
    let client_ops = rec.counts.invokes.load(Ordering::Relaxed);
    let interrupted = *stop.borrow();
    if client_ops == 0 && !interrupted {
        anyhow::bail!(
            "no client op was recorded in {:.1} s of fault phase, so there is nothing to judge \
             (see the node logs under nodes/)",
            phase_elapsed.as_secs_f64()
        );
    }

    let mut converged = None;
    if !interrupted {
        let mut s = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(cfg.quiet) => {}
            _ = s.changed() => {}
        }
    }
    if !*stop.borrow() {
        // Before the final reads: they repair what they read (HISTORY.md). Only the node
        // answers `/digest`; for other targets the observation is not made (the results say
        // why: `target::convergence_unmeasured`).
        if target::convergence_unmeasured(cfg.target.kind()).is_none() {
            converged = Some(convergence::observe(cluster, rec).await.converged());
        }
        if cfg.set.is_some() {
            let base = FINAL_READ_PROCESSES;
            let timeout = cfg.op_timeout;
            set_client::final_reads(&targets, &registry, rec, base, timeout, stop.clone()).await;
        } else {
            final_reads(
                cfg,
                &targets,
                rec,
                busy.load(Ordering::Relaxed),
                stop.clone(),
            )
            .await;
        }
    }
    // After the final reads, so their read repairs count too. Only the node has `/stats`.
    let node_stats = if target::repairs_unmeasured(cfg.target.kind()).is_none() {
        node_stats::fetch(cluster, &client::http_client()).await
    } else {
        Default::default()
    };
    let c = &rec.counts;
    Ok(RunOutcome {
        interrupted: *stop.borrow(),
        invokes: c.invokes.load(Ordering::Relaxed),
        ok: c.ok.load(Ordering::Relaxed),
        fail: c.fail.load(Ordering::Relaxed),
        info: c.info.load(Ordering::Relaxed),
        faults: faults_started,
        rate: client_ops as f64 / phase_elapsed.as_secs_f64().max(1e-9),
        converged,
        node_stats,
    })
}

/// Final reads run under process numbers from here up: past every process a slot could have
/// reached (slots step by `concurrency` after each info). `compare` leaves them out of its
/// figures by this too, for targets whose history has no `convergence` observation to mark
/// where the final reads begin.
pub const FINAL_READ_PROCESSES: u64 = 1_000_000_000;

/// Read every key once, after the quiet period, so lost writes show. Each read runs under a
/// process number no client used.
async fn final_reads(
    cfg: &RunConfig,
    targets: &[Target],
    rec: &Arc<Recorder>,
    max_key: u64,
    stop: watch::Receiver<bool>,
) {
    let http = client::http_client();
    let base = FINAL_READ_PROCESSES;
    let sem = Arc::new(tokio::sync::Semaphore::new(
        cfg.workload.concurrency as usize,
    ));
    let mut set = tokio::task::JoinSet::new();
    for k in 0..=max_key {
        if *stop.borrow() {
            break;
        }
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let target = targets[k as usize % targets.len()].clone();
        let rec = rec.clone();
        let http = http.clone();
        let timeout = cfg.op_timeout;
        set.spawn(async move {
            let op = OpSpec {
                f: OpKind::Read,
                key: quorate_workloads::key_name(k),
                value: Value::Null,
            };
            client::run_op(&rec, &http, base + k, &target, &op, timeout).await;
            drop(permit);
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
