//! The node's HTTP API as a client speaks it (INTERFACES.md, "How clients record outcomes"):
//! `GET`/`PUT /kv/{key}` and `POST /kv/{key}/cas`, each response classified into a history
//! outcome; and its admin call `PUT /admin/clock-offset`, which the clock-skew fault moves.
//!
//! Admin calls go to the node's own address, not through the proxy, so a concurrent partition
//! cannot swallow them.

use crate::backend::Cluster;
use crate::client::{send_error, Completion, Endpoint};
use crate::targets::{Api, BoxFuture, Clock, SetReads, Unanswered};
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use serde_json::{json, Value};
use std::time::Duration;

/// The node's client API.
#[derive(Debug, Clone, Copy)]
pub struct NodeApi;

impl Api for NodeApi {
    fn execute<'a>(
        &'a self,
        http: &'a reqwest::Client,
        member: &'a Endpoint,
        op: &'a OpSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(execute(http, member, op, timeout))
    }

    /// The node has no listing: each element is a key of its own, read one by one.
    fn set_reads(&self) -> SetReads {
        SetReads::ElementKeys
    }

    fn list<'a>(
        &'a self,
        _http: &'a reqwest::Client,
        member: &'a Endpoint,
        prefix: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, Unanswered>> {
        let error = format!(
            "listing {prefix} on {}: the node's API has no listing (its set reads read each \
             element key)",
            member.node
        );
        Box::pin(async move {
            Err(Unanswered {
                kind: EventType::Fail,
                error,
            })
        })
    }
}

/// Map an HTTP status and body to an outcome (pure: no I/O, unit-tested below).
pub fn classify(op: &OpSpec, status: u16, body: &Value) -> Completion {
    let echo = op.value.clone();
    let error_text = || {
        let msg = body.get("error").and_then(Value::as_str).unwrap_or("");
        format!("{status} {msg}").trim_end().to_string()
    };
    match (op.f, status) {
        (OpKind::Read, 200) => Completion::ok(
            body.get("value").cloned().unwrap_or(Value::Null),
            body.get("version").cloned(),
        ),
        (OpKind::Read, 404) => Completion::ok(Value::Null, None),
        (_, 200..=299) => Completion::ok(echo, body.get("version").cloned()),
        (OpKind::Cas, 409) => Completion::not_ok(EventType::Fail, echo, "mismatch".into()),
        (_, 503) => {
            let applied = body.get("may_have_applied").and_then(Value::as_bool);
            let kind = if applied == Some(false) {
                EventType::Fail
            } else {
                EventType::Info
            };
            Completion::not_ok(kind, echo, error_text())
        }
        (_, 400..=499) => Completion::not_ok(EventType::Fail, echo, error_text()),
        _ => Completion::not_ok(EventType::Info, echo, error_text()),
    }
}

/// Map a status and the raw body to an outcome. A success whose body is not JSON is not a
/// success the client can read (a read's value is unknown, a write's acknowledgement is not the
/// protocol's): `info` with the parse error, never `ok` with `null`.
pub fn complete(op: &OpSpec, status: u16, bytes: &[u8]) -> Completion {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(body) => classify(op, status, &body),
        Err(e) if (200..=299).contains(&status) => Completion::not_ok(
            EventType::Info,
            op.value.clone(),
            format!("{status} with a body that is not JSON: {e}"),
        ),
        // An error status is classified by the status alone.
        Err(_) => classify(op, status, &Value::Null),
    }
}

/// Send one op and wait for its outcome, bounded by `timeout`.
async fn execute(
    http: &reqwest::Client,
    member: &Endpoint,
    op: &OpSpec,
    timeout: Duration,
) -> Completion {
    let base = format!("http://{}/kv/{}", member.addr, key_path(&op.key));
    let req = match op.f {
        OpKind::Read => http.get(&base),
        OpKind::Write => http.put(&base).json(&json!({ "value": op.value })),
        OpKind::Cas => {
            let expected = op.value.get(0).cloned().unwrap_or(Value::Null);
            let new = op.value.get(1).cloned().unwrap_or(Value::Null);
            http.post(format!("{base}/cas"))
                .json(&json!({ "expected": expected, "new": new }))
        }
    };
    let send = async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes))
    };
    match tokio::time::timeout(timeout, send).await {
        Err(_) => Completion::not_ok(EventType::Info, op.value.clone(), "timeout".into()),
        Ok(Err(e)) => Completion::not_ok(EventType::Info, op.value.clone(), send_error(&e)),
        Ok(Ok((status, bytes))) => complete(op, status, &bytes),
    }
}

