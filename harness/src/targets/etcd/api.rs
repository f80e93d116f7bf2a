//! Register ops over etcd's v3 JSON gateway (the gRPC API as JSON over HTTP/1.1, on each
//! member's client port), each client bound to one member:
//! - `read` = `POST /v3/kv/range` of the key (`"serializable": true` with
//!   `--etcd-serializable`: the member answers from its own copy, without the leader);
//! - `write` = `POST /v3/kv/put`;
//! - `cas [old, new]` = `POST /v3/kv/txn`: if the key's value is `old`'s JSON, put `new`'s; a
//!   cas from "no value" (`old` null) compares `create_revision == 0` instead, etcd's way of
//!   saying "the key does not exist".
//!
//! Values are stored as their JSON text (`12` is the two bytes `1`, `2`), as over S3.
//!
//! The gateway's traps, each handled in one place below and unit-tested:
//! - proto3 JSON leaves out every field whose value is false, zero or empty: a txn whose compare
//!   failed has no `succeeded` at all, a range that found nothing has no `kvs` (and no
//!   `count`), a kv whose value is empty has no `value`;
//! - 64-bit integers come as JSON strings (`"revision": "4"`);
//! - keys and values are base64 (`bytes` fields), both ways.
//!
//! Outcomes (INTERFACES.md): 200 is `ok` (a txn that did not succeed is `fail` with
//! `"mismatch"`); an error answer is `fail` only when its gRPC code says etcd refused the
//! request before acting on it ([`certainly_not_applied`]), otherwise `info` — `Unavailable`
//! ("leader changed", "request timed out"), `DeadlineExceeded`, `Canceled` and `Unknown` may
//! come after the entry was proposed. A timeout or a broken connection is `info`. A 200 whose
//! body does not decode is `info`: the client cannot read what it acknowledged.
//!
//! Set reads ([`Api::list`]) are one range over the set's prefix (`range_end` = the prefix with
//! its last byte plus one), keys only; `ok` only when etcd says nothing more is left (`more`).

use crate::client::{send_error, Completion, Endpoint as Member};
use crate::targets::{Api, BoxFuture, SetReads, Unanswered};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// `--target etcd`'s client API: made from its one setting, so a target file can name it too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EtcdApi {
    /// Serializable reads (`--etcd-serializable`); linearizable otherwise.
    pub serializable: bool,
}

impl EtcdApi {
    pub fn new(serializable: bool) -> EtcdApi {
        EtcdApi { serializable }
    }
}

/// A 64-bit integer as proto3 JSON writes it: a string, or (leniently) a number. Unsigned:
/// member ids use all 64 bits, and revisions are never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct U64(pub u64);

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<U64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(U64(n)),
            Raw::S(s) => s
                .parse()
                .map(U64)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a 64-bit integer"))),
        }
    }
}

/// `bytes` as proto3 JSON writes them: base64.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes())
            .map(Bytes)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not base64: {e}")))
    }
}

/// Every answer's header. Absent fields are zero (proto3).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Header {
    #[serde(alias = "memberId")]
    pub member_id: U64,
    pub revision: U64,
}

/// One key-value of a range answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Kv {
    pub key: Bytes,
    pub value: Bytes,
    #[serde(alias = "modRevision")]
    pub mod_revision: U64,
}

/// `/v3/kv/range`'s answer; `kvs` absent when nothing was found.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RangeResponse {
    pub header: Header,
    pub kvs: Vec<Kv>,
    pub more: bool,
}

/// `/v3/kv/put`'s answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PutResponse {
    pub header: Header,
}

/// `/v3/kv/txn`'s answer; `succeeded` absent when the compare failed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TxnResponse {
    pub header: Header,
    pub succeeded: bool,
}

/// `/v3/maintenance/status`'s answer (the fields the leader lookup needs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StatusResponse {
    pub header: Header,
    pub leader: U64,
}

