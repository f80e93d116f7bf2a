//! Turning freshly started `garage server` processes into one cluster with a bucket, through
//! Garage's admin API v2 (HTTP, bearer token): the same steps as Garage's own Jepsen set-up
//! (`garage node connect`, `layout assign`, `layout apply`, `key`, `bucket create`,
//! `bucket allow`), without a CLI process per step.
//!
//! 1. each member's node id (`GetNodeInfo?node=self`);
//! 2. the first member connects to every other by `<id>@<rpc address>` (`ConnectClusterNodes`);
//!    Garage gossips the peer list, and the step waits until every member sees every other up
//!    (`GetClusterStatus`);
//! 3. one role per member (zone `dc1`, 1 GB) and the layout applied as version 1
//!    (`UpdateClusterLayout`, `ApplyClusterLayout`), then a wait until every member reports
//!    the cluster `healthy` with every partition fully replicated (`GetClusterHealth`);
//! 4. a key (`CreateKey`), a bucket with a global alias (`CreateBucket`), read/write/owner
//!    rights for the key on it (`AllowBucketKey`).
//!
//! Every wait is bounded by one deadline; an error names the member, the call and what Garage
//! answered.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long set-up may take in all (a loaded 2-core machine included).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(90);
/// Between polls of a condition that is not true yet.
const POLL: Duration = Duration::from_millis(250);

/// One member as set-up addresses it.
#[derive(Debug, Clone)]
pub struct AdminMember {
    pub node: String,
    /// Its admin API.
    pub admin: SocketAddr,
    /// The RPC address it advertises to its peers.
    pub rpc: SocketAddr,
}

/// What set-up learnt and created.
#[derive(Debug, Clone)]
pub struct Created {
    /// Each member's `<node id>@<rpc address>`, in member order.
    pub peers: Vec<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub bucket_id: String,
}

/// A client of the admin API with the master token.
pub struct Admin {
    http: reqwest::Client,
    token: String,
}

impl Admin {
    pub fn new(token: &str) -> Admin {
        Admin::with_timeout(token, Duration::from_secs(5))
    }

    /// A client whose every call gives up after `timeout`.
    pub fn with_timeout(token: &str, timeout: Duration) -> Admin {
        Admin {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("reqwest client builds"),
            token: token.to_string(),
        }
    }

    /// `GET`/`POST http://<admin>/v2/<call>`; the JSON answer, or an error naming the call.
    pub async fn call(
        &self,
        m: &AdminMember,
        call: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("http://{}/v2/{call}", m.admin);
        let req = match &body {
            Some(b) => self.http.post(&url).json(b),
            None => self.http.get(&url),
        };
        let what = || format!("{} ({}): {call}", m.node, m.admin);
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(what)?;
        let status = resp.status();
        let text = resp.text().await.with_context(what)?;
        if !status.is_success() {
            bail!("{}: HTTP {status}: {}", what(), text.trim());
        }
        serde_json::from_str(&text).with_context(|| format!("{}: answer {text:?}", what()))
    }

