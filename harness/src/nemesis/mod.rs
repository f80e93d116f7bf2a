//! The nemesis: a seeded schedule of faults, started and stopped while clients run.
//!
//! - [`partition`]: one / halves / majorities-ring / bridge / one-way / home-nodes cuts, and
//!   Jepsen's minority-third / majority when `--partition-kinds` lists them.
//! - [`kill`]: SIGKILL a minority, restart it later (same data directory).
//! - [`pause`]: SIGSTOP a minority, SIGCONT it later.
//! - [`stale_restore`]: a home node of the busy key comes back from a copy taken before the
//!   writes it acknowledged.
//! - [`clock_skew`]: clock offsets (`--clock-mode`: a ladder seconds apart, Jepsen's bumps, a
//!   [`strobe`], resets).
//! - [`slow`]: delay and jitter on the links into one home node of the busy key.
//! - [`flaky`]: random connection resets on the links of a minority of the nodes.
//! - [`reconfigure`]: membership changes (Garage's `reconfigure-subset`): a random subset kept
//!   as storage members, the others made gateways, as a new layout version; all storage again
//!   at its stop.
//!
//! The schedule is one fault at a time: every `interval` a fault starts, holds for 70% of the
//! interval, then stops, leaving the cluster whole for the rest. Which fault, and its targets,
//! come from one ChaCha stream seeded by the run's seed, so the seed replays the schedule
//! (the home-nodes target follows the busy key, which depends on how fast clients went).
//! Every start and stop is a nemesis event in the history; [`Nemesis::run`] heals everything
//! before it returns, also when told to stop early.
//!
//! ## A fault says what really happened
//! Each fault module has `start(ctx, rng) -> anyhow::Result<Active>` and
//! `stop(ctx, …) -> anyhow::Result<()>` (a new fault follows the same shape):
//! - the event it records lists only what was actually done (the links really cut, the nodes
//!   really killed, the offsets really set);
//! - when a step fails, it records its event with `"error": "<what failed>"`
//!   ([`Recorder::nemesis_error`]), undoes what it can of its own half-applied step, and
//!   returns the error — never a silent skip, never a success over a fault that did not happen;
//! - [`Nemesis::run`] stops the schedule at the first error, heals the cluster and returns the
//!   error; the runner ends the run with exit 3 and prints it on stderr, so no verdict is given
//!   over faults that did not happen.
//!
//! Every event is also logged (tracing, `harness.log`); failures at error level reach stderr.

pub mod clock_skew;
#[cfg(test)]
mod clock_tests;
pub mod flaky;
pub mod kill;
pub mod partition;
pub mod pause;
pub mod reconfigure;
#[cfg(test)]
mod reconfigure_tests;
pub mod slow;
pub mod stale_restore;
pub mod strobe;
#[cfg(test)]
mod tests;

use crate::backend::Cluster;
use crate::client::KeyPin;
use crate::recorder::Recorder;
use crate::targets::{Clock, Membership, Placement};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
// Tokio's clock, not std's: the same as std's in a run, and paused and advanced by hand in the
// unit tests, so a whole schedule plays out without waiting.
use tokio::time::Instant;

/// The faults `--nemesis` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Partition,
    Kill,
    Pause,
    StaleRestore,
    ClockSkew,
    Slow,
    Flaky,
    Reconfigure,
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        match s.trim() {
            "partition" => Ok(Fault::Partition),
            "kill" => Ok(Fault::Kill),
            "pause" => Ok(Fault::Pause),
            "stale-restore" => Ok(Fault::StaleRestore),
            "clock-skew" => Ok(Fault::ClockSkew),
            "slow" => Ok(Fault::Slow),
            "flaky" => Ok(Fault::Flaky),
            "reconfigure" => Ok(Fault::Reconfigure),
            other => Err(other.to_string()),
        }
    }
}

impl Fault {
    /// Every fault, in `--nemesis`'s order.
    pub const ALL: [Fault; 8] = [
        Fault::Partition,
        Fault::Kill,
        Fault::Pause,
        Fault::StaleRestore,
        Fault::ClockSkew,
        Fault::Slow,
        Fault::Flaky,
        Fault::Reconfigure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::StaleRestore => "stale-restore",
            Fault::ClockSkew => "clock-skew",
            Fault::Slow => "slow",
            Fault::Flaky => "flaky",
            Fault::Reconfigure => "reconfigure",
        }
    }

    /// Faults that delay or reset links: the local backend's fault proxy, or the netns
    /// backend's link proxies, which it starts only when a run lists one of these.
    pub fn needs_link_faults(self) -> bool {
        matches!(self, Fault::Slow | Fault::Flaky)
    }
}

