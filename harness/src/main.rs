//! `quorate`: one binary — `run`, `check`, `compare`, `serve`.
//!
//! Exit codes (INTERFACES.md): 0 valid, 1 invalid, 2 unknown, 3 error (bad flags included:
//! clap's own exit code 2 is overridden, since 2 means "unknown" here).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "quorate",
    version,
    about = "Jepsen-style fault testing for leaderless replication"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

// `run` has many flags; the enum is built once per process, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Start a cluster, inject faults while clients record a history, check it, store the run.
    Run(quorate::cmd::run::RunArgs),
    /// Check histories offline (quorate JSONL, Jepsen EDN, Porcupine logs).
    Check(quorate::cmd::check::CheckArgs),
    /// Run configurations × seeds and write one table (md, html, json) of what each costs.
    Compare(quorate::cmd::compare::CompareArgs),
    /// Browse the results store: runs and comparisons, newest first (read-only, loopback).
    Serve(quorate::cmd::serve::ServeArgs),
    /// The power-loss fault's file system server (started by `quorate run`, not by people).
    #[command(hide = true)]
    Lazyfs(quorate::lazyfs::LazyfsArgs),
    /// Internal: the link proxy `--backend ssh` runs on each host for `slow` and `flaky`.
    #[command(hide = true)]
    LinkProxy(quorate::backend::ssh::links::ProxyArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { 3 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match cli.cmd {
        Command::Run(args) => quorate::cmd::run::main(args),
        Command::Check(args) => quorate::cmd::check::main(args),
        Command::Compare(args) => quorate::cmd::compare::main(args),
        Command::Serve(args) => quorate::cmd::serve::main(args),
        Command::Lazyfs(args) => quorate::lazyfs::main(args),
        Command::LinkProxy(args) => quorate::backend::ssh::links::main(args),
    };
    ExitCode::from(code)
}
