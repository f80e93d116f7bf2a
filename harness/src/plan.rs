//! A run's configuration, out of the CLI: [`RunPlan::validate`] checks `quorate run`'s flags
//! and builds the plan without touching the machine (typed errors, [`PlanError`]), and
//! [`RunPlan::probe`] is the separate step that does (root and tools for `--backend netns`,
//! the target's programs: `quorate-node --check-config`, `garage --version`, libfaketime).
//! `run` does both; `compare` validates every configuration first and probes before its first
//! run, so a typo in a matrix is caught without a machine able to run it.

use crate::backend::{self, node_ids, BackendKind};
use crate::cmd::run::RunArgs;
use crate::nemesis::clock_skew::{self, ClockMode};
use crate::nemesis::{self, Fault, LinkFaults};
use crate::store;
use crate::targets::{self, Common, Spec};
use crate::workload::Workload;
use std::time::Duration;

/// A flag (or a combination) `quorate run` refuses; every message names the flag and what was
/// expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("--nodes {0}: expected 1 to 64")]
    Nodes(usize),
    #[error("--concurrency {0}: expected 1 to 1000")]
    Concurrency(u64),
    #[error("--rate {0}: expected ops per second > 0")]
    Rate(f64),
    #[error("{flag} {value}: expected a number of seconds > 0")]
    NotPositive { flag: &'static str, value: f64 },
    #[error("--flaky-reset-probability {0}: expected a probability from 0 to 1")]
    Probability(f64),
    #[error("--quiet {0}: expected seconds >= 0")]
    Quiet(f64),
    #[error("--op-timeout-ms 0: expected a timeout > 0")]
    OpTimeout,
    #[error("--test-count 0: expected a number of runs >= 1")]
    TestCount,
    /// `--nemesis`.
    #[error("{0}")]
    Nemesis(String),
    /// `--clock-mode`, `--clock-skew-ms`.
    #[error("{0}")]
    Clock(String),
    /// `--name`.
    #[error("{0}")]
    Name(String),
    /// `--hosts`, `--keep-remote` and what `--backend ssh` cannot do yet.
    #[error("{0}")]
    Backend(String),
    /// `--workload`, `--ops`, `--ops-per-key`, `--checks`.
    #[error("{0}")]
    Workload(String),
    /// What the target refuses: another target's flag, a fault or op it declares it cannot
    /// honour, its own flags.
    #[error("{0}")]
    Target(String),
}

/// What the machine said no to, before anything started.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// `--backend netns` without root, `ip` or `nft`.
    #[error("{0}")]
    Backend(#[from] backend::BackendError),
    /// The target's programs: missing, not running, or refusing the configuration.
    #[error("{0}")]
    Target(String),
    /// `--backend ssh`: the hosts file, a host that cannot be reached or lacks a tool.
    #[error("{0}")]
    Hosts(String),
}

/// Everything a run needs, validated.
#[derive(Debug)]
pub struct RunPlan {
    pub nodes: Vec<String>,
    /// What clients do.
    pub workload: Workload,
    /// The checks that judge the run: `--checks`, else the workload's ([`Workload::checks`];
    /// empty: the checker's default).
    pub checks: Vec<quorate_checker::check::Check>,
    /// `--nemesis`, in order, no fault twice.
    pub faults: Vec<Fault>,
    /// Delay, jitter and reset probability of the `slow` and `flaky` faults.
    pub link_faults: LinkFaults,
    /// `--clock-mode` (default `skew`), sorted.
    pub clock_modes: Vec<ClockMode>,
    /// `--clock-skew-ms`; `None`: each mode's own magnitudes.
    pub clock_skew_ms: Option<(u64, u64)>,
    /// `--power-loss-scope` (default one).
    pub power_loss_scope: nemesis::power_loss::Scope,
    /// `--power-loss-from-start`: no checkpoint of the lazyfs mounts after set-up.
    pub power_loss_from_start: bool,
    /// `--partition-kinds` (default: [`nemesis::partition::KINDS`]).
    pub partition_kinds: Vec<&'static str>,
    /// `--reconfigure-keep` (default 3).
    pub reconfigure_keep: usize,
    pub time_limit: Duration,
    /// Checking budget per key.
    pub check_time_limit: Duration,
    pub interval: Duration,
    /// `--quiet`; `None`: the target's default ([`Spec::default_quiet`]).
    pub quiet: Option<Duration>,
    pub op_timeout: Duration,
    pub rate: Option<f64>,
    pub direct_clients: bool,
    pub seed: u64,
    pub backend: BackendKind,
    /// The system under test (`--target`); prepared by [`RunPlan::probe`].
    pub target: Box<dyn Spec>,
    /// `--hosts` and `--keep-remote` (`--backend ssh`).
    pub hosts: Option<std::path::PathBuf>,
    pub keep_remote: bool,
    /// Every host connected and checked, by [`RunPlan::probe`] (`--backend ssh`).
    pub ssh: Option<(std::sync::Arc<backend::ssh::SshHosts>, backend::ssh::Needs)>,
}

