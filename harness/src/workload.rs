//! What clients do (`--workload`), one variant each, and each variant owns all of it: its
//! generator per client slot, its final reads, the model its history is checked against and
//! the checks it asks for. The runner and the judge ask the workload; neither matches on it.

use crate::client::{self, Endpoint, SlotConfig};
use crate::recorder::Recorder;
use crate::set_client::{self, SetRegistry};
use crate::targets::BoxFuture;
use clap::ValueEnum;
use quorate_checker::check::Check;
use quorate_checker::model::ModelKind;
use quorate_workloads::{OpKind, OpSpec, RegisterWorkload, SetWorkload};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `--workload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Register,
    Set,
}

/// Final reads run under process numbers from here up: past every process a slot could have
/// reached (slots step by `concurrency` after each info). `compare` leaves them out of its
/// figures by this too, for targets whose history has no `convergence` observation to mark
/// where the final reads begin.
pub const FINAL_READ_PROCESSES: u64 = 1_000_000_000;

/// A validated workload.
#[derive(Debug, Clone)]
pub enum Workload {
    /// Reads, writes and (optionally) cas on rotating keys.
    Register(RegisterWorkload),
    /// Adds of unique elements and set reads on rotating sets.
    Set(SetWorkload),
}

/// What a running workload's slots share with its final reads: the highest key reached, and
/// the elements whose add was invoked, per set.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub registry: SetRegistry,
}

impl Workload {
    /// Check `--workload`, `--ops`, `--ops-per-key` and `--concurrency` together. Errors name
    /// the flag.
    pub fn new(
        kind: WorkloadKind,
        ops: &str,
        ops_per_key: u64,
        concurrency: u64,
        seed: u64,
    ) -> Result<Workload, String> {
        // `--ops` is parsed whatever the workload, so a bad list is refused the same way.
        let register = RegisterWorkload::new(ops, ops_per_key, concurrency, seed)
            .map_err(|e| e.to_string())?;
        if kind == WorkloadKind::Set && ops != "read,write" {
            return Err(format!(
                "--ops {ops:?} applies to --workload register; the set workload's ops are add and read"
            ));
        }
        Ok(match kind {
            WorkloadKind::Register => Workload::Register(register),
            WorkloadKind::Set => Workload::Set(
                SetWorkload::new(ops_per_key, concurrency, seed).map_err(|e| e.to_string())?,
            ),
        })
    }

    /// The `--workload` name.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Register(_) => "register",
            Workload::Set(_) => "set",
        }
    }

    /// The register ops its requests are made of (a set's adds are writes, its reads reads),
    /// for the target to refuse what it cannot speak.
    pub fn ops(&self) -> Vec<OpKind> {
        match self {
            Workload::Register(w) => w.ops.clone(),
            Workload::Set(_) => vec![OpKind::Read, OpKind::Write],
        }
    }

    /// Client slots.
    pub fn concurrency(&self) -> u64 {
        match self {
            Workload::Register(w) => w.concurrency,
            Workload::Set(w) => w.concurrency,
        }
    }

    /// The model its history is checked against.
    pub fn model(&self) -> ModelKind {
        match self {
            Workload::Register(w) => w.model(),
            Workload::Set(w) => w.model(),
        }
    }

    /// The checks it asks for (empty: the checker's default, every one that applies). A set
    /// read is many element reads at different instants, not a snapshot, so the set as a whole
    /// is not something the store claims to be linearizable: the set workload gets Jepsen's
    /// set-full (`set`) and `convergence`, and `linearizable` is reported skipped with that
    /// reason.
    pub fn checks(&self) -> &'static [Check] {
        match self {
            Workload::Register(_) => &[],
            Workload::Set(_) => &[Check::Set, Check::Convergence],
        }
    }

    /// The checks that can judge its history: a register's (the checker's register checks and
    /// convergence) or a set's (set-full, Garage's read-after-write rule, convergence).
    pub fn applicable_checks(&self) -> &'static [Check] {
        match self {
            Workload::Register(_) => &[
                Check::Linearizable,
                Check::StaleReads,
                Check::LostWrites,
                Check::Sessions,
                Check::Convergence,
            ],
            Workload::Set(_) => &[Check::Set, Check::SetReadAfterWrite, Check::Convergence],
        }
    }

    /// `--checks LIST`: the checks named, each one that can judge this workload's history
    /// ([`Self::applicable_checks`]); otherwise an error naming the flag, the check and what is
    /// expected.
    pub fn pick_checks(&self, list: &str) -> Result<Vec<Check>, String> {
        let checks = Check::parse_list(list).map_err(|e| format!("--checks {list:?}: {e}"))?;
        let fits = self.applicable_checks();
        if let Some(c) = checks.iter().find(|c| !fits.contains(c)) {
            let names: Vec<&str> = fits.iter().map(|c| c.name()).collect();
            return Err(format!(
                "--checks {list:?}: {c} does not judge a {} history; expected some of {}",
                self.name(),
                names.join(", ")
            ));
        }
        Ok(checks)
    }

    /// Client slot `slot`'s loop (see [`client::drive`]).
    pub fn slot(
        &self,
        slot: u64,
        sc: SlotConfig,
        shared: &Shared,
        rec: Arc<Recorder>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, ()> {
        let http = client::http_client();
        match self {
            Workload::Register(w) => {
                Box::pin(client::run_slot(slot, w.client(slot), sc, rec, http, stop))
            }
            Workload::Set(w) => Box::pin(set_client::run_slot(
                slot,
                w.client(slot),
                sc,
                shared.registry.clone(),
                rec,
                http,
                stop,
            )),
        }
    }

    /// Read everything written once, after the quiet period, so lost writes show: every key
    /// up to `max_key`, or every set that had an add.
    pub async fn final_reads(
        &self,
        endpoints: &[Endpoint],
        shared: &Shared,
        rec: &Arc<Recorder>,
        max_key: u64,
        timeout: Duration,
        stop: watch::Receiver<bool>,
    ) {
        let base = FINAL_READ_PROCESSES;
        match self {
            Workload::Register(w) => {
                let at_once = w.concurrency as usize;
                register_final_reads(endpoints, rec, max_key, at_once, timeout, stop).await
            }
            Workload::Set(_) => {
                set_client::final_reads(endpoints, &shared.registry, rec, base, timeout, stop).await
            }
        }
    }
}

/// Read every key once. Each read runs under a process number no client used.
async fn register_final_reads(
    endpoints: &[Endpoint],
    rec: &Arc<Recorder>,
    max_key: u64,
    at_once: usize,
    timeout: Duration,
    stop: watch::Receiver<bool>,
) {
    let http = client::http_client();
    let base = FINAL_READ_PROCESSES;
    let sem = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut set = tokio::task::JoinSet::new();
    for k in 0..=max_key {
        if *stop.borrow() {
            break;
        }
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let target = endpoints[k as usize % endpoints.len()].clone();
        let rec = rec.clone();
        let http = http.clone();
        set.spawn(async move {
            let op = OpSpec {
                f: OpKind::Read,
                key: quorate_workloads::key_name(k),
                value: Value::Null,
            };
            client::run_op(&rec, &http, base + k, &target, &op, timeout).await;
            drop(permit);
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::KeyPin;
    use crate::testkit::FakeStore;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Drive `w`'s slots against an in-process store under tokio's paused clock, then its
    /// final reads, and judge the history the recorder wrote: a store that applies every op
    /// atomically must come out valid, with every slot's ops and every final read recorded.
    async fn drive_and_judge(w: Workload, store: FakeStore) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let rec = Arc::new(Recorder::create(&path).unwrap());
        let endpoints = Arc::new(store).endpoints(3);
        let busy = Arc::new(AtomicU64::new(0));
        let sc = SlotConfig {
            targets: endpoints.clone(),
            concurrency: w.concurrency(),
            timeout: Duration::from_secs(1),
            pace: None,
            max_ops: 40,
            busy: busy.clone(),
            pin: KeyPin::new(),
        };
        let (_tx, rx) = watch::channel(false);
        let shared = Shared::default();
        let mut slots = tokio::task::JoinSet::new();
        for slot in 0..w.concurrency() {
            slots.spawn(w.slot(slot, sc.clone(), &shared, rec.clone(), rx.clone()));
        }
        while let Some(done) = slots.join_next().await {
            done.unwrap();
        }
        let max_key = busy.load(Ordering::Relaxed);
        let timeout = Duration::from_secs(1);
        w.final_reads(&endpoints, &shared, &rec, max_key, timeout, rx)
            .await;
        rec.sync();
        assert_eq!(rec.error(), None);
        let slots_ops = 40 * w.concurrency();
        let invokes = rec.counts.invokes.load(Ordering::Relaxed);
        assert!(
            invokes > slots_ops,
            "{invokes} invokes: the final reads ran too"
        );
        assert_eq!(
            invokes,
            rec.counts.ok.load(Ordering::Relaxed) + rec.counts.fail.load(Ordering::Relaxed),
            "every op completed, none unknown"
        );
        let budget = Duration::from_secs(10);
        crate::judge::check_with(&path, w.model(), w.checks(), budget, dir.path(), None)
    }

    #[tokio::test(start_paused = true)]
    async fn a_linearizable_store_passes_every_workload_end_to_end() {
        let w = Workload::new(WorkloadKind::Register, "read,write,cas", 20, 3, 5).unwrap();
        let r = drive_and_judge(w, FakeStore::default()).await;
        assert_eq!(r["valid"], true, "{r}");
        assert_eq!(r["checks"]["linearizable"]["valid"], true, "{r}");
        for listing in [false, true] {
            let w = Workload::new(WorkloadKind::Set, "read,write", 20, 3, 5).unwrap();
            let store = FakeStore::new(listing);
            let r = drive_and_judge(w, store).await;
            assert_eq!(r["checks"]["set"]["valid"], true, "listing {listing}: {r}");
            assert_eq!(r["checks"]["set"]["lost"], 0, "listing {listing}: {r}");
        }
    }

    #[test]
    fn each_workload_owns_its_model_and_checks() {
        let r = Workload::new(WorkloadKind::Register, "read,write,cas", 200, 4, 1).unwrap();
        assert_eq!(r.model(), ModelKind::CasRegister);
        assert!(r.checks().is_empty());
        assert_eq!(r.ops(), [OpKind::Read, OpKind::Write, OpKind::Cas]);
        let s = Workload::new(WorkloadKind::Set, "read,write", 200, 4, 1).unwrap();
        assert_eq!((s.model(), s.name()), (ModelKind::Set, "set"));
        assert_eq!(s.checks(), [Check::Set, Check::Convergence]);
        assert_eq!(
            s.pick_checks("set-read-after-write,convergence").unwrap(),
            [Check::SetReadAfterWrite, Check::Convergence]
        );
        assert_eq!(r.pick_checks("stale-reads").unwrap(), [Check::StaleReads]);
        assert_eq!(
            r.pick_checks("stale-reads,set").unwrap_err(),
            "--checks \"stale-reads,set\": set does not judge a register history; expected \
             some of linearizable, stale-reads, lost-writes, sessions, convergence"
        );
        assert!(
            r.pick_checks("stale")
                .unwrap_err()
                .starts_with("--checks \"stale\": unknown check"),
            "{}",
            r.pick_checks("stale").unwrap_err()
        );
        assert_eq!(s.concurrency(), 4);
        let e = Workload::new(WorkloadKind::Set, "write", 200, 4, 1).unwrap_err();
        assert!(
            e.starts_with("--ops \"write\" applies to --workload register"),
            "{e}"
        );
        let e = Workload::new(WorkloadKind::Register, "read,frob", 200, 4, 1).unwrap_err();
        assert!(e.contains("--ops"), "{e}");
    }
}
