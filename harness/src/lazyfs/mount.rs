//! The harness's side of a lazyfs mount: start the server (`quorate lazyfs`), cut its power,
//! stop it cleanly, and sweep the mounts of dead runs.
//!
//! A [`Mount`] is one server process serving one backing directory at one mount point. It is
//! started with `PR_SET_PDEATHSIG = SIGKILL` (it dies with the harness) in its own process
//! group (a terminal's Ctrl-C reaches only the harness), and its mount has `auto_unmount`
//! (fusermount3 unmounts when the server dies, however it dies). [`Mount::stop`] (also run by
//! `Drop`) closes its stdin — a clean shutdown that keeps everything — waits for it, and makes
//! sure the mount point is no longer mounted. [`sweep_stale`] unmounts lazyfs mounts whose
//! server is dead (a harness killed mid-run, before auto_unmount could act).

use super::model::Unsynced;
use super::FS_NAME;
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to mount, and a mount to go away.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);

/// The `quorate` program that serves mounts: `QUORATE_BIN`, else this executable when it is
/// `quorate`, else a `quorate` beside it or one folder up (cargo's test binaries live in
/// `target/<profile>/deps/`, the binary in `target/<profile>/`).
pub fn server_program() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("QUORATE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("lazyfs: own executable: {e}"))?;
    if exe.file_name().is_some_and(|n| n == "quorate") {
        return Ok(exe);
    }
    let dir = exe.parent().unwrap_or(Path::new("."));
    for cand in [dir.join("quorate"), dir.join("../quorate")] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(format!(
        "lazyfs: no `quorate` executable beside {} to serve the mounts (set QUORATE_BIN)",
        exe.display()
    ))
}

/// Can this machine mount lazyfs? (`/dev/fuse` and `fusermount3`.)
pub fn preflight() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("--nemesis power-loss needs /dev/fuse (FUSE), which this machine lacks".into());
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("fusermount3").is_file()));
    if !found {
        return Err(
            "--nemesis power-loss needs fusermount3 (Debian's fuse3 package): not on PATH".into(),
        );
    }
    Ok(())
}

/// Makes sure a mount is gone once its server stopped: unmounts it if it is still there; an
/// error names what is left.
pub type EnsureGone = Box<dyn Fn() -> Result<(), String> + Send>;

/// One running lazyfs server and its mount.
pub struct Mount {
    backing: PathBuf,
    mountpoint: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    /// A mount on another machine (`--backend ssh`): how to make sure it is gone there.
    /// `None`: the mount is on this machine, checked in its mountinfo.
    gone: Option<EnsureGone>,
}

impl Mount {
    /// Start a server serving `backing` at `mountpoint` (both created if missing) and wait
    /// until it is mounted. Its log (stderr) is appended to `log`.
    pub fn start(backing: &Path, mountpoint: &Path, log: &Path) -> Result<Mount, String> {
        Mount::start_with(&server_program()?, backing, mountpoint, log)
    }

    /// [`Mount::start`] with the `quorate` program named (tests).
    pub fn start_with(
        program: &Path,
        backing: &Path,
        mountpoint: &Path,
        log: &Path,
    ) -> Result<Mount, String> {
        for d in [backing, mountpoint] {
            std::fs::create_dir_all(d).map_err(|e| format!("lazyfs: {}: {e}", d.display()))?;
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("lazyfs: {}: {e}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.arg("lazyfs")
            .arg("--backing")
            .arg(backing)
            .arg("--mount")
            .arg(mountpoint);
        Mount::spawn(cmd, log_file, backing, mountpoint, log, None)
    }

    /// A server run by `cmd` somewhere else — an `ssh` session whose remote command is
    /// `quorate lazyfs --backing B --mount M` on a host: its standard input and output carry
    /// the same protocol (closing stdin is the same clean stop; the session's end is EOF to
    /// the server). `backing` and `mountpoint` are the host's paths; `gone` makes sure the
    /// mount is gone there after the server stopped. The session's stderr (the server's log)
    /// is appended to `log` here.
    pub fn start_remote(
        cmd: Command,
        backing: &Path,
        mountpoint: &Path,
        log: &Path,
        gone: EnsureGone,
    ) -> Result<Mount, String> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("lazyfs: {}: {e}", log.display()))?;
        Mount::spawn(cmd, log_file, backing, mountpoint, log, Some(gone))
    }