/// An error answer: `{"error", "message", "code"}` (the gRPC status).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: String,
    message: String,
    code: Option<i64>,
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The stored form of a value: its JSON text.
fn stored(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// The end of the range holding every key that starts with `prefix` (its last byte that is
/// not 0xff, plus one; `\0` — every key — when there is none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The path and JSON body of `op` (pure: unit-tested below). A cas whose value is not
/// `[old, new]` is refused before anything is sent.
pub fn request(op: &OpSpec, serializable: bool) -> Result<(&'static str, Value), String> {
    let key = b64(op.key.as_bytes());
    Ok(match op.f {
        OpKind::Read => {
            let mut body = json!({ "key": key });
            if serializable {
                body["serializable"] = json!(true);
            }
            ("/v3/kv/range", body)
        }
        OpKind::Write => (
            "/v3/kv/put",
            json!({ "key": key, "value": b64(&stored(&op.value)) }),
        ),
        OpKind::Cas => {
            let (old, new) = match op.value.as_array().map(Vec::as_slice) {
                Some([old, new]) => (old, new),
                _ => return Err(format!("cas value {}: expected [old, new]", op.value)),
            };
            let compare = if old.is_null() {
                json!({ "key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0" })
            } else {
                json!({ "key": key, "target": "VALUE", "result": "EQUAL", "value": b64(&stored(old)) })
            };
            (
                "/v3/kv/txn",
                json!({
                    "compare": [compare],
                    "success": [{ "request_put": { "key": key, "value": b64(&stored(new)) } }],
                }),
            )
        }
    })
}

/// gRPC codes with which etcd refuses a request before proposing it, so it certainly did not
/// apply it: InvalidArgument (3), NotFound (5), AlreadyExists (6), PermissionDenied (7),
/// ResourceExhausted (8: "too many requests", "database space exceeded"), FailedPrecondition
/// (9), OutOfRange (11), Unimplemented (12), Unauthenticated (16). Every other code may come
/// after the entry was proposed: Canceled (1), Unknown (2), DeadlineExceeded (4), Aborted
/// (10), Internal (13), Unavailable (14: "leader changed", "request timed out"), DataLoss (15).
pub fn certainly_not_applied(code: i64) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 8 | 9 | 11 | 12 | 16)
}

fn done(
    kind: EventType,
    value: Value,
    version: Option<Value>,
    error: Option<String>,
) -> Completion {
    Completion {
        kind,
        value,
        version,
        error,
    }
}

/// Map an error answer (any status but 200) to `fail` or `info`, with `"<status> <message>"`.
fn refused(status: u16, body: &[u8]) -> (EventType, String) {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let said = parsed
        .as_ref()
        .map(|e| {
            if e.message.is_empty() {
                e.error.clone()
            } else {
                e.message.clone()
            }
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(200)
                .collect()
        });
    let error = if said.is_empty() {
        status.to_string()
    } else {
        format!("{status} {said}")
    };
    let certain = match parsed.and_then(|e| e.code) {
        Some(code) => certainly_not_applied(code),
        // No gRPC code: a 4xx other than 408 (a request that timed out may have been applied)
        // is a refusal of the request itself (the gateway could not read it).
        None => (400..=499).contains(&status) && status != 408,
    };
    (
        if certain {
            EventType::Fail
        } else {
            EventType::Info
        },
        error,
    )
}

