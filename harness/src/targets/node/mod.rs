//! The reference node as a target like any other: its flags ([`args`]), its launch (below),
//! its HTTP API and admin clock call ([`api`]), its ring placement ([`ring`]), and the
//! observations only it allows — replica digests ([`digest`]) and repair counters
//! ([`stats`]).
//!
//! Before anything starts, [`NodeSpec::prepare`] finds the binary and asks it
//! (`quorate-node … --check-config`) whether it accepts the flags, and what they resolve to:
//! the harness restates none of the node's defaults.

pub mod api;
pub mod args;
pub mod digest;
pub mod ring;
pub mod stats;

pub use args::{NodeArgs, PRESETS};

use super::{
    Api, BoxFuture, Capabilities, Clock, Common, Observer, Placement, Spec, Support, Target,
    TargetKind,
};
use crate::backend::launch::{Launch, Member};
use crate::backend::Cluster;
use crate::nemesis::Fault;
use crate::recorder::Recorder;
use quorate_workloads::OpKind;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// The node speaks every op, takes every fault on every backend, and exposes `/digest` and
/// `/stats`.
pub static CAPS: Capabilities = Capabilities {
    name: "node",
    ops: &[OpKind::Read, OpKind::Write, OpKind::Cas],
    ops_why: "speaks every op",
    faults,
    observer: Some(|| Arc::new(NodeObserver)),
    equivalents: "the node's deadlines are --request-timeout-ms and --replica-timeout-ms",
    flags_are: "a quorate-node flag, but --target is not node",
};

fn faults(f: Fault) -> Support {
    match f {
        Fault::Reconfigure => Support::No(
            "the node's ring is fixed: its members and their places on it are set when the \
             cluster starts (--nodes, --vnodes), and no call changes them while it runs",
        ),
        _ => Support::Yes,
    }
}

/// What `--check-config` resolved that the harness needs: the ring's shape (to aim faults at
/// a key's home nodes) and the anti-entropy period (the default quiet period outlasts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Resolved {
    pub n: usize,
    pub vnodes: usize,
    pub anti_entropy_interval_ms: u64,
}

/// The node's validated flags, and once prepared, its binary and resolved settings.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// `--preset` (it names the run).
    pub preset: String,
    /// The flags passed to every node after `--id --listen --peers --data-dir`.
    pub args: Vec<String>,
    /// `--node-bin` / `QUORATE_NODE_BIN`.
    bin_flag: Option<PathBuf>,
    /// Set by [`NodeSpec::prepare`].
    ready: Option<Ready>,
}

#[derive(Debug, Clone)]
struct Ready {
    bin: PathBuf,
    resolved: Resolved,
}

impl NodeSpec {
    /// Check the node flags the harness itself relies on (no I/O: the rest is the node's own
    /// to judge, at [`NodeSpec::prepare`]; `--preset` is checked for every target, by the
    /// plan).
    pub fn new(a: &NodeArgs, common: Common) -> Result<NodeSpec, String> {
        if let Some(n) = a.n {
            if n > common.nodes {
                return Err(n_too_large(n, common.nodes));
            }
        }
        Ok(NodeSpec {
            preset: a.preset.clone(),
            args: a.node_args(),
            bin_flag: a.node_bin.clone(),
            ready: None,
        })
    }

    /// What the node resolved the flags to, once prepared.
    pub fn resolved(&self) -> Option<Resolved> {
        self.ready.as_ref().map(|r| r.resolved)
    }
}

impl Spec for NodeSpec {
    fn kind(&self) -> TargetKind {
        TargetKind::Node
    }

    /// Find the binary and have it check the flags for a cluster of `nodes`; keep what they
    /// resolve to.
    fn prepare(&mut self, nodes: &[String]) -> Result<(), String> {
        let bin = find_node_bin(self.bin_flag.as_deref())?;
        // The replicas per key the flags resolve to, asked of the node on a cluster as large as
        // a run may have, so a default N beyond this run's cluster is refused in the harness's
        // words as an explicit `--n` is, rather than as the node's "cluster size" error.
        let widest = crate::backend::node_ids(64);
        let wide = check_node_config(&bin, &widest, &self.args)?;
        if wide.n > nodes.len() {
            return Err(n_too_large(wide.n, nodes.len()));
        }
        let resolved = check_node_config(&bin, nodes, &self.args)?;
        self.ready = Some(Ready { bin, resolved });
        Ok(())
    }

    fn run_name(&self) -> String {
        format!("node-{}", self.preset)
    }

    /// `quorate-node --version`, or `null` when it is not known.
    fn version(&self) -> (&'static str, Value) {
        let version = self.ready.as_ref().and_then(|r| {
            Command::new(&r.bin)
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| json!(String::from_utf8_lossy(&o.stdout).trim().to_string()))
        });
        ("quorate-node", version.unwrap_or(Value::Null))
    }

    /// Outlast three anti-entropy rounds, plus slack for a busy machine.
    fn default_quiet(&self) -> Duration {
        let ae = self.resolved().map_or(0, |r| r.anti_entropy_interval_ms);
        Duration::from_millis(3 * ae + 2000)
    }

    fn build(&self, _run_dir: &Path) -> Result<Arc<dyn Target>, String> {
        Ok(Arc::new(NodeTarget::new(self)?))
    }
}

