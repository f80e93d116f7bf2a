//! `--target garage`'s flags, their validation (no I/O: [`GarageSpec::new`]), and what needs
//! the machine before a run starts ([`GarageSpec::prepare`]: the `garage` binary found and
//! run, libfaketime found when clock skew is asked for).

use super::REPLICATION;
use crate::nemesis::Fault;
use crate::targets::{faketime, Common};
use clap::{Args, ValueEnum};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Garage's `consistency_mode` (quorums for replication factor 3: write/read 2/2, 2/1, 1/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// Read and write quorums of 2: read-after-write holds.
    #[default]
    Consistent,
    /// Read quorum 1: reads may miss the latest write.
    Degraded,
    /// Read and write quorums of 1.
    Dangerous,
}

impl Consistency {
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Consistent => "consistent",
            Consistency::Degraded => "degraded",
            Consistency::Dangerous => "dangerous",
        }
    }
}

/// `quorate run`'s flags for `--target garage`.
#[derive(Args, Debug, Clone, Serialize)]
pub struct GarageArgs {
    /// Garage's consistency_mode (--target garage): consistent, degraded, dangerous.
    #[arg(long, value_enum, default_value = "consistent")]
    pub garage_consistency: Consistency,
    /// The garage binary (--target garage; default: `garage` on PATH).
    #[arg(long, env = "QUORATE_GARAGE_BIN")]
    pub garage_bin: Option<PathBuf>,
    /// Garage's `rpc_timeout_msec` (--target garage): how long a member waits on another
    /// member's RPC before counting it failed (default: Garage's own, 300000). A partition
    /// shorter than this only delays an op; a longer one fails it with a 503, a write
    /// usually in the quorum read that stamps it, before anything is written (see README).
    #[arg(long)]
    pub garage_rpc_timeout_ms: Option<u64>,
    /// Garage's `metadata_fsync` and `data_fsync` both on (--target garage): fsync the
    /// metadata database and data blocks before answering (default: Garage's own, both off).
    /// What it changes shows under `--nemesis power-loss`.
    #[arg(long)]
    pub garage_fsync: bool,
    /// Garage's `replication_factor` (--target garage): copies of each object, each on its
    /// own member (default 3; Garage's own Jepsen campaign used 2). 1 to --nodes.
    #[arg(long)]
    pub garage_replication: Option<usize>,
}

/// A validated garage configuration.
#[derive(Debug, Clone)]
pub struct GarageConfig {
    pub bin: PathBuf,
    pub version: String,
    pub consistency: Consistency,
    /// 32 bytes, hex: the cluster's shared RPC secret.
    pub rpc_secret: String,
    /// The admin API's master token.
    pub admin_token: String,
    /// libfaketime, when `clock-skew` is among the faults.
    pub libfaketime: Option<PathBuf>,
    /// `rpc_timeout_msec`, when set.
    pub rpc_timeout_ms: Option<u64>,
    /// `metadata_fsync` and `data_fsync` on (`--garage-fsync`).
    pub fsync: bool,
    /// `replication_factor`.
    pub replication: usize,
}

/// Find `garage`: `--garage-bin`/`QUORATE_GARAGE_BIN`, else `PATH`.
pub fn find_bin(explicit: Option<&Path>) -> Result<PathBuf, String> {
    const HOW: &str = "install it with `cargo install garage --locked` (a long build: see \
                       README) or pass --garage-bin PATH";
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "--garage-bin {} (or QUORATE_GARAGE_BIN): not a file; {HOW}",
                p.display()
            ))
        };
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("garage"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| format!("--target garage: `garage` is not on PATH; {HOW}"))
}

/// `garage --version`'s first line, or an error saying the binary does not run.
fn version_of(bin: &Path) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} --version: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

impl GarageArgs {
    /// The garage flags given explicitly (the others have defaults, so "given" cannot be told
    /// apart, and they mean nothing to another target anyway).
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.garage_rpc_timeout_ms.is_some() {
            v.push("--garage-rpc-timeout-ms");
        }
        if self.garage_fsync {
            v.push("--garage-fsync");
        }
        if self.garage_replication.is_some() {
            v.push("--garage-replication");
        }
        v
    }
}

/// The garage flags, checked; once prepared, the whole configuration.
#[derive(Debug, Clone)]
pub struct GarageSpec {
    pub consistency: Consistency,
    bin_flag: Option<PathBuf>,
    rpc_timeout_ms: Option<u64>,
    fsync: bool,
    replication: usize,
    clock_skew: bool,
    seed: u64,
    /// Set by [`GarageSpec::prepare`].
    pub ready: Option<GarageConfig>,
}

