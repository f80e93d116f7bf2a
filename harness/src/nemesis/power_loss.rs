//! Power loss: members lose what they wrote but did not fsync, as in a real power cut — not
//! only their processes, as `kill` does (after a SIGKILL the page cache still holds every
//! write). Each member's data directory is a lazyfs mount ([`crate::lazyfs`]) when the run has
//! this fault.
//!
//! `power-loss-start`: the chosen members are SIGKILLed (all of them first, so a rack goes
//! down at once), then each one's mount drops everything unsynced and is mounted again over
//! what was durable. The event lists the members cut and, per member, what was dropped:
//! `{"nodes", "scope", "key", "dropped": {id: {"bytes", "files", "metadata_ops",
//! "first_ops", "fsyncs"}}}`. `power-loss-stop`: they start again on what was synced
//! (`{"nodes"}`: those restarted). `--power-loss-scope`:
//! - `one`: one member, drawn;
//! - `majority`: a rack losing power — a majority of the busy key's replicas when the
//!   target's placement is known (the node's ring), else a majority of the members.
//!
//! Failures follow the convention of [`super`]: a step that fails records its event with
//! `"error"`, brings back what it took down, and ends the run with exit 3. A member that will
//! not start again on what survived its cut is not such a failure but a finding about the
//! store ([`stop`]).

use super::{on_each, Active, Ctx};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// `--power-loss-scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One member, drawn.
    #[default]
    One,
    /// A majority of the busy key's replicas (placement known), else of the members.
    Majority,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::One => "one",
            Scope::Majority => "majority",
        }
    }
}

/// The members to cut, sorted, and the key aimed at (majority with a known placement).
pub fn choose(ctx: &Ctx, rng: &mut ChaCha8Rng) -> (Vec<String>, Option<String>) {
    let nodes = ctx.cluster.nodes().to_vec();
    let (mut chosen, key) = match ctx.power_loss {
        Scope::One => (
            nodes.choose_multiple(rng, 1).cloned().collect::<Vec<_>>(),
            None,
        ),
        Scope::Majority => {
            let key = ctx.busy_key();
            let homes = ctx.home_nodes(&key);
            let (pool, key) = if homes.is_empty() {
                (nodes, None)
            } else {
                (homes, Some(key))
            };
            let k = pool.len() / 2 + 1;
            (pool.choose_multiple(rng, k).cloned().collect(), key)
        }
    };
    chosen.sort();
    (chosen, key)
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let (nodes, key) = choose(ctx, rng);
    let (killed, failed) = on_each(ctx, nodes, "kill", |c, n| c.kill(n)).await;
    let mut dropped = serde_json::Map::new();
    let mut errors = Vec::new();
    if failed.is_none() {
        let cut = killed.clone();
        let results = ctx
            .blocking(move |c| {
                cut.iter()
                    .map(|n| (n.clone(), c.power_cut(n)))
                    .collect::<Vec<_>>()
            })
            .await;
        for (n, r) in results {
            match r {
                Ok(u) => {
                    tracing::info!(node = %n, bytes = u.bytes, files = u.files, metadata_ops = u.metadata_ops, "power-loss: dropped what was not fsynced");
                    dropped.insert(n, json!(u));
                }
                Err(e) => errors.push(format!("power cut {n}: {e}")),
            }
        }
    }
    let value = json!({
        "nodes": killed,
        "scope": ctx.power_loss.name(),
        "key": key,
        "dropped": dropped,
    });
    let error = match (failed, super::joined(&errors)) {
        (None, None) => None,
        (Some(a), None) | (None, Some(a)) => Some(a),
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
    };
    match error {
        None => {
            ctx.rec.nemesis("power-loss-start", value);
            Ok(Active::PowerLoss(killed))
        }
        Some(e) => {
            ctx.rec.nemesis_error("power-loss-start", value, &e);
            let undone = stop(ctx, killed).await;
            let e = anyhow::anyhow!("power-loss-start: {e}");
            Err(super::rolled_back(e, "power-loss", undone))
        }
    }
}

/// Start the cut members again on what was durable. A member that will not start is a
/// finding about the store, not a failure of the fault: the event lists it under
/// `"not_restarted"` with why, stderr says so, the run goes on (with no further fault, see
/// [`Ctx::lost_members`]) and ends with a verdict on what the clients saw.
pub async fn stop(ctx: &Ctx, nodes: Vec<String>) -> anyhow::Result<()> {
    let results = ctx
        .blocking(move |c| {
            nodes
                .into_iter()
                .map(|n| {
                    let r = c.restart(&n).map_err(|e| e.to_string());
                    (n, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
    let mut restarted = Vec::new();
    let mut not_restarted = serde_json::Map::new();
    for (n, r) in results {
        match r {
            Ok(()) => restarted.push(n),
            Err(why) => {
                tracing::error!(
                    "power-loss: {n} would not start again on what was durable (a finding, recorded on power-loss-stop): {why}"
                );
                ctx.lost_members
                    .lock()
                    .unwrap()
                    .insert(n.clone(), why.clone());
                not_restarted.insert(n, json!(why));
            }
        }
    }
    let mut value = json!({ "nodes": restarted });
    if !not_restarted.is_empty() {
        value["not_restarted"] = serde_json::Value::Object(not_restarted);
    }
    ctx.rec.nemesis("power-loss-stop", value);
    Ok(())
}
