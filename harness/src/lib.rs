//! quorate (the harness): the CLI and everything a run needs.
//!
//! - [`cmd`]: one module per subcommand (`run`, `check`, `compare`, `serve`), each
//!   `main(args) -> exit code`.
//! - [`compare`]: configurations from a matrix, each run's figures pooled into the
//!   comparison table (md, html, json) and the staleness plot.
//! - [`runner`]: the phases of a run — cluster up, clients + nemesis, heal, quiet,
//!   convergence, final reads, cluster down.
//! - [`target`]: the system under test — the node, or Garage (S3 clients, admin-API set-up,
//!   libfaketime clock skew): how its members start, join, are spoken to and skewed.
//! - [`backend`]: the [`backend::Cluster`] trait and its backends (`local`: child processes
//!   behind the fault proxy; `netns`: namespaces and firewall rules).
//! - [`proxy`]: the TCP fault proxy, one listener per directed link (drop, blackhole, delay,
//!   reset, heal).
//! - [`nemesis`]: the seeded fault schedule and one file per fault.
//! - [`convergence`]: the `convergence` observation (which keys' replicas differ, where).
//! - [`client`]: logical client processes and how a response becomes a history line.
//! - [`set_client`]: the set workload's adds and set reads, and the final read of every set.
//! - [`node_stats`]: the nodes' `/stats` at the end of a run, and which repairs they show.
//! - [`recorder`]: appends every event to `history.jsonl` as it happens.
//! - [`ring`]: the node's consistent-hash ring, so faults can aim at a key's home nodes.
//! - [`judge`]: reads the history back, checks it, shapes `results.json`, picks the exit code.
//! - [`store`]: the results folder layout and `results/latest`.
//! - [`junit`]: JUnit XML, one testcase per check.
//! - [`progress`]: the progress line on stderr.
//! - `testkit` (test builds only): an in-memory cluster and client API for unit tests.
pub mod backend;
pub mod client;
pub mod cmd;
pub mod compare;
pub mod convergence;
pub mod judge;
pub mod junit;
pub mod nemesis;
pub mod node_stats;
pub mod progress;
pub mod proxy;
pub mod recorder;
pub mod ring;
pub mod runner;
pub mod set_client;
pub mod store;
pub mod target;
#[cfg(test)]
pub mod testkit;
