//! The adapter protocol (docs/INTERFACES.md, "The adapter protocol"): clients of a store
//! quorate has no API for speak through an adapter process, one per client, written in any
//! language. quorate writes one JSON request per line to its stdin and waits for the one-line
//! answer on its stdout before the next (one op outstanding, as a Jepsen process); its stderr
//! goes to `clients/<process>.log`.
//!
//! What the adapter cannot be trusted with, the harness decides: an answer that does not
//! come within the op timeout, that is not JSON, not an object of the protocol, or has the
//! wrong id, or the adapter exiting, makes the op `info` (the error says which and quotes the
//! line), kills the adapter (its whole process group) and starts a fresh one for the next op,
//! under the fresh process number the client continues with. An `info` the adapter answers
//! itself keeps it running; the process number changes all the same.
//!
//! Each client slot has its own [`AdapterApi`] ([`Api::for_slot`]) holding one adapter per
//! member the slot has been bound to (a slot moves to the next member after an `info`, as
//! with every target), started the first time it speaks to that member; the final reads
//! share one per member (`clients/final-<member>.log`). Every adapter is started in its own
//! process group with `PR_SET_PDEATHSIG = SIGKILL`, killed by [`Api::close`] at the end of the
//! run and, failing that, when the API is dropped.

use super::config::{self, CommandT, FileConfig, Place};
use crate::client::{Completion, Endpoint};
use crate::targets::{Api, BoxFuture, SetReads, Unanswered};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use quorate_checker::history::EventType;
use quorate_workloads::{OpKind, OpSpec, SetOpKind};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// How much longer than the op timeout a fresh adapter's first answer may take.
pub const START_GRACE: Duration = Duration::from_secs(5);

/// What every adapter of a run shares.
struct Shared {
    cfg: Arc<FileConfig>,
    command: CommandT,
    run_dir: PathBuf,
    logs: PathBuf,
    nodes: Vec<String>,
    /// Every member's client address, in node order (`{nK.addr}`).
    clients: Vec<(String, Vec<std::net::SocketAddr>)>,
    concurrency: u64,
    next_id: AtomicU64,
    /// Whether any adapter ever gave a well-formed answer.
    answered: AtomicBool,
    started: AtomicU64,
    /// The last adapter that could not even be started, and why.
    start_error: Mutex<Option<String>>,
    last_log: Mutex<Option<PathBuf>>,
    /// The process groups of the adapters running now.
    live: Mutex<BTreeSet<i32>>,
    /// Every adapter slot ever made, for [`Api::close`].
    cells: Mutex<Vec<Cell>>,
}

type Cell = Arc<tokio::sync::Mutex<Option<Proc>>>;

/// One running adapter.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    out: tokio::io::Lines<BufReader<ChildStdout>>,
    pgid: i32,
    log: PathBuf,
}

/// The clients' API of a target file whose `client.adapter` is a command.
pub struct AdapterApi {
    shared: Arc<Shared>,
    /// `(slot, concurrency)` for a client slot's own API; `None`: the shared one (final reads).
    slot: Option<u64>,
    /// The slot's process number now (it moves on exactly as the client loop's does: by
    /// the concurrency after every `info`).
    process: AtomicU64,
    procs: Mutex<BTreeMap<String, Cell>>,
}

impl std::fmt::Debug for AdapterApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdapterApi(slot {:?})", self.slot)
    }
}

impl AdapterApi {
    pub fn new(
        cfg: Arc<FileConfig>,
        command: CommandT,
        run_dir: &std::path::Path,
        clients: Vec<(String, std::net::SocketAddr)>,
        concurrency: u64,
    ) -> anyhow::Result<AdapterApi> {
        let logs = run_dir.join("clients");
        std::fs::create_dir_all(&logs)?;
        let shared = Arc::new(Shared {
            cfg,
            command,
            run_dir: run_dir.to_path_buf(),
            logs,
            nodes: clients.iter().map(|(n, _)| n.clone()).collect(),
            clients: clients.into_iter().map(|(n, a)| (n, vec![a])).collect(),
            concurrency: concurrency.max(1),
            next_id: AtomicU64::new(1),
            answered: AtomicBool::new(false),
            started: AtomicU64::new(0),
            start_error: Mutex::new(None),
            last_log: Mutex::new(None),
            live: Mutex::default(),
            cells: Mutex::default(),
        });
        Ok(AdapterApi::with(shared, None))
    }

