//! The replica API: what one replica does for a coordinator, locally or over `/internal/`.
//!
//! `Replicas::get/put/hint` take a ring node index; the coordinator's own index is served by
//! calling storage directly (the local replica is still just one member of the quorum — it is
//! never consulted *instead of* the quorum), every other index over HTTP to the address in
//! `--peers`, which the harness may point at a fault proxy.
//!
//! The HTTP client keeps pooled connections and a per-call timeout of `--replica-timeout-ms`
//! covering connect and the whole exchange, so a blackholed peer (bytes stop, the connection
//! hangs) costs a coordinator at most that long.
//!
//! **Lanes.** Replica gets, puts and hints bound for one peer go through that peer's lane: the
//! calls of concurrent client operations are coalesced into one `POST /internal/batch` (a
//! compact binary body, `wire.rs`), answered in the same order. A lane never holds a message
//! back: its task takes whatever is queued, lets the other ready tasks run once (so concurrent
//! operations can join), and sends the batch at once, however many batches are already in
//! flight. So a message is on the wire as soon as it would have been as its own request — a
//! blackholed peer holds it, and a healed link does not later deliver a backlog (the fault
//! proxy resets connections that held bytes; a lane that queued messages behind a hung batch
//! would instead replay them after the heal, hiding the partition from the replicas). A message
//! whose caller has already given up is dropped unsent. Reads and writes use separate lanes, so
//! a get never waits for a put's fsync. Merkle and leaves requests stay single JSON exchanges.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::storage::Storage;
use crate::version::Record;
use crate::wire::{self, Answer};

/// Why a replica call failed, as far as `may_have_applied` cares.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The request never left: the connection could not be made.
    #[error("not sent: {0}")]
    NotSent(String),
    /// It may have arrived (timeout, reset, error status).
    #[error("failed: {0}")]
    Failed(String),
}

