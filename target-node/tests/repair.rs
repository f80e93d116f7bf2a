//! Stale replicas healed: read repair (blocking and async) and anti-entropy.
mod common;

use common::{eventually, Cluster};
use serde_json::json;

/// `k` is on n1 and n2 only; n3 is stale (it never got the write).
async fn stale_third_replica(c: &Cluster, key: &str) -> anyhow::Result<()> {
    c.plant(0, key, json!("v1"), 10).await?;
    c.plant(1, key, json!("v1"), 10).await?;
    assert_eq!(c.local(2, key).await?, None);
    Ok(())
}

#[tokio::test]
async fn blocking_read_repair_fixes_a_stale_replica() -> anyhow::Result<()> {
    // R = 3 so the stale replica is among the answers the read waits for.
    let c = Cluster::start(
        3,
        &[
            "--read-repair",
            "blocking",
            "--r",
            "3",
            "--anti-entropy-interval-ms",
            "0",
        ],
    )
    .await?;
    stale_third_replica(&c, "rb").await?;
    let (code, body) = c.get(0, "rb").await?;
    assert_eq!((code, body["value"].clone()), (200, json!("v1")));
    assert!(
        eventually(50, || async {
            c.local(2, "rb").await.ok().flatten() == Some(json!("v1"))
        })
        .await
    );
    assert!(c.stats(0).await?["read_repairs"].as_u64().unwrap_or(0) >= 1);
    Ok(())
}

#[tokio::test]
async fn async_read_repair_fixes_a_stale_replica() -> anyhow::Result<()> {
    let c = Cluster::start(
        3,
        &["--read-repair", "async", "--anti-entropy-interval-ms", "0"],
    )
    .await?;
    stale_third_replica(&c, "ra").await?;
    assert_eq!(c.get(1, "ra").await?.1["value"], "v1");
    assert!(
        eventually(50, || async {
            c.local(2, "ra").await.ok().flatten() == Some(json!("v1"))
        })
        .await
    );
    assert!(c.stats(1).await?["read_repairs"].as_u64().unwrap_or(0) >= 1);
    Ok(())
}

#[tokio::test]
async fn read_repair_off_leaves_the_stale_replica() -> anyhow::Result<()> {
    let c = Cluster::start(
        3,
        &[
            "--read-repair",
            "off",
            "--r",
            "3",
            "--anti-entropy-interval-ms",
            "0",
        ],
    )
    .await?;
    stale_third_replica(&c, "ro").await?;
    assert_eq!(c.get(0, "ro").await?.1["value"], "v1");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(c.local(2, "ro").await?, None);
    Ok(())
}

#[tokio::test]
async fn anti_entropy_converges_a_never_read_key() -> anyhow::Result<()> {
    let c = Cluster::start(
        3,
        &["--read-repair", "off", "--anti-entropy-interval-ms", "200"],
    )
    .await?;
    // Some keys everywhere, then one newer version on n1 only and one key only on n3.
    for k in 0..50 {
        assert_eq!(c.put(0, &format!("bulk{k}"), json!(k)).await?.0, 200);
    }
    c.plant(0, "bulk7", json!("newer"), u64::MAX / 4).await?;
    c.plant(2, "only-n3", json!("x"), 5).await?;
    let converged = eventually(100, || async {
        let mut ok = true;
        for i in 0..3 {
            ok &= c.local(i, "bulk7").await.ok().flatten() == Some(json!("newer"));
            ok &= c.local(i, "only-n3").await.ok().flatten() == Some(json!("x"));
        }
        ok
    })
    .await;
    assert!(converged, "anti-entropy did not converge");
    let mut repaired = 0;
    for i in 0..3 {
        let s = c.stats(i).await?;
        assert!(s["anti_entropy_rounds"].as_u64().unwrap_or(0) > 0);
        repaired += s["keys_repaired"].as_u64().unwrap_or(0);
    }
    assert!(repaired >= 3, "keys_repaired {repaired}");
    // And the digests agree on every range once converged.
    assert!(
        eventually(50, || async {
            let mut overall = Vec::new();
            for i in 0..3 {
                let (_, d) = c
                    .send(c.http.get(format!("{}/digest", c.url(i))))
                    .await
                    .unwrap();
                overall.push(d["overall"].clone());
            }
            overall.windows(2).all(|w| w[0] == w[1])
        })
        .await
    );
    Ok(())
}