fn positive(flag: &'static str, value: f64) -> Result<Duration, PlanError> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(PlanError::NotPositive { flag, value })
    }
}

impl RunPlan {
    /// Check every flag and build the plan. No I/O: nothing is looked up, run or bound.
    pub fn validate(a: &RunArgs, seed: u64) -> Result<RunPlan, PlanError> {
        let kind = targets::TargetKind::chosen(a.target, &a.target_args);
        targets::refuse_foreign_flags(kind, &a.target_args).map_err(PlanError::Target)?;
        let faults = nemesis::parse_list(&a.nemesis).map_err(PlanError::Nemesis)?;
        // A preset was always checked, whatever the target (it has a default, so a garage run
        // cannot be told apart from one that named it).
        a.target_args
            .node
            .check_preset()
            .map_err(PlanError::Target)?;
        if !(1..=64).contains(&a.nodes) {
            return Err(PlanError::Nodes(a.nodes));
        }
        nemesis::partition::check_links(&faults, a.nodes).map_err(PlanError::Nemesis)?;
        if a.concurrency == 0 || a.concurrency > 1000 {
            return Err(PlanError::Concurrency(a.concurrency));
        }
        if let Some(r) = a.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(PlanError::Rate(r));
            }
        }
        let time_limit = positive("--time-limit", a.time_limit)?;
        let check_time_limit = positive("--check-time-limit", a.check_time_limit)?;
        let interval = positive("--nemesis-interval", a.nemesis_interval)?;
        let p = a.flaky_reset_probability;
        if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
            return Err(PlanError::Probability(p));
        }
        let link_faults = LinkFaults {
            delay: Duration::from_millis(a.slow_delay_ms),
            jitter: Duration::from_millis(a.slow_jitter_ms),
            reset_probability: p,
        };
        let (clock_modes, clock_skew_ms) = clock_settings(a, &faults)?;
        for (flag, given) in [
            ("--power-loss-scope", a.power_loss_scope.is_some()),
            ("--power-loss-from-start", a.power_loss_from_start),
        ] {
            if given && !faults.contains(&Fault::PowerLoss) {
                return Err(PlanError::Nemesis(format!(
                    "{flag}: only with power-loss in --nemesis (it would change nothing)"
                )));
            }
        }
        if let Some(name) = &a.name {
            store::validate_name(name).map_err(PlanError::Name)?;
        }
        let workload = Workload::new(a.workload, &a.ops, a.ops_per_key, a.concurrency, seed)
            .map_err(PlanError::Workload)?;
        let checks = match &a.checks {
            Some(list) => workload.pick_checks(list).map_err(PlanError::Workload)?,
            None => workload.checks().to_vec(),
        };
        let ops = workload.ops();
        targets::check(kind, a.backend, &faults, &ops).map_err(PlanError::Target)?;
        let partition_kinds = nemesis::partition::check_kinds(
            a.partition_kinds.as_deref(),
            faults.contains(&Fault::Partition),
            a.nodes,
        )
        .map_err(PlanError::Nemesis)?;
        let reconfigure_keep = nemesis::reconfigure::check(
            faults.contains(&Fault::Reconfigure),
            a.nodes,
            a.reconfigure_keep,
        )
        .map_err(PlanError::Nemesis)?;
        let common = Common {
            nodes: a.nodes,
            faults: &faults,
            seed,
            backend: a.backend,
            ops: &ops,
            concurrency: a.concurrency,
            reconfigure_keep,
        };
        let target = kind
            .spec(&a.target_args, common)
            .map_err(PlanError::Target)?;
        let quiet = match a.quiet {
            Some(q) if q >= 0.0 && q.is_finite() => Some(Duration::from_secs_f64(q)),
            Some(q) => return Err(PlanError::Quiet(q)),
            None => None,
        };
        if a.op_timeout_ms == 0 {
            return Err(PlanError::OpTimeout);
        }
        if a.test_count == 0 {
            return Err(PlanError::TestCount);
        }
        ssh_flags(a)?;
        Ok(RunPlan {
            nodes: node_ids(a.nodes),
            workload,
            checks,
            faults,
            link_faults,
            clock_modes,
            clock_skew_ms,
            power_loss_scope: a.power_loss_scope.unwrap_or_default(),
            power_loss_from_start: a.power_loss_from_start,
            partition_kinds,
            reconfigure_keep,
            time_limit,
            check_time_limit,
            interval,
            quiet,
            op_timeout: Duration::from_millis(a.op_timeout_ms),
            rate: a.rate,
            direct_clients: a.direct_clients,
            seed,
            backend: a.backend,
            target,
            hosts: a.hosts.clone(),
            keep_remote: a.keep_remote,
            ssh: None,
        })
    }

    /// What needs the machine: the backend's tools and privileges, then the target's programs
    /// and the configuration they accept, in their own words.
    pub fn probe(&mut self) -> Result<(), ProbeError> {
        if self.backend == BackendKind::Netns {
            backend::netns::preflight()?;
        }
        // Over ssh the mounts are on the hosts, which are checked when they are connected.
        if self.faults.contains(&Fault::PowerLoss) && self.backend != BackendKind::Ssh {
            crate::lazyfs::mount::preflight().map_err(ProbeError::Target)?;
        }
        self.target
            .prepare(&self.nodes)
            .map_err(ProbeError::Target)?;
        if self.backend == BackendKind::Ssh && self.ssh.is_none() {
            let needs = backend::ssh::Needs {
                // Every fault that cuts links (stale-restore cuts the restored node off first)
                // or redirects them through the link proxy.
                nft: self.faults.iter().any(|f| {
                    matches!(
                        f,
                        Fault::Partition | Fault::StaleRestore | Fault::Slow | Fault::Flaky
                    )
                }),
                // The node moves its own clock (an admin call); other stores get libfaketime.
                faketime: self.faults.contains(&Fault::ClockSkew)
                    && self.target.kind() != targets::TargetKind::Node,
                fuse: self.faults.contains(&Fault::PowerLoss),
            };
            let path = self
                .hosts
                .as_deref()
                .expect("validated: --backend ssh has --hosts");
            let hosts =
                backend::ssh::SshHosts::connect(path, self.nodes.len(), needs, self.keep_remote)
                    .map_err(ProbeError::Hosts)?;
            self.ssh = Some((std::sync::Arc::new(hosts), needs));
        }
        Ok(())
    }

    /// The quiet period after healing.
    pub fn quiet(&self) -> Duration {
        self.quiet.unwrap_or_else(|| self.target.default_quiet())
    }

    /// Whether a fault delays or resets links (the backend then routes peers so it can).
    pub fn link_faults_needed(&self) -> bool {
        self.faults.iter().any(|f| f.needs_link_faults())
    }
}