    fn with(shared: Arc<Shared>, slot: Option<u64>) -> AdapterApi {
        AdapterApi {
            shared,
            slot,
            process: AtomicU64::new(slot.unwrap_or(0)),
            procs: Mutex::default(),
        }
    }

    fn cell(&self, node: &str) -> Cell {
        let mut procs = self.procs.lock().unwrap();
        procs
            .entry(node.to_string())
            .or_insert_with(|| {
                let c: Cell = Arc::default();
                self.shared.cells.lock().unwrap().push(c.clone());
                c
            })
            .clone()
    }

    /// Start an adapter for `member`, its stderr to `clients/<process>.log`.
    fn start(&self, member: &Endpoint) -> Result<Proc, String> {
        let s = &self.shared;
        let index = s
            .nodes
            .iter()
            .position(|n| n == &member.node)
            .map_or(0, |i| i + 1);
        let process = self.process.load(Ordering::Relaxed);
        let name = match self.slot {
            Some(_) => process.to_string(),
            None => format!("final-{}", member.node),
        };
        let vars = config::vars(
            &s.cfg,
            Place::Adapter,
            &s.run_dir,
            None,
            &s.clients,
            Some((&member.node, index, member.addr, process)),
        );
        let words = config::fill_command(&s.command, &vars)?;
        let log = s.logs.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = tokio::process::Command::from(super::command(&s.cfg, &words));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .kill_on_drop(true)
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: runs between fork and exec; only async-signal-safe calls (prctl, getppid).
        // The fork happens on a tokio worker thread, which lives as long as the run's
        // runtime: the death signal fires when the harness (or its runtime) goes.
        unsafe {
            cmd.pre_exec(move || crate::backend::procs::die_with_harness(parent));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("could not start the adapter {:?}: {e}", words[0]))?;
        let pgid = child.id().map_or(0, |p| p as i32);
        let stdin = child.stdin.take().ok_or("the adapter has no stdin")?;
        let stdout = child.stdout.take().ok_or("the adapter has no stdout")?;
        s.live.lock().unwrap().insert(pgid);
        s.started.fetch_add(1, Ordering::Relaxed);
        *s.last_log.lock().unwrap() = Some(log.clone());
        tracing::info!(adapter = %name, member = %member.node, pid = pgid, "adapter started: {}", words.join(" "));
        Ok(Proc {
            child,
            stdin,
            out: BufReader::new(stdout).lines(),
            pgid,
            log,
        })
    }

    /// One request, its answer classified; the adapter killed when it broke the protocol.
    async fn call(
        &self,
        member: &Endpoint,
        mut req: Map<String, Value>,
        what: Answer,
        echo: Value,
        timeout: Duration,
    ) -> Completion {
        let cell = self.cell(&member.node);
        let mut guard = cell.lock().await;
        let mut timeout = timeout;
        if guard.is_none() {
            // A fresh adapter's first answer waits for its start-up too (an interpreter can
            // take a second to start on a loaded machine).
            timeout += START_GRACE;
            match self.start(member) {
                Ok(p) => *guard = Some(p),
                Err(e) => {
                    *self.shared.start_error.lock().unwrap() = Some(e.clone());
                    return Completion::not_ok(EventType::Info, echo, format!("adapter: {e}"));
                }
            }
        }
        let p = guard.as_mut().expect("started above");
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        req.insert("id".into(), json!(id));
        let mut line = Value::Object(req).to_string();
        line.push('\n');
        let exchange = async {
            p.stdin.write_all(line.as_bytes()).await?;
            p.stdin.flush().await?;
            p.out.next_line().await
        };
        let outcome = tokio::time::timeout(timeout, exchange).await;
        let log = p.log.display().to_string();
        let broken = match outcome {
            Err(_) => format!(
                "timeout: no answer within {} ms; adapter killed, a fresh one starts",
                timeout.as_millis()
            ),
            Ok(Err(e)) => {
                format!("adapter's pipe: {e}; adapter killed, a fresh one starts (see {log})")
            }
            Ok(Ok(None)) => {
                let status =
                    match tokio::time::timeout(Duration::from_secs(1), p.child.wait()).await {
                        Ok(Ok(st)) => st.to_string(),
                        _ => "its output closed".into(),
                    };
                format!(
                    "adapter exited ({status}) without answering; a fresh one starts (see {log})"
                )
            }
            Ok(Ok(Some(answer))) => match classify(&answer, id, what, &echo) {
                Ok(done) => {
                    self.shared.answered.store(true, Ordering::Relaxed);
                    drop(guard);
                    return self.after(done);
                }
                Err(why) => format!(
                    "adapter answered {}: {why}; adapter killed, a fresh one starts",
                    quote(&answer)
                ),
            },
        };
        if let Some(p) = guard.take() {
            self.shared.kill(p).await;
        }
        drop(guard);
        self.after(Completion::not_ok(EventType::Info, echo, broken))
    }

