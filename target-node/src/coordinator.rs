//! The coordinator: one client operation from request to quorum decision.
//!
//! - read: ask the key's N home nodes in parallel, answer after R; the newest version wins.
//!   Read repair then writes the newest back to stale replicas — after answering (`async`), or
//!   before answering until W replicas hold it (`blocking`, ABD's write-back phase).
//! - write: `lww` stamps wall clock + offset; `two-phase` (ABD) first queries a read quorum for
//!   the highest tag and writes a higher one. The write goes to all N home nodes in parallel
//!   and is answered after W durable acks; the rest carries on in the background (each replica
//!   call is its own task, bounded by the replica timeout).
//! - cas: read a quorum, compare, write. Not atomic across replicas: two concurrent cas can
//!   both see the expected value and both succeed. That is the point — it is what a leaderless
//!   store without consensus does, and the checker should catch it.
//! - sloppy quorum: a home node that fails is replaced by the next node on the ring beyond the
//!   preference list; a write there becomes a durable hint for the home node and its ack counts.
//!   After the answer, every home that may lack the write gets a hint, on a fallback or, when
//!   none is left, on the coordinator itself (`hand_off_late`).
//!
//! Counting and choosing are in `quorum.rs` (pure); this file only moves messages and time.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use crate::config::{ReadRepair, WriteMode};
use crate::node::Node;
use crate::quorum::{may_have_applied, Progress, ReadAnswer, ReadTally, WriteTally};
use crate::replica::CallError;
use crate::ring::key_position;
use crate::stats::Stats;
use crate::version::{Record, Version};

#[derive(Debug, Clone, PartialEq)]
pub enum OpError {
    /// The quorum was not reached in time (or cannot be). → 503
    Unavailable {
        may_have_applied: bool,
        reason: String,
    },
    /// cas: the current value is not the expected one. → 409
    Mismatch { current: Option<Value> },
}

struct ReadEvent {
    idx: usize,
    result: Result<Option<Record>, CallError>,
}

/// A read quorum that was reached, with the channel still open for late answers.
struct Query {
    tally: ReadTally,
    homes: Vec<usize>,
    rx: mpsc::UnboundedReceiver<ReadEvent>,
}

fn spawn_get(
    node: &Arc<Node>,
    idx: usize,
    key: &str,
    with_hints: bool,
    tx: &mpsc::UnboundedSender<ReadEvent>,
) {
    let (node, key, tx) = (node.clone(), key.to_string(), tx.clone());
    tokio::spawn(async move {
        let result = node.replicas.get(idx, &key, with_hints).await;
        let _ = tx.send(ReadEvent { idx, result });
    });
}

/// One home replica's read, driven in the operation's own task (no spawn per replica: on a
/// loaded node each spawn may wake another worker thread).
fn get_home(node: &Arc<Node>, idx: usize, key: &str) -> BoxFuture<'static, ReadEvent> {
    let (node, key) = (node.clone(), key.to_string());
    Box::pin(async move {
        let result = node.replicas.get(idx, &key, false).await;
        ReadEvent { idx, result }
    })
}

/// Calls still out when an operation stops waiting go on in the background, their outcomes
/// forwarded to `tx` (for read repair, hinted handoff, or nobody), as spawned calls would.
fn drain_later<E: Send + 'static>(
    mut calls: FuturesUnordered<BoxFuture<'static, E>>,
    tx: &mpsc::UnboundedSender<E>,
) {
    if calls.is_empty() {
        return;
    }
    let tx = tx.clone();
    tokio::spawn(async move {
        while let Some(ev) = calls.next().await {
            let _ = tx.send(ev);
        }
    });
}

/// The next outcome: from the calls driven here, or from spawned ones (fallbacks) on `rx`.
async fn next_event<E>(
    calls: &mut FuturesUnordered<BoxFuture<'static, E>>,
    rx: &mut mpsc::UnboundedReceiver<E>,
) -> Option<E> {
    tokio::select! {
        biased;
        Some(ev) = calls.next(), if !calls.is_empty() => Some(ev),
        ev = rx.recv() => ev,
    }
}

