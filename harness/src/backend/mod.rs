//! Cluster backends: how nodes are run and how faults reach them, behind one trait.
//!
//! - [`local`]: nodes as child processes on loopback, every link through the harness's own
//!   TCP fault proxy ([`crate::proxy`]); no privileges.
//! - [`netns`]: one network namespace per node, partitions as firewall drops; needs root.
//! - [`launch`]: what a target tells a backend about starting one member (program, ports,
//!   what `/health` answers when it is up); `quorate-node`'s is the default.
//!
//! The nemesis only ever talks to a [`Cluster`], so another backend (ssh) or another target
//! (etcd) plugs in by implementing it. Methods are synchronous on purpose: signals, directory
//! copies and proxy rule changes are all quick, and a sync trait stays object-safe.

pub mod launch;
pub mod local;
pub mod netns;
mod procs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

/// The system under test (`--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Node,
    Etcd,
    Garage,
}

/// How nodes are run and faults injected (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    #[default]
    Local,
    Netns,
}

/// A backend error: always names the node or the tool involved.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("node binary not found: {0}")]
    NodeBinary(String),
    #[error("node configuration refused: {0}")]
    NodeConfig(String),
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
    /// The node program.
    pub node_bin: PathBuf,
    /// Flags passed to every node after `--id --listen --peers --data-dir`.
    pub node_args: Vec<String>,
    /// The run folder: `nodes/<id>.log` and `data/<id>/` live under it.
    pub run_dir: PathBuf,
    /// Clients dial nodes directly instead of through the proxy (benchmarks only: client
    /// links then cannot be faulted).
    pub direct_clients: bool,
    /// Route peer connections so links can be delayed and reset (`--backend netns` with
    /// `slow` or `flaky`; the local backend's proxy always can).
    pub link_faults: bool,
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

    /// Stop everything, kill and reap every process, remove every rule. Idempotent.
    fn shutdown(&self);
}

/// Node ids for a cluster of `n`: `n1` … `nN`.
pub fn node_ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

/// Find the `quorate-node` binary: `--node-bin`/`QUORATE_NODE_BIN` first, then beside the
/// running executable, then its parent (integration tests run from `target/<profile>/deps`).
pub fn find_node_bin(explicit: Option<&std::path::Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(BackendError::NodeBinary(format!(
                "{} (from --node-bin / QUORATE_NODE_BIN) is not a file",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(|e| BackendError::io("current_exe", e))?;
    let mut tried = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let cand = d.join("quorate-node");
        if cand.is_file() {
            return Ok(cand);
        }
        tried.push(cand.display().to_string());
        dir = d.parent();
    }
    Err(BackendError::NodeBinary(format!(
        "looked in {}; build it with `cargo build -p quorate-node` or pass --node-bin PATH",
        tried.join(", ")
    )))
}

/// Ask the node binary whether it accepts `node_args` for a cluster of `nodes`
/// (`quorate-node … --check-config`: validates and exits, opening and binding nothing), so a
/// refused configuration stops the run before anything starts, in the node's own words.
pub fn check_node_config(
    node_bin: &std::path::Path,
    nodes: &[String],
    node_args: &[String],
) -> Result<()> {
    let first = nodes.first().map(String::as_str).unwrap_or("n1");
    // Placeholder addresses: nothing is dialled or bound by --check-config.
    let peers: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}=127.0.0.1:{}", 1 + i))
        .collect();
    let out = std::process::Command::new(node_bin)
        .arg("--id")
        .arg(first)
        .arg("--listen")
        .arg("127.0.0.1:1")
        .arg("--peers")
        .arg(peers.join(","))
        .arg("--data-dir")
        .arg(std::env::temp_dir().join("quorate-check-config"))
        .args(node_args)
        .arg("--check-config")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| BackendError::io(format!("run {} --check-config", node_bin.display()), e))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(BackendError::NodeConfig(format!(
        "{} refused the node flags {:?} ({}): {said}",
        node_bin.display(),
        node_args.join(" "),
        out.status
    )))
}
