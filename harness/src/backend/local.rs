//! The `local` backend: nodes as child processes on loopback, every link through the proxy.
//!
//! Each node listens on its own free loopback port. The proxy opens one listener per directed
//! link: node `a`'s `--peers` entry for `b` is the `a→b` listener, and clients dial the
//! `client→b` listener, so every byte between two parties can be cut, held or delayed.
//!
//! Children can never outlive the harness: each is spawned with `PR_SET_PDEATHSIG = SIGKILL`
//! and in its own process group (so a terminal Ctrl-C reaches only the harness, which then
//! heals, kills and reaps them in order), and [`LocalCluster`]'s `Drop` kills whatever is left.
//! Spawning (one long-lived forking thread), signals and snapshots are shared with `netns` in
//! [`super::procs`].

use super::launch::{Launch, Member};
use super::lazy::Mounts;
use super::procs::{tail, NodeProcs};
use super::{BackendError, Cluster, ClusterSpec, Result, Snapshot};
use crate::proxy::{Proxy, CLIENT};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A cluster of local member processes (`quorate-node` unless a target says otherwise)
/// behind the fault proxy.
pub struct LocalCluster {
    spec: ClusterSpec,
    launch: Arc<dyn Launch>,
    /// Each member's first port (where clients and proxied peers go).
    addrs: BTreeMap<String, SocketAddr>,
    /// Every port of each member, in [`Launch`] order.
    ports: BTreeMap<String, Vec<SocketAddr>>,
    client_addrs: BTreeMap<String, SocketAddr>,
    procs: Arc<NodeProcs>,
    proxy: Mutex<Proxy>,
    /// The data directories' lazyfs mounts (`power-loss` only).
    mounts: Mounts,
}

impl LocalCluster {
    /// Start the proxy and every member as `launch` says, and wait until each serves.
    pub async fn start(spec: ClusterSpec, launch: Arc<dyn Launch>) -> Result<LocalCluster> {
        let mut ports = BTreeMap::new();
        for id in &spec.nodes {
            let v = (0..launch.ports().max(1))
                .map(|_| free_port())
                .collect::<Result<Vec<_>>>()?;
            ports.insert(id.clone(), v);
        }
        let addrs: BTreeMap<String, SocketAddr> =
            ports.iter().map(|(id, v)| (id.clone(), v[0])).collect();
        let mut links = Vec::new();
        for a in &spec.nodes {
            for b in &spec.nodes {
                if a != b && launch.proxied_peers() {
                    links.push((a.clone(), b.clone(), addrs[b]));
                }
            }
            links.push((CLIENT.to_string(), a.clone(), addrs[a]));
        }
        let proxy = Proxy::start(links)
            .await
            .map_err(|e| BackendError::io("start the fault proxy", e))?;
        let client_addrs = spec
            .nodes
            .iter()
            .map(|id| {
                let addr = if spec.direct_clients {
                    addrs[id]
                } else {
                    proxy.addr(CLIENT, id).expect("client link exists")
                };
                (id.clone(), addr)
            })
            .collect();
        for dir in ["nodes", "data"] {
            let p = spec.run_dir.join(dir);
            fs::create_dir_all(&p).map_err(|e| BackendError::io(p.display().to_string(), e))?;
        }
        let stop = launch.stop();
        let mounts = Mounts::start(&spec)?;
        let cluster = LocalCluster {
            mounts,
            spec,
            launch,
            addrs,
            ports,
            client_addrs,
            procs: Arc::new(NodeProcs::new("node-spawner", stop)?),
            proxy: Mutex::new(proxy),
        };
        let nodes = cluster.spec.nodes.clone();
        for id in &nodes {
            cluster.spawn_node(id)?;
        }
        // Wait for health off the async workers: the check is a blocking connect loop.
        let deadline = Instant::now() + cluster.launch.start_timeout();
        for id in &nodes {
            let addrs = cluster.ports[id].clone();
            let id2 = id.clone();
            let procs = cluster.procs.clone();
            let launch = cluster.launch.clone();
            let up = tokio::task::spawn_blocking(move || {
                wait_up(launch.as_ref(), &id2, &addrs, deadline, &|| {
                    procs.exited(&id2)
                })
            })
            .await
            .unwrap_or_else(|e| Err(format!("health check panicked: {e}")));
            if let Err(why) = up {
                let log = cluster.log_path(id);
                cluster.shutdown();
                return Err(BackendError::node(
                    id,
                    format!("{why}; see {}{}", log.display(), tail(&log)),
                ));
            }
        }
        Ok(cluster)
    }

