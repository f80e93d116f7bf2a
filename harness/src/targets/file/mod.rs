//! `--target-file FILE.toml`: a store quorate has never seen, described in a file
//! (docs/TARGETS.md): how to start, ready, set up and stop its members, what its clients
//! speak (a built-in API or an adapter command, [`adapter`]), which ops and faults it takes.
//!
//! - [`config`]: the file, checked before anything starts (file:line in every refusal).
//! - [`adapter`]: the adapter protocol (JSON Lines over an adapter process's stdin/stdout).
//! - below: the spec, the launch (placeholders filled per member, the readiness kinds, the
//!   stop signal), the set-up command, and the clock (libfaketime, checked on the first skew
//!   where the file says how to ask a member its time).

pub mod adapter;
pub mod config;

use super::faketime::{self, Faketime};
use super::{
    Api, BoxFuture, Capabilities, Clock, Common, Placement, Spec, Support, Target, TargetKind,
    UnknownPlacement,
};
use crate::backend::launch::{Launch, Member};
use crate::backend::Cluster;
use clap::Args;
use config::{ClientKind, FileConfig, MemberAddrs, Place, Ready};
use quorate_workloads::OpKind;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A file-described target declares its ops and faults in its file; [`FileSpec::new`] refuses
/// what the file does not list (with its line), so these let everything through to it.
pub static CAPS: Capabilities = Capabilities {
    name: "file",
    ops: &[OpKind::Read, OpKind::Write, OpKind::Cas],
    ops_why: "speaks what its target file lists",
    faults: |_| Support::Yes,
    observer: None,
    equivalents: "a target file says everything about its store in the file",
    flags_are: "--target-file",
};

/// `--target-file`.
#[derive(Args, Debug, Clone, Default, Serialize)]
pub struct FileArgs {
    /// Run a store described in a TOML file (docs/TARGETS.md) instead of a built-in
    /// --target.
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    pub target_file: Option<PathBuf>,
}

impl FileArgs {
    pub fn given(&self) -> Vec<&'static str> {
        self.target_file
            .as_ref()
            .map(|_| vec!["--target-file"])
            .unwrap_or_default()
    }
}

/// THE place where a target file's `client.api` names a built-in API: `node` today. `etcd`
/// plugs in here once `targets::etcd::api::EtcdApi` is merged (one arm in each function).
pub fn builtin_api_check(name: &str) -> Result<(), String> {
    match name {
        "node" | "etcd" | "etcd-serializable" | "s3" => Ok(()),
        _ => Err(
            "expected api = \"node\", \"etcd\", \"etcd-serializable\", \"s3\", or adapter = [...]"
                .into(),
        ),
    }
}

/// The built-in API named by a checked file ([`builtin_api_check`] said yes).
fn builtin_api(name: &str) -> anyhow::Result<Arc<dyn Api>> {
    match name {
        "node" => Ok(Arc::new(super::node::api::NodeApi)),
        // The v3 JSON gateway on the member's first port, as `--target etcd`'s clients.
        "etcd" => Ok(Arc::new(super::etcd::api::EtcdApi::new(false))),
        "etcd-serializable" => Ok(Arc::new(super::etcd::api::EtcdApi::new(true))),
        other => anyhow::bail!(
            "client.api {other:?}: {}",
            builtin_api_check(other).err().unwrap_or_default()
        ),
    }
}

/// A checked target file, and what the run adds to it.
#[derive(Debug, Clone)]
pub struct FileSpec {
    cfg: Arc<FileConfig>,
    concurrency: u64,
    clock_skew: bool,
    version: Option<String>,
    libfaketime: Option<PathBuf>,
}

impl FileSpec {
    /// Read and check the file (the one I/O of validation: it is the run's input, like its
    /// flags).
    pub fn new(a: &FileArgs, common: Common) -> Result<FileSpec, String> {
        let path = a
            .target_file
            .as_ref()
            .ok_or("--target-file: expected a file")?;
        let cfg = FileConfig::load(
            path,
            common.nodes,
            common.backend,
            common.faults,
            common.ops,
        )?;
        Ok(FileSpec {
            cfg: Arc::new(cfg),
            concurrency: common.concurrency,
            clock_skew: common.faults.contains(&crate::nemesis::Fault::ClockSkew),
            version: None,
            libfaketime: None,
        })
    }
}

impl Spec for FileSpec {
    fn kind(&self) -> TargetKind {
        TargetKind::File
    }

