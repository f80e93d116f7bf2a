//! A real cluster of `quorate-node` processes on loopback, for the integration tests.
//!
//! Each cluster listens on a loopback address of its own (`127.a.b.c`, from the test process's
//! pid and a counter), on fixed ports below the kernel's ephemeral range: no other test's node
//! and no outgoing connection can take a member's port, also while a killed member is down
//! (binding port 0 and letting it go, as before, let a parallel test take a member's port
//! before its restart). Every child is SIGKILLed and reaped when the `Cluster` is dropped, so a
//! failing test leaves no process behind.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_quorate-node");

pub struct NodeProc {
    pub id: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
}

pub struct Cluster {
    /// The loopback address every member of this cluster listens on.
    pub ip: Ipv4Addr,
    pub nodes: Vec<NodeProc>,
    pub args: Vec<String>,
    peers: String,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// A loopback address no other cluster of any test process uses: `127.a.b.c` from this
/// process's pid (a, b) and a counter of its clusters (c).
pub fn cluster_ip() -> Ipv4Addr {
    static CLUSTERS: AtomicU32 = AtomicU32::new(0);
    let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        (1 + pid % 200) as u8,
        (1 + (pid / 200) % 200) as u8,
        (1 + n % 250) as u8,
    )
}

/// Member `i`'s port (0-based): fixed, below the ephemeral range (32768 and up by default), so
/// no outgoing connection is ever given it.
fn member_port(i: usize) -> u16 {
    21000 + i as u16
}

