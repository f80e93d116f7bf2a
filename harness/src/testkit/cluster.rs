//! [`FakeCluster`]: a cluster that exists only in memory. It implements the backend's
//! [`Cluster`] and the targets' [`Clock`] and [`Membership`] (a layout version and its gateways),
//! writes down every call in the order it came, keeps
//! the state the calls leave (who is killed, paused, cut off, delayed, skewed), and fails the
//! calls a test names — so the nemesis and the runner can be unit-tested under tokio's paused
//! clock, with no process, no socket and no waiting.
//!
//! It is as strict as the real backends are about order: restarting a node that was not
//! killed, resuming one that was not paused, copying one that is running, or restoring one
//! that is up is an error, so a schedule that does those things fails its test instead of
//! passing against a fake that accepts anything.

use crate::backend::{BackendError, Cluster, Result, Snapshot};
use crate::targets::{BoxFuture, Clock, Layout, Membership};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// A call that fails: the first `skip` calls that match it still succeed.
struct Rule {
    call: String,
    skip: usize,
}

impl Rule {
    /// `call` names a call exactly (`"kill n2"`) or by its first words (`"kill"`,
    /// `"clock n3"`, `"drop n1"`).
    fn matches(&self, call: &str) -> bool {
        call == self.call
            || call
                .strip_prefix(self.call.as_str())
                .is_some_and(|rest| rest.starts_with(' '))
    }
}

#[derive(Default)]
struct State {
    calls: Vec<String>,
    rules: Vec<Rule>,
    killed: BTreeSet<String>,
    paused: BTreeSet<String>,
    dropped: BTreeSet<(String, String)>,
    delayed: BTreeMap<(String, String), Duration>,
    offsets: BTreeMap<String, i64>,
    resets: u64,
    shut_down: bool,
    /// Layout changes applied on top of version 1 (every member storage).
    layout_changes: u64,
    /// Members the layout in force makes gateways.
    gateways: BTreeSet<String>,
}

pub struct FakeCluster {
    nodes: Vec<String>,
    /// Admin addresses a test points somewhere real (an in-process HTTP server); the rest
    /// are loopback ports nothing listens on.
    admin: Mutex<BTreeMap<String, SocketAddr>>,
    state: Mutex<State>,
}

impl FakeCluster {
    /// A cluster of `n` nodes, `n1` … `nN`, every call succeeding.
    pub fn new(n: usize) -> FakeCluster {
        FakeCluster {
            nodes: crate::backend::node_ids(n),
            admin: Mutex::new(BTreeMap::new()),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call matching `call` fails (see [`Rule::matches`] for how calls are named).
    pub fn fail(&self, call: &str) {
        self.fail_after(call, 0);
    }

    /// Calls matching `call` fail once `skip` of them have succeeded.
    pub fn fail_after(&self, call: &str, skip: usize) {
        self.state().rules.push(Rule {
            call: call.to_string(),
            skip,
        });
    }

    /// Answer `node`'s admin calls at `addr`.
    pub fn set_admin_addr(&self, node: &str, addr: SocketAddr) {
        self.admin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string(), addr);
    }

    /// Every call so far, in order: `"kill n2"`, `"drop n1 n3"`, `"clock n4 -3000"`, `"heal"`.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// How many connection resets were asked for.
    pub fn resets(&self) -> u64 {
        self.state().resets
    }

    pub fn is_shut_down(&self) -> bool {
        self.state().shut_down
    }

    /// What is still faulted, in words; empty when the cluster is whole (every node up and
    /// running, every link open and undelayed, every clock true).
    pub fn faulted(&self) -> Vec<String> {
        let s = self.state();
        let mut out = Vec::new();
        out.extend(s.killed.iter().map(|n| format!("{n} killed")));
        out.extend(s.paused.iter().map(|n| format!("{n} paused")));
        out.extend(s.dropped.iter().map(|(a, b)| format!("{a} -> {b} cut")));
        out.extend(s.delayed.keys().map(|(a, b)| format!("{a} -> {b} delayed")));
        out.extend(
            s.offsets
                .iter()
                .map(|(n, ms)| format!("{n} clock {ms} ms off")),
        );
        out.extend(
            s.gateways
                .iter()
                .map(|n| format!("{n} a gateway in layout v{}", s.layout_changes + 1)),
        );
        out
    }

    /// Record `call`, then fail it (changing nothing) if a rule says so, else `apply` it.
    fn act(
        &self,
        node: &str,
        call: String,
        apply: impl FnOnce(&mut State) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let mut s = self.state();
        s.calls.push(call.clone());
        if let Some(rule) = s.rules.iter_mut().find(|r| r.matches(&call)) {
            if rule.skip == 0 {
                return Err(BackendError::node(
                    node,
                    format!("injected failure: {call}"),
                ));
            }
            rule.skip -= 1;
        }
        apply(&mut s).map_err(|e| BackendError::node(node, e))
    }

    fn known(&self, node: &str) -> std::result::Result<(), String> {
        if self.nodes.iter().any(|n| n == node) {
            Ok(())
        } else {
            Err(format!("no such node (the cluster is {:?})", self.nodes))
        }
    }
}

/// `Ok` when the call was in order, else why not.
fn require(in_order: bool, why: &str) -> std::result::Result<(), String> {
    if in_order {
        Ok(())
    } else {
        Err(why.to_string())
    }
}

/// A loopback address per node on which nothing listens (port 1 and up).
fn unused_addr(nodes: &[String], node: &str) -> SocketAddr {
    let i = nodes.iter().position(|n| n == node).unwrap_or(0);
    SocketAddr::from(([127, 0, 0, 1], 1 + i as u16))
}

impl Cluster for FakeCluster {
    fn nodes(&self) -> &[String] {
        &self.nodes
    }

