//! quorate-checker: reads histories and judges them.
//!
//! The checker knows nothing of the harness: it audits any history, from anywhere.
//!
//! - [`history`]: the history format (HISTORY.md): events, ops (invokes paired with completions),
//!   the JSONL reader and writer.
//! - [`import`]: reading files: quorate JSONL, Jepsen EDN, Porcupine logs; format detection.
//! - [`model`]: sequential specifications (register, cas-register, kv, set).
//! - [`linear`]: the linearizability search, per key, with counterexamples.
//! - [`quorum`]: the quorum checks (stale reads, lost writes, sessions, convergence, set).
//! - [`verdict`]: valid / invalid / unknown.
//! - [`check`]: one file end to end — read, pair, check — as INTERFACES.md's JSON object and a
//!   summary for people (all of `quorate check` but its flags).
//! - [`report`]: the self-contained `timeline.html` of a checked history.
pub mod check;
pub mod history;
pub mod import;
pub mod linear;
pub mod model;
pub mod quorum;
pub mod report;
pub mod summary;
pub mod verdict;
