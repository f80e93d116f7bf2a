//! Kill: SIGKILL a random minority, restart it (same data directory) when the fault stops.

use super::{minority, Active, Ctx};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> Active {
    let nodes = minority(ctx.cluster.nodes(), rng);
    let n2 = nodes.clone();
    let killed: Vec<String> = ctx
        .blocking(move |c| n2.into_iter().filter(|n| c.kill(n).is_ok()).collect())
        .await;
    ctx.rec.nemesis("kill-start", json!({ "nodes": killed }));
    Active::Kill(killed)
}

pub async fn stop(ctx: &Ctx, nodes: Vec<String>) {
    let n2 = nodes.clone();
    let errors: Vec<String> = ctx
        .blocking(move |c| {
            n2.iter()
                .filter_map(|n| c.restart(n).err().map(|e| e.to_string()))
                .collect()
        })
        .await;
    for e in &errors {
        tracing::warn!("restart failed: {e}");
    }
    ctx.rec.nemesis("kill-stop", json!({ "nodes": nodes }));
}
