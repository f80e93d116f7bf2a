//! An in-process store for unit tests (test-only, beside the real targets): one map behind a
//! lock, so every op is atomic and the store is linearizable by construction. It can be told
//! to panic on a key (what a bug in a client API does to the task running it), so callers'
//! handling of a task that died is tested too. Ops take a
//! little (tokio) time, so tests under a paused clock exercise the client loop's awaits
//! without any wall-clock wait. It proves nothing about faults — the real-process tests do
//! that — only that clients, workloads, recorder and judge agree on what a store did.

use crate::client::{Completion, Endpoint};
use crate::targets::{Api, BoxFuture, SetReads, Unanswered};
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long each op takes, in the test's (paused) time.
const LATENCY: Duration = Duration::from_millis(3);

/// The store and its client API at once.
#[derive(Debug, Clone, Default)]
pub struct FakeStore {
    data: Arc<Mutex<BTreeMap<String, Value>>>,
    /// Keys whose every op panics.
    panic_on: Arc<Mutex<BTreeSet<String>>>,
    /// How set reads read it (the node's way by default; `Listing` as an S3 store does).
    pub listing: bool,
}

impl FakeStore {
    /// An empty store; `listing`: set reads list a prefix, as an S3 store's do.
    pub fn new(listing: bool) -> FakeStore {
        FakeStore {
            listing,
            ..FakeStore::default()
        }
    }

    /// Any op on `key` panics from now on.
    pub fn panic_on(&self, key: &str) {
        self.panic_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
    }

    /// Store `value` under `key`, as an acknowledged write would.
    pub fn put(&self, key: &str, value: Value) {
        self.data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), value);
    }

    /// `n` members `n1` … all serving this one store.
    pub fn endpoints(self: &Arc<Self>, n: usize) -> Vec<Endpoint> {
        let api: Arc<dyn Api> = self.clone();
        (1..=n)
            .map(|i| Endpoint {
                node: format!("n{i}"),
                addr: ([127, 0, 0, 1], 1).into(),
                api: api.clone(),
            })
            .collect()
    }

    /// Apply one op atomically.
    fn apply(&self, op: &OpSpec) -> Completion {
        let told = self
            .panic_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&op.key);
        if told {
            panic!("FakeStore: told to panic on {}", op.key);
        }
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        match op.f {
            OpKind::Read => Completion::ok(data.get(&op.key).cloned().unwrap_or(Value::Null), None),
            OpKind::Write => {
                data.insert(op.key.clone(), op.value.clone());
                Completion::ok(op.value.clone(), None)
            }
            OpKind::Cas => {
                let expected = op.value.get(0).cloned().unwrap_or(Value::Null);
                let new = op.value.get(1).cloned().unwrap_or(Value::Null);
                if data.get(&op.key).cloned().unwrap_or(Value::Null) == expected {
                    data.insert(op.key.clone(), new);
                    Completion::ok(op.value.clone(), None)
                } else {
                    Completion::not_ok(EventType::Fail, op.value.clone(), "mismatch".into())
                }
            }
        }
    }
}

impl Api for FakeStore {
    fn execute<'a>(
        &'a self,
        _http: &'a reqwest::Client,
        _member: &'a Endpoint,
        op: &'a OpSpec,
        _timeout: Duration,
    ) -> BoxFuture<'a, Completion> {
        Box::pin(async move {
            tokio::time::sleep(LATENCY).await;
            self.apply(op)
        })
    }

    fn set_reads(&self) -> SetReads {
        if self.listing {
            SetReads::Listing
        } else {
            SetReads::ElementKeys
        }
    }

    fn list<'a>(
        &'a self,
        _http: &'a reqwest::Client,
        _member: &'a Endpoint,
        prefix: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, Unanswered>> {
        Box::pin(async move {
            tokio::time::sleep(LATENCY).await;
            let data = self.data.lock().unwrap_or_else(|e| e.into_inner());
            Ok(data
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect())
        })
    }
}
