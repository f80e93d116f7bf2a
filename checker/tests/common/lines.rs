//! Hand-written histories for the tests, one event a line: `process type f value [error]`,
//! e.g. `1 fail cas [1,2] mismatch`; an optional `key=K` first word sets the key. Event `i`
//! happens at `i` ms, so times in sentences read "0.004 s" for line 4.

#![allow(dead_code)] // each test binary uses part of it

use quorate_checker::history::{pair, Event, EventType, History, Process};
use serde_json::Value;

/// The history `text` writes, paired.
pub fn history(text: &str) -> History {
    let events: Vec<Event> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            let key = match words[0].strip_prefix("key=") {
                Some(k) => {
                    words.remove(0);
                    Some(k.to_string())
                }
                None => None,
            };
            let kind = match words[1] {
                "invoke" => EventType::Invoke,
                "ok" => EventType::Ok,
                "fail" => EventType::Fail,
                "info" => EventType::Info,
                other => panic!("bad type {other}"),
            };
            let value: Value = serde_json::from_str(words[3]).expect("value is JSON");
            let mut ev = Event::new(
                Process::Client(words[0].parse().expect("process")),
                kind,
                words[2],
                value,
            );
            ev.key = key;
            ev.index = Some(i as u64);
            ev.time = Some(i as i64 * 1_000_000);
            if let Some(err) = words.get(4) {
                ev = ev.with_error(*err);
            }
            ev
        })
        .collect();
    pair(&events).expect("test histories pair")
}
