//! Checking one history file end to end: read it in a format, pair its events into ops, run the
//! requested checks, and describe the result as INTERFACES.md's per-file JSON object and as a
//! short summary for people.
//!
//! This is the whole of `quorate check` except flag parsing and printing, so the harness reuses
//! it on the history of a run ([`check_events`]) and tests drive it without a process.

use crate::history::{pair, Event, History, HistoryError};
use crate::import::{self, Format};
use crate::linear::{self, LinearOptions, LinearResult, ModelError};
use crate::model::ModelKind;
use crate::verdict::Verdict;
use serde_json::{json, Map, Value};
use std::fmt::{self, Write as _};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The checks `--checks` can name (INTERFACES.md). Only those in [`Check::AVAILABLE`] run in
/// this version; naming another is an error, not a silent skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    Linearizable,
    StaleReads,
    LostWrites,
    Sessions,
    Convergence,
    Set,
}

impl Check {
    pub const ALL: [Check; 6] = [
        Check::Linearizable,
        Check::StaleReads,
        Check::LostWrites,
        Check::Sessions,
        Check::Convergence,
        Check::Set,
    ];

    /// The checks this version implements.
    pub const AVAILABLE: [Check; 1] = [Check::Linearizable];

    pub fn name(self) -> &'static str {
        match self {
            Check::Linearizable => "linearizable",
            Check::StaleReads => "stale-reads",
            Check::LostWrites => "lost-writes",
            Check::Sessions => "sessions",
            Check::Convergence => "convergence",
            Check::Set => "set",
        }
    }

    /// Parse a comma-separated `--checks` list. Unknown names and names of checks this version
    /// does not have are errors that say which.
    pub fn parse_list(list: &str) -> Result<Vec<Check>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(format!(
                    "--checks {list:?} has an empty name; expected a comma-separated list such as linearizable"
                ));
            }
            let check: Check = name.parse()?;
            if !Check::AVAILABLE.contains(&check) {
                return Err(format!(
                    "the check {name:?} is not available in this version of quorate; available: {}",
                    names(&Check::AVAILABLE)
                ));
            }
            if !out.contains(&check) {
                out.push(check);
            }
        }
        Ok(out)
    }
}

fn names(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Check {
    type Err = String;
    fn from_str(s: &str) -> Result<Check, String> {
        Check::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown check {s:?}; expected one of {}",
                    names(&Check::ALL)
                )
            })
    }
}

/// What to check and how (the flags of `quorate check`).
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// How to read the file. Default: recognise it.
    pub format: Format,
    /// `None`: `kv` for kv histories (Porcupine kv logs, or ops named get/put/append), else
    /// `cas-register`.
    pub model: Option<ModelKind>,
    /// A register's starting value; default none (a read of `null` matches it).
    pub initial: Option<Value>,
    /// Checks to run; empty means the default (every available check that applies).
    pub checks: Vec<Check>,
    /// Checking budget per key. Default 60 s.
    pub time_limit: Duration,
    /// Memory budget per key for the search, in bytes. Default 512 MiB.
    pub memory_limit: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        let lin = LinearOptions::default();
        CheckOptions {
            format: Format::Auto,
            model: None,
            initial: None,
            checks: Vec::new(),
            time_limit: lin.time_limit,
            memory_limit: lin.memory_limit,
        }
    }
}

/// Why a file could not be checked: it could not be read, or an op does not fit the model.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{file}: {source}; expected ops the {model} model knows")]
    Model {
        file: String,
        model: ModelKind,
        #[source]
        source: ModelError,
    },
}

/// A checked file: the history and what each check said.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file as named on the command line.
    pub file: String,
    /// The format read (what `auto` recognised).
    pub format: Format,
    pub model: ModelKind,
    pub history: History,
    /// `None` when the linearizable check was not asked for.
    pub linearizable: Option<LinearResult>,
    /// All checks combined: invalid > unknown > valid.
    pub valid: Verdict,
    /// Reading plus checking.
    pub elapsed: Duration,
}