/// Map an answer to `op`'s outcome (pure: unit-tested below).
pub fn classify(op: &OpSpec, status: u16, body: &[u8]) -> Completion {
    let echo = op.value.clone();
    if status != 200 {
        let (kind, error) = refused(status, body);
        return done(kind, echo, None, Some(error));
    }
    let unreadable = |e: serde_json::Error| {
        done(
            EventType::Info,
            echo.clone(),
            None,
            Some(format!("200 with a body that does not decode: {e}")),
        )
    };
    let rev = |r: U64| (r.0 > 0).then(|| json!(r.0));
    match op.f {
        OpKind::Read => {
            let r: RangeResponse = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return unreadable(e),
            };
            match r.kvs.as_slice() {
                [] => done(EventType::Ok, Value::Null, None, None),
                [kv] if kv.key.0 == op.key.as_bytes() => {
                    match serde_json::from_slice::<Value>(&kv.value.0) {
                        Ok(v) => done(EventType::Ok, v, rev(kv.mod_revision), None),
                        // A value this harness did not write is unknown, not null.
                        Err(e) => done(
                            EventType::Info,
                            echo,
                            None,
                            Some(format!(
                                "200 with a value that is not JSON ({:?}): {e}",
                                String::from_utf8_lossy(&kv.value.0)
                            )),
                        ),
                    }
                }
                other => done(
                    EventType::Info,
                    echo,
                    None,
                    Some(format!(
                        "200 with {} keys for a read of one key ({:?})",
                        other.len(),
                        other
                            .iter()
                            .map(|kv| String::from_utf8_lossy(&kv.key.0).into_owned())
                            .collect::<Vec<_>>()
                    )),
                ),
            }
        }
        OpKind::Write => match serde_json::from_slice::<PutResponse>(body) {
            Ok(r) => done(EventType::Ok, echo, rev(r.header.revision), None),
            Err(e) => unreadable(e),
        },
        OpKind::Cas => match serde_json::from_slice::<TxnResponse>(body) {
            Ok(r) if r.succeeded => done(EventType::Ok, echo, rev(r.header.revision), None),
            // proto3 leaves `succeeded: false` out: the compare failed, nothing was put.
            Ok(_) => done(EventType::Fail, echo, None, Some("mismatch".into())),
            Err(e) => unreadable(e),
        },
    }
}

/// The keys of a listing's range answer, or why it is not the whole listing.
pub fn classify_listing(status: u16, body: &[u8]) -> Result<Vec<String>, Unanswered> {
    if status != 200 {
        let (kind, error) = refused(status, body);
        return Err(Unanswered { kind, error });
    }
    let info = |error: String| Unanswered {
        kind: EventType::Info,
        error,
    };
    let r: RangeResponse = serde_json::from_slice(body)
        .map_err(|e| info(format!("200 with a listing that does not decode: {e}")))?;
    if r.more {
        return Err(info(format!(
            "200 with a listing of {} keys that says more are left",
            r.kvs.len()
        )));
    }
    r.kvs
        .into_iter()
        .map(|kv| {
            String::from_utf8(kv.key.0)
                .map_err(|e| info(format!("200 with a key that is not UTF-8: {e}")))
        })
        .collect()
}

/// POST `body` to `path` on `member` within `timeout`: the status and body, or the `info` of
/// a request that got no answer.
pub async fn post(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), Unanswered> {
    let url = format!("http://{addr}{path}");
    let send = async {
        let resp = http.post(url).json(body).send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes.to_vec()))
    };
    let info = |error: String| Unanswered {
        kind: EventType::Info,
        error,
    };
    match tokio::time::timeout(timeout, send).await {
        Err(_) => Err(info("timeout".into())),
        Ok(Err(e)) => Err(info(send_error(&e))),
        Ok(Ok(answer)) => Ok(answer),
    }
}

