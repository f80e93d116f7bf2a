//! SIGKILL + restart keeps every acknowledged write (`--fsync always`).
mod common;

use common::Cluster;
use serde_json::json;

#[tokio::test]
async fn sigkill_and_restart_keep_every_acknowledged_write() -> anyhow::Result<()> {
    let mut c = Cluster::start(
        3,
        &[
            "--preset",
            "abd",
            "--fsync",
            "always",
            "--anti-entropy-interval-ms",
            "0",
        ],
    )
    .await?;
    // Writers keep going while every node is killed; only writes acknowledged before that count.
    let http = c.http.clone();
    let urls: Vec<String> = (0..3).map(|i| c.url(i)).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, urls, tx) = (http.clone(), urls.clone(), tx.clone());
        writers.push(tokio::spawn(async move {
            for k in 0..400 {
                let key = format!("w{w}-{k}");
                let r = http
                    .put(format!("{}/kv/{key}", urls[k % 3]))
                    .json(&json!({ "value": k }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = tx.send((key, k));
                    }
                    _ => return,
                }
            }
        }));
    }
    drop(tx);
    let mut acked = Vec::new();
    while acked.len() < 60 {
        match rx.recv().await {
            Some(a) => acked.push(a),
            None => break,
        }
    }
    for i in 0..3 {
        c.kill(i);
    }
    for w in writers {
        let _ = w.await;
    }
    while let Ok(a) = rx.try_recv() {
        acked.push(a);
    }
    assert!(acked.len() >= 60);
    for i in 0..3 {
        c.restart(i).await?;
    }
    for (n, (key, v)) in acked.iter().enumerate() {
        let (code, body) = c.get(n % 3, key).await?;
        assert_eq!(
            (code, body["value"].clone()),
            (200, json!(v)),
            "acknowledged write {key} lost"
        );
    }
    Ok(())
}

#[tokio::test]
async fn fsync_never_can_lose_acknowledged_writes_to_sigkill() -> anyhow::Result<()> {
    // The weak side of the knob, pinned so the harness's lost-writes check has something to
    // find: without fsync, commits are not durable and a SIGKILL of every replica rolls them
    // back (redb returns to its last durable commit).
    let mut c = Cluster::start(3, &["--fsync", "never", "--anti-entropy-interval-ms", "0"]).await?;
    for k in 0..10 {
        assert_eq!(c.put(k % 3, &format!("nf{k}"), json!(k)).await?.0, 200);
    }
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i).await?;
    }
    let mut lost = 0;
    for k in 0..10 {
        if c.get(0, &format!("nf{k}")).await?.0 == 404 {
            lost += 1;
        }
    }
    assert!(lost > 0, "expected --fsync never to lose writes on SIGKILL");
    Ok(())
}
