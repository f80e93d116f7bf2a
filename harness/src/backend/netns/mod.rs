//! The `netns` backend: one network namespace per node on a bridge, partitions as nftables
//! drop rules inside the namespaces — real kernel-level faults, as Jepsen does them with
//! iptables. Needs root, `ip` (iproute2) and `nft`.
//!
//! # Layout
//! - Every cluster gets a *tag* `<pid><letter>`: the harness's pid and a letter `a`–`z` that
//!   is free in this process (tests start several clusters at once). Every name carries it:
//!   namespaces `qrt<tag>-<node>`, the bridge `qrb<tag>`, the root end of node `i`'s veth
//!   `qrv<tag><i>` (≤ 15 characters, the kernel's limit for interface names). The other end
//!   is `eth0` inside the node's namespace.
//! - Addresses are link-local, `169.254.X.0/24`: the harness's own address `169.254.X.1` on
//!   the bridge, node `i` at `169.254.X.(10+i)`, all nodes on port 7000 (each namespace has its
//!   own port space). `X` comes from the tag and skips subnets already in use on the host, `0`
//!   and `255` (reserved by RFC 3927) and `169` (169.254.169.254 is the cloud metadata
//!   address; a route for it on our bridge would hijack it). Nothing is routed anywhere: no
//!   default route in the namespaces, no forwarding, no NAT — the bridge only joins the nodes
//!   and the harness.
//! - Each namespace holds one nftables table, `inet quorate`, with an `output` chain. Cutting
//!   `a → b` adds `ip daddr <b> drop` to `a`'s chain: a silent drop, so connections hang until
//!   their timeouts. Healing flushes the chains. The harness's address is never matched, so
//!   clients and admin calls (from the root namespace) always get through.
//! - Delay and reset (`slow`, `flaky`), which a firewall cannot do, are the link proxies of
//!   [`links`]: started only when [`ClusterSpec::link_faults`] asks, they add a `nat` chain
//!   `links` to each namespace that redirects the member's connections to its peers to a
//!   listener of ours inside the same namespace. Drops keep working on those connections.
//!
//! # Processes
//! A node is started by forking on the cluster's one spawner thread, entering the node's
//! namespace with `setns` between fork and exec, and exec'ing the node: its pid is the node's
//! own, so SIGKILL and SIGSTOP reach it. As in [`super::local`], each child gets
//! `PR_SET_PDEATHSIG = SIGKILL` (which fires when the forking *thread* exits, hence the
//! dedicated thread) and its own process group (a terminal Ctrl-C reaches only the harness).
//!
//! # Cleanup
//! Every rule lives inside a namespace this backend created, and each veth dies with its
//! namespace, so deleting the namespaces and the bridge removes everything; the root
//! namespace's ruleset is never touched. [`NetnsCluster::shutdown`] (also run by `Drop`, and
//! by `start` when it fails half-way) kills and reaps the nodes, kills anything else left in
//! the namespaces, and deletes namespaces, veths and the bridge, ignoring what is already
//! gone — so it is idempotent. If the harness dies without running it (SIGKILL, OOM), the
//! nodes die with it (pdeathsig) and the next `start` sweeps every name whose pid is dead
//! ([`sweep_stale`]).
//!
//! # Files
//! This one: [`NetnsCluster`] and its faults. `host.rs`: running `ip`/`nft` with a deadline,
//! names, the preflight and the sweep. `links.rs`: the link proxies. Spawning, signals and
//! snapshots: [`super::procs`].

mod host;
pub(crate) mod links;

pub use host::{preflight, sweep_stale, NetnsError};

use super::launch::{Launch, Member};
use super::lazy::Mounts;
use super::local::wait_up;
use super::procs::{tail, NodeProcs};
use super::{BackendError, Cluster, ClusterSpec, Result, Snapshot};
use host::{
    ignore_missing, kill_all_in, nft_in, run, subnet_in_use, valid_node_id, BRIDGE_PREFIX,
    MAX_NODES, NS_PREFIX, VETH_PREFIX,
};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every node listens on this port, on its own namespace's address (a member with several
/// ports, see [`Launch::ports`], takes the ones after it).
const NODE_PORT: u16 = 7000;
/// The nftables table (family `inet`) and chain in every node namespace.
const NFT_TABLE: &str = "quorate";
const NFT_CHAIN: &str = "output";
/// The chain that sends members' peer connections through the link proxies ([`links`]).
const NFT_NAT_CHAIN: &str = "links";
/// Node `i` (1-based) gets host part `NODE_HOST_BASE + i`; keeps `.1` for the harness.
const NODE_HOST_BASE: usize = 10;

