//! Porcupine's etcd logs (`jepsen/etcd_NNN.log`): Jepsen's log lines for one etcd register,
//! `INFO  jepsen.util - 3 :invoke :cas [1 2]`, fields separated by tabs in some files, by spaces in others.
//!
//! Semantics as Porcupine reads them (data/porcupine/README.md):
//! - `:invoke`/`:ok` of `:read` (`nil` or a value), `:write N`, `:cas [FROM TO]`;
//! - `:fail :cas [FROM TO]`: the compare did not match — an observation, written as HISTORY.md's
//!   `fail` with `error: "mismatch"`; a `:fail` of anything else with a value did not happen;
//! - `:fail :read :timed-out` and every `:info`: the outcome is unknown → `info`, with the
//!   keyword as `error`; an unknown outcome's value repeats its invoke's (HISTORY.md).
//! - `:nemesis` lines become nemesis events. There is no key: the history is one register.
//!
//! Fast path: no regex, one pass over the line's bytes, and the value (usually `nil`, a number
//! or a pair) read by the EDN reader only when it is not a plain number.

use super::edn::{self, Edn};
use crate::history::numbering::Numbering;
use crate::history::{Event, EventType, HistoryError, Process};
use serde_json::Value;
use std::collections::HashMap;

const EXPECTED: &str =
    "expected a Jepsen log line such as `INFO  jepsen.util - 3 :invoke :write 4`";

/// Read a Porcupine etcd log.
pub fn read(text: &str) -> Result<Vec<Event>, HistoryError> {
    // Lines are about 40 bytes: one allocation for the whole file, usually.
    let mut events = Vec::with_capacity(text.len() / 36 + 1);
    let mut numbering = Numbering::lenient();
    let mut invoked = Invoked::default();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let body = raw.strip_suffix('\r').unwrap_or(raw);
        if body.trim().is_empty() {
            continue;
        }
        let mut ev = parse_line(body, &mut invoked, &events)
            .map_err(|message| HistoryError::Parse { line, message })?;
        numbering.number(&mut ev, line)?;
        if let (Process::Client(p), EventType::Invoke) = (ev.process, ev.kind) {
            invoked.set(p, events.len());
        }
        events.push(ev);
    }
    Ok(events)
}

/// Each process's outstanding invoke, as a position in the events read so far: an unknown
/// outcome repeats its invoke's value (HISTORY.md), cloned only then. Jepsen's process numbers
/// are small and dense, so a vector indexed by process serves; a huge number falls back to a map.
#[derive(Default)]
struct Invoked {
    dense: Vec<usize>,
    sparse: HashMap<u64, usize>,
}

impl Invoked {
    const NONE: usize = usize::MAX;
    const DENSE_LIMIT: u64 = 1 << 16;

    fn set(&mut self, p: u64, pos: usize) {
        if p < Self::DENSE_LIMIT {
            let p = p as usize;
            if self.dense.len() <= p {
                self.dense.resize(p + 1, Self::NONE);
            }
            self.dense[p] = pos;
        } else {
            self.sparse.insert(p, pos);
        }
    }

    fn take(&mut self, p: u64) -> Option<usize> {
        let pos = if p < Self::DENSE_LIMIT {
            let slot = self.dense.get_mut(p as usize)?;
            std::mem::replace(slot, Self::NONE)
        } else {
            self.sparse.remove(&p)?
        };
        (pos != Self::NONE).then_some(pos)
    }
}

/// Split off the next whitespace-separated field.
fn field(s: &str) -> (&str, &str) {
    // A byte loop: the fields are a few bytes long, shorter than a searcher takes to set up.
    let b = s.as_bytes();
    let mut start = 0;
    while start < b.len() && (b[start] == b' ' || b[start] == b'\t') {
        start += 1;
    }
    let mut end = start;
    while end < b.len() && b[end] != b' ' && b[end] != b'\t' {
        end += 1;
    }
    // Both ends sit next to ASCII bytes (or the string's ends): char boundaries.
    (&s[start..end], &s[end..])
}