/// Phase one of every operation that reads: R answers from the home nodes (or fallbacks).
async fn query(node: &Arc<Node>, key: &str, deadline: Instant) -> Result<Query, OpError> {
    let walk = node.ring.walk(key_position(key));
    let n = node.cfg.n.min(walk.len());
    let homes = walk[..n].to_vec();
    let mut fallbacks = walk[n..].iter().copied().filter(|_| node.cfg.sloppy_quorum);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut rx = rx;
    let mut calls: FuturesUnordered<_> = homes.iter().map(|&i| get_home(node, i, key)).collect();
    let mut tally = ReadTally::new(node.cfg.r, homes.len());
    loop {
        match tally.progress() {
            Progress::Reached => break,
            Progress::Impossible => {
                drain_later(calls, &tx);
                return Err(OpError::Unavailable {
                    may_have_applied: false,
                    reason: format!(
                        "read quorum unreachable: fewer than {} replicas answered",
                        node.cfg.r
                    ),
                });
            }
            Progress::Pending => {}
        }
        let ev = match timeout_at(deadline, next_event(&mut calls, &mut rx)).await {
            Ok(Some(ev)) => ev,
            Ok(None) | Err(_) => {
                drain_later(calls, &tx);
                return Err(OpError::Unavailable {
                    may_have_applied: false,
                    reason: format!(
                        "timeout: {} of {} read answers in {} ms",
                        tally.answers().len(),
                        node.cfg.r,
                        node.cfg.request_timeout_ms
                    ),
                });
            }
        };
        match ev.result {
            Ok(record) => {
                tally.answer(ReadAnswer {
                    replica: ev.idx,
                    record,
                });
            }
            Err(e) => {
                tracing::debug!(key, replica = node.id_of(ev.idx), "read failed: {e}");
                tally.fail();
                if let Some(f) = fallbacks.next() {
                    tally.add_target();
                    spawn_get(node, f, key, true, &tx);
                }
            }
        }
    }
    drain_later(calls, &tx);
    Ok(Query { tally, homes, rx })
}

struct WriteEvent {
    idx: usize,
    /// Set when this was a hint sent to a fallback on behalf of `home`.
    hint_for: Option<usize>,
    result: Result<(), CallError>,
}

/// Starts one replica write (or, with `hint_for`, a hint kept on behalf of that home node);
/// its outcome arrives on `tx`.
fn spawn_put(
    node: &Arc<Node>,
    key: &str,
    rec: &Record,
    tx: &mpsc::UnboundedSender<WriteEvent>,
    idx: usize,
    hint_for: Option<usize>,
) {
    let (node, key, rec, tx) = (node.clone(), key.to_string(), rec.clone(), tx.clone());
    tokio::spawn(async move {
        let result = match hint_for {
            None => node.replicas.put(idx, &key, &rec).await,
            Some(home) => {
                let r = node.replicas.hint(idx, node.id_of(home), &key, &rec).await;
                if idx == node.me && matches!(r, Ok(true)) {
                    Stats::inc(&node.stats.hints_stored);
                }
                r.map(|_| ())
            }
        };
        let _ = tx.send(WriteEvent {
            idx,
            hint_for,
            result,
        });
    });
}

/// One home replica's write, driven in the operation's own task (see `get_home`).
fn put_home(
    node: &Arc<Node>,
    key: &str,
    rec: &Record,
    idx: usize,
) -> BoxFuture<'static, WriteEvent> {
    let (node, key, rec) = (node.clone(), key.to_string(), rec.clone());
    Box::pin(async move {
        let result = node.replicas.put(idx, &key, &rec).await;
        WriteEvent {
            idx,
            hint_for: None,
            result,
        }
    })
}

