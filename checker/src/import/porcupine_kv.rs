//! Porcupine's key-value test logs (`kv/cNN-{ok,bad}.txt`): one EDN map per line,
//! `{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}`.
//!
//! The lines are Jepsen-style op maps with a `:key`, so the Jepsen reader does the reading;
//! this module holds them to what Porcupine's kv model can judge: every op names a `:key`, and
//! its `:f` is `:get`, `:put` or `:append` (HISTORY.md, Values). The model starts every key at
//! the empty string.

use super::edn::Edn;
use super::jepsen;
use crate::history::{Event, HistoryError};

/// The operations of Porcupine's kv model.
pub const KV_OPS: [&str; 3] = ["get", "put", "append"];

/// Read a Porcupine kv log.
pub fn read(text: &str) -> Result<Vec<Event>, HistoryError> {
    jepsen::read_maps(text, check)
}

fn check(ev: &Event, _entries: &[(Edn<'_>, Edn<'_>)]) -> Result<(), String> {
    if !ev.is_client() {
        return Ok(());
    }
    if !KV_OPS.contains(&ev.f.as_str()) {
        return Err(format!(
            ":f is :{}; expected :get, :put or :append (Porcupine's kv model)",
            ev.f
        ));
    }
    if ev.key.is_none() {
        return Err("this op has no :key; expected a :key such as \"0\" on every kv op".into());
    }
    Ok(())
}