/// `--hosts` goes with `--backend ssh` and only with it; so does `--keep-remote`.
fn ssh_flags(a: &RunArgs) -> Result<(), PlanError> {
    if a.backend == BackendKind::Ssh {
        return match a.hosts {
            Some(_) => Ok(()),
            None => Err(PlanError::Backend(
                "--backend ssh: expected --hosts FILE, the hosts to run the members on".into(),
            )),
        };
    }
    if let Some(h) = &a.hosts {
        return Err(PlanError::Backend(format!(
            "--hosts {}: expected --backend ssh (it names the hosts that backend uses)",
            h.display()
        )));
    }
    if a.keep_remote {
        return Err(PlanError::Backend(
            "--keep-remote: expected --backend ssh (it keeps the members' folders on their hosts)"
                .into(),
        ));
    }
    Ok(())
}

/// `--clock-mode` (sorted) and `--clock-skew-ms` (MIN, MAX).
type ClockSettings = (Vec<ClockMode>, Option<(u64, u64)>);

/// `--clock-mode` and `--clock-skew-ms`, refused without `clock-skew` in `--nemesis` (they
/// would change nothing).
fn clock_settings(a: &RunArgs, faults: &[Fault]) -> Result<ClockSettings, PlanError> {
    for (flag, given) in [
        ("--clock-mode", &a.clock_mode),
        ("--clock-skew-ms", &a.clock_skew_ms),
    ] {
        if let Some(v) = given {
            if !faults.contains(&Fault::ClockSkew) {
                return Err(PlanError::Clock(format!(
                    "{flag} {v}: expected --nemesis to list clock-skew (it sets how clock-skew moves clocks)"
                )));
            }
        }
    }
    let modes = match &a.clock_mode {
        Some(m) => ClockMode::parse_list(m).map_err(PlanError::Clock)?,
        None => vec![ClockMode::Skew],
    };
    let range = a
        .clock_skew_ms
        .as_deref()
        .map(clock_skew::parse_range)
        .transpose()
        .map_err(PlanError::Clock)?;
    Ok((modes, range))
}

