//! Reading histories: quorate's JSONL and the imports (Jepsen EDN, Porcupine logs).
//!
//! STUB written by the lead: `Format` and `read_path` are the seam the I/O side fills in and
//! the search side's tests call. Keep their signatures.

use crate::history::{Event, HistoryError};
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

/// Read a history file into events, in line order.
pub fn read_path(path: &Path, format: Format) -> Result<Vec<Event>, HistoryError> {
    let _ = format;
    Err(HistoryError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other("importers not written yet"),
    })
}
