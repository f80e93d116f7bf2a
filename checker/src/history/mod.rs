//! The history format (HISTORY.md v1): events, ops, and the readers and writers.
//!
//! - [`event`]: one JSONL line ([`Event`]), serialisable as the format says.
//! - [`op`]: invokes paired with completions ([`Op`], [`History`], [`pair`]).
//! - [`jsonl`]: reading and writing the JSONL file itself.
//! - [`numbering`]: assigning `index` and holding readers to the ordering rules.

pub mod event;
pub mod jsonl;
pub mod numbering;
pub mod op;

pub use event::{Event, EventType, Process};
pub use op::{pair, pair_owned, History, Op, Outcome, Pairer};

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
    /// A syntax error inside a line (EDN), where a column helps.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// Any of the above, in the file `path`: how `import::read_path` reports, so every message
    /// a user sees starts with the file.
    #[error("{path}: {source}")]
    InFile {
        path: String,
        #[source]
        source: Box<HistoryError>,
    },
}

impl HistoryError {
    /// This error, said to be about the file `path`.
    pub fn in_file(self, path: impl Into<String>) -> HistoryError {
        match self {
            // I/O errors already name their path.
            e @ (HistoryError::Io { .. } | HistoryError::InFile { .. }) => e,
            e => HistoryError::InFile {
                path: path.into(),
                source: Box::new(e),
            },
        }
    }

    /// The 1-based line the error is about, if it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            HistoryError::Io { .. } => None,
            HistoryError::Parse { line, .. }
            | HistoryError::Semantics { line, .. }
            | HistoryError::Syntax { line, .. } => Some(*line),
            HistoryError::InFile { source, .. } => source.line(),
        }
    }
}
