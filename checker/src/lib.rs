//! quorate-checker: reads histories and judges them.
//!
//! The checker knows nothing of the harness: it audits any history, from anywhere.
//!
//! - [`history`]: the history format (HISTORY.md): events, ops (invokes paired with completions).
//! - [`import`]: reading files: quorate JSONL, Jepsen EDN, Porcupine logs; format detection.
//! - [`model`]: sequential specifications (register, cas-register, kv, set).
//! - [`linear`]: the linearizability search, per key, with counterexamples.
//! - [`verdict`]: valid / invalid / unknown.
pub mod history;
pub mod import;
pub mod linear;
pub mod model;
pub mod verdict;
