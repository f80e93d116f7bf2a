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

pub struct Replicas {
    client: reqwest::Client,
    /// Base URL per ring node index (`http://ADDR`).
    urls: Vec<String>,
    me: usize,
    storage: Arc<Storage>,
}

impl Replicas {
    /// `addrs[i]` is the dial address of ring node `i`.
    pub fn new(
        addrs: Vec<String>,
        me: usize,
        storage: Arc<Storage>,
        timeout: Duration,
    ) -> Replicas {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            // Only fails when the TLS backend or resolver cannot start; neither is used here.
            .unwrap_or_else(|_| reqwest::Client::new());
        let urls = addrs.into_iter().map(|a| format!("http://{a}")).collect();
        Replicas {
            client,
            urls,
            me,
            storage,
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
        let base = self
            .urls
            .get(idx)
            .ok_or_else(|| CallError::NotSent(format!("no node {idx}")))?;
        let resp = self
            .client
            .post(format!("{base}{path}"))
            .json(body)
            .send()
            .await
            .map_err(classify)?;
        if !resp.status().is_success() {
            return Err(CallError::Failed(format!(
                "{path}: status {}",
                resp.status()
            )));
        }
        resp.json::<Resp>()
            .await
            .map_err(|e| CallError::Failed(e.to_string()))
    }
}

fn classify(e: reqwest::Error) -> CallError {
    // A connect error means no byte of the request went out; anything later (timeout, reset)
    // may have delivered it.
    if e.is_connect() {
        CallError::NotSent(e.to_string())
    } else {
        CallError::Failed(e.to_string())
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
