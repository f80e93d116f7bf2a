//! The compact binary body of `POST /internal/batch`: many replica messages in one exchange.
//!
//! A batch carries the replica calls of concurrent client operations bound for one peer (see
//! `replica.rs`, "lanes"). The public API stays JSON; only this internal body is binary, so a
//! quorum op's replica hops pay neither JSON encoding of the envelope nor an HTTP exchange each.
//!
//! Body = frames, one after another; frame = `u32` length (little-endian) + payload. The answer
//! body holds exactly one answer frame per request frame, in the same order.
//!
//! Message payloads (strings are `u32` length + UTF-8; a record is `u64` ts, node string, the
//! value as JSON text):
//! - `1` get:  key, `u8` with_hints
//! - `2` put:  key, record
//! - `3` hint: home, key, record
//!
//! Answer payloads: `1` record: `u8` present [+ record]; `2` ack: `u8` applied; `3` error:
//! message string.

use crate::version::{Record, Version};

const GET: u8 = 1;
const PUT: u8 = 2;
const HINT: u8 = 3;
const A_RECORD: u8 = 1;
const A_ACK: u8 = 2;
const A_ERROR: u8 = 3;

/// One replica message, decoded.
#[derive(Debug, PartialEq)]
pub enum Msg {
    Get {
        key: String,
        with_hints: bool,
    },
    Put {
        key: String,
        record: Record,
    },
    Hint {
        home: String,
        key: String,
        record: Record,
    },
}

/// One replica answer, decoded.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Record(Option<Record>),
    Ack(bool),
    Error(String),
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("bad batch body: {0}")]
pub struct WireError(pub String);

fn bad(what: impl Into<String>) -> WireError {
    WireError(what.into())
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_record(buf: &mut Vec<u8>, r: &Record) {
    buf.extend_from_slice(&r.version.ts.to_le_bytes());
    put_str(buf, &r.version.node);
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, &r.value);
    let len = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends one frame: a length placeholder, the payload `f` writes, then the length.
fn frame(buf: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    f(buf);
    let len = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

pub fn encode_get(buf: &mut Vec<u8>, key: &str, with_hints: bool) {
    frame(buf, |b| {
        b.push(GET);
        put_str(b, key);
        b.push(with_hints as u8);
    });
}

pub fn encode_put(buf: &mut Vec<u8>, key: &str, record: &Record) {
    frame(buf, |b| {
        b.push(PUT);
        put_str(b, key);
        put_record(b, record);
    });
}

pub fn encode_hint(buf: &mut Vec<u8>, home: &str, key: &str, record: &Record) {
    frame(buf, |b| {
        b.push(HINT);
        put_str(b, home);
        put_str(b, key);
        put_record(b, record);
    });
}

pub fn encode_answer(buf: &mut Vec<u8>, a: &Answer) {
    frame(buf, |b| match a {
        Answer::Record(r) => {
            b.push(A_RECORD);
            match r {
                None => b.push(0),
                Some(r) => {
                    b.push(1);
                    put_record(b, r);
                }
            }
        }
        Answer::Ack(ok) => {
            b.push(A_ACK);
            b.push(*ok as u8);
        }
        Answer::Error(e) => {
            b.push(A_ERROR);
            put_str(b, e);
        }
    });
}

/// A cursor over one payload.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(bad("truncated"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, WireError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| bad("string is not UTF-8"))
    }

    fn record(&mut self) -> Result<Record, WireError> {
        let ts = self.u64()?;
        let node = self.string()?;
        let value =
            serde_json::from_slice(self.bytes()?).map_err(|e| bad(format!("value: {e}")))?;
        Ok(Record {
            value,
            version: Version { ts, node },
        })
    }

    fn done(&self) -> Result<(), WireError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes in a frame"))
        }
    }
}

/// Splits a body into its frames' payloads.
fn frames(body: &[u8]) -> Result<Vec<&[u8]>, WireError> {
    let mut r = Reader { b: body };
    let mut out = Vec::new();
    while !r.b.is_empty() {
        out.push(r.bytes()?);
    }
    Ok(out)
}

pub fn decode_msgs(body: &[u8]) -> Result<Vec<Msg>, WireError> {
    frames(body)?
        .into_iter()
        .map(|p| {
            let mut r = Reader { b: p };
            let m = match r.u8()? {
                GET => Msg::Get {
                    key: r.string()?,
                    with_hints: r.u8()? != 0,
                },
                PUT => Msg::Put {
                    key: r.string()?,
                    record: r.record()?,
                },
                HINT => Msg::Hint {
                    home: r.string()?,
                    key: r.string()?,
                    record: r.record()?,
                },
                k => return Err(bad(format!("unknown message kind {k}"))),
            };
            r.done()?;
            Ok(m)
        })
        .collect()
}

pub fn decode_answers(body: &[u8]) -> Result<Vec<Answer>, WireError> {
    frames(body)?
        .into_iter()
        .map(|p| {
            let mut r = Reader { b: p };
            let a = match r.u8()? {
                A_RECORD => Answer::Record(match r.u8()? {
                    0 => None,
                    _ => Some(r.record()?),
                }),
                A_ACK => Answer::Ack(r.u8()? != 0),
                A_ERROR => Answer::Error(r.string()?),
                k => return Err(bad(format!("unknown answer kind {k}"))),
            };
            r.done()?;
            Ok(a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: u64, value: serde_json::Value) -> Record {
        Record {
            value,
            version: Version {
                ts,
                node: "n2".into(),
            },
        }
    }

    #[test]
    fn messages_and_answers_round_trip_in_order() {
        let r = rec(7, serde_json::json!({"a": [1, "x"]}));
        let mut body = Vec::new();
        encode_get(&mut body, "k1", true);
        encode_put(&mut body, "k2", &r);
        encode_hint(&mut body, "n3", "k3", &r);
        assert_eq!(
            decode_msgs(&body).unwrap(),
            vec![
                Msg::Get {
                    key: "k1".into(),
                    with_hints: true
                },
                Msg::Put {
                    key: "k2".into(),
                    record: r.clone()
                },
                Msg::Hint {
                    home: "n3".into(),
                    key: "k3".into(),
                    record: r.clone()
                },
            ]
        );
        let answers = vec![
            Answer::Record(Some(r)),
            Answer::Record(None),
            Answer::Ack(true),
            Answer::Error("disk".into()),
        ];
        let mut body = Vec::new();
        for a in &answers {
            encode_answer(&mut body, a);
        }
        assert_eq!(decode_answers(&body).unwrap(), answers);
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        let mut body = Vec::new();
        encode_put(&mut body, "k", &rec(1, 5.into()));
        for cut in 0..body.len() {
            if cut == 0 {
                assert_eq!(decode_msgs(&body[..0]).unwrap(), vec![]);
            } else {
                assert!(decode_msgs(&body[..cut]).is_err(), "cut at {cut}");
            }
        }
        assert!(decode_msgs(&[1, 0, 0, 0, 9]).is_err());
        assert!(decode_answers(&[255, 255, 255, 255]).is_err());
        let mut bad_utf8 = Vec::new();
        frame(&mut bad_utf8, |b| {
            b.push(GET);
            b.extend_from_slice(&1u32.to_le_bytes());
            b.push(0xff);
            b.push(0);
        });
        assert!(decode_msgs(&bad_utf8).is_err());
    }
}
