//! The `convergence` observation: after the quiet period and before the final reads, do the
//! replicas of every key hold the same thing?
//!
//! Taken before the final reads on purpose (HISTORY.md): those reads repair what they touch, so
//! afterwards a cluster whose anti-entropy does nothing would look converged.
//!
//! Two steps, both on each node's own address (never through the fault proxy):
//! 1. `GET /digest` from every node: a hash per ring range it replicates. Ranges whose
//!    replicas report different hashes are the only places to look.
//! 2. `GET /digest/keys?start=S&end=E` from every replica of such a range: its keys with a
//!    hash each. A key differs when some replica lacks it or holds a different hash.
//!
//! The observation's value (HISTORY.md, "Nemesis and harness events"):
//! `{"converged", "keys_differing", "keys": [natural order], "detail": {"by_key": {key: {node:
//! hash | "missing"}}, "unreachable": [nodes], "errors": {node: why}, "ranges_differing": M}}`.
//! A member whose reply cannot be read (not JSON, or lacking what the node's `/digest` always
//! has) is unreachable with the reason, never a member with nothing to compare.

use crate::backend::Cluster;
use crate::recorder::Recorder;
use quorate_checker::quorum::natural_cmp;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// One ring range as `/digest` names it.
type RangeId = (u64, u64);

/// What the observation found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Convergence {
    /// Keys whose replicas differ, in natural order (`k2` before `k10`).
    pub keys: Vec<String>,
    /// key → node → hash (or `"missing"`), for the differing keys only.
    pub by_key: BTreeMap<String, BTreeMap<String, String>>,
    /// Nodes that did not answer, or whose answer could not be read.
    pub unreachable: Vec<String>,
    /// Why, for each of them: the request's error, or what the reply lacked (and the reply).
    pub errors: BTreeMap<String, String>,
    pub ranges_differing: usize,
}

impl Convergence {
    pub fn converged(&self) -> bool {
        self.keys.is_empty() && self.unreachable.is_empty() && self.ranges_differing == 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "converged": self.converged(),
            "keys_differing": self.keys.len(),
            "keys": self.keys,
            "detail": {
                "by_key": self.by_key,
                "unreachable": self.unreachable,
                "errors": self.errors,
                "ranges_differing": self.ranges_differing,
            },
        })
    }
}

/// One range of a member's `/digest` reply.
#[derive(Debug, Clone, PartialEq)]
struct RangeReport {
    range: RangeId,
    hash: String,
    replicas: Vec<String>,
}

/// A reply as an error message shows it: its JSON, cut short (a `/digest` lists every range).
fn shown(reply: &Value) -> String {
    let text = reply.to_string();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// `v[field]` as an array; an error saying what is missing otherwise.
fn array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>, String> {
    v.get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no \"{field}\" array"))
}

/// `v[field]` as a string; an error saying what is missing otherwise.
fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no string \"{field}\""))
}

/// The ranges of `node`'s `/digest` reply. A reply the observation cannot read — no `ranges`
/// array, a range without its bounds, hash or replicas — is an error naming the member and
/// showing the reply: read as "nothing to compare", it would pass for converged.
fn digest_ranges(node: &str, reply: &Value) -> Result<Vec<RangeReport>, String> {
    let bad = |why: String| format!("{node}: /digest reply has {why}: {}", shown(reply));
    let mut out = Vec::new();
    for (i, r) in array(reply, "ranges").map_err(bad)?.iter().enumerate() {
        let range = (|| {
            let bound = |f: &str| {
                r.get(f)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("no number \"{f}\""))
            };
            let replicas = array(r, "replicas")?
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .ok_or("a replica that is not a string")
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, String>(RangeReport {
                range: (bound("start")?, bound("end")?),
                hash: text(r, "hash")?.to_string(),
                replicas,
            })
        })();
        out.push(range.map_err(|why| bad(format!("a range (#{i}) with {why}")))?);
    }
    Ok(out)
}

