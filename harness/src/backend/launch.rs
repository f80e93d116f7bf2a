//! How a backend starts one member of the cluster: the part of process start-up that belongs
//! to the target (which program, which flags or config file, which ports), not to the backend
//! (where it listens, which namespace it runs in, how it is killed and reaped).
//!
//! A backend hands a [`Launch`] each member's addresses and data directory and gets back the
//! [`Command`] to fork; it then waits until [`Launch::is_up`] says the member is up (by
//! default: it answers `GET /health` on its admin port with a status [`Launch::serving`]
//! accepts; a target file may ask for a TCP port, an HTTP URL or a command instead), and at
//! the end stops it as [`Launch::stop`] says. Each target brings its own (see
//! `crate::targets`: the node's `NodeLaunch`, Garage's, a target file's).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
    /// Whether member `id`, listening on `addrs` ([`Launch::ports`] of them), is up and
    /// serving. By default: `GET /health` on its admin port answers a status
    /// [`Launch::serving`] accepts. Called again and again until it says yes, the member
    /// exits, or [`Launch::start_timeout`] passes; each call is quick (bounded itself).
    fn is_up(&self, id: &str, addrs: &[SocketAddr]) -> bool {
        let _ = id;
        crate::backend::local::health(addrs[self.admin_port().min(addrs.len() - 1)])
            .is_some_and(|s| self.serving(s))
    }
    /// What [`Launch::is_up`] waits for, after "did not …" in an error message.
    fn awaits(&self) -> String {
        "answer GET /health".into()
    }
    /// How long a started member gets to be up.
    fn start_timeout(&self) -> Duration {
        Duration::from_secs(20)
    }
    /// How a member is stopped at the end of a run: this signal, then SIGKILL after the
    /// grace period (the default: SIGKILL at once). The `kill` fault is always SIGKILL.
    fn stop(&self) -> (nix::sys::signal::Signal, Duration) {
        (nix::sys::signal::Signal::SIGKILL, Duration::ZERO)
    }
}
