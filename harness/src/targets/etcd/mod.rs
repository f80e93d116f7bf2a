//! etcd (<https://etcd.io>) as a target: a Raft store whose reads are linearizable by
//! default — the calibration of the harness itself. Every anomaly quorate reports against it
//! with linearizable reads is most likely quorate's own bug (docs/targets/etcd.md).
//!
//! Each member is an `etcd` process with its own data directory (the run's `data/<id>/etcd`)
//! and two ports — client (where clients and the harness go) and peer (Raft between members) —
//! bootstrapped together with `--initial-cluster` naming every member's peer URL. A killed
//! member restarts with the same command on the same data directory; etcd then ignores the
//! bootstrap flags and rejoins from its write-ahead log. It counts as up when `GET /health`
//! answers 200 (it knows a leader and a quorum read went through).
//!
//! Clients speak the v3 JSON gateway ([`api::EtcdApi`]), each bound to one member.
//! `--etcd-serializable` makes reads serializable (served from the member's own copy).
//!
//! Faults: kill and pause on every backend; partitions, slow and flaky links only on `netns`
//! (a member's peer URL is its identity, the same in every member's `--initial-cluster`, so
//! the local backend's proxy — one listener per directed link — cannot stand between two
//! members); clock skew refused (etcd is Go: the Go runtime reads the clock without libc, so
//! libfaketime does not move it); stale-restore refused. Kill, pause and the partition that
//! isolates one member aim at the **leader** half the time ([`crate::targets::Leader`]): its
//! id from `POST /v3/maintenance/status` (`leader` against each member's `header.member_id`).
//!
//! Files: [`config`] (flags, the binary), [`api`] (the client API and the gateway's JSON).

pub mod api;
pub mod config;

pub use api::EtcdApi;
pub use config::{EtcdArgs, EtcdSpec};

use crate::backend::launch::{Launch, Member};
use crate::backend::{BackendKind, Cluster};
use crate::client::Endpoint;
use crate::nemesis::Fault;
use crate::targets::{
    Api, BoxFuture, Capabilities, Clock, Leader, Placement, Spec, Support, Target, TargetKind,
    UnknownPlacement,
};
use anyhow::bail;
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What etcd speaks and supports.
pub static CAPS: Capabilities = Capabilities {
    name: "etcd",
    ops: &[OpKind::Read, OpKind::Write, OpKind::Cas],
    ops_why: "speaks read, write and cas",
    faults,
    observer: None,
    equivalents: "etcd's reads are linearizable unless --etcd-serializable",
    flags_are: "a --target etcd flag",
};

/// Why the local backend cannot cut, delay or reset links between etcd members.
const PEER_URL_IS_IDENTITY: &str = "a member's peer URL is its identity (every member names \
                                    every peer by the same URL in --initial-cluster), so the \
                                    local backend's proxy (one listener per directed link) \
                                    cannot stand between two members";

/// Why clock skew is refused.
pub const GO_CLOCK: &str = "etcd is a Go program and the Go runtime reads the clock without \
                            libc (vDSO and system calls), so libfaketime, quorate's way to \
                            skew a store's clock, does not move it";

fn faults(f: Fault) -> Support {
    match f {
        Fault::Partition | Fault::Slow | Fault::Flaky => {
            Support::Only(BackendKind::Netns, PEER_URL_IS_IDENTITY)
        }
        Fault::ClockSkew => Support::No(GO_CLOCK),
        Fault::StaleRestore => Support::No(
            "it aims at the node's ring and copies the node's data directory; a Raft member \
             brought back from an old copy of its log breaks Raft's own assumptions, which no \
             Raft store claims to survive",
        ),
        // etcd fsyncs its WAL before it acknowledges: a member cut off by power-loss comes
        // back on what it synced (lazyfs, on every backend that mounts it).
        Fault::Reconfigure => Support::No(
            "etcd changes membership through its member API (add, remove, promote), which \
             quorate does not drive yet; the reconfigure fault speaks Garage's layouts",
        ),
        Fault::Kill | Fault::Pause | Fault::PowerLoss => Support::Yes,
    }
}