/// Tags and subnets taken by clusters of this process. Held while a subnet is chosen and its
/// address assigned, so two clusters started at once in one process cannot pick the same.
static TAKEN: Mutex<Taken> = Mutex::new(Taken {
    letters: BTreeSet::new(),
    subnets: BTreeSet::new(),
});

struct Taken {
    letters: BTreeSet<u8>,
    subnets: BTreeSet<u8>,
}

/// What `start` created so far, so cleanup removes exactly that, even after a half-way failure.
#[derive(Default)]
struct Created {
    bridge: Option<String>,
    namespaces: Vec<String>,
    veths: Vec<String>,
}

/// A cluster of `quorate-node` processes, each in its own network namespace on one bridge.
pub struct NetnsCluster {
    spec: ClusterSpec,
    launch: Arc<dyn Launch>,
    tag: String,
    letter: u8,
    subnet: u8,
    addrs: BTreeMap<String, SocketAddr>,
    namespaces: BTreeMap<String, String>,
    /// Open handles on the namespaces, entered by `setns` in each child before exec.
    ns_files: Mutex<BTreeMap<String, File>>,
    created: Mutex<Created>,
    procs: NodeProcs,
    /// The cuts in force, `(from, to)`, so a repeated cut adds no duplicate rule.
    cuts: Mutex<BTreeSet<(String, String)>>,
    /// Delay and reset per link, when the spec asks for link faults ([`links`]).
    links: Mutex<Option<links::Links>>,
    /// The data directories' lazyfs mounts (`power-loss` only).
    mounts: Mounts,
    down: AtomicBool,
}

impl NetnsCluster {
    /// Check root and tools, sweep leftovers of dead runs, build the namespaces and the bridge,
    /// start every member inside its namespace as `launch` says and wait until each serves.
    pub async fn start(spec: ClusterSpec, launch: Arc<dyn Launch>) -> Result<NetnsCluster> {
        // All of it is blocking (commands, forks, a connect loop): keep it off the async
        // workers. If the caller gives up waiting, the cluster is dropped, which cleans up.
        tokio::task::spawn_blocking(move || NetnsCluster::start_blocking(spec, launch))
            .await
            .map_err(|e| BackendError::io("netns start task", std::io::Error::other(e)))?
    }

