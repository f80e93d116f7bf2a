//! The `ssh` backend: one member per host, every host driven over the system's OpenSSH client
//! as Jepsen's control node drives its database nodes. The harness, clients, recorder and
//! checker stay on this machine; clients dial the members' addresses straight, never through
//! the ssh connections (the control path is not on the clients' path).
//!
//! # On each host
//! Member `n<i>` runs on the `i`-th host of `--hosts` ([`hosts`]), in its own folder
//! `<work_dir>/quorate-<run tag>-<id>/` holding `bin/` (the member's program, uploaded),
//! `files/` (files its command names, such as Garage's config or libfaketime's offset file,
//! uploaded), `data/` (its data directory), `member.log` and `member.pid`. The member is
//! started under `nohup setsid` in the background, so it outlives the ssh command that
//! started it and has a session of its own; `$!` is its pid (both exec, neither forks), which
//! kill, pause and resume signal over ssh.
//!
//! Partitions are nftables rules in one table of quorate's own, `inet quorate`, with an
//! `output` chain, made at start on each host (after deleting any left by a dead run): cutting
//! `a → b` adds `ip daddr <b's address> drop` on `a`'s host, healing flushes the chains, and
//! tear-down deletes the table. The control machine's address is never matched, so ssh and
//! clients always get through.
//!
//! # Tear-down
//! [`SshCluster::shutdown`] (also `Drop`) works on every host at once: the member is
//! continued and SIGKILLed, the table deleted, `member.log` and `data/` fetched into the run
//! folder (`nodes/<id>.log`, `data/<id>/`), and the host's folder removed unless
//! `--keep-remote`. A host that cannot be reached is named on stderr, with what may be left on
//! it; the others are cleaned up all the same.
//!
//! `slow` and `flaky` run through quorate's own link proxy on each host ([`links`]).
//!
//! `power-loss` runs each member's lazyfs server on its host: `data/` is a lazyfs mount over
//! `durable/`, served by `quorate lazyfs` (the `quorate` binary uploaded as for the link
//! proxy) inside an `ssh` session this machine keeps open, whose stdin/stdout carry the
//! protocol [`crate::lazyfs::mount::Mount`] speaks to a local server (the server's log comes
//! back on the session's stderr into `nodes/<id>.lazyfs.log`). Closing the session is the
//! clean stop and unmount; the mount has `auto_unmount` if the server dies otherwise. After a
//! server stops, its host is asked whether the mount is gone, and `fusermount3 -uz` removes
//! one that is not.
//!
//! Files: this one ([`SshCluster`] and its faults), [`hosts`] (the hosts file), [`control`]
//! (OpenSSH as the [`crate::backend::remote::Remote`] seam, and connecting every host), `sweep`
//! (what dead runs from this machine left on a host, removed before a run lays out its own).

pub mod control;
pub mod hosts;
pub mod links;
mod sweep;

pub use control::{Needs, SshHosts, SshRemote};

use super::launch::{Launch, Member};
use super::local;
use super::remote::{sh_quote, Remote, RemoteError};
use super::{BackendError, Cluster, ClusterSpec, Result, Snapshot};
use crate::lazyfs::model::Unsynced;
use crate::lazyfs::mount::Mount;
use control::{COPY_TIMEOUT, STEP_TIMEOUT};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a member gets to answer `/health` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The nftables table (family `inet`) and chain on every host.
const NFT_TABLE: &str = "quorate";
const NFT_CHAIN: &str = "output";

impl From<RemoteError> for BackendError {
    fn from(e: RemoteError) -> BackendError {
        BackendError::io("ssh backend", std::io::Error::other(e))
    }
}

/// A cluster with one member on each host of the hosts file.
pub struct SshCluster {
    spec: ClusterSpec,
    launch: Arc<dyn Launch>,
    hosts: Arc<SshHosts>,
    needs: Needs,
    /// Node id → index into `hosts`.
    index: BTreeMap<String, usize>,
    /// Node id → its folder on its host.
    rdirs: BTreeMap<String, String>,
    /// Running members' pids on their hosts.
    pids: Mutex<BTreeMap<String, u32>>,
    /// Members whose program is uploaded already.
    uploaded: Mutex<BTreeSet<String>>,
    /// (node, local file) → where it was uploaded, for [`Cluster::sync_file`].
    staged: Mutex<BTreeMap<(String, PathBuf), String>>,
    cuts: Mutex<BTreeSet<(String, String)>>,
    /// Each host's link proxy, when the spec asks for link faults ([`links`]).
    links: Mutex<BTreeMap<String, links::LinkControl>>,
    /// Each member's lazyfs mount on its host, when the spec asks for power loss.
    mounts: Mutex<BTreeMap<String, Mount>>,
    snapshots: AtomicU64,
    down: AtomicBool,
}

