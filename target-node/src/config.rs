//! The node's configuration: the command line, presets, and `validate()`.
//!
//! Presets fill in what the command line leaves out; an explicit flag always wins. Nonsense
//! (R > N, W > N, N larger than the cluster) is refused with a message, never clamped: a
//! harness that asked for R=4 on three replicas must hear about it, not test something else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("--peers entry {0:?}: expected ID=HOST:PORT")]
    BadPeer(String),
    #[error("--peers names node {0:?} twice")]
    DuplicatePeer(String),
    #[error("--id {0:?} is not in --peers (the list must include this node)")]
    SelfNotInPeers(String),
    #[error("--{name} {value}: must be at least 1")]
    Zero { name: &'static str, value: usize },
    #[error(
        "--r {r} is greater than --n {n}: a read cannot wait for more replicas than hold the key"
    )]
    RGreaterThanN { r: usize, n: usize },
    #[error(
        "--w {w} is greater than --n {n}: a write cannot wait for more replicas than hold the key"
    )]
    WGreaterThanN { w: usize, n: usize },
    #[error("--n {n} is greater than the cluster size {size} (--peers)")]
    NGreaterThanCluster { n: usize, size: usize },
    #[error("--{name} must be greater than 0 ms")]
    ZeroTimeout { name: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Coordinator stamps wall clock + offset (µs); no read phase. Skew loses updates.
    Lww,
    /// ABD: read the highest tag from a quorum, write with a higher one.
    TwoPhase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadRepair {
    /// Never write back on reads.
    Off,
    /// Answer first, then write the newest back to stale replicas in the background.
    Async,
    /// Before answering, write the newest back until at least W replicas hold it (ABD).
    Blocking,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fsync {
    /// Every acknowledged write is fsynced (redb durable commit) first.
    Always,
    /// Commits are not fsynced; a SIGKILL may lose acknowledged writes.
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// n3 r2 w2, two-phase, blocking repair, strict quorum: linearizable reads/writes.
    Abd,
    /// n3 r2 w2, lww, blocking repair: linearizable while clocks agree, loses updates under skew.
    Lww,
    /// n3 r2 w2, lww, async repair: stale reads under concurrency and faults.
    Strict,
    /// n3 r2 w2, lww, async repair, sloppy quorum + hinted handoff.
    Dynamo,
    /// n3 r1 w1, lww, async repair: stale reads often.
    Weak,
}

const AFTER_HELP: &str = "\
Presets (explicit flags override):
  preset  n,r,w  write-mode  read-repair  sloppy  expected under faults
  abd     3,2,2  two-phase   blocking     off     linearizable (read/write)
  lww     3,2,2  lww         blocking     off     linearizable while clocks agree; loses updates under skew
  strict  3,2,2  lww         async        off     stale reads under concurrency and faults
  dynamo  3,2,2  lww         async        on      stale reads during partitions; hints heal later
  weak    3,1,1  lww         async        off     stale reads often
Without --preset the defaults are those of `strict`.

POST /kv/{key}/cas is NOT atomic: the coordinator reads a quorum, compares, then writes, as
Dynamo-style stores without consensus do. Concurrent cas operations can both succeed; the
checker is expected to catch it.";

/// The command line. Flags a preset can set are `Option`s so that "not given" is visible.
#[derive(Parser, Debug, Clone)]
#[command(name = "quorate-node", version, about = "The reference leaderless (Dynamo-style) node that quorate tests", after_help = AFTER_HELP)]
pub struct Cli {
    /// This node's id (must appear in --peers).
    #[arg(long)]
    pub id: String,
    /// Address to listen on, e.g. 127.0.0.1:7001.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The whole cluster, this node included: ID=HOST:PORT,… (the addresses this node dials;
    /// ring positions hash the ids, never the addresses).
    #[arg(long, value_delimiter = ',', required = true)]
    pub peers: Vec<String>,
    /// Directory for the redb database and hints (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Named bundle of settings; see the table below.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Replicas per key [default: 3].
    #[arg(long)]
    pub n: Option<usize>,
    /// Read quorum [default: 2].
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum [default: 2].
    #[arg(long)]
    pub w: Option<usize>,
    /// How writes are versioned [default: lww].
    #[arg(long, value_enum)]
    pub write_mode: Option<WriteMode>,
    /// Read repair [default: async].
    #[arg(long, value_enum)]
    pub read_repair: Option<ReadRepair>,
    /// Merkle-tree anti-entropy period with each peer; 0 turns it off.
    #[arg(long, default_value_t = 1000)]
    pub anti_entropy_interval_ms: u64,
    /// Sloppy quorum: unreachable home nodes are replaced by the next healthy nodes on the
    /// ring, which keep hints durably [default: off; `--sloppy-quorum` alone means on].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub sloppy_quorum: Option<bool>,
    /// How often stored hints are offered back to their home nodes.
    #[arg(long, default_value_t = 500)]
    pub handoff_interval_ms: u64,
    /// Fsync policy for acknowledged writes.
    #[arg(long, value_enum, default_value_t = Fsync::Always)]
    pub fsync: Fsync,
    /// Skews this node's LWW clock (also PUT /admin/clock-offset {"ms": N} at run time).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset_ms: i64,
    /// Coordinator's deadline for reaching a quorum; past it the client gets 503.
    #[arg(long, default_value_t = 1000)]
    pub request_timeout_ms: u64,
    /// Deadline of each call to a replica (connect included).
    #[arg(long, default_value_t = 300)]
    pub replica_timeout_ms: u64,
    /// Virtual nodes per node on the ring.
    #[arg(long, default_value_t = 64)]
    pub vnodes: usize,
}

/// The resolved configuration every part of the node reads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    pub id: String,
    pub listen: SocketAddr,
    /// Node id → address this node dials (sorted by id).
    pub peers: BTreeMap<String, String>,
    pub data_dir: PathBuf,
    /// Replicas per key. Default 3.
    pub n: usize,
    /// Read quorum. Default 2.
    pub r: usize,
    /// Write quorum. Default 2.
    pub w: usize,
    /// Default `lww`.
    pub write_mode: WriteMode,
    /// Default `async`.
    pub read_repair: ReadRepair,
    /// Default 1000; 0 = off.
    pub anti_entropy_interval_ms: u64,
    /// Default off.
    pub sloppy_quorum: bool,
    /// Default 500.
    pub handoff_interval_ms: u64,
    /// Default `always`.
    pub fsync: Fsync,
    /// Default 0.
    pub clock_offset_ms: i64,
    /// Default 1000.
    pub request_timeout_ms: u64,
    /// Default 300.
    pub replica_timeout_ms: u64,
    /// Default 64.
    pub vnodes: usize,
}

struct PresetValues {
    n: usize,
    r: usize,
    w: usize,
    write_mode: WriteMode,
    read_repair: ReadRepair,
    sloppy: bool,
}

fn preset_values(p: Preset) -> PresetValues {
    let base = PresetValues {
        n: 3,
        r: 2,
        w: 2,
        write_mode: WriteMode::Lww,
        read_repair: ReadRepair::Async,
        sloppy: false,
    };
    match p {
        Preset::Abd => PresetValues {
            write_mode: WriteMode::TwoPhase,
            read_repair: ReadRepair::Blocking,
            ..base
        },
        Preset::Lww => PresetValues {
            read_repair: ReadRepair::Blocking,
            ..base
        },
        Preset::Strict => base,
        Preset::Dynamo => PresetValues {
            sloppy: true,
            ..base
        },
        Preset::Weak => PresetValues { r: 1, w: 1, ..base },
    }
}

impl Cli {
    /// Applies the preset under the explicit flags, then validates.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let p = preset_values(self.preset.unwrap_or(Preset::Strict));
        let mut peers = BTreeMap::new();
        for entry in &self.peers {
            let (id, addr) = entry
                .split_once('=')
                .filter(|(id, addr)| !id.is_empty() && addr.contains(':'))
                .ok_or_else(|| ConfigError::BadPeer(entry.clone()))?;
            if peers.insert(id.to_string(), addr.to_string()).is_some() {
                return Err(ConfigError::DuplicatePeer(id.to_string()));
            }
        }
        let cfg = Config {
            id: self.id,
            listen: self.listen,
            peers,
            data_dir: self.data_dir,
            n: self.n.unwrap_or(p.n),
            r: self.r.unwrap_or(p.r),
            w: self.w.unwrap_or(p.w),
            write_mode: self.write_mode.unwrap_or(p.write_mode),
            read_repair: self.read_repair.unwrap_or(p.read_repair),
            anti_entropy_interval_ms: self.anti_entropy_interval_ms,
            sloppy_quorum: self.sloppy_quorum.unwrap_or(p.sloppy),
            handoff_interval_ms: self.handoff_interval_ms,
            fsync: self.fsync,
            clock_offset_ms: self.clock_offset_ms,
            request_timeout_ms: self.request_timeout_ms,
            replica_timeout_ms: self.replica_timeout_ms,
            vnodes: self.vnodes,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl Config {
    /// Refuses settings that cannot mean what they say.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.peers.contains_key(&self.id) {
            return Err(ConfigError::SelfNotInPeers(self.id.clone()));
        }
        for (name, value) in [
            ("n", self.n),
            ("r", self.r),
            ("w", self.w),
            ("vnodes", self.vnodes),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { name, value });
            }
        }
        if self.r > self.n {
            return Err(ConfigError::RGreaterThanN {
                r: self.r,
                n: self.n,
            });
        }
        if self.w > self.n {
            return Err(ConfigError::WGreaterThanN {
                w: self.w,
                n: self.n,
            });
        }
        if self.n > self.peers.len() {
            return Err(ConfigError::NGreaterThanCluster {
                n: self.n,
                size: self.peers.len(),
            });
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::ZeroTimeout {
                name: "request-timeout-ms",
            });
        }
        if self.replica_timeout_ms == 0 {
            return Err(ConfigError::ZeroTimeout {
                name: "replica-timeout-ms",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut args = vec![
            "quorate-node",
            "--id",
            "n1",
            "--listen",
            "127.0.0.1:7001",
            "--peers",
            "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003",
            "--data-dir",
            "/tmp/x",
        ];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args).expect("parses").into_config()
    }

    #[test]
    fn defaults_are_strict() {
        let c = cli(&[]).unwrap();
        assert_eq!((c.n, c.r, c.w), (3, 2, 2));
        assert_eq!(c.write_mode, WriteMode::Lww);
        assert_eq!(c.read_repair, ReadRepair::Async);
        assert!(!c.sloppy_quorum);
        assert_eq!(c.fsync, Fsync::Always);
        assert_eq!(c.anti_entropy_interval_ms, 1000);
    }

    #[test]
    fn abd_preset_and_override() {
        let c = cli(&["--preset", "abd"]).unwrap();
        assert_eq!(c.write_mode, WriteMode::TwoPhase);
        assert_eq!(c.read_repair, ReadRepair::Blocking);
        let c = cli(&["--preset", "abd", "--read-repair", "off", "--r", "3"]).unwrap();
        assert_eq!(c.read_repair, ReadRepair::Off);
        assert_eq!(c.r, 3);
        let c = cli(&["--preset", "dynamo"]).unwrap();
        assert!(c.sloppy_quorum);
        let c = cli(&["--preset", "dynamo", "--sloppy-quorum", "false"]).unwrap();
        assert!(!c.sloppy_quorum);
        let c = cli(&["--sloppy-quorum"]).unwrap();
        assert!(c.sloppy_quorum);
        let c = cli(&["--preset", "weak"]).unwrap();
        assert_eq!((c.r, c.w), (1, 1));
    }

    #[test]
    fn refuses_never_clamps() {
        assert_eq!(
            cli(&["--r", "4"]).unwrap_err(),
            ConfigError::RGreaterThanN { r: 4, n: 3 }
        );
        assert_eq!(
            cli(&["--w", "4"]).unwrap_err(),
            ConfigError::WGreaterThanN { w: 4, n: 3 }
        );
        assert_eq!(
            cli(&["--n", "4", "--r", "1", "--w", "1"]).unwrap_err(),
            ConfigError::NGreaterThanCluster { n: 4, size: 3 }
        );
        assert!(matches!(
            cli(&["--r", "0"]).unwrap_err(),
            ConfigError::Zero { .. }
        ));
        assert!(cli(&["--clock-offset-ms", "-500"]).is_ok());
    }

    #[test]
    fn peers_must_name_self_once() {
        let bad = Cli::try_parse_from([
            "q",
            "--id",
            "n9",
            "--listen",
            "127.0.0.1:1",
            "--peers",
            "n1=127.0.0.1:1",
            "--data-dir",
            "d",
        ])
        .unwrap()
        .into_config();
        assert_eq!(bad.unwrap_err(), ConfigError::SelfNotInPeers("n9".into()));
        let dup = Cli::try_parse_from([
            "q",
            "--id",
            "n1",
            "--listen",
            "127.0.0.1:1",
            "--peers",
            "n1=127.0.0.1:1,n1=127.0.0.1:2",
            "--data-dir",
            "d",
        ])
        .unwrap()
        .into_config();
        assert_eq!(dup.unwrap_err(), ConfigError::DuplicatePeer("n1".into()));
    }
}
