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
//! hash | "missing"}}, "unreachable": [nodes], "ranges_differing": M}}`.

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
    /// Nodes that did not answer.
    pub unreachable: Vec<String>,
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
                "ranges_differing": self.ranges_differing,
            },
        })
    }
}

/// The elements of `v[field]` when it is an array; none otherwise (a node that answers without
/// the field simply lists nothing).
fn items<'a>(v: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    v.get(field).and_then(Value::as_array).into_iter().flatten()
}

/// `v[field]` as a string, when it is one.
fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
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
        let body = match get_json(&http, url).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("convergence: {n} did not answer: {e}");
                unreachable.insert(n.clone());
                continue;
            }
        };
        for r in items(&body, "ranges") {
            let (Some(s), Some(e)) = (
                r.get("start").and_then(Value::as_u64),
                r.get("end").and_then(Value::as_u64),
            ) else {
                continue;
            };
            let h = text(r, "hash").unwrap_or("");
            hashes
                .entry((s, e))
                .or_default()
                .insert(n.clone(), h.to_string());
            let reps = replicas.entry((s, e)).or_default();
            reps.extend(
                items(r, "replicas")
                    .filter_map(Value::as_str)
                    .map(String::from),
            );
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
            match get_json(&http, url).await {
                Ok(body) => {
                    asked.push(n.clone());
                    for k in items(&body, "keys") {
                        let (Some(key), Some(h)) = (text(k, "key"), text(k, "hash")) else {
                            continue;
                        };
                        keys.entry(key.to_string())
                            .or_default()
                            .insert(n.clone(), h.to_string());
                    }
                }
                Err(err) => {
                    tracing::warn!("convergence: {n} did not list range {s}..{e}: {err}");
                    unreachable.insert(n.clone());
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
