//! The history format (HISTORY.md v1): events, ops, and the readers and writers.
//!
//! - [`event`]: one JSONL line ([`Event`]), serialisable as the format says.
//! - [`op`]: invokes paired with completions ([`Op`], [`History`], [`pair`]).

pub mod event;
pub mod op;

pub use event::{Event, EventType, Process};
pub use op::{pair, History, Op, Outcome};

/// Why a history could not be read. Always names where and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("line {line}: {message}")]
    Semantics { line: usize, message: String },
}
