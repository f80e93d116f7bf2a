//! The system under test (`--target`): how to start, configure, address and stop its cluster,
//! which ops its clients speak, and which faults it supports.
//!
//! - [`node`]: the reference `quorate-node` (the default; the harness's long-standing
//!   behaviour, unchanged).
//! - [`garage`]: Garage, a third-party S3 store: `garage server` per member, joined into one
//!   layout over its admin API ([`garage_admin`]), clients speaking S3 ([`s3`]).
//! - [`faketime`]: clock skew for a target that cannot be told its clock is off: libfaketime
//!   preloaded into each member with an offset file the nemesis rewrites.
//!
//! A backend runs the processes ([`crate::backend::launch::Launch`] says how); a [`Target`]
//! adds what is specific to the store: its launch, the set-up after every member is up, the
//! [`Api`] clients speak and the [`Clock`] the clock-skew fault moves. [`check`] refuses, before
//! anything starts, a combination the target cannot honour (a fault it does not support, an op
//! its API has no equivalent for), naming the flag.

pub mod faketime;
pub mod garage;
pub mod garage_admin;
pub mod node;
pub mod s3;

pub use crate::backend::Target as Kind;

use crate::backend::launch::Launch;
use crate::backend::{BackendKind, Cluster, ClusterSpec};
use crate::client::{Completion, Target as Member};
use crate::nemesis::Fault;
use quorate_workloads::{OpKind, OpSpec};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, so the traits below stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request that did not succeed, as a client records it: `info` (no answer: a timeout, a
/// broken connection, a 5xx) or `fail` (the store refused before acting), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unanswered {
    pub kind: quorate_checker::history::EventType,
    pub error: String,
}

/// What a client speaks to a member, when it is not the node's own HTTP API (which
/// [`crate::client::execute`] speaks itself). Outcomes follow INTERFACES.md's rules.
pub trait Api: Send + Sync + std::fmt::Debug {
    /// Send one op to `member` and classify its outcome, within `timeout`.
    fn execute<'a>(
        &'a self,
        http: &'a reqwest::Client,
        member: &'a Member,
        op: &'a OpSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, Completion>;

    /// Every key under `prefix` on `member`, all of the listing (a set read: the set workload
    /// keeps one object per element under [`quorate_workloads::set::set_prefix`]). `Ok` only
    /// when the whole listing came back; otherwise the outcome a read that did not answer
    /// completes with (`info` or `fail`, by INTERFACES.md's rules), never a partial list.
    /// Bounded by `timeout` per request.
    fn list<'a>(
        &'a self,
        http: &'a reqwest::Client,
        member: &'a Member,
        prefix: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, Unanswered>>;
}

/// Moves a member's wall clock (the `clock-skew` fault), for targets that have no admin call
/// for it. Blocking and quick (a file write).
pub trait Clock: Send + Sync {
    /// Set `node`'s clock to run `ms` milliseconds off the real one (0: back to true time).
    fn set_offset(&self, node: &str, ms: i64) -> Result<(), String>;
}

/// A system under test, as the runner sees it.
pub trait Target: Send + Sync {
    /// The `--target` name (`node`, `garage`).
    fn name(&self) -> &'static str;
    /// How the backend starts each member.
    fn launch(&self, spec: &ClusterSpec) -> Arc<dyn Launch>;
    /// Once every member serves: join them into one working cluster (bounded in time).
    fn configure<'a>(&'a self, cluster: &'a dyn Cluster) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Whether keys live where the harness's copy of the node's ring says (faults aimed at a
    /// key's home nodes need it); a target with its own placement says no.
    fn places_keys_by_ring(&self) -> bool;
    /// The API clients speak; `None` for the node's own.
    fn api(&self) -> Option<Arc<dyn Api>>;
    /// How `clock-skew` moves a member's clock; `None` for the node's admin call.
    fn clock(&self) -> Option<Arc<dyn Clock>>;
}

/// The `--target` name of a store that is not the node (and so has none of the node's admin
/// routes, `/digest` and `/stats`); `None` for the node.
fn third_party(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Node => None,
        Kind::Garage => Some("garage"),
        Kind::Etcd => Some("etcd"),
    }
}