    fn spawn(
        mut cmd: Command,
        log_file: std::fs::File,
        backing: &Path,
        mountpoint: &Path,
        log: &Path,
        gone: Option<EnsureGone>,
    ) -> Result<Mount, String> {
        let program = PathBuf::from(cmd.get_program());
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let parent = std::process::id();
        // A local server dies with the harness. An ssh session does not need to (and must
        // not: the death signal follows the thread that started it, and sessions are started
        // from short-lived threads): when the harness dies its stdin closes, which the session
        // carries to the server as EOF, the clean stop.
        let deathsig = gone.is_none();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if deathsig {
                    crate::backend::procs::die_with_harness(parent)?;
                } else {
                    crate::backend::procs::harness_still_there(parent)?;
                }
                nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("lazyfs: starting {}: {e}", program.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        let mut m = Mount {
            backing: backing.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            log: log.to_path_buf(),
            child: Some(child),
            stdin,
            stdout,
            gone,
        };
        match m.read_line() {
            Some(l) if l.trim() == "ready" => Ok(m),
            other => {
                let why = match other {
                    Some(l) => format!("said {:?}", l.trim()),
                    None => "exited before mounting".to_string(),
                };
                m.stop();
                Err(format!(
                    "lazyfs: the server for {} {why}; see {}{}",
                    mountpoint.display(),
                    log.display(),
                    tail(log)
                ))
            }
        }
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn read_line(&mut self) -> Option<String> {
        let out = self.stdout.as_mut()?;
        let mut line = String::new();
        match out.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    }

    fn ask(&mut self, cmd: &str) -> Result<Unsynced, String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| "lazyfs: the server is stopped".to_string())?;
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .map_err(|e| {
                format!(
                    "lazyfs: telling the server of {} {cmd:?}: {e}",
                    self.mountpoint.display()
                )
            })?;
        let line = self.read_line().ok_or_else(|| {
            format!(
                "lazyfs: the server of {} did not answer {cmd:?}; see {}{}",
                self.mountpoint.display(),
                self.log.display(),
                tail(&self.log)
            )
        })?;
        serde_json::from_str(&line).map_err(|e| {
            format!(
                "lazyfs: the server's answer to {cmd:?} is not what was expected ({e}): {line:?}"
            )
        })
    }

    /// What a cut would drop now.
    pub fn unsynced(&mut self) -> Result<Unsynced, String> {
        self.ask("stats")
    }

    /// A checkpoint: make everything written so far durable (as Jepsen's lazyfs checkpoint
    /// after a database's set-up); returns what was unsynced until then.
    pub fn sync(&mut self) -> Result<Unsynced, String> {
        self.ask("sync")
    }

    /// The power cut: the server drops everything unsynced and exits; once the mount is gone,
    /// returns what was dropped. The member using it must be dead already (its open files
    /// would keep the mount busy). [`Mount::start`] on the same directories brings it back.
    pub fn cut(&mut self) -> Result<Unsynced, String> {
        let dropped = self.ask("cut");
        self.stdin.take();
        self.wait_exit(MOUNT_TIMEOUT);
        let gone = self.ensure_unmounted();
        let dropped = dropped?;
        gone?;
        Ok(dropped)
    }

    /// A clean stop (everything unsynced is kept) and the mount gone. Idempotent.
    pub fn stop(&mut self) {
        self.stdin.take();
        self.wait_exit(MOUNT_TIMEOUT);
        if let Err(e) = self.ensure_unmounted() {
            tracing::error!("{e}");
        }
    }

