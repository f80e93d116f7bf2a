//! The HTTP edge: routes, request parsing, status codes and JSON shapes (INTERFACES.md).
//!
//! Bodies are read as bytes and parsed here rather than with axum's extractors, so that every
//! bad request — oversized body, bad JSON, bad key, `null` value, unknown route — gets a 4xx
//! with `{"error": …}` instead of a plain-text rejection. Nothing a client sends reaches an
//! `unwrap`.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{rejection::PathRejection, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::coordinator::{self, OpError};
use crate::node::Node;
use crate::replica::{
    local_get, Ack, GetReq, GetResp, HintReq, LeavesReq, LeavesResp, MerkleReq, MerkleResp, PutReq,
};
use crate::stats::Stats;
use crate::wire::{self, Answer, Msg};

/// Client bodies over this are refused with 413.
pub const MAX_BODY: usize = 1 << 20;
/// Replica traffic carries a client value plus a version, so it gets some headroom.
const MAX_INTERNAL_BODY: usize = 4 << 20;
/// A batch stops taking messages past 1 MiB, so it is at most that plus one message.
const MAX_BATCH_BODY: usize = 8 << 20;
/// Longest key accepted, in bytes.
pub const MAX_KEY: usize = 1024;

type St = State<Arc<Node>>;

pub struct ApiError(StatusCode, Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn err(code: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(code, json!({ "error": msg.into() }))
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Unavailable {
                may_have_applied,
                reason,
            } => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": reason, "may_have_applied": may_have_applied }),
            ),
            OpError::Mismatch { current } => ApiError(
                StatusCode::CONFLICT,
                json!({ "error": "mismatch", "current": current }),
            ),
        }
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body over {limit} bytes"),
        )
    })
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

fn check_key(key: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(key) = key.map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad key: {e}")))?;
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("bad key: must be 1 to {MAX_KEY} bytes"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(err(StatusCode::BAD_REQUEST, "bad key: control characters"));
    }
    Ok(key)
}

/// A required, non-null field of a JSON object body.
fn field(body: &Value, name: &str) -> Result<Value, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| err(StatusCode::BAD_REQUEST, "body must be a JSON object"))?;
    match obj.get(name) {
        None => Err(err(
            StatusCode::BAD_REQUEST,
            format!("missing field {name:?}"),
        )),
        Some(Value::Null) => Err(err(
            StatusCode::BAD_REQUEST,
            format!("{name:?} must not be null"),
        )),
        Some(v) => Ok(v.clone()),
    }
}

async fn kv_get(
    State(node): St,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    Stats::inc(&node.stats.requests);
    Stats::inc(&node.stats.reads);
    let key = check_key(key)?;
    match coordinator::read(&node, &key).await {
        Ok(Some(rec)) => {
            Ok(Json(json!({ "value": rec.value, "version": rec.version })).into_response())
        }
        Ok(None) => Ok(err(StatusCode::NOT_FOUND, "not found").into_response()),
        Err(e) => {
            Stats::inc(&node.stats.unavailable);
            Err(e.into())
        }
    }
}

async fn kv_put(
    State(node): St,
    key: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    Stats::inc(&node.stats.requests);
    Stats::inc(&node.stats.writes);
    let key = check_key(key)?;
    let body: Value = parse(&read_body(body, MAX_BODY).await?)?;
    let value = field(&body, "value")?;
    match coordinator::write(&node, &key, value).await {
        Ok(v) => Ok(Json(json!({ "version": v })).into_response()),
        Err(e) => {
            Stats::inc(&node.stats.unavailable);
            Err(e.into())
        }
    }
}

async fn kv_cas(
    State(node): St,
    key: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    Stats::inc(&node.stats.requests);
    Stats::inc(&node.stats.cas);
    let key = check_key(key)?;
    let body: Value = parse(&read_body(body, MAX_BODY).await?)?;
    let new = field(&body, "new")?;
    // `expected` may be null (or left out): "the key has no value yet".
    let expected = match body.get("expected") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    match coordinator::cas(&node, &key, expected, new).await {
        Ok(v) => Ok(Json(json!({ "version": v })).into_response()),
        Err(e) => {
            if matches!(e, OpError::Unavailable { .. }) {
                Stats::inc(&node.stats.unavailable);
            }
            Err(e.into())
        }
    }
}

async fn health(State(node): St) -> Response {
    Json(json!({ "ok": true, "id": node.cfg.id })).into_response()
}

async fn stats(State(node): St) -> Response {
    let mut m = node.stats.snapshot();
    m.insert("node".into(), node.cfg.id.clone().into());
    m.insert("keys".into(), node.storage.len().into());
    m.insert("hints_pending".into(), node.storage.hints().len().into());
    m.insert("clock_offset_ms".into(), node.clock.offset_ms().into());
    m.insert(
        "config".into(),
        serde_json::to_value(&node.cfg).unwrap_or(Value::Null),
    );
    Json(Value::Object(m)).into_response()
}

async fn digest(State(node): St) -> Response {
    Json(crate::digest::digest(&node)).into_response()
}

async fn digest_keys(State(node): St, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    crate::digest::range_keys(&node, q.as_deref())
        .map(|v| Json(v).into_response())
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("/digest/keys: {e}")))
}