    fn prepare(&mut self, _nodes: &[String]) -> Result<(), String> {
        self.cfg.prepare()?;
        if self.clock_skew {
            self.libfaketime = Some(faketime::find_library()?);
        }
        if let Some(c) = &self.cfg.version_command {
            let v = config::vars(&self.cfg, Place::Setup, Path::new("."), None, &[], None);
            let words = config::fill_command(c, &v)?;
            let out = self.command(&words).output().map_err(|e| {
                format!(
                    "{}:{}: version_command: {e}",
                    self.cfg.path.display(),
                    c.line
                )
            })?;
            let text = String::from_utf8_lossy(&out.stdout);
            self.version = text.lines().next().map(|l| l.trim().to_string());
        }
        Ok(())
    }

    fn run_name(&self) -> String {
        self.cfg.name.clone()
    }

    fn version(&self) -> (&'static str, Value) {
        (
            "store",
            self.version.clone().map_or(Value::Null, Value::from),
        )
    }

    fn default_quiet(&self) -> Duration {
        self.cfg.quiet
    }

    fn build(&self, run_dir: &Path) -> Result<Arc<dyn Target>, String> {
        let faketime = self
            .libfaketime
            .clone()
            .map(|lib| Faketime::new(lib, run_dir.join("clock")));
        Ok(Arc::new(FileTarget {
            launch: Arc::new(FileLaunch {
                cfg: self.cfg.clone(),
                run_dir: run_dir.to_path_buf(),
                faketime,
                vars: Mutex::default(),
            }),
            concurrency: self.concurrency,
        }))
    }
}

impl FileSpec {
    /// A command of the file, its program resolved as [`FileConfig::find_program`] does.
    fn command(&self, words: &[String]) -> Command {
        command(&self.cfg, words)
    }
}

/// `words` as a command: the program resolved from the file's folder or `PATH`.
pub fn command(cfg: &FileConfig, words: &[String]) -> Command {
    let program = cfg
        .find_program(&words[0])
        .unwrap_or_else(|| PathBuf::from(&words[0]));
    let mut c = Command::new(program);
    c.args(&words[1..]);
    c
}

/// How the backends start a file's members; remembers each member's placeholders (the
/// readiness check and the time command use them).
struct FileLaunch {
    cfg: Arc<FileConfig>,
    run_dir: PathBuf,
    faketime: Option<Faketime>,
    vars: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl FileLaunch {
    fn vars_of(&self, id: &str) -> Option<BTreeMap<String, String>> {
        self.vars.lock().unwrap().get(id).cloned()
    }

    /// Run a member's readiness or time command, bounded by `limit`; its stdout when it
    /// exited 0.
    fn run_bounded(&self, words: &[String], limit: Duration) -> Result<String, String> {
        let mut cmd = command(&self.cfg, words);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", words[0]))?;
        wait_bounded(child, limit)
    }
}

/// Wait for `child` at most `limit` (then kill it); its stdout when it exited 0.
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = std::io::Read::read_to_string(&mut o, &mut out);
                }
                return if status.success() {
                    Ok(out)
                } else {
                    Err(format!("exited with {status}"))
                };
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "still running after {} ms (killed)",
                    limit.as_millis()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

impl Launch for FileLaunch {
    fn ports(&self) -> usize {
        self.cfg.ports.len()
    }

    fn proxied_peers(&self) -> bool {
        self.cfg.proxied_peers
    }

    fn command(&self, m: &Member) -> std::io::Result<Command> {
        let index = m
            .members
            .iter()
            .position(|(id, _)| id == m.id)
            .map_or(0, |i| i + 1);
        let addrs = MemberAddrs {
            id: m.id,
            index,
            addrs: m.addrs,
            dialled: m.peers,
            members: m.members,
            data_dir: m.data_dir,
        };
        let vars = config::vars(
            &self.cfg,
            Place::Member,
            &self.run_dir,
            Some(&addrs),
            m.members,
            None,
        );
        let words =
            config::fill_command(&self.cfg.command, &vars).map_err(std::io::Error::other)?;
        let mut cmd = command(&self.cfg, &words);
        for (k, t) in &self.cfg.env {
            cmd.env(k, config::fill(t, &vars).map_err(std::io::Error::other)?);
        }
        if let Some(ft) = &self.faketime {
            ft.prepare(m.id, &mut cmd)?;
        }
        self.vars.lock().unwrap().insert(m.id.to_string(), vars);
        Ok(cmd)
    }

