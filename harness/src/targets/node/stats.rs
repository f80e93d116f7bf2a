//! The nodes' own counters (`GET /stats`), fetched at the end of a run, and which repair
//! mechanisms they show at work.
//!
//! A checker sees only what clients saw: a write that went missing on some replicas and came
//! back before anyone read it leaves no trace in the history. The nodes count what brought
//! data back — read repair (`read_repairs`), Merkle anti-entropy (`keys_repaired`) and hinted
//! handoff (`hints_delivered`) — so a run can say which of them worked, beside the checks'
//! verdicts. Counters start at zero when a node process starts, so a node killed or restored
//! during the run counts only since its last start; the sentence says so.

use crate::backend::Cluster;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The repair mechanisms, as (counter in `/stats`, name in the sentence, unit).
pub const MECHANISMS: [(&str, &str, &str); 3] = [
    ("read_repairs", "read repair", "replicas repaired"),
    ("keys_repaired", "anti-entropy", "keys repaired"),
    ("hints_delivered", "hinted handoff", "hints delivered"),
];

/// `GET /stats` from every node on its own address (faults never sit between the harness and
/// a node's admin routes). A node that does not answer gets `{"error": …}` instead.
pub async fn fetch(cluster: &Arc<dyn Cluster>, http: &reqwest::Client) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for node in cluster.nodes() {
        let url = format!("http://{}/stats", cluster.admin_addr(node));
        let got = async {
            let resp = http.get(&url).send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!("{url}: {status}"));
            }
            resp.json::<Value>()
                .await
                .map_err(|e| format!("{url}: {e}"))
        };
        let v = match tokio::time::timeout(Duration::from_secs(2), got).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => json!({ "error": e }),
            Err(_) => json!({ "error": format!("{url}: no answer in 2 s") }),
        };
        out.insert(node.clone(), v);
    }
    out
}

/// Sum the repair counters over the nodes and name the mechanisms whose counters moved:
/// `{"read_repairs": …, "keys_repaired": …, "hints_delivered": …, "mechanisms": [names],
/// "sentence": …}`.
pub fn repairs(stats: &BTreeMap<String, Value>) -> Value {
    let mut out = Map::new();
    let mut moved = Vec::new();
    let mut parts = Vec::new();
    for (counter, name, unit) in MECHANISMS {
        let total: u64 = stats
            .values()
            .filter_map(|s| s.get(counter).and_then(Value::as_u64))
            .sum();
        out.insert(counter.to_string(), json!(total));
        if total > 0 {
            moved.push(name);
            parts.push(format!("{name} ({total} {unit})"));
        }
    }
    let unanswered: Vec<&String> = stats
        .iter()
        .filter(|(_, s)| s.get("error").is_some())
        .map(|(n, _)| n)
        .collect();
    let mut sentence = if parts.is_empty() {
        "repairs: no repair mechanism's counters moved (read repair, anti-entropy and hinted \
         handoff all at 0)"
            .to_string()
    } else {
        format!("repairs by {}", parts.join(", "))
    };
    sentence.push_str(", per the nodes' /stats since each node's last start");
    if !unanswered.is_empty() {
        let names: Vec<&str> = unanswered.iter().map(|n| n.as_str()).collect();
        sentence.push_str(&format!(" ({} did not answer)", names.join(", ")));
    }
    out.insert("mechanisms".into(), json!(moved));
    out.insert("sentence".into(), json!(sentence));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_mechanisms_whose_counters_moved() {
        let mut stats = BTreeMap::new();
        stats.insert(
            "n1".to_string(),
            json!({"read_repairs": 2, "keys_repaired": 0, "hints_delivered": 0}),
        );
        stats.insert(
            "n2".to_string(),
            json!({"read_repairs": 1, "keys_repaired": 5, "hints_delivered": 0}),
        );
        stats.insert("n3".to_string(), json!({"error": "down"}));
        let r = repairs(&stats);
        assert_eq!(r["read_repairs"], json!(3));
        assert_eq!(r["keys_repaired"], json!(5));
        assert_eq!(r["mechanisms"], json!(["read repair", "anti-entropy"]));
        let s = r["sentence"].as_str().unwrap();
        assert!(
            s.starts_with(
                "repairs by read repair (3 replicas repaired), anti-entropy (5 keys repaired)"
            ),
            "{s}"
        );
        assert!(s.ends_with("(n3 did not answer)"), "{s}");
    }

    #[test]
    fn says_when_nothing_moved() {
        let mut stats = BTreeMap::new();
        stats.insert("n1".to_string(), json!({"read_repairs": 0}));
        let r = repairs(&stats);
        assert_eq!(r["mechanisms"], json!([]));
        assert!(r["sentence"]
            .as_str()
            .unwrap()
            .contains("no repair mechanism"));
    }
}
