//! quorate (the harness): the CLI and everything a run needs.
//!
//! - [`cmd`]: one module per subcommand (`run`, `check`), each `main(args) -> exit code`.
//! - [`backend`]: the [`backend::Cluster`] trait and its backends (`local`: child processes
//!   behind the fault proxy; `netns`: namespaces and firewall rules).
//! - [`proxy`]: the TCP fault proxy, one listener per directed link (drop, blackhole, delay,
//!   reset, heal).
pub mod backend;
pub mod cmd;
pub mod proxy;