/// A key as one URL path segment: `/` (the set workload's `s/<element>`) and `%` escaped, so
/// the node's `/kv/{key}` route sees the whole key.
pub fn key_path(key: &str) -> String {
    key.replace('%', "%25").replace('/', "%2F")
}

/// The node's LWW clock offset, moved by `PUT /admin/clock-offset {"ms": N}`.
pub struct AdminClock {
    http: reqwest::Client,
}

impl AdminClock {
    pub fn new() -> AdminClock {
        AdminClock {
            http: crate::client::http_client(),
        }
    }
}

impl Default for AdminClock {
    fn default() -> AdminClock {
        AdminClock::new()
    }
}

impl Clock for AdminClock {
    fn set_offset<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
        node: &'a str,
        ms: i64,
    ) -> BoxFuture<'a, Result<(), String>> {
        let url = format!("http://{}/admin/clock-offset", cluster.admin_addr(node));
        Box::pin(async move {
            let resp = self
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: OpKind) -> OpSpec {
        OpSpec {
            f,
            key: "k0".into(),
            value: match f {
                OpKind::Read => Value::Null,
                OpKind::Write => json!(5),
                OpKind::Cas => json!([1, 2]),
            },
        }
    }

    #[test]
    fn a_success_whose_body_is_not_json_is_info_with_the_error() {
        for f in [OpKind::Read, OpKind::Write, OpKind::Cas] {
            let c = complete(&op(f), 200, b"<html>oops</html>");
            assert_eq!(c.kind, EventType::Info, "{f:?}");
            let e = c.error.unwrap();
            assert!(e.starts_with("200 with a body that is not JSON"), "{e}");
        }
        // A JSON 200 read is still ok with its value; an error status keeps its meaning.
        let c = complete(&op(OpKind::Read), 200, br#"{"value": 4}"#);
        assert_eq!((c.kind, c.value), (EventType::Ok, json!(4)));
        let c = complete(&op(OpKind::Write), 500, b"not json");
        assert_eq!((c.kind, c.error.as_deref()), (EventType::Info, Some("500")));
    }

    #[test]
    fn outcomes_follow_interfaces_md() {
        let c = classify(&op(OpKind::Read), 404, &Value::Null);
        assert_eq!((c.kind, c.value), (EventType::Ok, Value::Null));
        let c = classify(&op(OpKind::Read), 200, &json!({"value": 7, "version": 3}));
        assert_eq!(
            (c.kind, c.value, c.version),
            (EventType::Ok, json!(7), Some(json!(3)))
        );
        let c = classify(&op(OpKind::Cas), 409, &json!({"error": "mismatch"}));
        assert_eq!(
            (c.kind, c.error.as_deref()),
            (EventType::Fail, Some("mismatch"))
        );
        let c = classify(
            &op(OpKind::Write),
            503,
            &json!({"error": "q", "may_have_applied": false}),
        );
        assert_eq!(c.kind, EventType::Fail);
        let c = classify(
            &op(OpKind::Write),
            503,
            &json!({"error": "q", "may_have_applied": true}),
        );
        assert_eq!(c.kind, EventType::Info);
        let c = classify(&op(OpKind::Write), 503, &Value::Null);
        assert_eq!(c.kind, EventType::Info);
        let c = classify(&op(OpKind::Write), 400, &json!({"error": "bad"}));
        assert_eq!(c.kind, EventType::Fail);
        let c = classify(&op(OpKind::Write), 500, &Value::Null);
        assert_eq!(c.kind, EventType::Info);
    }
}