    fn client_addr(&self, node: &str) -> SocketAddr {
        unused_addr(&self.nodes, node)
    }

    fn admin_addr(&self, node: &str) -> SocketAddr {
        let admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        admin
            .get(node)
            .copied()
            .unwrap_or_else(|| unused_addr(&self.nodes, node))
    }

    fn kill(&self, node: &str) -> Result<()> {
        let known = self.known(node);
        self.act(node, format!("kill {node}"), |s| {
            known?;
            s.paused.remove(node);
            require(s.killed.insert(node.to_string()), "already killed")
        })
    }

    fn restart(&self, node: &str) -> Result<()> {
        self.act(node, format!("restart {node}"), |s| {
            require(s.killed.remove(node), "restarted, but it was not killed")
        })
    }

    fn pause(&self, node: &str) -> Result<()> {
        let known = self.known(node);
        self.act(node, format!("pause {node}"), |s| {
            known?;
            if s.killed.contains(node) || !s.paused.insert(node.to_string()) {
                return Err("paused, but it is not running".into());
            }
            Ok(())
        })
    }

    fn resume(&self, node: &str) -> Result<()> {
        self.act(node, format!("resume {node}"), |s| {
            require(s.paused.remove(node), "resumed, but it was not paused")
        })
    }

    fn snapshot(&self, node: &str) -> Result<Snapshot> {
        self.act(node, format!("snapshot {node}"), |s| {
            let why = "copied while running: the copy would not be consistent";
            require(s.paused.contains(node), why)
        })?;
        Ok(Snapshot {
            node: node.to_string(),
            path: PathBuf::from(format!("fake-snapshots/{node}")),
            taken: std::time::Instant::now(),
        })
    }

    fn restore(&self, snap: &Snapshot) -> Result<()> {
        let node = snap.node.as_str();
        self.act(node, format!("restore {node}"), |s| {
            require(s.killed.contains(node), "restored while it runs")
        })
    }

    fn power_cut(&self, node: &str) -> Result<crate::lazyfs::model::Unsynced> {
        self.act(node, format!("power-cut {node}"), |s| {
            require(s.killed.contains(node), "power cut while it runs")
        })?;
        Ok(crate::lazyfs::model::Unsynced {
            bytes: 4096,
            files: 1,
            ..Default::default()
        })
    }

    fn drop_traffic(&self, from: &str, to: &str) -> Result<()> {
        let known = self.known(from).and(self.known(to));
        self.act(from, format!("drop {from} {to}"), |s| {
            known?;
            s.dropped.insert((from.to_string(), to.to_string()));
            Ok(())
        })
    }

    fn heal(&self) -> Result<()> {
        self.act("cluster", "heal".into(), |s| {
            s.dropped.clear();
            s.delayed.clear();
            Ok(())
        })
    }

    fn delay_traffic(&self, from: &str, to: &str, delay: Duration) -> Result<()> {
        let call = format!("delay {from} {to} {}us", delay.as_micros());
        self.act(from, call, |s| {
            let link = (from.to_string(), to.to_string());
            if delay.is_zero() {
                s.delayed.remove(&link);
            } else {
                s.delayed.insert(link, delay);
            }
            Ok(())
        })
    }

