//! Clients: logical processes (tokio tasks) issuing register ops over HTTP, and how each
//! response becomes a history line (INTERFACES.md, "How clients record outcomes").
//!
//! The invoke line is recorded before the request is sent and the completion after the
//! response is read, so the file's order is never tighter than what really happened. A
//! process that got `info` may still have its op in flight, so the slot continues under a
//! fresh process number (`process + concurrency`, Jepsen's convention) and on the next node.

use crate::recorder::Recorder;
use quorate_checker::history::{Event, EventType, Process};
use quorate_workloads::{OpKind, OpSpec, RegisterClient};
use serde_json::{json, Value};
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

/// One node as a client sees it.
#[derive(Debug, Clone)]
pub struct Target {
    pub node: String,
    pub addr: SocketAddr,
    /// The API to speak when the target is not the node (see [`crate::target::Api`]).
    pub api: Option<Arc<dyn crate::target::Api>>,
}

/// Build the HTTP client every op uses.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .expect("reqwest client builds")
}

/// Map an HTTP status and body to an outcome (pure: no I/O, unit-tested below).
pub fn classify(op: &OpSpec, status: u16, body: &Value) -> Completion {
    let echo = op.value.clone();
    let error_text = || {
        let msg = body.get("error").and_then(Value::as_str).unwrap_or("");
        format!("{status} {msg}").trim_end().to_string()
    };
    match (op.f, status) {
        (OpKind::Read, 200) => Completion::ok(
            body.get("value").cloned().unwrap_or(Value::Null),
            body.get("version").cloned(),
        ),
        (OpKind::Read, 404) => Completion::ok(Value::Null, None),
        (_, 200..=299) => Completion::ok(echo, body.get("version").cloned()),
        (OpKind::Cas, 409) => Completion::not_ok(EventType::Fail, echo, "mismatch".into()),
        (_, 503) => {
            let applied = body.get("may_have_applied").and_then(Value::as_bool);
            let kind = if applied == Some(false) {
                EventType::Fail
            } else {
                EventType::Info
            };
            Completion::not_ok(kind, echo, error_text())
        }
        (_, 400..=499) => Completion::not_ok(EventType::Fail, echo, error_text()),
        _ => Completion::not_ok(EventType::Info, echo, error_text()),
    }
}

/// Map a status and the raw body to an outcome. A success whose body is not JSON is not a
/// success the client can read (a read's value is unknown, a write's acknowledgement is not the
/// protocol's): `info` with the parse error, never `ok` with `null`.
pub fn complete(op: &OpSpec, status: u16, bytes: &[u8]) -> Completion {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(body) => classify(op, status, &body),
        Err(e) if (200..=299).contains(&status) => Completion::not_ok(
            EventType::Info,
            op.value.clone(),
            format!("{status} with a body that is not JSON: {e}"),
        ),
        // An error status is classified by the status alone.
        Err(_) => classify(op, status, &Value::Null),
    }
}

/// Send one op and wait for its outcome, bounded by `timeout`.
pub async fn execute(
    http: &reqwest::Client,
    target: &Target,
    op: &OpSpec,
    timeout: Duration,
) -> Completion {
    if let Some(api) = &target.api {
        return api.execute(http, target, op, timeout).await;
    }
    let base = format!("http://{}/kv/{}", target.addr, key_path(&op.key));
    let req = match op.f {
        OpKind::Read => http.get(&base),
        OpKind::Write => http.put(&base).json(&json!({ "value": op.value })),
        OpKind::Cas => {
            let expected = op.value.get(0).cloned().unwrap_or(Value::Null);
            let new = op.value.get(1).cloned().unwrap_or(Value::Null);
            http.post(format!("{base}/cas"))
                .json(&json!({ "expected": expected, "new": new }))
        }
    };
    let send = async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes))
    };
    match tokio::time::timeout(timeout, send).await {
        Err(_) => Completion::not_ok(EventType::Info, op.value.clone(), "timeout".into()),
        Ok(Err(e)) => Completion::not_ok(EventType::Info, op.value.clone(), send_error(&e)),
        Ok(Ok((status, bytes))) => complete(op, status, &bytes),
    }
}

/// A key as one URL path segment: `/` (the set workload's `s/<element>`) and `%` escaped, so
/// the node's `/kv/{key}` route sees the whole key.
pub fn key_path(key: &str) -> String {
    key.replace('%', "%25").replace('/', "%2F")
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
    target: &Target,
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
    pub targets: Vec<Target>,
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
        target: &Target,
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

    async fn step(&mut self, process: u64, target: &Target, pinned: Option<u64>) -> EventType {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: OpKind) -> OpSpec {
        OpSpec {
            f,
            key: "k0".into(),
            value: match f {
                OpKind::Read => Value::Null,
                OpKind::Write => json!(5),
                OpKind::Cas => json!([1, 2]),
            },
        }
    }

    #[test]
    fn a_success_whose_body_is_not_json_is_info_with_the_error() {
        for f in [OpKind::Read, OpKind::Write, OpKind::Cas] {
            let c = complete(&op(f), 200, b"<html>oops</html>");
            assert_eq!(c.kind, EventType::Info, "{f:?}");
            let e = c.error.unwrap();
            assert!(e.starts_with("200 with a body that is not JSON"), "{e}");
        }
        // A JSON 200 read is still ok with its value; an error status keeps its meaning.
        let c = complete(&op(OpKind::Read), 200, br#"{"value": 4}"#);
        assert_eq!((c.kind, c.value), (EventType::Ok, json!(4)));
        let c = complete(&op(OpKind::Write), 500, b"not json");
        assert_eq!((c.kind, c.error.as_deref()), (EventType::Info, Some("500")));
    }

    #[test]
    fn outcomes_follow_interfaces_md() {
        let c = classify(&op(OpKind::Read), 404, &Value::Null);
        assert_eq!((c.kind, c.value), (EventType::Ok, Value::Null));
        let c = classify(&op(OpKind::Read), 200, &json!({"value": 7, "version": 3}));
        assert_eq!(
            (c.kind, c.value, c.version),
            (EventType::Ok, json!(7), Some(json!(3)))
        );
        let c = classify(&op(OpKind::Cas), 409, &json!({"error": "mismatch"}));
        assert_eq!(
            (c.kind, c.error.as_deref()),
            (EventType::Fail, Some("mismatch"))
        );
        let c = classify(
            &op(OpKind::Write),
            503,
            &json!({"error": "q", "may_have_applied": false}),
        );
        assert_eq!(c.kind, EventType::Fail);
        let c = classify(
            &op(OpKind::Write),
            503,
            &json!({"error": "q", "may_have_applied": true}),
        );
        assert_eq!(c.kind, EventType::Info);
        let c = classify(&op(OpKind::Write), 503, &Value::Null);
        assert_eq!(c.kind, EventType::Info);
        let c = classify(&op(OpKind::Write), 400, &json!({"error": "bad"}));
        assert_eq!(c.kind, EventType::Fail);
        let c = classify(&op(OpKind::Write), 500, &Value::Null);
        assert_eq!(c.kind, EventType::Info);
    }
}