/// key → hash from `node`'s `/digest/keys` reply for one range; an error naming the member and
/// showing the reply when it has no `keys` array or a key without its name or hash.
fn digest_keys(node: &str, reply: &Value) -> Result<Vec<(String, String)>, String> {
    let bad = |why: String| format!("{node}: /digest/keys reply has {why}: {}", shown(reply));
    array(reply, "keys")
        .map_err(bad)?
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let entry = text(k, "key").and_then(|key| Ok((key.to_string(), text(k, "hash")?)));
            entry
                .map(|(key, h)| (key, h.to_string()))
                .map_err(|why| bad(format!("a key (#{i}) with {why}")))
        })
        .collect()
}

async fn get_json(http: &reqwest::Client, url: String) -> Result<Value, String> {
    let resp = http
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{url}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: body is not JSON: {e}"))
}

/// Observe, record the `convergence` harness event, and return what was found.
pub async fn observe(cluster: &Arc<dyn Cluster>, rec: &Recorder) -> Convergence {
    let http = crate::client::http_client();
    let mut out = Convergence::default();
    let mut unreachable = BTreeSet::new();
    // range → node → hash, and range → its replicas as the nodes report them.
    let mut hashes: BTreeMap<RangeId, BTreeMap<String, String>> = BTreeMap::new();
    let mut replicas: BTreeMap<RangeId, BTreeSet<String>> = BTreeMap::new();
    for n in cluster.nodes() {
        let url = format!("http://{}/digest", cluster.admin_addr(n));
        let ranges = get_json(&http, url)
            .await
            .and_then(|body| digest_ranges(n, &body));
        let ranges = match ranges {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("convergence: {n} did not answer: {e}");
                unreachable.insert(n.clone());
                out.errors.insert(n.clone(), e);
                continue;
            }
        };
        for r in ranges {
            hashes.entry(r.range).or_default().insert(n.clone(), r.hash);
            replicas.entry(r.range).or_default().extend(r.replicas);
        }
    }
    let differing: Vec<RangeId> = hashes
        .iter()
        .filter(|(range, by_node)| {
            let mut hs = by_node.values();
            let first = hs.next();
            // Different hashes, or a replica that should report the range and did not.
            hs.any(|h| Some(h) != first)
                || replicas[*range]
                    .iter()
                    .any(|r| !by_node.contains_key(r) && !unreachable.contains(r))
        })
        .map(|(r, _)| *r)
        .collect();
    out.ranges_differing = differing.len();
    for (s, e) in differing {
        // key → node → hash, over the range's replicas that answered.
        let mut keys: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut asked = Vec::new();
        for n in &replicas[&(s, e)] {
            if unreachable.contains(n) || !cluster.nodes().contains(n) {
                continue;
            }
            let url = format!(
                "http://{}/digest/keys?start={s}&end={e}",
                cluster.admin_addr(n)
            );
            match get_json(&http, url)
                .await
                .and_then(|body| digest_keys(n, &body))
            {
                Ok(listed) => {
                    asked.push(n.clone());
                    for (key, h) in listed {
                        keys.entry(key).or_default().insert(n.clone(), h);
                    }
                }
                Err(err) => {
                    tracing::warn!("convergence: {n} did not list range {s}..{e}: {err}");
                    unreachable.insert(n.clone());
                    out.errors.insert(n.clone(), err);
                }
            }
        }
        for (key, mut by_node) in keys {
            for n in &asked {
                by_node
                    .entry(n.clone())
                    .or_insert_with(|| "missing".to_string());
            }
            let mut hs = by_node.values();
            let first = hs.next();
            if hs.any(|h| Some(h) != first) {
                out.by_key.insert(key, by_node);
            }
        }
    }
    out.keys = out.by_key.keys().cloned().collect();
    out.keys.sort_by(|a, b| natural_cmp(a, b));
    out.unreachable = unreachable.into_iter().collect();
    let value = out.to_json();
    tracing::info!("convergence: {value}");
    rec.harness("convergence", value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, FakeCluster};

    /// A member's admin address answering `GET /digest` with `reply`, in process.
    async fn member(reply: Value) -> std::net::SocketAddr {
        let app = axum::Router::new().route(
            "/digest",
            axum::routing::get(move || {
                let reply = reply.clone();
                async move { axum::Json(reply) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Observe a 3-member fake cluster whose members answer `/digest` with `reply(member)`.
    async fn observe_replies(reply: impl Fn(&str) -> Value) -> Convergence {
        let fake = Arc::new(FakeCluster::new(3));
        for n in fake.nodes().to_vec() {
            fake.set_admin_addr(&n, member(reply(&n)).await);
        }
        let dir = tempfile::tempdir().unwrap();
        let cluster: Arc<dyn Cluster> = fake;
        observe(&cluster, &testkit::recorder(dir.path())).await
    }

    fn range(hash: Option<&str>) -> Value {
        let mut r = json!({"start": 0, "end": 10, "replicas": ["n1", "n2", "n3"], "keys": 1});
        if let Some(h) = hash {
            r["hash"] = json!(h);
        }
        r
    }

    #[tokio::test]
    async fn a_digest_without_ranges_or_hashes_is_an_error_naming_the_member_not_converged() {
        let c = observe_replies(|n| json!({"node": n, "ranges": [range(Some("aa"))]})).await;
        assert!(c.converged(), "{c:?}");
        // Before: nothing to compare read as converged.
        let c = observe_replies(|n| json!({"node": n, "keys": 4})).await;
        assert!(!c.converged());
        assert_eq!(c.unreachable, ["n1", "n2", "n3"]);
        let why = &c.errors["n2"];
        assert!(
            why.starts_with("n2: /digest reply has no \"ranges\" array: ")
                && why.contains("\"keys\":4"),
            "{why}"
        );
        assert_eq!(c.to_json()["detail"]["errors"]["n2"], json!(why));
        let c = observe_replies(|n| json!({"node": n, "ranges": [range(None)]})).await;
        assert!(!c.converged());
        assert!(
            c.errors["n1"].contains("a range (#0) with no string \"hash\""),
            "{:?}",
            c.errors
        );
    }

    #[test]
    fn replies_are_read_whole_or_refused() {
        let r = digest_ranges("n1", &json!({"ranges": [range(Some("ab"))]})).unwrap();
        assert_eq!(r[0].range, (0, 10));
        assert_eq!(r[0].replicas, ["n1", "n2", "n3"]);
        let mut no_end = range(Some("ab"));
        no_end.as_object_mut().unwrap().remove("end");
        let e = digest_ranges("n1", &json!({"ranges": [no_end]})).unwrap_err();
        assert!(e.contains("no number \"end\""), "{e}");
        let listed = digest_keys("n3", &json!({"keys": [{"key": "k1", "hash": "01"}]})).unwrap();
        assert_eq!(listed, [("k1".to_string(), "01".to_string())]);
        let e = digest_keys("n3", &json!({"keys": [{"key": "k1"}]})).unwrap_err();
        assert!(
            e.starts_with("n3: /digest/keys reply has a key (#0) with no string \"hash\""),
            "{e}"
        );
        let e = digest_keys("n3", &json!({"node": "n3"})).unwrap_err();
        assert!(e.contains("no \"keys\" array"), "{e}");
        // A long reply is cut short in the message.
        let long = json!({"node": "x".repeat(1000)});
        assert!(digest_ranges("n1", &long).unwrap_err().len() < 400);
    }

    #[test]
    fn converged_only_when_nothing_differs_and_everyone_answered() {
        let mut c = Convergence::default();
        assert!(c.converged());
        c.unreachable.push("n2".into());
        assert!(!c.converged());
        let v = Convergence {
            keys: vec!["k3".into()],
            ..Convergence::default()
        }
        .to_json();
        assert_eq!(v["converged"], false);
        assert_eq!(v["keys_differing"], 1);
        assert_eq!(v["keys"], json!(["k3"]));
    }
}
