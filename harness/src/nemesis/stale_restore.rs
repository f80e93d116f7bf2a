//! Stale restore: a node carrying new values fails and comes back from an older copy.
//!
//! Aimed so the anomaly can show (the seed's case). For the busy key with home nodes
//! `{X, Y, Z}`:
//! 1. pause X, copy its data directory (crash-consistent: the process is stopped), resume X;
//!    cut Y off, so the key's writes land on exactly W = 2 replicas, X and Z;
//! 2. half-way, heal Y, kill X, restore the old copy, restart X, and cut Z off instead: now
//!    the replicas a quorum can reach, X and Y, both predate those writes;
//! 3. stop: heal everything.
//!
//! With fewer than three home nodes (tiny clusters) it degrades to snapshot → restore of X.
//!
//! Clients are held on that key from start to stop ([`crate::client::KeyPin`]): keys rotate
//! every few hundred ms, so without the pin the writes of step 1 land on keys nobody reads in
//! step 2, and anti-entropy has repaired them by the final reads.

use super::{partition, Active, Ctx};
use crate::backend::Snapshot;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
// Tokio's clock (std's in a run): the snapshot's age is exact under the unit tests' paused clock.
use tokio::time::Instant;

pub struct State {
    node: String,
    snapshot: Snapshot,
    /// Z: cut off in the second half.
    other: Option<String>,
    taken: Instant,
    age_ms: Option<u64>,
    /// Why the middle step failed, recorded on `stale-restore-stop`.
    error: Option<String>,
}

fn isolate(nodes: &[String], x: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for n in nodes.iter().filter(|n| n.as_str() != x) {
        out.push((x.to_string(), n.clone()));
        out.push((n.clone(), x.to_string()));
    }
    out.sort();
    out
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = ctx.cluster.nodes().to_vec();
    let key_index = ctx.busy_key.load(std::sync::atomic::Ordering::Relaxed);
    ctx.pin.set(key_index);
    let key = quorate_workloads::key_name(key_index);
    let mut home = ctx.home_nodes(&key);
    if home.is_empty() {
        home = nodes.clone();
    }
    home.shuffle(rng);
    let x = home[0].clone();
    let x2 = x.clone();
    let snapshot = ctx
        .blocking(move |c| {
            c.pause(&x2).map_err(|e| format!("pause {x2}: {e}"))?;
            let snap = c.snapshot(&x2).map_err(|e| format!("copy {x2}: {e}"));
            let resumed = c.resume(&x2).map_err(|e| format!("resume {x2}: {e}"));
            let snap = snap?;
            resumed?;
            Ok::<_, String>(snap)
        })
        .await;
    let taken = Instant::now();
    let value = json!({ "node": x, "snapshot_age_ms": 0 });
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => {
            ctx.rec.nemesis_error("stale-restore-start", value, &e);
            ctx.pin.clear();
            anyhow::bail!("stale-restore-start: {e}");
        }
    };
    ctx.rec.nemesis("stale-restore-start", value);
    if let Some(y) = home.get(1) {
        if let Err(e) = partition::apply(ctx, "one", isolate(&nodes, y), Some(json!(key))).await {
            ctx.pin.clear();
            return Err(e);
        }
    }
    Ok(Active::StaleRestore(State {
        node: x,
        snapshot,
        other: home.get(2).cloned(),
        taken,
        age_ms: None,
        error: None,
    }))
}

/// The middle step: X comes back from its old copy; Z is cut off instead of Y.
///
/// The order matters. X is killed and restored while Y is still cut off (so no quorum of the
/// key's home nodes exists meanwhile), then the cut moves from Y to Z in one blocking call, and
/// only then X restarts. Healing Y first would let Y catch up from Z — through new writes, read
/// repair and anti-entropy — before Z is cut, and the old values would never be seen.
///
/// On failure the state comes back with the error (for `stale-restore-stop`) and X has been
/// restarted if it could be.
pub async fn restore(ctx: &Ctx, mut st: State) -> Result<State, (State, anyhow::Error)> {
    let nodes = ctx.cluster.nodes().to_vec();
    let z_links = st
        .other
        .as_ref()
        .map(|z| isolate(&nodes, z))
        .unwrap_or_default();
    let node = st.node.clone();
    let snap = st.snapshot.clone();
    let rec = ctx.rec.clone();
    let res = ctx
        .blocking(move |c| {
            c.kill(&node).map_err(|e| format!("kill {node}: {e}"))?;
            let restored = c
                .restore(&snap)
                .map_err(|e| format!("restore {node} from its copy: {e}"));
            // Swap the cut from Y to Z back to back, while X is down.
            let swapped = match c.heal() {
                Err(e) => {
                    let e = format!("heal: {e}");
                    rec.nemesis_error("partition-stop", serde_json::Value::Null, &e);
                    Err(e)
                }
                Ok(()) => {
                    rec.nemesis("partition-stop", serde_json::Value::Null);
                    let mut applied = Vec::new();
                    let mut err = None;
                    for (a, b) in &z_links {
                        if let Err(e) = c.drop_traffic(a, b) {
                            err = Some(format!("cut {a} -> {b}: {e}"));
                            break;
                        }
                        applied.push([a, b]);
                    }
                    let value = json!({"kind": "one", "drop": applied});
                    match err {
                        Some(e) => {
                            rec.nemesis_error("partition-start", value, &e);
                            Err(e)
                        }
                        None if z_links.is_empty() => Ok(()),
                        None => {
                            rec.nemesis("partition-start", value);
                            Ok(())
                        }
                    }
                }
            };
            // Restart even when the copy failed: the node must come back either way.
            let restarted = c.restart(&node).map_err(|e| format!("restart {node}: {e}"));
            restored?;
            swapped?;
            restarted
        })
        .await;
    match res {
        Ok(()) => {
            st.age_ms = Some(st.taken.elapsed().as_millis() as u64);
            Ok(st)
        }
        Err(e) => {
            let err = anyhow::anyhow!("stale-restore of {}: {e}", st.node);
            st.error = Some(e);
            Err((st, err))
        }
    }
}

pub async fn stop(ctx: &Ctx, st: State) -> anyhow::Result<()> {
    ctx.pin.clear();
    let healed = if st.other.is_some() {
        partition::stop(ctx).await
    } else {
        Ok(())
    };
    let value = json!({ "node": st.node, "snapshot_age_ms": st.age_ms.unwrap_or(0) });
    match &st.error {
        Some(e) => ctx.rec.nemesis_error("stale-restore-stop", value, e),
        None => ctx.rec.nemesis("stale-restore-stop", value),
    }
    healed
}
