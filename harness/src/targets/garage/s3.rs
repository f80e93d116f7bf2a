//! Register ops over S3, for object stores: `write` = PutObject of the value's JSON,
//! `read` = GetObject (a missing object reads as `null`, as the node's 404 does). Requests are
//! signed with SigV4 by `rusty-s3` (presigned URLs: the signature travels in the query string,
//! so any HTTP client can send them) and sent with the harness's reqwest client, path-style
//! (`http://<member>/<bucket>/<key>`), each to the member the client slot is bound to.
//!
//! Outcomes follow INTERFACES.md: 2xx is `ok`; 404 `NoSuchKey` on a read is `ok` with `null`;
//! any other 4xx is `fail` (the store refused the request before acting on it); a 5xx, a
//! timeout or a broken connection is `info` — S3 never says a failed write was not applied.
//! `cas` has no S3 equivalent and is refused when flags are checked (the target's [`super::CAPS`]); if one
//! reaches this client anyway it fails without being sent.
//!
//! Set reads ([`Api::list`]) are ListObjectsV2 over the set's prefix, [`LIST_PAGE`] keys a
//! page, following `NextContinuationToken` until the listing ends. Each page's XML is parsed by
//! rusty-s3's `ListObjectsV2::parse_response` (instant-xml underneath); a page is classified
//! as a read is, and the listing is `ok` only when every page came back and the last one said
//! it was the last: a page that fails makes the whole read `fail` or `info`, never a shorter
//! list.

use crate::client::{send_error, Completion, Endpoint as Member};
use crate::targets::{Api, BoxFuture, SetReads, Unanswered};
use instant_xml::FromXml;
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use rusty_s3::actions::ListObjectsV2;
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

/// Keys per ListObjectsV2 page (S3's default and most is 1000). Small on purpose: a set of an
/// ordinary run (`--ops-per-key` 200) then spans several pages, so every such run follows
/// continuation tokens, not only runs with sets of over a thousand elements.
pub const LIST_PAGE: usize = 50;

/// A listing that has not ended after this many pages is not trusted to end.
const MAX_PAGES: usize = 10_000;

/// The S3 XML namespace, which a ListObjectsV2 answer is in.
const S3_XML_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// The one field of a ListObjectsV2 answer that rusty-s3's response leaves out: whether the
/// listing goes on. Checked beside the continuation token, so an answer that says it is
/// truncated but gives no token is not taken for the whole listing.
#[derive(Debug, FromXml)]
#[xml(rename = "ListBucketResult", ns(S3_XML_NS))]
struct Truncation {
    #[xml(rename = "IsTruncated")]
    is_truncated: Option<bool>,
}

/// One page of a listing, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub keys: Vec<String>,
    /// The token of the next page; `None` on the last one.
    pub next: Option<String>,
}

impl S3Api {
    /// The bucket as seen through `member`.
    fn bucket_at(&self, member: &Member) -> Result<Bucket, String> {
        let endpoint: reqwest::Url = format!("http://{}", member.addr)
            .parse()
            .map_err(|e| format!("member address {}: {e}", member.addr))?;
        Bucket::new(
            endpoint,
            UrlStyle::Path,
            self.bucket.clone(),
            self.region.clone(),
        )
        .map_err(|e| format!("bucket {} at {}: {e}", self.bucket, member.addr))
    }