/// Settings of the link faults: `--slow-delay-ms`, `--slow-jitter-ms`,
/// `--flaky-reset-probability`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// Delay per forwarded chunk on a slow link (default 50 ms: a request and its response
    /// are each delayed, and twice delay plus jitter stays under the node's 300 ms replica
    /// timeout, so slow writes still land).
    pub delay: Duration,
    /// Spread of the delay, redrawn every 10 ms (default 25 ms).
    pub jitter: Duration,
    /// Chance that a flaky link's connections are reset, per link every 100 ms (default 0.2).
    pub reset_probability: f64,
}

impl Default for LinkFaults {
    fn default() -> LinkFaults {
        LinkFaults {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(25),
            reset_probability: 0.2,
        }
    }
}

/// Parse `--nemesis`: a comma list of faults, or `none` (empty list).
pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
    if s.trim() == "none" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        let f: Fault = part.parse().map_err(|bad: String| {
            format!("--nemesis: unknown fault {bad:?}; expected a comma list of partition, kill, pause, stale-restore, clock-skew, slow, flaky, reconfigure, or none")
        })?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out.sort();
    Ok(out)
}

/// Everything a fault needs to act.
#[derive(Clone)]
pub struct Ctx {
    pub cluster: Arc<dyn Cluster>,
    pub rec: Arc<Recorder>,
    /// Where the target places keys (a target whose placement the harness does not know
    /// names no home nodes, so no fault can aim at a key's homes).
    pub placement: Arc<dyn Placement>,
    /// The key index clients are on now (shared with the client slots).
    pub busy_key: Arc<AtomicU64>,
    /// Holds the clients on one key while a fault needs it (stale-restore).
    pub pin: KeyPin,
    /// Delay, jitter and reset probability for `slow` and `flaky`.
    pub link_faults: LinkFaults,
    /// How clock-skew moves a member's clock (the node's admin call, libfaketime for a
    /// third-party store).
    pub clock: Arc<dyn Clock>,
    /// `--clock-mode`, `--clock-skew-ms`, and the offsets set now.
    pub clocks: Arc<clock_skew::Clocks>,
    /// `--partition-kinds`: the kinds a partition draws from (default [`partition::KINDS`]).
    pub partition_kinds: Vec<&'static str>,
    /// How `reconfigure` changes membership (`None`: the target's membership is fixed).
    pub membership: Option<Arc<dyn Membership>>,
    /// `--reconfigure-keep`: the storage members each `reconfigure` window keeps.
    pub reconfigure_keep: usize,
}

impl Ctx {
    pub fn busy_key(&self) -> String {
        quorate_workloads::key_name(self.busy_key.load(Ordering::Relaxed))
    }

    /// The key's home nodes; empty when the target's placement is not known here.
    pub fn home_nodes(&self, key: &str) -> Vec<String> {
        self.placement.home_nodes(key).unwrap_or_default()
    }

    /// Run a blocking cluster call (signals, copies, health waits) off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Cluster) -> T + Send + 'static,
    ) -> T {
        let c = self.cluster.clone();
        tokio::task::spawn_blocking(move || f(c.as_ref()))
            .await
            .expect("cluster call panicked")
    }
}

/// A fault in progress: what `stop` needs to undo it.
pub enum Active {
    Partition,
    Kill(Vec<String>),
    Pause(Vec<String>),
    StaleRestore(stale_restore::State),
    ClockSkew(clock_skew::State),
    Slow(slow::State),
    Flaky(flaky::State),
    Reconfigure,
}

pub struct Nemesis {
    pub faults: Vec<Fault>,
    pub interval: Duration,
    pub seed: u64,
    pub ctx: Ctx,
}