/// What a write leaves for hinted handoff once its client has an answer: the homes that may
/// still lack it, and the fallbacks not used yet (sloppy quorum only).
struct Leftover {
    /// Home nodes whose write has not come back yet.
    homes_out: Vec<usize>,
    /// Home nodes whose write failed and whose hint found no fallback (none was left, or the
    /// fallback's own hint failed with none left after it).
    orphans: Vec<usize>,
    /// Hints in flight: (fallback, home).
    hints_out: Vec<(usize, usize)>,
    /// Fallbacks beyond the preference list not used yet, in ring order.
    fallbacks: Vec<usize>,
}

impl Leftover {
    fn is_empty(&self) -> bool {
        self.homes_out.is_empty() && self.orphans.is_empty() && self.hints_out.is_empty()
    }
}

/// Sends `rec` to the key's home nodes and waits for W durable acks (or a deadline).
async fn replicate(
    node: &Arc<Node>,
    key: &str,
    rec: &Record,
    deadline: Instant,
) -> Result<(), OpError> {
    let walk = node.ring.walk(key_position(key));
    let n = node.cfg.n.min(walk.len());
    let mut fallbacks = walk[n..].iter().copied().filter(|_| node.cfg.sloppy_quorum);
    let (tx, mut rx) = mpsc::unbounded_channel::<WriteEvent>();
    let mut calls: FuturesUnordered<_> = walk[..n]
        .iter()
        .map(|&idx| put_home(node, key, rec, idx))
        .collect();
    // Home nodes whose write has not come back yet.
    let mut homes_out: Vec<usize> = walk[..n].to_vec();
    let mut orphans: Vec<usize> = Vec::new();
    let mut hints_out: Vec<(usize, usize)> = Vec::new();
    let mut tally = WriteTally::new(node.cfg.w, n);
    let mut attempts = n;
    let mut not_sent = 0;
    let outcome = loop {
        let unavailable = |reason: String, not_sent: usize, attempts: usize| OpError::Unavailable {
            may_have_applied: may_have_applied(not_sent < attempts),
            reason,
        };
        match tally.progress() {
            Progress::Reached => break Ok(()),
            Progress::Impossible => {
                break Err(unavailable(
                    format!(
                        "write quorum unreachable: {} of {} acks",
                        tally.acks(),
                        node.cfg.w
                    ),
                    not_sent,
                    attempts,
                ));
            }
            Progress::Pending => {}
        }
        let ev = match timeout_at(deadline, next_event(&mut calls, &mut rx)).await {
            Ok(Some(ev)) => ev,
            Ok(None) | Err(_) => {
                break Err(unavailable(
                    format!(
                        "timeout: {} of {} acks in {} ms",
                        tally.acks(),
                        node.cfg.w,
                        node.cfg.request_timeout_ms
                    ),
                    not_sent,
                    attempts,
                ));
            }
        };
        match ev.hint_for {
            None => homes_out.retain(|&h| h != ev.idx),
            Some(home) => hints_out.retain(|&h| h != (ev.idx, home)),
        }
        match ev.result {
            Ok(()) => {
                tally.ack();
            }
            Err(e) => {
                tracing::debug!(key, replica = node.id_of(ev.idx), "write failed: {e}");
                if matches!(e, CallError::NotSent(_)) {
                    not_sent += 1;
                }
                tally.fail();
                let home = ev.hint_for.unwrap_or(ev.idx);
                if let Some(f) = fallbacks.next() {
                    tally.add_target();
                    attempts += 1;
                    hints_out.push((f, home));
                    spawn_put(node, key, rec, &tx, f, Some(home));
                } else if node.cfg.sloppy_quorum {
                    orphans.push(home);
                }
            }
        }
    };
    drain_later(calls, &tx);
    // Hinted handoff for every home that may lack the write, whether or not the quorum was
    // reached: a write that missed it may still have applied somewhere (`info` to its client),
    // and replicas that differ for good are what hinted handoff exists to prevent. Not for a
    // write that was sent nowhere (`fail`: it must never become visible).
    let sent_somewhere = match &outcome {
        Ok(()) => true,
        Err(OpError::Unavailable {
            may_have_applied, ..
        }) => *may_have_applied,
        Err(OpError::Mismatch { .. }) => false,
    };
    let left = Leftover {
        homes_out,
        orphans,
        hints_out,
        fallbacks: fallbacks.collect(),
    };
    if node.cfg.sloppy_quorum && sent_somewhere && !left.is_empty() {
        tokio::spawn(hand_off_late(
            node.clone(),
            key.to_string(),
            rec.clone(),
            (tx, rx),
            left,
        ));
    }
    outcome
}

