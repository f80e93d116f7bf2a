//! Garage (<https://garagehq.deuxfleurs.fr>) as a target: a leaderless, S3-compatible object
//! store no one here wrote. Every member takes requests, each object lives on
//! `replication_factor` members, reads and writes wait for quorums, the newest timestamp wins.
//!
//! Each member is a `garage -c <run>/garage/<id>.toml server` process listening on three
//! ports — S3 (where clients go), RPC (its peers), admin (health, set-up) — with its metadata
//! and data under the run's `data/<id>/`, one shared `rpc_secret` and admin token (drawn from
//! the seed), `replication_factor` from `--garage-replication` (3 unless given) and
//! `consistency_mode` from `--garage-consistency`.
//! Members find each other after they start (set-up in [`admin`]): a Garage node
//! id is a public key created at first start, so it cannot be in a config written before.
//!
//! Faults: kill and pause as for the node (the backend's signals); partitions only on the
//! `netns` backend (members dial the RPC address each peer advertises, so a proxy listener
//! per directed link cannot tell senders apart — its [`CAPS`] say so, and `local` refuses it);
//! clock skew through libfaketime ([`crate::targets::faketime`]), preloaded only when
//! `clock-skew` is in `--nemesis`; membership changes (`reconfigure`) through its layout
//! ([`layout`]). Garage keeps its own layout, so no fault aims at a key's home members, and it
//! exposes neither per-replica digests nor repair counters.
//!
//! Files: [`config`] (flags, validation, the binary), [`admin`] (set-up over the admin API),
//! [`layout`] (membership changes), [`s3`] (the client API).

pub mod admin;
pub mod config;
pub mod layout;
pub mod s3;

pub use config::{Consistency, GarageArgs, GarageConfig, GarageSpec};

use crate::backend::launch::{Launch, Member};
use crate::backend::{BackendKind, Cluster};
use crate::client::Endpoint;
use crate::nemesis::Fault;
use crate::targets::faketime::{self, Faketime};
use crate::targets::{
    Api, BoxFuture, Capabilities, Clock, Membership, Placement, Spec, Support, Target, TargetKind,
    UnknownPlacement,
};
use admin::{Admin, AdminMember};
use anyhow::{bail, Context};
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use s3::S3Api;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What Garage speaks and supports.
pub static CAPS: Capabilities = Capabilities {
    name: "garage",
    ops: &[OpKind::Read, OpKind::Write],
    ops_why: "speaks S3, which has no compare-and-set (PutObject overwrites)",
    faults,
    observer: None,
    equivalents: "Garage's quorums come from --garage-consistency",
    flags_are: "a --target garage flag",
};

fn faults(f: Fault) -> Support {
    const DIALS_ADVERTISED: &str = "its members dial the RPC addresses their peers advertise, \
                                    so the local backend's proxy (one listener per directed \
                                    link) cannot tell senders apart";
    match f {
        Fault::Partition | Fault::Slow | Fault::Flaky => {
            Support::Only(BackendKind::Netns, DIALS_ADVERTISED)
        }
        Fault::StaleRestore => {
            Support::No("it aims at the node's ring and copies the node's data directory")
        }
        Fault::Kill | Fault::Pause | Fault::ClockSkew | Fault::PowerLoss | Fault::Reconfigure => {
            Support::Yes
        }
    }
}

/// Garage repairs on read and has no anti-entropy period to outlast.
pub const DEFAULT_QUIET: Duration = Duration::from_secs(5);

impl Spec for GarageSpec {
    fn kind(&self) -> TargetKind {
        TargetKind::Garage
    }

    fn prepare(&mut self, _nodes: &[String]) -> Result<(), String> {
        GarageSpec::prepare(self).map(|_| ())
    }

    fn run_name(&self) -> String {
        format!("garage-{}", self.consistency.name())
    }

    fn version(&self) -> (&'static str, serde_json::Value) {
        let v = self.ready.as_ref().map(|c| json!(c.version));
        ("garage", v.unwrap_or(serde_json::Value::Null))
    }

    fn default_quiet(&self) -> Duration {
        DEFAULT_QUIET
    }

    fn build(&self, run_dir: &Path) -> Result<Arc<dyn Target>, String> {
        let cfg = self.ready.clone().ok_or_else(|| {
            "the garage target was built before its binary was found (GarageSpec::prepare)"
                .to_string()
        })?;
        Ok(Arc::new(GarageTarget::new(cfg, run_dir)))
    }
}

