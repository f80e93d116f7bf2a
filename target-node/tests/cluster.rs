//! Basic cluster behaviour: quorum writes and reads, the API's status codes, start-up refusal.
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, Cluster, BIN};
use serde_json::{json, Value};

#[tokio::test]
async fn quorum_write_then_read_on_every_node() -> anyhow::Result<()> {
    let c = Cluster::start(3, &["--anti-entropy-interval-ms", "0"]).await?;
    let (code, body) = c.put(0, "k1", json!("hello")).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["version"]["node"], "n1");
    for i in 0..3 {
        let (code, body) = c.get(i, "k1").await?;
        assert_eq!(code, 200, "node {i}: {body}");
        assert_eq!(body["value"], "hello");
    }
    // A later write through another node wins everywhere.
    assert_eq!(c.put(2, "k1", json!({"a": [1, 2]})).await?.0, 200);
    for i in 0..3 {
        assert_eq!(c.get(i, "k1").await?.1["value"], json!({"a": [1, 2]}));
    }
    let (code, body) = c.get(1, "never-written").await?;
    assert_eq!((code, body["error"].clone()), (404, json!("not found")));
    Ok(())
}

#[tokio::test]
async fn cas_compares_with_the_quorum_value() -> anyhow::Result<()> {
    let c = Cluster::start(3, &["--anti-entropy-interval-ms", "0"]).await?;
    assert_eq!(c.cas(0, "c", Value::Null, json!(1)).await?.0, 200);
    assert_eq!(c.cas(1, "c", json!(1), json!(2)).await?.0, 200);
    let (code, body) = c.cas(2, "c", json!(1), json!(3)).await?;
    assert_eq!(code, 409);
    assert_eq!(body, json!({"error": "mismatch", "current": 2}));
    assert_eq!(c.get(2, "c").await?.1["value"], 2);
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_4xx_with_json_errors() -> anyhow::Result<()> {
    let c = Cluster::start(3, &["--anti-entropy-interval-ms", "0"]).await?;
    let u = c.url(0);
    let h = &c.http;
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (h.get(format!("{u}/nope")), 404),
        (h.get(format!("{u}/kv")), 404),
        (h.put(format!("{u}/kv/a")).body("{\"value\":"), 400),
        (h.put(format!("{u}/kv/a")).body("[1,2]"), 400),
        (h.put(format!("{u}/kv/a")).body("{\"value\": null}"), 400),
        (h.put(format!("{u}/kv/a")).body("{}"), 400),
        (h.put(format!("{u}/kv/a")).body(vec![b'x'; 1_100_000]), 413),
        (
            h.post(format!("{u}/kv/a/cas")).body("{\"expected\": 1}"),
            400,
        ),
        (
            h.post(format!("{u}/kv/a/cas"))
                .body("{\"expected\": 1, \"new\": null}"),
            400,
        ),
        (h.get(format!("{u}/kv/{}", "k".repeat(2000))), 400),
        (h.get(format!("{u}/kv/a%01b")), 400),
        (h.get(format!("{u}/kv/%FF")), 400),
        (h.delete(format!("{u}/kv/a")), 405),
        (
            h.put(format!("{u}/admin/clock-offset"))
                .body("{\"ms\": \"x\"}"),
            400,
        ),
        (h.post(format!("{u}/internal/put")).body("garbage"), 400),
    ];
    for (rb, want) in cases {
        let (code, body) = c.send(rb).await?;
        assert_eq!(code, want, "{body}");
        assert!(body["error"].is_string(), "no JSON error: {body}");
    }
    // Still serving.
    assert_eq!(c.put(0, "a", json!(1)).await?.0, 200);
    assert_eq!(c.get(0, "a").await?.1["value"], 1);
    Ok(())
}

fn refused(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let peers = format!("n1=127.0.0.1:{port},n2=127.0.0.1:1,n3=127.0.0.1:2");
    let out = Command::new(BIN)
        .args([
            "--id",
            "n1",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--peers",
            &peers,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn nonsense_quorums_are_refused_at_start() {
    let (code, err) = refused(&["--r", "4"]);
    assert_ne!(code, 0);
    assert!(err.contains("--r 4 is greater than --n 3"), "{err}");
    let (code, err) = refused(&["--w", "5"]);
    assert_ne!(code, 0);
    assert!(err.contains("--w 5"), "{err}");
    let (code, err) = refused(&["--n", "4", "--r", "1", "--w", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("cluster size 3"), "{err}");
    let (code, _) = refused(&["--write-mode", "paxos"]);
    assert_ne!(code, 0);
}

#[tokio::test]
async fn no_quorum_is_503_with_may_have_applied() -> anyhow::Result<()> {
    let mut c = Cluster::start(
        3,
        &[
            "--anti-entropy-interval-ms",
            "0",
            "--request-timeout-ms",
            "500",
            "--replica-timeout-ms",
            "200",
        ],
    )
    .await?;
    c.kill(1);
    c.kill(2);
    let (code, body) = c.put(0, "x", json!(1)).await?;
    assert_eq!(code, 503, "{body}");
    // n1 is one of the key's replicas and wrote it locally: it may have applied.
    assert_eq!(body["may_have_applied"], true, "{body}");
    assert!(body["error"].is_string());
    let (code, body) = c.get(0, "x").await?;
    assert_eq!(code, 503, "{body}");
    Ok(())
}

#[tokio::test]
async fn lww_skew_loses_an_update_and_two_phase_does_not() -> anyhow::Result<()> {
    for (preset, want) in [("lww", "first"), ("abd", "second")] {
        let c = Cluster::start(3, &["--preset", preset, "--anti-entropy-interval-ms", "0"]).await?;
        // n2's clock runs a minute behind; abd ignores wall clocks.
        let (code, _) = c
            .send(
                c.http
                    .put(format!("{}/admin/clock-offset", c.url(1)))
                    .json(&json!({"ms": -60_000})),
            )
            .await?;
        assert_eq!(code, 200);
        assert_eq!(c.put(0, "s", json!("first")).await?.0, 200);
        assert_eq!(c.put(1, "s", json!("second")).await?.0, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c.get(2, "s").await?.1["value"], want, "preset {preset}");
    }
    Ok(())
}
