//! One line of a history (HISTORY.md, v1): the [`Event`] and its parts.
//!
//! Serialising an `Event` with serde_json gives exactly one JSONL line of the format; unknown
//! fields read from a file are kept in [`Event::extra`] and written back out, so a history that
//! passes through quorate loses nothing.

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Who issued an event: a logical client, the nemesis (faults) or the harness (observations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    Client(u64),
    Nemesis,
    Harness,
}

impl Process {
    /// The client number, or `None` for the nemesis and the harness.
    pub fn client(self) -> Option<u64> {
        match self {
            Process::Client(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
            Process::Harness => f.write_str("harness"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
            Process::Harness => s.serialize_str("harness"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an integer >= 0, "nemesis" or "harness""#)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process {v} is negative; expected an integer >= 0, \"nemesis\" or \"harness\"")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                match v {
                    "nemesis" => Ok(Process::Nemesis),
                    "harness" => Ok(Process::Harness),
                    other => Err(E::custom(format!(
                        "process {other:?} is not an integer >= 0, \"nemesis\" or \"harness\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `invoke` starts an op; `ok`, `fail` and `info` complete it (HISTORY.md, Semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        })
    }
}

/// One line of a history. Field order here is the order written out.
///
/// Deserialize is written by hand (below) rather than derived: serde's derive buffers every
/// field of a struct with a `flatten` field into an intermediate tree first, which made
/// reading a million-op history several times slower than it needs to be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Position in the file; a reader assigns it when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Nanoseconds since the run started (monotonic); optional on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub f: String,
    /// Absent means the history is one object, reported as key `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unknown fields, kept and written back, ignored by checkers.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    /// A bare event with no optional fields set.
    pub fn new(process: Process, kind: EventType, f: impl Into<String>, value: Value) -> Event {
        Event {
            index: None,
            time: None,
            process,
            kind,
            f: f.into(),
            key: None,
            value,
            node: None,
            version: None,
            error: None,
            extra: Map::new(),
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Event {
        self.key = Some(key.into());
        self
    }

    pub fn with_error(mut self, error: impl Into<String>) -> Event {
        self.error = Some(error.into());
        self
    }

    /// The key as reported: `""` when absent.
    pub fn key_str(&self) -> &str {
        self.key.as_deref().unwrap_or("")
    }

    /// Whether this is a client op event (not a nemesis fault or harness observation).
    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Client(_))
    }
}

/// The fields of an [`Event`] by name; anything else is kept in `extra`.
enum Field<'de> {
    Index,
    Time,
    Process,
    Type,
    F,
    Key,
    Value,
    Node,
    Version,
    Error,
    Other(std::borrow::Cow<'de, str>),
}

impl<'de> Field<'de> {
    fn of(name: &str) -> Option<Field<'de>> {
        Some(match name {
            "index" => Field::Index,
            "time" => Field::Time,
            "process" => Field::Process,
            "type" => Field::Type,
            "f" => Field::F,
            "key" => Field::Key,
            "value" => Field::Value,
            "node" => Field::Node,
            "version" => Field::Version,
            "error" => Field::Error,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::of(v).unwrap_or(Field::Other(v.into())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<'de>, E> {
                Ok(Field::of(v).unwrap_or_else(|| Field::Other(v.to_string().into())))
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

/// Set a field once; a second occurrence is an error, as serde's derive would make it.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with \"process\", \"type\" and \"f\"")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Event, A::Error> {
        // Optional fields: `Some(inner)` once seen, where `inner` may itself be None (null).
        let mut index: Option<Option<u64>> = None;
        let mut time: Option<Option<i64>> = None;
        let mut process: Option<Process> = None;
        let mut kind: Option<EventType> = None;
        let mut f: Option<String> = None;
        let mut key: Option<Option<String>> = None;
        let mut value: Option<Value> = None;
        let mut node: Option<Option<String>> = None;
        let mut version: Option<Option<Value>> = None;
        let mut error: Option<Option<String>> = None;
        let mut extra = Map::new();
        while let Some(field) = m.next_key::<Field<'de>>()? {
            match field {
                Field::Index => once(&mut index, m.next_value()?, "index")?,
                Field::Time => once(&mut time, m.next_value()?, "time")?,
                Field::Process => once(&mut process, m.next_value()?, "process")?,
                Field::Type => once(&mut kind, m.next_value()?, "type")?,
                Field::F => once(&mut f, m.next_value()?, "f")?,
                Field::Key => once(&mut key, m.next_value()?, "key")?,
                Field::Value => once(&mut value, m.next_value()?, "value")?,
                Field::Node => once(&mut node, m.next_value()?, "node")?,
                Field::Version => once(&mut version, m.next_value()?, "version")?,
                Field::Error => once(&mut error, m.next_value()?, "error")?,
                Field::Other(name) => {
                    let v: Value = m.next_value()?;
                    if extra.insert(name.into_owned(), v).is_some() {
                        return Err(de::Error::custom("a field appears twice"));
                    }
                }
            }
        }
        Ok(Event {
            index: index.flatten(),
            time: time.flatten(),
            process: process.ok_or_else(|| de::Error::missing_field("process"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
            f: f.ok_or_else(|| de::Error::missing_field("f"))?,
            key: key.flatten(),
            value: value.unwrap_or(Value::Null),
            node: node.flatten(),
            version: version.flatten(),
            error: error.flatten(),
            extra,
        })
    }
}