/// Sloppy quorum after the client has its answer: a write goes to N nodes, not W (Dynamo).
/// Every home that may lack the write ends up with a hint somewhere:
/// - a home still out gets its hint once its write fails, or once it has not answered within
///   the request timeout (a partition that drops packets answers nothing);
/// - a hint on a fallback that fails, or never answers, moves to the next unused fallback;
/// - when no fallback is left, the coordinator keeps the hint itself (Cassandra's rule), so
///   its own handoff loop brings the write home after the heal.
///
/// Without the first, a write acknowledged by two quick homes left a cut-off third home to
/// anti-entropy alone; without the last, a partition that also cut the fallbacks (halves,
/// majorities-ring) left a home behind for good with no hint pending anywhere.
async fn hand_off_late(
    node: Arc<Node>,
    key: String,
    rec: Record,
    (tx, mut rx): (
        mpsc::UnboundedSender<WriteEvent>,
        mpsc::UnboundedReceiver<WriteEvent>,
    ),
    left: Leftover,
) {
    let Leftover {
        mut homes_out,
        orphans,
        mut hints_out,
        fallbacks,
    } = left;
    let mut fallbacks = fallbacks.into_iter();
    let mut keep_here = orphans;
    let mut place =
        |home: usize, hints_out: &mut Vec<(usize, usize)>, keep_here: &mut Vec<usize>| {
            match fallbacks.next() {
                Some(f) => {
                    hints_out.push((f, home));
                    spawn_put(&node, &key, &rec, &tx, f, Some(home));
                }
                None => keep_here.push(home),
            }
        };
    let mut deadline = Instant::now() + node.request_timeout();
    // Homes first: those silent at the first deadline get their hints then, and the hints get
    // one more request timeout to answer.
    let mut homes_timed_out = false;
    while !homes_out.is_empty() || !hints_out.is_empty() {
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => match ev.hint_for {
                None => {
                    homes_out.retain(|&h| h != ev.idx);
                    if ev.result.is_err() {
                        place(ev.idx, &mut hints_out, &mut keep_here);
                    }
                }
                Some(home) => {
                    hints_out.retain(|&h| h != (ev.idx, home));
                    if ev.result.is_err() {
                        place(home, &mut hints_out, &mut keep_here);
                    }
                }
            },
            // This task holds a sender, so the channel cannot close; a timeout is the only end.
            Ok(None) => break,
            Err(_) if !homes_timed_out => {
                homes_timed_out = true;
                for home in std::mem::take(&mut homes_out) {
                    place(home, &mut hints_out, &mut keep_here);
                }
                deadline = Instant::now() + node.request_timeout();
            }
            Err(_) => {
                // Hints that never answered may or may not be stored; one more copy here
                // costs a duplicate delivery at most.
                // (Every home still out was placed at the first deadline.)
                keep_here.extend(std::mem::take(&mut hints_out).into_iter().map(|(_, h)| h));
            }
        }
    }
    keep_here.sort_unstable();
    keep_here.dedup();
    for home in keep_here {
        if home == node.me {
            // The coordinator's own replica write failed (its storage): nowhere else to keep it.
            tracing::warn!(
                key,
                "own replica write failed and no fallback took its hint"
            );
            continue;
        }
        match node
            .storage
            .put_hint(node.id_of(home), &key, rec.clone())
            .await
        {
            Ok(true) => Stats::inc(&node.stats.hints_stored),
            Ok(false) => {}
            Err(e) => tracing::warn!(key, home = node.id_of(home), "could not keep a hint: {e}"),
        }
    }
}

