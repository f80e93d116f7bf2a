//! Clients: logical processes (tokio tasks) issuing register ops through the target's API
//! ([`crate::targets::Api`]), each outcome written down as a history line (INTERFACES.md,
//! "How clients record outcomes").
//!
//! The invoke line is recorded before the request is sent and the completion after the
//! response is read, so the file's order is never tighter than what really happened. A
//! process that got `info` may still have its op in flight, so the slot continues under a
//! fresh process number (`process + concurrency`, Jepsen's convention) and on the next node.

use crate::recorder::Recorder;
use quorate_checker::history::{Event, EventType, Process};
use quorate_workloads::{OpKind, OpSpec, RegisterClient};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How one op ended, before it is written down.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub kind: EventType,
    pub value: Value,
    pub version: Option<Value>,
    pub error: Option<String>,
}

impl Completion {
    pub(crate) fn ok(value: Value, version: Option<Value>) -> Completion {
        Completion {
            kind: EventType::Ok,
            value,
            version,
            error: None,
        }
    }
    pub(crate) fn not_ok(kind: EventType, value: Value, error: String) -> Completion {
        Completion {
            kind,
            value,
            version: None,
            error: Some(error),
        }
    }
}

/// One member as a client sees it: where to send ops and the store's API to speak.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub node: String,
    pub addr: SocketAddr,
    pub api: Arc<dyn crate::targets::Api>,
}

impl Endpoint {
    /// Every member of `cluster` as clients reach it, speaking `api`, in node order.
    pub fn all(
        cluster: &dyn crate::backend::Cluster,
        api: &Arc<dyn crate::targets::Api>,
    ) -> Vec<Endpoint> {
        cluster
            .nodes()
            .iter()
            .map(|n| Endpoint {
                node: n.clone(),
                addr: cluster.client_addr(n),
                api: api.clone(),
            })
            .collect()
    }
}

/// Build the HTTP client every op uses.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .expect("reqwest client builds")
}

/// Send one op through the member's API and wait for its outcome, bounded by `timeout`.
pub async fn execute(
    http: &reqwest::Client,
    target: &Endpoint,
    op: &OpSpec,
    timeout: Duration,
) -> Completion {
    target.api.execute(http, target, op, timeout).await
}

/// What went wrong with a request that got no answer, as its `info` line's error says it.
pub fn send_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        "connection refused or unreachable".to_string()
    } else {
        format!("connection: {}", root_cause(e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Record the invoke, run the op, record the completion. Returns the completion.
pub async fn run_op(
    rec: &Recorder,
    http: &reqwest::Client,
    process: u64,
    target: &Endpoint,
    op: &OpSpec,
    timeout: Duration,
) -> Completion {
    let mut inv = Event::new(
        Process::Client(process),
        EventType::Invoke,
        op.f.name(),
        op.value.clone(),
    )
    .with_key(op.key.clone());
    inv.node = Some(target.node.clone());
    rec.record(inv);
    let done = execute(http, target, op, timeout).await;
    let mut ev = Event::new(
        Process::Client(process),
        done.kind,
        op.f.name(),
        done.value.clone(),
    )
    .with_key(op.key.clone());
    ev.node = Some(target.node.clone());
    ev.version = done.version.clone();
    ev.error = done.error.clone();
    rec.record(ev);
    done
}

/// Settings shared by every client slot.
#[derive(Clone)]
pub struct SlotConfig {
    pub targets: Vec<Endpoint>,
    pub concurrency: u64,
    pub timeout: Duration,
    /// Minimum time between this slot's op starts (from `--rate`), if any.
    pub pace: Option<Duration>,
    /// At most this many ops per slot (a bound so no loop runs forever).
    pub max_ops: u64,
    /// The highest key index any slot has reached (the nemesis aims at it; final reads
    /// cover every key up to it).
    pub busy: Arc<AtomicU64>,
    /// A key index every slot must use instead of its rotation while set (see [`KeyPin`]).
    pub pin: KeyPin,
}

/// Holds every client on one key while a fault needs it. Stale-restore does: its anomaly shows
/// only when the key written while one replica was cut off is read after another replica came
/// back from an old copy, and keys rotate every few hundred ms — faster than a fault window.
#[derive(Clone, Debug)]
pub struct KeyPin(Arc<AtomicU64>);

impl Default for KeyPin {
    /// No key pinned.
    fn default() -> KeyPin {
        KeyPin::new()
    }
}

impl KeyPin {
    const NONE: u64 = u64::MAX;

    pub fn new() -> KeyPin {
        KeyPin(Arc::new(AtomicU64::new(Self::NONE)))
    }

    pub fn set(&self, key_index: u64) {
        self.0.store(key_index, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        self.0.store(Self::NONE, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            Self::NONE => None,
            k => Some(k),
        }
    }
}

/// One workload's ops, as a client slot runs them: see [`drive`].
pub trait Work: Send {
    /// The key (or set) index this slot is on now; the nemesis aims at the highest.
    fn position(&self) -> u64;
    /// Run the next op as `process` on `target` — on key `pinned` while a fault holds the
    /// clients on one — record it, and say how it ended.
    fn step(
        &mut self,
        process: u64,
        target: &Endpoint,
        pinned: Option<u64>,
    ) -> impl std::future::Future<Output = EventType> + Send;
}

/// The loop every client slot runs, whatever its workload: at most `max_ops` ops, paced by
/// `--rate`, until `stop`. After an `info` the op may still be in flight, so the slot goes on
/// as a fresh process (`process + concurrency`) on the next node.
pub async fn drive<W: Work>(
    slot: u64,
    mut work: W,
    cfg: SlotConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut process = slot;
    let mut hop = 0usize;
    let mut ticker = cfg.pace.map(|p| {
        let mut t = tokio::time::interval(p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    for _ in 0..cfg.max_ops {
        if *stop.borrow() {
            break;
        }
        if let Some(t) = ticker.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                _ = stop.changed() => break,
            }
        }
        let target = &cfg.targets[(slot as usize + hop) % cfg.targets.len()];
        cfg.busy.fetch_max(work.position(), Ordering::Relaxed);
        if work.step(process, target, cfg.pin.get()).await == EventType::Info {
            process += cfg.concurrency;
            hop += 1;
        }
    }
}

/// The register workload's ops: each completion is fed back to the generator, which learns
/// the values it may compare-and-set from.
struct RegisterWork {
    gen: RegisterClient,
    rec: Arc<Recorder>,
    http: reqwest::Client,
    timeout: Duration,
}

impl Work for RegisterWork {
    fn position(&self) -> u64 {
        self.gen.key_index()
    }

    async fn step(&mut self, process: u64, target: &Endpoint, pinned: Option<u64>) -> EventType {
        let op = self.gen.next_op_on(pinned);
        let done = run_op(&self.rec, &self.http, process, target, &op, self.timeout).await;
        if done.kind == EventType::Ok {
            let seen = match op.f {
                OpKind::Cas => op.value.get(1).cloned().unwrap_or(Value::Null),
                _ => done.value.clone(),
            };
            self.gen.observe(&op.key, &seen);
        }
        done.kind
    }
}

/// One register client slot (see [`drive`]).
pub async fn run_slot(
    slot: u64,
    gen: RegisterClient,
    cfg: SlotConfig,
    rec: Arc<Recorder>,
    http: reqwest::Client,
    stop: watch::Receiver<bool>,
) {
    let timeout = cfg.timeout;
    let work = RegisterWork {
        gen,
        rec,
        http,
        timeout,
    };
    drive(slot, work, cfg, stop).await
}