    fn reset_connections(&self, from: &str, to: &str) -> Result<()> {
        self.act(from, format!("reset {from} {to}"), |s| {
            s.resets += 1;
            Ok(())
        })
    }

    fn shutdown(&self) {
        let _always = self.act("cluster", "shutdown".into(), |s| {
            s.shut_down = true;
            Ok(())
        });
    }
}

/// The fake is its own clock: the cluster a fault passes in is this one.
impl Clock for FakeCluster {
    fn set_offset<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
        node: &'a str,
        ms: i64,
    ) -> BoxFuture<'a, std::result::Result<(), String>> {
        Box::pin(async move {
            let known = self.known(node);
            self.act(node, format!("clock {node} {ms}"), |s| {
                known?;
                if ms == 0 {
                    s.offsets.remove(node);
                } else {
                    s.offsets.insert(node.to_string(), ms);
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
        })
    }
}

impl FakeCluster {
    fn fake_layout(&self, s: &State) -> Layout {
        Layout {
            version: s.layout_changes + 1,
            storage: self
                .nodes
                .iter()
                .filter(|n| !s.gateways.contains(*n))
                .cloned()
                .collect(),
            gateways: s.gateways.iter().cloned().collect(),
        }
    }

    /// The layout now (version 1 with every member storage until an `assign` changes it).
    pub fn current_layout(&self) -> Layout {
        self.fake_layout(&self.state())
    }
}

/// The fake is its own membership: `"layout"`, `"assign n1,n3,n4"` (the storage members) and
/// `"settle"` calls, each failing when a rule says so; an assign that changes nothing applies
/// no new version, as Garage's does.
impl Membership for FakeCluster {
    fn layout<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
    ) -> BoxFuture<'a, std::result::Result<Layout, String>> {
        Box::pin(async move {
            self.act("n1", "layout".into(), |_| Ok(()))
                .map_err(|e| e.to_string())?;
            Ok(self.current_layout())
        })
    }

    fn assign<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
        storage: &'a [String],
    ) -> BoxFuture<'a, std::result::Result<Layout, String>> {
        Box::pin(async move {
            let unknown: Vec<&String> = storage.iter().filter(|n| self.known(n).is_err()).collect();
            let nodes = self.nodes.clone();
            self.act("n1", format!("assign {}", storage.join(",")), |s| {
                require(
                    unknown.is_empty(),
                    "assign names a member not in the cluster",
                )?;
                require(!storage.is_empty(), "assign keeps no storage member")?;
                let gateways: BTreeSet<String> = nodes
                    .iter()
                    .filter(|n| !storage.contains(n))
                    .cloned()
                    .collect();
                if gateways != s.gateways {
                    s.gateways = gateways;
                    s.layout_changes += 1;
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
            Ok(self.current_layout())
        })
    }

    fn settle<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
        _limit: Duration,
    ) -> BoxFuture<'a, std::result::Result<Option<String>, String>> {
        Box::pin(async move {
            self.act("n1", "settle".into(), |_| Ok(()))
                .map_err(|e| e.to_string())?;
            Ok(None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_calls_keeps_state_and_fails_what_it_is_told_to() {
        let c = FakeCluster::new(3);
        let other = FakeCluster::new(3);
        c.fail_after("kill", 1);
        c.kill("n1").unwrap();
        let e = c.kill("n2").unwrap_err().to_string();
        assert!(e.contains("injected failure: kill n2"), "{e}");
        c.drop_traffic("n2", "n3").unwrap();
        c.set_offset(&other, "n3", 2000).await.unwrap();
        assert_eq!(
            c.faulted(),
            ["n1 killed", "n2 -> n3 cut", "n3 clock 2000 ms off"]
        );
        // Out of order is an error, as on the real backends.
        assert!(c.restart("n2").is_err());
        assert!(c.snapshot("n3").is_err());
        c.restart("n1").unwrap();
        c.heal().unwrap();
        c.set_offset(&other, "n3", 0).await.unwrap();
        assert!(c.faulted().is_empty());
        assert_eq!(
            c.calls(),
            [
                "kill n1",
                "kill n2",
                "drop n2 n3",
                "clock n3 2000",
                "restart n2",
                "snapshot n3",
                "restart n1",
                "heal",
                "clock n3 0"
            ]
        );
    }
}