    /// Move the process number on as the client loop does after an `info`.
    fn after(&self, done: Completion) -> Completion {
        if self.slot.is_some() && done.kind == EventType::Info {
            self.process
                .fetch_add(self.shared.concurrency, Ordering::Relaxed);
        }
        done
    }
}

/// The line, quoted and cut to a readable length.
fn quote(line: &str) -> String {
    let cut: String = line.chars().take(200).collect();
    if cut.len() < line.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// What an `ok` answer must carry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// A register read: `value`, `null` when the key has none.
    Read,
    /// A set read: `value`, an array of elements.
    SetRead,
    /// Anything else: nothing (the completion echoes the invoke's value).
    Done,
}

/// An answer line as a completion, or why it breaks the protocol.
fn classify(line: &str, id: u64, what: Answer, echo: &Value) -> Result<Completion, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    match obj.get("id").and_then(Value::as_u64) {
        Some(got) if got == id => {}
        Some(got) => return Err(format!("id {got}, expected id {id}")),
        None => return Err(format!("no numeric id, expected id {id}")),
    }
    let error = || {
        obj.get("error")
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("ok") => match what {
            Answer::Done => Ok(Completion::ok(echo.clone(), None)),
            Answer::Read => match obj.get("value") {
                Some(v) => Ok(Completion::ok(v.clone(), None)),
                None => Err("an ok read without a value (null when the key has none)".into()),
            },
            Answer::SetRead => match obj.get("value") {
                Some(Value::Array(items)) => {
                    let mut items = items.clone();
                    items.sort_by(|a, b| match (a.as_u64(), b.as_u64()) {
                        (Some(x), Some(y)) => x.cmp(&y),
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        (None, None) => a.to_string().cmp(&b.to_string()),
                    });
                    items.dedup();
                    Ok(Completion::ok(Value::Array(items), None))
                }
                _ => Err("an ok set read whose value is not an array of elements".into()),
            },
        },
        Some("fail") => Ok(Completion::not_ok(
            EventType::Fail,
            echo.clone(),
            error().unwrap_or_else(|| "fail".into()),
        )),
        Some("info") => Ok(Completion::not_ok(
            EventType::Info,
            echo.clone(),
            error().unwrap_or_else(|| "info".into()),
        )),
        Some(t) => Err(format!("type {t:?}, expected ok, fail or info")),
        None => Err("no type, expected ok, fail or info".into()),
    }
}

impl Shared {
    /// Kill an adapter's whole process group and reap it.
    async fn kill(&self, mut p: Proc) {
        let _ = killpg(Pid::from_raw(p.pgid), Signal::SIGKILL);
        let _ = p.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), p.child.wait()).await;
        self.live.lock().unwrap().remove(&p.pgid);
    }
}