    /// Poll `check` on `m` until it returns `Some`, or fail at `deadline` with the last reason.
    async fn until<T>(
        &self,
        m: &AdminMember,
        call: &str,
        deadline: Instant,
        what: &str,
        check: impl Fn(&Value) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        loop {
            let last;
            match self.call(m, call, None).await {
                Ok(v) => match check(&v) {
                    Ok(t) => return Ok(t),
                    Err(why) => last = why,
                },
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not {what} within {} s; last: {last}",
                    m.node,
                    SETUP_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The node id in a `GetNodeInfo?node=self` answer (`{"success": {"<id>": {"nodeId"…}}}`).
pub fn own_node_id(v: &Value) -> Result<String, String> {
    let ok = v
        .get("success")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("no `success` map in {v}"))?;
    let mut ids = ok.values().filter_map(|r| r.get("nodeId")?.as_str());
    match (ids.next(), ids.next()) {
        (Some(id), None) => Ok(id.to_string()),
        _ => Err(format!("expected exactly one node in {v}")),
    }
}

/// How many of `ids` a `GetClusterStatus` answer shows up.
pub fn up_among(v: &Value, ids: &[String]) -> usize {
    let nodes = v.get("nodes").and_then(Value::as_array);
    ids.iter()
        .filter(|id| {
            nodes.is_some_and(|ns| {
                ns.iter().any(|n| {
                    n.get("id").and_then(Value::as_str) == Some(id.as_str())
                        && n.get("isUp").and_then(Value::as_bool) == Some(true)
                })
            })
        })
        .count()
}

/// Whether a `GetClusterHealth` answer says every partition has all its replicas.
pub fn fully_healthy(v: &Value) -> Result<(), String> {
    let status = v.get("status").and_then(Value::as_str).unwrap_or("");
    let parts = v.get("partitions").and_then(Value::as_u64);
    let all_ok = v.get("partitionsAllOk").and_then(Value::as_u64);
    if status == "healthy" && parts.is_some() && parts == all_ok {
        Ok(())
    } else {
        Err(format!("health {v}"))
    }
}

/// Run the set-up (see the module note) on `members`, the first of which drives it.
pub async fn setup(admin: &Admin, members: &[AdminMember]) -> anyhow::Result<Created> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let first = members.first().ok_or_else(|| anyhow!("no members"))?;

    // 1. Node ids.
    let mut ids = Vec::new();
    for m in members {
        let id = admin
            .until(
                m,
                "GetNodeInfo?node=self",
                deadline,
                "report its node id",
                own_node_id,
            )
            .await?;
        ids.push(id);
    }

    // 2. Connect, then wait until every member sees every other.
    let all: Vec<String> = members
        .iter()
        .zip(&ids)
        .map(|(m, id)| format!("{id}@{}", m.rpc))
        .collect();
    let peers = all[1..].to_vec();
    loop {
        let v = admin
            .call(first, "ConnectClusterNodes", Some(json!(peers)))
            .await?;
        let failed: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .zip(&peers)
                    .filter(|(r, _)| r.get("success").and_then(Value::as_bool) != Some(true))
                    .map(|(r, p)| format!("{p}: {}", r.get("error").unwrap_or(&Value::Null)))
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("unexpected answer {v}")]);
        if failed.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            bail!("{} could not connect to {}", first.node, failed.join("; "));
        }
        tokio::time::sleep(POLL).await;
    }
    for m in members {
        let n = ids.len();
        admin
            .until(
                m,
                "GetClusterStatus",
                deadline,
                "see every member up",
                |v| match up_among(v, &ids) {
                    k if k == n => Ok(()),
                    k => Err(format!("{k} of {n} members up")),
                },
            )
            .await?;
    }

    // 3. Layout: one role per member, applied as the next version.
    let roles: Vec<Value> = members
        .iter()
        .zip(&ids)
        .map(|(m, id)| json!({"id": id, "zone": "dc1", "capacity": 1_000_000_000u64, "tags": [m.node]}))
        .collect();
    let layout = admin
        .call(
            first,
            "UpdateClusterLayout",
            Some(json!({ "roles": roles })),
        )
        .await?;
    let version = layout.get("version").and_then(Value::as_u64).unwrap_or(0) + 1;
    admin
        .call(
            first,
            "ApplyClusterLayout",
            Some(json!({ "version": version })),
        )
        .await
        .context("applying the layout")?;
    for m in members {
        admin
            .until(
                m,
                "GetClusterHealth",
                deadline,
                "become healthy",
                fully_healthy,
            )
            .await?;
    }

    // 4. Key, bucket, rights.
    let key = admin
        .call(first, "CreateKey", Some(json!({"name": "quorate"})))
        .await?;
    let field = |v: &Value, f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{}: no `{f}` in {v}", first.node))
    };
    let access_key_id = field(&key, "accessKeyId")?;
    let secret_access_key = field(&key, "secretAccessKey")?;
    let bucket = admin
        .call(
            first,
            "CreateBucket",
            Some(json!({"globalAlias": super::BUCKET})),
        )
        .await?;
    let bucket_id = field(&bucket, "id")?;
    admin
        .call(
            first,
            "AllowBucketKey",
            Some(json!({
                "bucketId": bucket_id,
                "accessKeyId": access_key_id,
                "permissions": {"read": true, "write": true, "owner": true},
            })),
        )
        .await?;
    Ok(Created {
        peers: all,
        access_key_id,
        secret_access_key,
        bucket_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_garage_writes_them() {
        let info = json!({"success": {"ab12": {"nodeId": "ab12", "garageVersion": "v2.5.0"}}, "error": {}});
        assert_eq!(own_node_id(&info).unwrap(), "ab12");
        assert!(own_node_id(&json!({"success": {}, "error": {"x": "down"}})).is_err());
        let status = json!({"layoutVersion": 0, "nodes": [
            {"id": "a", "isUp": true}, {"id": "b", "isUp": false}, {"id": "c", "isUp": true}]});
        let ids = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(up_among(&status, &ids), 2);
        let h = json!({"status": "healthy", "partitions": 256, "partitionsAllOk": 256});
        assert!(fully_healthy(&h).is_ok());
        let h = json!({"status": "degraded", "partitions": 256, "partitionsAllOk": 100});
        assert!(fully_healthy(&h).is_err());
    }
}
