//! Flaky links: connections reset at random.
//!
//! A random minority of the nodes turns flaky: every link between one of them and any other
//! node, both directions, is chosen. Every [`EVERY`], each chosen link, with probability
//! `reset_probability` (`--flaky-reset-probability`), has its open connections reset (RST) by
//! the proxy. A replica call caught by a reset fails at once; a coordinator that cannot reach
//! its quorum answers 503, and a request whose fate is unknown is the client's `info`. Client
//! links are left alone, as partitions leave them.
//!
//! The draws come from a stream seeded by the schedule's rng, so the schedule itself does not
//! shift with how many ticks the window held.

use super::{Active, Ctx};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often each flaky link rolls for a reset.
pub const EVERY: Duration = Duration::from_millis(100);

pub struct State {
    value: Value,
    stop: watch::Sender<bool>,
    /// The reset task: how many resets it made, or the first error it met.
    task: JoinHandle<Result<u64, String>>,
}

/// Every link between a node of `flaky` and any other node, both ways, sorted, once each.
pub fn links_of(nodes: &[String], flaky: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in nodes {
        for b in nodes {
            if a != b && (flaky.contains(a) || flaky.contains(b)) {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out.sort();
    out
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = ctx.cluster.nodes().to_vec();
    let flaky = super::minority(&nodes, rng);
    let links = links_of(&nodes, &flaky);
    let p = ctx.link_faults.reset_probability;
    let pairs: Vec<[&String; 2]> = links.iter().map(|(a, b)| [a, b]).collect();
    let value = json!({
        "links": pairs,
        "reset_probability": p,
        "every_ms": EVERY.as_millis() as u64,
        "nodes": flaky,
    });
    let rolls = ChaCha8Rng::seed_from_u64(rng.gen());
    let (stop, stopped) = watch::channel(false);
    ctx.rec.nemesis("flaky-start", value.clone());
    let task = tokio::spawn(resets(ctx.clone(), links, p, rolls, stopped));
    Ok(Active::Flaky(State { value, stop, task }))
}

/// Roll for every link each [`EVERY`] until told to stop; the first failure ends it.
async fn resets(
    ctx: Ctx,
    links: Vec<(String, String)>,
    p: f64,
    mut rng: ChaCha8Rng,
    mut stop: watch::Receiver<bool>,
) -> Result<u64, String> {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; skip it so the first resets come one period in.
    tick.tick().await;
    let mut n = 0;
    // Bounded by the stop signal, which `stop` always sends.
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return Ok(n),
        }
        if *stop.borrow() {
            return Ok(n);
        }
        for (a, b) in &links {
            if rng.gen_bool(p) {
                // A proxy rule change is a lock and a watch send: quick enough for a worker.
                ctx.cluster
                    .reset_connections(a, b)
                    .map_err(|e| format!("reset {a} -> {b}: {e}"))?;
                n += 1;
            }
        }
    }
}

/// Stop resetting and record `flaky-stop` (with how many resets were made).
pub async fn stop(ctx: &Ctx, st: State) -> anyhow::Result<()> {
    let _ = st.stop.send(true);
    let done = st
        .task
        .await
        .unwrap_or_else(|e| Err(format!("reset task: {e}")));
    let mut value = st.value;
    match done {
        Ok(n) => {
            value["resets"] = json!(n);
            ctx.rec.nemesis("flaky-stop", value);
            Ok(())
        }
        Err(e) => {
            ctx.rec.nemesis_error("flaky-stop", value, &e);
            anyhow::bail!("flaky: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_touch_a_flaky_node_both_ways() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let l = links_of(&nodes, &["n2".to_string()]);
        assert_eq!(l.len(), 8);
        for (a, b) in &l {
            assert!(a == "n2" || b == "n2");
            assert!(l.contains(&(b.clone(), a.clone())));
        }
        // Two flaky nodes: 4 + 4 each way, minus the doubly counted pair = 14.
        let l = links_of(&nodes, &["n1".to_string(), "n2".to_string()]);
        assert_eq!(l.len(), 14);
    }
}