    fn is_up(&self, id: &str, addrs: &[SocketAddr]) -> bool {
        let probe = Duration::from_secs(2);
        match &self.cfg.ready {
            Ready::Tcp(i) => std::net::TcpStream::connect_timeout(&addrs[*i], probe).is_ok(),
            Ready::Http(t) => {
                let Some(vars) = self.vars_of(id) else {
                    return false;
                };
                config::fill(t, &vars).is_ok_and(|url| http_2xx(&url, probe))
            }
            Ready::Command(c) => {
                let Some(vars) = self.vars_of(id) else {
                    return false;
                };
                config::fill_command(c, &vars).is_ok_and(|w| self.run_bounded(&w, probe).is_ok())
            }
        }
    }

    fn awaits(&self) -> String {
        let f = &self.cfg.path;
        match &self.cfg.ready {
            Ready::Tcp(i) => format!(
                "accept TCP connections on port {} ({}: member.ready.tcp)",
                self.cfg.ports[*i],
                f.display()
            ),
            Ready::Http(t) => format!("answer 2xx at {} ({}:{})", t.text, f.display(), t.line),
            Ready::Command(c) => format!(
                "make the readiness command exit 0 ({}:{})",
                f.display(),
                c.line
            ),
        }
    }

    fn start_timeout(&self) -> Duration {
        self.cfg.start_timeout
    }

    fn stop(&self) -> (nix::sys::signal::Signal, Duration) {
        (self.cfg.stop_signal, self.cfg.stop_grace)
    }

    fn program(&self) -> PathBuf {
        PathBuf::from(&self.cfg.command.words[0].text)
    }
}

/// `GET url` (plain `http://host:port/path`) answers 2xx within `limit`.
fn http_2xx(url: &str, limit: Duration) -> bool {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let Ok(addr) = host.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, limit) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(limit));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.") && head.get(9..10) == Some("2")
}

/// A file's target: its launch, its set-up, its clients.
pub struct FileTarget {
    launch: Arc<FileLaunch>,
    concurrency: u64,
}

impl Target for FileTarget {
    fn name(&self) -> &'static str {
        "file"
    }

    fn launch(&self) -> Arc<dyn Launch> {
        self.launch.clone()
    }

    fn configure<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
    ) -> BoxFuture<'a, anyhow::Result<Arc<dyn Api>>> {
        Box::pin(async move {
            let cfg = &self.launch.cfg;
            if let Some((c, limit)) = &cfg.setup {
                let members = self.members(cluster);
                let vars = config::vars(
                    cfg,
                    Place::Setup,
                    &self.launch.run_dir,
                    None,
                    &members,
                    None,
                );
                let words = config::fill_command(c, &vars).map_err(anyhow::Error::msg)?;
                let log = self.launch.run_dir.join("setup.log");
                let file = std::fs::File::create(&log)?;
                let mut cmd = command(cfg, &words);
                cmd.stdin(std::process::Stdio::null())
                    .stdout(file.try_clone()?)
                    .stderr(file);
                let child = cmd.spawn().map_err(|e| {
                    anyhow::anyhow!("{}:{}: setup.command: {e}", cfg.path.display(), c.line)
                })?;
                let limit = *limit;
                let done = tokio::task::spawn_blocking(move || wait_bounded(child, limit)).await?;
                if let Err(why) = done {
                    anyhow::bail!(
                        "{}:{}: setup.command {why}; see {}{}",
                        cfg.path.display(),
                        c.line,
                        log.display(),
                        tail(&log)
                    );
                }
            }
            match &cfg.client {
                ClientKind::Builtin(name) => builtin_api(name),
                // `--target garage`'s client, with the file's bucket and key.
                ClientKind::S3(c) => Ok(Arc::new(super::garage::s3::S3Api {
                    bucket: c.bucket.clone(),
                    region: c.region.clone(),
                    credentials: rusty_s3::Credentials::new(
                        c.access_key.clone(),
                        c.secret_key.clone(),
                    ),
                }) as Arc<dyn Api>),
                ClientKind::Adapter(c) => Ok(Arc::new(adapter::AdapterApi::new(
                    cfg.clone(),
                    c.clone(),
                    &self.launch.run_dir,
                    cluster
                        .nodes()
                        .iter()
                        .map(|n| (n.clone(), cluster.client_addr(n)))
                        .collect(),
                    self.concurrency,
                )?) as Arc<dyn Api>),
            }
        })
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(FileClock {
            launch: self.launch.clone(),
            checked: AtomicBool::new(false),
        })
    }

    fn placement(&self, _nodes: &[String]) -> Arc<dyn Placement> {
        Arc::new(UnknownPlacement)
    }
}

