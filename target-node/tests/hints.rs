//! Sloppy quorum: a fallback keeps a hint for a dead home node and hands it off on return.
mod common;

use common::{eventually, Cluster};
use quorate_node::ring::Ring;
use serde_json::json;

/// A sloppy-quorum cluster's flags: write quorum `w`, hints handed off every 200 ms,
/// anti-entropy off (so only hinted handoff can bring a key home), replicas given 300 ms.
fn sloppy(w: &'static str, request_timeout_ms: &'static str) -> [&'static str; 11] {
    [
        "--sloppy-quorum",
        "--w",
        w,
        "--handoff-interval-ms",
        "200",
        "--anti-entropy-interval-ms",
        "0",
        "--replica-timeout-ms",
        "300",
        "--request-timeout-ms",
        request_timeout_ms,
    ]
}

#[tokio::test]
async fn hints_are_delivered_after_the_home_node_returns() -> anyhow::Result<()> {
    // W = 3 so the write cannot succeed without the fallback's hint; anti-entropy off so only
    // hinted handoff can bring the key home.
    let mut c = Cluster::start(4, &sloppy("3", "3000")).await?;
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

/// A home that does not answer (SIGSTOP: the kernel accepts, nothing comes back) while two
/// others ack at once: the write answers at W = 2, and the silent home still gets its hint
/// once its replica timeout passes, so handoff brings the key home after it resumes. Before,
/// only a home that failed before the quorum was reached got a hint, and such a write stayed
/// off its third home until anti-entropy (off here) ran.
#[tokio::test]
async fn a_home_silent_after_the_quorum_still_gets_its_hint() -> anyhow::Result<()> {
    let c = Cluster::start(4, &sloppy("2", "2000")).await?;
    let ids: Vec<String> = (1..=4).map(|i| format!("n{i}")).collect();
    let ring = Ring::new(&ids, 64, 3);
    let key = "late-hint";
    let walk = ring.walk(quorate_node::ring::key_position(key));
    let (coord, silent, fallback) = (
        c.index(ring.node_id(walk[0])),
        c.index(ring.node_id(walk[2])),
        c.index(ring.node_id(walk[3])),
    );
    // Stopped for real before the write (see `Cluster::pause`): a home still answering would
    // ack in time and get no hint, which is not the case this test is about.
    c.pause(silent).await?;
    let (code, body) = c.put(coord, key, json!("late")).await?;
    assert_eq!(code, 200, "{body}");
    let hinted = eventually(60, || async {
        c.stats(fallback).await.unwrap_or_default()["hints_pending"] == 1
    })
    .await;
    c.resume(silent)?;
    assert!(hinted, "the silent home got no hint");
    assert!(
        eventually(100, || async {
            c.local(silent, key).await.ok().flatten() == Some(json!("late"))
        })
        .await,
        "hint never delivered"
    );
    Ok(())
}

/// A 4-node sloppy cluster with write quorum `w` whose key `key` has two of its three homes
/// down (so its one fallback cannot cover both); its coordinator (the first home) writes
/// `value`, answering `expect`. Then both homes come back and must each get the write, through
/// hinted handoff alone (anti-entropy is off). Returns the cluster for further checks.
async fn two_homes_down_then_back(
    w: &'static str,
    key: &str,
    value: serde_json::Value,
    expect: u16,
) -> anyhow::Result<Cluster> {
    let mut c = Cluster::start(4, &sloppy(w, "3000")).await?;
    let ids: Vec<String> = (1..=4).map(|i| format!("n{i}")).collect();
    let ring = Ring::new(&ids, 64, 3);
    let walk = ring.walk(quorate_node::ring::key_position(key));
    let coord = c.index(ring.node_id(walk[0]));
    let downs = [
        c.index(ring.node_id(walk[1])),
        c.index(ring.node_id(walk[2])),
    ];
    for &d in &downs {
        c.kill(d);
    }
    let (code, body) = c.put(coord, key, value.clone()).await?;
    assert_eq!(code, expect, "{body}");
    // The coordinator's own replica write may still be landing when a 503 is sent.
    assert!(
        eventually(50, || async {
            c.local(coord, key).await.ok().flatten() == Some(value.clone())
        })
        .await,
        "the write never applied on the coordinator"
    );
    for &d in &downs {
        c.restart(d).await?;
    }
    for &d in &downs {
        assert!(
            eventually(100, || async {
                c.local(d, key).await.ok().flatten() == Some(value.clone())
            })
            .await,
            "home {} never got the write",
            ids[d]
        );
    }
    Ok(c)
}

/// More failed homes than fallbacks: with 4 nodes and 3 replicas there is one fallback, so when
/// two homes are down the first failure's hint takes it and the second home has nowhere to
/// go. The write still reaches W = 2 (the coordinator and the fallback's hint), and the second
/// home must still get the write after it returns: the coordinator keeps its hint itself, as
/// Cassandra does. Before, that home got nothing, and with anti-entropy off its replica stayed
/// behind for good (`make claims`' dynamo-partition: keys apart after the quiet period though
/// no node held a hint).
#[tokio::test]
async fn a_home_with_no_fallback_left_gets_its_hint_from_the_coordinator() -> anyhow::Result<()> {
    let c = two_homes_down_then_back("2", "orphan", json!("o1"), 200).await?;
    assert!(
        eventually(50, || async {
            let total: u64 = futures::future::join_all((0..4).map(|i| c.stats(i)))
                .await
                .into_iter()
                .map(|s| s.unwrap_or_default()["hints_pending"].as_u64().unwrap_or(0))
                .sum();
            total == 0
        })
        .await,
        "hints still pending after both homes have the write"
    );
    Ok(())
}

/// A write that misses its quorum after reaching some replicas (W = 3; two homes down, one
/// fallback) is unknown to its client (503, may have applied), and it is on two nodes already:
/// the homes that missed it get hints too, so the replicas agree again after the heal instead
/// of differing until anti-entropy (off here) runs.
#[tokio::test]
async fn a_write_that_missed_its_quorum_still_converges() -> anyhow::Result<()> {
    two_homes_down_then_back("3", "partial", json!("p1"), 503).await?;
    Ok(())
}
