//! Node processes as both backends keep them: the spawner thread, the table of running
//! children, signals, and data-directory snapshots. `local` and `netns` differ in where a node
//! listens and how faults reach it, not in how its process is started, stopped or copied.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked a child exits, so every fork happens
//! on one dedicated thread that lives as long as the cluster — never on a tokio blocking
//! thread, which the runtime retires after a few idle seconds.

use super::{BackendError, Result, Snapshot};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

type SpawnReq = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The one thread that forks nodes (see the module note).
pub(crate) struct Spawner {
    name: &'static str,
    tx: Mutex<Option<mpsc::Sender<SpawnReq>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    fn new(name: &'static str) -> Result<Spawner> {
        let (tx, rx) = mpsc::channel::<SpawnReq>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map_err(|e| BackendError::io(format!("start the {name} thread"), e))?;
        Ok(Spawner {
            name,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let gone = || std::io::Error::other(format!("{} thread is gone", self.name));
        let (rtx, rrx) = mpsc::channel();
        let tx = self.tx.lock().unwrap();
        let Some(tx) = tx.as_ref() else {
            return Err(std::io::Error::other("cluster is shut down"));
        };
        tx.send((cmd, rtx)).map_err(|_| gone())?;
        rrx.recv().map_err(|_| gone())?
    }

    pub(crate) fn stop(&self) {
        self.tx.lock().unwrap().take();
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
        }
    }
}

/// The running node processes of one cluster, by node id.
pub(crate) struct NodeProcs {
    children: Mutex<BTreeMap<String, Child>>,
    pub(crate) spawner: Spawner,
    snapshots: AtomicU64,
    /// How members are stopped at the end ([`super::launch::Launch::stop`]).
    stop: (Signal, Duration),
}

impl NodeProcs {
    pub(crate) fn new(spawner_name: &'static str, stop: (Signal, Duration)) -> Result<NodeProcs> {
        Ok(NodeProcs {
            children: Mutex::new(BTreeMap::new()),
            spawner: Spawner::new(spawner_name)?,
            snapshots: AtomicU64::new(0),
            stop,
        })
    }

    pub(crate) fn insert(&self, node: &str, child: Child) {
        self.children
            .lock()
            .unwrap()
            .insert(node.to_string(), child);
    }

    pub(crate) fn pid(&self, node: &str) -> Option<u32> {
        self.children.lock().unwrap().get(node).map(|c| c.id())
    }

    /// If the node's process has exited on its own, reap it and say how it ended (so a node
    /// that refuses to start is reported at once, not after a health-check timeout).
    pub(crate) fn exited(&self, node: &str) -> Option<String> {
        let mut children = self.children.lock().unwrap();
        let status = children.get_mut(node)?.try_wait().ok()??;
        children.remove(node);
        Some(status.to_string())
    }

    pub(crate) fn is_running(&self, node: &str) -> bool {
        self.children.lock().unwrap().contains_key(node)
    }

    /// Stop every node (the launch's signal, then SIGKILL after its grace period), reap
    /// them, then stop the spawner thread. Idempotent.
    pub(crate) fn stop_all(&self) {
        let mut children = self.children.lock().unwrap();
        let (sig, grace) = self.stop;
        if sig != Signal::SIGKILL && !children.is_empty() {
            for child in children.values_mut() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
                let _ = kill(Pid::from_raw(child.id() as i32), sig);
            }
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline
                && children
                    .values_mut()
                    .any(|c| matches!(c.try_wait(), Ok(None)))
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for child in children.values_mut() {
            // Continue a stopped node first, so the kill is not held up and wait() returns.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
        }
        for (_, mut child) in std::mem::take(&mut *children) {
            let _ = child.wait();
        }
        drop(children);
        self.spawner.stop();
    }

