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
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
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
    let pid = c.nodes[silent].child.as_ref().expect("running").id();
    let signal = |sig| kill(Pid::from_raw(pid as i32), sig).expect("signal");
    signal(Signal::SIGSTOP);
    let (code, body) = c.put(coord, key, json!("late")).await?;
    assert_eq!(code, 200, "{body}");
    let hinted = eventually(60, || async {
        c.stats(fallback).await.unwrap_or_default()["hints_pending"] == 1
    })
    .await;
    signal(Signal::SIGCONT);
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
