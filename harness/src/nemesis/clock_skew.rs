//! Clock skew: give nodes LWW clock offsets seconds apart (`PUT /admin/clock-offset`), and
//! set them back to zero when the fault stops. Admin calls go to the node's own address, not
//! through the proxy, so a concurrent partition cannot swallow them. The events list the
//! offsets really set; a node that refused one is the event's `error` (see [`super`]).
//! A target without that call moves its members' clocks through [`Ctx::clock`] instead
//! (libfaketime offset files, see `crate::target::faketime`).

use super::{joined, Active, Ctx};
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

/// Set one node's offset; the error names the node and what it answered.
async fn set(ctx: &Ctx, node: &str, ms: i64) -> Result<(), String> {
    if let Some(clock) = &ctx.clock {
        return clock.set_offset(node, ms);
    }
    let url = format!("http://{}/admin/clock-offset", ctx.cluster.admin_addr(node));
    let resp = ctx
        .http
        .put(url)
        .json(&json!({ "ms": ms }))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| format!("clock offset {ms} ms on {node}: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "clock offset {ms} ms on {node}: HTTP {}",
            resp.status()
        ))
    }
}

/// Set every offset in `offs`; returns those applied and the failures.
async fn set_all(ctx: &Ctx, offs: &BTreeMap<String, i64>) -> (BTreeMap<String, i64>, Vec<String>) {
    let mut applied = BTreeMap::new();
    let mut errors = Vec::new();
    for (n, ms) in offs {
        match set(ctx, n, *ms).await {
            Ok(()) => {
                applied.insert(n.clone(), *ms);
            }
            Err(e) => errors.push(e),
        }
    }
    (applied, errors)
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let offs = offsets(ctx.cluster.nodes(), rng);
    let (applied, errors) = set_all(ctx, &offs).await;
    let value = json!({ "offsets_ms": applied });
    match joined(&errors) {
        None => {
            ctx.rec.nemesis("clock-skew-start", value);
            Ok(Active::ClockSkew(offs.keys().cloned().collect()))
        }
        Some(e) => {
            ctx.rec.nemesis_error("clock-skew-start", value, &e);
            let undone = stop(ctx, applied.keys().cloned().collect()).await;
            let e = anyhow::anyhow!("clock-skew-start: {e}");
            Err(super::rolled_back(e, "clock-skew", undone))
        }
    }
}

pub async fn stop(ctx: &Ctx, nodes: Vec<String>) -> anyhow::Result<()> {
    let zero: BTreeMap<String, i64> = nodes.into_iter().map(|n| (n, 0)).collect();
    let (applied, errors) = set_all(ctx, &zero).await;
    let value = json!({ "offsets_ms": applied });
    match joined(&errors) {
        None => {
            ctx.rec.nemesis("clock-skew-stop", value);
            Ok(())
        }
        Some(e) => {
            ctx.rec.nemesis_error("clock-skew-stop", value, &e);
            anyhow::bail!("clock-skew-stop: {e}")
        }
    }
}
