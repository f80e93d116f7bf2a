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

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};

use crate::storage::Storage;
use crate::version::Record;

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

pub struct Replicas {
    /// One pooled HTTP/1 keep-alive client for every peer (hyper directly: no per-request URL
    /// parsing, middleware or redirect machinery on the quorum path).
    client: Http,
    /// Base URL per ring node index (`http://ADDR`).
    urls: Vec<String>,
    me: usize,
    storage: Arc<Storage>,
    timeout: Duration,
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
        let urls = addrs.into_iter().map(|a| format!("http://{a}")).collect();
        Replicas {
            client,
            urls,
            me,
            storage,
            timeout,
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
        let r: GetResp = self
            .call(
                idx,
                "/internal/get",
                &GetReq {
                    key: key.to_string(),
                    with_hints,
                },
            )
            .await?;
        Ok(r.record)
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
        let _: Ack = self
            .call(
                idx,
                "/internal/put",
                &PutReq {
                    key: key.to_string(),
                    record: rec.clone(),
                },
            )
            .await?;
        Ok(())
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
        let a: Ack = self
            .call(
                idx,
                "/internal/hint",
                &HintReq {
                    home: home.to_string(),
                    key: key.to_string(),
                    record: rec.clone(),
                },
            )
            .await?;
        Ok(a.ok)
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

    async fn call<Req: Serialize, Resp: for<'de> Deserialize<'de>>(
        &self,
        idx: usize,
        path: &str,
        body: &Req,
    ) -> Result<Resp, CallError> {
        let body = serde_json::to_vec(body).map_err(|e| CallError::NotSent(e.to_string()))?;
        let bytes = self
            .post(idx, path, "application/json", Bytes::from(body))
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Failed(format!("{path}: {e}")))
    }

    /// One HTTP exchange with node `idx`, bounded by the replica timeout (connect included).
    pub(crate) async fn post(
        &self,
        idx: usize,
        path: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Bytes, CallError> {
        let base = self
            .urls
            .get(idx)
            .ok_or_else(|| CallError::NotSent(format!("no node {idx}")))?;
        let req = hyper::Request::post(format!("{base}{path}"))
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|e| CallError::NotSent(format!("{path}: {e}")))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(classify)?;
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
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Failed(format!(
                "{path}: timeout after {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
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