    /// SIGKILL and reap; the data directory stays.
    pub(crate) fn kill(&self, node: &str) -> Result<()> {
        let child = self.children.lock().unwrap().remove(node);
        let Some(mut child) = child else {
            return Err(BackendError::node(node, "is not running"));
        };
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Send `sig`; for SIGSTOP, return only once every thread of the node has stopped (bounded
    /// at [`STOP_BOUND`]). `kill` returns as soon as the signal is queued, and the node's other
    /// threads run on until the kernel gets round to stopping them — on a loaded machine long
    /// enough to answer requests, or to write while `stale-restore` copies the data dir of a
    /// node it thinks paused (target-node/tests/pause.rs caught the node answering).
    pub(crate) fn signal(&self, node: &str, sig: Signal) -> Result<()> {
        let pid = {
            let children = self.children.lock().unwrap();
            let child = children
                .get(node)
                .ok_or_else(|| BackendError::node(node, "is not running"))?;
            child.id() as i32
        };
        kill(Pid::from_raw(pid), sig)
            .map_err(|e| BackendError::node(node, format!("{sig}: {e}")))?;
        if sig == Signal::SIGSTOP {
            let deadline = Instant::now() + STOP_BOUND;
            while !all_threads_stopped(pid) {
                if Instant::now() >= deadline {
                    return Err(BackendError::node(
                        node,
                        format!(
                            "SIGSTOP: some thread of pid {pid} still running after {} s",
                            STOP_BOUND.as_secs()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Copy `data_dir` to `<run_dir>/snapshots/<node>-<k>` (call while the node is paused).
    pub(crate) fn snapshot(&self, node: &str, data_dir: &Path, run_dir: &Path) -> Result<Snapshot> {
        let k = self.snapshots.fetch_add(1, Ordering::Relaxed);
        let path = run_dir.join("snapshots").join(format!("{node}-{k}"));
        copy_dir(data_dir, &path)
            .map_err(|e| BackendError::io(format!("snapshot of {node}"), e))?;
        Ok(Snapshot {
            node: node.to_string(),
            path,
            taken: Instant::now(),
        })
    }

    /// Replace a stopped node's `data_dir` with the snapshot.
    pub(crate) fn restore(&self, snap: &Snapshot, data_dir: &Path) -> Result<()> {
        if self.is_running(&snap.node) {
            return Err(BackendError::node(
                &snap.node,
                "restore needs the node stopped",
            ));
        }
        // The contents, not the directory: it may be a mount point (power-loss's lazyfs).
        if let Ok(entries) = fs::read_dir(data_dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
        copy_dir(&snap.path, data_dir)
            .map_err(|e| BackendError::io(format!("restore of {}", snap.node), e))
    }
}

/// The last lines of a node's log, for error messages.
pub(crate) fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(5);
    format!("; last lines:\n{}", lines[start..].join("\n"))
}

/// Recursive copy of a data directory (files and folders only; the node makes no links),
/// every file and folder fsynced, so a restore into a lazyfs mount (power-loss) is durable.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
            fs::File::open(&target)?.sync_all()?;
        }
    }
    fs::File::open(to)?.sync_all()
}

/// Between fork and exec (async-signal-safe: prctl, getppid): have the child SIGKILLed when
/// the thread that forked it exits, then [`harness_still_there`]. Every child the harness
/// starts and must not outlive it (members, adapters, a local lazyfs server) calls this.
pub(crate) fn die_with_harness(parent: u32) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    harness_still_there(parent)
}

/// Between fork and exec: fail the spawn when the harness (`parent`, its pid before the fork)
/// died before the child was set up, since nobody would reap or stop the child then.
pub(crate) fn harness_still_there(parent: u32) -> std::io::Result<()> {
    if nix::unistd::getppid().as_raw() as u32 != parent {
        return Err(std::io::Error::other("harness exited during spawn"));
    }
    Ok(())
}

/// Whether a process `pid` exists on this machine (signal 0; EPERM would mean "alive, not
/// ours", never as root). A pid reused by another program counts as alive: the sweeps of dead
/// runs' leftovers would rather leave one than touch a live run's.
pub(crate) fn pid_alive(pid: i32) -> bool {
    !matches!(
        kill(Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// How long a SIGSTOP may take to stop every thread of a node.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// Whether every thread of `pid` is stopped (state `T` or `t` in `/proc/<pid>/task/*/stat`);
/// false when the process is gone or `/proc` cannot be read.
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for t in tasks.flatten() {
        any = true;
        let Ok(stat) = fs::read_to_string(t.path().join("stat")) else {
            return false;
        };
        // "tid (comm) S …": the state follows the last ')' (comm may hold spaces and parens).
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if !matches!(state, Some('T' | 't')) {
            return false;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process with busy threads is "stopped" only once SIGSTOP has stopped every one of
    /// them, and not after SIGCONT.
    #[test]
    fn all_threads_stopped_sees_every_thread() {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import threading\n\
                 def spin():\n    while True: pass\n\
                 for _ in range(3): threading.Thread(target=spin, daemon=True).start()\n\
                 import time; time.sleep(60)",
            ])
            .spawn()
            .expect("python3");
        let pid = child.id() as i32;
        // Wait (bounded) for its threads to exist.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count()) < 4 {
            assert!(Instant::now() < deadline, "threads never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!all_threads_stopped(pid), "running threads");
        kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
        let deadline = Instant::now() + STOP_BOUND;
        while !all_threads_stopped(pid) {
            assert!(Instant::now() < deadline, "not stopped within the bound");
            std::thread::sleep(Duration::from_millis(1));
        }
        kill(Pid::from_raw(pid), Signal::SIGCONT).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while all_threads_stopped(pid) {
            assert!(Instant::now() < deadline, "still stopped after SIGCONT");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!all_threads_stopped(pid), "a reaped process is not stopped");
    }
}
