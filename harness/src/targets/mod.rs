//! The stores under test (`--target`), one folder each, and the one registry that knows them.
//!
//! - [`node`]: the reference `quorate-node` (the default): its flags, launch, HTTP API, admin
//!   clock call, ring placement, and the `/digest` and `/stats` only it exposes.
//! - [`garage`]: Garage, a third-party S3 store: `garage server` per member, joined into one
//!   layout over its admin API, clients speaking S3.
//! - [`etcd`]: etcd, a Raft store with linearizable reads — the calibration: `etcd` per
//!   member bootstrapped with `--initial-cluster`, clients speaking its v3 JSON gateway.
//! - [`file`]: a store described in a target file (`--target-file`, docs/TARGETS.md), its
//!   clients a built-in API or an adapter process per client (the adapter protocol).
//! - [`faketime`]: clock skew for any store that cannot be told its clock is off: libfaketime
//!   preloaded into each member with an offset file the nemesis rewrites.
//!
//! A backend runs the processes ([`crate::backend::launch::Launch`] says how); a [`Target`]
//! is everything specific to the store: its launch, the set-up after every member is up, the
//! [`Api`] clients speak, the [`Clock`] clock-skew moves, and its [`Placement`] of keys. Each
//! store also declares its [`Capabilities`] — the ops it speaks, the faults it supports per
//! backend, the [`Observer`] of what it exposes beyond its API, if anything — and [`check`]
//! derives every refusal from them, before anything starts.
//!
//! Adding a store: a folder here, a variant of [`TargetKind`] with its arms in
//! [`TargetKind::caps`] and [`TargetKind::spec`], and its flags in [`TargetArgs`]
//! (ARCHITECTURE.md, "What a new target provides").

pub mod etcd;
pub mod faketime;
pub mod file;
pub mod garage;
pub mod node;

