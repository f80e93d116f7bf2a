//! Garage's membership as the `reconfigure` fault changes it, through the admin API (the
//! calls Garage's own `garage layout show/assign/apply` make; v2 or v1 by version, see
//! [`super::admin`]): `GetClusterLayout`, one `UpdateClusterLayout` that stages a role for
//! every member — zone `dc1`, 1 GB for a storage member, capacity `null` for a gateway
//! (Garage's `layout assign -g`) — and `ApplyClusterLayout` with the next version. Garage 1.x
//! and 2.x then keep the older versions in force ("draining") while they copy data to the new
//! one; [`GarageMembership::settle`] waits for no version draining (2.x:
//! `GetClusterLayoutHistory`) and every partition whole (`GetClusterHealth`) on every member.
//! Garage 0.9 has one layout version in force at a time (it switches at once: the cause of its
//! published layout bugs), and 1.x's v1 API shows no layout history, so on both only health
//! is waited for.
//!
//! Calls go to the first member (in member order) that answers `GetClusterLayout`, so a
//! member being down does not stop the fault; an error names the member, the call and
//! Garage's answer.
//!
//! `ApplyClusterLayout` answers only once the member has merged the new version, which waits
//! for the writes in flight under the old one: seconds on a loaded machine, and as long as
//! Garage's RPC timeout when writes are stuck behind a partition (and the reads and the staging
//! of a layout wait behind it, so they get [`CALL_LIMIT`]). So the apply call may take
//! [`APPLY_LIMIT`]; when it fails or times out, the layout is read again until that limit: a
//! version that did go in with the roles asked for is the change made, anything else the
//! error.

use super::admin::{fully_healthy, Admin, AdminMember, Call};
use super::config::Generation;
use super::RPC_PORT;
use crate::backend::Cluster;
use crate::targets::{BoxFuture, Layout, Membership};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A storage member's capacity (as set-up gives every member).
pub const CAPACITY: u64 = 1_000_000_000;
/// Between polls while settling.
const POLL: Duration = Duration::from_millis(500);
/// How long one layout change may take in all (the apply, then reading whether it went in).
pub const APPLY_LIMIT: Duration = Duration::from_secs(60);
/// How long a read or the staging of a layout may take: they answered within 5 s when Garage
/// was idle, and waited longer behind an apply merging under a partition.
pub const CALL_LIMIT: Duration = Duration::from_secs(30);

/// `--target garage`'s [`Membership`]: the admin token, and what set-up learnt (each
/// member's `<node id>@<rpc address>` and addresses).
pub struct GarageMembership {
    /// Reads and staging ([`CALL_LIMIT`]: they wait behind an apply in progress too).
    pub admin: Admin,
    /// `ApplyClusterLayout`, which may wait ([`APPLY_LIMIT`]).
    pub apply: Admin,
    /// member → `<node id>@<rpc address>`, filled in by set-up.
    pub peers: Arc<Mutex<BTreeMap<String, String>>>,
    /// member → its addresses (S3, RPC, admin), filled in by the launch.
    pub addrs: Arc<Mutex<BTreeMap<String, Vec<SocketAddr>>>>,
}

/// Names one way or the other: node id → member, or member → node id.
type Names = BTreeMap<String, String>;

/// The node id in `<id>@<address>`.
fn id_of(peer: &str) -> &str {
    peer.split('@').next().unwrap_or(peer)
}

/// A `GetClusterLayout` answer as a [`Layout`], members named by `names` (node id → member);
/// an id quorate did not start is kept as the id. Members with no role are in neither list.
pub fn parse_layout(v: &Value, names: &BTreeMap<String, String>) -> Result<Layout, String> {
    let version = v
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no `version` in {v}"))?;
    let roles = v
        .get("roles")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no `roles` list in {v}"))?;
    let mut storage = Vec::new();
    let mut gateways = Vec::new();
    for r in roles {
        let id = r
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a role without `id` in {v}"))?;
        let name = names.get(id).cloned().unwrap_or_else(|| id.to_string());
        match r.get("capacity") {
            Some(Value::Number(_)) => storage.push(name),
            Some(Value::Null) | None => gateways.push(name),
            Some(other) => return Err(format!("role {id}: capacity {other} is not a number")),
        }
    }
    storage.sort();
    gateways.sort();
    Ok(Layout {
        version,
        storage,
        gateways,
    })
}

