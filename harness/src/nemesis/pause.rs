//! Pause: SIGSTOP a random minority, SIGCONT it when the fault stops. A paused node keeps its
//! sockets open, so peers see hung requests, not refusals — the "long GC pause" case.
//!
//! `pause-start` lists the nodes really stopped, `pause-stop` the nodes really continued;
//! failures are the event's `error` (see the convention in [`super`]).

use super::{minority, on_each, Active, Ctx};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = minority(ctx.cluster.nodes(), rng);
    let (paused, failed) = on_each(ctx, nodes, "pause", |c, n| c.pause(n)).await;
    let value = json!({ "nodes": paused });
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