/// More replicas per key than the cluster has members.
fn n_too_large(n: usize, nodes: usize) -> String {
    format!(
        "--n {n} is larger than --nodes {nodes}: a key cannot have more replicas than the \
         cluster has nodes"
    )
}

/// Find the `quorate-node` binary: `--node-bin`/`QUORATE_NODE_BIN` first, then beside the
/// running executable, then its parent (integration tests run from `target/<profile>/deps`).
pub fn find_node_bin(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let missing = |what: String| format!("node binary not found: {what}");
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(missing(format!(
                "{} (from --node-bin / QUORATE_NODE_BIN) is not a file",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
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
    Err(missing(format!(
        "looked in {}; build it with `cargo build -p quorate-node` or pass --node-bin PATH",
        tried.join(", ")
    )))
}

/// Ask the node binary whether it accepts `node_args` for a cluster of `nodes`
/// (`quorate-node … --check-config`: validates and exits, opening and binding nothing), so a
/// refused configuration stops the run before anything starts, in the node's own words; and
/// what it resolved them to (the line after `configuration ok`).
pub fn check_node_config(
    node_bin: &Path,
    nodes: &[String],
    node_args: &[String],
) -> Result<Resolved, String> {
    let first = nodes.first().map(String::as_str).unwrap_or("n1");
    // Placeholder addresses: nothing is dialled or bound by --check-config.
    let peers: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}=127.0.0.1:{}", 1 + i))
        .collect();
    let out = Command::new(node_bin)
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
        .map_err(|e| format!("run {} --check-config: {e}", node_bin.display()))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(format!(
            "node configuration refused: {} refused the node flags {:?} ({}): {said}",
            node_bin.display(),
            node_args.join(" "),
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().nth(1).unwrap_or("");
    serde_json::from_str(line).map_err(|e| {
        format!(
            "{} --check-config: expected `configuration ok` and the resolved configuration as \
             a JSON line, got {:?}: {e}",
            node_bin.display(),
            stdout.trim()
        )
    })
}

/// `quorate-node --id ID --listen ADDR --peers ID=ADDR,… --data-dir DIR [node flags]`.
#[derive(Debug, Clone)]
pub struct NodeLaunch {
    pub bin: PathBuf,
    pub args: Vec<String>,
}

impl Launch for NodeLaunch {
    fn command(&self, m: &Member) -> std::io::Result<Command> {
        let peers: Vec<String> = m.peers.iter().map(|(p, a)| format!("{p}={a}")).collect();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--id")
            .arg(m.id)
            .arg("--listen")
            .arg(m.addrs[0].to_string())
            .arg("--peers")
            .arg(peers.join(","))
            .arg("--data-dir")
            .arg(m.data_dir)
            .args(&self.args);
        Ok(cmd)
    }

    fn program(&self) -> PathBuf {
        self.bin.clone()
    }
}

/// `--target node`: ready as soon as every node answers `/health`, needing no joining (each
/// knows the cluster from `--peers`).
pub struct NodeTarget {
    bin: PathBuf,
    args: Vec<String>,
    resolved: Resolved,
}

impl NodeTarget {
    /// The target of a prepared spec ([`NodeSpec::prepare`]).
    pub fn new(spec: &NodeSpec) -> Result<NodeTarget, String> {
        let r = spec.ready.as_ref().ok_or_else(|| {
            "the node target was built before its binary was found and its flags checked \
             (NodeSpec::prepare)"
                .to_string()
        })?;
        Ok(NodeTarget {
            bin: r.bin.clone(),
            args: spec.args.clone(),
            resolved: r.resolved,
        })
    }
}

impl Target for NodeTarget {
    fn name(&self) -> &'static str {
        CAPS.name
    }

    fn launch(&self) -> Arc<dyn Launch> {
        Arc::new(NodeLaunch {
            bin: self.bin.clone(),
            args: self.args.clone(),
        })
    }

    fn configure<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
    ) -> BoxFuture<'a, anyhow::Result<Arc<dyn Api>>> {
        Box::pin(async { Ok(Arc::new(api::NodeApi) as Arc<dyn Api>) })
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(api::AdminClock::new())
    }

    fn placement(&self, nodes: &[String]) -> Arc<dyn Placement> {
        Arc::new(ring::Ring::new(
            nodes,
            self.resolved.vnodes,
            self.resolved.n,
        ))
    }
}

/// `/digest` (and `/digest/keys`) for convergence, `/stats` for repairs.
struct NodeObserver;

impl Observer for NodeObserver {
    fn convergence<'a>(
        &'a self,
        cluster: &'a Arc<dyn Cluster>,
        rec: &'a Recorder,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move { digest::observe(cluster, rec).await.converged() })
    }

    fn stats<'a>(
        &'a self,
        cluster: &'a Arc<dyn Cluster>,
    ) -> BoxFuture<'a, BTreeMap<String, Value>> {
        Box::pin(async move { stats::fetch(cluster, &crate::client::http_client()).await })
    }

    fn repairs(&self, stats: &BTreeMap<String, Value>) -> Value {
        stats::repairs(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_declares_every_fault_but_reconfigure_and_every_op() {
        for f in Fault::ALL {
            let yes = (CAPS.faults)(f) == Support::Yes;
            assert_eq!(yes, f != Fault::Reconfigure, "{f:?}");
        }
        assert_eq!(CAPS.ops.len(), 3);
        assert!(CAPS.observer.is_some());
    }
}