impl Nemesis {
    /// Run the schedule until `deadline`, `stop`, or the first fault step that fails; always
    /// heals before returning. Returns the number of faults started, or the first failure
    /// (see the module note).
    pub async fn run(
        self,
        deadline: Instant,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<usize> {
        if self.faults.is_empty() {
            // Hold until the deadline all the same: the runner ends the fault phase early when
            // the nemesis ends (a failed fault), and `--nemesis none` must not end it at once.
            let mut stop = stop;
            let left = deadline.saturating_duration_since(Instant::now());
            sleep_or_stop(left, deadline, &mut stop).await;
            return Ok(0);
        }
        let mut started = 0;
        let interrupted = stop.clone();
        let res = self.schedule(deadline, stop, &mut started).await;
        // A bump holds after its window: whatever bumps are left go back to true time.
        let res = keep_both(res, clock_skew::reset_all(&self.ctx).await);
        // Whatever happened, the cluster is whole when the schedule ends.
        let healed = self.ctx.blocking(|c| c.heal()).await.map_err(|e| {
            tracing::error!("nemesis: final heal failed: {e}");
            anyhow::anyhow!("healing the cluster at the end of the fault schedule: {e}")
        });
        let res = keep_both(res.map(|()| started), healed);
        // Membership changed: every member holds data again, and the store has moved it
        // (not waited for when the run is being stopped: the cluster goes down anyway).
        if self.faults.contains(&Fault::Reconfigure) && !*interrupted.borrow() {
            return keep_both(res, reconfigure::settle(&self.ctx, interrupted).await);
        }
        res
    }

    async fn schedule(
        &self,
        deadline: Instant,
        mut stop: watch::Receiver<bool>,
        started: &mut usize,
    ) -> anyhow::Result<()> {
        // A stream of its own, so the schedule does not shift when the workload changes.
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x6e65_6d65_7369_7321);
        let hold = self.interval.mul_f64(0.7);
        let gap = self.interval - hold;
        // Bounded: at most one fault per interval until the deadline.
        loop {
            if sleep_or_stop(gap, deadline, &mut stop).await {
                break;
            }
            if Instant::now() + hold > deadline {
                break;
            }
            let fault = *self.faults.choose(&mut rng).expect("non-empty");
            let active = match fault {
                Fault::Partition => partition::start(&self.ctx, &mut rng).await,
                Fault::Kill => kill::start(&self.ctx, &mut rng).await,
                Fault::Pause => pause::start(&self.ctx, &mut rng).await,
                Fault::StaleRestore => stale_restore::start(&self.ctx, &mut rng).await,
                Fault::ClockSkew => clock_skew::start(&self.ctx, &mut rng).await,
                Fault::Slow => slow::start(&self.ctx, &mut rng).await,
                Fault::Flaky => flaky::start(&self.ctx, &mut rng).await,
                Fault::Reconfigure => reconfigure::start(&self.ctx, &mut rng).await,
            }
            .map_err(|e| e.context(format!("{} could not be applied", fault.name())))?;
            *started += 1;
            // Clocks scrambled while the network is split or slow, as Jepsen composes them:
            // each alone is survived by a store that orders writes by a quorum read's
            // timestamp (Garage), together they let a write stamped seconds ahead sit on one
            // replica, visible there and nowhere else, and then win over every later write.
            let mut companions = Vec::new();
            if matches!(fault, Fault::Partition | Fault::Slow)
                && self.faults.contains(&Fault::ClockSkew)
            {
                match clock_skew::start(&self.ctx, &mut rng).await {
                    Ok(a) => companions.push((Fault::ClockSkew, a)),
                    Err(e) => {
                        let undone = self.stop_one(active).await;
                        let e = e.context(format!(
                            "clock-skew (during {}) could not be applied",
                            fault.name()
                        ));
                        return Err(rolled_back(e, fault.name(), undone));
                    }
                }
            }
            // Membership changed while the network is split, as Garage's `pr` scenario
            // composes its partitions and its `reconfigure-subset` nemesis.
            if fault == Fault::Partition && self.faults.contains(&Fault::Reconfigure) {
                match reconfigure::start(&self.ctx, &mut rng).await {
                    Ok(a) => companions.push((Fault::Reconfigure, a)),
                    Err(e) => {
                        let mut undone = self.stop_one(active).await;
                        for (_, c) in companions {
                            undone = keep_both(undone, self.stop_one(c).await);
                        }
                        let e = e.context("reconfigure (during partition) could not be applied");
                        return Err(rolled_back(e, fault.name(), undone));
                    }
                }
            }
            // Faults end by `deadline + hold` at the latest, even when started just before it.
            let end = deadline + hold;
            let mut stopped = false;
            let active = match active {
                Active::StaleRestore(st) => {
                    // Stale-restore acts in the middle of its window too.
                    stopped = sleep_or_stop(hold / 2, end, &mut stop).await;
                    let st = match stale_restore::restore(&self.ctx, st).await {
                        Ok(st) => st,
                        Err((st, e)) => {
                            // Undo what can be undone (the pin, the cut) before reporting.
                            let undone = stale_restore::stop(&self.ctx, st).await;
                            let e = e.context("stale-restore could not restore its node");
                            return Err(rolled_back(e, "stale-restore", undone));
                        }
                    };
                    Active::StaleRestore(st)
                }
                other => {
                    stopped = sleep_or_stop(hold / 2, end, &mut stop).await || stopped;
                    other
                }
            };
            if !stopped {
                let _ = sleep_or_stop(hold - hold / 2, end, &mut stop).await;
            }
            let healed = self.stop_one(active).await;
            for (companion, c) in companions {
                self.stop_one(c).await.map_err(|e| {
                    e.context(format!(
                        "{} (during {}) could not be undone",
                        companion.name(),
                        fault.name()
                    ))
                })?;
            }
            healed.map_err(|e| e.context(format!("{} could not be healed", fault.name())))?;
            if *stop.borrow() {
                break;
            }
        }
        Ok(())
    }

