//! Reading history files: quorate's JSONL and the imports (Jepsen EDN, Porcupine logs).
//!
//! - [`edn`]: a small EDN reader (Clojure's data notation), used by the EDN-based formats.
//! - [`jepsen`]: Jepsen's and Knossos's `history.edn`.
//! - [`porcupine_etcd`]: Porcupine's Jepsen etcd logs.
//! - [`porcupine_kv`]: Porcupine's key-value logs.
//! - JSONL itself lives in [`crate::history::jsonl`]; this module picks the reader
//!   ([`Format`], [`detect`]) and puts the file's name on every error ([`read_path`]).
//!
//! Every reader returns events in line order with `index` assigned, or an error naming the line
//! and what was expected; none panics on any input (see `tests/io_fuzz.rs`).

pub mod edn;
pub mod jepsen;
pub mod porcupine_etcd;
pub mod porcupine_kv;

use crate::history::{jsonl, pair_owned, Event, History, HistoryError, Pairer};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Recognise the format from the content.
    Auto,
    Jsonl,
    JepsenEdn,
    PorcupineEtcd,
    PorcupineKv,
}

impl Format {
    /// Every format, as `--format` names them.
    pub const ALL: [Format; 5] = [
        Format::Auto,
        Format::Jsonl,
        Format::JepsenEdn,
        Format::PorcupineEtcd,
        Format::PorcupineKv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Jsonl => "jsonl",
            Format::JepsenEdn => "jepsen-edn",
            Format::PorcupineEtcd => "porcupine-etcd",
            Format::PorcupineKv => "porcupine-kv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Format::Auto),
            "jsonl" => Ok(Format::Jsonl),
            "jepsen-edn" => Ok(Format::JepsenEdn),
            "porcupine-etcd" => Ok(Format::PorcupineEtcd),
            "porcupine-kv" => Ok(Format::PorcupineKv),
            other => Err(format!(
                "unknown format {other:?}; expected auto, jsonl, jepsen-edn, porcupine-etcd or porcupine-kv"
            )),
        }
    }
}

/// Read a history file into events, in line order. Errors start with the file's path.
pub fn read_path(path: &Path, format: Format) -> Result<Vec<Event>, HistoryError> {
    read_path_as(path, format).map(|(events, _)| events)
}

/// Like [`read_path`], and also says which format was read (what `auto` recognised).
pub fn read_path_as(path: &Path, format: Format) -> Result<(Vec<Event>, Format), HistoryError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| HistoryError::Io {
        path: name.clone(),
        source,
    })?;
    read_bytes(&bytes, format).map_err(|e| e.in_file(name))
}

/// Read a history file straight into ops: what checking a file needs. Unlike
/// [`read_path`] followed by [`pair`](crate::history::pair), a JSONL history is paired as it
/// is parsed, so its events never all exist at once (a million-op history then needs about
/// half the memory), and pairing errors name the file's real line. A JSONL file whose last
/// line was cut off mid-write is read up to it, and `History::truncated` says where; the
/// event readers ([`read_path`] …) refuse such a file.
pub fn read_history(path: &Path, format: Format) -> Result<(History, Format), HistoryError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| HistoryError::Io {
        path: name.clone(),
        source,
    })?;
    history_from_bytes(&bytes, format).map_err(|e| e.in_file(name))
}

/// [`read_history`] for a history held in memory.
pub fn history_from_bytes(bytes: &[u8], format: Format) -> Result<(History, Format), HistoryError> {
    // A writer killed mid-line may have cut a character in two: set its bytes apart, and let
    // the JSONL reader decide whether the line they end is cut off.
    let (text, unfinished) = match std::str::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) if e.error_len().is_none() => (utf8(&bytes[..e.valid_up_to()])?, Some(e)),
        Err(e) => return Err(not_utf8(bytes, e)),
    };
    let format = match format {
        Format::Auto => detect(text)?,
        f => f,
    };
    if format == Format::Jsonl {
        // About 100 bytes a line.
        let mut pairer = Pairer::with_capacity(text.len() / 100);
        let truncated = jsonl::read_each(text, |ev, line| pairer.push_line(ev, line))?;
        let mut history = pairer.finish();
        history.truncated = match (truncated, unfinished) {
            (cut, None) => cut,
            (Some(mut cut), Some(e)) => {
                cut.bytes += bytes.len() - e.valid_up_to();
                Some(cut)
            }
            // After a whole line: bytes that are no event, whatever they were cut from.
            (None, Some(e)) => return Err(not_utf8(bytes, e)),
        };
        return Ok((history, format));
    }
    if let Some(e) = unfinished {
        return Err(not_utf8(bytes, e));
    }
    let (events, format) = read_str(text, format)?;
    Ok((pair_owned(events)?, format))
}