impl Cluster {
    /// Starts `size` nodes n1..nN with `args` (every node gets the same flags) and waits
    /// until all answer /health.
    pub async fn start(size: usize, args: &[&str]) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let ip = cluster_ip();
        let mut nodes = Vec::new();
        for i in 1..=size {
            nodes.push(NodeProc {
                id: format!("n{i}"),
                port: member_port(i - 1),
                data_dir: dir.path().join(format!("n{i}")),
                child: None,
            });
        }
        let peers = nodes
            .iter()
            .map(|n| format!("{}={ip}:{}", n.id, n.port))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            ip,
            nodes,
            args: args.iter().map(|s| s.to_string()).collect(),
            peers,
            _dir: dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        for i in 0..size {
            c.spawn(i)?;
        }
        for i in 0..size {
            c.wait_healthy(i).await?;
        }
        Ok(c)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let n = &mut self.nodes[i];
        let child = Command::new(BIN)
            .args([
                "--id",
                &n.id,
                "--listen",
                &format!("{}:{}", self.ip, n.port),
            ])
            .args(["--peers", &self.peers, "--data-dir"])
            .arg(&n.data_dir)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning quorate-node")?;
        n.child = Some(child);
        Ok(())
    }

    pub async fn wait_healthy(&self, i: usize) -> Result<()> {
        for _ in 0..200 {
            if let Ok(r) = self
                .http
                .get(format!("{}/health", self.url(i)))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("node {} never became healthy", self.nodes[i].id)
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://{}:{}", self.ip, self.nodes[i].port)
    }

    pub fn index(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .expect("known node id")
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id of member `i` (running or paused).
    pub fn pid(&self, i: usize) -> Pid {
        let child = self.nodes[i].child.as_ref().expect("member is running");
        Pid::from_raw(child.id() as i32)
    }

    /// SIGSTOPs member `i` and returns once the kernel reports every thread of it stopped.
    ///
    /// `kill` returns as soon as the signal is queued. The stop takes effect when one thread of
    /// the node is scheduled and takes the signal; only then are its other threads told to stop.
    /// Until that moment the node serves as usual — on a loaded machine for long enough to answer
    /// a whole two-phase write (seen in the pause test: a 200 from a coordinator whose two peers
    /// had both been sent SIGSTOP). `waitpid(WUNTRACED)` reports the stop only once every thread
    /// has stopped, so after this no request sent to the member gets an answer until `resume`.
    pub async fn pause(&self, i: usize) -> Result<()> {
        let (pid, id) = (self.pid(i), &self.nodes[i].id);
        kill(pid, Signal::SIGSTOP).with_context(|| format!("SIGSTOP {id}"))?;
        for _ in 0..1000 {
            let flags = WaitPidFlag::WUNTRACED | WaitPidFlag::WNOHANG;
            match waitpid(pid, Some(flags)).with_context(|| format!("waitpid {id}"))? {
                WaitStatus::Stopped(..) => {
                    // The premise of every pause test, checked rather than trusted.
                    let running = running_threads(pid);
                    if !running.is_empty() {
                        bail!("{id} reported stopped, yet threads {running:?} are not");
                    }
                    return Ok(());
                }
                WaitStatus::StillAlive => tokio::time::sleep(Duration::from_millis(10)).await,
                other => bail!("{id} did not stop after SIGSTOP: {other:?}"),
            }
        }
        bail!("{id} not stopped 10 s after SIGSTOP")
    }

    /// SIGCONTs member `i`. The kernel wakes every thread of a stopped process while sending
    /// SIGCONT, so there is nothing to wait for.
    pub fn resume(&self, i: usize) -> Result<()> {
        kill(self.pid(i), Signal::SIGCONT).with_context(|| format!("SIGCONT {}", self.nodes[i].id))
    }

    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_healthy(i).await
    }

    pub async fn put(&self, i: usize, key: &str, value: Value) -> Result<(u16, Value)> {
        self.send(
            self.http
                .put(format!("{}/kv/{key}", self.url(i)))
                .json(&json!({ "value": value })),
        )
        .await
    }

    pub async fn get(&self, i: usize, key: &str) -> Result<(u16, Value)> {
        self.send(self.http.get(format!("{}/kv/{key}", self.url(i))))
            .await
    }

    pub async fn cas(
        &self,
        i: usize,
        key: &str,
        expected: Value,
        new: Value,
    ) -> Result<(u16, Value)> {
        self.send(
            self.http
                .post(format!("{}/kv/{key}/cas", self.url(i)))
                .json(&json!({ "expected": expected, "new": new })),
        )
        .await
    }

    pub async fn stats(&self, i: usize) -> Result<Value> {
        Ok(self
            .send(self.http.get(format!("{}/stats", self.url(i))))
            .await?
            .1)
    }

    /// What node `i` alone holds for `key` (its replica state, no quorum).
    pub async fn local(&self, i: usize, key: &str) -> Result<Option<Value>> {
        let (_, v) = self
            .send(
                self.http
                    .post(format!("{}/internal/get", self.url(i)))
                    .json(&json!({ "key": key })),
            )
            .await?;
        Ok(v.get("record")
            .filter(|r| !r.is_null())
            .map(|r| r["value"].clone()))
    }

    /// Stores a record on node `i` only, as a replica write would.
    pub async fn plant(&self, i: usize, key: &str, value: Value, ts: u64) -> Result<()> {
        let (code, _) = self
            .send(
                self.http
                    .post(format!("{}/internal/put", self.url(i)))
                    .json(&json!({
                        "key": key,
                        "record": { "value": value, "version": { "ts": ts, "node": "test" } }
                    })),
            )
            .await?;
        if code != 200 {
            bail!("plant on node {i}: {code}");
        }
        Ok(())
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let r = rb.send().await?;
        let code = r.status().as_u16();
        let text = r.text().await?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((code, v))
    }
}

/// The threads of `pid` not in the stopped state (`T` in `/proc/PID/task/TID/stat`), as
/// (thread id, state).
fn running_threads(pid: Pid) -> Vec<(String, char)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![("(no /proc entry)".into(), '?')];
    };
    tasks
        .flatten()
        .filter_map(|t| {
            // A thread gone since the listing is not running either.
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // The state follows the command name, which is in parentheses and may hold spaces.
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .unwrap_or('?');
            (state != 'T').then(|| (t.file_name().to_string_lossy().into_owned(), state))
        })
        .collect()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Polls `check` up to `tries` times, 100 ms apart; true once it holds.
pub async fn eventually<F, Fut>(tries: usize, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..tries {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