    async fn stop_one(&self, active: Active) -> anyhow::Result<()> {
        match active {
            Active::Partition => partition::stop(&self.ctx).await,
            Active::Kill(nodes) => kill::stop(&self.ctx, nodes).await,
            Active::Pause(nodes) => pause::stop(&self.ctx, nodes).await,
            Active::StaleRestore(st) => stale_restore::stop(&self.ctx, st).await,
            Active::ClockSkew(st) => clock_skew::stop(&self.ctx, st).await,
            Active::Slow(st) => slow::stop(&self.ctx, st).await,
            Active::Flaky(st) => flaky::stop(&self.ctx, st).await,
            Active::Reconfigure => reconfigure::stop(&self.ctx).await,
        }
    }
}

/// Sleep `d` (cut short at `deadline`); true when asked to stop.
async fn sleep_or_stop(d: Duration, deadline: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    let until = (Instant::now() + d).min(deadline);
    tokio::select! {
        _ = tokio::time::sleep_until(until) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// The error of a step that failed part-way, once `undone` (the undoing of what it had applied)
/// has run: the step's own error when the undoing worked, both when it did not. The undoing
/// records its own event (with its `"error"`); this keeps its failure in what the run reports
/// too (exit 3), since a fault left half-applied is worse than the one that failed.
pub fn rolled_back(err: anyhow::Error, what: &str, undone: anyhow::Result<()>) -> anyhow::Error {
    match undone {
        Ok(()) => err,
        Err(u) => {
            tracing::error!("nemesis: undoing the partly applied {what} failed: {u:#}");
            anyhow::anyhow!("{err:#}; undoing the partly applied {what} failed too: {u:#}")
        }
    }
}

/// `first`, unless `then` (a clean-up that ran after it) failed: then that failure, and when
/// both failed, both in one message — the first for the verdict withheld, the second because
/// the cluster may not be whole.
pub fn keep_both<T>(first: anyhow::Result<T>, then: anyhow::Result<()>) -> anyhow::Result<T> {
    match (first, then) {
        (first, Ok(())) => first,
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(then)) => Err(anyhow::anyhow!("{e:#}; then {then:#}")),
    }
}

/// Join the failures of several targets into one error (`None` when all succeeded).
pub fn joined(errors: &[String]) -> Option<String> {
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Apply `act` (kill, restart, pause, resume …) to each of `nodes` off the async workers:
/// the nodes it worked on, and the failures joined into one message (see [`joined`]).
pub async fn on_each(
    ctx: &Ctx,
    nodes: Vec<String>,
    verb: &'static str,
    act: fn(&dyn Cluster, &str) -> crate::backend::Result<()>,
) -> (Vec<String>, Option<String>) {
    let (done, errors) = ctx
        .blocking(move |c| {
            let mut done = Vec::new();
            let mut errors = Vec::new();
            for n in nodes {
                match act(c, &n) {
                    Ok(()) => done.push(n),
                    Err(e) => errors.push(format!("{verb} {n}: {e}")),
                }
            }
            (done, errors)
        })
        .await;
    (done, joined(&errors))
}

/// A random minority of the nodes (at least one), sorted.
pub fn minority(nodes: &[String], rng: &mut ChaCha8Rng) -> Vec<String> {
    use rand::Rng;
    let max = ((nodes.len().saturating_sub(1)) / 2).max(1);
    let k = rng.gen_range(1..=max);
    let mut v: Vec<String> = nodes.choose_multiple(rng, k).cloned().collect();
    v.sort();
    v
}
