//! Clock faults, through the target's [`Ctx::clock`] (the node's `PUT /admin/clock-offset`,
//! libfaketime offset files for a third-party store: `crate::targets::faketime`). Each window
//! draws one of the run's `--clock-mode`s ([`ClockMode`]):
//! - `skew` (the default): members given offsets a few seconds apart (a shuffled ladder), set
//!   back to true time when the window stops;
//! - `bump` (Jepsen's): a random non-empty subset of members has its clock moved by ±2^2..2^18
//!   ms; a bump holds after its window, as Jepsen's does, and adds to the bumps before it,
//!   until a `reset` window (or a `skew` or `strobe` window over that member, or the end of
//!   the schedule: [`reset_all`]) sets the clock back;
//! - `strobe` (Jepsen's): a random subset's clocks jump between true time and an offset every
//!   few ms, for a bounded number of flips and time ([`super::strobe`]), ending at true time;
//! - `reset` (Jepsen's): every member back to true time.
//!
//! `--clock-skew-ms MIN..MAX` sets the magnitudes: the ladder's spacing for `skew` (default
//! 2000..5000, in whole seconds as it always was), the size of each bump or strobe offset for
//! the others (default 4..262144, drawn log-uniformly as Jepsen's powers of two are).
//! The events list the offsets really set and the mode; a member that refused one is the
//! event's `error` (see [`super`]).