impl FileTarget {
    /// Every member's ports, as the launch saw them.
    fn members(&self, cluster: &dyn Cluster) -> Vec<(String, Vec<SocketAddr>)> {
        let vars = self.launch.vars.lock().unwrap();
        cluster
            .nodes()
            .iter()
            .map(|n| {
                let v = vars.get(n);
                let addrs = self
                    .launch
                    .cfg
                    .ports
                    .iter()
                    .map(|p| {
                        v.and_then(|v| v.get(&format!("addr.{p}")))
                            .and_then(|a| a.parse().ok())
                            .unwrap_or_else(|| cluster.admin_addr(n))
                    })
                    .collect();
                (n.clone(), addrs)
            })
            .collect()
    }
}

impl Drop for FileTarget {
    /// Runs after the cluster is down: libfaketime leaves files behind for killed members.
    fn drop(&mut self) {
        if self.launch.faketime.is_some() {
            let _ = faketime::sweep_shm();
        }
    }
}

/// A file's members' clocks: libfaketime's offset file (the file said `libc_clock = true`),
/// checked on the first skew through `member.time_command` when the file gives one.
struct FileClock {
    launch: Arc<FileLaunch>,
    checked: AtomicBool,
}

impl Clock for FileClock {
    fn set_offset<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
        node: &'a str,
        ms: i64,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(ft) = &self.launch.faketime else {
                return Err(format!(
                    "clock offset {ms} ms on {node}: the members were started without \
                     libfaketime (preloaded only when clock-skew is in --nemesis)"
                ));
            };
            ft.set(node, ms)?;
            if ms == 0 || self.checked.swap(true, Ordering::Relaxed) {
                return Ok(());
            }
            let Some(c) = self.launch.cfg.time_command.clone() else {
                tracing::warn!(
                    "clock-skew: could not check that {node}'s clock moved: {} gives no \
                     member.time_command",
                    self.launch.cfg.path.display()
                );
                return Ok(());
            };
            let launch = self.launch.clone();
            let node2 = node.to_string();
            tokio::task::spawn_blocking(move || check_time(&launch, &c, &node2, ms))
                .await
                .map_err(|e| format!("clock check on {node}: {e}"))?
        })
    }
}

/// Ask `node` its time (seconds since the epoch, a float, on the time command's first line)
/// and check it is `ms` off the real clock (within the time the command took, ± 0.5 s).
fn check_time(
    launch: &FileLaunch,
    c: &config::CommandT,
    node: &str,
    ms: i64,
) -> Result<(), String> {
    let vars = launch.vars_of(node).unwrap_or_default();
    let words = config::fill_command(c, &vars)?;
    let mut last = String::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        };
        let before = now();
        let out = launch.run_bounded(&words, Duration::from_secs(3))?;
        let after = now();
        let Some(t) = out
            .split_whitespace()
            .next()
            .and_then(|w| w.parse::<f64>().ok())
        else {
            return Err(format!(
                "clock check on {node}: member.time_command printed {:?}; expected seconds \
                 since the epoch",
                out.trim()
            ));
        };
        // The member read its clock somewhere between `before` and `after` (real time).
        let off = ms as f64 / 1000.0;
        let seen = (t - (before + after) / 2.0) * 1000.0;
        if t >= before + off - 0.5 && t <= after + off + 0.5 {
            tracing::info!(
                "clock-skew: {node}'s own clock is {seen:.0} ms off (asked for {ms} ms; \
                 asked within {:.0} ms)",
                (after - before) * 1000.0
            );
            return Ok(());
        }
        last = format!("{seen:.0} ms");
    }
    Err(format!(
        "clock offset {ms} ms on {node} did not take effect: the member's own clock \
         (member.time_command) is {last} off; is it a libc program?"
    ))
}

/// The last lines of a log, for error messages.
pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return " (empty)".into();
    }
    let start = lines.len().saturating_sub(10);
    format!("; last lines:\n{}", lines[start..].join("\n"))
}
