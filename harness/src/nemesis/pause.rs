//! Pause: SIGSTOP a random minority, SIGCONT it when the fault stops. A paused node keeps its
//! sockets open, so peers see hung requests, not refusals — the "long GC pause" case.
//!
//! `pause-start` lists the nodes really stopped, `pause-stop` the nodes really continued;
//! failures are the event's `error` (see the convention in [`super`]).

use super::{joined, minority, Active, Ctx};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = minority(ctx.cluster.nodes(), rng);
    let (paused, errors) = ctx
        .blocking(move |c| {
            let mut paused = Vec::new();
            let mut errors = Vec::new();
            for n in nodes {
                match c.pause(&n) {
                    Ok(()) => paused.push(n),
                    Err(e) => errors.push(format!("pause {n}: {e}")),
                }
            }
            (paused, errors)
        })
        .await;
    let value = json!({ "nodes": paused });
    match joined(&errors) {
        None => {
            ctx.rec.nemesis("pause-start", value);
            Ok(Active::Pause(paused))
        }
        Some(e) => {
            ctx.rec.nemesis_error("pause-start", value, &e);
            let _ = stop(ctx, paused).await;
            anyhow::bail!("pause-start: {e}")
        }
    }
}

pub async fn stop(ctx: &Ctx, nodes: Vec<String>) -> anyhow::Result<()> {
    let (resumed, errors) = ctx
        .blocking(move |c| {
            let mut resumed = Vec::new();
            let mut errors = Vec::new();
            for n in nodes {
                match c.resume(&n) {
                    Ok(()) => resumed.push(n),
                    Err(e) => errors.push(format!("resume {n}: {e}")),
                }
            }
            (resumed, errors)
        })
        .await;
    let value = json!({ "nodes": resumed });
    match joined(&errors) {
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
