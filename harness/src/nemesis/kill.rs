//! Kill: SIGKILL a random minority, restart it (same data directory) when the fault stops.
//!
//! `kill-start` lists the nodes really killed; `kill-stop` the nodes really restarted, with
//! the failures as its `error` (see the convention in [`super`]).

use super::{joined, minority, Active, Ctx};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = minority(ctx.cluster.nodes(), rng);
    let (killed, errors) = ctx
        .blocking(move |c| {
            let mut killed = Vec::new();
            let mut errors = Vec::new();
            for n in nodes {
                match c.kill(&n) {
                    Ok(()) => killed.push(n),
                    Err(e) => errors.push(format!("kill {n}: {e}")),
                }
            }
            (killed, errors)
        })
        .await;
    let value = json!({ "nodes": killed });
    match joined(&errors) {
        None => {
            ctx.rec.nemesis("kill-start", value);
            Ok(Active::Kill(killed))
        }
        Some(e) => {
            ctx.rec.nemesis_error("kill-start", value, &e);
            // Bring back the ones that did die, so the cluster is whole again.
            let _ = stop(ctx, killed).await;
            anyhow::bail!("kill-start: {e}")
        }
    }
}

pub async fn stop(ctx: &Ctx, nodes: Vec<String>) -> anyhow::Result<()> {
    let (restarted, errors) = ctx
        .blocking(move |c| {
            let mut restarted = Vec::new();
            let mut errors = Vec::new();
            for n in nodes {
                match c.restart(&n) {
                    Ok(()) => restarted.push(n),
                    Err(e) => errors.push(format!("restart {n}: {e}")),
                }
            }
            (restarted, errors)
        })
        .await;
    let value = json!({ "nodes": restarted });
    match joined(&errors) {
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
