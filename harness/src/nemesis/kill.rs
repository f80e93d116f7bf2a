//! Kill: SIGKILL a random minority, restart it (same data directory) when the fault stops.
//!
//! `kill-start` lists the nodes really killed; `kill-stop` the nodes really restarted, with
//! the failures as its `error` (see the convention in [`super`]).

use super::{minority, on_each, Active, Ctx};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = minority(ctx.cluster.nodes(), rng);
    let (killed, failed) = on_each(ctx, nodes, "kill", |c, n| c.kill(n)).await;
    let value = json!({ "nodes": killed });
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