impl Drop for Shared {
    /// Whatever [`Api::close`] did not reach (an early return, a panic): killed here.
    fn drop(&mut self) {
        for pgid in std::mem::take(&mut *self.live.lock().unwrap()) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Api for AdapterApi {
    fn execute<'a>(
        &'a self,
        _http: &'a reqwest::Client,
        member: &'a Endpoint,
        op: &'a OpSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, Completion> {
        let mut req = Map::new();
        req.insert("f".into(), json!(op.f.name()));
        req.insert("key".into(), json!(op.key));
        if op.f != OpKind::Read || !op.value.is_null() {
            req.insert("value".into(), op.value.clone());
        }
        let what = if op.f == OpKind::Read {
            Answer::Read
        } else {
            Answer::Done
        };
        let echo = if op.f == OpKind::Read {
            Value::Null
        } else {
            op.value.clone()
        };
        Box::pin(self.call(member, req, what, echo, timeout))
    }

    /// The adapter hears set ops themselves (`add`; a set read with `elements`).
    fn set_reads(&self) -> SetReads {
        SetReads::Native
    }

    fn list<'a>(
        &'a self,
        _http: &'a reqwest::Client,
        member: &'a Endpoint,
        prefix: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, Unanswered>> {
        let error = format!(
            "listing {prefix} on {}: an adapter reads sets itself (a read with elements)",
            member.node
        );
        Box::pin(async move {
            Err(Unanswered {
                kind: EventType::Fail,
                error,
            })
        })
    }

    fn native_set<'a>(
        &'a self,
        member: &'a Endpoint,
        f: SetOpKind,
        set: &'a str,
        value: Value,
        elements: &'a [u64],
        timeout: Duration,
    ) -> BoxFuture<'a, Completion> {
        let mut req = Map::new();
        req.insert("f".into(), json!(f.name()));
        req.insert("key".into(), json!(set));
        let (what, echo) = match f {
            SetOpKind::Add => {
                req.insert("value".into(), value.clone());
                (Answer::Done, value)
            }
            SetOpKind::Read => {
                req.insert("elements".into(), json!(elements));
                (Answer::SetRead, Value::Null)
            }
        };
        Box::pin(self.call(member, req, what, echo, timeout))
    }

    fn for_slot(&self, slot: u64) -> Option<Arc<dyn Api>> {
        Some(Arc::new(AdapterApi::with(self.shared.clone(), Some(slot))))
    }

    fn never_answered(&self) -> Option<String> {
        let s = &self.shared;
        let started = s.started.load(Ordering::Relaxed);
        let start_error = s.start_error.lock().unwrap().clone();
        if s.answered.load(Ordering::Relaxed) || (started == 0 && start_error.is_none()) {
            return None;
        }
        if let Some(e) = start_error.filter(|_| started == 0) {
            return Some(format!(
                "no adapter ever answered: none could be started ({}:{}): {e}",
                s.cfg.path.display(),
                s.command.line
            ));
        }
        let log = s.last_log.lock().unwrap().clone();
        let stderr = log
            .as_ref()
            .map(|l| {
                format!(
                    "; the last one's stderr ({}){}",
                    l.display(),
                    super::tail(l)
                )
            })
            .unwrap_or_default();
        Some(format!(
            "no adapter ever answered ({started} started from {}:{}), so there is nothing \
             to judge{stderr}",
            s.cfg.path.display(),
            s.command.line
        ))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let cells = std::mem::take(&mut *self.shared.cells.lock().unwrap());
            for c in cells {
                if let Ok(mut g) = tokio::time::timeout(Duration::from_secs(2), c.lock()).await {
                    if let Some(p) = g.take() {
                        self.shared.kill(p).await;
                    }
                }
            }
            for pgid in std::mem::take(&mut *self.shared.live.lock().unwrap()) {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_and_protocol_breaks_named() {
        let c = classify(
            r#"{"id": 8, "type": "ok", "value": 12}"#,
            8,
            Answer::Read,
            &Value::Null,
        )
        .unwrap();
        assert_eq!((c.kind, c.value), (EventType::Ok, json!(12)));
        let c = classify(
            r#"{"id": 8, "type": "ok", "value": null}"#,
            8,
            Answer::Read,
            &Value::Null,
        )
        .unwrap();
        assert_eq!(c.value, Value::Null);
        let c = classify(
            r#"{"id":9,"type":"fail","error":"mismatch"}"#,
            9,
            Answer::Done,
            &json!([1, 2]),
        )
        .unwrap();
        assert_eq!(
            (c.kind, c.error.as_deref()),
            (EventType::Fail, Some("mismatch"))
        );
        let c = classify(
            r#"{"id":9,"type":"info","error":"timeout"}"#,
            9,
            Answer::Done,
            &json!(3),
        )
        .unwrap();
        assert_eq!((c.kind, c.value), (EventType::Info, json!(3)));
        let c = classify(
            r#"{"id":1,"type":"ok","value":[9,5,5]}"#,
            1,
            Answer::SetRead,
            &Value::Null,
        )
        .unwrap();
        assert_eq!(c.value, json!([5, 9]));
        for (line, says) in [
            ("hello", "not JSON"),
            ("[1]", "expected a JSON object"),
            (r#"{"id":7,"type":"ok"}"#, "id 7, expected id 8"),
            (r#"{"type":"ok"}"#, "no numeric id"),
            (r#"{"id":8,"type":"ok"}"#, "an ok read without a value"),
            (r#"{"id":8,"type":"maybe"}"#, "type \"maybe\""),
        ] {
            let e = classify(line, 8, Answer::Read, &Value::Null).unwrap_err();
            assert!(e.contains(says), "{line}: {e}");
        }
        assert!(classify(
            r#"{"id":8,"type":"ok","value":3}"#,
            8,
            Answer::SetRead,
            &Value::Null
        )
        .is_err());
    }
}
