//! The phases of a run: start the cluster → clients and nemesis together for the time limit →
//! heal → quiet period → convergence observation → final reads of every key (every set, for
//! the set workload) → the members' counters (the node's `/stats`) → stop.
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
use crate::backend::ssh::SshCluster;
use crate::backend::{BackendKind, Cluster, ClusterSpec};
use crate::client::{self, Endpoint, SlotConfig};
use crate::nemesis::{clock_skew, Ctx, Nemesis};
use crate::plan::RunPlan;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::targets::{self, Api, Target};
use crate::workload::Shared;
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
    /// Each member's counters at the end of the run (the node's `GET /stats`).
    pub node_stats: BTreeMap<String, Value>,
    /// The repairs those counters show, or why they were not measured (results'
    /// `run.repairs`).
    pub repairs: Value,
    /// Members that would not start again after a power cut, with why (a finding).
    pub not_restarted: BTreeMap<String, String>,
}

/// Run all phases on a fresh tokio runtime. History goes to `<run_dir>/history.jsonl`.
pub fn run(cfg: &RunPlan, run_dir: &Path) -> anyhow::Result<RunOutcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let res = rt.block_on(phases(cfg, run_dir));
    // Anything still running (a stuck op) is dropped here, not waited for.
    rt.shutdown_timeout(Duration::from_secs(2));
    res
}

async fn phases(cfg: &RunPlan, run_dir: &Path) -> anyhow::Result<RunOutcome> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    spawn_signal_handler(stop_tx.clone())?;

    let history = run_dir.join("history.jsonl");
    let rec = Arc::new(
        Recorder::create(&history).with_context(|| format!("create {}", history.display()))?,
    );
    let spec = ClusterSpec {
        nodes: cfg.nodes.clone(),
        run_dir: run_dir.to_path_buf(),
        direct_clients: cfg.direct_clients,
        link_faults: cfg.link_faults_needed(),
        power_loss: cfg.faults.contains(&crate::nemesis::Fault::PowerLoss),
    };
    // Declared before the cluster, so it is dropped after it (its `Drop` cleans up after
    // members that are gone).
    let target = cfg.target.build(run_dir).map_err(anyhow::Error::msg)?;
    let launch = target.launch();
    // Both backends clean up in `Drop` too, so an early return or a panic leaves nothing.
    let cluster: Arc<dyn Cluster> = match cfg.backend {
        BackendKind::Local => Arc::new(LocalCluster::start(spec, launch).await?),
        BackendKind::Netns => Arc::new(NetnsCluster::start(spec, launch).await?),
        BackendKind::Ssh => {
            let (hosts, needs) = cfg
                .ssh
                .clone()
                .context("--backend ssh: the hosts were not connected (RunPlan::probe)")?;
            Arc::new(SshCluster::start(spec, launch, hosts, needs).await?)
        }
    };
    let result = match configure(target.as_ref(), cluster.as_ref(), stop_rx.clone()).await {
        Ok(api) => {
            let r = match checkpoint(cfg, cluster.clone()).await {
                Ok(()) => drive(cfg, &cluster, target.as_ref(), api.clone(), &rec, stop_rx).await,
                Err(e) => Err(e),
            };
            // Adapter processes (a target file's clients) stop before the members do.
            api.close().await;
            r
        }
        Err(e) => Err(e),
    };
    let stopped = heal_and_shut_down(cluster.clone()).await;
    rec.sync();
    if let Some(e) = rec.error() {
        anyhow::bail!("writing {}: {e}", history.display());
    }
    crate::nemesis::keep_both(result, stopped)
}