    fn start_blocking(spec: ClusterSpec, launch: Arc<dyn Launch>) -> Result<NetnsCluster> {
        preflight()?;
        if spec.nodes.len() > MAX_NODES {
            return Err(NetnsError::TooManyNodes(spec.nodes.len()).into());
        }
        if let Some(bad) = spec.nodes.iter().find(|id| !valid_node_id(id)) {
            return Err(NetnsError::BadNodeId(bad.clone()).into());
        }
        match sweep_stale() {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(?removed, "netns: removed leftovers of dead runs")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("netns: sweeping leftovers of dead runs failed: {e}"),
        }
        for dir in ["nodes", "data"] {
            let p = spec.run_dir.join(dir);
            fs::create_dir_all(&p).map_err(|e| BackendError::io(p.display().to_string(), e))?;
        }

        // The data directories' mounts (power-loss only): dropped, and so unmounted, if
        // anything below fails.
        let mounts = Mounts::start(&spec)?;
        let procs = NodeProcs::new("netns-spawner", launch.stop())?;
        let pid = std::process::id();
        let mut taken = TAKEN.lock().unwrap();
        let letter = (b'a'..=b'z')
            .find(|l| !taken.letters.contains(l))
            .ok_or(NetnsError::NoTag)?;
        let addrs_text = run(&["ip", "-4", "-o", "addr", "show"], None)?;
        let routes_text = run(&["ip", "-4", "route", "show", "table", "all"], None)?;
        let first = (pid as usize * 31 + (letter - b'a') as usize * 7) % 253;
        let subnet = (0..253)
            .map(|k| (1 + (first + k) % 253) as u8) // 1..=253
            .find(|&x| {
                x != 169
                    && !taken.subnets.contains(&x)
                    && !subnet_in_use(x, &addrs_text, &routes_text)
            })
            .ok_or(NetnsError::NoSubnet)?;
        taken.letters.insert(letter);
        taken.subnets.insert(subnet);
        let tag = format!("{pid}{}", letter as char);

        let addrs = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let host = (NODE_HOST_BASE + i + 1) as u8;
                let ip = Ipv4Addr::new(169, 254, subnet, host);
                (id.clone(), SocketAddr::V4(SocketAddrV4::new(ip, NODE_PORT)))
            })
            .collect();
        let namespaces = spec
            .nodes
            .iter()
            .map(|id| (id.clone(), format!("{NS_PREFIX}{tag}-{id}")))
            .collect();
        // From here on, dropping `cluster` (on any error) undoes whatever was created.
        let cluster = NetnsCluster {
            spec,
            launch,
            tag,
            letter,
            subnet,
            addrs,
            namespaces,
            ns_files: Mutex::new(BTreeMap::new()),
            created: Mutex::new(Created::default()),
            procs,
            cuts: Mutex::new(BTreeSet::new()),
            links: Mutex::new(None),
            mounts,
            down: AtomicBool::new(false),
        };
        let bridge_result = cluster.build_bridge();
        // The bridge's address now marks the subnet as used for other processes too.
        drop(taken);
        bridge_result?;
        for (i, id) in cluster.spec.nodes.iter().enumerate() {
            cluster.build_node(i + 1, id)?;
        }
        if cluster.spec.link_faults {
            cluster.start_links()?;
        }

        for id in &cluster.spec.nodes {
            cluster.spawn_node(id)?;
        }
        let deadline = Instant::now() + cluster.launch.start_timeout();
        for id in &cluster.spec.nodes {
            let addrs = cluster.ports_of(id);
            let exited = || cluster.procs.exited(id);
            if let Err(why) = wait_up(cluster.launch.as_ref(), id, &addrs, deadline, &exited) {
                let log = cluster.log_path(id);
                return Err(BackendError::node(
                    id,
                    format!(
                        "{why} (namespace {}); see {}{}",
                        cluster.namespaces[id],
                        log.display(),
                        tail(&log)
                    ),
                ));
            }
        }
        tracing::info!(
            tag = %cluster.tag,
            bridge = %cluster.bridge_name(),
            subnet = %format!("169.254.{}.0/24", cluster.subnet),
            "netns cluster up"
        );
        Ok(cluster)
    }

    /// The link proxies ([`links`]): before any member starts, so every connection a member
    /// ever opens to a peer goes through them.
    fn start_links(&self) -> Result<()> {
        let files = self.ns_files.lock().unwrap();
        let members: Vec<links::Member> = self
            .spec
            .nodes
            .iter()
            .map(|id| links::Member {
                id,
                ns: &files[id],
                ip: match self.addrs[id].ip() {
                    std::net::IpAddr::V4(ip) => ip,
                    std::net::IpAddr::V6(_) => unreachable!("netns addresses are IPv4"),
                },
            })
            .collect();
        let started =
            links::Links::start(&members).map_err(|e| BackendError::io("netns link proxies", e))?;
        *self.links.lock().unwrap() = Some(started);
        Ok(())
    }

    fn bridge_name(&self) -> String {
        format!("{BRIDGE_PREFIX}{}", self.tag)
    }

    fn harness_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(169, 254, self.subnet, 1)
    }

    fn build_bridge(&self) -> Result<()> {
        let br = self.bridge_name();
        run(&["ip", "link", "add", &br, "type", "bridge"], None)?;
        self.created.lock().unwrap().bridge = Some(br.clone());
        let cidr = format!("{}/24", self.harness_ip());
        run(&["ip", "addr", "add", &cidr, "dev", &br], None)?;
        run(&["ip", "link", "set", &br, "up"], None)?;
        Ok(())
    }

    /// Namespace, loopback, veth into the bridge, address, and the empty nftables chain.
    fn build_node(&self, index: usize, id: &str) -> Result<()> {
        let ns = &self.namespaces[id];
        run(&["ip", "netns", "add", ns], None)?;
        self.created.lock().unwrap().namespaces.push(ns.clone());
        run(&["ip", "-n", ns, "link", "set", "lo", "up"], None)?;
        let veth = format!("{VETH_PREFIX}{}{index}", self.tag);
        run(
            &[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
            None,
        )?;
        self.created.lock().unwrap().veths.push(veth.clone());
        run(
            &[
                "ip",
                "link",
                "set",
                &veth,
                "master",
                &self.bridge_name(),
                "up",
            ],
            None,
        )?;
        let cidr = format!("{}/24", self.addrs[id].ip());
        run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", "eth0"], None)?;
        run(&["ip", "-n", ns, "link", "set", "eth0", "up"], None)?;
        nft_in(
            ns,
            &format!(
                "add table inet {NFT_TABLE}\n\
                 add chain inet {NFT_TABLE} {NFT_CHAIN} {{ type filter hook output priority 0; policy accept; }}\n"
            ),
        )?;
        if self.spec.link_faults {
            nft_in(
                ns,
                &links::redirect_rules(NFT_TABLE, NFT_NAT_CHAIN, self.subnet, self.harness_ip()),
            )?;
        }
        let path = Path::new("/run/netns").join(ns);
        let file =
            File::open(&path).map_err(|e| BackendError::io(path.display().to_string(), e))?;
        self.ns_files.lock().unwrap().insert(id.to_string(), file);
        Ok(())
    }

    /// The tag every name of this cluster carries (`<pid><letter>`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The network namespace a node runs in.
    pub fn namespace(&self, node: &str) -> Option<&str> {
        self.namespaces.get(node).map(String::as_str)
    }

    /// The bridge in the root namespace.
    pub fn bridge(&self) -> String {
        self.bridge_name()
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

    /// A member's `k`-th port ([`Launch::ports`]) on its namespace address.
    fn port(&self, node: &str, k: usize) -> SocketAddr {
        let mut a = self.addrs[node];
        a.set_port(NODE_PORT + k as u16);
        a
    }

    /// Every port of a member, in [`Launch`] order.
    fn ports_of(&self, node: &str) -> Vec<SocketAddr> {
        (0..self.launch.ports().max(1))
            .map(|k| self.port(node, k))
            .collect()
    }

    fn spawn_node(&self, id: &str) -> Result<()> {
        // --peers holds the whole cluster, the node itself included, all by their real
        // namespace addresses: there is no proxy, the kernel does the faults.
        let peers: Vec<(String, SocketAddr)> = self
            .spec
            .nodes
            .iter()
            .map(|p| (p.clone(), self.addrs[p]))
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
        let ns_fd = {
            let files = self.ns_files.lock().unwrap();
            let Some(f) = files.get(id) else {
                return Err(BackendError::node(
                    id,
                    "its namespace is gone (cluster shut down)",
                ));
            };
            f.as_raw_fd()
        };
        let ports = self.ports_of(id);
        let members: Vec<(String, Vec<SocketAddr>)> = self
            .spec
            .nodes
            .iter()
            .map(|n| (n.clone(), self.ports_of(n)))
            .collect();
        let member = Member {
            id,
            addrs: &ports,
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
        // system calls (setns, prctl, getppid, setpgid); it allocates nothing. The namespace
        // fd stays open in the parent (in `ns_files`) while the spawner forks.
        unsafe {
            cmd.pre_exec(move || {
                let fd = BorrowedFd::borrow_raw(ns_fd);
                nix::sched::setns(fd, CloneFlags::CLONE_NEWNET)?;
                crate::backend::procs::die_with_harness(parent)?;
                nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                Ok(())
            });
        }
        let child = self.procs.spawner.spawn(cmd).map_err(|e| {
            BackendError::node(
                id,
                format!(
                    "could not start {} in namespace {}: {e}",
                    program.display(),
                    self.namespaces[id]
                ),
            )
        })?;
        self.procs.insert(id, child);
        Ok(())
    }

    /// Run a link fault, or say why it cannot be.
    fn with_links(
        &self,
        from: &str,
        to: &str,
        f: impl FnOnce(&links::Links) -> bool,
    ) -> Result<()> {
        self.ns_of(from)?;
        self.ns_of(to)?;
        match self.links.lock().unwrap().as_ref() {
            Some(l) if f(l) => Ok(()),
            Some(_) => Err(BackendError::node(to, format!("no link from {from}"))),
            None => Err(BackendError::Unsupported(format!(
                "{from} -> {to}: this cluster was started without link faults (ClusterSpec::link_faults)"
            ))),
        }
    }

    fn ns_of(&self, node: &str) -> Result<&str> {
        self.namespace(node)
            .ok_or_else(|| BackendError::node(node, "is not in this cluster"))
    }
}

impl Cluster for NetnsCluster {
    fn nodes(&self) -> &[String] {
        &self.spec.nodes
    }

    /// The node's own namespace address: clients in the root namespace reach it over the
    /// bridge, and no rule ever matches the harness's address.
    fn client_addr(&self, node: &str) -> SocketAddr {
        self.addrs[node]
    }

    fn admin_addr(&self, node: &str) -> SocketAddr {
        self.port(node, self.launch.admin_port())
    }

    fn kill(&self, node: &str) -> Result<()> {
        self.procs.kill(node)
    }

    fn restart(&self, node: &str) -> Result<()> {
        self.ns_of(node)?;
        if self.procs.is_running(node) {
            return Err(BackendError::node(node, "is already running"));
        }
        self.spawn_node(node)?;
        let deadline = Instant::now() + self.launch.start_timeout();
        let exited = || self.procs.exited(node);
        let addrs = self.ports_of(node);
        if let Err(why) = wait_up(self.launch.as_ref(), node, &addrs, deadline, &exited) {
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
        self.ns_of(node)?;
        self.procs
            .snapshot(node, &self.data_dir(node), &self.spec.run_dir)
    }

    fn restore(&self, snap: &Snapshot) -> Result<()> {
        self.ns_of(&snap.node)?;
        self.procs.restore(snap, &self.data_dir(&snap.node))
    }

    /// One rule in `from`'s output chain: packets to `to`'s address are dropped, silently.
    fn drop_traffic(&self, from: &str, to: &str) -> Result<()> {
        let ns = self.ns_of(from)?;
        self.ns_of(to)?;
        let mut cuts = self.cuts.lock().unwrap();
        if cuts.contains(&(from.to_string(), to.to_string())) {
            return Ok(());
        }
        let ip = self.addrs[to].ip();
        nft_in(
            ns,
            &format!(
                "add rule inet {NFT_TABLE} {NFT_CHAIN} ip daddr {ip} counter drop comment \"quorate {from} -/-> {to}\"\n"
            ),
        )?;
        cuts.insert((from.to_string(), to.to_string()));
        Ok(())
    }

    /// Flush every node's chain. Tries every namespace even if one fails; reports the first
    /// failure.
    fn heal(&self) -> Result<()> {
        let mut cuts = self.cuts.lock().unwrap();
        let mut first_err = None;
        for ns in self.namespaces.values() {
            if let Err(e) = nft_in(ns, &format!("flush chain inet {NFT_TABLE} {NFT_CHAIN}\n")) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(l) = self.links.lock().unwrap().as_ref() {
            l.heal_all();
        }
        match first_err {
            None => {
                cuts.clear();
                Ok(())
            }
            Some(e) => Err(e.into()),
        }
    }

    /// The link's connections are delayed by the link proxy in `from`'s namespace.
    fn delay_traffic(&self, from: &str, to: &str, delay: Duration) -> Result<()> {
        self.with_links(from, to, |l| l.delay(from, to, delay))
    }

    fn reset_connections(&self, from: &str, to: &str) -> Result<()> {
        self.with_links(from, to, |l| l.reset(from, to))
    }

    fn checkpoint(&self) -> Result<()> {
        self.mounts.checkpoint()
    }

    fn power_cut(&self, node: &str) -> Result<crate::lazyfs::model::Unsynced> {
        self.ns_of(node)?;
        if self.procs.is_running(node) {
            return Err(BackendError::node(
                node,
                "power cut while running: kill it first",
            ));
        }
        self.mounts.cut(node)
    }

    fn shutdown(&self) {
        if self.down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.procs.stop_all();
        self.mounts.stop_all();
        drop(self.links.lock().unwrap().take());
        // Close our handles, so the namespaces are freed as soon as their names are deleted.
        self.ns_files.lock().unwrap().clear();
        let created = std::mem::take(&mut *self.created.lock().unwrap());
        for ns in &created.namespaces {
            kill_all_in(ns);
            if let Err(e) = ignore_missing(run(&["ip", "netns", "delete", ns], None)) {
                tracing::warn!("netns cleanup: {e}");
            }
        }
        // The veths died with their namespaces; delete explicitly in case a namespace was not.
        for veth in created.veths.iter().chain(created.bridge.iter()) {
            if let Err(e) = ignore_missing(run(&["ip", "link", "delete", veth], None)) {
                tracing::warn!("netns cleanup: {e}");
            }
        }
        self.cuts.lock().unwrap().clear();
        let mut taken = TAKEN.lock().unwrap();
        taken.letters.remove(&self.letter);
        taken.subnets.remove(&self.subnet);
    }
}

impl Drop for NetnsCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
