//! JSON values to small integers, once per key, before the search starts.
//!
//! The search compares values millions of times; comparing `u32`s instead of `serde_json::Value`s
//! is what keeps its hot loop free of allocation and pointer chasing. Integers and strings (the
//! values histories almost always hold) take a fast path; anything else is keyed by its
//! canonical JSON text.

use serde_json::Value;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast, non-cryptographic hasher (the multiply-rotate scheme of rustc's FxHash) for the
/// models' memo tables: their keys are small integers and strings from the history, and
/// SipHash's protection against chosen keys costs more than the search itself.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SEED);
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Interns JSON values: equal values get equal ids, ids count up from 0.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ints: FastMap<i64, u32>,
    strs: FastMap<String, u32>,
    other: FastMap<String, u32>,
    values: Vec<Value>,
    /// Bytes of string data held (twice: map key and value).
    text: usize,
}

impl Interner {
    pub fn new() -> Interner {
        Interner::default()
    }

    /// The id of `v`, assigning the next one if `v` is new.
    pub fn intern(&mut self, v: &Value) -> u32 {
        let next = self.values.len() as u32;
        let id = match v {
            Value::Number(n) if n.as_i64().is_some() => {
                let i = n.as_i64().unwrap_or_default();
                *self.ints.entry(i).or_insert(next)
            }
            Value::String(s) => match self.strs.get(s.as_str()) {
                Some(&id) => id,
                None => {
                    self.strs.insert(s.clone(), next);
                    next
                }
            },
            other => *self.other.entry(other.to_string()).or_insert(next),
        };
        if id == next {
            self.values.push(v.clone());
        }
        id
    }

    /// The id of the string `s`, assigning the next one if new.
    pub fn intern_str(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.strs.get(s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.text += 2 * s.len();
        self.strs.insert(s.to_string(), id);
        self.values.push(Value::String(s.to_string()));
        id
    }

    /// The value an id names. Panics on an id this interner never gave out (a broken
    /// invariant, never user input).
    pub fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }

    /// Approximate bytes held: string data plus a fixed cost per value.
    pub fn bytes(&self) -> usize {
        self.text + self.values.len() * 64
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A value for a sentence: JSON text, so `3`, `"abc"`, `[1,2]`.
pub fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_share_an_id() {
        let mut i = Interner::new();
        let a = i.intern(&json!(3));
        let b = i.intern(&json!("3"));
        let c = i.intern(&json!([1, 2]));
        assert_eq!(i.intern(&json!(3)), a);
        assert_eq!(i.intern_str("3"), b);
        assert_eq!(i.intern(&json!([1, 2])), c);
        assert_eq!(i.len(), 3);
        assert_eq!(i.value(c), &json!([1, 2]));
    }
}
