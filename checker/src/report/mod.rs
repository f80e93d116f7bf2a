//! Reports of a checked history, for people: files that open in a browser with nothing else
//! installed. The harness writes them beside each run's `results.json`; `quorate check --out`
//! writes them for any history.
//!
//! - [`timeline`]: `timeline.html` — ops as bars per process over time, faults shaded, each
//!   invalid key's counterexample marked.
pub mod timeline;
