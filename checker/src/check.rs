//! Checking one history file end to end: read it in a format, pair its events into ops, run the
//! requested checks, and describe the result as INTERFACES.md's per-file JSON object and as a
//! short summary for people.
//!
//! This is the whole of `quorate check` except flag parsing and printing, so the harness reuses
//! it on the history of a run ([`check_history`], after `import::read_history`), and tests
//! drive it without a process ([`check_events`]).

use crate::history::{pair, Event, History, HistoryError, Outcome};
use crate::import::{self, Format};
use crate::linear::{self, LinearOptions, LinearResult, ModelError};
use crate::model::ModelKind;
use crate::quorum::{self, CheckResult, Example};
use crate::summary;
use crate::verdict::Verdict;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The checks `--checks` can name (INTERFACES.md); [`Check::AVAILABLE`] are those this version
/// runs (all of them); naming another is an error, not a silent skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    Linearizable,
    StaleReads,
    LostWrites,
    Sessions,
    Convergence,
    Set,
    /// Garage's `set2` rule (its `set-read-after-write` checker; Jepsen's set-full with
    /// `:linearizable? true`): the set counts of [`Check::Set`], and a stale element fails it.
    SetReadAfterWrite,
}

impl Check {
    /// Every check: the defaults, then those run only when named.
    pub const ALL: [Check; 7] = {
        let d = Check::DEFAULT;
        [d[0], d[1], d[2], d[3], d[4], d[5], Check::SetReadAfterWrite]
    };

    /// The checks this version implements.
    pub const AVAILABLE: [Check; 7] = Check::ALL;

    /// What runs when no check is named: every available one but `set-read-after-write`, which
    /// is asked for by name (as Jepsen's set-full is linearizable only when asked), so a set
    /// history's default verdict stays set-full's.
    pub const DEFAULT: [Check; 6] = [
        Check::Linearizable,
        Check::StaleReads,
        Check::LostWrites,
        Check::Sessions,
        Check::Convergence,
        Check::Set,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::Linearizable => "linearizable",
            Check::StaleReads => "stale-reads",
            Check::LostWrites => "lost-writes",
            Check::Sessions => "sessions",
            Check::Convergence => "convergence",
            Check::Set => "set",
            Check::SetReadAfterWrite => "set-read-after-write",
        }
    }

    /// Parse a comma-separated `--checks` list. Unknown names are errors that say which.
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
    /// Counters the linearizability check keeps current, for a progress display.
    pub progress: Option<std::sync::Arc<linear::Progress>>,
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
            progress: None,
        }
    }
}

/// Why a file could not be checked: it could not be read, or an op does not fit the model.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{file}: {source}{hint}", hint = model_hint(source, *model))]
    Model {
        file: String,
        model: ModelKind,
        #[source]
        source: ModelError,
    },
}