/// The bucket every client uses.
pub const BUCKET: &str = "quorate";
/// The S3 region the members accept.
pub const REGION: &str = "garage";
/// Copies of each object unless `--garage-replication` says otherwise.
pub const REPLICATION: usize = 3;
/// Port order within a member ([`Launch::ports`]).
const S3_PORT: usize = 0;
pub(crate) const RPC_PORT: usize = 1;
const ADMIN_PORT: usize = 2;

/// A member's `garage.toml` (pure: unit-tested below). `peers` (`<id>@<rpc address>` of the
/// others) is empty at first start, when no node id exists yet.
pub fn render_toml(
    cfg: &GarageConfig,
    data_dir: &Path,
    addrs: &[SocketAddr],
    peers: &[String],
) -> String {
    let q = |p: &Path| toml_string(&p.display().to_string());
    let peers: Vec<String> = peers.iter().map(|p| toml_string(p)).collect();
    format!(
        "# Written by quorate for one member of a test cluster.\n\
         metadata_dir = {meta}\n\
         data_dir = {data}\n\
         db_engine = \"lmdb\"\n\
         {replication}\
         rpc_bind_addr = \"{rpc}\"\n\
         rpc_public_addr = \"{rpc}\"\n\
         rpc_secret = \"{secret}\"\n\
         bootstrap_peers = [{peers}]\n\
         {rpc_timeout}\
         {fsync}\
         \n\
         [s3_api]\n\
         api_bind_addr = \"{s3}\"\n\
         s3_region = \"{REGION}\"\n\
         \n\
         [admin]\n\
         api_bind_addr = \"{admin}\"\n\
         admin_token = \"{token}\"\n",
        meta = q(&data_dir.join("meta")),
        data = q(&data_dir.join("data")),
        replication = match cfg.replication_mode {
            // Garage 0.9: one setting for both.
            Some(mode) => format!("replication_mode = \"{mode}\"\n"),
            None => format!(
                "replication_factor = {}\nconsistency_mode = \"{}\"\n",
                cfg.replication,
                cfg.consistency.name()
            ),
        },
        rpc = addrs[RPC_PORT],
        secret = cfg.rpc_secret,
        s3 = addrs[S3_PORT],
        admin = addrs[ADMIN_PORT],
        token = cfg.admin_token,
        peers = peers.join(", "),
        rpc_timeout = cfg
            .rpc_timeout_ms
            .map(|ms| format!("rpc_timeout_msec = {ms}\n"))
            .unwrap_or_default(),
        fsync = if cfg.fsync {
            "metadata_fsync = true\ndata_fsync = true\n"
        } else {
            ""
        },
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How the backends start garage members; remembers where each one listens.
struct GarageLaunch {
    cfg: GarageConfig,
    dir: PathBuf,
    faketime: Option<Faketime>,
    addrs: Arc<Mutex<BTreeMap<String, Vec<SocketAddr>>>>,
    /// Set once the layout is applied (see [`Launch::serving`] below).
    configured: Arc<AtomicBool>,
    /// Every member's `<id>@<rpc address>`, known after set-up.
    peers: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Launch for GarageLaunch {
    fn ports(&self) -> usize {
        3
    }

    fn admin_port(&self) -> usize {
        ADMIN_PORT
    }

    fn proxied_peers(&self) -> bool {
        false
    }

    fn command(&self, m: &Member) -> std::io::Result<Command> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(&self.dir)?;
        let toml = self.dir.join(format!("{}.toml", m.id));
        // The file holds the RPC secret and the admin token: owner-only.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&toml)?;
        // A restarted member does not dial its peers again by itself (it waits for them to
        // redial, up to a minute): after set-up its config names them.
        let peers: Vec<String> = self
            .peers
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n.as_str() != m.id)
            .map(|(_, p)| p.clone())
            .collect();
        let text = render_toml(&self.cfg, m.data_dir, m.addrs, &peers);
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        let mut cmd = Command::new(&self.cfg.bin);
        cmd.arg("-c")
            .arg(&toml)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .env("RUST_BACKTRACE", "1");
        if let Some(ft) = &self.faketime {
            ft.prepare(m.id, &mut cmd)?;
        }
        self.addrs
            .lock()
            .unwrap()
            .insert(m.id.to_string(), m.addrs.to_vec());
        Ok(cmd)
    }

    /// Before set-up, any answer: `/health` is 503 until the layout is applied, which set-up
    /// does once every member answers. After it (a member restarted after a kill), 200: the
    /// member has reconnected to enough peers for quorum. A restarted member serves S3 at once
    /// but answers every request `503 Could not reach quorum` until its peers are back, and
    /// the next fault should start on a whole cluster, as it does for the node.
    fn serving(&self, status: u16) -> bool {
        if self.configured.load(Ordering::Relaxed) {
            status == 200
        } else {
            (100..600).contains(&status)
        }
    }

    fn program(&self) -> PathBuf {
        self.cfg.bin.clone()
    }
}

/// `--target garage`: its launch, whose state (addresses, peers, whether set up) set-up fills
/// in and later restarts read.
pub struct GarageTarget {
    launch: Arc<GarageLaunch>,
}

impl GarageTarget {
    pub fn new(cfg: GarageConfig, run_dir: &Path) -> GarageTarget {
        let faketime = cfg
            .libfaketime
            .clone()
            .map(|lib| Faketime::new(lib, run_dir.join("clock")));
        GarageTarget {
            launch: Arc::new(GarageLaunch {
                cfg,
                dir: run_dir.join("garage"),
                faketime,
                addrs: Arc::default(),
                configured: Arc::default(),
                peers: Arc::default(),
            }),
        }
    }

    /// Write through each member and read back through every member until all agree, so the
    /// run starts on a cluster that serves S3 everywhere (bucket and key known to all).
    async fn probe(&self, targets: &[Endpoint]) -> anyhow::Result<()> {
        let http = crate::client::http_client();
        let deadline = Instant::now() + admin::SETUP_TIMEOUT;
        for (i, t) in targets.iter().enumerate() {
            let key = format!("quorate-probe-{}", t.node);
            let value = json!(i);
            let write = OpSpec {
                f: OpKind::Write,
                key: key.clone(),
                value: value.clone(),
            };
            let read = OpSpec {
                f: OpKind::Read,
                key,
                value: serde_json::Value::Null,
            };
            let mut pending: Vec<&Endpoint> = targets.iter().collect();
            let mut written = false;
            let mut last = String::new();
            while !pending.is_empty() {
                if Instant::now() >= deadline {
                    bail!(
                        "S3 probe: {} not served within {} s; last: {last}",
                        read.key,
                        admin::SETUP_TIMEOUT.as_secs()
                    );
                }
                if !written {
                    let c = t
                        .api
                        .execute(&http, t, &write, Duration::from_secs(5))
                        .await;
                    written = c.kind == EventType::Ok;
                    last = format!("PutObject via {}: {:?} {:?}", t.node, c.kind, c.error);
                } else {
                    let r = pending[0];
                    let c = r.api.execute(&http, r, &read, Duration::from_secs(5)).await;
                    if c.kind == EventType::Ok && c.value == value {
                        pending.remove(0);
                        continue;
                    }
                    last = format!(
                        "GetObject via {}: {:?} {:?} {}",
                        r.node, c.kind, c.error, c.value
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }
}

impl Target for GarageTarget {
    fn name(&self) -> &'static str {
        "garage"
    }

    fn launch(&self) -> Arc<dyn Launch> {
        self.launch.clone()
    }

    fn configure<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
    ) -> BoxFuture<'a, anyhow::Result<Arc<dyn Api>>> {
        Box::pin(async move {
            let l = &self.launch;
            let addrs = l.addrs.lock().unwrap().clone();
            let members: Vec<AdminMember> = cluster
                .nodes()
                .iter()
                .map(|n| AdminMember {
                    node: n.clone(),
                    admin: cluster.admin_addr(n),
                    rpc: addrs[n][RPC_PORT],
                })
                .collect();
            let admin = Admin::new(&l.cfg.admin_token, l.cfg.generation);
            let created = admin::setup(&admin, &members)
                .await
                .context("setting up the garage cluster (see nodes/<id>.log)")?;
            *l.peers.lock().unwrap() = cluster
                .nodes()
                .iter()
                .cloned()
                .zip(created.peers.iter().cloned())
                .collect();
            tracing::info!(
                key = %created.access_key_id,
                bucket = %created.bucket_id,
                "garage: layout applied, key and bucket created"
            );
            let api = Arc::new(S3Api {
                bucket: BUCKET.to_string(),
                region: REGION.to_string(),
                credentials: rusty_s3::Credentials::new(
                    created.access_key_id,
                    created.secret_access_key,
                ),
            });
            let api: Arc<dyn Api> = api;
            let targets = Endpoint::all(cluster, &api);
            self.probe(&targets).await?;
            l.configured.store(true, Ordering::Relaxed);
            Ok(api)
        })
    }

    fn clock(&self) -> Arc<dyn Clock> {
        match &self.launch.faketime {
            Some(f) => Arc::new(f.clone()),
            None => Arc::new(NoFaketime),
        }
    }

    fn placement(&self, _nodes: &[String]) -> Arc<dyn Placement> {
        Arc::new(UnknownPlacement)
    }

    fn membership(&self) -> Option<Arc<dyn Membership>> {
        Some(Arc::new(layout::GarageMembership {
            admin: Admin::with_timeout(
                &self.launch.cfg.admin_token,
                self.launch.cfg.generation,
                layout::CALL_LIMIT,
            ),
            apply: Admin::with_timeout(
                &self.launch.cfg.admin_token,
                self.launch.cfg.generation,
                layout::APPLY_LIMIT,
            ),
            peers: self.launch.peers.clone(),
            addrs: self.launch.addrs.clone(),
        }))
    }
}

/// The clock of members started without libfaketime (it is preloaded only when `clock-skew`
/// is in `--nemesis`): there is no way to move it, and saying so is the only honest answer.
struct NoFaketime;

impl Clock for NoFaketime {
    fn set_offset<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
        node: &'a str,
        ms: i64,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            Err(format!(
                "clock offset {ms} ms on {node}: the members were started without libfaketime \
                 (preloaded only when clock-skew is in --nemesis)"
            ))
        })
    }
}