async fn clock_offset(State(node): St, body: Body) -> Result<Response, ApiError> {
    let body: Value = parse(&read_body(body, MAX_BODY).await?)?;
    let ms = field(&body, "ms")?
        .as_i64()
        .ok_or_else(|| err(StatusCode::BAD_REQUEST, "\"ms\" must be an integer"))?;
    node.clock.set_offset_ms(ms);
    Ok(Json(json!({ "ms": ms })).into_response())
}

async fn internal_get(State(node): St, body: Body) -> Result<Response, ApiError> {
    Stats::inc(&node.stats.internal_requests);
    let req: GetReq = parse(&read_body(body, MAX_INTERNAL_BODY).await?)?;
    let record = local_get(&node.storage, &req.key, req.with_hints);
    Ok(Json(GetResp { record }).into_response())
}

async fn internal_put(State(node): St, body: Body) -> Result<Response, ApiError> {
    Stats::inc(&node.stats.internal_requests);
    let req: PutReq = parse(&read_body(body, MAX_INTERNAL_BODY).await?)?;
    // Acknowledge only after the store has it (durably, with --fsync always).
    let ok = node
        .storage
        .put(&req.key, req.record)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(Ack { ok }).into_response())
}

async fn internal_hint(State(node): St, body: Body) -> Result<Response, ApiError> {
    Stats::inc(&node.stats.internal_requests);
    let req: HintReq = parse(&read_body(body, MAX_INTERNAL_BODY).await?)?;
    let ok = node
        .storage
        .put_hint(&req.home, &req.key, req.record)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if ok {
        Stats::inc(&node.stats.hints_stored);
    }
    Ok(Json(Ack { ok }).into_response())
}

/// Many replica messages in one exchange (`wire.rs`): answered in order, the puts and hints
/// handed to storage together so one group commit covers them.
async fn internal_batch(State(node): St, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body, MAX_BATCH_BODY).await?;
    let msgs = wire::decode_msgs(&body).map_err(|e| err(StatusCode::BAD_REQUEST, e.to_string()))?;
    Stats::add(&node.stats.internal_requests, msgs.len() as u64);
    Stats::inc(&node.stats.internal_batches);
    let answers = futures::future::join_all(msgs.into_iter().map(|m| {
        let node = &node;
        async move {
            let stored = match m {
                Msg::Get { key, with_hints } => {
                    return Answer::Record(local_get(&node.storage, &key, with_hints))
                }
                // Acknowledged only after the store has it (durably, with --fsync always).
                Msg::Put { key, record } => node.storage.put(&key, record).await,
                Msg::Hint { home, key, record } => {
                    let r = node.storage.put_hint(&home, &key, record).await;
                    if matches!(r, Ok(true)) {
                        Stats::inc(&node.stats.hints_stored);
                    }
                    r
                }
            };
            match stored {
                Ok(ok) => Answer::Ack(ok),
                Err(e) => Answer::Error(e.to_string()),
            }
        }
    }))
    .await;
    let mut out = Vec::with_capacity(answers.len() * 16);
    for a in &answers {
        wire::encode_answer(&mut out, a);
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        out,
    )
        .into_response())
}

async fn internal_merkle(State(node): St, body: Body) -> Result<Response, ApiError> {
    Stats::inc(&node.stats.internal_requests);
    let req: MerkleReq = parse(&read_body(body, MAX_INTERNAL_BODY).await?)?;
    let peer = node.ring.index_of(&req.peer).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!("unknown peer {:?}", req.peer),
        )
    })?;
    let node2 = node.clone();
    // Building a tree scans every key: keep it off the async workers.
    let hashes = tokio::task::spawn_blocking(move || {
        crate::anti_entropy::tree_for_request(&node2, peer, req.level)
            .hashes(req.level, &req.indices)
    })
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(MerkleResp { hashes }).into_response())
}

async fn internal_leaves(State(node): St, body: Body) -> Result<Response, ApiError> {
    Stats::inc(&node.stats.internal_requests);
    let req: LeavesReq = parse(&read_body(body, MAX_INTERNAL_BODY).await?)?;
    let peer = node.ring.index_of(&req.peer).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!("unknown peer {:?}", req.peer),
        )
    })?;
    let entries = crate::anti_entropy::leaf_entries(&node, peer, &req.leaves)
        .into_iter()
        .collect();
    Ok(Json(LeavesResp { entries }).into_response())
}

async fn not_found() -> ApiError {
    err(StatusCode::NOT_FOUND, "no such route")
}

async fn method_not_allowed() -> ApiError {
    err(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/kv/{key}", get(kv_get).put(kv_put))
        .route("/kv/{key}/cas", post(kv_cas))
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/digest", get(digest))
        .route("/digest/keys", get(digest_keys))
        .route("/admin/clock-offset", put(clock_offset))
        .route("/internal/batch", post(internal_batch))
        .route("/internal/get", post(internal_get))
        .route("/internal/put", post(internal_put))
        .route("/internal/hint", post(internal_hint))
        .route("/internal/merkle", post(internal_merkle))
        .route("/internal/leaves", post(internal_leaves))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(node)
}

/// Serves until `shutdown` resolves. Tests and `main` bind the listener (port 0 works).
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Small request/response pairs: Nagle would add delay to every quorum hop.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(node))
        .with_graceful_shutdown(shutdown)
        .await
}
