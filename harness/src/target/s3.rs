//! Register ops over S3, for object stores: `write` = PutObject of the value's JSON,
//! `read` = GetObject (a missing object reads as `null`, as the node's 404 does). Requests are
//! signed with SigV4 by `rusty-s3` (presigned URLs: the signature travels in the query string,
//! so any HTTP client can send them) and sent with the harness's reqwest client, path-style
//! (`http://<member>/<bucket>/<key>`), each to the member the client slot is bound to.
//!
//! Outcomes follow INTERFACES.md: 2xx is `ok`; 404 `NoSuchKey` on a read is `ok` with `null`;
//! any other 4xx is `fail` (the store refused the request before acting on it); a 5xx, a
//! timeout or a broken connection is `info` — S3 never says a failed write was not applied.
//! `cas` has no S3 equivalent and is refused when flags are checked ([`super::check`]); if one
//! reaches this client anyway it fails without being sent.

use super::{Api, BoxFuture};
use crate::client::{Completion, Target as Member};
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde_json::Value;
use std::time::Duration;

/// How long a presigned request stays valid. Long enough for a slow member and a few seconds
/// of clock skew either way; every request is signed afresh.
const EXPIRES: Duration = Duration::from_secs(300);

/// One bucket, one key pair, one region; any member.
#[derive(Debug, Clone)]
pub struct S3Api {
    pub bucket: String,
    pub region: String,
    pub credentials: Credentials,
}

impl S3Api {
    /// The presigned URL for `op` on `member`.
    fn url(&self, member: &Member, op: &OpSpec) -> Result<reqwest::Url, String> {
        let endpoint: reqwest::Url = format!("http://{}", member.addr)
            .parse()
            .map_err(|e| format!("member address {}: {e}", member.addr))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            self.bucket.clone(),
            self.region.clone(),
        )
        .map_err(|e| format!("bucket {} at {}: {e}", self.bucket, member.addr))?;
        let signed = match op.f {
            OpKind::Read => bucket
                .get_object(Some(&self.credentials), &op.key)
                .sign(EXPIRES),
            OpKind::Write => bucket
                .put_object(Some(&self.credentials), &op.key)
                .sign(EXPIRES),
            OpKind::Cas => return Err(CAS_REFUSED.to_string()),
        };
        // rusty-s3 and reqwest name the same `url` crate type; parse to stay independent.
        signed
            .as_str()
            .parse()
            .map_err(|e| format!("signed URL: {e}"))
    }
}

const CAS_REFUSED: &str =
    "cas is not an S3 operation (PutObject overwrites); this target speaks read and write";

fn done(kind: EventType, value: Value, error: Option<String>) -> Completion {
    Completion {
        kind,
        value,
        version: None,
        error,
    }
}

/// The `<Code>` and `<Message>` of an S3 error body, as `Code: message` (empty if absent).
fn s3_error(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find(&close)?;
        Some(text[start..start + len].trim().to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        (None, Some(m)) => m,
        (None, None) => String::new(),
    }
}

/// Map an S3 response to an outcome (pure: unit-tested below).
pub fn classify(op: &OpSpec, status: u16, body: &[u8]) -> Completion {
    let echo = op.value.clone();
    let error = || {
        let said = s3_error(body);
        if said.is_empty() {
            status.to_string()
        } else {
            format!("{status} {said}")
        }
    };
    match (op.f, status) {
        (OpKind::Read, 200) => match serde_json::from_slice::<Value>(body) {
            Ok(v) => done(EventType::Ok, v, None),
            // A value this harness did not write is unknown, not null.
            Err(e) => done(
                EventType::Info,
                echo,
                Some(format!("200 with a body that is not JSON: {e}")),
            ),
        },
        (OpKind::Read, 404) if s3_error(body).starts_with("NoSuchKey") => {
            done(EventType::Ok, Value::Null, None)
        }
        (OpKind::Write, 200..=299) => done(EventType::Ok, echo, None),
        (_, 400..=499) => done(EventType::Fail, echo, Some(error())),
        _ => done(EventType::Info, echo, Some(error())),
    }
}