/// Read a history held in memory. Returns the events and the format read.
pub fn read_bytes(bytes: &[u8], format: Format) -> Result<(Vec<Event>, Format), HistoryError> {
    read_str(utf8(bytes)?, format)
}

/// The bytes as text, or an error naming the line and column where they stop being UTF-8.
fn utf8(bytes: &[u8]) -> Result<&str, HistoryError> {
    std::str::from_utf8(bytes).map_err(|e| not_utf8(bytes, e))
}

/// Where `bytes` stop being UTF-8, as an error naming the line and column.
fn not_utf8(bytes: &[u8], e: std::str::Utf8Error) -> HistoryError {
    let (line, column) = edn::locate(
        // The valid prefix is text; locate within it.
        std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        e.valid_up_to(),
    );
    HistoryError::Syntax {
        line,
        column,
        message: "bytes that are not UTF-8; expected a text file".into(),
    }
}

/// Read a history held as text. Returns the events and the format read.
pub fn read_str(text: &str, format: Format) -> Result<(Vec<Event>, Format), HistoryError> {
    let format = match format {
        Format::Auto => detect(text)?,
        f => f,
    };
    let events = match format {
        Format::Jsonl => jsonl::read(text)?,
        Format::JepsenEdn => jepsen::read(text)?,
        Format::PorcupineEtcd => porcupine_etcd::read(text)?,
        Format::PorcupineKv => porcupine_kv::read(text)?,
        Format::Auto => unreachable!("auto was resolved above"),
    };
    Ok((events, format))
}

/// Recognise a history's format from its first meaningful line:
/// - `{"…` → JSONL;
/// - `… jepsen.util - …` → a Porcupine etcd log;
/// - `{:…` with a `:key` and an `:f` of `:get`, `:put` or `:append` → a Porcupine kv log;
/// - any other EDN map, vector or list (`{:`, `[`, `(`, `#`) → Jepsen EDN.
///
/// An empty file is an empty JSONL history.
pub fn detect(text: &str) -> Result<Format, HistoryError> {
    let mut first = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start_matches(|c: char| c.is_whitespace() || c == ',' || c == '\u{feff}');
        if t.is_empty() || t.starts_with(';') {
            continue;
        }
        first = Some((i + 1, t));
        break;
    }
    let Some((line, t)) = first else {
        return Ok(Format::Jsonl);
    };
    if t.contains("jepsen.util") {
        return Ok(Format::PorcupineEtcd);
    }
    if let Some(after) = t.strip_prefix('{') {
        let after = after.trim_start();
        if after.starts_with('"') || after.starts_with('}') {
            return Ok(Format::Jsonl);
        }
        if after.starts_with(':') {
            let kv = t.contains(":key ")
                && porcupine_kv::KV_OPS
                    .iter()
                    .any(|op| t.contains(&format!(":f :{op}")));
            return Ok(if kv {
                Format::PorcupineKv
            } else {
                Format::JepsenEdn
            });
        }
    }
    if t.starts_with(['[', '(', '#', '{']) {
        return Ok(Format::JepsenEdn);
    }
    let quote: String = t.chars().take(30).collect();
    Err(HistoryError::Parse {
        line,
        message: format!(
            "cannot tell the format from {quote:?}; expected JSONL ({{\"process\": …}}), Jepsen EDN ({{:process …}} or [{{…}} …]), a Porcupine etcd log (INFO jepsen.util - …) or a Porcupine kv log; or give --format"
        ),
    })
}
