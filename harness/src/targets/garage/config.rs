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

/// The Garage generations the target speaks, found from `garage --version`: each reads its
/// own configuration and serves its own admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Generation {
    /// 0.9.x: `replication_mode` ("1", "2", "2-dangerous", "3", "3-degraded",
    /// "3-dangerous"), admin API v1 (`/v1/status` lists `knownNodes`), one layout version
    /// in force at a time.
    V0_9,
    /// 1.x: `replication_factor` + `consistency_mode`, admin API v1 (`/v1/status` lists
    /// `nodes`; no layout history).
    V1,
    /// 2.x: `replication_factor` + `consistency_mode`, admin API v2 (`/v2/<Call>`).
    V2,
}

/// The versions named in every refusal.
pub const SUPPORTED: &str = "0.9.x, 1.x and 2.x (tested: 0.9.4, 2.5.0)";

/// The version number in `garage --version`'s first line (`garage cargo:0.9.4 [...]`,
/// `garage v1.0.1 [...]`) and the generation that speaks it; other versions are refused by
/// name.
pub fn parse_version(line: &str) -> Result<(String, Generation), String> {
    let word = line
        .split_whitespace()
        .skip_while(|w| *w != "garage")
        .nth(1)
        .ok_or_else(|| format!("garage --version printed {line:?}: expected `garage <version>`"))?;
    let number = word
        .strip_prefix("cargo:")
        .or_else(|| word.strip_prefix('v'))
        .unwrap_or(word);
    let mut parts = number
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u64>());
    let (major, minor) = match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b),
        _ => {
            return Err(format!(
                "garage --version printed {line:?}: no version number in {word:?}"
            ))
        }
    };
    let generation = match (major, minor) {
        (0, 9) => Generation::V0_9,
        (1, _) => Generation::V1,
        (2, _) => Generation::V2,
        _ => {
            return Err(format!(
                "garage {number}: not supported by --target garage (it speaks {SUPPORTED}; \
                 each generation has its own configuration and admin API, and others are unknown to it)"
            ))
        }
    };
    Ok((number.to_string(), generation))
}

/// Garage 0.9's `replication_mode` for `--garage-replication` and `--garage-consistency`,
/// or why 0.9 cannot express them.
pub fn replication_mode(
    version: &str,
    replication: usize,
    consistency: Consistency,
) -> Result<&'static str, String> {
    use Consistency::*;
    match (replication, consistency) {
        (1, Consistent) => Ok("1"),
        (2, Consistent) => Ok("2"),
        (2, Dangerous) => Ok("2-dangerous"),
        (3, Consistent) => Ok("3"),
        (3, Degraded) => Ok("3-degraded"),
        (3, Dangerous) => Ok("3-dangerous"),
        (r, c) => Err(format!(
            "--garage-replication {r} with --garage-consistency {}: garage {version} cannot \
             express it (its replication_mode is one of 1, 2, 2-dangerous, 3, 3-degraded, \
             3-dangerous)",
            c.name()
        )),
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
    /// `garage --version`'s first line.
    pub version: String,
    /// Which configuration and admin API the binary speaks.
    pub generation: Generation,
    /// 0.9's `replication_mode` (in place of `replication_factor` and `consistency_mode`).
    pub replication_mode: Option<&'static str>,
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
    crate::targets::find_program(explicit, "garage", "garage", HOW)
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
        let (number, generation) =
            parse_version(&version).map_err(|e| format!("{}: {e}", bin.display()))?;
        let replication_mode = match generation {
            Generation::V0_9 => Some(replication_mode(
                &number,
                self.replication,
                self.consistency,
            )?),
            Generation::V1 | Generation::V2 => None,
        };
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
            generation,
            replication_mode,
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
    fn versions_are_parsed_and_old_ones_refused_by_name() {
        let ok = |l: &str| parse_version(l).unwrap();
        assert_eq!(
            ok("garage cargo:2.5.0 [features: bundled-libs, k2v, lmdb]"),
            ("2.5.0".to_string(), Generation::V2)
        );
        assert_eq!(
            ok("garage cargo:0.9.4 [features: k2v, lmdb]"),
            ("0.9.4".to_string(), Generation::V0_9)
        );
        assert_eq!(ok("garage v0.9.0"), ("0.9.0".to_string(), Generation::V0_9));
        assert_eq!(
            ok("garage v1.0.1-rc1"),
            ("1.0.1-rc1".to_string(), Generation::V1)
        );
        for old in ["garage v0.8.4", "garage cargo:0.7.3", "garage v3.0.0"] {
            let e = parse_version(old).unwrap_err();
            assert!(e.contains("not supported by --target garage"), "{e}");
            assert!(e.contains("0.9.x, 1.x and 2.x"), "{e}");
        }
        for junk in ["", "garage", "something else", "garage dev"] {
            let e = parse_version(junk).unwrap_err();
            assert!(e.starts_with("garage --version printed"), "{e}");
        }
    }

    #[test]
    fn garage_0_9_gets_a_replication_mode_or_a_refusal() {
        use Consistency::*;
        for (r, c, want) in [
            (1, Consistent, "1"),
            (2, Consistent, "2"),
            (2, Dangerous, "2-dangerous"),
            (3, Consistent, "3"),
            (3, Degraded, "3-degraded"),
            (3, Dangerous, "3-dangerous"),
        ] {
            assert_eq!(replication_mode("0.9.4", r, c), Ok(want));
        }
        for (r, c) in [
            (2, Degraded),
            (1, Dangerous),
            (4, Consistent),
            (5, Degraded),
        ] {
            let e = replication_mode("0.9.4", r, c).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "--garage-replication {r} with --garage-consistency {}: garage 0.9.4 \
                     cannot express it",
                    c.name()
                )),
                "{e}"
            );
        }
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