/// A client read: the newest record a read quorum holds, after read repair if blocking.
pub async fn read(node: &Arc<Node>, key: &str) -> Result<Option<Record>, OpError> {
    let deadline = Instant::now() + node.request_timeout();
    let q = query(node, key, deadline).await?;
    let newest = q.tally.newest().cloned();
    match node.cfg.read_repair {
        ReadRepair::Off => {}
        ReadRepair::Blocking => {
            if let Some(rec) = &newest {
                if q.tally.needs_write_back(node.cfg.w) {
                    let stale = q
                        .tally
                        .stale()
                        .iter()
                        .filter(|i| q.homes.contains(i))
                        .count();
                    Stats::add(&node.stats.read_repairs, stale as u64);
                    // A write-back that misses its quorum must not answer: the value might
                    // not be at a quorum, and a later read could miss it.
                    replicate(node, key, rec, deadline)
                        .await
                        .map_err(|e| match e {
                            OpError::Unavailable { reason, .. } => OpError::Unavailable {
                                may_have_applied: false,
                                reason: format!("read write-back: {reason}"),
                            },
                            other => other,
                        })?;
                }
            }
        }
        ReadRepair::Async => {
            tokio::spawn(async_repair(node.clone(), key.to_string(), q));
        }
    }
    Ok(newest)
}

/// After answering: wait briefly for the remaining answers, then send the newest version to
/// every home replica that answered with something older.
async fn async_repair(node: Arc<Node>, key: String, mut q: Query) {
    let until = Instant::now() + node.replica_timeout();
    while q.tally.answers().len() < q.homes.len() {
        match timeout_at(until, q.rx.recv()).await {
            Ok(Some(ReadEvent {
                idx,
                result: Ok(record),
            })) => {
                q.tally.answer(ReadAnswer {
                    replica: idx,
                    record,
                });
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let Some(newest) = q.tally.newest().cloned() else {
        return;
    };
    for idx in q.tally.stale() {
        if !q.homes.contains(&idx) {
            continue;
        }
        Stats::inc(&node.stats.read_repairs);
        let (node, key, rec) = (node.clone(), key.clone(), newest.clone());
        tokio::spawn(async move {
            if let Err(e) = node.replicas.put(idx, &key, &rec).await {
                tracing::debug!(key, replica = node.id_of(idx), "read repair failed: {e}");
            }
        });
    }
}

/// A client write; returns the version written.
pub async fn write(node: &Arc<Node>, key: &str, value: Value) -> Result<Version, OpError> {
    let deadline = Instant::now() + node.request_timeout();
    let version = match node.cfg.write_mode {
        WriteMode::Lww => node.clock.next_lww(),
        WriteMode::TwoPhase => {
            let q = query(node, key, deadline).await?;
            node.clock.next_tag(q.tally.highest_version())
        }
    };
    let rec = Record {
        value,
        version: version.clone(),
    };
    replicate(node, key, &rec, deadline).await?;
    Ok(version)
}

/// A client compare-and-set (not atomic; see the file note). `expected: None` means "no value".
pub async fn cas(
    node: &Arc<Node>,
    key: &str,
    expected: Option<Value>,
    new: Value,
) -> Result<Version, OpError> {
    let deadline = Instant::now() + node.request_timeout();
    let q = query(node, key, deadline).await?;
    let current = q.tally.newest().map(|r| r.value.clone());
    if current != expected {
        return Err(OpError::Mismatch { current });
    }
    let version = match node.cfg.write_mode {
        WriteMode::Lww => node.clock.next_lww(),
        WriteMode::TwoPhase => node.clock.next_tag(q.tally.highest_version()),
    };
    let rec = Record {
        value: new,
        version: version.clone(),
    };
    replicate(node, key, &rec, deadline).await?;
    Ok(version)
}