    pub fn data_dir(&self, node: &str) -> PathBuf {
        self.spec.run_dir.join("data").join(node)
    }

    pub fn log_path(&self, node: &str) -> PathBuf {
        self.spec.run_dir.join("nodes").join(format!("{node}.log"))
    }

    /// The pid of a running node (tests use it to check nothing is left behind).
    pub fn pid(&self, node: &str) -> Option<u32> {
        self.procs.pid(node)
    }

    /// The pid of the lazyfs server of a node's data directory (`power-loss` runs).
    pub fn lazyfs_pid(&self, node: &str) -> Option<u32> {
        self.mounts.server_pid(node)
    }

    fn spawn_node(&self, id: &str) -> Result<()> {
        // The node wants the whole cluster in --peers, itself included (its own real address).
        let peers: Vec<(String, SocketAddr)> = self
            .spec
            .nodes
            .iter()
            .map(|p| {
                let proxied = (p != id && self.launch.proxied_peers())
                    .then(|| self.proxy.lock().unwrap().addr(id, p))
                    .flatten();
                (p.clone(), proxied.unwrap_or(self.addrs[p]))
            })
            .collect();
        let data = self.data_dir(id);
        fs::create_dir_all(&data).map_err(|e| BackendError::io(data.display().to_string(), e))?;
        let log_path = self.log_path(id);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| BackendError::io(log_path.display().to_string(), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| BackendError::io(log_path.display().to_string(), e))?;
        let members: Vec<(String, Vec<SocketAddr>)> = self
            .spec
            .nodes
            .iter()
            .map(|n| (n.clone(), self.ports[n].clone()))
            .collect();
        let member = Member {
            id,
            addrs: &self.ports[id],
            peers: &peers,
            members: &members,
            data_dir: &data,
        };
        let program = self.launch.program();
        let mut cmd = self.launch.command(&member).map_err(|e| {
            BackendError::node(id, format!("could not prepare {}: {e}", program.display()))
        })?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (prctl, setpgid, getppid).
        unsafe {
            cmd.pre_exec(move || {
                crate::backend::procs::die_with_harness(parent)?;
                nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                Ok(())
            });
        }
        let child = self.procs.spawner.spawn(cmd).map_err(|e| {
            BackendError::node(id, format!("could not start {}: {e}", program.display()))
        })?;
        self.procs.insert(id, child);
        Ok(())
    }
}

impl Cluster for LocalCluster {
    fn nodes(&self) -> &[String] {
        &self.spec.nodes
    }

    fn client_addr(&self, node: &str) -> SocketAddr {
        self.client_addrs[node]
    }

    fn admin_addr(&self, node: &str) -> SocketAddr {
        self.ports[node][self.launch.admin_port()]
    }

    fn kill(&self, node: &str) -> Result<()> {
        self.procs.kill(node)
    }

    fn restart(&self, node: &str) -> Result<()> {
        if self.procs.is_running(node) {
            return Err(BackendError::node(node, "is already running"));
        }
        self.spawn_node(node)?;
        let deadline = Instant::now() + self.launch.start_timeout();
        if let Err(why) = wait_up(
            self.launch.as_ref(),
            node,
            &self.ports[node],
            deadline,
            &|| self.procs.exited(node),
        ) {
            let log = self.log_path(node);
            return Err(BackendError::node(
                node,
                format!("restart: {why}; see {}{}", log.display(), tail(&log)),
            ));
        }
        Ok(())
    }

    fn pause(&self, node: &str) -> Result<()> {
        self.procs.signal(node, Signal::SIGSTOP)
    }

