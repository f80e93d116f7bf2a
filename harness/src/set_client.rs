//! Set clients: the set workload's ops over HTTP (HISTORY.md: an `add` stores its element
//! under a key of its own; a set `read` is the sorted list of elements found by reading every
//! element key added to the set so far), and the final reads of every set.
//!
//! A set read is many element reads, each a quorum read through the same node. It is not a
//! snapshot: element reads happen at slightly different instants. It completes as:
//! - `ok` with the sorted elements found, when every element read answered (a 404 is "absent");
//!   a key that holds something other than its element contributes what it holds, so the
//!   checker counts it as unexpected rather than the harness hiding it;
//! - otherwise as the first element read that did not answer would have completed on its own
//!   (`info` for a timeout or a broken connection, `fail` for a refusal), naming the element.
//!   A read changes nothing, so no answer is simply no answer — the checker ignores it either
//!   way, and never sees a partial list passed off as the set.
//!
//! Which elements a read covers: every element whose `add` was *invoked* on that set before the
//! read began ([`SetRegistry`], shared by all slots), failed and unknown adds included — an add
//! that failed yet shows up is exactly what the check should see.
//!
//! A target with an API of its own that can list keys (an S3 store, [`crate::targets::SetReads::Listing`])
//! keeps each element under its set's prefix instead ([`listed_element_key`]), and a set read
//! is one listing of that prefix (ListObjectsV2, every page): `ok` with the sorted elements of
//! the keys listed only when the whole listing came back, otherwise the outcome of the page that
//! did not answer (`info` or `fail`). Such a read covers whatever the store holds under the
//! prefix, not only the elements the registry knows.

use crate::client::{self, Completion, Endpoint, SlotConfig};
use crate::recorder::Recorder;
use crate::targets::SetReads;
use quorate_checker::history::{Event, EventType, Process};
use quorate_workloads::set::{
    element_key, listed_element, listed_element_key, set_name, set_prefix,
};
use quorate_workloads::{OpKind, OpSpec, SetClient, SetOpKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Element reads in flight at once per set read.
const READ_FANOUT: usize = 16;

/// Sets read at once in the final phase (each with [`READ_FANOUT`] element reads in flight).
const FINAL_SETS_AT_ONCE: usize = 4;

/// Final reads of a set are retried this many times at most until one answers: a set whose
/// final read never answered cannot be judged (the check would fall back to an earlier read).
const FINAL_ATTEMPTS: u64 = 5;

/// The elements whose add was invoked, per set index. A std `Mutex`: held only to push or
/// copy a list, never across an `.await`.
#[derive(Clone, Debug, Default)]
pub struct SetRegistry(Arc<Mutex<BTreeMap<u64, Vec<u64>>>>);

impl SetRegistry {
    pub fn note(&self, set: u64, element: u64) {
        self.0.lock().unwrap().entry(set).or_default().push(element);
    }

    /// The elements added to `set` so far, in the order their adds were invoked.
    pub fn elements(&self, set: u64) -> Vec<u64> {
        self.0
            .lock()
            .unwrap()
            .get(&set)
            .cloned()
            .unwrap_or_default()
    }

    /// Every set that has had an add, in order.
    pub fn sets(&self) -> Vec<u64> {
        self.0.lock().unwrap().keys().copied().collect()
    }
}

fn event(process: u64, kind: EventType, f: SetOpKind, set: u64, value: Value) -> Event {
    Event::new(Process::Client(process), kind, f.name(), value).with_key(set_name(set))
}

/// Record `f`'s invoke, run it, record its completion (node, version and error included).
async fn recorded<F>(
    rec: &Recorder,
    process: u64,
    target: &Endpoint,
    f: SetOpKind,
    set: u64,
    input: Value,
    run: F,
) -> Completion
where
    F: std::future::Future<Output = Completion>,
{
    let mut inv = event(process, EventType::Invoke, f, set, input);
    inv.node = Some(target.node.clone());
    rec.record(inv);
    let done = run.await;
    let mut ev = event(process, done.kind, f, set, done.value.clone());
    ev.node = Some(target.node.clone());
    ev.version = done.version.clone();
    ev.error = done.error.clone();
    rec.record(ev);
    done
}

/// The key `element` of `set` lives under on `target`: its own key on the node
/// ([`element_key`]), under the set's prefix where set reads list ([`listed_element_key`]).
pub fn store_key(target: &Endpoint, set: u64, element: u64) -> String {
    match target.api.set_reads() {
        SetReads::Listing => listed_element_key(set, element),
        SetReads::ElementKeys => element_key(element),
        SetReads::Native => set_name(set),
    }
}

/// Add `element` to `set`: a PUT of the element under its own key, classified as a write.
pub async fn add(
    rec: &Recorder,
    http: &reqwest::Client,
    process: u64,
    target: &Endpoint,
    set: u64,
    element: u64,
    timeout: Duration,
) -> Completion {
    let op = OpSpec {
        f: OpKind::Write,
        key: store_key(target, set, element),
        value: json!(element),
    };
    let run: crate::targets::BoxFuture<'_, Completion> = match target.api.set_reads() {
        SetReads::Native => {
            let name = set_name(set);
            return recorded(
                rec,
                process,
                target,
                SetOpKind::Add,
                set,
                json!(element),
                target
                    .api
                    .native_set(target, SetOpKind::Add, &name, json!(element), &[], timeout),
            )
            .await;
        }
        _ => Box::pin(client::execute(http, target, &op, timeout)),
    };
    recorded(
        rec,
        process,
        target,
        SetOpKind::Add,
        set,
        json!(element),
        run,
    )
    .await
}