impl Api for S3Api {
    fn execute<'a>(
        &'a self,
        http: &'a reqwest::Client,
        member: &'a Member,
        op: &'a OpSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            let url = match self.url(member, op) {
                Ok(u) => u,
                Err(e) => return done(EventType::Fail, op.value.clone(), Some(e)),
            };
            let req = match op.f {
                OpKind::Write => http
                    .put(url)
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&op.value).unwrap_or_default()),
                _ => http.get(url),
            };
            let send = async {
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, bytes))
            };
            match tokio::time::timeout(timeout, send).await {
                Err(_) => done(EventType::Info, op.value.clone(), Some("timeout".into())),
                Ok(Err(e)) => {
                    let what = if e.is_timeout() {
                        "timeout".to_string()
                    } else if e.is_connect() {
                        "connection refused or unreachable".to_string()
                    } else {
                        format!("connection: {}", root_cause(&e))
                    };
                    done(EventType::Info, op.value.clone(), Some(what))
                }
                Ok(Ok((status, bytes))) => classify(op, status, &bytes),
            }
        })
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(f: OpKind) -> OpSpec {
        OpSpec {
            f,
            key: "k3".into(),
            value: if f == OpKind::Write {
                json!(9)
            } else {
                Value::Null
            },
        }
    }

    const NO_SUCH_KEY: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>Key not found</Message></Error>";

    #[test]
    fn outcomes_follow_interfaces_md() {
        let c = classify(&op(OpKind::Read), 200, b"17");
        assert_eq!((c.kind, c.value), (EventType::Ok, json!(17)));
        let c = classify(&op(OpKind::Read), 404, NO_SUCH_KEY);
        assert_eq!((c.kind, c.value), (EventType::Ok, Value::Null));
        // A missing bucket is not an empty register.
        let c = classify(
            &op(OpKind::Read),
            404,
            b"<Error><Code>NoSuchBucket</Code></Error>",
        );
        assert_eq!(c.kind, EventType::Fail);
        assert_eq!(c.error.as_deref(), Some("404 NoSuchBucket"));
        let c = classify(&op(OpKind::Write), 200, b"");
        assert_eq!((c.kind, c.value), (EventType::Ok, json!(9)));
        let c = classify(
            &op(OpKind::Write),
            403,
            b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>",
        );
        assert_eq!(
            (c.kind, c.error.as_deref()),
            (EventType::Fail, Some("403 AccessDenied: no"))
        );
        // Garage's "could not reach quorum" is a 5xx: the write may have landed somewhere.
        let c = classify(
            &op(OpKind::Write),
            500,
            b"<Error><Code>InternalError</Code><Message>Could not reach quorum of 2</Message></Error>",
        );
        assert_eq!(c.kind, EventType::Info);
        assert!(c.error.unwrap().contains("quorum"));
        let c = classify(&op(OpKind::Write), 503, b"");
        assert_eq!((c.kind, c.error.as_deref()), (EventType::Info, Some("503")));
    }

    #[test]
    fn a_read_of_something_not_json_is_info_never_null() {
        let c = classify(&op(OpKind::Read), 200, b"<html>");
        assert_eq!(c.kind, EventType::Info);
        assert!(c
            .error
            .unwrap()
            .starts_with("200 with a body that is not JSON"));
    }

    #[test]
    fn requests_are_presigned_path_style_for_the_bound_member() {
        let api = S3Api {
            bucket: "quorate".into(),
            region: "garage".into(),
            credentials: Credentials::new("GK0123", "secret"),
        };
        let member = Member {
            node: "n2".into(),
            addr: "127.0.0.1:3900".parse().unwrap(),
            api: None,
        };
        let url = api.url(&member, &op(OpKind::Write)).unwrap();
        assert!(
            url.as_str()
                .starts_with("http://127.0.0.1:3900/quorate/k3?"),
            "{url}"
        );
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let has = |k: &str| q.iter().any(|(a, _)| a == k);
        assert!(has("X-Amz-Signature") && has("X-Amz-Credential"), "{url}");
        assert!(q.iter().any(|(k, v)| k == "X-Amz-Credential"
            && v.starts_with("GK0123/")
            && v.contains("/garage/s3/")));
        assert!(api.url(&member, &op(OpKind::Cas)).is_err());
    }
}
