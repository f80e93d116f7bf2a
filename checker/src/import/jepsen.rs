//! Jepsen's and Knossos's `history.edn`: EDN maps of `:process :type :f :value`, optional
//! `:time :index :error` (and `:key`, `:node`), as one vector or list of maps or as one map per
//! line, with `;` comments.
//!
//! - `:process :nemesis` gives nemesis events; any other keys of a map are kept as extra fields.
//! - `:fail` is an op that did not happen, as Jepsen means it — except a `:fail` whose `:error`
//!   is `:mismatch`, which pairing treats as HISTORY.md's cas-mismatch observation.
//! - Independent keys (`jepsen.independent`): when no map has a `:key` and every client invoke's
//!   `:value` is a `[k v]` tuple (a cas's `v` itself a `[from to]` pair), the history is split by
//!   `k`. A completion takes its invoke's key, and drops its own `[k v]` wrapper when it has one.
//!   Reads of a single register have `nil` values, so a one-register history is never mistaken
//!   for an independent one unless it holds no reads and only pair-valued ops.
//!
//! The reader streams: a file-sized vector is read one map at a time.

use super::edn::{locate, Edn, EdnError, Reader};
use crate::history::numbering::Numbering;
use crate::history::{Event, EventType, HistoryError, Process};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Read a Jepsen/Knossos `history.edn`.
pub fn read(text: &str) -> Result<Vec<Event>, HistoryError> {
    let mut events = read_maps(text, |_, _| Ok(()))?;
    split_independent(&mut events);
    Ok(events)
}

/// Read the maps of an EDN history, in order, into events; `check` may reject an event (its
/// message then says what was expected). Shared with the Porcupine kv reader.
pub(crate) fn read_maps(
    text: &str,
    check: impl Fn(&Event, &[(Edn<'_>, Edn<'_>)]) -> Result<(), String>,
) -> Result<Vec<Event>, HistoryError> {
    let mut r = Reader::new(text);
    let syntax = |e: EdnError| {
        let (line, column) = locate(text, e.offset);
        HistoryError::Syntax {
            line,
            column,
            message: e.message,
        }
    };
    let mut events = Vec::new();
    let mut numbering = Numbering::lenient();
    let mut lines = LineCounter::default();
    let mut take = |form: Edn<'_>, start: usize, events: &mut Vec<Event>| {
        let line = lines.line_at(text, start);
        let bad = |message: String| {
            let (line, column) = locate(text, start);
            HistoryError::Syntax {
                line,
                column,
                message,
            }
        };
        let Edn::Map(entries) = untag(form) else {
            return Err(bad(format!(
                "found {}; expected a map such as {{:process 0, :type :invoke, :f :read, :value nil}}",
                describe_untagged(text, start)
            )));
        };
        let mut ev = event_from_map(&entries).map_err(&bad)?;
        check(&ev, &entries).map_err(&bad)?;
        numbering.number(&mut ev, line)?;
        events.push(ev);
        Ok(())
    };
    if let Some(close) = r.enter_seq().map_err(syntax)? {
        while let Some((form, start)) = r.next_in(close).map_err(syntax)? {
            take(form, start, &mut events)?;
        }
        if !r.at_end().map_err(syntax)? {
            let (line, column) = locate(text, r.offset());
            return Err(HistoryError::Syntax {
                line,
                column,
                message: "more after the history's closing bracket; expected one vector or list of maps, or one map per line".into(),
            });
        }
    } else {
        while let Some((form, start)) = r.next_form().map_err(syntax)? {
            take(form, start, &mut events)?;
        }
    }
    Ok(events)
}

/// Jepsen's newer histories tag each op (`#jepsen.history.Op{…}`); the map inside is the op.
fn untag(form: Edn<'_>) -> Edn<'_> {
    match form {
        Edn::Tagged(_, inner) => untag(*inner),
        other => other,
    }
}

/// A short quote of what stood where a map was expected.
fn describe_untagged(text: &str, start: usize) -> String {
    let quote: String = text[start..]
        .chars()
        .take_while(|&c| c != '\n')
        .take(30)
        .collect();
    format!("{quote:?}")
}

/// Line numbers of increasing offsets, without rescanning from the start each time.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &str, offset: usize) -> usize {
        let offset = offset.min(text.len());
        if offset >= self.offset {
            self.line += text.as_bytes()[self.offset..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.offset = offset;
        }
        self.line + 1
    }
}

