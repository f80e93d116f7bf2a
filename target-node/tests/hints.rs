//! Sloppy quorum: a fallback keeps a hint for a dead home node and hands it off on return.
mod common;

use common::{eventually, Cluster};
use quorate_node::ring::Ring;
use serde_json::json;

#[tokio::test]
async fn hints_are_delivered_after_the_home_node_returns() -> anyhow::Result<()> {
    // W = 3 so the write cannot succeed without the fallback's hint; anti-entropy off so only
    // hinted handoff can bring the key home.
    let mut c = Cluster::start(
        4,
        &[
            "--sloppy-quorum",
            "--w",
            "3",
            "--handoff-interval-ms",
            "200",
            "--anti-entropy-interval-ms",
            "0",
            "--replica-timeout-ms",
            "300",
            "--request-timeout-ms",
            "3000",
        ],
    )
    .await?;
    let ids: Vec<String> = (1..=4).map(|i| format!("n{i}")).collect();
    let ring = Ring::new(&ids, 64, 3);
    let key = "hinted";
    let walk = ring.walk(quorate_node::ring::key_position(key));
    let (coord, home_down, fallback) = (
        c.index(ring.node_id(walk[0])),
        c.index(ring.node_id(walk[1])),
        c.index(ring.node_id(walk[3])),
    );
    c.kill(home_down);
    let (code, body) = c.put(coord, key, json!("h1")).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.stats(fallback).await?["hints_pending"], 1);
    c.restart(home_down).await?;
    assert!(
        eventually(100, || async {
            c.local(home_down, key).await.ok().flatten() == Some(json!("h1"))
        })
        .await,
        "hint never delivered"
    );
    assert!(
        eventually(50, || async {
            let s = c.stats(fallback).await.unwrap_or_default();
            s["hints_delivered"] == 1 && s["hints_pending"] == 0
        })
        .await
    );
    Ok(())
}