impl SshCluster {
    /// Lay out every host, start every member as `launch` says and wait until each serves.
    pub async fn start(
        spec: ClusterSpec,
        launch: Arc<dyn Launch>,
        hosts: Arc<SshHosts>,
        needs: Needs,
    ) -> Result<SshCluster> {
        tokio::task::spawn_blocking(move || SshCluster::start_blocking(spec, launch, hosts, needs))
            .await
            .map_err(|e| BackendError::io("ssh start task", std::io::Error::other(e)))?
    }

    fn start_blocking(
        spec: ClusterSpec,
        launch: Arc<dyn Launch>,
        hosts: Arc<SshHosts>,
        needs: Needs,
    ) -> Result<SshCluster> {
        if spec.nodes.len() > hosts.remotes.len() {
            return Err(BackendError::Unsupported(format!(
                "{} members but {} hosts: expected one host per member",
                spec.nodes.len(),
                hosts.remotes.len()
            )));
        }
        for dir in ["nodes", "data", "ssh"] {
            let p = spec.run_dir.join(dir);
            std::fs::create_dir_all(&p)
                .map_err(|e| BackendError::io(p.display().to_string(), e))?;
        }
        let _ = std::fs::copy(
            &hosts.file.path,
            spec.run_dir.join("ssh").join("hosts.toml"),
        );
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let tag = format!("{secs}-{}", std::process::id());
        let index: BTreeMap<String, usize> = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let rdirs = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let w = &hosts.remotes[i].host.work_dir;
                (id.clone(), format!("{w}/quorate-{tag}-{id}"))
            })
            .collect();
        // From here on, dropping `cluster` (on any error) undoes whatever was made.
        let cluster = SshCluster {
            spec,
            launch,
            hosts,
            needs,
            index,
            rdirs,
            pids: Mutex::new(BTreeMap::new()),
            uploaded: Mutex::new(BTreeSet::new()),
            staged: Mutex::new(BTreeMap::new()),
            cuts: Mutex::new(BTreeSet::new()),
            links: Mutex::new(BTreeMap::new()),
            mounts: Mutex::new(BTreeMap::new()),
            snapshots: AtomicU64::new(0),
            down: AtomicBool::new(false),
        };
        cluster.on_every_node(|c, id| c.lay_out(id))?;
        cluster.on_every_node(|c, id| c.spawn(id))?;
        let deadline = Instant::now() + START_TIMEOUT;
        for id in &cluster.spec.nodes {
            cluster.wait_up(id, deadline, "start")?;
        }
        tracing::info!(
            hosts = ?cluster.hosts.remotes.iter().map(|r| r.host.name.clone()).collect::<Vec<_>>(),
            "ssh cluster up"
        );
        Ok(cluster)
    }

    /// Run `f` for every member at once (one thread per host); the first error, with every
    /// other host's work done all the same.
    fn on_every_node(&self, f: impl Fn(&SshCluster, &str) -> Result<()> + Sync) -> Result<()> {
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .spec
                .nodes
                .iter()
                .map(|id| {
                    let f = &f;
                    s.spawn(move || f(self, id))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BackendError::Unsupported("ssh host thread panicked".into()))
                    })
                })
                .collect()
        });
        results.into_iter().collect()
    }

    fn remote(&self, node: &str) -> Result<&SshRemote> {
        let i = self
            .index
            .get(node)
            .ok_or_else(|| BackendError::node(node, "is not in this cluster"))?;
        Ok(&self.hosts.remotes[*i])
    }

    fn rdir(&self, node: &str) -> &str {
        &self.rdirs[node]
    }

    /// Run `script` on `node`'s host; an error names the node and the host.
    fn exec(&self, node: &str, script: &str, input: Option<&[u8]>) -> Result<String> {
        let r = self.remote(node)?;
        r.exec(script, input, STEP_TIMEOUT)
            .map_err(|e| BackendError::node(node, e.to_string()))
    }

    /// The member's folder, and the nftables table when partitions are asked for.
    fn lay_out(&self, id: &str) -> Result<()> {
        self.sweep_dead_runs(id)?;
        let d = sh_quote(self.rdir(id));
        self.exec(
            id,
            &format!(
                "rm -rf {d} && mkdir -p {d}/bin {d}/files {d}/data {d}/snapshots && \
                 printf '%s\\n' {} >{d}/owner",
                sh_quote(&sweep::owner_line())
            ),
            None,
        )?;
        if self.needs.nft {
            // `add` then `delete`: a table a dead run left is removed, and a missing one is no
            // error.
            self.exec(
                id,
                "nft -f -",
                Some(
                    format!(
                        "add table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n\
                         add table inet {NFT_TABLE}\n\
                         add chain inet {NFT_TABLE} {NFT_CHAIN} {{ type filter hook output priority 0; policy accept; }}\n"
                    )
                    .as_bytes(),
                ),
            )?;
        }
        if self.spec.link_faults {
            self.start_link_proxy(id)?;
        }
        if self.spec.power_loss {
            let m = self.mount(id)?;
            self.mounts.lock().unwrap().insert(id.to_string(), m);
        }
        Ok(())
    }

    /// Start `id`'s lazyfs server on its host (`data/` served over `durable/`) in an ssh
    /// session kept open, and wait until it has mounted.
    fn mount(&self, id: &str) -> Result<Mount> {
        let me = crate::lazyfs::mount::server_program().map_err(|e| BackendError::node(id, e))?;
        let q = self.program_on_host(id, &me)?;
        let d = self.rdir(id).to_string();
        let (backing, at) = (format!("{d}/durable"), format!("{d}/data"));
        self.remote(id)?;
        let r = self.hosts.remotes[self.index[id]].clone();
        let session = r.session(&format!(
            "chmod +x {q} 2>/dev/null; mkdir -p {b} {m} && exec {q} lazyfs --backing {b} --mount {m}",
            q = sh_quote(&q),
            b = sh_quote(&backing),
            m = sh_quote(&at),
        ));
        let log = self
            .spec
            .run_dir
            .join("nodes")
            .join(format!("{id}.lazyfs.log"));
        let gone = mount_gone(r, at.clone());
        let host = self.hosts.remotes[self.index[id]].host.name.clone();
        Mount::start_remote(session, Path::new(&backing), Path::new(&at), &log, gone)
            .map_err(|e| BackendError::node(id, format!("host {host}: {e}")))
    }

    /// Stop `id`'s lazyfs server cleanly (nothing unsynced is lost) and make sure its mount is
    /// gone from the host; the member must be dead.
    fn unmount(&self, id: &str) {
        let m = self.mounts.lock().unwrap().remove(id);
        if let Some(mut m) = m {
            m.stop();
        }
    }

    /// The redirect of `id`'s connections to its peers, and the link proxy they land on,
    /// uploaded and started as a managed process, then connected ([`links`]).
    fn start_link_proxy(&self, id: &str) -> Result<()> {
        let own = self.member_addr(id, 0);
        let mut ips = Vec::new();
        let mut peers = Vec::new();
        let mut ports = BTreeSet::new();
        for p in &self.spec.nodes {
            let a = self.member_addr(p, 0);
            for k in 0..self.launch.ports().max(1) {
                ports.insert(a.port() + k as u16);
            }
            if p != id {
                let IpAddr::V4(ip) = a.ip() else {
                    return Err(BackendError::node(
                        id,
                        "slow and flaky over ssh need IPv4 peer addresses",
                    ));
                };
                ips.push(ip.to_string());
                peers.push(format!("--peer {p}={ip}"));
            }
        }
        let link_port = own.port() + links::LINK_OFFSET;
        let control = SocketAddr::new(own.ip(), own.port() + links::CONTROL_OFFSET);
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let mark = crate::backend::netns::links::MARK;
        self.exec(
            id,
            "nft -f -",
            Some(
                format!(
                    "add chain inet {NFT_TABLE} links {{ type nat hook output priority -100; policy accept; }}\n\
                     add rule inet {NFT_TABLE} links meta mark != {mark:#x} ip daddr {{ {} }} \
                     tcp dport {{ {} }} redirect to :{link_port} comment \"quorate link faults\"\n",
                    ips.join(", "),
                    ports.join(", ")
                )
                .as_bytes(),
            ),
        )?;
        let me = std::env::current_exe()
            .map_err(|e| BackendError::io("the quorate executable (for the link proxy)", e))?;
        let d = self.rdir(id).to_string();
        let remote = self.program_on_host(id, &me)?;
        let q = sh_quote(&d);
        self.exec(
            id,
            &format!(
                "chmod +x {r} 2>/dev/null\n\
                 nohup setsid {r} link-proxy --port {link_port} --control {control} {peers} \
                 >>{q}/proxy.log 2>&1 </dev/null &\necho $! >{q}/proxy.pid\n",
                r = sh_quote(&remote),
                peers = peers.join(" ")
            ),
            None,
        )?;
        let ctl = links::LinkControl::connect(control, Instant::now() + STEP_TIMEOUT)
            .map_err(|e| BackendError::node(id, e))?;
        self.links.lock().unwrap().insert(id.to_string(), ctl);
        Ok(())
    }

    /// Send a control line to `from`'s link proxy.
    fn steer(&self, from: &str, to: &str, line: &str) -> Result<()> {
        self.remote(from)?;
        self.remote(to)?;
        let links = self.links.lock().unwrap();
        let Some(l) = links.get(from) else {
            return Err(BackendError::Unsupported(format!(
                "{from} -> {to}: this cluster was started without link faults (ClusterSpec::link_faults)"
            )));
        };
        l.send(line).map_err(|e| BackendError::node(from, e))
    }

    fn member_addr(&self, node: &str, k: usize) -> SocketAddr {
        let h = &self.hosts.remotes[self.index[node]].host;
        SocketAddr::new(h.peer_address, h.member_port + k as u16)
    }

    /// Where `local` (a program) is on `node`'s host: in the host's `bin_dir` under the same
    /// name when it is there, else uploaded into the member's `bin/` (once per member).
    fn program_on_host(&self, node: &str, local: &Path) -> Result<String> {
        let name = local
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let host = &self.remote(node)?.host;
        if let Some(dir) = &host.bin_dir {
            let there = format!("{dir}/{name}");
            if self
                .exec(node, &format!("test -x {}", sh_quote(&there)), None)
                .is_ok()
            {
                return Ok(there);
            }
        }
        let remote = format!("{}/bin/{name}", self.rdir(node));
        if self
            .uploaded
            .lock()
            .unwrap()
            .insert(format!("{node} {name}"))
        {
            self.remote(node)?
                .upload(local, &remote)
                .map_err(|e| BackendError::node(node, e.to_string()))?;
        }
        Ok(remote)
    }

    /// Upload `local` for `node` into its `files/` (or `bin/`) and remember where.
    fn stage(&self, node: &str, local: &Path, sub: &str) -> Result<String> {
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "file".into());
        let remote = format!("{}/{sub}/{name}", self.rdir(node));
        self.remote(node)?
            .upload(local, &remote)
            .map_err(|e| BackendError::node(node, e.to_string()))?;
        self.staged
            .lock()
            .unwrap()
            .insert((node.to_string(), local.to_path_buf()), remote.clone());
        Ok(remote)
    }

    /// A word of the command as it should read on the host: a local file it names is uploaded
    /// and named by its copy.
    fn translate(&self, node: &str, word: &str) -> Result<String> {
        let p = Path::new(word);
        if p.is_absolute() && !word.starts_with(self.rdir(node)) && p.is_file() {
            return self.stage(node, p, "files");
        }
        Ok(word.to_string())
    }

    /// Every port `node` listens on, clients' first.
    fn ports_of(&self, node: &str) -> Vec<SocketAddr> {
        (0..self.launch.ports().max(1))
            .map(|k| self.member_addr(node, k))
            .collect()
    }

    /// Start the member on its host, as the target's `Launch` says, and note its pid.
    fn spawn(&self, id: &str) -> Result<()> {
        let rdir = self.rdir(id).to_string();
        let peers: Vec<(String, SocketAddr)> = self
            .spec
            .nodes
            .iter()
            .map(|p| (p.clone(), self.member_addr(p, 0)))
            .collect();
        let ports = self.ports_of(id);
        let members: Vec<(String, Vec<SocketAddr>)> = self
            .spec
            .nodes
            .iter()
            .map(|p| (p.clone(), self.ports_of(p)))
            .collect();
        let data = PathBuf::from(format!("{rdir}/data"));
        let member = Member {
            id,
            addrs: &ports,
            peers: &peers,
            members: &members,
            data_dir: &data,
        };
        let program = self.launch.program();
        let cmd = self.launch.command(&member).map_err(|e| {
            BackendError::node(id, format!("could not prepare {}: {e}", program.display()))
        })?;
        let prog = PathBuf::from(cmd.get_program());
        let remote_prog = if prog.is_absolute() && prog.is_file() {
            self.program_on_host(id, &prog)?
        } else {
            // A bare name: found on the host's PATH.
            prog.display().to_string()
        };
        let mut env = Vec::new();
        for (k, v) in cmd.get_envs() {
            let (k, Some(v)) = (k.to_string_lossy(), v) else {
                continue;
            };
            let v = v.to_string_lossy();
            let v = if k == "LD_PRELOAD" {
                self.hosts.libfaketime[self.index[id]]
                    .clone()
                    .ok_or_else(|| {
                        BackendError::node(
                            id,
                            "LD_PRELOAD asked for, but libfaketime was not looked up on its host",
                        )
                    })?
            } else {
                self.translate(id, &v)?
            };
            env.push(format!("{k}={}", sh_quote(&v)));
        }
        let mut args = Vec::new();
        for a in cmd.get_args() {
            args.push(sh_quote(&self.translate(id, &a.to_string_lossy())?));
        }
        let d = sh_quote(&rdir);
        let script = format!(
            "cd {d} || exit 1\nchmod +x {p} 2>/dev/null\n\
             nohup setsid env {env} {p} {args} >>{d}/member.log 2>&1 </dev/null &\n\
             echo $! >{d}/member.pid\necho $!\n",
            p = sh_quote(&remote_prog),
            env = env.join(" "),
            args = args.join(" "),
        );
        let out = self.exec(id, &script, None)?;
        let pid: u32 = out.trim().parse().map_err(|_| {
            BackendError::node(id, format!("starting it printed {out:?}, not a pid"))
        })?;
        tracing::info!(node = id, host = %self.remote(id)?.host.name, pid, "ssh: member started");
        self.pids.lock().unwrap().insert(id.to_string(), pid);
        Ok(())
    }

    /// Wait until `id` serves, asking its host every second whether it is still there.
    fn wait_up(&self, id: &str, deadline: Instant, what: &str) -> Result<()> {
        let addrs = self.ports_of(id);
        let last = Cell::new(Instant::now());
        let exited = || {
            if last.get().elapsed() < Duration::from_secs(1) {
                return None;
            }
            last.set(Instant::now());
            let pid = self.pids.lock().unwrap().get(id).copied()?;
            match self.exec(id, &format!("kill -0 {pid} 2>/dev/null || echo gone"), None) {
                Ok(o) if o.trim() == "gone" => Some("gone from its host".to_string()),
                _ => None,
            }
        };
        local::wait_up(&*self.launch, id, &addrs, deadline, &exited).map_err(|why| {
            let tail = self
                .exec(
                    id,
                    &format!("tail -n 5 {}/member.log", sh_quote(self.rdir(id))),
                    None,
                )
                .unwrap_or_default();
            BackendError::node(
                id,
                format!(
                    "{what}: {why} (host {}); last lines of its log:\n{tail}",
                    self.remote(id).map(|r| r.host.name.as_str()).unwrap_or("?")
                ),
            )
        })
    }

    fn signal(&self, node: &str, sig: &str) -> Result<()> {
        let pid = self
            .pids
            .lock()
            .unwrap()
            .get(node)
            .copied()
            .ok_or_else(|| BackendError::node(node, "is not running"))?;
        // As the local backends: a SIGSTOP returns once every thread of the member is stopped
        // (`kill` returns when the signal is queued), polled on the host, bounded at 5 s.
        let wait = if sig == "STOP" {
            format!(
                " && i=0 && while [ $i -lt 2500 ]; do all=1; \
                 for f in /proc/{pid}/task/*/stat; do st=$(sed 's/.*) //' \"$f\" | cut -c1); \
                 case \"$st\" in T|t) ;; *) all=0 ;; esac; done; \
                 [ $all = 1 ] && exit 0; i=$((i+1)); sleep 0.002; done; \
                 echo \"SIGSTOP: some thread of pid {pid} still running after 5 s\" >&2; exit 1"
            )
        } else {
            String::new()
        };
        self.exec(node, &format!("kill -{sig} {pid}{wait}"), None)?;
        Ok(())
    }

    /// The host a node runs on (tests and messages).
    pub fn host_of(&self, node: &str) -> Option<&str> {
        self.index
            .get(node)
            .map(|i| self.hosts.remotes[*i].host.name.as_str())
    }

    /// A running member's pid on its host.
    pub fn pid(&self, node: &str) -> Option<u32> {
        self.pids.lock().unwrap().get(node).copied()
    }

    /// The member's folder on its host.
    pub fn remote_dir(&self, node: &str) -> Option<&str> {
        self.rdirs.get(node).map(String::as_str)
    }

    /// Everything of one member on its host: killed, rule table gone, files fetched, folder
    /// removed. Each step is tried even if one before failed; the first failure is returned.
    fn tear_down(&self, id: &str) -> std::result::Result<(), RemoteError> {
        let r = self.remote(id).expect("members of this cluster");
        let d = sh_quote(self.rdir(id));
        let pid = self.pids.lock().unwrap().remove(id);
        let mut errs: Vec<RemoteError> = Vec::new();
        let mut note = |res: std::result::Result<(), RemoteError>| {
            if let Err(e) = res {
                tracing::warn!("ssh tear-down of {id}: {e}");
                errs.push(e);
            }
        };
        let kill = format!(
            "for p in {} $(cat {d}/member.pid {d}/proxy.pid 2>/dev/null); do kill -CONT $p 2>/dev/null; \
             kill -KILL $p 2>/dev/null; done; rm -f {d}/member.pid; true",
            pid.map(|p| p.to_string()).unwrap_or_default()
        );
        if let Err(e) = r.exec(&kill, None, STEP_TIMEOUT) {
            if e.is_unreachable() {
                return Err(e);
            }
            note(Err(e));
        }
        self.unmount(id);
        if self.needs.nft {
            note(
                r.exec(
                    &format!("nft delete table inet {NFT_TABLE} 2>/dev/null; nft list table inet {NFT_TABLE} >/dev/null 2>&1 && exit 1; true"),
                    None,
                    STEP_TIMEOUT,
                )
                .map(|_| ()),
            );
        }
        if self.needs.faketime {
            // libfaketime's shared memory of SIGKILLed members (see targets::faketime).
            note(
                r.exec(
                    "for f in /dev/shm/faketime_shm_* /dev/shm/sem.faketime_sem_*; do \
                     [ -e \"$f\" ] || continue; p=${f##*_}; kill -0 \"$p\" 2>/dev/null || rm -f \"$f\"; done; true",
                    None,
                    STEP_TIMEOUT,
                )
                .map(|_| ()),
            );
        }
        let log = self.spec.run_dir.join("nodes").join(format!("{id}.log"));
        note(r.download(&format!("{}/member.log", self.rdir(id)), &log));
        if self.spec.link_faults {
            let log = self
                .spec
                .run_dir
                .join("nodes")
                .join(format!("{id}.link-proxy.log"));
            note(r.download(&format!("{}/proxy.log", self.rdir(id)), &log));
        }
        let data = self.spec.run_dir.join("data").join(id);
        if !data.exists() {
            note(r.download(&format!("{}/data", self.rdir(id)), &data));
        }
        if self.spec.power_loss {
            // What survived (and would survive) a cut: the mounts' backing folders.
            let durable = self.spec.run_dir.join("durable");
            let _ = std::fs::create_dir_all(&durable);
            note(r.download(&format!("{}/durable", self.rdir(id)), &durable.join(id)));
        }
        if !self.hosts.keep_remote {
            note(
                r.exec(&format!("rm -rf {d}"), None, COPY_TIMEOUT)
                    .map(|_| ()),
            );
        } else {
            // Kept on purpose, not left by a dead run: the next run's sweep leaves it alone.
            note(
                r.exec(&format!("rm -f {d}/owner"), None, STEP_TIMEOUT)
                    .map(|_| ()),
            );
        }
        match errs.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// After a lazyfs server on `r` stopped: wait (bounded) for auto_unmount to unmount `mp` in
/// the host's mount table, then unmount it there with `fusermount3 -uz` (or `umount -l`).
fn mount_gone(r: Arc<SshRemote>, mp: String) -> crate::lazyfs::mount::EnsureGone {
    Box::new(move || {
        let script = format!(
            "m={m}; i=0; while awk -v m=\"$m\" '$5 == m {{ f = 1 }} END {{ exit !f }}' /proc/self/mountinfo; do \
             i=$((i+1)); if [ $i -gt 50 ]; then fusermount3 -uz \"$m\" 2>/dev/null || umount -l \"$m\"; fi; \
             if [ $i -gt 60 ]; then echo \"$m is still mounted\" >&2; exit 1; fi; sleep 0.1; done",
            m = sh_quote(&mp)
        );
        r.exec(&script, None, STEP_TIMEOUT)
            .map(|_| ())
            .map_err(|e| format!("lazyfs on host {}: {e}", r.host.name))
    })
}

impl Cluster for SshCluster {
    fn nodes(&self) -> &[String] {
        &self.spec.nodes
    }

    /// The member's own address on its host: clients dial it straight.
    fn client_addr(&self, node: &str) -> SocketAddr {
        self.member_addr(node, 0)
    }

    fn admin_addr(&self, node: &str) -> SocketAddr {
        self.member_addr(node, self.launch.admin_port())
    }

    fn kill(&self, node: &str) -> Result<()> {
        let pid = self
            .pids
            .lock()
            .unwrap()
            .remove(node)
            .ok_or_else(|| BackendError::node(node, "is not running"))?;
        // Continued first so the kill is not held up; then wait until it is gone, so its
        // ports are free for a restart.
        self.exec(
            node,
            &format!(
                "kill -CONT {pid} 2>/dev/null; kill -KILL {pid} 2>/dev/null; i=0; \
                 while kill -0 {pid} 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; \
                 rm -f {}/member.pid; true",
                sh_quote(self.rdir(node))
            ),
            None,
        )?;
        Ok(())
    }

    fn restart(&self, node: &str) -> Result<()> {
        self.remote(node)?;
        if self.pids.lock().unwrap().contains_key(node) {
            return Err(BackendError::node(node, "is already running"));
        }
        self.spawn(node)?;
        self.wait_up(node, Instant::now() + START_TIMEOUT, "restart")
    }

    fn pause(&self, node: &str) -> Result<()> {
        self.signal(node, "STOP")
    }

    fn resume(&self, node: &str) -> Result<()> {
        self.signal(node, "CONT")
    }

    /// A copy of the data folder on the member's host (it is paused, so the copy is whole).
    fn snapshot(&self, node: &str) -> Result<Snapshot> {
        let k = self.snapshots.fetch_add(1, Ordering::Relaxed);
        let d = self.rdir(node).to_string();
        let path = format!("{d}/snapshots/{k}");
        self.exec(
            node,
            &format!("cp -a {}/data {}", sh_quote(&d), sh_quote(&path)),
            None,
        )?;
        Ok(Snapshot {
            node: node.to_string(),
            path: PathBuf::from(path),
            taken: Instant::now(),
        })
    }

    fn restore(&self, snap: &Snapshot) -> Result<()> {
        if self.pids.lock().unwrap().contains_key(&snap.node) {
            return Err(BackendError::node(
                &snap.node,
                "restore needs the node stopped",
            ));
        }
        // The contents, not the folder: it may be a mount point (power-loss's lazyfs).
        let d = sh_quote(self.rdir(&snap.node));
        self.exec(
            &snap.node,
            &format!(
                "find {d}/data -mindepth 1 -maxdepth 1 -exec rm -rf {{}} + && cp -a {}/. {d}/data/",
                sh_quote(&snap.path.display().to_string())
            ),
            None,
        )?;
        Ok(())
    }

    /// One rule on `from`'s host: packets to `to`'s address are dropped, silently.
    fn drop_traffic(&self, from: &str, to: &str) -> Result<()> {
        self.remote(from)?;
        self.remote(to)?;
        if !self.needs.nft {
            return Err(BackendError::Unsupported(format!(
                "{from} -/-> {to}: the hosts were not checked for nft (partition was not in --nemesis)"
            )));
        }
        let mut cuts = self.cuts.lock().unwrap();
        if cuts.contains(&(from.to_string(), to.to_string())) {
            return Ok(());
        }
        let ip = self.member_addr(to, 0).ip();
        let family = match ip {
            IpAddr::V4(_) => "ip",
            IpAddr::V6(_) => "ip6",
        };
        self.exec(
            from,
            "nft -f -",
            Some(
                format!(
                    "add rule inet {NFT_TABLE} {NFT_CHAIN} {family} daddr {ip} counter drop comment \"quorate {from} -/-> {to}\"\n"
                )
                .as_bytes(),
            ),
        )?;
        cuts.insert((from.to_string(), to.to_string()));
        Ok(())
    }

    /// Flush every host's chain, all at once; every host is tried, the first failure (naming
    /// its host) returned.
    fn heal(&self) -> Result<()> {
        let mut cuts = self.cuts.lock().unwrap();
        let healed = self.on_every_node(|c, id| {
            if !c.needs.nft {
                return Ok(());
            }
            c.exec(
                id,
                &format!("nft flush chain inet {NFT_TABLE} {NFT_CHAIN}"),
                None,
            )
            .map(|_| ())
        });
        if healed.is_ok() {
            cuts.clear();
        }
        let mut first = healed.err();
        for (id, l) in self.links.lock().unwrap().iter() {
            if let Err(e) = l.send("heal") {
                first.get_or_insert(BackendError::node(id, e));
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The link's connections are delayed by the link proxy on `from`'s host.
    fn delay_traffic(&self, from: &str, to: &str, delay: Duration) -> Result<()> {
        self.steer(from, to, &format!("delay {to} {}", delay.as_millis()))
    }

    fn reset_connections(&self, from: &str, to: &str) -> Result<()> {
        self.steer(from, to, &format!("reset {to}"))
    }

    /// Rewrite the host's copy of a file the member's command named (libfaketime's offset).
    fn sync_file(&self, node: &str, local: &Path) -> Result<()> {
        let remote = self
            .staged
            .lock()
            .unwrap()
            .get(&(node.to_string(), local.to_path_buf()))
            .cloned();
        let Some(remote) = remote else {
            return Ok(());
        };
        let bytes =
            std::fs::read(local).map_err(|e| BackendError::io(local.display().to_string(), e))?;
        let q = sh_quote(&remote);
        self.exec(
            node,
            &format!("cat >{q}.tmp && mv {q}.tmp {q}"),
            Some(&bytes),
        )?;
        Ok(())
    }

    /// The member (dead) loses what it did not fsync: its server on the host drops it and
    /// exits, and a new one mounts what was durable.
    fn power_cut(&self, node: &str) -> Result<Unsynced> {
        self.remote(node)?;
        if self.pids.lock().unwrap().contains_key(node) {
            return Err(BackendError::node(node, "power loss needs the member dead"));
        }
        let mut mounts = self.mounts.lock().unwrap();
        let Some(m) = mounts.get_mut(node) else {
            return Err(BackendError::Unsupported(format!(
                "power loss on {node}: its data directory is not a lazyfs mount (the cluster was \
                 started without ClusterSpec::power_loss)"
            )));
        };
        let dropped = m.cut().map_err(|e| BackendError::node(node, e))?;
        mounts.remove(node);
        let again = self.mount(node)?;
        mounts.insert(node.to_string(), again);
        Ok(dropped)
    }

    fn checkpoint(&self) -> Result<()> {
        let mut mounts = self.mounts.lock().unwrap();
        for (id, m) in mounts.iter_mut() {
            let was = m.sync().map_err(|e| BackendError::node(id, e))?;
            tracing::info!(node = %id, bytes = was.bytes, metadata_ops = was.metadata_ops, "lazyfs: checkpoint after set-up");
        }
        Ok(())
    }

    fn shutdown(&self) {
        if self.down.swap(true, Ordering::SeqCst) {
            return;
        }
        // Hanging up makes each link proxy exit by itself; tear-down kills it by pid too.
        self.links.lock().unwrap().clear();
        // A host lost during the run gets one more try: it may be back.
        for r in &self.hosts.remotes {
            r.retry();
        }
        let _ = self.on_every_node(|c, id| {
            if let Err(e) = c.tear_down(id) {
                let host = c.host_of(id).unwrap_or("?");
                let left = if e.is_unreachable() {
                    format!(
                        "its member (pid in {}/member.pid){} may still be there",
                        c.rdir(id),
                        match (c.needs.nft, c.spec.power_loss) {
                            (true, true) => {
                                ", the nftables table inet quorate and its lazyfs mount"
                            }
                            (true, false) => " and the nftables table inet quorate",
                            (false, true) => " and its lazyfs mount",
                            (false, false) => "",
                        }
                    )
                } else {
                    "the other steps were done".to_string()
                };
                eprintln!("quorate run: tear-down of {id} on host {host}: {e}; {left}");
            }
            Ok(())
        });
        self.hosts.save_known_hosts(&self.spec.run_dir.join("ssh"));
        self.cuts.lock().unwrap().clear();
    }
}

impl Drop for SshCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
