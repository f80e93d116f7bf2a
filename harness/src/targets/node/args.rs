//! `quorate run`'s flags for `--target node`: the preset and every node setting a run may
//! override, passed to each `quorate-node` as its own flags.
//!
//! The harness states none of the node's defaults: a flag left out is left out of the node's
//! command line too, and the node's `--check-config` says what it resolved
//! ([`super::Resolved`]).

use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

/// The node's presets (target-node's `--preset`).
pub const PRESETS: [&str; 5] = ["abd", "lww", "strict", "dynamo", "weak"];

#[derive(Args, Debug, Clone, Serialize)]
pub struct NodeArgs {
    /// Node preset: abd, lww, strict, dynamo, weak (passed to every node).
    #[arg(long, default_value = "strict")]
    pub preset: String,
    /// Replicas per key (passed to every node).
    #[arg(long)]
    pub n: Option<usize>,
    /// Read quorum (passed to every node).
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum (passed to every node).
    #[arg(long)]
    pub w: Option<usize>,
    /// Read repair: off, async, blocking (passed to every node).
    #[arg(long)]
    pub read_repair: Option<String>,
    /// Write mode: lww, two-phase (passed to every node).
    #[arg(long)]
    pub write_mode: Option<String>,
    /// Sloppy quorum with hinted handoff: true/false (passed to every node).
    #[arg(long)]
    pub sloppy_quorum: Option<bool>,
    /// Fsync policy: always, never (passed to every node).
    #[arg(long)]
    pub fsync: Option<String>,
    /// Anti-entropy period in ms (passed to every node; the node's default is 1000).
    #[arg(long)]
    pub anti_entropy_interval_ms: Option<u64>,
    /// Coordinator quorum deadline in ms (passed to every node; default 1000).
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Per-replica call deadline in ms (passed to every node; default 300).
    #[arg(long)]
    pub replica_timeout_ms: Option<u64>,
    /// Virtual nodes per node (passed to every node; default 64).
    #[arg(long)]
    pub vnodes: Option<usize>,
    /// Any other node flag, passed through verbatim: `--node-arg=--handoff-interval-ms=200`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// The quorate-node binary (default: beside this executable).
    #[arg(long, env = "QUORATE_NODE_BIN")]
    pub node_bin: Option<PathBuf>,
}

impl NodeArgs {
    /// `--preset` must be one of the node's, whatever the target (it always was checked).
    pub fn check_preset(&self) -> Result<(), String> {
        if PRESETS.contains(&self.preset.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "--preset {:?}: expected one of {}",
                self.preset,
                PRESETS.join(", ")
            ))
        }
    }

    /// The node flags given explicitly (they mean nothing to another target).
    pub fn given(&self) -> Vec<&'static str> {
        let a = self;
        let mut v = Vec::new();
        let mut given = |set: bool, flag: &'static str| {
            if set {
                v.push(flag)
            }
        };
        given(a.n.is_some(), "--n");
        given(a.r.is_some(), "--r");
        given(a.w.is_some(), "--w");
        given(a.read_repair.is_some(), "--read-repair");
        given(a.write_mode.is_some(), "--write-mode");
        given(a.sloppy_quorum.is_some(), "--sloppy-quorum");
        given(a.fsync.is_some(), "--fsync");
        given(
            a.anti_entropy_interval_ms.is_some(),
            "--anti-entropy-interval-ms",
        );
        given(a.request_timeout_ms.is_some(), "--request-timeout-ms");
        given(a.replica_timeout_ms.is_some(), "--replica-timeout-ms");
        given(a.vnodes.is_some(), "--vnodes");
        given(!a.node_args.is_empty(), "--node-arg");
        v
    }

    /// The flags passed to every node, in a fixed order.
    pub fn node_args(&self) -> Vec<String> {
        let a = self;
        let mut v = vec!["--preset".to_string(), a.preset.clone()];
        let mut push = |flag: &str, val: Option<String>| {
            if let Some(val) = val {
                v.push(format!("--{flag}"));
                v.push(val);
            }
        };
        push("n", a.n.map(|x| x.to_string()));
        push("r", a.r.map(|x| x.to_string()));
        push("w", a.w.map(|x| x.to_string()));
        push("read-repair", a.read_repair.clone());
        push("write-mode", a.write_mode.clone());
        push("sloppy-quorum", a.sloppy_quorum.map(|x| x.to_string()));
        push("fsync", a.fsync.clone());
        push(
            "anti-entropy-interval-ms",
            a.anti_entropy_interval_ms.map(|x| x.to_string()),
        );
        push(
            "request-timeout-ms",
            a.request_timeout_ms.map(|x| x.to_string()),
        );
        push(
            "replica-timeout-ms",
            a.replica_timeout_ms.map(|x| x.to_string()),
        );
        push("vnodes", a.vnodes.map(|x| x.to_string()));
        v.extend(a.node_args.iter().cloned());
        v
    }
}
