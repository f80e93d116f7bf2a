//! The `strobe` clock mode (Jepsen's): a random subset of members has its clock jump between
//! true time and an offset of its own, every `period_ms`, flipped by a task of its own while
//! the window holds. The task is bounded twice — at most [`MAX_FLIPS`] flips, and no flip after
//! `duration_ms` — so it stops by itself however long the window is, and it always ends on
//! true time; the window's stop ends it earlier if it is still flipping. The flips themselves
//! are not events (hundreds a second): the start lists the offsets, period, duration and flips
//! planned, the stop the flips made.

use super::clock_skew::{self, set_all, zeros, ClockMode, State, JEPSEN_MS};
use super::{joined, Ctx};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most flips one strobe makes: a bound on the calls it sends (each flip sets every strobed
/// member), whatever its period and duration.
pub const MAX_FLIPS: u64 = 256;

/// A strobe in progress.
pub struct Strobe {
    stop: watch::Sender<bool>,
    task: JoinHandle<Ended>,
    nodes: Vec<String>,
}

/// How the flipping ended: flips made (the first, at start, included) and the first member
/// that refused one.
struct Ended {
    flips: u64,
    error: Option<String>,
}

/// The strobe's plan, drawn from the window's stream: who, how far, how often, how long.
pub struct Plan {
    pub offsets_ms: BTreeMap<String, i64>,
    pub period_ms: u64,
    pub duration_ms: u64,
    pub flips: u64,
}

pub fn plan(nodes: &[String], range: Option<(u64, u64)>, rng: &mut ChaCha8Rng) -> Plan {
    let offsets_ms = clock_skew::subset(nodes, rng)
        .into_iter()
        .map(|n| (n, clock_skew::magnitude(range.unwrap_or(JEPSEN_MS), rng)))
        .collect();
    // "Every few ms": 4 to 32 ms, powers of two as Jepsen's periods are.
    let period_ms = 1u64 << rng.gen_range(2..=5);
    let duration_ms = rng.gen_range(500..=3000);
    let flips = (duration_ms / period_ms).clamp(1, MAX_FLIPS);
    Plan {
        offsets_ms,
        period_ms,
        duration_ms,
        flips,
    }
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<State> {
    let p = plan(ctx.cluster.nodes(), ctx.clocks.range_ms, rng);
    let (applied, errors) = set_all(ctx, &p.offsets_ms).await;
    let value = json!({
        "mode": ClockMode::Strobe.name(),
        "offsets_ms": applied,
        "period_ms": p.period_ms,
        "duration_ms": p.duration_ms,
        "flips": p.flips,
    });
    if let Some(e) = joined(&errors) {
        ctx.rec.nemesis_error("clock-skew-start", value, &e);
        let undone = clock_skew::stop(ctx, State::Skew(applied.into_keys().collect())).await;
        let e = anyhow::anyhow!("clock-skew-start: {e}");
        return Err(super::rolled_back(e, "clock-skew", undone));
    }
    ctx.rec.nemesis("clock-skew-start", value);
    let (stop, stopped) = watch::channel(false);
    let nodes: Vec<String> = p.offsets_ms.keys().cloned().collect();
    let task = tokio::spawn(flip(ctx.clone(), p, stopped));
    Ok(State::Strobe(Strobe { stop, task, nodes }))
}

/// Flip until the plan's flips or duration are spent, or the window stops; end on true time.
async fn flip(ctx: Ctx, p: Plan, mut stopped: watch::Receiver<bool>) -> Ended {
    let t0 = Instant::now();
    let end = t0 + Duration::from_millis(p.duration_ms);
    let zero = zeros(p.offsets_ms.keys().cloned());
    let mut flips = 1;
    let mut on = true;
    let mut error = None;
    while flips < p.flips {
        // On a schedule, not after each flip's calls: the period holds however slow they are.
        let next = t0 + Duration::from_millis(p.period_ms * flips);
        if next >= end {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stopped.changed() => break,
        }
        on = !on;
        let (_, errors) = set_all(&ctx, if on { &p.offsets_ms } else { &zero }).await;
        flips += 1;
        if let Some(e) = joined(&errors) {
            error = Some(e);
            break;
        }
    }
    if on || error.is_some() {
        let (_, errors) = set_all(&ctx, &zero).await;
        if let Some(e) = joined(&errors) {
            error = Some(error.map_or(e.clone(), |first| format!("{first}; then {e}")));
        }
    }
    Ended { flips, error }
}

pub async fn stop(ctx: &Ctx, s: Strobe) -> anyhow::Result<()> {
    let _ = s.stop.send(true);
    let ended = s.task.await.unwrap_or_else(|e| Ended {
        flips: 0,
        error: Some(format!("the strobe task failed: {e}")),
    });
    // The task ends on true time; set it again so the stop says so in offsets really set, and
    // so a member the task could not reset gets another try.
    let (applied, errors) = set_all(ctx, &zeros(s.nodes)).await;
    let value = json!({
        "mode": ClockMode::Strobe.name(),
        "offsets_ms": applied,
        "flips": ended.flips,
    });
    let errors: Vec<String> = ended.error.into_iter().chain(errors).collect();
    clock_skew::record(ctx, "clock-skew-stop", value, &errors)
}
