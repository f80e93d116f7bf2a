//! Fakes for unit tests that need no cluster (test builds only): [`cluster::FakeCluster`], the
//! backend's [`crate::backend::Cluster`] and the targets' [`crate::target::Clock`] in memory,
//! and [`target::FakeTarget`], a system under test whose client API ([`target::FakeApi`])
//! answers from a map, for the runner and the clients. They sit beside the
//! real-process tests (`harness/tests/`), which stay: those prove the faults are real, these
//! pin down what the nemesis and the runner do with each call and each failure, under tokio's
//! paused clock.

pub mod cluster;
pub mod target;

pub use cluster::FakeCluster;
pub use target::{FakeApi, FakeTarget};

use crate::recorder::Recorder;
use serde_json::Value;
use std::sync::Arc;

/// A recorder writing into `dir`, and a way to read back what it wrote.
pub fn recorder(dir: &std::path::Path) -> Arc<Recorder> {
    Arc::new(Recorder::create(&dir.join("history.jsonl")).expect("create the test history"))
}

/// Every line of `dir`'s history, parsed.
pub fn history(dir: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("history.jsonl")).expect("read the test history");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a history line is JSON"))
        .collect()
}