fn parse_line(body: &str, invoked: &mut Invoked, events: &[Event]) -> Result<Event, String> {
    // Every line of Porcupine's files starts so; `find` (a substring searcher built per line)
    // is only the fallback for other log prefixes.
    let rest = match body.strip_prefix("INFO  jepsen.util") {
        Some(rest) => rest,
        None => match body.find("jepsen.util") {
            Some(at) => &body[at + "jepsen.util".len()..],
            None => return Err(format!("no `jepsen.util`; {EXPECTED}")),
        },
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    let Some(rest) = rest.strip_prefix('-') else {
        return Err(format!("no ` - ` after `jepsen.util`; {EXPECTED}"));
    };
    let (process, rest) = field(rest);
    let (kind, rest) = field(rest);
    let (f, rest) = field(rest);
    let value_text = rest.trim_matches([' ', '\t']);

    let process = match process {
        ":nemesis" => Process::Nemesis,
        p => match p.parse::<u64>() {
            Ok(p) => Process::Client(p),
            Err(_) => {
                return Err(format!(
                    "the process {p:?} is not an integer >= 0 or :nemesis; {EXPECTED}"
                ))
            }
        },
    };
    let kind = match kind {
        ":invoke" => EventType::Invoke,
        ":ok" => EventType::Ok,
        ":fail" => EventType::Fail,
        ":info" => EventType::Info,
        k => {
            return Err(format!(
                "the type {k:?} is not :invoke, :ok, :fail or :info; {EXPECTED}"
            ))
        }
    };
    let Some(f) = f.strip_prefix(':').filter(|f| !f.is_empty()) else {
        return Err(format!(
            "the op {f:?} is not a keyword such as :read; {EXPECTED}"
        ));
    };
    if value_text.is_empty() {
        return Err(format!(
            "no value after :{f}; {EXPECTED} (`nil` when there is none)"
        ));
    }
    let value = read_value(value_text)?;

    let mut ev = Event::new(process, kind, f, Value::Null);
    let Process::Client(p) = process else {
        ev.value = match value {
            Parsed::Json(v) => v,
            Parsed::Keyword(k) => Value::String(k.to_string()),
        };
        return Ok(ev);
    };
    match (kind, value) {
        // An unknown outcome names why (`:timed-out`) instead of a value, and repeats its
        // invoke's value (HISTORY.md).
        (EventType::Info, why) | (EventType::Fail, why @ Parsed::Keyword(_)) => {
            ev.kind = EventType::Info;
            if let Parsed::Keyword(why) = why {
                ev.error = Some(why.to_string());
            }
            ev.value = invoked
                .take(p)
                .map_or(Value::Null, |pos| events[pos].value.clone());
        }
        (EventType::Fail, Parsed::Json(v)) => {
            invoked.take(p);
            if f == "cas" {
                ev.error = Some("mismatch".into());
            }
            ev.value = v;
        }
        // Elsewhere a keyword is a value like any other.
        (kind, v) => {
            if kind != EventType::Invoke {
                invoked.take(p);
            }
            ev.value = match v {
                Parsed::Json(v) => v,
                Parsed::Keyword(k) => Value::String(k.to_string()),
            };
        }
    }
    Ok(ev)
}

/// A line's value: JSON, or a keyword naming why an outcome is unknown (`:timed-out`).
enum Parsed<'a> {
    Json(Value),
    Keyword(&'a str),
}

/// The value field. The common shapes (nil, N, [A B]) go straight to JSON; anything else
/// through the EDN reader.
fn read_value(text: &str) -> Result<Parsed<'_>, String> {
    if text == "nil" {
        return Ok(Parsed::Json(Value::Null));
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Parsed::Json(i.into()));
    }
    if let Some((a, b)) = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.split_once(' '))
    {
        if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
            return Ok(Parsed::Json(Value::Array(vec![a.into(), b.into()])));
        }
    }
    match edn::read_one(text) {
        Ok(Edn::Keyword(k)) => Ok(Parsed::Keyword(k)),
        Ok(other) => Ok(Parsed::Json(other.to_json())),
        Err(e) => Err(format!(
            "the value {text:?} cannot be read ({}); expected nil, a number, [FROM TO] or a keyword such as :timed-out",
            e.message
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tabs_and_spaces_and_maps_outcomes() {
        let text = "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n\
                    INFO  jepsen.util - 1 :fail :cas [1 2]\n\
                    INFO  jepsen.util - 2 :invoke :write 4\n\
                    INFO  jepsen.util - 2 :info :write :timed-out\n\
                    INFO  jepsen.util - 3 :invoke :read nil\n\
                    INFO  jepsen.util - 3 :fail :read :timed-out\n";
        let evs = read(text).unwrap();
        assert_eq!(evs.len(), 6);
        assert_eq!(
            (evs[1].kind, evs[1].error.as_deref()),
            (EventType::Fail, Some("mismatch"))
        );
        assert_eq!(
            (evs[3].kind, evs[3].error.as_deref()),
            (EventType::Info, Some("timed-out"))
        );
        assert_eq!(evs[3].value, serde_json::json!(4));
        assert_eq!(evs[5].kind, EventType::Info);
        assert_eq!(evs[0].value, serde_json::json!([1, 2]));
    }

    #[test]
    fn bad_line_says_what_was_expected() {
        let e =
            read("INFO  jepsen.util - 1 :invoke :read nil\nINFO  jepsen.util - x :ok :read nil")
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("line 2:") && e.contains("not an integer"),
            "{e}"
        );
    }
}
