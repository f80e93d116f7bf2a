//! quorate's own history file: JSON Lines, one [`Event`] per line (HISTORY.md).
//!
//! Reading assigns `index` where it is absent and holds the file to the format's ordering rules
//! ([`Numbering::strict`]); fields the format does not name are kept in [`Event::extra`].
//! Blank lines hold no event and are passed over (an editor's trailing newline is not an error).
//! Writing is the inverse: `write_events(read(text))` gives the same events back.

use super::numbering::Numbering;
use super::{Event, HistoryError};
use std::io::{self, Write};

/// What a line must be, said in every parse error.
const EXPECTED: &str =
    "expected one JSON object per line with \"process\", \"type\" and \"f\" (HISTORY.md)";

/// Read a whole JSONL history from text.
pub fn read(text: &str) -> Result<Vec<Event>, HistoryError> {
    let mut events = Vec::new();
    read_each(text, |ev, _| {
        events.push(ev);
        Ok(())
    })?;
    Ok(events)
}

/// Read a JSONL history event by event, handing each (numbered) event and its 1-based line to
/// `sink`, so a caller can pair a big history without holding all its events at once.
pub fn read_each(
    text: &str,
    mut sink: impl FnMut(Event, usize) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    let mut numbering = Numbering::strict();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let body = raw.strip_suffix('\r').unwrap_or(raw);
        if body.trim().is_empty() {
            continue;
        }
        let mut ev = parse_line(body).map_err(|message| HistoryError::Parse { line, message })?;
        numbering.number(&mut ev, line)?;
        sink(ev, line)?;
    }
    Ok(())
}

/// Parse one line into an event; the error says what was wrong and what was expected.
fn parse_line(body: &str) -> Result<Event, String> {
    if !body.trim_start().starts_with('{') {
        let found: String = body.trim_start().chars().take(24).collect();
        return Err(format!("found {found:?}; {EXPECTED}"));
    }
    serde_json::from_str::<Event>(body).map_err(|e| {
        // serde_json appends " at line 1 column N"; within one line only the column helps.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let what = full.strip_suffix(&suffix).unwrap_or(&full);
        format!("column {}: {what}; {EXPECTED}", e.column())
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