/// Why a `GetClusterLayoutHistory` answer is not settled (an older version still draining),
/// or `None` when it is.
pub fn draining(v: &Value) -> Result<Option<String>, String> {
    let versions = v
        .get("versions")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no `versions` list in {v}"))?;
    let old: Vec<u64> = versions
        .iter()
        .filter(|x| x.get("status").and_then(Value::as_str) == Some("Draining"))
        .filter_map(|x| x.get("version").and_then(Value::as_u64))
        .collect();
    Ok((!old.is_empty()).then(|| format!("layout versions {old:?} still draining")))
}

impl GarageMembership {
    fn member(&self, cluster: &dyn Cluster, node: &str) -> AdminMember {
        let rpc = self
            .addrs
            .lock()
            .unwrap()
            .get(node)
            .and_then(|a| a.get(RPC_PORT).copied())
            .unwrap_or_else(|| cluster.admin_addr(node));
        AdminMember {
            node: node.to_string(),
            admin: cluster.admin_addr(node),
            rpc,
        }
    }

    /// node id → member, and member → node id.
    fn ids(&self) -> Result<(Names, Names), String> {
        let peers = self.peers.lock().unwrap().clone();
        if peers.is_empty() {
            return Err("the members' node ids are not known (set-up has not run)".into());
        }
        let by_id = peers
            .iter()
            .map(|(n, p)| (id_of(p).to_string(), n.clone()))
            .collect();
        let by_node = peers
            .iter()
            .map(|(n, p)| (n.clone(), id_of(p).to_string()))
            .collect();
        Ok((by_id, by_node))
    }

