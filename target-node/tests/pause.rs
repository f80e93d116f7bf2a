//! A paused replica (SIGSTOP: connections are accepted by the kernel, then nothing comes back —
//! what a blackholed link looks like) costs the coordinator at most the replica timeout.
mod common;

use common::Cluster;
use serde_json::json;

#[tokio::test]
async fn paused_replicas_do_not_stall_the_coordinator() -> anyhow::Result<()> {
    // The replica timeout is what a paused replica costs the coordinator; it must also be
    // long enough for a running replica on a loaded machine (200 ms was not: under three busy
    // loops a running replica's read sometimes missed it, failing the writes below). Both stay
    // well inside the test client's 10 s.
    let c = Cluster::start(
        3,
        &[
            "--preset",
            "abd",
            "--anti-entropy-interval-ms",
            "0",
            "--request-timeout-ms",
            "5000",
            "--replica-timeout-ms",
            "2000",
        ],
    )
    .await?;
    // One paused replica: quorums of the other two still answer. (`pause` returns once the
    // replica has really stopped: `kill` alone returns before it does, see `Cluster::pause`.)
    c.pause(2).await?;
    for k in 0..5 {
        let (code, body) = c.put(0, "p", json!(k)).await?;
        assert_eq!(code, 200, "{body}");
        let (code, body) = c.get(1, "p").await?;
        assert_eq!((code, body["value"].clone()), (200, json!(k)));
    }
    // Two paused: no quorum, so 503 once both replica timeouts have passed (the test client
    // would give up after 10 s). A two-phase write fails in its read phase, before any replica was sent the
    // write, so it certainly did not apply.
    c.pause(1).await?;
    let (code, body) = c.put(0, "p", json!("lost?")).await?;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["may_have_applied"], false, "{body}");
    let (code, _) = c.get(0, "p").await?;
    assert_eq!(code, 503);
    // `may_have_applied: false` promises the write reached no replica: the coordinator's own
    // replica (node 0 is running) still holds the last acknowledged value.
    assert_eq!(c.local(0, "p").await?, Some(json!(4)));
    // Resumed: the cluster serves again, and neither any replica nor any reader ever sees the
    // write that was promised not to have applied.
    c.resume(1)?;
    c.resume(2)?;
    let mut ok = false;
    for _ in 0..50 {
        let (code, body) = c.get(0, "p").await?;
        if code == 200 {
            assert_eq!(body["value"], json!(4), "{body}");
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "cluster never recovered");
    // Node 2 was paused through the acknowledged writes too, so it may lag (hints, repair):
    // what no replica may hold is the write that was never sent.
    for i in 0..3 {
        let held = c.local(i, "p").await?;
        assert_ne!(held, Some(json!("lost?")), "replica {i}");
        let (code, body) = c.get(i, "p").await?;
        assert_eq!(
            (code, body["value"].clone()),
            (200, json!(4)),
            "reader at {i}"
        );
    }
    Ok(())
}