/// With `power-loss`, what the members wrote while the cluster was set up is made durable
/// before the faults begin (as Jepsen checkpoints lazyfs after a database's set-up), unless
/// `--power-loss-from-start` asks for cuts that may also drop it.
async fn checkpoint(cfg: &RunPlan, cluster: Arc<dyn Cluster>) -> anyhow::Result<()> {
    if !cfg.faults.contains(&crate::nemesis::Fault::PowerLoss) || cfg.power_loss_from_start {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || cluster.checkpoint())
        .await
        .context("the lazyfs checkpoint after set-up")?
        .context("making the set-up durable on the members' lazyfs mounts")
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
/// a stop request so Ctrl-C stays prompt; the API clients speak.
async fn configure(
    target: &dyn Target,
    cluster: &dyn Cluster,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Arc<dyn Api>> {
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
    cfg: &RunPlan,
    cluster: &Arc<dyn Cluster>,
    sut: &dyn Target,
    api: Arc<dyn Api>,
    rec: &Arc<Recorder>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<RunOutcome> {
    let kind = cfg.target.kind();
    // What the target declares it exposes beyond its API (the node's /digest and /stats).
    let observer = kind.caps().observer.map(|make| make());
    let endpoints = Endpoint::all(cluster.as_ref(), &api);
    let busy = Arc::new(AtomicU64::new(0));
    let pin = client::KeyPin::new();
    let (clients_tx, clients_rx) = watch::channel(false);
    let pace = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.workload.concurrency() as f64 / r));
    let slot_cfg = SlotConfig {
        targets: endpoints.clone(),
        concurrency: cfg.workload.concurrency(),
        timeout: cfg.op_timeout,
        pace,
        // A bound, far above what any run reaches, so no client loop is unbounded.
        max_ops: (cfg.time_limit.as_secs_f64() * 100_000.0) as u64 + 1000,
        busy: busy.clone(),
        pin: pin.clone(),
    };
    let phase_start = Instant::now();
    let mut slots = tokio::task::JoinSet::new();
    let shared = Shared::default();
    for slot in 0..cfg.workload.concurrency() {
        let (mut sc, rec, rx) = (slot_cfg.clone(), rec.clone(), clients_rx.clone());
        // An API that keeps state per client (an adapter process each) gives the slot its own.
        if let Some(own) = api.for_slot(slot) {
            for t in &mut sc.targets {
                t.api = own.clone();
            }
        }
        slots.spawn(cfg.workload.slot(slot, sc, &shared, rec, rx));
    }
    let lost_members: Arc<std::sync::Mutex<BTreeMap<String, String>>> = Default::default();
    let nemesis = Nemesis {
        faults: cfg.faults.clone(),
        interval: cfg.interval,
        seed: cfg.seed,
        ctx: Ctx {
            cluster: cluster.clone(),
            rec: rec.clone(),
            placement: sut.placement(cluster.nodes()),
            busy_key: busy.clone(),
            pin: pin.clone(),
            link_faults: cfg.link_faults,
            clock: sut.clock(),
            clocks: Arc::new(clock_skew::Clocks::new(
                cfg.clock_modes.clone(),
                cfg.clock_skew_ms,
            )),
            leader: sut.leader(),
            power_loss: cfg.power_loss_scope,
            lost_members: lost_members.clone(),
            partition_kinds: cfg.partition_kinds.clone(),
            membership: sut.membership(),
            reconfigure_keep: cfg.reconfigure_keep,
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
    if let Some(why) = api.never_answered() {
        anyhow::bail!("{why}");
    }
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
            _ = tokio::time::sleep(cfg.quiet()) => {}
            _ = s.changed() => {}
        }
    }
    if !*stop.borrow() {
        // Before the final reads: they repair what they read (HISTORY.md). A target that
        // exposes no per-replica digest is not observed (the results say why:
        // `targets::convergence_unmeasured`).
        if let Some(obs) = &observer {
            converged = Some(obs.convergence(cluster, rec).await);
        }
        let max_key = busy.load(Ordering::Relaxed);
        cfg.workload
            .final_reads(
                &endpoints,
                &shared,
                rec,
                max_key,
                cfg.op_timeout,
                stop.clone(),
            )
            .await;
    }
    // After the final reads, so their read repairs count too.
    let (node_stats, repairs) = match &observer {
        Some(obs) => {
            let stats = obs.stats(cluster).await;
            let repairs = obs.repairs(&stats);
            (stats, repairs)
        }
        None => {
            let why = targets::repairs_unmeasured(kind).unwrap_or_default();
            let sentence = format!("repairs: not measured: {why}");
            (
                BTreeMap::new(),
                json!({"skipped": why, "sentence": sentence}),
            )
        }
    };
    let not_restarted = lost_members.lock().unwrap().clone();
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
        repairs,
        not_restarted,
    })
}

#[cfg(test)]
mod tests;