    /// The presigned ListObjectsV2 URL of one page of `prefix` on `member`.
    fn list_url(
        &self,
        member: &Member,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<reqwest::Url, String> {
        let bucket = self.bucket_at(member)?;
        let mut action = bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(prefix);
        action.with_max_keys(LIST_PAGE);
        if let Some(t) = token {
            action.with_continuation_token(t);
        }
        action
            .sign(EXPIRES)
            .as_str()
            .parse()
            .map_err(|e| format!("signed URL: {e}"))
    }

    /// The presigned URL for `op` on `member`.
    fn url(&self, member: &Member, op: &OpSpec) -> Result<reqwest::Url, String> {
        let bucket = self.bucket_at(member)?;
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

/// Map a ListObjectsV2 response to a page, or to the outcome of a read that did not answer
/// (pure: unit-tested below). 200 with an answer that does not parse, or that says it is
/// truncated without a continuation token, is `info`: the listing is unknown, not empty.
pub fn classify_page(status: u16, body: &[u8]) -> Result<Page, Unanswered> {
    let unknown = |why: String| {
        Err(Unanswered {
            kind: EventType::Info,
            error: why,
        })
    };
    match status {
        200 => {
            let Ok(text) = std::str::from_utf8(body) else {
                return unknown("200 with a listing that is not UTF-8".into());
            };
            let parsed = match ListObjectsV2::parse_response(text) {
                Ok(p) => p,
                Err(e) => return unknown(format!("200 with a listing that does not parse: {e}")),
            };
            let truncated = match instant_xml::from_str::<Truncation>(text) {
                Ok(t) => t.is_truncated.unwrap_or(false),
                Err(e) => {
                    return unknown(format!(
                        "200 with a listing whose IsTruncated does not parse: {e}"
                    ))
                }
            };
            let next = parsed.next_continuation_token.filter(|t| !t.is_empty());
            if truncated && next.is_none() {
                return unknown(
                    "200 with a listing that says it is truncated but gives no continuation token"
                        .into(),
                );
            }
            Ok(Page {
                keys: parsed.contents.into_iter().map(|c| c.key).collect(),
                next,
            })
        }
        _ => {
            let said = s3_error(body);
            let error = if said.is_empty() {
                status.to_string()
            } else {
                format!("{status} {said}")
            };
            let kind = if (400..=499).contains(&status) {
                EventType::Fail
            } else {
                EventType::Info
            };
            Err(Unanswered { kind, error })
        }
    }
}

/// Send `req` within `timeout`: the status and body, or the `info` a client records when no
/// answer came.
async fn send(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), Unanswered> {
    let info = |error: String| {
        Err(Unanswered {
            kind: EventType::Info,
            error,
        })
    };
    let send = async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes.to_vec()))
    };
    match tokio::time::timeout(timeout, send).await {
        Err(_) => info("timeout".into()),
        Ok(Err(e)) => info(send_error(&e)),
        Ok(Ok(answer)) => Ok(answer),
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
            match send(req, timeout).await {
                Ok((status, bytes)) => classify(op, status, &bytes),
                Err(u) => done(u.kind, op.value.clone(), Some(u.error)),
            }
        })
    }

    /// Each element is an object under its set's prefix, and a set read one listing of it.
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
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let url = self
                    .list_url(member, prefix, token.as_deref())
                    .map_err(|error| Unanswered {
                        kind: EventType::Fail,
                        error,
                    })?;
                let (status, bytes) = send(http.get(url), timeout).await?;
                let page = classify_page(status, &bytes)?;
                keys.extend(page.keys);
                match page.next {
                    None => return Ok(keys),
                    Some(t) if token.as_deref() == Some(t.as_str()) => {
                        return Err(Unanswered {
                            kind: EventType::Info,
                            error: format!("the listing gave continuation token {t:?} twice"),
                        })
                    }
                    Some(t) => token = Some(t),
                }
            }
            Err(Unanswered {
                kind: EventType::Info,
                error: format!("the listing had not ended after {MAX_PAGES} pages"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signer for bucket `quorate` and member n2 at 127.0.0.1:3900.
    fn fixture() -> (S3Api, Member) {
        let api = S3Api {
            bucket: "quorate".into(),
            region: "garage".into(),
            credentials: Credentials::new("GK0123", "secret"),
        };
        let member = Member {
            node: "n2".into(),
            addr: "127.0.0.1:3900".parse().unwrap(),
            api: std::sync::Arc::new(api.clone()),
        };
        (api, member)
    }
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

    /// A ListObjectsV2 page as S3 and Garage send it (url-encoded keys: rusty-s3 asks for that).
    fn page(keys: &[&str], truncated: bool, token: Option<&str>) -> String {
        let contents: String = keys
            .iter()
            .map(|k| {
                format!(
                    "<Contents><Key>{}</Key><LastModified>2026-12-02T05:00:00.000Z</LastModified>\
                     <ETag>&quot;d41d8&quot;</ETag><Size>10</Size><StorageClass>STANDARD</StorageClass></Contents>",
                    k.replace('/', "%2F")
                )
            })
            .collect();
        let token = token
            .map(|t| format!("<NextContinuationToken>{t}</NextContinuationToken>"))
            .unwrap_or_default();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Name>quorate</Name><Prefix>s%2Fset3%2F</Prefix><KeyCount>{}</KeyCount>\
             <MaxKeys>50</MaxKeys><EncodingType>url</EncodingType>\
             <IsTruncated>{truncated}</IsTruncated>{contents}{token}</ListBucketResult>",
            keys.len()
        )
    }

    #[test]
    fn a_listing_page_gives_its_keys_and_the_next_token() {
        let body = page(
            &["s/set3/1000000001", "s/set3/2000000004"],
            true,
            Some("tok1"),
        );
        let p = classify_page(200, body.as_bytes()).unwrap();
        assert_eq!(p.keys, ["s/set3/1000000001", "s/set3/2000000004"]);
        assert_eq!(p.next.as_deref(), Some("tok1"));
        let last = classify_page(200, page(&["s/set3/7"], false, None).as_bytes()).unwrap();
        assert_eq!((last.keys.len(), last.next), (1, None));
        let empty = classify_page(200, page(&[], false, None).as_bytes()).unwrap();
        assert!(empty.keys.is_empty());
    }

    #[test]
    fn a_listing_that_is_not_whole_is_never_ok() {
        // Truncated without a token: the rest cannot be fetched, so the set is unknown.
        let c = classify_page(200, page(&["s/set3/1"], true, None).as_bytes()).unwrap_err();
        assert_eq!(c.kind, EventType::Info);
        assert!(c.error.contains("truncated"));
        let odd = page(&["s/set3/1"], false, None).replace(">false<", ">maybe<");
        let c = classify_page(200, odd.as_bytes()).unwrap_err();
        assert_eq!(c.kind, EventType::Info);
        assert!(c.error.contains("IsTruncated"));
        let c = classify_page(200, b"<html>busy</html>").unwrap_err();
        assert_eq!(c.kind, EventType::Info);
        assert!(c.error.contains("does not parse"), "not XML");
        let c = classify_page(200, b"\xff\xfe").unwrap_err();
        assert_eq!(c.kind, EventType::Info);
        // A refusal is a fail, a server error or quorum failure unknown.
        let c = classify_page(
            404,
            b"<Error><Code>NoSuchBucket</Code><Message>none</Message></Error>",
        )
        .unwrap_err();
        assert_eq!(
            (c.kind, c.error.as_str()),
            (EventType::Fail, "404 NoSuchBucket: none")
        );
        let c = classify_page(500, b"<Error><Code>InternalError</Code></Error>").unwrap_err();
        assert_eq!(c.kind, EventType::Info);
    }

    #[test]
    fn listings_are_presigned_with_prefix_page_size_and_token() {
        let (api, member) = fixture();
        let url = api.list_url(&member, "s/set3/", Some("tok 1")).unwrap();
        assert!(
            url.as_str().starts_with("http://127.0.0.1:3900/quorate/?"),
            "{url}"
        );
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("list-type"), Some("2"));
        assert_eq!(get("prefix"), Some("s/set3/"));
        assert_eq!(get("max-keys"), Some(LIST_PAGE.to_string().as_str()));
        assert_eq!(get("continuation-token"), Some("tok 1"));
        assert!(get("X-Amz-Signature").is_some());
        let first = api.list_url(&member, "s/set3/", None).unwrap();
        assert!(!first.as_str().contains("continuation-token"), "{first}");
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
        let (api, member) = fixture();
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