use super::strobe::{self, Strobe};
use super::{joined, Active, Ctx};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How a clock-skew window moves clocks (`--clock-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClockMode {
    Skew,
    Bump,
    Strobe,
    Reset,
}

impl ClockMode {
    pub fn name(self) -> &'static str {
        match self {
            ClockMode::Skew => "skew",
            ClockMode::Bump => "bump",
            ClockMode::Strobe => "strobe",
            ClockMode::Reset => "reset",
        }
    }

    /// `--clock-mode`: a comma list of skew, bump, strobe, reset (no mode twice).
    pub fn parse_list(s: &str) -> Result<Vec<ClockMode>, String> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let m = match part.trim() {
                "skew" => ClockMode::Skew,
                "bump" => ClockMode::Bump,
                "strobe" => ClockMode::Strobe,
                "reset" => ClockMode::Reset,
                other => {
                    return Err(format!(
                        "--clock-mode: unknown mode {other:?}; expected a comma list of skew, bump, strobe, reset"
                    ))
                }
            };
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The largest magnitude `--clock-skew-ms` takes: a day, far beyond any lease or timestamp
/// tolerance a store could have, and small enough that a sum of bumps stays an `i64`.
pub const MAX_MS: u64 = 86_400_000;

/// Parse `--clock-skew-ms MIN..MAX` (milliseconds, 1 ≤ MIN ≤ MAX ≤ [`MAX_MS`]).
pub fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || {
        format!("--clock-skew-ms {s}: expected MIN..MAX in ms, 1 <= MIN <= MAX <= {MAX_MS} (e.g. 4..262144)")
    };
    let (lo, hi) = s.split_once("..").ok_or_else(bad)?;
    let lo: u64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u64 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi || hi > MAX_MS {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Jepsen's bump and strobe sizes: 2^2 to 2^18 ms.
pub const JEPSEN_MS: (u64, u64) = (4, 262_144);

/// The run's clock settings and the offsets set now (absent: true time), shared by every
/// window, so bumps add up and a reset knows what to undo.
#[derive(Debug)]
pub struct Clocks {
    /// `--clock-mode`, non-empty, sorted.
    pub modes: Vec<ClockMode>,
    /// `--clock-skew-ms`; `None`: each mode's default.
    pub range_ms: Option<(u64, u64)>,
    now: Mutex<BTreeMap<String, i64>>,
}

impl Default for Clocks {
    /// Today's clock skew: the ladder, at its own magnitudes.
    fn default() -> Clocks {
        Clocks::new(vec![ClockMode::Skew], None)
    }
}

impl Clocks {
    pub fn new(modes: Vec<ClockMode>, range_ms: Option<(u64, u64)>) -> Clocks {
        Clocks {
            modes,
            range_ms,
            now: Mutex::new(BTreeMap::new()),
        }
    }

    /// The offsets set now, true-time members left out.
    pub fn offsets(&self) -> BTreeMap<String, i64> {
        self.now.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn note(&self, node: &str, ms: i64) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if ms == 0 {
            now.remove(node);
        } else {
            now.insert(node.to_string(), ms);
        }
    }
}

/// What a clock-skew window leaves for its stop.
pub enum State {
    /// `skew`: these members go back to true time.
    Skew(Vec<String>),
    /// `bump` or `reset`: nothing to undo when the window ends.
    Held(ClockMode),
    /// `strobe`: the flipping task, stopped and joined.
    Strobe(Strobe),
}

/// Offsets for `nodes`: a shuffled ladder `spacing` apart, centred on zero; the spacing drawn
/// from `range` ms, or 2 to 5 whole seconds when none is given (the draw it always made, so a
/// seed replays the same offsets as before `--clock-skew-ms` existed).
pub fn offsets(
    nodes: &[String],
    range: Option<(u64, u64)>,
    rng: &mut ChaCha8Rng,
) -> BTreeMap<String, i64> {
    let spacing: i64 = match range {
        None => rng.gen_range(2..=5) * 1000,
        Some((lo, hi)) => rng.gen_range(lo..=hi) as i64,
    };
    let mut order = nodes.to_vec();
    order.shuffle(rng);
    let mid = (order.len() as i64 - 1) / 2;
    order
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, (i as i64 - mid) * spacing))
        .collect()
}

/// A signed offset change of `lo..=hi` ms, log-uniform (Jepsen draws 2^(2..18)): small
/// bumps as often as large ones, every magnitude in range.
pub fn magnitude(range: (u64, u64), rng: &mut ChaCha8Rng) -> i64 {
    let (lo, hi) = range;
    let e = rng.gen_range((lo as f64).ln()..=(hi as f64).ln());
    let m = (e.exp().round() as u64).clamp(lo, hi) as i64;
    if rng.gen_bool(0.5) {
        m
    } else {
        -m
    }
}

/// A random non-empty subset of `nodes`, sorted (Jepsen's `random-nonempty-subset`).
pub fn subset(nodes: &[String], rng: &mut ChaCha8Rng) -> Vec<String> {
    let k = rng.gen_range(1..=nodes.len().max(1));
    let mut v: Vec<String> = nodes.choose_multiple(rng, k).cloned().collect();
    v.sort();
    v
}

/// Set every offset in `offs`; returns those applied and the failures. What was applied is
/// noted in [`Clocks`].
pub(super) async fn set_all(
    ctx: &Ctx,
    offs: &BTreeMap<String, i64>,
) -> (BTreeMap<String, i64>, Vec<String>) {
    let mut applied = BTreeMap::new();
    let mut errors = Vec::new();
    for (n, ms) in offs {
        match ctx.clock.set_offset(ctx.cluster.as_ref(), n, *ms).await {
            Ok(()) => {
                ctx.clocks.note(n, *ms);
                applied.insert(n.clone(), *ms);
            }
            Err(e) => errors.push(e),
        }
    }
    (applied, errors)
}

/// True time for `nodes`.
pub(super) fn zeros(nodes: impl IntoIterator<Item = String>) -> BTreeMap<String, i64> {
    nodes.into_iter().map(|n| (n, 0)).collect()
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    // One mode is drawn only when there is a choice, so `skew` alone consumes the stream as
    // it always did.
    let mode = match ctx.clocks.modes.as_slice() {
        [one] => *one,
        many => *many.choose(rng).expect("--clock-mode is never empty"),
    };
    let nodes = ctx.cluster.nodes();
    let range = ctx.clocks.range_ms;
    let (offs, mut value) = match mode {
        ClockMode::Skew => (offsets(nodes, range, rng), json!({})),
        ClockMode::Bump => {
            let before = ctx.clocks.offsets();
            let deltas: BTreeMap<String, i64> = subset(nodes, rng)
                .into_iter()
                .map(|n| {
                    let d = magnitude(range.unwrap_or(JEPSEN_MS), rng);
                    (n, d)
                })
                .collect();
            let offs = deltas
                .iter()
                .map(|(n, d)| (n.clone(), before.get(n).copied().unwrap_or(0) + d))
                .collect();
            (offs, json!({ "deltas_ms": deltas }))
        }
        ClockMode::Strobe => return strobe::start(ctx, rng).await.map(Active::ClockSkew),
        ClockMode::Reset => (zeros(nodes.iter().cloned()), json!({})),
    };
    let before = ctx.clocks.offsets();
    let (applied, errors) = set_all(ctx, &offs).await;
    value["mode"] = json!(mode.name());
    value["offsets_ms"] = json!(applied);
    match joined(&errors) {
        None => {
            ctx.rec.nemesis("clock-skew-start", value);
            Ok(Active::ClockSkew(match mode {
                ClockMode::Skew => State::Skew(offs.keys().cloned().collect()),
                other => State::Held(other),
            }))
        }
        Some(e) => {
            ctx.rec.nemesis_error("clock-skew-start", value, &e);
            let undone = match mode {
                // A bump half applied is taken back to the clocks it found; a reset half
                // applied has nothing to take back (true time is where it was going).
                ClockMode::Bump => {
                    let back = applied
                        .keys()
                        .map(|n| (n.clone(), before.get(n).copied().unwrap_or(0)))
                        .collect();
                    undo(ctx, ClockMode::Bump, &back).await
                }
                ClockMode::Reset => Ok(()),
                _ => stop(ctx, State::Skew(applied.keys().cloned().collect())).await,
            };
            let e = anyhow::anyhow!("clock-skew-start: {e}");
            Err(super::rolled_back(e, "clock-skew", undone))
        }
    }
}

/// Set `offs` and record it as the window's `clock-skew-stop` of `mode`.
async fn undo(ctx: &Ctx, mode: ClockMode, offs: &BTreeMap<String, i64>) -> anyhow::Result<()> {
    let (applied, errors) = set_all(ctx, offs).await;
    let value = json!({ "mode": mode.name(), "offsets_ms": applied });
    record(ctx, "clock-skew-stop", value, &errors)
}

/// Record `f` with what was done, with the failures as its `error` (and the step's error).
pub(super) fn record(
    ctx: &Ctx,
    f: &str,
    value: serde_json::Value,
    errors: &[String],
) -> anyhow::Result<()> {
    match joined(errors) {
        None => {
            ctx.rec.nemesis(f, value);
            Ok(())
        }
        Some(e) => {
            ctx.rec.nemesis_error(f, value, &e);
            anyhow::bail!("{f}: {e}")
        }
    }
}

pub async fn stop(ctx: &Ctx, state: State) -> anyhow::Result<()> {
    match state {
        State::Skew(nodes) => undo(ctx, ClockMode::Skew, &zeros(nodes)).await,
        State::Held(mode) => {
            // Nothing set: the clocks stay where the window left them (a bump holds), listed.
            let value = json!({
                "mode": mode.name(),
                "offsets_ms": {},
                "held_ms": ctx.clocks.offsets(),
            });
            ctx.rec.nemesis("clock-skew-stop", value);
            Ok(())
        }
        State::Strobe(s) => strobe::stop(ctx, s).await,
    }
}

/// At the end of the schedule, every clock a bump left off goes back to true time, recorded
/// as `clock-reset` (no window is open then); nothing when every clock is true already.
pub async fn reset_all(ctx: &Ctx) -> anyhow::Result<()> {
    let off = ctx.clocks.offsets();
    if off.is_empty() {
        return Ok(());
    }
    let (applied, errors) = set_all(ctx, &zeros(off.into_keys())).await;
    let value = json!({ "mode": "reset", "offsets_ms": applied });
    record(ctx, "clock-reset", value, &errors)
}
