//! quorate-checker: reads histories and judges them.
//!
//! The checker knows nothing of the harness: it audits any history, from anywhere.
//!
//! - [`history`]: the history format (HISTORY.md): events, ops, readers and writers.
pub mod history;