impl GarageSpec {
    /// Check the garage flags: `nodes` must hold `--garage-replication` copies, and a
    /// `reconfigure` window must keep as many storage members.
    pub fn new(args: &GarageArgs, common: Common) -> Result<GarageSpec, String> {
        let nodes = common.nodes;
        let replication = match args.garage_replication {
            None => REPLICATION,
            Some(r) if r == 0 || r > nodes.min(9) => {
                return Err(format!(
                    "--garage-replication {r} with --nodes {nodes}: expected 1 to {} (Garage's \
                     replication_factor: copies of each object, each on its own member)",
                    nodes.clamp(1, 9)
                ))
            }
            Some(r) => r,
        };
        if !(replication..=9).contains(&nodes) {
            return Err(format!(
                "--nodes {nodes} with --target garage: expected {replication} to 9 \
                 (replication_factor is {replication}, so fewer members cannot hold every copy)"
            ));
        }
        let keep = common.reconfigure_keep;
        if common.faults.contains(&Fault::Reconfigure) && keep < replication {
            return Err(format!(
                "--reconfigure-keep {keep} with --garage-replication {replication}: Garage lays \
                 each object on {replication} storage members, so a layout keeping {keep} cannot \
                 be applied; expected --reconfigure-keep {replication} or more"
            ));
        }
        if args.garage_rpc_timeout_ms == Some(0) {
            return Err(
                "--garage-rpc-timeout-ms 0: expected a positive number of milliseconds".into(),
            );
        }
        Ok(GarageSpec {
            consistency: args.garage_consistency,
            bin_flag: args.garage_bin.clone(),
            rpc_timeout_ms: args.garage_rpc_timeout_ms,
            fsync: args.garage_fsync,
            replication,
            clock_skew: common.faults.contains(&Fault::ClockSkew),
            seed: common.seed,
            ready: None,
        })
    }

    /// The binary must exist and run; clock skew needs libfaketime. Returns the configuration
    /// (also kept in `ready`).
    pub fn prepare(&mut self) -> Result<GarageConfig, String> {
        let bin = find_bin(self.bin_flag.as_deref())?;
        let version = version_of(&bin)?;
        let libfaketime = if self.clock_skew {
            Some(faketime::find_library()?)
        } else {
            None
        };
        // Secrets of a throw-away test cluster: drawn from the seed so a run is reproducible.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ 0x6761_7261_6765);
        let mut hex =
            |n: usize| -> String { (0..n).map(|_| format!("{:02x}", rng.gen::<u8>())).collect() };
        let cfg = GarageConfig {
            bin,
            version,
            consistency: self.consistency,
            rpc_secret: hex(32),
            admin_token: hex(16),
            libfaketime,
            rpc_timeout_ms: self.rpc_timeout_ms,
            fsync: self.fsync,
            replication: self.replication,
        };
        self.ready = Some(cfg.clone());
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(bin: Option<&str>, replication: Option<usize>) -> GarageArgs {
        GarageArgs {
            garage_consistency: Consistency::Consistent,
            garage_bin: bin.map(Into::into),
            garage_rpc_timeout_ms: None,
            garage_fsync: false,
            garage_replication: replication,
        }
    }

    fn common(nodes: usize, faults: &[Fault], keep: usize) -> Common<'_> {
        Common {
            nodes,
            faults,
            seed: 1,
            backend: crate::backend::BackendKind::Netns,
            ops: &[],
            concurrency: 1,
            reconfigure_keep: keep,
        }
    }

    #[test]
    fn a_missing_binary_says_how_to_install_it() {
        let e = find_bin(Some(Path::new("/nonexistent/garage"))).unwrap_err();
        assert!(e.contains("cargo install garage --locked"), "{e}");
        let e = GarageSpec::new(&args(Some("/nonexistent/garage"), None), common(3, &[], 3))
            .and_then(|mut s| s.prepare())
            .unwrap_err();
        assert!(e.contains("--garage-bin"), "{e}");
        let e = GarageSpec::new(&args(None, None), common(2, &[], 3)).unwrap_err();
        assert!(e.starts_with("--nodes 2"), "{e}");
    }

    #[test]
    fn replication_is_checked_against_the_members_and_reconfigure_keep() {
        let spec = |r, nodes, faults: &[Fault], keep| {
            GarageSpec::new(&args(None, r), common(nodes, faults, keep)).map(|s| s.replication)
        };
        assert_eq!(spec(None, 3, &[], 3), Ok(3));
        assert_eq!(spec(Some(2), 5, &[], 3), Ok(2));
        // Two members are enough for two copies.
        assert_eq!(spec(Some(2), 2, &[], 3), Ok(2));
        for (r, nodes) in [(0, 5), (6, 5), (4, 3)] {
            let e = spec(Some(r), nodes, &[], 3).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "--garage-replication {r} with --nodes {nodes}: expected 1 to"
                )),
                "{e}"
            );
        }
        let e = spec(Some(3), 5, &[Fault::Reconfigure], 2).unwrap_err();
        assert!(
            e.starts_with("--reconfigure-keep 2 with --garage-replication 3"),
            "{e}"
        );
        assert_eq!(spec(Some(2), 5, &[Fault::Reconfigure], 2), Ok(2));
        // The flag is one of those refused for another target.
        assert_eq!(args(None, Some(2)).given(), ["--garage-replication"]);
    }
}