/// Read `set`: every element in `elements` (or, on a target that lists, the set's prefix),
/// bounded by `timeout` as a whole.
pub async fn read(
    rec: &Recorder,
    http: &reqwest::Client,
    process: u64,
    target: &Endpoint,
    set: u64,
    elements: Vec<u64>,
    timeout: Duration,
) -> Completion {
    let run = async {
        let reading = async {
            match target.api.set_reads() {
                SetReads::Listing => {
                    list_set(target.api.as_ref(), http, target, set, timeout).await
                }
                SetReads::ElementKeys => read_elements(http, target, elements, timeout).await,
                SetReads::Native => {
                    let name = set_name(set);
                    target
                        .api
                        .native_set(
                            target,
                            SetOpKind::Read,
                            &name,
                            Value::Null,
                            &elements,
                            timeout,
                        )
                        .await
                }
            }
        };
        match tokio::time::timeout(timeout, reading).await {
            Ok(c) => c,
            Err(_) => Completion {
                kind: EventType::Info,
                value: Value::Null,
                version: None,
                error: Some("timeout".into()),
            },
        }
    };
    recorded(rec, process, target, SetOpKind::Read, set, Value::Null, run).await
}

/// A set read by listing the set's prefix: the elements of every key listed, sorted.
async fn list_set(
    api: &dyn crate::targets::Api,
    http: &reqwest::Client,
    target: &Endpoint,
    set: u64,
    timeout: Duration,
) -> Completion {
    let prefix = set_prefix(set);
    match api.list(http, target, &prefix, timeout).await {
        Ok(keys) => {
            let found = keys.iter().map(|k| listed_element(&prefix, k)).collect();
            Completion::ok(Value::Array(sorted(found)), None)
        }
        Err(not_ok) => Completion::not_ok(
            not_ok.kind,
            Value::Null,
            format!("listing {prefix}: {}", not_ok.error),
        ),
    }
}

/// Sorted as HISTORY.md asks: numbers by value, anything else (unexpected) after them; no
/// element twice.
fn sorted(mut found: Vec<Value>) -> Vec<Value> {
    found.sort_by(|a, b| match (a.as_u64(), b.as_u64()) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    });
    found.dedup();
    found
}

async fn read_elements(
    http: &reqwest::Client,
    target: &Endpoint,
    elements: Vec<u64>,
    timeout: Duration,
) -> Completion {
    let sem = Arc::new(tokio::sync::Semaphore::new(READ_FANOUT));
    let mut reads = tokio::task::JoinSet::new();
    // Which element each read task reads, to name it when the task itself fails.
    let mut element_of = std::collections::HashMap::new();
    for e in elements {
        let (http, target, sem) = (http.clone(), target.clone(), sem.clone());
        let task = reads.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let op = OpSpec {
                f: OpKind::Read,
                key: element_key(e),
                value: Value::Null,
            };
            (e, client::execute(&http, &target, &op, timeout).await)
        });
        element_of.insert(task.id(), e);
    }
    let mut found = Vec::new();
    while let Some(joined) = reads.join_next().await {
        let (e, c) = match joined {
            Ok(done) => done,
            // A read task that panicked found out nothing about its element, and its request
            // may have been sent: the set read did not answer (`info`), never `ok` with the
            // elements the other tasks found.
            Err(failed) => {
                let which = element_of
                    .get(&failed.id())
                    .map_or_else(|| "an element".into(), |e| element_key(*e));
                return Completion::not_ok(
                    EventType::Info,
                    Value::Null,
                    format!("element {which}: the read task failed: {failed}"),
                );
            }
        };
        if c.kind != EventType::Ok {
            // Dropping the set aborts the element reads still running.
            let why = c.error.unwrap_or_default();
            return Completion {
                kind: c.kind,
                value: Value::Null,
                version: None,
                error: Some(format!("element {}: {why}", element_key(e))),
            };
        }
        if !c.value.is_null() {
            found.push(c.value);
        }
    }
    Completion {
        kind: EventType::Ok,
        value: Value::Array(sorted(found)),
        version: None,
        error: None,
    }
}