    /// The first member that answers `GetClusterLayout`, and its answer.
    async fn driver(&self, cluster: &dyn Cluster) -> Result<(AdminMember, Value), String> {
        let mut errors = Vec::new();
        for n in cluster.nodes() {
            let m = self.member(cluster, n);
            match self.admin.call(&m, Call::GetLayout, None).await {
                Ok(v) => return Ok((m, v)),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        Err(format!("no member answered: {}", errors.join("; ")))
    }
}

impl Membership for GarageMembership {
    fn layout<'a>(&'a self, cluster: &'a dyn Cluster) -> BoxFuture<'a, Result<Layout, String>> {
        Box::pin(async move {
            let (by_id, _) = self.ids()?;
            let (_, v) = self.driver(cluster).await?;
            parse_layout(&v, &by_id)
        })
    }

    fn assign<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
        storage: &'a [String],
    ) -> BoxFuture<'a, Result<Layout, String>> {
        Box::pin(async move {
            let (by_id, by_node) = self.ids()?;
            let (m, v) = self.driver(cluster).await?;
            let now = parse_layout(&v, &by_id)?;
            let mut want = storage.to_vec();
            want.sort();
            let gateways: Vec<String> = cluster
                .nodes()
                .iter()
                .filter(|n| !storage.contains(n))
                .cloned()
                .collect();
            if now.storage == want && now.gateways == gateways {
                return Ok(now);
            }
            // A role for every member, so nothing staged before (by anyone) is left over.
            let mut roles = Vec::new();
            for n in cluster.nodes() {
                let id = by_node
                    .get(n)
                    .ok_or_else(|| format!("{n}: node id not known"))?;
                let capacity = storage.contains(n).then_some(CAPACITY);
                roles.push(json!({"id": id, "zone": "dc1", "capacity": capacity, "tags": [n]}));
            }
            let staged = self
                .admin
                .call(
                    &m,
                    Call::UpdateLayout,
                    Some(self.admin.layout_update(roles)),
                )
                .await
                .map_err(|e| format!("{e:#}"))?;
            let next = staged
                .get("version")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    format!("{}: UpdateClusterLayout: no `version` in {staged}", m.node)
                })?
                + 1;
            let deadline = Instant::now() + APPLY_LIMIT;
            let applied = tokio::time::timeout(
                APPLY_LIMIT,
                self.apply
                    .call(&m, Call::ApplyLayout, Some(json!({ "version": next }))),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("ApplyClusterLayout: no answer")));
            let failed = match applied {
                Ok(v) => {
                    let layout = v.get("layout").ok_or_else(|| {
                        format!("{}: ApplyClusterLayout: no `layout` in {v}", m.node)
                    })?;
                    return parse_layout(layout, &by_id);
                }
                Err(e) => format!("{e:#}"),
            };
            // Did it go in all the same (an answer lost, or given after the timeout)?
            loop {
                if let Ok(v) = self.admin.call(&m, Call::GetLayout, None).await {
                    let l = parse_layout(&v, &by_id)?;
                    if l.version >= next && l.storage == want && l.gateways == gateways {
                        tracing::warn!(
                            "garage: ApplyClusterLayout v{next} on {} answered {failed}, but \
                             the layout is in force",
                            m.node
                        );
                        return Ok(l);
                    }
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "{failed}; the layout read until {} s later is not version {next} with \
                         storage {want:?}",
                        APPLY_LIMIT.as_secs()
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        })
    }

    fn settle<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
        limit: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let deadline = Instant::now() + limit;
            let mut last;
            loop {
                let (m, _) = self.driver(cluster).await?;
                last = match self.admin.generation() {
                    Generation::V2 => match self.admin.call(&m, Call::LayoutHistory, None).await {
                        Ok(v) => draining(&v)?,
                        Err(e) => Some(format!("{e:#}")),
                    },
                    // 0.9: one layout version in force at a time, nothing drains. 1.x keeps
                    // older versions in force too, but its v1 API shows no layout history
                    // (`/v1/status`'s `draining` marks only members left with no role, never
                    // a gateway), so on both only health is waited for.
                    Generation::V1 | Generation::V0_9 => None,
                };
                if last.is_none() {
                    // Every member must see every partition whole, not only the driver.
                    for n in cluster.nodes() {
                        let m = self.member(cluster, n);
                        let h = match self.admin.call(&m, Call::Health, None).await {
                            Ok(v) => fully_healthy(&v).err(),
                            Err(e) => Some(format!("{e:#}")),
                        };
                        if let Some(why) = h {
                            last = Some(format!("{n}: {why}"));
                            break;
                        }
                    }
                }
                if last.is_none() || Instant::now() >= deadline {
                    return Ok(last);
                }
                tokio::time::sleep(POLL).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_histories_are_read_as_garage_writes_them() {
        let names: BTreeMap<String, String> = [("aa", "n1"), ("bb", "n2"), ("cc", "n3")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let v = json!({"version": 4, "roles": [
            {"id": "cc", "zone": "dc1", "tags": [], "capacity": 1000000000u64},
            {"id": "aa", "zone": "dc1", "tags": [], "capacity": null},
            {"id": "bb", "zone": "dc1", "tags": [], "capacity": 1000000000u64},
            {"id": "dd", "zone": "dc1", "tags": [], "capacity": null}],
            "stagedRoleChanges": []});
        assert_eq!(
            parse_layout(&v, &names).unwrap(),
            Layout {
                version: 4,
                storage: vec!["n2".into(), "n3".into()],
                gateways: vec!["dd".into(), "n1".into()],
            }
        );
        assert!(parse_layout(&json!({"roles": []}), &names).is_err());
        let h = json!({"currentVersion": 5, "minAck": 3, "versions": [
            {"version": 5, "status": "Current", "storageNodes": 3, "gatewayNodes": 2},
            {"version": 4, "status": "Draining", "storageNodes": 5, "gatewayNodes": 0},
            {"version": 3, "status": "Historical", "storageNodes": 3, "gatewayNodes": 2}]});
        assert_eq!(
            draining(&h).unwrap().unwrap(),
            "layout versions [4] still draining"
        );
        let h = json!({"currentVersion": 5, "versions": [
            {"version": 5, "status": "Current"}, {"version": 4, "status": "Historical"}]});
        assert_eq!(draining(&h).unwrap(), None);
        assert_eq!(id_of("abc@127.0.0.1:3901"), "abc");
    }
}
