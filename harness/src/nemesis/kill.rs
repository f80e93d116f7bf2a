//! Kill: SIGKILL a random minority — or, for a target with a leader, the leader half the
//! time — and restart it (same data directory) when the fault stops.
//!
//! `kill-start` lists the nodes really killed (with `leader` when it aimed at the leader, or
//! `leader_unknown` when it meant to and could not find it); `kill-stop` the nodes really restarted, with
//! the failures as its `error` (see the convention in [`super`]).

use super::{minority, on_each, Active, Ctx};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    // A target with a leader has it killed half the time (no draw for one without).
    let aimed = super::aim_at_leader(ctx, rng).await;
    let nodes = match &aimed {
        Some(Ok(leader)) => vec![leader.clone()],
        _ => minority(ctx.cluster.nodes(), rng),
    };
    let (killed, failed) = on_each(ctx, nodes, "kill", |c, n| c.kill(n)).await;
    let mut value = json!({ "nodes": killed });
    for (field, v) in super::aim_notes(&aimed) {
        value[field] = v;
    }
    match failed {
        None => {
            ctx.rec.nemesis("kill-start", value);
            Ok(Active::Kill(killed))
        }
        Some(e) => {
            ctx.rec.nemesis_error("kill-start", value, &e);
            // Bring back the ones that did die, so the cluster is whole again.
            let undone = stop(ctx, killed).await;
            let e = anyhow::anyhow!("kill-start: {e}");
            Err(super::rolled_back(e, "kill", undone))
        }
    }
}

pub async fn stop(ctx: &Ctx, nodes: Vec<String>) -> anyhow::Result<()> {
    let (restarted, failed) = on_each(ctx, nodes, "restart", |c, n| c.restart(n)).await;
    let value = json!({ "nodes": restarted });
    match failed {
        None => {
            ctx.rec.nemesis("kill-stop", value);
            Ok(())
        }
        Some(e) => {
            ctx.rec.nemesis_error("kill-stop", value, &e);
            anyhow::bail!("kill-stop: {e}")
        }
    }
}
