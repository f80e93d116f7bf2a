//! Clock skew: give nodes LWW clock offsets seconds apart (`PUT /admin/clock-offset`), and
//! set them back to zero when the fault stops. Admin calls go to the node's own address, not
//! through the proxy, so a concurrent partition cannot swallow them.

use super::{Active, Ctx};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Offsets for `nodes`: a shuffled ladder `spacing` apart, centred on zero.
pub fn offsets(nodes: &[String], rng: &mut ChaCha8Rng) -> BTreeMap<String, i64> {
    let spacing: i64 = rng.gen_range(2..=5) * 1000;
    let mut order = nodes.to_vec();
    order.shuffle(rng);
    let mid = (order.len() as i64 - 1) / 2;
    order
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, (i as i64 - mid) * spacing))
        .collect()
}

async fn set(ctx: &Ctx, node: &str, ms: i64) -> bool {
    let url = format!("http://{}/admin/clock-offset", ctx.cluster.admin_addr(node));
    ctx.http
        .put(url)
        .json(&json!({ "ms": ms }))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> Active {
    let offs = offsets(ctx.cluster.nodes(), rng);
    for (n, ms) in &offs {
        if !set(ctx, n, *ms).await {
            tracing::warn!("clock offset on {n} not applied");
        }
    }
    ctx.rec
        .nemesis("clock-skew-start", json!({ "offsets_ms": offs }));
    Active::ClockSkew(offs.keys().cloned().collect())
}

pub async fn stop(ctx: &Ctx, nodes: Vec<String>) {
    let mut offs = BTreeMap::new();
    for n in &nodes {
        set(ctx, n, 0).await;
        offs.insert(n.clone(), 0);
    }
    ctx.rec
        .nemesis("clock-skew-stop", json!({ "offsets_ms": offs }));
}
