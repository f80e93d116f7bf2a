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
    let mut events = Vec::with_capacity(text.len() / 40);
    let mut numbering = Numbering::lenient();
    // process -> its outstanding invoke's value, which an unknown outcome repeats.
    let mut invoked: HashMap<u64, Value> = HashMap::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let body = raw.strip_suffix('\r').unwrap_or(raw);
        if body.trim().is_empty() {
            continue;
        }
        let mut ev = parse_line(body, &mut invoked)
            .map_err(|message| HistoryError::Parse { line, message })?;
        numbering.number(&mut ev, line)?;
        events.push(ev);
    }
    Ok(events)
}

/// Split off the next whitespace-separated field.
fn field(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn parse_line(body: &str, invoked: &mut HashMap<u64, Value>) -> Result<Event, String> {
    let Some(at) = body.find("jepsen.util") else {
        return Err(format!("no `jepsen.util`; {EXPECTED}"));
    };
    let rest = body[at + "jepsen.util".len()..].trim_start_matches([' ', '\t']);
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
        ev.value = value.to_json();
        return Ok(ev);
    };
    match (kind, &value) {
        (EventType::Invoke, _) => {
            let v = value.to_json();
            invoked.insert(p, v.clone());
            ev.value = v;
        }
        // An unknown outcome names why (`:timed-out`) instead of a value.
        (EventType::Info, _) | (EventType::Fail, Edn::Keyword(_)) => {
            ev.kind = EventType::Info;
            if let Edn::Keyword(why) = value {
                ev.error = Some(why.to_string());
            }
            ev.value = invoked.remove(&p).unwrap_or(Value::Null);
        }
        (EventType::Fail, _) => {
            invoked.remove(&p);
            if f == "cas" {
                ev.error = Some("mismatch".into());
            }
            ev.value = value.to_json();
        }
        (EventType::Ok, _) => {
            invoked.remove(&p);
            ev.value = value.to_json();
        }
    }
    Ok(ev)
}

/// The value field: a number without the EDN reader's help, anything else with it.
fn read_value(text: &str) -> Result<Edn<'_>, String> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Edn::Int(i));
    }
    edn::read_one(text).map_err(|e| {
        format!(
            "the value {text:?} cannot be read ({}); expected nil, a number, [FROM TO] or a keyword such as :timed-out",
            e.message
        )
    })
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
