//! Pause: SIGSTOP a random minority, SIGCONT it when the fault stops. A paused node keeps its
//! sockets open, so peers see hung requests, not refusals — the "long GC pause" case.

use super::{minority, Active, Ctx};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> Active {
    let nodes = minority(ctx.cluster.nodes(), rng);
    let n2 = nodes.clone();
    let paused: Vec<String> = ctx
        .blocking(move |c| n2.into_iter().filter(|n| c.pause(n).is_ok()).collect())
        .await;
    ctx.rec.nemesis("pause-start", json!({ "nodes": paused }));
    Active::Pause(paused)
}

pub async fn stop(ctx: &Ctx, nodes: Vec<String>) {
    let n2 = nodes.clone();
    ctx.blocking(move |c| {
        for n in &n2 {
            let _ = c.resume(n);
        }
    })
    .await;
    ctx.rec.nemesis("pause-stop", json!({ "nodes": nodes }));
}