/// Turn one op map into an event. Errors say which entry was wrong and what was expected.
pub(crate) fn event_from_map(entries: &[(Edn<'_>, Edn<'_>)]) -> Result<Event, String> {
    let mut process = None;
    let mut kind = None;
    let mut f = None;
    let mut ev = Event::new(Process::Harness, EventType::Info, "", Value::Null);
    let mut extra = Map::new();
    for (k, v) in entries {
        let Edn::Keyword(name) = k else {
            // Written as EDN ("\"type\"", "1"), so that a string key can never collide with
            // a field of the format.
            extra.insert(k.to_string(), v.to_json());
            continue;
        };
        match *name {
            "process" => {
                process = Some(match v {
                    Edn::Int(p) if *p >= 0 => Process::Client(*p as u64),
                    Edn::Keyword("nemesis") => Process::Nemesis,
                    other => {
                        return Err(format!(
                            ":process is {}; expected an integer >= 0 or :nemesis",
                            other.describe()
                        ))
                    }
                })
            }
            "type" => {
                kind = Some(match v {
                    Edn::Keyword("invoke") => EventType::Invoke,
                    Edn::Keyword("ok") => EventType::Ok,
                    Edn::Keyword("fail") => EventType::Fail,
                    Edn::Keyword("info") => EventType::Info,
                    other => {
                        return Err(format!(
                            ":type is {}; expected :invoke, :ok, :fail or :info",
                            other.describe()
                        ))
                    }
                })
            }
            "f" => {
                f = Some(match v {
                    Edn::Keyword(s) | Edn::Symbol(s) => (*s).to_string(),
                    Edn::Str(s) => s.to_string(),
                    other => {
                        return Err(format!(
                            ":f is {}; expected a keyword such as :read",
                            other.describe()
                        ))
                    }
                })
            }
            "value" => ev.value = v.to_json(),
            "key" => ev.key = Some(v.key_string()),
            "time" => match v {
                Edn::Int(t) => ev.time = Some(*t),
                Edn::Nil => {}
                other => {
                    return Err(format!(
                        ":time is {}; expected an integer (nanoseconds)",
                        other.describe()
                    ))
                }
            },
            "index" => match v {
                Edn::Int(i) if *i >= 0 => ev.index = Some(*i as u64),
                Edn::Nil => {}
                other => {
                    return Err(format!(
                        ":index is {}; expected an integer >= 0",
                        other.describe()
                    ))
                }
            },
            "error" => {
                ev.error = match v {
                    Edn::Nil => None,
                    other => Some(other.key_string()),
                }
            }
            "version" => ev.version = Some(v.to_json()),
            "node" => {
                ev.node = match v {
                    Edn::Nil => None,
                    other => Some(other.key_string()),
                }
            }
            other => {
                extra.insert(other.to_string(), v.to_json());
            }
        }
    }
    let Some(process) = process else {
        return Err("this map has no :process; expected :process, :type and :f in every op".into());
    };
    let Some(kind) = kind else {
        return Err("this map has no :type; expected :process, :type and :f in every op".into());
    };
    let Some(f) = f else {
        return Err("this map has no :f; expected :process, :type and :f in every op".into());
    };
    ev.process = process;
    ev.kind = kind;
    ev.f = f;
    ev.extra = extra;
    Ok(ev)
}

/// A `[k v]` tuple's parts.
fn tuple(v: &Value) -> Option<(&Value, &Value)> {
    match v {
        Value::Array(a) if a.len() == 2 => Some((&a[0], &a[1])),
        _ => None,
    }
}

fn key_of(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the history uses `jepsen.independent` tuples (see the module docs).
fn is_independent(events: &[Event]) -> bool {
    let mut invokes = 0;
    for ev in events {
        if !ev.is_client() {
            continue;
        }
        if ev.key.is_some() {
            return false;
        }
        if ev.kind == EventType::Invoke {
            invokes += 1;
            let Some((_, v)) = tuple(&ev.value) else {
                return false;
            };
            if ev.f == "cas" && tuple(v).is_none() {
                return false;
            }
        }
    }
    invokes > 0
}

/// Move independent keys out of `value` into `key` (see the module docs).
fn split_independent(events: &mut [Event]) {
    if !is_independent(events) {
        return;
    }
    // process -> key of its outstanding invoke
    let mut pending: BTreeMap<u64, String> = BTreeMap::new();
    for ev in events.iter_mut() {
        let Process::Client(p) = ev.process else {
            continue;
        };
        if ev.kind == EventType::Invoke {
            // is_independent checked every invoke is a tuple.
            if let Some((k, v)) = tuple(&ev.value) {
                let key = key_of(k);
                let v = v.clone();
                pending.insert(p, key.clone());
                ev.key = Some(key);
                ev.value = v;
            }
            continue;
        }
        let Some(key) = pending.remove(&p) else {
            // A completion without an invoke: leave it for pairing to report.
            continue;
        };
        if let Some((k, v)) = tuple(&ev.value) {
            if key_of(k) == key {
                ev.value = v.clone();
            }
        }
        ev.key = Some(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_of_maps_with_independent_keys() {
        let text = "[{:process 0, :type :invoke, :f :cas, :value [:x [1 2]]}\n\
                    {:process :nemesis, :type :info, :f :start, :value nil}\n\
                    {:process 0, :type :fail, :f :cas, :value [:x [1 2]], :error :mismatch}]";
        let evs = read(text).unwrap();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].key.as_deref(), Some("x"));
        assert_eq!(evs[0].value, serde_json::json!([1, 2]));
        assert_eq!(evs[1].process, Process::Nemesis);
        assert_eq!(evs[2].error.as_deref(), Some("mismatch"));
        assert_eq!(evs[2].index, Some(2));
    }

    #[test]
    fn a_single_register_is_not_split() {
        let text = "{:process 0 :type :invoke :f :read :value nil}\n{:process 0 :type :ok :f :read :value [1 2]}";
        let evs = read(text).unwrap();
        assert!(evs.iter().all(|e| e.key.is_none()));
    }

    #[test]
    fn bad_maps_name_line_and_expectation() {
        let text = "{:process 0 :type :invoke :f :read}\n{:process 0 :type :done :f :read}";
        let e = read(text).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains(":type is the keyword :done"),
            "{e}"
        );
    }
}
