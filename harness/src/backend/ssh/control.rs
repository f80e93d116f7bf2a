//! [`SshRemote`]: the [`Remote`] seam over the system's OpenSSH client, one multiplexed
//! connection per host, and [`SshHosts`], every host of a run connected and checked before
//! anything starts.
//!
//! Every `ssh`/`scp` gets the same options: `-F /dev/null` (the user's `~/.ssh/config` does not
//! change what a run does; everything comes from the hosts file), `BatchMode=yes` (never a
//! password or passphrase prompt), `ControlMaster=auto` with `ControlPath=<dir>/%C` and
//! `ControlPersist=60` (the first command opens one connection per host, every later one rides
//! it), `ConnectTimeout=10`, `ServerAliveInterval=2`/`ServerAliveCountMax=3` (a host that stops
//! answering is noticed within ~6 s), and host keys checked: against the user's known-hosts file
//! with `StrictHostKeyChecking=yes` when the hosts file names one, else recorded on first
//! contact (`accept-new`) in a file of the run's own, kept as `<run>/ssh/known_hosts`.
//!
//! Control sockets live in `/tmp/qrs-<pid>-<n>/` (`%C` is a 40-character hash): Unix socket
//! paths are limited to 108 bytes, so they cannot live in a deep results folder. The masters
//! are told to exit (`ssh -O exit`) and the folder is removed when [`SshHosts`] is dropped.