/// Why a run of `kind` does not observe convergence, as its results' `convergence` entry
/// says; `None` when it does. The observation compares each replica's digest of every key
/// (the node's `/digest`); a target that exposes no per-replica digest cannot be observed, so
/// its convergence is not measured at all — not "not observed because the run stopped".
pub fn convergence_unmeasured(kind: Kind) -> Option<String> {
    let name = third_party(kind)?;
    Some(format!(
        "--target {name} exposes no per-replica digest (the node's /digest, which the \
         convergence observation compares replica by replica), so convergence was not measured"
    ))
}

/// Why a run of `kind` reports no repair counts; `None` when it does. The counts are the
/// node's own `/stats` counters (read repair, anti-entropy, hinted handoff); a target without
/// such counters has nothing to read, which is not the same as its members not answering.
pub fn repairs_unmeasured(kind: Kind) -> Option<String> {
    let name = third_party(kind)?;
    Some(format!(
        "--target {name} exposes no repair counters (the node's /stats), so repairs were not \
         measured"
    ))
}

/// Everything needed to build a [`Target`] (validated flags), kept in the run's config.
#[derive(Debug, Clone)]
pub enum Spec {
    Node,
    Garage(garage::GarageConfig),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Node => Kind::Node,
            Spec::Garage(_) => Kind::Garage,
        }
    }
}

/// The target for a run whose folder is `run_dir`.
pub fn build(spec: &Spec, run_dir: &std::path::Path) -> Arc<dyn Target> {
    match spec {
        Spec::Node => Arc::new(node::NodeTarget),
        Spec::Garage(cfg) => Arc::new(garage::GarageTarget::new(cfg.clone(), run_dir)),
    }
}

/// Refuse what `kind` cannot do on `backend`: faults it does not support there and ops its
/// clients cannot speak. The message names the flag and what would work.
pub fn check(
    kind: Kind,
    backend: BackendKind,
    faults: &[Fault],
    ops: &[OpKind],
) -> Result<(), String> {
    if kind == Kind::Node {
        return Ok(());
    }
    let name = match kind {
        Kind::Garage => "garage",
        Kind::Etcd => "etcd",
        Kind::Node => unreachable!("handled above"),
    };
    if ops.contains(&OpKind::Cas) {
        return Err(format!(
            "--ops cas: --target {name} speaks S3, which has no compare-and-set \
             (PutObject overwrites); expected --ops read,write or --ops write"
        ));
    }
    for f in faults {
        match f {
            Fault::Partition | Fault::Slow | Fault::Flaky if backend == BackendKind::Local => {
                return Err(format!(
                    "--nemesis {f} with --target {name} needs --backend netns: its \
                     members dial the RPC addresses their peers advertise, so the local \
                     backend's proxy (one listener per directed link) cannot tell senders \
                     apart; run as root with --backend netns, or drop {f}",
                    f = f.name()
                ));
            }
            Fault::StaleRestore => {
                return Err(format!(
                    "--nemesis stale-restore is not supported with --target {name}: it aims at \
                     the node's ring and copies the node's data directory; expected a list of \
                     partition, kill, pause, clock-skew, slow, flaky"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garage_refuses_cas_local_partitions_and_stale_restore() {
        let rw = [OpKind::Read, OpKind::Write];
        let e = check(Kind::Garage, BackendKind::Local, &[Fault::Partition], &rw).unwrap_err();
        assert!(e.contains("--backend netns"), "{e}");
        let e = check(Kind::Garage, BackendKind::Local, &[Fault::Slow], &rw).unwrap_err();
        assert!(
            e.contains("--nemesis slow") && e.contains("--backend netns"),
            "{e}"
        );
        check(
            Kind::Garage,
            BackendKind::Netns,
            &[Fault::Partition, Fault::Slow, Fault::Flaky],
            &rw,
        )
        .unwrap();
        check(
            Kind::Garage,
            BackendKind::Local,
            &[Fault::Kill, Fault::Pause, Fault::ClockSkew],
            &rw,
        )
        .unwrap();
        let e = check(Kind::Garage, BackendKind::Netns, &[], &[OpKind::Cas]).unwrap_err();
        assert!(e.starts_with("--ops cas"), "{e}");
        let e = check(
            Kind::Garage,
            BackendKind::Netns,
            &[Fault::StaleRestore],
            &rw,
        )
        .unwrap_err();
        assert!(e.starts_with("--nemesis stale-restore"), "{e}");
        // The node keeps every fault on every backend.
        check(
            Kind::Node,
            BackendKind::Local,
            &[Fault::Partition, Fault::StaleRestore],
            &[OpKind::Cas],
        )
        .unwrap();
    }
}
