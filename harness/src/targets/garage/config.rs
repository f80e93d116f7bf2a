//! `--target garage`'s flags, their validation (no I/O: [`GarageSpec::new`]), and what needs
//! the machine before a run starts ([`GarageSpec::prepare`]: the `garage` binary found and
//! run, libfaketime found when clock skew is asked for).

use super::REPLICATION;
use crate::targets::faketime;
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
    clock_skew: bool,
    seed: u64,
    /// Set by [`GarageSpec::prepare`].
    pub ready: Option<GarageConfig>,
}

impl GarageSpec {
    /// Check the garage flags: `nodes` must hold `REPLICATION` copies.
    pub fn new(
        args: &GarageArgs,
        nodes: usize,
        clock_skew: bool,
        seed: u64,
    ) -> Result<GarageSpec, String> {
        if !(REPLICATION..=9).contains(&nodes) {
            return Err(format!(
                "--nodes {nodes} with --target garage: expected 3 to 9 (replication_factor is \
                 {REPLICATION}, so fewer members cannot hold every copy)"
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
            clock_skew,
            seed,
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
        };
        self.ready = Some(cfg.clone());
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_install_it() {
        let e = find_bin(Some(Path::new("/nonexistent/garage"))).unwrap_err();
        assert!(e.contains("cargo install garage --locked"), "{e}");
        let e = GarageSpec::new(
            &GarageArgs {
                garage_consistency: Consistency::Consistent,
                garage_bin: Some("/nonexistent/garage".into()),
                garage_rpc_timeout_ms: None,
                garage_fsync: false,
            },
            3,
            false,
            1,
        )
        .and_then(|mut s| s.prepare())
        .unwrap_err();
        assert!(e.contains("--garage-bin"), "{e}");
        let e = GarageSpec::new(
            &GarageArgs {
                garage_consistency: Consistency::Consistent,
                garage_bin: None,
                garage_rpc_timeout_ms: None,
                garage_fsync: false,
            },
            2,
            false,
            1,
        )
        .unwrap_err();
        assert!(e.starts_with("--nodes 2"), "{e}");
    }
}