    fn wait_exit(&mut self, timeout: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    tracing::warn!(
                        "lazyfs: the server of {} did not stop in time; killing it",
                        self.mountpoint.display()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        self.stdout.take();
    }

    /// Wait (bounded) for auto_unmount to unmount; then unmount lazily ourselves.
    fn ensure_unmounted(&self) -> Result<(), String> {
        if let Some(gone) = &self.gone {
            return gone();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !is_mounted(&self.mountpoint) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unmount(&self.mountpoint)?;
        if is_mounted(&self.mountpoint) {
            return Err(format!(
                "lazyfs: {} is still mounted after its server stopped",
                self.mountpoint.display()
            ));
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Unmount lazily (`umount2(MNT_DETACH)`), falling back to `fusermount3 -uz`.
fn unmount(mountpoint: &Path) -> Result<(), String> {
    match nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(e) => {
            let out = Command::new("fusermount3")
                .arg("-uz")
                .arg(mountpoint)
                .output()
                .map_err(|e2| {
                    format!(
                        "lazyfs: unmounting {}: {e}; fusermount3: {e2}",
                        mountpoint.display()
                    )
                })?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "lazyfs: unmounting {}: {e}; fusermount3 -uz: {}",
                    mountpoint.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
    }
}

/// A lazyfs mount as `/proc/self/mountinfo` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub mountpoint: PathBuf,
    /// The server's pid, from the file system's name.
    pub pid: Option<u32>,
}

/// Every lazyfs mount on this machine (this mount namespace).
pub fn listed() -> Vec<Listed> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&text)
}

/// The lazyfs mounts in a mountinfo text (fields: … mountpoint is the 5th; after ` - `, the
/// type and the source).
pub fn parse_mountinfo(text: &str) -> Vec<Listed> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        let (Some(fstype), Some(source)) = (r.next(), r.next()) else {
            continue;
        };
        if fstype != format!("fuse.{FS_NAME}") {
            continue;
        }
        let Some(mp) = left.split(' ').nth(4) else {
            continue;
        };
        let pid = source
            .strip_prefix(&format!("{FS_NAME}-"))
            .and_then(|p| p.parse().ok());
        out.push(Listed {
            mountpoint: PathBuf::from(unescape(mp)),
            pid,
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Is `path` a lazyfs mount point now?
pub fn is_mounted(path: &Path) -> bool {
    let want = std::fs::canonicalize(path.parent().unwrap_or(Path::new("/")))
        .map(|p| p.join(path.file_name().unwrap_or_default()))
        .unwrap_or_else(|_| path.to_path_buf());
    listed()
        .iter()
        .any(|l| l.mountpoint == want || l.mountpoint == path)
}

/// Unmount every lazyfs mount whose server is dead (leftovers of a harness that was killed).
/// Returns the mount points unmounted.
pub fn sweep_stale() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for l in listed() {
        // A zombie (dead, not yet reaped by its parent) serves nothing either.
        let alive = l.pid.is_some_and(|p| {
            nix::sys::signal::kill(Pid::from_raw(p as i32), None).is_ok()
                && !std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
        if alive {
            continue;
        }
        match unmount(&l.mountpoint) {
            Ok(()) => removed.push(l.mountpoint),
            Err(e) => tracing::warn!("lazyfs sweep: {e}"),
        }
    }
    removed
}

/// The pids of processes still serving or unmounting `mountpoint`: a `quorate lazyfs` or a
/// `fusermount3` whose command line names it (tests check that none is left).
pub fn helpers_of(mountpoint: &Path) -> Vec<u32> {
    let want = mountpoint.as_os_str().as_encoded_bytes();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let ours = args
            .first()
            .is_some_and(|a| a.ends_with(b"fusermount3") || a.ends_with(b"quorate"))
            && args.iter().any(|a| a.ends_with(want));
        let zombie =
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
        if ours && !zombie {
            out.push(pid);
        }
    }
    out
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(5);
    format!("; last lines:\n{}", lines[start..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_name_lazyfs_mounts_and_their_servers() {
        let text = "36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    90 29 0:52 / /tmp/run\\040a/data/n1 rw,nosuid,nodev,relatime - fuse.quorate-lazyfs quorate-lazyfs-4242 rw,user_id=0,group_id=0,allow_other\n\
                    91 29 0:53 / /x rw - fuse.other other-1 rw\n";
        assert_eq!(
            parse_mountinfo(text),
            vec![Listed {
                mountpoint: PathBuf::from("/tmp/run a/data/n1"),
                pid: Some(4242)
            }]
        );
    }
}