/// What a user can do about a model error: ops the model does not know are the history's
/// fault; a linearization that does not replay is the checker's (no hint: the message says so).
fn model_hint(source: &ModelError, model: ModelKind) -> String {
    if source.to_string().starts_with("checker bug") {
        String::new()
    } else {
        format!("; expected ops the {model} model knows")
    }
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
    /// Keys where no op completed ok (or as a cas mismatch): nothing for the search to judge.
    /// Counted and named in the check's JSON; when it is every key, `linearizable` is unknown.
    pub linear_unjudged: Vec<String>,
    /// The quorum checks that were asked for (or apply, by default): a result or why skipped.
    pub quorum: BTreeMap<Check, CheckResult>,
    /// Every anomaly every check found (the quorum checks' in full, each linearizability
    /// counterexample), in check order: what the report marks.
    pub anomalies: Vec<Anomaly>,
    /// Why the verdict is `unknown` regardless of the checks ("no client ops").
    pub reason: Option<String>,
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
    let explicit = !opts.checks.is_empty();
    let checks: &[Check] = if explicit {
        &opts.checks
    } else {
        &Check::DEFAULT
    };
    let mut valid = Verdict::Valid;
    let mut linearizable = None;
    let mut linear_unjudged = Vec::new();
    let mut quorum = BTreeMap::new();
    let mut reason = None;
    let mut anomalies = Vec::new();
    if history.ops.is_empty() {
        // Nothing was checked, so nothing holds: never valid.
        reason = Some("no client ops".to_string());
        valid = Verdict::Unknown;
    } else {
        let mut found = Vec::new();
        quorum::run::run_quorum(
            &history,
            model,
            opts,
            checks,
            explicit,
            &mut quorum,
            &mut found,
        );
        // Per op: the first anomaly the quorum checks know, for the linearizability sentence.
        let mut named: BTreeMap<u64, String> = BTreeMap::new();
        for (check, list) in found {
            for (at, example) in list {
                named.entry(at).or_insert_with(|| example.sentence.clone());
                anomalies.push(Anomaly { check, at, example });
            }
        }
        // Checks that give examples only (set): those.
        for (check, r) in &quorum {
            if anomalies.iter().any(|a| a.check == *check) {
                continue;
            }
            let examples = r.to_json()["examples"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for e in examples {
                let ops: Vec<u64> = e["ops"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                    .unwrap_or_default();
                let Some(&at) = ops.last() else { continue };
                anomalies.push(Anomaly {
                    check: *check,
                    at,
                    example: Example {
                        key: e["key"].as_str().unwrap_or_default().to_string(),
                        ops,
                        sentence: e["sentence"].as_str().unwrap_or_default().to_string(),
                    },
                });
            }
        }
        for r in quorum.values() {
            if let Some(v) = r.verdict() {
                valid = valid.and(v);
            }
        }
        if checks.contains(&Check::Linearizable) {
            let lin_opts = LinearOptions {
                model,
                initial: opts.initial.clone(),
                time_limit: opts.time_limit,
                memory_limit: opts.memory_limit,
                progress: opts.progress.clone(),
            };
            let mut result =
                linear::check(&history, &lin_opts).map_err(|source| CheckError::Model {
                    file: file.to_string(),
                    model,
                    source,
                })?;
            for (key, k) in result.keys.iter_mut() {
                if let Some(cx) = k.counterexample.as_mut() {
                    if let Some(sentence) = named.get(&cx.op) {
                        cx.explanation = name_anomaly(sentence, &cx.explanation);
                    }
                    anomalies.push(Anomaly {
                        check: Check::Linearizable,
                        at: cx.op,
                        example: Example {
                            key: key.clone(),
                            ops: cx.prefix.iter().copied().chain([cx.op]).collect(),
                            sentence: cx.explanation.clone(),
                        },
                    });
                }
            }
            linear_unjudged = unjudged_keys(&history);
            if linear_unjudged.len() == result.keys.len() && result.valid == Verdict::Valid {
                // Ops that may never have happened are linearizable trivially: no evidence.
                result.valid = Verdict::Unknown;
            }
            valid = valid.and(result.valid);
            linearizable = Some(result);
        }
        if linearizable.is_none() && quorum.values().all(|r| r.verdict().is_none()) {
            // Every check asked for said why it does not apply: nothing was judged.
            reason = Some(format!(
                "every check asked for was skipped ({})",
                names(&quorum.keys().copied().collect::<Vec<_>>())
            ));
            valid = Verdict::Unknown;
        }
    }
    Ok(FileReport {
        file: file.to_string(),
        format,
        model,
        history,
        linearizable,
        linear_unjudged,
        quorum,
        anomalies,
        reason,
        valid,
        elapsed: start.elapsed(),
    })
}

/// The keys with no op that completed ok or as a cas mismatch: every op there may or may not
/// have happened (`info`) or certainly did not (`fail`), so no order of them can be wrong.
fn unjudged_keys(history: &History) -> Vec<String> {
    history
        .by_key()
        .into_iter()
        .filter(|(_, ops)| {
            !ops.iter()
                .any(|op| matches!(op.outcome, Outcome::Ok | Outcome::Mismatch))
        })
        .map(|(key, _)| key.to_string())
        .collect()
}

/// The linearizability sentence, naming the anomaly a quorum check found on the same op: a
/// generic "cannot take effect" becomes the quorum check's sentence ("stale read: read (op 7)
/// began 12 ms after write op 9 completed, …"); a specific one gets the anomaly's name in front
/// ("lost write: read of 1 at 0.220 s returned a value overwritten by …").
fn name_anomaly(quorum_sentence: &str, explanation: &str) -> String {
    if explanation.contains("cannot take effect") {
        return quorum_sentence.to_string();
    }
    match quorum_sentence.split_once(": ") {
        Some((name, _)) => format!("{name}: {explanation}"),
        None => explanation.to_string(),
    }
}

/// The model when `--model` is not given: `kv` for kv histories, `set` for histories with
/// `add` ops (the set workload), else `cas-register`.
pub fn default_model(format: Format, history: &History) -> ModelKind {
    let kv_ops = |f: &str| matches!(f, "get" | "put" | "append");
    if format == Format::PorcupineKv || history.ops.iter().any(|op| kv_ops(&op.f)) {
        ModelKind::Kv
    } else if history.ops.iter().any(|op| op.f == "add") {
        ModelKind::Set
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
            let mut v =
                serde_json::to_value(lin).unwrap_or_else(|e| json!({"error": e.to_string()}));
            let none = (lin.valid == Verdict::Unknown
                && self.linear_unjudged.len() == lin.keys.len())
            .then_some("no op completed ok");
            quorum::note_unjudged(&mut v, none, self.linear_unjudged.clone());
            checks.insert("linearizable".into(), v);
        }
        for (check, r) in &self.quorum {
            checks.insert(check.name().into(), r.to_json());
        }
        let ms = self.elapsed.as_secs_f64() * 1e3;
        let mut out = json!({
            "file": self.file,
            "valid": self.valid,
            "ops": self.ops(),
            "elapsed_ms": (ms * 1000.0).round() / 1000.0,
            "checks": checks,
            "format": self.format.name(),
            "model": self.model.to_string(),
        });
        if let Some(reason) = &self.reason {
            out["reason"] = json!(reason);
        }
        if let Some(cut) = &self.history.truncated {
            out["truncated"] = json!(cut);
        }
        out
    }

    /// The exit code of this file alone (0 valid, 1 invalid, 2 unknown).
    pub fn exit_code(&self) -> u8 {
        self.valid.exit_code()
    }

    /// A short summary for people: the verdict line (and, for a file whose last line was cut
    /// off, where), then [`summary::checks`]: each check's verdict with its counts; over many
    /// keys, "67 of 480 keys invalid" and then the keys in natural order (k2 before k10), each
    /// not-valid key with its reason.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let keys = self.history.by_key().len();
        let _ = write!(
            out,
            "{}: {} — {} ops, {} key{} ({}, {}), {:.1} ms",
            self.file,
            summary::word(&json!(self.valid)),
            self.ops(),
            keys,
            if keys == 1 { "" } else { "s" },
            self.format,
            self.model,
            self.elapsed.as_secs_f64() * 1e3
        );
        match &self.reason {
            Some(reason) => {
                let _ = writeln!(out, " ({reason})");
            }
            None => out.push('\n'),
        }
        out.push_str(&summary::checks(&self.to_json()));
        out
    }
}

/// One anomaly of a checked file: the check that found it, the op it shows at, and the ops
/// and sentence that explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub check: Check,
    pub at: u64,
    pub example: Example,
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
        assert_eq!(
            Check::parse_list("stale-reads,linearizable,stale-reads").unwrap(),
            [Check::StaleReads, Check::Linearizable]
        );
        let e = Check::parse_list("bogus").unwrap_err();
        assert!(e.contains("unknown check \"bogus\""), "{e}");
        assert!(Check::parse_list("linearizable,").is_err());
    }
}