    fn resume(&self, node: &str) -> Result<()> {
        self.procs.signal(node, Signal::SIGCONT)
    }

    fn snapshot(&self, node: &str) -> Result<Snapshot> {
        self.procs
            .snapshot(node, &self.data_dir(node), &self.spec.run_dir)
    }

    fn restore(&self, snap: &Snapshot) -> Result<()> {
        self.procs.restore(snap, &self.data_dir(&snap.node))
    }

    fn drop_traffic(&self, from: &str, to: &str) -> Result<()> {
        if !self.launch.proxied_peers() {
            return Err(BackendError::Unsupported(format!(
                "cutting {from} -> {to}: these members dial the addresses their peers advertise, \
                 which the local backend's proxy cannot cut; use --backend netns"
            )));
        }
        self.proxy.lock().unwrap().drop_traffic(from, to);
        Ok(())
    }

    fn heal(&self) -> Result<()> {
        self.proxy.lock().unwrap().heal_all();
        Ok(())
    }

    fn delay_traffic(&self, from: &str, to: &str, delay: std::time::Duration) -> Result<()> {
        let proxy = self.proxy.lock().unwrap();
        proxy.state(from, to).ok_or_else(|| no_link(from, to))?;
        proxy.delay(from, to, delay);
        Ok(())
    }

    fn reset_connections(&self, from: &str, to: &str) -> Result<()> {
        let proxy = self.proxy.lock().unwrap();
        proxy.state(from, to).ok_or_else(|| no_link(from, to))?;
        proxy.reset(from, to);
        Ok(())
    }

    fn checkpoint(&self) -> Result<()> {
        self.mounts.checkpoint()
    }

    fn power_cut(&self, node: &str) -> Result<crate::lazyfs::model::Unsynced> {
        if self.procs.is_running(node) {
            return Err(BackendError::node(
                node,
                "power cut while running: kill it first",
            ));
        }
        self.mounts.cut(node)
    }

    fn shutdown(&self) {
        self.procs.stop_all();
        self.mounts.stop_all();
        self.proxy.lock().unwrap().shutdown();
    }
}

/// A link fault aimed at a link the proxy does not have (a client link under
/// `--direct-clients`, or a node that is not in the cluster).
fn no_link(from: &str, to: &str) -> BackendError {
    BackendError::Unsupported(format!("the fault proxy has no link {from} -> {to}"))
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A free loopback port for a node to bind, taken below Linux's default ephemeral range
/// (32768–60999): outgoing connections (clients, the proxy, other runs' nodes) pick their local
/// ports from that range, so a port handed out there could be taken by a connection before the
/// node binds it ("Address already in use"). Ports 20000–31999 are handed out in turn from a
/// per-process starting point, each checked free by binding it; another listener could still
/// take one in the moment between, and start-up then fails loudly naming the node.
fn free_port() -> Result<SocketAddr> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (start + i) % SPAN;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            if let Ok(addr) = l.local_addr() {
                return Ok(addr);
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BackendError::io("bind a loopback port", e))?;
    l.local_addr()
        .map_err(|e| BackendError::io("bind a loopback port", e))
}

/// Poll [`Launch::is_up`] (by default a bare HTTP/1.0 `GET /health`, no runtime needed)
/// until it says yes, the deadline, or `exited` reporting that the process has ended (then
/// its exit status).
pub fn wait_up(
    launch: &dyn Launch,
    id: &str,
    addrs: &[SocketAddr],
    deadline: Instant,
    exited: &dyn Fn() -> Option<String>,
) -> std::result::Result<(), String> {
    while Instant::now() < deadline {
        if launch.is_up(id, addrs) {
            return Ok(());
        }
        if let Some(status) = exited() {
            return Err(format!(
                "exited ({status}) before it would {}",
                launch.awaits()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "did not {} within {} s",
        launch.awaits(),
        launch.start_timeout().as_secs_f64()
    ))
}

/// The status of `GET /health`, if anything answered with HTTP.
pub(crate) fn health(addr: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    if !head.starts_with("HTTP/1.") {
        return None;
    }
    head.get(9..12)?.parse().ok()
}
