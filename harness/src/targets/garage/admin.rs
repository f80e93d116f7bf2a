//! Turning freshly started `garage server` processes into one cluster with a bucket, through
//! Garage's admin API (HTTP, bearer token): the same steps as Garage's own Jepsen set-up
//! (`garage node connect`, `layout assign`, `layout apply`, `key`, `bucket create`,
//! `bucket allow`), without a CLI process per step.
//!
//! The API differs by version ([`Generation`]): 2.x serves v2 (`/v2/<Call>`), 0.9.x and 1.x
//! serve v1 (`/v1/status`, `/v1/layout`, …, read from Garage's `router_v1.rs` at v0.9.0,
//! v0.9.4 and v1.0.1), whose layout update is a bare list of roles and whose status lists
//! `knownNodes` (0.9) or `nodes` (1.x). [`Call`] names each step once and
//! [`Admin::route`] maps it onto the version's method and path.
//!
//! 1. each member's node id (v2 `GetNodeInfo?node=self`, v1 `status`'s `node`);
//! 2. the first member connects to every other by `<id>@<rpc address>`;
//!    Garage gossips the peer list, and the step waits until every member sees every other up;
//! 3. one role per member (zone `dc1`, 1 GB) and the layout applied as the next version,
//!    then a wait until every member reports the cluster `healthy` with every partition
//!    fully replicated;
//! 4. a key, a bucket with a global alias, read/write/owner rights for the key on it.
//!
//! Every wait is bounded by one deadline; an error names the member, the call and what Garage
//! answered.

use super::config::Generation;
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

/// One admin API step, whatever the version calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The answering member's own node id.
    NodeInfo,
    /// The members it knows and whether each is up.
    Status,
    Health,
    Connect,
    GetLayout,
    UpdateLayout,
    ApplyLayout,
    /// 2.x only: the layout versions still in force.
    LayoutHistory,
    CreateKey,
    CreateBucket,
    AllowBucketKey,
}

/// A client of the admin API with the master token.
pub struct Admin {
    http: reqwest::Client,
    token: String,
    generation: Generation,
}

impl Admin {
    pub fn new(token: &str, generation: Generation) -> Admin {
        Admin::with_timeout(token, generation, Duration::from_secs(5))
    }

    /// A client whose every call gives up after `timeout`.
    pub fn with_timeout(token: &str, generation: Generation, timeout: Duration) -> Admin {
        Admin {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("reqwest client builds"),
            token: token.to_string(),
            generation,
        }
    }

    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The path (after the admin address) and whether it is a `POST`, for this version; `None`
    /// where the version has no such call.
    pub fn route(generation: Generation, call: Call) -> Option<(&'static str, bool)> {
        use Call::*;
        Some(match generation {
            Generation::V2 => match call {
                NodeInfo => ("/v2/GetNodeInfo?node=self", false),
                Status => ("/v2/GetClusterStatus", false),
                Health => ("/v2/GetClusterHealth", false),
                Connect => ("/v2/ConnectClusterNodes", true),
                GetLayout => ("/v2/GetClusterLayout", false),
                UpdateLayout => ("/v2/UpdateClusterLayout", true),
                ApplyLayout => ("/v2/ApplyClusterLayout", true),
                LayoutHistory => ("/v2/GetClusterLayoutHistory", false),
                CreateKey => ("/v2/CreateKey", true),
                CreateBucket => ("/v2/CreateBucket", true),
                AllowBucketKey => ("/v2/AllowBucketKey", true),
            },
            Generation::V0_9 | Generation::V1 => match call {
                NodeInfo | Status => ("/v1/status", false),
                Health => ("/v1/health", false),
                Connect => ("/v1/connect", true),
                GetLayout => ("/v1/layout", false),
                UpdateLayout => ("/v1/layout", true),
                ApplyLayout => ("/v1/layout/apply", true),
                LayoutHistory => return None,
                CreateKey => ("/v1/key", true),
                CreateBucket => ("/v1/bucket", true),
                AllowBucketKey => ("/v1/bucket/allow", true),
            },
        })
    }

    /// `UpdateLayout`'s body: v2 wraps the roles, v1 takes the bare list.
    pub fn layout_update(&self, roles: Vec<Value>) -> Value {
        match self.generation {
            Generation::V2 => json!({ "roles": roles }),
            Generation::V0_9 | Generation::V1 => Value::Array(roles),
        }
    }

