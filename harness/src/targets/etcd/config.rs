//! `--target etcd`'s flags, their validation (no I/O: [`EtcdSpec::new`]), and what needs the
//! machine before a run starts ([`EtcdSpec::prepare`]: the `etcd` binary found and run).

use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `quorate run`'s flags for `--target etcd`.
#[derive(Args, Debug, Clone, Default, Serialize)]
pub struct EtcdArgs {
    /// Serializable reads (--target etcd): each member answers a read from its own copy,
    /// without asking the leader, so a read may be stale (etcd says so). Default:
    /// linearizable reads.
    #[arg(long)]
    pub etcd_serializable: bool,
    /// The etcd binary (--target etcd; default: `etcd` on PATH, /usr/bin/etcd on Debian).
    #[arg(long, env = "QUORATE_ETCD_BIN")]
    pub etcd_bin: Option<PathBuf>,
}

impl EtcdArgs {
    /// The etcd flags given explicitly (`--etcd-bin` may come from the environment, so it
    /// cannot tell "given" apart, and it means nothing to another target anyway).
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.etcd_serializable {
            v.push("--etcd-serializable");
        }
        v
    }
}

/// What a missing or broken etcd binary's message ends with.
const HOW: &str = "install it with `apt-get install etcd-server` (scripts/install-deps.sh \
                   does) or pass --etcd-bin PATH";

/// Find `etcd`: `--etcd-bin`/`QUORATE_ETCD_BIN`, else `PATH`.
pub fn find_bin(explicit: Option<&Path>) -> Result<PathBuf, String> {
    crate::targets::find_program(explicit, "etcd", "etcd", HOW)
}

/// The version `etcd --version` prints (`3.4.23` from `etcd Version: 3.4.23`), or an error
/// saying the binary does not run.
fn version_of(bin: &Path) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} --version: {e}; {HOW}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} --version failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_version(&text).ok_or_else(|| {
        format!(
            "{} --version: expected a line `etcd Version: X.Y.Z`, got {:?}; is it etcd?",
            bin.display(),
            text.trim()
        )
    })
}

/// `X.Y.Z` from `etcd --version`'s output.
pub fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The etcd flags, checked; once prepared, the binary and its version too.
#[derive(Debug, Clone)]
pub struct EtcdSpec {
    pub serializable: bool,
    bin_flag: Option<PathBuf>,
    /// Set by [`EtcdSpec::prepare`]: the binary and its version.
    pub ready: Option<(PathBuf, String)>,
}

/// Raft needs a majority; more than 9 members is not a test quorate runs.
pub const MAX_NODES: usize = 9;

impl EtcdSpec {
    /// Check the etcd flags against the cluster size.
    pub fn new(args: &EtcdArgs, nodes: usize) -> Result<EtcdSpec, String> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(format!(
                "--nodes {nodes} with --target etcd: expected 1 to {MAX_NODES} members"
            ));
        }
        Ok(EtcdSpec {
            serializable: args.etcd_serializable,
            bin_flag: args.etcd_bin.clone(),
            ready: None,
        })
    }

    /// The binary must exist and say it is etcd.
    pub fn prepare(&mut self) -> Result<(), String> {
        let bin = find_bin(self.bin_flag.as_deref())?;
        let version = version_of(&bin)?;
        self.ready = Some((bin, version));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_install_it() {
        let args = EtcdArgs {
            etcd_serializable: false,
            etcd_bin: Some("/nonexistent/etcd".into()),
        };
        let e = EtcdSpec::new(&args, 3)
            .and_then(|mut s| s.prepare())
            .unwrap_err();
        assert!(
            e.starts_with("--etcd-bin /nonexistent/etcd")
                && e.contains("apt-get install etcd-server"),
            "{e}"
        );
        // A program that is not etcd is refused by what it prints.
        let e = find_bin(Some(Path::new("/bin/true")))
            .and_then(|b| version_of(&b))
            .unwrap_err();
        assert!(e.contains("etcd Version"), "{e}");
        let e = EtcdSpec::new(&EtcdArgs::default(), 10).unwrap_err();
        assert!(e.starts_with("--nodes 10 with --target etcd"), "{e}");
    }

    #[test]
    fn the_version_is_read_from_its_line() {
        let out = "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n";
        assert_eq!(parse_version(out).as_deref(), Some("3.4.23"));
        assert_eq!(parse_version("garage v2.5.0"), None);
    }
}