/// Read and check one file.
pub fn check_file(path: &Path, opts: &CheckOptions) -> Result<FileReport, CheckError> {
    let start = Instant::now();
    let file = path.display().to_string();
    // Paired while read: the events of a big history are never all held at once.
    let (history, format) = import::read_history(path, opts.format)?;
    let mut report = check_history(&file, history, format, opts)?;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Check events already read (a run's own history, say). `file` names them in the results.
pub fn check_events(
    file: &str,
    events: &[Event],
    format: Format,
    opts: &CheckOptions,
) -> Result<FileReport, CheckError> {
    let start = Instant::now();
    let history = pair(events).map_err(|e| e.in_file(file))?;
    let mut report = check_history(file, history, format, opts)?;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Check a paired history. `format` is what it was read as (it picks the default model).
pub fn check_history(
    file: &str,
    history: History,
    format: Format,
    opts: &CheckOptions,
) -> Result<FileReport, CheckError> {
    let start = Instant::now();
    let model = opts
        .model
        .unwrap_or_else(|| default_model(format, &history));
    let checks: &[Check] = if opts.checks.is_empty() {
        &Check::AVAILABLE
    } else {
        &opts.checks
    };
    let mut valid = Verdict::Valid;
    let mut linearizable = None;
    if checks.contains(&Check::Linearizable) {
        let lin_opts = LinearOptions {
            model,
            initial: opts.initial.clone(),
            time_limit: opts.time_limit,
            memory_limit: opts.memory_limit,
        };
        let result = linear::check(&history, &lin_opts).map_err(|source| CheckError::Model {
            file: file.to_string(),
            model,
            source,
        })?;
        valid = valid.and(result.valid);
        linearizable = Some(result);
    }
    Ok(FileReport {
        file: file.to_string(),
        format,
        model,
        history,
        linearizable,
        valid,
        elapsed: start.elapsed(),
    })
}

/// The model when `--model` is not given: `kv` for kv histories, else `cas-register`.
pub fn default_model(format: Format, history: &History) -> ModelKind {
    let kv_ops = |f: &str| matches!(f, "get" | "put" | "append");
    if format == Format::PorcupineKv || history.ops.iter().any(|op| kv_ops(&op.f)) {
        ModelKind::Kv
    } else {
        ModelKind::CasRegister
    }
}

impl FileReport {
    /// Client invokes in the file.
    pub fn ops(&self) -> usize {
        self.history.ops.len()
    }

    /// INTERFACES.md's per-file object: `file`, `valid`, `ops`, `elapsed_ms`, `checks`, then
    /// (an extension) the `format` read and the `model` used.
    pub fn to_json(&self) -> Value {
        let mut checks = Map::new();
        if let Some(lin) = &self.linearizable {
            // LinearResult serialises as the contract's `{"valid", "keys": {…}}`.
            checks.insert(
                "linearizable".into(),
                serde_json::to_value(lin).unwrap_or_else(|e| json!({"error": e.to_string()})),
            );
        }
        let ms = self.elapsed.as_secs_f64() * 1e3;
        json!({
            "file": self.file,
            "valid": self.valid,
            "ops": self.ops(),
            "elapsed_ms": (ms * 1000.0).round() / 1000.0,
            "checks": checks,
            "format": self.format.name(),
            "model": self.model.to_string(),
        })
    }

    /// The exit code of this file alone (0 valid, 1 invalid, 2 unknown).
    pub fn exit_code(&self) -> u8 {
        self.valid.exit_code()
    }

    /// A short summary for people: the verdict line, then one line per key that is not valid.
    pub fn summary(&self) -> String {
        let verdict = match self.valid {
            Verdict::Valid => "valid",
            Verdict::Invalid => "INVALID",
            Verdict::Unknown => "unknown",
        };
        let mut out = String::new();
        let keys = self.linearizable.as_ref().map_or(0, |l| l.keys.len());
        let _ = writeln!(
            out,
            "{}: {verdict} — {} ops, {} key{} ({}, {}), {:.1} ms",
            self.file,
            self.ops(),
            keys,
            if keys == 1 { "" } else { "s" },
            self.format,
            self.model,
            self.elapsed.as_secs_f64() * 1e3
        );
        if let Some(lin) = &self.linearizable {
            for (key, r) in &lin.keys {
                let name = if key.is_empty() {
                    "the history".to_string()
                } else {
                    format!("key {key:?}")
                };
                match (r.valid, &r.counterexample, &r.reason) {
                    (Verdict::Valid, _, _) => {}
                    (Verdict::Invalid, Some(cx), _) => {
                        let _ = writeln!(
                            out,
                            "  {name}: not linearizable at op {}: {}",
                            cx.op, cx.explanation
                        );
                    }
                    (Verdict::Invalid, None, _) => {
                        let _ = writeln!(out, "  {name}: not linearizable");
                    }
                    (Verdict::Unknown, _, reason) => {
                        let _ = writeln!(
                            out,
                            "  {name}: unknown ({})",
                            reason.as_deref().unwrap_or("the search gave up")
                        );
                    }
                }
            }
        }
        out
    }
}

/// One file's outcome: checked, or an error (unreadable, or ops the model does not know).
#[derive(Debug)]
pub enum FileOutcome {
    Checked(Box<FileReport>),
    Error { file: String, error: String },
}

impl FileOutcome {
    /// Check `path`; an error becomes [`FileOutcome::Error`] so other files still get checked.
    pub fn of(path: &Path, opts: &CheckOptions) -> FileOutcome {
        match check_file(path, opts) {
            Ok(r) => FileOutcome::Checked(Box::new(r)),
            Err(e) => FileOutcome::Error {
                file: path.display().to_string(),
                error: e.to_string(),
            },
        }
    }

    /// The per-file JSON object; `{"file", "error"}` for an error.
    pub fn to_json(&self) -> Value {
        match self {
            FileOutcome::Checked(r) => r.to_json(),
            FileOutcome::Error { file, error } => json!({"file": file, "error": error}),
        }
    }

    /// 0 valid, 1 invalid, 2 unknown, 3 error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FileOutcome::Checked(r) => r.exit_code(),
            FileOutcome::Error { .. } => 3,
        }
    }

    pub fn summary(&self) -> String {
        match self {
            FileOutcome::Checked(r) => r.summary(),
            FileOutcome::Error { error, .. } => format!("error: {error}\n"),
        }
    }
}

/// Combine exit codes over several files: error (3) > invalid (1) > unknown (2) > valid (0).
pub fn combine_exit_codes(codes: impl IntoIterator<Item = u8>) -> u8 {
    let rank = |c: u8| match c {
        0 => 0,
        2 => 1,
        1 => 2,
        _ => 3,
    };
    codes.into_iter().max_by_key(|&c| rank(c)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_combine_error_invalid_unknown_valid() {
        assert_eq!(combine_exit_codes([]), 0);
        assert_eq!(combine_exit_codes([0, 2, 0]), 2);
        assert_eq!(combine_exit_codes([2, 1, 0]), 1);
        assert_eq!(combine_exit_codes([1, 3, 2]), 3);
    }

    #[test]
    fn checks_list_rejects_unknown_and_unavailable_names() {
        assert_eq!(
            Check::parse_list("linearizable").unwrap(),
            [Check::Linearizable]
        );
        let e = Check::parse_list("linearizable,stale-reads").unwrap_err();
        assert!(e.contains("\"stale-reads\" is not available"), "{e}");
        let e = Check::parse_list("bogus").unwrap_err();
        assert!(e.contains("unknown check \"bogus\""), "{e}");
        assert!(Check::parse_list("linearizable,").is_err());
    }
}