#[derive(Serialize, Deserialize, Debug)]
pub struct GetReq {
    pub key: String,
    /// A sloppy-quorum fallback also answers from the hints it holds.
    #[serde(default)]
    pub with_hints: bool,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct GetResp {
    pub record: Option<Record>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct PutReq {
    pub key: String,
    pub record: Record,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct HintReq {
    /// The home node the write was meant for.
    pub home: String,
    pub key: String,
    pub record: Record,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Ack {
    pub ok: bool,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct MerkleReq {
    /// The node asking: the tree covers the keys both nodes replicate.
    pub peer: String,
    pub level: u32,
    pub indices: Vec<u64>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct MerkleResp {
    /// `None` when the request does not fit this node's tree.
    pub hashes: Option<Vec<u64>>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct LeavesReq {
    pub peer: String,
    pub leaves: Vec<u64>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct LeavesResp {
    pub entries: Vec<(String, Record)>,
}

type Http = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// Most messages in one batch, and the body size past which a batch takes no more.
const MAX_BATCH_MSGS: usize = 512;
const MAX_BATCH_BYTES: usize = 1 << 20;

/// One queued replica message: its encoded frame and where its answer goes.
struct Pending {
    frame: Vec<u8>,
    reply: oneshot::Sender<Result<Answer, CallError>>,
}

/// The two lanes (reads, writes) to one peer, started on first use.
#[derive(Default)]
struct PeerLanes {
    read: OnceLock<mpsc::UnboundedSender<Pending>>,
    write: OnceLock<mpsc::UnboundedSender<Pending>>,
}

pub struct Replicas {
    /// One pooled HTTP/1 keep-alive client for every peer (hyper directly: no per-request URL
    /// parsing, middleware or redirect machinery on the quorum path).
    client: Http,
    /// Base URL per ring node index (`http://ADDR`).
    urls: Vec<String>,
    me: usize,
    storage: Arc<Storage>,
    timeout: Duration,
    lanes: Vec<PeerLanes>,
}

impl Replicas {
    /// `addrs[i]` is the dial address of ring node `i`.
    pub fn new(
        addrs: Vec<String>,
        me: usize,
        storage: Arc<Storage>,
        timeout: Duration,
    ) -> Replicas {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let urls: Vec<String> = addrs.into_iter().map(|a| format!("http://{a}")).collect();
        let lanes = urls.iter().map(|_| PeerLanes::default()).collect();
        Replicas {
            client,
            urls,
            me,
            storage,
            timeout,
            lanes,
        }
    }

    pub fn me(&self) -> usize {
        self.me
    }

    pub async fn get(
        &self,
        idx: usize,
        key: &str,
        with_hints: bool,
    ) -> Result<Option<Record>, CallError> {
        if idx == self.me {
            return Ok(local_get(&self.storage, key, with_hints));
        }
        let mut frame = Vec::with_capacity(16 + key.len());
        wire::encode_get(&mut frame, key, with_hints);
        match self.send(idx, false, frame).await? {
            Answer::Record(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Ok once the replica holds `rec` or something newer, durably (per its --fsync).
    pub async fn put(&self, idx: usize, key: &str, rec: &Record) -> Result<(), CallError> {
        if idx == self.me {
            return self
                .storage
                .put(key, rec.clone())
                .await
                .map(|_| ())
                .map_err(|e| CallError::Failed(e.to_string()));
        }
        let mut frame = Vec::with_capacity(64 + key.len());
        wire::encode_put(&mut frame, key, rec);
        match self.send(idx, true, frame).await? {
            Answer::Ack(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Asks node `idx` to keep `rec` as a hint for `home`.
    pub async fn hint(
        &self,
        idx: usize,
        home: &str,
        key: &str,
        rec: &Record,
    ) -> Result<bool, CallError> {
        if idx == self.me {
            return self
                .storage
                .put_hint(home, key, rec.clone())
                .await
                .map_err(|e| CallError::Failed(e.to_string()));
        }
        let mut frame = Vec::with_capacity(64 + key.len());
        wire::encode_hint(&mut frame, home, key, rec);
        match self.send(idx, true, frame).await? {
            Answer::Ack(ok) => Ok(ok),
            other => Err(unexpected(other)),
        }
    }

    pub async fn merkle(&self, idx: usize, req: &MerkleReq) -> Result<Option<Vec<u64>>, CallError> {
        let r: MerkleResp = self.call(idx, "/internal/merkle", req).await?;
        Ok(r.hashes)
    }

    pub async fn leaves(
        &self,
        idx: usize,
        req: &LeavesReq,
    ) -> Result<Vec<(String, Record)>, CallError> {
        let r: LeavesResp = self.call(idx, "/internal/leaves", req).await?;
        Ok(r.entries)
    }

    /// One replica message to node `idx` through its lane; the answer, or why there is none.
    async fn send(&self, idx: usize, write: bool, frame: Vec<u8>) -> Result<Answer, CallError> {
        let peer = self
            .lanes
            .get(idx)
            .ok_or_else(|| CallError::NotSent(format!("no node {idx}")))?;
        let cell = if write { &peer.write } else { &peer.read };
        let lane = cell.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let url = format!("{}/internal/batch", self.urls[idx]);
            tokio::spawn(run_lane(self.client.clone(), url, self.timeout, rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        lane.send(Pending { frame, reply })
            .map_err(|_| CallError::NotSent("lane closed".into()))?;
        // No timer of its own: the lane puts every message in a batch within one scheduler
        // turn, and the exchange carrying it is bounded by the replica timeout. A caller that
        // stops waiting (the operation's deadline) drops `answer`, and an unsent message
        // with it.
        answer
            .await
            .unwrap_or_else(|_| Err(CallError::Failed("lane dropped the message".into())))
    }

    async fn call<Req: Serialize, Resp: for<'de> Deserialize<'de>>(
        &self,
        idx: usize,
        path: &str,
        body: &Req,
    ) -> Result<Resp, CallError> {
        let base = self
            .urls
            .get(idx)
            .ok_or_else(|| CallError::NotSent(format!("no node {idx}")))?;
        let body = serde_json::to_vec(body).map_err(|e| CallError::NotSent(e.to_string()))?;
        let bytes = post(
            &self.client,
            format!("{base}{path}"),
            "application/json",
            Bytes::from(body),
            self.timeout,
        )
        .await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Failed(format!("{path}: {e}")))
    }
}

/// One HTTP exchange, bounded by `timeout` (connect included).
async fn post(
    client: &Http,
    url: String,
    content_type: &'static str,
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes, CallError> {
    let req = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(body))
        .map_err(|e| CallError::NotSent(e.to_string()))?;
    let path = req.uri().path().to_string();
    let exchange = async {
        let resp = client.request(req).await.map_err(classify)?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Failed(format!("{path}: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(CallError::Failed(format!("{path}: status {status}")));
        }
        Ok(body)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Failed(format!(
            "{path}: timeout after {} ms",
            timeout.as_millis()
        ))),
    }
}

/// A lane's task: batch whatever is queued and send it at once (see the file note).
async fn run_lane(
    client: Http,
    url: String,
    timeout: Duration,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    while let Some(first) = rx.recv().await {
        // One turn of the scheduler: concurrent operations that are ready add their messages.
        // No timer, so a lone message is not delayed beyond that.
        tokio::task::yield_now().await;
        let mut size = first.frame.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_MSGS && size < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    size += p.frame.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        // A caller that gave up no longer counts the message: never send it late.
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let mut body = Vec::with_capacity(size);
        let mut replies = Vec::with_capacity(batch.len());
        for p in batch {
            body.extend_from_slice(&p.frame);
            replies.push(p.reply);
        }
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let result = post(
                &client,
                url,
                "application/octet-stream",
                Bytes::from(body),
                timeout,
            )
            .await;
            let answers = result.and_then(|b| {
                let a = wire::decode_answers(&b).map_err(|e| CallError::Failed(e.to_string()))?;
                if a.len() == replies.len() {
                    Ok(a)
                } else {
                    Err(CallError::Failed(format!(
                        "/internal/batch: {} answers to {} messages",
                        a.len(),
                        replies.len()
                    )))
                }
            });
            match answers {
                Ok(answers) => {
                    for (reply, a) in replies.into_iter().zip(answers) {
                        let r = match a {
                            Answer::Error(e) => Err(CallError::Failed(e)),
                            a => Ok(a),
                        };
                        let _ = reply.send(r);
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

fn unexpected(a: Answer) -> CallError {
    CallError::Failed(format!("/internal/batch: unexpected answer {a:?}"))
}

fn classify(e: hyper_util::client::legacy::Error) -> CallError {
    // A connect error means no byte of the request went out; anything later (reset, closed
    // mid-exchange) may have delivered it.
    if e.is_connect() {
        CallError::NotSent(format!("{e:?}"))
    } else {
        CallError::Failed(format!("{e:?}"))
    }
}

/// What a replica answers to a read: its own record, or, when asked as a sloppy fallback, the
/// newer of its record and any hint it holds for the key.
pub fn local_get(storage: &Storage, key: &str, with_hints: bool) -> Option<Record> {
    let own = storage.get(key);
    if !with_hints {
        return own;
    }
    let hint = storage.hint_for(key);
    crate::version::newest([own.as_ref(), hint.as_ref()]).cloned()
}