/// `quorate run`'s flags parsed from `argv` (without `run`), for unit tests.
#[cfg(test)]
pub(crate) fn test_args(argv: &[&str]) -> RunArgs {
    use clap::Parser;
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Flags {
        #[command(flatten)]
        a: RunArgs,
    }
    Flags::try_parse_from(argv).unwrap().a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(argv: &[&str]) -> Result<RunPlan, PlanError> {
        RunPlan::validate(&test_args(argv), 7)
    }

    #[test]
    fn validation_is_typed_and_touches_nothing() {
        assert_eq!(plan(&["--nodes", "0"]).unwrap_err(), PlanError::Nodes(0));
        assert_eq!(
            plan(&["--time-limit", "0"]).unwrap_err().to_string(),
            "--time-limit 0: expected a number of seconds > 0"
        );
        assert_eq!(
            plan(&["--test-count", "0"]).unwrap_err().to_string(),
            "--test-count 0: expected a number of runs >= 1"
        );
        for (argv, says) in [
            (
                &["--clock-mode", "bump"][..],
                "--clock-mode bump: expected --nemesis to list clock-skew",
            ),
            (
                &["--nemesis", "clock-skew", "--clock-mode", "bump,wobble"][..],
                "--clock-mode: unknown mode \"wobble\"",
            ),
            (
                &["--nemesis", "clock-skew", "--clock-skew-ms", "500..20"][..],
                "--clock-skew-ms 500..20: expected MIN..MAX",
            ),
            (
                &["--nemesis", "clock-skew", "--clock-skew-ms", "0..20"][..],
                "--clock-skew-ms 0..20: expected MIN..MAX",
            ),
            (
                &["--nemesis", "kill", "--clock-skew-ms", "4..8"][..],
                "--clock-skew-ms 4..8: expected --nemesis",
            ),
        ] {
            let e = plan(argv).unwrap_err().to_string();
            assert!(e.starts_with(says), "{argv:?}: {e}");
        }
        let p = plan(&[
            "--nemesis",
            "clock-skew",
            "--clock-mode",
            "strobe,bump",
            "--clock-skew-ms",
            "4..20000",
        ])
        .unwrap();
        assert_eq!(p.clock_modes, [ClockMode::Bump, ClockMode::Strobe]);
        assert_eq!(p.clock_skew_ms, Some((4, 20_000)));
        let p = plan(&["--nemesis", "clock-skew"]).unwrap();
        assert_eq!(
            (p.clock_modes, p.clock_skew_ms),
            (vec![ClockMode::Skew], None)
        );
        assert_eq!(
            plan(&["--quiet=-1"]).unwrap_err().to_string(),
            "--quiet -1: expected seconds >= 0"
        );
        // A missing node binary and netns without its tools are the probe's to find, not
        // validation's: validation needs nothing on the machine.
        let p = plan(&[
            "--node-bin",
            "/nonexistent/quorate-node",
            "--backend",
            "netns",
        ])
        .unwrap();
        assert_eq!(p.nodes.len(), 5);
        assert_eq!(p.faults, [Fault::Partition, Fault::Kill]);
        let mut p = plan(&["--node-bin", "/nonexistent/quorate-node"]).unwrap();
        let e = p.probe().unwrap_err().to_string();
        assert!(e.starts_with("node binary not found"), "{e}");
        // --hosts and --keep-remote go with --backend ssh, which needs --hosts; the file itself
        // is the probe's to read.
        for (argv, says) in [
            (
                &["--backend", "ssh"][..],
                "--backend ssh: expected --hosts FILE",
            ),
            (
                &["--hosts", "h.toml"][..],
                "--hosts h.toml: expected --backend ssh",
            ),
            (
                &["--keep-remote"][..],
                "--keep-remote: expected --backend ssh",
            ),
        ] {
            let e = plan(argv).unwrap_err().to_string();
            assert!(e.starts_with(says), "{argv:?}: {e}");
        }
        let p = plan(&["--backend", "ssh", "--hosts", "/nonexistent/h.toml"]).unwrap();
        assert_eq!(
            p.hosts.as_deref(),
            Some(std::path::Path::new("/nonexistent/h.toml"))
        );
        // reconfigure: refused on the node (its ring is fixed), below 5 members, and a keep
        // that keeps nobody or everybody.
        let e = plan(&["--nemesis", "reconfigure"]).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "--nemesis reconfigure is not supported with --target node: the \
                           node's ring is fixed"
            ),
            "{e}"
        );
        let g = ["--target", "garage", "--backend", "netns", "--nemesis"];
        let e = plan(&[&g[..], &["reconfigure", "--nodes", "4"]].concat())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--nemesis reconfigure with --nodes 4"), "{e}");
        let e = plan(&[&g[..], &["reconfigure", "--reconfigure-keep", "5"]].concat())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--reconfigure-keep 5 with --nodes 5"), "{e}");
        let p = plan(
            &[
                &g[..],
                &["reconfigure,partition", "--partition-kinds", "one,majority"],
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(
            (p.reconfigure_keep, p.partition_kinds),
            (3, vec!["one", "majority"])
        );
        let e = plan(&["--target", "garage", "--ops", "read,write,cas"]).unwrap_err();
        assert!(
            matches!(&e, PlanError::Target(m) if m.starts_with("--ops cas")),
            "{e}"
        );
    }
}
