//! Hinted handoff: hints this node keeps for unreachable home nodes go home when they answer.
//!
//! Hints are stored durably (their own redb table) by the fallback that accepted them, so a
//! fallback's ack survives its own crash. Every `--handoff-interval-ms` each hint is offered to
//! its home node as an ordinary replica write; once the home acknowledges it (durably), the
//! hint is deleted — unless a newer hint for the same key arrived meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::node::Node;
use crate::stats::Stats;

/// Hints offered at once; bounded so a long outage's backlog does not flood the home node.
const PARALLEL: usize = 16;

pub async fn run(node: Arc<Node>) {
    let every = Duration::from_millis(node.cfg.handoff_interval_ms);
    loop {
        tokio::time::sleep(every).await;
        deliver_once(&node).await;
    }
}

/// Offers every stored hint once; returns how many were delivered.
pub async fn deliver_once(node: &Arc<Node>) -> u64 {
    let hints = node.storage.hints();
    if hints.is_empty() {
        return 0;
    }
    let delivered = futures::stream::iter(hints)
        .map(|(home, key, rec)| async move {
            let Some(idx) = node.ring.index_of(&home) else {
                return 0u64;
            };
            if node.replicas.put(idx, &key, &rec).await.is_err() {
                return 0;
            }
            match node.storage.delete_hint(&home, &key, &rec.version).await {
                Ok(_) => {
                    Stats::inc(&node.stats.hints_delivered);
                    1
                }
                Err(e) => {
                    tracing::warn!("could not delete a delivered hint: {e}");
                    0
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .fold(0u64, |acc, n| async move { acc + n })
        .await;
    if delivered > 0 {
        tracing::info!(delivered, "hints handed off to their home nodes");
    }
    delivered
}
