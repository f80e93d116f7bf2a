//! quorate (the harness): the CLI and everything a run needs.
//!
//! - [`cmd`]: one module per subcommand (`run`, `check`), each `main(args) -> exit code`.
pub mod cmd;