    /// The member's own node id from a `NodeInfo` answer.
    pub fn own_id(&self, v: &Value) -> Result<String, String> {
        match self.generation {
            Generation::V2 => own_node_id(v),
            Generation::V0_9 | Generation::V1 => v
                .get("node")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("no `node` in {v}")),
        }
    }

    /// The call on `m`, `GET` or `POST` as the version has it; the JSON answer, or an error
    /// naming the call.
    pub async fn call(
        &self,
        m: &AdminMember,
        call: Call,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (path, post) = Admin::route(self.generation, call)
            .ok_or_else(|| anyhow!("{call:?}: not in the admin API of this Garage version"))?;
        let url = format!("http://{}{path}", m.admin);
        let req = if post {
            self.http.post(&url).json(&body.unwrap_or(Value::Null))
        } else {
            self.http.get(&url)
        };
        let what = || format!("{} ({}): {path}", m.node, m.admin);
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
        call: Call,
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

/// How many of `ids` a status answer shows up (`nodes` in 1.x and 2.x, `knownNodes` in 0.9).
pub fn up_among(v: &Value, ids: &[String]) -> usize {
    let nodes = v
        .get("nodes")
        .or_else(|| v.get("knownNodes"))
        .and_then(Value::as_array);
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
            .until(m, Call::NodeInfo, deadline, "report its node id", |v| {
                admin.own_id(v)
            })
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
        let v = admin.call(first, Call::Connect, Some(json!(peers))).await?;
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
    for (m, own) in members.iter().zip(&ids) {
        // The others: 0.9 may leave a member out of its own peer list.
        let others: Vec<String> = ids.iter().filter(|i| *i != own).cloned().collect();
        let n = others.len();
        admin
            .until(
                m,
                Call::Status,
                deadline,
                "see every other member up",
                |v| match up_among(v, &others) {
                    k if k == n => Ok(()),
                    k => Err(format!("{k} of the {n} others up")),
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
        .call(first, Call::UpdateLayout, Some(admin.layout_update(roles)))
        .await?;
    let version = layout.get("version").and_then(Value::as_u64).unwrap_or(0) + 1;
    admin
        .call(
            first,
            Call::ApplyLayout,
            Some(json!({ "version": version })),
        )
        .await
        .context("applying the layout")?;
    for m in members {
        admin
            .until(m, Call::Health, deadline, "become healthy", fully_healthy)
            .await?;
    }

    // 4. Key, bucket, rights.
    let key = admin
        .call(first, Call::CreateKey, Some(json!({"name": "quorate"})))
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
            Call::CreateBucket,
            Some(json!({"globalAlias": super::BUCKET})),
        )
        .await?;
    let bucket_id = field(&bucket, "id")?;
    admin
        .call(
            first,
            Call::AllowBucketKey,
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
        // 0.9's status lists `knownNodes`.
        let old = json!({"node": "a", "knownNodes": [{"id": "b", "isUp": true}], "layout": {}});
        assert_eq!(up_among(&old, &ids), 1);
        let admin = Admin::new("t", Generation::V0_9);
        assert_eq!(admin.own_id(&old).unwrap(), "a");
        assert!(admin.own_id(&json!({})).is_err());
    }

    #[test]
    fn each_version_gets_its_own_routes_and_bodies() {
        use Generation::*;
        assert_eq!(
            Admin::route(V2, Call::UpdateLayout),
            Some(("/v2/UpdateClusterLayout", true))
        );
        assert_eq!(
            Admin::route(V2, Call::NodeInfo),
            Some(("/v2/GetNodeInfo?node=self", false))
        );
        for g in [V0_9, V1] {
            assert_eq!(Admin::route(g, Call::NodeInfo), Some(("/v1/status", false)));
            assert_eq!(
                Admin::route(g, Call::UpdateLayout),
                Some(("/v1/layout", true))
            );
            assert_eq!(
                Admin::route(g, Call::GetLayout),
                Some(("/v1/layout", false))
            );
            assert_eq!(
                Admin::route(g, Call::ApplyLayout),
                Some(("/v1/layout/apply", true))
            );
            assert_eq!(
                Admin::route(g, Call::AllowBucketKey),
                Some(("/v1/bucket/allow", true))
            );
            assert_eq!(Admin::route(g, Call::LayoutHistory), None);
        }
        let role = json!({"id": "a", "zone": "dc1", "capacity": null, "tags": []});
        assert_eq!(
            Admin::new("t", V2).layout_update(vec![role.clone()]),
            json!({"roles": [role]})
        );
        assert_eq!(
            Admin::new("t", V1).layout_update(vec![role.clone()]),
            json!([role])
        );
    }
}
