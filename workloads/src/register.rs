//! The register workload: each client slot draws reads, writes and cas ops on rotating keys.
//!
//! Keys rotate so each key's history stays small enough for the linearizability search:
//! client slot `c`'s `j`-th op goes to key `k{j * concurrency / ops_per_key}`, so all slots
//! move through the keys at the same pace and each key gets about `ops_per_key` ops in total,
//! without any shared counter (a shared counter would make op sequences depend on timing).
//!
//! Written values are unique per key (in fact across the run): slot `c`'s `s`-th write is
//! `c * 1_000_000_000 + s + 1`, so a read names the write it saw.

use quorate_checker::model::ModelKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::str::FromStr;

/// A workload setting a user got wrong; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    #[error(
        "--ops {0:?}: expected a comma-separated list of read, write and cas (write required)"
    )]
    BadOps(String),
    #[error("--ops-per-key must be at least 1")]
    BadOpsPerKey,
}

/// One kind of register op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    Read,
    Write,
    Cas,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Cas => "cas",
        }
    }
}

impl FromStr for OpKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "read" => Ok(OpKind::Read),
            "write" => Ok(OpKind::Write),
            "cas" => Ok(OpKind::Cas),
            other => Err(other.to_string()),
        }
    }
}

/// What a client should do next. `value` is the invoke's value (HISTORY.md's Values table).
#[derive(Debug, Clone, PartialEq)]
pub struct OpSpec {
    pub f: OpKind,
    pub key: String,
    pub value: Value,
}

/// The whole workload's settings.
#[derive(Debug, Clone)]
pub struct RegisterWorkload {
    pub ops: Vec<OpKind>,
    pub ops_per_key: u64,
    pub concurrency: u64,
    pub seed: u64,
}

