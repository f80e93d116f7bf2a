//! [`FakeApi`]: a target's client API ([`Api`]) answered from an in-memory map, one register
//! per key, so client code runs end to end without a store. It can be told to panic on a key
//! (what a bug in a client API does to the task running it), so the callers' handling of a
//! task that died is tested too.

use crate::client::{Completion, Target as Member};
use crate::target::{Api, BoxFuture, Unanswered};
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
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