use crate::backend::launch::Launch;
use crate::backend::{BackendKind, Cluster};
use crate::client::{Completion, Endpoint};
use crate::nemesis::Fault;
use crate::recorder::Recorder;
use clap::Args;
use quorate_workloads::{OpKind, OpSpec, SetOpKind};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The system under test (`--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Node,
    Garage,
    Etcd,
    /// A store described in a file: chosen by `--target-file`, not `--target`.
    #[value(skip)]
    File,
}

impl TargetKind {
    /// Every target, in the order refusals are looked for.
    pub const ALL: [TargetKind; 4] = [
        TargetKind::Node,
        TargetKind::Garage,
        TargetKind::Etcd,
        TargetKind::File,
    ];

    /// The target a run's flags choose: `--target-file` makes it [`TargetKind::File`].
    pub fn chosen(target: TargetKind, args: &TargetArgs) -> TargetKind {
        if args.file.target_file.is_some() {
            TargetKind::File
        } else {
            target
        }
    }

    /// What the target declares about itself.
    pub fn caps(self) -> &'static Capabilities {
        match self {
            TargetKind::Node => &node::CAPS,
            TargetKind::Garage => &garage::CAPS,
            TargetKind::Etcd => &etcd::CAPS,
            TargetKind::File => &file::CAPS,
        }
    }

    /// The `--target` name.
    pub fn name(self) -> &'static str {
        self.caps().name
    }
}

/// Every target's own flags, flattened into `quorate run`'s (each struct lives in its
/// target's folder; a flag given for another target than the one run is refused).
#[derive(Args, Debug, Clone, Serialize)]
pub struct TargetArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub node: node::NodeArgs,
    /// `--target garage`'s flags (`--garage-consistency`, `--garage-bin`,
    /// `--garage-rpc-timeout-ms`).
    #[command(flatten)]
    #[serde(flatten)]
    pub garage: garage::GarageArgs,
    /// `--target etcd`'s flags (`--etcd-serializable`, `--etcd-bin`).
    #[command(flatten)]
    #[serde(flatten)]
    pub etcd: etcd::EtcdArgs,
    /// `--target-file FILE`.
    #[command(flatten)]
    #[serde(flatten)]
    pub file: file::FileArgs,
}

impl TargetArgs {
    /// The flags of `kind` given explicitly on this command line (flags with a default that
    /// cannot tell "given" from "not given" are left out).
    fn given(&self, kind: TargetKind) -> Vec<&'static str> {
        match kind {
            TargetKind::Node => self.node.given(),
            TargetKind::Garage => self.garage.given(),
            TargetKind::Etcd => self.etcd.given(),
            TargetKind::File => self.file.given(),
        }
    }
}

/// A third-party store's program: `explicit` (its `--<target>-bin` flag, or
/// `QUORATE_<TARGET>_BIN`) when given, else `program` on `PATH`; an error names the flag or says
/// it is not on `PATH`, then `how` to get it.
pub fn find_program(
    explicit: Option<&Path>,
    target: &str,
    program: &str,
    how: &str,
) -> Result<std::path::PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "--{target}-bin {} (or QUORATE_{}_BIN): not a file; {how}",
                p.display(),
                target.to_uppercase()
            ))
        };
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| format!("--target {target}: `{program}` is not on PATH; {how}"))
}

/// A boxed future, so the traits below stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request that did not succeed, as a client records it: `info` (no answer: a timeout, a
/// broken connection, a 5xx) or `fail` (the store refused before acting), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unanswered {
    pub kind: quorate_checker::history::EventType,
    pub error: String,
}

/// How a store keeps the set workload's elements, and so how a set read reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetReads {
    /// Each element under a key of its own, read one by one
    /// ([`quorate_workloads::set::element_key`]).
    ElementKeys,
    /// Each element under its set's prefix, read by one listing ([`Api::list`]).
    Listing,
    /// The API hears set ops themselves ([`Api::native_set`]: an adapter's `add`, and a set
    /// read given the elements added so far).
    Native,
}

/// What a client speaks to a member. Outcomes follow INTERFACES.md's rules.
pub trait Api: Send + Sync + std::fmt::Debug {
    /// Send one op to `member` and classify its outcome, within `timeout`.
    fn execute<'a>(
        &'a self,
        http: &'a reqwest::Client,
        member: &'a Endpoint,
        op: &'a OpSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, Completion>;

    /// How set reads read this store.
    fn set_reads(&self) -> SetReads;

    /// Every key under `prefix` on `member`, all of the listing (a set read, when
    /// [`Api::set_reads`] is [`SetReads::Listing`]). `Ok` only when the whole listing came
    /// back; otherwise the outcome a read that did not answer completes with (`info` or `fail`,
    /// by INTERFACES.md's rules), never a partial list. Bounded by `timeout` per request.
    fn list<'a>(
        &'a self,
        http: &'a reqwest::Client,
        member: &'a Endpoint,
        prefix: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, Unanswered>>;

    /// A set op as one request, when [`Api::set_reads`] is [`SetReads::Native`]: `add` of
    /// `value` to `set`, or a read of `set` given `elements` (what has been added to it so
    /// far). Only such an API is ever asked.
    fn native_set<'a>(
        &'a self,
        member: &'a Endpoint,
        f: SetOpKind,
        set: &'a str,
        value: Value,
        elements: &'a [u64],
        timeout: Duration,
    ) -> BoxFuture<'a, Completion> {
        let _ = (set, elements, timeout);
        let error = format!(
            "{} on {}: this API reads sets by element keys or a listing, not natively",
            f.name(),
            member.node
        );
        Box::pin(async move {
            Completion::not_ok(quorate_checker::history::EventType::Fail, value, error)
        })
    }

    /// Client slot `slot`'s own API, for an API that keeps state per client (an adapter
    /// process per client); `None` (the default): every slot shares this one.
    fn for_slot(&self, slot: u64) -> Option<Arc<dyn Api>> {
        let _ = slot;
        None
    }

    /// After the fault phase: why the run cannot be judged through this API (no adapter
    /// ever answered), if so.
    fn never_answered(&self) -> Option<String> {
        None
    }

    /// At the end of the run: stop whatever the API runs (adapter processes).
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Moves a member's wall clock (the `clock-skew` fault).
pub trait Clock: Send + Sync {
    /// Set `node`'s clock to run `ms` milliseconds off the real one (0: back to true time).
    /// The error names the node and what went wrong.
    fn set_offset<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
        node: &'a str,
        ms: i64,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Where a store keeps each key, so faults can aim at a key's home members.
pub trait Placement: Send + Sync {
    /// The members holding `key`, first (coordinator-preferred) first; `None` when quorate does
    /// not know how the store places keys.
    fn home_nodes(&self, key: &str) -> Option<Vec<String>>;
}

/// A store whose placement quorate does not know (it keeps its own layout).
#[derive(Debug, Clone, Copy)]
pub struct UnknownPlacement;

impl Placement for UnknownPlacement {
    fn home_nodes(&self, _key: &str) -> Option<Vec<String>> {
        None
    }
}

/// A store's membership as the `reconfigure` fault sees it: a layout version and which
/// members hold data (storage) and which only route requests (gateways).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// The store's own layout version (Garage's `version`), raised by every applied change.
    pub version: u64,
    /// Members that hold data, sorted.
    pub storage: Vec<String>,
    /// Members with a role but no data (Garage: capacity `null`), sorted.
    pub gateways: Vec<String>,
}

/// Changes which members hold data (the `reconfigure` fault), for a target whose membership
/// can change while it runs. Every call is bounded in time; an error names the member, the
/// call and what the store answered.
pub trait Membership: Send + Sync {
    /// The layout in force now.
    fn layout<'a>(&'a self, cluster: &'a dyn Cluster) -> BoxFuture<'a, Result<Layout, String>>;
    /// Make exactly `storage` the storage members and every other member a gateway, applied
    /// as one new layout version (nothing applied when that is already the layout); the
    /// layout in force afterwards.
    fn assign<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
        storage: &'a [String],
    ) -> BoxFuture<'a, Result<Layout, String>>;
    /// Wait, at most `limit`, until the store has moved its data to the layout in force (no
    /// older version still draining). `Ok(None)` once it has, `Ok(Some(why))` when the time
    /// ran out first (a finding about the store, not a failure of the harness).
    fn settle<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
        limit: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;
}

/// What a store exposes beyond its client API, for the run's observations.
pub trait Observer: Send + Sync {
    /// Compare every key's replicas (after the quiet period, before the final reads), record
    /// the `convergence` harness event, and say whether they all agree.
    fn convergence<'a>(
        &'a self,
        cluster: &'a Arc<dyn Cluster>,
        rec: &'a Recorder,
    ) -> BoxFuture<'a, bool>;
    /// Each member's counters at the end of the run (results' `run.node_stats`).
    fn stats<'a>(&'a self, cluster: &'a Arc<dyn Cluster>)
        -> BoxFuture<'a, BTreeMap<String, Value>>;
    /// The repairs those counters show (results' `run.repairs`).
    fn repairs(&self, stats: &BTreeMap<String, Value>) -> Value;
}

/// A system under test, as the runner sees it.
pub trait Target: Send + Sync {
    /// The `--target` name (`node`, `garage`).
    fn name(&self) -> &'static str;
    /// How the backend starts each member.
    fn launch(&self) -> Arc<dyn Launch>;
    /// Once every member serves: join them into one working cluster (bounded in time) and
    /// hand back the API clients speak (a store may need credentials made during set-up).
    fn configure<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
    ) -> BoxFuture<'a, anyhow::Result<Arc<dyn Api>>>;
    /// How `clock-skew` moves a member's clock.
    fn clock(&self) -> Arc<dyn Clock>;
    /// Where keys live, for the cluster's members.
    fn placement(&self, nodes: &[String]) -> Arc<dyn Placement>;
    /// Who leads, for a store with a leader (etcd), so faults can aim at it; `None` (the
    /// default): no leader, and the nemesis draws its targets exactly as it always has.
    fn leader(&self) -> Option<Arc<dyn Leader>> {
        None
    }
    /// How `reconfigure` changes membership; `None` for a store whose membership is fixed
    /// (its [`Capabilities`] then refuse `reconfigure` up front).
    fn membership(&self) -> Option<Arc<dyn Membership>> {
        None
    }
}

/// A store with a leader: `kill`, `pause` and the partition that isolates one member aim at
/// it half the time (the nemesis's [`crate::nemesis::Ctx::leader`]).
pub trait Leader: Send + Sync {
    /// The member that leads now, as the members say (bounded in time), or why it is not
    /// known (no leader, members disagreeing or not answering).
    fn leader<'a>(&'a self, cluster: &'a dyn Cluster) -> BoxFuture<'a, Result<String, String>>;
}

/// Whether a target supports a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// On every backend.
    Yes,
    /// Only on this backend, for this reason.
    Only(BackendKind, &'static str),
    /// Not at all, for this reason.
    No(&'static str),
}

/// What a target declares about itself; every refusal of a flag combination comes from here.
#[derive(Debug)]
pub struct Capabilities {
    /// The `--target` name.
    pub name: &'static str,
    /// The register ops its clients speak.
    pub ops: &'static [OpKind],
    /// Why it does not speak the others (after "--target NAME ").
    pub ops_why: &'static str,
    /// Which faults it supports, and where.
    pub faults: fn(Fault) -> Support,
    /// What it exposes beyond its client API (per-replica digests, so convergence can be
    /// observed; repair counters), and how to read it; `None`: nothing, so neither is measured
    /// and the results say why ([`convergence_unmeasured`], [`repairs_unmeasured`]).
    pub observer: Option<fn() -> Arc<dyn Observer>>,
    /// After "a flag of another target, but --target is NAME": where its own equivalents are.
    pub equivalents: &'static str,
    /// What its own flags are called when given for another target.
    pub flags_are: &'static str,
}

/// Why a run of `kind` does not observe convergence, as its results' `convergence` entry
/// says; `None` when it does. The observation compares each replica's digest of every key
/// (the node's `/digest`); a target that exposes no per-replica digest cannot be observed, so
/// its convergence is not measured at all — not "not observed because the run stopped".
pub fn convergence_unmeasured(kind: TargetKind) -> Option<String> {
    let caps = kind.caps();
    caps.observer.is_none().then(|| {
        format!(
            "--target {} exposes no per-replica digest (the node's /digest, which the \
             convergence observation compares replica by replica), so convergence was not \
             measured",
            caps.name
        )
    })
}

/// Why a run of `kind` reports no repair counts; `None` when it does. The counts are the
/// node's own `/stats` counters (read repair, anti-entropy, hinted handoff); a target without
/// such counters has nothing to read, which is not the same as its members not answering.
pub fn repairs_unmeasured(kind: TargetKind) -> Option<String> {
    let caps = kind.caps();
    caps.observer.is_none().then(|| {
        format!(
            "--target {} exposes no repair counters (the node's /stats), so repairs were not \
             measured",
            caps.name
        )
    })
}

/// Refuse a flag that belongs to another target than the one run, naming it and where the
/// run's target keeps its equivalent.
pub fn refuse_foreign_flags(kind: TargetKind, args: &TargetArgs) -> Result<(), String> {
    for owner in TargetKind::ALL.into_iter().filter(|o| *o != kind) {
        if let Some(flag) = args.given(owner).first() {
            return Err(format!(
                "{flag}: {}; {}",
                owner.caps().flags_are,
                kind.caps().equivalents
            ));
        }
    }
    Ok(())
}

/// Refuse what `kind` declares it cannot do on `backend`: faults it does not support there
/// and ops its clients cannot speak. The message names the flag and what would work.
pub fn check(
    kind: TargetKind,
    backend: BackendKind,
    faults: &[Fault],
    ops: &[OpKind],
) -> Result<(), String> {
    let caps = kind.caps();
    let name = caps.name;
    if let Some(op) = ops.iter().find(|o| !caps.ops.contains(o)) {
        let spoken: Vec<&str> = caps.ops.iter().map(|o| o.name()).collect();
        return Err(format!(
            "--ops {}: --target {name} {}; expected --ops {} or --ops write",
            op.name(),
            caps.ops_why,
            spoken.join(",")
        ));
    }
    for f in faults {
        match (caps.faults)(*f) {
            Support::Yes => {}
            Support::Only(only, _) if backend.satisfies(only) => {}
            Support::Only(only, why) => {
                return Err(format!(
                    "--nemesis {f} with --target {name} needs --backend {b}: {why}; run as \
                     root with --backend {b}, or drop {f}",
                    f = f.name(),
                    b = only.name()
                ));
            }
            Support::No(why) => {
                let supported: Vec<&str> = Fault::ALL
                    .into_iter()
                    .filter(|g| !matches!((caps.faults)(*g), Support::No(_)))
                    .map(Fault::name)
                    .collect();
                return Err(format!(
                    "--nemesis {} is not supported with --target {name}: {why}; expected a \
                     list of {}",
                    f.name(),
                    supported.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// What a run's validation hands a target, besides its own flags.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    pub nodes: usize,
    pub faults: &'a [Fault],
    pub seed: u64,
    pub backend: BackendKind,
    /// The workload's register ops.
    pub ops: &'a [OpKind],
    pub concurrency: u64,
    /// `--reconfigure-keep`: the storage members a `reconfigure` window keeps.
    pub reconfigure_keep: usize,
}

/// A target's validated flags: everything needed to build it, kept in the run's plan. Made
/// with no I/O ([`TargetKind::spec`]); [`Spec::prepare`] is the step that looks at the machine.
pub trait Spec: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> TargetKind;
    /// What must hold on this machine before anything starts (a program found, a
    /// configuration the store accepts), said in the store's own words.
    fn prepare(&mut self, nodes: &[String]) -> Result<(), String>;
    /// The first part of a run's default name (`node-strict`, `garage-consistent`).
    fn run_name(&self) -> String;
    /// The store's program and its version (`null` when not known), for `test.json`.
    fn version(&self) -> (&'static str, Value);
    /// The quiet period after healing when `--quiet` is not given.
    fn default_quiet(&self) -> Duration;
    /// The target for a run whose folder is `run_dir` (after [`Spec::prepare`]).
    fn build(&self, run_dir: &Path) -> Result<Arc<dyn Target>, String>;

    /// The versions `test.json` records: quorate's and the store's.
    fn versions(&self) -> Value {
        let (program, version) = self.version();
        let mut v = serde_json::Map::new();
        v.insert("quorate".into(), env!("CARGO_PKG_VERSION").into());
        v.insert(program.into(), version);
        Value::Object(v)
    }
}

impl TargetKind {
    /// Check the target's own flags and make its spec (no I/O).
    pub fn spec(self, args: &TargetArgs, common: Common) -> Result<Box<dyn Spec>, String> {
        Ok(match self {
            TargetKind::Node => Box::new(node::NodeSpec::new(&args.node, common)?),
            TargetKind::Garage => Box::new(garage::GarageSpec::new(&args.garage, common)?),
            TargetKind::Etcd => Box::new(etcd::EtcdSpec::new(&args.etcd, common.nodes)?),
            TargetKind::File => Box::new(file::FileSpec::new(&args.file, common)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign(kind: TargetKind, argv: &[&str]) -> Result<(), String> {
        refuse_foreign_flags(kind, &crate::plan::test_args(argv).target_args)
    }

    #[test]
    fn a_flag_of_another_target_is_refused_naming_it() {
        assert_eq!(
            foreign(TargetKind::Garage, &["--r", "1"]).unwrap_err(),
            "--r: a quorate-node flag, but --target is not node; Garage's quorums come from \
             --garage-consistency"
        );
        assert_eq!(
            foreign(TargetKind::Node, &["--garage-rpc-timeout-ms", "9"]).unwrap_err(),
            "--garage-rpc-timeout-ms: a --target garage flag; the node's deadlines are \
             --request-timeout-ms and --replica-timeout-ms"
        );
        foreign(TargetKind::Node, &["--r", "1", "--preset", "abd"]).unwrap();
        // Flags with defaults cannot tell "given" apart, and never were refused.
        foreign(TargetKind::Garage, &["--preset", "abd"]).unwrap();
        foreign(TargetKind::Node, &["--garage-consistency", "dangerous"]).unwrap();
    }

    #[test]
    fn garage_refuses_cas_local_partitions_and_stale_restore() {
        let rw = [OpKind::Read, OpKind::Write];
        let e = check(
            TargetKind::Garage,
            BackendKind::Local,
            &[Fault::Partition],
            &rw,
        )
        .unwrap_err();
        assert!(e.contains("--backend netns"), "{e}");
        let e = check(TargetKind::Garage, BackendKind::Local, &[Fault::Slow], &rw).unwrap_err();
        assert!(
            e.contains("--nemesis slow") && e.contains("--backend netns"),
            "{e}"
        );
        check(
            TargetKind::Garage,
            BackendKind::Netns,
            &[Fault::Partition, Fault::Slow, Fault::Flaky],
            &rw,
        )
        .unwrap();
        // ssh gives every member an address of its own, as netns does.
        check(
            TargetKind::Garage,
            BackendKind::Ssh,
            &[Fault::Partition, Fault::Slow, Fault::Flaky],
            &rw,
        )
        .unwrap();
        check(
            TargetKind::Garage,
            BackendKind::Local,
            &[Fault::Kill, Fault::Pause, Fault::ClockSkew],
            &rw,
        )
        .unwrap();
        let e = check(TargetKind::Garage, BackendKind::Netns, &[], &[OpKind::Cas]).unwrap_err();
        assert!(e.starts_with("--ops cas"), "{e}");
        let e = check(
            TargetKind::Garage,
            BackendKind::Netns,
            &[Fault::StaleRestore],
            &rw,
        )
        .unwrap_err();
        assert!(e.starts_with("--nemesis stale-restore"), "{e}");
        // The node keeps every fault on every backend.
        check(
            TargetKind::Node,
            BackendKind::Local,
            &[Fault::Partition, Fault::StaleRestore],
            &[OpKind::Cas],
        )
        .unwrap();
    }

    #[test]
    fn etcd_refuses_local_partitions_clock_skew_and_its_flag_elsewhere() {
        let rw = [OpKind::Read, OpKind::Write, OpKind::Cas];
        let e = check(
            TargetKind::Etcd,
            BackendKind::Local,
            &[Fault::Partition],
            &rw,
        )
        .unwrap_err();
        assert!(
            e.contains("needs --backend netns") && e.contains("peer URL"),
            "{e}"
        );
        check(
            TargetKind::Etcd,
            BackendKind::Netns,
            &[
                Fault::Partition,
                Fault::Kill,
                Fault::Pause,
                Fault::Slow,
                Fault::Flaky,
            ],
            &rw,
        )
        .unwrap();
        check(
            TargetKind::Etcd,
            BackendKind::Local,
            &[Fault::Kill, Fault::Pause],
            &rw,
        )
        .unwrap();
        for backend in [BackendKind::Local, BackendKind::Netns] {
            let e = check(TargetKind::Etcd, backend, &[Fault::ClockSkew], &rw).unwrap_err();
            assert!(
                e.starts_with("--nemesis clock-skew is not supported with --target etcd")
                    && e.contains("libfaketime"),
                "{e}"
            );
        }
        assert_eq!(
            foreign(TargetKind::Node, &["--etcd-serializable"]).unwrap_err(),
            "--etcd-serializable: a --target etcd flag; the node's deadlines are \
             --request-timeout-ms and --replica-timeout-ms"
        );
        foreign(TargetKind::Etcd, &["--etcd-serializable"]).unwrap();
        assert!(foreign(TargetKind::Etcd, &["--r", "1"])
            .unwrap_err()
            .contains("etcd's reads are linearizable unless --etcd-serializable"));
    }

    /// The messages derived from the declarations are today's, word for word.
    #[test]
    fn derived_refusals_read_as_they_always_have() {
        let rw = [OpKind::Read, OpKind::Write];
        let g = TargetKind::Garage;
        assert_eq!(
            check(g, BackendKind::Netns, &[], &[OpKind::Cas]).unwrap_err(),
            "--ops cas: --target garage speaks S3, which has no compare-and-set \
             (PutObject overwrites); expected --ops read,write or --ops write"
        );
        assert_eq!(
            check(g, BackendKind::Local, &[Fault::Flaky], &rw).unwrap_err(),
            "--nemesis flaky with --target garage needs --backend netns: its members dial \
             the RPC addresses their peers advertise, so the local backend's proxy (one \
             listener per directed link) cannot tell senders apart; run as root with \
             --backend netns, or drop flaky"
        );
        assert_eq!(
            check(g, BackendKind::Netns, &[Fault::StaleRestore], &rw).unwrap_err(),
            "--nemesis stale-restore is not supported with --target garage: it aims at the \
             node's ring and copies the node's data directory; expected a list of \
             partition, kill, pause, clock-skew, slow, flaky, power-loss, reconfigure"
        );
        // The node refuses membership changes from its own declaration.
        assert_eq!(
            check(
                TargetKind::Node,
                BackendKind::Local,
                &[Fault::Reconfigure],
                &rw
            )
            .unwrap_err(),
            "--nemesis reconfigure is not supported with --target node: the node's ring is \
             fixed: its members and their places on it are set when the cluster starts \
             (--nodes, --vnodes), and no call changes them while it runs; expected a list of \
             partition, kill, pause, stale-restore, clock-skew, slow, flaky, power-loss"
        );
        assert_eq!(
            convergence_unmeasured(g).unwrap(),
            "--target garage exposes no per-replica digest (the node's /digest, which the \
             convergence observation compares replica by replica), so convergence was not \
             measured"
        );
        assert_eq!(
            repairs_unmeasured(g).unwrap(),
            "--target garage exposes no repair counters (the node's /stats), so repairs were \
             not measured"
        );
        assert_eq!(repairs_unmeasured(TargetKind::Node), None);
    }
}