/// After healing: long enough for an election (1 s timeout) and a lagging member to catch up.
pub const DEFAULT_QUIET: Duration = Duration::from_secs(3);
/// Port order within a member ([`Launch::ports`]).
const CLIENT_PORT: usize = 0;
const PEER_PORT: usize = 1;
/// How long set-up waits for one leader and every member serving.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Each status call of the leader lookup.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

impl Spec for EtcdSpec {
    fn kind(&self) -> TargetKind {
        TargetKind::Etcd
    }

    fn prepare(&mut self, _nodes: &[String]) -> Result<(), String> {
        EtcdSpec::prepare(self)
    }

    fn run_name(&self) -> String {
        if self.serializable {
            "etcd-serializable".into()
        } else {
            "etcd-linearizable".into()
        }
    }

    fn version(&self) -> (&'static str, serde_json::Value) {
        let v = self.ready.as_ref().map(|(_, v)| json!(v));
        ("etcd", v.unwrap_or(serde_json::Value::Null))
    }

    fn default_quiet(&self) -> Duration {
        DEFAULT_QUIET
    }

    fn build(&self, _run_dir: &Path) -> Result<Arc<dyn Target>, String> {
        let (bin, _) = self.ready.clone().ok_or_else(|| {
            "the etcd target was built before its binary was found (EtcdSpec::prepare)".to_string()
        })?;
        Ok(Arc::new(EtcdTarget {
            launch: Arc::new(EtcdLaunch { bin }),
            api: EtcdApi::new(self.serializable),
        }))
    }
}

/// A member's `http://` URL.
fn url(a: SocketAddr) -> String {
    format!("http://{a}")
}

/// The `etcd` arguments for `member` (pure: unit-tested below). `cluster` is every member's
/// ports, in node order.
pub fn args(
    id: &str,
    data_dir: &Path,
    own: &[SocketAddr],
    cluster: &[(String, Vec<SocketAddr>)],
) -> Vec<String> {
    let initial: Vec<String> = cluster
        .iter()
        .map(|(n, ports)| format!("{n}={}", url(ports[PEER_PORT])))
        .collect();
    let client = url(own[CLIENT_PORT]);
    let peer = url(own[PEER_PORT]);
    [
        ("--name", id.to_string()),
        ("--data-dir", data_dir.join("etcd").display().to_string()),
        ("--listen-client-urls", client.clone()),
        ("--advertise-client-urls", client),
        ("--listen-peer-urls", peer.clone()),
        ("--initial-advertise-peer-urls", peer),
        ("--initial-cluster", initial.join(",")),
        ("--initial-cluster-state", "new".into()),
        ("--initial-cluster-token", "quorate".into()),
        ("--logger", "zap".into()),
        ("--log-outputs", "stderr".into()),
    ]
    .into_iter()
    .map(|(flag, v)| format!("{flag}={v}"))
    .collect()
}

/// How the backends start etcd members.
struct EtcdLaunch {
    bin: PathBuf,
}

impl Launch for EtcdLaunch {
    fn ports(&self) -> usize {
        2
    }

    fn admin_port(&self) -> usize {
        CLIENT_PORT
    }

    fn proxied_peers(&self) -> bool {
        false
    }

    fn command(&self, m: &Member) -> std::io::Result<Command> {
        if m.members.iter().any(|(_, p)| p.len() <= PEER_PORT) {
            return Err(std::io::Error::other(
                "every etcd member needs a client and a peer port",
            ));
        }
        let mut cmd = Command::new(&self.bin);
        cmd.args(args(m.id, m.data_dir, m.addrs, m.members));
        // etcd reads ETCD_* variables as flags: none of the caller's may change the cluster.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        Ok(cmd)
    }

    /// 200 only: the member knows a leader and a quorum read went through. At start-up every
    /// member is started before the first is waited for, so they elect a leader meanwhile;
    /// after a kill, the next fault starts on a member that has rejoined.
    fn serving(&self, status: u16) -> bool {
        status == 200
    }

    fn program(&self) -> PathBuf {
        self.bin.clone()
    }
}

/// `--target etcd`.
pub struct EtcdTarget {
    launch: Arc<EtcdLaunch>,
    api: EtcdApi,
}