impl Drop for GarageTarget {
    /// Runs after the cluster is down: libfaketime leaves files behind for killed members.
    fn drop(&mut self) {
        if self.launch.faketime.is_some() {
            let removed = faketime::sweep_shm();
            if !removed.is_empty() {
                tracing::info!(?removed, "faketime: removed shared memory of dead members");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GarageConfig {
        GarageConfig {
            bin: "/bin/garage".into(),
            version: "garage v2".into(),
            generation: config::Generation::V2,
            replication_mode: None,
            consistency: Consistency::Dangerous,
            rpc_secret: "ab".repeat(32),
            admin_token: "tok".into(),
            libfaketime: None,
            rpc_timeout_ms: Some(1500),
            fsync: true,
            replication: 2,
        }
    }

    #[test]
    fn the_config_names_every_address_and_the_mode() {
        let addrs: Vec<SocketAddr> = [
            "169.254.3.11:7000",
            "169.254.3.11:7001",
            "169.254.3.11:7002",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let peers = ["ab@169.254.3.12:7001".to_string()];
        let t = render_toml(&cfg(), Path::new("/r/data/n1"), &addrs, &peers);
        for line in [
            "metadata_dir = \"/r/data/n1/meta\"",
            "data_dir = \"/r/data/n1/data\"",
            "replication_factor = 2",
            "consistency_mode = \"dangerous\"",
            "rpc_bind_addr = \"169.254.3.11:7001\"",
            "rpc_public_addr = \"169.254.3.11:7001\"",
            "api_bind_addr = \"169.254.3.11:7000\"",
            "s3_region = \"garage\"",
            "api_bind_addr = \"169.254.3.11:7002\"",
            "admin_token = \"tok\"",
            "bootstrap_peers = [\"ab@169.254.3.12:7001\"]",
            "rpc_timeout_msec = 1500",
            "metadata_fsync = true",
            "data_fsync = true",
        ] {
            assert!(t.lines().any(|l| l == line), "{line:?} missing from\n{t}");
        }
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert!(!t.contains("replication_mode"), "{t}");
    }

    #[test]
    fn garage_0_9_reads_replication_mode_and_no_consistency_mode() {
        let addrs: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let old = GarageConfig {
            generation: config::Generation::V0_9,
            replication_mode: Some("2-dangerous"),
            ..cfg()
        };
        let t = render_toml(&old, Path::new("/r"), &addrs, &[]);
        assert!(
            t.lines().any(|l| l == "replication_mode = \"2-dangerous\""),
            "{t}"
        );
        assert!(!t.contains("consistency_mode"), "{t}");
        assert!(!t.contains("replication_factor"), "{t}");
    }
}
