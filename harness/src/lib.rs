//! quorate (the harness): the CLI and everything a run needs.
//!
//! - [`cmd`]: one module per subcommand (`run`, `check`, `compare`, `serve`), each
//!   `main(args) -> exit code`.
//! - [`compare`]: configurations from a matrix, each run's figures pooled into the
//!   comparison table (md, html, json) and the staleness plot.
//! - [`plan`]: the run's configuration: `validate` (typed errors, no I/O), then `probe` (the
//!   machine: netns, the target's programs).
//! - [`workload`]: what clients do, one variant each with its generator, final reads, model
//!   and checks.
//! - [`runner`]: the phases of a run — cluster up, clients + nemesis, heal, quiet,
//!   convergence, final reads, cluster down.
//! - [`targets`]: the stores under test, one folder each — the node (its HTTP API, admin
//!   clock, ring, `/digest` and `/stats`) and Garage (S3 clients, admin-API set-up, libfaketime
//!   clock skew) — and the registry: their flags, capabilities and refusals.
//! - [`backend`]: the [`backend::Cluster`] trait and its backends (`local`: child processes
//!   behind the fault proxy; `netns`: namespaces and firewall rules).
//! - [`proxy`]: the TCP fault proxy, one listener per directed link (drop, blackhole, delay,
//!   reset, heal).
//! - [`nemesis`]: the seeded fault schedule and one file per fault.
//! - [`client`]: logical client processes and how a response becomes a history line.
//! - [`set_client`]: the set workload's adds and set reads, and the final read of every set.
//! - [`recorder`]: appends every event to `history.jsonl` as it happens.
//! - [`judge`]: reads the history back, checks it, shapes `results.json`, picks the exit code.
//! - [`store`]: the results folder layout and `results/latest`.
//! - [`junit`]: JUnit XML, one testcase per check.
//! - [`lazyfs`]: the `power-loss` fault's FUSE file system (unsynced writes in memory,
//!   dropped by a cut), its server (`quorate lazyfs`, hidden) and the harness's side of it.
//! - [`progress`]: the progress line on stderr.
//! - `testkit` (test builds only): an in-memory cluster and client API for unit tests.
pub mod backend;
pub mod client;
pub mod cmd;
pub mod compare;
pub mod judge;
pub mod junit;
pub mod lazyfs;
pub mod nemesis;
pub mod plan;
pub mod progress;
pub mod proxy;
pub mod recorder;
pub mod runner;
pub mod set_client;
pub mod store;
pub mod targets;
#[cfg(test)]
pub mod testkit;
pub mod workload;
