//! Talking to the host: running `ip` and `nft` with a deadline, the preflight check, the
//! names this backend gives things and the sweep of dead runs' leftovers.

use super::super::{BackendError, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one `ip`/`nft` command may take before it is killed and reported.
const CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// Name prefixes: namespace, bridge, root end of a veth. All start `qr` so a sweep never
/// mistakes another tool's interfaces (OpenStack's `qbr…`/`qvo…`, say) for ours.
pub(super) const NS_PREFIX: &str = "qrt";
pub(super) const BRIDGE_PREFIX: &str = "qrb";
pub(super) const VETH_PREFIX: &str = "qrv";
pub(super) const MAX_NODES: usize = 200;

/// What went wrong in the backend's own machinery (surfaced as [`BackendError::Io`]).
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("`{cmd}` did not finish within {} s and was killed", CMD_TIMEOUT.as_secs())]
    Timeout { cmd: String },
    #[error("`{cmd}` could not be started: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no free link-local subnet 169.254.X.0/24 on this host (all 252 candidates in use)")]
    NoSubnet,
    #[error("26 netns clusters are already running in this process")]
    NoTag,
    #[error("node id `{0}` must be 1–32 characters of A–Z, a–z, 0–9, `_` or `-`")]
    BadNodeId(String),
    #[error("{0} nodes requested; the netns backend supports at most {MAX_NODES}")]
    TooManyNodes(usize),
}

impl From<NetnsError> for BackendError {
    fn from(e: NetnsError) -> BackendError {
        BackendError::io("netns backend", std::io::Error::other(e))
    }
}

/// Check the preconditions: root, and `ip` and `nft` on `PATH`.
pub fn preflight() -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(BackendError::Unsupported(
            "--backend netns needs root (network namespaces and nftables rules); run as root or use --backend local".into(),
        ));
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(BackendError::Unsupported(format!(
                "--backend netns needs `{tool}` on PATH (package {package}); install it or use --backend local"
            )));
        }
    }
    Ok(())
}

/// Run a command to completion (bounded by [`CMD_TIMEOUT`]) and return its stdout; a non-zero
/// exit is an error naming the command and its stderr.
pub(super) fn run(args: &[&str], input: Option<&str>) -> std::result::Result<String, NetnsError> {
    let cmd = args.join(" ");
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetnsError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A failed write shows up as the command's own error below.
        let _ = stdin.write_all(text.as_bytes());
    }
    // Read both pipes on threads so a chatty command cannot block on a full pipe while we
    // wait for it with a deadline.
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + CMD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        None => Err(NetnsError::Timeout { cmd }),
        Some(s) if s.success() => Ok(stdout),
        Some(s) => Err(NetnsError::Command {
            cmd,
            status: s.to_string(),
            stderr: stderr.trim().to_string(),
        }),
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// `nft -f -` inside a namespace: a script on stdin needs no shell quoting.
pub(super) fn nft_in(ns: &str, script: &str) -> std::result::Result<String, NetnsError> {
    run(&["ip", "netns", "exec", ns, "nft", "-f", "-"], Some(script))
}

/// For cleanup: a "does not exist" failure means the work is already done.
pub(super) fn ignore_missing(
    r: std::result::Result<String, NetnsError>,
) -> std::result::Result<(), NetnsError> {
    match r {
        Err(NetnsError::Command { stderr, .. })
            if stderr.contains("Cannot find device")
                || stderr.contains("No such file")
                || stderr.contains("does not exist") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// A name of ours, parsed: which pid made it.
fn owner_pid(name: &str) -> Option<i32> {
    let rest = [NS_PREFIX, BRIDGE_PREFIX, VETH_PREFIX]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let letter = rest.as_bytes().get(digits)?;
    if digits == 0 || !letter.is_ascii_lowercase() {
        return None;
    }
    let after = &rest[digits + 1..];
    let shape_ok = if name.starts_with(NS_PREFIX) {
        after.starts_with('-') && after.len() > 1
    } else if name.starts_with(BRIDGE_PREFIX) {
        after.is_empty()
    } else {
        !after.is_empty() && after.bytes().all(|b| b.is_ascii_digit())
    };
    if !shape_ok {
        return None;
    }
    rest[..digits].parse().ok()
}

/// Remove the namespaces, bridges and veths of earlier runs whose harness is gone (killed
/// before it could clean up). Names of live harnesses, this one included, are left alone.
/// Returns what was removed.
pub fn sweep_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let list = run(&["ip", "netns", "list"], None)?;
    for line in list.lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        match owner_pid(ns) {
            Some(pid) if !crate::backend::procs::pid_alive(pid) => {
                kill_all_in(ns);
                ignore_missing(run(&["ip", "netns", "delete", ns], None))?;
                removed.push(ns.to_string());
            }
            _ => {}
        }
    }
    // Links after namespaces: most veths vanished with their namespace just now.
    let links = run(&["ip", "-o", "link", "show"], None)?;
    for line in links.lines() {
        // "7: qrv123a1@if2: <BROADCAST,…" → "qrv123a1"
        let Some(name) = line.split(':').nth(1).map(|n| n.trim()) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        match owner_pid(name) {
            Some(pid) if !crate::backend::procs::pid_alive(pid) => {
                ignore_missing(run(&["ip", "link", "delete", name], None))?;
                removed.push(name.to_string());
            }
            _ => {}
        }
    }
    Ok(removed)
}

/// SIGKILL every process inside a namespace (one pass: the nodes start no children).
pub(super) fn kill_all_in(ns: &str) {
    if let Ok(pids) = run(&["ip", "netns", "pids", ns], None) {
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Is `169.254.<x>.0/24` already used by an address or a route in the root namespace?
pub(super) fn subnet_in_use(x: u8, addrs: &str, routes: &str) -> bool {
    let needle = format!("169.254.{x}.");
    addrs.contains(&needle) || routes.contains(&needle)
}

pub(super) fn valid_node_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_pid() {
        assert_eq!(owner_pid("qrt1234a-n1"), Some(1234));
        assert_eq!(owner_pid("qrb1234a"), Some(1234));
        assert_eq!(owner_pid("qrv4194304z12"), Some(4194304));
        // Not ours: other tools' names, or our prefixes in another shape.
        for other in [
            "qbr1234",
            "qrb1234",
            "qrb1234ab",
            "qrt1234a",
            "qrt1234a-",
            "qrvx",
            "qrv12a",
            "eth0",
        ] {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }

    #[test]
    fn longest_names_fit_the_kernel_limit() {
        let tag = "4194304z";
        assert!(format!("{BRIDGE_PREFIX}{tag}").len() <= 15);
        assert!(format!("{VETH_PREFIX}{tag}{MAX_NODES}").len() <= 15);
    }

    #[test]
    fn subnet_in_use_sees_addresses_and_routes() {
        let addrs = "3: qrb1a    inet 169.254.7.1/24 scope global qrb1a";
        assert!(subnet_in_use(7, addrs, ""));
        assert!(!subnet_in_use(70, addrs, ""));
        assert!(subnet_in_use(9, "", "169.254.9.0/24 dev x"));
    }
}