impl Api for EtcdApi {
    fn execute<'a>(
        &'a self,
        http: &'a reqwest::Client,
        member: &'a Member,
        op: &'a OpSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let (path, body) = match request(op, self.serializable) {
                Ok(r) => r,
                Err(e) => return done(EventType::Fail, op.value.clone(), None, Some(e)),
            };
            match post(http, member.addr, path, &body, timeout).await {
                Ok((status, bytes)) => classify(op, status, &bytes),
                Err(u) => done(u.kind, op.value.clone(), None, Some(u.error)),
            }
        })
    }

    /// Each element is a key under its set's prefix; a set read is one range over it.
    fn set_reads(&self) -> SetReads {
        SetReads::Listing
    }

    fn list<'a>(
        &'a self,
        http: &'a reqwest::Client,
        member: &'a Member,
        prefix: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, Unanswered>> {
        Box::pin(async move {
            let mut body = json!({
                "key": b64(prefix.as_bytes()),
                "range_end": b64(&prefix_end(prefix.as_bytes())),
                "keys_only": true,
            });
            if self.serializable {
                body["serializable"] = json!(true);
            }
            let (status, bytes) = post(http, member.addr, "/v3/kv/range", &body, timeout).await?;
            classify_listing(status, &bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: OpKind, value: Value) -> OpSpec {
        OpSpec {
            f,
            key: "k1".into(),
            value,
        }
    }

    const HEADER: &str = r#""header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"4","raft_term":"2"}"#;

    #[test]
    fn requests_are_base64_and_a_cas_from_nothing_compares_create_revision() {
        let (path, body) = request(&op(OpKind::Write, json!(12)), false).unwrap();
        assert_eq!(path, "/v3/kv/put");
        // "k1" and "12", base64.
        assert_eq!(body, json!({"key": "azE=", "value": "MTI="}));
        let (path, body) = request(&op(OpKind::Read, Value::Null), false).unwrap();
        assert_eq!((path, body), ("/v3/kv/range", json!({"key": "azE="})));
        let (_, body) = request(&op(OpKind::Read, Value::Null), true).unwrap();
        assert_eq!(body["serializable"], true);
        let (path, body) = request(&op(OpKind::Cas, json!([null, 13])), false).unwrap();
        assert_eq!(path, "/v3/kv/txn");
        assert_eq!(
            body["compare"][0],
            json!({"key": "azE=", "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
        );
        assert_eq!(
            body["success"][0]["request_put"],
            json!({"key": "azE=", "value": "MTM="})
        );
        let (_, body) = request(&op(OpKind::Cas, json!([12, 13])), false).unwrap();
        assert_eq!(
            body["compare"][0],
            json!({"key": "azE=", "target": "VALUE", "result": "EQUAL", "value": "MTI="})
        );
        assert!(request(&op(OpKind::Cas, json!(12)), false).is_err());
    }

    #[test]
    fn a_range_without_kvs_reads_null_and_revisions_are_strings() {
        let read = op(OpKind::Read, Value::Null);
        // Nothing found: proto3 leaves `kvs` and `count` out altogether.
        let c = classify(&read, 200, format!("{{{HEADER}}}").as_bytes());
        assert_eq!(
            (c.kind, c.value, c.version),
            (EventType::Ok, Value::Null, None)
        );
        let body = format!(
            r#"{{{HEADER},"kvs":[{{"key":"azE=","create_revision":"2","mod_revision":"4","version":"3","value":"MTI="}}],"count":"1"}}"#
        );
        let c = classify(&read, 200, body.as_bytes());
        assert_eq!(
            (c.kind, c.value, c.version),
            (EventType::Ok, json!(12), Some(json!(4)))
        );
        // An empty value is left out too: not JSON, so unknown, never null.
        let body =
            format!(r#"{{{HEADER},"kvs":[{{"key":"azE=","mod_revision":"4"}}],"count":"1"}}"#);
        let c = classify(&read, 200, body.as_bytes());
        assert_eq!(c.kind, EventType::Info);
        // Not base64, or a revision that is not an integer: the answer cannot be read.
        let c = classify(&read, 200, br#"{"kvs":[{"key":"azE=","value":"!!"}]}"#);
        assert_eq!(c.kind, EventType::Info);
        assert!(c.error.unwrap().contains("not base64"));
        let c = classify(&read, 200, br#"{"header":{"revision":"four"}}"#);
        assert_eq!(c.kind, EventType::Info);
        // Another key than the one asked for is not this register's value.
        let c = classify(&read, 200, br#"{"kvs":[{"key":"azI=","value":"MTI="}]}"#);
        assert_eq!(c.kind, EventType::Info);
    }

    #[test]
    fn a_txn_without_succeeded_is_a_mismatch() {
        let cas = op(OpKind::Cas, json!([12, 13]));
        let c = classify(&cas, 200, format!("{{{HEADER}}}").as_bytes());
        assert_eq!(
            (c.kind, c.error.as_deref()),
            (EventType::Fail, Some("mismatch"))
        );
        let body = format!(
            r#"{{{HEADER},"succeeded":true,"responses":[{{"response_put":{{"header":{{"revision":"4"}}}}}}]}}"#
        );
        let c = classify(&cas, 200, body.as_bytes());
        assert_eq!(
            (c.kind, c.value, c.version),
            (EventType::Ok, json!([12, 13]), Some(json!(4)))
        );
        let c = classify(
            &op(OpKind::Write, json!(12)),
            200,
            format!("{{{HEADER}}}").as_bytes(),
        );
        assert_eq!((c.kind, c.value), (EventType::Ok, json!(12)));
        let c = classify(&cas, 200, b"<html>");
        assert_eq!(c.kind, EventType::Info);
    }

    #[test]
    fn errors_fail_only_when_etcd_certainly_did_not_apply_them() {
        let w = op(OpKind::Write, json!(12));
        let err = |msg: &str, code: i64| {
            format!(r#"{{"error":"{msg}","message":"{msg}","code":{code}}}"#)
        };
        let c = classify(&w, 503, err("etcdserver: leader changed", 14).as_bytes());
        assert_eq!(
            (c.kind, c.error.as_deref()),
            (EventType::Info, Some("503 etcdserver: leader changed"))
        );
        let c = classify(&w, 503, err("etcdserver: request timed out", 14).as_bytes());
        assert_eq!(c.kind, EventType::Info);
        // Canceled is a 4xx (408) that may come after the proposal.
        let c = classify(&w, 408, err("etcdserver: request cancelled", 1).as_bytes());
        assert_eq!(c.kind, EventType::Info);
        let c = classify(&w, 429, err("etcdserver: too many requests", 8).as_bytes());
        assert_eq!(c.kind, EventType::Fail);
        let c = classify(
            &w,
            400,
            err("etcdserver: key is not provided", 3).as_bytes(),
        );
        assert_eq!(c.kind, EventType::Fail);
        // No gRPC code: by the HTTP status.
        let c = classify(&w, 400, b"bad request");
        assert_eq!(
            (c.kind, c.error.as_deref()),
            (EventType::Fail, Some("400 bad request"))
        );
        let c = classify(&w, 502, b"");
        assert_eq!((c.kind, c.error.as_deref()), (EventType::Info, Some("502")));
    }

    #[test]
    fn listings_are_whole_or_not_ok() {
        let body = format!(
            r#"{{{HEADER},"kvs":[{{"key":"cy9zZXQzLzE=","create_revision":"2","mod_revision":"2","version":"1"}}],"count":"1"}}"#
        );
        assert_eq!(
            classify_listing(200, body.as_bytes()).unwrap(),
            ["s/set3/1"]
        );
        assert!(classify_listing(200, format!("{{{HEADER}}}").as_bytes())
            .unwrap()
            .is_empty());
        let e =
            classify_listing(200, br#"{"kvs":[{"key":"cy9zZXQzLzE="}],"more":true}"#).unwrap_err();
        assert_eq!(e.kind, EventType::Info);
        let e =
            classify_listing(503, br#"{"message":"etcdserver: no leader","code":14}"#).unwrap_err();
        assert_eq!(
            (e.kind, e.error.as_str()),
            (EventType::Info, "503 etcdserver: no leader")
        );
        assert_eq!(prefix_end(b"s/set3/"), b"s/set30".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn status_names_the_leader() {
        let body = br#"{"header":{"cluster_id":"1","member_id":"13668033151171901709","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"13668033151171901709","raftIndex":"5"}"#;
        let s: StatusResponse = serde_json::from_slice(body).unwrap();
        assert_eq!(s.header.member_id, s.leader);
        assert_ne!(s.leader, U64(0));
        // No leader: the field is left out, so zero.
        let s: StatusResponse = serde_json::from_slice(br#"{"header":{"member_id":"7"}}"#).unwrap();
        assert_eq!(s.leader, U64(0));
    }
}
