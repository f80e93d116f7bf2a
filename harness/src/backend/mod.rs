//! Cluster backends: how nodes are run and how faults reach them, behind one trait.
//!
//! - [`local`]: nodes as child processes on loopback, every link through the harness's own
//!   TCP fault proxy ([`crate::proxy`]); no privileges.
//! - [`netns`]: one network namespace per node, partitions as firewall drops; needs root.
//! - `lazy`: the members' lazyfs mounts when a run has `power-loss` (both backends).
//! - [`ssh`]: one member per host, driven over the system's OpenSSH client through the
//!   [`remote`] seam (execute, upload, download); partitions as nftables rules on the hosts.
//! - [`launch`]: what a target tells a backend about starting one member (program, ports,
//!   what `/health` answers when it is up); each target brings its own (`crate::targets`).
//!
//! The nemesis only ever talks to a [`Cluster`], so another backend (ssh) or another target
//! (etcd) plugs in by implementing it. Methods are synchronous on purpose: signals, directory
//! copies and proxy rule changes are all quick, and a sync trait stays object-safe.

pub mod launch;
pub(crate) mod lazy;
pub mod local;
pub mod netns;
pub(crate) mod procs;
pub mod remote;
pub mod ssh;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

/// How nodes are run and faults injected (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    #[default]
    Local,
    Netns,
    /// One member per host of `--hosts`, over ssh.
    Ssh,
}

impl BackendKind {
    /// The `--backend` name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Netns => "netns",
            BackendKind::Ssh => "ssh",
        }
    }

    /// Whether a run on this backend can do what a target allows only on `only`: `ssh`
    /// gives each member a network identity of its own, as `netns` does.
    pub fn satisfies(self, only: BackendKind) -> bool {
        self == only || (self == BackendKind::Ssh && only == BackendKind::Netns)
    }
}

/// A backend error: always names the node or the tool involved.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

impl BackendError {
    pub fn node(node: &str, message: impl Into<String>) -> BackendError {
        BackendError::Node {
            node: node.to_string(),
            message: message.into(),
        }
    }
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BackendError {
        BackendError::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// What the backend needs to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Node ids, in ring order as the nemesis sees them (`n1`, `n2`, …).
    pub nodes: Vec<String>,
    /// The run folder: `nodes/<id>.log` and `data/<id>/` live under it.
    pub run_dir: PathBuf,
    /// Clients dial nodes directly instead of through the proxy (benchmarks only: client
    /// links then cannot be faulted).
    pub direct_clients: bool,
    /// Route peer connections so links can be delayed and reset (`--backend netns` with
    /// `slow` or `flaky`; the local backend's proxy always can).
    pub link_faults: bool,
    /// Serve each member's data directory from a lazyfs mount, so `power-loss` can drop what
    /// it did not fsync (`--nemesis power-loss`); plain directories otherwise.
    pub power_loss: bool,
}

/// A saved copy of a node's data directory (for stale-restore).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub node: String,
    pub path: PathBuf,
    pub taken: Instant,
}

/// A running cluster. Every fault the nemesis knows is a method here.
pub trait Cluster: Send + Sync {
    fn nodes(&self) -> &[String];
    /// Where clients send a node's ops (through the proxy unless `direct_clients`).
    fn client_addr(&self, node: &str) -> SocketAddr;
    /// The node's own address, for admin calls that must not be partitioned away
    /// (`/admin/clock-offset`, `/digest`, `/health`).
    fn admin_addr(&self, node: &str) -> SocketAddr;

    /// SIGKILL; the data directory stays.
    fn kill(&self, node: &str) -> Result<()>;
    /// Start a killed node again on the same address and data directory, and wait until it
    /// answers `/health`.
    fn restart(&self, node: &str) -> Result<()>;
    /// SIGSTOP.
    fn pause(&self, node: &str) -> Result<()>;
    /// SIGCONT.
    fn resume(&self, node: &str) -> Result<()>;
    /// Copy the node's data directory (call while it is paused, so the copy is consistent).
    fn snapshot(&self, node: &str) -> Result<Snapshot>;
    /// Replace a killed node's data directory with a snapshot.
    fn restore(&self, snap: &Snapshot) -> Result<()>;

    /// Drop all traffic from `from` to `to` (one direction).
    fn drop_traffic(&self, from: &str, to: &str) -> Result<()>;
    /// Restore every link; the cluster is whole again.
    fn heal(&self) -> Result<()>;

    /// Delay the traffic of connections `from` opens to `to` by `delay` per chunk, both ways
    /// (`Duration::ZERO` removes it; [`Cluster::heal`] does too). Backends that cannot delay
    /// packets say so.
    fn delay_traffic(&self, from: &str, to: &str, delay: std::time::Duration) -> Result<()> {
        let _ = delay;
        Err(BackendError::Unsupported(format!(
            "delaying {from} -> {to}: this backend cannot delay links"
        )))
    }

    /// Reset (RST) every open connection `from` has to `to`. Backends that cannot say so.
    fn reset_connections(&self, from: &str, to: &str) -> Result<()> {
        Err(BackendError::Unsupported(format!(
            "resetting {from} -> {to}: this backend cannot reset connections"
        )))
    }

    /// Cut a killed member's power: its data directory (a lazyfs mount) drops everything the
    /// member did not fsync and is mounted again over what was durable; returns what was
    /// dropped. [`Cluster::restart`] then starts it on that. Only on a cluster started with
    /// [`ClusterSpec::power_loss`].
    fn power_cut(&self, node: &str) -> Result<crate::lazyfs::model::Unsynced> {
        Err(BackendError::Unsupported(format!(
            "power loss on {node}: this backend has no lazyfs mounts"
        )))
    }

    /// Make everything the members wrote so far durable on their lazyfs mounts (a checkpoint
    /// after the target's set-up, as Jepsen does with lazyfs); nothing to do without mounts.
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    /// A file the member's command named was rewritten here (libfaketime's offset file):
    /// backends whose members see another file system copy it across. Others need nothing.
    fn sync_file(&self, node: &str, local: &std::path::Path) -> Result<()> {
        let _ = (node, local);
        Ok(())
    }

    /// Stop everything, kill and reap every process, remove every rule. Idempotent.
    fn shutdown(&self);
}

/// Node ids for a cluster of `n`: `n1` … `nN`.
pub fn node_ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}
