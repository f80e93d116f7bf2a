//! quorate's own history file: JSON Lines, one [`Event`] per line (HISTORY.md).
//!
//! Reading assigns `index` where it is absent and holds the file to the format's ordering rules
//! ([`Numbering::strict`]); fields the format does not name are kept in [`Event::extra`].
//! Blank lines hold no event and are passed over (an editor's trailing newline is not an error).
//! Writing is the inverse: `write_events(read(text))` gives the same events back.
//! A last line cut off mid-write is the one bad line [`read_each`] passes over, and says so
//! ([`Truncated`]).

use super::numbering::Numbering;
use super::{Event, HistoryError};
use std::io::{self, Write};

/// What a line must be, said in every parse error.
const EXPECTED: &str =
    "expected one JSON object per line with \"process\", \"type\" and \"f\" (HISTORY.md)";

/// Where a history's last line was cut off: what a writer killed mid-line leaves (the file ends
/// without a newline, inside a JSON object). The history is the lines before it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Truncated {
    /// The cut-off line's number (1-based).
    pub line: usize,
    /// How many bytes of it the file holds (all of them left out).
    pub bytes: usize,
    /// What the JSON parser said about it ("column 61: EOF while parsing an object; …").
    #[serde(skip)]
    pub message: String,
}

impl Truncated {
    /// The same line as an error, for a reader that must have every line.
    pub fn into_error(self) -> HistoryError {
        HistoryError::Parse {
            line: self.line,
            message: format!(
                "{} (the file ends inside this line: cut off while being written?)",
                self.message
            ),
        }
    }
}

/// Read a whole JSONL history from text. Every line must be whole: a cut-off last line is an
/// error here (see [`read_each`] for the reader that checks up to it).
pub fn read(text: &str) -> Result<Vec<Event>, HistoryError> {
    let mut events = Vec::new();
    let cut = read_each(text, |ev, _| {
        events.push(ev);
        Ok(())
    })?;
    match cut {
        Some(cut) => Err(cut.into_error()),
        None => Ok(events),
    }
}

/// Read a JSONL history event by event, handing each (numbered) event and its 1-based line to
/// `sink`, so a caller can pair a big history without holding all its events at once.
///
/// A last line that fails only because the input ended there (the file does not end in a
/// newline, and the JSON parser ran out of input: serde_json's EOF class) is not an error: the
/// events before it are the history, and the cut is returned. Any other bad line, the last one
/// included, is an error.
pub fn read_each(
    text: &str,
    mut sink: impl FnMut(Event, usize) -> Result<(), HistoryError>,
) -> Result<Option<Truncated>, HistoryError> {
    let mut numbering = Numbering::strict();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let line = i + 1;
        let body = raw.strip_suffix('\r').unwrap_or(raw);
        if body.trim().is_empty() {
            continue;
        }
        // Only the piece after the last newline can be unfinished.
        let unterminated = lines.peek().is_none();
        let mut ev = match parse_line(body) {
            Ok(ev) => ev,
            Err(bad) if unterminated && bad.input_ended => {
                return Ok(Some(Truncated {
                    line,
                    bytes: raw.len(),
                    message: bad.message,
                }))
            }
            Err(bad) => {
                return Err(HistoryError::Parse {
                    line,
                    message: bad.message,
                })
            }
        };
        numbering.number(&mut ev, line)?;
        sink(ev, line)?;
    }
    Ok(None)
}

/// Why a line is not an event.
struct BadLine {
    /// What was wrong and what was expected.
    message: String,
    /// The line ended before its JSON did (serde_json's EOF class), as a cut-off line does.
    input_ended: bool,
}

/// Parse one line into an event; the error says what was wrong and what was expected.
fn parse_line(body: &str) -> Result<Event, BadLine> {
    if !body.trim_start().starts_with('{') {
        let found: String = body.trim_start().chars().take(24).collect();
        return Err(BadLine {
            message: format!("found {found:?}; {EXPECTED}"),
            input_ended: false,
        });
    }
    serde_json::from_str::<Event>(body).map_err(|e| {
        // serde_json appends " at line 1 column N"; within one line only the column helps.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let what = full.strip_suffix(&suffix).unwrap_or(&full);
        BadLine {
            message: format!("column {}: {what}; {EXPECTED}", e.column()),
            input_ended: e.is_eof(),
        }
    })
}

/// One event as one JSONL line, without the newline.
pub fn to_line(ev: &Event) -> String {
    // An Event holds only strings, numbers and JSON values with string keys: serialising it
    // cannot fail.
    serde_json::to_string(ev).expect("an Event always serialises to JSON")
}

/// Write events as JSONL, one line each, in order.
pub fn write_events<W: Write>(mut w: W, events: &[Event]) -> io::Result<()> {
    for ev in events {
        serde_json::to_writer(&mut w, ev)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}
