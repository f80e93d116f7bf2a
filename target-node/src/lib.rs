//! quorate-node: the reference leaderless (Dynamo-style) node that quorate tests.
//!
//! Map of the crate (pure logic first, I/O at the edges):
//! - `config`      — command line, presets, `Config` with documented defaults, `validate()`.
//! - `version`     — `Version` (ts, node) and `Record`; the LWW clock and two-phase tags.
//! - `ring`        — consistent-hash ring with virtual nodes; preference lists and ranges.
//! - `quorum`      — pure quorum counting: write acks, read answers, newest, write-back need.
//! - `merkle`      — Merkle trees over key ranges and the diff walk between two of them.
//! - `storage`     — redb on disk + in-memory view, one group-committing writer thread.
//! - `replica`     — the replica API: local calls, or per-peer lanes batching messages into
//!   `POST /internal/batch` (binary body, `wire`); merkle/leaves as JSON `/internal/…`.
//! - `wire`        — the binary batch encoding of replica messages and answers.
//! - `coordinator` — one client operation: read / write / cas over quorums, read repair,
//!   sloppy quorum.
//! - `anti_entropy`— periodic Merkle exchanges with each peer.
//! - `hints`       — hinted handoff back to home nodes.
//! - `digest`      — `GET /digest`: a hash per key range, for convergence checks.
//! - `stats`       — counters behind `GET /stats`.
//! - `node`        — the shared state of one process and its start-up.
//! - `http`        — routes, status codes, JSON errors; `serve(listener, node, shutdown)`.
//!
//! Invariant: with `--fsync always` a replica publishes (and acknowledges) a version only after
//! storage committed it durably; with `--fsync never` it publishes at once and persists behind
//! (a crash may lose acknowledged writes either way under `never`). Versions on a replica only
//! move forward.

pub mod anti_entropy;
pub mod config;
pub mod coordinator;
pub mod digest;
pub mod hints;
pub mod http;
pub mod merkle;
pub mod node;
pub mod quorum;
pub mod replica;
pub mod ring;
pub mod stats;
pub mod storage;
pub mod version;
pub mod wire;