/// The set workload's ops: an add notes its element in the registry before it is sent, so
/// reads (and the final read) ask for it from then on.
struct SetWork {
    gen: SetClient,
    registry: SetRegistry,
    rec: Arc<Recorder>,
    http: reqwest::Client,
    timeout: Duration,
}

impl client::Work for SetWork {
    fn position(&self) -> u64 {
        self.gen.set_index()
    }

    async fn step(&mut self, process: u64, target: &Endpoint, pinned: Option<u64>) -> EventType {
        let op = self.gen.next_op_on(pinned);
        let (rec, http, timeout) = (&self.rec, &self.http, self.timeout);
        let done = match (op.f, op.element) {
            (SetOpKind::Add, Some(e)) => {
                self.registry.note(op.set, e);
                add(rec, http, process, target, op.set, e, timeout).await
            }
            _ => {
                let elements = self.registry.elements(op.set);
                read(rec, http, process, target, op.set, elements, timeout).await
            }
        };
        done.kind
    }
}

/// One set client slot (see [`client::drive`]).
pub async fn run_slot(
    slot: u64,
    gen: SetClient,
    cfg: SlotConfig,
    registry: SetRegistry,
    rec: Arc<Recorder>,
    http: reqwest::Client,
    stop: watch::Receiver<bool>,
) {
    let timeout = cfg.timeout;
    let work = SetWork {
        gen,
        registry,
        rec,
        http,
        timeout,
    };
    client::drive(slot, work, cfg, stop).await
}

/// Read every set once after the quiet period, so lost adds show: each set's read is retried
/// (at most [`FINAL_ATTEMPTS`] times, each on the next node) until one answers. Process numbers
/// start at `base`, past any a client slot used.
pub async fn final_reads(
    targets: &[Endpoint],
    registry: &SetRegistry,
    rec: &Arc<Recorder>,
    base: u64,
    timeout: Duration,
    stop: watch::Receiver<bool>,
) {
    let http = client::http_client();
    let sets = registry.sets();
    let sem = Arc::new(tokio::sync::Semaphore::new(FINAL_SETS_AT_ONCE));
    let mut all = tokio::task::JoinSet::new();
    for (i, set) in sets.iter().copied().enumerate() {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let (rec, http, stop) = (rec.clone(), http.clone(), stop.clone());
        let elements = registry.elements(set);
        let targets = targets.to_vec();
        let stride = sets.len() as u64;
        all.spawn(async move {
            let _permit = permit;
            for attempt in 0..FINAL_ATTEMPTS {
                if *stop.borrow() {
                    return;
                }
                let target = &targets[(i + attempt as usize) % targets.len()];
                let process = base + i as u64 + attempt * stride;
                let c = read(&rec, &http, process, target, set, elements.clone(), timeout).await;
                if c.kind == EventType::Ok {
                    return;
                }
            }
            tracing::warn!(
                "final read of {} did not answer in {FINAL_ATTEMPTS} attempts",
                set_name(set)
            );
        });
    }
    while all.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Endpoint;
    use crate::testkit::FakeStore;

    fn member(api: Arc<FakeStore>) -> Endpoint {
        Endpoint {
            node: "n1".into(),
            addr: ([127, 0, 0, 1], 1).into(),
            api,
        }
    }

    #[tokio::test]
    async fn a_set_read_whose_element_read_panicked_is_info_naming_the_element() {
        let api = Arc::new(FakeStore::default());
        for e in [1, 2, 3] {
            api.put(&element_key(e), json!(e));
        }
        let (http, t) = (client::http_client(), Duration::from_secs(1));
        let whole = read_elements(&http, &member(api.clone()), vec![1, 2, 3], t).await;
        assert_eq!((whole.kind, whole.value), (EventType::Ok, json!([1, 2, 3])));
        // Before: `ok` with [1, 3], the element whose read died left out.
        api.panic_on(&element_key(2));
        let c = read_elements(&http, &member(api), vec![1, 2, 3], t).await;
        assert_eq!((c.kind, c.value), (EventType::Info, Value::Null));
        let why = c.error.unwrap_or_default();
        assert!(
            why.starts_with(&format!("element {}: the read task failed", element_key(2)))
                && why.contains("panicked"),
            "{why}"
        );
    }
}
