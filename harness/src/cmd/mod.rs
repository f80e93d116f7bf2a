//! Subcommands. Each returns the process exit code (INTERFACES.md: 0 valid, 1 invalid,
//! 2 unknown, 3 error).
pub mod check;
pub mod compare;
pub mod hunt;
pub mod run;
pub mod serve;