impl EtcdTarget {
    /// Until every member names the same leader and a write through each member reads back
    /// through every member, so the run starts on a cluster that serves everywhere.
    async fn probe(&self, cluster: &dyn Cluster, targets: &[Endpoint]) -> anyhow::Result<()> {
        let http = crate::client::http_client();
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let mut last = String::new();
        loop {
            match leader_of(&http, cluster).await {
                Ok(_) => break,
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                bail!(
                    "etcd set-up: no leader within {} s: {last} (see nodes/<id>.log)",
                    SETUP_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Linearizable reads, whatever the run's reads: every member has caught up.
        let api = EtcdApi::new(false);
        for (i, t) in targets.iter().enumerate() {
            let key = format!("quorate-probe-{}", t.node);
            let write = OpSpec {
                f: OpKind::Write,
                key: key.clone(),
                value: json!(i),
            };
            let read = OpSpec {
                f: OpKind::Read,
                key,
                value: serde_json::Value::Null,
            };
            let mut pending: Vec<&Endpoint> = targets.iter().collect();
            let mut written = false;
            while !pending.is_empty() {
                if Instant::now() >= deadline {
                    bail!(
                        "etcd set-up: {} not served by every member within {} s; last: {last} \
                         (see nodes/<id>.log)",
                        read.key,
                        SETUP_TIMEOUT.as_secs()
                    );
                }
                let (who, op) = if written {
                    (pending[0], &read)
                } else {
                    (t, &write)
                };
                let c = api.execute(&http, who, op, Duration::from_secs(5)).await;
                if c.kind == EventType::Ok && (!written || c.value == write.value) {
                    if written {
                        pending.remove(0);
                    }
                    written = true;
                    continue;
                }
                last = format!(
                    "{} via {}: {:?} {:?}",
                    op.f.name(),
                    who.node,
                    c.kind,
                    c.error
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }
}

impl Target for EtcdTarget {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn launch(&self) -> Arc<dyn Launch> {
        self.launch.clone()
    }

    fn configure<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
    ) -> BoxFuture<'a, anyhow::Result<Arc<dyn Api>>> {
        Box::pin(async move {
            let api: Arc<dyn Api> = Arc::new(self.api);
            let targets = Endpoint::all(cluster, &api);
            self.probe(cluster, &targets).await?;
            Ok(api)
        })
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(GoClock)
    }

    /// Every member holds every key: there is no placement to aim a fault at.
    fn placement(&self, _nodes: &[String]) -> Arc<dyn Placement> {
        Arc::new(UnknownPlacement)
    }

    fn leader(&self) -> Option<Arc<dyn Leader>> {
        Some(Arc::new(EtcdLeader))
    }
}

/// etcd's clock cannot be moved (clock-skew is refused before a run starts; this answers
/// anyone who asks anyway).
struct GoClock;

impl Clock for GoClock {
    fn set_offset<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
        node: &'a str,
        ms: i64,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { Err(format!("clock offset {ms} ms on {node}: {GO_CLOCK}")) })
    }
}

/// The leader, as the members say through `/v3/maintenance/status`.
struct EtcdLeader;

/// How long the leader lookup keeps asking while the members are between leaders (a fault's
/// gap can fall inside the election that follows the previous fault).
const LEADER_WAIT: Duration = Duration::from_secs(2);

impl Leader for EtcdLeader {
    fn leader<'a>(&'a self, cluster: &'a dyn Cluster) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let http = crate::client::http_client();
            let deadline = Instant::now() + LEADER_WAIT;
            loop {
                match leader_of(&http, cluster).await {
                    Ok(l) => return Ok(l),
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("{e} (asked for {} s)", LEADER_WAIT.as_secs()))
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    }
}

/// Ask every member (on its own address, never through a fault) who leads: the member whose
/// id a majority of the members name as their leader.
async fn leader_of(http: &reqwest::Client, cluster: &dyn Cluster) -> Result<String, String> {
    let mut said = Vec::new();
    let mut errors = Vec::new();
    for n in cluster.nodes() {
        let addr = cluster.admin_addr(n);
        match api::post(
            http,
            addr,
            "/v3/maintenance/status",
            &json!({}),
            STATUS_TIMEOUT,
        )
        .await
        {
            Ok((200, body)) => match serde_json::from_slice::<api::StatusResponse>(&body) {
                Ok(s) => said.push((n.clone(), s.header.member_id.0, s.leader.0)),
                Err(e) => errors.push(format!("{n}: status does not decode: {e}")),
            },
            Ok((status, body)) => errors.push(format!(
                "{n}: status answered {status} {}",
                String::from_utf8_lossy(&body).trim()
            )),
            Err(u) => errors.push(format!("{n}: status: {}", u.error)),
        }
    }
    leader_by_majority(cluster.nodes().len(), &said).map_err(|why| {
        if errors.is_empty() {
            why
        } else {
            format!("{why}; {}", errors.join("; "))
        }
    })
}

/// The leader from each answering member's `(node, own id, leader id)` (pure: unit-tested
/// below): the member a majority of the whole cluster names, once its id is known.
pub fn leader_by_majority(members: usize, said: &[(String, u64, u64)]) -> Result<String, String> {
    let ids: BTreeMap<u64, &str> = said.iter().map(|(n, id, _)| (*id, n.as_str())).collect();
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, _, leader) in said {
        if *leader != 0 {
            *votes.entry(*leader).or_default() += 1;
        }
    }
    let views: Vec<String> = said
        .iter()
        .map(|(n, _, l)| match (l, ids.get(l)) {
            (0, _) => format!("{n}: none"),
            (_, Some(m)) => format!("{n}: {m}"),
            (l, None) => format!("{n}: {l:x}"),
        })
        .collect();
    match votes.iter().find(|(_, v)| **v > members / 2) {
        Some((id, _)) => match ids.get(id) {
            Some(node) => Ok(node.to_string()),
            None => Err(format!(
                "the leader {id:x} did not answer, so its member is unknown ({})",
                views.join(", ")
            )),
        },
        None => Err(format!(
            "no leader named by a majority of the {members} members ({})",
            views.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_is_bootstrapped_with_every_peer_url() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let cluster = vec![
            (
                "n1".to_string(),
                vec![a("169.254.3.11:7000"), a("169.254.3.11:7001")],
            ),
            (
                "n2".to_string(),
                vec![a("169.254.3.12:7000"), a("169.254.3.12:7001")],
            ),
        ];
        let v = args("n2", Path::new("/r/data/n2"), &cluster[1].1, &cluster);
        for want in [
            "--name=n2",
            "--data-dir=/r/data/n2/etcd",
            "--listen-client-urls=http://169.254.3.12:7000",
            "--advertise-client-urls=http://169.254.3.12:7000",
            "--listen-peer-urls=http://169.254.3.12:7001",
            "--initial-advertise-peer-urls=http://169.254.3.12:7001",
            "--initial-cluster=n1=http://169.254.3.11:7001,n2=http://169.254.3.12:7001",
            "--initial-cluster-state=new",
        ] {
            assert!(v.iter().any(|x| x == want), "{want} missing from {v:?}");
        }
    }

    #[test]
    fn the_leader_is_the_member_a_majority_names() {
        let s = |n: &str, id: u64, l: u64| (n.to_string(), id, l);
        let all = [s("n1", 11, 22), s("n2", 22, 22), s("n3", 33, 22)];
        assert_eq!(leader_by_majority(3, &all).unwrap(), "n2");
        // A restarted member that knows no leader yet does not stop a majority.
        let one_late = [s("n1", 11, 22), s("n2", 22, 22), s("n3", 33, 0)];
        assert_eq!(leader_by_majority(3, &one_late).unwrap(), "n2");
        let split = [s("n1", 11, 11), s("n2", 22, 22), s("n3", 33, 0)];
        let e = leader_by_majority(3, &split).unwrap_err();
        assert!(
            e.contains("no leader named by a majority") && e.contains("n3: none"),
            "{e}"
        );
        // Named by a majority, but the leader itself did not answer: its node is unknown.
        let e = leader_by_majority(3, &[s("n1", 11, 22), s("n3", 33, 22)]).unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
    }

    #[test]
    fn faults_etcd_cannot_take_say_why() {
        assert_eq!(faults(Fault::Kill), Support::Yes);
        assert_eq!(faults(Fault::Pause), Support::Yes);
        assert!(matches!(
            faults(Fault::Partition),
            Support::Only(BackendKind::Netns, _)
        ));
        match faults(Fault::ClockSkew) {
            Support::No(why) => assert!(why.contains("libfaketime") && why.contains("Go")),
            other => panic!("{other:?}"),
        }
    }
}
