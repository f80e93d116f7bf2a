//! How a backend starts one member of the cluster: the part of process start-up that belongs
//! to the target (which program, which flags or config file, which ports), not to the backend
//! (where it listens, which namespace it runs in, how it is killed and reaped).
//!
//! A backend hands a [`Launch`] each member's addresses and data directory and gets back the
//! [`Command`] to fork; it then waits until the member answers `GET /health` on its admin port
//! with a status [`Launch::serving`] accepts. Each target brings its own (see `crate::targets`:
//! the node's `NodeLaunch`, Garage's).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One member as the backend lays it out for [`Launch::command`].
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// The member's id (`n1`, `n2`, …).
    pub id: &'a str,
    /// The addresses it listens on, one per port ([`Launch::ports`] of them, clients' first).
    pub addrs: &'a [SocketAddr],
    /// Every member's first address as this member should dial it (itself included, by its
    /// real address; through the fault proxy on `local`), in node order.
    pub peers: &'a [(String, SocketAddr)],
    /// Every member's ports as it listens on them (itself included, never through the
    /// proxy), in node order: for a store whose members name each other by a port other
    /// than the first (etcd's peer URLs in `--initial-cluster`).
    pub members: &'a [(String, Vec<SocketAddr>)],
    /// Its data directory (created by the backend; kept across kill and restart).
    pub data_dir: &'a Path,
}

/// What a target tells a backend about starting its members.
pub trait Launch: Send + Sync {
    /// How many ports each member listens on. The first is where clients send ops.
    fn ports(&self) -> usize {
        1
    }
    /// Which of those ports answers `GET /health` and admin calls.
    fn admin_port(&self) -> usize {
        0
    }
    /// Whether a member's peer traffic goes through the `local` backend's fault proxy (one
    /// listener per directed link). A target whose members dial the addresses their peers
    /// advertise cannot be partitioned that way.
    fn proxied_peers(&self) -> bool {
        true
    }
    /// The program to run for `member`, its arguments and environment (the backend adds
    /// stdio, the namespace, the death signal and the process group).
    fn command(&self, member: &Member) -> std::io::Result<Command>;
    /// Whether this status from `GET /health` means the member is up and serving.
    fn serving(&self, status: u16) -> bool {
        status == 200
    }
    /// The program, for error messages.
    fn program(&self) -> PathBuf;
}