impl RegisterWorkload {
    /// Parse `--ops` and check the settings.
    pub fn new(
        ops: &str,
        ops_per_key: u64,
        concurrency: u64,
        seed: u64,
    ) -> Result<RegisterWorkload, WorkloadError> {
        let mut kinds = Vec::new();
        for part in ops.split(',') {
            let k: OpKind = part
                .parse()
                .map_err(|_| WorkloadError::BadOps(ops.to_string()))?;
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        kinds.sort();
        // Writes are what a history is about; reads may be left out (e.g. to see what
        // anti-entropy alone repairs, with no read repair).
        if !kinds.contains(&OpKind::Write) {
            return Err(WorkloadError::BadOps(ops.to_string()));
        }
        if ops_per_key == 0 {
            return Err(WorkloadError::BadOpsPerKey);
        }
        Ok(RegisterWorkload {
            ops: kinds,
            ops_per_key,
            concurrency: concurrency.max(1),
            seed,
        })
    }

    /// The model its histories are checked against: cas-register when cas is in the mix.
    pub fn model(&self) -> ModelKind {
        if self.ops.contains(&OpKind::Cas) {
            ModelKind::CasRegister
        } else {
            ModelKind::Register
        }
    }

    /// The generator for client slot `slot`.
    pub fn client(&self, slot: u64) -> RegisterClient {
        // Mix the slot into the seed so slots draw independent streams.
        let stream = self.seed ^ (slot.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        RegisterClient {
            rng: ChaCha8Rng::seed_from_u64(stream),
            ops: self.ops.clone(),
            slot,
            n: 0,
            writes: 0,
            ops_per_key: self.ops_per_key,
            concurrency: self.concurrency,
            seen: BTreeMap::new(),
        }
    }

    /// The key a slot's `j`-th op goes to.
    pub fn key_of(&self, j: u64) -> u64 {
        j * self.concurrency / self.ops_per_key
    }
}

/// One client slot's generator.
#[derive(Debug, Clone)]
pub struct RegisterClient {
    rng: ChaCha8Rng,
    ops: Vec<OpKind>,
    slot: u64,
    n: u64,
    writes: u64,
    ops_per_key: u64,
    concurrency: u64,
    /// The last value this slot saw per key, used as a cas's expected value so that cas ops
    /// succeed often enough to matter.
    seen: BTreeMap<String, Value>,
}

/// The name of register key number `index` ("k7"): what the generators write to, and what the
/// harness's final reads and key-aimed faults name. (The node's and the checker's own tests
/// spell it themselves: they may not depend on the workloads.)
pub fn key_name(index: u64) -> String {
    format!("k{index}")
}

impl RegisterClient {
    /// The key index the next op goes to.
    pub fn key_index(&self) -> u64 {
        self.n * self.concurrency / self.ops_per_key
    }

    /// The next op. Reads and writes are drawn evenly; cas, when enabled, a quarter of the time;
    /// without reads in the mix, the reads' share are writes.
    pub fn next_op(&mut self) -> OpSpec {
        self.next_op_on(None)
    }

    /// The next op, sent to key index `pin` instead of the rotation's key when one is given.
    /// The op kinds and values drawn are the same either way, so a seed still replays each
    /// client's op sequence; only the key differs while a fault holds clients on one key.
    pub fn next_op_on(&mut self, pin: Option<u64>) -> OpSpec {
        let key = key_name(pin.unwrap_or_else(|| self.key_index()));
        self.n += 1;
        let has_cas = self.ops.contains(&OpKind::Cas);
        let has_read = self.ops.contains(&OpKind::Read);
        let roll: f64 = self.rng.gen();
        // The same draws whatever the mix, so a seed's stream does not shift.
        let f = if has_cas && roll < 0.25 {
            OpKind::Cas
        } else if self.rng.gen_bool(0.5) && has_read {
            OpKind::Read
        } else {
            OpKind::Write
        };
        let value = match f {
            OpKind::Read => Value::Null,
            OpKind::Write => json!(self.fresh()),
            OpKind::Cas => {
                let expected = self.seen.get(&key).cloned().unwrap_or(Value::Null);
                json!([expected, self.fresh()])
            }
        };
        OpSpec { f, key, value }
    }

    fn fresh(&mut self) -> u64 {
        self.writes += 1;
        self.slot * 1_000_000_000 + self.writes
    }

    /// Tell the generator what an op observed (`ok` read result, or a value it wrote).
    pub fn observe(&mut self, key: &str, value: &Value) {
        if !value.is_null() {
            self.seen.insert(key.to_string(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ops() {
        let w = RegisterWorkload::new("read,write,cas", 200, 10, 42).unwrap();
        let a: Vec<_> = (0..50)
            .map({
                let mut c = w.client(3);
                move |_| c.next_op()
            })
            .collect();
        let b: Vec<_> = (0..50)
            .map({
                let mut c = w.client(3);
                move |_| c.next_op()
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn writes_are_unique_across_slots() {
        let w = RegisterWorkload::new("read,write", 200, 4, 1).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for slot in 0..4 {
            let mut c = w.client(slot);
            for _ in 0..500 {
                let op = c.next_op();
                if op.f == OpKind::Write {
                    assert!(seen.insert(op.value.as_u64().unwrap()));
                }
            }
        }
    }

    #[test]
    fn keys_rotate_after_ops_per_key() {
        let w = RegisterWorkload::new("read,write", 100, 10, 1).unwrap();
        let mut c = w.client(0);
        let keys: Vec<_> = (0..20).map(|_| c.next_op().key).collect();
        assert_eq!(keys[0], "k0");
        assert_eq!(keys[9], "k0");
        assert_eq!(keys[10], "k1");
    }

    #[test]
    fn bad_ops_rejected() {
        assert!(RegisterWorkload::new("read,frob", 10, 1, 0).is_err());
        assert!(RegisterWorkload::new("read", 10, 1, 0).is_err());
        assert!(RegisterWorkload::new("read,write", 0, 1, 0).is_err());
    }

    #[test]
    fn write_only_mix_draws_only_writes_on_the_same_keys() {
        let w = RegisterWorkload::new("write", 100, 10, 1).unwrap();
        let rw = RegisterWorkload::new("read,write", 100, 10, 1).unwrap();
        let (mut a, mut b) = (w.client(3), rw.client(3));
        for _ in 0..50 {
            let (x, y) = (a.next_op(), b.next_op());
            assert_eq!(x.f, OpKind::Write);
            assert_eq!(x.key, y.key);
        }
    }
}