use super::hosts::{Host, HostsFile};
use crate::backend::remote::{run_bounded, sh_quote, Remote, RemoteError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one ordinary remote step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// Uploads and downloads (a store's binary, its data folder).
pub const COPY_TIMEOUT: Duration = Duration::from_secs(300);

/// One host over OpenSSH.
#[derive(Debug)]
pub struct SshRemote {
    pub host: Host,
    control_dir: PathBuf,
    known_hosts: PathBuf,
    strict: bool,
    /// Why the host was found unreachable, if it was: later steps fail at once instead of
    /// each waiting out a connect timeout (a lost host must not hold up Ctrl-C or the others'
    /// clean-up). [`SshRemote::retry`] gives it one more chance.
    lost: std::sync::Mutex<Option<String>>,
}

impl SshRemote {
    /// Forget that the host was found unreachable (tear-down tries it once more).
    pub fn retry(&self) {
        self.lost.lock().unwrap().take();
    }

    fn check_lost(&self) -> Result<(), RemoteError> {
        match self.lost.lock().unwrap().as_ref() {
            Some(why) => Err(RemoteError::Unreachable {
                host: self.host.name.clone(),
                why: format!("lost earlier in this run: {why}"),
            }),
            None => Ok(()),
        }
    }

    fn note_lost<T>(&self, r: Result<T, RemoteError>) -> Result<T, RemoteError> {
        if let Err(RemoteError::Unreachable { why, .. }) = &r {
            self.lost.lock().unwrap().get_or_insert_with(|| why.clone());
        }
        r
    }

    fn options(&self) -> Vec<String> {
        let mut o: Vec<String> = [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=60",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=2",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "LogLevel=ERROR",
            "-o",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        o.push(format!("User={}", self.host.user));
        o.push("-o".into());
        o.push(format!("ControlPath={}/%C", self.control_dir.display()));
        o.push("-o".into());
        o.push(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        o.push("-o".into());
        o.push(format!(
            "StrictHostKeyChecking={}",
            if self.strict { "yes" } else { "accept-new" }
        ));
        o.push("-o".into());
        o.push(format!("Port={}", self.host.port));
        if let Some(id) = &self.host.identity {
            o.push("-o".into());
            o.push(format!("IdentityFile={}", id.display()));
            o.push("-o".into());
            o.push("IdentitiesOnly=yes".into());
        }
        o
    }

    /// `user@address` as scp wants it (IPv6 in brackets).
    fn scp_target(&self, path: &str) -> String {
        let a = &self.host.address;
        if a.contains(':') {
            format!("[{a}]:{path}")
        } else {
            format!("{a}:{path}")
        }
    }

    fn fail(&self, step: &str, r: crate::backend::remote::Ran, timeout: Duration) -> RemoteError {
        let host = self.host.name.clone();
        match r.status {
            None => RemoteError::Timeout {
                host,
                step: step.to_string(),
                secs: timeout.as_secs(),
            },
            // ssh's own exit status for a connection that failed or broke.
            Some(s) if s.code() == Some(255) => RemoteError::Unreachable {
                host,
                why: format!(
                    "ssh {}@{} port {}: {}",
                    self.host.user,
                    self.host.address,
                    self.host.port,
                    r.stderr.trim()
                ),
            },
            Some(s) => RemoteError::Failed {
                host,
                step: step.to_string(),
                status: s.to_string(),
                stderr: r.stderr.trim().to_string(),
            },
        }
    }

    fn local_err(&self, step: &str, source: std::io::Error) -> RemoteError {
        RemoteError::Local {
            host: self.host.name.clone(),
            step: step.to_string(),
            source,
        }
    }

    /// Close this host's master connection (ignored if there is none).
    pub fn close(&self) {
        let mut c = Command::new("ssh");
        c.args(self.options())
            .args(["-O", "exit", &self.host.address]);
        let _ = run_bounded(c, None, Duration::from_secs(5));
    }

    fn scp(&self, step: &str, args: &[String], timeout: Duration) -> Result<(), RemoteError> {
        self.check_lost()?;
        self.note_lost(self.scp_once(step, args, timeout))
    }

    fn scp_once(&self, step: &str, args: &[String], timeout: Duration) -> Result<(), RemoteError> {
        let mut c = Command::new("scp");
        c.arg("-q").args(self.options()).args(args);
        let r = run_bounded(c, None, timeout).map_err(|e| self.local_err(step, e))?;
        if r.status.is_some_and(|s| s.success()) {
            Ok(())
        } else {
            Err(self.fail(step, r, timeout))
        }
    }
}

impl Remote for SshRemote {
    fn host(&self) -> &str {
        &self.host.name
    }

    fn exec(
        &self,
        script: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<String, RemoteError> {
        self.check_lost()?;
        self.note_lost(self.exec_once(script, input, timeout))
    }

    fn upload(&self, local: &Path, remote: &str) -> Result<(), RemoteError> {
        let step = format!("scp {} {remote}", local.display());
        self.scp(
            &step,
            &[local.display().to_string(), self.scp_target(remote)],
            COPY_TIMEOUT,
        )
    }

    fn download(&self, remote: &str, local: &Path) -> Result<(), RemoteError> {
        let step = format!("scp -r {remote} {}", local.display());
        self.scp(
            &step,
            &[
                "-r".to_string(),
                self.scp_target(remote),
                local.display().to_string(),
            ],
            COPY_TIMEOUT,
        )
    }
}

impl SshRemote {
    /// An `ssh` command running `script` on the host over the shared connection: one step
    /// ([`Remote::exec`]), or a session the caller keeps open and talks to over its
    /// stdin/stdout (a lazyfs server).
    pub fn session(&self, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.options())
            .arg(&self.host.address)
            .arg("--")
            .arg(format!("sh -c {}", sh_quote(script)));
        c
    }

    fn exec_once(
        &self,
        script: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<String, RemoteError> {
        let r = run_bounded(self.session(script), input, timeout)
            .map_err(|e| self.local_err(script, e))?;
        if r.status.is_some_and(|s| s.success()) {
            Ok(r.stdout)
        } else {
            Err(self.fail(script, r, timeout))
        }
    }
}

/// What a fault or target needs from every host, checked before anything starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// `partition`, `stale-restore`, `slow`, `flaky`: `nft` that can change the ruleset.
    pub nft: bool,
    /// `clock-skew` of a store that is not the node: libfaketime on the host.
    pub faketime: bool,
    /// `power-loss`: FUSE on the host (`/dev/fuse` and `fusermount3`) for the lazyfs mounts.
    pub fuse: bool,
}

/// Where libfaketime lives on a host (the same paths as [`crate::targets::faketime`] looks in).
const FAKETIME_PATHS: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 \
     /usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1 /usr/lib64/faketime/libfaketime.so.1 \
     /usr/lib/faketime/libfaketime.so.1 /usr/local/lib/faketime/libfaketime.so.1";

/// Every host of a run, connected and checked; dropping it closes the connections.
#[derive(Debug)]
pub struct SshHosts {
    pub file: HostsFile,
    pub remotes: Vec<Arc<SshRemote>>,
    /// Each host's libfaketime, when [`Needs::faketime`].
    pub libfaketime: Vec<Option<String>>,
    pub keep_remote: bool,
    control_dir: PathBuf,
    /// The known-hosts file ssh checks against (the user's, or the run's own).
    pub known_hosts: PathBuf,
}

static CONTROL_DIRS: AtomicU64 = AtomicU64::new(0);

impl SshHosts {
    /// Read the hosts file, connect to the first `members` hosts (all at once) and check each
    /// has what `needs` asks for. A host that cannot be reached, or lacks a tool, is named.
    pub fn connect(
        path: &Path,
        members: usize,
        needs: Needs,
        keep_remote: bool,
    ) -> Result<SshHosts, String> {
        let mut file = HostsFile::read(path)?;
        if file.hosts.len() < members {
            return Err(format!(
                "--hosts {}: {} host(s) for --nodes {members}: expected one host per member",
                path.display(),
                file.hosts.len()
            ));
        }
        file.hosts.truncate(members);
        for tool in ["ssh", "scp"] {
            let found = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
                .unwrap_or(false);
            if !found {
                return Err(format!(
                    "--backend ssh needs `{tool}` on PATH (package openssh-client)"
                ));
            }
        }
        let n = CONTROL_DIRS.fetch_add(1, Ordering::Relaxed);
        let control_dir = PathBuf::from(format!("/tmp/qrs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&control_dir)
            .and_then(|_| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&control_dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| format!("control socket folder {}: {e}", control_dir.display()))?;
        let (known_hosts, strict) = match &file.known_hosts {
            Some(k) => {
                if !k.is_file() {
                    let _ = std::fs::remove_dir_all(&control_dir);
                    return Err(format!(
                        "{}: known_hosts {}: no such file; expected the known-hosts file to check \
                         host keys against (or leave the key out to record them on first contact)",
                        path.display(),
                        k.display()
                    ));
                }
                (k.clone(), true)
            }
            None => (control_dir.join("known_hosts"), false),
        };
        let remotes: Vec<Arc<SshRemote>> = file
            .hosts
            .iter()
            .map(|h| {
                Arc::new(SshRemote {
                    host: h.clone(),
                    control_dir: control_dir.clone(),
                    known_hosts: known_hosts.clone(),
                    strict,
                    lost: std::sync::Mutex::new(None),
                })
            })
            .collect();
        let mut hosts = SshHosts {
            file,
            libfaketime: vec![None; remotes.len()],
            remotes,
            keep_remote,
            control_dir,
            known_hosts,
        };
        let checked: Vec<Result<Option<String>, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = hosts
                .remotes
                .iter()
                .map(|r| s.spawn(move || check_host(r, needs)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("host check panicked".into()))
                })
                .collect()
        });
        for (i, c) in checked.into_iter().enumerate() {
            hosts.libfaketime[i] = c?;
        }
        Ok(hosts)
    }

    /// Keep the host keys the run recorded (when it recorded them) as `<dir>/known_hosts`.
    pub fn save_known_hosts(&self, dir: &Path) {
        if self.file.known_hosts.is_none() {
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::copy(&self.known_hosts, dir.join("known_hosts"));
        }
    }
}

/// Connect to one host and check its tools; the libfaketime found, when asked for.
fn check_host(r: &SshRemote, needs: Needs) -> Result<Option<String>, String> {
    let h = &r.host;
    let at = |step: &str, e: RemoteError| {
        if e.is_unreachable() {
            format!("{e} (before anything started)")
        } else {
            format!("host {} ({}): {step}: {e}", h.name, h.address)
        }
    };
    r.exec("true", None, STEP_TIMEOUT)
        .map_err(|e| at("connecting", e))?;
    r.exec(
        &format!("mkdir -p {w} && test -w {w}", w = sh_quote(&h.work_dir)),
        None,
        STEP_TIMEOUT,
    )
    .map_err(|e| at(&format!("making the work dir {}", h.work_dir), e))?;
    for tool in ["setsid", "nohup", "kill"] {
        r.exec(&format!("command -v {tool}"), None, STEP_TIMEOUT)
            .map_err(|e| {
                at(
                    &format!("starting members needs `{tool}` (util-linux, coreutils)"),
                    e,
                )
            })?;
    }
    if needs.nft {
        r.exec("nft list tables >/dev/null", None, STEP_TIMEOUT)
            .map_err(|e| {
                at(
                    "--nemesis partition, stale-restore, slow and flaky need `nft` (package \
                     nftables) runnable by this user (root or CAP_NET_ADMIN)",
                    e,
                )
            })?;
    }
    if needs.fuse {
        r.exec(
            "test -c /dev/fuse && command -v fusermount3",
            None,
            STEP_TIMEOUT,
        )
        .map_err(|e| {
            at(
                "--nemesis power-loss needs FUSE on the host: /dev/fuse and `fusermount3` \
                 (package fuse3)",
                e,
            )
        })?;
    }
    if !needs.faketime {
        return Ok(None);
    }
    let found = r
        .exec(
            &format!("for p in {FAKETIME_PATHS}; do [ -f \"$p\" ] && echo \"$p\" && exit 0; done; exit 1"),
            None,
            STEP_TIMEOUT,
        )
        .map_err(|e| {
            at(
                "--nemesis clock-skew needs libfaketime (package faketime) on the host",
                e,
            )
        })?;
    Ok(Some(found.trim().to_string()))
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        for r in &self.remotes {
            r.close();
        }
        let _ = std::fs::remove_dir_all(&self.control_dir);
    }
}
