//! [`FakeTarget`]: a system under test that lives in memory: nothing to launch, nothing to
//! configure, clients answered by [`FakeApi`] from a map (one register per key), clocks moved
//! on [`super::FakeCluster`]. With it the runner's phases run whole in a unit test. The API
//! can be told to panic on a key (what a bug in a client API does to the task running it), so
//! the callers' handling of a task that died is tested too.

use super::FakeCluster;
use crate::backend::launch::{Launch, Member as Launched};
use crate::backend::{Cluster, ClusterSpec};
use crate::client::{Completion, Target as Member};
use crate::target::{Api, BoxFuture, Clock, Target, Unanswered};
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct FakeApi {
    store: Mutex<BTreeMap<String, Value>>,
    panic_on: Mutex<BTreeSet<String>>,
}

impl FakeApi {
    /// Any op on `key` panics from now on.
    pub fn panic_on(&self, key: &str) {
        self.panic_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
    }

    /// Store `value` under `key`, as an acknowledged write would.
    pub fn put(&self, key: &str, value: Value) {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), value);
    }

    fn answer(&self, op: &OpSpec) -> Completion {
        let told = self
            .panic_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&op.key);
        if told {
            panic!("FakeApi: told to panic on {}", op.key);
        }
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        match op.f {
            OpKind::Read => {
                Completion::ok(store.get(&op.key).cloned().unwrap_or(Value::Null), None)
            }
            OpKind::Write => {
                store.insert(op.key.clone(), op.value.clone());
                Completion::ok(op.value.clone(), None)
            }
            OpKind::Cas => {
                let current = store.get(&op.key).cloned().unwrap_or(Value::Null);
                if current == op.value[0] {
                    store.insert(op.key.clone(), op.value[1].clone());
                    Completion::ok(op.value.clone(), None)
                } else {
                    Completion::not_ok(EventType::Fail, op.value.clone(), "mismatch".into())
                }
            }
        }
    }
}

impl Api for FakeApi {
    fn execute<'a>(
        &'a self,
        _http: &'a reqwest::Client,
        _member: &'a Member,
        op: &'a OpSpec,
        _timeout: Duration,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move { self.answer(op) })
    }

    fn list<'a>(
        &'a self,
        _http: &'a reqwest::Client,
        _member: &'a Member,
        prefix: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, Unanswered>> {
        Box::pin(async move {
            let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            Ok(store
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect())
        })
    }
}

pub struct FakeTarget {
    pub api: Arc<FakeApi>,
    pub cluster: Arc<FakeCluster>,
}

impl FakeTarget {
    pub fn new(cluster: Arc<FakeCluster>) -> FakeTarget {
        FakeTarget {
            api: Arc::new(FakeApi::default()),
            cluster,
        }
    }
}

/// A launch that refuses: a fake cluster has no member to start.
struct NoLaunch;

impl Launch for NoLaunch {
    fn command(&self, m: &Launched) -> std::io::Result<std::process::Command> {
        Err(std::io::Error::other(format!(
            "{}: a fake target's members are not processes",
            m.id
        )))
    }

    fn program(&self) -> PathBuf {
        PathBuf::from("fake-target")
    }
}

impl Target for FakeTarget {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn launch(&self, _spec: &ClusterSpec) -> Arc<dyn Launch> {
        Arc::new(NoLaunch)
    }

    fn configure<'a>(&'a self, _cluster: &'a dyn Cluster) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Keys are placed by the harness's copy of the node's ring, so faults aimed at a key's
    /// home nodes are exercised too.
    fn places_keys_by_ring(&self) -> bool {
        true
    }

    fn api(&self) -> Option<Arc<dyn Api>> {
        Some(self.api.clone())
    }

    fn clock(&self) -> Option<Arc<dyn Clock>> {
        Some(self.cluster.clone())
    }
}
