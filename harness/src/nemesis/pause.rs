//! Pause: SIGSTOP a random minority (for a target with a leader, the leader half the time),
//! SIGCONT it when the fault stops. A paused node keeps its
//! sockets open, so peers see hung requests, not refusals — the "long GC pause" case.
//!
//! `pause-start` lists the nodes really stopped (with `leader` / `leader_unknown` as for
//! kill), `pause-stop` the nodes really continued;
//! failures are the event's `error` (see the convention in [`super`]).

use super::{minority, on_each, Active, Ctx};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    // A target with a leader has it paused half the time (no draw for one without): a
    // leader that wakes up still believing it leads is the classic stale-read setting.
    let aimed = super::aim_at_leader(ctx, rng).await;
    let nodes = match &aimed {
        Some(Ok(leader)) => vec![leader.clone()],
        _ => minority(ctx.cluster.nodes(), rng),
    };
    let (paused, failed) = on_each(ctx, nodes, "pause", |c, n| c.pause(n)).await;
    let mut value = json!({ "nodes": paused });
    for (field, v) in super::aim_notes(&aimed) {
        value[field] = v;
    }
    match failed {
        None => {
            ctx.rec.nemesis("pause-start", value);
            Ok(Active::Pause(paused))
        }
        Some(e) => {
            ctx.rec.nemesis_error("pause-start", value, &e);
            let undone = stop(ctx, paused).await;
            let e = anyhow::anyhow!("pause-start: {e}");
            Err(super::rolled_back(e, "pause", undone))
        }
    }
}

pub async fn stop(ctx: &Ctx, nodes: Vec<String>) -> anyhow::Result<()> {
    let (resumed, failed) = on_each(ctx, nodes, "resume", |c, n| c.resume(n)).await;
    let value = json!({ "nodes": resumed });
    match failed {
        None => {
            ctx.rec.nemesis("pause-stop", value);
            Ok(())
        }
        Some(e) => {
            ctx.rec.nemesis_error("pause-stop", value, &e);
            anyhow::bail!("pause-stop: {e}")
        }
    }
}
